/* trace.h - summary of an Nsight Systems SQLite export.
 *
 * Opens the file read-only, selects columns by name and reads each table once; a
 * missing table is no data (its section is absent: null in the engine's files).
 * Every SQLite return code is checked, and a failure never turns into a number:
 *  - the path is not a regular file (a FIFO, a directory, a device): ke_trace_summarize
 *    returns -1 with "'PATH' is not a regular file" before SQLite opens it;
 *  - the file cannot be read as a whole (not SQLite, corrupt, locked by a writer, I/O
 *    error, out of memory): ke_trace_summarize returns -1 with a message naming the file;
 *  - one table cannot be read (a column it needs is missing, a value has the wrong
 *    type): that section is unreadable, its values are left out (null), and the reason
 *    is listed in `unreadable`;
 *  - rows that cannot be summed (end before start, a duration or byte count that would
 *    overflow its 64-bit total, a negative byte count) are skipped, never summed: the
 *    section keeps the totals of the other rows and `unreadable` lists the table with
 *    "skipped N rows with end before start, ..." (docs/nsys.md "Rows that cannot be
 *    summed").
 * A name id with no StringIds row is named "[unknown string id N]".
 * An empty table is a measurement (nothing happened): zero totals and zero counts.
 * GPU metrics samples (nsys 2023+: GPU_METRICS with TARGET_INFO_GPU_METRICS; 2022.x:
 * GENERIC_EVENTS of the source GpuMetrics, one JSON object per sample) give per device
 * the mean, median and largest value of each metric over a window (the device's kernel
 * span), and per top kernel the mean of the headline metrics over the samples inside
 * its launches (docs/nsys.md "GPU metrics"). An export without samples has none
 * (n_gpu_metrics 0) and gpu_metrics_reason says why: nsys's own diagnostics (the
 * DIAGNOSTIC_EVENT table, else opts.diagnostics_log) when they name one, e.g. counters
 * not permitted (ERR_NVGPUCTRPERM).
 * Durations are milliseconds rounded to 6 decimals (one nanosecond), as are percents
 * and means.
 * Ownership: ke_trace_summarize fills a caller-owned ke_trace_summary whose strings and
 * arrays it allocates; ke_trace_summary_free releases them (also after a failure). */
#ifndef KNOB_TRACE_H
#define KNOB_TRACE_H
#include <stddef.h>

typedef struct {
  const char *const *phases; /* NVTX labels to report, NULL-terminated */
  int short_kernel_names;    /* group by base name rather than demangled name */
  int top_kernels;           /* how many kernels to list (default 5; INT_MAX: every one) */
  int top_api;               /* how many CUDA API functions to list (default 10) */
  int gpu_metrics_wanted;    /* the capture asked nsys for GPU metrics (only changes the reason) */
  const char *diagnostics_log; /* nsys's output of the capture, searched for why it has no GPU
                                  metrics; NULL: none */
} ke_trace_opts;

/* A kernel (or whole graph) of the top list on one device. */
typedef struct {
  long long device, count;
  double total_ms, mean_ms, min_ms, max_ms, percent; /* percent of all GPU time */
} ke_trace_split;

/* A named aggregate: a kernel, an OS-runtime function, an NVTX range or phase. */
typedef struct {
  char *name;
  const char *style; /* NVTX ranges: "PushPop" or "StartEnd"; otherwise NULL */
  int graph;         /* top kernels: a whole CUDA graph ("[CUDA graph N]"), not a kernel */
  double total_ms, percent, mean_ms;
  double min_ms, max_ms; /* kernels and CUDA API calls: the shortest and the longest */
  long long count;
  ke_trace_split *devices; /* top kernels: the same per device, by device id (else NULL) */
  size_t n_devices;
} ke_trace_item;

/* One GPU metric of a device over its window; mean, p50 and max are NAN without samples. */
typedef struct {
  char *name; /* as the export names it ("SM Active", "DRAM Read Bandwidth [Throughput %]") */
  double mean, p50, max;
  long long samples;
} ke_trace_metric;

/* A top kernel's headline metrics on one device: means over the samples inside its launches. */
typedef struct {
  size_t kernel;     /* index into top_kernels */
  long long samples; /* the most samples any headline metric had inside its launches */
  double *means;     /* one per headline metric, in headline order; NAN: no sample inside */
} ke_trace_kernel_metrics;

/* The GPU metrics of one device (typeId & 0xFF, as nsys numbers its GPUs). */
typedef struct {
  long long device;
  long long start_ns, end_ns; /* the window, inclusive */
  int kernel_window;          /* 1: the device's kernel span; 0: all its samples (no kernels ran on it) */
  long long samples;          /* sampling instants in the window: the most samples of any metric */
  ke_trace_metric *metrics;   /* every metric the export names for the device, by name */
  size_t n_metrics;
  size_t *headline;           /* indices into metrics: SM Active, Tensor Active, DRAM read, DRAM write */
  size_t n_headline;
  ke_trace_kernel_metrics *kernels; /* the top kernels that ran on this device, in top order */
  size_t n_kernels;
  /* The headline metrics over time: the window cut into n_timeline equal buckets (at
   * most KE_TRACE_TIMELINE, no more than the samples), each bucket's mean per headline
   * metric (NAN: no sample in it), timeline_ms the buckets' middles from the window's
   * start. */
  size_t n_timeline;
  double *timeline_ms;
  double **timeline; /* [n_headline][n_timeline] */
} ke_trace_gpu_metrics;

#define KE_TRACE_TIMELINE 120

/* A GPU of TARGET_INFO_GPU; a value the export does not have is -1 (strings NULL). */
typedef struct {
  long long id, memory_bytes, memory_bandwidth, clock_hz, sm_count, compute_major, compute_minor;
  char *name, *bus; /* memory_bandwidth: bytes per second */
} ke_trace_gpu;

/* A TARGET_INFO_SYSTEM_ENV entry (Hostname, CpuDescription, NvDriverVersion, ...). */
typedef struct {
  char *name, *value;
} ke_trace_env;

typedef struct {
  const char *kind; /* "HtoD", "DtoH", ... (the CUPTI copy kind) */
  double ms;
  long long bytes, count;
} ke_trace_copy;

typedef struct {
  long long device;
  double busy_ms;
} ke_trace_busy;

/* An NVTX phase: found = 0 when no range carries its label. */
typedef struct {
  const char *name; /* borrowed from the options */
  int found;
  ke_trace_item v;
} ke_trace_phase;

/* One table that could not be read, or whose rows were skipped in part, and why. */
typedef struct {
  char *table, *reason;
} ke_trace_problem;

typedef struct {
  char *nsys_version, *export_schema; /* NULL when the export does not say */

  /* kernels: present when CUPTI_ACTIVITY_KIND_KERNEL or _GRAPH_TRACE was read */
  int has_kernels, has_kernel_table, has_graph_table;
  double gpu_compute_ms, kernel_ms, graph_trace_ms;
  long long kernel_count, graph_trace_count;
  ke_trace_busy *busy; /* per device, by device id */
  size_t n_busy;
  ke_trace_item *top_kernels; /* kernels and whole graphs, percent of gpu_compute_ms */
  size_t n_top_kernels;

  int has_memcpy; /* CUPTI_ACTIVITY_KIND_MEMCPY */
  double memcpy_ms;
  ke_trace_copy copies[11]; /* by copy kind; count 0 = none of that kind */

  int has_memset; /* CUPTI_ACTIVITY_KIND_MEMSET */
  double memset_ms;
  long long memset_bytes, memset_count;

  int has_osrt; /* OSRT_API */
  double osrt_wait_ms, osrt_total_ms;
  long long osrt_calls;
  ke_trace_item *osrt_top_waits;
  size_t n_osrt_top_waits;

  int has_nvtx; /* NVTX_EVENTS */
  ke_trace_item *nvtx_ranges;
  size_t n_nvtx_ranges;
  ke_trace_phase *phases; /* one per requested phase, in order (also without NVTX) */
  size_t n_phases;

  int has_cuda_api; /* CUPTI_ACTIVITY_KIND_RUNTIME */
  double cuda_api_ms;
  long long cuda_api_calls;
  ke_trace_item *cuda_api_top; /* by total time, percent of cuda_api_ms */
  size_t n_cuda_api_top;

  ke_trace_gpu *gpus; /* TARGET_INFO_GPU, by id (none when the table is absent) */
  size_t n_gpus;
  ke_trace_env *system_env; /* TARGET_INFO_SYSTEM_ENV, the names of SYSTEM_ENV_NAMES */
  size_t n_system_env;

  ke_trace_gpu_metrics *gpu_metrics; /* by device id; none: gpu_metrics_reason says why */
  size_t n_gpu_metrics;
  char *gpu_metrics_reason;

  const char **missing_tables; /* static names */
  size_t n_missing;
  ke_trace_problem *unreadable;
  size_t n_unreadable;
} ke_trace_summary;

int ke_trace_summarize(const char *sqlite_path, const ke_trace_opts *opts, ke_trace_summary *out, char *err,
                     size_t errlen);
void ke_trace_summary_free(ke_trace_summary *s);

#endif
