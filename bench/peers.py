"""The tools users would pick instead, measured side by side with knobengine in one run
(bench/run.py's `peers` section; scripts/install-peers.sh installs them, pinned, into
virtual environments under build-peers/).

Clients: knobengine's replay (bench/scale_probe.lua), AIPerf and GuideLLM, each against
its own fresh knobsim at the same load, streaming completions of 8-word prompts with
`ignore_eos`. Every figure is taken the same way for every tool, from the server's side
where it can be: knobsim's --first-token-log dates each request's first byte on the
wall clock and gives its own TTFT.
  a. CPU per request: the client process tree's CPU (wait4, which counts the children it
     reaped) over two closed-loop runs of 2,000 and 6,000 requests at concurrency 64
     against a zero-latency knobsim, their difference over 4,000 requests (start-up and
     tokenizer loading cancel).
  b. the highest rate it sustains: the larger run's requests per second as the server
     saw them arrive (the middle 80% of arrivals, so ramp-up and drain are left out).
  c. open-loop send lateness at 1,000 req/s, constant arrivals, 5,000 requests: each
     arrival minus its slot on the ideal schedule (t0 + i / rate, t0 the offset that
     makes the earliest request on time), p50 / p99 / max.
  d. TTFT per request against the server's own: concurrency 1, fixed TTFT 20 ms and
     TPOT 10 ms, 8 tokens, 100 requests; each request paired with the server's row whose
     first byte came nearest its start, client minus server, p50 / p99.
Search: bench/search_efficiency.lua --launches (knobengine bayes and coord_descent) and
bench/optuna_landscapes.py (Optuna TPE and GP) on the same 100 seeded landscapes of 10
on/off knobs: launches until the pick is within 2% of the true optimum."""
import csv
import json
import os
import shutil
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, os.environ.get("KNOB_PEERS_DIR", "build-peers"))  # as install-peers.sh resolves it
WORDS = " ".join("w%d" % i for i in range(1, 8))
SATURATION = (2000, 6000)
OPEN_RATE, OPEN_REQUESTS = 1000, 5000
TTFT_REQUESTS = 100
SEARCH_SEEDS, SEARCH_N, SEARCH_BUDGET = 100, 10, 64


def peer(venv, program):
    path = os.path.join(PEERS, venv, "bin", program)
    return path if os.access(path, os.X_OK) else None


def tokenizer_dir(work):
    """A word-level tokenizer (w0..w999, one token each), written here: the peers need one
    and no hub is reachable; knobsim counts the same words as tokens."""
    out = os.path.join(work, "tokenizer")
    if not os.path.isdir(out):
        subprocess.run([peer("aiperf", "python"), os.path.join(ROOT, "bench", "make_tokenizer.py"), out], check=True)
    return out


def dataset(work, requests, max_tokens):
    """The prompts every peer replays, GuideLLM's JSON-lines layout: request i's prompt
    starts with a word of its own."""
    path = os.path.join(work, "prompts-%d-%d.jsonl" % (requests, max_tokens))
    with open(path, "w") as f:
        for i in range(requests):
            f.write(json.dumps({"prompt": "w%d %s" % (i % 1000, WORDS), "output_tokens_count": max_tokens}) + "\n")
    return path


# --- one run of each client: returns (Measured, per-request [(start_unix_s, ttft_ms)])


def run_knobengine(b, url, load, requests, max_tokens, work):
    mode, level = load
    csv_path = os.path.join(work, "knob-requests.csv")
    argv = [b.LUA_HOST, os.path.join(ROOT, "bench", "scale_probe.lua"), url, mode, str(level), str(requests),
            "1", str(max_tokens), "8", csv_path]
    m = b.run_measured(argv)
    with open(csv_path) as f:
        rows = [(int(r["request"]), float(r["ttft_ms"])) for r in csv.DictReader(f) if r["ttft_ms"]]
    return m, rows  # keyed by request index (the `user` field), not start time


def run_aiperf(b, url, load, requests, max_tokens, work):
    mode, level = load
    out = tempfile.mkdtemp(dir=work, prefix="aiperf-")
    argv = [peer("aiperf", "aiperf"), "profile", "-m", "m", "--url", url, "--endpoint-type", "completions",
            "--streaming", "--tokenizer", tokenizer_dir(work), "--request-count", str(requests),
            "--prompt-input-tokens-mean", "8", "--prompt-input-tokens-stddev", "0",
            "--prompt-output-tokens-mean", str(max_tokens), "--prompt-output-tokens-stddev", "0",
            "--extra-inputs", "ignore_eos:true", "--output-artifact-dir", out, "--ui-type", "none",
            "--random-seed", "1"]
    if mode == "closed":
        argv += ["--concurrency", str(level)]
    else:
        argv += ["--request-rate", str(level), "--arrival-pattern", "constant"]
    m = b.run_measured(argv, cwd=out)
    rows = []
    with open(os.path.join(out, "profile_export.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            ttft = r.get("metrics", {}).get("time_to_first_token")
            if ttft and ttft.get("unit") != "ms":
                raise ValueError("AIPerf's time_to_first_token is in %r, not ms" % ttft.get("unit"))
            if ttft:
                rows.append((r["metadata"]["request_start_ns"] / 1e9, float(ttft["value"])))
    return m, rows


def run_guidellm(b, url, load, requests, max_tokens, work):
    mode, level = load
    out = os.path.join(tempfile.mkdtemp(dir=work, prefix="guidellm-"), "benchmarks.json")
    profile = "kind=concurrent,streams=%d" % level if mode == "closed" else "kind=constant,rate=%d" % level
    argv = [peer("guidellm", "guidellm"), "run",
            "--backend", "kind=openai_http,target=%s,model=m,request_format=/v1/completions" % url,
            "--profile", profile, "--constraint", "kind=max_requests,count=%d" % requests,
            "--tokenizer", "kind=huggingface_auto,model=%s" % tokenizer_dir(work),
            "--data", "kind=json_file,path=%s" % dataset(work, requests, max_tokens),
            "--output", "kind=json,path=%s" % out, "--disable-console-interactive"]
    m = b.run_measured(argv, cwd=os.path.dirname(out))
    with open(out) as f:
        done = json.load(f)["benchmarks"][0]["requests"]["successful"]
    rows = [(r["request_start_time"], float(r["time_to_first_token_ms"])) for r in done
            if r.get("time_to_first_token_ms") is not None]
    return m, rows


# the versions are scripts/install-peers.sh's pins
CLIENTS = [("knobengine", run_knobengine, lambda: True),
           ("AIPerf 0.13.0", run_aiperf, lambda: peer("aiperf", "aiperf")),
           ("GuideLLM 0.8.1", run_guidellm, lambda: peer("guidellm", "guidellm"))]


def server_rows(path):
    """knobsim's --first-token-log: [(user, server TTFT ms, first byte unix s)], by arrival."""
    rows = []
    with open(path) as f:
        for line in f:
            user, us, arrived = line.strip().split(",")
            rows.append((user, float(us) / 1000, float(arrived) / 1e6))
    return sorted(rows, key=lambda r: r[2])


def measured(b, client, sim_args, load, requests, max_tokens, work):
    """One client run against its own knobsim: (Measured, client rows, server rows)."""
    log = os.path.join(work, "first-tokens-%d.csv" % len(os.listdir(work)))
    sim = b.Sim(*sim_args, "--first-token-log", log)
    try:
        url = sim.url() if client is run_knobengine else sim.url("")  # the peers take the base URL
        m, rows = client(b, url, load, requests, max_tokens, work)
    finally:
        sim.close()
    return m, rows, server_rows(log)


def sustained_rate(server):
    arrivals = [r[2] for r in server]
    lo, hi = len(arrivals) // 10, len(arrivals) - 1 - len(arrivals) // 10
    return (hi - lo) / (arrivals[hi] - arrivals[lo])


def lateness_ms(server, rate, sent):
    """Each arrival minus its slot on the ideal constant schedule, sorted (ms). Slots go by
    arrival order, so every request must have arrived (a missing one would shift the rest)."""
    if len(server) != sent:
        raise ValueError("%d of %d open-loop requests reached the server" % (len(server), sent))
    offsets = [r[2] - i / rate for i, r in enumerate(server)]
    t0 = min(offsets)
    return sorted((o - t0) * 1000 for o in offsets)


def ttft_added(name, rows, server):
    """Client TTFT minus the server's, request by request (ms, sorted)."""
    if name == "knobengine":  # its requests name themselves: pair by the `user` field
        by_user = {int(u): ttft for u, ttft, _ in server if u != "-"}
        return sorted(ttft - by_user[i] for i, ttft in rows if i in by_user)
    added, left = [], list(server)
    for start, ttft in rows:  # the server row whose first byte came nearest this start, once
        nearest = min(left, key=lambda r: abs(r[2] - start), default=None)
        if nearest and abs(nearest[2] - start) < 0.02:  # requests are 90 ms apart at concurrency 1
            added.append(ttft - nearest[1])
            left.remove(nearest)
    return sorted(added)


def client_figures(b, name, client, work):
    zero = ("--time-scale", "0")
    cpu = []
    for n in SATURATION:
        m, _, server = measured(b, client, zero, ("closed", 64), n, 1, work)
        cpu.append(m.cpu_s)
    fig = {"cpu_ms": (cpu[1] - cpu[0]) / (SATURATION[1] - SATURATION[0]) * 1000, "rate": sustained_rate(server)}
    _, _, server = measured(b, client, zero, ("constant", OPEN_RATE), OPEN_REQUESTS, 1, work)
    late = lateness_ms(server, OPEN_RATE, OPEN_REQUESTS)
    fig.update(late_p50=b.percentile(late, 50), late_p99=b.percentile(late, 99), late_max=late[-1],
               achieved=(len(server) - 1) / (server[-1][2] - server[0][2]))
    _, rows, server = measured(b, client, ("--fixed-ttft-ms", "20", "--fixed-tpot-ms", "10"), ("closed", 1),
                               TTFT_REQUESTS, 8, work)
    added = ttft_added(name, rows, server)
    fig.update(paired=len(added), ttft_p50=b.percentile(added, 50), ttft_p99=b.percentile(added, 99))
    return fig


def print_clients(b, work):
    print("a/b: closed loop, concurrency 64, zero-latency knobsim, 1 token: marginal client CPU per request")
    print("     (%d minus %d requests) and requests/s as the server saw them arrive; c: constant %d req/s," %
          (SATURATION[1], SATURATION[0], OPEN_RATE))
    print("     %d requests, server-side lateness against the ideal schedule; d: concurrency 1, TTFT 20 ms," % OPEN_REQUESTS)
    print("     TPOT 10 ms, 8 tokens: client TTFT minus knobsim's own, per request. (x N): the ratio to knobengine")
    print("%-15s %17s %17s %27s %10s %20s %7s" % ("client", "CPU ms/request", "sustained req/s",
                                                  "lateness p50 / p99 / max ms", "achieved", "TTFT added p50 / p99",
                                                  "paired"))
    base = None
    ratio = lambda key, f: "%.2f" % (f[key] / base[key]) if base and base[key] > 0 else "n/a"
    for name, client, available in CLIENTS:
        if not available():
            print("%-15s n/a (not installed: scripts/install-peers.sh)" % name)
            continue
        try:
            f = client_figures(b, name, client, work)
        except (RuntimeError, OSError, KeyError, ValueError, IndexError) as e:
            print("%-15s n/a (%s)" % (name, str(e).splitlines()[0][:100] if str(e) else type(e).__name__))
            continue
        if name == "knobengine":
            base = f  # the ratios are to knobengine's own figures, n/a when it has none
        print("%-15s %8.3f (x%6s) %8.0f (x%5s) %7.3f / %6.3f / %7.3f (x%5s) %8.0f/s %9.3f / %7.3f ms %3d/%d" % (
            name, f["cpu_ms"], ratio("cpu_ms", f), f["rate"], ratio("rate", f), f["late_p50"], f["late_p99"],
            f["late_max"], ratio("late_p99", f), f["achieved"], f["ttft_p50"], f["ttft_p99"], f["paired"],
            TTFT_REQUESTS))
    print("%-15s n/a (vllm==0.34.0 does not install from the index this machine reaches: it pins "
          "flashinfer-python==0.7.3, which is not there)" % "vllm bench serve")


def search_rows(b):
    """(method, reached per seed, launches per seed) for knobengine's strategies and Optuna's."""
    rows = []
    lua = b.run_measured([b.LUA_HOST, os.path.join(ROOT, "bench", "search_efficiency.lua"), "--launches",
                          str(SEARCH_SEEDS), str(SEARCH_N)], cwd=os.path.join(ROOT, "tests", "lua"))
    rows += [json.loads(line) for line in lua.out.splitlines() if line.strip()]
    python = peer("optuna", "python")
    if python:
        opt = b.run_measured([python, os.path.join(ROOT, "bench", "optuna_landscapes.py"), b.LUA_HOST,
                              str(SEARCH_SEEDS), str(SEARCH_N), str(SEARCH_BUDGET)], cwd=os.path.join(ROOT, "tests", "lua"))
        rows += [json.loads(line) for line in opt.out.splitlines() if line.strip()]
    else:
        rows.append({"method": "optuna", "missing": True})
    return rows


def print_search(b):
    print("\nsearch: %d seeded landscapes of %d on/off knobs (2%% noise, a quarter of masks fail to start);" %
          (SEARCH_SEEDS, SEARCH_N))
    print("launches until the pick (lowest measured so far) is within 2%% of the true optimum; Optuna gets %d "
          "trials and no stopping rule" % SEARCH_BUDGET)
    print("%-26s %18s %10s %12s %16s %14s" % ("method", "launches to 2%", "reached", "distinct", "search launches",
                                                "relaunched"))
    base = None
    for r in search_rows(b):
        if r.get("missing"):
            print("%-26s n/a (not installed: scripts/install-peers.sh)" % r["method"])
            continue
        got = sorted(x for x in r["reached"] if x is not None)
        med = statistics.median(sorted(x if x is not None else float("inf") for x in r["reached"]))
        base = base or med
        relaunch = ("%.0f median" % statistics.median(r["relaunched"])) if "relaunched" in r else "-"
        # distinct configurations launched by the time the pick was within 2% (Optuna repeats some)
        distinct = statistics.median(sorted(x if x is not None else float("inf") for x in r.get("distinct", r["reached"])))
        print("%-26s %9.1f (x%4.2f) %9.0f%% %12.1f %16.0f %14s" % (r["method"], med, med / base,
                                                                len(got) / len(r["reached"]) * 100, distinct,
                                                                statistics.median(r["launches"]), relaunch))


def section(b):
    work = tempfile.mkdtemp(dir=b.WORK, prefix="peers-")
    print_clients(b, work)
    print_search(b)
    shutil.rmtree(work, ignore_errors=True)
