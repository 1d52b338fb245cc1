/* evaluate.h - one trial: start the server, wait until ready, replay, stop.
 *
 * The trial description is fully resolved (argv with the port substituted, env, URLs,
 * paths): the engine's Lua side turns config + knob mask into it. When profiling, the
 * server runs under Nsight Systems (nsys.h) and the workload window is captured.
 * Every process of the trial carries a marker (supervise.h) in its environment, so the
 * server is found and stopped wherever it runs (under `nsys launch` it is not our child).
 * Ownership: the caller owns trial and result. Errors: a failed trial is not an error:
 * result->ok = 0 with the cause in result->error; ke_evaluate returns 0, or
 * KE_INTERRUPTED when a signal arrived (the server is stopped either way). */
#ifndef KNOB_EVALUATE_H
#define KNOB_EVALUATE_H
#include "nsys.h"
#include "replay.h"

/* Progress: called as a trial enters each phase ("starting", "ready", "replaying",
 * "stopping", "exporting"); detail says more or is NULL. Optional. */
typedef void (*ke_phase_fn)(void *ud, const char *phase, const char *detail);

typedef struct {
  const char *const *argv;
  const char *const *env; /* "NAME=value" */
  const char *host;
  int port;
  const char *ready_url;
  double ready_timeout_s, stop_timeout_s;
  const char *log_path;
  ke_replay_opts replay;
  int repeats;              /* workload runs on the same server (>= 1) */
  const ke_nsys_opts *nsys; /* NULL: not profiled */
  ke_phase_fn on_phase;     /* optional progress callback */
  void *phase_ud;
  /* Optional: the replays to run on the same running server, one after another (a
   * capacity search, a load sweep), instead of `repeats` runs of `replay`. Called with
   * k = 0, 1, ... and the metrics of replay k-1 (NULL for k = 0); returns 1 with *next
   * filled, 0 when there are no more. The result's metrics are the last replay's. */
  int (*next_probe)(void *ud, int k, const ke_metrics *prev, ke_replay_opts *next);
  void *probe_ud;
} ke_trial;

typedef struct {
  int ok;
  char error[2048];
  ke_metrics metrics;                /* combined over repeats (ke_metrics_combine) */
  ke_metrics repeat_metrics[16];     /* each repeat, when repeats > 1 */
  int repeats_done;
  int replayed;                     /* metrics are filled (even when ok = 0) */
  int output_failed;                /* the workload ran, but its requests.csv could not be
                                       written (error says why): not the server's failure */
  double start_s, workload_s, stop_s; /* phase wall times */
  int killed;                       /* the server needed SIGKILL to stop */
  ke_nsys_result nsys;
} ke_trial_result;

int ke_evaluate(const ke_trial *t, ke_trial_result *r);

#endif
