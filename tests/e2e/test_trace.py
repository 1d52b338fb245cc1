"""Trace parsing: exact values on generated fixtures in three schema variants, the
real A100 export in ../shared/traces, and errors for files that are not traces. GPU
metrics: both export schemas on generated fixtures, a capture whose counters were not
permitted, and the real RTX 3090 report, exported with the installed nsys."""
import json
import math
import os
import shutil
import sqlite3
import subprocess
import unittest

import trace_fixtures
from common import Workspace, KNOBENGINE, SHARED_TRACES


class Summarize(Workspace):
    def summarize(self, path):
        r = subprocess.run([KNOBENGINE, "summarize", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def fixture(self, variant):
        path = self.path(variant + ".sqlite")
        trace_fixtures.make(path, variant)
        return self.summarize(path)

    def test_new_schema(self):
        s = self.fixture("new")
        self.assertEqual((s["nsys_version"], s["export_schema"]), ("2024.5.1", "3.11.0"))
        # kernels 3*2 + 2*0.5 + 4 = 11 ms, plus a 5 ms whole-graph record
        self.assertEqual((s["kernel_ms"], s["graph_trace_ms"], s["gpu_compute_ms"], s["kernel_count"]), (11.0, 5.0, 16.0, 6))
        # device 0: kernels [0,3] u [10,12] u [20,24] and the graph [0,5]: 11 ms; device 1: 1 ms
        self.assertEqual(s["gpu_busy_ms"], {"0": 11.0, "1": 1.0})
        self.assertEqual([(k["name"], k["total_ms"], k["count"], k["percent"]) for k in s["top_kernels"]], [
            ("gemm_kernel<float, 128>(float const*, float*, int)", 6.0, 3, 37.5),
            ("[CUDA graph 1]", 5.0, 1, 31.25), ("flash_fwd", 4.0, 1, 25.0), ("softmax(float*, int)", 1.0, 2, 6.25)])
        self.assertEqual([k.get("graph", False) for k in s["top_kernels"]], [False, True, False, False])
        self.assertEqual(s["memcpy_ms"], 6.25)
        self.assertEqual(s["memcpy_by_kind"], {"HtoD": {"ms": 4.0, "bytes": 1500, "count": 2},
                                               "DtoH": {"ms": 2.0, "bytes": 300, "count": 1},
                                               "DtoD": {"ms": 0.25, "bytes": 64, "count": 1}})
        self.assertEqual((s["memset_ms"], s["memset_bytes"], s["memset_count"]), (0.75, 4096, 1))
        # waits: ppoll 8 + pthread_cond_timedwait 2 + __futex 1 + epoll_wait64 4; write is not
        self.assertEqual((s["osrt_wait_ms"], s["osrt_total_ms"], s["osrt_calls"]), (15.0, 22.0, 6))
        self.assertEqual([(w["name"], w["total_ms"], w["calls"]) for w in s["osrt_top_waits"]], [
            ("ppoll", 8.0, 2), ("epoll_wait64", 4.0, 1), ("pthread_cond_timedwait@GLIBC_2.3.2", 2.0, 1), ("__futex", 1.0, 1)])
        ranges = {(r["name"], r["style"]): (r["total_ms"], r["count"]) for r in s["nvtx_ranges"]}
        self.assertEqual(ranges, {("vllm:prefill", "StartEnd"): (10.0, 1), ("vllm:decode", "StartEnd"): (5.0, 2),
                                  ("get_batch", "PushPop"): (25.0, 2), ("other", "PushPop"): (10.0, 1)})
        self.assertEqual(s["nvtx_phases"]["prefill"]["total_ms"], 10.0)
        self.assertEqual(s["nvtx_phases"]["decode"], {"total_ms": 5.0, "count": 2, "mean_ms": 2.5, "percent": 10.0})
        self.assertEqual(s["nvtx_phases"]["get_batch"]["total_ms"], 25.0)
        self.assertEqual((s["cuda_api_ms"], s["cuda_api_calls"]), (5.0, 5))
        self.assertEqual([(a["name"], a["total_ms"], a["calls"], a["mean_ms"], a["percent"]) for a in s["cuda_api_top"]], [
            ("cudaMemcpyAsync", 4.0, 2, 2.0, 80.0), ("cudaLaunchKernel", 0.75, 2, 0.375, 15.0),
            ("cudaLaunchKernel", 0.25, 1, 0.25, 5.0)])
        self.assertEqual(s["environment"]["gpus"], [
            {"id": i, "name": "NVIDIA H100 80GB HBM3", "bus": "0000:%s:00.0" % bus, "memory_bytes": 85520809984,
             "memory_bandwidth_bytes_per_s": 3352320000000, "clock_hz": 1980000000, "sm_count": 132,
             "compute_capability": "9.0"} for i, bus in ((0, "19"), (1, "1a"))])
        # the first process's value; names not worth reporting (CpuInfo) are left out
        self.assertEqual(s["environment"]["system"], {"Hostname": "gpu-node-7", "CpuCores": "64", "NvDriverVersion": "58008200"})
        self.assertEqual(s["missing_tables"], [])

    def test_kernels_table(self):
        """`knobengine kernels`: every kernel and graph with calls, total, mean, min, max."""
        path = self.path("new.sqlite")
        trace_fixtures.make(path, "new")
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent\n"
                         '"gemm_kernel<float, 128>(float const*, float*, int)",0,3,6.000000,2.000000,2.000000,2.000000,37.500000\n'
                         "[CUDA graph 1],0,1,5.000000,5.000000,5.000000,5.000000,31.250000\n"
                         "flash_fwd,0,1,4.000000,4.000000,4.000000,4.000000,25.000000\n"
                         '"softmax(float*, int)",1,2,1.000000,0.500000,0.500000,0.500000,6.250000\n')
        r = subprocess.run([KNOBENGINE, "kernels", self.path("absent.sqlite")], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("absent.sqlite' not found", r.stderr)

    def test_graph_level_trace_is_counted_and_shown(self):
        """--cuda-graph-trace=graph: time inside graphs is GPU time, busy time, and an
        entry per graph in the top list; percents are of all GPU time."""
        path = self.path("graphs.sqlite")
        trace_fixtures.make_graphs(path)
        s = self.summarize(path)
        self.assertEqual((s["kernel_ms"], s["graph_trace_ms"], s["gpu_compute_ms"]), (3.5, 22.0, 25.5))
        self.assertEqual((s["kernel_count"], s["graph_trace_count"]), (4, 202))
        self.assertEqual(s["gpu_busy_ms"], {"0": 25.5})
        self.assertEqual([(k["name"], k["total_ms"], k["count"], k["percent"], k.get("graph", False)) for k in s["top_kernels"]], [
            ("[CUDA graph 3]", 20.0, 200, 78.431373, True), ("gemm_eager", 3.0, 3, 11.764706, False),
            ("[CUDA graph 5]", 2.0, 2, 7.843137, True), ("copy_kernel", 0.5, 1, 1.960784, False)])
        self.assertAlmostEqual(sum(k["percent"] for k in s["top_kernels"]), 100.0, places=4)

    def busy_fixture(self, name, order, bad_rows=()):
        """300k kernels on two devices, overlapping in places, listed in `order` and
        followed by `bad_rows` (which must not count); returns (summary, expected
        gpu_busy_ms from a plain sorted union of the good rows)."""
        import random
        import sqlite3
        rnd = random.Random(7)
        rows, t = [], 0
        for i in range(300_000):
            d = rnd.randint(1000, 5000)
            rows.append((t, t + d, i % 2))
            t += rnd.randint(500, 6000)  # sometimes before the previous kernel ended
        expected = {}
        for dev in (0, 1):
            busy, cs, ce = 0, None, None
            for s0, e0, _ in sorted(r for r in rows if r[2] == dev):
                if cs is None:
                    cs, ce = s0, e0
                elif s0 > ce:
                    busy, cs, ce = busy + ce - cs, s0, e0
                else:
                    ce = max(ce, e0)
            expected[str(dev)] = round((busy + ce - cs) / 1e6, 6)
        path = self.path(name + ".sqlite")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER, end INTEGER, deviceId INTEGER, "
                   "demangledName INTEGER)")
        db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?, 1)", order(rows) + list(bad_rows))
        db.commit()
        db.close()
        return self.summarize(path), expected

    def test_busy_time_nearly_sorted(self):
        """Neighbours swapped: the bounded reorder window sorts them."""
        def swap_pairs(rows):
            out = list(rows)
            for i in range(0, len(out) - 1, 2):
                out[i], out[i + 1] = out[i + 1], out[i]
            return out
        s, expected = self.busy_fixture("nearly", swap_pairs)
        self.assertEqual(s["gpu_busy_ms"], expected)

    def test_busy_time_far_out_of_order(self):
        """Reversed: rows beyond the reorder window; the union comes from an ORDER BY pass."""
        s, expected = self.busy_fixture("reversed", lambda rows: rows[::-1])
        self.assertEqual(s["gpu_busy_ms"], expected)
        self.assertEqual(s["kernel_count"], 300_000)

    def test_busy_time_far_out_of_order_leaves_out_skipped_rows(self):
        """The ORDER BY pass reads every row again: the rows skipped in the first pass
        (end before start, a duration that overflows alone or added to the total) stay
        out of the union there too."""
        big = trace_fixtures.INT64_MAX
        s, expected = self.busy_fixture("reversed_bad", lambda rows: rows[::-1],
                                        [(-1, big, 0), (10, 5, 1), (0, big - 1000, 1)])
        self.assertEqual(s["gpu_busy_ms"], expected)
        self.assertEqual(s["kernel_count"], 300_000)
        self.assertEqual(s["unreadable"], {"CUPTI_ACTIVITY_KIND_KERNEL":
                                           "skipped 1 row with end before start, 2 rows whose durations overflow"})

    def test_old_schema(self):
        s = self.fixture("old")
        self.assertEqual((s["nsys_version"], s["export_schema"]), ("2021.3.1", "2.6.0"))
        self.assertEqual((s["gpu_compute_ms"], s["graph_trace_ms"]), (11.0, None))
        self.assertEqual(s["memcpy_by_kind"]["HtoD"]["ms"], 4.0)  # no ENUM tables: fixed CUPTI enum
        self.assertEqual((s["osrt_wait_ms"], s["osrt_total_ms"]), (5.0, 12.0))  # no eventClass column: all calls
        self.assertEqual(s["nvtx_phases"]["prefill"], {"total_ms": 4.0, "count": 1, "mean_ms": 4.0, "percent": 50.0})
        self.assertEqual(s["nvtx_phases"]["decode"]["total_ms"], 4.0)  # two push/pop and one start/end
        self.assertIsNone(s["nvtx_phases"]["get_batch"])

    def test_missing_tables_are_null(self):
        s = self.fixture("sparse")
        for k in ("gpu_compute_ms", "memcpy_ms", "memset_ms", "nvtx_ranges", "nsys_version"):
            self.assertIsNone(s[k], k)
        self.assertEqual(s["top_kernels"], [])
        self.assertEqual(s["nvtx_phases"], {"get_batch": None, "prefill": None, "decode": None})
        self.assertEqual((s["osrt_wait_ms"], s["osrt_total_ms"]), (2.0, 3.0))
        self.assertEqual(s["missing_tables"], ["CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                                               "CUPTI_ACTIVITY_KIND_MEMSET", "CUPTI_ACTIVITY_KIND_RUNTIME",
                                               "NVTX_EVENTS"])
        self.assertEqual(s["environment"], {"gpus": [], "system": {}})  # no TARGET_INFO tables: nothing known

    def damaged(self, damage):
        path = self.path(damage + ".sqlite")
        trace_fixtures.make_damaged(path, damage)
        return path

    def test_a_column_of_the_wrong_type_is_null_with_a_reason(self):
        path = self.damaged("wrong_type")
        s = self.summarize(path)
        for k in ("gpu_compute_ms", "kernel_ms", "kernel_count", "gpu_busy_ms"):
            self.assertIsNone(s[k], k)  # never a partial sum
        self.assertEqual(s["top_kernels"], [])
        self.assertEqual(s["unreadable"], {"CUPTI_ACTIVITY_KIND_KERNEL":
                                           "column 'start' holds text in row 7, not an integer"})
        self.assertEqual(s["memcpy_ms"], 6.25)  # the other tables are still read
        self.assertNotIn("CUPTI_ACTIVITY_KIND_KERNEL", s["missing_tables"])
        # `kernels` cannot list what it cannot read: an error, never an empty table
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("kernels: CUPTI_ACTIVITY_KIND_KERNEL of ", r.stderr)
        self.assertIn(" cannot be read (column 'start' holds text in row 7, not an integer)", r.stderr)

    def test_a_missing_column_is_null_with_a_reason(self):
        s = self.summarize(self.damaged("missing_column"))
        self.assertIsNone(s["memcpy_ms"])
        self.assertIsNone(s["memcpy_by_kind"])
        self.assertEqual(s["unreadable"], {"CUPTI_ACTIVITY_KIND_MEMCPY": "no such column: copyKind"})
        self.assertEqual(s["kernel_ms"], 11.0)

    def test_empty_tables_are_zero_not_null(self):
        """An empty table is a measurement: nothing ran in the window."""
        s = self.summarize(self.damaged("empty"))
        self.assertEqual((s["gpu_compute_ms"], s["kernel_ms"], s["kernel_count"], s["graph_trace_ms"]), (0.0, 0.0, 0, 0.0))
        self.assertEqual((s["gpu_busy_ms"], s["top_kernels"], s["nvtx_ranges"]), ({}, [], []))
        self.assertEqual(s["nvtx_phases"], {"get_batch": None, "prefill": None, "decode": None})
        self.assertNotIn("unreadable", s)

    def test_a_corrupt_file_is_an_error(self):
        path = self.damaged("corrupt")
        r = subprocess.run([KNOBENGINE, "summarize", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "knobengine: summarize: cannot read '%s': database disk image is malformed\n" % path)

    def test_a_file_locked_by_a_writer_is_an_error(self):
        import sqlite3
        path = self.path("locked.sqlite")
        trace_fixtures.make(path, "old")
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN EXCLUSIVE")
        try:
            r = subprocess.run([KNOBENGINE, "summarize", path], capture_output=True, text=True, timeout=60)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertEqual(r.stderr, "knobengine: summarize: cannot read '%s': database is locked "
                         "(is another program still writing it?)\n" % path)

    def test_not_a_trace(self):
        p = self.write("junk.sqlite", "this is not sqlite at all, just text padding " * 20)
        r = subprocess.run([KNOBENGINE, "summarize", p], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not an SQLite database", r.stderr)

    def test_path_with_uri_characters(self):
        path = self.path("we?ird#na%me.sqlite")
        trace_fixtures.make(path, "old")
        self.assertEqual(self.summarize(path)["gpu_compute_ms"], 11.0)

    def test_rows_that_cannot_be_summed_are_counted_not_summed(self):
        """End before start, 64-bit overflow, impossible byte counts: those rows are
        skipped, counted in `unreadable`, and every total is of the other rows."""
        path = self.path("bad_rows.sqlite")
        trace_fixtures.make_bad_rows(path)
        s = self.summarize(path)
        self.assertEqual(s["unreadable"], {
            "CUPTI_ACTIVITY_KIND_KERNEL": "skipped 3 rows with end before start, 1 row whose duration overflows",
            "CUPTI_ACTIVITY_KIND_GRAPH_TRACE": "skipped 1 row with end before start",
            "CUPTI_ACTIVITY_KIND_MEMCPY": "skipped 2 rows with end before start, 1 row whose duration overflows, "
                                          "1 row with a negative byte count, 1 row whose byte count overflows",
            "CUPTI_ACTIVITY_KIND_MEMSET": "skipped 1 row with end before start",
            "OSRT_API": "skipped 1 row with end before start",
            "CUPTI_ACTIVITY_KIND_RUNTIME": "skipped 1 row with end before start",
            "NVTX_EVENTS": "skipped 1 row with end before start"})
        # exactly the summary of the 'new' export without those rows
        good = self.fixture("new")
        same = lambda summary: {k: v for k, v in summary.items() if k not in ("unreadable", "source")}
        self.assertEqual(same(s), same(good))
        self.assertEqual(s["gpu_busy_ms"], {"0": 11.0, "1": 1.0})
        # shortest and longest are of the good rows too; the command exits 0
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent\n"
                         '"gemm_kernel<float, 128>(float const*, float*, int)",0,3,6.000000,2.000000,2.000000,2.000000,37.500000\n'
                         "[CUDA graph 1],0,1,5.000000,5.000000,5.000000,5.000000,31.250000\n"
                         "flash_fwd,0,1,4.000000,4.000000,4.000000,4.000000,25.000000\n"
                         '"softmax(float*, int)",1,2,1.000000,0.500000,0.500000,0.500000,6.250000\n'))

    def test_durations_that_overflow_a_total_are_skipped(self):
        """start=0 end=INT64_MAX twice: the first fits and is kept, the second would wrap
        the total; a graph record would wrap kernels plus graphs; NVTX likewise, also an
        unfinished range (its duration up to the last timestamp)."""
        path = self.path("overflow.sqlite")
        trace_fixtures.make_overflow(path)
        s = self.summarize(path)
        big = float("%.6f" % (trace_fixtures.INT64_MAX / 1e6))
        self.assertEqual(s["unreadable"], {
            "CUPTI_ACTIVITY_KIND_KERNEL": "skipped 1 row whose duration overflows",
            "CUPTI_ACTIVITY_KIND_GRAPH_TRACE": "skipped 1 row whose duration overflows",
            "NVTX_EVENTS": "skipped 2 rows whose durations overflow"})
        self.assertEqual((s["kernel_ms"], s["kernel_count"], s["graph_trace_ms"], s["graph_trace_count"],
                          s["gpu_compute_ms"]), (big, 1, 0.0, 0, big))
        self.assertEqual(s["gpu_busy_ms"], {"0": big})
        self.assertEqual([(k["name"], k["total_ms"], k["count"], k["percent"]) for k in s["top_kernels"]],
                         [("huge", big, 1, 100.0)])
        self.assertEqual([(r["name"], r["total_ms"], r["count"], r["percent"]) for r in s["nvtx_ranges"]],
                         [("a", float("%.6f" % (2**62 / 1e6)), 1, 100.0)])
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent\n"
                         "huge,0,1,%.6f,%.6f,%.6f,%.6f,100.000000\n" % ((big,) * 4)))

    def test_a_name_id_missing_from_string_ids_is_named_so(self):
        path = self.path("unknown_strings.sqlite")
        trace_fixtures.make_unknown_strings(path)
        s = self.summarize(path)
        self.assertEqual([(k["name"], k["total_ms"]) for k in s["top_kernels"]],
                         [("[unknown string id 999]", 3.0), ("known_kernel", 1.0)])
        self.assertEqual([(r["name"], r["total_ms"]) for r in s["nvtx_ranges"]], [("[unknown string id 998]", 2.0)])
        self.assertEqual([(a["name"], a["total_ms"]) for a in s["cuda_api_top"]],
                         [("[unknown string id 996]", 2.0), ("cudaLaunchKernel", 1.0)])
        self.assertEqual((s["osrt_total_ms"], s["osrt_wait_ms"]), (6.0, 1.0))  # 997 is no wait function
        self.assertEqual([(w["name"], w["total_ms"]) for w in s["osrt_top_waits"]], [("ppoll", 1.0)])
        self.assertNotIn("unreadable", s)
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout.splitlines()[1:]), (0, [
            "[unknown string id 999],0,1,3.000000,3.000000,3.000000,3.000000,75.000000",
            "known_kernel,0,1,1.000000,1.000000,1.000000,1.000000,25.000000"]))

    def test_without_a_readable_string_ids_every_name_is_unknown(self):
        for variant, unreadable in (("absent", None), ("bad", {"StringIds": "no such column: value"})):
            path = self.path("strings_%s.sqlite" % variant)
            trace_fixtures.make_unknown_strings(path, variant)
            s = self.summarize(path)
            self.assertEqual([k["name"] for k in s["top_kernels"]],
                             ["[unknown string id 999]", "[unknown string id 1]"], variant)
            self.assertEqual([r["name"] for r in s["cuda_api_top"]],
                             ["[unknown string id 996]", "[unknown string id 3]"], variant)
            self.assertEqual((s["kernel_ms"], s["osrt_total_ms"], s["osrt_wait_ms"]), (4.0, 6.0, 0.0), variant)
            self.assertEqual(s.get("unreadable"), unreadable, variant)

    def test_a_path_that_is_not_a_regular_file_is_refused_at_once(self):
        """A FIFO would block SQLite's open until a writer came; a directory or a device
        is no export either. The subprocess timeout is the deadline, never reached."""
        fifo = self.path("trace.sqlite")
        os.mkfifo(fifo)
        directory = self.path("a_directory.sqlite")
        os.mkdir(directory)
        for command in ("summarize", "kernels"):
            for path in (fifo, directory, "/dev/null"):
                r = subprocess.run([KNOBENGINE, command, path], capture_output=True, text=True, timeout=20)
                self.assertEqual((r.returncode, r.stdout, r.stderr),
                                 (1, "", "knobengine: %s: '%s' is not a regular file\n" % (command, path)))

    @unittest.skipUnless(os.path.exists(os.path.join(SHARED_TRACES, "saxpy-mpi-cuda.sqlite")),
                         "../shared/traces/saxpy-mpi-cuda.sqlite is not present")
    def test_real_a100_trace(self):
        s = self.summarize(os.path.join(SHARED_TRACES, "saxpy-mpi-cuda.sqlite"))
        self.assertEqual("%.3f" % s["gpu_compute_ms"], "88.573")
        self.assertEqual(s["kernel_count"], 5)
        self.assertEqual([(k["name"], "%.3f" % k["total_ms"], k["count"]) for k in s["top_kernels"]],
                         [("saxpy(double *, double *, double *, double, int)", "88.573", 5)])
        self.assertEqual("%.3f" % s["memcpy_ms"], "284.700")  # 284.6996
        self.assertEqual({k: "%.3f" % v["ms"] for k, v in s["memcpy_by_kind"].items()}, {"HtoD": "186.001", "DtoH": "98.698"})
        self.assertEqual([(r["name"], round(r["total_ms"] * 1e6), r["count"]) for r in s["nvtx_ranges"]], [
            ("MPI:MPI_Init", 645678983, 1), ("MPI:MPI_Send", 136342959, 10), ("MPI:MPI_Recv", 107721088, 5),
            ("MPI:MPI_Finalize", 6351480, 1), ("saxpy", 231248, 5)])
        self.assertEqual([(a["name"], round(a["total_ms"] * 1e6), a["calls"]) for a in s["cuda_api_top"][:3]], [
            ("cudaMemcpy", 374343896, 15), ("cudaMemcpy", 374336827, 15), ("cudaHostRegister", 316427763, 9)])
        gpu = s["environment"]["gpus"][0]
        self.assertEqual((gpu["name"], gpu["sm_count"], gpu["memory_bytes"], gpu["compute_capability"]),
                         ("NVIDIA A100-SXM4-40GB", 108, 42297524224, "8.0"))
        self.assertEqual((s["environment"]["system"]["CpuDescription"], s["environment"]["system"]["NvDriverVersion"]),
                         ("AMD EPYC 7763 64-Core Processor", "52510517"))
        # the file is only read: no journal or lock files appear next to it
        self.assertEqual(sorted(os.listdir(SHARED_TRACES)), sorted(set(os.listdir(SHARED_TRACES))))


NSYS = shutil.which("nsys")
RTX_REPORT = os.path.join(SHARED_TRACES, "gpu-metrics-rtx3090.nsys-rep")

SM, TENSOR, READ, WRITE, CLOCK, ISSUE = trace_fixtures.GPU_METRIC_NAMES
HEADLINE = [SM, TENSOR, READ, WRITE]


def metric(mean, p50, top, samples):
    return {"mean": mean, "p50": p50, "max": top, "samples": samples}


def kernel(name, samples, *means):
    return {"name": name, "samples": samples, "means": dict(zip(HEADLINE, means))}


# gpu_metric_samples() in the kernel spans: GPU 0 [10, 52] us (k = 2..10), GPU 1 [10, 60] us
# (k = 2..12), GPU 2 without kernels: every sample (0..70 us); k = t / 5 us
FIXTURE_GPU_METRICS = {
    "0": {"window": {"start_ns": 10000, "end_ns": 52000, "duration_ms": 0.042, "basis": "kernels"}, "samples": 9,
          "metrics": {SM: metric(30.0, 30.0, 50.0, 9), TENSOR: metric(0.444444, 0.0, 1.0, 9),
                      READ: metric(13.0, 13.0, 21.0, 9), WRITE: metric(3.0, 3.0, 3.0, 9),
                      CLOCK: metric(1410000006.0, 1410000006.0, 1410000010.0, 9)},
          "headline": HEADLINE,
          # gemm [10, 20) and [30, 45) us: k = 2, 3, 6, 7, 8; softmax [51, 52) us: none
          "kernels": [kernel("gemm", 5, 26.0, 0.4, 11.4, 3.0), kernel("softmax", 0, None, None, None, None)]},
    "1": {"window": {"start_ns": 10000, "end_ns": 60000, "duration_ms": 0.05, "basis": "kernels"}, "samples": 11,
          # DRAM read: 4, 6, ..., 20, 40 (none at k = 12): median (12 + 14) / 2
          "metrics": {SM: metric(65.0, 65.0, 90.0, 11), TENSOR: metric(50.0, 50.0, 50.0, 11),
                      READ: metric(14.8, 13.0, 40.0, 10), WRITE: metric(7.0, 7.0, 12.0, 11),
                      CLOCK: metric(1980000000.0, 1980000000.0, 1980000000.0, 11)},
          "headline": HEADLINE,
          # gemm [10, 30) us: k = 2..5; copy [40, 60) us: k = 8..11
          "kernels": [kernel("gemm", 4, 82.5, 50.0, 7.0, 3.5), kernel("copy", 4, 52.5, 50.0, 23.5, 9.5)]},
    "2": {"window": {"start_ns": 0, "end_ns": 70000, "duration_ms": 0.07, "basis": "samples"}, "samples": 15,
          "metrics": {ISSUE: metric(0.5, 0.5, 0.5, 15), SM: metric(7.0, 7.0, 7.0, 15)},
          "headline": [SM], "kernels": []},
}


def rounded(x):
    return float("%.6f" % x)


def median(values):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    r = 0.5 * (len(v) - 1)
    lo = math.floor(r)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (r - lo) * (v[hi] - v[lo])


def rtx_expected(sqlite_path, top_names):
    """The gpu_metrics of a 2022.4 export computed here, from its tables: GENERIC_EVENTS of
    the GpuMetrics source, one JSON object per sample; the window is the device's kernel
    span; a kernel's means are over the samples at start <= t < end of its launches."""
    db = sqlite3.connect(sqlite_path)
    sources = [sid for sid, data in db.execute("SELECT sourceId, data FROM GENERIC_EVENT_SOURCES")
               if json.loads(data).get("Name") == "GpuMetrics"]
    types = {tid for tid, src in db.execute("SELECT typeId, sourceId FROM GENERIC_EVENT_TYPES") if src in sources}
    spans = {d: (a, b) for d, a, b in db.execute(
        "SELECT deviceId, min(start), max(end) FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY deviceId")}
    launches = db.execute("SELECT k.start, k.end, k.deviceId, s.value FROM CUPTI_ACTIVITY_KIND_KERNEL k "
                          "JOIN StringIds s ON s.id = k.demangledName").fetchall()
    samples = {}
    for raw, ts, tid, data in db.execute("SELECT rawTimestamp, timestamp, typeId, data FROM GENERIC_EVENTS"):
        if tid in types:
            samples.setdefault(tid & 0xFF, []).append((ts if ts is not None else raw, json.loads(data)))
    db.close()
    out = {}
    for device, rows in samples.items():
        start, end = spans[device]
        inside = [(t, fields) for t, fields in rows if start <= t <= end]
        values = {}
        for _, fields in inside:
            for name, v in fields.items():
                values.setdefault(name, []).append(float(v))
        headline = ["SM Active", "Tensor Active", "DRAM Read Throughput", "DRAM Write Throughput"]
        kernels = []
        for name in top_names:
            mine = [(a, b) for a, b, d, n in launches if n == name and d == device]
            if not mine:
                continue
            hits = [fields for a, b in mine for t, fields in inside if a <= t < b]
            kernels.append({"name": name, "samples": len(hits), "means": {
                h: rounded(sum(float(f[h]) for f in hits) / len(hits)) if hits else None for h in headline}})
        samples_n = max(len(v) for v in values.values())
        out[str(device)] = {
            "window": {"start_ns": start, "end_ns": end, "duration_ms": rounded((end - start) / 1e6), "basis": "kernels"},
            "samples": samples_n,
            "metrics": {n: metric(rounded(sum(v) / len(v)), rounded(median(v)), rounded(max(v)), len(v))
                        for n, v in values.items()},
            "headline": headline, "kernels": kernels,
            "timeline": timeline_expected(inside, start, end, headline, min(120, samples_n))}
    return out


def timeline_expected(inside, start, end, headline, buckets):
    """The headline metrics' timeline: the window [start, end] cut into equal buckets, each
    bucket's mean (None: no sample), t_ms the buckets' middles from the start."""
    width = (end - start + 1) / buckets
    edges = [start + math.floor(k * width) for k in range(buckets)] + [math.inf]
    series = {}
    for h in headline:
        means = []
        for k in range(buckets):
            vs = [float(f[h]) for t, f in inside if edges[k] <= t < edges[k + 1] and h in f]
            means.append(rounded(sum(vs) / len(vs)) if vs else None)
        series[h] = means
    return {"t_ms": [rounded((k + 0.5) * width / 1e6) for k in range(buckets)], "series": series}


def without_timeline(gm):
    return {d: {k: v for k, v in m.items() if k != "timeline"} for d, m in gm.items()}


class GpuMetrics(Workspace):
    def summarize(self, path):
        r = subprocess.run([KNOBENGINE, "summarize", path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout, json.loads(r.stdout)

    def test_both_export_schemas_per_device(self):
        """nsys 2023+ (GPU_METRICS) and 2022.x (GENERIC_EVENTS, fields in any order, values
        as strings) give the same numbers: per device, never summed across devices."""
        for schema, unreadable in (
                ("2023", {"GPU_METRICS": "skipped 1 value without a timestamp, 1 value of a metric "
                                         "TARGET_INFO_GPU_METRICS does not name"}),
                ("2022", {"GENERIC_EVENTS": "skipped 1 sample whose data is not a JSON object, "
                                            "1 value that is not a number"})):
            with self.subTest(schema):
                path = self.path("gm%s.sqlite" % schema)
                trace_fixtures.make_gpu_metrics(path, schema)
                _, s = self.summarize(path)
                self.assertEqual(without_timeline(s["gpu_metrics"]), FIXTURE_GPU_METRICS)
                # device 0's samples every 5 us, one per bucket: the timeline is the samples
                tl = s["gpu_metrics"]["0"]["timeline"]
                self.assertEqual(tl["series"]["SMs Active [Throughput %]"], [10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0])
                self.assertEqual(tl["t_ms"][0], 0.002333)
                self.assertIsNone(s["gpu_metrics"]["1"]["timeline"]["series"]["DRAM Read Bandwidth [Throughput %]"][-1])
                self.assertNotIn("gpu_metrics_reason", s)
                self.assertEqual(s["unreadable"], unreadable)
                # the kernels themselves: a kernel on two GPUs is one entry, split by device
                gemm = s["top_kernels"][0]
                self.assertEqual((gemm["name"], gemm["total_ms"], gemm["count"]), ("gemm", 0.045, 3))

    def test_summarize_text_of_gpu_metrics(self):
        """After cuda_api_top, before environment; devices by id, metrics by name, kernels'
        means in headline order; every other field as it was."""
        path = self.path("gm.sqlite")
        trace_fixtures.make_gpu_metrics(path, "2023")
        text, s = self.summarize(path)
        keys = list(json.loads(text, object_pairs_hook=lambda kv: kv)[i][0] for i in range(len(s)))
        self.assertEqual(keys[keys.index("cuda_api_top"):keys.index("environment") + 1],
                         ["cuda_api_top", "gpu_metrics", "environment"])
        self.assertIn('\n    "2": {\n'
                      '      "window": {"start_ns": 0, "end_ns": 70000, "duration_ms": 0.070000, "basis": "samples"},\n'
                      '      "samples": 15,\n'
                      '      "metrics": {\n'
                      '        "SM Issue [Throughput %]": {"mean": 0.500000, "p50": 0.500000, "max": 0.500000, "samples": 15},\n'
                      '        "SMs Active [Throughput %]": {"mean": 7.000000, "p50": 7.000000, "max": 7.000000, "samples": 15}\n'
                      '      },\n'
                      '      "headline": ["SMs Active [Throughput %]"],\n'
                      '      "kernels": [],\n'
                      '      "timeline": {\n'
                      '        "t_ms": [0.002333, 0.007000, 0.011667, 0.016334, 0.021000, 0.025667, 0.030334, 0.035000, '
                      '0.039667, 0.044334, 0.049001, 0.053667, 0.058334, 0.063001, 0.067668],\n'
                      '        "series": {\n'
                      '          "SMs Active [Throughput %]": [' + ", ".join(["7.000000"] * 15) + ']\n'
                      '        }\n'
                      '      }\n'
                      '    }\n'
                      '  },\n'
                      '  "environment": {', text)
        self.assertIn('        {"name": "softmax", "samples": 0, "means": {"SMs Active [Throughput %]": null, '
                      '"Tensor Active [Throughput %]": null, "DRAM Read Bandwidth [Throughput %]": null, '
                      '"DRAM Write Bandwidth [Throughput %]": null}}\n', text)

    def test_kernels_table_has_a_row_per_kernel_and_device(self):
        path = self.path("gm.sqlite")
        trace_fixtures.make_gpu_metrics(path, "2022")
        r = subprocess.run([KNOBENGINE, "kernels", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent\n"
                         "gemm,0,2,0.025000,0.012500,0.010000,0.015000,37.878788\n"
                         "gemm,1,1,0.020000,0.020000,0.020000,0.020000,30.303030\n"  # ties: the kernel's rank
                         "copy,1,1,0.020000,0.020000,0.020000,0.020000,30.303030\n"
                         "softmax,0,1,0.001000,0.001000,0.001000,0.001000,1.515152\n"))

    def test_counters_not_permitted(self):
        """Asked for, named, never sampled: null, with what nsys said and what to grant."""
        path = self.path("denied.sqlite")
        trace_fixtures.make_gpu_metrics_denied(path)
        _, s = self.summarize(path)
        self.assertIsNone(s["gpu_metrics"])
        self.assertEqual(s["gpu_metrics_reason"],
                         "nsys was not permitted to read the GPU performance counters (ERR_NVGPUCTRPERM), so it "
                         "sampled no GPU metrics; allow every user with the nvidia driver option "
                         "NVreg_RestrictProfilingToAdminUsers=0 (the line 'options nvidia "
                         "NVreg_RestrictProfilingToAdminUsers=0' in a file of /etc/modprobe.d, then reload the nvidia "
                         "module or reboot), or run knobengine as root; nsys said: " + trace_fixtures.PERMISSION_TEXT)
        self.assertEqual(s["kernel_count"], 5)  # the rest of the trace is there
        self.assertNotIn("unreadable", s)

    def test_an_export_without_samples(self):
        path = self.path("new.sqlite")
        trace_fixtures.make(path, "new")
        text, s = self.summarize(path)
        self.assertIsNone(s["gpu_metrics"])
        self.assertEqual(s["gpu_metrics_reason"], "the export holds no GPU metrics samples (nsys.gpu_metrics takes them)")
        self.assertIn('\n  "gpu_metrics": null,\n  "gpu_metrics_reason": "the export holds', text)
        self.assertEqual(s["missing_tables"], [])  # no sample table is a missing table

    def test_samples_that_cannot_be_read_are_null_never_partial(self):
        path = self.path("gm.sqlite")
        trace_fixtures.make_gpu_metrics(path, "2023")
        db = sqlite3.connect(path)
        db.execute("UPDATE GPU_METRICS SET value = 'abc' WHERE rowid = 3")
        db.commit()
        db.close()
        _, s = self.summarize(path)
        self.assertIsNone(s["gpu_metrics"])
        self.assertEqual(s["gpu_metrics_reason"], "the GPU metrics samples cannot be read (see unreadable: GPU_METRICS "
                                                  "and the tables naming their metrics)")
        self.assertEqual(s["unreadable"], {"GPU_METRICS": "column 'value' holds text in row 3, not a number"})
        self.assertEqual(s["kernel_count"], 5)

    def test_many_distinct_values(self):
        """Past 4096 distinct values (clocks) the median is of every value kept: still exact."""
        path = self.path("clock.sqlite")
        values = [(i * 7919) % 10007 + 0.25 * (i % 4) for i in range(6001)]
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE TARGET_INFO_GPU_METRICS (typeId INTEGER, sourceId INTEGER, typeName TEXT, "
                   "metricId INTEGER, metricName TEXT)")
        db.execute("INSERT INTO TARGET_INFO_GPU_METRICS VALUES (3, 3, 'GPU 3', 0, 'GPC Clock Frequency [MHz]')")
        db.execute("CREATE TABLE GPU_METRICS (timestamp INTEGER, typeId INTEGER, metricId INTEGER, value REAL)")
        db.executemany("INSERT INTO GPU_METRICS VALUES (?, 3, 0, ?)", [(1000 * i, v) for i, v in enumerate(values)])
        db.commit()
        db.close()
        _, s = self.summarize(path)
        self.assertEqual(s["gpu_metrics"]["3"]["metrics"]["GPC Clock Frequency [MHz]"],
                         metric(rounded(math.fsum(values) / len(values)), rounded(median(values)), max(values), 6001))
        self.assertEqual(median(values), 5003.0)

    @unittest.skipUnless(NSYS, "nsys is not installed: the RTX 3090 report cannot be exported "
                               "(scripts/install-deps.sh --nsys installs it)")
    @unittest.skipUnless(os.path.exists(RTX_REPORT), "../shared/traces/gpu-metrics-rtx3090.nsys-rep is not present")
    def test_real_rtx3090_report(self):
        """The report in place, exported here by the installed nsys (2022.4: GENERIC_EVENTS);
        every figure equals the one computed from its tables in this test."""
        before = sorted(os.listdir(SHARED_TRACES))
        sqlite = self.path("rtx3090.sqlite")
        r = subprocess.run([NSYS, "export", "--type", "sqlite", "-o", sqlite, RTX_REPORT],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, s = self.summarize(sqlite)
        self.assertEqual(sorted(os.listdir(SHARED_TRACES)), before)  # read in place, nothing written beside it
        self.assertEqual(s["gpu_metrics"], rtx_expected(sqlite, [k["name"] for k in s["top_kernels"]]))
        d = s["gpu_metrics"]["0"]
        self.assertEqual(list(s["gpu_metrics"]), ["0"])
        self.assertEqual((d["window"]["start_ns"], d["window"]["end_ns"], d["samples"], len(d["metrics"])),
                         (330314888, 352136492, 218, 18))
        self.assertEqual(d["metrics"]["SM Active"], metric(95.96789, 100.0, 100.0, 218))
        self.assertEqual(d["metrics"]["Tensor Active"], metric(0.004587, 0.0, 1.0, 218))
        self.assertEqual(d["metrics"]["DRAM Read Throughput"], metric(1.165138, 1.0, 6.0, 218))
        self.assertEqual(d["kernels"][0]["samples"], 2)  # generate_seed_pseudo: 157 us at 10 kHz
        self.assertEqual(d["kernels"][0]["means"]["SM Active"], 47.0)
