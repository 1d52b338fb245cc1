"""Search strategies, stored history and resume: coord_descent and halving find the
brute-force best for less, an interrupted or killed sweep resumes with the same table,
and a user's strategy runs from anywhere without a rebuild."""
import csv
import json
import os
import signal
import sqlite3
import subprocess
import time

from common import TABLE_ROW as ROW, Workspace, table_rows as rows, KNOBENGINE, load_json, servers_on, wait_until



def best_mask(stdout):
    return next(l for l in stdout.splitlines() if l.startswith("BEST,")).split(",")[1].split("=")[1]


class Strategies(Workspace):
    def setUp(self):
        super().setUp()
        # a landscape with a clear best: prefix caching helps (shared prefixes), eager
        # mode hurts, and the third knob makes the server fail to start
        cfg = self.base_config(knobs=[
            {"name": "prefix_caching", "flag": "--enable-prefix-caching"},
            {"name": "eager", "flag": "--enforce-eager"},
            {"name": "broken", "flag": "--fail-start"},
        ])
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.3"
        cfg["workload"]["concurrency"] = 6
        # long shared prefixes: prefix caching wins by far more than the noise
        self.write("data.jsonl", "".join(json.dumps({"prompt": "system " * 400 + "question %d" % i}) + "\n" for i in range(8)))
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def test_strategies_agree_with_bruteforce_for_less(self):
        # 24 requests: halving screens with 6, enough to keep the best among its survivors
        cfg = load_json(self.path("cfg.json"))
        cfg["workload"]["request_count"] = 24
        self.write_config(cfg)
        # the baseline was measured with 12 requests: refused until measured again
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("measured with another config (workload.request_count: 12 -> 24)", r.stderr)
        r = self.run_engine("--config", "cfg.json", "--rebaseline")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertEqual(len([d for d in os.listdir(self.path("results")) if d.startswith("baseline.replaced-")]), 1)
        out, brute = self.search()
        self.assertEqual(best_mask(out), "100")
        self.assertEqual(brute["launches"], 8)
        requests = lambda s: sum(t["requests"] for t in s["trials"])

        out, cd = self.search("--strategy", "coord_descent")
        self.assertEqual(best_mask(out), "100")
        masks = [r.split(",")[1] for r in rows(out)]
        self.assertEqual(masks, ["000", "100", "010", "001", "110", "101"])  # each mask once
        self.assertLess(cd["launches"], brute["launches"])

        out, hv = self.search("--strategy", "halving")
        self.assertEqual(best_mask(out), "100")
        screening = [t for t in hv["trials"] if not t["full_fidelity"]]
        self.assertEqual(len(screening), 8)
        self.assertTrue(all(t["requests"] == 6 for t in screening))  # request_count 24 / 4
        best = hv["trials"][hv["best_trial"]]
        self.assertTrue(best["full_fidelity"])
        self.assertLess(requests(hv), requests(brute))

    def interrupt_after(self, n_rows, sig):
        p = subprocess.Popen([KNOBENGINE, "--config", "cfg.json"], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        seen = []
        while len(seen) < n_rows:
            line = p.stdout.readline()
            self.assertTrue(line, "knobengine ended early")
            if ROW.match(line):
                seen.append(line.rstrip("\n"))
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        return p.returncode, seen, err

    def no_server_left(self):
        port = load_json(self.path("cfg.json"))["server"]["port"]
        wait_until(lambda: servers_on(port) == [], 10, "every server to be gone")

    def test_interrupted_sweep_resumes_with_the_same_table(self):
        code, seen, err = self.interrupt_after(3, signal.SIGINT)
        self.assertEqual(code, 130)
        self.assertIn("Run the same command again to resume", err)
        self.no_server_left()
        self.assertFalse(os.path.exists(self.path("results", "search", "latest")))
        self.assertEqual([d for d in os.listdir(self.path("results", "search")) if d.startswith(".")], [])
        out, summary = self.search()
        self.assertEqual(rows(out)[:3], seen)  # reused trials print exactly as before
        self.assertEqual([r.split(",")[1] for r in rows(out)], ["000", "001", "010", "011", "100", "101", "110", "111"])
        self.assertEqual(summary["launches"], 5)
        self.assertEqual([t["resumed"] for t in summary["trials"]], [True] * 3 + [False] * 5)
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        self.assertEqual(db.execute("SELECT status FROM runs").fetchall(), [("complete",)])
        self.assertEqual(db.execute("SELECT count(*), count(DISTINCT config_hash) FROM trials").fetchone(), (8, 1))
        # a finished search is not resumed: the next one measures again
        out, summary = self.search()
        self.assertEqual(summary["launches"], 8)

    def test_killed_engine_takes_its_server_along_and_resumes(self):
        code, seen, _ = self.interrupt_after(2, signal.SIGKILL)
        self.assertEqual(code, -9)
        self.no_server_left()
        out, summary = self.search()
        self.assertEqual(rows(out)[:2], seen)
        self.assertEqual(summary["launches"], 6)

    def test_user_strategy_from_anywhere(self):
        other = self.path("elsewhere", "reverse.lua")
        self.write("elsewhere/reverse.lua", """
-- evaluates the masks from the top down, then looks at the history
return { name = "reverse", run = function(search)
  for mask = (1 << search.n) - 1, 0, -1 do search:evaluate(mask) end
  assert(#search:history() == 1 << search.n)
end }
""")
        out, summary = self.search("--strategy", other)
        self.assertEqual([r.split(",")[1] for r in rows(out)], ["111", "110", "101", "100", "011", "010", "001", "000"])
        self.assertEqual(summary["strategy"], "reverse")
        self.assertEqual(best_mask(out), "100")

    def test_strategy_error_names_file_and_line(self):
        bad = self.write("bad.lua", "return { run = function(search)\n  search:evaluate(0)\n  search:evaluate(99)\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", bad)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines()[-1],
                         "knobengine: strategy error: %s:3: search:evaluate: mask 99 is out of range 0..7" % bad)
        self.no_server_left()
        # with KNOBENGINE_DEBUG=1 the traceback shows the strategy's own lines
        nested = self.write("nested.lua", "local function pick(search)\n  error({})\nend\n"
                            "return { run = function(search)\n  pick(search)\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", nested, env={"KNOBENGINE_DEBUG": "1"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("knobengine: strategy error: (error object is a table value)", r.stderr)
        self.assertIn("%s:2: in " % nested, r.stderr)  # where error({}) was raised
        self.assertIn("%s:5: in " % nested, r.stderr)  # the strategy's call to it
        r = self.run_engine("--config", "cfg.json", "--strategy", nested)
        self.assertNotIn("stack traceback", r.stderr)  # only on request
        syntax = self.write("syntax.lua", "return { run = function(search)\n  oops oops\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", syntax)
        self.assertEqual(r.returncode, 2)
        self.assertIn("syntax.lua:2:", r.stderr)


class Repeats(Workspace):
    def test_repeats_report_medians(self):
        # a knob that changes nothing and 30% step jitter: whether stderr then warns
        # that the best is within noise depends on timing; the decision itself is unit
        # tested (objective.within_noise)
        cfg = self.base_config(knobs=[{"name": "noop", "flag": "--disable-log-requests"}])
        cfg["serve_cmd"] += ["--jitter-pct", "30"]
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.3"
        cfg["workload"]["repeats"] = 3
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        for t in summary["trials"]:
            reps = t["repeats"]
            self.assertEqual(len(reps), 3)
            self.assertEqual(t["metrics"]["p50_latency_ms"], sorted(x["p50_latency_ms"] for x in reps)[1])
            self.assertEqual(t["metrics"]["request_count"], 36)
        trial_dir = self.path("results", "search", "latest", "trials", "000-0")
        self.assertEqual(sorted(os.listdir(trial_dir)), ["logs.txt", "requests-2.csv", "requests-3.csv", "requests.csv",
                                                        "server_metrics-2.csv", "server_metrics-3.csv", "server_metrics.csv"])


class NoUsage(Workspace):
    def test_a_server_that_reports_no_prompt_tokens_gives_null_not_zero(self):
        """A stream without usage (knobsim --no-usage, as llama-cpp-python's server sends):
        output tokens are counted from the chunks, input_tokens is null and each
        request's prompt_tokens empty, not 0."""
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--no-usage"]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = load_json(self.path("results", "baseline", "client_metrics.json"))
        self.assertIsNone(m["input_tokens"])
        self.assertEqual(m["output_tokens"], m["completed"] * cfg["workload"]["max_new_tokens"])
        with open(self.path("results", "baseline", "requests.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual({r["prompt_tokens"] for r in rows}, {""})


class Suspect(Workspace):
    def test_a_suspect_best_is_said_and_reject_suspect_makes_trials_invalid(self):
        """A server whose usage.completion_tokens is far from what it streams (knobsim
        --usage-factor): every trial is suspect, kept in summary.json and the report, the
        best said on stderr; with constraints.reject_suspect every trial is invalid."""
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--usage-factor", "100"]
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        reason = "%d request(s) reported token counts far from what they streamed" % cfg["workload"]["request_count"]
        # every trial has this reason; a loaded machine may add a timing one (read lag), said the same way
        for t in summary["trials"]:
            self.assertIn(reason, t["suspect"])
        best = next(t for t in summary["trials"] if t["trial"] == summary["best_trial"])
        said = "; ".join(best["suspect"])
        self.assertIn("knobengine: the best (mask %s) is suspect: %s" % (best["knob_mask"], said), r.stderr)
        with open(self.path("results", "search", "latest", "report.md")) as f:
            md = f.read()
        self.assertIn("best (suspect: %s)" % said, md)
        self.assertIn("- The best's measurement is suspect: %s" % said, md)
        cfg["constraints"] = {"reject_suspect": True}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no valid trial", r.stderr)
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        for t in summary["trials"]:
            self.assertIn(reason, t["suspect"])
            self.assertEqual(t["error"], "suspect (constraints.reject_suspect): " + "; ".join(t["suspect"]))
