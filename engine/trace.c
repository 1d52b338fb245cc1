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
#include <sys/stat.h>

#include "json.h"

/* ---------- a small open-addressing map: 64-bit key -> aggregate ---------- */

typedef struct {
  int64_t key;
  int used;
  int64_t total_ns, count;
  int64_t aux; /* NVTX: the label's StringIds id, or -1 */
  int style;   /* NVTX: 1 PushPop, 2 StartEnd (0 until the entry is set up) */
  char *label; /* NVTX: owned label when the key came from text */
  int64_t domain, process;
  int64_t min_ns, max_ns; /* kernels and CUDA API calls: the shortest and longest one */
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

/* Adds one event of duration d to an aggregate (total, count, shortest, longest). */
static void add_duration(agg *a, int64_t d) {
  if (!a->count || d < a->min_ns) a->min_ns = d;
  if (!a->count || d > a->max_ns) a->max_ns = d;
  a->total_ns += d;
  a->count++;
}

/* ---------- reading tables, with every failure recorded ---------- */

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *string_lookup;
  ke_trace_summary *s;
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

/* The skipped rows of `table`, as its `unreadable` entry: "skipped 3 rows with end
 * before start, 1 row whose duration overflows". Nothing when none was skipped. */
static void report_skipped(ctx *c, const char *table, const skipped_rows *k) {
  static const char *const what[SKIP_CAUSES][2] = {
      {"row with end before start", "rows with end before start"},
      {"row whose duration overflows", "rows whose durations overflow"},
      {"row with a negative byte count", "rows with a negative byte count"},
      {"row whose byte count overflows", "rows whose byte counts overflow"}};
  char reason[512];
  size_t used = 0;
  for (int i = 0; i < SKIP_CAUSES; i++) {
    if (!k->n[i] || used >= sizeof reason) continue;
    int w = snprintf(reason + used, sizeof reason - used, "%s%lld %s", used ? ", " : "skipped ",
                     (long long)k->n[i], what[i][k->n[i] != 1]);
    if (w > 0) used += (size_t)w;
  }
  if (used) problem(c, table, "%s", reason);
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
  if (!s->top_kernels) c->oom = 1;
  for (size_t i = 0; s->top_kernels && i < n; i++) {
    ke_trace_item *it = &s->top_kernels[i];
    char name[4096];
    if (all[i].graph) snprintf(name, sizeof name, "[CUDA graph %lld]", (long long)all[i].a->key);
    else string_of(c, all[i].a->key, name, sizeof name);
    it->name = dup_str(c, name);
    it->graph = all[i].graph;
    set_timing(it, all[i].a);
    it->percent = percent_of(all[i].a->total_ns, k->gpu_ns);
    s->n_top_kernels = i + 1;
  }
  free(all);
}

/* Where rows of (start, end, device, key) go: each adds its duration to the entry of its
 * key in `by`, to *total_ns, to *also_ns when given (kernels plus graphs: never less
 * than *total_ns) and to *count, and its interval to `busy` when given. */
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
    if (!a) { c->oom = 1; rc = -1; break; }
    add_duration(a, d);
    *to->total_ns += d;
    if (to->also_ns) *to->also_ns += d;
    (*to->count)++;
    if (to->busy) busy_push(to->busy, (interval){v[0], v[1], v[2]});
  }
  reader_close(&r);
  if (rc == 0) report_skipped(c, T, &skip);
  return rc;
}

/* Kernels, grouped by the id of their (demangled or short) name. */
static int read_kernel_rows(ctx *c, const ke_trace_opts *o, kernel_sums *k) {
  const char *T = "CUPTI_ACTIVITY_KIND_KERNEL";
  const char *name_col = o->short_kernel_names ? "shortName" : "demangledName";
  if (!has_column(c, T, name_col)) name_col = has_column(c, T, "demangledName") ? "demangledName" : "shortName";
  char cols[128];
  snprintf(cols, sizeof cols, "start, end, %s, %s", k->src.k_dev ? "deviceId" : "0", name_col);
  interval_sink to = {&k->names, &k->kernel_ns, &k->gpu_ns, &k->count, &k->busy};
  return read_interval_rows(c, T, cols, NULL, &to);
}

/* Whole-graph records (--cuda-graph-trace=graph): their time counts as GPU time, busy
 * time and a top-list entry per graph id. */
static int read_graph_rows(ctx *c, kernel_sums *k) {
  const char *T = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE";
  char cols[128];
  snprintf(cols, sizeof cols, "start, end, %s, %s", k->src.g_dev ? "deviceId" : "0",
           has_column(c, T, "graphId") ? "graphId" : "0");
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
    if (c.fatal[0]) snprintf(err, errlen, "cannot read '%s': %s", sqlite_path, c.fatal);
    else if (c.oom) snprintf(err, errlen, "out of memory summarizing '%s'", sqlite_path);
    if (c.fatal[0] || c.oom) rc = -1;
  }
  sqlite3_finalize(c.string_lookup);
  sqlite3_close(c.db);
  if (rc) ke_trace_summary_free(out);
  return rc;
}

static void free_items(ke_trace_item *items, size_t n) {
  for (size_t i = 0; items && i < n; i++) free(items[i].name);
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
  free(s->phases);
  free(s->missing_tables);
  for (size_t i = 0; i < s->n_unreadable; i++) {
    free(s->unreadable[i].table);
    free(s->unreadable[i].reason);
  }
  free(s->unreadable);
  memset(s, 0, sizeof *s);
}
