"""The executor contract (docs/executors.md "Writing a backend"), one suite that every
executor backend runs: a sweep on the backend gives the table of a sequential run,
Ctrl-C stops every trial it started and the search resumes, and a search whose engine
was killed resumes. A backend's test module makes a class of Contract and Workspace
that says how to configure the backend and what "nothing of it runs" means; COVERED
names that module for every backend, and test_executor checks that every backend in
lua/knobengine/executors/ is covered."""
import os
import signal
import sqlite3

from common import KNOBS_WITH_A_FAILURE, SOURCE_DIR, table_rows as rows, load_json, servers_on, wait_until

# backend (executor.type) -> the test module whose Contract class runs this suite on it
COVERED = {"local": "test_executor", "slurm": "test_slurm"}

MASKS = ["000", "001", "010", "011", "100", "101", "110", "111"]


def registered_backends():
    """The executor backends the engine has: the files of lua/knobengine/executors/."""
    folder = os.path.join(SOURCE_DIR, "lua", "knobengine", "executors")
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".lua"))


class Contract:
    """Mixed into a Workspace test case by each backend's module. Hooks to define:
    executor(cfg) (the config's executor; may change cfg), env() (the engine's
    environment), trial_ports() (the ports its trials' servers listen on),
    check_sweep(out, summary) (what only this backend promises of a sweep),
    assert_nothing_runs() (after a Ctrl-C), after_kill() (once the engine was killed)
    and check_resumed_after_kill()."""

    def env(self):
        return None

    def after_kill(self):
        pass

    def setUp(self):
        super().setUp()
        cfg = self.base_config(knobs=KNOBS_WITH_A_FAILURE)
        self.port = cfg["server"]["port"]
        self.write_config(cfg, "sequential.json")
        cfg["executor"] = self.executor(cfg)
        self.write_config(cfg)
        self.assertEqual(self.engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def engine(self, *args):
        return self.run_engine(*args, env=self.env())

    def search(self, *args):
        return super().search(*args, env=self.env())

    def jobs_table(self, sql, *params):
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def test_contract_same_table_as_a_sequential_run(self):
        out, summary = self.search()
        for _ in range(2):  # the baseline, then the search, one trial at a time in the engine
            r = self.engine("--config", "sequential.json", "--results", "sequential")
            self.assertEqual(r.returncode, 0, r.stderr)
        sequential = load_json(self.path("sequential", "search", "latest", "summary.json"))
        shape = lambda s: [(t["knob_mask"], t["valid"]) for t in s["trials"]]
        self.assertEqual(shape(summary), shape(sequential))
        self.assertEqual([r.split(",")[1] for r in rows(out)], MASKS)
        self.assertEqual([r.split(",")[0] for r in rows(out)], [str(i) for i in range(8)])
        valid = {t["knob_mask"]: t["valid"] for t in summary["trials"]}
        self.assertEqual(valid, {m: m[1] == "0" for m in MASKS})  # --fail-start fails, the rest run
        failed = next(t for t in summary["trials"] if t["knob_mask"] == "010")
        self.assertIn("simulated failure while loading the model", failed["error"])
        self.check_sweep(out, summary)

    def test_contract_ctrl_c_stops_every_trial_and_the_search_resumes(self):
        e = self.start_engine("--config", "cfg.json", env=self.env())
        e.wait_for(r"^0,000,", stream="out", timeout=120)
        e.signal(signal.SIGINT)
        code, out, err = e.finish(120)
        self.assertEqual(code, 130, err)
        self.assertIn("Run the same command again to resume", err)
        self.assert_nothing_runs()
        for p in self.trial_ports():
            wait_until(lambda: servers_on(p) == [], 30, "the servers on port %d to be gone" % p)
        self.assertFalse(os.path.exists(self.path("results", "search", "latest")))
        done = rows(out)
        # what the engine stopped is forgotten: a resume starts those trials anew
        self.assertEqual(self.jobs_table("SELECT count(*) FROM jobs WHERE trial >= ?", len(done)), [(0,)])
        out, summary = self.search()
        self.assertEqual(rows(out)[:len(done)], done)
        self.assertEqual(summary["launches"], 8 - len(done))
        self.assertEqual(len(rows(out)), 8)

    def test_contract_a_killed_search_resumes(self):
        e = self.start_engine("--config", "cfg.json", env=self.env())
        e.wait_for(r"^0,000,", stream="out", timeout=120)
        e.signal(signal.SIGKILL)
        e.finish(30)
        first = rows("\n".join(e.out))
        self.after_kill()
        out, summary = self.search()
        self.assertEqual(rows(out)[:len(first)], first)
        self.assertEqual(len(rows(out)), 8)
        self.assertEqual([r.split(",")[1] for r in rows(out)], MASKS)
        self.check_resumed_after_kill()
