"""knobengine profile: one config (no knobs needed, or a mask of them) measured as the
baseline is, profiled, and its report written into RESULTS/profile/<run>/; nothing
else in the results directory is touched, a failed run leaves nothing, and the
report reads its one side (tables of one column, a GPU export's kernels and MFU)."""
import os
import re
import shutil
import subprocess
import unittest
import xml.etree.ElementTree as ET

import trace_fixtures
from common import Workspace, KNOBENGINE, load_json, read
from test_report import GNUPLOT, md_cells, md_tables

SECTIONS = ["Environment", "Aggregates", "What the server saw", "Per-Stage Timings", "MFU", "Top Operators", "Top Kernels", "GPU Utilisation",
            "Summary"]


class Profile(Workspace):
    def profile(self, *args, cfg=None):
        if cfg is None:
            cfg = self.base_config()
            del cfg["knobs"]
        self.write_config(cfg)
        r = self.run_engine("profile", "--config", "cfg.json", *args)
        return cfg, r

    def run_dir(self):
        return os.path.realpath(self.path("results", "profile", "latest"))

    def test_a_config_without_knobs_is_measured_profiled_and_reported(self):
        cfg, r = self.profile()
        self.assertEqual(r.returncode, 0, r.stderr)
        run = self.run_dir()
        self.assertEqual(r.stdout, "PROFILE_DONE,results/profile/%s\n" % os.path.basename(run))
        self.assertIn("knobengine: report: results/profile/%s/report.html (and report.md)" % os.path.basename(run), r.stderr)
        for name in ("config.json", "client_metrics.json", "requests.csv", "logs.txt", "trace_summary.json",
                     "nvtx_phases.json", "profiling_overhead.json", "environment.json", "inputs_manifest.json",
                     "summary.json", "command.sh", "report.md", "report.html"):
            self.assertTrue(os.path.exists(os.path.join(run, name)), name)
        # nothing else in the results: no baseline, no search, no aside left
        self.assertEqual(sorted(os.listdir(self.path("results"))), [".lock", "profile"]
                         if os.path.exists(self.path("results", ".lock")) else ["profile"])
        self.assertEqual(sorted(os.listdir(self.path("results", "profile"))), sorted([os.path.basename(run), "latest"]))
        summary = load_json(os.path.join(run, "summary.json"))
        self.assertEqual((summary["kind"], summary["knob_mask"], summary["knobs"]), ("profile", "none", []))
        metrics = load_json(os.path.join(run, "client_metrics.json"))
        self.assertEqual(summary["metrics"]["p50_latency_ms"], metrics["p50_latency_ms"])
        self.assertEqual(metrics["completed"], cfg["workload"]["request_count"])
        argv = cfg["serve_cmd"][:]
        argv[argv.index("{port}")] = str(cfg["server"]["port"])
        self.assertEqual(read(os.path.join(run, "command.sh")).splitlines()[-1], "exec " + " ".join(argv) + ' "$@"')
        self.assertEqual(os.stat(os.path.join(run, "command.sh")).st_mode & 0o777, 0o755)
        md = read(os.path.join(run, "report.md"))
        self.assertEqual(re.findall(r"^## (.+)$", md, re.M), SECTIONS)
        self.assertTrue(md.startswith("# knobengine profile: cfg.json\n"))
        self.assertIn("Configuration: the server as configured (the config has no knobs)", md)
        self.assertIn("**One configuration measured and profiled: the server as configured (the config has no knobs). "
                      "p50 latency %.3f ms" % metrics["p50_latency_ms"], md)
        self.assertIn("| p50 latency (ms) | %.3f |" % metrics["p50_latency_ms"], md)
        self.assertIn("| this config | %.3f |" % metrics["p50_latency_ms"], md)  # the profiling overhead row
        self.assertNotIn("Best", md)
        self.assertNotIn("baseline", md.lower().replace("a baseline, then a search", ""))
        for t in md_tables(md):
            for row in t:
                self.assertEqual(len(md_cells(row)), len(md_cells(t[0])), row)
        text = read(os.path.join(run, "report.html"))
        root = ET.fromstring(text[len("<!DOCTYPE html>\n"):])
        self.assertEqual([h.text for h in root.iter("{http://www.w3.org/1999/xhtml}h2")], SECTIONS)
        if GNUPLOT:
            self.assertEqual(sorted(f for f in os.listdir(os.path.join(run, "plots")) if f.endswith(".svg")), ["cdf.svg"])
            self.assertIn('title "this config"', read(os.path.join(run, "plots", "cdf.gp")))
        # the report again on demand: the same document but for its time stamp
        before = md
        r = subprocess.run([KNOBENGINE, "report", run], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        strip = lambda s: re.sub(r"(Generated|Run): .*", "", s)  # the run is named as given
        self.assertEqual(strip(read(os.path.join(run, "report.md"))), strip(before))

    def test_a_mask_of_the_knobs(self):
        cfg = self.base_config()
        _, r = self.profile("--mask", "10", cfg=cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        run = self.run_dir()
        conf = load_json(os.path.join(run, "config.json"))
        self.assertIn("--enable-prefix-caching", conf["command"])
        self.assertNotIn("--enforce-eager", conf["command"])
        self.assertEqual(load_json(os.path.join(run, "summary.json"))["knob_mask"], "10")
        self.assertIn("Configuration: knob mask 10, prefix\\_caching", read(os.path.join(run, "report.md")))
        self.assertFalse(os.path.exists(self.path("results", "baseline")))

    def test_usage_errors(self):
        cfg = self.base_config()
        for args, message in ((["--mask", "4"], "--mask: '4': not a mask of 2 knobs"),
                              (["--best"], "--best: no best configuration in results/search/latest/best_config.json"),
                              (["--strategy", "x.lua"], "--strategy is not an option of profile"),
                              (["--mask", "01", "--best"], "--mask and --best cannot be used together")):
            with self.subTest(args):
                _, r = self.profile(*args, cfg=cfg)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
        # a search still needs knobs
        del cfg["knobs"]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("knobs: is required", r.stderr)
        self.assertFalse(os.path.exists(self.path("results", "profile")))

    def test_stdout_that_cannot_be_written_says_the_profile_is_kept(self):
        cfg = self.base_config()
        del cfg["knobs"]
        self.write_config(cfg)
        with open("/dev/full", "w") as full:
            r = subprocess.run([KNOBENGINE, "profile", "--config", "cfg.json"], cwd=self.dir, stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(r.returncode, 1)
        run = self.run_dir()
        self.assertIn("the profile itself is complete in results/profile/%s" % os.path.basename(run), r.stderr)
        self.assertNotIn("nothing partial was kept", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(run, "report.md")))

    def test_a_failed_run_leaves_nothing(self):
        cfg = self.base_config()
        del cfg["knobs"]
        cfg["serve_cmd"] = ["/bin/sh", "-c", "exit 3", "{port}"]  # a server that dies at once
        _, r = self.profile(cfg=cfg)
        self.assertEqual(r.returncode, 1)
        self.assertIn("knobengine: config failed (", r.stderr)
        self.assertEqual(os.listdir(self.path("results", "profile")), [])
        self.assertEqual(r.stdout, "")

    def test_a_gpu_export_gives_one_column_kernels_mfu_and_utilisation(self):
        cfg = self.base_config(model={"name": "m", "params_b": 100}, hardware={"gpu_count": 2})
        del cfg["knobs"]
        _, r = self.profile(cfg=cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        run = self.run_dir()
        fixture = self.path("gpu.sqlite")
        trace_fixtures.make_gpu_metrics(fixture, "2023")
        for command, name in (("summarize", "trace_summary.json"), ("kernels", "kernels.csv")):
            out = subprocess.run([KNOBENGINE, command, fixture], capture_output=True, text=True, check=True).stdout
            with open(os.path.join(run, name), "w") as f:
                f.write(out)
        r = subprocess.run([KNOBENGINE, "report", run], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        md = read(os.path.join(run, "report.md"))
        self.assertIn("| gemm | 0.045 | 3 | 0.015 | 68.2 |", md)
        self.assertIn("Under nsys the top kernel gemm takes 68.2% of GPU time.", md)
        self.assertIn("- GPU time in the profile: the top kernel gemm takes 68.2%", md)
        self.assertRegex(md, r"\| this config \| [\d.]+ \| 2e\+11 \|")
        self.assertIn("| Metric (% of peak) | Mean | p50 | Max |", md)
        self.assertRegex(md, r"GPU 0 utilisation \(nsys GPU metrics, mean over its kernel span\): this config SMs Active")
        if GNUPLOT:
            self.assertIn("](plots/kernels.svg)", md)
            self.assertIn("](plots/gpu-0.svg)", md)
            self.assertEqual(read(os.path.join(run, "plots", "kernels.dat")).splitlines()[0], "# kernel total_ms")


if __name__ == "__main__":
    unittest.main()
