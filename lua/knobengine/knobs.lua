-- What a knob setting means: a knob's value at a value index, its label, and the
-- server command (argv and environment) of a mask. Pure functions of the config's
-- knobs (config.lua validates them; space.lua numbers their combinations).
local util = require("knobengine.util")

local M = {}

-- The number of value indices of a knob: 2 for on/off, else its values (+1 unset).
function M.radix(knob)
  if not knob.values then return 2 end
  return #knob.values + (knob.unset and 1 or 0)
end

-- The value a knob gets at value index d: nil when unset (index 0 of an on/off knob,
-- or of a knob with values and "unset"); for an on/off knob, true or its on_value.
function M.value(knob, d)
  if not knob.values then
    if d == 0 then return nil end
    return knob.on_value or true
  end
  if knob.unset then
    if d == 0 then return nil end
    return knob.values[d]
  end
  return knob.values[d + 1]
end

-- The label of a knob at value index d: its name for an on/off knob that is on,
-- name=value for a knob with values, nil when unset.
function M.label(knob, d)
  local v = M.value(knob, d)
  if v == nil then return nil end
  if not knob.values then return knob.name end
  return knob.name .. "=" .. v
end

local function subst_port(s, port) return (s:gsub("{port}", tostring(port))) end

-- The server command of a mask: argv, env (config env + knob env) and the labels of
-- the knobs it sets (knob_label).
function M.resolve(cfg, mask)
  local port = cfg.server.port
  local argv, env, on = {}, {}, {}
  for i, a in ipairs(cfg.serve_cmd) do argv[i] = subst_port(a, port) end
  for k, v in pairs(cfg.env) do env[k] = subst_port(v, port) end
  for i, k in ipairs(cfg.knobs) do
    local d = cfg.space:digit(mask, i)
    local v = M.value(k, d)
    if v ~= nil then
      on[#on + 1] = M.label(k, d)
      if k.flag then argv[#argv + 1] = k.flag
      elseif k.key then argv[#argv + 1] = k.key; argv[#argv + 1] = v
      else env[k.env] = subst_port(v, port) end
    end
  end
  return { mask = mask, mask_string = cfg.space:string(mask), argv = argv, env = env, knobs_on = on }
end

-- An environment as sorted NAME=value words, each value shell-quoted.
function M.env_words(env)
  local keys, words = {}, {}
  for k in pairs(env) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do words[i] = k .. "=" .. util.shell_quote(tostring(env[k])) end
  return words
end

-- A shell script that starts the server as resolved (best_command.sh, command.sh):
-- every value shell-quoted; what: the comment's name of the config.
function M.command_script(resolved, what)
  local lines = { "#!/bin/sh", "# " .. what .. "; every argument is shell-quoted.", "set -e" }
  for _, w in ipairs(M.env_words(resolved.env)) do lines[#lines + 1] = "export " .. w end
  lines[#lines + 1] = "exec " .. util.shell_join(resolved.argv) .. ' "$@"'
  return table.concat(lines, "\n") .. "\n"
end

return M
