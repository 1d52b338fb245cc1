/* evaluate.c - see evaluate.h.
 *
 * A trial is a fixed sequence of steps: check the port, spawn (under nsys when
 * profiling), wait until ready, replay the workload (each repeat), judge the outcome,
 * stop the server, finish the profile. Each step below is one function. */
#include "evaluate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fsutil.h"
#include "supervise.h"

/* What one trial holds while it runs. */
typedef struct {
  const ke_trial *t;
  ke_trial_result *r;
  ke_nsys_opts nsys_opts;  /* the trial's nsys options, as adjusted here */
  char tmp_dir[4096];      /* nsys_opts.tmp_dir made absolute (nsys fails on a relative TMPDIR) */
  const ke_nsys_opts *nsys; /* NULL when not profiling */
  char marker[64];
  char tmp_env[4200]; /* TMPDIR=... for a profiled server (where nsys keeps the capture) */
  ke_proc *proc;
  /* the capture window (profiling) */
  int capture_started, capturing, capture_ended;
  int done_before;        /* measured requests of earlier repeats */
} trial_run;

static void phase(const trial_run *run, const char *name, const char *detail) {
  if (run->t->on_phase) run->t->on_phase(run->t->phase_ud, name, detail);
}

static int session_capture(const trial_run *run) {
  return run->nsys && run->nsys->capture == KE_CAPTURE_SESSION;
}

/* The trial's nsys options. Session capture needs nsys to find its report importer;
 * without it `nsys stop` hangs, so the whole process is captured instead and the
 * result says so. */
static void choose_capture(trial_run *run) {
  if (!run->t->nsys) return;
  run->nsys_opts = *run->t->nsys;
  run->nsys = &run->nsys_opts;
  if (run->nsys_opts.tmp_dir && realpath(run->nsys_opts.tmp_dir, run->tmp_dir)) run->nsys_opts.tmp_dir = run->tmp_dir;
  if (!session_capture(run) || ke_nsys_importer_visible(run->nsys->bin)) return;
  run->nsys_opts.capture = KE_CAPTURE_PROCESS;
  snprintf(run->r->nsys.note, sizeof run->r->nsys.note,
           "nsys cannot find its QdstrmImporter (a session's 'nsys stop' would hang), so the whole "
           "server process was captured with 'nsys profile'; link <nsys-install>/host-linux-x64 "
           "beside the real nsys binary (scripts/install-deps.sh --nsys does) to capture only the "
           "workload");
}

/* Starts the server (wrapped in nsys when profiling) with the trial's env and marker. */
static int spawn_server(trial_run *run) {
  const ke_trial *t = run->t;
  ke_trial_result *r = run->r;
  ke_nsys_argv wrapped = {0};
  const char *const *argv = t->argv;
  if (run->nsys) {
    if (ke_nsys_wrap_argv(run->nsys, t->argv, &wrapped)) {
      snprintf(r->error, sizeof r->error, "out of memory");
      return -1;
    }
    argv = wrapped.argv;
  }
  size_t nenv = 0;
  while (t->env && t->env[nenv]) nenv++;
  const char **env = calloc(nenv + 3, sizeof *env);
  if (!env) {
    ke_nsys_argv_free(&wrapped);
    snprintf(r->error, sizeof r->error, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < nenv; i++) env[i] = t->env[i];
  env[nenv] = run->marker;
  if (run->nsys && run->nsys->tmp_dir) {
    snprintf(run->tmp_env, sizeof run->tmp_env, "TMPDIR=%s", run->nsys->tmp_dir);
    env[nenv + 1] = run->tmp_env;
  }
  int rc = ke_spawn(argv, env, t->log_path, &run->proc, r->error, sizeof r->error);
  free(env);
  ke_nsys_argv_free(&wrapped);
  return rc;
}

/* Ends the capture early (nsys.capture_requests, nsys.max_trace_mb). Session capture:
 * `nsys stop` now, the workload goes on. Process capture: the workload stops (1), and
 * stopping the server makes nsys write what it has. */
static int end_capture(trial_run *run, const char *why) {
  ke_trial_result *r = run->r;
  if (run->capture_ended) return run->nsys->capture == KE_CAPTURE_PROCESS;
  run->capture_ended = 1;
  snprintf(r->nsys.partial, sizeof r->nsys.partial, "%s", why);
  if (run->nsys->capture == KE_CAPTURE_PROCESS) return 1;
  if (run->capturing) ke_nsys_stop(run->nsys, r->nsys.error, sizeof r->nsys.error);
  run->capturing = 0;
  return 0;
}

/* Watches the capture while the workload runs (replay.h hook): starts it when the
 * measured phase begins, ends it after capture_requests requests or when its files
 * pass max_trace_mb. */
static int capture_hook(void *ud, ke_replay_event ev, int completed) {
  trial_run *run = ud;
  const ke_nsys_opts *n = run->nsys;
  ke_trial_result *r = run->r;
  char why[256];
  if (ev == KE_REPLAY_MEASURING && session_capture(run) && !run->capture_started) {
    run->capture_started = 1;
    run->capturing = ke_nsys_start(n, r->nsys.error, sizeof r->nsys.error) == 0;
  } else if (ev == KE_REPLAY_COMPLETED && n->capture_requests > 0 && !run->capture_ended &&
             run->done_before + completed >= n->capture_requests) {
    snprintf(why, sizeof why, "the capture covers the first %d measured requests (nsys.capture_requests)",
             n->capture_requests);
    return end_capture(run, why);
  } else if (ev == KE_REPLAY_TICK && !run->capture_ended) {
    long long bytes = ke_nsys_capture_bytes(n);
    if (bytes > r->nsys.capture_bytes) r->nsys.capture_bytes = bytes;
    if (n->max_trace_mb > 0 && (double)bytes > n->max_trace_mb * 1048576.0) {
      r->nsys.size_limited = 1;
      snprintf(why, sizeof why, "the capture was stopped when its files passed %g MB (nsys.max_trace_mb)",
               n->max_trace_mb);
      return end_capture(run, why);
    }
  }
  return 0;
}

/* The server that answers must be the one this trial started: a server left on the
 * same port (another run's) would answer the readiness probe and the workload and be
 * measured instead. Fails the trial (-1) when another process holds the port. */
static int check_owner(trial_run *run, const char *when) {
  const ke_trial *t = run->t;
  long pid = 0;
  char cmd[256];
  if (ke_port_owner(t->port, run->marker, &pid, cmd, sizeof cmd) != 0) return 0; /* ours, or nothing to tell */
  char holder[320];
  if (pid > 0) snprintf(holder, sizeof holder, "PID %ld: %s", pid, cmd);
  else snprintf(holder, sizeof holder, "%s", cmd);
  snprintf(run->r->error, sizeof run->r->error,
           "port %s:%d is answered by another process (%s), not by the server this trial started (seen %s)",
           t->host, t->port, holder, when);
  run->r->ok = 0;
  return -1;
}

/* requests.csv, requests-2.csv, ... for repeat k (0-based); likewise its other files. */
static const char *repeat_csv(const char *csv, int k, char *buf, size_t len) {
  const char *dot = csv ? strrchr(csv, '.') : NULL;
  if (k == 0 || !dot) return csv;
  snprintf(buf, len, "%.*s-%d%s", (int)(dot - csv), csv, k + 1, dot);
  return buf;
}

/* Runs the workload `repeats` times; what was measured is kept even when a later
 * repeat fails. Returns 0, -1 (message in err) or KE_INTERRUPTED. */
static int replay_repeats(trial_run *run, char *err, size_t errlen) {
  const ke_trial *t = run->t;
  ke_trial_result *r = run->r;
  int repeats = t->repeats < 1 ? 1 : t->repeats > 16 ? 16 : t->repeats;
  int rc = 0;
  for (int k = 0; k < repeats && rc == 0; k++) {
    ke_replay_opts o = t->replay;
    char csv[1100], metrics_csv[1100], gpu_csv[1100];
    if (repeats > 1) { /* each repeat's files: requests-2.csv, server_metrics-2.csv, ... */
      o.requests_csv = repeat_csv(o.requests_csv, k, csv, sizeof csv);
      o.sampler.metrics_csv = repeat_csv(o.sampler.metrics_csv, k, metrics_csv, sizeof metrics_csv);
      o.sampler.gpu_csv = repeat_csv(o.sampler.gpu_csv, k, gpu_csv, sizeof gpu_csv);
    }
    if (k > 0) o.warmup = 0; /* the server is warm after the first repeat */
    if (run->nsys) {
      o.hook = capture_hook;
      o.hook_ud = run;
    }
    rc = ke_replay(&o, &r->repeat_metrics[k], err, errlen);
    if (rc == 0) r->repeats_done = k + 1;
    run->done_before += r->repeat_metrics[k].request_count;
    if (run->capture_ended && run->nsys->capture == KE_CAPTURE_PROCESS) break; /* the workload was stopped */
  }
  if (r->repeats_done) ke_metrics_combine(r->repeat_metrics, r->repeats_done, &r->metrics);
  if (rc == -1 && r->repeats_done) rc = 0; /* keep what was measured (a failed repeat) */
  return rc;
}

/* Probes: replays chosen one after another by the caller (ke_trial.next_probe). */
static int run_probes(trial_run *run, char *err, size_t errlen) {
  const ke_trial *t = run->t;
  ke_trial_result *r = run->r;
  ke_replay_opts o;
  const ke_metrics *prev = NULL;
  int rc = 0;
  for (int k = 0; rc == 0 && t->next_probe(t->probe_ud, k, prev, &o) == 1; k++) {
    rc = ke_replay(&o, &r->metrics, err, errlen);
    if (rc == 0) {
      r->repeats_done = 1;
      prev = &r->metrics;
    }
  }
  if (rc == -1 && r->repeats_done) rc = 0; /* keep what was measured */
  return rc;
}

/* The workload window: replay (the capture hook starts and ends a session capture),
 * judge the outcome. */
static int run_workload(trial_run *run) {
  ke_trial_result *r = run->r;
  phase(run, "replaying", NULL);
  double w0 = ke_now();
  char rerr[512] = "";
  int rc = run->t->next_probe ? run_probes(run, rerr, sizeof rerr) : replay_repeats(run, rerr, sizeof rerr);
  r->workload_s = ke_now() - w0;
  if (run->capturing) ke_nsys_stop(run->nsys, r->nsys.error, sizeof r->nsys.error);
  run->capturing = 0;
  if (rc == KE_OUTPUT_FAILED) {
    r->output_failed = 1;
    rc = 0;
  }
  if (rc != 0 || r->output_failed) {
    snprintf(r->error, sizeof r->error, "%s", rerr);
    return rc;
  }
  r->replayed = 1;
  r->ok = 1;
  if (check_owner(run, "after the workload")) return 0;
  if (ke_proc_exited(run->proc)) {
    ke_proc_describe_exit_with_log(run->proc, "", " during the workload", r->error, sizeof r->error);
    r->ok = 0;
  } else if (r->metrics.failed > 0) {
    snprintf(r->error, sizeof r->error, "%d of %d requests failed (first: %s)", r->metrics.failed,
             r->metrics.request_count, r->metrics.first_error);
  }
  return 0;
}

static void stop_server(trial_run *run) {
  const ke_trial *t = run->t;
  ke_trial_result *r = run->r;
  phase(run, "stopping", NULL);
  double t0 = ke_now();
  if (session_capture(run)) {
    /* the server is the nsys agent's child, not ours. End the session (it leaves the
     * server running), stop the server through its marker, then the `nsys launch` client */
    ke_nsys_shutdown(run->nsys);
    if (ke_stop_marked(run->marker, t->stop_timeout_s) > 0) r->killed = 1;
    if (ke_proc_stop(run->proc, t->stop_timeout_s) == 1) r->killed = 1;
  } else {
    /* our child is the server, or `nsys profile` holding it: stopping the group lets
     * nsys finish its report; then anything marked that escaped the group */
    if (ke_proc_stop(run->proc, t->stop_timeout_s) == 1) r->killed = 1;
    if (ke_stop_marked(run->marker, t->stop_timeout_s) > 0) r->killed = 1;
  }
  ke_proc_free(run->proc);
  run->proc = NULL;
  /* the next trial binds the same port: wait for it to be released */
  ke_wait_port_free(t->host, t->port, t->stop_timeout_s > 1 ? t->stop_timeout_s : 1);
  r->stop_s = ke_now() - t0;
}

int ke_evaluate(const ke_trial *t, ke_trial_result *r) {
  memset(r, 0, sizeof *r);
  trial_run run = {.t = t, .r = r};
  ke_marker_new(run.marker, sizeof run.marker);
  if (ke_port_in_use(t->host, t->port) == 1) {
    snprintf(r->error, sizeof r->error,
             "port %s:%d is already in use before the server started (another server running?)",
             t->host, t->port);
    return 0;
  }
  choose_capture(&run);
  phase(&run, "starting", NULL);
  double t0 = ke_now();
  if (spawn_server(&run)) return 0;
  int rc = ke_wait_ready(run.proc, t->ready_url, t->ready_timeout_s, r->error, sizeof r->error);
  r->start_s = ke_now() - t0;
  if (rc == 0 && check_owner(&run, "when it answered the readiness probe") == 0) {
    phase(&run, "ready", NULL);
    rc = run_workload(&run);
  }
  stop_server(&run);
  if (rc == KE_INTERRUPTED) return KE_INTERRUPTED;
  if (run.nsys) {
    long long bytes = ke_nsys_capture_bytes(run.nsys);
    if (bytes > r->nsys.capture_bytes) r->nsys.capture_bytes = bytes;
  }
  if (rc == 0 && run.nsys && !r->nsys.error[0]) {
    phase(&run, "exporting", NULL);
    ke_nsys_finish(run.nsys, &r->nsys);
  }
  return ke_interrupted() ? KE_INTERRUPTED : 0;
}
