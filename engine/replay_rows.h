/* replay_rows.h - what the replay records of each measured request, and the metrics
 * and files made from those records (replay_metrics.c). Internal to the replay: the
 * public interface is replay.h.
 * Ownership: the replay owns the rows; `error` strings are malloc'd and freed with the
 * rows. Errors: functions return 0 or -1 with a message in err (out of memory, a file
 * that cannot be written). */
#ifndef KNOB_REPLAY_ROWS_H
#define KNOB_REPLAY_ROWS_H
#include <stddef.h>

#include "replay.h"

typedef struct {
  double sent;       /* when it was sent (monotonic s); for a request that never got a
                        connection, when it was queued */
  double scheduled;  /* open loop: when it was due (s after the phase began); NaN closed */
  double ttft_ms, latency_ms;
  double ttfot_ms;   /* to the first content chunk (NaN: none, or not streamed) */
  double max_gap_ms; /* its largest gap between content chunks (NaN: fewer than two) */
  int tokens;
  int input_tokens;  /* the server's usage.prompt_tokens; -1 when it did not say */
  long status;
  int done;          /* finished (a replay stopped by its hook leaves the rest undone) */
  int token_mismatch; /* its usage.completion_tokens was not believed (ke_usage_plausible) */
  double usage;      /* that usage, and what it was checked against: streamed chunks */
  long out_chunks;   /* with output (-1: not streamed) and bytes of generated text */
  double out_bytes;
  char *error;       /* why it failed, NULL when it succeeded */
} ke_request_row;

/* The metrics of a measured phase [t0, t1] from its rows and every inter-token gap. */
int ke_replay_aggregate(const ke_replay_opts *o, const ke_request_row *rows, const float *gaps, size_t ngaps,
                        double t0, double t1, int cap_hits, ke_metrics *out, char *err, size_t errlen);
/* requests.csv: one row per finished request (docs/files.md "requests.csv"). */
int ke_replay_write_csv(const char *path, const ke_request_row *rows, int n, double t0, char *err, size_t errlen);

#endif
