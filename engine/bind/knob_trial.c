/* knob_trial.c - knob.evaluate, knob.replay, knob.metric_names and knob.server_metrics (see knob.h,
 * docs/lua-api.md).
 *
 * Reads a trial spec table into ke_trial, runs it, and returns the result as a table.
 * The client metrics become Lua values by the metric table (metrics.h, push_metrics):
 * a metric added there is in every file and view the engine writes. */
#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "evaluate.h"
#include "knob.h"
#include "lhelp.h"
#include "metrics.h"
#include "sampler.h"
#include "supervise.h"

/* One metric into the table on top, by its row's push rule (metrics.h). */
static void push_value(lua_State *L, const ke_metrics *m, const ke_metric_desc *d) {
  switch (d->push) {
  case KE_PUSH_INT: ke_set_int(L, d->key, ke_metric_int(m, d)); break;
  case KE_PUSH_NUM: ke_set_num(L, d->key, ke_metric_num(m, d)); break;
  case KE_PUSH_MET:
    if (ke_metric_int(m, d) < 0) ke_set_null(L, d->key);
    else ke_set_bool(L, d->key, ke_metric_int(m, d) != 0);
    break;
  case KE_PUSH_COUNT:
    if (ke_metric_int(m, d) >= 0) ke_set_int(L, d->key, ke_metric_int(m, d));
    break;
  case KE_PUSH_WHOLE:
    if (isnan(ke_metric_num(m, d))) ke_set_null(L, d->key);
    else ke_set_int(L, d->key, ke_metric_int(m, d));
    break;
  case KE_PUSH_TEXT:
    if (ke_metric_str(m, d)[0]) ke_set_str(L, d->key, ke_metric_str(m, d));
    else ke_set_null(L, d->key);
    break;
  case KE_PUSH_NONE: break;
  }
}

/* The rows from row i on that share its group, as that group's sub-table (or null, or
 * nothing, when the group is not shown); returns the row after them. */
static size_t push_group(lua_State *L, const ke_metrics *m, size_t i) {
  ke_metric_group g = ke_metric_table[i].group;
  size_t end = i;
  while (end < ke_metric_count && ke_metric_table[end].group == g) end++;
  const ke_metric_group_desc *gd = &ke_metric_groups[g];
  if (gd->shown == KE_SHOWN_WITH_SLO && m->slo_met < 0) {
    ke_set_null(L, gd->key);
    return end;
  }
  if (gd->shown == KE_SHOWN_WITH_MISMATCH && m->token_mismatch <= 0) return end;
  lua_createtable(L, 0, (int)(end - i));
  for (; i < end; i++) push_value(L, m, &ke_metric_table[i]);
  lua_setfield(L, -2, gd->key);
  return end;
}

/* The client metrics of a replay (docs/files.md "Result") as a new table: the rows of
 * metrics.h in order, each group a sub-table. */
static void push_metrics(lua_State *L, const ke_metrics *m) {
  lua_createtable(L, 0, 16);
  for (size_t i = 0; i < ke_metric_count;) {
    if (ke_metric_table[i].group == KE_GROUP_TOP) push_value(L, m, &ke_metric_table[i++]);
    else i = push_group(L, m, i);
  }
}

/* knob.metric_names(): the metrics that can be an objective, in table order. */
static int l_metric_names(lua_State *L) {
  lua_createtable(L, 16, 0);
  lua_Integer n = 0;
  for (size_t i = 0; i < ke_metric_count; i++) {
    if (!ke_metric_table[i].objective) continue;
    lua_pushstring(L, ke_metric_table[i].key);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* knob.server_metrics(): {key = {kind = "gauge"|"counter", names = {...}}}, the table
 * the server's Prometheus metrics are read by (sampler.h), with vLLM's names. */
static int l_server_metrics(lua_State *L) {
  lua_createtable(L, 0, KE_SRV_COUNT);
  for (int k = 0; k < KE_SRV_COUNT; k++) {
    const ke_server_metric_desc *d = &ke_server_metric_table[k];
    lua_createtable(L, 0, 3);
    lua_pushstring(L, d->counter ? "counter" : "gauge");
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, k + 1);
    lua_setfield(L, -2, "order");
    lua_newtable(L);
    lua_Integer i = 0;
    for (const char *n = d->names; *n; n += strlen(n) + 1) {
      lua_pushstring(L, n);
      lua_rawseti(L, -2, ++i);
    }
    lua_setfield(L, -2, "names");
    lua_setfield(L, -2, d->key);
  }
  return 1;
}

/* t.schedule: the send time of each measured request (s after the phase began),
 * ascending; absent = closed loop. The array is a userdata left on the stack. */
static void read_schedule(lua_State *L, int t, ke_replay_opts *o) {
  lua_getfield(L, t, "schedule");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int st = lua_gettop(L);
  size_t n = lua_rawlen(L, st);
  if ((int)n != o->request_count) luaL_error(L, "replay: the schedule has %d times for %d requests", (int)n, o->request_count);
  double *s = lua_newuserdatauv(L, (n + 1) * sizeof *s, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, st, (lua_Integer)i + 1);
    s[i] = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    if (!(s[i] >= 0) || (i > 0 && s[i] < s[i - 1])) luaL_error(L, "replay: the schedule must ascend from 0");
  }
  o->schedule = s;
}

/* t.slo: {ttft_ms, tpot_ms, itl_ms, e2e_ms, percentile = 99, combine = "and"|"or"}. */
static void read_slo(lua_State *L, int t, ke_slo *slo) {
  memset(slo, 0, sizeof *slo);
  lua_getfield(L, t, "slo");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  luaL_checktype(L, -1, LUA_TTABLE);
  int s = lua_gettop(L);
  slo->enabled = 1;
  slo->ttft_ms = ke_opt_number(L, s, "ttft_ms", NAN);
  slo->tpot_ms = ke_opt_number(L, s, "tpot_ms", NAN);
  slo->itl_ms = ke_opt_number(L, s, "itl_ms", NAN);
  slo->e2e_ms = ke_opt_number(L, s, "e2e_ms", NAN);
  slo->percentile = ke_opt_number(L, s, "percentile", 99);
  slo->any = strcmp(ke_opt_string(L, s, "combine", "and"), "or") == 0;
  lua_pop(L, 1);
}

/* t.server_metrics: {url | off, interval_ms, csv, names = {key = {name, ...}}}. */
static void read_server_metrics(lua_State *L, int t, ke_sampler_opts *so) {
  lua_getfield(L, t, "server_metrics");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int m = lua_gettop(L);
  so->metrics_url = ke_opt_string(L, m, "url", NULL);
  so->metrics_off = ke_opt_string(L, m, "off", NULL);
  so->interval_ms = (int)ke_opt_number(L, m, "interval_ms", 500);
  if (so->interval_ms < 1) so->interval_ms = 1;
  so->metrics_csv = ke_opt_string(L, m, "csv", NULL);
  lua_getfield(L, m, "names");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int names = lua_gettop(L);
  for (int k = 0; k < KE_SRV_COUNT; k++) {
    lua_getfield(L, names, ke_server_metric_table[k].key);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
    luaL_checktype(L, -1, LUA_TTABLE);
    if (lua_rawlen(L, -1) > KE_SAMPLER_MAX_NAMES)
      luaL_error(L, "replay: at most %d names for server metric '%s'", KE_SAMPLER_MAX_NAMES, ke_server_metric_table[k].key);
    so->names[k] = ke_string_list(L, lua_gettop(L)); /* the list and its array stay on the stack */
  }
}

/* t.gpu: {devices = {i, ...} (absent: every GPU), csv}; absent = not sampled. */
static void read_gpu(lua_State *L, int t, ke_sampler_opts *so) {
  lua_getfield(L, t, "gpu");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int g = lua_gettop(L);
  so->gpu = 1;
  so->gpu_csv = ke_opt_string(L, g, "csv", NULL);
  lua_getfield(L, g, "devices");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int d = lua_gettop(L);
  size_t n = lua_rawlen(L, d);
  int *dev = lua_newuserdatauv(L, (n + 1) * sizeof *dev, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, d, (lua_Integer)i + 1);
    dev[i] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  so->gpu_devices = dev;
  so->n_gpu_devices = (int)n;
}

/* t.continues: per body, true when it is the next turn of the previous body's
 * conversation (multi-turn); t.think_s. */
static void read_turns(lua_State *L, int t, ke_replay_opts *o) {
  o->think_s = ke_opt_number(L, t, "think_s", 0);
  lua_getfield(L, t, "continues");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  int c = lua_gettop(L);
  if (lua_rawlen(L, c) != o->n_bodies) luaL_error(L, "replay: 'continues' needs one flag per body");
  unsigned char *flags = lua_newuserdatauv(L, o->n_bodies + 1, 0);
  for (size_t i = 0; i < o->n_bodies; i++) {
    lua_rawgeti(L, c, (lua_Integer)i + 1);
    flags[i] = (unsigned char)(i > 0 && lua_toboolean(L, -1));
    lua_pop(L, 1);
  }
  o->continues = flags;
}

/* Reads a replay description table at index t into o; leaves helper data on stack. */
static void read_replay(lua_State *L, int t, ke_replay_opts *o) {
  t = lua_absindex(L, t);
  memset(o, 0, sizeof *o);
  o->url = ke_opt_string(L, t, "url", NULL);
  if (!o->url) luaL_error(L, "replay: 'url' is required");
  lua_getfield(L, t, "bodies");
  luaL_checktype(L, -1, LUA_TTABLE);
  int bt = lua_gettop(L);
  size_t n = lua_rawlen(L, bt);
  const char **bodies = lua_newuserdatauv(L, (n + 1) * sizeof *bodies, 0);
  size_t *lens = lua_newuserdatauv(L, (n + 1) * sizeof *lens, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, bt, (lua_Integer)i + 1);
    bodies[i] = luaL_checklstring(L, -1, &lens[i]);
    lua_pop(L, 1);
  }
  o->bodies = bodies;
  o->body_lens = lens;
  o->n_bodies = n;
  o->concurrency = (int)ke_opt_number(L, t, "concurrency", 1);
  o->request_count = (int)ke_opt_number(L, t, "request_count", 1);
  o->warmup = (int)ke_opt_number(L, t, "warmup", 0);
  o->request_timeout_s = ke_opt_number(L, t, "request_timeout_s", 300);
  o->stream = ke_opt_bool(L, t, "stream", 1);
  o->requests_csv = ke_opt_string(L, t, "requests_csv", NULL);
  o->max_concurrency = (int)ke_opt_number(L, t, "max_concurrency", 0);
  read_schedule(L, t, o);
  read_slo(L, t, &o->slo);
  o->reset_url = ke_opt_string(L, t, "reset_url", NULL);
  read_server_metrics(L, t, &o->sampler);
  read_gpu(L, t, &o->sampler);
  read_turns(L, t, o);
}

static int l_replay(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ke_replay_opts o;
  read_replay(L, 1, &o);
  ke_metrics m;
  char err[512];
  if (ke_replay(&o, &m, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  push_metrics(L, &m);
  return 1;
}

/* spec.nsys into o (strings borrowed from the spec). */
static void read_nsys(lua_State *L, int spec, const char *default_log, ke_nsys_opts *o) {
  lua_getfield(L, spec, "nsys");
  luaL_checktype(L, -1, LUA_TTABLE);
  int nt = lua_gettop(L);
  memset(o, 0, sizeof *o);
  o->bin = ke_opt_string(L, nt, "bin", "nsys");
  o->trace = ke_opt_string(L, nt, "trace", "cuda,nvtx,osrt");
  const char *capture = ke_opt_string(L, nt, "capture", "session");
  if (strcmp(capture, "session") != 0 && strcmp(capture, "process") != 0)
    luaL_error(L, "evaluate: nsys.capture must be 'session' or 'process' (got '%s')", capture);
  o->capture = strcmp(capture, "process") == 0 ? KE_CAPTURE_PROCESS : KE_CAPTURE_SESSION;
  o->output = ke_opt_string(L, nt, "output", NULL);
  o->session = ke_opt_string(L, nt, "session", "knobengine");
  o->log_path = ke_opt_string(L, nt, "log_path", default_log);
  o->timeout_s = ke_opt_number(L, nt, "timeout_s", 600);
  o->cuda_graph_trace = ke_opt_string(L, nt, "cuda_graph_trace", NULL);
  o->tmp_dir = ke_opt_string(L, nt, "tmp_dir", NULL);
  o->capture_requests = (int)ke_opt_number(L, nt, "capture_requests", 0);
  o->max_trace_mb = ke_opt_number(L, nt, "max_trace_mb", 0);
  lua_getfield(L, nt, "extra_args");
  if (lua_istable(L, -1)) o->extra_args = ke_string_list(L, -1);
  lua_getfield(L, nt, "capture_args");
  if (lua_istable(L, -1)) o->capture_args = ke_string_list(L, -1);
  if (!o->output) luaL_error(L, "evaluate: nsys.output is required when profiling");
}

/* The trial spec at index 1 into t; helper data stays on the stack. */
static void read_trial(lua_State *L, ke_trial *t) {
  memset(t, 0, sizeof *t);
  lua_getfield(L, 1, "argv");
  luaL_checktype(L, -1, LUA_TTABLE);
  t->argv = ke_string_list(L, -1);
  lua_getfield(L, 1, "env");
  t->env = ke_env_list(L, -1);
  t->host = ke_opt_string(L, 1, "host", "127.0.0.1");
  t->port = (int)ke_opt_number(L, 1, "port", 8000);
  t->ready_url = ke_opt_string(L, 1, "ready_url", NULL);
  t->ready_timeout_s = ke_opt_number(L, 1, "ready_timeout_s", 900);
  t->stop_timeout_s = ke_opt_number(L, 1, "stop_timeout_s", 30);
  t->log_path = ke_opt_string(L, 1, "log_path", NULL);
  if (!t->ready_url || !t->log_path) luaL_error(L, "evaluate: 'ready_url' and 'log_path' are required");
  lua_getfield(L, 1, "replay");
  luaL_checktype(L, -1, LUA_TTABLE);
  read_replay(L, -1, &t->replay);
  t->repeats = (int)ke_opt_number(L, 1, "repeats", 1);
}

/* Progress callback: calls spec.on_phase(phase, detail). A Lua error is kept and
 * raised after the trial has cleaned up, never across the C core. */
typedef struct {
  lua_State *L;
  int fn;  /* stack index of the function, 0 = none */
  int err; /* registry reference of the first error, LUA_NOREF = none */
} phase_hook;

static void on_phase(void *ud, const char *phase, const char *detail) {
  phase_hook *h = ud;
  if (!h->fn || h->err != LUA_NOREF) return;
  lua_pushvalue(h->L, h->fn);
  lua_pushstring(h->L, phase);
  if (detail) lua_pushstring(h->L, detail);
  else lua_pushnil(h->L);
  if (lua_pcall(h->L, 2, 0, 0) != LUA_OK) h->err = luaL_ref(h->L, LUA_REGISTRYINDEX);
}

/* spec.probe(k, prev_metrics) -> the next replay table, or nil when done: the replays
 * of a capacity search or a load sweep, on one running server. Each returned table and
 * what was read from it stay on the stack (above `base`) while it runs. */
typedef struct {
  lua_State *L;
  int fn, base;
  int err; /* registry reference of the first error, LUA_NOREF = none */
} probe_hook;

/* Reads the replay table at 1 into the opts at 2 (a light userdata) under a pcall: a
 * bad table is a Lua error here, not a jump across the C core. Returns what it
 * pushed (the arrays the opts point into), so they stay referenced. */
static int read_replay_protected(lua_State *L) {
  ke_replay_opts *o = lua_touserdata(L, 2);
  read_replay(L, 1, o);
  return lua_gettop(L) - 2;
}

static int next_probe(void *ud, int k, const ke_metrics *prev, ke_replay_opts *next) {
  probe_hook *h = ud;
  lua_State *L = h->L;
  if (h->err != LUA_NOREF) return 0;
  lua_settop(L, h->base); /* the previous probe's table is no longer used */
  lua_pushvalue(L, h->fn);
  lua_pushinteger(L, k + 1);
  if (prev) push_metrics(L, prev);
  else lua_pushnil(L);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    h->err = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  }
  if (lua_isnil(L, -1)) return 0;
  int table = lua_gettop(L);
  lua_pushcfunction(L, read_replay_protected);
  lua_pushvalue(L, table);
  lua_pushlightuserdata(L, next);
  if (!lua_istable(L, table) || lua_pcall(L, 2, LUA_MULTRET, 0) != LUA_OK) {
    if (!lua_istable(L, table)) lua_pushstring(L, "probe: expected a replay table or nil");
    h->err = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
  }
  return 1;
}

/* The trial result as a table: ok, error, output_failed, metrics, repeats, timing,
 * profile. */
static void push_result(lua_State *L, const ke_trial_result *r, int profile, int interrupted) {
  lua_createtable(L, 0, 8);
  ke_set_bool(L, "ok", r->ok);
  if (r->error[0]) ke_set_str(L, "error", r->error);
  if (r->output_failed) ke_set_bool(L, "output_failed", 1);
  if (r->replayed) {
    push_metrics(L, &r->metrics);
    lua_setfield(L, -2, "metrics");
  }
  if (r->repeats_done > 1) {
    lua_createtable(L, r->repeats_done, 0);
    for (int k = 0; k < r->repeats_done; k++) {
      push_metrics(L, &r->repeat_metrics[k]);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "repeats");
  }
  lua_createtable(L, 0, 4);
  ke_set_num(L, "start_s", r->start_s);
  ke_set_num(L, "workload_s", r->workload_s);
  ke_set_num(L, "stop_s", r->stop_s);
  ke_set_bool(L, "killed", r->killed);
  lua_setfield(L, -2, "timing");
  if (profile) {
    lua_createtable(L, 0, 6);
    ke_set_bool(L, "ok", r->nsys.ok);
    if (r->nsys.error[0]) ke_set_str(L, "error", r->nsys.error);
    if (r->nsys.note[0]) ke_set_str(L, "note", r->nsys.note);
    if (r->nsys.partial[0]) ke_set_str(L, "partial", r->nsys.partial);
    ke_set_bool(L, "size_limited", r->nsys.size_limited);
    ke_set_int(L, "capture_bytes", r->nsys.capture_bytes);
    if (r->nsys.ok) {
      ke_set_str(L, "rep_path", r->nsys.rep_path);
      ke_set_str(L, "sqlite_path", r->nsys.sqlite_path);
      ke_set_num(L, "export_s", r->nsys.export_s);
    }
    lua_setfield(L, -2, "profile");
  }
  if (interrupted) ke_set_bool(L, "interrupted", 1);
}

static int l_evaluate(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int profile = lua_toboolean(L, 2);
  ke_trial t;
  read_trial(L, &t);
  ke_nsys_opts nsys;
  if (profile) {
    read_nsys(L, 1, t.log_path, &nsys);
    t.nsys = &nsys;
  }
  phase_hook hook = {L, 0, LUA_NOREF};
  lua_getfield(L, 1, "on_phase");
  if (lua_isfunction(L, -1)) {
    hook.fn = lua_gettop(L);
    t.on_phase = on_phase;
    t.phase_ud = &hook;
  }
  probe_hook probes = {L, 0, 0, LUA_NOREF};
  lua_getfield(L, 1, "probe");
  if (lua_isfunction(L, -1)) {
    probes.fn = lua_gettop(L);
    probes.base = probes.fn;
    t.next_probe = next_probe;
    t.probe_ud = &probes;
  }
  ke_trial_result r;
  int rc = ke_evaluate(&t, &r);
  int err = hook.err != LUA_NOREF ? hook.err : probes.err;
  if (err != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, err);
    luaL_unref(L, LUA_REGISTRYINDEX, err);
    return lua_error(L);
  }
  push_result(L, &r, profile, rc == KE_INTERRUPTED);
  return 1;
}

void ke_bind_trial(lua_State *L, int t) {
  lua_pushcfunction(L, l_evaluate);
  lua_setfield(L, t, "evaluate");
  lua_pushcfunction(L, l_replay);
  lua_setfield(L, t, "replay");
  lua_pushcfunction(L, l_metric_names);
  lua_setfield(L, t, "metric_names");
  lua_pushcfunction(L, l_server_metrics);
  lua_setfield(L, t, "server_metrics");
}
