#!/usr/bin/env python3
"""A finished search run of N trials, inflated from a real one, for timing
`knobengine report` at scale (bench/run.py, tests/e2e/test_report.py).

Usage: make_run.py TEMPLATE_RESULTS OUT_RESULTS N [--seed S]

TEMPLATE_RESULTS holds a real baseline and search (results/baseline/ and
results/search/latest/ of any tiny search). OUT_RESULTS gets a copy of its baseline and
a run directory whose summary.json lists N trials of ceil(log2 N) on/off knobs (every
mask from 0 up, as bruteforce sweeps them), each trial the template's first with its
mask, argv, knobs and metrics changed: latencies scaled by the knobs' effects and a
little noise, throughput the inverse, 2% of the trials failed to start. The file has
the layout knobengine writes (sorted keys, 2-space indent); trials are written one at a
time so N can be large. Only the best's trial directory is created (the report reads
its requests.csv, nothing of the others). Prints the run directory."""
import copy
import json
import math
import os
import random
import shutil
import sys

LATENCY_KEYS = ("p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "mean_latency_ms")
RATE_KEYS = ("tokens_per_s", "requests_per_s")
SKIPPED = ("summary.json", "summary.csv", "report.md", "report.html", "plots", "trials")


def indented(value, pad):
    """value as knobengine's JSON at the given indent (strings never hold a raw newline)."""
    return json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n" + pad)


def knobs_of(k):
    return [{"flag": "--knob-%02d" % i, "index": i, "name": "knob_%02d" % i} for i in range(k)]


def mask_of(i, knobs):
    return format(i, "0%db" % len(knobs))


def draws(n, knobs, seed):
    """Per trial: None (it failed to start) or (latency factor, throughput noise)."""
    rng = random.Random(seed)
    effects = [rng.uniform(0.8, 1.25) for _ in knobs]
    for i in range(n):
        if rng.random() < 0.02:
            yield None
            continue
        on = [e for e, c in zip(effects, mask_of(i, knobs)) if c == "1"]
        yield math.prod(on) * (1 + 0.05 * rng.gauss(0, 1)), 1 + 0.02 * rng.gauss(0, 1)


def trial_of(template, i, knobs, drawn):
    mask = mask_of(i, knobs)
    on = [k for k, c in zip(knobs, mask) if c == "1"]
    t = copy.deepcopy(template)
    t["trial"], t["knob_mask"] = i, mask
    t["log"] = "trials/%03d-%s/logs.txt" % (i, mask)
    t["config"]["argv"] = template["config"]["argv"] + [k["flag"] for k in on]
    t["config"]["command"] = " ".join(t["config"]["argv"])
    t["config"]["knob_mask"], t["config"]["knobs_on"] = mask, [k["name"] for k in on]
    if drawn is None:
        t.update(valid=False, ok=False, metrics={}, error_rate=1, error="the server exited during startup (status 1)")
        return t
    factor, noise = drawn
    for key in LATENCY_KEYS:
        t["metrics"][key] = template["metrics"][key] * factor
    for key in RATE_KEYS:
        t["metrics"][key] = template["metrics"][key] / factor * noise
    return t


def csv_row(t, base_p50):
    m = t["metrics"] if t["valid"] else {}
    num = lambda v, d=3: "%.*f" % (d, v) if isinstance(v, (int, float)) else "na"
    delta = "%+.3f" % (m["p50_latency_ms"] - base_p50) if m else "na"
    return "%d,%s,%s,%s,%s,%s,%s\n" % (t["trial"], t["knob_mask"], num(m.get("p50_latency_ms")),
                                       num(m.get("p95_latency_ms")), num(m.get("tokens_per_s")),
                                       num(t["error_rate"], 4), delta)


def write_summary(run, summary, template, n, seed):
    """summary.json and summary.csv, the trials streamed."""
    knobs = summary["knobs"]
    base_p50 = summary["baseline"]["metrics"]["p50_latency_ms"]
    with open(os.path.join(run, "summary.json"), "w") as f, open(os.path.join(run, "summary.csv"), "w") as c:
        c.write("trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms\n")
        f.write("{\n")
        keys = sorted(list(summary) + ["trials"])
        for j, key in enumerate(keys):
            f.write('  "%s": ' % key)
            if key != "trials":
                f.write(indented(summary[key], "  "))
            else:
                f.write("[\n")
                for i, drawn in enumerate(draws(n, knobs, seed)):
                    t = trial_of(template, i, knobs, drawn)
                    f.write("    " + indented(t, "    ") + (",\n" if i < n - 1 else "\n"))
                    c.write(csv_row(t, base_p50))
                f.write("  ]")
            f.write(",\n" if j < len(keys) - 1 else "\n")
        f.write("}\n")


def make(template_results, out_results, n, seed=1):
    template_run = os.path.realpath(os.path.join(template_results, "search", "latest"))
    with open(os.path.join(template_run, "summary.json")) as f:
        summary = json.load(f)
    template = summary.pop("trials")[0]
    template["valid"], template["ok"], template["error"], template["resumed"] = True, True, None, False
    shutil.copytree(os.path.join(template_results, "baseline"), os.path.join(out_results, "baseline"))
    run = os.path.join(out_results, "search", "20260101T000000Z")
    os.makedirs(run)
    for name in os.listdir(template_run):
        if name not in SKIPPED:
            src = os.path.join(template_run, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(run, name))
    os.symlink(os.path.basename(run), os.path.join(out_results, "search", "latest"))
    k = max(1, math.ceil(math.log2(max(n, 2))))
    summary.update(knobs=knobs_of(k), trial_count=n, launches=n, mask_space=2 ** k, strategy="bruteforce")
    # best_trial comes before the trials in the file: the draws are made once to find it
    factors = [(d[0], i) for i, d in enumerate(draws(n, summary["knobs"], seed)) if d]
    best = min(factors)[1] if factors else None
    summary["best_trial"] = best
    write_summary(run, summary, template, n, seed)
    if best is not None:
        trial_dir = os.path.join(run, "trials", "%03d-%s" % (best, mask_of(best, summary["knobs"])))
        os.makedirs(trial_dir)
        shutil.copy(os.path.join(template_results, "baseline", "requests.csv"), os.path.join(trial_dir, "requests.csv"))
    return run


def main():
    args = sys.argv[1:]
    seed = 1
    if "--seed" in args:
        k = args.index("--seed")
        seed = int(args[k + 1])
        del args[k:k + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    print(make(args[0], args[1], int(args[2]), seed))


if __name__ == "__main__":
    main()
