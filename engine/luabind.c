/* luabind.c - see luabind.h. */
#include "luabind.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "evaluate.h"
#include "luadb.h"
#include "fsutil.h"
#include "replay.h"
#include "supervise.h"
#include "trace.h"

#define PROC_MT "knob.proc"

/* ---- helpers for reading option tables ---- */

static const char *opt_string(lua_State *L, int t, const char *key, const char *def) {
  lua_getfield(L, t, key);
  const char *s = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the string stays alive: the table still references it */
  return s;
}

static double opt_number(lua_State *L, int t, const char *key, double def) {
  lua_getfield(L, t, key);
  double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int t, const char *key, int def) {
  lua_getfield(L, t, key);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A NULL-terminated array of the strings of the list at index t (borrowed from the Lua
 * table, which must stay referenced). The array is a userdata left on the stack. */
static const char **string_list(lua_State *L, int t) {
  t = lua_absindex(L, t);
  size_t n = lua_rawlen(L, t);
  const char **a = lua_newuserdatauv(L, (n + 1) * sizeof *a, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, t, (lua_Integer)i + 1);
    a[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1);
  }
  a[n] = NULL;
  return a;
}

/* Environment: a map {NAME=value} turned into "NAME=value" strings (kept in a new table
 * left on the stack under the array userdata). */
static const char **env_list(lua_State *L, int t) {
  t = lua_absindex(L, t);
  lua_newtable(L);
  int out = lua_gettop(L);
  int n = 0;
  if (!lua_isnil(L, t)) {
    luaL_checktype(L, t, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      const char *k = luaL_checkstring(L, -2);
      const char *v = luaL_checkstring(L, -1);
      lua_pushfstring(L, "%s=%s", k, v);
      lua_rawseti(L, out, ++n);
      lua_pop(L, 1);
    }
  }
  return string_list(L, out);
}

static void set_num(lua_State *L, const char *key, double v) {
  if (isnan(v) || isinf(v)) lua_pushlightuserdata(L, NULL);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

static void set_dist(lua_State *L, const char *key, const ke_dist *d, int with_mean) {
  lua_createtable(L, 0, 4);
  set_num(L, "p50", d->p50);
  set_num(L, "p95", d->p95);
  set_num(L, "p99", d->p99);
  if (with_mean) set_num(L, "mean", d->mean);
  lua_setfield(L, -2, key);
}

static void push_metrics(lua_State *L, const ke_metrics *m) {
  lua_pushinteger(L, m->request_count);
  lua_setfield(L, -2, "request_count");
  lua_pushinteger(L, m->completed);
  lua_setfield(L, -2, "completed");
  lua_pushinteger(L, m->failed);
  lua_setfield(L, -2, "failed");
  set_num(L, "error_rate", m->error_rate);
  set_num(L, "duration_s", m->duration_s);
  set_num(L, "p50_latency_ms", m->latency.p50);
  set_num(L, "p95_latency_ms", m->latency.p95);
  set_num(L, "p99_latency_ms", m->latency.p99);
  set_num(L, "mean_latency_ms", m->latency.mean);
  set_dist(L, "ttft_ms", &m->ttft, 1);
  set_dist(L, "tpot_ms", &m->tpot, 1);
  set_dist(L, "itl_ms", &m->itl, 0);
  lua_pushinteger(L, m->output_tokens);
  lua_setfield(L, -2, "output_tokens");
  lua_pushinteger(L, m->input_tokens);
  lua_setfield(L, -2, "input_tokens");
  set_num(L, "tokens_per_s", m->tokens_per_s);
  set_num(L, "requests_per_s", m->requests_per_s);
}

/* Reads a replay description table at index t into o; leaves helper data on stack. */
static void read_replay(lua_State *L, int t, ke_replay_opts *o) {
  t = lua_absindex(L, t);
  memset(o, 0, sizeof *o);
  o->url = opt_string(L, t, "url", NULL);
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
  o->concurrency = (int)opt_number(L, t, "concurrency", 1);
  o->request_count = (int)opt_number(L, t, "request_count", 1);
  o->warmup = (int)opt_number(L, t, "warmup", 0);
  o->request_timeout_s = opt_number(L, t, "request_timeout_s", 300);
  o->stream = opt_bool(L, t, "stream", 1);
  o->requests_csv = opt_string(L, t, "requests_csv", NULL);
}

/* ---- knob.replay ---- */

static int l_replay(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ke_replay_opts o;
  read_replay(L, 1, &o);
  ke_metrics m;
  char err[512];
  int rc = ke_replay(&o, &m, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_newtable(L);
  push_metrics(L, &m);
  return 1;
}

/* ---- knob.spawn and proc methods ---- */

typedef struct { ke_proc *p; } proc_ud;

static ke_proc *check_proc(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  if (!u->p) luaL_error(L, "process handle already released");
  return u->p;
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char **argv = string_list(L, 1);
  const char **env = env_list(L, 2);
  const char *log = luaL_checkstring(L, 3);
  proc_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->p = NULL;
  luaL_setmetatable(L, PROC_MT);
  char err[512];
  if (ke_spawn(argv, env, log, &u->p, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static int l_proc_wait_ready(lua_State *L) {
  ke_proc *p = check_proc(L);
  const char *url = luaL_checkstring(L, 2);
  double timeout = luaL_checknumber(L, 3);
  char err[2048];
  int rc = ke_wait_ready(p, url, timeout, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_proc_stop(lua_State *L) {
  ke_proc *p = check_proc(L);
  int killed = ke_proc_stop(p, luaL_optnumber(L, 2, 10));
  lua_pushboolean(L, 1);
  lua_pushboolean(L, killed);
  return 2;
}

static int l_proc_pid(lua_State *L) {
  lua_pushinteger(L, ke_proc_pid(check_proc(L)));
  return 1;
}

static int l_proc_exited(lua_State *L) {
  ke_proc *p = check_proc(L);
  if (!ke_proc_exited(p)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  char how[64];
  ke_proc_describe_exit(p, how, sizeof how);
  lua_pushboolean(L, 1);
  lua_pushstring(L, how);
  return 2;
}

static int l_proc_gc(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  ke_proc_free(u->p); /* stops it if still running */
  u->p = NULL;
  return 0;
}

/* ---- knob.evaluate ---- */

static int l_evaluate(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int profile = lua_toboolean(L, 2);
  ke_trial t;
  memset(&t, 0, sizeof t);
  lua_getfield(L, 1, "argv");
  luaL_checktype(L, -1, LUA_TTABLE);
  t.argv = string_list(L, -1);
  lua_getfield(L, 1, "env");
  t.env = env_list(L, -1);
  t.host = opt_string(L, 1, "host", "127.0.0.1");
  t.port = (int)opt_number(L, 1, "port", 8000);
  t.ready_url = opt_string(L, 1, "ready_url", NULL);
  t.ready_timeout_s = opt_number(L, 1, "ready_timeout_s", 900);
  t.stop_timeout_s = opt_number(L, 1, "stop_timeout_s", 30);
  t.log_path = opt_string(L, 1, "log_path", NULL);
  if (!t.ready_url || !t.log_path) return luaL_error(L, "evaluate: 'ready_url' and 'log_path' are required");
  /* a marker unique to this trial in this process: finds the server wherever it runs */
  static unsigned long trial_seq;
  t.marker = lua_pushfstring(L, "KNOBENGINE_TRIAL=%d-%d", (int)getpid(), (int)++trial_seq);
  lua_getfield(L, 1, "replay");
  luaL_checktype(L, -1, LUA_TTABLE);
  read_replay(L, -1, &t.replay);
  t.repeats = (int)opt_number(L, 1, "repeats", 1);

  ke_nsys_opts nsys;
  if (profile) {
    lua_getfield(L, 1, "nsys");
    luaL_checktype(L, -1, LUA_TTABLE);
    int nt = lua_gettop(L);
    memset(&nsys, 0, sizeof nsys);
    nsys.bin = opt_string(L, nt, "bin", "nsys");
    nsys.trace = opt_string(L, nt, "trace", "cuda,nvtx,osrt");
    nsys.capture = opt_string(L, nt, "capture", "session");
    nsys.output = opt_string(L, nt, "output", NULL);
    nsys.session = opt_string(L, nt, "session", "knobengine");
    nsys.log_path = opt_string(L, nt, "log_path", t.log_path);
    nsys.timeout_s = opt_number(L, nt, "timeout_s", 600);
    lua_getfield(L, nt, "extra_args");
    if (lua_istable(L, -1)) nsys.extra_args = string_list(L, -1);
    lua_getfield(L, nt, "capture_args");
    if (lua_istable(L, -1)) nsys.capture_args = string_list(L, -1);
    if (!nsys.output) return luaL_error(L, "evaluate: nsys.output is required when profiling");
    t.nsys = &nsys;
  }

  ke_trial_result r;
  int rc = ke_evaluate(&t, &r);
  lua_newtable(L);
  lua_pushboolean(L, r.ok);
  lua_setfield(L, -2, "ok");
  if (r.error[0]) {
    lua_pushstring(L, r.error);
    lua_setfield(L, -2, "error");
  }
  if (r.replayed) push_metrics(L, &r.metrics);
  if (r.repeats_done > 1) {
    lua_createtable(L, r.repeats_done, 0);
    for (int k = 0; k < r.repeats_done; k++) {
      lua_newtable(L);
      push_metrics(L, &r.repeat_metrics[k]);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "repeats");
  }
  lua_createtable(L, 0, 4);
  set_num(L, "start_s", r.start_s);
  set_num(L, "workload_s", r.workload_s);
  set_num(L, "stop_s", r.stop_s);
  lua_pushboolean(L, r.killed);
  lua_setfield(L, -2, "killed");
  lua_setfield(L, -2, "timing");
  if (profile) {
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, r.nsys.ok);
    lua_setfield(L, -2, "ok");
    if (r.nsys.error[0]) {
      lua_pushstring(L, r.nsys.error);
      lua_setfield(L, -2, "error");
    }
    if (r.nsys.note[0]) {
      lua_pushstring(L, r.nsys.note);
      lua_setfield(L, -2, "note");
    }
    if (r.nsys.ok) {
      lua_pushstring(L, r.nsys.rep_path);
      lua_setfield(L, -2, "rep_path");
      lua_pushstring(L, r.nsys.sqlite_path);
      lua_setfield(L, -2, "sqlite_path");
      set_num(L, "export_s", r.nsys.export_s);
    }
    lua_setfield(L, -2, "profile");
  }
  if (rc == KE_INTERRUPTED) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "interrupted");
  }
  return 1;
}

/* ---- trace ---- */

static int l_trace_summary(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  ke_trace_opts o = {NULL, 0, 5};
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "phases");
    if (lua_istable(L, -1)) o.phases = string_list(L, -1);
    o.short_kernel_names = strcmp(opt_string(L, 2, "kernel_names", "demangled"), "short") == 0;
    o.top_kernels = (int)opt_number(L, 2, "top_kernels", 5);
  }
  char *json = NULL;
  char err[1024];
  if (ke_trace_summary(path, &o, &json, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, json);
  free(json);
  return 1;
}

static int l_nsys_export(lua_State *L) {
  const char *rep = luaL_checkstring(L, 1);
  const char *sqlite = luaL_checkstring(L, 2);
  const char *bin = luaL_optstring(L, 3, "nsys");
  const char *log = luaL_optstring(L, 4, "/dev/null");
  char err[1024];
  if (ke_nsys_export(bin, rep, sqlite, log, 600, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- fs and misc ---- */

static int push_result(lua_State *L, int rc, const char *err) {
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_write_atomic(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  int mode = (int)luaL_optinteger(L, 3, 0644);
  char err[512];
  return push_result(L, ke_write_atomic(path, data, n, mode, err, sizeof err), err);
}

static int l_mkdir_p(lua_State *L) {
  char err[512];
  return push_result(L, ke_mkdir_p(luaL_checkstring(L, 1), err, sizeof err), err);
}

static int l_remove_tree(lua_State *L) {
  char err[512];
  return push_result(L, ke_remove_tree(luaL_checkstring(L, 1), err, sizeof err), err);
}

static int l_exists(lua_State *L) {
  lua_pushboolean(L, ke_exists(luaL_checkstring(L, 1)));
  return 1;
}

static int l_is_dir(lua_State *L) {
  lua_pushboolean(L, ke_is_dir(luaL_checkstring(L, 1)));
  return 1;
}

/* Points link at target, replacing an existing link atomically. */
static int l_symlink(lua_State *L) {
  const char *target = luaL_checkstring(L, 1);
  const char *link = luaL_checkstring(L, 2);
  const char *tmp = lua_pushfstring(L, "%s.tmp.%d", link, (int)getpid());
  unlink(tmp);
  char err[512];
  if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
    snprintf(err, sizeof err, "cannot point '%s' at '%s': %s", link, target, strerror(errno));
    unlink(tmp);
    return push_result(L, -1, err);
  }
  return push_result(L, 0, "");
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, ke_now());
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_pushboolean(L, ke_sleep_interruptible(luaL_checknumber(L, 1)) == 0);
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_interrupted(lua_State *L) {
  int sig = ke_interrupted();
  if (sig) lua_pushinteger(L, sig);
  else lua_pushnil(L);
  return 1;
}

static int l_port_in_use(lua_State *L) {
  int r = ke_port_in_use(luaL_checkstring(L, 1), (int)luaL_checkinteger(L, 2));
  if (r < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot resolve host '%s'", lua_tostring(L, 1));
    return 2;
  }
  lua_pushboolean(L, r);
  return 1;
}

/* CPU seconds (user + system) this process has used: for benchmarks. */
static int l_cpu_seconds(lua_State *L) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  lua_pushnumber(L, (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
                        ru.ru_stime.tv_usec * 1e-6);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

int luaopen_knob(lua_State *L) {
  static const luaL_Reg proc_methods[] = {
      {"wait_ready", l_proc_wait_ready}, {"stop", l_proc_stop}, {"pid", l_proc_pid},
      {"exited", l_proc_exited}, {NULL, NULL}};
  if (luaL_newmetatable(L, PROC_MT)) {
    luaL_newlib(L, proc_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_proc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_proc_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {
      {"evaluate", l_evaluate},         {"replay", l_replay},
      {"spawn", l_spawn},               {"trace_summary", l_trace_summary},
      {"nsys_export", l_nsys_export},   {"write_atomic", l_write_atomic},
      {"mkdir_p", l_mkdir_p},           {"remove_tree", l_remove_tree},
      {"exists", l_exists},             {"is_dir", l_is_dir},
      {"symlink", l_symlink},           {"now", l_now},
      {"sleep", l_sleep},               {"isatty", l_isatty},
      {"interrupted", l_interrupted},   {"port_in_use", l_port_in_use},
      {"getpid", l_getpid},             {"cpu_seconds", l_cpu_seconds},
      {NULL, NULL}};
  luaL_newlib(L, funcs);
  ke_luadb_register(L, -1);
  lua_pushstring(L, KNOB_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
