#!/usr/bin/env python3
"""knobengine benchmarks, each measured side by side in one run. Prints a table; not a
test (no pass/fail). Usage: bench/run.py BUILD_DIR [--big] [--only NAME] (--big adds a
10M-row trace; --only runs one section: client, timing, summarize, overhead, memory,
scale, scale_out, report, capacity, peers).

1. replay client vs wrk: requests/s against knobsim with zero modelled latency
2. client timing error: knobsim with fixed TTFT 20 ms / TPOT 10 ms, measured p50s
3. trace summary: knobengine summarize vs the sqlite3 shell (equivalent SQL) vs
   nsys stats gpukernsum, on generated traces
4. engine overhead per trial: a 32-trial sweep with a tiny workload
5. memory: peak RSS of knobengine replaying 100k requests
6. the client at scale: open-loop schedule adherence, 1024 streams, 100k-word prompts,
   and loading a dataset of a million lines
7. scale-out: a 16-trial sweep on 1, 2 and 4 local executor slots, and the slurm
   executor's overhead per trial against the local one (a real one-node Slurm)
8. report at scale: `knobengine report` of a sweep of 10,000 and 100,000 trials
   (bench/make_run.py inflates a real 4-trial run), wall time and peak RSS
9. capacity repeatability: one config's capacity measured 5 times, with one short
   probe per rate and with the minimum probe duration and repeats near the boundary
10. peers: AIPerf and GuideLLM against knobsim at the same load as knobengine's client,
   Optuna's TPE and GP samplers against bayes and coord_descent (bench/peers.py)
"""
import collections
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
BIG = "--big" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
KNOBENGINE = os.path.join(BUILD, "knobengine")
KNOBSIM = os.path.join(BUILD, "knobsim")
LUA_HOST = os.path.join(BUILD, "tests", "lua_host")
WORK = tempfile.mkdtemp(prefix="knobbench-")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Measured = collections.namedtuple("Measured", "out wall rss_mb cpu_s")


def run_measured(argv, **kw):
    """Runs a command; returns Measured(stdout, wall seconds, peak RSS in MB, CPU seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    errs = []  # stderr drains beside stdout: a chatty tool must not fill its pipe and stall
    drain = threading.Thread(target=lambda: errs.append(p.stderr.read()))
    drain.start()
    out = p.stdout.read()
    drain.join()
    err = errs[0]
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv[:3]), err[-500:]))
    return Measured(out, wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime)


class Sim:
    def __init__(self, *args):
        self.port = free_port()
        self.log = os.path.join(WORK, "knobsim-%d.log" % self.port)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([KNOBSIM, "serve", "m", "--port", str(self.port), "--load-time-s", "0", *args],
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("knobsim did not start")

    def url(self, path="/v1/completions"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.proc.terminate()
        self.proc.wait()

    def lateness_us(self):
        """knobsim's own lateness in fixed-latency mode, from its log: (first token p50, every token p50)."""
        with open(self.log) as f:
            m = re.search(r"first token p50 (\d+) p95 \d+, every token p50 (\d+)", f.read())
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def probe(url, concurrency, requests, stream, max_tokens):
    run = run_measured([LUA_HOST, os.path.join(ROOT, "bench", "replay_probe.lua"), url, str(concurrency),
                        str(requests), "1" if stream else "0", str(max_tokens)])
    return json.loads(run.out)


def section(title):
    print("\n" + title)
    print("-" * len(title))


def bench_client():
    section("1. replay client vs wrk (knobsim, zero latency, non-streaming, 1 token)")
    print("each client runs ~2 s, alternating knobengine and wrk, 3 rounds; medians of each, and")
    print("the median of the rounds' ratios (a round's two runs are seconds apart, so drift cancels)")
    wrk = shutil.which("wrk")
    print("%-11s %12s %12s %7s %28s" % ("concurrency", "knob req/s", "wrk req/s", "ratio",
                                        "CPU s per 10k req: knob   wrk"))
    for c in (1, 16, 64, 256):
        sim = Sim("--time-scale", "0")
        knob_rates, knob_cpu, wrk_rates, wrk_cpu, ratios = [], [], [], [], []
        try:
            n = 40000 if c == 1 else 80000  # about 2 s each, as long as wrk's run
            for _ in range(3):
                k = probe(sim.url(), c, n, False, 1)
                knob_rates.append(k["requests_per_s"])
                knob_cpu.append(k["cpu_s"] / k["completed"] * 10000)
                if wrk:
                    run = run_measured([wrk, "-t1", "-c%d" % c, "-d2s", "-s",
                                        os.path.join(ROOT, "bench", "wrk_post.lua"), sim.url()])
                    m = re.search(r"(\d+) requests in .*\n(?:.*\n)*?Requests/sec:\s+([\d.]+)", run.out)
                    if m:
                        wrk_rates.append(float(m.group(2)))
                        wrk_cpu.append(run.cpu_s / int(m.group(1)) * 10000)
                        ratios.append(knob_rates[-1] / wrk_rates[-1])
        finally:
            sim.close()
        k_rate = statistics.median(knob_rates)
        w = statistics.median(wrk_rates) if wrk_rates else None
        print("%-11d %12.0f %12s %7s %22.3f %5s" % (c, k_rate, "%.0f" % w if w else "n/a",
                                                    "%.2f" % statistics.median(ratios) if ratios else "n/a",
                                                    statistics.median(knob_cpu),
                                                    "%.3f" % statistics.median(wrk_cpu) if wrk_cpu else "n/a"))


def bench_timing():
    section("2. client timing error (knobsim fixed TTFT 20 ms, TPOT 10 ms, 16 tokens, streaming; median of 3)")
    print("error: measured p50 vs configured; server: how late knobsim itself wrote (p50, from its log);")
    print("client: the error less the server's lateness, i.e. what the client and the loopback add")
    print("%-11s %9s %8s %10s %9s %9s %8s" % ("concurrency", "TTFT p50", "error %", "server us", "client %",
                                             "TPOT p50", "error %"))
    for c in (1, 64):
        runs = []
        for _ in range(3):
            sim = Sim("--fixed-ttft-ms", "20", "--fixed-tpot-ms", "10")
            try:
                k = probe(sim.url(), c, 100 if c == 1 else 640, True, 16)
            finally:
                sim.close()
            k["late_first"] = sim.lateness_us()[0]
            runs.append(k)
        k = sorted(runs, key=lambda r: r["ttft_p50"])[1]
        tpot = sorted(r["tpot_p50"] for r in runs)[1]
        ttft_err = (k["ttft_p50"] - 20) / 20 * 100
        tpot_err = (tpot - 10) / 10 * 100
        # TPOT needs no split: every token of a request is about equally late
        print("%-11d %9.3f %8.2f %10d %9.2f %9.3f %8.2f" % (
            c, k["ttft_p50"], ttft_err, k["late_first"], ttft_err - k["late_first"] / 1000 / 20 * 100, tpot, tpot_err))


SQL = """
SELECT sum(end - start), count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL;
SELECT demangledName, sum(end - start) AS t, count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY 1 ORDER BY t DESC LIMIT 5;
SELECT copyKind, sum(end - start), sum(bytes), count(*) FROM CUPTI_ACTIVITY_KIND_MEMCPY GROUP BY 1;
SELECT nameId, sum(end - start), count(*) FROM OSRT_API WHERE eventClass = 27 GROUP BY 1;
SELECT textId, eventType, sum(end - start), count(*) FROM NVTX_EVENTS GROUP BY 1, 2;
"""


def bench_summarize():
    section("3. trace summary: knobengine summarize vs sqlite3 shell vs nsys stats gpukernsum")
    nsys = shutil.which("nsys")
    print("%-11s %10s %7s %10s %8s %10s %8s %9s %9s %6s" % ("kernels", "summarize", "ns/row", "sqlite3", "ratio",
                                                              "nsys stats", "speedup", "RSS MB", "nsys MB", "agree"))
    sizes = [10_000, 1_000_000] + ([10_000_000] if BIG else [])
    for n in sizes:
        path = os.path.join(WORK, "trace-%d.sqlite" % n)
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_trace.py"), path, str(n)], check=True)
        best = lambda f: min(f() for _ in range(3))
        ours = []
        out = ""

        def summarize():
            nonlocal out
            o, wall, rss, _ = run_measured([KNOBENGINE, "summarize", path])
            out = o
            ours.append(rss)
            return wall
        t_ours = best(summarize)
        t_sql = best(lambda: run_sqlite(path))
        s = json.loads(out)
        kern_sql = subprocess.run(["sqlite3", path, "SELECT sum(end - start) FROM CUPTI_ACTIVITY_KIND_KERNEL"],
                                  capture_output=True, text=True).stdout.strip()
        agree = round(s["kernel_ms"] * 1e6) == int(kern_sql)
        t_nsys, nsys_rss = None, None
        if nsys and n <= 1_000_000:
            copy = path + ".nsys.sqlite"
            shutil.copy(path, copy)
            try:
                o, t_nsys, nsys_rss, _ = run_measured([nsys, "stats", "--report", "gpukernsum", "--format", "csv", copy])
                tot = sum(int(r.split(",")[1]) for r in o.splitlines()[1:] if re.match(r"^[\d.]+,\d+,", r))
                agree = agree and tot == int(kern_sql)
            except RuntimeError:
                t_nsys = None
        # ns per kernel row (the other tables add 30% more rows): flat means linear
        print("%-11d %10.3f %7.0f %10.3f %8.2f %10s %8s %9.1f %9s %6s" % (
            n, t_ours, t_ours / n * 1e9, t_sql, t_ours / t_sql, "%.3f" % t_nsys if t_nsys else "n/a",
            "%.1fx" % (t_nsys / t_ours) if t_nsys else "n/a", max(ours), "%.1f" % nsys_rss if nsys_rss else "n/a",
            "yes" if agree else "NO"))


def run_sqlite(path):
    t0 = time.monotonic()
    subprocess.run(["sqlite3", "file:%s?immutable=1" % path], input=SQL, capture_output=True, text=True, check=True)
    return time.monotonic() - t0


def write_config(d, knobs, requests, extra_serve=(), repeats=1):
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        f.write('{"prompt": "hello there general kenobi"}\n')
    cfg = {
        "serve_cmd": [KNOBSIM, "serve", "m", "--port", "{port}", "--load-time-s", "0", "--time-scale", "0", *extra_serve],
        "server": {"port": free_port(), "ready_timeout_s": 10, "stop_timeout_s": 5},
        "workload": {"dataset": "data.jsonl", "model": "m", "concurrency": 64 if requests > 1000 else 2,
                     "request_count": requests, "max_new_tokens": 1, "warmup_requests": 0, "repeats": repeats},
        "knobs": knobs,
        "nsys": {"bin": "nsys-not-used-in-benchmarks"},
    }
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def bench_overhead():
    section("4. engine overhead per trial (32-trial sweep, zero load time, 4 requests per trial)")
    d = tempfile.mkdtemp(dir=WORK)
    knobs = [{"name": "a", "flag": "--disable-log-requests"}, {"name": "b", "key": "--max-num-seqs", "on_value": "256"},
             {"name": "c", "key": "--max-num-batched-tokens", "on_value": "512"},
             {"name": "d", "key": "--kv-capacity-tokens", "on_value": "4096"},
             {"name": "e", "key": "--jitter-pct", "on_value": "0"}]
    write_config(d, knobs, 4)
    env = dict(os.environ)
    run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d, env=env)
    wall = run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d, env=env).wall
    summary = json.load(open(os.path.join(d, "results", "search", "latest", "summary.json")))
    # the server's own start: exec to listening, measured here without knobengine
    starts = []
    for _ in range(10):
        port = free_port()
        t0 = time.monotonic()
        p = subprocess.Popen([KNOBSIM, "serve", "m", "--port", str(port), "--load-time-s", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.0005)
        starts.append(time.monotonic() - t0)
        p.terminate()
        p.wait()
    server_start = sorted(starts)[len(starts) // 2]
    trials = summary["trials"]
    per = sorted((t["wall_s"] - t["timing"]["workload_s"] - server_start) * 1000 for t in trials)
    ready = sorted((t["timing"]["start_s"] - server_start) * 1000 for t in trials)
    stop = sorted(t["timing"]["stop_s"] * 1000 for t in trials)
    med = lambda v: v[len(v) // 2]
    print("trials %d, whole search %.2f s (%.1f ms per trial incl. the best's re-run)" % (len(trials), wall, wall / (len(trials) + 1) * 1000))
    print("server's own start (exec to listening) %.1f ms" % (server_start * 1000))
    print("added by knobengine per trial: median %.1f ms, max %.1f ms" % (med(per), per[-1]))
    print("  of which readiness polling %.1f ms, stop and port wait %.1f ms (medians)" % (med(ready), med(stop)))


def bench_memory():
    section("5. memory: peak RSS of knobengine replaying 100k requests (knobsim zero latency, 1 token)")
    d = tempfile.mkdtemp(dir=WORK)
    write_config(d, [{"name": "a", "flag": "--disable-log-requests"}], 100_000)
    out, wall, rss, _ = run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d)
    m = json.load(open(os.path.join(d, "results", "baseline", "client_metrics.json")))
    print("requests %d in %.1f s (%.0f req/s), peak RSS %.1f MB" % (m["completed"], m["duration_s"], m["requests_per_s"], rss))


def scale_probe(url, mode, level, requests, stream, max_tokens, words, requests_csv=None):
    run = run_measured([LUA_HOST, os.path.join(ROOT, "bench", "scale_probe.lua"), url, mode, str(level), str(requests),
                        "1" if stream else "0", str(max_tokens), str(words)] + ([requests_csv] if requests_csv else []))
    return json.loads(run.out)


def paired_ttft(sim_args, concurrency, requests, max_tokens, words):
    """Streams REQUESTS at CONCURRENCY against knobsim and pairs each request's TTFT as the
    client measured it with the server's own (its first byte in to its first token out,
    from --first-token-log): what the client adds is their difference, request by request."""
    server_log = os.path.join(WORK, "first-tokens-%d.csv" % words)
    client_csv = os.path.join(WORK, "requests-%d.csv" % words)
    sim = Sim(*sim_args, "--first-token-log", server_log)
    try:
        k = scale_probe(sim.url(), "closed", concurrency, requests, True, max_tokens, words, client_csv)
    finally:
        sim.close()
    with open(server_log) as f:
        server = {int(row[0]): float(row[1]) / 1000 for row in (line.strip().split(",") for line in f if line.strip())}
    with open(client_csv) as f:
        client = {int(row["request"]): float(row["ttft_ms"]) for row in csv.DictReader(f) if row["ttft_ms"]}
    added = sorted(client[i] - server[i] for i in client if i in server)
    relative = sorted((client[i] - server[i]) / server[i] * 100 for i in client if i in server)
    k["paired"] = len(added)
    k["added_p50_ms"], k["added_p99_ms"] = percentile(added, 50), percentile(added, 99)
    k["added_p50_pct"] = percentile(relative, 50)
    k["server_ttft_p50"] = percentile(sorted(server.values()), 50)
    return k


def percentile(xs, p):
    """Linear interpolation between closest ranks of sorted xs (as the engine does)."""
    r = p / 100 * (len(xs) - 1)
    lo = int(r)
    return xs[lo] + (r - lo) * (xs[min(lo + 1, len(xs) - 1)] - xs[lo])


def bench_scale():
    section("6. the client at scale")
    print("a. open-loop schedule adherence (Poisson arrivals, knobsim zero latency, 1 token, non-streaming):")
    print("   send lateness = sent - scheduled, ms")
    print("   %-9s %8s %10s %10s %10s %12s" % ("req/s", "requests", "late p50", "late p99", "late max", "CPU s/10k"))
    for rate in (200, 1000, 4000):
        sim = Sim("--time-scale", "0")
        try:
            k = scale_probe(sim.url(), "open", rate, rate * 5, False, 1, 8)
        finally:
            sim.close()
        print("   %-9d %8d %10.3f %10.3f %10.3f %12.3f" % (rate, k["completed"], k["late_p50"], k["late_p99"],
                                                          k["late_max"], k["cpu_s"] / k["completed"] * 10000))
    print("b. 1024 concurrent streams (knobsim fixed TTFT 20 ms, TPOT 10 ms, 32 tokens; 4096 requests)")
    k = paired_ttft(("--fixed-ttft-ms", "20", "--fixed-tpot-ms", "10"), 1024, 4096, 32, 8)
    print("   completed %d, failed %d, %.0f req/s, TPOT p50 %.3f ms, client CPU %.3f ms per request, read lag p50 "
          "%.3f p99 %.3f ms" % (k["completed"], k["failed"], k["requests_per_s"], k["tpot_p50"],
                                k["cpu_s"] / k["completed"] * 1000, k["lag_p50"], k["lag_p99"]))
    print("   TTFT p50: client %.3f ms, server %.3f ms; per request the client adds p50 %.3f ms (%+.2f%%), "
          "p99 %.3f ms" % (k["ttft_p50"], k["server_ttft_p50"], k["added_p50_ms"], k["added_p50_pct"],
                           k["added_p99_ms"]))
    print("c. long prompts at concurrency 64 (knobsim fixed TTFT 20 ms, TPOT 10 ms, 8 tokens, 256 requests)")
    print("   TTFT error: per request, the client's TTFT minus the server's own (first byte in to first token out)")
    print("   %-8s %11s %14s %16s %15s %15s %11s %10s" % ("words", "body bytes", "client CPU/req", "CPU per kB (us)",
                                                        "client TTFT p50", "server TTFT p50", "error p50", "error p99"))
    for words in (1000, 10000, 100000):
        k = paired_ttft(("--fixed-ttft-ms", "20", "--fixed-tpot-ms", "10"), 64, 256, 8, words)
        per = k["cpu_s"] / k["completed"]
        print("   %-8d %11d %11.3f ms %16.2f %12.3f ms %12.3f ms %+10.2f%% %7.3f ms" % (
            words, k["body_bytes"], per * 1000, per / (k["body_bytes"] / 1000) * 1e6, k["ttft_p50"],
            k["server_ttft_p50"], k["added_p50_pct"], k["added_p99_ms"]))
    print("d. loading a JSONL dataset (knobengine --dry-run: every line read and checked)")
    print("   %-9s %9s %8s %10s %12s" % ("lines", "MB", "seconds", "RSS MB", "RSS / size"))
    for lines in (250_000, 1_000_000, 2_000_000):
        d = tempfile.mkdtemp(dir=WORK)
        path = os.path.join(d, "big.jsonl")
        with open(path, "w") as f:
            for i in range(lines):
                f.write('{"prompt": "w%d w%d w%d w%d w%d w%d w%d w%d"}\n' % tuple((i * 7 + k) % 1000 for k in range(8)))
        with open(os.path.join(d, "cfg.json"), "w") as f:
            json.dump({"serve_cmd": [KNOBSIM, "serve", "m", "--port", "{port}"],
                       "workload": {"dataset": "big.jsonl", "model": "m"},
                       "knobs": [{"name": "a", "flag": "--enforce-eager"}]}, f)
        size = os.path.getsize(path) / 1e6
        run = run_measured([KNOBENGINE, "--config", "cfg.json", "--dry-run"], cwd=d)
        print("   %-9d %9.1f %8.2f %10.1f %12.2f" % (lines, size, run.wall, run.rss_mb, run.rss_mb / size))
        shutil.rmtree(d, ignore_errors=True)


def search_wall(d, executor, env=None):
    """Seconds of a whole search (after its baseline) with this executor setting."""
    with open(os.path.join(d, "cfg.json")) as f:
        cfg = json.load(f)
    if executor:
        cfg["executor"] = executor
    else:
        cfg.pop("executor", None)
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    return run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d, env=env).wall


def bench_scale_out():
    section("7. scale-out: a 16-trial sweep (4 on/off knobs), knobsim fixed TTFT 50 ms / TPOT 5 ms, 0.5 s model load")
    d = tempfile.mkdtemp(dir=WORK)
    knobs = [{"name": n, "flag": f} for n, f in (("a", "--disable-log-requests"), ("b", "--enable-prefix-caching"),
                                                  ("c", "--enable-chunked-prefill"), ("d", "--enforce-eager"))]
    write_config(d, knobs, 16, extra_serve=("--fixed-ttft-ms", "50", "--fixed-tpot-ms", "5"))
    with open(os.path.join(d, "cfg.json")) as f:
        cfg = json.load(f)
    cfg["serve_cmd"][cfg["serve_cmd"].index("--load-time-s") + 1] = "0.5"
    cfg["workload"].update(concurrency=8, max_new_tokens=16)
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d)  # the baseline
    port = cfg["server"]["port"]
    slots = lambda n: {"type": "local", "slots": [{"port": free_port()} for _ in range(n)]}
    walls = {"in-process": search_wall(d, None)}
    for n in (1, 2, 4):
        walls["%d slot%s" % (n, "s" if n > 1 else "")] = search_wall(d, slots(n))
    base = walls["1 slot"]
    print("%-12s %9s %8s" % ("executor", "search s", "speedup"))
    for name, w in walls.items():
        print("%-12s %9.2f %7.2fx" % (name, w, base / w))
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    os.environ.setdefault("KNOBENGINE", KNOBENGINE)
    os.environ.setdefault("KNOBSIM", KNOBSIM)
    import slurm_cluster
    if slurm_cluster.missing():
        print("slurm: skipped (%s missing; scripts/install-deps.sh --slurm)" % ", ".join(slurm_cluster.missing()))
        return
    cluster = slurm_cluster.Cluster().start()
    try:
        env = dict(os.environ, SLURM_CONF=cluster.conf)
        w = search_wall(d, {"type": "slurm", "max_jobs": 1, "poll_s": 0.1}, env)
        print("slurm, 1 job at a time: %.2f s, %+.0f ms per trial against 1 local slot (submission to result)"
              % (w, (w - base) / 16 * 1000))
    finally:
        cluster.stop()


def bench_report():
    section("8. report at scale: knobengine report of a generated bruteforce sweep of N trials")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import make_run
    d = tempfile.mkdtemp(dir=WORK)
    write_config(d, [{"name": "a", "flag": "--disable-log-requests"}, {"name": "b", "flag": "--enforce-eager"}], 8)
    for _ in range(2):  # the baseline, then a 4-trial search: the template of every trial
        run_measured([KNOBENGINE, "--config", "cfg.json"], cwd=d)
    for n in (10_000, 100_000):
        out = os.path.join(d, "big-%d" % n)
        run = make_run.make(os.path.join(d, "results"), out, n)
        mb = os.path.getsize(os.path.join(run, "summary.json")) / 1e6
        walls, rss = [], []
        for _ in range(2):
            m = run_measured([KNOBENGINE, "report", run])
            walls.append(m.wall)
            rss.append(m.rss_mb)
        print("report of %s trials: %.1f s, %.0f MB (summary.json %.0f MB; best of 2 runs, peak RSS the larger; "
              "%.0f us per trial)" % (format(n, ","), min(walls), max(rss), mb, min(walls) / n * 1e6))
        shutil.rmtree(out, ignore_errors=True)


def capacity_runs(d, capacity, runs=5):
    """The capacity of one config measured `runs` times: rates, probes per run, wall s."""
    with open(os.path.join(d, "data.jsonl"), "w") as f:  # long prompts: prefill decides TTFT
        for i in range(30):
            f.write(json.dumps({"prompt": ("q%d " % i) * 305}) + "\n")
    cfg = {
        "serve_cmd": [KNOBSIM, "serve", "m", "--port", "{port}", "--load-time-s", "0", "--time-scale", "0.25",
                      "--seed", "1"],
        "server": {"port": free_port(), "ready_timeout_s": 10, "stop_timeout_s": 5},
        "workload": {"dataset": "data.jsonl", "model": "m", "request_count": 30, "max_new_tokens": 8,
                     "warmup_requests": 2},
        "knobs": [{"name": "eager", "flag": "--enforce-eager"}],
        "slo": {"ttft_ms": 40, "quantile": 0.9},
        "capacity": dict({"start_rate": 64, "tolerance": 0.05}, **capacity),
        "nsys": {"bin": "nsys-not-used-in-benchmarks"},
    }
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    rates, probes, walls = [], [], []
    for k in range(runs):
        results = "r%d-%d" % (k, len(os.listdir(d)))
        m = run_measured([KNOBENGINE, "capacity", "--config", "cfg.json", "--results", results], cwd=d)
        out = json.load(open(os.path.join(d, results, "capacity", "latest", "capacity.json")))
        rates.append(out["max_rate"])
        probes.append(len(out["probes"]))
        walls.append(m.wall)
    return rates, probes, walls


def bench_capacity():
    section("9. capacity repeatability: the same config's capacity in 5 runs (knobsim, TTFT p90 <= 40 ms)")
    d = tempfile.mkdtemp(dir=WORK)
    for label, capacity in (("each probe 30 requests, one probe per rate", {"min_probe_s": 0, "repeats": 1}),
                            ("probes of at least 2 s, 3 repeats near the boundary", {"min_probe_s": 2, "repeats": 3})):
        rates, probes, walls = capacity_runs(d, capacity)
        mean = sum(rates) / len(rates)
        spread = max(abs(r - mean) / mean * 100 for r in rates)
        print("%s: %s requests/s; mean %.1f, largest deviation %.1f%%; %s probes, %.0f s per run" % (
            label, ", ".join("%.1f" % r for r in rates), mean, spread, "/".join(str(p) for p in probes),
            sum(walls) / len(walls)))


def bench_peers():
    section("10. peers: knobengine against AIPerf and GuideLLM (measuring), Optuna (searching)")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import peers
    peers.section(sys.modules[__name__])


SECTIONS = {"client": bench_client, "timing": bench_timing, "summarize": bench_summarize, "overhead": bench_overhead,
            "memory": bench_memory, "scale": bench_scale, "scale_out": bench_scale_out, "report": bench_report,
            "capacity": bench_capacity, "peers": bench_peers}

if __name__ == "__main__":
    if ONLY and ONLY not in SECTIONS:
        sys.exit("bench/run.py: --only takes one of %s" % ", ".join(SECTIONS))
    for name, f in SECTIONS.items():
        if ONLY in (None, name):
            f()
    shutil.rmtree(WORK, ignore_errors=True)
