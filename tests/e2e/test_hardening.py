"""Input from outside is data, never syntax: a results path, knob, kernel or method name
with shell or gnuplot syntax runs nothing; `trial --out` deletes nothing it did not
make; control characters and invalid UTF-8 never split a line of stdout nor break the
JSON, CSV and XML files (docs/failures.md, docs/files.md "Text from outside")."""
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET

import trace_fixtures
from common import Workspace, KNOBENGINE, LUA_HOST, load_json, read, table_rows

GNUPLOT = shutil.which("gnuplot")
# shell syntax in every form gnuplot (double-quoted strings, backquotes) or a shell
# would run: each tries to create a file named PWNED*
HOSTILE = 'x`touch PWNED1`$(touch PWNED2)"\'\\;touch PWNED3'
HOSTILE_WITH_LINES = HOSTILE + '\nBEST,knob_mask=11,p50_latency_ms=0.000,delta_p50_ms=-999.000\n<b>&amp;'


def hostile_name_bytes():
    """A kernel name as a crafted export can hold it: shell syntax, a forged stdout line,
    markup, control bytes, C1 controls, a noncharacter XML forbids and invalid UTF-8."""
    return HOSTILE_WITH_LINES.encode() + b"\x01\x1b[2J\xff\xc0\xaf\xc2\x85\xc2\x9b\xef\xbf\xbf end"


class Hardening(Workspace):
    def pwned(self, *roots):
        found = []
        for root in (self.dir,) + roots:
            for d, _, files in os.walk(root):
                found += [os.path.join(d, f) for f in files if f.startswith("PWNED")]
        return found

    def baseline_and_search(self, results="results", **over):
        cfg = self.base_config(**over)
        self.write_config(cfg)
        for _ in range(2):
            r = self.run_engine("--config", "cfg.json", "--results", results)
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def assert_plots_drawn(self, run, names=("trials", "pareto", "cdf")):
        if not GNUPLOT:
            return
        for name in names:
            svg = os.path.join(run, "plots", name + ".svg")
            self.assertTrue(os.path.exists(svg), "%s not drawn: %s" % (name, read(os.path.join(run, "plots", "gnuplot.log"))
                                                                     if os.path.exists(os.path.join(run, "plots", "gnuplot.log")) else ""))
            ET.parse(svg)  # well-formed XML

    def assert_well_formed_report(self, run):
        with open(os.path.join(run, "report.html"), "rb") as f:
            html = f.read()
        text = html.decode("utf-8")  # strict: raises on invalid UTF-8
        ET.fromstring(text[len("<!DOCTYPE html>\n"):])
        with open(os.path.join(run, "report.md"), "rb") as f:
            f.read().decode("utf-8")
        with open(os.path.join(run, "summary.json"), "rb") as f:
            json.loads(f.read().decode("utf-8"))
        return text

    def test_a_results_path_with_shell_syntax_runs_nothing(self):
        results = "res" + HOSTILE + "\nline2"
        knobs = [{"name": "pc" + HOSTILE, "flag": "--enable-prefix-caching"},
                 {"name": "e" + HOSTILE, "env": "KNOB_TEST_VALUE", "values": ["a" + HOSTILE, "b"]}]
        self.write_config(self.base_config(knobs=knobs))
        r = self.run_engine("--config", "cfg.json", "--results", results)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_engine("--config", "cfg.json", "--results", results, "--strategy", "coord_descent")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.pwned(), [])
        run = os.path.realpath(self.path(results, "search", "latest"))
        self.assert_plots_drawn(run)
        self.assert_well_formed_report(run)
        # the report and compare of a copied results folder whose run directory has such a name
        copy = self.path("copy" + HOSTILE)
        shutil.copytree(self.path(results), copy, symlinks=True)
        moved = os.path.join(copy, "search", "run" + HOSTILE)
        os.rename(os.path.join(copy, "search", os.path.basename(run)), moved)
        r = subprocess.run([KNOBENGINE, "report", moved], capture_output=True, text=True, cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_plots_drawn(moved)
        r = self.run_engine("compare", "--synthetic", "3", "--seeds", "2", "--results", copy)
        self.assertEqual(r.returncode, 0, r.stderr)
        if GNUPLOT:
            self.assertTrue(os.path.exists(os.path.join(copy, "comparison", "cost_vs_regret.svg")))
        self.assertEqual(self.pwned(), [])

    def gpu_trace(self, path):
        """A GPU export whose kernel and NVTX names are hostile."""
        trace_fixtures.make(path, "new")
        db = sqlite3.connect(path)
        db.execute("UPDATE StringIds SET value = CAST(? AS TEXT) WHERE id IN (1, 2)", (hostile_name_bytes(),))
        db.execute("UPDATE NVTX_EVENTS SET text = CAST(? AS TEXT) WHERE text = 'other'", (hostile_name_bytes(),))
        db.commit()
        db.close()

    def put_trace(self, d, fixture):
        shutil.copy(fixture, os.path.join(d, "trace.sqlite"))
        for command, name in (("summarize", "trace_summary.json"), ("kernels", "kernels.csv")):
            out = subprocess.run([KNOBENGINE, command, fixture], capture_output=True, check=True).stdout
            with open(os.path.join(d, name), "wb") as f:
                f.write(out)

    def test_hostile_kernel_and_nvtx_names(self):
        self.baseline_and_search()
        run = os.path.realpath(self.path("results", "search", "latest"))
        fixture = self.path("gpu.sqlite")
        self.gpu_trace(fixture)
        # summarize: valid UTF-8 JSON holding the name (bad bytes replaced, controls escaped)
        out = subprocess.run([KNOBENGINE, "summarize", fixture], capture_output=True, check=True).stdout
        summary = json.loads(out.decode("utf-8"))
        names = [k["name"] for k in summary["top_kernels"]]
        want = HOSTILE_WITH_LINES + "\x01\x1b[2J\ufffd\ufffd\ufffd\u0085\u009b\uffff end"
        self.assertIn(want, names)
        # kernels: RFC 4180 CSV, the name in one quoted field, read back whole
        out = subprocess.run([KNOBENGINE, "kernels", fixture], capture_output=True, check=True).stdout
        rows = list(csv.DictReader(io.StringIO(out.decode("utf-8"), newline="")))
        self.assertIn(want, [r["name"] for r in rows])
        for d in (self.path("results", "baseline"), os.path.join(run, "best")):
            self.put_trace(d, fixture)
        r = self.run_engine("report", "--results", "results")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.pwned(), [])
        self.assert_plots_drawn(run, ("trials", "pareto", "cdf", "kernels"))
        html = self.assert_well_formed_report(run)
        self.assertNotIn("<b>", html)
        md = read(os.path.join(run, "report.md"))
        # the report read kernels.csv as CSV: the hostile kernel keeps its 6 ms of 3 calls
        row = next(l for l in md.splitlines() if "touch PWNED1" in l and "| 6.000 | 3 |" in l)
        self.assertNotIn("\x01", row)

    def test_a_kernel_name_never_forges_a_stdout_line(self):
        """The baseline's trace names a kernel with a newline and a BEST line: the search
        prints it on one line, control characters replaced."""
        cfg = self.base_config()
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        fixture = self.path("gpu.sqlite")
        self.gpu_trace(fixture)
        self.put_trace(self.path("results", "baseline"), fixture)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        best = [l for l in r.stdout.splitlines() if l.startswith("BEST,")]
        self.assertEqual(len(best), 1, r.stdout)
        top = r.stdout.split("TOP_KERNELS_BASELINE\n")[1].split("\n\n")[0].splitlines()
        self.assertEqual(len(top), 4, top)  # gemm, the graph, flash_fwd, softmax: one line each
        self.assertTrue(top[0].startswith('1) "x`touch PWNED1`$(touch PWNED2)""\'\\;touch PWNED3\ufffdBEST,'), top[0])
        self.assertTrue(top[0].endswith('\ufffd\ufffd[2J\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd end",6.000,37.50'), top[0])
        with open(self.path("results", "search", "latest", "summary.csv"), "rb") as f:
            self.assertEqual(len(table_rows(f.read().decode("utf-8"))), 4)

    def test_compare_rows_quote_odd_method_names(self):
        src = os.path.join(os.environ.get("KNOB_SOURCE_DIR", ""), "strategies", "bruteforce.lua")
        odd = self.path('a"b\nBEST x\x1b.lua')  # (--strategies splits at commas)
        shutil.copy(src, odd)
        r = self.run_engine("compare", "--synthetic", "3", "--seeds", "2", "--strategies", "bruteforce," + odd)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 3, r.stdout)
        parsed = list(csv.reader(io.StringIO(r.stdout)))
        self.assertEqual([p[0] for p in parsed[1:]], ["bruteforce", 'a"b\ufffdBEST x\ufffd'])
        self.assertEqual(self.pwned(), [])
        with open(self.path("results", "comparison", "summary.txt"), encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn("\x1b", text)
        self.assertEqual(len(text.splitlines()), 6)  # 4 lines of the world and noise, a line per method
        # compare's numbers are plain decimals, as --rates' are
        for args, why in [(("--seeds", "0x10"), "--seeds: '0x10' is not an integer in 1..100000"),
                          (("--seeds", "1e1"), "--seeds: '1e1' is not an integer in 1..100000"),
                          (("--noise", "0x1"), "--noise: '0x1' is not a coefficient of variation in 0..1")]:
            r = self.run_engine("compare", "--synthetic", "3", *args)
            self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: " + why))

    def config_hash(self):
        """The hash the engine writes into a trial spec for cfg.json."""
        script = self.write("hash.lua", "\n".join([
            'local config = require("knobengine.config")',
            'local identity = require("knobengine.identity")',
            'local cfg = config.load(arg[1])',
            'local d = require("knobengine.dataset").load(cfg.workload, cfg.workload.request_count)',
            'io.write(identity.hash(cfg, d.hash, "search"))']))
        return subprocess.run([LUA_HOST, script, self.path("cfg.json")], capture_output=True, text=True,
                              check=True, cwd=self.dir).stdout

    def test_trial_out_replaces_only_an_earlier_trial_of_its_spec(self):
        self.write_config(self.base_config())
        spec = {"config": self.path("cfg.json"), "config_hash": self.config_hash(), "mask": "00", "requests": 2}
        self.write("spec.json", json.dumps(spec))
        for _ in range(2):  # a retry of the same spec replaces its own directory
            r = self.run_engine("trial", "--spec", "spec.json", "--out", "t")
            self.assertEqual((r.returncode, r.stdout), (0, "t\n"), r.stderr)
            self.assertEqual(load_json(self.path("t", "spec.json")), spec)
            self.assertTrue(load_json(self.path("t", "result.json"))["valid"])
        refused = (2, "knobengine: trial --out %s: exists and is not an earlier trial of this spec; remove it or name "
                      "another directory")
        # a directory that only looks like one (a trial's files copied in, and more) is not one
        self.write("victim/sub/important.db", "data")
        for name in ("spec.json", "result.json"):
            shutil.copy(self.path("t", name), self.path("victim", name))
        self.write("t/notes.txt", "mine")
        os.symlink("t", self.path("link"))
        for out in ("victim", "t", "link"):
            r = self.run_engine("trial", "--spec", "spec.json", "--out", out)
            self.assertEqual((r.returncode, r.stderr.strip()), (refused[0], refused[1] % out))
        self.assertEqual(read(self.path("victim", "sub", "important.db")), "data")
        self.assertEqual(read(self.path("t", "notes.txt")), "mine")
        os.remove(self.path("t", "notes.txt"))
        # whatever the name holds, stdout is one line
        r = self.run_engine("trial", "--spec", "spec.json", "--out", "nl\nx\x1b[31m")
        self.assertEqual((r.returncode, r.stdout), (0, "nl\ufffdx\ufffd[31m\n"), r.stderr)
        self.write("spec.json", json.dumps(dict(spec, label="another")))
        r = self.run_engine("trial", "--spec", "spec.json", "--out", "t")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: trial --out t: exists and is not an earlier "
                                                               "trial of this spec; remove it or name another directory"))
        self.assertTrue(os.path.exists(self.path("t", "result.json")))

    def test_trial_out_never_deletes_what_it_did_not_make(self):
        self.write_config(self.base_config())
        keep = self.write("keep/precious.txt", "do not delete")
        self.write("afile", "do not delete either")
        # a spec that would run: before the fix, its trial deleted --out at the end
        spec = {"config": self.path("cfg.json"), "config_hash": self.config_hash(), "mask": "00", "requests": 2}
        self.write("spec.json", json.dumps(spec))
        work = self.path("keep", "sub")
        os.makedirs(work)
        for out, cwd, why in [
            (".", self.dir, "must name a new directory, not '.', '..' or '/'"),
            ("..", self.dir, "must name a new directory, not '.', '..' or '/'"),
            ("/", self.dir, "must name a new directory, not '.', '..' or '/'"),
            ("keep/sub/..", self.dir, "must name a new directory, not '.', '..' or '/'"),
            (self.path("keep"), work, "is the working directory or a parent of it"),
            (work, work, "is the working directory or a parent of it"),
            ("keep", self.dir, "exists and is not an earlier trial of this spec; remove it or name another directory"),
            ("afile", self.dir, "exists and is not an earlier trial of this spec; remove it or name another directory"),
            ("no/such/parent", self.dir, "its parent directory does not exist"),
        ]:
            with self.subTest(out):
                r = subprocess.run([KNOBENGINE, "trial", "--spec", self.path("spec.json"), "--out", out], cwd=cwd,
                                   capture_output=True, text=True)
                self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: trial --out %s: %s" % (out, why)))
        self.assertEqual(read(keep), "do not delete")
        self.assertEqual(read(self.path("afile")), "do not delete either")


class BytesFromAServer(Workspace):
    def test_a_server_log_of_bad_bytes_reaches_no_file_or_terminal_raw(self):
        """A knob makes the server write invalid UTF-8 and terminal escapes to its log and
        exit: the trial's error quotes the log, and every output stays well-formed."""
        wrapper = self.write("server.py", "\n".join([
            "import os, sys",
            "if '--die-badly' in sys.argv:",
            "    sys.stderr.buffer.write(b'starting\\x1b[2J\\x07 \\xff\\xfe\\xc0\\xaf bad\\r\\n')",
            "    sys.exit(3)",
            "os.execv(sys.argv[1], sys.argv[1:])"]))
        cfg = self.base_config(knobs=[{"name": "bad", "flag": "--die-badly"}])
        cfg["serve_cmd"] = ["python3", wrapper] + cfg["serve_cmd"]
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = subprocess.run([KNOBENGINE, "--config", "cfg.json"], cwd=self.dir, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode("utf-8")  # strict
        self.assertNotIn("\x1b", err)
        self.assertIn("starting\ufffd[2J\ufffd \ufffd\ufffd\ufffd\ufffd bad", err)
        run = os.path.realpath(self.path("results", "search", "latest"))
        with open(os.path.join(run, "summary.json"), "rb") as f:
            trial = json.loads(f.read().decode("utf-8"))["trials"][1]
        self.assertIn("starting\x1b[2J\x07 \ufffd\ufffd\ufffd\ufffd bad", trial["error"])
        html = Hardening.assert_well_formed_report(self, run)
        self.assertNotIn("\x1b", html)


class ClaimsWithoutResults(Workspace):
    def test_a_baseline_that_completed_no_request_fails(self):
        cfg = self.base_config(constraints={"max_error_rate": 1})
        cfg["serve_cmd"] += ["--error-rate", "1"]
        self.write_config(cfg)
        for _ in range(2):  # nothing is published, so the next run is a baseline again
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
            self.assertIn("knobengine: baseline failed (no request completed (12 of 12 requests failed (first: HTTP 500",
                          r.stderr)
            self.assertFalse(os.path.exists(self.path("results", "baseline")))

    def test_a_baseline_without_a_trace_is_said_at_each_search(self):
        self.write_config(self.base_config())
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        said = ("knobengine: the baseline in results/baseline has no trace (nsys not found ('nsys-not-installed-here' "
                "is not on PATH); install Nsight Systems (scripts/install-deps.sh --nsys) or set nsys.bin): its trace "
                "figures print na. Take only its trace again with --reprofile-baseline (one profiled launch; its "
                "client metrics are kept)")
        for _ in range(2):
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(said, r.stderr.splitlines())
        self.assertIn("Next: the baseline has no trace (nsys not found ('nsys-not-installed-here' is not on PATH); install "
                      "Nsight Systems (scripts/install-deps.sh --nsys) or set nsys.bin): take only its trace again with "
                      "knobengine --reprofile-baseline (its client metrics are kept), then knobengine report;",
                      read(self.path("results", "search", "latest", "report.md")))
        # taking it again where nsys still cannot run: said, and the baseline is unchanged
        base = self.path("results", "baseline")
        before = {f: open(os.path.join(base, f), "rb").read() for f in os.listdir(base)}
        r = self.run_engine("--config", "cfg.json", "--reprofile-baseline")
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        self.assertIn("knobengine: the baseline's profiled launch has no trace again (nsys not found", r.stderr)
        self.assertIn("results/baseline is unchanged", r.stderr)
        self.assertEqual({f: open(os.path.join(base, f), "rb").read() for f in os.listdir(base)}, before)
        self.assertEqual([n for n in os.listdir(self.path("results")) if "tmp" in n or "old" in n], [])
        r = self.run_engine("--config", "cfg.json", "--reprofile-baseline", "--results", "elsewhere")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: --reprofile-baseline: elsewhere/baseline "
                                                               "does not exist (run without it first)"))
        self.assertFalse(os.path.exists(self.path("elsewhere")))
        r = self.run_engine("--config", "cfg.json", "--reprofile-baseline", "--rebaseline")
        self.assertEqual(r.returncode, 2)

    def test_what_killed_runs_left_aside_is_removed(self):
        cfg = self.base_config(slo={"ttft_ms": 60000}, capacity={"start_rate": 200, "max_probes": 1})
        self.write_config(cfg)
        left = [self.path("results", "capacity", ".capacity.tmp.999999", "requests-01.csv"),
                self.path("results", "load-sweep", ".load-sweep.tmp.999998", "level-01.json"),
                self.path("results", ".baseline.tmp.999997", "logs.txt")]
        for p in left:
            self.write(os.path.relpath(p, self.dir), "left by a killed run")
        self.write("results/baseline.old.999996/client_metrics.json", "{}")  # a cut replacement, no baseline
        r = self.run_engine("capacity", "--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        for p in left:
            self.assertFalse(os.path.exists(os.path.dirname(p)), p)
        self.assertEqual(read(self.path("results", "baseline", "client_metrics.json")), "{}")  # put back
        self.assertEqual(sorted(os.listdir(self.path("results", "capacity"))), [os.path.basename(os.readlink(
            self.path("results", "capacity", "latest"))), "latest"])


class DatasetsAsToolsWriteThem(Workspace):
    def baseline_ok(self, **workload):
        cfg = self.base_config()
        cfg["workload"].update(workload)
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "res-%d" % len(os.listdir(self.dir)))
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)

    def test_a_byte_order_mark_starts_the_file(self):
        self.write("bom.jsonl", b"\xef\xbb\xbf" + b'{"prompt": "one two three"}\n{"prompt": "four five"}\n')
        self.baseline_ok(dataset="bom.jsonl")
        sharegpt = [{"conversations": [{"from": "human", "value": "hi there"}, {"from": "gpt", "value": "a b c"}]}]
        self.write("bom.json", b"\xef\xbb\xbf" + json.dumps(sharegpt).encode())
        self.baseline_ok(dataset="bom.json")

    def test_chat_content_as_a_list_of_parts(self):
        lines = [{"messages": [{"role": "system", "content": "be brief"},
                               {"role": "user", "content": [{"type": "text", "text": "say w%d" % i},
                                                            {"type": "text", "text": "and more"}]}]} for i in range(4)]
        self.write("parts.jsonl", "\n".join(json.dumps(l) for l in lines) + "\n")
        self.baseline_ok(dataset="parts.jsonl", endpoint="/v1/chat/completions")
        m = load_json(self.path("res-%d" % (len(os.listdir(self.dir)) - 1), "baseline", "client_metrics.json"))
        self.assertEqual((m["completed"], m["failed"]), (12, 0))
        self.write("bad.jsonl", json.dumps({"messages": [{"role": "user", "content": [{"type": "text"}]}]}) + "\n")
        cfg = self.base_config()
        cfg["workload"].update(dataset="bad.jsonl", endpoint="/v1/chat/completions")
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "bad")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.jsonl line 1: messages[0].content: parts[0] of type 'text' needs a string 'text'", r.stderr)


class FullDisk(Workspace):
    def setUp(self):
        super().setUp()
        self.disk = self.path("disk")
        os.mkdir(self.disk)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", self.disk], capture_output=True).returncode:
            self.skipTest("cannot mount a small tmpfs here (needs root)")
        self.addCleanup(subprocess.run, ["umount", "-l", self.disk])

    def fill(self):
        with open(os.path.join(self.disk, "fill"), "wb", buffering=0) as f:  # unbuffered: closing it flushes nothing
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass

    def test_a_disk_that_fills_mid_search_stops_it_resumable(self):
        cfg = self.base_config()
        cfg["knobs"] = [{"name": "k%d" % i, "env": "KNOB_TEST_%d" % i, "on_value": "1"} for i in range(4)]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "disk/res")
        self.assertEqual(r.returncode, 0, r.stderr)
        e = self.start_engine("--config", "cfg.json", "--results", "disk/res")
        e.wait_for(r"^3,", "out")
        self.fill()
        code, out, err = e.finish(120)
        self.assertEqual(code, 1, err)
        last = err.splitlines()[-1]
        self.assertRegex(last, r"(No space left on device|database or disk is full)")
        self.assertTrue(last.endswith("; servers stopped, nothing partial was kept. Free space there (or make it "
                                      "writable), then run the same command again to resume (finished trials are "
                                      "kept)."), last)
        self.assertNotIn("damaged", err)
        self.assertEqual(os.listdir(self.path("disk", "res", "search")), [])  # nothing published
        done = table_rows(out)
        os.remove(os.path.join(self.disk, "fill"))
        r = self.run_engine("--config", "cfg.json", "--results", "disk/res")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming the interrupted search (run 1): reusing %d completed trial(s)" % len(done), r.stderr)
        self.assertEqual(table_rows(r.stdout)[:len(done)], done)
        self.assertEqual(len(table_rows(r.stdout)), 16)
        self.assertTrue(os.path.exists(self.path("disk", "res", "search", "latest", "report.md")))
