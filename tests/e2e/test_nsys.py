"""Real Nsight Systems: the baseline and the best are profiled (session capture and the
process fallback), the workload's NVTX phases and OS-runtime waits are found, sweep
trials are never profiled, every number agrees with `nsys stats`, and GPU metrics are
asked for as the installed nsys spells them (through a stand-in that logs each command)."""
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest

import trace_fixtures
from common import Workspace, KNOBENGINE, SHARED_TRACES, load_json, servers_on, wait_until

NSYS = shutil.which("nsys")
if __name__ != "__main__" and not NSYS:
    print("SKIPPED: nsys is not installed (scripts/install-deps.sh --nsys installs it)", file=sys.stderr)
    sys.exit(77)  # ctest reports the test as skipped


def nsys_stats(report, sqlite):
    """Rows of an `nsys stats` report as dicts (empty when the trace lacks the data)."""
    r = subprocess.run([NSYS, "stats", "--report", report, "--format", "csv", sqlite],
                       capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stdout.splitlines() if l and not l.startswith("Processing") and "does not contain" not in l]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


class Profiling(Workspace):
    def nsys_config(self, **nsys):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.2"  # long enough steps to see
        cfg["nsys"] = dict({"bin": NSYS, "trace": "nvtx,osrt", "timeout_s": 120}, **nsys)
        return cfg

    def check_profiled(self, d):
        for f in ("trace.nsys-rep", "trace.sqlite", "trace_summary.json", "nvtx_phases.json",
                  "profiled_client_metrics.json", "profiled_logs.txt", "profiled_requests.csv", "profiling_overhead.json"):
            self.assertTrue(os.path.exists(os.path.join(d, f)), f)
        self.assertFalse(os.path.exists(os.path.join(d, "nsys-tmp")))  # the capture's scratch space is gone
        overhead = load_json(os.path.join(d, "profiling_overhead.json"))
        self.assertIsInstance(overhead["overhead_percent"], float)
        self.assertGreater(overhead["trace_bytes"]["nsys_rep"], 0)
        self.assertEqual(overhead["capture"]["mode"], load_json(self.path("cfg.json"))["nsys"].get("capture", "session"))
        phases = load_json(os.path.join(d, "nvtx_phases.json"))
        for name in ("get_batch", "prefill", "decode"):
            self.assertIsNotNone(phases[name], name)
            self.assertGreater(phases[name]["count"], 0)
        summary = load_json(os.path.join(d, "trace_summary.json"))
        self.assertGreater(summary["osrt_wait_ms"], 0)
        # the tables as files: every NVTX range, every kernel (none on this CPU-only trace)
        with open(os.path.join(d, "nvtx.csv")) as f:
            nvtx = list(csv.DictReader(f))
        self.assertEqual([(r["name"], int(r["calls"])) for r in nvtx], [(r["name"], r["count"]) for r in summary["nvtx_ranges"]])
        with open(os.path.join(d, "kernels.csv")) as f:
            self.assertEqual(f.readline(), "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent\n")
        self.assertIn("ppoll", [w["name"] for w in summary["osrt_top_waits"]])
        return phases, summary

    def test_reprofile_baseline_takes_only_the_trace(self):
        """A baseline whose profile failed (nsys missing then) gets its trace with
        --reprofile-baseline; its client metrics, requests and log stay as they were."""
        cfg = self.nsys_config()
        self.write_config(dict(cfg, nsys=dict(cfg["nsys"], bin="nsys-not-installed-here")))
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        base = self.path("results", "baseline")
        kept = {f: open(os.path.join(base, f), "rb").read() for f in ("client_metrics.json", "requests.csv", "logs.txt", "config.json")}
        self.assertFalse(load_json(os.path.join(base, "trace_summary.json"))["ok"])
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--reprofile-baseline")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.check_profiled(base)
        self.assertTrue(load_json(os.path.join(base, "trace_summary.json"))["ok"])
        for f, data in kept.items():
            self.assertEqual(open(os.path.join(base, f), "rb").read(), data, f)
        self.assertEqual(load_json(os.path.join(base, "profiling_overhead.json"))["unprofiled_p50_latency_ms"],
                         load_json(os.path.join(base, "client_metrics.json"))["p50_latency_ms"])
        self.assertEqual([n for n in os.listdir(self.path("results")) if "tmp" in n or ".old." in n], [])
        r = self.run_engine("--config", "cfg.json")  # the search has nothing to say about the baseline
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("has no trace", r.stderr)

    def test_profile_command_measures_and_profiles_one_config(self):
        """knobengine profile: a config without knobs, its plain run and its profiled
        launch as the baseline's, and a report whose stage table is the trace's phases."""
        cfg = self.nsys_config()
        del cfg["knobs"]
        self.write_config(cfg)
        r = self.run_engine("profile", "--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("PROFILE_DONE,results/profile/"), r.stdout)
        run = os.path.realpath(self.path("results", "profile", "latest"))
        phases, _ = self.check_profiled(run)
        self.assertEqual(load_json(os.path.join(run, "profiling_overhead.json"))["unprofiled_p50_latency_ms"],
                         load_json(os.path.join(run, "client_metrics.json"))["p50_latency_ms"])
        with open(os.path.join(run, "report.md")) as f:
            md = f.read()
        self.assertIn("| decode | %.3f | %d |" % (phases["decode"]["total_ms"], phases["decode"]["count"]), md)

    def test_session_capture_baseline_and_best(self):
        self.write_config(self.nsys_config())
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        phases, _ = self.check_profiled(self.path("results", "baseline"))
        # only the measured requests: 12 requests of 8 tokens need at least 8 decode steps;
        # the model load and the warmup are outside the window
        self.assertGreaterEqual(phases["decode"]["count"], 8)
        base = self.path("results", "baseline")
        # the client metrics are the unprofiled run's; the profiled run's are kept beside
        self.assertNotEqual(load_json(os.path.join(base, "client_metrics.json"))["p50_latency_ms"],
                            load_json(os.path.join(base, "profiled_client_metrics.json"))["p50_latency_ms"])
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        block = lines[lines.index("BEST_VS_BASELINE"):]
        for key in ("nvtx_get_batch_ms", "nvtx_prefill_ms", "nvtx_decode_ms", "osrt_wait_ms"):
            line = next(l for l in block if l.startswith(key + ":"))
            self.assertRegex(line, r"^%s: \d+\.\d{3} -> \d+\.\d{3} \([+-]\d+\.\d{3}\)$" % key)
        self.assertIn("gpu_compute_ms: na -> na (na)", block)  # no GPU here
        latest = self.path("results", "search", "latest")
        self.check_profiled(os.path.join(latest, "best"))
        for d in os.listdir(os.path.join(latest, "trials")):  # sweep trials never run nsys
            self.assertEqual(sorted(os.listdir(os.path.join(latest, "trials", d))), ["logs.txt", "requests.csv", "server_metrics.csv"])
        summary = load_json(os.path.join(latest, "summary.json"))
        for side in ("baseline", "best"):
            self.assertIsInstance(summary["profiling_overhead"][side]["overhead_ms"], float)
        self.assertNotIn("QdstrmImporter", r.stderr)

    def test_process_capture(self):
        self.write_config(self.nsys_config(capture="process"))
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.check_profiled(self.path("results", "baseline"))

    def test_nsys_that_fails_loses_only_the_trace(self):
        """Client metrics come from the unprofiled run: a profile that fails (nsys
        refuses an option and never starts the server) leaves a complete baseline."""
        self.write_config(self.nsys_config(extra_args=["--no-such-nsys-option=1"]))
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertIn("profiling the baseline failed", r.stderr)
        base = self.path("results", "baseline")
        self.assertEqual(load_json(os.path.join(base, "client_metrics.json"))["error_rate"], 0)
        trace = load_json(os.path.join(base, "trace_summary.json"))
        self.assertEqual((trace["ok"], trace["gpu_compute_ms"]), (False, None))
        self.assertIn("server exited before it was ready", trace["reason"])

    def test_baseline_is_never_measured_under_the_profiler(self):
        """A server five times slower under nsys: the baseline's p50 is the unprofiled
        one (it matches the all-OFF sweep trial), and the overhead file shows the slowdown."""
        cfg = self.nsys_config()
        cfg["serve_cmd"] += ["--slow-under-profiler", "5"]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        overhead = load_json(self.path("results", "baseline", "profiling_overhead.json"))
        self.assertGreater(overhead["overhead_percent"], 150)
        self.assertIn("profiling slowed the baseline by", r.stderr)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        base_p50 = summary["baseline"]["metrics"]["p50_latency_ms"]
        trial0 = summary["trials"][0]
        self.assertEqual(trial0["knob_mask"], "00")
        self.assertLess(abs(base_p50 - trial0["metrics"]["p50_latency_ms"]) / trial0["metrics"]["p50_latency_ms"], 0.2)
        self.assertGreater(summary["profiling_overhead"]["best"]["overhead_percent"], 150)

    def test_capture_of_the_first_requests_only(self):
        cfg = self.nsys_config(capture_requests=3)
        cfg["workload"]["request_count"] = 24
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        base = self.path("results", "baseline")
        trace = load_json(os.path.join(base, "trace_summary.json"))
        self.assertIn("first 3 measured requests", trace["partial"])
        self.assertEqual(load_json(os.path.join(base, "profiled_client_metrics.json"))["request_count"], 24)
        full = self.path("full")
        os.mkdir(full)
        cfg["nsys"].pop("capture_requests")
        self.write_config(cfg, "full/cfg.json")
        with open(self.path("data.jsonl")) as f:
            self.write("full/data.jsonl", f.read())
        self.assertEqual(self.run_engine("--config", "full/cfg.json", "--results", "full/res").returncode, 0)
        whole = load_json(os.path.join(full, "res", "baseline", "nvtx_phases.json"))
        part = load_json(os.path.join(base, "nvtx_phases.json"))
        self.assertLess(part["decode"]["count"], whole["decode"]["count"])

    def test_size_guard_stops_the_capture(self):
        for capture in ("session", "process"):
            with self.subTest(capture):
                cfg = self.nsys_config(capture=capture, max_trace_mb=0.05)
                cfg["serve_cmd"][cfg["serve_cmd"].index("0.2")] = "1.0"  # a workload of about a second
                cfg["workload"]["request_count"] = 60
                self.write_config(cfg)
                r = self.run_engine("--config", "cfg.json", "--results", capture)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("knobengine: profiling the baseline: the capture was stopped when its files passed "
                              "0.05 MB (nsys.max_trace_mb); raise nsys.max_trace_mb", r.stderr)
                base = self.path(capture, "baseline")
                trace = load_json(os.path.join(base, "trace_summary.json"))
                self.assertIn("nsys.max_trace_mb", trace["partial"])
                overhead = load_json(os.path.join(base, "profiling_overhead.json"))
                self.assertGreater(overhead["trace_bytes"]["capture_peak"], 0.05 * 1048576)

    def compare_with_nsys_stats(self, sqlite):
        s = json.loads(subprocess.run([KNOBENGINE, "summarize", sqlite], capture_output=True, text=True, check=True).stdout)
        kern = nsys_stats("gpukernsum", sqlite)
        total = sum(int(r["Total Time (ns)"]) for r in kern)
        self.assertEqual(round((s["kernel_ms"] or 0) * 1e6), total)
        by_name = {}
        for r in kern:
            by_name[r["Name"]] = by_name.get(r["Name"], 0) + int(r["Total Time (ns)"])
        self.assertEqual({k["name"]: round(k["total_ms"] * 1e6) for k in s["top_kernels"]},
                         dict(sorted(by_name.items(), key=lambda kv: -kv[1])[:5]))
        # `knobengine kernels`: every kernel's calls, total, shortest and longest (nsys
        # also splits a kernel by launch geometry: its rows are summed per name)
        rows = list(csv.DictReader(io.StringIO(subprocess.run([KNOBENGINE, "kernels", sqlite], capture_output=True,
                                                              text=True, check=True).stdout)))
        theirs = {}
        for r in kern:
            t = theirs.setdefault(r["Name"], [0, 0, None, None])
            t[0] += int(r["Instances"])
            t[1] += int(r["Total Time (ns)"])
            t[2] = min(int(r["Min (ns)"]), t[2] if t[2] is not None else 1 << 62)
            t[3] = max(int(r["Max (ns)"]), t[3] or 0)
        ours = {}  # our rows are per kernel and device: summed per name too
        for r in rows:
            o = ours.setdefault(r["name"], [0, 0, None, None])
            o[0] += int(r["calls"])
            o[1] += round(float(r["total_ms"]) * 1e6)
            o[2] = min(round(float(r["min_ms"]) * 1e6), o[2] if o[2] is not None else 1 << 62)
            o[3] = max(round(float(r["max_ms"]) * 1e6), o[3] or 0)
        self.assertEqual(ours, theirs)
        api = [(r["Name"], int(r["Total Time (ns)"]), int(r["Num Calls"])) for r in nsys_stats("cudaapisum", sqlite)]
        self.assertEqual(round((s["cuda_api_ms"] or 0) * 1e6), sum(a[1] for a in api))
        for a in s["cuda_api_top"]:  # each of our top functions is one of nsys's rows, exactly
            self.assertIn((a["name"], round(a["total_ms"] * 1e6), a["calls"]), api)
        mem = {r["Operation"]: int(r["Total Time (ns)"]) for r in nsys_stats("gpumemtimesum", sqlite)}
        ours = {"[CUDA memcpy %s]" % k: round(v["ms"] * 1e6) for k, v in (s["memcpy_by_kind"] or {}).items()}
        if s["memset_count"]:
            ours["[CUDA memset]"] = round(s["memset_ms"] * 1e6)
        self.assertEqual(ours, mem)
        osrt = {r["Name"]: (int(r["Total Time (ns)"]), int(r["Num Calls"])) for r in nsys_stats("osrtsum", sqlite)}
        self.assertEqual(round((s["osrt_total_ms"] or 0) * 1e6), sum(v[0] for v in osrt.values()))
        for w in s["osrt_top_waits"]:
            self.assertEqual((round(w["total_ms"] * 1e6), w["calls"]), osrt[w["name"]])
        nvtx = {(r["Range"], r["Style"]): (int(r["Total Time (ns)"]), int(r["Instances"])) for r in nsys_stats("nvtxsum", sqlite)}
        self.assertEqual({(r["name"], r["style"]): (round(r["total_ms"] * 1e6), r["count"]) for r in (s["nvtx_ranges"] or [])}, nvtx)

    def test_numbers_match_nsys_stats(self):
        self.write_config(self.nsys_config())
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        self.compare_with_nsys_stats(self.path("results", "baseline", "trace.sqlite"))
        fixture = self.path("new.sqlite")
        trace_fixtures.make(fixture, "old")
        saxpy = os.path.join(SHARED_TRACES, "saxpy-mpi-cuda.sqlite")
        if os.path.exists(saxpy):
            shutil.copy(saxpy, self.path("saxpy.sqlite"))  # nsys stats may write beside it
            self.compare_with_nsys_stats(self.path("saxpy.sqlite"))


# A stand-in for nsys, for the GPU metrics capture (this machine has no GPU, so the real
# nsys cannot sample one): it logs each command line, answers `COMMAND --help` from a
# given text when it has one, prints a given line on `start`/`profile` (as nsys reports a
# problem), drops the GPU metrics options the real nsys here would refuse, optionally
# replaces the export by a given one, and otherwise runs the real nsys.
STAND_IN = r"""#!/usr/bin/env python3
import json, os, shutil, subprocess, sys
conf = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin.json")))
args = sys.argv[1:]
with open(conf["log"], "a") as f:
    f.write(json.dumps(args) + "\n")
if "help" in conf and len(args) == 2 and args[1] == "--help":
    sys.stdout.write(conf["help"])
    sys.exit(0)
if conf.get("say") and args[:1] in (["start"], ["profile"]):
    sys.stderr.write(conf["say"] + "\n")
    sys.stderr.flush()
if conf.get("strip"):
    args = [a for a in args if not a.startswith("--gpu-metrics-")]
if conf.get("export_from") and args[:1] == ["export"]:
    rc = subprocess.call([conf["real"]] + args)
    shutil.copy(conf["export_from"], next(a.split("=", 1)[1] for a in args if a.startswith("--output=")))
    sys.exit(rc)
os.execv(conf["real"], [conf["real"]] + args)
"""

# The GPU metrics options as nsys 2023 and later name them in `nsys start --help` (the
# device option renamed --gpu-metrics-devices); written for this test after 2022.4's text.
HELP_2023 = """usage: nsys start [<args>]

\t--gpu-metrics-devices=

\t   Collect GPU Metrics from specified devices.
\t   The option argument must be 'none', 'cuda-visible', 'all' or a list of GPU IDs.
\t   Default is 'none'. System scope.

\t--gpu-metrics-frequency=

\t   Specify GPU Metrics sampling frequency.
\t   Default is '10000'. System scope.
"""


class GpuMetricsCapture(Workspace):
    """nsys.gpu_metrics: the profiled launches (never sweep trials) ask nsys for GPU metrics
    as the installed nsys spells them, where it takes them (2022.4: `nsys start` and
    `nsys profile`, not `nsys launch`)."""

    def stand_in(self, **conf):
        real = os.path.realpath(NSYS)
        importers = [os.path.join(os.path.dirname(real), "..", "host-linux-x64", "QdstrmImporter"),
                     "/usr/lib/nsight-systems/host-linux-x64/QdstrmImporter"]
        importer = next((p for p in importers if os.access(p, os.X_OK)), None)
        if not importer:
            self.skipTest("nsys's QdstrmImporter is not installed where scripts/install-deps.sh --nsys puts it")
        d = self.path("nsys-bin")
        os.makedirs(d, exist_ok=True)
        path = self.write("nsys-bin/nsys", STAND_IN)
        os.chmod(path, 0o755)
        if not os.path.exists(os.path.join(d, "QdstrmImporter")):
            os.symlink(importer, os.path.join(d, "QdstrmImporter"))  # knobengine looks for it beside nsys
        self.write("nsys-bin/standin.json", json.dumps(dict({"log": self.path("nsys-argv.log"), "real": NSYS}, **conf)))
        return path

    def commands(self, verb=None):
        with open(self.path("nsys-argv.log")) as f:
            cmds = [json.loads(l) for l in f]
        return [c for c in cmds if verb is None or (c[:1] == [verb] and c[1:] != ["--help"])]

    def helps(self):
        return [c[0] for c in self.commands() if c[1:] == ["--help"]]

    def baseline(self, bin, **nsys):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.2"
        cfg["nsys"] = dict({"bin": bin, "trace": "nvtx,osrt", "timeout_s": 120}, **nsys)
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        return r, load_json(self.path("results", "baseline", "trace_summary.json"))

    def test_session_capture_as_nsys_2022_spells_it(self):
        bin = self.stand_in()  # Debian's nsys 2022.4 takes `all` without a GPU
        r, trace = self.baseline(bin, gpu_metrics=True, gpu_metrics_frequency=20000)
        self.assertEqual(self.helps(), ["start"])
        start, launch = self.commands("start")[0], self.commands("launch")[0]
        self.assertEqual(start[-2:], ["--gpu-metrics-device=all", "--gpu-metrics-frequency=20000"])
        self.assertEqual([a for a in launch if "gpu-metrics" in a], [])
        self.assertTrue(trace["ok"])
        self.assertIsNone(trace["gpu_metrics"])
        self.assertEqual(trace["gpu_metrics_reason"], "nsys.gpu_metrics was on, but the export holds no GPU metrics "
                         "samples (no GPU_METRICS rows, no GENERIC_EVENTS of the source GpuMetrics) and nsys said "
                         "nothing about them in profiled_logs.txt")
        self.assertIn("knobengine: baseline under nsys: no GPU metrics: nsys.gpu_metrics was on", r.stderr)
        # the search: sweep trials never run nsys; the best's profiled launch asks again
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.commands("launch")), 2)  # the baseline's and the best's
        self.assertEqual([c[-2:] for c in self.commands("start")],
                         [["--gpu-metrics-device=all", "--gpu-metrics-frequency=20000"]] * 2)
        self.assertEqual(self.helps(), ["start", "start"])  # once per run

    def test_process_capture_with_a_device_list(self):
        bin = self.stand_in(strip=True)  # the real nsys here has no GPU 0 or 1
        _, trace = self.baseline(bin, capture="process", gpu_metrics=[0, 1])
        self.assertEqual(self.helps(), ["profile"])
        profile = self.commands("profile")[0]
        self.assertIn("--gpu-metrics-device=0,1", profile)
        self.assertIn("--gpu-metrics-frequency=10000", profile)
        self.assertTrue(trace["ok"])

    def test_nsys_2023_spelling(self):
        bin = self.stand_in(help=HELP_2023, strip=True)
        self.baseline(bin, gpu_metrics=[1])
        self.assertEqual(self.commands("start")[0][-2:], ["--gpu-metrics-devices=1", "--gpu-metrics-frequency=10000"])

    def test_an_nsys_without_gpu_metrics_profiles_without_them(self):
        bin = self.stand_in(help="usage: nsys start [<args>]\n")
        r, trace = self.baseline(bin, gpu_metrics=True)
        self.assertEqual(self.helps(), ["start", "launch"])
        self.assertEqual([a for c in self.commands() for a in c if "gpu-metrics" in a], [])
        self.assertTrue(trace["ok"])
        why = ("nsys.gpu_metrics is on, but '%s start --help' and '%s launch --help' list no --gpu-metrics-device or "
               "--gpu-metrics-devices option: this nsys cannot sample GPU metrics (a newer Nsight Systems can)"
               % (bin, bin))
        self.assertEqual((trace["gpu_metrics"], trace["gpu_metrics_reason"]), (None, why))
        self.assertIn("no GPU metrics: " + why, r.stderr)

    def test_counters_not_permitted_are_said_with_the_fix(self):
        """nsys 2022.4 exports keep no diagnostics: what it printed is read from the log."""
        bin = self.stand_in(say=trace_fixtures.PERMISSION_TEXT)
        r, trace = self.baseline(bin, gpu_metrics=True)
        self.assertIsNone(trace["gpu_metrics"])
        self.assertTrue(trace["gpu_metrics_reason"].startswith(
            "nsys was not permitted to read the GPU performance counters (ERR_NVGPUCTRPERM)"), trace["gpu_metrics_reason"])
        self.assertIn("NVreg_RestrictProfilingToAdminUsers=0", trace["gpu_metrics_reason"])
        self.assertIn("or run knobengine as root; nsys said: " + trace_fixtures.PERMISSION_TEXT, trace["gpu_metrics_reason"])
        self.assertIn("knobengine: baseline under nsys: no GPU metrics: nsys was not permitted", r.stderr)

    def test_gpu_trace_files_of_a_profiled_launch(self):
        """A profiled launch whose export holds GPU metrics (the stand-in hands over a
        fixture): trace_summary.json has them for its top 5 kernels, kernels.csv a row per
        kernel and device."""
        fixture = self.path("gpu.sqlite")
        trace_fixtures.make_gpu_metrics(fixture, "2023")
        db = sqlite3.connect(fixture)  # five more kernels on GPU 0: eight in all
        db.executemany("INSERT INTO StringIds VALUES (?, ?)", [(10 + i, "tiny%d" % i) for i in range(5)])
        db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, 0, ?, ?)",
                       [(20000, 20000 + 10 * (i + 1), 10 + i, 10 + i) for i in range(5)])
        db.commit()
        db.close()
        bin = self.stand_in(export_from=fixture)
        _, trace = self.baseline(bin, gpu_metrics=True)
        top = [k["name"] for k in trace["top_kernels"]]
        self.assertEqual(top, ["gemm", "copy", "softmax", "tiny4", "tiny3"])
        self.assertEqual([k["name"] for k in trace["gpu_metrics"]["0"]["kernels"]], ["gemm", "softmax", "tiny4", "tiny3"])
        self.assertEqual(trace["gpu_metrics"]["1"]["kernels"][1]["means"]["SMs Active [Throughput %]"], 52.5)
        self.assertEqual(trace["gpu_metrics"]["2"]["metrics"]["SM Issue [Throughput %]"]["mean"], 0.5)
        with open(self.path("results", "baseline", "kernels.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([(r["name"], r["device"]) for r in rows],
                         [("gemm", "0"), ("gemm", "1"), ("copy", "1"), ("softmax", "0")] +
                         [("tiny%d" % i, "0") for i in (4, 3, 2, 1, 0)])


class KilledUnderNsys(Workspace):
    def test_orphaned_server_is_reaped_by_the_next_run(self):
        # under `nsys launch` the server is the nsys agent's child, out of reach of
        # PR_SET_PDEATHSIG: when knobengine is SIGKILLed the next knobengine reaps it
        cfg = self.base_config()
        cfg["nsys"] = {"bin": NSYS, "trace": "nvtx,osrt", "timeout_s": 120}
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "1.0"
        cfg["workload"]["request_count"] = 500
        self.write_config(cfg)
        port = cfg["server"]["port"]
        e = self.start_engine("--config", "cfg.json")
        try:
            e.wait_for(r"baseline under nsys: replaying$")
            self.assertTrue(servers_on(port), "the server is not running")
        finally:
            e.proc.kill()
            e.finish()
        left = servers_on(port)
        self.assertTrue(left, "the server under nsys launch was expected to outlive a SIGKILLed knobengine")
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertIn("left running by an earlier knobengine that was killed", r.stderr)
        wait_until(lambda: servers_on(port) == [], 10, "the orphan to be gone")
