"""The slurm executor against a real Slurm (slurmctld, slurmd and munged started here,
slurm_cluster.py): a sweep gives the table of a local run, Ctrl-C cancels every job it
submitted, a killed engine's search resumes by re-attaching to its jobs, and a job
Slurm cancels is a failed trial that says so."""
import os
import signal
import sqlite3
import subprocess
import sys
import unittest

import slurm_cluster
from common import KNOBS_WITH_A_FAILURE, Workspace, table_rows as rows, load_json, servers_on, wait_until

if __name__ != "__main__" and slurm_cluster.missing():
    print("SKIPPED: Slurm is not installed (%s missing; scripts/install-deps.sh --slurm installs it)"
          % ", ".join(slurm_cluster.missing()), file=sys.stderr)
    sys.exit(77)  # ctest reports the test as skipped

CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = slurm_cluster.Cluster().start()


def tearDownModule():
    if CLUSTER:
        CLUSTER.stop()



class SlurmExecutor(Workspace):
    def setUp(self):
        super().setUp()
        cfg = self.base_config(knobs=KNOBS_WITH_A_FAILURE)
        self.write_config(cfg, "local.json")
        cfg["executor"] = {"type": "slurm", "max_jobs": 2, "poll_s": 0.1, "time": "00:10:00"}
        self.write_config(cfg)
        self.port = cfg["server"]["port"]
        self.assertEqual(self.engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def engine(self, *args):
        return self.run_engine(*args, env={"SLURM_CONF": CLUSTER.conf})

    def search(self, *args):
        return super().search(*args, env={"SLURM_CONF": CLUSTER.conf})

    def no_jobs_left(self):
        wait_until(lambda: CLUSTER.jobs() == {}, 60, "every job to leave squeue")

    def test_sweep_gives_the_table_of_a_local_run(self):
        out, summary = self.search()
        for _ in range(2):  # the baseline, then the search
            r = self.engine("--config", "local.json", "--results", "local")
            self.assertEqual(r.returncode, 0, r.stderr)
        local = load_json(self.path("local", "search", "latest", "summary.json"))
        shape = lambda s: [(t["knob_mask"], t["valid"]) for t in s["trials"]]
        self.assertEqual(shape(summary), shape(local))
        self.assertEqual([r.split(",")[1] for r in rows(out)], ["000", "001", "010", "011", "100", "101", "110", "111"])
        failed = next(t for t in summary["trials"] if t["knob_mask"] == "010")
        self.assertIn("simulated failure while loading the model", failed["error"])
        ports = {t["config"]["server"]["port"] for t in summary["trials"] if t["config"]}
        self.assertTrue(ports <= {self.port, self.port + 1}, ports)
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        self.assertEqual(db.execute("SELECT count(DISTINCT job_id) FROM jobs").fetchone(), (8,))
        self.assertFalse(os.path.exists(self.path("results", ".slurm")))
        self.no_jobs_left()

    def test_ctrl_c_cancels_every_job(self):
        cfg = load_json(self.path("cfg.json"))
        # trial 1 (mask 001) would wait 10 minutes to be ready: only a cancel ends its job
        cfg["knobs"][2] = {"name": "hang", "flag": "--hang-start"}
        cfg["server"]["ready_timeout_s"] = 600
        self.write_config(cfg)
        e = self.start_engine("--config", "cfg.json", env={"SLURM_CONF": CLUSTER.conf})
        wait_until(lambda: ("RUNNING", "knobengine-1") in CLUSTER.jobs().values(), 60, "trial 1's job to run")
        e.signal(signal.SIGINT)
        code, out, err = e.finish(120)
        self.assertEqual(code, 130, err)
        # the engine waited for its jobs to go: none runs when it exits (one that had
        # finished its trial may still be COMPLETING in Slurm's books)
        self.assertEqual(CLUSTER.jobs("PENDING,RUNNING,CONFIGURING"), {})
        for p in (self.port, self.port + 1):
            wait_until(lambda: servers_on(p) == [], 30, "the servers on port %d to be gone" % p)
        # cancelled jobs are forgotten: a resume submits those trials again
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        done = len(rows(out))
        self.assertEqual(db.execute("SELECT count(*) FROM jobs WHERE trial >= ?", (done,)).fetchone(), (0,),
                         (out, err, db.execute("SELECT * FROM jobs").fetchall()))

    def test_a_killed_search_reattaches_to_its_jobs(self):
        e = self.start_engine("--config", "cfg.json", env={"SLURM_CONF": CLUSTER.conf})
        e.wait_for(r"^0,000,", stream="out", timeout=120)
        e.signal(signal.SIGKILL)
        e.finish(30)
        first = rows("\n".join(e.out))
        out, summary = self.search()
        self.assertEqual(rows(out)[:len(first)], first)
        self.assertEqual(len(rows(out)), 8)
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        # one job per trial: the jobs the killed engine submitted were re-attached, not resubmitted
        self.assertEqual(db.execute("SELECT count(*), count(DISTINCT job_id) FROM jobs").fetchone(), (8, 8))
        self.no_jobs_left()

    def test_a_job_slurm_cancels_is_a_failed_trial(self):
        cfg = load_json(self.path("cfg.json"))
        cfg["executor"]["max_jobs"] = 1
        # trial 1 (mask 001) never becomes ready: it runs until Slurm cancels it
        cfg["knobs"][2] = {"name": "hang", "flag": "--hang-start"}
        cfg["server"]["ready_timeout_s"] = 120
        self.write_config(cfg)
        e = self.start_engine("--config", "cfg.json", env={"SLURM_CONF": CLUSTER.conf})
        wait_until(lambda: ("RUNNING", "knobengine-1") in CLUSTER.jobs().values(), 60, "trial 1's job to run")
        job = next(i for i, (_, name) in CLUSTER.jobs().items() if name == "knobengine-1")
        subprocess.run(["scancel", job], env=CLUSTER.env, check=True)
        e.wait_for(r"^1,001,", stream="out", timeout=60)
        e.signal(signal.SIGINT)
        e.finish(120)
        self.no_jobs_left()
        db = sqlite3.connect(self.path("results", "history.sqlite"))
        error = db.execute("SELECT error FROM trials WHERE trial = 1").fetchone()[0]
        self.assertIn("(Slurm job %s) ended CANCELLED" % job, error)


if __name__ == "__main__":
    unittest.main()
