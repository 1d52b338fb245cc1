"""Parallel trials on local executor slots: the executor contract (executor_contract.py:
the same table as a sequential run, Ctrl-C stops every slot's server and the search
resumes, a killed search resumes) with each trial on its own slot's port and
environment; busy ports and gpus_per_trial; `knobengine trial` refuses a spec whose
config changed; and every registered backend runs the contract."""
import importlib.util
import json
import os
import unittest

import executor_contract
from common import KNOBS_WITH_A_FAILURE, Sim, Workspace, table_rows as rows, load_json, reserve_port, servers_on, wait_until


def slots_executor(cfg, ports):
    """Two slots, each with its own port and SLOT_NAME."""
    cfg["env"] = {"SLOT_NAME": "none"}
    return {"type": "local", "slots": [{"port": p, "env": {"SLOT_NAME": "s%d" % i}} for i, p in enumerate(ports)]}


class Contract(executor_contract.Contract, Workspace):
    BACKEND = "local"

    def executor(self, cfg):
        self.ports = [reserve_port(), reserve_port()]
        return slots_executor(cfg, self.ports)

    def trial_ports(self):
        return self.ports

    def check_sweep(self, out, summary):
        # each trial ran on a slot: its port and that slot's environment
        for t in summary["trials"]:
            c = t["config"]
            if c is None:
                continue
            self.assertIn(c["server"]["port"], self.ports)
            self.assertEqual(c["env"]["SLOT_NAME"], "s%d" % self.ports.index(c["server"]["port"]))
        self.assertEqual({t["config"]["server"]["port"] for t in summary["trials"]}, set(self.ports))
        run_dir = self.path("results", "search", "latest")
        self.assertFalse(os.path.exists(os.path.join(run_dir, ".slots")))
        self.assertTrue(os.path.exists(os.path.join(run_dir, "trials", "004-100", "requests.csv")))
        self.assertEqual([d for d in os.listdir(os.path.join(run_dir, "trials")) if "partial" in d], [])
        # the same strategies, batched: coord_descent's neighbourhoods at once
        out, cd = self.search("--strategy", "coord_descent")
        self.assertEqual([r.split(",")[1] for r in rows(out)][:4], ["000", "100", "010", "001"])

    def assert_nothing_runs(self):
        pass  # every slot's trial process stopped its server: trial_ports() are checked

    def after_kill(self):
        # a trial process and its server die with the engine that started them
        for p in self.ports:
            wait_until(lambda: servers_on(p) == [], 30, "the servers on port %d to be gone" % p)

    def check_resumed_after_kill(self):
        self.assertEqual(self.jobs_table("SELECT count(*) FROM jobs"), [(0,)])  # nothing to re-attach to


class EveryBackend(unittest.TestCase):
    def test_every_registered_backend_runs_the_contract(self):
        self.assertEqual(sorted(executor_contract.COVERED), executor_contract.registered_backends())
        for backend, module in executor_contract.COVERED.items():
            spec = importlib.util.find_spec(module)
            self.assertIsNotNone(spec, module)
            with open(spec.origin) as f:
                text = f.read()
            self.assertIn("class Contract(executor_contract.Contract, Workspace):", text, module)
            self.assertIn('BACKEND = "%s"' % backend, text, module)


class Slots(Workspace):
    def setUp(self):
        super().setUp()
        cfg = self.base_config(knobs=KNOBS_WITH_A_FAILURE)
        self.ports = [reserve_port(), reserve_port()]
        cfg["executor"] = slots_executor(cfg, self.ports)
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def test_trial_refuses_a_changed_config(self):
        spec = {"config": self.path("cfg.json"), "config_hash": "0000000000000000", "mask": "000", "requests": 2}
        self.write("spec.json", json.dumps(spec))
        r = self.run_engine("trial", "--spec", "spec.json", "--out", "t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("trial --spec spec.json: %s or its dataset changed since the spec was written"
                      % self.path("cfg.json"), r.stderr)
        self.write("spec.json", json.dumps(dict(spec, mask=7)))
        r = self.run_engine("trial", "--spec", "spec.json", "--out", "t")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: trial --spec spec.json: mask: expected string"))
        self.assertFalse(os.path.exists(self.path("t")))
        r = self.run_engine("trial", "--spec", "spec.json")
        self.assertEqual((r.returncode, r.stderr.strip()), (2, "knobengine: trial needs --spec and --out"))

    def test_a_busy_slot_port_is_refused_before_anything_runs(self):
        with Sim(port=self.ports[1]):
            r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("executor slot 1: 127.0.0.1:%d is already in use" % self.ports[1], r.stderr)

    def test_gpus_per_trial_from_visible_devices(self):
        cfg = load_json(self.path("cfg.json"))
        cfg["executor"] = {"type": "local", "gpus_per_trial": 2}
        # the derived slots listen on server.port and the port after it
        port = reserve_port()
        while reserve_port() != port + 1:
            port = reserve_port()
        cfg["server"]["port"] = port
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--rebaseline", env={"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_engine("--config", "cfg.json", env={"CUDA_VISIBLE_DEVICES": "3"})
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("executor.gpus_per_trial: 2 GPU(s) per trial, but 1 visible (CUDA_VISIBLE_DEVICES)", r.stderr)
        for cvd, why in [("0,0,1,2", "device 0 is listed twice"),
                         ("0,,1,2", "an empty entry (CUDA ignores every device after it)")]:
            r = self.run_engine("--config", "cfg.json", env={"CUDA_VISIBLE_DEVICES": cvd})
            self.assertEqual((r.returncode, r.stdout), (2, ""))
            self.assertIn("executor.gpus_per_trial: CUDA_VISIBLE_DEVICES='%s': %s" % (cvd, why), r.stderr)
        r = self.run_engine("--config", "cfg.json", env={"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        devices = {t["config"]["env"]["CUDA_VISIBLE_DEVICES"] for t in summary["trials"] if t["config"]}
        self.assertEqual(devices, {"4,5", "6,7"})
        # the derived slots' ports are checked before anything runs
        with Sim(port=cfg["server"]["port"] + 1):
            r = self.run_engine("--config", "cfg.json", env={"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("executor slot 1: 127.0.0.1:%d is already in use" % (cfg["server"]["port"] + 1), r.stderr)
