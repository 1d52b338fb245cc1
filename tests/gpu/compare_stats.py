"""Compares `knobengine summarize` with `nsys stats` on one export, number for number:
kernels (cuda_gpu_kern_sum), GPU memory operations (cuda_gpu_mem_time_sum) and NVTX
ranges (nvtx_sum); older nsys names the reports gpukernsum, gpumemtimesum, nvtxsum.
Also times both tools.

Usage: compare_stats.py KNOBENGINE NSYS TRACE.sqlite  (exit 1 on any difference)
Used by tests/gpu/run.py; works on any export."""
import csv
import io
import json
import subprocess
import sys
import time

REPORTS = {"kernels": ["cuda_gpu_kern_sum", "gpukernsum"], "memory": ["cuda_gpu_mem_time_sum", "gpumemtimesum"],
           "nvtx": ["nvtx_sum", "nvtxsum"]}


def stats(nsys, names, sqlite):
    """Rows of the first report name this nsys knows, and the seconds it took."""
    for name in names:
        t0 = time.monotonic()
        r = subprocess.run([nsys, "stats", "--report", name, "--format", "csv", "--force-export=false", sqlite],
                           capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        if "Report '%s' could not be found" % name in r.stderr + r.stdout or "Unknown report" in r.stderr:
            continue
        lines = [l for l in r.stdout.splitlines() if l and not l.startswith(("Processing", "NOTICE", "SKIPPED"))
                 and "does not contain" not in l]
        start = next((i for i, l in enumerate(lines) if l.startswith(('"', "Time", "Range", "Operation"))), 0)
        return list(csv.DictReader(io.StringIO("\n".join(lines[start:])))), seconds
    return [], 0.0


def compare(knobengine, nsys, sqlite):
    t0 = time.monotonic()
    out = subprocess.run([knobengine, "summarize", sqlite], capture_output=True, text=True, check=True).stdout
    summarize_s = time.monotonic() - t0
    s = json.loads(out)
    problems, seconds = [], {}
    kern, seconds["kernels"] = stats(nsys, REPORTS["kernels"], sqlite)
    total = sum(int(r["Total Time (ns)"]) for r in kern)
    if round((s["kernel_ms"] or 0) * 1e6) != total:
        problems.append("kernel total: summarize %s ns, nsys stats %d ns" % (round((s["kernel_ms"] or 0) * 1e6), total))
    by_name = {}
    for r in kern:
        by_name[r["Name"]] = by_name.get(r["Name"], 0) + int(r["Total Time (ns)"])
    for k in s["top_kernels"]:
        if k.get("graph"):
            continue  # whole-graph records: nsys stats leaves them out
        if round(k["total_ms"] * 1e6) != by_name.get(k["name"]):
            problems.append("kernel %s: summarize %d ns, nsys stats %s" % (k["name"], round(k["total_ms"] * 1e6), by_name.get(k["name"])))
    mem, seconds["memory"] = stats(nsys, REPORTS["memory"], sqlite)
    theirs = {r["Operation"]: int(r["Total Time (ns)"]) for r in mem}
    ours = {"[CUDA memcpy %s]" % k: round(v["ms"] * 1e6) for k, v in (s["memcpy_by_kind"] or {}).items()}
    if s["memset_count"]:
        ours["[CUDA memset]"] = round(s["memset_ms"] * 1e6)
    for op in sorted(set(ours) | set(theirs)):
        if ours.get(op) != theirs.get(op):
            problems.append("%s: summarize %s ns, nsys stats %s ns" % (op, ours.get(op), theirs.get(op)))
    nvtx, seconds["nvtx"] = stats(nsys, REPORTS["nvtx"], sqlite)
    theirs = {(r["Range"].lstrip(":"), r["Style"]): (int(r["Total Time (ns)"]), int(r["Instances"])) for r in nvtx}
    ours = {(r["name"], r["style"]): (round(r["total_ms"] * 1e6), r["count"]) for r in (s["nvtx_ranges"] or [])}
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            problems.append("NVTX %s: summarize %s, nsys stats %s" % (key, ours.get(key), theirs.get(key)))
    return {"kernels": len(kern), "kernel_launches": s["kernel_count"], "nvtx_ranges": len(ours),
            "summarize_s": summarize_s, "nsys_stats_s": seconds, "problems": problems}


def main():
    result = compare(*sys.argv[1:4])
    print(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
