#!/usr/bin/env python3
"""knobengine searching a real inference engine on this CPU: llama-cpp-python's
OpenAI-compatible server (scripts/install-peers.sh --llama) serving a tiny llama model
with random weights that bench/make_gguf.py writes (nothing is downloaded), over six
of its real knobs: threads, prompt batch size, context size, flash attention, and the
K and V cache types (a quantized V cache needs flash attention: llama.cpp refuses to
start without it, a real infeasible region).

  python3 bench/llama_cpu.py BUILD_DIR [--out DIR] [--strategy NAME] [--manual-repeats N]

1. knobengine measures the baseline (under nsys when it is installed), then searches
   with --strategy (default bayes), profiles the best and writes its report, all in
   OUT/results (default OUT: build-peers/llama-run).
2. A manual sweep, what a user would script by hand: every one of the 64 combinations
   started with the same argv, the same 16 prompts sent one at a time, streamed, each
   request timed with Python's clock, its p50; the prompts' token counts from the
   server's own tokenizer (POST /extras/tokenize).
3. The finalists (the manual sweep's best, the search's pick, the baseline) launched 5
   times each in turn: one launch's p50 moves by 20% or more on this shared machine, more
   than most knobs do.
4. Prints, and writes to OUT/llama_cpu.json: what the search found against the manual
   sweep's best, how far the two measurements of each configuration both ran are apart,
   each knob's effect, and which configurations could not start.
Not a test: its figures depend on the machine; docs/benchmarks.md has a run's."""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, os.environ.get("KNOB_PEERS_DIR", "build-peers"))  # as install-peers.sh resolves it
PYTHON = os.path.join(PEERS, "llama", "bin", "python")
MODEL = "tiny"
PROMPTS, MAX_TOKENS, WARMUP = 16, 32, 2
CONFIRM = 5  # launches of each finalist, round robin, to settle the comparison
# the knobs: (name, flag, value when on); off leaves the server's own default
KNOBS = [("threads_2", "--n_threads", "2"),     # default: half the cores (1 here)
         ("batch_64", "--n_batch", "64"),       # default 512: prompt tokens per forward pass
         ("ctx_512", "--n_ctx", "512"),         # default 2048
         ("flash_attn", "--flash_attn", "true"),
         ("k_cache_q8_0", "--type_k", "8"),     # ggml type 8 = q8_0; default f16
         ("v_cache_q8_0", "--type_v", "8")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompts():
    """16 prompts of 100 to 400 words, each word one token of the tiny model's vocabulary."""
    out = []
    for i in range(PROMPTS):
        n = 100 + (i * 37) % 300
        out.append(" ".join("w%d" % ((i * 131 + k * 17) % 1000) for k in range(n)))
    return out


def serve_argv(port):
    return [PYTHON, "-m", "llama_cpp.server", "--model", "tiny.gguf", "--model_alias", MODEL,
            "--host", "127.0.0.1", "--port", str(port)]


def write_inputs(out):
    subprocess.run([PYTHON, os.path.join(ROOT, "bench", "make_gguf.py"), os.path.join(out, "tiny.gguf")], check=True)
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for p in prompts():
            f.write(json.dumps({"prompt": p}) + "\n")
    cfg = {"serve_cmd": serve_argv("{port}"),
           "server": {"port": free_port(), "ready_path": "/v1/models", "ready_timeout_s": 120, "stop_timeout_s": 10},
           "workload": {"dataset": "data.jsonl", "model": MODEL, "concurrency": 1, "request_count": PROMPTS,
                        "max_new_tokens": MAX_TOKENS, "warmup_requests": WARMUP},
           "knobs": [{"name": n, "key": k, "on_value": v} for n, k, v in KNOBS],
           "nsys": {"trace": "nvtx,osrt"}}
    with open(os.path.join(out, "optimizations.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def knobengine(build, out, *args):
    env = dict(os.environ, KNOBENGINE_PROGRESS="1")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(build, "knobengine"), "--config", "optimizations.json", *args], cwd=out,
                       env=env, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("llama_cpu.py: knobengine %s exited %d (its stderr is above)" % (" ".join(args), r.returncode))
    return time.monotonic() - t0


# --- the manual sweep


def wait_ready(proc, port, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/models")
            ok = c.getresponse().status == 200
            c.close()
            if ok:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def timed_request(port, prompt):
    """One streamed completion, sent to last byte (ms), as a user's script times it."""
    body = json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0,
                       "seed": 1, "stream": True})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = c.getresponse()
    while resp.read(65536):
        pass
    ms = (time.perf_counter() - t0) * 1000
    c.close()
    if resp.status != 200:
        raise RuntimeError("HTTP %d" % resp.status)
    return ms


def token_counts(port):
    counts = []
    for p in prompts():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/extras/tokenize", json.dumps({"input": p}), {"Content-Type": "application/json"})
        counts.append(len(json.loads(c.getresponse().read())["tokens"]))
        c.close()
    return counts


def manual_one(out, mask, want_counts=False):
    """p50 latency (ms) of one combination, None when the server did not start."""
    port = free_port()
    argv = serve_argv(port)
    for i, (_, flag, value) in enumerate(KNOBS):
        if mask[i] == "1":
            argv += [flag, value]
    with open(os.path.join(out, "manual.log"), "a") as log:
        proc = subprocess.Popen(argv, cwd=out, stdout=log, stderr=log)
    try:
        if not wait_ready(proc, port):
            return None, None
        ps = prompts()
        for p in ps[:WARMUP]:
            timed_request(port, p)
        p50 = statistics.median(timed_request(port, p) for p in ps)
        return p50, token_counts(port) if want_counts else None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def confirm(out, masks):
    """Each mask launched CONFIRM times, in turn (drift on the shared machine falls on all):
    {mask: [p50 of each launch]}; what the single-launch sweep cannot tell apart."""
    runs = {m: [] for m in masks}
    for k in range(CONFIRM):
        for m in masks:
            runs[m].append(manual_one(out, m)[0])
            print("confirm %d/%d %s %s" % (k + 1, CONFIRM, m, "did not start" if runs[m][-1] is None
                                            else "%.1f ms" % runs[m][-1]), file=sys.stderr)
    return runs


def manual_sweep(out, repeats):
    masks = [format(m, "0%db" % len(KNOBS))[::-1] for m in range(1 << len(KNOBS))]
    results, counts = {}, None
    for k, mask in enumerate(masks):
        runs = []
        for r in range(repeats):
            p50, c = manual_one(out, mask, want_counts=counts is None)
            counts = counts or c
            runs.append(p50)
        results[mask] = None if None in runs else statistics.median(runs)
        print("manual %2d/%d %s %s" % (k + 1, len(masks), mask,
                                       "did not start" if results[mask] is None else "%.1f ms" % results[mask]),
              file=sys.stderr)
    return results, counts


# --- what the search found, against the manual sweep


def search_trials(out):
    with open(os.path.join(out, "results", "search", "latest", "summary.json")) as f:
        summary = json.load(f)
    trials = {}
    for t in summary["trials"]:
        p50 = (t.get("metrics") or {}).get("p50_latency_ms")
        trials[t["knob_mask"]] = p50 if t.get("valid") else None
    best = next(t["knob_mask"] for t in summary["trials"] if t["trial"] == summary["best_trial"])
    return trials, best


def knob_effects(manual):
    """Each knob's median ratio on/off over the pairs of started configurations."""
    effects = {}
    for i, (name, _, _) in enumerate(KNOBS):
        ratios = []
        for mask, v in manual.items():
            if mask[i] == "0" and v:
                on = manual.get(mask[:i] + "1" + mask[i + 1:])
                if on:
                    ratios.append(on / v)
        effects[name] = statistics.median(ratios) if ratios else None
    return effects


def spread_pct(xs):
    return (max(xs) - min(xs)) / statistics.median(xs) * 100


def summary_of(launches):
    """Median and spread of the launches that started (None when none did)."""
    ok = [x for x in launches if x is not None]
    return {"p50_ms": statistics.median(ok) if ok else None, "spread_pct": spread_pct(ok) if ok else None,
            "launches": launches, "did_not_start": len(launches) - len(ok)}


def findings(manual, trials, best, counts, walls, confirmed):
    started = {m: v for m, v in manual.items() if v is not None}
    manual_best = min(started, key=started.get)
    ranked = sorted(started, key=started.get)
    both = [m for m in trials if trials[m] is not None and manual.get(m) is not None]
    apart = sorted(abs(trials[m] - manual[m]) / manual[m] * 100 for m in both)
    failed_search = sorted(m for m in trials if trials[m] is None)
    return {
        "knobs": [n for n, _, _ in KNOBS], "masks": len(manual), "started": len(started),
        "could_not_start": sorted(m for m in manual if manual[m] is None),
        "manual_best": manual_best, "manual_best_p50_ms": started[manual_best],
        "search_launches": len(trials), "search_best": best, "search_best_p50_ms": trials.get(best),
        "search_best_manual_p50_ms": manual.get(best),
        "search_best_manual_rank": ranked.index(best) + 1 if best in started else None,
        "search_best_vs_manual_best_pct": (manual[best] / started[manual_best] - 1) * 100 if best in started else None,
        "baseline_manual_p50_ms": manual["0" * len(KNOBS)],
        "measured_by_both": len(both), "apart_pct_median": statistics.median(apart) if apart else None,
        "apart_pct_max": apart[-1] if apart else None,
        "search_could_not_start": failed_search,
        "confirmed": {m: summary_of(v) for m, v in confirmed.items()},
        "knob_effect_on_over_off": knob_effects(manual),
        "prompt_tokens": counts, "prompt_words": [len(p.split()) for p in prompts()], "wall_s": walls,
    }


def fmt(v, pattern):
    return pattern % v if v is not None else "n/a"


def print_findings(f):
    print("real CPU engine: llama-cpp-python's server, a tiny random-weight llama (8 layers, 512 wide, f16),")
    print("16 prompts one at a time, 32 tokens each; objective p50 end-to-end latency")
    print("prompt tokens by the server's own tokenizer: %s (words + <s>: %s)" % (
        "/".join(str(c) for c in f["prompt_tokens"][:4]) + "/...",
        all(c == w + 1 for c, w in zip(f["prompt_tokens"], f["prompt_words"]))))
    print("manual sweep: %d of %d combinations started (%d could not: %s)" % (
        f["started"], f["masks"], len(f["could_not_start"]), ", ".join(f["could_not_start"][:4]) + ", ..."))
    print("  best %s at %.1f ms; baseline (all off) %.1f ms" % (f["manual_best"], f["manual_best_p50_ms"],
                                                            f["baseline_manual_p50_ms"]))
    rank = f["search_best_manual_rank"]
    print("search: %d launches, pick %s at %s ms (the manual sweep: %s ms, rank %s of %d, %s%% from its best)" % (
        f["search_launches"], f["search_best"], fmt(f["search_best_p50_ms"], "%.1f"),
        fmt(f["search_best_manual_p50_ms"], "%.1f"), fmt(rank, "%d"), f["started"],
        fmt(f["search_best_vs_manual_best_pct"], "%+.1f")))
    print("  the %d combinations both measured: %s%% apart at the median, %s%% at most" % (
        f["measured_by_both"], fmt(f["apart_pct_median"], "%.1f"), fmt(f["apart_pct_max"], "%.1f")))
    print("  the search's launches that could not start: %d (%s)" % (
        len(f["search_could_not_start"]), ", ".join(f["search_could_not_start"])))
    print("confirmed, %d launches each in turn (median p50, max-min spread):" % CONFIRM)
    for m, c in f["confirmed"].items():
        role = " and ".join(r for r, k in (("manual best", "manual_best"), ("search pick", "search_best"))
                            if f[k] == m) or "baseline"
        if c["p50_ms"] is None:
            print("  %s %-23s did not start in any launch" % (m, role))
            continue
        print("  %s %-23s %.1f ms, spread %.1f%%%s" % (m, role, c["p50_ms"], c["spread_pct"], (
            " (%d launches did not start)" % c["did_not_start"]) if c["did_not_start"] else ""))
    print("knob effects (median p50 on / off over started pairs): " + ", ".join(
        "%s x%.2f" % (k, v) for k, v in f["knob_effect_on_over_off"].items() if v))
    print("wall: baseline %.0f s, search %.0f s, manual sweep %.0f s, confirmation %.0f s" % tuple(
        f["wall_s"][k] for k in ("baseline", "search", "manual", "confirm")))


def main():
    ap = argparse.ArgumentParser(description="knobengine against a real CPU inference engine")
    ap.add_argument("build")
    ap.add_argument("--out", default=os.path.join(PEERS, "llama-run"))
    ap.add_argument("--strategy", default="bayes")
    ap.add_argument("--manual-repeats", type=int, default=1)
    args = ap.parse_args()
    if not os.access(PYTHON, os.X_OK):
        sys.exit("llama_cpu.py: %s is missing: run scripts/install-peers.sh --llama (or make bench-llama)" % PYTHON)
    build, out = os.path.abspath(args.build), os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    write_inputs(out)
    walls = {"baseline": knobengine(build, out), "search": knobengine(build, out, "--strategy", args.strategy)}
    t0 = time.monotonic()
    manual, counts = manual_sweep(out, args.manual_repeats)
    walls["manual"] = time.monotonic() - t0
    trials, best = search_trials(out)
    finalists = list(dict.fromkeys([min((m for m in manual if manual[m]), key=manual.get), best, "0" * len(KNOBS)]))
    t0 = time.monotonic()
    confirmed = confirm(out, finalists)
    walls["confirm"] = time.monotonic() - t0
    f = findings(manual, trials, best, counts, walls, confirmed)
    with open(os.path.join(out, "llama_cpu.json"), "w") as fh:
        json.dump(f, fh, indent=2)
    print_findings(f)
    print("files: %s (results/, llama_cpu.json, manual.log)" % out)


if __name__ == "__main__":
    main()
