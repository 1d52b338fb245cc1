"""Parallel trials on executor slots: the same table as a sequential run, each trial on
its own slot's port and environment, Ctrl-C stops every slot's server and the search
resumes, and `knobengine trial` refuses a spec whose config changed."""
import json
import os
import signal

from common import KNOBS_WITH_A_FAILURE, Sim, Workspace, table_rows as rows, load_json, reserve_port, servers_on, wait_until


class Slots(Workspace):
    def setUp(self):
        super().setUp()
        cfg = self.base_config(knobs=KNOBS_WITH_A_FAILURE)
        cfg["env"] = {"SLOT_NAME": "none"}
        self.ports = [reserve_port(), reserve_port()]
        cfg["executor"] = {"type": "local", "slots": [{"port": p, "env": {"SLOT_NAME": "s%d" % i}}
                                                      for i, p in enumerate(self.ports)]}
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")

    def test_same_table_as_a_sequential_run(self):
        out, summary = self.search()
        masks = [r.split(",")[1] for r in rows(out)]
        self.assertEqual(masks, ["000", "001", "010", "011", "100", "101", "110", "111"])
        self.assertEqual([r.split(",")[0] for r in rows(out)], [str(i) for i in range(8)])
        valid = {t["knob_mask"]: t["valid"] for t in summary["trials"]}
        self.assertEqual(valid, {m: m[1] == "0" for m in masks})  # --fail-start fails, the rest run
        failed = next(t for t in summary["trials"] if t["knob_mask"] == "010")
        self.assertIn("simulated failure while loading the model", failed["error"])
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

    def test_ctrl_c_stops_every_slot_and_the_search_resumes(self):
        e = self.start_engine("--config", "cfg.json")
        e.wait_for(r"^0,000,", stream="out")
        e.signal(signal.SIGINT)
        code, out, err = e.finish()
        self.assertEqual(code, 130, err)
        self.assertIn("Run the same command again to resume", err)
        for p in self.ports:
            wait_until(lambda: servers_on(p) == [], 10, "the servers on port %d to be gone" % p)
        self.assertFalse(os.path.exists(self.path("results", "search", "latest")))
        done = rows(out)
        out, summary = self.search()
        self.assertEqual(rows(out)[:len(done)], done)
        self.assertEqual(summary["launches"], 8 - len(done))
        self.assertEqual(len(rows(out)), 8)

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
