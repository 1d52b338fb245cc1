"""knobengine end to end against the simulated server: baseline then search, strict
stdout, every artifact, the choice of the best, failing trials, and failed runs."""
import csv
import io
import json
import os
import socket
import stat
import subprocess

from common import Workspace, KNOBSIM, load_json, read

HEADER = "trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms"
RESULT_KEYS = {"ok", "error", "request_count", "completed", "failed", "error_rate", "duration_s",
               "p50_latency_ms", "p95_latency_ms", "p99_latency_ms", "mean_latency_ms", "ttft_ms",
               "tpot_ms", "itl_ms", "output_tokens", "input_tokens", "tokens_per_s", "requests_per_s",
               "send_lateness_ms", "concurrency_cap_hits", "read_lag_ms", "token_mismatch", "goodput",
               "slo_attainment_pct", "slo_met", "slo_at_percentile", "ttfot_ms", "server", "gpu",
               "joules_per_output_token", "tokens_per_joule"}


def parse_table(lines, n_rows):
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[:n_rows + 1]))))
    return rows


def best_of(rows):
    """The best valid row by p50, then p95, then tokens/s, then trial (README "What it prints")."""
    valid = [r for r in rows if r["p50_latency_ms"] != "na"]
    return min(valid, key=lambda r: (float(r["p50_latency_ms"]), float(r["p95_latency_ms"]),
                                     -float(r["tokens_per_s"]), int(r["trial"])))


class TwoRuns(Workspace):
    def test_baseline_then_search(self):
        cfg = self.base_config()
        self.write_config(cfg)
        # first run: baseline
        r = self.run_engine("--config", "cfg.json", "--results", "res")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "BASELINE_DONE\n")
        self.assertEqual(r.stderr.count("nsys not found"), 1, r.stderr)
        base = self.path("res", "baseline")
        self.assertEqual(sorted(os.listdir(base)), ["client_metrics.json", "config.json", "environment.json",
                                                   "inputs_manifest.json", "logs.txt", "nvtx_phases.json",
                                                   "profiling_overhead.json", "requests.csv", "server_metrics.csv",
                                                   "trace_summary.json"])
        # no nsys: no profiled launch at all, and the overhead is null with the reason
        overhead = load_json(os.path.join(base, "profiling_overhead.json"))
        self.assertEqual((overhead["profiled_p50_latency_ms"], overhead["overhead_percent"]), (None, None))
        self.assertIn("nsys not found", overhead["reason"])
        metrics = load_json((os.path.join(base, "client_metrics.json")))
        self.assertEqual(set(metrics), RESULT_KEYS)
        self.assertEqual((metrics["ok"], metrics["request_count"], metrics["completed"], metrics["error_rate"]), (True, 12, 12, 0))
        self.assertEqual(metrics["output_tokens"], 12 * 8)
        self.assertEqual(set(metrics["ttft_ms"]), {"p50", "p95", "p99", "mean"})
        self.assertLessEqual(metrics["ttft_ms"]["p50"], metrics["p50_latency_ms"])
        conf = load_json((os.path.join(base, "config.json")))
        self.assertEqual(conf["knob_mask"], "00")
        self.assertEqual(conf["argv"][-4:], ["--time-scale", "0.05", "--seed", "1"])
        self.assertIn(str(cfg["server"]["port"]), conf["argv"])
        trace = load_json((os.path.join(base, "trace_summary.json")))
        self.assertEqual((trace["ok"], trace["gpu_compute_ms"], trace["top_kernels"]), (False, None, []))
        self.assertIn("nsys not found", trace["reason"])
        self.assertEqual(load_json((os.path.join(base, "nvtx_phases.json"))), {"get_batch": None, "prefill": None, "decode": None})
        with open(os.path.join(base, "requests.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 12)
        self.assertEqual(list(rows[0]), ["request", "scheduled_ms", "sent_ms", "ttft_ms", "ttfot_ms", "latency_ms", "output_tokens",
                                         "prompt_tokens", "http_status", "error"])
        self.assertTrue(all(r["scheduled_ms"] == "" for r in rows))  # a closed loop has no schedule
        self.assertEqual((metrics["goodput"], metrics["slo_met"], metrics["send_lateness_ms"]["p99"]), (None, None, None))
        # streamed: how long data waited before the client read it (well under 5 ms here)
        self.assertLessEqual(metrics["read_lag_ms"]["p50"], metrics["read_lag_ms"]["p99"])
        self.assertLessEqual(metrics["read_lag_ms"]["p99"], metrics["read_lag_ms"]["max"])
        self.assertTrue(all(r["http_status"] == "200" and r["output_tokens"] == "8" and r["error"] == "" for r in rows))
        self.assertIn("Started server process", read(os.path.join(base, "logs.txt")))

        # second run: search
        r = self.run_engine("--config", "cfg.json", "--results", "res")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.split("\n")
        self.assertEqual(lines[-1], "")
        lines = lines[:-1]
        self.assertEqual(lines[0], HEADER)
        rows = parse_table(lines, 4)
        self.assertEqual([row["knob_mask"] for row in rows], ["00", "01", "10", "11"])
        self.assertEqual([row["trial"] for row in rows], ["0", "1", "2", "3"])
        for row in rows:
            self.assertRegex(row["p50_latency_ms"], r"^\d+\.\d{3}$")
            self.assertEqual(row["error_rate"], "0.0000")
        best = best_of(rows)
        self.assertEqual(lines[5], "BEST,knob_mask=%s,p50_latency_ms=%s,delta_p50_ms=%s"
                         % (best["knob_mask"], best["p50_latency_ms"], best["delta_p50_ms"]))
        self.assertEqual(lines[6:], [
            "BEST_VS_BASELINE",
            "p50_latency_ms: %.3f -> %s (%s)" % (metrics["p50_latency_ms"], best["p50_latency_ms"], best["delta_p50_ms"]),
            lines[8], lines[9], "",
            "gpu_compute_ms: na -> na (na)", "memcpy_ms: na -> na (na)", "osrt_wait_ms: na -> na (na)", "",
            "nvtx_get_batch_ms: na -> na (na)", "nvtx_prefill_ms: na -> na (na)", "nvtx_decode_ms: na -> na (na)", "",
            "TOP_KERNELS_BASELINE", "1) na", "",
            "TOP_KERNELS_BEST", "1) na",
        ])
        self.assertRegex(lines[8], r"^p95_latency_ms: \d+\.\d{3} -> %s \([+-]\d+\.\d{3}\)$" % best["p95_latency_ms"])
        self.assertRegex(lines[9], r"^tokens_per_s: \d+\.\d{3} -> %s \([+-]\d+\.\d{3}\)$" % best["tokens_per_s"])

        latest = self.path("res", "search", "latest")
        self.assertTrue(os.path.islink(latest))
        self.assertEqual(sorted(os.listdir(self.path("res", "search"))), sorted(["latest", os.readlink(latest)]))
        self.assertEqual(sorted(os.listdir(latest)), ["best", "best_command.sh", "best_config.json", "environment.json",
                                                      "inputs_manifest.json", "plots", "report.html", "report.md",
                                                      "summary.csv", "summary.json", "trials"])
        self.assertEqual(read(os.path.join(latest, "summary.csv")), "\n".join(lines[:5]) + "\n")
        summary = load_json((os.path.join(latest, "summary.json")))
        self.assertEqual(len(summary["trials"]), 4)
        for row, t in zip(rows, summary["trials"]):  # the table shows the exact metrics
            self.assertEqual(row["p50_latency_ms"], "%.3f" % t["metrics"]["p50_latency_ms"])
            self.assertEqual(row["delta_p50_ms"], "%+.3f" % (t["metrics"]["p50_latency_ms"] - metrics["p50_latency_ms"]))
        self.assertEqual(summary["best_trial"], int(best["trial"]))
        self.assertEqual(summary["launches"], 4)
        self.assertEqual(summary["baseline"]["metrics"]["p50_latency_ms"], metrics["p50_latency_ms"])
        self.assertEqual(set(summary["profiling_overhead"]), {"baseline", "best"})
        self.assertEqual(summary["profiling_overhead"]["best"]["unprofiled_p50_latency_ms"],
                         summary["trials"][int(best["trial"])]["metrics"]["p50_latency_ms"])
        t1 = summary["trials"][1]
        self.assertEqual((t1["knob_mask"], t1["ok"], t1["valid"], t1["error"]), ("01", True, True, None))
        self.assertEqual(t1["config"]["argv"][-1], "--enforce-eager")
        self.assertEqual(t1["config"]["knobs_on"], ["eager"])
        self.assertTrue(RESULT_KEYS - {"ok", "error"} <= set(t1["metrics"]))
        for t in summary["trials"]:
            self.assertTrue(os.path.exists(t["log"]) or os.path.exists(os.path.join(latest, "trials", os.path.basename(os.path.dirname(t["log"])), "logs.txt")))
        self.assertEqual(sorted(os.listdir(os.path.join(latest, "trials"))), ["000-00", "001-01", "002-10", "003-11"])
        for d in os.listdir(os.path.join(latest, "trials")):
            self.assertEqual(sorted(os.listdir(os.path.join(latest, "trials", d))), ["logs.txt", "requests.csv", "server_metrics.csv"])
        best_cfg = load_json((os.path.join(latest, "best_config.json")))
        self.assertEqual(best_cfg["knob_mask"], best["knob_mask"])
        # the best's sweep log and requests (SPEC.md's best/logs.txt) beside its profile
        self.assertEqual(sorted(os.listdir(os.path.join(latest, "best"))), ["client_metrics.json", "config.json",
                                                                           "logs.txt", "nvtx_phases.json",
                                                                           "profiling_overhead.json", "requests.csv",
                                                                           "trace_summary.json"])
        trial_dir = os.path.join(latest, "trials", "%03d-%s" % (int(best["trial"]), best["knob_mask"]))
        for name in ("logs.txt", "requests.csv"):
            self.assertEqual(read(os.path.join(latest, "best", name)), read(os.path.join(trial_dir, name)))
        # the best's client metrics are its sweep trial's, measured without nsys
        self.assertEqual(load_json(os.path.join(latest, "best", "client_metrics.json"))["p50_latency_ms"],
                         summary["trials"][int(best["trial"])]["metrics"]["p50_latency_ms"])
        script = os.path.join(latest, "best_command.sh")
        self.assertTrue(os.stat(script).st_mode & stat.S_IXUSR)
        text = read(script)
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        self.assertIn("exec " + KNOBSIM + " serve m --port %d" % cfg["server"]["port"], text)

    def test_failing_trials_are_recorded_and_never_chosen(self):
        cfg = self.base_config(knobs=[
            {"name": "broken", "flag": "--fail-start"},
            {"name": "errors", "key": "--error-rate", "on_value": "1"},
        ])
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[1], r"^0,00,\d+\.\d{3},\d+\.\d{3},\d+\.\d{3},0\.0000,[+-]\d+\.\d{3}$")
        self.assertEqual(lines[2:5], ["1,01,na,na,na,1.0000,na", "2,10,na,na,na,1.0000,na", "3,11,na,na,na,1.0000,na"])
        self.assertTrue(lines[5].startswith("BEST,knob_mask=00,"))
        summary = load_json((self.path("results", "search", "latest", "summary.json")))
        errs = [t["error"] for t in summary["trials"]]
        self.assertIsNone(errs[0])
        self.assertIn("12 of 12 requests failed (first: HTTP 500: {\"object\":\"error\",\"message\":\"simulated internal error\"", errs[1])
        self.assertIn("server exited before it was ready: server exited with status 1", errs[2])
        self.assertIn("simulated failure while loading the model", errs[2])
        self.assertIn("trial 1 (mask 01) is invalid", r.stderr)

    def test_every_trial_invalid(self):
        cfg = self.base_config()
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        # no server becomes ready in a millisecond (a timeout is not part of the
        # baseline's identity: the search still compares against it)
        cfg["server"]["ready_timeout_s"] = 0.001
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [HEADER, "0,00,na,na,na,1.0000,na", "1,01,na,na,na,1.0000,na",
                                                 "2,10,na,na,na,1.0000,na", "3,11,na,na,na,1.0000,na"])
        self.assertIn("no valid trial", r.stderr.splitlines()[-1])
        latest = self.path("results", "search", "latest")
        self.assertFalse(os.path.exists(os.path.join(latest, "best")))
        self.assertTrue(os.path.exists(os.path.join(latest, "summary.json")))

    def test_failed_baseline_writes_nothing(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--fail-start"]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        self.assertIn("baseline failed (server exited before it was ready", r.stderr)
        self.assertEqual(os.listdir(self.path("results")), [])

    def test_port_in_use_is_a_clear_error(self):
        cfg = self.base_config()
        self.write_config(cfg)
        with socket.socket() as s:
            s.bind(("127.0.0.1", cfg["server"]["port"]))
            s.listen(1)
            r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "knobengine: server.port: 127.0.0.1:%d is already in use (is a server still running?)\n" % cfg["server"]["port"])
        self.assertFalse(os.path.exists(self.path("results")))

    def test_chat_endpoint_and_string_command(self):
        cfg = self.base_config()
        cfg["serve_cmd"] = "'%s' serve m --port {port} --time-scale 0.02" % KNOBSIM
        cfg["workload"]["endpoint"] = "/v1/chat/completions"
        cfg["knobs"] = [{"name": "backend", "env": "VLLM_ATTENTION_BACKEND", "on_value": "FLASHINFER"}]
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").stdout, "BASELINE_DONE\n")
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], HEADER)
        self.assertEqual([l.split(",")[1] for l in r.stdout.splitlines()[1:3]], ["0", "1"])
        summary = load_json((self.path("results", "search", "latest", "summary.json")))
        self.assertEqual(summary["trials"][1]["config"]["env"]["VLLM_ATTENTION_BACKEND"], "FLASHINFER")


BROKEN_IMPORTER = """#!/bin/sh
echo "$0: error while loading shared libraries: libdw.so.1: cannot open shared object file: No such file or directory" >&2
exit 127
"""

FAKE_NSYS_LOGGING = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../calls.log"
exit 1
"""


class ImporterCheck(Workspace):
    """nsys's report importer is found and tried before any capture: one that cannot
    start is named, with the library it misses and its package, and nothing is
    profiled; the baseline still completes."""

    def fake_install(self, importer_dir, importer):
        root = self.path("nsight")
        os.makedirs(os.path.join(root, "target-linux-x64"))
        os.makedirs(os.path.join(root, importer_dir))
        nsys = os.path.join(root, "target-linux-x64", "nsys")
        for path, text in ((nsys, FAKE_NSYS_LOGGING), (os.path.join(root, importer_dir, "QdstrmImporter"), importer)):
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o755)
        return nsys

    def test_importer_that_cannot_start_is_named_before_capture(self):
        # the layout of the nsys bundled with Nsight Compute
        nsys = self.fake_install("linux-desktop-glibc_2_11_3-x64", BROKEN_IMPORTER)
        cfg = self.base_config()
        cfg["nsys"] = {"bin": nsys}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        importer = os.path.join(self.path("nsight"), "target-linux-x64", "..", "linux-desktop-glibc_2_11_3-x64", "QdstrmImporter")
        # the only message, but for the client's own lateness warning, which a slow (sanitized) build may add
        said = "".join(l for l in r.stderr.splitlines(True) if "the client read streamed data late" not in l)
        self.assertEqual(said, "knobengine: nsys's report importer %s cannot start: libdw.so.1 is missing (install "
                         "the package libdw1); trace metrics will be na\n" % importer)
        self.assertFalse(os.path.exists(self.path("nsight", "calls.log")))  # nsys never ran: no capture
        trace = load_json(self.path("results", "baseline", "trace_summary.json"))
        self.assertIn("libdw.so.1 is missing", trace["reason"])

    def test_no_importer_at_all(self):
        nsys = self.fake_install("elsewhere", "#!/bin/sh\nexit 0\n")
        os.remove(self.path("nsight", "elsewhere", "QdstrmImporter"))
        cfg = self.base_config()
        cfg["nsys"] = {"bin": nsys}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nsys's report importer (QdstrmImporter) was not found near '%s'" % nsys, r.stderr)
        self.assertFalse(os.path.exists(self.path("nsight", "calls.log")))
