/* knob.h - the `knob` Lua module: the C core (engine/) as Lua functions.
 *
 * This directory is the only place where the Lua C API meets the core. The contract
 * every function keeps is docs/lua-api.md.
 * Conventions: functions that can fail return nil plus a message (Lua callers raise
 * with context); argument type errors raise at once (they are programming errors).
 * Missing values are pushed as cjson.null (light userdata NULL) so they survive into
 * JSON as null. The module is split by concern: knob.c (registration, files, clocks),
 * knob_trial.c (evaluate, replay), knob_trace.c (trace summary, nsys export),
 * knob_proc.c (processes), luadb.c (SQLite). */
#ifndef KNOB_BIND_KNOB_H
#define KNOB_BIND_KNOB_H
#include <lua.h>

int luaopen_knob(lua_State *L);

/* Registration of each part into the module table at index t. */
void ke_bind_trial(lua_State *L, int t);
void ke_bind_trace(lua_State *L, int t);
void ke_bind_proc(lua_State *L, int t);

/* ---- helpers shared by the parts (knob.c) ---- */

/* t[key] as a string / number / boolean, def when nil; a wrong type raises. Strings
 * stay valid while the table is referenced. */
const char *ke_opt_string(lua_State *L, int t, const char *key, const char *def);
double ke_opt_number(lua_State *L, int t, const char *key, double def);
int ke_opt_bool(lua_State *L, int t, const char *key, int def);
/* A NULL-terminated array of the strings of the list at index t, borrowed from the
 * table (which must stay referenced); the array is a userdata left on the stack. */
const char **ke_string_list(lua_State *L, int t);
/* {NAME = value} (or nil) as "NAME=value" strings; leaves a table and the array
 * userdata on the stack. */
const char **ke_env_list(lua_State *L, int t);
/* Sets key in the table on top: a number, or cjson.null when v is NaN or infinite. */
void ke_set_num(lua_State *L, const char *key, double v);
void ke_set_int(lua_State *L, const char *key, long long v);
void ke_set_str(lua_State *L, const char *key, const char *s); /* NULL: cjson.null */
void ke_set_bool(lua_State *L, const char *key, int b);
/* Returns nil, message (2 values) when rc != 0, else true. */
int ke_push_status(lua_State *L, int rc, const char *err);

#endif
