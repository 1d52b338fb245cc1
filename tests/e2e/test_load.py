"""Realistic load against the simulated server: open-loop arrivals on a reproducible
schedule, the dataset formats, SLOs and goodput, the capacity search, the load sweep
and its knee, and the errors of each new key."""
import csv
import json
import os
import re
import shutil

from common import Workspace, load_json, read


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


class OpenLoop(Workspace):
    def config(self, arrival, **workload):
        cfg = self.base_config()
        cfg["workload"].update({"arrival": arrival, "request_count": 60, "warmup_requests": 2}, **workload)
        return cfg

    def baseline(self, cfg, results="results"):
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", results)
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        return r, os.path.join(self.dir, results, "baseline")

    def test_poisson_schedule_is_kept_and_reproducible(self):
        cfg = self.config({"type": "poisson", "rate": 200})
        _, base = self.baseline(cfg)
        reqs = rows(os.path.join(base, "requests.csv"))
        sched = [float(r["scheduled_ms"]) for r in reqs]
        self.assertEqual(len(sched), 60)
        self.assertEqual(sched[0], 0.0)
        self.assertEqual(sched, sorted(sched))
        for r in reqs:  # never sent before it was due
            self.assertGreaterEqual(float(r["sent_ms"]), float(r["scheduled_ms"]) - 0.001)
        m = load_json(os.path.join(base, "client_metrics.json"))
        self.assertIsInstance(m["send_lateness_ms"]["p99"], float)
        self.assertEqual(m["concurrency_cap_hits"], 0)
        # the same seed: the same schedule; another seed: another one
        _, again = self.baseline(cfg, "again")
        self.assertEqual([r["scheduled_ms"] for r in rows(os.path.join(again, "requests.csv"))], [r["scheduled_ms"] for r in reqs])
        cfg["workload"]["seed"] = 1
        _, other = self.baseline(cfg, "other")
        self.assertNotEqual([r["scheduled_ms"] for r in rows(os.path.join(other, "requests.csv"))], [r["scheduled_ms"] for r in reqs])

    def test_constant_rate_and_the_cap(self):
        # 1000 requests/s against a server that needs ~20 ms each (fixed latencies, so a
        # busy machine cannot make it faster than the schedule), at most 2 in flight:
        # requests wait for a slot, and stderr says the client fell behind
        cfg = self.config({"type": "constant", "rate": 1000}, max_concurrency=2)
        cfg["serve_cmd"] += ["--fixed-ttft-ms", "200", "--fixed-tpot-ms", "40"]  # x --time-scale 0.05
        r, base = self.baseline(cfg)
        sched = [float(x["scheduled_ms"]) for x in rows(os.path.join(base, "requests.csv"))]
        self.assertEqual(sched[:3], [0.0, 1.0, 2.0])
        m = load_json(os.path.join(base, "client_metrics.json"))
        self.assertGreater(m["concurrency_cap_hits"], 0)
        self.assertIn("the client fell behind its schedule", r.stderr)

    def test_trace_arrival_uses_the_datasets_timestamps(self):
        lines = [json.dumps({"timestamp": 1000 + 40 * i, "input_length": 30 + i, "output_length": 4,
                             "hash_ids": [1, 2 + i % 3]}) for i in range(20)]
        self.write("trace.jsonl", "\n".join(lines) + "\n")
        cfg = self.config({"type": "trace"}, dataset="trace.jsonl", request_count=20)
        _, base = self.baseline(cfg)
        reqs = rows(os.path.join(base, "requests.csv"))
        self.assertEqual([float(r["scheduled_ms"]) for r in reqs], [40.0 * i for i in range(20)])
        self.assertEqual([r["output_tokens"] for r in reqs], ["4"] * 20)
        self.assertEqual([int(r["prompt_tokens"]) for r in reqs], [30 + i for i in range(20)])  # the server's own count

    def test_a_vidur_csv_trace_replayed_at_its_timestamps(self):
        """dataset_format csv (auto for *.csv): arrived_at in seconds, scaled by time_scale;
        prompts of num_prefill_tokens words, outputs of num_decode_tokens tokens."""
        lines = ["arrived_at,num_prefill_tokens,num_decode_tokens,num_total_tokens"]
        lines += ["%s,%d,%d,%d" % (0.5 + 0.08 * i, 20 + i, 3 + i % 2, 23 + i + i % 2) for i in range(12)]
        self.write("trace.csv", "\n".join(lines) + "\n")
        cfg = self.config({"type": "trace", "time_scale": 0.5}, dataset="trace.csv", request_count=12)
        _, base = self.baseline(cfg)
        reqs = rows(os.path.join(base, "requests.csv"))
        self.assertEqual([round(float(r["scheduled_ms"]), 3) for r in reqs], [round(40.0 * i, 3) for i in range(12)])
        self.assertEqual([int(r["output_tokens"]) for r in reqs], [3 + i % 2 for i in range(12)])
        self.assertEqual([int(r["prompt_tokens"]) for r in reqs], [20 + i for i in range(12)])  # the server's own count
        # a trace replay writes the calibration template too: 12 requests over 11 x 40 ms
        tpl = load_json(os.path.join(base, "calibration_template.json"))
        self.assertEqual((tpl["experiment_id"], tpl["workload"]["type"], tpl["workload"]["dataset"]), ("00-trace", "trace", "trace.csv"))
        self.assertAlmostEqual(tpl["workload"]["rps"], 11 / 0.44, places=6)
        m = load_json(os.path.join(base, "client_metrics.json"))
        self.assertEqual(tpl["metrics"]["ttft_ms"]["p50"], m["ttft_ms"]["p50"])
        self.assertEqual(tpl["metrics"]["e2e_latency_s"]["p99"], m["p99_latency_ms"] / 1000)
        self.write("bad.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,2\n1,5\n")
        cfg["workload"]["dataset"] = "bad.csv"
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "bad")
        self.assertEqual(r.returncode, 2)
        self.assertIn("workload.dataset: bad.csv line 3: has 2 fields, the header 3", r.stderr)

    def test_sharegpt_and_synthetic(self):
        convs = [{"id": str(i), "conversations": [{"from": "human", "value": "question %d " % i * 5},
                                                 {"from": "gpt", "value": "w " * (3 + i % 4)}]} for i in range(10)]
        self.write("sg.json", json.dumps(convs))
        cfg = self.base_config()
        cfg["workload"].update({"dataset": "sg.json", "request_count": 10})
        _, base = self.baseline(cfg)
        self.assertEqual([int(r["output_tokens"]) for r in rows(os.path.join(base, "requests.csv"))], [3 + i % 4 for i in range(10)])
        cfg = self.base_config()
        del cfg["workload"]["dataset"]
        cfg["workload"].update({"synthetic": {"input_tokens": 50, "output_tokens": 6}, "request_count": 8})
        _, base = self.baseline(cfg, "syn")
        reqs = rows(os.path.join(base, "requests.csv"))
        self.assertEqual({(r["prompt_tokens"], r["output_tokens"]) for r in reqs}, {("50", "6")})


class Slo(Workspace):
    def test_an_objective_no_trial_measured_is_said(self):
        cfg = self.base_config(slo={"ttft_ms": 10000}, objective={"maximize": "max_rate"})
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json")  # bruteforce never runs search:capacity
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no valid trial has a value of the objective max_rate (only trials a strategy runs with "
                      "search:capacity measure it); the best is chosen by the tie-breakers alone", r.stderr)

    def test_a_goodput_objective_is_printed_and_kept_per_trial(self):
        cfg = self.base_config(slo={"ttft_ms": 10000, "e2e_ms": 100000}, objective={"maximize": "goodput"})
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        out, summary = self.search()
        lines = out.splitlines()
        base = load_json(self.path("results", "baseline", "client_metrics.json"))
        best = next(t for t in summary["trials"] if t["trial"] == summary["best_trial"])
        # the SPEC's lines as they are, one OBJECTIVE line after BEST
        self.assertTrue(lines[5].startswith("BEST,knob_mask="), lines)
        self.assertEqual(lines[6], "OBJECTIVE,metric=goodput,direction=maximize,baseline=%.3f,best=%.3f,delta=%+.3f" % (
            base["goodput"], best["metrics"]["goodput"], best["metrics"]["goodput"] - base["goodput"]))
        self.assertEqual(lines[7], "BEST_VS_BASELINE")
        for t in summary["trials"]:
            self.assertEqual(t["objective_value"], t["metrics"]["goodput"])
        self.assertEqual((summary["objective"]["baseline_value"], summary["objective"]["best_value"],
                          summary["objective"]["baseline_source"]), (base["goodput"], best["metrics"]["goodput"], "client_metrics"))
        table = read(self.path("results", "search", "latest", "summary.csv")).splitlines()
        self.assertEqual(table[0], "trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms,goodput")
        for row, printed, t in zip(table[1:], lines[1:5], summary["trials"]):
            self.assertEqual(row, printed + ",%.3f" % t["metrics"]["goodput"])
        # the report leads with it: headline, Aggregates' first row, a column and a plot of it
        md = read(self.path("results", "search", "latest", "report.md"))
        b, w = "%.3f" % base["goodput"], "%.3f" % best["metrics"]["goodput"]
        verb = "keeps" if b == w else "raises" if float(w) > float(b) else "lowers"
        self.assertIn(("it keeps goodput (req/s), the objective, at %s;" % w) if verb == "keeps" else
                      "it %s goodput (req/s), the objective, from %s to %s (" % (verb, b, w), md.split("\n\n")[2])
        self.assertRegex(md, r"\| Metric \| Baseline \| Best \| Delta \| Change \|\n[^\n]+\n\| goodput \(req/s\), the objective \| %s \| %s \|" % (b, w))
        self.assertIn("| Trial | Mask | Knobs on | Objective: goodput (req/s) | p50 ms |", md)
        self.assertIn("Knobs by the size of their main effect on goodput (req/s): ", md)
        if shutil.which("gnuplot"):
            self.assertIn("](plots/objective.svg)", md)

    def test_a_max_rate_objective_compares_with_the_baselines_capacity_measured_once(self):
        cfg = self.base_config(slo={"ttft_ms": 10000}, objective={"maximize": "max_rate"},
                               capacity={"start_rate": 50, "max_rate": 100, "max_probes": 2, "min_probe_s": 0})
        self.write_config(cfg)
        self.write("cap.lua", 'return { name = "capacity_of_one", run = function(search) search:capacity("10") end }\n')
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        r = self.run_engine("--config", "cfg.json", "--strategy", "cap.lua")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("measuring the baseline's capacity once for the objective max_rate (kept in ", r.stderr)
        kept = load_json(self.path("results", "baseline", "capacity", "capacity.json"))
        self.assertEqual((kept["knob_mask"], kept["max_rate"], kept["bound"]), ("00", 100.0, "lower"))
        lines = r.stdout.splitlines()
        # both held at every rate probed up to capacity.max_rate: each only "at least" (bound lower)
        self.assertEqual(lines[3], "OBJECTIVE,metric=max_rate,direction=maximize,baseline=100.000,best=100.000,delta=+0.000,"
                                   "baseline_bound=lower,best_bound=lower")
        # BEST_VS_BASELINE: the baseline's probe at its capacity, not its closed-loop run
        at = [p for p in kept["probes"] if p["rate"] == 100.0][0]["metrics"]
        self.assertEqual(lines[5], "p50_latency_ms: %.3f -> " % at["p50_latency_ms"] + lines[5].split(" -> ")[1])
        summary = load_json(self.path("results", "search", "latest", "summary.json"))
        self.assertEqual(summary["objective"]["baseline_source"], "capacity")
        self.assertEqual((summary["objective"]["baseline_bound"], summary["trials"][0]["capacity_bound"]), ("lower", "lower"))
        md = read(self.path("results", "search", "latest", "report.md"))
        self.assertIn("it keeps capacity (req/s), the objective, at 100.000 (baseline at least: the SLO held at every rate "
                      "probed; best at least: the SLO held at every rate probed)", md)
        self.assertEqual(summary["trials"][0]["objective_value"], 100.0)
        self.assertEqual(read(self.path("results", "search", "latest", "summary.csv")).splitlines()[0],
                         "trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms,max_rate")
        r = self.run_engine("--config", "cfg.json", "--strategy", "cap.lua")  # kept: not measured again
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("measuring the baseline's capacity", r.stderr)
        self.assertEqual(r.stdout.splitlines()[3], lines[3])

    def test_a_capacity_probe_held_back_by_max_concurrency_does_not_hold(self):
        # one request in flight at most against 2000 requests/s: the queue is the client's
        cfg = self.base_config(slo={"ttft_ms": 100000})
        cfg["workload"].update({"arrival": {"type": "poisson", "rate": 5}, "max_concurrency": 1})
        cfg["capacity"] = {"start_rate": 2000, "max_probes": 1, "min_probe_s": 0}
        self.write_config(cfg)
        r = self.run_engine("capacity", "--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[1].startswith("2000.000,12,"), lines)
        self.assertTrue(lines[1].endswith(",0,max_concurrency"), lines[1])
        self.assertEqual(lines[-1], "MAX_RATE,knob_mask=00,rate=na,bound=upper")

    def test_goodput_attainment_and_the_constraint(self):
        cfg = self.base_config()
        cfg["slo"] = {"ttft_ms": 10000, "e2e_ms": 100000}  # met by every request
        cfg["objective"] = {"maximize": "goodput", "tie_breakers": []}
        self.write_config(cfg)
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        m = load_json(self.path("results", "baseline", "client_metrics.json"))
        self.assertEqual((m["slo_met"], m["slo_attainment_pct"]), (True, 100.0))
        self.assertAlmostEqual(m["goodput"], m["requests_per_s"], places=6)
        self.assertEqual(set(m["slo_at_percentile"]), {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"})
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        # an SLO nobody meets, required: every trial invalid
        cfg["slo"] = {"ttft_ms": 0.001}
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 2)  # the SLO decides the baseline's goodput too
        self.assertIn("measured with another config (slo.e2e_ms: 100000 -> (unset); slo.ttft_ms: 10000 -> 0.001)", r.stderr)
        self.assertEqual(self.run_engine("--config", "cfg.json", "--rebaseline").returncode, 0)
        cfg["constraints"] = {"slo": True}  # a search key: the baseline still applies
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the SLO is not met (constraints.slo)", r.stderr)
        self.assertIn("no valid trial", r.stderr)


class Capacity(Workspace):
    def config(self, shared):
        cfg = self.base_config()
        # long prompts, shared or not: prefill dominates, as prefix caching would have it
        lines = [json.dumps({"prompt": ("system " * 300 if shared else "") + ("q%d " % i) * (5 if shared else 305)})
                 for i in range(30)]
        self.write("data.jsonl", "\n".join(lines) + "\n")
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.25"
        cfg["workload"].update({"request_count": 30, "warmup_requests": 2, "max_new_tokens": 8})
        cfg["slo"] = {"ttft_ms": 40, "quantile": 0.9}
        cfg["capacity"] = {"start_rate": 64, "tolerance": 0.25, "max_probes": 7, "min_probe_s": 0}
        cfg["knobs"] = [{"name": "prefix_caching", "flag": "--enable-prefix-caching"}]
        self.write_config(cfg)
        return cfg

    def capacity(self, mask, bound="exact"):
        r = self.run_engine("capacity", "--config", "cfg.json", "--mask", mask)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "rate,requests,ttft_q_ms,tpot_q_ms,itl_q_ms,e2e_q_ms,tokens_per_s,goodput,slo_met,failed_on")
        probes = [l.split(",") for l in lines[1:-1]]
        for p in probes:
            self.assertRegex(",".join(p), r"^\d+\.\d{3},\d+,(\d+\.\d{3},){6}(1,|0,[a-z_+]+)$")
        m = re.match(r"^MAX_RATE,knob_mask=%s,rate=(\d+\.\d{3}|na),bound=%s$" % (mask, bound), lines[-1])
        self.assertIsNotNone(m, lines[-1])
        self.assertEqual(load_json(self.path("results", "capacity", "latest", "capacity.json"))["bound"], bound)
        return probes, m.group(1)

    def test_capacity_is_found_and_the_probe_above_it_fails(self):
        self.config(shared=True)
        probes, rate = self.capacity("0")
        self.assertNotEqual(rate, "na")
        votes = {}  # rate -> [held, did not]
        for p in probes:
            votes.setdefault(float(p[0]), [0, 0])[0 if p[-2] == "1" else 1] += 1
        held = [r for r, (y, n) in votes.items() if y > n]
        self.assertEqual(float(rate), max(held))
        above = min(r for r, (y, n) in votes.items() if n > y and r > float(rate))
        self.assertLessEqual((above - float(rate)) / above, 0.25 + 1e-9)
        for r, (y, n) in votes.items():  # near the boundary: probed until 2 of 3 agree
            if float(rate) <= r <= above and r not in (64.0,):
                self.assertIn(max(y, n), (1, 2), (r, y, n))
        out = load_json(self.path("results", "capacity", "latest", "capacity.json"))
        self.assertEqual(len(out["probes"]), len(probes))
        self.assertEqual(out["max_rate"], float(rate))
        self.assertEqual(out["stable"], out["unstable_rates"] == [])

    def test_every_probe_passing_is_a_lower_bound_never_above_max_rate(self):
        cfg = self.config(shared=True)
        cfg["slo"] = {"ttft_ms": 60000}
        cfg["capacity"] = {"start_rate": 200, "max_rate": 300, "max_probes": 5, "min_probe_s": 0}
        self.write_config(cfg)
        probes, rate = self.capacity("0", bound="lower")
        self.assertEqual([p[0] for p in probes], ["200.000", "300.000"])  # doubling stops at max_rate
        self.assertEqual(rate, "300.000")
        cfg["capacity"] = {"start_rate": 200, "max_probes": 2, "min_probe_s": 0}  # the probes run out while it holds
        self.write_config(cfg)
        probes, rate = self.capacity("0", bound="lower")
        self.assertEqual(([p[0] for p in probes], rate), (["200.000", "400.000"], "400.000"))
        cfg["slo"] = {"ttft_ms": 0.001}  # it holds nowhere: below the lowest rate, said on ttft
        cfg["capacity"] = {"start_rate": 200, "max_probes": 2, "min_probe_s": 0}
        self.write_config(cfg)
        probes, rate = self.capacity("0", bound="upper")
        self.assertEqual([p[-1] for p in probes], ["ttft_ms", "ttft_ms"])
        self.assertEqual(([p[0] for p in probes], rate), (["200.000", "100.000"], "na"))

    def test_prefix_caching_raises_capacity_only_with_shared_prefixes(self):
        self.config(shared=True)
        # with prefix caching it held at every rate of its 7 probes: 4096 is a lower bound
        shared = {m: float(self.capacity(m, bound)[1]) for m, bound in (("0", "exact"), ("1", "lower"))}
        self.assertGreater(shared["1"], 3 * shared["0"])  # measured: >= 4096 vs 384 requests/s
        self.config(shared=False)
        unique = {m: float(self.capacity(m)[1]) for m in ("0", "1")}
        self.assertLess(unique["1"], 1.5 * unique["0"])  # measured: 384 vs 320 (one bisection step)


class LoadSweep(Workspace):
    def test_knee_of_an_overloaded_sweep(self):
        cfg = self.base_config()
        cfg["serve_cmd"][cfg["serve_cmd"].index("0.05")] = "0.25"
        cfg["workload"].update({"request_count": 40, "warmup_requests": 2})
        self.write_config(cfg)
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--rates", "5,40,400,2000")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "rate,ttft_p50_ms,ttft_p99_ms,tpot_p50_ms,tpot_p99_ms,e2e_p50_ms,e2e_p99_ms,tokens_per_s")
        self.assertEqual([l.split(",")[0] for l in lines[1:5]], ["5.000", "40.000", "400.000", "2000.000"])
        e2e = [float(l.split(",")[6]) for l in lines[1:5]]
        knee = next(i for i, v in enumerate(e2e) if v > 1.5 * e2e[0])
        self.assertEqual(lines[5], "KNEE,rate=%s" % lines[1 + knee].split(",")[0])
        level = load_json(self.path("results", "load-sweep", "latest", "level-01.json"))
        self.assertEqual(set(level), {"experiment_id", "config", "workload", "metrics"})
        self.assertFalse(os.path.exists(self.path("results", "baseline", "calibration_template.json")))  # not a trace
        self.assertEqual(set(level["metrics"]), {"ttft_ms", "tpot_ms", "e2e_latency_s", "throughput_token_s"})
        self.assertEqual(level["workload"]["rps"], 5)
        self.assertEqual(level["experiment_id"], "00-rate5")
        self.assertEqual((level["config"]["tp"], level["config"]["pp"]), (None, None))
        # the template complete: tp, pp, gpu from the config, the env knobs in the command, the id set
        cfg["hardware"] = {"tp": 4, "pp": 2, "gpu": "A100-80GB"}
        cfg["knobs"].append({"name": "fast", "env": "FAST_PATH", "on_value": "1 2"})
        self.write_config(cfg)
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--rates", "5", "--mask", "001",
                            "--experiment-id", "llama3-70b-4xa100-run1")
        self.assertEqual(r.returncode, 0, r.stderr)
        level = load_json(self.path("results", "load-sweep", "latest", "level-01.json"))
        self.assertEqual(level["experiment_id"], "llama3-70b-4xa100-run1-rate5")
        self.assertEqual({k: level["config"][k] for k in ("tp", "pp", "gpu")}, {"tp": 4, "pp": 2, "gpu": "A100-80GB"})
        self.assertTrue(level["config"]["command"].startswith("FAST_PATH='1 2' " + cfg["serve_cmd"][0]), level["config"])
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--rates", "5", "--experiment-id", "a b")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--experiment-id: 'a b' is not a name of letters, digits", r.stderr)
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--concurrency", "1,4")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("concurrency,"))
        self.assertRegex(r.stdout.splitlines()[-1], r"^KNEE,(concurrency=\d+|na)$")


class Calibrate(Workspace):
    """knobengine calibrate: a simulator's per-request output (Vidur's request_metrics.csv)
    or templates against a load sweep at the same rates; errors, MAPE and the verdicts
    equal a hand computation from the sweep's own figures."""

    def config(self):
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--fixed-ttft-ms", "40", "--fixed-tpot-ms", "8"]
        cfg["workload"].update({"request_count": 20, "warmup_requests": 2})
        self.write_config(cfg)
        return cfg

    def vidur(self, name, ttft_ms, tpot_ms, e2e_ms):
        """A request_metrics.csv whose every request has these figures (so p50 = p99 = each)."""
        lines = ["Request Id,request_e2e_time,prefill_e2e_time,decode_time_execution_plus_preemption_normalized,"
                 "request_scheduling_delay"]
        lines += ["%d,%r,%r,%r,0.001" % (i, e2e_ms / 1000, ttft_ms / 1000, tpot_ms / 1000) for i in range(8)]
        self.write(name, "\n".join(lines) + "\n")

    def test_vidur_output_against_an_earlier_sweep(self):
        self.config()
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--rates", "5,20")
        self.assertEqual(r.returncode, 0, r.stderr)
        sweep = os.path.realpath(self.path("results", "load-sweep", "latest"))
        levels = load_json(os.path.join(sweep, "sweep.json"))["levels"]
        # ttft p50 +3%, tpot p50 -2%, e2e p99 +12% at both rates: pass, pass, marginal
        for k, l in enumerate(levels):
            m = l["metrics"]
            self.vidur("sim%d.csv" % k, 1.03 * m["ttft_ms"]["p50"], 0.98 * m["tpot_ms"]["p50"], 1.12 * m["p99_latency_ms"])
        r = self.run_engine("calibrate", "--config", "cfg.json", "--simulated", "sim0.csv,sim1.csv", "--sweep", sweep)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "rate,metric,quantile,measured,simulated,error_pct")
        self.assertEqual(len(lines), 1 + 16 + 8 + 3 + 1)  # 4 figures x 2 quantiles per rate
        m = levels[0]["metrics"]
        self.assertEqual(lines[1], "5.000,ttft_ms,p50,%.3f,%.3f,3.00" % (m["ttft_ms"]["p50"], 1.03 * m["ttft_ms"]["p50"]))
        e2e99 = next(l for l in lines if l.startswith("20.000,e2e_ms,p99,"))
        self.assertTrue(e2e99.endswith(",12.00"), e2e99)
        self.assertIn("MAPE,metric=ttft_ms,quantile=p50,mape_pct=3.00", lines)
        self.assertIn("MAPE,metric=tpot_ms,quantile=p50,mape_pct=2.00", lines)
        self.assertEqual(lines[-4:], [
            "CHECK,metric=ttft_ms,quantile=p50,tolerance=strict,pass_below_pct=5.00,fail_from_pct=5.00,mape_pct=3.00,verdict=pass",
            "CHECK,metric=tpot_ms,quantile=p50,tolerance=strict,pass_below_pct=5.00,fail_from_pct=5.00,mape_pct=2.00,verdict=pass",
            "CHECK,metric=e2e_ms,quantile=p99,tolerance=loose,pass_below_pct=10.00,fail_from_pct=15.00,mape_pct=12.00,"
            "verdict=marginal",
            "CALIBRATION,verdict=marginal"])
        self.assertIn("e2e_ms p99: MAPE 12.00% is marginal in the loose tolerance (pass below 10.00%, fail from 15.00%): "
                      "adjust the simulator's batch-size cap", r.stderr)
        self.assertEqual(len(os.listdir(self.path("results", "load-sweep"))), 2)  # no new sweep: the run and latest
        out = os.path.realpath(self.path("results", "calibration", "latest"))
        doc = load_json(os.path.join(out, "calibration.json"))
        self.assertEqual((doc["sweep"], doc["verdict"], len(doc["rows"])), (sweep, "marginal", 16))
        # no probe sweep before it: the measured scheduler overhead is na, the simulator's 1 ms delay shown
        self.assertIn("5.000,scheduler_overhead_ms,p50,na,1.000,na", lines)
        self.assertIn("MAPE,metric=scheduler_overhead_ms,quantile=p50,mape_pct=na", lines)
        self.assertTrue(os.path.exists(os.path.join(out, "calibration.dat")))
        # a stricter tolerance in the config fails TTFT, with the plan's advice
        cfg = load_json(self.path("cfg.json"))
        cfg["calibration"] = {"strict_mape_pct": 2.5}
        self.write_config(cfg)
        r = self.run_engine("calibrate", "--config", "cfg.json", "--simulated", "sim0.csv,sim1.csv", "--sweep", sweep)
        self.assertEqual(r.stdout.splitlines()[-1], "CALIBRATION,verdict=fail")
        self.assertIn("ttft_ms p50: MAPE 3.00% fails the strict tolerance (pass below 2.50%): re-run the simulator's MLP "
                      "and attention profiling", r.stderr)

    def test_templates_with_their_rates_and_a_sweep_run_now(self):
        self.config()
        for k, rate in enumerate((5, 20)):
            self.write("sim%d.json" % k, json.dumps({"workload": {"type": "poisson_trace", "rps": rate}, "metrics": {
                "ttft_ms": {"p50": 2, "p99": 3}, "tpot_ms": {"p50": 0.4, "p99": 0.5}, "e2e_latency_s": {"p50": 0.01, "p99": 0.02}}}))
        r = self.run_engine("calibrate", "--config", "cfg.json", "--simulated", "sim0.json,sim1.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual([l.split(",")[0] for l in lines[1:17]], ["5.000"] * 8 + ["20.000"] * 8)
        self.assertIn("5.000,scheduler_overhead_ms,p99,na,na,na", lines)  # neither side has it
        self.assertRegex(lines[-1], r"^CALIBRATION,verdict=(pass|marginal|fail)$")
        sweep = os.path.realpath(self.path("results", "load-sweep", "latest"))
        self.assertEqual([l["rate"] for l in load_json(os.path.join(sweep, "sweep.json"))["levels"]], [5, 20])
        self.assertEqual(load_json(self.path("results", "calibration", "latest", "calibration.json"))["sweep"], sweep)

    def test_usage_errors(self):
        self.config()
        self.vidur("a.csv", 1, 1, 1)
        for args, message in (([], "calibrate needs --simulated FILE"),
                              (["--simulated", "a.csv"], "--simulated: a.csv does not say its rate (a per-request CSV never "
                                                         "does): give --rates"),
                              (["--simulated", "a.csv", "--rates", "5,20"], "--simulated: 1 file(s) for 2 rate(s)"),
                              (["--simulated", "a.csv", "--sweep", "nowhere"], "--sweep: nowhere is not a load sweep"),
                              (["--simulated", "nope.csv", "--rates", "5"], "--simulated: cannot read nope.csv")):
            with self.subTest(args):
                r = self.run_engine("calibrate", "--config", "cfg.json", *args)
                self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                self.assertIn(message, r.stderr)
        self.assertFalse(os.path.exists(self.path("results", "calibration")))


class Probes(Workspace):
    def test_probes_give_the_ideal_ttft_and_a_later_sweep_its_scheduler_overhead(self):
        """load-sweep --probes: idle synthetic phases, the ideal TTFT per prompt length; a
        rate sweep after it: each request's TTFT minus the ideal interpolated at its prompt
        length, per request and as percentiles (knobsim with a fixed TTFT model)."""
        cfg = self.base_config()
        cfg["serve_cmd"] += ["--fixed-ttft-ms", "40", "--fixed-tpot-ms", "8"]
        cfg["workload"].update({"request_count": 12, "warmup_requests": 1})
        self.write_config(cfg)
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--probes", "16x4,64x2")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "probe,ttft_p50_ms,ttft_p99_ms,tpot_p50_ms,tpot_p99_ms,e2e_p50_ms,e2e_p99_ms,tokens_per_s")
        self.assertEqual([l.split(",")[0] for l in lines[1:]], ["16x4", "64x2"])  # no KNEE line for probes
        probe_run = os.path.realpath(self.path("results", "load-sweep", "latest"))
        ideal = load_json(os.path.join(probe_run, "ideal_ttft.json"))
        self.assertEqual([(p["probe"], p["prompt_tokens"]) for p in ideal["points"]], [("16x4", 16), ("64x2", 64)])
        sweep = load_json(os.path.join(probe_run, "sweep.json"))
        self.assertEqual([p["ttft_ms"] for p in ideal["points"]], [l["metrics"]["ttft_ms"]["p50"] for l in sweep["levels"]])
        reqs = rows(os.path.join(probe_run, "requests-02.csv"))
        self.assertEqual({r["output_tokens"] for r in reqs}, {"2"})
        level = load_json(os.path.join(probe_run, "level-01.json"))
        self.assertEqual((level["workload"]["type"], level["workload"]["input_tokens"], level["experiment_id"]),
                         ("synthetic_probe", 16, "00-probe16x4"))
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--rates", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("scheduler overhead against the ideal TTFT of", r.stderr)
        run = os.path.realpath(self.path("results", "load-sweep", "latest"))
        (a, b) = [(p["prompt_tokens"], p["ttft_ms"]) for p in ideal["points"]]

        def ideal_at(n):  # the documented rule: the line through the two points, never below 0
            return max(0.0, a[1] + (n - a[0]) * (b[1] - a[1]) / (b[0] - a[0]))
        values = []
        for req in rows(os.path.join(run, "requests-01.csv")):
            want = float(req["ttft_ms"]) - ideal_at(int(req["prompt_tokens"]))
            self.assertAlmostEqual(float(req["scheduler_overhead_ms"]), want, delta=0.0011)
            values.append(float(req["scheduler_overhead_ms"]))
        m = load_json(os.path.join(run, "sweep.json"))["levels"][0]["metrics"]["scheduler_overhead_ms"]
        values.sort()
        self.assertEqual(m["count"], 12)
        self.assertAlmostEqual(m["p50"], (values[5] + values[6]) / 2, delta=0.002)
        self.assertEqual(load_json(os.path.join(run, "sweep.json"))["ideal_ttft"], probe_run)
        r = self.run_engine("load-sweep", "--config", "cfg.json", "--probes", "16x0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--probes: '16x0' is not INPUTxOUTPUT", r.stderr)


class Errors(Workspace):
    def refused(self, cfg, expect, *args):
        self.write_config(cfg)
        before = self.listing()
        r = self.run_engine(*(args or ("--config", "cfg.json")))
        self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(expect, r.stderr)
        self.assertEqual(self.listing(), before)

    def test_bad_arrival_slo_and_dataset(self):
        cases = [
            ({"arrival": {"type": "poisson"}}, "workload.arrival.rate: is required with type 'poisson'"),
            ({"arrival": {"type": "poisson", "rate": -1}}, "workload.arrival.rate: must be >= "),
            ({"arrival": {"type": "constant", "rate": 2, "period_s": 3}}, "workload.arrival.period_s: is not used with type 'constant'"),
            ({"arrival": {"type": "wavy"}}, "workload.arrival.type: expected one of"),
            ({"arrival": {"type": "sinusoid", "min_rate": 5, "max_rate": 2, "period_s": 1}}, "workload.arrival.min_rate: must be <= max_rate"),
            ({"max_concurrency": 4}, "workload.max_concurrency: caps an open-loop arrival"),
            ({"arrival": {"type": "trace"}}, "'trace' needs a timestamp on every dataset record (line 1 has none)"),
            ({"synthetic": {"input_tokens": 5}, "dataset": None}, "workload.synthetic: needs 'input_tokens' and 'output_tokens'"),
            ({"dataset_format": "tsv"}, "workload.dataset_format: expected one of"),
        ]
        for over, expect in cases:
            with self.subTest(expect):
                cfg = self.base_config()
                cfg["workload"].update(over)
                cfg["workload"] = {k: v for k, v in cfg["workload"].items() if v is not None}
                self.refused(cfg, expect)
        for slo, expect in [({}, "slo: needs at least one of"), ({"ttft_ms": "5"}, "slo.ttft_ms: expected number"),
                            ({"ttft_ms": 5, "combine": "xor"}, "slo.combine: expected one of")]:
            with self.subTest(expect):
                self.refused(self.base_config(slo=slo), expect)
        self.refused(self.base_config(objective={"maximize": "goodput"}), "objective.maximize: 'goodput' needs an slo")
        cfg = self.base_config(slo={"e2e_ms": 100, "itl_ms": 5})
        cfg["workload"]["stream"] = False  # the client sees no token before the whole answer
        self.refused(cfg, "slo.itl_ms: needs workload.stream (TTFT, TPOT and inter-token gaps are measured on a stream)")
        self.refused(self.base_config(), "capacity needs an slo", "capacity", "--config", "cfg.json")
        self.refused(self.base_config(), "load-sweep needs --rates, --concurrency or --probes (one of them)", "load-sweep", "--config", "cfg.json")
        self.refused(self.base_config(), "--rates: the values must ascend", "load-sweep", "--config", "cfg.json", "--rates", "4,2")
        for rates, expect in [("0x10", "--rates: '0x10' is not a positive decimal number"),
                              ("1,inf", "--rates: 'inf' is not a positive decimal number"),
                              (" 5", "--rates: ' 5' is not a positive decimal number"),
                              ("1,2e6", "--rates: '2e6' is above 1000000, the most supported")]:
            self.refused(self.base_config(), expect, "load-sweep", "--config", "cfg.json", "--rates", rates)
        self.refused(self.base_config(), "--rates: a level of 12 requests at 1e-06 requests/s would last 12000000 s; "
                     "at most 3600 s (raise the rate)", "load-sweep", "--config", "cfg.json", "--rates", "0.000001,2")
        self.refused(self.base_config(), "--concurrency: '100000' is above 4096, the most supported", "load-sweep",
                     "--config", "cfg.json", "--concurrency", "1,100000")
        slo = {"ttft_ms": 50}
        self.refused(self.base_config(slo=slo, capacity={"start_rate": 500, "max_rate": 100}),
                     "capacity.start_rate: must be <= capacity.max_rate (100)")
        self.refused(self.base_config(slo=slo, capacity={"start_rate": 0.001}),
                     "capacity.start_rate: a probe of 12 requests at 0.001 requests/s would last 12000 s; at most 3600 s")
        self.refused(self.base_config(slos=[dict(slo, name="tight")], capacity={"start_rate": 0.001}),
                     "capacity.start_rate: a probe of 12 requests at 0.001 requests/s would last 12000 s")
        # without an slo no capacity probe can run: a replay of 5,000 requests at the
        # default start_rate (1/s) is not refused
        long = self.base_config()
        long["workload"]["request_count"] = 5000
        self.write_config(long)
        r = self.run_engine("--config", "cfg.json", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.write("sg.json", '[{"conversations": [{"from": "human", "value": 3}]}]')
        cfg = self.base_config()
        cfg["workload"]["dataset"] = "sg.json"
        self.refused(cfg, "sg.json element 1: conversations[0] needs string 'from' and 'value'")
