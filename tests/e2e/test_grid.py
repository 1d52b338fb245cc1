"""The capacity grid (`knobengine capacity --grid`): the capacity of every mask x SLO x
workload in one command, on the executor's slots at once, resumed after SIGKILL
without measuring a finished cell again, stopped at --time-limit, its files and its
usage errors. Pruning's rule is unit-tested in tests/lua/test_load.lua."""
import csv
import io
import os
import re
import shutil
import signal

from common import Engine, Workspace, load_json, read, reserve_port, servers_on, wait_until

HEADER = "workload,slo,knob_mask,max_rate,bound,failed_rate,stable,probes,status"
ROW = re.compile(r"^(short|long),(tight|loose),[01]{2},(\d+\.\d{3}|na),(exact|lower|bracket|upper|na),"
                 r"(\d+\.\d{3}|na),(1|0|na),(\d+|na),(measured|reused|pruned|skipped|failed)$")


class Grid(Workspace):
    def config(self, slots=0):
        cfg = self.base_config()  # two on/off knobs: four masks
        cfg["slos"] = [{"name": "tight", "ttft_ms": 1, "quantile": 0.9}, {"name": "loose", "ttft_ms": 40, "quantile": 0.9}]
        cfg["workloads"] = [{"name": "short", "max_new_tokens": 4}, {"name": "long", "max_new_tokens": 16}]
        cfg["capacity"] = {"start_rate": 100, "max_probes": 3, "tolerance": 0.5, "min_probe_s": 0, "repeats": 1}
        if slots:
            cfg["executor"] = {"type": "local", "slots": [{"port": reserve_port()} for _ in range(slots)]}
        self.write_config(cfg)
        return cfg

    def kept(self):
        d = self.path("results", "capacity-grid", "cells")
        return [n for n in os.listdir(d) if os.path.exists(os.path.join(d, n, "cell.json"))] if os.path.isdir(d) else []

    def grid(self, *args):
        r = self.run_engine("capacity", "--grid", "--config", "cfg.json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], HEADER)
        return r, lines

    def test_a_2x2x4_grid_runs_on_parallel_slots_and_resumes_after_sigkill(self):
        cfg = self.config(slots=2)
        ports = [s["port"] for s in cfg["executor"]["slots"]]
        eng = Engine(["capacity", "--grid", "--config", "cfg.json"], self.dir)
        # both slots busy at once: the second cell starts before the first one's server stops
        eng.wait_for(r"^grid: cell 2 of 16 to measure: .* on port %d$" % ports[1])
        self.assertFalse(any("stopping" in l for l in eng.err[:eng.err.index(next(
            l for l in eng.err if "cell 2 of 16" in l))]), eng.err)
        wait_until(lambda: len(self.kept()) >= 3, 120, "three cells kept")
        eng.proc.kill()
        eng.finish()
        wait_until(lambda: not any(servers_on(p) for p in ports), 30, "the slots' servers to go")
        kept = len(self.kept())
        r, lines = self.grid()
        self.assertIn("capacity --grid: reusing %d cell(s) measured by an earlier run" % kept, r.stderr)
        rows, best = lines[1:17], lines[17:]
        for row in rows:
            self.assertRegex(row, ROW)
        statuses = [row.split(",")[-1] for row in rows]
        self.assertEqual(statuses.count("reused"), kept)
        self.assertEqual(statuses.count("measured") + statuses.count("pruned"), 16 - kept)
        self.assertEqual(len(best), 4)
        for b in best:
            self.assertRegex(b, r"^BEST,workload=(short|long),slo=(tight|loose),knob_mask=([01]{2}|na),"
                                r"max_rate=(\d+\.\d{3}|na),bound=\w+,unmeasured=0$")
        self.check_files(lines)
        self.assertEqual([p for p in ports if servers_on(p)], [])
        # every cell kept: a third run measures nothing
        r, again = self.grid()
        self.assertEqual([l.split(",")[-1] for l in again[1:17]],
                         ["pruned" if s == "pruned" else "reused" for s in statuses])
        self.assertNotIn("grid: cell", r.stderr)

    def check_files(self, lines):
        run = self.path("results", "capacity-grid", "latest")
        self.assertEqual(read(os.path.join(run, "capacity_grid.csv")), "\n".join(lines[:17]) + "\n")
        grid = load_json(os.path.join(run, "capacity_grid.json"))
        self.assertEqual([s["name"] for s in grid["slos"]], ["tight", "loose"])
        self.assertEqual([w["name"] for w in grid["workloads"]], ["short", "long"])
        self.assertEqual(grid["masks"], ["00", "01", "10", "11"])
        self.assertEqual(len(grid["cells"]), 16)
        self.assertTrue(grid["complete"])
        for c, row in zip(grid["cells"], csv.DictReader(io.StringIO("\n".join(lines[:17])))):
            self.assertEqual((c["workload"], c["slo"], c["knob_mask"], c["status"]),
                             (row["workload"], row["slo"], row["knob_mask"], row["status"]))
            if c["status"] in ("measured", "reused"):
                cap = load_json(self.path("results", c["dir"], "capacity.json"))
                self.assertEqual((cap["max_rate"], cap["bound"]), (c["max_rate"], c["bound"]))
            if c["status"] == "pruned":
                self.assertRegex(c["reason"], r"^its capacity under slo loose is below [\d.]+ req/s, and mask [01]{2} "
                                              r"held [\d.]+ req/s under tight$")
        if shutil.which("gnuplot"):
            self.assertTrue(read(os.path.join(run, "plots", "heatmap.svg")).startswith("<?xml"))

    def test_the_time_limit_starts_no_cell_past_it_and_a_later_run_measures_the_rest(self):
        self.config()
        r, lines = self.grid("--time-limit", "1e-9")
        self.assertEqual([l.split(",")[-1] for l in lines[1:17]], ["skipped"] * 16)
        self.assertEqual(lines[17], "BEST,workload=short,slo=tight,knob_mask=na,max_rate=na,bound=na,unmeasured=4")
        self.assertIn("capacity --grid: 16 cell(s) not measured: the time limit passed; run the same command again "
                      "to measure only those", r.stderr)
        self.assertFalse(load_json(self.path("results", "capacity-grid", "latest", "capacity_grid.json"))["complete"])
        r, lines = self.grid("--masks", "00,11", "--no-prune")
        self.assertEqual(len(lines), 1 + 8 + 4)
        self.assertEqual({l.split(",")[2] for l in lines[1:9]}, {"00", "11"})
        self.assertEqual({l.split(",")[-1] for l in lines[1:9]}, {"measured"})

    def test_usage_errors(self):
        cfg = self.config()
        for args, message in ((["--grid", "--mask", "01"], "--grid measures every mask (--masks chooses them), not --mask or --best"),
                              (["--masks", "01"], "--masks, --time-limit and --no-prune go with --grid"),
                              (["--grid", "--masks", "01,01"], "--masks: '01' is listed twice"),
                              (["--grid", "--masks", "0x"], "--masks: '0x': "),
                              (["--grid", "--masks", "0x1"], "--masks: '0x1': not a mask of 2 knobs"),
                              (["--grid", "--masks", "+1"], "--masks: '+1': "),
                              (["--grid", "--time-limit", "soon"], "--time-limit: 'soon' is not a number of seconds")):
            with self.subTest(args):
                r = self.run_engine("capacity", "--config", "cfg.json", *args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
        cfg["workloads"][1]["dataset"] = "nope.jsonl"
        self.write_config(cfg)
        r = self.run_engine("capacity", "--grid", "--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("config cfg.json: workloads[1] ('long'): ", r.stderr)
        self.assertIn("nope.jsonl", r.stderr)
        del cfg["workloads"][1]["dataset"]
        del cfg["slos"]
        self.write_config(cfg)
        r = self.run_engine("capacity", "--grid", "--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("capacity --grid needs slos (or an slo) in the config", r.stderr)
