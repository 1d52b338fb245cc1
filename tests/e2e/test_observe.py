"""What the server saw: knobsim's Prometheus metrics scraped during every measured
phase (per trial, in the report, exactly the client's token counts), a server without
them said once, the queue gate, GPU telemetry null with its reason here, reasoning
chunks toward TTFT but not TTFOT, multi-turn conversations, and the prefix-cache reset."""
import csv
import ctypes.util
import json
import os
import unittest

from common import Workspace, load_json, read


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Observed(Workspace):
    def search(self, *args, env=None):
        """The first run of a config measures its baseline, the second searches."""
        r = self.run_engine("--config", "cfg.json", *args, env=env)
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.baseline_stderr = r.stderr
        return super().search(*args, env=env)


class ServerMetrics(Observed):
    def test_every_trial_has_the_servers_metrics_and_the_report_shows_them(self):
        cfg = self.base_config()
        cfg["server"]["metrics_interval_ms"] = 20
        self.write_config(cfg)
        _, summary = self.search()
        run = os.path.realpath(self.path("results", "search", "latest"))
        for t in summary["trials"]:
            m, d = t["metrics"], os.path.join(run, "trials", "%03d-%s" % (t["trial"], t["knob_mask"]))
            srv = m["server"]
            self.assertIsNone(srv["unavailable"])
            self.assertGreaterEqual(srv["scrapes"], 2)
            self.assertEqual(srv["failed_scrapes"], 0)
            # first scrape after the warmup, last after the last reply: exactly what the client measured
            self.assertEqual(srv["generation_tokens"], m["output_tokens"])
            self.assertEqual(srv["prompt_tokens"], m["input_tokens"])
            self.assertEqual(srv["preemptions"], 0)
            self.assertLessEqual(srv["requests_running_max"], 4)
            self.assertTrue(0 <= srv["kv_cache_usage_mean"] <= srv["kv_cache_usage_max"] <= 1)
            prefix = "prefix_caching" in t["config"]["knobs_on"]
            self.assertEqual(srv["prefix_cache_queries"] > 0, prefix, t)
            series = rows(os.path.join(d, "server_metrics.csv"))
            self.assertEqual(list(series[0].keys()), ["t_ms", "name", "labels", "type", "value"])
            self.assertEqual(series[0]["labels"], 'engine="0",model_name="m"')
            gen = [float(r["value"]) for r in series if r["name"] == "vllm:generation_tokens_total"]
            self.assertEqual(len(gen), srv["scrapes"])
            self.assertEqual(gen[-1] - gen[0], srv["generation_tokens"])
            self.assertEqual({r["type"] for r in series if r["name"] == "vllm:num_requests_running"}, {"gauge"})
        base = load_json(self.path("results", "baseline", "client_metrics.json"))
        self.assertEqual(base["server"]["generation_tokens"], base["output_tokens"])
        report = read(os.path.join(run, "report.md"))
        self.assertIn("## What the server saw", report)
        self.assertIn("| preemptions | 0 | 0 | +0 |", report)
        self.assertIn("What the server saw, best vs baseline: 0 preemptions vs 0; KV cache use", report)

    def test_a_server_without_metrics_is_said_once_and_its_figures_are_null(self):
        cfg = self.base_config()
        cfg["server"]["metrics_path"] = "/no-metrics-here"
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        said = [l for l in r.stderr.splitlines() if "server metrics:" in l]
        self.assertEqual(len(said), 1, r.stderr)
        self.assertIn("/no-metrics-here answered HTTP 404", said[0])
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        for t in summary["trials"]:
            srv = t["metrics"]["server"]
            self.assertEqual(srv["scrapes"], 0)
            self.assertIn("answered HTTP 404", srv["unavailable"])
            self.assertIsNone(srv["preemptions"])
            self.assertIsNone(srv["kv_cache_usage_mean"])
        run = os.path.realpath(self.path("results", "search", "latest"))
        self.assertFalse(os.path.exists(os.path.join(run, "trials", "000-0", "server_metrics.csv")))
        self.assertIn("The server's metrics are na: GET http", read(os.path.join(run, "report.md")))

    def test_bad_metric_names_are_refused_naming_the_key(self):
        cfg = self.base_config()
        cfg["server"]["metrics_names"] = {"kv_usage": "x"}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertEqual(r.returncode, 2)
        self.assertIn("server.metrics_names.kv_usage: is not a server metric the engine reads (generation_tokens, "
                      "kv_cache_usage, preemptions, prefix_cache_hits, prefix_cache_queries, prompt_tokens, "
                      "requests_running, requests_waiting)", r.stderr)
        cfg["server"]["metrics_names"] = {"kv_cache_usage": "not a name"}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertIn("server.metrics_names.kv_cache_usage: 'not a name' is not a Prometheus metric name", r.stderr)

    def test_names_mapped_in_the_config_are_read(self):
        cfg = self.base_config()
        cfg["server"]["metrics_names"] = {"requests_waiting": ["other:queue", "vllm:num_requests_running"]}
        cfg["knobs"] = cfg["knobs"][:1]
        self.write_config(cfg)
        _, summary = self.search()
        for t in summary["trials"]:
            srv = t["metrics"]["server"]
            self.assertEqual(srv["requests_waiting_max"], srv["requests_running_max"])

    def test_an_open_loop_that_never_lets_the_queue_drain_is_suspect(self):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("--time-scale") + 1] = "1"
        cfg["serve_cmd"] += ["--max-num-seqs", "1"]
        cfg["server"]["metrics_interval_ms"] = 20
        cfg["workload"].update({"arrival": {"type": "constant", "rate": 100}, "request_count": 40, "warmup_requests": 0})
        cfg["knobs"] = cfg["knobs"][:1]
        self.write_config(cfg)
        _, summary = self.search()
        for t in summary["trials"]:
            self.assertTrue(t["valid"])
            self.assertTrue(any("the server's queue never drained" in s for s in t["suspect"]), t["suspect"])
            self.assertGreater(t["metrics"]["server"]["requests_waiting_min"], 0)
        cfg["constraints"] = {"reject_suspect": True}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "strict")
        self.assertEqual(r.returncode, 1)
        self.assertIn("knobengine: baseline failed (suspect (constraints.reject_suspect): the server's queue never "
                      "drained (at least", r.stderr)


class GpuTelemetry(Observed):
    def test_without_a_driver_the_energy_fields_are_null_with_the_reason(self):
        if ctypes.util.find_library("nvidia-ml"):
            self.skipTest("this machine has an NVIDIA driver: tests/gpu covers it")
        cfg = self.base_config()
        cfg["knobs"] = cfg["knobs"][:1]
        self.write_config(cfg)
        _, summary = self.search()
        for t in summary["trials"]:
            m = t["metrics"]
            self.assertEqual(m["gpu"]["samples"], 0)
            self.assertEqual(m["gpu"]["unavailable"], "no NVIDIA driver: libnvidia-ml.so.1 not found")
            for k in ("power_w_mean", "energy_j", "sm_util_pct_mean", "memory_used_mib_max"):
                self.assertIsNone(m["gpu"][k])
            self.assertIsNone(m["joules_per_output_token"])
            self.assertIsNone(m["tokens_per_joule"])
        cfg["telemetry"] = {"gpu": False}
        cfg["objective"] = {"maximize": "tokens_per_joule"}
        self.write_config(cfg)
        self.run_engine("--config", "cfg.json", "--results", "off")
        self.run_engine("--config", "cfg.json", "--results", "off")
        summary = load_json(self.path("off", "search", "latest", "summary.json"))
        self.assertEqual(summary["trials"][0]["metrics"]["gpu"]["unavailable"], "GPU telemetry is off (telemetry.gpu)")


    def test_a_recorded_driver_gives_every_figure_and_energy_per_token(self):
        lib = os.environ.get("RECORDED_NVML_DIR")
        if not lib:
            self.skipTest("RECORDED_NVML_DIR is not set (run through ctest)")
        cfg = self.base_config()
        cfg["knobs"] = cfg["knobs"][:1]
        cfg["server"]["metrics_interval_ms"] = 20
        cfg["workload"]["request_count"] = 24
        self.write_config(cfg)
        env = {"LD_LIBRARY_PATH": lib}
        _, summary = self.search(env=env)
        run = os.path.realpath(self.path("results", "search", "latest"))
        for t in summary["trials"]:
            m, g = t["metrics"], t["metrics"]["gpu"]
            self.assertIsNone(g["unavailable"])
            self.assertGreaterEqual(g["samples"], 2)
            self.assertEqual((g["power_w_mean"], g["power_w_max"]), (200, 200))  # 150 W + 50 W
            self.assertEqual((g["sm_util_pct_mean"], g["memory_util_pct_mean"]), (50, 20))
            self.assertEqual(g["memory_used_mib_max"], 3072)
            self.assertEqual((g["sm_clock_mhz_mean"], g["memory_clock_mhz_mean"]), (1250, 2000))
            # the energy counters from the sample before the phase to the one after: 200 W for a bit more than it
            self.assertGreaterEqual(g["energy_j"], 200 * m["duration_s"] - 0.002)
            self.assertLess(g["energy_j"], 200 * (m["duration_s"] + 0.1))
            self.assertAlmostEqual(m["joules_per_output_token"], g["energy_j"] / m["output_tokens"], places=9)
            self.assertAlmostEqual(m["tokens_per_joule"], m["output_tokens"] / g["energy_j"], places=6)
            d = os.path.join(run, "trials", "%03d-%s" % (t["trial"], t["knob_mask"]))
            samples = rows(os.path.join(d, "gpu_telemetry.csv"))
            self.assertEqual(len(samples), 2 * g["samples"])
            self.assertEqual([(r["gpu"], r["power_w"], r["memory_used_mib"]) for r in samples[:2]],
                             [("0", "150", "1024"), ("1", "50", "2048")])
        # a server given GPU 1 only: that GPU's figures
        cfg["env"] = {"CUDA_VISIBLE_DEVICES": "1"}
        cfg["objective"] = {"maximize": "tokens_per_joule"}
        self.write_config(cfg)
        self.run_engine("--config", "cfg.json", "--results", "one", env=env)
        r = self.run_engine("--config", "cfg.json", "--results", "one", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        summary = load_json(self.path("one", "search", "latest", "summary.json"))
        g = summary["trials"][0]["metrics"]["gpu"]
        self.assertEqual((g["power_w_mean"], g["sm_util_pct_mean"], g["memory_used_mib_max"]), (50, 40, 2048))
        self.assertEqual(summary["trials"][0]["objective_value"], summary["trials"][0]["metrics"]["tokens_per_joule"])


class Traffic(Observed):
    def chat_config(self, *sim_args, **workload):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("--time-scale") + 1] = "1"  # the fixed latencies as given
        cfg["serve_cmd"] += list(sim_args)
        cfg["workload"].update({"endpoint": "/v1/chat/completions", "concurrency": 1, "warmup_requests": 0}, **workload)
        cfg["knobs"] = cfg["knobs"][:1]
        return cfg

    def test_reasoning_counts_toward_ttft_and_not_toward_the_first_output_token(self):
        cfg = self.chat_config("--reasoning-tokens", "3", "--fixed-ttft-ms", "40", "--fixed-tpot-ms", "30",
                               request_count=4)
        self.write_config(cfg)
        _, summary = self.search()
        run = os.path.realpath(self.path("results", "search", "latest"))
        for r in rows(os.path.join(run, "trials", "000-0", "requests.csv")):
            ttft, ttfot = float(r["ttft_ms"]), float(r["ttfot_ms"])
            self.assertGreater(ttft, 35)
            self.assertLess(ttft, 80)
            self.assertGreater(ttfot - ttft, 3 * 30 - 10)  # the three reasoning tokens
            self.assertLess(ttfot - ttft, 3 * 30 + 40)
            self.assertEqual(int(r["output_tokens"]), 8)  # reasoning tokens are output tokens
        m = summary["trials"][0]["metrics"]
        self.assertGreater(m["ttfot_ms"]["p50"], m["ttft_ms"]["p50"] + 80)

    def write_conversations(self):
        convs = []
        for c in range(2):
            turns = []
            for k in range(3):
                turns.append({"from": "human", "value": " ".join("c%dt%dw%d" % (c, k, i) for i in range(20))})
                turns.append({"from": "gpt", "value": " ".join(["r"] * (2 + k))})
            convs.append({"conversations": turns})
        self.write("chats.json", json.dumps(convs))

    def test_multi_turn_conversations_send_each_turn_with_its_history_after_the_reply(self):
        self.write_conversations()
        cfg = self.chat_config(dataset="chats.json", request_count=6, multi_turn={"think_time_ms": 150})
        self.write_config(cfg)
        _, summary = self.search()
        run = os.path.realpath(self.path("results", "search", "latest"))
        reqs = rows(os.path.join(run, "trials", "000-0", "requests.csv"))
        self.assertEqual(len(reqs), 6)
        prompts = [int(r["prompt_tokens"]) for r in reqs]
        outputs = [int(r["output_tokens"]) for r in reqs]
        self.assertEqual(outputs, [2, 3, 4, 2, 3, 4])  # each turn asks for its recorded reply's length
        for c in (0, 3):  # the history grows: turn k carries the turns before it
            self.assertLess(prompts[c], prompts[c + 1])
            self.assertLess(prompts[c + 1], prompts[c + 2])
        for i in (1, 2, 4, 5):  # a turn is sent after the previous reply plus the think time
            prev_end = float(reqs[i - 1]["sent_ms"]) + float(reqs[i - 1]["latency_ms"])
            self.assertGreaterEqual(float(reqs[i]["sent_ms"]) - prev_end, 149)
        turns = summary["trials"][0]["metrics"]["turns"]
        self.assertEqual([(t["turn"], t["requests"], t["completed"]) for t in turns], [(1, 2, 2), (2, 2, 2), (3, 2, 2)])

    def test_multi_turn_needs_the_chat_endpoint_and_a_closed_loop(self):
        self.write_conversations()
        cfg = self.chat_config(dataset="chats.json", multi_turn={})
        cfg["workload"]["endpoint"] = "/v1/completions"
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertEqual(r.returncode, 2)
        self.assertIn('workload.multi_turn: needs workload.endpoint "/v1/chat/completions"', r.stderr)
        cfg["workload"]["endpoint"] = "/v1/chat/completions"
        cfg["workload"]["arrival"] = {"type": "poisson", "rate": 5}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertIn("workload.multi_turn: needs a closed loop: each turn waits for the previous reply", r.stderr)

    def test_the_prefix_cache_reset_keeps_the_warmup_out_of_the_measured_phase(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--enable-prefix-caching"]
        cfg["workload"].update({"concurrency": 1, "warmup_requests": 6, "request_count": 6})
        cfg["knobs"] = cfg["knobs"][1:]
        self.write_config(cfg)
        _, summary = self.search()
        hits = summary["trials"][0]["metrics"]["server"]["prefix_cache_hits"]
        self.assertGreater(hits, 0)  # the warmup sent these prompts: the measured phase hits the cache
        cfg["server"]["reset_prefix_cache"] = True
        self.write_config(cfg)
        self.run_engine("--config", "cfg.json", "--results", "reset")
        self.run_engine("--config", "cfg.json", "--results", "reset")
        summary = load_json(self.path("reset", "search", "latest", "summary.json"))
        srv = summary["trials"][0]["metrics"]["server"]
        # only what the measured requests share among themselves is a hit now
        self.assertLess(srv["prefix_cache_hits"], hits)


if __name__ == "__main__":
    unittest.main()
