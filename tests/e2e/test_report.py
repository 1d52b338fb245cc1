"""The stakeholder report: report.md and report.html with every section, well-formed
and self-contained, plots drawn by gnuplot (and a clear line without it), the
provenance files, the page rendered by a real browser, a run of many trials (bounded
table), and report and compare stopped by SIGTERM and SIGINT with the earlier output
left as it was."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

import png
import trace_fixtures
from common import Workspace, KNOBENGINE, SOURCE_DIR, load_json, read

sys.path.insert(0, os.path.join(SOURCE_DIR, "bench"))
import make_run  # noqa: E402  (bench/make_run.py: a finished run of N trials from a real one)

SECTIONS = ["Environment", "Aggregates", "What the server saw", "Per-Stage Timings", "MFU", "Top Operators", "Top Kernels", "GPU Utilisation",
            "All trials", "Summary"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GNUPLOT = shutil.which("gnuplot")
BASELINE_RGB, BEST_RGB = (0x1f, 0x77, 0xb4), (0xd6, 0x27, 0x28)  # report/plots.lua's series colours


def md_cells(line):
    """The cells of a Markdown table row, split on pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_tables(text):
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


class Report(Workspace):
    @classmethod
    def setUpClass(cls):
        if not GNUPLOT:
            print("NOTE: gnuplot is not installed: the plots are checked as skipped only "
                  "(scripts/install-deps.sh installs gnuplot-nox)", file=sys.stderr)

    def search(self, **over):
        cfg = self.base_config(**over)
        self.write_config(cfg)
        for _ in range(2):  # the baseline, then the search
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual(r.returncode, 0, r.stderr)
        run = os.path.realpath(self.path("results", "search", "latest"))
        return cfg, run, r

    def test_report_has_every_section_and_renders(self):
        cfg, run, r = self.search()
        self.assertIn("knobengine: report: %s/report.html" % os.path.relpath(run, self.dir).replace("\\", "/"),
                      r.stderr.replace(self.dir + "/", ""))
        md = read(os.path.join(run, "report.md"))
        self.assertEqual(re.findall(r"^## (.+)$", md, re.M), SECTIONS)
        tables = md_tables(md)
        self.assertGreaterEqual(len(tables), 6)
        for t in tables:
            width = len(md_cells(t[0]))
            self.assertTrue(re.fullmatch(r"\|( :?-+:? \|)+", t[1]), t[1])
            for row in t:
                self.assertEqual(len(md_cells(row)), width, row)
        # the best row is highlighted, its knobs spelled out
        best = load_json(os.path.join(run, "best_config.json"))
        self.assertRegex(md, r"\| \*\*%d\*\* \| \*\*%s\*\* \|" % (best["trial"], best["knob_mask"]))
        self.check_html(os.path.join(run, "report.html"))
        if GNUPLOT:
            for name in ("trials", "pareto", "cdf"):
                for ext in ("dat", "gp", "svg"):
                    self.assertTrue(os.path.exists(os.path.join(run, "plots", name + "." + ext)), name + "." + ext)
                self.assertIn("](plots/%s.svg)" % name, md)
        # what was tested, the best's command, how sure, better and worse marked
        self.assertIn("Model: %s (workload.model)  \n" % cfg["workload"]["model"], md)
        self.assertRegex(md, r"Workload: \d+ measured requests \(\+\d+ warm-up\) from data\.jsonl, closed loop at "
                             r"concurrency \d+; prompts \d+-\d+ words \(mean \d+\); up to \d+ output tokens")
        self.assertIn("Best command: %s (best\\_command.sh)" % " ".join(best["argv"]).replace("_", "\\_"), md)
        self.assertIn("How sure: noise not measured (workload.repeats = 1)", md.split("\n\n")[2])
        self.assertRegex(md, r"\| p50 latency \(ms\) \| [\d.]+ \| [\d.]+ \| [-+][\d.]+ \((better|worse)\) \|")
        self.assertRegex(read(os.path.join(run, "report.html")), r'<td class="r (better|worse)" title="(better|worse)">')
        # no nsys here: the profile sections say why they are empty
        self.assertIn("## Top Kernels\n\nna: the profiles hold no GPU kernels (nsys not found", md)
        self.assertIn("## GPU Utilisation\n\nna: nsys not found", md)
        self.assertNotIn("kernels.svg", md)

    def check_html(self, path):
        text = read(path)
        self.assertTrue(text.startswith("<!DOCTYPE html>\n"))
        root = ET.fromstring(text[len("<!DOCTYPE html>\n"):])  # well-formed, or this raises
        ns = "{http://www.w3.org/1999/xhtml}"
        self.assertEqual([h.text for h in root.iter(ns + "h2")], SECTIONS)
        # nothing outside the file: no scripts, no links or sources other than anchors
        for el in root.iter():
            self.assertNotIn(el.tag.split("}")[-1], ("script", "link", "img", "iframe", "object"))
            for attr, value in el.attrib.items():
                if attr.split("}")[-1] in ("href", "src"):
                    self.assertTrue(value.startswith("#"), "%s=%s" % (attr, value))
        self.assertNotRegex(text, r"url\((?!#)|@import")
        if GNUPLOT:
            self.assertEqual(len(list(root.iter("{http://www.w3.org/2000/svg}svg"))), 3)  # trials, pareto, cdf

    def test_kernels_environment_and_mfu_from_a_gpu_trace(self):
        """A GPU export in place of the CPU traces: the kernel and operator tables, the
        GPU of TARGET_INFO_GPU, and MFU from the config's model and the H100's peak."""
        cfg, run, _ = self.search(model={"name": "m", "params_b": 100}, hardware={"gpu_count": 2})
        fixture = self.path("gpu.sqlite")
        trace_fixtures.make(fixture, "new")
        for d in (self.path("results", "baseline"), os.path.join(run, "best")):
            shutil.copy(fixture, os.path.join(d, "trace.sqlite"))
            summary = subprocess.run([KNOBENGINE, "summarize", fixture], capture_output=True, text=True, check=True).stdout
            with open(os.path.join(d, "trace_summary.json"), "w") as f:
                f.write(summary)
        r = subprocess.run([KNOBENGINE, "report", "--results", self.path("results")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s/report.md\n%s/report.html\n" % ((self.path("results", "search", "latest"),) * 2))
        md = read(os.path.join(run, "report.md"))
        self.assertIn("| GPUs | NVIDIA H100 80GB HBM3: 79.6 GiB, 132 SMs, 3352 GB/s, compute 9.0, driver 580.82.00 (CUDA na) |", md)
        self.assertIn("| gemm\\_kernel&lt;float, 128&gt;(float const\\*, float\\*, int) | 6.000 | 3 | 2.000 | 37.5 |", md)
        self.assertIn("| CUDA API | cudaMemcpyAsync | 4.000 | 2 | 2.000 | 4.000 | 2 | 2.000 | +0.000 |", md)
        m = load_json(self.path("results", "baseline", "client_metrics.json"))
        tokens_per_s = (m["input_tokens"] + m["output_tokens"]) / m["duration_s"]
        mfu = 2 * 100e9 * tokens_per_s / (989.4e12 * 2) * 100
        self.assertIn("| baseline | %.1f | 2e+11 | %.2f | 1978.8 | %.2f%% |" % (tokens_per_s, 2e11 * tokens_per_s / 1e12, mfu), md)
        self.assertIn("- Peak: H100 SXM dense bf16/fp16 989.4 TFLOPS x 2 GPU(s)", md)
        if GNUPLOT:
            self.assertIn("](plots/kernels.svg)", md)

    def test_a_kernel_on_two_gpus_is_one_row(self):
        """kernels.csv has a row per kernel and device; the report shows a kernel once, its
        calls, time and percent over every GPU (gemm: 25 us on GPU 0, 20 us on GPU 1)."""
        _, run, _ = self.search()
        fixture = self.path("gpu.sqlite")
        trace_fixtures.make_gpu_metrics(fixture, "2023")
        for d in (self.path("results", "baseline"), os.path.join(run, "best")):
            for command, name in (("summarize", "trace_summary.json"), ("kernels", "kernels.csv")):
                out = subprocess.run([KNOBENGINE, command, fixture], capture_output=True, text=True, check=True).stdout
                with open(os.path.join(d, name), "w") as f:
                    f.write(out)
        r = subprocess.run([KNOBENGINE, "report", "--results", self.path("results")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [md_cells(l)[:5] for l in read(os.path.join(run, "report.md")).splitlines()
                if l.startswith("| gemm |") or l.startswith("| copy |") or l.startswith("| softmax |")]
        self.assertEqual(rows, [["gemm", "0.045", "3", "0.015", "68.2"], ["copy", "0.020", "1", "0.020", "30.3"],
                                ["softmax", "0.001", "1", "0.001", "1.5"]])

    def test_without_gnuplot_the_report_says_so(self):
        cfg, run, _ = self.search()
        bin_dir = self.path("bin")  # a PATH without gnuplot
        os.makedirs(bin_dir)
        r = subprocess.run([KNOBENGINE, "report", run], capture_output=True, text=True, env=dict(os.environ, PATH=bin_dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        md = read(os.path.join(run, "report.md"))
        self.assertIn("*Plots were skipped: gnuplot is not installed (Debian: apt-get install gnuplot-nox); their data and "
                      "scripts are in plots/.*", md)
        self.assertIn("*Plot skipped: gnuplot is not installed", md)
        self.assertTrue(os.path.exists(os.path.join(run, "plots", "trials.gp")))
        self.assertEqual(re.findall(r"^## (.+)$", md, re.M), SECTIONS)

    def test_an_objective_name_from_summary_json_is_data_to_gnuplot(self):
        """summary.json is a file anyone can edit: an objective named with backquotes and
        quotes reaches the objective plot as a column header, never as script."""
        cfg, run, _ = self.search()
        path = os.path.join(run, "summary.json")
        summary = load_json(path)
        summary["objective"] = {"metric": 'x`touch PWNED`"$(touch PWNED2)', "maximize": True}
        for t in summary["trials"]:
            t["metrics"]['x`touch PWNED`"$(touch PWNED2)'] = 1.0
        with open(path, "w") as f:
            json.dump(summary, f)
        r = self.run_engine("report", run)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("PWNED", "PWNED2"):
            self.assertFalse(os.path.exists(os.path.join(run, "plots", name)), name)
            self.assertFalse(os.path.exists(self.path(name)), name)
        self.assertNotIn("touch", read(os.path.join(run, "plots", "objective.gp")))
        if GNUPLOT:
            self.assertTrue(os.path.exists(os.path.join(run, "plots", "objective.svg")))

    def test_report_command_errors(self):
        r = self.run_engine("report")
        self.assertEqual(r.returncode, 2)
        self.assertIn("report: results/search/latest is not a directory (run a search first", r.stderr)
        os.makedirs(self.path("empty"))
        r = self.run_engine("report", "empty")
        self.assertEqual(r.returncode, 2)
        self.assertIn("report: empty is not a search or profile run (no readable summary.json there)", r.stderr)
        r = self.run_engine("report", "a", "b")
        self.assertEqual(r.returncode, 2)
        self.assertIn("report takes one run directory", r.stderr)

    def test_provenance_files(self):
        cfg, run, _ = self.search()
        data = self.path("data.jsonl")
        for d in (self.path("results", "baseline"), run):
            env = load_json(os.path.join(d, "environment.json"))
            self.assertEqual(env["host"]["cpus"], os.cpu_count())
            self.assertRegex(env["versions"]["lua"], r"^Lua 5\.4")
            self.assertRegex(env["config"]["hash"], r"^[0-9a-f]{16}$")
            manifest = load_json(os.path.join(d, "inputs_manifest.json"))
            with open(data, "rb") as f:
                self.assertEqual(manifest["dataset"]["sha256"], hashlib.sha256(f.read()).hexdigest())
            self.assertEqual((manifest["dataset"]["lines"], manifest["dataset"]["records"]), (6, 6))
            self.assertEqual(manifest["requests"], {"measured": 12, "warmup": 2, "repeats": 1})
            with open(data) as f:
                words = [len(json.loads(l)["prompt"].split()) for l in f]
            sent = [words[i % 6] for i in range(12)]
            self.assertEqual((manifest["prompt_words"]["min"], manifest["prompt_words"]["max"]), (min(sent), max(sent)))
            self.assertEqual(manifest["max_output_tokens"]["max"], 8)

    @unittest.skipUnless(CHROMIUM, "chromium is not installed (scripts/install-deps.sh --browser installs it)")
    def test_rendered_in_a_browser(self):
        """Headless Chromium renders the page: not blank, and the plots' colours are on it."""
        if not GNUPLOT:
            self.skipTest("gnuplot is not installed: no plots to see")
        _, run, _ = self.search()
        shot = self.path("report.png")
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1200,4200", "--screenshot=" + shot, "file://" + os.path.join(run, "report.html")],
                       capture_output=True, timeout=120, env=dict(os.environ, HOME=self.dir))
        width, height, rows = png.read(shot)
        self.assertEqual((width, height), (1200, 4200))
        colours, near = set(), {BASELINE_RGB: 0, BEST_RGB: 0}
        for y in range(0, height, 2):
            row = rows[y]
            for x in range(0, width * 3, 6):
                px = (row[x], row[x + 1], row[x + 2])
                colours.add(px)
                for c in near:
                    if all(abs(px[i] - c[i]) < 24 for i in range(3)):
                        near[c] += 1
        self.assertGreater(len(colours), 50)  # text, tables and plots, not a blank page
        self.assertGreater(near[BASELINE_RGB], 200, "no baseline-coloured plot pixels")
        self.assertGreater(near[BEST_RGB], 200, "no best-coloured plot pixels")


def snapshot(run, names=("report.md", "report.html", "plots")):
    """Every file of the report (or of the given names under run) as {relative path: bytes}."""
    out = {}
    for name in names:
        top = os.path.join(run, name)
        paths = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
        for p in paths:
            with open(p, "rb") as f:
                out[os.path.relpath(p, run)] = f.read()
    return out


class ManyTrials(Workspace):
    """A sweep of tens of thousands of trials (bench/make_run.py inflates a real run)."""

    TRIALS = 40000

    def big_run(self):
        cfg = self.base_config()
        self.write_config(cfg)
        for _ in range(2):  # the baseline, then the search (its report is the earlier one)
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual(r.returncode, 0, r.stderr)
        small = os.path.realpath(self.path("results", "search", "latest"))
        big = make_run.make(self.path("results"), self.path("big"), self.TRIALS)
        for name in ("report.md", "report.html", "plots"):
            (shutil.copytree if name == "plots" else shutil.copy)(os.path.join(small, name), os.path.join(big, name))
        return big

    def test_report_interrupted_leaves_the_earlier_one(self):
        """SIGTERM while summary.json is read, SIGINT while plots and pages are written:
        exit 143 and 130 within moments, the earlier report.md, report.html and plots/
        byte for byte, nothing staged left behind; then the report runs to its end."""
        run = self.big_run()
        before = snapshot(run)
        self.assertIn("plots/trials.dat", before)
        for sig, code, phase in ((signal.SIGTERM, 143, r"^report: reading .*summary\.json \(\d+\.\d MB\) \.\.\.$"),
                                 (signal.SIGINT, 130, r"^report: %d trial\(s\); writing " % self.TRIALS)):
            with self.subTest(signal=sig.name):
                e = self.start_engine("report", run)
                self.addCleanup(lambda p=e.proc: p.poll() is None and p.kill())
                e.wait_for(phase, timeout=120)
                e.signal(sig)
                rc, out, err = e.finish(timeout=30)  # a deadline, not a measurement
                self.assertEqual(rc, code, err)
                self.assertIn("knobengine: interrupted while the report was written", err)
                self.assertEqual(out, "")
                self.assertEqual(snapshot(run), before)
                self.assertEqual([n for n in os.listdir(run) if ".tmp." in n or ".old" in n], [])
        r = self.run_engine("report", run)
        self.assertEqual(r.returncode, 0, r.stderr)
        md = read(os.path.join(run, "report.md"))
        self.assertEqual(re.findall(r"^## (.+)$", md, re.M), SECTIONS)
        # the table is bounded, and says so
        m = re.search(r"^The table lists (\d+) of the %d trials: the best, the 50 with the best p50\\_latency\\_ms, "
                      r"the baseline's mask \(every knob at index 0\) and the first invalid ones \(10 of \d+\); the "
                      r"other (\d+) are left out here\. summary\.csv in the run directory lists every trial\.$"
                      % self.TRIALS, md, re.M)
        self.assertTrue(m, md[:3000])
        rows = [l for l in md_tables(md) if l[0].startswith("| Trial |")][0][2:]
        self.assertEqual(len(rows), int(m.group(1)))
        self.assertEqual(int(m.group(1)) + int(m.group(2)), self.TRIALS)
        summary = load_json(os.path.join(run, "summary.json"))
        self.assertEqual(sum(1 for r in rows if r.startswith("| **%d** |" % summary["best_trial"])), 1)
        self.check_page(run)

    def check_page(self, run):
        text = read(os.path.join(run, "report.html"))
        ET.fromstring(text[len("<!DOCTYPE html>\n"):])  # well-formed, or this raises
        if GNUPLOT:
            for name in ("trials", "pareto"):
                with open(os.path.join(run, "plots", name + ".dat")) as f:
                    points = sum(1 for l in f if l.strip() and not l.startswith("#"))
                self.assertGreater(points, self.TRIALS * 0.9)  # every valid trial, none left out

    def test_compare_interrupted_leaves_the_earlier_comparison(self):
        r = self.run_engine("compare", "--synthetic", "4", "--seeds", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        before = snapshot(self.path("results"), ("comparison",))
        self.assertIn("comparison/summary.txt", before)
        e = self.start_engine("compare", "--synthetic", "10", "--seeds", "1000")
        self.addCleanup(lambda: e.proc.poll() is None and e.proc.kill())
        e.wait_for(r"^compare: bruteforce over 1000 seeds \.\.\.$")
        e.signal(signal.SIGINT)
        rc, out, err = e.finish(timeout=30)  # a deadline: the whole comparison takes minutes
        self.assertEqual(rc, 130, err)
        self.assertIn("knobengine: interrupted while the methods were compared", err)
        self.assertEqual(snapshot(self.path("results"), ("comparison",)), before)
        self.assertEqual(sorted(os.listdir(self.path("results"))), ["comparison"])

if __name__ == "__main__":
    unittest.main()
