"""Knobs with values and the search methods on them: a mixed space swept, interrupted and
resumed; value labels in every file; exhaustive strategies refused on a huge space;
stack_rank and bayes on a mixed space; knobengine compare on the recorded sweep."""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess

from common import TABLE_ROW as ROW, Workspace, table_rows as rows, KNOBENGINE, load_json, read, servers_on, wait_until


def masks(stdout):
    return [r.split(",")[1] for r in rows(stdout)]


class MixedSpace(Workspace):
    def setUp(self):
        super().setUp()
        # max_num_seqs: unset (the server's default), 1 (one request at a time: slow), 4
        cfg = self.base_config(knobs=[
            {"name": "max_num_seqs", "key": "--max-num-seqs", "values": ["1", "4"]},
            {"name": "eager", "flag": "--enforce-eager"},
        ])
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def test_sweep_interrupted_and_resumed(self):
        p = subprocess.Popen([KNOBENGINE, "--config", "cfg.json"], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        seen = []
        while len(seen) < 3:
            line = p.stdout.readline()
            self.assertTrue(line, "knobengine ended early")
            if ROW.match(line):
                seen.append(line.rstrip("\n"))
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130)
        port = load_json(self.path("cfg.json"))["server"]["port"]
        wait_until(lambda: servers_on(port) == [], 10, "every server to be gone")

        out, summary = self.search()
        self.assertEqual(rows(out)[:3], seen)
        self.assertEqual(masks(out), ["00", "01", "10", "11", "20", "21"])  # ascending mixed radix
        self.assertEqual(summary["mask_space"], 6)
        self.assertEqual(summary["launches"], 3)
        self.assertEqual(summary["knobs"][0]["values"], ["1", "4"])
        self.assertTrue(summary["knobs"][0]["unset"])
        by_mask = {t["knob_mask"]: t for t in summary["trials"]}
        argv = by_mask["21"]["config"]["argv"]
        self.assertEqual(argv[argv.index("--max-num-seqs") + 1], "4")
        self.assertIn("--enforce-eager", argv)
        self.assertNotIn("--max-num-seqs", by_mask["01"]["config"]["argv"])  # index 0: unset
        self.assertEqual(by_mask["11"]["config"]["knobs_on"], ["max_num_seqs=1", "eager"])
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        self.assertEqual([m for (m,) in db.execute("SELECT knob_mask FROM trials ORDER BY trial")],
                         ["00", "01", "10", "11", "20", "21"])
        # the report names the values
        report = read(self.path("results", "search", "latest", "report.md"))
        self.assertIn("| 3 | 11 | max\\_num\\_seqs=1 + eager |", report)

    def test_methods_on_a_mixed_space(self):
        out, summary = self.search("--strategy", "stack_rank")
        # the baseline's mask, then each knob value alone
        self.assertEqual(masks(out)[:4], ["00", "10", "20", "01"])
        self.assertLessEqual(summary["launches"], 5)
        out, summary = self.search("--strategy", "coord_descent")
        self.assertEqual(len(set(masks(out))), len(masks(out)))  # never a mask twice
        self.assertEqual(masks(out)[:4], ["00", "10", "20", "01"])
        out, summary = self.search("--strategy", "bayes")
        self.assertEqual(len(set(masks(out))), len(masks(out)))
        self.assertLessEqual(summary["launches"], 6)
        self.assertEqual(masks(out)[0], "00")

    def test_value_index_out_of_range_names_the_knob(self):
        bad = self.write("bad.lua", "return { run = function(search)\n  search:evaluate(search:with(0, 1, 3))\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", bad)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines()[-1], "knobengine: strategy error: %s:2: search:with: knob "
                         "'max_num_seqs' has no value index 3 (it has 0..2)" % bad)
        r = self.run_engine("--config", "cfg.json", "--strategy", "coord_descent", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("every knob at its last value (knob_mask 21):", r.stderr)
        self.assertIn("--max-num-seqs 4 --enforce-eager", r.stderr)
        self.assertIn("2 knobs, 6 combinations", r.stderr)
        cfg = load_json(self.path("cfg.json"))
        cfg["strategy_options"] = {"start": "30"}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--strategy", "coord_descent")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("strategy_options.start: expected a knob mask: '30': knob 'max_num_seqs' has no value index 3 "
                      "(it has 0..2)", r.stderr)

    def test_compare_on_the_recorded_sweep(self):
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("compare: results/history.sqlite does not exist (run a brute-force search first)", r.stderr)
        self.search("--strategy", "stack_rank")
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"holds no complete sweep of this config's 6 combinations \(run 1 measured [45] of "
                                   r"them\); run one first")
        out, summary = self.search()
        r = self.run_engine("compare", "--config", "cfg.json", "--seeds", "4")
        self.assertEqual(r.returncode, 2)
        self.assertIn("one repeat per trial, so its noise is unknown: give --noise", r.stderr)
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--seeds", "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "method,seeds,launches,requests,wall_s,gpu_hours,found_best,regret_p50_pct,"
                                   "regret_p90_pct,predict_mape_pct")
        table = {l.split(",")[0]: l.split(",") for l in lines[1:]}
        self.assertEqual(list(table), ["bruteforce", "halving", "coord_descent", "stack_rank", "bayes"])
        brute = table["bruteforce"]
        self.assertEqual(brute[1:4], ["4", "6.0", "72"])  # 6 launches of 12 requests
        self.assertEqual(brute[6:10], ["1.000", "0.00", "0.00", "na"])
        self.assertNotEqual(brute[4], "na")  # wall time from the recorded trials
        self.assertNotEqual(table["stack_rank"][9], "na")  # it predicts
        result = load_json(self.path("results", "comparison", "comparison_results.json"))
        self.assertEqual(result["source"]["kind"], "history")
        self.assertEqual(result["noise"], {"cv": 0, "from": "--noise"})
        best = next(t for t in summary["trials"] if t["trial"] == summary["best_trial"])
        self.assertEqual(result["source"]["best_mask"], best["knob_mask"])
        self.assertTrue(read(self.path("results", "comparison", "summary.txt")).startswith("knobengine compare:"))
        self.assertTrue(read(self.path("results", "comparison", "summary.txt")).endswith("\n"))
        # the plot: a key entry per method (its name read as data), each its own marker; regrets
        # all 0 here except for some methods, so the y axis starts at 0
        svg = read(self.path("results", "comparison", "cost_vs_regret.svg"))
        self.assertIn("<svg", svg)
        if shutil.which("gnuplot"):
            self.assertEqual(re.findall(r">(bruteforce|halving|coord_descent|stack_rank|bayes)</text>", svg), list(table))
        gp = read(self.path("results", "comparison", "cost_vs_regret.gp"))
        top = max(float(row[7]) for row in table.values())
        self.assertIn("set yrange [0:%s]" % ("*" if top > 0 else "1"), gp)
        self.assertEqual(gp.count("title columnheader(1)"), 5)
        self.assertNotIn("notitle", gp)
        self.assertNotIn("bruteforce", gp)  # names reach gnuplot as data only
        # a model's predictions as the zero-deployment row: its best launched once, scored like the others
        p50 = {t["knob_mask"]: t["metrics"]["p50_latency_ms"] for t in summary["trials"] if t["valid"]}
        lines = ["knob_mask,p50_latency_ms,note"] + ["%s,%r,x" % (m, 1.1 * v) for m, v in sorted(p50.items())]
        self.write("vidur.csv", "\n".join(lines) + "\n")
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--seeds", "3", "--strategies",
                            "bruteforce", "--predictions", "vidur.csv")
        self.assertEqual(r.returncode, 0, r.stderr)
        row = r.stdout.splitlines()[2].split(",")  # after the header and bruteforce's row
        self.assertEqual(row[:4], ["vidur", "3", "1.0", "12"])  # one launch of 12 requests per seed
        self.assertEqual(row[6:], ["1.000", "0.00", "0.00", "10.00"])  # its pick is the best; predictions 10% high
        self.write("bad.csv", "knob_mask,tokens_per_s\n0,1\n")
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--predictions", "bad.csv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--predictions: bad.csv: the header has no p50_latency_ms column (the objective's metric)", r.stderr)
        self.write("bad.csv", "knob_mask,p50_latency_ms\n%s,1\n%s,2\n" % (best["knob_mask"], best["knob_mask"]))
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--predictions", "bad.csv")
        self.assertIn("--predictions: bad.csv line 3: mask %s is listed twice" % best["knob_mask"], r.stderr)
        self.write("bad.csv", "knob_mask,p50_latency_ms\n1,1\n")  # a mask whose leading zeros were dropped
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--predictions", "bad.csv")
        self.assertIn("--predictions: bad.csv line 2: knob_mask '1': not a mask string of", r.stderr)
        self.write(".csv", "knob_mask,p50_latency_ms\n")
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--predictions", ".csv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("the file's name (without its extension) names the method", r.stderr)
        r = self.run_engine("compare", "--config", "cfg.json", "--noise", "0", "--predictions", "nope.csv")
        self.assertIn("--predictions: cannot read nope.csv: No such file or directory", r.stderr)
        # the same seeds give the same numbers, with noise too
        a = self.run_engine("compare", "--config", "cfg.json", "--noise", "0.05", "--seeds", "6", "--seed", "9")
        b = self.run_engine("compare", "--config", "cfg.json", "--noise", "0.05", "--seeds", "6", "--seed", "9")
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertEqual(a.stdout, b.stdout)


class HugeSpace(Workspace):
    def test_exhaustive_strategy_refused_without_force(self):
        values = [str(v) for v in range(1, 18)]  # 18 value indices each: 18^3 = 5832 masks
        keys = ("--max-num-seqs", "--max-num-batched-tokens", "--kv-capacity-tokens")
        cfg = self.base_config(knobs=[{"name": n, "key": k, "values": values} for n, k in zip("abc", keys)])
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertRegex(r.stderr, r"strategy bruteforce launches every one of the 5832 combinations, more than 4096: "
                                   r"at the baseline's \d+\.\d s per trial, about \d+ (minutes|hours)\. Use a strategy "
                                   r"that samples \(coord_descent, stack_rank, bayes\), fewer knob values, or --force")
        self.assertEqual(sorted(load_json(self.path("results", "baseline", "profiling_overhead.json"))),
                         ["capture", "overhead_ms", "overhead_percent", "profiled_p50_latency_ms", "profiled_wall_s",
                          "reason", "trace_bytes", "unprofiled_p50_latency_ms", "unprofiled_wall_s"])
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertIn("3 knobs, 5832 combinations", r.stderr)
        self.assertIn("a search will refuse to start without --force", r.stderr)
        # --force starts it (interrupted at the first row)
        e = self.start_engine("--config", "cfg.json", "--force", "--strategy", "halving")
        e.wait_for(r"^0,000,", stream="out")
        e.signal(signal.SIGINT)
        self.assertEqual(e.finish()[0], 130)
        r = self.run_engine("compare", "--synthetic", "4", "--seeds", "3", "--strategies", "bruteforce,nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("strategy file 'nope' not found", r.stderr)


def table_rows_csv(path):
    import csv
    with open(path) as f:
        return list(csv.DictReader(f))


class Validate(Workspace):
    """knobengine validate: each method's recorded pick at the four levels and under the
    sinusoidal load, the document's layout, the MAPE and regret from its own files."""

    LEVELS = ["idle", "medium", "saturation", "overload"]

    def config(self):
        cfg = self.base_config()
        cfg["knobs"] = [{"name": "prefix_caching", "flag": "--enable-prefix-caching"},
                        {"name": "max_num_seqs", "key": "--max-num-seqs", "values": ["4", "8"]}]
        cfg["slo"] = {"ttft_ms": 1000, "tpot_ms": 1000}
        cfg["validate"] = {"max_batch": 6, "max_batch_knob": "max_num_seqs", "min_rate": 5, "max_rate": 30,
                           "period_s": 1}
        self.write_config(cfg)
        return cfg

    def test_two_methods_and_a_predictions_row(self):
        cfg = self.config()
        for args in ((), (), ("--strategy", "coord_descent")):  # the baseline, then two searches
            r = self.run_engine("--config", "cfg.json", *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.write("sim.csv", "knob_mask,p50_latency_ms\n00,9\n01,5\n02,7\n10,8\n11,6\n12,7\n")
        r = self.run_engine("validate", "--config", "cfg.json", "--predictions", "sim.csv")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "method,knob_mask,max_batch,idle,medium,saturation,overload,predicted,mape_pct,"
                                   "goodput,regret_pct")
        rows = {l.split(",")[0]: l.split(",") for l in lines[1:]}
        self.assertEqual(list(rows), ["bruteforce", "coord_descent", "sim"])
        self.assertEqual(rows["sim"][1:3], ["01", "4"])  # the best prediction; its max_num_seqs is the cap
        self.assertEqual(rows["sim"][7], "5.000")
        out = os.path.realpath(self.path("results", "validation", "latest"))
        doc = load_json(os.path.join(out, "comparison", "comparison_results.json"))
        best_goodput = max(m["goodput"] for m in doc["methods"])
        for m in doc["methods"]:
            d = os.path.join(out, m["method"])
            conc = load_json(os.path.join(d, "config.json"))["concurrency"]
            cap = m["max_batch"]
            self.assertEqual([conc[level] for level in self.LEVELS], [1, cap // 2, cap * 9 // 10, max(cap + 1, -(-cap * 11 // 10))])
            for level in self.LEVELS:  # each level held: at least twice its concurrency in requests
                self.assertEqual(len(table_rows_csv(os.path.join(d, "validation", level, "requests.csv"))),
                                 max(cfg["workload"]["request_count"], 2 * conc[level]))
            opt = table_rows_csv(os.path.join(d, "optimization", "requests.csv"))
            self.assertEqual(len(opt), round(17.5 * 1))  # the mean rate x one period
            self.assertTrue(all(r["scheduled_ms"] for r in opt))  # open loop
            measured = [load_json(os.path.join(d, "validation", level, "result.json"))["p50_latency_ms"] for level in self.LEVELS]
            self.assertEqual([m["measured"][level] for level in self.LEVELS], measured)
            want = 100 * sum(abs(m["predicted"] - v) / v for v in measured) / 4
            self.assertAlmostEqual(m["mape_pct"], want, places=9)
            self.assertEqual(m["goodput"], load_json(os.path.join(d, "optimization", "result.json"))["goodput"])
            self.assertAlmostEqual(m["regret_pct"], 100 * (best_goodput - m["goodput"]) / best_goodput, places=9)
        # a recorded method's prediction is what its search measured of its pick (the latest search: coord_descent)
        best = load_json(self.path("results", "search", "latest", "best_config.json"))
        cd = next(m for m in doc["methods"] if m["method"] == "coord_descent")
        self.assertEqual((cd["knob_mask"], cd["predicted"]), (best["knob_mask"], best["metrics"]["p50_latency_ms"]))
        self.assertEqual(min(l.split(",")[-1] for l in lines[1:]), "0.00")  # the best method's regret
        self.assertTrue(read(os.path.join(out, "comparison", "summary.txt")).startswith("knobengine validate:"))
        if shutil.which("gnuplot"):
            for name in ("validation.svg", "validation.png"):
                self.assertTrue(os.path.exists(os.path.join(out, "comparison", name)), name)
        # from another directory (history keeps run directories as they were given)
        r = subprocess.run([KNOBENGINE, "validate", "--config", self.path("cfg.json"), "--results", self.path("results"),
                            "--methods", "coord_descent"], cwd="/", capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.splitlines()[1].startswith("coord_descent,"))
        # a model's pick whose server fails is a row with its error; the others are kept
        self.write("bruteforce.csv", "knob_mask,p50_latency_ms\n00,1\n")
        r = self.run_engine("validate", "--config", "cfg.json", "--predictions", "bruteforce.csv")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--predictions: its method name 'bruteforce' is also a strategy's", r.stderr)
        # --methods chooses; an unknown one is refused
        r = self.run_engine("validate", "--config", "cfg.json", "--methods", "halving")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--methods: no complete search of this config by 'halving'", r.stderr)

    def test_usage_errors(self):
        cfg = self.config()
        r = self.run_engine("validate", "--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("validate: results/history.sqlite does not exist (run searches first, or give --predictions)", r.stderr)
        cfg["validate"]["max_batch_knob"] = "nope"
        self.write_config(cfg)
        r = self.run_engine("validate", "--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("validate.max_batch_knob: 'nope' is not a knob's name", r.stderr)
        cfg["validate"]["max_batch_knob"] = "max_num_seqs"
        # a predictions row alone, without searches; its pick's server fails: a row with the error
        cfg["knobs"][0]["flag"] = "--no-such-flag"
        self.write_config(cfg)
        self.write("sim.csv", "knob_mask,p50_latency_ms\n10,1\n00,2\n")
        r = self.run_engine("validate", "--config", "cfg.json", "--predictions", "sim.csv")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[1], "sim,10,6,na,na,na,na,1.000,na,na,na")
        doc = load_json(self.path("results", "validation", "latest", "comparison", "comparison_results.json"))
        self.assertIn("did not serve", doc["methods"][0]["error"])
        del cfg["slo"]
        self.write_config(cfg)
        r = self.run_engine("validate", "--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("validate needs an slo in the config", r.stderr)
