/* luadb.c - see luadb.h. */
#include "luadb.h"

#include <lauxlib.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#define DB_MT "knob.db"

typedef struct { sqlite3 *db; } db_ud;

static sqlite3 *check_db(lua_State *L) {
  db_ud *u = luaL_checkudata(L, 1, DB_MT);
  if (!u->db) luaL_error(L, "database is closed");
  return u->db;
}

static int l_db_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  db_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->db = NULL;
  luaL_setmetatable(L, DB_MT);
  if (sqlite3_open_v2(path, &u->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open '%s': %s", path, u->db ? sqlite3_errmsg(u->db) : "out of memory");
    sqlite3_close(u->db);
    u->db = NULL;
    return 2;
  }
  sqlite3_busy_timeout(u->db, 5000);
  return 1;
}

/* A failure as "history database: MESSAGE [SQLITE_NAME]": the bracket tells a full or
 * failing disk from a damaged file (history.lua). */
static int db_error(lua_State *L, sqlite3 *db) {
  static const struct { int code; const char *name; } names[] = {
      {SQLITE_FULL, "SQLITE_FULL"},         {SQLITE_IOERR, "SQLITE_IOERR"},   {SQLITE_READONLY, "SQLITE_READONLY"},
      {SQLITE_CANTOPEN, "SQLITE_CANTOPEN"}, {SQLITE_CORRUPT, "SQLITE_CORRUPT"}, {SQLITE_NOTADB, "SQLITE_NOTADB"},
      {SQLITE_BUSY, "SQLITE_BUSY"},         {SQLITE_LOCKED, "SQLITE_LOCKED"}, {SQLITE_NOMEM, "SQLITE_NOMEM"}};
  int code = sqlite3_errcode(db) & 0xff;
  const char *name = "SQLITE_ERROR";
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].code == code) name = names[i].name;
  return luaL_error(L, "history database: %s [%s]", sqlite3_errmsg(db), name);
}

static sqlite3_stmt *prepare(lua_State *L, sqlite3 *db) {
  const char *sql = luaL_checkstring(L, 2);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) db_error(L, db);
  int n = lua_gettop(L);
  for (int i = 3; i <= n; i++) {
    int idx = i - 2, rc;
    switch (lua_type(L, i)) {
      case LUA_TNIL: rc = sqlite3_bind_null(st, idx); break;
      case LUA_TBOOLEAN: rc = sqlite3_bind_int(st, idx, lua_toboolean(L, i)); break;
      case LUA_TNUMBER:
        rc = lua_isinteger(L, i) ? sqlite3_bind_int64(st, idx, lua_tointeger(L, i))
                                 : sqlite3_bind_double(st, idx, lua_tonumber(L, i));
        break;
      default: {
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);
        rc = sqlite3_bind_text(st, idx, s, (int)len, SQLITE_TRANSIENT);
      }
    }
    if (rc != SQLITE_OK) {
      sqlite3_finalize(st);
      luaL_error(L, "history database: cannot bind parameter %d", idx);
    }
  }
  return st;
}

static int l_db_exec(lua_State *L) {
  sqlite3 *db = check_db(L);
  sqlite3_stmt *st = prepare(L, db);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_error(L, db);
  lua_pushinteger(L, sqlite3_changes(db));
  return 1;
}

static int l_db_rows(lua_State *L) {
  sqlite3 *db = check_db(L);
  sqlite3_stmt *st = prepare(L, db);
  lua_newtable(L);
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    lua_newtable(L);
    for (int c = 0; c < sqlite3_column_count(st); c++) {
      switch (sqlite3_column_type(st, c)) {
        case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, c)); break;
        case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, c)); break;
        case SQLITE_NULL: lua_pushnil(L); break;
        default:
          lua_pushlstring(L, (const char *)sqlite3_column_text(st, c), (size_t)sqlite3_column_bytes(st, c));
      }
      lua_setfield(L, -2, sqlite3_column_name(st, c));
    }
    lua_rawseti(L, -2, ++n);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_error(L, db);
  return 1;
}

static int l_db_close(lua_State *L) {
  db_ud *u = luaL_checkudata(L, 1, DB_MT);
  if (u->db) sqlite3_close(u->db);
  u->db = NULL;
  return 0;
}

static int l_hash64(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  lua_pushstring(L, hex);
  return 1;
}

void ke_luadb_register(lua_State *L, int knob_table) {
  knob_table = lua_absindex(L, knob_table);
  static const luaL_Reg methods[] = {{"exec", l_db_exec}, {"rows", l_db_rows}, {"close", l_db_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, DB_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_db_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_db_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_db_open);
  lua_setfield(L, knob_table, "db_open");
  lua_pushcfunction(L, l_hash64);
  lua_setfield(L, knob_table, "hash64");
}
