/* host.c - see host.h. */
#include "host.h"

#include <lauxlib.h>
#include <limits.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "knob.h"

static int has_modules(const char *root) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/lua/knobengine/main.lua", root);
  return access(p, R_OK) == 0;
}

static int find_root(char *out, size_t outlen) {
  const char *env = getenv("KNOBENGINE_LUA_PATH");
  if (env && *env) {
    snprintf(out, outlen, "%s", env);
    return has_modules(out) ? 0 : -1;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(out, outlen, "%s/../share/knobengine", exe);
    if (has_modules(out)) return 0;
  }
  snprintf(out, outlen, "%s", KNOB_SOURCE_DIR);
  return has_modules(out) ? 0 : -1;
}

static int msg_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  const char *debug = getenv("KNOBENGINE_DEBUG");
  if (debug && *debug && strcmp(debug, "0") != 0) luaL_traceback(L, L, msg, 1);
  else lua_pushstring(L, msg);
  return 1;
}

lua_State *ke_host_open(char *err, size_t errlen) {
  char root[PATH_MAX];
  if (find_root(root, sizeof root)) {
    snprintf(err, errlen,
             "cannot find the knobengine Lua modules (looked for lua/knobengine/main.lua in "
             "$KNOBENGINE_LUA_PATH, <prefix>/share/knobengine and %s)",
             KNOB_SOURCE_DIR);
    return NULL;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    snprintf(err, errlen, "cannot create Lua state (out of memory)");
    return NULL;
  }
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_cjson);
  lua_setfield(L, -2, "cjson");
  lua_pushcfunction(L, luaopen_knob);
  lua_setfield(L, -2, "knob");
  lua_pop(L, 1);
  /* only bundled modules: a user's LUA_PATH must not shadow them */
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  /* knob.root tells Lua where strategies/ is */
  luaL_requiref(L, "knob", luaopen_knob, 0);
  lua_pushstring(L, root);
  lua_setfield(L, -2, "root");
  lua_pop(L, 1);
  return L;
}

/* {argv[1], ..., argv[argc-1]}: the arguments without the program name */
static void push_args(lua_State *L, int argc, char **argv) {
  lua_createtable(L, argc, 0);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
}

static int report(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "knobengine: %s\n", msg ? msg : "(error)");
  lua_pop(L, 1);
  return 1;
}

int ke_host_run(lua_State *L, const char *module, int argc, char **argv) {
  lua_pushcfunction(L, msg_handler);
  int h = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  if (lua_pcall(L, 1, 1, h) != LUA_OK) return report(L);
  lua_getfield(L, -1, "main");
  push_args(L, argc, argv);
  if (lua_pcall(L, 1, 1, h) != LUA_OK) return report(L);
  int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  lua_settop(L, h - 1);
  return code;
}

int ke_host_run_file(lua_State *L, const char *path, int argc, char **argv) {
  lua_pushcfunction(L, msg_handler);
  int h = lua_gettop(L);
  /* as the lua interpreter does: arg[0] is the script, arg[1..] its arguments */
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  if (luaL_loadfile(L, path) != LUA_OK) return report(L);
  if (lua_pcall(L, 0, 0, h) != LUA_OK) return report(L);
  lua_settop(L, h - 1);
  return 0;
}
