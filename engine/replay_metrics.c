/* replay_metrics.c - see replay_rows.h: the metrics of a replay (the members of
 * metrics.h) from its rows, and its requests.csv. How repeats combine is metrics.c. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "json.h"
#include "replay_rows.h"
#include "stats.h"

int ke_usage_plausible(double usage, long chunks, double bytes) {
  if (!(usage >= 0 && usage <= INT_MAX) || usage != floor(usage)) return 0;
  double c = chunks > 0 ? (double)chunks : 0;
  if (2 * usage + KE_USAGE_SLACK < c) return 0; /* fewer tokens than chunks */
  return usage <= fmax(KE_USAGE_TOKENS_PER_CHUNK * c, bytes) + KE_USAGE_SLACK;
}

/* Sorts the samples and sets their percentiles and (when mean is not NULL) mean. */
static void dist_from(double *x, size_t n, double *p50, double *p95, double *p99, double *mean) {
  ke_sort_doubles(x, n);
  *p50 = ke_percentile_sorted(x, n, 50);
  *p95 = ke_percentile_sorted(x, n, 95);
  *p99 = ke_percentile_sorted(x, n, 99);
  if (mean) *mean = ke_mean(x, n);
}

/* The sample arrays of a phase: one value per completed request (tpot: those with more
 * than one token), lateness per sent request, and every gap. */
typedef struct {
  double *lat, *ttft, *tpot, *late, *itl, *ttfot;
  size_t nl, nt, nto, np, nlate;
} samples;

static void samples_free(samples *s) {
  free(s->lat); free(s->ttft); free(s->ttfot); free(s->tpot); free(s->late); free(s->itl);
}

static int samples_alloc(samples *s, size_t n, size_t ngaps) {
  memset(s, 0, sizeof *s);
  s->lat = malloc(sizeof(double) * (n ? n : 1));
  s->ttft = malloc(sizeof(double) * (n ? n : 1));
  s->ttfot = malloc(sizeof(double) * (n ? n : 1));
  s->tpot = malloc(sizeof(double) * (n ? n : 1));
  s->late = malloc(sizeof(double) * (n ? n : 1));
  s->itl = malloc(sizeof(double) * (ngaps ? ngaps : 1));
  return s->lat && s->ttft && s->ttfot && s->tpot && s->late && s->itl ? 0 : -1;
}

static double tpot_of(const ke_request_row *r) {
  return r->tokens > 1 && !isnan(r->ttft_ms) ? (r->latency_ms - r->ttft_ms) / (r->tokens - 1) : NAN;
}

/* One threshold: met, or not part of the objective (-1). NaN values (no such time)
 * meet a TPOT/ITL threshold (there was no gap) but never a TTFT or E2E one. */
static int meets(double threshold, double v, int nan_meets) {
  if (isnan(threshold)) return -1;
  if (isnan(v)) return nan_meets;
  return v <= threshold;
}

static int combine(const ke_slo *slo, const int *parts, int n) {
  int any = 0, all = 1, used = 0;
  for (int i = 0; i < n; i++) {
    if (parts[i] < 0) continue;
    used = 1;
    any |= parts[i];
    all &= parts[i];
  }
  return used && (slo->any ? any : all);
}

static int request_meets(const ke_slo *slo, const ke_request_row *r) {
  if (r->error) return 0;
  int parts[4] = {meets(slo->ttft_ms, r->ttft_ms, 0), meets(slo->tpot_ms, tpot_of(r), 1),
                  meets(slo->itl_ms, r->max_gap_ms, 1), meets(slo->e2e_ms, r->latency_ms, 0)};
  return combine(slo, parts, 4);
}

/* The SLO at its percentile over the (sorted) samples, and goodput/attainment. */
static void slo_metrics(const ke_slo *slo, const ke_request_row *rows, int n, const samples *s, size_t ngaps,
                        ke_metrics *out) {
  out->goodput = out->slo_attainment = out->slo_ttft = out->slo_tpot = out->slo_itl = out->slo_e2e = NAN;
  out->slo_met = -1;
  if (!slo->enabled) return;
  int good = 0;
  for (int i = 0; i < n; i++)
    if (rows[i].done && request_meets(slo, &rows[i])) good++;
  double q = slo->percentile;
  out->slo_ttft = ke_percentile_sorted(s->ttft, s->nt, q);
  out->slo_tpot = ke_percentile_sorted(s->tpot, s->np, q);
  out->slo_itl = ke_percentile_sorted(s->itl, ngaps, q);
  out->slo_e2e = ke_percentile_sorted(s->lat, s->nl, q);
  out->goodput = out->duration_s > 0 ? good / out->duration_s : NAN;
  out->slo_attainment = out->request_count ? 100.0 * good / out->request_count : NAN;
}

static void slo_verdict(const ke_slo *slo, ke_metrics *out) {
  if (!slo->enabled) return;
  int parts[4] = {meets(slo->ttft_ms, out->slo_ttft, 0), meets(slo->tpot_ms, out->slo_tpot, 1),
                  meets(slo->itl_ms, out->slo_itl, 1), meets(slo->e2e_ms, out->slo_e2e, 0)};
  out->slo_met = out->completed > 0 && combine(slo, parts, 4);
}

/* Fills the samples from the finished rows; counts into out. */
static void collect(const ke_replay_opts *o, const ke_request_row *rows, double t0, samples *s, ke_metrics *out) {
  for (int i = 0; i < o->request_count; i++) {
    const ke_request_row *r = &rows[i];
    if (!r->done) continue;
    out->request_count++;
    if (o->schedule) s->late[s->nlate++] = (r->sent - (t0 + o->schedule[i])) * 1000.0;
    if (r->error) {
      out->failed++;
      if (!out->first_error[0]) snprintf(out->first_error, sizeof out->first_error, "%s", r->error);
      continue;
    }
    out->completed++;
    if (r->token_mismatch && !out->token_mismatch++) {
      out->mismatch_usage = r->usage;
      out->mismatch_chunks = r->out_chunks;
      out->mismatch_bytes = r->out_bytes;
    }
    out->output_tokens += r->tokens;
    out->input_tokens += r->input_tokens >= 0 ? (double)r->input_tokens : (double)NAN; /* unknown stays so */
    s->lat[s->nl++] = r->latency_ms;
    if (!isnan(r->ttft_ms)) s->ttft[s->nt++] = r->ttft_ms;
    if (!isnan(r->ttfot_ms)) s->ttfot[s->nto++] = r->ttfot_ms;
    double tp = tpot_of(r);
    if (!isnan(tp)) s->tpot[s->np++] = tp;
  }
}

int ke_replay_aggregate(const ke_replay_opts *o, const ke_request_row *rows, const float *gaps, size_t ngaps,
                        double t0, double t1, int cap_hits, ke_metrics *out, char *err, size_t errlen) {
  samples s;
  if (samples_alloc(&s, (size_t)o->request_count, ngaps)) {
    samples_free(&s);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  collect(o, rows, t0, &s, out);
  for (size_t i = 0; i < ngaps; i++) s.itl[i] = gaps[i];
  out->error_rate = out->request_count ? (double)out->failed / out->request_count : NAN;
  out->duration_s = t1 - t0;
  dist_from(s.lat, s.nl, &out->latency_p50, &out->latency_p95, &out->latency_p99, &out->latency_mean);
  dist_from(s.ttft, s.nt, &out->ttft_p50, &out->ttft_p95, &out->ttft_p99, &out->ttft_mean);
  dist_from(s.ttfot, s.nto, &out->ttfot_p50, &out->ttfot_p95, &out->ttfot_p99, &out->ttfot_mean);
  dist_from(s.tpot, s.np, &out->tpot_p50, &out->tpot_p95, &out->tpot_p99, &out->tpot_mean);
  dist_from(s.itl, ngaps, &out->itl_p50, &out->itl_p95, &out->itl_p99, NULL);
  out->tokens_per_s = out->duration_s > 0 ? (double)out->output_tokens / out->duration_s : NAN;
  out->requests_per_s = out->duration_s > 0 ? out->completed / out->duration_s : NAN;
  ke_sort_doubles(s.late, s.nlate);
  out->lateness_p50 = o->schedule ? ke_percentile_sorted(s.late, s.nlate, 50) : NAN;
  out->lateness_p99 = o->schedule ? ke_percentile_sorted(s.late, s.nlate, 99) : NAN;
  out->lateness_max = o->schedule && s.nlate ? s.late[s.nlate - 1] : NAN;
  out->cap_hits = cap_hits;
  slo_metrics(&o->slo, rows, o->request_count, &s, ngaps, out); /* the samples are sorted now */
  slo_verdict(&o->slo, out);
  samples_free(&s);
  return 0;
}

static void csv_error_field(kbuf *b, const char *s) {
  /* errors are ours, but may quote what a server said: quote commas, quotes, newlines */
  if (!strpbrk(s, ",\"\n")) { kbuf_puts(b, s); return; }
  kbuf_puts(b, "\"");
  for (const char *p = s; *p; p++) {
    if (*p == '"') kbuf_puts(b, "\"\"");
    else if (*p == '\n') kbuf_puts(b, " ");
    else kbuf_append(b, p, 1);
  }
  kbuf_puts(b, "\"");
}

static void csv_ms(kbuf *b, double v) {
  if (isnan(v)) kbuf_puts(b, ",");
  else kbuf_printf(b, "%.3f,", v);
}

int ke_replay_write_csv(const char *path, const ke_request_row *rows, int n, double t0, char *err, size_t errlen) {
  kbuf b = {0};
  kbuf_puts(&b, "request,scheduled_ms,sent_ms,ttft_ms,ttfot_ms,latency_ms,output_tokens,prompt_tokens,http_status,error\n");
  for (int i = 0; i < n; i++) {
    const ke_request_row *r = &rows[i];
    if (!r->done) continue;
    kbuf_printf(&b, "%d,", i);
    csv_ms(&b, r->scheduled * 1000.0);
    kbuf_printf(&b, "%.3f,", (r->sent - t0) * 1000.0);
    csv_ms(&b, r->ttft_ms);
    csv_ms(&b, r->ttfot_ms);
    kbuf_printf(&b, "%.3f,%d,", r->latency_ms, r->tokens);
    if (r->input_tokens >= 0) kbuf_printf(&b, "%d", r->input_tokens);
    kbuf_printf(&b, ",%ld,", r->status);
    csv_error_field(&b, r->error ? r->error : "");
    kbuf_puts(&b, "\n");
  }
  int rc = b.data ? ke_write_atomic(path, b.data, b.len, 0644, err, errlen) : -1;
  if (!b.data) snprintf(err, errlen, "out of memory");
  kbuf_free(&b);
  return rc;
}
