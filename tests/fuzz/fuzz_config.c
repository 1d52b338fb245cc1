/* libFuzzer target: the config loader (lua/knobengine/config.lua) in the real Lua host.
 *
 * Any input must either load or be refused with a usage error (exit code 2 in the
 * CLI). A Lua runtime error inside the validator (indexing a number, comparing a table)
 * would reach users as a crash-like message: it aborts here.
 *
 * The validator is Lua, which libFuzzer cannot see into, so coverage feedback is
 * blind here. Besides the raw bytes, the input therefore also drives structural
 * mutations of the valid default config (replace a value with one of another type,
 * delete a key, add an unknown one), keys walked in sorted order so a crash replays. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "host.h"

static lua_State *L;

static const char *CHECK =
    "local data = ...\n"
    "local cjson = require('cjson')\n"
    "local knob = require('knob')\n"
    "local config = require('knobengine.config')\n"
    "local errors = require('knobengine.errors')\n"
    "local function check(text)\n"
    "  local ok, err = pcall(config.parse, text, 'fuzz.json')\n"
    "  if not ok and not errors.is(err) then return tostring(err) end\n"
    "end\n"
    "local e = check(data)\n"
    "if e then return e end\n"
    "local f = assert(io.open(knob.root .. '/optimizations.json'))\n"
    "local base = cjson.decode(f:read('a'))\n"
    "f:close()\n"
    "local pos = 0\n"
    "local function byte() pos = pos + 1; return data:byte(pos) or 0 end\n"
    "local values = { 0, -1, 1.5, 1e300, '', 'x{port}', true, cjson.null, {}, {1, 2}, {a = 1},\n"
    "  string.rep('k', 300), 'fp8', '/v1/completions', 70000 }\n"
    "local paths = {}\n"
    "local function walk(t)\n"
    "  local keys = {}\n"
    "  for k in pairs(t) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  for _, k in ipairs(keys) do\n"
    "    paths[#paths + 1] = { t, k }\n"
    "    if type(t[k]) == 'table' then walk(t[k]) end\n"
    "  end\n"
    "end\n"
    "walk(base)\n"
    "for _ = 1, byte() % 4 + 1 do\n"
    "  local p = paths[byte() % #paths + 1]\n"
    "  local op, v = byte() % 3, values[byte() % #values + 1]\n"
    "  if op == 0 then p[1][p[2]] = v elseif op == 1 then p[1][p[2]] = nil else p[1]['zz' .. byte()] = v end\n"
    "end\n"
    "local ok, text = pcall(cjson.encode, base)\n"
    "if ok then return check(text) end\n"
    "return nil\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    char err[512];
    L = ke_host_open(err, sizeof err);
    if (!L) {
      fprintf(stderr, "%s\n", err);
      abort();
    }
  }
  if (luaL_loadstring(L, CHECK) != LUA_OK) abort();
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "harness error: %s\n", lua_tostring(L, -1));
    abort();
  }
  if (!lua_isnil(L, -1)) {
    fprintf(stderr, "config loader raised a non-usage error: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
