/* knob_proc.c - knob.spawn and the process handle (see knob.h, docs/lua-api.md). */
#include <lauxlib.h>

#include "knob.h"
#include "lhelp.h"
#include "supervise.h"

#define PROC_MT "knob.proc"

typedef struct { ke_proc *p; } proc_ud;

static ke_proc *check_proc(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  if (!u->p) luaL_error(L, "process handle already released");
  return u->p;
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char **argv = ke_string_list(L, 1);
  const char **env = ke_env_list(L, 2);
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

/* knob.run(argv, log_path, timeout_s, cwd): runs a command to completion (no shell), in
 * directory cwd when given, its output appended to log_path; its exit status, or nil,
 * message. */
static int l_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *log = luaL_checkstring(L, 2);
  double timeout = luaL_optnumber(L, 3, 60);
  const char *cwd = luaL_optstring(L, 4, NULL);
  lua_settop(L, 4); /* the argv array below is pushed above the arguments, never read as one */
  const char **argv = ke_string_list(L, 1);
  char err[1024];
  int status = ke_run_command(argv, NULL, cwd, log, timeout, err, sizeof err);
  if (status < 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushinteger(L, status);
  return 1;
}

static int l_proc_wait_ready(lua_State *L) {
  ke_proc *p = check_proc(L);
  const char *url = luaL_checkstring(L, 2);
  double timeout = luaL_checknumber(L, 3);
  char err[2048];
  return ke_push_status(L, ke_wait_ready(p, url, timeout, err, sizeof err), err);
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

void ke_bind_proc(lua_State *L, int t) {
  static const luaL_Reg methods[] = {{"wait_ready", l_proc_wait_ready}, {"stop", l_proc_stop},
                                     {"pid", l_proc_pid},               {"exited", l_proc_exited},
                                     {NULL, NULL}};
  if (luaL_newmetatable(L, PROC_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_proc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_proc_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, t, "spawn");
  lua_pushcfunction(L, l_run);
  lua_setfield(L, t, "run");
}
