/* knob_trace.c - knob.trace_summary and knob.nsys_export (see knob.h, docs/lua-api.md).
 *
 * The summary struct becomes the table of docs/nsys.md "Trace summary": a section whose
 * table is missing or unreadable is null (lists are empty), exactly as its keys are
 * documented; a table whose rows were skipped in part keeps the other rows' totals and
 * its reason in `unreadable` ("skipped N rows ..."). GPU metrics: `gpu_metrics` keyed by
 * device id, or null with `gpu_metrics_reason` (docs/nsys.md "GPU metrics"). */
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knob.h"
#include "lhelp.h"
#include "nsys.h"
#include "trace.h"

/* Which fields an item list carries besides name, [style], [graph], total_ms. */
enum { WITH_MEAN = 1, WITH_PERCENT = 2, WITH_RANGE = 4 };

/* A number, or null for NAN (no sample). */
static void set_sampled(lua_State *L, const char *key, double v) {
  if (isnan(v)) ke_set_null(L, key);
  else ke_set_num(L, key, v);
}

/* A top kernel's split by device: [{device, count, total_ms, mean_ms, min_ms, max_ms, percent}]. */
static void push_devices(lua_State *L, const ke_trace_item *it) {
  lua_createtable(L, (int)it->n_devices, 0);
  for (size_t j = 0; j < it->n_devices; j++) {
    const ke_trace_split *d = &it->devices[j];
    lua_createtable(L, 0, 7);
    ke_set_int(L, "device", d->device);
    ke_set_int(L, "count", d->count);
    ke_set_num(L, "total_ms", d->total_ms);
    ke_set_num(L, "mean_ms", d->mean_ms);
    ke_set_num(L, "min_ms", d->min_ms);
    ke_set_num(L, "max_ms", d->max_ms);
    ke_set_num(L, "percent", d->percent);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setfield(L, -2, "devices");
}

/* An array of items; the count under count_key ("count" or "calls"). */
static void push_items(lua_State *L, const ke_trace_item *items, size_t n, const char *count_key, int fields) {
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    const ke_trace_item *it = &items[i];
    lua_createtable(L, 0, 8);
    ke_set_str(L, "name", it->name);
    if (it->style) ke_set_str(L, "style", it->style);
    if (it->graph) ke_set_bool(L, "graph", 1);
    ke_set_num(L, "total_ms", it->total_ms);
    ke_set_int(L, count_key, it->count);
    if (fields & WITH_MEAN) ke_set_num(L, "mean_ms", it->mean_ms);
    if (fields & WITH_RANGE) {
      ke_set_num(L, "min_ms", it->min_ms);
      ke_set_num(L, "max_ms", it->max_ms);
    }
    if (fields & WITH_PERCENT) ke_set_num(L, "percent", it->percent);
    if (it->devices) push_devices(L, it);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

static void push_kernels(lua_State *L, const ke_trace_summary *s) {
  if (!s->has_kernels) {
    const char *keys[] = {"gpu_compute_ms", "kernel_ms", "kernel_count", "graph_trace_ms", "gpu_busy_ms"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) ke_set_null(L, keys[i]);
    lua_newtable(L);
    lua_setfield(L, -2, "top_kernels");
    return;
  }
  ke_set_num(L, "gpu_compute_ms", s->gpu_compute_ms);
  if (s->has_kernel_table) ke_set_num(L, "kernel_ms", s->kernel_ms);
  else ke_set_null(L, "kernel_ms");
  ke_set_int(L, "kernel_count", s->kernel_count);
  if (s->has_graph_table) ke_set_num(L, "graph_trace_ms", s->graph_trace_ms);
  else ke_set_null(L, "graph_trace_ms");
  ke_set_int(L, "graph_trace_count", s->graph_trace_count);
  lua_createtable(L, 0, (int)s->n_busy);
  for (size_t i = 0; i < s->n_busy; i++) {
    char device[32];
    snprintf(device, sizeof device, "%lld", s->busy[i].device);
    ke_set_num(L, device, s->busy[i].busy_ms);
  }
  lua_setfield(L, -2, "gpu_busy_ms");
  push_items(L, s->top_kernels, s->n_top_kernels, "count", WITH_MEAN | WITH_RANGE | WITH_PERCENT);
  lua_setfield(L, -2, "top_kernels");
}

static void push_memory(lua_State *L, const ke_trace_summary *s) {
  if (s->has_memcpy) {
    ke_set_num(L, "memcpy_ms", s->memcpy_ms);
    lua_newtable(L);
    for (int k = 0; k < 11; k++) {
      const ke_trace_copy *c = &s->copies[k];
      if (!c->count) continue;
      lua_createtable(L, 0, 3);
      ke_set_num(L, "ms", c->ms);
      ke_set_int(L, "bytes", c->bytes);
      ke_set_int(L, "count", c->count);
      lua_setfield(L, -2, c->kind);
    }
    lua_setfield(L, -2, "memcpy_by_kind");
  } else {
    ke_set_null(L, "memcpy_ms");
    ke_set_null(L, "memcpy_by_kind");
  }
  if (s->has_memset) {
    ke_set_num(L, "memset_ms", s->memset_ms);
    ke_set_int(L, "memset_bytes", s->memset_bytes);
    ke_set_int(L, "memset_count", s->memset_count);
  } else {
    ke_set_null(L, "memset_ms");
    ke_set_null(L, "memset_bytes");
    ke_set_null(L, "memset_count");
  }
}

static void push_osrt(lua_State *L, const ke_trace_summary *s) {
  if (s->has_osrt) {
    ke_set_num(L, "osrt_wait_ms", s->osrt_wait_ms);
    ke_set_num(L, "osrt_total_ms", s->osrt_total_ms);
    ke_set_int(L, "osrt_calls", s->osrt_calls);
    push_items(L, s->osrt_top_waits, s->n_osrt_top_waits, "calls", 0);
  } else {
    ke_set_null(L, "osrt_wait_ms");
    ke_set_null(L, "osrt_total_ms");
    ke_set_null(L, "osrt_calls");
    lua_newtable(L);
  }
  lua_setfield(L, -2, "osrt_top_waits");
}

static void push_nvtx(lua_State *L, const ke_trace_summary *s) {
  if (s->has_nvtx) {
    push_items(L, s->nvtx_ranges, s->n_nvtx_ranges, "count", WITH_MEAN | WITH_PERCENT);
    lua_setfield(L, -2, "nvtx_ranges");
  } else {
    ke_set_null(L, "nvtx_ranges");
  }
  lua_createtable(L, 0, (int)s->n_phases);
  for (size_t p = 0; p < s->n_phases; p++) {
    const ke_trace_phase *ph = &s->phases[p];
    if (ph->found) {
      lua_createtable(L, 0, 4);
      ke_set_num(L, "total_ms", ph->v.total_ms);
      ke_set_int(L, "count", ph->v.count);
      ke_set_num(L, "mean_ms", ph->v.mean_ms);
      ke_set_num(L, "percent", ph->v.percent);
    } else {
      lua_pushlightuserdata(L, NULL);
    }
    lua_setfield(L, -2, ph->name);
  }
  lua_setfield(L, -2, "nvtx_phases");
}

static void push_cuda_api(lua_State *L, const ke_trace_summary *s) {
  if (s->has_cuda_api) {
    ke_set_num(L, "cuda_api_ms", s->cuda_api_ms);
    ke_set_int(L, "cuda_api_calls", s->cuda_api_calls);
    push_items(L, s->cuda_api_top, s->n_cuda_api_top, "calls", WITH_MEAN | WITH_RANGE | WITH_PERCENT);
  } else {
    ke_set_null(L, "cuda_api_ms");
    ke_set_null(L, "cuda_api_calls");
    lua_newtable(L);
  }
  lua_setfield(L, -2, "cuda_api_top");
}

/* A count the export may not have: the number, or null for -1. */
static void set_known(lua_State *L, const char *key, long long v) {
  if (v < 0) ke_set_null(L, key);
  else ke_set_int(L, key, v);
}

/* environment = {gpus = {...}, system = {Hostname = ..., ...}} */
static void push_environment(lua_State *L, const ke_trace_summary *s) {
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)s->n_gpus, 0);
  for (size_t i = 0; i < s->n_gpus; i++) {
    const ke_trace_gpu *g = &s->gpus[i];
    lua_createtable(L, 0, 9);
    set_known(L, "id", g->id);
    ke_set_str(L, "name", g->name);
    ke_set_str(L, "bus", g->bus);
    set_known(L, "memory_bytes", g->memory_bytes);
    set_known(L, "memory_bandwidth_bytes_per_s", g->memory_bandwidth);
    set_known(L, "clock_hz", g->clock_hz);
    set_known(L, "sm_count", g->sm_count);
    if (g->compute_major >= 0 && g->compute_minor >= 0) {
      char cc[48];
      snprintf(cc, sizeof cc, "%lld.%lld", g->compute_major, g->compute_minor);
      ke_set_str(L, "compute_capability", cc);
    } else {
      ke_set_null(L, "compute_capability");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "gpus");
  lua_createtable(L, 0, (int)s->n_system_env);
  for (size_t i = 0; i < s->n_system_env; i++) ke_set_str(L, s->system_env[i].name, s->system_env[i].value);
  lua_setfield(L, -2, "system");
  lua_setfield(L, -2, "environment");
}

/* window = {start_ns, end_ns, duration_ms, basis}: the kernel span, or every sample. */
static void push_window(lua_State *L, const ke_trace_gpu_metrics *g) {
  if (!g->kernel_window && !g->samples) {
    ke_set_null(L, "window");
    return;
  }
  lua_createtable(L, 0, 4);
  ke_set_int(L, "start_ns", g->start_ns);
  ke_set_int(L, "end_ns", g->end_ns);
  ke_set_num(L, "duration_ms", (double)(g->end_ns - g->start_ns) / 1e6);
  ke_set_str(L, "basis", g->kernel_window ? "kernels" : "samples");
  lua_setfield(L, -2, "window");
}

/* kernels = [{name, [graph], samples, means = {headline name = mean | null}}] */
static void push_kernel_metrics(lua_State *L, const ke_trace_summary *s, const ke_trace_gpu_metrics *g) {
  lua_createtable(L, (int)g->n_kernels, 0);
  for (size_t i = 0; i < g->n_kernels; i++) {
    const ke_trace_kernel_metrics *k = &g->kernels[i];
    lua_createtable(L, 0, 4);
    ke_set_str(L, "name", s->top_kernels[k->kernel].name);
    if (s->top_kernels[k->kernel].graph) ke_set_bool(L, "graph", 1);
    ke_set_int(L, "samples", k->samples);
    lua_createtable(L, 0, (int)g->n_headline);
    for (size_t h = 0; h < g->n_headline; h++) set_sampled(L, g->metrics[g->headline[h]].name, k->means[h]);
    lua_setfield(L, -2, "means");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "kernels");
}

/* timeline = {t_ms = [...], series = {headline name = [mean | null, ...]}}, or null
 * without samples. */
static void push_timeline(lua_State *L, const ke_trace_gpu_metrics *g) {
  if (!g->n_timeline) {
    lua_pushlightuserdata(L, NULL); /* cjson.null */
    lua_setfield(L, -2, "timeline");
    return;
  }
  lua_createtable(L, 0, 2);
  lua_createtable(L, (int)g->n_timeline, 0);
  for (size_t k = 0; k < g->n_timeline; k++) {
    lua_pushnumber(L, g->timeline_ms[k]);
    lua_rawseti(L, -2, (lua_Integer)k + 1);
  }
  lua_setfield(L, -2, "t_ms");
  lua_createtable(L, 0, (int)g->n_headline);
  for (size_t h = 0; h < g->n_headline; h++) {
    lua_createtable(L, (int)g->n_timeline, 0);
    for (size_t k = 0; k < g->n_timeline; k++) {
      if (isnan(g->timeline[h][k])) lua_pushlightuserdata(L, NULL); /* cjson.null */
      else lua_pushnumber(L, g->timeline[h][k]);
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, g->metrics[g->headline[h]].name);
  }
  lua_setfield(L, -2, "series");
  lua_setfield(L, -2, "timeline");
}

/* One device: window, samples, metrics = {name = {mean, p50, max, samples}}, headline,
 * kernels, timeline. */
static void push_device_metrics(lua_State *L, const ke_trace_summary *s, const ke_trace_gpu_metrics *g) {
  lua_createtable(L, 0, 5);
  push_window(L, g);
  ke_set_int(L, "samples", g->samples);
  lua_createtable(L, 0, (int)g->n_metrics);
  for (size_t j = 0; j < g->n_metrics; j++) {
    const ke_trace_metric *m = &g->metrics[j];
    lua_createtable(L, 0, 4);
    set_sampled(L, "mean", m->mean);
    set_sampled(L, "p50", m->p50);
    set_sampled(L, "max", m->max);
    ke_set_int(L, "samples", m->samples);
    lua_setfield(L, -2, m->name);
  }
  lua_setfield(L, -2, "metrics");
  lua_createtable(L, (int)g->n_headline, 0);
  for (size_t h = 0; h < g->n_headline; h++) {
    lua_pushstring(L, g->metrics[g->headline[h]].name);
    lua_rawseti(L, -2, (lua_Integer)h + 1);
  }
  lua_setfield(L, -2, "headline");
  push_kernel_metrics(L, s, g);
  push_timeline(L, g);
}

static void push_gpu_metrics(lua_State *L, const ke_trace_summary *s) {
  if (!s->n_gpu_metrics) {
    ke_set_null(L, "gpu_metrics");
    ke_set_str(L, "gpu_metrics_reason", s->gpu_metrics_reason);
    return;
  }
  lua_createtable(L, 0, (int)s->n_gpu_metrics);
  for (size_t i = 0; i < s->n_gpu_metrics; i++) {
    char device[32];
    snprintf(device, sizeof device, "%lld", s->gpu_metrics[i].device);
    push_device_metrics(L, s, &s->gpu_metrics[i]);
    lua_setfield(L, -2, device);
  }
  lua_setfield(L, -2, "gpu_metrics");
}

/* The whole summary as a table (docs/nsys.md "Trace summary"). */
static void push_summary(lua_State *L, const char *path, const ke_trace_summary *s) {
  lua_createtable(L, 0, 32);
  ke_set_str(L, "source", path);
  ke_set_bool(L, "ok", 1);
  ke_set_str(L, "nsys_version", s->nsys_version);
  ke_set_str(L, "export_schema", s->export_schema);
  push_kernels(L, s);
  push_memory(L, s);
  push_osrt(L, s);
  push_nvtx(L, s);
  push_cuda_api(L, s);
  push_gpu_metrics(L, s);
  push_environment(L, s);
  lua_createtable(L, (int)s->n_missing, 0);
  for (size_t i = 0; i < s->n_missing; i++) {
    lua_pushstring(L, s->missing_tables[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "missing_tables");
  if (s->n_unreadable) {
    lua_createtable(L, 0, (int)s->n_unreadable);
    for (size_t i = 0; i < s->n_unreadable; i++) ke_set_str(L, s->unreadable[i].table, s->unreadable[i].reason);
    lua_setfield(L, -2, "unreadable");
  }
}

static int l_trace_summary(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ke_trace_opts o = {NULL, 0, 5, 10, 0, NULL};
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "phases");
    if (lua_istable(L, -1)) o.phases = ke_string_list(L, -1);
    o.short_kernel_names = strcmp(ke_opt_string(L, 2, "kernel_names", "demangled"), "short") == 0;
    lua_getfield(L, 2, "top_kernels");
    int all = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "all") == 0;
    lua_pop(L, 1);
    o.top_kernels = all ? INT_MAX : (int)ke_opt_number(L, 2, "top_kernels", 5);
    o.top_api = (int)ke_opt_number(L, 2, "top_api", 10);
    o.gpu_metrics_wanted = ke_opt_bool(L, 2, "gpu_metrics", 0);
    o.diagnostics_log = ke_opt_string(L, 2, "diagnostics_log", NULL);
  }
  ke_trace_summary s;
  char err[1024];
  if (ke_trace_summarize(path, &o, &s, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  push_summary(L, path, &s);
  ke_trace_summary_free(&s);
  return 1;
}

static int l_nsys_export(lua_State *L) {
  const char *rep = luaL_checkstring(L, 1);
  const char *sqlite = luaL_checkstring(L, 2);
  const char *bin = luaL_optstring(L, 3, "nsys");
  const char *log = luaL_optstring(L, 4, "/dev/null");
  char err[1024];
  return ke_push_status(L, ke_nsys_export(bin, rep, sqlite, log, 600, err, sizeof err), err);
}

static int l_nsys_check_importer(lua_State *L) {
  char importer[4096], err[1024];
  if (ke_nsys_check_importer(luaL_checkstring(L, 1), importer, sizeof importer, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, importer);
  return 1;
}

void ke_bind_trace(lua_State *L, int t) {
  lua_pushcfunction(L, l_nsys_check_importer);
  lua_setfield(L, t, "nsys_check_importer");
  lua_pushcfunction(L, l_trace_summary);
  lua_setfield(L, t, "trace_summary");
  lua_pushcfunction(L, l_nsys_export);
  lua_setfield(L, t, "nsys_export");
}
