/* replay.h - HTTP workload replay with libcurl multi, in one thread.
 *
 * Requests are sent in a fixed order (measured request i uses body i mod n_bodies).
 * Closed loop (no schedule): at most `concurrency` in flight, each sent when one ends.
 * Open loop (a schedule): request i is sent at schedule[i] seconds after the measured
 * phase began, whatever is in flight (at most max_concurrency when that is > 0; a
 * request that finds every slot busy waits for one, and counts as a cap hit).
 * `warmup` unmeasured requests run (closed loop, `concurrency`) and drain first. Streaming responses are parsed as SSE in OpenAI format; output tokens come
 * from the usage chunk when the server sends one and it is plausible
 * (ke_usage_plausible), else from the count of content chunks. A request fails on
 * non-2xx, transport error or timeout, a malformed stream (bad JSON, no [DONE], a line
 * over SSE_MAX_LINE), an `error` in a 200 response or chunk (its message kept), a body
 * over KE_RESPONSE_BODY_MAX, or zero output tokens.
 *
 * Metrics: percentiles by linear interpolation (stats.h) over completed requests;
 * latency is request sent (when curl is about to write it, its pre-request callback:
 * queueing inside the client is not counted) to last byte; TTFT is sent to first
 * token chunk (content or reasoning_content, as vLLM's bench counts them); TTFOT is
 * sent to the first content chunk (reasoning not counted); TPOT is (latency - TTFT) /
 * (tokens - 1) per request; ITL is every gap between token chunks. Non-streaming requests have no TTFT/TPOT/ITL (NaN).
 * Streaming: arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS, read
 * by peeking before curl reads), so a burst of chunks from many streams is not stamped
 * late by the time the client spends parsing the others; where a socket has none, the
 * time it is read.
 * Ownership: the caller owns opts and out; nothing is kept after ke_replay returns.
 * Errors: 0 when the replay ran (individual failures are counted, not errors), -1 on a
 * setup failure (message in err), KE_INTERRUPTED on SIGINT/SIGTERM, KE_OUTPUT_FAILED
 * when it ran (out is filled) but requests_csv could not be written (a full disk: the
 * failure is this machine's, not the server's). */
#ifndef KNOB_REPLAY_H
#define KNOB_REPLAY_H
#include <stddef.h>

#include "metrics.h"
#include "sampler.h"

#define KE_OUTPUT_FAILED (-3)

/* The most of a response body the client holds (a non-streamed answer, parsed whole):
 * a longer one fails its request ("response body over 64 MiB"). A stream is parsed as
 * it arrives and never held; its lines are limited by SSE_MAX_LINE (sse.h). */
#define KE_RESPONSE_BODY_MAX ((size_t)64 << 20)

/* When a server's usage.completion_tokens is believed (docs/files.md "Result"): a
 * whole number in [0, INT_MAX], at least (chunks - KE_USAGE_SLACK) / 2 (a streamed
 * chunk carries at least one token), and at most KE_USAGE_TOKENS_PER_CHUNK per
 * streamed chunk or one per byte of generated text, whichever allows more, plus
 * KE_USAGE_SLACK (tokens that show no text: end of sequence, stripped markers). */
#define KE_USAGE_TOKENS_PER_CHUNK 8
#define KE_USAGE_SLACK 16
/* usage: the reported count; chunks: the streamed chunks that carried output (0 when
 * not streamed); bytes: the generated text (content, reasoning, tool calls). */
int ke_usage_plausible(double usage, long chunks, double bytes);

/* What a replay tells its hook: the measured phase begins (after the warmup), a
 * measured request finished (n = how many so far), or time passed (about every 100 ms,
 * warmup included). */
typedef enum { KE_REPLAY_MEASURING, KE_REPLAY_COMPLETED, KE_REPLAY_TICK } ke_replay_event;
/* Returns nonzero to stop the replay: requests in flight are abandoned and the metrics
 * cover the requests that finished. */
typedef int (*ke_replay_hook)(void *ud, ke_replay_event ev, int completed);

/* A service-level objective: thresholds (ms; NaN = not part of it) that a request
 * meets (its own TTFT, TPOT, largest inter-token gap, end-to-end latency), combined
 * with and (any = 0) or or (any = 1); the objective holds when the same holds for the
 * given percentile of each metric over the measured requests. */
typedef struct {
  int enabled;
  double ttft_ms, tpot_ms, itl_ms, e2e_ms;
  double percentile; /* e.g. 99 */
  int any;
} ke_slo;

typedef struct {
  const char *url; /* full URL of the endpoint */
  const char *const *bodies;
  const size_t *body_lens;
  size_t n_bodies;
  int concurrency;
  int request_count;
  int warmup;
  double request_timeout_s;
  int stream;
  const char *requests_csv; /* per-request rows, or NULL */
  ke_replay_hook hook;      /* optional: told of the measured phase's progress */
  void *hook_ud;
  const double *schedule;   /* open loop: send times (s after the measured phase began),
                               request_count of them, ascending; NULL = closed loop */
  int max_concurrency;      /* open loop: at most this many in flight (0 = no cap) */
  ke_slo slo;
  /* what the server and its GPUs report during the measured phase (sampler.h); a
   * zeroed one samples nothing and says so in the metrics */
  ke_sampler_opts sampler;
  const char *reset_url;    /* POSTed (empty body) before the measured phase, e.g. vLLM's
                               /reset_prefix_cache; a failure fails the replay; NULL = none */
  /* closed loop, multi-turn: continues[b] = 1 when body b is the next turn of body b-1's
   * conversation. A slot takes a whole conversation and sends each turn think_s after
   * the previous one ended. NULL = every request independent. */
  const unsigned char *continues;
  double think_s;
} ke_replay_opts;

/* The metrics (ke_metrics) are the table of metrics.h. */
int ke_replay(const ke_replay_opts *opts, ke_metrics *out, char *err, size_t errlen);

#endif
