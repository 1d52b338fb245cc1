"""Reliability: signals at any point stop the server and keep nothing partial; every
kind of trial fault is recorded with its cause and the sweep goes on; hostile input
is refused with exit 2 and nothing is ever passed through a shell."""
import json
import os
import signal
import subprocess

from common import Workspace, KNOBENGINE, load_json, read, servers_on, wait_until


class Signals(Workspace):
    def start(self, cfg):
        self.write_config(cfg)
        return self.start_engine("--config", "cfg.json")

    def finish(self, engine, port, code):
        status, out, err = engine.finish()
        self.assertEqual(status, code, err)
        self.assertEqual(out, "")
        wait_until(lambda: servers_on(port) == [], 10, "the server to be gone")
        self.assertEqual(os.listdir(self.path("results")), [])  # no baseline, no aside dir
        return err

    def test_sigterm_while_the_server_loads(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--hang-start"]
        cfg["server"]["ready_timeout_s"] = 600
        e = self.start(cfg)
        e.wait_for(r"baseline: starting$")
        self.assertEqual(len(wait_until(lambda: servers_on(cfg["server"]["port"]), 30, "the server")), 1)
        e.signal(signal.SIGTERM)
        err = self.finish(e, cfg["server"]["port"], 143)
        self.assertEqual(err.splitlines()[-1], "knobengine: interrupted while running baseline; servers stopped, "
                         "nothing partial was kept. Run the same command again to start over.")

    def test_sigint_mid_workload(self):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "1.0"  # a slow workload
        cfg["workload"]["request_count"] = 200
        e = self.start(cfg)
        e.wait_for(r"baseline: replaying$")
        e.signal(signal.SIGINT)
        self.finish(e, cfg["server"]["port"], 130)

    def test_second_interrupt_kills_at_once(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--ignore-sigterm"]
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "1.0"
        cfg["workload"]["request_count"] = 200
        # the first interrupt waits this long for a server that ignores SIGTERM; only a
        # second interrupt can end the run within the test's deadline
        cfg["server"]["stop_timeout_s"] = 3600
        e = self.start(cfg)
        e.wait_for(r"baseline: replaying$")
        e.signal(signal.SIGINT)
        e.wait_for(r"baseline: stopping$")
        self.assertIsNone(e.proc.poll())  # waiting for a server that ignores SIGTERM
        e.signal(signal.SIGINT)
        status, _, err = e.finish(timeout=60)
        self.assertEqual(status, 130)
        self.assertIn("second interrupt, killed servers, exiting now", err)
        wait_until(lambda: servers_on(cfg["server"]["port"]) == [], 10, "the server to be gone")


ONLY_SINGLE_FAULTS = """
-- all-OFF, then each knob alone, then all-OFF again (the port must be free again)
return { name = "faults", run = function(search)
  search:evaluate(0)
  for i = 1, search.n do search:evaluate(1 << (search.n - i)) end
  search:evaluate(0)
end }
"""


class TrialFaults(Workspace):
    def test_each_fault_is_recorded_and_the_sweep_goes_on(self):
        cfg = self.base_config(knobs=[
            {"name": "exits", "flag": "--fail-start"},
            {"name": "hangs", "flag": "--hang-start"},
            {"name": "crashes", "key": "--crash-after-requests", "on_value": "3"},
            {"name": "errors", "key": "--error-rate", "on_value": "1"},
            {"name": "malformed", "key": "--malformed-after-tokens", "on_value": "2"},
            {"name": "stalls", "key": "--stall-after-tokens", "on_value": "2"},
        ])
        cfg["server"]["ready_timeout_s"] = 2
        cfg["workload"]["request_timeout_s"] = 1
        self.write_config(cfg)
        self.write("faults.lua", ONLY_SINGLE_FAULTS)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json", "--strategy", "faults.lua")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual([l.split(",")[1] for l in lines[1:9]],
                         ["000000", "100000", "010000", "001000", "000100", "000010", "000001", "000000"])
        # never served (exits, hangs) or every request failed (HTTP 500): error_rate 1
        for l in (lines[2], lines[3], lines[5]):
            self.assertTrue(l.endswith(",na,na,na,1.0000,na"), l)
        # some requests failed (crash after 3, malformed, stalled): invalid, a partial error_rate
        for l in (lines[4], lines[6], lines[7]):
            self.assertRegex(l, r",na,na,na,(0\.\d{4}|1\.0000),na$")
            self.assertNotRegex(l, r",0\.0000,na$")
        self.assertTrue(lines[9].startswith("BEST,knob_mask=000000,"))
        errors = [t["error"] for t in load_json(self.path("results", "search", "latest", "summary.json"))["trials"]]
        self.assertIsNone(errors[0])
        self.assertIn("server exited before it was ready: server exited with status 1", errors[1])
        self.assertIn("simulated failure while loading the model", errors[1])  # the log tail
        self.assertIn("server not ready after 2 s", errors[2])
        self.assertIn("server killed by signal 6 during the workload", errors[3])
        self.assertIn("simulated crash after 3 requests", errors[3])
        self.assertIn("requests failed (first: HTTP 500: {", errors[4])
        self.assertIn("requests failed (first: malformed stream:", errors[5])
        self.assertIn("requests failed (first: timeout)", errors[6])
        self.assertIsNone(errors[7])
        wait_until(lambda: servers_on(cfg["server"]["port"]) == [], 10, "every server to be gone")


class HostileInput(Workspace):
    def refused(self, expected, cfg=None, raw=None, results="res"):
        if raw is not None:
            self.write("cfg.json", raw)
        elif cfg is not None:
            self.write_config(cfg)
        before = self.listing()
        r = self.run_engine("--config", "cfg.json", "--results", results)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(expected, r.stderr)
        self.assertEqual(self.listing(), before)

    def test_hostile_configs(self):
        base = json.dumps(self.base_config())
        cases = [
            ("NUL in a string", base.replace('"m",', '"m\\u0000x",', 1), "serve_cmd[2]: must not contain NUL bytes"),
            ("NUL byte in the file", base.replace('"m",', '"m\x00",', 1), "contains NUL bytes"),
            ("non-UTF-8 string", base.replace('"m",', '"m\xff",', 1).encode("latin-1"), "is not valid UTF-8"),
            ("number too large", base.replace('"concurrency": 4', '"concurrency": 1e400'), "workload.concurrency: expected integer"),
            ("huge concurrency", base.replace('"concurrency": 4', '"concurrency": 100000000'), "workload.concurrency: must be <= 4096"),
            ("negative warmup", base.replace('"warmup_requests": 2', '"warmup_requests": -1'), "workload.warmup_requests: must be >= 0 (got -1)"),
            ("empty program", base.replace('"serve_cmd": ["', '"serve_cmd": ["", "'), "serve_cmd: must name a program"),
            ("deep nesting", base[:-1] + ', "strategy_options": ' + "[" * 5000 + "]" * 5000 + "}", "invalid JSON"),
            ("not an object", "[1, 2]", "config cfg.json: expected object"),
            ("empty file", "", "config cfg.json: invalid JSON"),
        ]
        for name, raw, expected in cases:
            with self.subTest(name):
                self.refused(expected, raw=raw)

    def test_hostile_datasets(self):
        cfg = self.base_config()
        self.write_config(cfg)
        cases = [
            ("NUL byte", b'{"prompt": "a\x00b"}\n', "line 1: contains a NUL byte"),
            ("non-UTF-8", b'{"prompt": "caf\xe9"}\n', "line 1: is not valid UTF-8"),
            ("not an object", b'[1]\n', "line 1: needs 'prompt' or 'messages'"),
            ("bad max_tokens", b'{"prompt": "x", "max_tokens": -3}\n', "line 1: 'max_tokens' must be an integer >= 1"),
            ("bad messages", b'{"messages": [{"role": 1}]}\n', "line 1: messages[0] needs a string 'role' and a 'content'"),
        ]
        for name, data, expected in cases:
            with self.subTest(name):
                self.write("data.jsonl", data)
                self.refused(expected)
        with open(self.path("data.jsonl"), "wb") as f:  # one 100 MB line
            f.write(b'{"prompt": "' + b"x" * (100 << 20) + b'"}\n')
        self.refused("data.jsonl line 1: line is longer than 16777216 bytes")
        os.remove(self.path("data.jsonl"))
        os.mkdir(self.path("data.jsonl"))
        self.refused("workload.dataset: cannot read 'data.jsonl'")

    def test_results_dir_unusable(self):
        self.write_config(self.base_config())
        self.write("afile", "x")
        self.refused("--results afile/res: 'afile' is not a directory", results="afile/res")

    def test_results_on_a_full_disk(self):
        disk = self.path("disk")
        os.mkdir(disk)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], capture_output=True).returncode != 0:
            self.skipTest("cannot mount a small tmpfs here (needs root)")
        try:
            with open(os.path.join(disk, "fill"), "wb") as f:  # fill it up
                try:
                    f.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            self.write_config(self.base_config())
            r = self.run_engine("--config", "cfg.json", "--results", "disk/res")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr, "knobengine: --results disk/res: cannot write there: No space left on device\n")
            self.assertEqual(os.listdir(disk), ["fill"])
        finally:
            subprocess.run(["umount", disk])

    def test_nothing_goes_through_a_shell(self):
        cfg = self.base_config(env={"INNOCENT": "$(touch pwned-env); `touch pwned-tick`"})
        cfg["knobs"] = [{"name": "odd", "env": "ODD_VALUE", "on_value": "a; touch pwned-knob | cat && echo"},
                        {"name": "flag", "key": "--served-model-name", "on_value": "$(touch pwned-arg)"}]
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith("pwned")], [])
        trials = load_json(self.path("results", "search", "latest", "summary.json"))["trials"]
        self.assertEqual(trials[2]["config"]["env"]["ODD_VALUE"], "a; touch pwned-knob | cat && echo")
        self.assertEqual(trials[1]["config"]["argv"][-2:], ["--served-model-name", "$(touch pwned-arg)"])
        # knobsim does not know --served-model-name: exit 2 at start, a recorded failure
        self.assertIn("unrecognized arguments: --served-model-name", trials[1]["error"])
        script = read(self.path("results", "search", "latest", "best_command.sh"))
        self.assertIn("export INNOCENT='$(touch pwned-env); `touch pwned-tick`'", script)


FAKE_NSYS = """#!/bin/sh
# A stand-in nsys: `profile` runs the server (writing an empty report), `export` is slow.
case "$1" in
  profile)
    shift
    for a in "$@"; do case "$a" in --output=*) out="${a#--output=}" ;; esac; done
    : > "$out.nsys-rep"
    while [ "${1#-}" != "$1" ]; do shift; done
    exec "$@" ;;
  export) sleep 60 ;;
esac
"""


class InterruptDuringExport(Workspace):
    def test_sigint_while_nsys_exports(self):
        fake = self.write("fake/nsys", FAKE_NSYS)
        importer = self.write("fake/QdstrmImporter", "#!/bin/sh\nexit 0\n")
        for f in (fake, importer):
            os.chmod(f, 0o755)
        cfg = self.base_config()
        cfg["nsys"] = {"bin": fake, "trace": "nvtx", "capture": "process"}
        self.write_config(cfg)
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"baseline under nsys: exporting$")
        wait_until(lambda: fake + " export" in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout,
                   30, "the export to start")
        e.signal(signal.SIGINT)
        # the fake export takes 60 s: only a Ctrl-C that reaches it ends the run in time
        status, out, err = e.finish(timeout=30)
        self.assertEqual((status, out), (130, ""), err)
        self.assertEqual(os.listdir(self.path("results")), [])
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn(fake, ps)
