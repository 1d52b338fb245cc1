"""Command-line basics: --help, --version, usage errors, --dry-run."""
import os

from common import Workspace


class Cli(Workspace):
    def test_help(self):
        r = self.run_engine("--help")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("usage: knobengine"))
        for opt in ("--config", "--strategy", "--results", "--dry-run", "--version", "summarize"):
            self.assertIn(opt, r.stdout)
        self.assertEqual(r.stderr, "")

    def test_version(self):
        r = self.run_engine("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^knobengine \d+\.\d+\.\d+\n$")

    def test_unknown_argument(self):
        r = self.run_engine("--colour")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "knobengine: unknown argument '--colour' (see --help)\n")
        self.assertEqual(r.stdout, "")

    def test_option_needs_value(self):
        r = self.run_engine("--config")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "knobengine: --config needs a value (see --help)\n")

    def test_missing_strategy(self):
        self.write_config(self.base_config())
        r = self.run_engine("--config", "cfg.json", "--strategy", "nope.lua")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "knobengine: strategy file 'nope.lua' not found\n")

    def test_dry_run(self):
        cfg = self.base_config(env={"TOKEN": "a b"})
        cfg["knobs"].append({"name": "backend", "env": "VLLM_ATTENTION_BACKEND", "on_value": "FLASHINFER"})
        cfg["knobs"].append({"name": "dtype", "key": "--kv-cache-dtype", "on_value": "fp8"})
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json", "--results", "res", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        port = cfg["server"]["port"]
        base = "%s serve m --port %d --load-time-s 0.02 --time-scale 0.05 --seed 1" % (cfg["serve_cmd"][0], port)
        self.assertEqual(r.stderr.splitlines(), [
            "baseline (knob_mask 0000):",
            "  argv: " + base,
            "  env:  TOKEN='a b'",
            "all knobs on (knob_mask 1111):",
            "  argv: " + base + " --enable-prefix-caching --enforce-eager --kv-cache-dtype fp8",
            "  env:  TOKEN='a b'",
            "  env:  VLLM_ATTENTION_BACKEND=FLASHINFER",
            "4 knobs, 16 combinations; dataset data.jsonl",
            "nsys: nsys not found ('nsys-not-installed-here' is not on PATH); install Nsight Systems "
            "(scripts/install-deps.sh --nsys) or set nsys.bin; profiled launches will be skipped (trace metrics na)",
        ])
        self.assertEqual(self.listing(), ["cfg.json", "data.jsonl"])

    def test_summarize_missing_file(self):
        r = self.run_engine("summarize", "nope.sqlite")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "knobengine: summarize: 'nope.sqlite' not found\n")
