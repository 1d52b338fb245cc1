"""Generated nsys-schema SQLite files for the trace parser tests. Three schema
variants: 'new' (ENUM tables, META_DATA_EXPORT, NVTX textId/domainId, graph trace),
'old' (no ENUM tables, EXPORT_META_DATA, NVTX text only, OSRT without eventClass) and
'sparse' (most tables missing); damaged ones (make_damaged), rows that cannot be summed
(make_bad_rows, make_overflow) and name ids missing from StringIds
(make_unknown_strings). Every value is chosen so totals are exact."""
import sqlite3

MS = 1_000_000  # ns per ms


def _strings(db, values):
    db.execute("CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL)")
    db.executemany("INSERT INTO StringIds VALUES (?, ?)", list(values.items()))


def make(path, variant):
    db = sqlite3.connect(path)
    strings = {1: "gemm_kernel<float, 128>(float const*, float*, int)", 2: "gemm_kernel",
               3: "softmax(float*, int)", 4: "softmax", 5: "ppoll", 6: "pthread_cond_timedwait@GLIBC_2.3.2",
               7: "write", 8: "prefill", 9: "decode", 10: "get_batch", 11: "vllm", 12: "flash_fwd",
               13: "flash_fwd", 14: "__futex", 15: "epoll_wait64", 16: "cudaLaunchKernel_v7000",
               17: "cudaMemcpyAsync", 18: "cudaLaunchKernel"}
    _strings(db, strings)
    if variant == "sparse":
        db.execute("CREATE TABLE OSRT_API (start INTEGER, end INTEGER, eventClass INTEGER, nameId INTEGER)")
        db.executemany("INSERT INTO OSRT_API VALUES (?, ?, 27, ?)", [(0, 2 * MS, 5), (0, 1 * MS, 7)])
        db.commit()
        db.close()
        return
    new = variant == "new"
    # kernels: gemm 3 x 2 ms on device 0 (two overlapping), softmax 2 x 0.5 ms on device 1,
    # flash_fwd 1 x 4 ms on device 0
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, "
               "deviceId INTEGER NOT NULL, streamId INTEGER, demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL)")
    kernels = [(0, 2 * MS, 0, 1, 2), (1 * MS, 3 * MS, 0, 1, 2), (10 * MS, 12 * MS, 0, 1, 2),
               (0, MS // 2, 1, 3, 4), (MS, MS + MS // 2, 1, 3, 4), (20 * MS, 24 * MS, 0, 12, 13)]
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?, 7, ?, ?)", kernels)
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL, "
               "deviceId INTEGER, bytes INTEGER NOT NULL, copyKind INTEGER NOT NULL)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (?, ?, 0, ?, ?)",
                   [(0, 3 * MS, 1000, 1), (0, 1 * MS, 500, 1), (0, 2 * MS, 300, 2), (0, MS // 4, 64, 8)])
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INTEGER NOT NULL, end INTEGER NOT NULL, bytes INTEGER NOT NULL)")
    db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET VALUES (0, 750000, 4096)")
    if new:
        db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_GRAPH_TRACE (start INTEGER NOT NULL, end INTEGER NOT NULL, graphId INTEGER)")
        db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_GRAPH_TRACE VALUES (0, 5000000, 1)")
        # CUDA API: two versioned entry points of one function stay two rows (as in nsys)
        db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL, "
                   "eventClass INTEGER NOT NULL, globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL)")
        db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?, ?, 1, 1, 0, ?)", [
            (0, 3 * MS, 17), (0, MS, 17), (0, MS // 2, 16), (0, MS // 4, 16), (0, MS // 4, 18)])
        db.execute("CREATE TABLE TARGET_INFO_GPU (vmId INTEGER, id INTEGER, name TEXT, busLocation TEXT, "
                   "totalMemory INTEGER, memoryBandwidth INTEGER, clockRate INTEGER, smCount INTEGER, "
                   "computeMajor INTEGER, computeMinor INTEGER)")
        db.executemany("INSERT INTO TARGET_INFO_GPU VALUES (1, ?, ?, ?, ?, ?, ?, ?, 9, 0)", [
            (1, "NVIDIA H100 80GB HBM3", "0000:1a:00.0", 85520809984, 3352320000000, 1980000000, 132),
            (0, "NVIDIA H100 80GB HBM3", "0000:19:00.0", 85520809984, 3352320000000, 1980000000, 132)])
        db.execute("CREATE TABLE TARGET_INFO_SYSTEM_ENV (globalVid INTEGER, devStateName TEXT, name TEXT, "
                   "nameEnum INTEGER, value TEXT)")
        db.executemany("INSERT INTO TARGET_INFO_SYSTEM_ENV VALUES (1, 'Local', ?, 0, ?)", [
            ("Hostname", "gpu-node-7"), ("CpuCores", "64"), ("CpuInfo", "{...}"), ("NvDriverVersion", "58008200"),
            ("Hostname", "second-process")])
        db.execute("CREATE TABLE ENUM_CUDA_MEMCPY_OPER (id INTEGER PRIMARY KEY, name TEXT, label TEXT)")
        db.execute("INSERT INTO ENUM_CUDA_MEMCPY_OPER VALUES (1, 'CUDA_MEMCPY_OPER_HTOD', 'Host-to-Device')")
        db.execute("CREATE TABLE META_DATA_EXPORT (name TEXT, value TEXT)")
        db.executemany("INSERT INTO META_DATA_EXPORT VALUES (?, ?)", [("EXPORT_PRODUCT_VERSION", "2024.5.1"), ("EXPORT_SCHEMA_VERSION", "3.11.0")])
        db.execute("CREATE TABLE OSRT_API (start INTEGER, end INTEGER, eventClass INTEGER, nameId INTEGER, globalTid INTEGER)")
        db.executemany("INSERT INTO OSRT_API VALUES (?, ?, ?, ?, 1)",
                       [(0, 5 * MS, 27, 5), (0, 3 * MS, 27, 5), (0, 2 * MS, 27, 6), (0, 7 * MS, 27, 7),
                        (0, 1 * MS, 27, 14), (0, 4 * MS, 27, 15), (0, 100 * MS, 28, 5)])  # class 28 is not OSRT
        db.execute("CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, "
                   "text TEXT, globalTid INTEGER, textId INTEGER, domainId INTEGER)")
        P = 0x0000000123000000  # process bits of globalTid
        db.executemany("INSERT INTO NVTX_EVENTS VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (0, None, 75, "vllm", P + 1, None, 5),               # domain 5 is 'vllm' in this process
            (0, 10 * MS, 60, None, P + 1, 8, 5),                 # vllm:prefill 10 ms
            (10 * MS, 12 * MS, 60, None, P + 1, 9, 5),           # vllm:decode 2 ms
            (12 * MS, 15 * MS, 60, None, P + 1, 9, 5),           # vllm:decode 3 ms
            (15 * MS, 16 * MS, 59, "get_batch", P + 2, None, 0), # default domain, text label
            (16 * MS, None, 59, "get_batch", P + 2, None, 0),    # unfinished: ends at 40 ms
            (30 * MS, 40 * MS, 59, "other", P + 2, None, 0),
            (35 * MS, None, 34, "a mark", P + 2, None, 0),       # marks are not ranges
        ])
    else:
        db.execute("CREATE TABLE EXPORT_META_DATA (name TEXT, value TEXT)")
        db.executemany("INSERT INTO EXPORT_META_DATA VALUES (?, ?)", [("EXPORT_PRODUCT_VERSION", "2021.3.1"), ("EXPORT_SCHEMA_VERSION", "2.6.0")])
        db.execute("CREATE TABLE OSRT_API (start INTEGER, end INTEGER, nameId INTEGER)")
        db.executemany("INSERT INTO OSRT_API VALUES (?, ?, ?)", [(0, 5 * MS, 5), (0, 7 * MS, 7)])
        db.execute("CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, "
                   "rangeId INTEGER, text TEXT, globalTid INTEGER)")
        db.executemany("INSERT INTO NVTX_EVENTS VALUES (?, ?, ?, NULL, ?, 1)", [
            (0, 4 * MS, 59, "prefill"), (4 * MS, 5 * MS, 59, "decode"), (5 * MS, 6 * MS, 59, "decode"),
            (6 * MS, 8 * MS, 60, "decode"),
        ])
    db.commit()
    db.close()


def make_damaged(path, damage):
    """An export with one kind of damage:
    'wrong_type'     a kernel row whose start is text (the kernels cannot be summed);
    'missing_column' a memcpy table without copyKind;
    'empty'          kernel and NVTX tables that exist but hold no rows;
    'corrupt'        a valid export with pages overwritten (SQLite says malformed)."""
    if damage == "corrupt":
        make(path, "new")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE filler (x TEXT)")
        db.executemany("INSERT INTO filler VALUES (?)", [("f" * 500,)] * 200)  # many pages
        db.commit()
        page = db.execute("PRAGMA page_size").fetchone()[0]
        db.close()
        with open(path, "r+b") as f:
            f.seek(page * 2)  # keep the header page; the schema's pages become noise
            f.write(bytes((i * 37) % 251 for i in range(page * 20)))
        return
    make(path, "new")
    db = sqlite3.connect(path)
    if damage == "wrong_type":
        db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES ('abc', 5, 0, 7, 1, 2)")
    elif damage == "missing_column":
        db.execute("DROP TABLE CUPTI_ACTIVITY_KIND_MEMCPY")
        db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER, end INTEGER, bytes INTEGER)")
        db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (0, 1000, 8)")
    elif damage == "empty":
        db.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL")
        db.execute("DELETE FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE")
        db.execute("DELETE FROM NVTX_EVENTS")
    db.commit()
    db.close()


def make_graphs(path):
    """A trace taken with --cuda-graph-trace=graph: a CUDA graph (id 3) replayed 200
    times and another (id 5) twice, as whole-graph records, plus eager kernels."""
    db = sqlite3.connect(path)
    _strings(db, {1: "gemm_eager", 2: "copy_kernel"})
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, "
               "deviceId INTEGER NOT NULL, demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, 0, ?, ?)",
                   [(0, MS, 1, 1), (2 * MS, 3 * MS, 1, 1), (4 * MS, 5 * MS, 1, 1), (6 * MS, 6 * MS + MS // 2, 2, 2)])
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_GRAPH_TRACE (start INTEGER NOT NULL, end INTEGER NOT NULL, "
               "deviceId INTEGER NOT NULL, contextId INTEGER, streamId INTEGER, correlationId INTEGER, graphId INTEGER NOT NULL)")
    rows = [(10 * MS + i * 200_000, 10 * MS + i * 200_000 + 100_000, 3) for i in range(200)]
    rows += [(60 * MS, 61 * MS, 5), (62 * MS, 63 * MS, 5)]
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_GRAPH_TRACE VALUES (?, ?, 0, 1, 7, 0, ?)", rows)
    db.commit()
    db.close()


INT64_MAX = 2**63 - 1


def make_bad_rows(path):
    """The 'new' export with rows that cannot be summed appended to its tables (every
    good row's total is unchanged): rows whose end is before their start, durations that
    do not fit in 64 bits or overflow a total, and impossible byte counts."""
    make(path, "new")
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?, 7, ?, ?)", [
        (5 * MS, 4 * MS, 0, 1, 2), (30 * MS, 29 * MS, 0, 1, 2), (3 * MS, 1, 1, 3, 4),  # end before start
        (0, INT64_MAX, 0, 12, 13)])  # fits alone, not added to the 11 ms already summed
    db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_GRAPH_TRACE VALUES (50000000, 40000000, 1)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (?, ?, 0, ?, ?)", [
        (2 * MS, MS, 10, 1), (2 * MS, 0, 10, 2),  # end before start
        (-10, INT64_MAX, 10, 1),                  # end - start does not fit in 64 bits
        (0, MS, INT64_MAX, 1),                    # 1500 + INT64_MAX bytes
        (0, MS, -8, 2)])                          # a negative byte count
    db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET VALUES (10, 5, 4096)")
    db.executemany("INSERT INTO OSRT_API VALUES (?, ?, ?, ?, 1)",
                   [(9 * MS, 8 * MS, 27, 5), (9 * MS, 8 * MS, 28, 5)])  # class 28 is not read
    db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (4, 3, 1, 1, 0, 17)")
    P = 0x0000000123000000
    # a backwards prefill range late in the trace: neither summed nor the last timestamp
    # (the unfinished get_batch still ends at 40 ms)
    db.execute("INSERT INTO NVTX_EVENTS VALUES (?, ?, 60, NULL, ?, 8, 5)", (100 * MS, 90 * MS, P + 1))
    db.commit()
    db.close()


def make_overflow(path):
    """Durations that fit one by one but overflow once summed: start=0 end=INT64_MAX
    twice (the first is kept), a whole-graph record that would overflow kernels plus
    graphs, NVTX ranges of 2^62 ns twice plus an unfinished one."""
    db = sqlite3.connect(path)
    _strings(db, {1: "huge"})
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER, end INTEGER, deviceId INTEGER, "
               "demangledName INTEGER)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, 0, 1)", [(0, INT64_MAX)] * 2)
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_GRAPH_TRACE (start INTEGER, end INTEGER, deviceId INTEGER, graphId INTEGER)")
    db.execute("INSERT INTO CUPTI_ACTIVITY_KIND_GRAPH_TRACE VALUES (0, 10, 0, 1)")
    db.execute("CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, "
               "text TEXT, globalTid INTEGER)")
    db.executemany("INSERT INTO NVTX_EVENTS VALUES (?, ?, 59, ?, 1)",
                   [(0, 2**62, "a"), (0, 2**62, "b"), (-5, None, "c")])
    db.commit()
    db.close()


def make_unknown_strings(path, strings_table="good"):
    """Name ids with no row in StringIds: a kernel (999), an NVTX label (998), an OS
    runtime function (997) and a CUDA API function (996). strings_table: 'good' (ids
    1-3 only), 'absent' (no StringIds table) or 'bad' (StringIds without a value column)."""
    db = sqlite3.connect(path)
    if strings_table == "good":
        _strings(db, {1: "known_kernel", 2: "ppoll", 3: "cudaLaunchKernel"})
    elif strings_table == "bad":
        db.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO StringIds VALUES (1, 'known_kernel')")
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER, end INTEGER, deviceId INTEGER, "
               "demangledName INTEGER)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, 0, ?)",
                   [(0, 3 * MS, 999), (3 * MS, 4 * MS, 1)])
    db.execute("CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL, "
               "text TEXT, globalTid INTEGER, textId INTEGER, domainId INTEGER)")
    db.execute("INSERT INTO NVTX_EVENTS VALUES (0, 2000000, 59, NULL, 1, 998, 0)")
    db.execute("CREATE TABLE OSRT_API (start INTEGER, end INTEGER, eventClass INTEGER, nameId INTEGER)")
    db.executemany("INSERT INTO OSRT_API VALUES (?, ?, 27, ?)", [(0, 5 * MS, 997), (0, MS, 2)])
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER, end INTEGER, nameId INTEGER)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?, ?, ?)", [(0, 2 * MS, 996), (0, MS, 3)])
    db.commit()
    db.close()


# ---- GPU metrics -----------------------------------------------------------------

GPU_METRICS_TYPE = 0x0001000100000000  # nsys's GPU metrics type id; its low byte is the GPU
GPU_METRIC_NAMES = ["SMs Active [Throughput %]", "Tensor Active [Throughput %]", "DRAM Read Bandwidth [Throughput %]",
                    "DRAM Write Bandwidth [Throughput %]", "GPC Clock Frequency [MHz]", "SM Issue [Throughput %]"]


def gpu_metric_samples():
    """{(device, t): {metric: value}}: every 5 us from 0 to 70 us on GPUs 0, 1 and 2.
    GPU 0: SM 5k, tensor k%2, DRAM read 2k+1, write 3, clock 1410000000+k (k = t / 5 us);
    GPU 1: SM 100-5k, tensor 50, DRAM read 2k (40 at k=11, none at k=12), write k, clock
    1980000000; GPU 2 (no kernels): SM 7, SM Issue 0.5."""
    out = {}
    for k in range(15):
        t = k * 5000
        sm, tensor, read, write, clock = GPU_METRIC_NAMES[:5]
        out[(0, t)] = {sm: 5 * k, tensor: k % 2, read: 2 * k + 1, write: 3, clock: 1410000000 + k}
        out[(1, t)] = {sm: 100 - 5 * k, tensor: 50, read: 40 if k == 11 else 2 * k, write: k, clock: 1980000000}
        if k == 12:
            del out[(1, t)][read]
        out[(2, t)] = {sm: 7, GPU_METRIC_NAMES[5]: 0.5}
    return out


def _gpu_metrics_kernels(db):
    """gemm on GPU 0 [10, 20) and [30, 45) us and on GPU 1 [10, 30) us, copy on GPU 1 [40,
    60) us, softmax on GPU 0 [51, 52) us (no sample inside)."""
    _strings(db, {1: "gemm", 2: "copy", 3: "softmax"})
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INTEGER NOT NULL, end INTEGER NOT NULL, "
               "deviceId INTEGER NOT NULL, demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL)")
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?, ?, ?)", [
        (10000, 20000, 0, 1, 1), (10000, 30000, 1, 1, 1), (30000, 45000, 0, 1, 1), (40000, 60000, 1, 2, 2),
        (51000, 52000, 0, 3, 3)])


def make_gpu_metrics(path, schema):
    """The samples of gpu_metric_samples() and the kernels above, as nsys 2023+ writes them
    (schema '2023': GPU_METRICS with TARGET_INFO_GPU_METRICS, plus a value without a
    timestamp and one of a metric id that has no name) or as 2022.x does ('2022':
    GENERIC_EVENTS of the source GpuMetrics, one JSON object of strings per sample in
    an order that changes from sample to sample, plus a sample that is not JSON, a value
    that is not a number and an event of another source)."""
    db = sqlite3.connect(path)
    _gpu_metrics_kernels(db)
    samples = gpu_metric_samples()
    if schema == "2023":
        db.execute("CREATE TABLE TARGET_INFO_GPU_METRICS (typeId INTEGER NOT NULL, sourceId INTEGER NOT NULL, "
                   "typeName TEXT NOT NULL, metricId INTEGER NOT NULL, metricName TEXT NOT NULL)")
        db.execute("CREATE TABLE GPU_METRICS (timestamp INTEGER, typeId INTEGER NOT NULL, metricId INTEGER NOT NULL, "
                   "value INTEGER NOT NULL)")
        for gpu in (0, 1, 2):
            names = GPU_METRIC_NAMES[:5] if gpu < 2 else [GPU_METRIC_NAMES[0], GPU_METRIC_NAMES[5]]
            db.executemany("INSERT INTO TARGET_INFO_GPU_METRICS VALUES (?, ?, ?, ?, ?)", [
                (GPU_METRICS_TYPE + gpu, GPU_METRICS_TYPE, "GPU %d" % gpu, i, n) for i, n in enumerate(names)])
            ids = {n: i for i, n in enumerate(names)}
            db.executemany("INSERT INTO GPU_METRICS VALUES (?, ?, ?, ?)", [
                (t, GPU_METRICS_TYPE + gpu, ids[n], v) for (g, t), fields in sorted(samples.items()) if g == gpu
                for n, v in fields.items()])
        db.executemany("INSERT INTO GPU_METRICS VALUES (?, ?, ?, ?)",
                       [(None, GPU_METRICS_TYPE, 0, 99), (20000, GPU_METRICS_TYPE, 42, 99)])
    else:
        import json
        db.execute("CREATE TABLE GENERIC_EVENT_SOURCES (sourceId INTEGER NOT NULL PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("CREATE TABLE GENERIC_EVENT_TYPES (typeId INTEGER NOT NULL PRIMARY KEY, sourceId INTEGER NOT NULL, "
                   "data TEXT NOT NULL)")
        db.execute("CREATE TABLE GENERIC_EVENTS (rawTimestamp INTEGER NOT NULL, timestamp INTEGER, "
                   "typeId INTEGER NOT NULL, data TEXT NOT NULL)")
        db.executemany("INSERT INTO GENERIC_EVENT_SOURCES VALUES (?, ?)", [
            (GPU_METRICS_TYPE, '{\n "Name": "GpuMetrics",\n "TimeSource": "SessionNs",\n "SourceGroup": "Unknown"\n}'),
            (7, '{"Name": "SomethingElse"}')])
        db.executemany("INSERT INTO GENERIC_EVENT_TYPES VALUES (?, ?, ?)", [
            (GPU_METRICS_TYPE + gpu, GPU_METRICS_TYPE, '{"Name": "", "Fields": []}') for gpu in (0, 1, 2)]
            + [(70, 7, '{"Name": "x"}')])
        for i, ((gpu, t), fields) in enumerate(sorted(samples.items())):
            items = [(n, str(v)) for n, v in fields.items()]
            data = json.dumps(dict(items[::-1] if i % 2 else items), indent=4).replace("/", "\\/")
            db.execute("INSERT INTO GENERIC_EVENTS VALUES (?, NULL, ?, ?)", (t, GPU_METRICS_TYPE + gpu, data))
        db.executemany("INSERT INTO GENERIC_EVENTS VALUES (?, NULL, ?, ?)", [
            (20000, GPU_METRICS_TYPE, "{not json"), (20000, GPU_METRICS_TYPE, '{"SMs Active [Throughput %]": "n/a"}'),
            (20000, 70, '{"SMs Active [Throughput %]": "100"}')])
    db.commit()
    db.close()


PERMISSION_TEXT = ("GPU Metrics [0]: The user running Nsight Systems does not have permission to access NVIDIA GPU "
                   "Performance Counters on the target device. For more details, please visit "
                   "https://developer.nvidia.com/ERR_NVGPUCTRPERM")


def make_gpu_metrics_denied(path):
    """A capture that asked for GPU metrics where the counters are reserved to root: the
    metrics are named but there is no sample, and DIAGNOSTIC_EVENT says why."""
    db = sqlite3.connect(path)
    _gpu_metrics_kernels(db)
    db.execute("CREATE TABLE TARGET_INFO_GPU_METRICS (typeId INTEGER NOT NULL, sourceId INTEGER NOT NULL, "
               "typeName TEXT NOT NULL, metricId INTEGER NOT NULL, metricName TEXT NOT NULL)")
    db.execute("INSERT INTO TARGET_INFO_GPU_METRICS VALUES (?, ?, 'GPU 0', 0, 'SMs Active [Throughput %]')",
               (GPU_METRICS_TYPE, GPU_METRICS_TYPE))
    db.execute("CREATE TABLE GPU_METRICS (timestamp INTEGER, typeId INTEGER NOT NULL, metricId INTEGER NOT NULL, "
               "value INTEGER NOT NULL)")
    db.execute("CREATE TABLE DIAGNOSTIC_EVENT (timestamp INTEGER NOT NULL, timestampType INTEGER NOT NULL, "
               "source INTEGER NOT NULL, severity INTEGER NOT NULL, text TEXT NOT NULL, globalPid INTEGER)")
    db.executemany("INSERT INTO DIAGNOSTIC_EVENT VALUES (?, 0, 1, ?, ?, 0)", [
        (0, 1, "Process was launched by the profiler"), (5, 3, PERMISSION_TEXT)])
    db.commit()
    db.close()
