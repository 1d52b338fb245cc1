"""Reliability II: the server measured is the one the trial started, one knobengine per
results directory, a baseline never compared against another config, a stdout
contract and exit code that strategies and closed pipes cannot break, and the small
cases that used to slip (each case below failed before it was fixed)."""
import json
import os
import re
import signal
import sqlite3
import subprocess

from common import Workspace, Sim, KNOBENGINE, load_json, read, servers_on, wait_until

HEADER = "trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms"


class Base(Workspace):
    def baseline(self, cfg=None):
        self.write_config(cfg or self.base_config())
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)

    def strategy(self, name, text):
        return self.write(name, text)


class RightServer(Base):
    def test_a_server_left_on_the_port_is_not_measured(self):
        """The trial's server never listens; another server answers on its port. The
        readiness probe gets a 200, but the listener is not the trial's process."""
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--hang-start"]
        cfg["server"]["ready_timeout_s"] = 60
        self.write_config(cfg)
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"baseline: starting$")
        with Sim("--time-scale", "0", port=cfg["server"]["port"]) as other:
            status, out, err = e.finish()
        self.assertEqual((status, out), (1, ""), err)
        self.assertIn("port 127.0.0.1:%d is answered by another process (PID %d: %s serve m"
                      % (cfg["server"]["port"], other.proc.pid, other.argv[0]), err)
        self.assertIn("not by the server this trial started", err)
        self.assertEqual(os.listdir(self.path("results")), [])


class OneOwner(Base):
    def slow_search(self):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "1.0"
        cfg["workload"]["request_count"] = 40
        self.baseline(cfg)
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"^0,00,", stream="out")
        return e

    def test_second_run_on_a_busy_results_directory_is_refused(self):
        e = self.slow_search()
        try:
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual((r.returncode, r.stdout), (2, ""))
            self.assertEqual(r.stderr, "knobengine: --results results is in use by another knobengine (PID %d); wait "
                             "for it to finish or use another --results\n" % e.proc.pid)
        finally:
            e.signal(signal.SIGINT)
            e.finish()
        # the lock went with its process: the next run resumes the search
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming the interrupted search", r.stderr)

    def test_two_baselines_at_once(self):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "1.0"
        cfg["workload"]["request_count"] = 40
        self.write_config(cfg)
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"baseline: replaying$")
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("is in use by another knobengine (PID %d)" % e.proc.pid, r.stderr)
        status, out, err = e.finish()
        self.assertEqual((status, out), (0, "BASELINE_DONE\n"), err)

    def test_run_directories_never_collide(self):
        self.baseline()
        for _ in range(3):
            self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        runs = [d for d in os.listdir(self.path("results", "search")) if d != "latest"]
        self.assertEqual(len(runs), 3)
        for d in runs:
            self.assertEqual(len(load_json(self.path("results", "search", d, "summary.json"))["trials"]), 4)

    def test_stale_aside_directories_are_removed(self):
        self.baseline()
        dead = subprocess.Popen(["true"])
        dead.wait()
        os.makedirs(self.path("results", ".baseline.tmp.%d" % dead.pid, "x"))
        os.makedirs(self.path("results", "search", ".run.tmp.%d" % dead.pid))
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        self.assertEqual([d for d in os.listdir(self.path("results")) if ".tmp." in d], [])
        self.assertEqual([d for d in os.listdir(self.path("results", "search")) if ".tmp." in d], [])


class BaselineIdentity(Base):
    def test_changed_workload_server_flag_or_dataset_is_refused(self):
        cfg = self.base_config()
        self.baseline(cfg)
        cases = []
        c = json.loads(json.dumps(cfg))
        c["workload"]["max_new_tokens"] = 4
        c["serve_cmd"] += ["--enforce-eager"]
        cases.append((c, None, ["workload.max_new_tokens: 8 -> 4", "serve_cmd: "]))
        cases.append((cfg, "data.jsonl", ["the dataset's content"]))
        for c, dataset, expect in cases:
            with self.subTest(expect[0]):
                self.write_config(c)
                if dataset:
                    with open(self.path(dataset), "a") as f:
                        f.write(json.dumps({"prompt": "one more line"}) + "\n")
                r = self.run_engine("--config", "cfg.json")
                self.assertEqual((r.returncode, r.stdout), (2, ""))
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                for e in expect:
                    self.assertIn(e, r.stderr)
                self.assertIn("--rebaseline", r.stderr)
        r = self.run_engine("--config", "cfg.json", "--rebaseline")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)


    def test_open_loop_search_on_a_closed_loop_baseline_is_refused(self):
        cfg = self.base_config()
        self.baseline(cfg)
        cfg["workload"]["arrival"] = {"type": "poisson", "rate": 500}
        cfg["workload"]["max_concurrency"] = 8
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
        self.assertIn("measured with another config (workload.arrival.rate: (unset) -> 500; workload.arrival.type: "
                      "closed -> poisson; workload.max_concurrency: (unset) -> 8)", r.stderr)

    def test_a_search_under_another_slo_is_not_resumed(self):
        """An interrupted search under one SLO, then the same config under another SLO:
        the second search measures every trial again (its trials are judged differently)."""
        cfg = self.base_config(slo={"ttft_ms": 100})
        self.baseline(cfg)
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"^1,", "out")
        e.signal(signal.SIGINT)
        self.assertEqual(e.finish()[0], 130)
        cfg["slo"]["ttft_ms"] = 5000
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertIn("slo.ttft_ms: 100 -> 5000", r.stderr)
        self.assertEqual(self.run_engine("--config", "cfg.json", "--rebaseline").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("resuming", r.stderr)
        self.assertEqual(load_json(self.path("results", "search", "latest", "summary.json"))["launches"], 4)

    def test_an_interrupted_run_of_an_older_knobengine_is_said_and_not_resumed(self):
        self.baseline()
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"^1,", "out")
        e.signal(signal.SIGINT)
        self.assertEqual(e.finish()[0], 130)
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        db.execute("UPDATE runs SET identity = NULL")  # as an older knobengine left it
        db.commit()
        db.close()
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the interrupted search (run 1) in results/history.sqlite was recorded by an older knobengine", r.stderr)
        self.assertEqual(load_json(self.path("results", "search", "latest", "summary.json"))["launches"], 4)
        r = self.run_engine("--config", "cfg.json")  # said once
        self.assertNotIn("older knobengine", r.stderr)

    def test_a_baseline_of_an_older_knobengine_is_refused_clearly(self):
        self.baseline()
        conf = load_json(self.path("results", "baseline", "config.json"))
        conf["identity"] = {"argv": conf["argv"], "env": conf["env"], "workload": {}}  # what 0.1 recorded
        with open(self.path("results", "baseline", "config.json"), "w") as f:
            json.dump(conf, f)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("was measured by an older knobengine, which did not record everything that decides its numbers",
                      r.stderr)


class FailingNsys(Base):
    def test_nsys_that_is_not_nsys_loses_only_the_trace(self):
        cfg = self.base_config()
        cfg["nsys"] = {"bin": "/bin/false"}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertIn("trace metrics will be na", r.stderr)
        self.assertEqual(load_json(self.path("results", "baseline", "client_metrics.json"))["failed"], 0)


class StdoutContract(Base):
    def test_print_and_io_write_in_a_strategy_go_to_stderr(self):
        self.baseline()
        s = self.strategy("chatty.lua", 'return { run = function(search)\n  print("hello from print")\n'
                          '  io.write("hello from io.write\\n")\n  io.stdout:write("hello from io.stdout\\n")\n'
                          '  search:evaluate(0)\nend }\n')
        r = self.run_engine("--config", "cfg.json", "--strategy", s)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], HEADER)
        self.assertNotIn("hello", r.stdout)
        for what in ("print", "io.write", "io.stdout"):
            self.assertIn("hello from " + what, r.stderr)

    def test_os_exit_in_a_strategy_cannot_skip_cleanup(self):
        self.baseline()
        s = self.strategy("quitter.lua", "return { run = function(search)\n  search:evaluate(0)\n  os.exit(0)\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", s)
        self.assertEqual(r.returncode, 1)
        self.assertIn("strategy error: %s:3: os.exit is not available to a strategy" % s, r.stderr)
        self.assertEqual([d for d in os.listdir(self.path("results", "search")) if d.startswith(".")], [])
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        self.assertEqual(db.execute("SELECT status FROM runs").fetchall(), [("failed",)])

    def test_stdout_that_cannot_be_written_stops_the_run(self):
        self.baseline()
        with open("/dev/full", "w") as full:
            r = subprocess.run([KNOBENGINE, "--config", "cfg.json"], cwd=self.dir, stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot write the results to stdout (", r.stderr)
        self.assertIn("Run the same command again to resume", r.stderr)
        self.assertFalse(os.path.exists(self.path("results", "search", "latest")))

    def test_a_reader_that_goes_away_stops_the_run(self):
        """`knobengine ... | head -1`: the second row meets a closed pipe."""
        self.baseline()
        p = subprocess.Popen([KNOBENGINE, "--config", "cfg.json"], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().rstrip("\n"), HEADER)
        p.stdout.close()  # like head -1
        err = p.stderr.read()
        p.wait(120)
        p.stderr.close()
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("cannot write the results to stdout (Broken pipe)", err)
        wait_until(lambda: servers_on(load_json(self.path("cfg.json"))["server"]["port"]) == [], 10, "no server left")
        r = self.run_engine("--config", "cfg.json")  # the trials it finished are kept
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_first_ctrl_c_interrupts_a_strategy_that_never_evaluates(self):
        self.baseline()
        s = self.strategy("spin.lua", 'return { run = function(search)\n  io.stderr:write("spinning\\n")\n'
                          "  while true do end\nend }\n")
        e = self.start_engine("--config", "cfg.json", "--strategy", s)
        e.wait_for("^spinning$")
        e.signal(signal.SIGINT)
        status, out, err = e.finish(timeout=30)
        self.assertEqual(status, 130, err)
        self.assertIn("interrupted while the strategy ran", err)
        self.assertEqual([d for d in os.listdir(self.path("results", "search")) if d.startswith(".")], [])


class SmallerCases(Base):
    def refused(self, *args, expect):
        r = self.run_engine("--config", "cfg.json", *args)
        self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(expect, r.stderr)
        return r

    def test_damaged_history_is_named(self):
        self.baseline()
        self.write("results/history.sqlite", "this is no database " * 100)
        r = self.refused(expect="results/history.sqlite is damaged or unreadable (file is not a database)")
        self.assertIn("mv results/history.sqlite results/history.sqlite.damaged", r.stderr)

    def test_baseline_metrics_of_the_wrong_shape(self):
        self.baseline()
        path = self.path("results", "baseline", "client_metrics.json")
        for text, expect in (("{}", "p50_latency_ms must be a number (got nothing)"),
                             ('{"p50_latency_ms": "12", "error_rate": 0}', "p50_latency_ms must be a number (got string)"),
                             ("[1, 2]", "client_metrics.json: p50_latency_ms must be a number"),
                             ("not json", "client_metrics.json is not a JSON object")):
            with self.subTest(text):
                with open(path, "w") as f:
                    f.write(text)
                self.refused(expect=expect)

    def test_baseline_that_is_a_file(self):
        self.write_config(self.base_config())
        self.write("results/baseline", "a file")
        self.refused(expect="--results results: 'results/baseline' exists and is not a directory")
        self.assertEqual(sorted(os.listdir(self.path("results"))), ["baseline"])

    def test_results_path_too_long(self):
        self.write_config(self.base_config())
        long = "/".join(["d" * 200] * 25)
        self.refused("--results", long, expect="--results: the path is")
        self.assertFalse(os.path.exists(self.path("d" * 200)))

    def test_dry_run_checks_the_program_and_the_strategy(self):
        cfg = self.base_config()
        cfg["serve_cmd"][0] = "/no/such/server"
        self.write_config(cfg)
        self.refused("--dry-run", expect="serve_cmd[0]: '/no/such/server' does not exist")
        self.write_config(self.base_config())
        bad = self.strategy("bad.lua", "return { run = function( }\n")
        self.refused("--dry-run", "--strategy", bad, expect="bad.lua:1:")
        self.assertEqual(sorted(os.listdir(self.dir)), ["bad.lua", "cfg.json", "data.jsonl"])

    def test_http_error_says_what_the_server_said(self):
        cfg = self.base_config()
        cfg["workload"]["model"] = "another-model"
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 1)
        self.assertIn("first: HTTP 404: {\"object\":\"error\",\"message\":\"The model `another-model` does not exist.\"",
                      r.stderr)

    def test_a_chatty_server_log_is_capped(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--log-lines", "400000"]  # about 40 MB
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        log = self.path("results", "baseline", "logs.txt")
        self.assertLess(os.path.getsize(log), 17 << 20)
        text = read(log)
        self.assertTrue(text.startswith("DEBUG knobsim: chatter line 1 of 400000"))
        self.assertIn("bytes of this log were cut here; the first 8388608 and the last 8388608 bytes are kept]", text)
        self.assertIn("chatter line 400000 of 400000", text)  # the tail
        self.assertIn("Started server process", text)

    def test_strict_types_in_the_dataset(self):
        self.write_config(self.base_config())
        self.write("data.jsonl", '{"prompt": "x", "max_tokens": "12"}\n')
        self.refused(expect="line 1: 'max_tokens' must be an integer >= 1 (a number, not a string)")

    def test_strategy_options_are_checked_before_the_first_launch(self):
        cfg = self.base_config(strategy_options={"keep_fraction": "abc"})
        self.baseline(cfg)
        self.refused("--strategy", "halving", expect="strategy_options.keep_fraction: expected number")
        cfg["strategy_options"] = {"keep_fraction": 0.5, "typo": 1}
        self.write_config(cfg)
        self.refused("--strategy", "halving", expect="strategy_options.typo: not an option of strategy halving "
                     "(its options: keep_fraction, min_keep, screen_requests)")
        self.assertFalse(os.path.exists(self.path("results", "search")))

    def test_coord_descent_start_is_evaluated_once(self):
        self.baseline(self.base_config(strategy_options={"start": "10"}))
        r = self.run_engine("--config", "cfg.json", "--strategy", "coord_descent")
        self.assertEqual(r.returncode, 0, r.stderr)
        masks = [l.split(",")[1] for l in r.stdout.splitlines() if re.match(r"^\d+,", l)]
        self.assertEqual(masks[0], "10")
        self.assertEqual(len(masks), len(set(masks)))

    def test_a_strategy_that_evaluates_nothing(self):
        self.baseline()
        s = self.strategy("idle.lua", "return { run = function(search) end }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", s)
        self.assertEqual((r.returncode, r.stdout), (1, HEADER + "\n"))
        self.assertIn("the strategy evaluated no combination", r.stderr)

    def test_a_strategy_cannot_change_the_best(self):
        self.baseline()
        s = self.strategy("meddler.lua", "return { run = function(search)\n  search:evaluate(0)\n"
                          "  local r = search:evaluate(1)\n  r.valid = false; r.p50_latency_ms = 0\n"
                          "  for _, h in ipairs(search:history()) do h.p50_latency_ms = -1; h.valid = false end\nend }\n")
        r = self.run_engine("--config", "cfg.json", "--strategy", s)
        self.assertEqual(r.returncode, 0, r.stderr)
        best = next(l for l in r.stdout.splitlines() if l.startswith("BEST,"))
        self.assertRegex(best, r"^BEST,knob_mask=0[01],p50_latency_ms=\d+\.\d{3},")

    def test_a_huge_mask_is_not_echoed(self):
        self.baseline()
        s = self.strategy("huge.lua", 'return { run = function(search) search:evaluate(string.rep("1", 1 << 20)) end }\n')
        r = self.run_engine("--config", "cfg.json", "--strategy", s)
        self.assertEqual(r.returncode, 1)
        self.assertLess(max(len(l) for l in r.stderr.splitlines()), 400)
        self.assertIn("(1048576 characters)", r.stderr)
