"""The GPU end-to-end check: one command on a machine with an NVIDIA GPU, PyTorch with
CUDA, aiohttp and Nsight Systems. Never part of CI; elsewhere it says why it skips.

    python3 tests/gpu/run.py [--knobengine PATH] [--nsys PATH] [--work DIR]
                             [--vllm-model PATH]

1. Baseline and a brute-force search over the PyTorch server of server.py (three knobs
   with real effects: fused attention, bf16, batching), under real nsys.
2. `knobengine summarize` compared number for number with `nsys stats` on the fresh
   exports (compare_stats.py), and both timed.
3. The profiling overhead of the baseline and the best, and trace sizes at full
   detail and with reduced detail (nsys.capture_requests, nsys.cuda_graph_trace graph).
4. With --vllm-model and vllm importable: the same search against `vllm serve`.

Prints a table and writes WORK/figures.json. Exit 0 when every check passed (or the
machine cannot run it: a line starting with SKIPPED says why), 1 otherwise."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import compare_stats  # noqa: E402


def skip(why):
    print("SKIPPED: " + why)
    sys.exit(0)


def requirements(args):
    if not shutil.which("nvidia-smi"):
        skip("no NVIDIA GPU here (nvidia-smi not found)")
    probe = "import torch, aiohttp, sys; sys.exit(0 if torch.cuda.is_available() else 3)"
    rc = subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode
    if rc != 0:
        skip("PyTorch with CUDA and aiohttp are needed (%s)" % ("no GPU visible to torch" if rc == 3 else "not importable"))
    if not args.nsys or not os.path.exists(args.nsys):
        skip("Nsight Systems not found (put nsys on PATH or pass --nsys)")
    if not os.access(args.knobengine, os.X_OK):
        sys.exit("knobengine not found at %s (build it, or pass --knobengine)" % args.knobengine)


def dataset(path, n=48):
    with open(path, "w") as f:
        for i in range(n):
            words = " ".join("w%d" % ((i * 31 + k) % 997) for k in range(40 + 30 * (i % 4)))
            f.write(json.dumps({"prompt": "system prompt " * 20 + words}) + "\n")


def pytorch_config(args, port, **nsys):
    return {
        "serve_cmd": [sys.executable, os.path.join(HERE, "server.py"), "--port", "{port}"],
        "server": {"port": port, "ready_timeout_s": 300, "stop_timeout_s": 30},
        "workload": {"dataset": "data.jsonl", "model": "random-12l", "concurrency": 8, "request_count": 48,
                     "max_new_tokens": 32, "warmup_requests": 8},
        "knobs": [{"name": "fused_attention", "flag": "--fused-attention"}, {"name": "bf16", "flag": "--bf16"},
                  {"name": "batching", "key": "--max-batch", "on_value": "16"}],
        "nsys": dict({"bin": args.nsys, "trace": "cuda,nvtx,osrt", "timeout_s": 1800}, **nsys),
    }


def vllm_config(args, port):
    return {
        "serve_cmd": ["vllm", "serve", args.vllm_model, "--port", "{port}", "--gpu-memory-utilization", "0.5"],
        "server": {"port": port, "ready_timeout_s": 900},
        "workload": {"dataset": "data.jsonl", "model": args.vllm_model, "concurrency": 8, "request_count": 48,
                     "max_new_tokens": 32},
        "knobs": [{"name": "prefix_caching", "flag": "--enable-prefix-caching"},
                  {"name": "eager", "flag": "--enforce-eager"}],
        "nsys": {"bin": args.nsys, "trace": "cuda,nvtx,osrt", "timeout_s": 1800},
    }


def engine(args, workdir, *extra):
    t0 = time.monotonic()
    r = subprocess.run([args.knobengine, "--config", "cfg.json", *extra], cwd=workdir, capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit("knobengine failed (exit %d) in %s" % (r.returncode, workdir))
    return r.stdout, time.monotonic() - t0


def run_case(args, name, cfg):
    """Baseline + search of one config in WORK/name; returns its figures."""
    d = os.path.join(args.work, name)
    os.makedirs(d, exist_ok=True)
    dataset(os.path.join(d, "data.jsonl"))
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    _, baseline_s = engine(args, d)
    table, search_s = engine(args, d)
    latest = os.path.join(d, "results", "search", "latest")
    load = lambda *p: json.load(open(os.path.join(*p)))
    out = {"baseline_s": baseline_s, "search_s": search_s, "table": table,
           "overhead": {"baseline": load(d, "results", "baseline", "profiling_overhead.json"),
                        "best": load(latest, "best", "profiling_overhead.json")},
           "compare": {}}
    for side, path in (("baseline", os.path.join(d, "results", "baseline")), ("best", os.path.join(latest, "best"))):
        sqlite = os.path.join(path, "trace.sqlite")
        if os.path.exists(sqlite):
            out["compare"][side] = compare_stats.compare(args.knobengine, args.nsys, sqlite)
    return out


def reduced_case(args, port):
    """Baseline only, with reduced detail: the first 8 measured requests, graph-level."""
    d = os.path.join(args.work, "reduced")
    os.makedirs(d, exist_ok=True)
    dataset(os.path.join(d, "data.jsonl"))
    cfg = pytorch_config(args, port, capture_requests=8, cuda_graph_trace="graph")
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    engine(args, d)
    return json.load(open(os.path.join(d, "results", "baseline", "profiling_overhead.json")))


def report(figures):
    ok = True
    for name, case in figures["cases"].items():
        print("== %s (baseline %.0f s, search %.0f s)" % (name, case["baseline_s"], case["search_s"]))
        print(case["table"].rstrip())
        for side, o in case["overhead"].items():
            print("overhead %s: p50 %s ms unprofiled, %s ms profiled (%s%%); trace %s bytes (.nsys-rep), %s (.sqlite)"
                  % (side, o["unprofiled_p50_latency_ms"], o["profiled_p50_latency_ms"], o["overhead_percent"],
                     o["trace_bytes"]["nsys_rep"], o["trace_bytes"]["sqlite"]))
        for side, c in case["compare"].items():
            print("summarize vs nsys stats (%s): %d kernels, %d launches, %d NVTX ranges; summarize %.2f s, "
                  "nsys stats %s; %s" % (side, c["kernels"], c["kernel_launches"], c["nvtx_ranges"], c["summarize_s"],
                                         {k: round(v, 2) for k, v in c["nsys_stats_s"].items()},
                                         "every number equal" if not c["problems"] else "DIFFERENCES:"))
            for p in c["problems"]:
                print("  " + p)
                ok = False
    if "reduced" in figures:
        r = figures["reduced"]
        print("reduced detail (capture_requests 8, cuda_graph_trace graph): trace %s bytes (.nsys-rep), %s (.sqlite), "
              "overhead %s%%" % (r["trace_bytes"]["nsys_rep"], r["trace_bytes"]["sqlite"], r["overhead_percent"]))
    return ok


def main():
    p = argparse.ArgumentParser(description="knobengine's end-to-end check on a GPU")
    p.add_argument("--knobengine", default=os.environ.get("KNOBENGINE", os.path.join(ROOT, "build", "knobengine")))
    p.add_argument("--nsys", default=os.environ.get("NSYS", shutil.which("nsys") or ""))
    p.add_argument("--work", default=os.path.join(ROOT, "results", "gpu-check"))
    p.add_argument("--vllm-model", default="")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args()
    requirements(args)
    os.makedirs(args.work, exist_ok=True)
    figures = {"gpu": subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                     capture_output=True, text=True).stdout.strip(), "cases": {}}
    figures["cases"]["pytorch"] = run_case(args, "pytorch", pytorch_config(args, args.port))
    figures["reduced"] = reduced_case(args, args.port)
    if args.vllm_model:
        if subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True).returncode == 0:
            figures["cases"]["vllm"] = run_case(args, "vllm", vllm_config(args, args.port))
        else:
            print("vllm is not importable: the vllm case is skipped")
    with open(os.path.join(args.work, "figures.json"), "w") as f:
        json.dump(figures, f, indent=2)
    ok = report(figures)
    print("figures: %s" % os.path.join(args.work, "figures.json"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
