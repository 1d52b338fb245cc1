"""The slurm executor against a real Slurm (slurmctld, slurmd and munged started here,
slurm_cluster.py): the executor contract (executor_contract.py: a sweep gives the table
of a sequential run, Ctrl-C cancels every job it submitted and the search resumes, a
killed engine's search resumes by re-attaching to its jobs), Ctrl-C cancels a job that
would run on, and a job Slurm cancels is a failed trial that says so."""
import os
import signal
import sqlite3
import subprocess
import sys
import unittest

import executor_contract
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



class Contract(executor_contract.Contract, Workspace):
    BACKEND = "slurm"

    def executor(self, cfg):
        return {"type": "slurm", "max_jobs": 2, "poll_s": 0.1, "time": "00:10:00"}

    def env(self):
        return {"SLURM_CONF": CLUSTER.conf}

    def trial_ports(self):
        return [self.port, self.port + 1]

    def no_jobs_left(self):
        wait_until(lambda: CLUSTER.jobs() == {}, 60, "every job to leave squeue")

    def check_sweep(self, out, summary):
        ports = {t["config"]["server"]["port"] for t in summary["trials"] if t["config"]}
        self.assertTrue(ports <= {self.port, self.port + 1}, ports)
        self.assertEqual(self.jobs_table("SELECT count(DISTINCT job_id) FROM jobs"), [(8,)])
        self.assertFalse(os.path.exists(self.path("results", ".slurm")))
        self.no_jobs_left()

    def assert_nothing_runs(self):
        # the engine waited for its jobs to go: none runs when it exits (one that had
        # finished its trial may still be COMPLETING in Slurm's books)
        self.assertEqual(CLUSTER.jobs("PENDING,RUNNING,CONFIGURING"), {})

    def check_resumed_after_kill(self):
        # one job per trial: the jobs the killed engine submitted were re-attached, not resubmitted
        self.assertEqual(self.jobs_table("SELECT count(*), count(DISTINCT job_id) FROM jobs"), [(8, 8)])
        self.assertEqual(self.jobs_table("SELECT DISTINCT backend FROM jobs"), [("slurm",)])
        self.no_jobs_left()


class SlurmExecutor(Workspace):
    def setUp(self):
        super().setUp()
        cfg = self.base_config(knobs=KNOBS_WITH_A_FAILURE)
        cfg["executor"] = {"type": "slurm", "max_jobs": 2, "poll_s": 0.1, "time": "00:10:00"}
        self.write_config(cfg)
        self.port = cfg["server"]["port"]
        self.assertEqual(self.engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def engine(self, *args):
        return self.run_engine(*args, env={"SLURM_CONF": CLUSTER.conf})

    def no_jobs_left(self):
        wait_until(lambda: CLUSTER.jobs() == {}, 60, "every job to leave squeue")

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

    def test_a_results_path_with_slurm_pattern_characters(self):
        """sbatch --output reads %j and a backslash as its filename pattern: the job's log
        is opened by its script instead, so such a path is only a path."""
        results = "pct%j\\x"
        self.assertEqual(self.engine("--config", "cfg.json", "--results", results).stdout, "BASELINE_DONE\n")
        r = self.engine("--config", "cfg.json", "--results", results)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len([l for l in rows(r.stdout) if ",na,na,na,1.0000," not in l]), 4)  # the 4 masks x0x ran
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
