/* knob.h - the `knob` Lua module: the C core (engine/) as Lua functions.
 *
 * This directory is the only place where the Lua C API meets the core. The contract
 * every function keeps is docs/lua-api.md.
 * Conventions: functions that can fail return nil plus a message (Lua callers raise
 * with context); argument type errors raise at once (they are programming errors).
 * Missing values are pushed as cjson.null (light userdata NULL) so they survive into
 * JSON as null. The module is split by concern: knob.c (the module table, files,
 * clocks), knob_trial.c (evaluate, replay, metric_names, server_metrics), knob_trace.c (trace summary,
 * nsys export), knob_proc.c (processes), luadb.c (SQLite); the helpers they all use are
 * lhelp.h, which depends on none of them.
 * Ownership: the module table belongs to the Lua state; nothing here keeps C memory
 * across calls (userdata carry what must live longer). Errors: as the conventions
 * above; luaopen_knob itself raises only when Lua runs out of memory. */
#ifndef KNOB_BIND_KNOB_H
#define KNOB_BIND_KNOB_H
#include <lua.h>

int luaopen_knob(lua_State *L);

/* Registration of each part into the module table at index t. */
void ke_bind_trial(lua_State *L, int t);
void ke_bind_trace(lua_State *L, int t);
void ke_bind_proc(lua_State *L, int t);

#endif
