"""Nsight Compute: `knobengine ncu` against the two real reports Debian's nsight-compute
ships (every figure equal to what `ncu -i --page details` prints, parsed here on its
own), its errors, and the ncu pass of the profiled launches. This machine has no GPU,
so the pass runs a stand-in ncu (it logs its argv, writes a real report and starts the
server) behind a stand-in nsys whose export is a trace with kernels; the real ncu
still reads every report. Sweep trials never run ncu."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import unittest

import trace_fixtures
from common import Workspace, KNOBENGINE, KNOBSIM, LUA_HOST, load_json, read, servers_on

NCU = shutil.which("ncu")
if __name__ != "__main__" and not NCU:
    print("SKIPPED: ncu is not installed (scripts/install-deps.sh --ncu installs Nsight Compute)", file=sys.stderr)
    sys.exit(77)  # ctest reports the test as skipped

EXAMPLES = "/usr/share/doc/nsight-compute/examples/uncoalescedGlobalAccesses"
REPORT = os.path.join(EXAMPLES, "addConstDouble.ncu-rep")
REPORT3 = os.path.join(EXAMPLES, "addConstDouble3.ncu-rep")
HEADER = ("id,name,device,device_name,duration_us,sm_throughput_pct,memory_throughput_pct,dram_throughput_pct,"
          "achieved_occupancy_pct,theoretical_occupancy_pct,registers_per_thread,block_size,grid_size,bound")

# our column: the name `ncu -i --page details` prints the figure under
DETAILS = {"duration_us": "Duration", "sm_throughput_pct": "Compute (SM) [%]", "memory_throughput_pct": "Memory [%]",
           "dram_throughput_pct": "DRAM Throughput", "achieved_occupancy_pct": "Achieved Occupancy",
           "theoretical_occupancy_pct": "Theoretical Occupancy", "registers_per_thread": "Registers Per Thread",
           "block_size": "Block Size", "grid_size": "Grid Size"}
TO_US = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}

# what `ncu -i --page details` prints for the two reports (Duration in usecond)
EXPECTED = {
    REPORT: {"Duration": "239.01", "DRAM Throughput": "91.75", "Compute (SM) [%]": "46.54", "Memory [%]": "91.75",
             "Achieved Occupancy": "74.45", "Theoretical Occupancy": "100", "Registers Per Thread": "16",
             "Block Size": "256", "Grid Size": "12288"},
    REPORT3: {"Duration": "294.34", "DRAM Throughput": "72.61", "Compute (SM) [%]": "36.73", "Memory [%]": "72.61",
              "Achieved Occupancy": "77.07", "Theoretical Occupancy": "100", "Registers Per Thread": "16",
              "Block Size": "256", "Grid Size": "4096"},
}


def details(report):
    """{(result ID, metric name): (unit, value text)} of `ncu -i --page details --csv`."""
    r = subprocess.run([NCU, "-i", report, "--csv", "--page", "details"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for row in csv.DictReader(io.StringIO(r.stdout)):
        if row["Metric Name"] and row["Metric Value"]:
            out.setdefault((row["ID"], row["Metric Name"]), (row["Metric Unit"], row["Metric Value"]))
    return out


def same_figure(ours, unit, text, column):
    """Our figure printed at the precision of the details page's text, in its unit."""
    v = float(ours)
    if column == "duration_us":
        v /= TO_US[unit]
    decimals = len(text.split(".")[1]) if "." in text else 0
    return "%.*f" % (decimals, v) == text.replace(",", "")


def needs_examples(test):
    return unittest.skipUnless(os.path.exists(REPORT) and os.path.exists(REPORT3),
                               "Debian's nsight-compute example reports are not installed")(test)


# A wrapper named ncu (for PATH) over the real one: it drops columns from the raw page
# (the figure must then come from the details page) and can rename the kernel.
WRAPPER = """#!/usr/bin/env python3
import csv, io, subprocess, sys
DROP, NAME = %r, %r
r = subprocess.run([%r] + sys.argv[1:], capture_output=True, text=True)
out = r.stdout
if "raw" in sys.argv or NAME:
    rows = list(csv.reader(io.StringIO(out)))
    keep = [i for i, h in enumerate(rows[0]) if h not in DROP] if "raw" in sys.argv else range(len(rows[0]))
    name = rows[0].index("Kernel Name")
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\\n")
    for k, row in enumerate(rows):
        if NAME and k > 0 and row[name] and row[0]:
            row[name] = NAME
        w.writerow([row[i] for i in keep])
    out = buf.getvalue()
sys.stdout.write(out)
sys.stderr.write(r.stderr)
sys.exit(r.returncode)
"""


class Command(Workspace):
    def ncu(self, *args, env=None):
        return self.run_engine("ncu", *args, env=env)

    def wrapper(self, drop=(), name=""):
        p = self.write("bin/ncu", WRAPPER % (list(drop), name, NCU))
        os.chmod(p, 0o755)
        return {"PATH": self.path("bin") + os.pathsep + os.environ.get("PATH", "")}

    @needs_examples
    def test_figures_equal_what_ncu_details_prints(self):
        for report in (REPORT, REPORT3):
            r = self.ncu(report)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0], HEADER)
            rows = list(csv.DictReader(io.StringIO(r.stdout)))
            self.assertEqual(len(rows), 1)
            row = rows[0]
            want = details(report)
            for column, name in DETAILS.items():
                unit, text = want[(row["id"], name)]
                self.assertEqual(text, EXPECTED[report][name], (report, name))
                self.assertTrue(same_figure(row[column], unit, text, column), (report, column, row[column], text))
            self.assertEqual(want[(row["id"], "Duration")][0], "usecond")
            self.assertEqual((row["device"], row["device_name"]), ("0", "NVIDIA RTX A2000"))
            self.assertTrue(row["name"].startswith("addConstDouble"), row["name"])
            # SM 46.54% / 36.73%, memory 91.75% / 72.61%: memory-bound
            self.assertEqual(row["bound"], "memory")
        row = next(csv.DictReader(io.StringIO(self.ncu(REPORT).stdout)))
        self.assertEqual((row["name"], row["duration_us"], row["registers_per_thread"], row["block_size"], row["grid_size"]),
                         ("addConstDouble(int, double *, double, double *)", "239.008", "16", "256", "12288"))

    @needs_examples
    def test_a_figure_missing_from_the_raw_page_comes_from_the_details_page(self):
        plain = self.ncu(REPORT).stdout
        env = self.wrapper(drop=("gpu__time_duration.sum", "launch__grid_size", "sm__maximum_warps_per_active_cycle_pct"))
        r = self.ncu(REPORT, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        row = next(csv.DictReader(io.StringIO(r.stdout)))
        # the details page's figures are rounded: 239.01 us, theoretical occupancy 100
        self.assertEqual((row["duration_us"], row["grid_size"], row["theoretical_occupancy_pct"]), ("239.01", "12288", "100"))
        self.assertEqual(r.stdout.splitlines()[1].split(",")[-3:], plain.splitlines()[1].split(",")[-3:])

    @needs_examples
    def test_a_kernel_name_is_one_escaped_field(self):
        odd = 'evil,"name"\nwith a line\x1b[2J'
        r = self.ncu(REPORT, env=self.wrapper(name=odd))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 2, r.stdout)  # the newline never splits the row
        row = next(csv.DictReader(io.StringIO(r.stdout)))
        self.assertEqual(row["name"], 'evil,"name"\ufffdwith a line\ufffd[2J')
        self.assertNotIn("\x1b", r.stdout)
        self.assertEqual(row["bound"], "memory")

    def test_bound_thresholds(self):
        script = self.write("bound.lua", """
local b = require("knobengine.ncu_report").bound
local cases = { {70, 20, "compute"}, {20, 70, "memory"}, {59.99, 59.99, "latency"}, {60, 10, "compute"},
  {10, 60, "memory"}, {60, 60, "memory"}, {0, 0, "latency"} }
for _, c in ipairs(cases) do
  assert(b(c[1], c[2]) == c[3], string.format("bound(%s, %s) = %s, not %s", c[1], c[2], tostring(b(c[1], c[2])), c[3]))
end
assert(b(nil, 90) == nil and b(90, nil) == nil)
assert(require("knobengine.ncu_report").BOUND_THRESHOLD == 60)
""")
        r = subprocess.run([LUA_HOST, script], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def check_error(self, r, code, text):
        self.assertEqual((r.returncode, r.stdout), (code, ""), r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn(text, r.stderr)

    def test_errors(self):
        self.check_error(self.ncu("missing.ncu-rep"), 1, "knobengine: ncu: 'missing.ncu-rep' not found")
        self.write("garbage.ncu-rep", "not a report\n")
        self.check_error(self.ncu("garbage.ncu-rep"), 1,
                         "knobengine: ncu: cannot read 'garbage.ncu-rep': ncu -i exited with status 1: "
                         "Failed to load report file 'garbage.ncu-rep'.")
        self.write("empty.ncu-rep", "")
        self.check_error(self.ncu("empty.ncu-rep"), 1, "cannot read 'empty.ncu-rep'")
        os.mkdir(self.path("adir"))
        self.check_error(self.ncu("adir"), 1, "is a directory")
        self.check_error(self.ncu(REPORT, env={"PATH": "/nonexistent"}), 1,
                         "ncu is not on PATH, and it reads the report; install it (scripts/install-deps.sh --ncu)")
        for args in ((), ("a.ncu-rep", "b.ncu-rep"), ("--help",)):
            self.check_error(self.ncu(*args), 2, "usage: knobengine ncu REPORT.ncu-rep")


# A stand-in nsys (process capture): `profile` writes an empty report and runs the
# server; `export` writes the trace export the test prepared (kernels, no GPU needed).
FAKE_NSYS = """#!/bin/sh
case "$1" in
  profile)
    shift
    for a in "$@"; do case "$a" in --output=*) out="${a#--output=}" ;; esac; done
    : > "$out.nsys-rep"
    while [ "${1#-}" != "$1" ]; do shift; done
    exec "$@" ;;
  export)
    for a in "$@"; do case "$a" in --output=*) out="${a#--output=}" ;; esac; done
    cp %s "$out" ;;
esac
"""

# A stand-in ncu: `-i` goes to the real one; a launch logs its argv, writes a real
# report where --export says, and runs the server in a session of its own (as a
# child, like ncu: only the trial's marker can find it to stop it), with SLOWER
# appended to its options (a server that ncu slows down).
FAKE_NCU = """#!/usr/bin/env python3
import json, os, shutil, subprocess, sys
LOG, REAL, REPORT, SERVER, SLOWER = %r, %r, %r, %r, %r
args = sys.argv[1:]
with open(LOG, "a") as f:
    f.write(json.dumps(args) + "\\n")
if "-i" in args:
    os.execv(REAL, [REAL] + args)
shutil.copy(REPORT, args[args.index("--export") + 1] + ".ncu-rep")
print("==PROF== Connected to process (stand-in)", flush=True)
server = subprocess.Popen(args[args.index(SERVER):] + SLOWER, start_new_session=True)
sys.exit(server.wait())
"""

TOP = ["gemm_kernel<float, 128>(float const*, float*, int)", "flash_fwd"]  # by nsys time; the graph is skipped
FILTER = r"regex:^(gemm_kernel<float, 128>\(float const\*, float\*, int\)|flash_fwd)$"


class Pass(Workspace):
    def stand_ins(self, variant="new", slower=(), export=None):
        trace = self.path("fixture.sqlite")
        (export or (lambda path: trace_fixtures.make(path, variant)))(trace)
        nsys = self.write("fake/nsys", FAKE_NSYS % trace)
        importer = self.write("fake/QdstrmImporter", "#!/bin/sh\nexit 0\n")
        ncu = self.write("fake/ncu", FAKE_NCU % (self.path("ncu-argv.log"), NCU, REPORT, KNOBSIM, list(slower)))
        for f in (nsys, importer, ncu):
            os.chmod(f, 0o755)
        return nsys, ncu

    def config(self, variant="new", slower=(), export=None, **ncu):
        nsys, fake_ncu = self.stand_ins(variant, slower, export)
        cfg = self.base_config()
        cfg["nsys"] = {"bin": nsys, "trace": "nvtx", "capture": "process"}
        cfg["ncu"] = dict({"bin": fake_ncu, "kernels": 2, "launch_count": 3, "requests": 6}, **ncu)
        self.write_config(cfg)
        return cfg

    def launches(self):
        """The argv of each ncu launch the stand-in saw (its report reads left out)."""
        if not os.path.exists(self.path("ncu-argv.log")):
            return []
        argvs = [json.loads(l) for l in read(self.path("ncu-argv.log")).splitlines()]
        return [a for a in argvs if "-i" not in a]

    def check_pass(self, d, cfg):
        files = set(os.listdir(d))
        self.assertTrue({"ncu.ncu-rep", "ncu_kernels.csv", "ncu_overhead.json", "ncu_logs.txt"} <= files, files)
        self.assertNotIn("ncu-launch", files)
        self.assertEqual(read(os.path.join(d, "ncu_kernels.csv")), self.run_engine("ncu", REPORT).stdout)
        o = load_json(os.path.join(d, "ncu_overhead.json"))
        self.assertEqual((o["ran"], o["reason"], o["partial"], o["error"]), (True, None, None, None))
        self.assertEqual((o["kernels"], o["launch_count"], o["profiled_launches"]), (TOP, 3, 1))
        self.assertEqual((o["requests"], o["requests_completed"], o["requests_failed"]), (6, 6, 0))
        self.assertGreater(o["ncu_wall_s"], 0)
        self.assertAlmostEqual(o["overhead_s"], o["ncu_wall_s"] - o["unprofiled_wall_s"], places=6)
        self.assertEqual(o["report_bytes"], os.path.getsize(REPORT))
        # the command as recorded: the report relative to the directory
        self.assertEqual(o["command"][0], cfg["ncu"]["bin"])
        self.assertEqual(o["command"][-3:], ["--export", "ncu", "--force-overwrite"])
        self.assertIn("Connected to process (stand-in)", read(os.path.join(d, "ncu_logs.txt")))
        return o

    def expected_argv(self, cfg, d, mask_flags=()):
        return (["--target-processes", "all", "--kernel-name-base", "demangled", "--kernel-name", FILTER,
                 "--launch-count", "6", "--section", "SpeedOfLight", "--section", "Occupancy", "--section",
                 "LaunchStats", "--section", "MemoryWorkloadAnalysis", "--export", os.path.join(d, "ncu"),
                 "--force-overwrite"]
                + [a.replace("{port}", str(cfg["server"]["port"])) for a in cfg["serve_cmd"]] + list(mask_flags))

    def test_baseline_and_best_get_an_ncu_pass_and_sweep_trials_none(self):
        cfg = self.config()
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertNotIn("ncu", r.stderr)
        base = self.path("results", "baseline")
        (argv,) = self.launches()
        # the aside directory the baseline was built in, renamed into place since
        aside = os.path.dirname(argv[argv.index("--export") + 1])
        self.assertEqual(argv, self.expected_argv(cfg, aside))
        o = self.check_pass(base, cfg)
        self.assertEqual(o["unprofiled_wall_s"], load_json(os.path.join(base, "profiling_overhead.json"))["unprofiled_wall_s"])
        self.assertEqual(servers_on(cfg["server"]["port"]), [])

        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        launches = self.launches()
        self.assertEqual(len(launches), 2, launches)  # the best's: four sweep trials, no ncu
        run = os.path.realpath(self.path("results", "search", "latest"))
        best = load_json(os.path.join(run, "best_config.json"))
        argv = launches[1]
        aside = os.path.dirname(argv[argv.index("--export") + 1])
        self.assertEqual(os.path.basename(aside), "best")
        self.assertEqual(argv, self.expected_argv(cfg, aside, best["argv"][len(cfg["serve_cmd"]):]))
        self.check_pass(os.path.join(run, "best"), cfg)
        summary = load_json(os.path.join(run, "summary.json"))
        self.assertEqual(summary["ncu_overhead"]["baseline"], load_json(os.path.join(base, "ncu_overhead.json")))
        self.assertEqual(summary["ncu_overhead"]["best"], load_json(os.path.join(run, "best", "ncu_overhead.json")))
        for root, _, names in os.walk(os.path.join(run, "trials")):
            self.assertEqual([n for n in names if "ncu" in n], [], root)
        self.assertEqual(servers_on(cfg["server"]["port"]), [])

    def test_the_report_shows_the_counters_utilisation_and_bottleneck(self):
        """Both sides' export has GPU metrics on GPUs 0, 1 and 2 (test_trace's fixture) and
        ncu profiled addConstDouble on GPU 0: Top Kernels gains its counters, GPU
        Utilisation a table and a plot per GPU, the Summary names the bottleneck."""
        self.config(export=lambda path: trace_fixtures.make_gpu_metrics(path, "2023"))
        for _ in range(2):
            r = self.run_engine("--config", "cfg.json")
            self.assertEqual(r.returncode, 0, r.stderr)
        run = os.path.realpath(self.path("results", "search", "latest"))
        md = read(os.path.join(run, "report.md"))
        self.assertIn("| Kernel | GPU | Base occupancy % | Base SM % | Base DRAM % | Base bound | Best occupancy % "
                      "| Best SM % | Best DRAM % | Best bound |", md)
        self.assertIn("| addConstDouble(int, double \\*, double, double \\*) | 0 | 74.5 | 46.5 | 91.7 | memory "
                      "| 74.5 | 46.5 | 91.7 | memory |", md)
        self.assertIn("- Bottleneck on GPU 0 (Nsight Compute): in the baseline the top kernel is memory-bound: DRAM "
                      "91.7% of peak, SM 46.5%, achieved occupancy 74.5%; in the best the top kernel is memory-bound: "
                      "DRAM 91.7% of peak, SM 46.5%, achieved occupancy 74.5%. The best keeps the bottleneck "
                      "memory-bound; SM +0.0, DRAM +0.0, achieved occupancy +0.0 points.", md)
        # GPU 1's window means (test_trace's FIXTURE_GPU_METRICS), the same export on both sides
        self.assertIn("GPU 1: baseline window 0.050 ms (the kernel span), 11 samples; best window 0.050 ms "
                      "(the kernel span), 11 samples.", md)
        self.assertIn("| DRAM Read Bandwidth \\[Throughput %\\] | 14.8 | 13.0 | 40.0 | 14.8 | 13.0 | 40.0 | +0.0 |", md)
        self.assertIn("GPU 2: baseline window 0.070 ms (every sample: no kernel ran on it), 15 samples", md)
        html = read(os.path.join(run, "report.html"))
        for dev in ("0", "1", "2"):
            self.assertIn("(plots/gpu-%s.svg)" % dev, md)
            self.assertIn('id="gpu-%s-' % dev, html)
        # GPU 0: a sample every 5 us in its 42 us window, one per bucket; a block per side
        dat = read(os.path.join(run, "plots", "gpu-0.dat")).split("\n\n\n")
        self.assertEqual(len(dat), 2)
        lines = dat[1].strip().splitlines()
        self.assertEqual(lines[0], '"t_ms" "SMs Active [Throughput %]" "Tensor Active [Throughput %]" '
                                   '"DRAM Read Bandwidth [Throughput %]" "DRAM Write Bandwidth [Throughput %]"')
        self.assertEqual(lines[1], "0.002333 10.000000 0.000000 5.000000 3.000000")
        self.assertEqual(len(lines), 10)

    def test_reprofile_baseline_runs_the_pass_again(self):
        cfg = self.config()
        self.assertEqual(self.run_engine("--config", "cfg.json").returncode, 0)
        base = self.path("results", "baseline")
        os.remove(os.path.join(base, "ncu_kernels.csv"))
        r = self.run_engine("--config", "cfg.json", "--reprofile-baseline")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        self.assertEqual(len(self.launches()), 2)
        o = self.check_pass(base, cfg)
        self.assertEqual(o["unprofiled_wall_s"], load_json(os.path.join(base, "profiling_overhead.json"))["unprofiled_wall_s"])

    def test_short_kernel_names_extra_args_and_sections(self):
        cfg = self.config(sections=["SpeedOfLight"], extra_args=["--cache-control", "none"], kernels=1, launch_count=2)
        cfg["nsys"]["kernel_names"] = "short"
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        (argv,) = self.launches()
        i = argv.index("--export")
        self.assertEqual(argv[:i], ["--target-processes", "all", "--kernel-name-base", "function",
                                    "--kernel-name", "regex:^(gemm_kernel)$", "--launch-count", "2",
                                    "--section", "SpeedOfLight"])
        self.assertEqual(argv[i + 2:i + 5], ["--force-overwrite", "--cache-control", "none"])
        self.assertEqual(argv[i + 5], KNOBSIM)

    def check_budget(self, timeout_s, error):
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        o = load_json(self.path("results", "baseline", "ncu_overhead.json"))
        self.assertEqual(o["partial"], "the ncu launch was stopped at ncu.timeout_s (%d s): the report holds what ncu "
                                       "had profiled by then" % timeout_s)
        self.assertIn(error, o["error"])
        self.assertEqual((o["ran"], o["reason"], o["profiled_launches"], o["requests_completed"]), (True, None, 1, 0))
        self.assertEqual(r.stderr.count("ncu.timeout_s"), 1, r.stderr)
        self.assertTrue(os.path.exists(self.path("results", "baseline", "ncu_kernels.csv")))
        # a deadline, not a measurement: the budget plus server.stop_timeout_s and the export
        self.assertLess(o["ncu_wall_s"], timeout_s + 5 + 2)
        self.assertEqual(servers_on(load_json(self.path("cfg.json"))["server"]["port"]), [])
        return o

    def test_the_time_budget_covers_the_server_start(self):
        self.config(slower=["--hang-start"], timeout_s=1)  # never ready under ncu
        self.check_budget(1, "server not ready after 1 s")

    def test_the_time_budget_stops_the_workload_and_keeps_the_report(self):
        # under ncu a first token takes 5 s (100 s x --time-scale 0.05): past the 2 s budget
        self.config(slower=["--fixed-ttft-ms", "100000"], timeout_s=2)
        o = self.check_budget(2, "requests failed")
        self.assertEqual(o["requests_failed"], 4)  # the first round (workload.concurrency); no second one

    def check_skipped(self, r, why):
        self.assertEqual((r.returncode, r.stdout), (0, "BASELINE_DONE\n"), r.stderr)
        said = [l for l in r.stderr.splitlines() if "ncu" in l]
        self.assertEqual(len(said), 1, r.stderr)
        self.assertIn("knobengine: no ncu pass for the baseline: " + why, said[0])
        base = self.path("results", "baseline")
        o = load_json(os.path.join(base, "ncu_overhead.json"))
        self.assertEqual((o["ran"], o["command"], o["ncu_wall_s"]), (False, None, None))
        self.assertIn(why, o["reason"])
        self.assertFalse(os.path.exists(os.path.join(base, "ncu_kernels.csv")))
        self.assertEqual(self.launches(), [])

    def test_without_an_nsys_trace_it_says_why_and_goes_on(self):
        cfg = self.config()
        cfg["nsys"]["bin"] = "nsys-not-installed-here"
        self.write_config(cfg)
        self.check_skipped(self.run_engine("--config", "cfg.json"),
                           "there is no nsys trace to take the top kernels from (nsys not found")

    def test_a_trace_without_kernels_says_why_and_goes_on(self):
        self.config(variant="sparse")
        self.check_skipped(self.run_engine("--config", "cfg.json"), "the nsys trace has no CUDA kernel")

    def test_without_ncu_it_says_what_to_install(self):
        cfg = self.config()
        cfg["ncu"]["bin"] = "ncu-not-installed-here"
        self.write_config(cfg)
        self.check_skipped(self.run_engine("--config", "cfg.json"),
                           "ncu not found ('ncu-not-installed-here' is not on PATH); install Nsight Compute "
                           "(scripts/install-deps.sh --ncu) or set ncu.bin")

    def test_no_ncu_section_no_pass(self):
        cfg = self.config()
        del cfg["ncu"]
        self.write_config(cfg)
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([f for f in os.listdir(self.path("results", "baseline")) if "ncu" in f], [])
        r = self.run_engine("--config", "cfg.json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("ncu_overhead", load_json(self.path("results", "search", "latest", "summary.json")))
        self.assertEqual(self.launches(), [])


if __name__ == "__main__":
    unittest.main()
