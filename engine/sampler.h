/* sampler.h - what the server and its GPUs report while a measured phase runs: the
 * server's Prometheus metrics (prom.h), scraped every interval, and the GPUs' power,
 * utilisation, memory and clocks (nvml.h), sampled on the same beat, in a thread of
 * their own so the replay's timing is not disturbed.
 *
 * The server's metrics are read by a table of what they mean (KE_SERVER_METRICS): each
 * row a gauge or a counter with the names servers expose it under (vLLM's, older names
 * after newer); the first name a scrape has is used, summed over its label sets. A
 * config may give other names per row (opts.names). Gauges give their mean and max over
 * the scrapes (the queue also its min, between the first and last scrapes); counters their increase from the first scrape
 * to the last (a counter that went down was reset: its new value counts).
 * Files: metrics_csv gets every sample of every scrape (docs/files.md
 * "server_metrics.csv"), gpu_csv every GPU sample ("gpu_telemetry.csv"); both are
 * written beside and renamed into place by ke_sampler_stop, never half-written.
 * Ownership: ke_sampler_start allocates the sampler and starts its thread; the opts'
 * strings must outlive it; ke_sampler_stop joins the thread and frees everything.
 * Errors: start returns NULL only when memory or a thread cannot be had (err); a server
 * without metrics, or a machine without GPUs, is no error: the metrics say
 * `unavailable` with the reason and their figures are NaN. stop returns -1 (err) when a
 * file could not be written; the metrics are filled either way. */
#ifndef KNOB_SAMPLER_H
#define KNOB_SAMPLER_H
#include <stddef.h>

#include "metrics.h"

/* X(ID, "key", kind, "name\0older name\0") */
#define KE_SERVER_METRICS(X) \
  X(RUNNING,     "requests_running",     GAUGE,   "vllm:num_requests_running\0") \
  X(WAITING,     "requests_waiting",     GAUGE,   "vllm:num_requests_waiting\0") \
  X(KV_USAGE,    "kv_cache_usage",       GAUGE,   "vllm:kv_cache_usage_perc\0vllm:gpu_cache_usage_perc\0") \
  X(PREEMPTIONS, "preemptions",          COUNTER, "vllm:num_preemptions_total\0vllm:num_preemptions\0") \
  X(PREFIX_Q,    "prefix_cache_queries", COUNTER, "vllm:prefix_cache_queries_total\0vllm:gpu_prefix_cache_queries_total\0") \
  X(PREFIX_H,    "prefix_cache_hits",    COUNTER, "vllm:prefix_cache_hits_total\0vllm:gpu_prefix_cache_hits_total\0") \
  X(PROMPT,      "prompt_tokens",        COUNTER, "vllm:prompt_tokens_total\0") \
  X(GENERATION,  "generation_tokens",    COUNTER, "vllm:generation_tokens_total\0")

typedef enum {
#define KE_SERVER_METRIC_ID_(id, key, kind, names) KE_SRV_##id,
  KE_SERVER_METRICS(KE_SERVER_METRIC_ID_)
#undef KE_SERVER_METRIC_ID_
  KE_SRV_COUNT
} ke_server_metric;

typedef struct {
  const char *key;
  int counter;         /* 1 counter, 0 gauge */
  const char *names;   /* the default names, each NUL-terminated, an empty one last */
} ke_server_metric_desc;

extern const ke_server_metric_desc ke_server_metric_table[KE_SRV_COUNT];

#define KE_SAMPLER_MAX_NAMES 4

typedef struct {
  const char *metrics_url; /* the server's /metrics, NULL = not scraped */
  const char *metrics_off; /* why not (said as `unavailable`), when metrics_url is NULL */
  int interval_ms;
  const char *metrics_csv; /* NULL = the series are not kept */
  /* per row of the table: the names to read it by (NULL-terminated, at most
   * KE_SAMPLER_MAX_NAMES), NULL = the table's */
  const char *const *names[KE_SRV_COUNT];
  int gpu;                 /* sample the GPUs */
  const int *gpu_devices;  /* their NVML indices; n_gpu_devices == 0: every GPU */
  int n_gpu_devices;
  const char *gpu_csv;     /* NULL = the samples are not kept */
  /* requests_waiting_min reads the scrapes between the first and the last (both see
   * the phase empty) that are at most this long after the first (an open loop: while
   * requests were still due); 0 = all of them */
  double queue_window_s;
} ke_sampler_opts;

typedef struct ke_sampler ke_sampler;

/* Takes the first scrape and sample now (the phase's start), then one every interval. */
ke_sampler *ke_sampler_start(const ke_sampler_opts *o, char *err, size_t errlen);
/* Takes the last scrape and sample, stops, writes the files and sets the srv_ and gpu_
 * metrics of m (the rest of m is left alone). NULL s: nothing. */
int ke_sampler_stop(ke_sampler *s, ke_metrics *m, char *err, size_t errlen);

#endif
