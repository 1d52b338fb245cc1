/* luadb.h - a small SQLite binding for Lua, used for the search history.
 *
 *   local db, err = knob.db_open(path)          -- creates the file if needed
 *   db:exec(sql, ...)                           -- parameters bound to ?1, ?2, ...
 *   local rows = db:rows(sql, ...)              -- array of {column = value}
 *   db:close()
 *   knob.hash64(string) -> 16 hex digits (FNV-1a; identity, not security)
 *
 * Errors: db_open returns nil, message; exec and rows raise with the SQL error (a
 * broken history is a bug or a damaged file, not a trial failure). Values: integers,
 * numbers, strings; nil binds NULL. The handle is closed by __gc/__close too. */
#ifndef KNOB_LUADB_H
#define KNOB_LUADB_H
#include <lua.h>

void ke_luadb_register(lua_State *L, int knob_table);

#endif
