"""Every config and dataset error: one line on stderr naming the key or path, exit 2,
nothing written under the results directory."""
import json
import os

from common import Workspace, KNOBSIM


def mutate(cfg, path, value):
    """Sets cfg[path] ('a.b[0].c'); value DELETE removes the key."""
    keys = []
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        keys.append(name)
        keys.extend(int(i) for i in idx)
    node = cfg
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


DELETE = object()
NINETEEN_KNOBS = [{"name": "k%d" % i, "flag": "--f%d" % i} for i in range(17)]

# (name, mutation path, value, expected message tail)
CASES = [
    ("unknown top-level key", "colour", "blue", "colour: unknown key"),
    ("unknown nested key", "server.hots", "x", "server.hots: unknown key"),
    ("serve_cmd missing", "serve_cmd", DELETE, "serve_cmd: is required"),
    ("serve_cmd wrong type", "serve_cmd", 5, "serve_cmd: expected array"),
    ("serve_cmd item wrong type", "serve_cmd[1]", 7, "serve_cmd[1]: expected string"),
    ("serve_cmd without {port}", "serve_cmd", ["x", "serve"], "serve_cmd: must contain {port}"),
    ("serve_cmd bad quoting", "serve_cmd", "x 'serve {port}", "serve_cmd: unterminated single quote"),
    ("env value wrong type", "env", {"A": 1}, "env.A: expected string"),
    ("env bad name", "env", {"A-B": "1"}, "env: 'A-B' is not a valid environment variable name"),
    ("port out of range", "server.port", 70000, "server.port: must be <= 65535 (got 70000)"),
    ("port not integer", "server.port", 80.5, "server.port: expected integer (got 80.5)"),
    ("port wrong type", "server.port", "80", "server.port: expected integer"),
    ("ready_path relative", "server.ready_path", "health", "server.ready_path: must start with '/'"),
    ("ready timeout zero", "server.ready_timeout_s", 0, "server.ready_timeout_s: must be >= 0.001 (got 0)"),
    ("workload missing", "workload", DELETE, "workload: is required"),
    ("dataset missing key", "workload.dataset", DELETE, "workload.dataset: is required"),
    ("model missing", "workload.model", DELETE, "workload.model: is required"),
    ("bad endpoint", "workload.endpoint", "/v1/embeddings", "workload.endpoint: expected one of '/v1/chat/completions', '/v1/completions' (got '/v1/embeddings')"),
    ("concurrency zero", "workload.concurrency", 0, "workload.concurrency: must be >= 1 (got 0)"),
    ("negative request_count", "workload.request_count", -5, "workload.request_count: must be >= 1 (got -5)"),
    ("huge request_count", "workload.request_count", 1e300, "workload.request_count: expected integer"),
    ("stream wrong type", "workload.stream", "yes", "workload.stream: expected boolean"),
    ("knobs missing", "knobs", DELETE, "knobs: is required"),
    ("knobs empty", "knobs", [], "knobs: must not be empty"),
    ("knobs wrong type", "knobs", {"a": 1}, "knobs: expected array"),
    ("too many knobs", "knobs", NINETEEN_KNOBS, "knobs: at most 16 knobs are supported (got 17: 2^17 trials)"),
    ("knob without name", "knobs[1].name", DELETE, "knobs[1].name: is required"),
    ("knob empty name", "knobs[0].name", "", "knobs[0].name: must not be empty"),
    ("duplicate knob", "knobs[1].name", "prefix_caching", "knobs[1].name: duplicate knob name 'prefix_caching' (also knobs[0])"),
    ("flag and key", "knobs[0].key", "--x", "knobs[0]: has both 'flag' and 'key' (use one)"),
    ("no flag key or env", "knobs[0].flag", DELETE, "knobs[0]: needs one of 'flag', 'key' or 'env'"),
    ("key without on_value", "knobs[1]", {"name": "k", "key": "--dtype"}, "knobs[1].on_value: is required with 'key'"),
    ("on_value wrong type", "knobs[1]", {"name": "k", "key": "--dtype", "on_value": 8}, "knobs[1].on_value: expected string"),
    ("flag with on_value", "knobs[0].on_value", "x", "knobs[0].on_value: is only used with 'key' or 'env'"),
    ("unknown knob key", "knobs[0].default", True, "knobs[0].default: unknown key"),
    ("two knobs on one key", "knobs[1]", {"name": "k", "flag": "--enable-prefix-caching"},
     "knobs[1].flag: '--enable-prefix-caching' is also knobs[0]'s; a knob must own its argument (give it values instead)"),
    ("values empty", "knobs[1]", {"name": "k", "key": "--max-num-seqs", "values": []}, "knobs[1].values: must not be empty"),
    ("values not a list", "knobs[1]", {"name": "k", "key": "--max-num-seqs", "values": "64"}, "knobs[1].values: expected array"),
    ("value not a string", "knobs[1]", {"name": "k", "key": "--max-num-seqs", "values": ["64", 128]},
     "knobs[1].values[1]: expected string"),
    ("value empty", "knobs[1]", {"name": "k", "env": "X", "values": [""]}, "knobs[1].values[0]: must not be empty"),
    ("duplicate value", "knobs[1]", {"name": "k", "key": "--max-num-seqs", "values": ["64", "128", "64"]},
     "knobs[1].values[2]: duplicate value '64' of knob 'k' (also values[0])"),
    ("too many values", "knobs[1]", {"name": "k", "key": "--n", "values": [str(i) for i in range(36)]},
     "knobs[1].values: knob 'k' has 36 values; at most 35 are supported (36 with \"unset\": false)"),
    ("values and on_value", "knobs[1]", {"name": "k", "key": "--n", "values": ["1"], "on_value": "1"},
     "knobs[1]: has both 'values' and 'on_value' (use one)"),
    ("flag with values", "knobs[0].values", ["1"], "knobs[0].values: is only used with 'key' or 'env' (a flag is on or off)"),
    ("unset without values", "knobs[1].unset", False, "knobs[1].unset: is only used with 'values'"),
    ("unset wrong type", "knobs[1]", {"name": "k", "key": "--n", "values": ["1"], "unset": "no"}, "knobs[1].unset: expected boolean"),
    ("one value always set", "knobs[1]", {"name": "k", "key": "--n", "values": ["1"], "unset": False},
     "knobs[1].values: knob 'k' has one value and \"unset\": false: it can take only one setting"),
    ("knob env invalid", "knobs[1]", {"name": "k", "env": "A B", "on_value": "1"}, "knobs[1].env: 'A B' is not a valid environment variable name"),
    ("nsys capture", "nsys.capture", "gpu", "nsys.capture: expected one of 'process', 'session' (got 'gpu')"),
    ("objective metric", "objective", {"minimize": "p42"}, "objective.minimize: unknown metric 'p42'"),
    ("tie breaker syntax", "objective", {"tie_breakers": ["p95_latency_ms"]}, "objective.tie_breakers[0]: expected 'metric:min' or 'metric:max' (got 'p95_latency_ms')"),
    ("error rate above 1", "constraints.max_error_rate", 2, "constraints.max_error_rate: must be <= 1 (got 2)"),
    ("sbatch --array", "executor", {"type": "slurm", "sbatch_args": ["--qos=low", "--array=0-3"]},
     "executor.sbatch_args[1]: '--array=0-3' would break the trial protocol"),
    ("sbatch -D", "executor", {"type": "slurm", "sbatch_args": ["-D", "/scratch"]},
     "executor.sbatch_args[0]: '-D' would break the trial protocol"),
    ("two slots on one GPU", "executor", {"type": "local", "slots": [
        {"port": 9001, "env": {"CUDA_VISIBLE_DEVICES": "0,1"}}, {"port": 9002, "env": {"CUDA_VISIBLE_DEVICES": "1"}}]},
     "executor.slots[1].env.CUDA_VISIBLE_DEVICES: GPU 1 is also slots[0]'s; two servers would share it"),
    ("a GPU twice", "executor", {"type": "local", "slots": [{"port": 9001, "env": {"CUDA_VISIBLE_DEVICES": "0,0,1"}}]},
     "executor.slots[0].env.CUDA_VISIBLE_DEVICES: device 0 is listed twice"),
    ("an empty device entry", "executor", {"type": "local", "slots": [{"port": 9001, "env": {"CUDA_VISIBLE_DEVICES": "0,,1"}}]},
     "executor.slots[0].env.CUDA_VISIBLE_DEVICES: an empty entry (CUDA ignores every device after it)"),
    ("device -1", "executor", {"type": "local", "slots": [{"port": 9001, "env": {"CUDA_VISIBLE_DEVICES": "-1"}}]},
     "executor.slots[0].env.CUDA_VISIBLE_DEVICES: '-1' is not a device index or UUID (-1 hides every GPU)"),
    # control characters would split or forge a line of stdout, CSV or a header
    ("newline in a knob name", "knobs[0].name", "pc\nBEST,knob_mask=11",
     "knobs[0].name: must not contain control characters (byte 0x0a at offset 2)"),
    ("escape in a knob value", "knobs[1]", {"name": "k", "key": "--n", "values": ["1", "\x1b[2J"]},
     "knobs[1].values[1]: must not contain control characters (byte 0x1b at offset 0)"),
    ("CR LF in ready_path", "server.ready_path", "/health\r\nX-Injected: 1",
     "server.ready_path: must not contain control characters (byte 0x0d at offset 7)"),
    ("newline in a phase label", "nsys", {"phases": ["prefill", "de\ncode"]},
     "nsys.phases[1]: must not contain control characters (byte 0x0a at offset 2)"),
    ("tab in an env value", "env", {"A": "x\ty"}, "env.A: must not contain control characters (byte 0x09 at offset 1)"),
    ("C1 control in a knob name", "knobs[0].name", "a\u0085b", "knobs[0].name: must not contain control characters (U+0085 at offset 1)"),
    ("noncharacter in a knob name", "knobs[0].name", "pc\uffff", "knobs[0].name: must not contain control characters (U+FFFF at offset 2)"),
    ("line separator", "workload.model", "m\u2028x", "workload.model: must not contain control characters (U+2028 at offset 1)"),
    ("a newline in an env name", "env", {"A\nB": "1"}, "env: 'A\ufffdB' is not a valid environment variable name"),
    # the capacity grid's lists: each entry named, checked as what it stands for
    ("slos not a list", "slos", {"name": "a"}, "slos: expected array"),
    ("an slo without a name", "slos", [{"ttft_ms": 5}], "slos[0].name: is required"),
    ("two slos of one name", "slos", [{"name": "a", "ttft_ms": 5}, {"name": "a", "ttft_ms": 9}],
     "slos[1].name: duplicate name 'a' (also slos[0])"),
    ("an slo with no threshold", "slos", [{"name": "a", "quantile": 0.5}], "slos[0]: needs at least one of ttft_ms"),
    ("an unknown slo key", "slos", [{"name": "a", "ttft": 5}], "slos[0].ttft: unknown key"),
    ("an slo threshold out of range", "slos", [{"name": "a", "ttft_ms": -1}], "slos[0].ttft_ms: must be >= 0 (got -1)"),
    ("a workload key that is not its shape", "workloads", [{"name": "w", "model": "x"}], "workloads[0].model: unknown key"),
    ("a workload entry's bad value", "workloads", [{"name": "w"}, {"name": "v", "max_new_tokens": 0}],
     "workloads[1].max_new_tokens: must be >= 1 (got 0)"),
    ("a workload entry's bad arrival", "workloads", [{"name": "w", "arrival": {"type": "poisson"}}],
     "workloads[0].arrival.rate: is required with type 'poisson'"),
    ("a workload entry with both prompt sources", "workloads",
     [{"name": "w", "synthetic": {"input_tokens": 5, "output_tokens": 2}, "dataset": "data.jsonl"}],
     "workloads[0].synthetic: cannot be used with workload.dataset"),
]


class ConfigErrors(Workspace):
    def check_error(self, expected, cfg_path="cfg.json"):
        r = self.run_engine("--config", cfg_path, "--results", "res")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(expected, lines[0])
        self.assertTrue(lines[0].startswith("knobengine: "), lines[0])
        self.assertFalse(os.path.exists(self.path("res")), "results directory was created")

    def test_table(self):
        for name, path, value, expected in CASES:
            with self.subTest(name):
                cfg = self.base_config()
                cfg.setdefault("server", {})
                cfg.setdefault("env", {})
                cfg.setdefault("constraints", {})
                mutate(cfg, path, value)
                self.write_config(cfg)
                self.check_error("config cfg.json: " + expected)

    def test_duplicate_key(self):
        cfg = json.dumps(self.base_config(), indent=2)
        # the last of two keys would win silently: refused, naming the key and where
        self.write_config(cfg.replace('"concurrency": 4,', '"concurrency": 4,\n    "concurrency": 64,', 1))
        line = next(i for i, l in enumerate(self.read_config().splitlines(), 1) if '"concurrency": 64' in l)
        self.check_error("config cfg.json: line %d, column 5: duplicate key 'workload.concurrency'" % line)
        self.write_config(cfg.replace('"name": "eager"', '"name": "eager", "n\\u0061me": "x"', 1))
        self.check_error("duplicate key 'knobs[1].name'")

    def read_config(self):
        with open(self.path("cfg.json")) as f:
            return f.read()

    def test_missing_file(self):
        self.check_error("config nope.json: cannot read: No such file or directory", "nope.json")

    def test_invalid_json_line_column(self):
        self.write_config('{\n  "serve_cmd": ["x", "{port}"],\n  "knobs": [1,, 2]\n}\n')
        self.check_error("config cfg.json: invalid JSON at line 3, column 15:")

    def test_dataset_missing(self):
        cfg = self.base_config()
        cfg["workload"]["dataset"] = "nope.jsonl"
        self.write_config(cfg)
        self.check_error("workload.dataset: cannot read 'nope.jsonl': No such file or directory" )

    def test_dataset_contents(self):
        for name, text, expected in [
            ("empty", "\n\n", "workload.dataset: 'data.jsonl' has no prompts"),
            ("bad line", '{"prompt": "ok"}\n{"prompt": 5}\n',
             "workload.dataset: data.jsonl line 2: 'prompt' must be a non-empty string"),
            ("invalid JSON", '{"prompt": "ok"}\n{"prompt": \n', "workload.dataset: data.jsonl line 2: invalid JSON"),
        ]:
            with self.subTest(name):
                cfg = self.base_config()
                self.write("data.jsonl", text)
                self.write_config(cfg)
                self.check_error(expected)
