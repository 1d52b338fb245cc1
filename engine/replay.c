/* replay.c - see replay.h: the phases of a replay and when each request is sent (the
 * parts are listed in replay_internal.h).
 *
 * Closed loop: `concurrency` slots start with the first requests and each sends the
 * next when one ends. Open loop: request i is sent at schedule[i] (a free slot taken
 * from a stack); when every slot is busy (max_concurrency) it waits for one, counted
 * once as a cap hit. The warmup is a closed loop in every mode. */
#include "replay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "replay_internal.h"
#include "supervise.h"

#include <curl/curl.h>

/* One phase (the warmup or the measured requests) in progress. */
typedef struct {
  replay_run *rr;
  int measured, total;
  int next;    /* the next request to send */
  int running; /* in flight */
  int open;    /* sent on the schedule, not when a request ends */
  int multi;   /* closed loop, multi-turn: a slot sends a conversation's turns in turn */
  int pending; /* multi-turn: slots waiting out a think time */
  double t0;   /* when the phase began (the schedule's zero) */
  int cap_hits, last_capped;
} phase_run;

/* Asks the hook (when there is one) whether to go on; 1 = stop. */
static int hook_says_stop(replay_state *rs, ke_replay_event ev) {
  const ke_replay_opts *o = rs->o;
  if (!o->hook || rs->stopped) return rs->stopped;
  if (o->hook(o->hook_ud, ev, rs->completed)) rs->stopped = 1;
  return rs->stopped;
}

/* Sends request `index` on s. */
static int send_index(phase_run *ph, slot *s, int index, char *err, size_t errlen) {
  if (kr_slot_start(s, ph->rr->multi, index, ph->measured, index)) {
    snprintf(err, errlen, "cannot add request to curl");
    return -1;
  }
  s->conv_next = index + 1;
  ph->running++;
  return 0;
}

/* Multi-turn: the last request of the conversation that starts at `start` (below total). */
static int conversation_end(const ke_replay_opts *o, int start, int total) {
  int e = start;
  while (e + 1 < total && o->continues[(size_t)(e + 1) % o->n_bodies]) e++;
  return e;
}

/* The slot's next request: the next one in order, or (multi-turn) the first turn of
 * the next conversation, which the slot then owns to its end. */
static int start_request(phase_run *ph, slot *s, char *err, size_t errlen) {
  int index = ph->next;
  s->conv_end = ph->multi ? conversation_end(ph->rr->rs.o, index, ph->total) : index;
  ph->next = s->conv_end + 1;
  return send_index(ph, s, index, err, errlen);
}

/* Multi-turn: a slot whose request ended sends its conversation's next turn after the
 * think time, else takes the next conversation. */
static int continue_conversation(phase_run *ph, slot *s, char *err, size_t errlen) {
  if (s->conv_next <= s->conv_end) {
    double think = ph->rr->rs.o->think_s;
    if (think <= 0) return send_index(ph, s, s->conv_next, err, errlen);
    s->due = ke_now() + think;
    ph->pending++;
    return 0;
  }
  return ph->next < ph->total ? start_request(ph, s, err, errlen) : 0;
}

/* Multi-turn: sends the turns whose think time is over; returns how long until the
 * next one is (s; 0.1 when none waits). */
static double send_thought(phase_run *ph, char *err, size_t errlen, int *rc) {
  double next = 0.1, now = ke_now();
  for (int i = 0; ph->pending > 0 && i < ph->rr->nslots; i++) {
    slot *s = &ph->rr->slots[i];
    if (s->due == 0) continue;
    if (s->due > now) {
      if (s->due - now < next) next = s->due - now;
      continue;
    }
    s->due = 0;
    ph->pending--;
    if (send_index(ph, s, s->conv_next, err, errlen)) { *rc = -1; return 0; }
  }
  return next;
}

/* Finishes whatever curl reports done. Closed loop: the slot sends the next request at
 * once (multi-turn: its conversation's next turn); open loop: it waits for its turn on
 * the schedule. Returns 0 or -1. */
static int collect_done(phase_run *ph, char *err, size_t errlen) {
  replay_run *rr = ph->rr;
  slot *s;
  while ((s = kr_next_done(rr))) {
    ph->running--;
    if (ph->measured) {
      rr->rs.completed++;
      if (hook_says_stop(&rr->rs, KE_REPLAY_COMPLETED)) return 0;
    }
    if (ph->open) rr->free_slots[rr->nfree++] = (int)(s - rr->slots);
    else if (ph->multi) {
      if (continue_conversation(ph, s, err, errlen)) return -1;
    } else if (ph->next < ph->total && start_request(ph, s, err, errlen)) return -1;
  }
  return 0;
}

/* Open loop: sends every request that is due, while a slot is free. Returns how long
 * until the next one is due (s; 0.1 when none is waiting on time). */
static double send_due(phase_run *ph, char *err, size_t errlen, int *rc) {
  replay_run *rr = ph->rr;
  const double *sched = rr->rs.o->schedule;
  while (ph->next < ph->total) {
    double due = ph->t0 + sched[ph->next] - ke_now();
    if (due > 0) return due;
    if (rr->nfree == 0) { /* every slot busy: it waits for one (max_concurrency) */
      if (ph->next > ph->last_capped) { /* each request kept waiting counts once */
        ph->cap_hits++;
        ph->last_capped = ph->next;
      }
      return 0.1;
    }
    slot *s = &rr->slots[rr->free_slots[--rr->nfree]];
    if (send_index(ph, s, ph->next++, err, errlen)) { *rc = -1; return 0; }
  }
  return 0.1;
}

/* Sleeps until the next request is due: in curl's wait for whole milliseconds, the
 * last fraction with nanosleep (curl's wait counts only whole milliseconds). */
static void wait_until_due(replay_run *rr, double due_in) {
  if (due_in > 0.1) due_in = 0.1;
  if (due_in >= 0.001) kr_wait_for_data(rr, (int)(due_in * 1000));
  else {
    kr_wait_for_data(rr, 0);
    if (due_in > 0) ke_sleep(due_in);
  }
}

/* Runs one phase to its end. Closed loop: the slots start with the first requests and
 * each sends the next when one ends. Open loop: requests are sent on the schedule. */
static int run_phase(phase_run *ph, char *err, size_t errlen) {
  replay_run *rr = ph->rr;
  replay_state *rs = &rr->rs;
  int rc = 0;
  for (int i = 0; !ph->open && i < rs->o->concurrency && ph->next < ph->total; i++)
    if (start_request(ph, &rr->slots[i], err, errlen)) return -1;
  while (ph->running > 0 || ph->pending > 0 || (ph->open && ph->next < ph->total)) {
    double due_in = ph->open ? send_due(ph, err, errlen, &rc) : ph->pending ? send_thought(ph, err, errlen, &rc) : 0.1;
    if (rc) return rc;
    kr_curl_work(rr);
    if (collect_done(ph, err, errlen)) return -1;
    if (ke_interrupted()) {
      snprintf(err, errlen, "interrupted during the workload");
      return KE_INTERRUPTED;
    }
    double now = ke_now();
    if (now >= rs->next_tick) { /* the hook's chance to watch (every 100 ms) */
      rs->next_tick = now + 0.1;
      hook_says_stop(rs, KE_REPLAY_TICK);
    }
    if (rs->stopped) {
      kr_abandon_in_flight(rr); /* not counted */
      for (int i = 0; i < rr->nslots; i++) rr->slots[i].due = 0; /* turns waiting on a think time too */
      ph->pending = 0;
      return 0;
    }
    if (ph->running > 0 || ph->pending > 0 || ph->next < ph->total) wait_until_due(rr, due_in);
  }
  return 0;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

/* Open loop without a cap: as many slots as requests could be in flight at once. */
#define OPEN_LOOP_SLOTS 16384

static int replay_setup(replay_run *rr, const ke_replay_opts *o, char *err, size_t errlen) {
  rr->rs.o = o;
  rr->epfd = -1;
  rr->rs.rows = calloc((size_t)o->request_count, sizeof(request_row));
  if (!rr->rs.rows) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  rr->nslots = o->concurrency;
  if (o->schedule) {
    int open = o->max_concurrency > 0 ? o->max_concurrency : o->request_count;
    if (open > OPEN_LOOP_SLOTS) open = OPEN_LOOP_SLOTS;
    if (open > rr->nslots) rr->nslots = open;
  }
  if (kr_curl_setup(rr, err, errlen)) return -1;
  return o->stream ? kr_rx_setup(&rr->rs.rx, err, errlen) : 0;
}

static void replay_cleanup(replay_run *rr) {
  kr_curl_cleanup(rr); /* first: closing its sockets updates rs.rx */
  kr_rx_free(&rr->rs.rx);
  kj_doc_free(&rr->rs.scratch);
  for (int i = 0; rr->rs.rows && i < rr->rs.o->request_count; i++) free(rr->rs.rows[i].error);
  free(rr->rs.rows);
  free(rr->rs.gaps.v);
}

/* POSTs an empty body to the reset URL (e.g. vLLM's /reset_prefix_cache): 0, or -1 with
 * what went wrong. */
static int reset_server(const char *url, char *err, size_t errlen) {
  CURL *easy = curl_easy_init();
  if (!easy) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
  CURLcode rc = curl_easy_perform(easy);
  long code = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(easy);
  if (rc != CURLE_OK) snprintf(err, errlen, "POST %s (server.reset_prefix_cache): %s", url, curl_easy_strerror(rc));
  else if (code < 200 || code >= 300)
    snprintf(err, errlen, "POST %s (server.reset_prefix_cache) answered HTTP %ld (vLLM serves it with VLLM_SERVER_DEV_MODE=1)",
             url, code);
  return rc == CURLE_OK && code >= 200 && code < 300 ? 0 : -1;
}

/* Energy per output token from the GPUs' energy (NaN without it). */
static void energy_metrics(ke_metrics *out) {
  int have = !isnan(out->gpu_energy) && out->gpu_energy > 0 && out->output_tokens > 0;
  out->joules_per_token = have ? out->gpu_energy / (double)out->output_tokens : NAN;
  out->tokens_per_joule = have ? (double)out->output_tokens / out->gpu_energy : NAN;
}

/* The measured requests, watched by the sampler; then their metrics. */
static int measured_requests(replay_run *rr, ke_metrics *out, phase_run *ph, char *err, size_t errlen) {
  const ke_replay_opts *o = rr->rs.o;
  ke_sampler_opts so = o->sampler;
  if (o->schedule) so.queue_window_s = o->schedule[o->request_count - 1]; /* while requests were due */
  ke_sampler *sampler = ke_sampler_start(&so, err, errlen);
  if (!sampler) return -1;
  ph->t0 = ke_now();
  int rc = run_phase(ph, err, errlen);
  double t1 = ke_now();
  char serr[512];
  int sampler_rc = ke_sampler_stop(sampler, out, serr, sizeof serr);
  if (rc == 0 && rr->rs.oom) {
    snprintf(err, errlen, "out of memory recording the requests");
    rc = -1;
  }
  if (rc == 0)
    rc = ke_replay_aggregate(o, rr->rs.rows, rr->rs.gaps.v, rr->rs.gaps.n, ph->t0, t1, ph->cap_hits, out, err, errlen);
  if (rc == 0) energy_metrics(out);
  if (rc == 0 && sampler_rc) {
    snprintf(err, errlen, "%s", serr);
    rc = KE_OUTPUT_FAILED;
  }
  return rc;
}

/* The measured phase: the reset, its requests, then its metrics and requests.csv. */
static int measured_phase(replay_run *rr, ke_metrics *out, char *err, size_t errlen) {
  const ke_replay_opts *o = rr->rs.o;
  if (o->reset_url && reset_server(o->reset_url, err, errlen)) return -1;
  hook_says_stop(&rr->rs, KE_REPLAY_MEASURING);
  kr_rx_lag_reset(&rr->rs.rx); /* the warmup's reads do not count */
  phase_run ph = {.rr = rr, .measured = 1, .total = o->request_count, .open = o->schedule != NULL,
                  .multi = o->continues && !o->schedule, .last_capped = -1};
  int rc = measured_requests(rr, out, &ph, err, errlen);
  if (rc == 0) kr_rx_lag_metrics(&rr->rs.rx, out);
  if (rc == 0 && o->requests_csv && ke_replay_write_csv(o->requests_csv, rr->rs.rows, o->request_count, ph.t0, err, errlen))
    rc = KE_OUTPUT_FAILED;
  return rc;
}

int ke_replay(const ke_replay_opts *o, ke_metrics *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (o->n_bodies == 0 || o->concurrency < 1 || o->request_count < 1) {
    snprintf(err, errlen, "replay needs at least one body, concurrency >= 1 and request_count >= 1");
    return -1;
  }
  replay_run rr;
  memset(&rr, 0, sizeof rr);
  int rc = replay_setup(&rr, o, err, errlen);
  if (rc == 0 && o->warmup > 0) {
    /* the warmup is a closed loop in every mode: it only readies the server */
    phase_run warm = {.rr = &rr, .measured = 0, .total = o->warmup, .multi = o->continues != NULL};
    rc = run_phase(&warm, err, errlen);
  }
  if (rc == 0) rc = measured_phase(&rr, out, err, errlen);
  replay_cleanup(&rr);
  return rc;
}
