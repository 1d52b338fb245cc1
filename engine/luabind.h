/* luabind.h - the `knob` Lua module: the C core as Lua functions.
 *
 * Conventions: functions that can fail return nil plus a message (Lua callers raise
 * with context); argument type errors raise at once (they are programming errors).
 * Missing metric values are pushed as cjson.null (light userdata NULL) so they
 * survive into JSON as null. */
#ifndef KNOB_LUABIND_H
#define KNOB_LUABIND_H
#include <lua.h>

int luaopen_knob(lua_State *L);

#endif
