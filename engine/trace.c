/* trace.c - see trace.h.
 *
 * One pass over each table; aggregation happens in C hash maps keyed on integer ids
 * (names are looked up in StringIds afterwards), which keeps a multi-million-row trace
 * in the time SQLite needs to read it. Semantics follow nsys's own reports:
 *  - kernels: sum of (end - start) of CUPTI_ACTIVITY_KIND_KERNEL, grouped by demangled
 *    name (or short name); CUPTI_ACTIVITY_KIND_GRAPH_TRACE records (whole graphs, traced
 *    with --cuda-graph-trace=graph) add to gpu_compute_ms and appear in the top list as
 *    "[CUDA graph N]"; busy time per device is the union of kernel and graph intervals.
 *  - memcpy by copyKind from the fixed CUPTI enum; memset separately.
 *  - OSRT: calls of eventClass 27; waits are the functions in WAIT_FUNCTIONS.
 *  - NVTX: push/pop and start/end ranges (event types 59, 60, 70, 71); the label is
 *    StringIds[textId] or text, prefixed "domain:" when the range is in a named domain
 *    (event type 75 creates domains); unfinished ranges last until the last timestamp
 *    of the table, as in nvtxsum.
 *  - CUDA API: CUPTI_ACTIVITY_KIND_RUNTIME calls by function name.
 *  - the machine: TARGET_INFO_GPU rows and a few TARGET_INFO_SYSTEM_ENV values (absent
 *    tables are no information, not missing data).
 * A row that cannot be summed (end before start, a duration or byte count that would
 * overflow its 64-bit total, a negative byte count) is skipped and counted: the table's
 * entry in `unreadable` says how many and why, and its totals are of the other rows. A
 * name id with no StringIds row is named "[unknown string id N]". */
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "json.h"
#include "stats.h"

/* ---------- a small open-addressing map: 64-bit key -> aggregate ---------- */

/* A kernel's (or whole graph's) time on one device. */
typedef struct {
  int64_t device, total_ns, count, min_ns, max_ns;
} dev_split;

typedef struct {
  int64_t key;
  int used;
  int64_t total_ns, count;
  int64_t aux; /* NVTX: the label's StringIds id, or -1 */
  int style;   /* NVTX: 1 PushPop, 2 StartEnd (0 until the entry is set up) */
  char *label; /* NVTX: owned label when the key came from text */
  int64_t domain, process;
  int64_t min_ns, max_ns; /* kernels and CUDA API calls: the shortest and longest one */
  dev_split *devs;        /* kernels and whole graphs: the same per device */
  size_t n_devs;
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
  for (size_t i = 0; i < m->cap; i++) {
    free(m->slots[i].label);
    free(m->slots[i].devs);
  }
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

/* Adds one event of duration d to an aggregate (total, count, shortest, longest). */
static void add_duration(agg *a, int64_t d) {
  if (!a->count || d < a->min_ns) a->min_ns = d;
  if (!a->count || d > a->max_ns) a->max_ns = d;
  a->total_ns += d;
  a->count++;
}

/* Adds one event of duration d on `device` to an aggregate's split by device. */
static int add_device_duration(agg *a, int64_t device, int64_t d) {
  dev_split *x = NULL;
  for (size_t i = 0; i < a->n_devs; i++)
    if (a->devs[i].device == device) x = &a->devs[i];
  if (!x) {
    dev_split *n = realloc(a->devs, (a->n_devs + 1) * sizeof *n);
    if (!n) return -1;
    a->devs = n;
    x = &n[a->n_devs++];
    *x = (dev_split){device, 0, 0, 0, 0};
  }
  if (!x->count || d < x->min_ns) x->min_ns = d;
  if (!x->count || d > x->max_ns) x->max_ns = d;
  x->total_ns += d;
  x->count++;
  return 0;
}

/* ---------- reading tables, with every failure recorded ---------- */

/* The first start and last end of the kernels and whole graphs summed on one device. */
typedef struct {
  int64_t device, start, end;
} device_span;

/* An entry of the top list: a kernel's name id, or a whole graph's id. */
typedef struct {
  int64_t key;
  int graph;
} top_key;

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *string_lookup;
  ke_trace_summary *s;
  device_span *spans; /* GPU metrics windows */
  size_t n_spans;
  top_key *top; /* the keys of s->top_kernels, in order */
  char fatal[512]; /* set when the file as a whole cannot be read */
  int oom;         /* an allocation failed: the summary is not returned */
} ctx;

/* Failures that concern the file, not one table: nothing in it can be trusted. */
static int is_fatal(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT: case SQLITE_NOTADB: case SQLITE_IOERR: case SQLITE_BUSY: case SQLITE_LOCKED:
    case SQLITE_NOMEM: case SQLITE_CANTOPEN: case SQLITE_PERM: case SQLITE_INTERRUPT: case SQLITE_AUTH:
      return 1;
    default:
      return 0;
  }
}

static void set_fatal(ctx *c, int rc) {
  if (c->fatal[0]) return;
  const char *hint = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED
                         ? " (is another program still writing it?)" : "";
  snprintf(c->fatal, sizeof c->fatal, "%s%s", sqlite3_errmsg(c->db), hint);
}

static char *dup_str(ctx *c, const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) c->oom = 1;
  return d;
}

/* Records that `table` could not be read (its section is left out), or that rows of it
 * were skipped; a second reason for the same table is added to the first ("; "). */
static void problem(ctx *c, const char *table, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(ctx *c, const char *table, const char *fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  ke_trace_summary *s = c->s;
  for (size_t i = 0; i < s->n_unreadable; i++) {
    if (!s->unreadable[i].table || !s->unreadable[i].reason || strcmp(s->unreadable[i].table, table) != 0) continue;
    size_t len = strlen(s->unreadable[i].reason) + strlen(reason) + 3;
    char *both = malloc(len);
    if (!both) { c->oom = 1; return; }
    snprintf(both, len, "%s; %s", s->unreadable[i].reason, reason);
    free(s->unreadable[i].reason);
    s->unreadable[i].reason = both;
    return;
  }
  ke_trace_problem *n = realloc(s->unreadable, (s->n_unreadable + 1) * sizeof *n);
  if (!n) { c->oom = 1; return; }
  s->unreadable = n;
  n[s->n_unreadable].table = dup_str(c, table);
  n[s->n_unreadable].reason = dup_str(c, reason);
  s->n_unreadable++;
}

static int has_table(ctx *c, const char *name) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?", -1,
                              &st, NULL);
  if (rc != SQLITE_OK) { set_fatal(c, rc); return 0; }
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) set_fatal(c, rc);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW;
}

/* 1 when `table` has a column named `col`, else 0. */
static int has_column(ctx *c, const char *table, const char *col) {
  char sql[256];
  snprintf(sql, sizeof sql, "PRAGMA table_info(\"%s\")", table);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) { set_fatal(c, rc); return 0; }
  int found = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    if (name && strcmp(name, col) == 0) found = 1;
  }
  if (rc != SQLITE_DONE) set_fatal(c, rc);
  sqlite3_finalize(st);
  return found;
}

static void note_missing(ctx *c, const char *table) {
  ke_trace_summary *s = c->s;
  const char **n = realloc(s->missing_tables, (s->n_missing + 1) * sizeof *n);
  if (!n) { c->oom = 1; return; }
  s->missing_tables = n;
  n[s->n_missing++] = table;
}

/* The StringIds value of id into buf; "[unknown string id N]" when StringIds has no
 * such row (or no usable table at all), or its value is NULL. */
static const char *string_of(ctx *c, int64_t id, char *buf, size_t len) {
  snprintf(buf, len, "[unknown string id %lld]", (long long)id);
  if (!c->string_lookup) return buf;
  sqlite3_reset(c->string_lookup);
  sqlite3_bind_int64(c->string_lookup, 1, id);
  int rc = sqlite3_step(c->string_lookup);
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(c->string_lookup, 0);
    if (v) snprintf(buf, len, "%s", v);
  } else if (rc != SQLITE_DONE) {
    set_fatal(c, rc);
  }
  return buf;
}

/* Milliseconds (and percents, means) rounded to 6 decimals, exactly as "%.6f" prints
 * them: the value a reader of the printed number gets back. */
static double round6(double x) {
  if (!isfinite(x)) return x;
  char b[64];
  snprintf(b, sizeof b, "%.6f", x);
  return strtod(b, NULL);
}

static double ms_of(int64_t ns) { return round6((double)ns / 1e6); }

static double percent_of(int64_t part, int64_t whole) {
  return whole ? round6(100.0 * (double)part / (double)whole) : 0.0;
}

/* An item's total, count, mean, shortest and longest from its aggregate. */
static void set_timing(ke_trace_item *it, const agg *a) {
  it->total_ms = ms_of(a->total_ns);
  it->count = a->count;
  it->mean_ms = a->count ? round6((double)a->total_ns / 1e6 / (double)a->count) : 0.0;
  it->min_ms = ms_of(a->min_ns);
  it->max_ms = ms_of(a->max_ns);
}

/* A SELECT over one table, row by row, with the types of its values checked. */
typedef struct {
  ctx *c;
  const char *table;
  sqlite3_stmt *st;
  long long row;
} reader;

/* SELECT cols FROM table [tail]: 0, or -1 when the table cannot be read (recorded: a
 * problem, or fatal). */
static int reader_open(ctx *c, reader *r, const char *table, const char *cols, const char *tail) {
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT %s FROM \"%s\"%s%s", cols, table, tail ? " " : "", tail ? tail : "");
  memset(r, 0, sizeof *r);
  r->c = c;
  r->table = table;
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &r->st, NULL);
  if (rc == SQLITE_OK) return 0;
  if (is_fatal(rc)) set_fatal(c, rc);
  else problem(c, table, "%s", sqlite3_errmsg(c->db));
  sqlite3_finalize(r->st);
  r->st = NULL;
  return -1;
}

/* 1 for a row, 0 at the end, -1 on failure (recorded). */
static int reader_next(reader *r) {
  int rc = sqlite3_step(r->st);
  if (rc == SQLITE_ROW) { r->row++; return 1; }
  if (rc == SQLITE_DONE) return 0;
  if (is_fatal(rc)) set_fatal(r->c, rc);
  else problem(r->c, r->table, "%s", sqlite3_errmsg(r->c->db));
  return -1;
}

static const char *type_name(int t) {
  return t == SQLITE_FLOAT ? "a real number" : t == SQLITE_TEXT ? "text" : t == SQLITE_BLOB ? "a blob" : "NULL";
}

/* Column i of the current row as an integer. NULL is allowed only when is_null is
 * given (it is then set); any other type makes the table unreadable: -1. */
static int reader_int(reader *r, int i, int64_t *out, int *is_null) {
  int t = sqlite3_column_type(r->st, i);
  if (is_null) *is_null = t == SQLITE_NULL;
  if (t == SQLITE_INTEGER || (t == SQLITE_NULL && is_null)) {
    *out = t == SQLITE_INTEGER ? sqlite3_column_int64(r->st, i) : 0;
    return 0;
  }
  problem(r->c, r->table, "column '%s' holds %s in row %lld, not an integer", sqlite3_column_name(r->st, i),
          type_name(t), r->row);
  return -1;
}

/* Columns 0..n-1 of the current row, none of them NULL. */
static int reader_ints(reader *r, int n, int64_t *out) {
  for (int i = 0; i < n; i++)
    if (reader_int(r, i, &out[i], NULL)) return -1;
  return 0;
}

static void reader_close(reader *r) {
  sqlite3_finalize(r->st);
  r->st = NULL;
}

/* ---------- rows that cannot be summed: counted, never added ---------- */

/* Why a row was skipped; a row counts once, under the first cause that applies in this
 * order (the order of the reason's parts). */
enum { SKIP_BACKWARDS, SKIP_OVERFLOW, SKIP_NEGATIVE_BYTES, SKIP_BYTES_OVERFLOW, SKIP_CAUSES };

typedef struct {
  int64_t n[SKIP_CAUSES];
} skipped_rows;

/* A row's duration end - start into *d when it can be added to a total that is now
 * `total` (>= 0) without passing INT64_MAX: 0; otherwise -1, the row counted in k. */
static int row_duration(skipped_rows *k, int64_t start, int64_t end, int64_t total, int64_t *d) {
  if (end < start) {
    k->n[SKIP_BACKWARDS]++;
    return -1;
  }
  if ((start < 0 && end > INT64_MAX + start) || end - start > INT64_MAX - total) {
    k->n[SKIP_OVERFLOW]++;
    return -1;
  }
  *d = end - start;
  return 0;
}

/* 0 when a row's byte count can be added to a total that is now `total`; else -1. */
static int row_bytes(skipped_rows *k, int64_t bytes, int64_t total) {
  if (bytes < 0) {
    k->n[SKIP_NEGATIVE_BYTES]++;
    return -1;
  }
  if (bytes > INT64_MAX - total) {
    k->n[SKIP_BYTES_OVERFLOW]++;
    return -1;
  }
  return 0;
}

/* Counts of skipped things as `table`'s entry in `unreadable`: "skipped 3 rows with end
 * before start, 1 row whose duration overflows" (what[i]: singular, plural). Nothing
 * when none was skipped. */
static void report_counts(ctx *c, const char *table, const int64_t *n, const char *const (*what)[2], int k) {
  char reason[512];
  size_t used = 0;
  for (int i = 0; i < k; i++) {
    if (!n[i] || used >= sizeof reason) continue;
    int w = snprintf(reason + used, sizeof reason - used, "%s%lld %s", used ? ", " : "skipped ", (long long)n[i],
                     what[i][n[i] != 1]);
    if (w > 0) used += (size_t)w;
  }
  if (used) problem(c, table, "%s", reason);
}

/* The skipped rows of `table`, as its `unreadable` entry. */
static void report_skipped(ctx *c, const char *table, const skipped_rows *k) {
  static const char *const what[SKIP_CAUSES][2] = {
      {"row with end before start", "rows with end before start"},
      {"row whose duration overflows", "rows whose durations overflow"},
      {"row with a negative byte count", "rows with a negative byte count"},
      {"row whose byte count overflows", "rows whose byte counts overflow"}};
  report_counts(c, table, k->n, what, SKIP_CAUSES);
}

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
  interval *skipped; /* rows not summed although end >= start (overflow), for the ORDER BY pass */
  size_t n_skipped, cap_skipped;
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

/* A row that was not summed (its duration overflows a total): the ORDER BY pass, which
 * reads every row again, leaves it out too. */
static void busy_skip(busy_union *u, interval iv) {
  if (u->n_skipped == u->cap_skipped) {
    size_t cap = u->cap_skipped ? 2 * u->cap_skipped : 16;
    interval *n = realloc(u->skipped, cap * sizeof *n);
    if (!n) { u->oom = 1; return; }
    u->skipped = n;
    u->cap_skipped = cap;
  }
  u->skipped[u->n_skipped++] = iv;
}

static void busy_free(busy_union *u) {
  free(u->heap);
  free(u->dev);
  free(u->skipped);
}

/* Intervals in the ORDER BY pass's order: device, start, end. */
static int by_position(const void *a, const void *b) {
  const interval *x = a, *y = b;
  if (x->device != y->device) return x->device < y->device ? -1 : 1;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return (x->end > y->end) - (x->end < y->end);
}

static int by_device(const void *a, const void *b) {
  const device_busy *x = a, *y = b;
  return (x->device > y->device) - (x->device < y->device);
}

/* Where the kernel (and graph) intervals come from, for the ORDER BY pass. */
typedef struct {
  int have_k, have_g, k_dev, g_dev;
} busy_source;

static void busy_select(const busy_source *b, char *sql, size_t len) {
  char k[160] = "", g[160] = "";
  if (b->have_k)
    snprintf(k, sizeof k, "SELECT start, end, %s FROM CUPTI_ACTIVITY_KIND_KERNEL", b->k_dev ? "deviceId" : "0");
  if (b->have_g)
    snprintf(g, sizeof g, "SELECT start, end, %s FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE", b->g_dev ? "deviceId" : "0");
  snprintf(sql, len, "%s%s%s ORDER BY 3, 1, 2", k, b->have_k && b->have_g ? " UNION ALL " : "", g);
}

/* The union again from SQLite's ORDER BY, for rows too far out of order for the heap. */
static int busy_sorted_pass(ctx *c, busy_union *u, const busy_source *b) {
  u->ndev = 0;
  u->taken = u->unordered = 0;
  char sql[512];
  busy_select(b, sql, sizeof sql);
  reader r;
  memset(&r, 0, sizeof r);
  r.c = c;
  r.table = b->have_k ? "CUPTI_ACTIVITY_KIND_KERNEL" : "CUPTI_ACTIVITY_KIND_GRAPH_TRACE";
  int rc = sqlite3_prepare_v2(c->db, sql, -1, &r.st, NULL);
  if (rc != SQLITE_OK) {
    if (is_fatal(rc)) set_fatal(c, rc);
    else problem(c, r.table, "%s", sqlite3_errmsg(c->db));
    return -1;
  }
  int64_t v[3];
  size_t next = 0; /* the skipped rows, met in the same order */
  if (u->n_skipped) qsort(u->skipped, u->n_skipped, sizeof *u->skipped, by_position);
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 3, v)) { rc = -1; break; }
    interval iv = {v[0], v[1], v[2]};
    if (iv.end < iv.start) continue; /* not summed either */
    while (next < u->n_skipped && by_position(&u->skipped[next], &iv) < 0) next++;
    if (next < u->n_skipped && by_position(&u->skipped[next], &iv) == 0) {
      next++;
      continue;
    }
    union_add(u, &iv);
  }
  reader_close(&r);
  return rc;
}

/* Fills s->busy (per device, sorted by id) from the union; frees the union. */
static int busy_finish(ctx *c, busy_union *u, const busy_source *b) {
  int rc = 0;
  while (u->n && !u->unordered) heap_pop_into_union(u);
  if (u->unordered && !u->oom) rc = busy_sorted_pass(c, u, b);
  if (u->oom) c->oom = 1;
  ke_trace_summary *s = c->s;
  if (rc == 0 && u->ndev) {
    qsort(u->dev, u->ndev, sizeof *u->dev, by_device);
    s->busy = calloc(u->ndev, sizeof *s->busy);
    if (!s->busy) c->oom = 1;
    for (size_t i = 0; s->busy && i < u->ndev; i++) {
      s->busy[i].device = u->dev[i].device;
      s->busy[i].busy_ms = ms_of(u->dev[i].busy + u->dev[i].end - u->dev[i].start);
    }
    s->n_busy = s->busy ? u->ndev : 0;
  }
  busy_free(u);
  return rc;
}

typedef struct {
  agg_map names;  /* kernels by name id */
  agg_map graphs; /* whole-graph records by graph id */
  busy_union busy;
  busy_source src;
  int64_t kernel_ns, count, graph_ns, graph_count;
  int64_t gpu_ns; /* kernel_ns + graph_ns: no row is added that would overflow it */
} kernel_sums;

/* One entry of the top list: a kernel (by name) or a whole graph (by graph id). */
typedef struct {
  const agg *a;
  int graph;
} top_entry;

static int by_entry_total(const void *x, const void *y) {
  const top_entry *a = x, *b = y;
  if (a->a->total_ns != b->a->total_ns) return a->a->total_ns < b->a->total_ns ? 1 : -1;
  if (a->graph != b->graph) return a->graph - b->graph; /* kernels first at equal time */
  return (a->a->key > b->a->key) - (a->a->key < b->a->key);
}

static int by_split_device(const void *a, const void *b) {
  const ke_trace_split *x = a, *y = b;
  return (x->device > y->device) - (x->device < y->device);
}

/* A top entry's time per device, by device id (kernels.csv has a row per kernel and device). */
static void split_by_device(ctx *c, ke_trace_item *it, const agg *a, int64_t gpu_ns) {
  if (!a->n_devs) return;
  it->devices = calloc(a->n_devs, sizeof *it->devices);
  if (!it->devices) { c->oom = 1; return; }
  for (size_t j = 0; j < a->n_devs; j++) {
    const dev_split *x = &a->devs[j];
    it->devices[j] = (ke_trace_split){
        .device = x->device, .count = x->count, .total_ms = ms_of(x->total_ns),
        .mean_ms = round6((double)x->total_ns / 1e6 / (double)x->count), .min_ms = ms_of(x->min_ns),
        .max_ms = ms_of(x->max_ns), .percent = percent_of(x->total_ns, gpu_ns)};
  }
  it->n_devices = a->n_devs;
  qsort(it->devices, it->n_devices, sizeof *it->devices, by_split_device);
}

/* The top n kernels and graphs together by total time; percents are of all GPU time
 * (kernels plus whole graphs), so time inside graphs is never hidden. */
static void top_kernels(ctx *c, const kernel_sums *k, size_t n) {
  ke_trace_summary *s = c->s;
  size_t total = k->names.n + k->graphs.n, m = 0;
  top_entry *all = calloc(total + 1, sizeof *all);
  if (!all) { c->oom = 1; return; }
  const agg_map *maps[2] = {&k->names, &k->graphs};
  for (int g = 0; g < 2; g++)
    for (size_t i = 0; i < maps[g]->cap; i++)
      if (maps[g]->slots[i].used) all[m++] = (top_entry){&maps[g]->slots[i], g};
  qsort(all, m, sizeof *all, by_entry_total);
  if (n > m) n = m;
  s->top_kernels = calloc(n + 1, sizeof *s->top_kernels);
  c->top = calloc(n + 1, sizeof *c->top);
  if (!s->top_kernels || !c->top) c->oom = 1;
  for (size_t i = 0; s->top_kernels && c->top && i < n; i++) {
    ke_trace_item *it = &s->top_kernels[i];
    char name[4096];
    if (all[i].graph) snprintf(name, sizeof name, "[CUDA graph %lld]", (long long)all[i].a->key);
    else string_of(c, all[i].a->key, name, sizeof name);
    it->name = dup_str(c, name);
    it->graph = all[i].graph;
    set_timing(it, all[i].a);
    it->percent = percent_of(all[i].a->total_ns, k->gpu_ns);
    split_by_device(c, it, all[i].a, k->gpu_ns);
    c->top[i] = (top_key){all[i].a->key, all[i].graph};
    s->n_top_kernels = i + 1;
  }
  free(all);
}

/* Records a summed kernel or graph interval in its device's span. */
static void span_add(ctx *c, int64_t device, int64_t start, int64_t end) {
  for (size_t i = 0; i < c->n_spans; i++) {
    device_span *p = &c->spans[i];
    if (p->device != device) continue;
    if (start < p->start) p->start = start;
    if (end > p->end) p->end = end;
    return;
  }
  device_span *n = realloc(c->spans, (c->n_spans + 1) * sizeof *n);
  if (!n) { c->oom = 1; return; }
  c->spans = n;
  n[c->n_spans++] = (device_span){device, start, end};
}

/* Where rows of (start, end, device, key) go: each adds its duration to the entry of its
 * key in `by`, to *total_ns, to *also_ns when given (kernels plus graphs: never less
 * than *total_ns) and to *count, and its interval to `busy` when given (kernels and
 * graphs: then also to the entry's split by device and to the device's span). */
typedef struct {
  agg_map *by;
  int64_t *total_ns, *also_ns, *count;
  busy_union *busy;
} interval_sink;

/* The rows of table T [tail] into `to`; a row that cannot be summed is skipped, and
 * counted in T's `unreadable` entry once the table has been read. */
static int read_interval_rows(ctx *c, const char *T, const char *cols, const char *tail, const interval_sink *to) {
  reader r;
  if (reader_open(c, &r, T, cols, tail)) return -1;
  skipped_rows skip = {{0}};
  int rc;
  int64_t v[4], d;
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 4, v)) { rc = -1; break; }
    if (row_duration(&skip, v[0], v[1], *(to->also_ns ? to->also_ns : to->total_ns), &d)) {
      if (to->busy && v[1] >= v[0]) busy_skip(to->busy, (interval){v[0], v[1], v[2]});
      continue;
    }
    agg *a = map_get(to->by, v[3]);
    if (!a || (to->busy && add_device_duration(a, v[2], d))) { c->oom = 1; rc = -1; break; }
    add_duration(a, d);
    *to->total_ns += d;
    if (to->also_ns) *to->also_ns += d;
    (*to->count)++;
    if (to->busy) {
      busy_push(to->busy, (interval){v[0], v[1], v[2]});
      span_add(c, v[2], v[0], v[1]);
    }
  }
  reader_close(&r);
  if (rc == 0) report_skipped(c, T, &skip);
  return rc;
}

/* Kernels, grouped by the id of their (demangled or short) name. */
/* The (start, end, device, name id) columns of the kernel table (read twice when the
 * export has GPU metrics: the same columns each time). */
static void kernel_cols(ctx *c, const ke_trace_opts *o, char *cols, size_t len) {
  const char *T = "CUPTI_ACTIVITY_KIND_KERNEL";
  const char *name_col = o->short_kernel_names ? "shortName" : "demangledName";
  if (!has_column(c, T, name_col)) name_col = has_column(c, T, "demangledName") ? "demangledName" : "shortName";
  snprintf(cols, len, "start, end, %s, %s", has_column(c, T, "deviceId") ? "deviceId" : "0", name_col);
}

/* The (start, end, device, graph id) columns of the whole-graph table. */
static void graph_cols(ctx *c, char *cols, size_t len) {
  const char *T = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE";
  snprintf(cols, len, "start, end, %s, %s", has_column(c, T, "deviceId") ? "deviceId" : "0",
           has_column(c, T, "graphId") ? "graphId" : "0");
}

static int read_kernel_rows(ctx *c, const ke_trace_opts *o, kernel_sums *k) {
  const char *T = "CUPTI_ACTIVITY_KIND_KERNEL";
  char cols[128];
  kernel_cols(c, o, cols, sizeof cols);
  interval_sink to = {&k->names, &k->kernel_ns, &k->gpu_ns, &k->count, &k->busy};
  return read_interval_rows(c, T, cols, NULL, &to);
}

/* Whole-graph records (--cuda-graph-trace=graph): their time counts as GPU time, busy
 * time and a top-list entry per graph id. */
static int read_graph_rows(ctx *c, kernel_sums *k) {
  const char *T = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE";
  char cols[128];
  graph_cols(c, cols, sizeof cols);
  interval_sink to = {&k->graphs, &k->graph_ns, &k->gpu_ns, &k->graph_count, &k->busy};
  return read_interval_rows(c, T, cols, NULL, &to);
}

static void kernels(ctx *c, const ke_trace_opts *o) {
  ke_trace_summary *s = c->s;
  const char *T = "CUPTI_ACTIVITY_KIND_KERNEL", *G = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE";
  kernel_sums k;
  memset(&k, 0, sizeof k);
  k.src.have_k = has_table(c, T);
  k.src.have_g = has_table(c, G);
  if (!k.src.have_k) note_missing(c, T);
  if (!k.src.have_k && !k.src.have_g) return;
  k.src.k_dev = k.src.have_k && has_column(c, T, "deviceId");
  k.src.g_dev = k.src.have_g && has_column(c, G, "deviceId");
  int rc = k.src.have_k ? read_kernel_rows(c, o, &k) : 0;
  if (rc == 0 && k.src.have_g) rc = read_graph_rows(c, &k);
  if (rc == 0) rc = busy_finish(c, &k.busy, &k.src);
  else busy_free(&k.busy);
  if (rc == 0) {
    s->has_kernels = 1;
    s->has_kernel_table = k.src.have_k;
    s->has_graph_table = k.src.have_g;
    s->gpu_compute_ms = ms_of(k.gpu_ns);
    s->kernel_ms = ms_of(k.kernel_ns);
    s->kernel_count = k.count;
    s->graph_trace_ms = ms_of(k.graph_ns);
    s->graph_trace_count = k.graph_count;
    top_kernels(c, &k, (size_t)o->top_kernels);
  }
  map_free(&k.names);
  map_free(&k.graphs);
}

/* ---------- memcpy and memset ---------- */

static const char *const COPY_KINDS[] = {"Unknown", "HtoD", "DtoH", "HtoA", "AtoH", "AtoA",
                                         "AtoD", "DtoA", "DtoD", "HtoH", "PtoP"};

static void memcpys(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *T = "CUPTI_ACTIVITY_KIND_MEMCPY";
  if (!has_table(c, T)) { note_missing(c, T); return; }
  int64_t ns[11] = {0}, bytes[11] = {0}, count[11] = {0}, total = 0, v[4], d;
  skipped_rows skip = {{0}};
  reader r;
  if (reader_open(c, &r, T, "start, end, bytes, copyKind", NULL)) return;
  int rc;
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 4, v)) { rc = -1; break; }
    int64_t k = v[3] < 0 || v[3] > 10 ? 0 : v[3];
    if (row_duration(&skip, v[0], v[1], total, &d) || row_bytes(&skip, v[2], bytes[k])) continue;
    ns[k] += d;
    bytes[k] += v[2];
    count[k]++;
    total += d;
  }
  reader_close(&r);
  if (rc != 0) return;
  report_skipped(c, T, &skip);
  s->has_memcpy = 1;
  s->memcpy_ms = ms_of(total);
  for (int k = 0; k <= 10; k++)
    s->copies[k] = (ke_trace_copy){COPY_KINDS[k], ms_of(ns[k]), bytes[k], count[k]};
}

static void memsets(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *T = "CUPTI_ACTIVITY_KIND_MEMSET";
  if (!has_table(c, T)) { note_missing(c, T); return; }
  int64_t ns = 0, bytes = 0, count = 0, v[3], d;
  skipped_rows skip = {{0}};
  reader r;
  if (reader_open(c, &r, T, "start, end, bytes", NULL)) return;
  int rc;
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 3, v)) { rc = -1; break; }
    if (row_duration(&skip, v[0], v[1], ns, &d) || row_bytes(&skip, v[2], bytes)) continue;
    ns += d;
    bytes += v[2];
    count++;
  }
  reader_close(&r);
  if (rc != 0) return;
  report_skipped(c, T, &skip);
  s->has_memset = 1;
  s->memset_ms = ms_of(ns);
  s->memset_bytes = bytes;
  s->memset_count = count;
}

/* ---------- OS runtime ---------- */

/* Calls (start, end, nameId) of table T [tail]: each adds its duration to its function's
 * entry in `by`, to *total_ns and *calls (no device, no busy time). */
static int read_calls(ctx *c, const char *T, const char *tail, agg_map *by, int64_t *total_ns, int64_t *calls) {
  interval_sink to = {by, total_ns, NULL, calls, NULL};
  return read_interval_rows(c, T, "start, end, 0, nameId", tail, &to);
}

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

/* The wait functions among the OS-runtime calls, largest first: their total and the
 * top 10 as items. */
static void osrt_waits(ctx *c, const agg_map *fns) {
  ke_trace_summary *s = c->s;
  agg **sorted = map_sorted(fns);
  if (!sorted) { c->oom = 1; return; }
  s->osrt_top_waits = calloc(11, sizeof *s->osrt_top_waits);
  if (!s->osrt_top_waits) c->oom = 1;
  int64_t wait = 0;
  for (size_t i = 0; i < fns->n; i++) {
    char name[512];
    string_of(c, sorted[i]->key, name, sizeof name);
    if (!is_wait_function(name)) continue;
    wait += sorted[i]->total_ns;
    if (!s->osrt_top_waits || s->n_osrt_top_waits >= 10) continue;
    ke_trace_item *w = &s->osrt_top_waits[s->n_osrt_top_waits++];
    w->name = dup_str(c, name);
    w->total_ms = ms_of(sorted[i]->total_ns);
    w->count = sorted[i]->count;
  }
  s->osrt_wait_ms = ms_of(wait);
  free(sorted);
}

static void osrt(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *T = "OSRT_API";
  if (!has_table(c, T)) { note_missing(c, T); return; }
  int has_class = has_column(c, T, "eventClass");
  agg_map fns = {0};
  int64_t total = 0, calls = 0;
  int rc = read_calls(c, T, has_class ? "WHERE eventClass = 27" : NULL, &fns, &total, &calls);
  if (rc == 0) {
    s->has_osrt = 1;
    s->osrt_total_ms = ms_of(total);
    s->osrt_calls = calls;
    osrt_waits(c, &fns);
  }
  map_free(&fns);
}

/* ---------- CUDA API calls ---------- */

/* A function name without its ABI version suffix ("cudaMemcpy_v3020" -> "cudaMemcpy"),
 * as nsys's reports print it; each versioned entry point stays its own row. */
static char *api_name(char *name) {
  char *v = strrchr(name, '_');
  if (v && v[1] == 'v' && v[2] && strspn(v + 2, "0123456789") == strlen(v + 2)) *v = '\0';
  return name;
}

/* CUDA runtime API calls (CUPTI_ACTIVITY_KIND_RUNTIME) by function: the host side of
 * the GPU work, as nsys's cudaapisum reports it. */
static void cuda_api(ctx *c, const ke_trace_opts *o) {
  ke_trace_summary *s = c->s;
  const char *T = "CUPTI_ACTIVITY_KIND_RUNTIME";
  if (!has_table(c, T)) { note_missing(c, T); return; }
  agg_map fns = {0};
  int64_t total = 0, calls = 0;
  int rc = read_calls(c, T, NULL, &fns, &total, &calls);
  agg **sorted = rc == 0 ? map_sorted(&fns) : NULL;
  size_t n = fns.n < (size_t)o->top_api ? fns.n : (size_t)o->top_api;
  if (rc == 0 && sorted) s->cuda_api_top = calloc(n + 1, sizeof *s->cuda_api_top);
  if (rc == 0 && (!sorted || !s->cuda_api_top)) c->oom = 1;
  if (rc == 0 && s->cuda_api_top) {
    s->has_cuda_api = 1;
    s->cuda_api_ms = ms_of(total);
    s->cuda_api_calls = calls;
    for (size_t i = 0; i < n; i++) {
      char name[1024];
      ke_trace_item *it = &s->cuda_api_top[s->n_cuda_api_top++];
      string_of(c, sorted[i]->key, name, sizeof name);
      it->name = dup_str(c, api_name(name));
      set_timing(it, sorted[i]);
      it->percent = percent_of(sorted[i]->total_ns, total);
    }
  }
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

/* An unfinished range: it lasts until the last timestamp, known once the table is read. */
typedef struct { int64_t key, start; } open_range;

typedef struct {
  agg_map ranges;
  domain *domains;
  size_t ndomains;
  open_range *open;
  size_t n_open, cap_open;
  skipped_rows skip;
  int64_t max_ts, all_ns; /* the last timestamp of the rows not skipped; all range time */
} nvtx_sums;

static void last_time(nvtx_sums *n, int64_t start, int64_t end) {
  if (start > n->max_ts) n->max_ts = start;
  if (end > n->max_ts) n->max_ts = end;
}

static int add_open(ctx *c, nvtx_sums *n, int64_t key, int64_t start) {
  if (n->n_open == n->cap_open) {
    size_t cap = n->cap_open ? 2 * n->cap_open : 16;
    open_range *o = realloc(n->open, cap * sizeof *o);
    if (!o) { c->oom = 1; return -1; }
    n->open = o;
    n->cap_open = cap;
  }
  n->open[n->n_open++] = (open_range){key, start};
  return 0;
}

/* Unfinished ranges end at the last timestamp; taken after the finished ones, in table
 * order, each skipped when its duration would overflow the total. */
static int end_open_ranges(ctx *c, nvtx_sums *n) {
  for (size_t i = 0; i < n->n_open; i++) {
    int64_t d;
    if (row_duration(&n->skip, n->open[i].start, n->max_ts, n->all_ns, &d)) continue;
    agg *a = map_get(&n->ranges, n->open[i].key);
    if (!a) { c->oom = 1; return -1; }
    a->total_ns += d;
    a->count++;
    n->all_ns += d;
  }
  return 0;
}

static int add_domain(ctx *c, nvtx_sums *n, int64_t id, int64_t process, const char *text) {
  domain *nd = realloc(n->domains, (n->ndomains + 1) * sizeof *nd);
  if (!nd) { c->oom = 1; return -1; }
  n->domains = nd;
  nd[n->ndomains++] = (domain){id, process, dup_str(c, text)};
  return 0;
}

/* One range row: aggregated by (domain, process, label id or text, style). A finished
 * range that cannot be summed is skipped (and does not move the last timestamp). */
static int add_range(ctx *c, nvtx_sums *n, const int64_t *v, int end_null, int text_id_null, const char *text) {
  int type = (int)v[2];
  int style = (type == 59 || type == 70) ? 1 : (type == 60 || type == 71) ? 2 : 0;
  int64_t d = 0;
  if (!style) {
    last_time(n, v[0], v[1]);
    return 0;
  }
  if (!end_null && row_duration(&n->skip, v[0], v[1], n->all_ns, &d)) return 0;
  last_time(n, v[0], end_null ? v[0] : v[1]);
  int64_t dom = v[5], process = v[6] & PROCESS_MASK;
  uint64_t h = mix((uint64_t)dom * 31 + (uint64_t)process) ^ (uint64_t)style;
  h = text_id_null ? hash_str(text ? text : "", h ^ 0x7e7e) : mix(h ^ (uint64_t)v[4]);
  agg *a = map_get(&n->ranges, (int64_t)h);
  if (!a) { c->oom = 1; return -1; }
  if (!a->style) {
    a->style = style;
    a->domain = dom;
    a->process = process;
    a->aux = text_id_null ? -1 : v[4];
    if (text_id_null) a->label = dup_str(c, text);
  }
  if (end_null) return add_open(c, n, (int64_t)h, v[0]);
  a->count++;
  a->total_ns += d;
  n->all_ns += d;
  return 0;
}

static int read_nvtx_rows(ctx *c, nvtx_sums *n, const char *T) {
  char cols[160];
  snprintf(cols, sizeof cols, "start, end, eventType, text, %s, %s, globalTid",
           has_column(c, T, "textId") ? "textId" : "NULL", has_column(c, T, "domainId") ? "domainId" : "0");
  reader r;
  if (reader_open(c, &r, T, cols, NULL)) return -1;
  int rc, end_null, text_id_null, tid_null;
  int64_t v[7];
  while ((rc = reader_next(&r)) == 1) {
    if (reader_int(&r, 0, &v[0], NULL) || reader_int(&r, 1, &v[1], &end_null) || reader_int(&r, 2, &v[2], NULL) ||
        reader_int(&r, 4, &v[4], &text_id_null) || reader_int(&r, 5, &v[5], NULL) ||
        reader_int(&r, 6, &v[6], &tid_null)) {
      rc = -1;
      break;
    }
    const char *text = (const char *)sqlite3_column_text(r.st, 3);
    if (v[2] == NVTX_DOMAIN_CREATE) last_time(n, v[0], v[1]);
    rc = v[2] == NVTX_DOMAIN_CREATE ? add_domain(c, n, v[5], v[6] & PROCESS_MASK, text)
                                    : add_range(c, n, v, end_null, text_id_null, text);
    if (rc) break;
  }
  reader_close(&r);
  return rc;
}

/* "domain:label" (or "label") of an aggregated range. */
static void range_name(ctx *c, const nvtx_sums *n, const agg *a, char *out, size_t len) {
  char label[1024];
  if (a->label) snprintf(label, sizeof label, "%s", a->label);
  else string_of(c, a->aux, label, sizeof label);
  const char *dname = NULL;
  for (size_t d = 0; d < n->ndomains; d++)
    if (n->domains[d].id == a->domain && n->domains[d].process == a->process && a->domain != 0)
      dname = n->domains[d].name;
  if (dname) snprintf(out, len, "%s:%s", dname, label);
  else snprintf(out, len, "%s", label);
}

/* Phases: every range whose label (with or without its domain) is the phase name. */
static void nvtx_phases(ctx *c, const ke_trace_opts *o, agg *const *sorted, int64_t all_ns) {
  ke_trace_summary *s = c->s;
  for (size_t p = 0; p < s->n_phases; p++) {
    const char *want = o->phases[p];
    int64_t total = 0, count = 0;
    for (size_t i = 0; i < s->n_nvtx_ranges; i++) {
      const char *name = s->nvtx_ranges[i].name, *colon = strchr(name, ':');
      if (strcmp(name, want) == 0 || (colon && strcmp(colon + 1, want) == 0)) {
        total += sorted[i]->total_ns;
        count += sorted[i]->count;
      }
    }
    if (!count) continue;
    ke_trace_phase *ph = &s->phases[p];
    ph->found = 1;
    ph->v = (ke_trace_item){.total_ms = ms_of(total), .percent = percent_of(total, all_ns),
                            .mean_ms = round6((double)total / 1e6 / (double)count), .count = count};
  }
}

static void nvtx_ranges(ctx *c, const ke_trace_opts *o, nvtx_sums *n) {
  ke_trace_summary *s = c->s;
  agg **sorted = map_sorted(&n->ranges);
  s->nvtx_ranges = calloc(n->ranges.n + 1, sizeof *s->nvtx_ranges);
  if (!sorted || !s->nvtx_ranges) {
    c->oom = 1;
    free(sorted);
    return;
  }
  size_t m = 0; /* a label whose every row was skipped is no range */
  for (size_t i = 0; i < n->ranges.n; i++)
    if (sorted[i]->count) sorted[m++] = sorted[i];
  for (size_t i = 0; i < m; i++) {
    const agg *a = sorted[i];
    char name[1100];
    range_name(c, n, a, name, sizeof name);
    s->nvtx_ranges[s->n_nvtx_ranges++] =
        (ke_trace_item){.name = dup_str(c, name), .style = a->style == 1 ? "PushPop" : "StartEnd",
                        .total_ms = ms_of(a->total_ns), .percent = percent_of(a->total_ns, n->all_ns),
                        .mean_ms = round6((double)a->total_ns / 1e6 / (double)a->count), .count = a->count};
  }
  s->has_nvtx = 1;
  nvtx_phases(c, o, sorted, n->all_ns);
  free(sorted);
}

static void nvtx(ctx *c, const ke_trace_opts *o) {
  const char *T = "NVTX_EVENTS";
  if (!has_table(c, T)) { note_missing(c, T); return; }
  nvtx_sums n;
  memset(&n, 0, sizeof n);
  if (read_nvtx_rows(c, &n, T) == 0 && end_open_ranges(c, &n) == 0) {
    report_skipped(c, T, &n.skip);
    nvtx_ranges(c, o, &n);
  }
  for (size_t d = 0; d < n.ndomains; d++) free(n.domains[d].name);
  free(n.domains);
  free(n.open);
  map_free(&n.ranges);
}

/* ---------- metadata ---------- */

/* nsys version and export schema: META_DATA_EXPORT (newer) or EXPORT_META_DATA. */
static void metadata(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *tables[] = {"META_DATA_EXPORT", "EXPORT_META_DATA"};
  for (size_t i = 0; i < 2; i++) {
    if (!has_table(c, tables[i])) continue;
    reader r;
    if (reader_open(c, &r, tables[i], "name, value", NULL)) return;
    while (reader_next(&r) == 1) {
      const char *n = (const char *)sqlite3_column_text(r.st, 0);
      const char *v = (const char *)sqlite3_column_text(r.st, 1);
      if (!n || !v || !v[0]) continue;
      char **slot = strcmp(n, "EXPORT_PRODUCT_VERSION") == 0 ? &s->nsys_version
                    : strcmp(n, "EXPORT_SCHEMA_VERSION") == 0 ? &s->export_schema : NULL;
      if (slot && !*slot) *slot = dup_str(c, v);
    }
    reader_close(&r);
    return;
  }
}

/* ---------- the machine the trace was taken on ---------- */

/* TARGET_INFO_SYSTEM_ENV names worth reporting (the table has dozens). */
static const char *const SYSTEM_ENV_NAMES[] = {"Hostname", "CpuDescription", "CpuCores", "OsDescription",
                                               "SoftwareReleaseVersion", "HardwarePlatform", "NvDriverVersion",
                                               "CudaDriverVersion", NULL};

static void system_env(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *T = "TARGET_INFO_SYSTEM_ENV";
  if (!has_table(c, T)) return;
  reader r;
  if (reader_open(c, &r, T, "name, value", NULL)) return;
  while (!c->oom && reader_next(&r) == 1) {
    const char *n = (const char *)sqlite3_column_text(r.st, 0);
    const char *v = (const char *)sqlite3_column_text(r.st, 1);
    size_t k = 0;
    while (n && SYSTEM_ENV_NAMES[k] && strcmp(SYSTEM_ENV_NAMES[k], n) != 0) k++;
    if (!n || !v || !SYSTEM_ENV_NAMES[k]) continue;
    int seen = 0;
    for (size_t i = 0; i < s->n_system_env; i++) seen |= s->system_env[i].name && strcmp(s->system_env[i].name, n) == 0;
    if (seen) continue; /* several processes: the first one's */
    ke_trace_env *e = realloc(s->system_env, (s->n_system_env + 1) * sizeof *e);
    if (!e) { c->oom = 1; break; }
    s->system_env = e;
    e[s->n_system_env++] = (ke_trace_env){dup_str(c, n), dup_str(c, v)};
  }
  reader_close(&r);
}

/* A column of TARGET_INFO_GPU, or NULL (SQL) when this export has no such column. */
static void gpu_col(ctx *c, char *cols, size_t len, const char *name) {
  size_t used = strlen(cols);
  snprintf(cols + used, len - used, "%s%s", used ? ", " : "", has_column(c, "TARGET_INFO_GPU", name) ? name : "NULL");
}

static int64_t col_int(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_INTEGER ? sqlite3_column_int64(st, i) : -1;
}

static void gpus(ctx *c) {
  ke_trace_summary *s = c->s;
  const char *T = "TARGET_INFO_GPU";
  if (!has_table(c, T)) return;
  const char *names[] = {"id", "name", "busLocation", "totalMemory", "memoryBandwidth", "clockRate", "smCount",
                         "computeMajor", "computeMinor"};
  char cols[512] = "";
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) gpu_col(c, cols, sizeof cols, names[i]);
  reader r;
  if (reader_open(c, &r, T, cols, "ORDER BY 1")) return;
  while (reader_next(&r) == 1) {
    ke_trace_gpu *g = realloc(s->gpus, (s->n_gpus + 1) * sizeof *g);
    if (!g) { c->oom = 1; break; }
    s->gpus = g;
    const char *name = (const char *)sqlite3_column_text(r.st, 1), *bus = (const char *)sqlite3_column_text(r.st, 2);
    g[s->n_gpus++] = (ke_trace_gpu){
        .id = col_int(r.st, 0), .name = name ? dup_str(c, name) : NULL, .bus = bus ? dup_str(c, bus) : NULL,
        .memory_bytes = col_int(r.st, 3), .memory_bandwidth = col_int(r.st, 4), .clock_hz = col_int(r.st, 5),
        .sm_count = col_int(r.st, 6), .compute_major = col_int(r.st, 7), .compute_minor = col_int(r.st, 8)};
  }
  reader_close(&r);
}

/* ---------- GPU metrics ---------- */

#define GM_MAX_METRICS 512                 /* per device: more names than any GPU has */
#define GM_MAX_HEADLINE 8                  /* per device */
#define GM_DEVICE(type) ((type) & 0xFF)    /* nsys numbers a metrics type's GPU in its low byte */

/* The headline metrics, in this order, as nsys names them: 2022.x "SM Active", "DRAM Read
 * Throughput"; 2023+ "SMs Active [Throughput %]", "DRAM Read Bandwidth [Throughput %]". */
static const char *const HEADLINE[][2] = {{"SM Active", "SMs Active"},
                                          {"Tensor Active", NULL},
                                          {"DRAM Read Throughput", "DRAM Read Bandwidth"},
                                          {"DRAM Write Throughput", "DRAM Write Bandwidth"}};
#define N_HEADLINE (sizeof HEADLINE / sizeof HEADLINE[0])

/* The headline group of a metric (its name alone, or followed by " [unit]" or " (unit)",
 * in any case), or -1. */
static int headline_group(const char *name) {
  for (size_t g = 0; g < N_HEADLINE; g++)
    for (size_t k = 0; k < 2 && HEADLINE[g][k]; k++) {
      size_t n = strlen(HEADLINE[g][k]);
      if (strncasecmp(name, HEADLINE[g][k], n) != 0) continue;
      if (!name[n] || (name[n] == ' ' && (name[n + 1] == '[' || name[n + 1] == '('))) return (int)g;
    }
  return -1;
}

/* A metric's values, for the median: how often each one occurs while there are few
 * distinct ones (percentages: at most 101), every value once there are many (clocks). */
#define GM_DISTINCT_MAX 4096

typedef struct {
  double v;
  int64_t n;
} value_count;

typedef struct {
  value_count *slot; /* open addressing on the value; n == 0: empty */
  size_t cap, distinct;
  double *all;       /* non-NULL: every value, the table given up */
  size_t n_all, cap_all;
} gm_values;

typedef struct {
  char *name;
  int64_t n, isum;
  int integral;      /* every value a whole number and isum their exact sum */
  double dsum, comp; /* the same sum, compensated (Neumaier), for the other case */
  double max;
  gm_values values;
  int slot;          /* its place among the device's headline metrics, or -1 */
} gm_metric;

typedef struct {
  int64_t t;
  double v; /* the value; once sorted, the sum of the values up to this one */
} gm_point;

/* A headline metric's samples in the window, and what falls inside each top kernel. */
typedef struct {
  gm_point *p;
  size_t n, cap, metric;
  int prefixed;   /* sorted by time, v the running sum (gm_prefix) */
  int64_t *count; /* per top kernel */
  double *sum;
} gm_slot;

typedef struct {
  int64_t device, start, end; /* the window: the kernel span, or (kernel_window 0) first to last sample */
  int kernel_window, any;
  gm_metric *m;
  size_t n_m, cap_m, hint;
  gm_slot slot[GM_MAX_HEADLINE];
  size_t n_slots;
} gm_device;

/* What cannot be used, counted: values without a time or a number, of an unnamed metric. */
enum { GM_NO_TIME, GM_NO_TIME_VALUE, GM_BAD_DATA, GM_NOT_NUMBER, GM_UNNAMED, GM_TOO_MANY, GM_CAUSES };

typedef struct {
  gm_device *dev;
  size_t n_dev;
  int64_t values; /* values read, inside the window or not */
  int64_t skipped[GM_CAUSES];
  int attributed; /* the per-kernel pass ran */
} gm_state;

static int gm_all_push(gm_values *x, double v) {
  if (x->n_all == x->cap_all) {
    size_t cap = x->cap_all ? 2 * x->cap_all : 1024;
    double *n = realloc(x->all, cap * sizeof *n);
    if (!n) return -1;
    x->all = n;
    x->cap_all = cap;
  }
  x->all[x->n_all++] = v;
  return 0;
}

/* The table of distinct values (GM_DISTINCT_MAX of them) given up for the list of every
 * value. */
static int gm_values_spill(gm_values *x) {
  for (size_t i = 0; i < x->cap; i++)
    for (int64_t k = 0; k < x->slot[i].n; k++)
      if (gm_all_push(x, x->slot[i].v)) return -1;
  free(x->slot);
  x->slot = NULL;
  x->cap = x->distinct = 0;
  return 0;
}

static value_count *gm_values_find(value_count *slot, size_t cap, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  size_t j = mix(bits) & (cap - 1);
  while (slot[j].n && slot[j].v != v) j = (j + 1) & (cap - 1);
  return &slot[j];
}

/* One more occurrence of v: 0, or -1 when memory runs out. */
static int gm_values_add(gm_values *x, double v) {
  if (v == 0) v = 0; /* -0 and 0 are one value */
  if (x->all) return gm_all_push(x, v);
  value_count *e = x->cap ? gm_values_find(x->slot, x->cap, v) : NULL;
  if (e && e->n) {
    e->n++;
    return 0;
  }
  if (x->distinct >= GM_DISTINCT_MAX) return gm_values_spill(x) || gm_all_push(x, v) ? -1 : 0;
  if (2 * (x->distinct + 1) > x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 64;
    value_count *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < x->cap; i++)
      if (x->slot[i].n) *gm_values_find(n, cap, x->slot[i].v) = x->slot[i];
    free(x->slot);
    x->slot = n;
    x->cap = cap;
  }
  *gm_values_find(x->slot, x->cap, v) = (value_count){v, 1};
  x->distinct++;
  return 0;
}

/* The device's entry (by index: the array moves as it grows), created with its window. */
static gm_device *gm_device_of(ctx *c, gm_state *g, int64_t device, size_t *index) {
  for (size_t i = 0; i < g->n_dev; i++)
    if (g->dev[i].device == device) {
      if (index) *index = i;
      return &g->dev[i];
    }
  gm_device *n = realloc(g->dev, (g->n_dev + 1) * sizeof *n);
  if (!n) { c->oom = 1; return NULL; }
  g->dev = n;
  gm_device *d = &n[g->n_dev];
  memset(d, 0, sizeof *d);
  d->device = device;
  for (size_t i = 0; c->s->has_kernels && i < c->n_spans; i++)
    if (c->spans[i].device == device) {
      d->kernel_window = 1;
      d->start = c->spans[i].start;
      d->end = c->spans[i].end;
    }
  if (index) *index = g->n_dev;
  g->n_dev++;
  return d;
}

/* The index of the device's metric `name` into *out, created when new: 0, 1 when the
 * device has too many names (the value is skipped), -1 when memory runs out. Names are
 * looked for from the one after the last found, so a stable field order costs one strcmp. */
static int gm_metric_of(ctx *c, gm_state *g, gm_device *d, const char *name, size_t *out) {
  for (size_t k = 0; k < d->n_m; k++) {
    size_t i = (d->hint + k) % d->n_m;
    if (strcmp(d->m[i].name, name) != 0) continue;
    d->hint = i + 1;
    *out = i;
    return 0;
  }
  if (d->n_m >= GM_MAX_METRICS) { g->skipped[GM_TOO_MANY]++; return 1; }
  if (d->n_m == d->cap_m) {
    size_t cap = d->cap_m ? 2 * d->cap_m : 32;
    gm_metric *n = realloc(d->m, cap * sizeof *n);
    if (!n) { c->oom = 1; return -1; }
    d->m = n;
    d->cap_m = cap;
  }
  gm_metric *m = &d->m[d->n_m];
  memset(m, 0, sizeof *m);
  m->name = dup_str(c, name);
  m->integral = 1;
  m->slot = -1;
  if (headline_group(name) >= 0 && d->n_slots < GM_MAX_HEADLINE) {
    m->slot = (int)d->n_slots;
    d->slot[d->n_slots++].metric = d->n_m;
  }
  *out = d->n_m;
  d->hint = ++d->n_m;
  return m->name ? 0 : -1;
}

static int gm_push(gm_slot *s, int64_t t, double v) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 256;
    gm_point *n = realloc(s->p, cap * sizeof *n);
    if (!n) return -1;
    s->p = n;
    s->cap = cap;
  }
  s->p[s->n++] = (gm_point){t, v};
  return 0;
}

/* One value of metric mi of device d at time t: counted when it is in the window. */
static int gm_value(ctx *c, gm_device *d, size_t mi, int64_t t, double v) {
  if (d->kernel_window && (t < d->start || t > d->end)) return 0;
  if (!d->kernel_window) {
    if (!d->any || t < d->start) d->start = t;
    if (!d->any || t > d->end) d->end = t;
    d->any = 1;
  }
  gm_metric *m = &d->m[mi];
  double whole;
  if (m->integral && (modf(v, &whole) != 0.0 || fabs(v) > 9.0e15 ||
                      (v > 0 && m->isum > INT64_MAX - (int64_t)v) || (v < 0 && m->isum < INT64_MIN - (int64_t)v)))
    m->integral = 0;
  if (m->integral) m->isum += (int64_t)v;
  double sum = m->dsum + v;
  m->comp += fabs(m->dsum) >= fabs(v) ? (m->dsum - sum) + v : (v - sum) + m->dsum;
  m->dsum = sum;
  if (!m->n || v > m->max) m->max = v;
  m->n++;
  if (gm_values_add(&m->values, v) || (m->slot >= 0 && gm_push(&d->slot[m->slot], t, v))) {
    c->oom = 1;
    return -1;
  }
  return 0;
}

/* The causes of skipped values as `table`'s entry in `unreadable`: "skipped 2 samples
 * whose data is not a JSON object, 1 value that is not a number". */
static void gm_report_skipped(ctx *c, const char *table, const gm_state *g) {
  static const char *const what[GM_CAUSES][2] = {
      {"sample without a session timestamp", "samples without a session timestamp"},
      {"value without a timestamp", "values without a timestamp"},
      {"sample whose data is not a JSON object", "samples whose data is not a JSON object"},
      {"value that is not a number", "values that are not numbers"},
      {"value of a metric TARGET_INFO_GPU_METRICS does not name", "values of metrics TARGET_INFO_GPU_METRICS does not name"},
      {"value past the 512 metric names a device may have", "values past the 512 metric names a device may have"}};
  report_counts(c, table, g->skipped, what, GM_CAUSES);
}

/* nsys 2023+: a metric's name per (typeId, metricId), from TARGET_INFO_GPU_METRICS. */
typedef struct {
  int64_t type, metric;
  size_t dev, m;
} gm_name;

static int by_type_metric(const void *a, const void *b) {
  const gm_name *x = a, *y = b;
  if (x->type != y->type) return x->type < y->type ? -1 : 1;
  return (x->metric > y->metric) - (x->metric < y->metric);
}

static int gm_read_names(ctx *c, gm_state *g, gm_name **out, size_t *n) {
  reader r;
  if (reader_open(c, &r, "TARGET_INFO_GPU_METRICS", "typeId, metricId, metricName", NULL)) return -1;
  size_t cap = 0;
  int rc;
  int64_t v[2];
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 2, v)) { rc = -1; break; }
    char unnamed[64];
    const char *name = (const char *)sqlite3_column_text(r.st, 2);
    if (!name) snprintf(unnamed, sizeof unnamed, "[unnamed metric %lld]", (long long)v[1]);
    size_t dev, mi;
    gm_device *d = gm_device_of(c, g, GM_DEVICE(v[0]), &dev);
    int got = d ? gm_metric_of(c, g, d, name ? name : unnamed, &mi) : -1;
    if (got < 0) { rc = -1; break; }
    if (got > 0) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      gm_name *e = realloc(*out, cap * sizeof *e);
      if (!e) { c->oom = 1; rc = -1; break; }
      *out = e;
    }
    (*out)[(*n)++] = (gm_name){v[0], v[1], dev, mi};
  }
  reader_close(&r);
  if (*n) qsort(*out, *n, sizeof **out, by_type_metric);
  return rc;
}

/* A value of GPU_METRICS as a number: 0, 1 for NULL (skipped), -1 for text or a blob
 * (the table cannot be read). */
static int gm_column_number(reader *r, int i, double *v) {
  int t = sqlite3_column_type(r->st, i);
  if (t == SQLITE_INTEGER) *v = (double)sqlite3_column_int64(r->st, i);
  else if (t == SQLITE_FLOAT) *v = sqlite3_column_double(r->st, i);
  else if (t == SQLITE_NULL) return 1;
  else {
    problem(r->c, r->table, "column '%s' holds %s in row %lld, not a number", sqlite3_column_name(r->st, i),
            type_name(t), r->row);
    return -1;
  }
  return isfinite(*v) ? 0 : 1;
}

/* GPU_METRICS rows (timestamp, typeId, metricId, value), each one value of one metric. */
static int gm_read_new(ctx *c, gm_state *g) {
  gm_name *names = NULL;
  size_t n = 0;
  int rc = gm_read_names(c, g, &names, &n);
  reader r = {0};
  if (rc == 0 && reader_open(c, &r, "GPU_METRICS", "timestamp, typeId, metricId, value", NULL)) rc = -1;
  const gm_name *last = NULL;
  while (rc == 0 && (rc = reader_next(&r)) == 1) {
    int64_t v[3];
    int no_time;
    double value;
    if (reader_int(&r, 0, &v[0], &no_time) || reader_int(&r, 1, &v[1], NULL) || reader_int(&r, 2, &v[2], NULL)) {
      rc = -1;
      break;
    }
    int num = gm_column_number(&r, 3, &value);
    if (num < 0) { rc = -1; break; }
    gm_name key = {v[1], v[2], 0, 0};
    if (!last || by_type_metric(last, &key) != 0) last = n ? bsearch(&key, names, n, sizeof *names, by_type_metric) : NULL;
    int cause = no_time ? GM_NO_TIME_VALUE : num ? GM_NOT_NUMBER : !last ? GM_UNNAMED : -1;
    if (cause >= 0) { g->skipped[cause]++; rc = 0; continue; }
    g->values++;
    rc = gm_value(c, &g->dev[last->dev], last->m, v[0], value);
  }
  reader_close(&r);
  free(names);
  if (rc == 0) gm_report_skipped(c, "GPU_METRICS", g);
  return rc;
}

/* nsys 2022.x: the event types of the source named GpuMetrics, and whether the source's
 * raw timestamps are session nanoseconds ("TimeSource": "SessionNs", or not said). */
typedef struct {
  int64_t id;
  int session_ns;
} gm_type;

/* The GpuMetrics sources of GENERIC_EVENT_SOURCES (their data is a JSON object). */
static int gm_sources(ctx *c, gm_type **out, size_t *n) {
  reader r;
  if (reader_open(c, &r, "GENERIC_EVENT_SOURCES", "sourceId, data", NULL)) return -1;
  kj_doc doc = {0};
  int rc;
  int64_t id;
  while ((rc = reader_next(&r)) == 1) {
    if (reader_int(&r, 0, &id, NULL)) { rc = -1; break; }
    const char *text = (const char *)sqlite3_column_text(r.st, 1);
    char err[128];
    kj_doc_reset(&doc);
    const kj_value *v = text ? kj_parse(&doc, text, (size_t)sqlite3_column_bytes(r.st, 1), err, sizeof err) : NULL;
    const kj_value *name = v && v->type == KJ_OBJ ? kj_get(v, "Name") : NULL, *ts = v ? kj_get(v, "TimeSource") : NULL;
    if (!name || name->type != KJ_STR || strcmp(name->str, "GpuMetrics") != 0) continue;
    gm_type *e = realloc(*out, (*n + 1) * sizeof *e);
    if (!e) { c->oom = 1; rc = -1; break; }
    *out = e;
    e[(*n)++] = (gm_type){id, !ts || (ts->type == KJ_STR && strcmp(ts->str, "SessionNs") == 0)};
  }
  kj_doc_free(&doc);
  reader_close(&r);
  return rc;
}

/* The GENERIC_EVENT_TYPES of those sources. */
static int gm_types(ctx *c, gm_type **types, size_t *n) {
  gm_type *sources = NULL;
  size_t n_sources = 0;
  int rc = gm_sources(c, &sources, &n_sources);
  reader r = {0};
  if (rc == 0 && n_sources && reader_open(c, &r, "GENERIC_EVENT_TYPES", "typeId, sourceId", NULL)) rc = -1;
  int64_t v[2];
  while (rc == 0 && r.st && (rc = reader_next(&r)) == 1) {
    rc = 0;
    if (reader_ints(&r, 2, v)) { rc = -1; break; }
    size_t i = 0;
    while (i < n_sources && sources[i].id != v[1]) i++;
    if (i == n_sources) continue;
    gm_type *e = realloc(*types, (*n + 1) * sizeof *e);
    if (!e) { c->oom = 1; rc = -1; break; }
    *types = e;
    e[(*n)++] = (gm_type){v[0], sources[i].session_ns};
  }
  reader_close(&r);
  free(sources);
  return rc;
}

/* A JSON member's value as a number: a number, or a string that is one whole ("97",
 * "2330513255", "12.5"). */
static int gm_json_number(const kj_value *v, double *out) {
  if (v->type == KJ_NUM) *out = v->num;
  else if (v->type == KJ_STR && v->len > 0) {
    char *end;
    errno = 0;
    *out = strtod(v->str, &end);
    if (end != v->str + v->len || errno == ERANGE) return -1;
  } else {
    return -1;
  }
  return isfinite(*out) ? 0 : -1;
}

/* One GENERIC_EVENTS sample: a JSON object of named fields (in any order) at time t. */
static int gm_sample(ctx *c, gm_state *g, int64_t device, int64_t t, const kj_value *obj) {
  size_t di;
  gm_device *d = gm_device_of(c, g, device, &di);
  if (!d) return -1;
  for (const kj_value *f = obj->child; f; f = f->next) {
    double v;
    size_t mi;
    if (gm_json_number(f, &v)) { g->skipped[GM_NOT_NUMBER]++; continue; }
    int got = gm_metric_of(c, g, d, f->key, &mi);
    if (got < 0) return -1;
    if (got > 0) continue;
    g->values++;
    if (gm_value(c, d, mi, t, v)) return -1;
  }
  return 0;
}

/* The time of a sample: `timestamp` when the export converted it, else the raw one when
 * its source counts session nanoseconds; -1 when it has neither. */
static int gm_time(reader *r, const gm_type *type, int64_t *t) {
  int null_raw, null_ts;
  int64_t raw, ts;
  if (reader_int(r, 0, &raw, &null_raw) || reader_int(r, 1, &ts, &null_ts)) return -2;
  if (!null_ts) *t = ts;
  else if (!null_raw && type->session_ns) *t = raw;
  else return -1;
  return 0;
}

/* nsys 2022.x: GENERIC_EVENTS rows of the GpuMetrics types, one sample each. */
static int gm_read_generic(ctx *c, gm_state *g) {
  const char *T = "GENERIC_EVENTS";
  gm_type *types = NULL;
  size_t n = 0;
  int rc = gm_types(c, &types, &n);
  char cols[128];
  snprintf(cols, sizeof cols, "%s, %s, typeId, data", has_column(c, T, "rawTimestamp") ? "rawTimestamp" : "NULL",
           has_column(c, T, "timestamp") ? "timestamp" : "NULL");
  reader r = {0};
  if (rc == 0 && n && reader_open(c, &r, T, cols, NULL)) rc = -1;
  kj_doc doc = {0};
  const gm_type *type = NULL;
  while (rc == 0 && r.st && (rc = reader_next(&r)) == 1) {
    int64_t id, t;
    if (reader_int(&r, 2, &id, NULL)) { rc = -1; break; }
    if (!type || type->id != id) {
      type = NULL;
      for (size_t i = 0; i < n && !type; i++)
        if (types[i].id == id) type = &types[i];
    }
    rc = 0;
    if (!type) continue; /* another source's event */
    int when = gm_time(&r, type, &t);
    if (when == -2) { rc = -1; break; }
    const char *text = (const char *)sqlite3_column_text(r.st, 3);
    char err[128];
    kj_doc_reset(&doc);
    const kj_value *obj = text ? kj_parse(&doc, text, (size_t)sqlite3_column_bytes(r.st, 3), err, sizeof err) : NULL;
    if (when) g->skipped[GM_NO_TIME]++;
    else if (!obj || obj->type != KJ_OBJ) g->skipped[GM_BAD_DATA]++;
    else rc = gm_sample(c, g, GM_DEVICE(id), t, obj);
  }
  kj_doc_free(&doc);
  reader_close(&r);
  free(types);
  if (rc == 0) gm_report_skipped(c, T, g);
  return rc;
}

/* ---------- GPU metrics: the samples inside each top kernel's launches ---------- */

/* Sorts a headline metric's points by time and turns each value into the sum up to it. */
static int by_time(const void *a, const void *b) {
  const gm_point *x = a, *y = b;
  return (x->t > y->t) - (x->t < y->t);
}

static void gm_prefix(gm_slot *s) {
  if (s->prefixed) return;
  s->prefixed = 1;
  if (s->n) qsort(s->p, s->n, sizeof *s->p, by_time);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) {
    sum += s->p[i].v;
    s->p[i].v = sum;
  }
}

/* The index of the first point at or after t. */
static size_t gm_first_at(const gm_slot *s, int64_t t) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->p[mid].t < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Adds the samples of device d's headline metrics at start <= t < end to top entry k. */
static void gm_inside(gm_device *d, size_t k, int64_t start, int64_t end) {
  for (size_t h = 0; h < d->n_slots; h++) {
    gm_slot *s = &d->slot[h];
    size_t lo = gm_first_at(s, start), hi = gm_first_at(s, end);
    if (hi <= lo) continue;
    s->count[k] += (int64_t)(hi - lo);
    s->sum[k] += s->p[hi - 1].v - (lo ? s->p[lo - 1].v : 0.0);
  }
}

static agg *map_find(const agg_map *m, int64_t key) {
  if (!m->cap) return NULL;
  size_t j = mix((uint64_t)key) & (m->cap - 1);
  while (m->slots[j].used) {
    if (m->slots[j].key == key) return &m->slots[j];
    j = (j + 1) & (m->cap - 1);
  }
  return NULL;
}

/* The second pass over kernels (and whole graphs): the same rows in the same order, the
 * same rows skipped (row_duration against the same running total). */
typedef struct {
  gm_state *g;
  agg_map top; /* key: name id (kernels) or graph id; aux: index in the top list */
  int64_t total;
  skipped_rows skip;
} gm_pass;

static int gm_attribute_rows(ctx *c, gm_pass *p, const char *T, const char *cols) {
  reader r;
  if (reader_open(c, &r, T, cols, NULL)) return -1;
  int rc;
  int64_t v[4], d;
  gm_device *dev = NULL;
  while ((rc = reader_next(&r)) == 1) {
    if (reader_ints(&r, 4, v)) { rc = -1; break; }
    if (row_duration(&p->skip, v[0], v[1], p->total, &d)) continue;
    p->total += d;
    const agg *e = map_find(&p->top, v[3]);
    if (!e) continue;
    if (!dev || dev->device != v[2]) {
      dev = NULL;
      for (size_t i = 0; i < p->g->n_dev && !dev; i++)
        if (p->g->dev[i].device == v[2]) dev = &p->g->dev[i];
    }
    if (dev) gm_inside(dev, (size_t)e->aux, v[0], v[1]);
  }
  reader_close(&r);
  return rc;
}

/* Top entries of one kind (kernels or graphs) into the lookup of the pass. */
static int gm_top_keys(ctx *c, gm_pass *p, int graph) {
  map_free(&p->top);
  for (size_t i = 0; i < c->s->n_top_kernels; i++) {
    if (c->top[i].graph != graph) continue;
    agg *a = map_get(&p->top, c->top[i].key);
    if (!a) { c->oom = 1; return -1; }
    a->aux = (int64_t)i;
  }
  return 0;
}

/* Counts, for each top kernel and device, the headline samples inside its launches. */
static int gm_attribute(ctx *c, const ke_trace_opts *o, gm_state *g) {
  size_t n_top = c->s->n_top_kernels;
  if (!c->s->has_kernels || !n_top || !c->top) return -1;
  for (size_t i = 0; i < g->n_dev; i++)
    for (size_t h = 0; h < g->dev[i].n_slots; h++) {
      gm_slot *s = &g->dev[i].slot[h];
      gm_prefix(s);
      s->count = calloc(n_top, sizeof *s->count);
      s->sum = calloc(n_top, sizeof *s->sum);
      if (!s->count || !s->sum) { c->oom = 1; return -1; }
    }
  gm_pass p;
  memset(&p, 0, sizeof p);
  p.g = g;
  char cols[128];
  int rc = 0;
  if (c->s->has_kernel_table) {
    kernel_cols(c, o, cols, sizeof cols);
    rc = gm_top_keys(c, &p, 0) || gm_attribute_rows(c, &p, "CUPTI_ACTIVITY_KIND_KERNEL", cols) ? -1 : 0;
  }
  if (rc == 0 && c->s->has_graph_table) {
    graph_cols(c, cols, sizeof cols);
    rc = gm_top_keys(c, &p, 1) || gm_attribute_rows(c, &p, "CUPTI_ACTIVITY_KIND_GRAPH_TRACE", cols) ? -1 : 0;
  }
  map_free(&p.top);
  return rc;
}

/* ---------- GPU metrics: the summary ---------- */

static int by_value(const void *a, const void *b) {
  double x = ((const value_count *)a)->v, y = ((const value_count *)b)->v;
  return (x > y) - (x < y);
}

/* The value at 0-based rank `rank` of the sorted distinct values with their counts. */
static double value_at(const value_count *v, size_t k, int64_t rank) {
  int64_t seen = 0;
  for (size_t i = 0; i < k; i++) {
    seen += v[i].n;
    if (seen > rank) return v[i].v;
  }
  return k ? v[k - 1].v : NAN;
}

/* The median with linear interpolation between closest ranks (docs/files.md): of every
 * value, or from how often each distinct value occurs. */
static double gm_median(ctx *c, gm_metric *m) {
  if (!m->n) return NAN;
  gm_values *x = &m->values;
  if (x->all) {
    ke_sort_doubles(x->all, x->n_all);
    return ke_percentile_sorted(x->all, x->n_all, 50);
  }
  value_count *v = malloc((x->distinct + 1) * sizeof *v);
  if (!v) { c->oom = 1; return NAN; }
  size_t k = 0;
  for (size_t i = 0; i < x->cap; i++)
    if (x->slot[i].n) v[k++] = x->slot[i];
  qsort(v, k, sizeof *v, by_value);
  double r = 0.5 * (double)(m->n - 1), lo_rank = floor(r);
  double lo = value_at(v, k, (int64_t)lo_rank);
  double hi = r > lo_rank ? value_at(v, k, (int64_t)lo_rank + 1) : lo;
  free(v);
  return lo + (r - lo_rank) * (hi - lo);
}

static double gm_mean(const gm_metric *m) {
  if (!m->n) return NAN;
  return m->integral ? (double)m->isum / (double)m->n : (m->dsum + m->comp) / (double)m->n;
}

typedef struct {
  const char *name;
  size_t index;
  int group;
} gm_order;

static int by_name(const void *a, const void *b) {
  return strcmp(((const gm_order *)a)->name, ((const gm_order *)b)->name);
}

static int by_group_name(const void *a, const void *b) {
  const gm_order *x = a, *y = b;
  if (x->group != y->group) return x->group - y->group;
  return strcmp(x->name, y->name);
}

/* The device's metrics by name into out (their names move there); rank[i]: where metric i
 * went. */
static int gm_finish_metrics(ctx *c, gm_device *d, ke_trace_gpu_metrics *out, size_t *rank) {
  gm_order *order = calloc(d->n_m + 1, sizeof *order);
  out->metrics = calloc(d->n_m + 1, sizeof *out->metrics);
  if (!order || !out->metrics) { free(order); c->oom = 1; return -1; }
  for (size_t i = 0; i < d->n_m; i++) order[i] = (gm_order){d->m[i].name, i, 0};
  qsort(order, d->n_m, sizeof *order, by_name);
  for (size_t j = 0; j < d->n_m; j++) {
    gm_metric *m = &d->m[order[j].index];
    rank[order[j].index] = j;
    out->metrics[j] = (ke_trace_metric){m->name, round6(gm_mean(m)), round6(gm_median(c, m)),
                                        m->n ? round6(m->max) : NAN, m->n};
    if (m->n > out->samples) out->samples = m->n;
    m->name = NULL;
  }
  out->n_metrics = d->n_m;
  free(order);
  return 0;
}

/* The headline metrics in headline order (group, then name): into out->headline (ranks)
 * and slots (the matching gm_slot indices). */
static int gm_finish_headline(ctx *c, gm_device *d, ke_trace_gpu_metrics *out, const size_t *rank, size_t *slots) {
  gm_order order[GM_MAX_HEADLINE];
  for (size_t h = 0; h < d->n_slots; h++) {
    const char *name = out->metrics[rank[d->slot[h].metric]].name;
    order[h] = (gm_order){name, h, headline_group(name)};
  }
  qsort(order, d->n_slots, sizeof *order, by_group_name);
  out->headline = calloc(d->n_slots + 1, sizeof *out->headline);
  if (!out->headline) { c->oom = 1; return -1; }
  for (size_t h = 0; h < d->n_slots; h++) {
    slots[h] = order[h].index;
    out->headline[h] = rank[d->slot[order[h].index].metric];
  }
  out->n_headline = d->n_slots;
  return 0;
}

static int ran_on(const ke_trace_item *it, int64_t device) {
  for (size_t j = 0; j < it->n_devices; j++)
    if (it->devices[j].device == device) return 1;
  return 0;
}

/* The top kernels that ran on the device, each with its headline means. */
static int gm_finish_kernels(ctx *c, gm_device *d, ke_trace_gpu_metrics *out, const size_t *slots) {
  ke_trace_summary *s = c->s;
  out->kernels = calloc(s->n_top_kernels + 1, sizeof *out->kernels);
  if (!out->kernels) { c->oom = 1; return -1; }
  for (size_t i = 0; i < s->n_top_kernels; i++) {
    if (!ran_on(&s->top_kernels[i], d->device)) continue;
    ke_trace_kernel_metrics *k = &out->kernels[out->n_kernels++];
    k->kernel = i;
    k->means = calloc(d->n_slots + 1, sizeof *k->means);
    if (!k->means) { c->oom = 1; return -1; }
    for (size_t h = 0; h < d->n_slots; h++) {
      const gm_slot *sl = &d->slot[slots[h]];
      int64_t n = sl->count[i];
      k->means[h] = n ? round6(sl->sum[i] / (double)n) : NAN;
      if (n > k->samples) k->samples = n;
    }
  }
  return 0;
}

static int by_gm_device(const void *a, const void *b) {
  const gm_device *x = a, *y = b;
  return (x->device > y->device) - (x->device < y->device);
}

/* The headline metrics over time into out: bucket means from each slot's running sums. */
static int gm_finish_timeline(ctx *c, gm_device *d, ke_trace_gpu_metrics *out, const size_t *slots) {
  size_t b = out->samples < KE_TRACE_TIMELINE ? (size_t)out->samples : KE_TRACE_TIMELINE;
  if (b == 0 || out->n_headline == 0) return 0;
  out->timeline_ms = calloc(b, sizeof *out->timeline_ms);
  out->timeline = calloc(out->n_headline, sizeof *out->timeline);
  if (!out->timeline_ms || !out->timeline) { c->oom = 1; return -1; }
  double span = (double)(d->end - d->start) + 1, width = span / (double)b;
  for (size_t k = 0; k < b; k++) out->timeline_ms[k] = round6(((double)k + 0.5) * width / 1e6);
  out->n_timeline = b;
  for (size_t h = 0; h < out->n_headline; h++) {
    gm_slot *s = &d->slot[slots[h]];
    gm_prefix(s);
    double *v = out->timeline[h] = calloc(b, sizeof *v);
    if (!v) { c->oom = 1; return -1; }
    for (size_t k = 0; k < b; k++) {
      int64_t from = d->start + (int64_t)floor((double)k * width), to = d->start + (int64_t)floor((double)(k + 1) * width);
      size_t lo = gm_first_at(s, from), hi = k + 1 == b ? s->n : gm_first_at(s, to);
      v[k] = hi > lo ? round6((s->p[hi - 1].v - (lo ? s->p[lo - 1].v : 0)) / (double)(hi - lo)) : NAN;
    }
  }
  return 0;
}

/* Every device's metrics into the summary, by device id. */
static void gm_finish(ctx *c, gm_state *g) {
  ke_trace_summary *s = c->s;
  qsort(g->dev, g->n_dev, sizeof *g->dev, by_gm_device);
  s->gpu_metrics = calloc(g->n_dev + 1, sizeof *s->gpu_metrics);
  if (!s->gpu_metrics) { c->oom = 1; return; }
  for (size_t i = 0; i < g->n_dev && !c->oom; i++) {
    gm_device *d = &g->dev[i];
    ke_trace_gpu_metrics *out = &s->gpu_metrics[s->n_gpu_metrics++];
    out->device = d->device;
    out->kernel_window = d->kernel_window;
    out->start_ns = d->start;
    out->end_ns = d->end;
    size_t *rank = calloc(d->n_m + 1, sizeof *rank), slots[GM_MAX_HEADLINE];
    if (!rank) { c->oom = 1; break; }
    if (gm_finish_metrics(c, d, out, rank) == 0 && gm_finish_headline(c, d, out, rank, slots) == 0) {
      if (g->attributed) gm_finish_kernels(c, d, out, slots);
      gm_finish_timeline(c, d, out, slots);
    }
    free(rank);
  }
}

static void gm_free(gm_state *g) {
  for (size_t i = 0; i < g->n_dev; i++) {
    gm_device *d = &g->dev[i];
    for (size_t j = 0; j < d->n_m; j++) {
      free(d->m[j].name);
      free(d->m[j].values.slot);
      free(d->m[j].values.all);
    }
    free(d->m);
    for (size_t h = 0; h < d->n_slots; h++) {
      free(d->slot[h].p);
      free(d->slot[h].count);
      free(d->slot[h].sum);
    }
  }
  free(g->dev);
  memset(g, 0, sizeof *g);
}

/* ---------- GPU metrics: why there are none ---------- */

/* What nsys said about GPU metrics, found in a diagnostic or a log line: the first that
 * says the counters were not permitted, else the first about GPU metrics at all. */
typedef struct {
  char text[400];
  int found, permission;
} gm_said;

/* Keeps `line` (its control characters spaces, cut at a character boundary) when it is
 * about GPU metrics and better than what was kept. */
static void gm_hear(gm_said *said, const char *line) {
  int perm = strstr(line, "ERR_NVGPUCTRPERM") || strcasestr(line, "permission to access NVIDIA GPU Performance Counters");
  if (said->permission || (!perm && (said->found || !strcasestr(line, "gpu metrics")))) return;
  while (*line == ' ' || *line == '\t') line++;
  size_t n = strlen(line);
  if (n >= sizeof said->text) {
    n = sizeof said->text - 1;
    while (n && ((unsigned char)line[n] & 0xC0) == 0x80) n--;
  }
  for (size_t i = 0; i < n; i++) said->text[i] = (unsigned char)line[i] < 0x20 || line[i] == 0x7f ? ' ' : line[i];
  while (n && said->text[n - 1] == ' ') n--;
  said->text[n] = '\0';
  said->found = 1;
  said->permission = perm;
}

/* Newer exports keep nsys's diagnostics in DIAGNOSTIC_EVENT (its `text` column). */
static void gm_diagnostics(ctx *c, gm_said *said) {
  const char *T = "DIAGNOSTIC_EVENT";
  if (!has_table(c, T) || !has_column(c, T, "text")) return;
  reader r;
  if (reader_open(c, &r, T, "text", NULL)) return;
  while (!said->permission && reader_next(&r) == 1) {
    const char *text = (const char *)sqlite3_column_text(r.st, 0);
    if (text) gm_hear(said, text);
  }
  reader_close(&r);
}

/* The capture's log (nsys 2022.x exports keep no diagnostics: its messages are there). */
static void gm_log(const char *path, gm_said *said) {
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return;
  char *line = NULL;
  size_t cap = 0;
  while (!said->permission && getline(&line, &cap, f) > 0) gm_hear(said, line);
  free(line);
  fclose(f);
}

/* gpu_metrics_reason of an export without GPU metrics samples. */
static void gm_reason(ctx *c, const ke_trace_opts *o) {
  gm_said said;
  memset(&said, 0, sizeof said);
  gm_diagnostics(c, &said);
  if (!said.permission) gm_log(o->diagnostics_log, &said);
  const char *log = o->diagnostics_log ? strrchr(o->diagnostics_log, '/') : NULL; /* its name: the directory moves */
  log = log ? log + 1 : o->diagnostics_log;
  char reason[1024];
  if (said.permission)
    snprintf(reason, sizeof reason, "nsys was not permitted to read the GPU performance counters (ERR_NVGPUCTRPERM), "
             "so it sampled no GPU metrics; allow every user with the nvidia driver option "
             "NVreg_RestrictProfilingToAdminUsers=0 (the line 'options nvidia NVreg_RestrictProfilingToAdminUsers=0' "
             "in a file of /etc/modprobe.d, then reload the nvidia module or reboot), or run knobengine as root; "
             "nsys said: %s", said.text);
  else if (said.found)
    snprintf(reason, sizeof reason, "nsys sampled no GPU metrics; it said: %s", said.text);
  else if (o->gpu_metrics_wanted)
    snprintf(reason, sizeof reason, "nsys.gpu_metrics was on, but the export holds no GPU metrics samples (no "
             "GPU_METRICS rows, no GENERIC_EVENTS of the source GpuMetrics) and nsys said nothing about them%s%s",
             log ? " in " : "", log ? log : "");
  else
    snprintf(reason, sizeof reason, "the export holds no GPU metrics samples (nsys.gpu_metrics takes them)");
  c->s->gpu_metrics_reason = dup_str(c, reason);
}

/* GPU metrics: samples of nsys 2023+ (GPU_METRICS) or 2022.x (GENERIC_EVENTS of the source
 * GpuMetrics); after the kernels, whose spans are the windows. */
static void gpu_metrics(ctx *c, const ke_trace_opts *o) {
  gm_state g;
  memset(&g, 0, sizeof g);
  int rc = 1; /* 1: no table of samples */
  const char *table = NULL;
  if (has_table(c, "GPU_METRICS") && has_table(c, "TARGET_INFO_GPU_METRICS")) {
    table = "GPU_METRICS";
    rc = gm_read_new(c, &g);
  } else if (has_table(c, "GENERIC_EVENTS") && has_table(c, "GENERIC_EVENT_SOURCES") &&
             has_table(c, "GENERIC_EVENT_TYPES")) {
    table = "GENERIC_EVENTS";
    rc = gm_read_generic(c, &g);
  }
  if (rc == 0 && g.values > 0) {
    g.attributed = gm_attribute(c, o, &g) == 0;
    gm_finish(c, &g);
  } else if (rc < 0) {
    char reason[256];
    snprintf(reason, sizeof reason, "the GPU metrics samples cannot be read (see unreadable: %s and the tables "
             "naming their metrics)", table);
    c->s->gpu_metrics_reason = dup_str(c, reason);
  } else {
    gm_reason(c, o);
  }
  gm_free(&g);
}

/* ---------- the summary ---------- */

/* Opens the export read-only. A writer's lock is waited for a moment, then reported.
 * Only a regular file is opened: SQLite would block on a FIFO until a writer came, and
 * a directory or a device is no export. */
static int open_export(ctx *c, const char *path, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "'%s' is not a regular file", path);
    return -1;
  }
  kbuf uri = {0};
  kbuf_puts(&uri, "file:");
  for (const char *p = path; *p; p++) {
    if (*p == '%' || *p == '?' || *p == '#') kbuf_printf(&uri, "%%%02X", (unsigned char)*p);
    else kbuf_append(&uri, p, 1);
  }
  kbuf_puts(&uri, "?mode=ro");
  int rc = uri.data ? sqlite3_open_v2(uri.data, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) : SQLITE_NOMEM;
  kbuf_free(&uri);
  if (rc != SQLITE_OK) {
    snprintf(err, errlen, "cannot open '%s': %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
    return -1;
  }
  sqlite3_busy_timeout(c->db, 1000);
  rc = sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) == SQLITE_NOTADB) snprintf(err, errlen, "'%s' is not an SQLite database: %s", path, sqlite3_errmsg(c->db));
    else { set_fatal(c, rc); snprintf(err, errlen, "cannot read '%s': %s", path, c->fatal); }
    return -1;
  }
  return 0;
}

/* The StringIds lookup; without a usable table every name is "[unknown string id N]"
 * (a table without its columns is listed in `unreadable`). */
static void open_strings(ctx *c) {
  if (!has_table(c, "StringIds")) return;
  int rc = sqlite3_prepare_v2(c->db, "SELECT value FROM StringIds WHERE id = ?", -1, &c->string_lookup, NULL);
  if (rc == SQLITE_OK) return;
  if (is_fatal(rc)) set_fatal(c, rc);
  else problem(c, "StringIds", "%s", sqlite3_errmsg(c->db));
  sqlite3_finalize(c->string_lookup);
  c->string_lookup = NULL;
}

int ke_trace_summarize(const char *sqlite_path, const ke_trace_opts *opts, ke_trace_summary *out, char *err,
                     size_t errlen) {
  memset(out, 0, sizeof *out);
  ke_trace_opts o = *opts;
  if (o.top_kernels <= 0) o.top_kernels = 5;
  if (o.top_api <= 0) o.top_api = 10;
  ctx c;
  memset(&c, 0, sizeof c);
  c.s = out;
  for (size_t i = 0; o.phases && o.phases[i]; i++) out->n_phases++;
  out->phases = calloc(out->n_phases + 1, sizeof *out->phases);
  if (!out->phases) c.oom = 1;
  for (size_t i = 0; out->phases && i < out->n_phases; i++) out->phases[i].name = o.phases[i];
  int rc = open_export(&c, sqlite_path, err, errlen);
  if (rc == 0) {
    open_strings(&c);
    metadata(&c);
    kernels(&c, &o);
    memcpys(&c);
    memsets(&c);
    osrt(&c);
    cuda_api(&c, &o);
    nvtx(&c, &o);
    system_env(&c);
    gpus(&c);
    gpu_metrics(&c, &o);
    if (c.fatal[0]) snprintf(err, errlen, "cannot read '%s': %s", sqlite_path, c.fatal);
    else if (c.oom) snprintf(err, errlen, "out of memory summarizing '%s'", sqlite_path);
    if (c.fatal[0] || c.oom) rc = -1;
  }
  sqlite3_finalize(c.string_lookup);
  sqlite3_close(c.db);
  free(c.spans);
  free(c.top);
  if (rc) ke_trace_summary_free(out);
  return rc;
}

static void free_items(ke_trace_item *items, size_t n) {
  for (size_t i = 0; items && i < n; i++) {
    free(items[i].name);
    free(items[i].devices);
  }
  free(items);
}

void ke_trace_summary_free(ke_trace_summary *s) {
  free(s->nsys_version);
  free(s->export_schema);
  free(s->busy);
  free_items(s->top_kernels, s->n_top_kernels);
  free_items(s->osrt_top_waits, s->n_osrt_top_waits);
  free_items(s->nvtx_ranges, s->n_nvtx_ranges);
  free_items(s->cuda_api_top, s->n_cuda_api_top);
  for (size_t i = 0; i < s->n_system_env; i++) {
    free(s->system_env[i].name);
    free(s->system_env[i].value);
  }
  free(s->system_env);
  for (size_t i = 0; i < s->n_gpus; i++) {
    free(s->gpus[i].name);
    free(s->gpus[i].bus);
  }
  free(s->gpus);
  for (size_t i = 0; i < s->n_gpu_metrics; i++) {
    ke_trace_gpu_metrics *g = &s->gpu_metrics[i];
    for (size_t j = 0; j < g->n_metrics; j++) free(g->metrics[j].name);
    for (size_t j = 0; j < g->n_kernels; j++) free(g->kernels[j].means);
    for (size_t h = 0; g->timeline && h < g->n_headline; h++) free(g->timeline[h]);
    free(g->timeline);
    free(g->timeline_ms);
    free(g->metrics);
    free(g->headline);
    free(g->kernels);
  }
  free(s->gpu_metrics);
  free(s->gpu_metrics_reason);
  free(s->phases);
  free(s->missing_tables);
  for (size_t i = 0; i < s->n_unreadable; i++) {
    free(s->unreadable[i].table);
    free(s->unreadable[i].reason);
  }
  free(s->unreadable);
  memset(s, 0, sizeof *s);
}
