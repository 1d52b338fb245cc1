/* sampler.c - see sampler.h: a thread that scrapes the server's metrics and samples
 * the GPUs every interval, and what the measured phase's figures are made of. */
#include "sampler.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "json.h"
#include "nvml.h"
#include "prom.h"
#include "text.h"

const ke_server_metric_desc ke_server_metric_table[KE_SRV_COUNT] = {
#define KE_SERVER_METRIC_ROW_(id, key, kind, names) {key, KE_SRV_KIND_##kind, names},
#define KE_SRV_KIND_GAUGE 0
#define KE_SRV_KIND_COUNTER 1
    KE_SERVER_METRICS(KE_SERVER_METRIC_ROW_)
#undef KE_SERVER_METRIC_ROW_
};

#define SCRAPE_BODY_MAX ((size_t)16 << 20)

/* One row of the table over the phase. */
typedef struct {
  const char *names[KE_SAMPLER_MAX_NAMES + 1];
  int seen;             /* scrapes that had it */
  double sum, max;      /* gauge */
  double inner_min;     /* gauge: the least of the inner scrapes (NAN: none) */
  double last, increase; /* counter */
} server_series;

/* The GPUs over the phase. */
typedef struct {
  ke_nvml *nvml;
  ke_gpu_sample *now, *first;
  int samples;
  double power_sum, power_max, sm_sum, mem_util_sum, mem_used_max, sm_clock_sum, mem_clock_sum;
  int n_power, n_sm, n_mem_util, n_mem_used, n_sm_clock, n_mem_clock;
  double prev_t, prev_power, power_energy_j; /* power x time, where counters are missing */
  char unavailable[256];
} gpu_state;

struct ke_sampler {
  const ke_sampler_opts *o;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  int stop, started, final;
  double t0;
  double window_from; /* when the first scrape was in: the schedule's zero, near enough */
  /* server metrics */
  CURL *easy;
  kbuf body;
  int scrapes, failed;
  char unavailable[256];
  server_series series[KE_SRV_COUNT];
  double scrape_sum[KE_SRV_COUNT][KE_SAMPLER_MAX_NAMES];
  int scrape_seen[KE_SRV_COUNT][KE_SAMPLER_MAX_NAMES];
  FILE *csv;
  double scrape_t;
  char csv_error[256];
  gpu_state gpu;
  FILE *gpu_csv;
};

/* ---------- files ---------- */

static FILE *open_tmp(const char *path, const char *header, char *why, size_t whylen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
  else fputs(header, f);
  return f;
}

/* Closes and renames into place; 0, or -1 with the reason in why (the tmp removed). */
static int finish_file(FILE *f, const char *path, char *why, size_t whylen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int bad = ferror(f);
  if (fflush(f) || bad) bad = 1;
  if (fclose(f)) bad = 1;
  if (!bad && rename(tmp, path) == 0) return 0;
  snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
  remove(tmp);
  return -1;
}

static void csv_number(FILE *f, double v) {
  if (isnan(v)) fputs("NaN", f);
  else if (isinf(v)) fputs(v > 0 ? "+Inf" : "-Inf", f);
  else fprintf(f, "%.17g", v);
}

/* A CSV field: quoted when it has a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* ---------- server metrics ---------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  kbuf *b = ud;
  size_t len = size * n;
  if (len > SCRAPE_BODY_MAX - b->len || kbuf_append(b, p, len)) return 0;
  return len;
}

static int on_sample(void *ud, const ke_prom_sample *s) {
  ke_sampler *sp = ud;
  if (sp->csv) {
    fprintf(sp->csv, "%.3f,", (sp->scrape_t - sp->t0) * 1000.0);
    csv_field(sp->csv, s->name);
    fputc(',', sp->csv);
    csv_field(sp->csv, s->labels);
    fprintf(sp->csv, ",%s,", ke_prom_type_name(s->type));
    csv_number(sp->csv, s->value);
    fputc('\n', sp->csv);
  }
  for (int k = 0; k < KE_SRV_COUNT; k++)
    for (int j = 0; sp->series[k].names[j]; j++)
      if (strcmp(s->name, sp->series[k].names[j]) == 0) {
        sp->scrape_sum[k][j] += s->value;
        sp->scrape_seen[k][j] = 1;
      }
  return 0;
}

/* One scrape's figures into the series: each row by the first of its names it had. */
static void add_scrape(ke_sampler *sp) {
  for (int k = 0; k < KE_SRV_COUNT; k++) {
    server_series *se = &sp->series[k];
    int j = 0;
    while (se->names[j] && !sp->scrape_seen[k][j]) j++;
    if (!se->names[j]) continue;
    double v = sp->scrape_sum[k][j];
    if (ke_server_metric_table[k].counter) {
      if (se->seen) se->increase += v >= se->last ? v - se->last : v;
      se->last = v;
    } else {
      se->sum += v;
      if (!se->seen || v > se->max) se->max = v;
      double since = sp->scrape_t - sp->window_from;
      int inner = se->seen > 0 && !sp->final && (sp->o->queue_window_s <= 0 || since <= sp->o->queue_window_s);
      if (inner && (isnan(se->inner_min) || v < se->inner_min)) se->inner_min = v;
    }
    se->seen++;
  }
}

/* GETs the metrics into sp->body; 0, or -1 with why. */
static int fetch_metrics(ke_sampler *sp, char *why, size_t whylen) {
  sp->body.len = 0;
  CURLcode rc = curl_easy_perform(sp->easy);
  long code = 0;
  curl_easy_getinfo(sp->easy, CURLINFO_RESPONSE_CODE, &code);
  if (rc != CURLE_OK) {
    snprintf(why, whylen, "GET %s: %s", sp->o->metrics_url,
             rc == CURLE_WRITE_ERROR ? "answer over 16 MiB" : curl_easy_strerror(rc));
    return -1;
  }
  if (code != 200) {
    snprintf(why, whylen, "GET %s answered HTTP %ld", sp->o->metrics_url, code);
    return -1;
  }
  return 0;
}

/* One scrape; the first one that fails turns scraping off with its reason. */
static void scrape(ke_sampler *sp) {
  if (!sp->easy) return;
  char why[256], perr[160];
  sp->scrape_t = ke_now();
  memset(sp->scrape_sum, 0, sizeof sp->scrape_sum);
  memset(sp->scrape_seen, 0, sizeof sp->scrape_seen);
  int rc = fetch_metrics(sp, why, sizeof why);
  if (rc == 0 && ke_prom_parse(sp->body.data ? sp->body.data : "", sp->body.len, on_sample, sp, perr, sizeof perr)) {
    snprintf(why, sizeof why, "%s is not Prometheus text: %s", sp->o->metrics_url, perr);
    rc = -1;
  }
  if (rc == 0) {
    sp->scrapes++;
    add_scrape(sp);
    return;
  }
  if (sp->scrapes > 0) { sp->failed++; return; }
  ke_text_line(why, strlen(why), sp->unavailable, sizeof sp->unavailable);
  curl_easy_cleanup(sp->easy);
  sp->easy = NULL;
}

static void names_of(const ke_sampler_opts *o, int k, server_series *se) {
  int j = 0;
  if (o->names[k]) {
    for (; j < KE_SAMPLER_MAX_NAMES && o->names[k][j]; j++) se->names[j] = o->names[k][j];
  } else {
    for (const char *n = ke_server_metric_table[k].names; *n && j < KE_SAMPLER_MAX_NAMES; n += strlen(n) + 1)
      se->names[j++] = n;
  }
  se->names[j] = NULL;
}

static int server_setup(ke_sampler *sp, char *err, size_t errlen) {
  const ke_sampler_opts *o = sp->o;
  for (int k = 0; k < KE_SRV_COUNT; k++) {
    names_of(o, k, &sp->series[k]);
    sp->series[k].inner_min = NAN;
  }
  if (!o->metrics_url) {
    snprintf(sp->unavailable, sizeof sp->unavailable, "%s", o->metrics_off ? o->metrics_off : "not scraped");
    return 0;
  }
  sp->easy = curl_easy_init();
  if (!sp->easy) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  long timeout_ms = o->interval_ms > 2000 ? o->interval_ms : 2000;
  curl_easy_setopt(sp->easy, CURLOPT_URL, o->metrics_url);
  curl_easy_setopt(sp->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(sp->easy, CURLOPT_WRITEDATA, &sp->body);
  curl_easy_setopt(sp->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(sp->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(sp->easy, CURLOPT_PROXY, "");
  if (o->metrics_csv) {
    sp->csv = open_tmp(o->metrics_csv, "t_ms,name,labels,type,value\n", sp->csv_error, sizeof sp->csv_error);
    if (!sp->csv) {
      snprintf(err, errlen, "%s", sp->csv_error);
      return -1;
    }
  }
  return 0;
}

/* ---------- GPUs ---------- */

#define GPU_CSV_HEADER "t_ms,gpu,power_w,sm_util_pct,memory_util_pct,memory_used_mib,sm_clock_mhz,memory_clock_mhz,energy_mj\n"

static int gpu_setup(ke_sampler *sp, char *err, size_t errlen) {
  gpu_state *g = &sp->gpu;
  const ke_sampler_opts *o = sp->o;
  if (!o->gpu) {
    snprintf(g->unavailable, sizeof g->unavailable, "GPU telemetry is off (telemetry.gpu)");
    return 0;
  }
  char why[256];
  g->nvml = ke_nvml_open(o->gpu_devices, o->n_gpu_devices, why, sizeof why);
  if (!g->nvml) {
    ke_text_line(why, strlen(why), g->unavailable, sizeof g->unavailable);
    return 0;
  }
  int n = ke_nvml_count(g->nvml);
  g->now = calloc((size_t)n, sizeof *g->now);
  g->first = calloc((size_t)n, sizeof *g->first);
  if (!g->now || !g->first) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (o->gpu_csv && !(sp->gpu_csv = open_tmp(o->gpu_csv, GPU_CSV_HEADER, why, sizeof why))) {
    snprintf(err, errlen, "%s", why);
    return -1;
  }
  return 0;
}

static void add_mean(double v, double *sum, int *n) {
  if (isnan(v)) return;
  *sum += v;
  (*n)++;
}

static void gpu_row(FILE *f, double t_ms, const ke_gpu_sample *s) {
  fprintf(f, "%.3f,%d", t_ms, s->index);
  const double v[] = {s->power_w, s->sm_util_pct, s->memory_util_pct, s->memory_used_mib, s->sm_clock_mhz,
                      s->memory_clock_mhz, s->energy_mj};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    fputc(',', f);
    if (!isnan(v[i])) fprintf(f, "%.17g", v[i]);
  }
  fputc('\n', f);
}

static void gpu_sample(ke_sampler *sp) {
  gpu_state *g = &sp->gpu;
  if (!g->nvml) return;
  int n = ke_nvml_count(g->nvml);
  double t = ke_now();
  ke_nvml_sample(g->nvml, g->now);
  if (g->samples == 0) memcpy(g->first, g->now, (size_t)n * sizeof *g->now);
  double power = 0, used = 0;
  int have_power = 1, have_used = 1;
  for (int i = 0; i < n; i++) {
    const ke_gpu_sample *s = &g->now[i];
    if (sp->gpu_csv) gpu_row(sp->gpu_csv, (t - sp->t0) * 1000.0, s);
    if (isnan(s->power_w)) have_power = 0; else power += s->power_w;
    if (isnan(s->memory_used_mib)) have_used = 0; else used += s->memory_used_mib;
    add_mean(s->sm_util_pct, &g->sm_sum, &g->n_sm);
    add_mean(s->memory_util_pct, &g->mem_util_sum, &g->n_mem_util);
    add_mean(s->sm_clock_mhz, &g->sm_clock_sum, &g->n_sm_clock);
    add_mean(s->memory_clock_mhz, &g->mem_clock_sum, &g->n_mem_clock);
  }
  if (have_power) {
    if (g->n_power > 0) g->power_energy_j += (t - g->prev_t) * (power + g->prev_power) / 2;
    if (g->n_power == 0 || power > g->power_max) g->power_max = power;
    g->power_sum += power;
    g->n_power++;
    g->prev_t = t;
    g->prev_power = power;
  }
  if (have_used) {
    if (g->n_mem_used == 0 || used > g->mem_used_max) g->mem_used_max = used;
    g->n_mem_used++;
  }
  g->samples++;
}

/* The energy the GPUs' counters gave over the phase (J), NaN where one has none. */
static double counter_energy_j(const gpu_state *g) {
  double j = 0;
  for (int i = 0; i < ke_nvml_count(g->nvml); i++) {
    if (isnan(g->first[i].energy_mj) || isnan(g->now[i].energy_mj)) return NAN;
    j += (g->now[i].energy_mj - g->first[i].energy_mj) / 1000.0;
  }
  return j;
}

static double mean_or_nan(double sum, int n) { return n > 0 ? sum / n : NAN; }

static void gpu_metrics(const gpu_state *g, ke_metrics *m) {
  m->gpu_samples = g->samples;
  snprintf(m->gpu_unavailable, sizeof m->gpu_unavailable, "%s", g->unavailable);
  m->gpu_power_mean = mean_or_nan(g->power_sum, g->n_power);
  m->gpu_power_max = g->n_power ? g->power_max : NAN;
  m->gpu_sm_util = mean_or_nan(g->sm_sum, g->n_sm);
  m->gpu_mem_util = mean_or_nan(g->mem_util_sum, g->n_mem_util);
  m->gpu_mem_used = g->n_mem_used ? g->mem_used_max : NAN;
  m->gpu_sm_clock = mean_or_nan(g->sm_clock_sum, g->n_sm_clock);
  m->gpu_mem_clock = mean_or_nan(g->mem_clock_sum, g->n_mem_clock);
  m->gpu_energy = NAN;
  if (g->nvml && g->samples >= 2) {
    m->gpu_energy = counter_energy_j(g);
    if (isnan(m->gpu_energy) && g->n_power >= 2) m->gpu_energy = g->power_energy_j;
  }
}

/* ---------- the thread ---------- */

static void sample_now(ke_sampler *sp) {
  scrape(sp);
  gpu_sample(sp);
}

static void *sampler_main(void *ud) {
  ke_sampler *sp = ud;
  double next = sp->t0;
  pthread_mutex_lock(&sp->lock);
  while (!sp->stop) {
    next += sp->o->interval_ms / 1000.0;
    double wait = next - ke_now();
    if (wait > 0) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      double at = (double)ts.tv_sec + ts.tv_nsec / 1e9 + wait;
      ts.tv_sec = (time_t)at;
      ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
      while (!sp->stop && pthread_cond_timedwait(&sp->wake, &sp->lock, &ts) != ETIMEDOUT) {}
    } else {
      next = ke_now(); /* a slow scrape: the next one an interval from now */
    }
    if (sp->stop) break;
    pthread_mutex_unlock(&sp->lock);
    sample_now(sp);
    pthread_mutex_lock(&sp->lock);
  }
  pthread_mutex_unlock(&sp->lock);
  return NULL;
}

static void sampler_free(ke_sampler *sp) {
  if (sp->easy) curl_easy_cleanup(sp->easy);
  kbuf_free(&sp->body);
  ke_nvml_close(sp->gpu.nvml);
  free(sp->gpu.now);
  free(sp->gpu.first);
  pthread_mutex_destroy(&sp->lock);
  pthread_cond_destroy(&sp->wake);
  free(sp);
}

static void discard(FILE **f, const char *path) {
  if (!*f) return;
  char tmp[4096];
  fclose(*f);
  *f = NULL;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  remove(tmp);
}

ke_sampler *ke_sampler_start(const ke_sampler_opts *o, char *err, size_t errlen) {
  ke_sampler *sp = calloc(1, sizeof *sp);
  if (!sp) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  sp->o = o;
  pthread_mutex_init(&sp->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sp->wake, &ca);
  pthread_condattr_destroy(&ca);
  if (server_setup(sp, err, errlen) || gpu_setup(sp, err, errlen)) goto fail;
  sp->t0 = ke_now();
  sample_now(sp);
  sp->window_from = ke_now(); /* the phase's requests start now (the first scrape may take a while) */
  if (!sp->easy && !sp->gpu.nvml) return sp; /* nothing to sample: no thread */
  if (pthread_create(&sp->thread, NULL, sampler_main, sp)) {
    snprintf(err, errlen, "cannot start the sampler thread");
    goto fail;
  }
  sp->started = 1;
  return sp;
fail:
  if (o->metrics_csv) discard(&sp->csv, o->metrics_csv);
  if (o->gpu_csv) discard(&sp->gpu_csv, o->gpu_csv);
  sampler_free(sp);
  return NULL;
}

static void server_metrics(const ke_sampler *sp, ke_metrics *m) {
  m->srv_scrapes = sp->scrapes;
  m->srv_failed = sp->failed;
  snprintf(m->srv_unavailable, sizeof m->srv_unavailable, "%s", sp->unavailable);
  double *gauges[][3] = {{&m->srv_running_mean, &m->srv_running_max, NULL},
                         {&m->srv_waiting_mean, &m->srv_waiting_max, &m->srv_waiting_min},
                         {&m->srv_kv_mean, &m->srv_kv_max, NULL}};
  const int gauge_rows[] = {KE_SRV_RUNNING, KE_SRV_WAITING, KE_SRV_KV_USAGE};
  for (int i = 0; i < 3; i++) {
    const server_series *se = &sp->series[gauge_rows[i]];
    *gauges[i][0] = se->seen ? se->sum / se->seen : NAN;
    *gauges[i][1] = se->seen ? se->max : NAN;
    if (gauges[i][2]) *gauges[i][2] = se->inner_min;
  }
  double *counters[] = {&m->srv_preemptions, &m->srv_prefix_queries, &m->srv_prefix_hits, &m->srv_prompt_tokens,
                        &m->srv_generation_tokens};
  const int counter_rows[] = {KE_SRV_PREEMPTIONS, KE_SRV_PREFIX_Q, KE_SRV_PREFIX_H, KE_SRV_PROMPT, KE_SRV_GENERATION};
  for (int i = 0; i < 5; i++) {
    const server_series *se = &sp->series[counter_rows[i]];
    *counters[i] = se->seen >= 2 ? se->increase : NAN;
  }
}

int ke_sampler_stop(ke_sampler *sp, ke_metrics *m, char *err, size_t errlen) {
  if (!sp) return 0;
  if (sp->started) {
    pthread_mutex_lock(&sp->lock);
    sp->stop = 1;
    pthread_cond_signal(&sp->wake);
    pthread_mutex_unlock(&sp->lock);
    pthread_join(sp->thread, NULL);
    sp->final = 1;
    sample_now(sp); /* the phase's end */
  }
  server_metrics(sp, m);
  gpu_metrics(&sp->gpu, m);
  const ke_sampler_opts *o = sp->o;
  int rc = 0;
  char why[512] = "";
  if (sp->csv && sp->scrapes == 0) discard(&sp->csv, o->metrics_csv); /* no metrics: no file */
  if (sp->csv && finish_file(sp->csv, o->metrics_csv, why, sizeof why)) rc = -1;
  if (sp->gpu_csv && finish_file(sp->gpu_csv, o->gpu_csv, why, sizeof why)) rc = -1;
  if (rc) snprintf(err, errlen, "%s", why);
  sp->csv = sp->gpu_csv = NULL;
  sampler_free(sp);
  return rc;
}
