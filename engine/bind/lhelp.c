/* lhelp.c - see lhelp.h. */
#include "lhelp.h"

#include <lauxlib.h>
#include <math.h>

const char *ke_opt_string(lua_State *L, int t, const char *key, const char *def) {
  lua_getfield(L, t, key);
  const char *s = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the string stays alive: the table still references it */
  return s;
}

double ke_opt_number(lua_State *L, int t, const char *key, double def) {
  lua_getfield(L, t, key);
  double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

int ke_opt_bool(lua_State *L, int t, const char *key, int def) {
  lua_getfield(L, t, key);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char **ke_string_list(lua_State *L, int t) {
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

const char **ke_env_list(lua_State *L, int t) {
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
  return ke_string_list(L, out);
}

void ke_set_num(lua_State *L, const char *key, double v) {
  if (isnan(v) || isinf(v)) lua_pushlightuserdata(L, NULL);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

void ke_set_int(lua_State *L, const char *key, long long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

void ke_set_str(lua_State *L, const char *key, const char *s) {
  if (s) lua_pushstring(L, s);
  else lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, key);
}

void ke_set_bool(lua_State *L, const char *key, int b) {
  lua_pushboolean(L, b);
  lua_setfield(L, -2, key);
}

int ke_push_status(lua_State *L, int rc, const char *err) {
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

void ke_set_null(lua_State *L, const char *key) {
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, key);
}
