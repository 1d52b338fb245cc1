/* lhelp.h - small Lua helpers the binding layer's parts share (knob.c, knob_trial.c,
 * knob_proc.c, knob_trace.c): reading fields of argument tables, setting fields of
 * result tables, and the `true` / `nil, message` return convention (knob.h).
 * It depends on nothing else of the binding layer: the parts include it, never the
 * other way round.
 * Ownership: strings read from a table are borrowed from it (it must stay referenced);
 * arrays built here are userdata left on the stack, collected by Lua. Errors: a field of
 * the wrong type raises (luaL_check*): argument errors are programming errors. */
#ifndef KNOB_BIND_LHELP_H
#define KNOB_BIND_LHELP_H
#include <lua.h>

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
void ke_set_null(lua_State *L, const char *key); /* cjson.null */
/* Returns nil, message (2 values) when rc != 0, else true. */
int ke_push_status(lua_State *L, int rc, const char *err);

#endif
