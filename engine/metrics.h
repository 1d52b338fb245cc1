/* metrics.h - the client metrics of a replay: one table, KE_METRICS, from which the
 * struct (ke_metrics), how repeats combine (ke_metrics_combine) and the Lua result
 * (engine/bind/knob_trial.c, docs/files.md "Result") are all made.
 *
 * Adding a metric is one row here (plus where replay_metrics.c computes it, and its
 * line in docs/files.md): the struct gets the member, ke_metrics_combine combines it by
 * the row's rule, and the Lua result carries it under its key, in its group. A row
 * without a combine rule does not compile; tests/c/test_core.c walks the table and
 * checks that every row combines over repeats as its rule says.
 *
 * A row is X(member, TYPE, COMBINE, PUSH, GROUP, "key", objective):
 *   member     the ke_metrics member
 *   TYPE       its C type: INT (int), I64 (long long), LONG (long), NUM (double; NaN
 *              = no value), TEXT (ke_metric_text, a string)
 *   COMBINE    how repeats of one workload combine (KE_COMBINE_ below)
 *   PUSH       how it becomes a Lua value (KE_PUSH_ below)
 *   GROUP      where in the result: TOP (a key of the metrics table) or a sub-table
 *              (KE_METRIC_GROUPS); a group's rows are consecutive
 *   "key"      its key there
 *   objective  1 when it can be a search objective (objective.minimize/maximize: a
 *              top-level number), knob.metric_names()
 * The Lua table is built in row order.
 *
 * Ownership: plain values; the table is static and read-only. Errors: none. */
#ifndef KNOB_METRICS_H
#define KNOB_METRICS_H
#include <stddef.h>

typedef char ke_metric_text[256];

#define KE_METRICS(X) \
  X(request_count,  INT,  SUM,          INT,    TOP,      "request_count",        0) \
  X(completed,      INT,  SUM,          INT,    TOP,      "completed",            0) \
  X(failed,         INT,  SUM,          INT,    TOP,      "failed",               0) \
  X(error_rate,     NUM,  FAILED_SHARE, NUM,    TOP,      "error_rate",           1) \
  X(duration_s,     NUM,  MEDIAN,       NUM,    TOP,      "duration_s",           0) \
  /* latency (ms): request sent to last byte, over completed requests */ \
  X(latency_p50,    NUM,  MEDIAN,       NUM,    TOP,      "p50_latency_ms",       1) \
  X(latency_p95,    NUM,  MEDIAN,       NUM,    TOP,      "p95_latency_ms",       1) \
  X(latency_p99,    NUM,  MEDIAN,       NUM,    TOP,      "p99_latency_ms",       1) \
  X(latency_mean,   NUM,  MEDIAN,       NUM,    TOP,      "mean_latency_ms",      1) \
  X(ttft_p50,       NUM,  MEDIAN,       NUM,    TTFT,     "p50",                  0) \
  X(ttft_p95,       NUM,  MEDIAN,       NUM,    TTFT,     "p95",                  0) \
  X(ttft_p99,       NUM,  MEDIAN,       NUM,    TTFT,     "p99",                  0) \
  X(ttft_mean,      NUM,  MEDIAN,       NUM,    TTFT,     "mean",                 0) \
  X(tpot_p50,       NUM,  MEDIAN,       NUM,    TPOT,     "p50",                  0) \
  X(tpot_p95,       NUM,  MEDIAN,       NUM,    TPOT,     "p95",                  0) \
  X(tpot_p99,       NUM,  MEDIAN,       NUM,    TPOT,     "p99",                  0) \
  X(tpot_mean,      NUM,  MEDIAN,       NUM,    TPOT,     "mean",                 0) \
  X(itl_p50,        NUM,  MEDIAN,       NUM,    ITL,      "p50",                  0) \
  X(itl_p95,        NUM,  MEDIAN,       NUM,    ITL,      "p95",                  0) \
  X(itl_p99,        NUM,  MEDIAN,       NUM,    ITL,      "p99",                  0) \
  X(output_tokens,  I64,  SUM,          INT,    TOP,      "output_tokens",        0) \
  X(input_tokens,   NUM,  SUM,          WHOLE,  TOP,      "input_tokens",         0) /* NaN: not every \
                                                    request's usage said it */ \
  X(tokens_per_s,   NUM,  MEDIAN,       NUM,    TOP,      "tokens_per_s",         1) \
  X(requests_per_s, NUM,  MEDIAN,       NUM,    TOP,      "requests_per_s",       1) \
  /* open loop: sent minus scheduled (ms; NaN in a closed loop) */ \
  X(lateness_p50,   NUM,  MEDIAN,       NUM,    LATENESS, "p50",                  0) \
  X(lateness_p99,   NUM,  MEDIAN,       NUM,    LATENESS, "p99",                  0) \
  X(lateness_max,   NUM,  MEDIAN,       NUM,    LATENESS, "max",                  0) \
  /* streaming: how long data waited in the socket before the client read it (ms, from \
   * its arrival; NaN without streaming); a chunk that waited until the next arrived \
   * is dated by the later one */ \
  X(read_lag_p50,   NUM,  MEDIAN,       NUM,    READ_LAG, "p50",                  0) \
  X(read_lag_p99,   NUM,  MEDIAN,       NUM,    READ_LAG, "p99",                  0) \
  X(read_lag_max,   NUM,  MEDIAN,       NUM,    READ_LAG, "max",                  0) \
  /* open loop: requests that found max_concurrency in flight */ \
  X(cap_hits,       INT,  SUM,          INT,    TOP,      "concurrency_cap_hits", 0) \
  /* completed requests whose usage.completion_tokens was not plausible, and the \
   * first of them (in request order): the usage it reported, its chunks (-1: not \
   * streamed) and bytes of generated text */ \
  X(token_mismatch, INT,  SUM,          INT,    TOP,      "token_mismatch",       0) \
  X(mismatch_usage, NUM,  FIRST_MISMATCH, NUM,  MISMATCH, "usage",                0) \
  X(mismatch_chunks, LONG, FIRST_MISMATCH, COUNT, MISMATCH, "chunks",             0) \
  X(mismatch_bytes, NUM,  FIRST_MISMATCH, WHOLE, MISMATCH, "bytes",               0) \
  /* SLO (NaN / -1 when there is none): requests/s meeting it, their share (%), \
   * whether it holds at its percentile, and each metric's value there */ \
  X(goodput,        NUM,  MEDIAN,       NUM,    TOP,      "goodput",              1) \
  X(slo_attainment, NUM,  MEDIAN,       NUM,    TOP,      "slo_attainment_pct",   1) \
  X(slo_met,        INT,  ALL_MET,      MET,    TOP,      "slo_met",              0) \
  X(slo_ttft,       NUM,  MEDIAN,       NUM,    SLO_AT,   "ttft_ms",              0) \
  X(slo_tpot,       NUM,  MEDIAN,       NUM,    SLO_AT,   "tpot_ms",              0) \
  X(slo_itl,        NUM,  MEDIAN,       NUM,    SLO_AT,   "itl_ms",               0) \
  X(slo_e2e,        NUM,  MEDIAN,       NUM,    SLO_AT,   "e2e_ms",               0) \
  /* streaming: request sent to its first content chunk, reasoning not counted (ms); \
   * TTFT counts reasoning_content chunks as tokens, as vLLM's bench does */ \
  X(ttfot_p50,      NUM,  MEDIAN,       NUM,    TTFOT,    "p50",                  0) \
  X(ttfot_p95,      NUM,  MEDIAN,       NUM,    TTFOT,    "p95",                  0) \
  X(ttfot_p99,      NUM,  MEDIAN,       NUM,    TTFOT,    "p99",                  0) \
  X(ttfot_mean,     NUM,  MEDIAN,       NUM,    TTFOT,    "mean",                 0) \
  /* the server's Prometheus metrics over the measured phase (sampler.h): scrapes, \
   * why there were none, gauges' mean/max (min for the queue), counters' increase; \
   * NaN where the server does not expose the metric */ \
  X(srv_scrapes,    INT,  SUM,          INT,    SERVER,   "scrapes",              0) \
  X(srv_failed,     INT,  SUM,          INT,    SERVER,   "failed_scrapes",       0) \
  X(srv_unavailable, TEXT, FIRST_TEXT,  TEXT,   SERVER,   "unavailable",          0) \
  X(srv_running_mean, NUM, MEDIAN,      NUM,    SERVER,   "requests_running_mean", 0) \
  X(srv_running_max, NUM, MEDIAN,       NUM,    SERVER,   "requests_running_max", 0) \
  X(srv_waiting_mean, NUM, MEDIAN,      NUM,    SERVER,   "requests_waiting_mean", 0) \
  X(srv_waiting_max, NUM, MEDIAN,       NUM,    SERVER,   "requests_waiting_max", 0) \
  X(srv_waiting_min, NUM, MEDIAN,       NUM,    SERVER,   "requests_waiting_min", 0) \
  X(srv_kv_mean,    NUM,  MEDIAN,       NUM,    SERVER,   "kv_cache_usage_mean",  0) \
  X(srv_kv_max,     NUM,  MEDIAN,       NUM,    SERVER,   "kv_cache_usage_max",   0) \
  X(srv_preemptions, NUM, SUM,          NUM,    SERVER,   "preemptions",          0) \
  X(srv_prefix_queries, NUM, SUM,       NUM,    SERVER,   "prefix_cache_queries", 0) \
  X(srv_prefix_hits, NUM, SUM,          NUM,    SERVER,   "prefix_cache_hits",    0) \
  X(srv_prompt_tokens, NUM, SUM,        NUM,    SERVER,   "prompt_tokens",        0) \
  X(srv_generation_tokens, NUM, SUM,    NUM,    SERVER,   "generation_tokens",    0) \
  /* the GPUs over the measured phase (NVML, sampler.h): samples, why there were \
   * none, power summed over the GPUs, utilisation and clocks averaged over them, \
   * memory summed, energy from the GPUs' energy counters (else power x time) */ \
  X(gpu_samples,    INT,  SUM,          INT,    GPU,      "samples",              0) \
  X(gpu_unavailable, TEXT, FIRST_TEXT,  TEXT,   GPU,      "unavailable",          0) \
  X(gpu_power_mean, NUM,  MEDIAN,       NUM,    GPU,      "power_w_mean",         0) \
  X(gpu_power_max,  NUM,  MEDIAN,       NUM,    GPU,      "power_w_max",          0) \
  X(gpu_sm_util,    NUM,  MEDIAN,       NUM,    GPU,      "sm_util_pct_mean",     0) \
  X(gpu_mem_util,   NUM,  MEDIAN,       NUM,    GPU,      "memory_util_pct_mean", 0) \
  X(gpu_mem_used,   NUM,  MEDIAN,       NUM,    GPU,      "memory_used_mib_max",  0) \
  X(gpu_sm_clock,   NUM,  MEDIAN,       NUM,    GPU,      "sm_clock_mhz_mean",    0) \
  X(gpu_mem_clock,  NUM,  MEDIAN,       NUM,    GPU,      "memory_clock_mhz_mean", 0) \
  X(gpu_energy,     NUM,  SUM,          NUM,    GPU,      "energy_j",             0) \
  /* energy per output token (J) and its inverse: NaN without GPU samples */ \
  X(joules_per_token, NUM, MEDIAN,      NUM,    TOP,      "joules_per_output_token", 1) \
  X(tokens_per_joule, NUM, MEDIAN,      NUM,    TOP,      "tokens_per_joule",     1) \
  /* the cause of the first failed request, "" if none (not in the Lua metrics: the \
   * trial's error says it) */ \
  X(first_error,    TEXT, FIRST_TEXT,   NONE,   TOP,      "first_error",          0)

/* The sub-tables of the result: G(GROUP, "key", SHOWN), SHOWN being when it is there:
 * ALWAYS; WITH_SLO (null when the replay had no SLO: slo_met < 0); WITH_MISMATCH
 * (absent unless token_mismatch > 0). TOP is the metrics table itself. */
#define KE_METRIC_GROUPS(G) \
  G(TOP,      NULL,                     ALWAYS) \
  G(TTFT,     "ttft_ms",                ALWAYS) \
  G(TPOT,     "tpot_ms",                ALWAYS) \
  G(ITL,      "itl_ms",                 ALWAYS) \
  G(LATENESS, "send_lateness_ms",       ALWAYS) \
  G(READ_LAG, "read_lag_ms",            ALWAYS) \
  G(MISMATCH, "token_mismatch_example", WITH_MISMATCH) \
  G(SLO_AT,   "slo_at_percentile",      WITH_SLO) \
  G(TTFOT,    "ttfot_ms",               ALWAYS) \
  G(SERVER,   "server",                 ALWAYS) \
  G(GPU,      "gpu",                    ALWAYS)

#define KE_CTYPE_INT int
#define KE_CTYPE_I64 long long
#define KE_CTYPE_LONG long
#define KE_CTYPE_NUM double
#define KE_CTYPE_TEXT ke_metric_text

typedef struct {
#define KE_METRIC_MEMBER_(member, type, combine, push, group, key, objective) KE_CTYPE_##type member;
  KE_METRICS(KE_METRIC_MEMBER_)
#undef KE_METRIC_MEMBER_
} ke_metrics;

typedef enum { KE_TYPE_INT, KE_TYPE_I64, KE_TYPE_LONG, KE_TYPE_NUM, KE_TYPE_TEXT } ke_metric_type;

typedef enum {
  KE_COMBINE_SUM,            /* summed (INT, I64, LONG; NUM: NaN when any repeat's is) */
  KE_COMBINE_MEDIAN,         /* the median of the repeats, the mean of the middle two
                                for an even count (NUM) */
  KE_COMBINE_FAILED_SHARE,   /* failed / request_count of the sums, NaN with no request */
  KE_COMBINE_ALL_MET,        /* the SLO flag (-1 none, 0, 1): the first repeat's, and 0
                                when any repeat missed it */
  KE_COMBINE_FIRST_MISMATCH, /* the first repeat with a token_mismatch (its example),
                                else 0 */
  KE_COMBINE_FIRST_TEXT      /* the first repeat's non-empty text, else "" */
} ke_metric_combine;

typedef enum {
  KE_PUSH_INT,   /* a Lua integer */
  KE_PUSH_NUM,   /* a Lua number; cjson.null when NaN or infinite */
  KE_PUSH_MET,   /* a boolean; cjson.null when negative */
  KE_PUSH_COUNT, /* a Lua integer; the key is absent when negative */
  KE_PUSH_WHOLE, /* a NUM member as a Lua integer (truncated); cjson.null when NaN */
  KE_PUSH_TEXT,  /* a TEXT member as a string; cjson.null when "" */
  KE_PUSH_NONE   /* not in the Lua metrics */
} ke_metric_push;

typedef enum { KE_SHOWN_ALWAYS, KE_SHOWN_WITH_SLO, KE_SHOWN_WITH_MISMATCH } ke_metric_shown;

typedef enum {
#define KE_METRIC_GROUP_ID_(group, key, shown) KE_GROUP_##group,
  KE_METRIC_GROUPS(KE_METRIC_GROUP_ID_)
#undef KE_METRIC_GROUP_ID_
  KE_GROUP_COUNT
} ke_metric_group;

typedef struct {
  const char *key; /* NULL for TOP */
  ke_metric_shown shown;
} ke_metric_group_desc;

typedef struct {
  const char *member; /* the ke_metrics member's name */
  size_t offset;      /* its offset in ke_metrics */
  ke_metric_type type;
  ke_metric_combine combine;
  ke_metric_push push;
  ke_metric_group group;
  const char *key;
  int objective;
} ke_metric_desc;

/* The rows of KE_METRICS in order, and the groups by ke_metric_group. */
extern const ke_metric_desc ke_metric_table[];
extern const size_t ke_metric_count;
extern const ke_metric_group_desc ke_metric_groups[KE_GROUP_COUNT];

/* A member's value: as a long long (INT, I64, LONG; a NUM truncated), as a double, or
 * (TEXT) the string; setting one stores it in the member's type. */
long long ke_metric_int(const ke_metrics *m, const ke_metric_desc *d);
double ke_metric_num(const ke_metrics *m, const ke_metric_desc *d);
const char *ke_metric_str(const ke_metrics *m, const ke_metric_desc *d); /* NULL unless TEXT */
void ke_metric_set(ke_metrics *m, const ke_metric_desc *d, double v);    /* not TEXT */

/* Combines repeats of one workload, each metric by its row's rule (KE_COMBINE_): counts
 * and tokens are summed (error_rate is failed / all requests), every latency, rate and
 * duration is the median across repeats; the SLO is met when it is met in every
 * repeat. At most 64 repeats are read; n <= 0 gives all zeros. */
void ke_metrics_combine(const ke_metrics *reps, int n, ke_metrics *out);

#endif
