/* trace.c - see trace.h.
 *
 * One pass over each table; aggregation happens in C hash maps keyed on integer ids
 * (names are looked up in StringIds afterwards), which keeps a multi-million-row trace
 * in the time SQLite needs to read it. Semantics follow nsys's own reports:
 *  - kernels: sum of (end - start) of CUPTI_ACTIVITY_KIND_KERNEL, grouped by demangled
 *    name (or short name); CUPTI_ACTIVITY_KIND_GRAPH_TRACE records (whole graphs) add
 *    to gpu_compute_ms; busy time per device is the union of kernel intervals.
 *  - memcpy by copyKind from the fixed CUPTI enum; memset separately.
 *  - OSRT: calls of eventClass 27; waits are the functions in WAIT_FUNCTIONS.
 *  - NVTX: push/pop and start/end ranges (event types 59, 60, 70, 71); the label is
 *    StringIds[textId] or text, prefixed "domain:" when the range is in a named domain
 *    (event type 75 creates domains); unfinished ranges last until the last timestamp
 *    of the table, as in nvtxsum. */
#include "trace.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---------- a small open-addressing map: 64-bit key -> aggregate ---------- */

typedef struct {
  int64_t key;
  int used;
  int64_t total_ns, count;
  int64_t aux;  /* NVTX: the label's StringIds id, or -1 */
  int64_t open; /* NVTX: ranges with no end (their start was subtracted from total) */
  int style;   /* NVTX: 1 PushPop, 2 StartEnd */
  char *label; /* NVTX: owned label when the key came from text */
  int64_t domain, process;
} agg;

typedef struct {
  agg *slots;
  size_t cap, n;
} agg_map;

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static agg *map_get(agg_map *m, int64_t key) {
  if (m->n * 2 >= m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    agg *slots = calloc(cap, sizeof *slots);
    if (!slots) return NULL;
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->slots[i].used) continue;
      size_t j = mix((uint64_t)m->slots[i].key) & (cap - 1);
      while (slots[j].used) j = (j + 1) & (cap - 1);
      slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
  }
  size_t j = mix((uint64_t)key) & (m->cap - 1);
  while (m->slots[j].used && m->slots[j].key != key) j = (j + 1) & (m->cap - 1);
  if (!m->slots[j].used) {
    m->slots[j].used = 1;
    m->slots[j].key = key;
    m->n++;
  }
  return &m->slots[j];
}

static void map_free(agg_map *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->slots[i].label);
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* Entries sorted by total time, largest first (ties: key, for stable output). */
static int by_total_desc(const void *a, const void *b) {
  const agg *x = *(agg *const *)a, *y = *(agg *const *)b;
  if (x->total_ns != y->total_ns) return x->total_ns < y->total_ns ? 1 : -1;
  return (x->key > y->key) - (x->key < y->key);
}

static agg **map_sorted(const agg_map *m) {
  agg **v = malloc((m->n + 1) * sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].used) v[k++] = &m->slots[i];
  qsort(v, k, sizeof *v, by_total_desc);
  return v;
}

/* ---------- schema helpers ---------- */

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *string_lookup;
  kbuf out;
  kbuf missing; /* JSON array items of missing tables */
  char *err;
  size_t errlen;
  int oom; /* an allocation failed: the summary is incomplete and is not returned */
} ctx;

static int has_table(ctx *c, const char *name) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?", -1, &st, NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int found = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return found;
}

/* Column index of `col` in table, by name; -1 when absent. */
static int has_column(ctx *c, const char *table, const char *col) {
  char sql[256];
  snprintf(sql, sizeof sql, "PRAGMA table_info(\"%s\")", table);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
  int found = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    if (name && strcmp(name, col) == 0) found = 1;
  }
  sqlite3_finalize(st);
  return found;
}

static void note_missing(ctx *c, const char *table) {
  if (c->missing.len) kbuf_puts(&c->missing, ", ");
  kbuf_json_string(&c->missing, table, strlen(table));
}

/* The StringIds value of id into buf ("" when unknown). */
static const char *string_of(ctx *c, int64_t id, char *buf, size_t len) {
  buf[0] = '\0';
  if (!c->string_lookup) return buf;
  sqlite3_reset(c->string_lookup);
  sqlite3_bind_int64(c->string_lookup, 1, id);
  if (sqlite3_step(c->string_lookup) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(c->string_lookup, 0);
    if (v) snprintf(buf, len, "%s", v);
  }
  return buf;
}

static void put_ms(kbuf *b, int64_t ns) { kbuf_printf(b, "%.6f", (double)ns / 1e6); }

static void put_key_ms(kbuf *b, const char *key, int64_t ns, int have) {
  kbuf_printf(b, "  \"%s\": ", key);
  if (have) put_ms(b, ns);
  else kbuf_puts(b, "null");
  kbuf_puts(b, ",\n");
}

/* Prepares a SELECT of the given columns; NULL (no error) when the table is absent. */
static sqlite3_stmt *select_from(ctx *c, const char *table, const char *cols, const char *where) {
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT %s FROM \"%s\"%s%s", cols, table, where ? " WHERE " : "", where ? where : "");
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  return st;
}

/* ---------- kernels ---------- */

/* Busy time per device: the union of kernel intervals, in bounded memory.
 *
 * The union needs intervals in start order. Exports list kernels nearly in that order,
 * so rows pass through a min-heap of BUSY_WINDOW intervals and leave it sorted; only a
 * row more than BUSY_WINDOW rows out of place breaks that, and then the union is taken
 * again from SQLite's ORDER BY (its sorter spills to disk rather than memory). */
#define BUSY_WINDOW (1 << 18) /* 6 MB */

typedef struct { int64_t start, end, device; } interval;
typedef struct { int64_t device, start, end, busy; } device_busy;

typedef struct {
  interval *heap;
  size_t n;
  device_busy *dev;
  size_t ndev;
  int64_t last_start; /* of the last interval taken out of the heap */
  int taken, unordered, oom;
} busy_union;

static void union_add(busy_union *u, const interval *iv) {
  if (u->taken && iv->start < u->last_start) u->unordered = 1;
  u->taken = 1;
  u->last_start = iv->start;
  device_busy *d = NULL;
  for (size_t i = 0; i < u->ndev; i++)
    if (u->dev[i].device == iv->device) d = &u->dev[i];
  if (!d) {
    device_busy *nd = realloc(u->dev, (u->ndev + 1) * sizeof *nd);
    if (!nd) { u->oom = 1; return; }
    u->dev = nd;
    d = &u->dev[u->ndev++];
    *d = (device_busy){iv->device, iv->start, iv->end, 0};
    return;
  }
  if (iv->start > d->end) {
    d->busy += d->end - d->start;
    d->start = iv->start;
    d->end = iv->end;
  } else if (iv->end > d->end) {
    d->end = iv->end;
  }
}

static void heap_pop_into_union(busy_union *u) {
  interval top = u->heap[0], last = u->heap[--u->n];
  size_t i = 0;
  for (;;) { /* sift the last element down from the root */
    size_t l = 2 * i + 1, m = i;
    if (l < u->n && u->heap[l].start < last.start) m = l;
    if (l + 1 < u->n && u->heap[l + 1].start < (m == i ? last.start : u->heap[m].start)) m = l + 1;
    if (m == i) break;
    u->heap[i] = u->heap[m];
    i = m;
  }
  if (u->n) u->heap[i] = last;
  union_add(u, &top);
}

static void busy_push(busy_union *u, interval iv) {
  if (u->unordered || u->oom) return; /* the ORDER BY pass will do it */
  if (!u->heap) {
    u->heap = malloc(BUSY_WINDOW * sizeof *u->heap);
    if (!u->heap) { u->oom = 1; return; }
  }
  if (u->n == BUSY_WINDOW) heap_pop_into_union(u);
  size_t i = u->n++;
  while (i > 0 && u->heap[(i - 1) / 2].start > iv.start) {
    u->heap[i] = u->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  u->heap[i] = iv;
}

static int by_device(const void *a, const void *b) {
  const device_busy *x = a, *y = b;
  return (x->device > y->device) - (x->device < y->device);
}

/* Writes "gpu_busy_ms": {"device": ms, ...} sorted by device id. */
static void busy_finish(ctx *c, busy_union *u, const char *table, int dev_col) {
  while (u->n && !u->unordered) heap_pop_into_union(u);
  if (u->unordered && !u->oom) {
    u->ndev = 0;
    u->taken = u->unordered = 0;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT start, end, %s FROM \"%s\" ORDER BY 3, 1", dev_col ? "deviceId" : "0", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
        interval iv = {sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)};
        union_add(u, &iv);
      }
    }
    sqlite3_finalize(st);
  }
  if (u->oom) c->oom = 1;
  qsort(u->dev, u->ndev, sizeof *u->dev, by_device);
  kbuf *b = &c->out;
  kbuf_puts(b, "  \"gpu_busy_ms\": {");
  for (size_t i = 0; i < u->ndev; i++) {
    kbuf_printf(b, "%s\"%lld\": ", i ? ", " : "", (long long)u->dev[i].device);
    put_ms(b, u->dev[i].busy + u->dev[i].end - u->dev[i].start);
  }
  kbuf_puts(b, "},\n");
  free(u->heap);
  free(u->dev);
}

static int kernels(ctx *c, const ke_trace_opts *o) {
  kbuf *b = &c->out;
  const char *T = "CUPTI_ACTIVITY_KIND_KERNEL";
  int have_k = has_table(c, T);
  int have_g = has_table(c, "CUPTI_ACTIVITY_KIND_GRAPH_TRACE");
  if (!have_k) note_missing(c, T);
  if (!have_k && !have_g) {
    kbuf_puts(b, "  \"gpu_compute_ms\": null,\n  \"kernel_ms\": null,\n  \"kernel_count\": null,\n"
                 "  \"graph_trace_ms\": null,\n  \"gpu_busy_ms\": null,\n  \"top_kernels\": [],\n");
    return 0;
  }
  const char *name_col = o->short_kernel_names ? "shortName" : "demangledName";
  if (have_k && !has_column(c, T, name_col)) name_col = has_column(c, T, "demangledName") ? "demangledName" : "shortName";
  agg_map names = {0};
  busy_union busy = {0};
  int64_t kernel_ns = 0, count = 0, graph_ns = 0, graph_count = 0;
  int dev_col = have_k && has_column(c, T, "deviceId");
  if (have_k) {
    char cols[128];
    snprintf(cols, sizeof cols, "start, end, %s, %s", dev_col ? "deviceId" : "0", name_col);
    sqlite3_stmt *st = select_from(c, T, cols, NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      int64_t s = sqlite3_column_int64(st, 0), e = sqlite3_column_int64(st, 1);
      int64_t d = sqlite3_column_int64(st, 2), name = sqlite3_column_int64(st, 3);
      agg *a = map_get(&names, name);
      if (!a) {
        c->oom = 1;
        break;
      }
      a->total_ns += e - s;
      a->count++;
      kernel_ns += e - s;
      count++;
      busy_push(&busy, (interval){s, e, d});
    }
    sqlite3_finalize(st);
  }
  if (have_g) {
    sqlite3_stmt *st = select_from(c, "CUPTI_ACTIVITY_KIND_GRAPH_TRACE", "start, end", NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      graph_ns += sqlite3_column_int64(st, 1) - sqlite3_column_int64(st, 0);
      graph_count++;
    }
    sqlite3_finalize(st);
  }
  put_key_ms(b, "gpu_compute_ms", kernel_ns + graph_ns, 1);
  put_key_ms(b, "kernel_ms", kernel_ns, have_k);
  kbuf_printf(b, "  \"kernel_count\": %lld,\n", (long long)count);
  put_key_ms(b, "graph_trace_ms", graph_ns, have_g);
  kbuf_printf(b, "  \"graph_trace_count\": %lld,\n", (long long)graph_count);
  busy_finish(c, &busy, T, dev_col);
  kbuf_puts(b, "  \"top_kernels\": [");
  agg **sorted = map_sorted(&names);
  for (size_t i = 0; sorted && i < names.n && (int)i < o->top_kernels; i++) {
    char name[4096];
    string_of(c, sorted[i]->key, name, sizeof name);
    kbuf_puts(b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
    kbuf_json_string(b, name, strlen(name));
    kbuf_puts(b, ", \"total_ms\": ");
    put_ms(b, sorted[i]->total_ns);
    kbuf_printf(b, ", \"percent\": %.6f, \"count\": %lld}",
                kernel_ns ? 100.0 * (double)sorted[i]->total_ns / (double)kernel_ns : 0.0,
                (long long)sorted[i]->count);
  }
  kbuf_puts(b, names.n ? "\n  ],\n" : "],\n");
  free(sorted);
  map_free(&names);
  return 0;
}

/* ---------- memcpy and memset ---------- */

static const char *const COPY_KINDS[] = {"Unknown", "HtoD", "DtoH", "HtoA", "AtoH", "AtoA",
                                         "AtoD", "DtoA", "DtoD", "HtoH", "PtoP"};

static void memory(ctx *c) {
  kbuf *b = &c->out;
  const char *T = "CUPTI_ACTIVITY_KIND_MEMCPY";
  if (!has_table(c, T)) {
    note_missing(c, T);
    kbuf_puts(b, "  \"memcpy_ms\": null,\n  \"memcpy_by_kind\": null,\n");
  } else {
    int64_t ns[11] = {0}, bytes[11] = {0}, count[11] = {0}, total = 0;
    sqlite3_stmt *st = select_from(c, T, "start, end, bytes, copyKind", NULL);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      int64_t d = sqlite3_column_int64(st, 1) - sqlite3_column_int64(st, 0);
      int64_t k = sqlite3_column_int64(st, 3);
      if (k < 0 || k > 10) k = 0;
      ns[k] += d;
      bytes[k] += sqlite3_column_int64(st, 2);
      count[k]++;
      total += d;
    }
    sqlite3_finalize(st);
    put_key_ms(b, "memcpy_ms", total, 1);
    kbuf_puts(b, "  \"memcpy_by_kind\": {");
    int first = 1;
    for (int k = 0; k <= 10; k++) {
      if (!count[k]) continue;
      kbuf_printf(b, "%s\n    \"%s\": {\"ms\": ", first ? "" : ",", COPY_KINDS[k]);
      put_ms(b, ns[k]);
      kbuf_printf(b, ", \"bytes\": %lld, \"count\": %lld}", (long long)bytes[k], (long long)count[k]);
      first = 0;
    }
    kbuf_puts(b, first ? "},\n" : "\n  },\n");
  }
  T = "CUPTI_ACTIVITY_KIND_MEMSET";
  if (!has_table(c, T)) {
    note_missing(c, T);
    kbuf_puts(b, "  \"memset_ms\": null,\n  \"memset_bytes\": null,\n  \"memset_count\": null,\n");
    return;
  }
  int64_t ns = 0, bytes = 0, count = 0;
  sqlite3_stmt *st = select_from(c, T, "start, end, bytes", NULL);
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    ns += sqlite3_column_int64(st, 1) - sqlite3_column_int64(st, 0);
    bytes += sqlite3_column_int64(st, 2);
    count++;
  }
  sqlite3_finalize(st);
  put_key_ms(b, "memset_ms", ns, 1);
  kbuf_printf(b, "  \"memset_bytes\": %lld,\n  \"memset_count\": %lld,\n", (long long)bytes, (long long)count);
}

/* ---------- OS runtime ---------- */

/* OS-runtime functions that wait or poll: time in them is time a thread spent idle. */
static const char *const WAIT_FUNCTIONS[] = {
    "poll", "ppoll", "select", "pselect", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "futex", "sem_wait", "sem_timedwait", "sem_clockwait", "pthread_cond_wait",
    "pthread_cond_timedwait", "pthread_cond_clockwait", "pthread_mutex_lock",
    "pthread_mutex_timedlock", "pthread_mutex_clocklock", "pthread_rwlock_rdlock",
    "pthread_rwlock_wrlock", "pthread_rwlock_timedrdlock", "pthread_rwlock_timedwrlock",
    "pthread_spin_lock", "pthread_join", "pthread_timedjoin_np", "pthread_barrier_wait",
    "sleep", "usleep", "nanosleep", "clock_nanosleep", "wait", "waitpid", "waitid", "wait3",
    "wait4", "sigwait", "sigwaitinfo", "sigtimedwait", "sigsuspend", "pause", "accept",
    "accept4", "msgrcv", "mq_receive", "mq_timedreceive", "io_getevents", NULL};

/* Matches "name", "__name", "name@GLIBC_x", "name64". */
static int is_wait_function(const char *name) {
  while (*name == '_') name++;
  size_t n = strcspn(name, "@");
  for (size_t i = 0; WAIT_FUNCTIONS[i]; i++) {
    size_t w = strlen(WAIT_FUNCTIONS[i]);
    if (strncmp(name, WAIT_FUNCTIONS[i], w) != 0) continue;
    if (n == w || (n == w + 2 && strncmp(name + w, "64", 2) == 0)) return 1;
  }
  return 0;
}

static void osrt(ctx *c) {
  kbuf *b = &c->out;
  const char *T = "OSRT_API";
  if (!has_table(c, T)) {
    note_missing(c, T);
    kbuf_puts(b, "  \"osrt_wait_ms\": null,\n  \"osrt_total_ms\": null,\n  \"osrt_calls\": null,\n"
                 "  \"osrt_top_waits\": [],\n");
    return;
  }
  int has_class = has_column(c, T, "eventClass");
  sqlite3_stmt *st = select_from(c, T, "start, end, nameId", has_class ? "eventClass = 27" : NULL);
  agg_map fns = {0};
  int64_t total = 0, calls = 0;
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    int64_t d = sqlite3_column_int64(st, 1) - sqlite3_column_int64(st, 0);
    agg *a = map_get(&fns, sqlite3_column_int64(st, 2));
    if (!a) {
      c->oom = 1;
      break;
    }
    a->total_ns += d;
    a->count++;
    total += d;
    calls++;
  }
  sqlite3_finalize(st);
  agg **sorted = map_sorted(&fns);
  int64_t wait = 0;
  kbuf top = {0};
  int listed = 0;
  for (size_t i = 0; sorted && i < fns.n; i++) {
    char name[512];
    string_of(c, sorted[i]->key, name, sizeof name);
    if (!is_wait_function(name)) continue;
    wait += sorted[i]->total_ns;
    if (listed++ >= 10) continue;
    kbuf_puts(&top, listed > 1 ? ",\n    {\"name\": " : "\n    {\"name\": ");
    kbuf_json_string(&top, name, strlen(name));
    kbuf_puts(&top, ", \"total_ms\": ");
    put_ms(&top, sorted[i]->total_ns);
    kbuf_printf(&top, ", \"calls\": %lld}", (long long)sorted[i]->count);
  }
  put_key_ms(b, "osrt_wait_ms", wait, 1);
  put_key_ms(b, "osrt_total_ms", total, 1);
  kbuf_printf(b, "  \"osrt_calls\": %lld,\n  \"osrt_top_waits\": [%s%s],\n", (long long)calls,
              top.data ? top.data : "", listed ? "\n  " : "");
  kbuf_free(&top);
  free(sorted);
  map_free(&fns);
}

/* ---------- NVTX ---------- */

#define NVTX_DOMAIN_CREATE 75
#define PROCESS_MASK 0x0000FFFFFF000000ll

static uint64_t hash_str(const char *s, uint64_t h) {
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
  return h;
}

typedef struct { int64_t id, process; char *name; } domain;

static void nvtx(ctx *c, const ke_trace_opts *o) {
  kbuf *b = &c->out;
  const char *T = "NVTX_EVENTS";
  if (!has_table(c, T)) {
    note_missing(c, T);
    kbuf_puts(b, "  \"nvtx_ranges\": null,\n  \"nvtx_phases\": {");
    for (size_t i = 0; o->phases && o->phases[i]; i++) {
      kbuf_puts(b, i ? ", " : "");
      kbuf_json_string(b, o->phases[i], strlen(o->phases[i]));
      kbuf_puts(b, ": null");
    }
    kbuf_puts(b, "},\n");
    return;
  }
  int has_text_id = has_column(c, T, "textId"), has_domain = has_column(c, T, "domainId");
  char cols[160];
  snprintf(cols, sizeof cols, "start, end, eventType, text, %s, %s, globalTid", has_text_id ? "textId" : "NULL",
           has_domain ? "domainId" : "0");
  sqlite3_stmt *st = select_from(c, T, cols, NULL);
  agg_map ranges = {0};
  domain *domains = NULL;
  size_t ndomains = 0;
  int64_t max_ts = 0;
  while (st && sqlite3_step(st) == SQLITE_ROW) {
    int64_t s = sqlite3_column_int64(st, 0);
    int end_null = sqlite3_column_type(st, 1) == SQLITE_NULL;
    int64_t e = end_null ? 0 : sqlite3_column_int64(st, 1);
    int type = sqlite3_column_int(st, 2);
    const char *text = (const char *)sqlite3_column_text(st, 3);
    int text_id_null = sqlite3_column_type(st, 4) == SQLITE_NULL;
    int64_t text_id = sqlite3_column_int64(st, 4), dom = sqlite3_column_int64(st, 5);
    int64_t process = sqlite3_column_int64(st, 6) & PROCESS_MASK;
    if (s > max_ts) max_ts = s;
    if (e > max_ts) max_ts = e;
    if (type == NVTX_DOMAIN_CREATE) {
      domain *nd = realloc(domains, (ndomains + 1) * sizeof *nd);
      if (!nd) break;
      domains = nd;
      domains[ndomains].id = dom;
      domains[ndomains].process = process;
      domains[ndomains].name = strdup(text ? text : "");
      ndomains++;
      continue;
    }
    int style = (type == 59 || type == 70) ? 1 : (type == 60 || type == 71) ? 2 : 0;
    if (!style) continue;
    /* key: (domain, process, label id or text, style) */
    uint64_t h = mix((uint64_t)dom * 31 + (uint64_t)process) ^ (uint64_t)style;
    h = text_id_null ? hash_str(text ? text : "", h ^ 0x7e7e) : mix(h ^ (uint64_t)text_id);
    agg *a = map_get(&ranges, (int64_t)h);
    if (!a) {
      c->oom = 1;
      break;
    }
    if (!a->count) {
      a->style = style;
      a->domain = dom;
      a->process = process;
      a->aux = text_id_null ? -1 : text_id;
      if (text_id_null) a->label = strdup(text ? text : "");
    }
    a->count++;
    if (end_null) {
      a->total_ns -= s; /* ends at the last timestamp, added once it is known */
      a->open++;
    } else {
      a->total_ns += e - s;
    }
  }
  sqlite3_finalize(st);
  int64_t all_ns = 0;
  for (size_t i = 0; i < ranges.cap; i++) {
    agg *a = &ranges.slots[i];
    if (!a->used) continue;
    a->total_ns += a->open * max_ts;
    all_ns += a->total_ns;
  }
  agg **sorted = map_sorted(&ranges);
  /* resolve labels */
  typedef struct { char name[1024]; const agg *a; } named;
  named *nm = calloc(ranges.n + 1, sizeof *nm);
  for (size_t i = 0; sorted && nm && i < ranges.n; i++) {
    const agg *a = sorted[i];
    char label[1024];
    if (a->label) snprintf(label, sizeof label, "%s", a->label);
    else string_of(c, a->aux, label, sizeof label);
    const char *dname = NULL;
    for (size_t d = 0; d < ndomains; d++)
      if (domains[d].id == a->domain && domains[d].process == a->process && a->domain != 0) dname = domains[d].name;
    if (dname) snprintf(nm[i].name, sizeof nm[i].name, "%s:%s", dname, label);
    else snprintf(nm[i].name, sizeof nm[i].name, "%s", label);
    nm[i].a = a;
  }
  kbuf_puts(b, "  \"nvtx_ranges\": [");
  for (size_t i = 0; nm && i < ranges.n; i++) {
    const agg *a = nm[i].a;
    kbuf_puts(b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
    kbuf_json_string(b, nm[i].name, strlen(nm[i].name));
    kbuf_printf(b, ", \"style\": \"%s\", \"total_ms\": ", a->style == 1 ? "PushPop" : "StartEnd");
    put_ms(b, a->total_ns);
    kbuf_printf(b, ", \"count\": %lld, \"mean_ms\": %.6f, \"percent\": %.6f}", (long long)a->count,
                (double)a->total_ns / 1e6 / (double)a->count,
                all_ns ? 100.0 * (double)a->total_ns / (double)all_ns : 0.0);
  }
  kbuf_puts(b, ranges.n ? "\n  ],\n" : "],\n");
  /* phases: every range whose label (with or without its domain) is the phase name */
  kbuf_puts(b, "  \"nvtx_phases\": {");
  for (size_t p = 0; o->phases && o->phases[p]; p++) {
    const char *want = o->phases[p];
    int64_t total = 0, count = 0;
    for (size_t i = 0; nm && i < ranges.n; i++) {
      const char *colon = strchr(nm[i].name, ':');
      if (strcmp(nm[i].name, want) == 0 || (colon && strcmp(colon + 1, want) == 0)) {
        total += nm[i].a->total_ns;
        count += nm[i].a->count;
      }
    }
    kbuf_puts(b, p ? ",\n    " : "\n    ");
    kbuf_json_string(b, want, strlen(want));
    if (!count) {
      kbuf_puts(b, ": null");
      continue;
    }
    kbuf_puts(b, ": {\"total_ms\": ");
    put_ms(b, total);
    kbuf_printf(b, ", \"count\": %lld, \"mean_ms\": %.6f, \"percent\": %.6f}", (long long)count,
                (double)total / 1e6 / (double)count, all_ns ? 100.0 * (double)total / (double)all_ns : 0.0);
  }
  kbuf_puts(b, o->phases && o->phases[0] ? "\n  },\n" : "},\n");
  free(nm);
  free(sorted);
  for (size_t d = 0; d < ndomains; d++) free(domains[d].name);
  free(domains);
  map_free(&ranges);
}

/* ---------- metadata ---------- */

static void metadata(ctx *c) {
  kbuf *b = &c->out;
  /* older exports: EXPORT_META_DATA(name, value); newer: META_DATA_EXPORT(name, value) */
  const char *tables[] = {"META_DATA_EXPORT", "EXPORT_META_DATA"};
  for (size_t i = 0; i < 2; i++) {
    if (!has_table(c, tables[i])) continue;
    sqlite3_stmt *st = select_from(c, tables[i], "name, value", NULL);
    char product[128] = "", schema[64] = "";
    while (st && sqlite3_step(st) == SQLITE_ROW) {
      const char *n = (const char *)sqlite3_column_text(st, 0);
      const char *v = (const char *)sqlite3_column_text(st, 1);
      if (!n || !v) continue;
      if (strcmp(n, "EXPORT_PRODUCT_VERSION") == 0) snprintf(product, sizeof product, "%s", v);
      if (strcmp(n, "EXPORT_SCHEMA_VERSION") == 0) snprintf(schema, sizeof schema, "%s", v);
    }
    sqlite3_finalize(st);
    kbuf_puts(b, "  \"nsys_version\": ");
    if (product[0]) kbuf_json_string(b, product, strlen(product));
    else kbuf_puts(b, "null");
    kbuf_puts(b, ",\n  \"export_schema\": ");
    if (schema[0]) kbuf_json_string(b, schema, strlen(schema));
    else kbuf_puts(b, "null");
    kbuf_puts(b, ",\n");
    return;
  }
  kbuf_puts(b, "  \"nsys_version\": null,\n  \"export_schema\": null,\n");
}

int ke_trace_summary(const char *sqlite_path, const ke_trace_opts *opts, char **json_out, char *err,
                     size_t errlen) {
  *json_out = NULL;
  ke_trace_opts o = *opts;
  if (o.top_kernels <= 0) o.top_kernels = 5;
  /* read-only and immutable: never takes locks or writes journals next to a report */
  kbuf uri = {0};
  kbuf_puts(&uri, "file:");
  for (const char *p = sqlite_path; *p; p++) {
    if (*p == '%' || *p == '?' || *p == '#') kbuf_printf(&uri, "%%%02X", (unsigned char)*p);
    else kbuf_append(&uri, p, 1);
  }
  kbuf_puts(&uri, "?immutable=1");
  ctx c;
  memset(&c, 0, sizeof c);
  c.err = err;
  c.errlen = errlen;
  int rc = sqlite3_open_v2(uri.data, &c.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
  kbuf_free(&uri);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open '%s': %s", sqlite_path, c.db ? sqlite3_errmsg(c.db) : "out of memory");
    sqlite3_close(c.db);
    return -1;
  }
  if (sqlite3_exec(c.db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "'%s' is not an SQLite database: %s", sqlite_path, sqlite3_errmsg(c.db));
    sqlite3_close(c.db);
    return -1;
  }
  if (has_table(&c, "StringIds"))
    sqlite3_prepare_v2(c.db, "SELECT value FROM StringIds WHERE id = ?", -1, &c.string_lookup, NULL);
  kbuf *b = &c.out;
  kbuf_puts(b, "{\n  \"source\": ");
  kbuf_json_string(b, sqlite_path, strlen(sqlite_path));
  kbuf_puts(b, ",\n  \"ok\": true,\n");
  metadata(&c);
  kernels(&c, &o);
  memory(&c);
  osrt(&c);
  nvtx(&c, &o);
  kbuf_printf(b, "  \"missing_tables\": [%s]\n}\n", c.missing.data ? c.missing.data : "");
  sqlite3_finalize(c.string_lookup);
  sqlite3_close(c.db);
  kbuf_free(&c.missing);
  if (!b->data || c.oom) {
    snprintf(err, errlen, "out of memory summarizing '%s'", sqlite_path);
    kbuf_free(b);
    return -1;
  }
  *json_out = b->data;
  return 0;
}
