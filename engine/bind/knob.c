/* knob.c - see knob.h: the module table, and the functions of its own (files, clocks,
 * signals, the machine); the other parts register theirs into it (ke_bind_*). */
#include "knob.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "lhelp.h"
#include "luadb.h"
#include "records.h"
#include "sha256.h"
#include "sysinfo.h"
#include "supervise.h"

/* ---- files ---- */

static int l_write_atomic(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  int mode = (int)luaL_optinteger(L, 3, 0644);
  char err[512];
  return ke_push_status(L, ke_write_atomic(path, data, n, mode, err, sizeof err), err);
}

static int l_mkdir_p(lua_State *L) {
  char err[512];
  return ke_push_status(L, ke_mkdir_p(luaL_checkstring(L, 1), err, sizeof err), err);
}

static int l_remove_tree(lua_State *L) {
  char err[512];
  return ke_push_status(L, ke_remove_tree(luaL_checkstring(L, 1), err, sizeof err), err);
}

static int l_exists(lua_State *L) {
  lua_pushboolean(L, ke_exists(luaL_checkstring(L, 1)));
  return 1;
}

static int l_is_dir(lua_State *L) {
  lua_pushboolean(L, ke_is_dir(luaL_checkstring(L, 1)));
  return 1;
}

static int l_executable(lua_State *L) {
  lua_pushboolean(L, ke_is_executable(luaL_checkstring(L, 1)));
  return 1;
}

static int l_list_dir(lua_State *L) {
  char **names = ke_list_dir(luaL_checkstring(L, 1));
  if (!names) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read directory '%s'", lua_tostring(L, 1));
    return 2;
  }
  lua_newtable(L);
  for (size_t i = 0; names[i]; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  ke_free_list(names);
  return 1;
}

static int l_symlink(lua_State *L) {
  char err[1024];
  return ke_push_status(L, ke_symlink_atomic(luaL_checkstring(L, 1), luaL_checkstring(L, 2), err, sizeof err), err);
}

static int l_lock_dir(lua_State *L) {
  long holder = 0;
  char err[1024];
  int rc = ke_lock_dir(luaL_checkstring(L, 1), &holder, err, sizeof err);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  if (rc == 1) lua_pushstring(L, "busy");
  else lua_pushstring(L, err);
  lua_pushinteger(L, holder);
  return 3;
}

/* knob.records(path, layout, max_bytes): an iterator of (text, number) over a dataset
 * file's records, "lines" or "array" (records.h); raises with the file and record on
 * an error. The reader is a userdata, so it is closed even when the loop is left. */
#define RECORDS_MT "knob.records"

static int records_gc(lua_State *L) {
  ke_records **r = luaL_checkudata(L, 1, RECORDS_MT);
  ke_records_close(*r);
  *r = NULL;
  return 0;
}

static int records_step(lua_State *L) {
  ke_records **r = luaL_checkudata(L, lua_upvalueindex(1), RECORDS_MT);
  if (!*r) return 0;
  const char *text;
  size_t len;
  long number;
  char err[1024];
  int rc = ke_records_next(*r, &text, &len, &number, err, sizeof err);
  if (rc < 0) return luaL_error(L, "%s", err);
  if (rc == 0) {
    ke_records_close(*r);
    *r = NULL;
    return 0;
  }
  lua_pushlstring(L, text, len);
  lua_pushinteger(L, number);
  return 2;
}

static int l_records(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  static const char *const layouts[] = {"lines", "array", NULL};
  int layout = luaL_checkoption(L, 2, "lines", layouts);
  size_t max = (size_t)luaL_optinteger(L, 3, 16 << 20);
  ke_records **r = lua_newuserdatauv(L, sizeof *r, 0);
  *r = NULL;
  luaL_setmetatable(L, RECORDS_MT);
  char err[1024];
  *r = ke_records_open(path, layout ? KE_RECORDS_ARRAY : KE_RECORDS_LINES, max, err, sizeof err);
  if (!*r) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushcclosure(L, records_step, 1);
  return 1;
}

static int l_file_hash(lua_State *L) {
  char hex[17], err[1024];
  if (ke_file_hash(luaL_checkstring(L, 1), hex, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

static int l_file_sha256(lua_State *L) {
  char hex[65], err[1024];
  if (ke_sha256_file(luaL_checkstring(L, 1), hex, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushstring(L, hex);
  return 1;
}

/* knob.realpath(path): the absolute path with no symlinks, or nil, message. */
static int l_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *r = realpath(path, NULL);
  if (!r) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, r);
  free(r);
  return 1;
}

/* {hostname, os, kernel_release, kernel_version, machine, cpus, lua, libcurl, sqlite} */
static int l_system_info(lua_State *L) {
  ke_sysinfo si;
  ke_sysinfo_read(&si);
  lua_createtable(L, 0, 9);
  ke_set_str(L, "hostname", si.hostname);
  ke_set_str(L, "os", si.os_name);
  ke_set_str(L, "kernel_release", si.kernel_release);
  ke_set_str(L, "kernel_version", si.kernel_version);
  ke_set_str(L, "machine", si.machine);
  if (si.online_cpus > 0) ke_set_int(L, "cpus", si.online_cpus);
  else ke_set_str(L, "cpus", NULL);
  ke_set_str(L, "lua", LUA_RELEASE);
  ke_set_str(L, "libcurl", si.curl_version);
  ke_set_str(L, "sqlite", si.sqlite_version);
  return 1;
}

/* ---- clocks, signals, process ---- */

static int l_now(lua_State *L) {
  lua_pushnumber(L, ke_now());
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_pushboolean(L, ke_sleep_interruptible(luaL_checknumber(L, 1)) == 0);
  return 1;
}

static int l_cpu_seconds(lua_State *L) {
  lua_pushnumber(L, ke_cpu_seconds());
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

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
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

int luaopen_knob(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"write_atomic", l_write_atomic}, {"mkdir_p", l_mkdir_p},         {"remove_tree", l_remove_tree},
      {"exists", l_exists},             {"is_dir", l_is_dir},           {"symlink", l_symlink},
      {"now", l_now},                   {"sleep", l_sleep},             {"cpu_seconds", l_cpu_seconds},
      {"isatty", l_isatty},             {"interrupted", l_interrupted}, {"getpid", l_getpid},
      {"port_in_use", l_port_in_use},   {"lock_dir", l_lock_dir},       {"executable", l_executable},
      {"list_dir", l_list_dir},         {"records", l_records},         {"file_hash", l_file_hash},
      {"file_sha256", l_file_sha256},   {"system_info", l_system_info},
      {"realpath", l_realpath},
      {NULL, NULL}};
  if (luaL_newmetatable(L, RECORDS_MT)) {
    lua_pushcfunction(L, records_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  int t = lua_gettop(L);
  ke_bind_trial(L, t);
  ke_bind_trace(L, t);
  ke_bind_proc(L, t);
  ke_luadb_register(L, t);
  lua_pushstring(L, KNOB_VERSION);
  lua_setfield(L, t, "version");
  return 1;
}
