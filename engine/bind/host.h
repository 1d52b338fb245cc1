/* host.h - the Lua host: one state with the standard libraries, cjson and knob
 * preloaded, and package.path pointing at the bundled Lua modules.
 *
 * The module root (a directory holding lua/ and strategies/) is, in order: the
 * KNOBENGINE_LUA_PATH environment variable, <exe>/../share/knobengine (installed),
 * the source tree the binary was built from. Errors: ke_host_open returns NULL with a
 * message; ke_host_run returns the exit code (1 after printing a Lua error as one
 * stderr line with its script position; set KNOBENGINE_DEBUG=1 for a traceback). */
#ifndef KNOB_HOST_H
#define KNOB_HOST_H
#include <lua.h>
#include <stddef.h>

lua_State *ke_host_open(char *err, size_t errlen);
/* Calls require(module).main(args) with args = {argv[1..argc-1]}; returns its integer
 * result as the exit code. */
int ke_host_run(lua_State *L, const char *module, int argc, char **argv);
/* Runs a Lua file with arg = {argv...}; returns 0, or 1 on error (printed). */
int ke_host_run_file(lua_State *L, const char *path, int argc, char **argv);

#endif
