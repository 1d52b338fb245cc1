/* evaluate.c - see evaluate.h. */
#include "evaluate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "supervise.h"

static void stop_server(const ke_trial *t, const ke_nsys_opts *nsys, ke_proc *p,
                        ke_trial_result *r) {
  double t0 = ke_now();
  if (nsys && !(nsys->capture && strcmp(nsys->capture, "process") == 0)) {
    /* session capture: the server is the nsys agent's child, not ours. End the session
     * (it leaves the server running), stop the server through its marker, then the
     * `nsys launch` client */
    ke_nsys_shutdown(nsys);
    if (ke_stop_marked(t->marker, t->stop_timeout_s) > 0) r->killed = 1;
    if (ke_proc_stop(p, t->stop_timeout_s) == 1) r->killed = 1;
  } else {
    /* our child is the server, or `nsys profile` holding it: stopping the group lets
     * nsys finish its report; then anything marked that escaped the group */
    if (ke_proc_stop(p, t->stop_timeout_s) == 1) r->killed = 1;
    if (ke_stop_marked(t->marker, t->stop_timeout_s) > 0) r->killed = 1;
  }
  /* the next trial binds the same port: wait for it to be released */
  ke_wait_port_free(t->host, t->port, t->stop_timeout_s > 1 ? t->stop_timeout_s : 1);
  r->stop_s = ke_now() - t0;
}

int ke_evaluate(const ke_trial *t, ke_trial_result *r) {
  memset(r, 0, sizeof *r);
  if (ke_port_in_use(t->host, t->port) == 1) {
    snprintf(r->error, sizeof r->error,
             "port %s:%d is already in use before the server started (another server running?)",
             t->host, t->port);
    return 0;
  }
  ke_nsys_argv wrapped = {0};
  const char *const *argv = t->argv;
  ke_nsys_opts nsys_opts;
  const ke_nsys_opts *nsys = t->nsys;
  if (nsys && !(nsys->capture && strcmp(nsys->capture, "process") == 0) &&
      !ke_nsys_importer_visible(nsys->bin)) {
    nsys_opts = *nsys;
    nsys_opts.capture = "process";
    nsys = &nsys_opts;
    snprintf(r->nsys.note, sizeof r->nsys.note,
             "nsys cannot find its QdstrmImporter (a session's 'nsys stop' would hang), so the whole "
             "server process was captured with 'nsys profile'; link <nsys-install>/host-linux-x64 "
             "beside the real nsys binary (scripts/install-deps.sh --nsys does) to capture only the "
             "workload");
  }
  if (nsys) {
    if (ke_nsys_wrap_argv(nsys, t->argv, &wrapped)) {
      snprintf(r->error, sizeof r->error, "out of memory");
      return 0;
    }
    argv = wrapped.argv;
  }
  int session_mode = nsys && !(nsys->capture && strcmp(nsys->capture, "process") == 0);
  ke_proc *p = NULL;
  double t0 = ke_now();
  /* the trial's environment plus its marker */
  size_t nenv = 0;
  while (t->env && t->env[nenv]) nenv++;
  const char **env = calloc(nenv + 2, sizeof *env);
  if (!env) {
    ke_nsys_argv_free(&wrapped);
    snprintf(r->error, sizeof r->error, "out of memory");
    return 0;
  }
  for (size_t i = 0; i < nenv; i++) env[i] = t->env[i];
  env[nenv] = t->marker;
  int rc = ke_spawn(argv, env, t->log_path, &p, r->error, sizeof r->error);
  free(env);
  ke_nsys_argv_free(&wrapped);
  if (rc) return 0;

  rc = ke_wait_ready(p, t->ready_url, t->ready_timeout_s, r->error, sizeof r->error);
  r->start_s = ke_now() - t0;
  if (rc) {
    stop_server(t, nsys, p, r);
    ke_proc_free(p);
    return rc == KE_INTERRUPTED ? KE_INTERRUPTED : 0;
  }

  int capturing = 0;
  if (session_mode) {
    if (ke_nsys_start(nsys, r->nsys.error, sizeof r->nsys.error) == 0) capturing = 1;
  }
  double w0 = ke_now();
  char rerr[512] = "";
  int repeats = t->repeats < 1 ? 1 : t->repeats > 16 ? 16 : t->repeats;
  rc = 0;
  for (int k = 0; k < repeats && rc == 0; k++) {
    ke_replay_opts o = t->replay;
    char csv[1100];
    if (repeats > 1 && o.requests_csv) { /* requests.csv, requests-2.csv, ... */
      const char *dot = strrchr(o.requests_csv, '.');
      if (k > 0 && dot) {
        snprintf(csv, sizeof csv, "%.*s-%d%s", (int)(dot - o.requests_csv), o.requests_csv, k + 1, dot);
        o.requests_csv = csv;
      }
    }
    if (k > 0) o.warmup = 0; /* the server is warm after the first repeat */
    rc = ke_replay(&o, &r->repeat_metrics[k], rerr, sizeof rerr);
    if (rc == 0) r->repeats_done = k + 1;
  }
  if (r->repeats_done) ke_metrics_combine(r->repeat_metrics, r->repeats_done, &r->metrics);
  if (rc == -1 && r->repeats_done) rc = 0; /* keep what was measured; the error is below */
  r->workload_s = ke_now() - w0;
  if (capturing) ke_nsys_stop(nsys, r->nsys.error, sizeof r->nsys.error);

  if (rc == 0) {
    r->replayed = 1;
    r->ok = 1;
    if (ke_proc_exited(p)) {
      char how[64];
      ke_proc_describe_exit(p, how, sizeof how);
      char *tail = ke_tail_lines(t->log_path, 5);
      snprintf(r->error, sizeof r->error, "server %s during the workload; last log lines:\n%s", how,
               tail && tail[0] ? tail : "(log is empty)");
      free(tail);
      r->ok = 0;
    } else if (r->metrics.failed > 0) {
      snprintf(r->error, sizeof r->error, "%d of %d requests failed (first: %s)", r->metrics.failed,
               r->metrics.request_count, r->metrics.first_error);
    }
  } else {
    snprintf(r->error, sizeof r->error, "%s", rerr);
  }
  stop_server(t, nsys, p, r);
  ke_proc_free(p);
  if (rc == KE_INTERRUPTED) return KE_INTERRUPTED;
  if (nsys && !r->nsys.error[0]) ke_nsys_finish(nsys, &r->nsys);
  return ke_interrupted() ? KE_INTERRUPTED : 0;
}
