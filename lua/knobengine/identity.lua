-- The identity of a baseline: everything that decides its numbers (the server command
-- and environment without knobs, where it listens, the workload, the dataset's
-- content). Recorded in baseline/config.json; a search whose config has another
-- identity refuses to compare against it.
local knob = require("knob")
local config = require("knobengine.config")
local util = require("knobengine.util")

local M = {}

local WORKLOAD_KEYS = { "endpoint", "model", "concurrency", "request_count", "max_new_tokens", "warmup_requests",
  "request_timeout_s", "seed", "stream", "repeats" }

function M.of(cfg, dataset_hash)
  local r = config.resolve(cfg, 0)
  local w = {}
  for _, k in ipairs(WORKLOAD_KEYS) do w[k] = cfg.workload[k] end
  return {
    argv = util.array(r.argv), env = r.env, server = { host = cfg.server.host, port = cfg.server.port },
    workload = w, dataset_sha = dataset_hash,
  }
end

-- The identity recorded with a baseline (config.json), or what an older baseline's
-- config.json still tells (no dataset hash then).
function M.recorded(conf)
  if type(conf.identity) == "table" then return conf.identity end
  local w = {}
  for _, k in ipairs(WORKLOAD_KEYS) do w[k] = type(conf.workload) == "table" and conf.workload[k] or nil end
  return { argv = conf.argv, env = conf.env, server = conf.server and { host = conf.server.host, port = conf.server.port },
    workload = w }
end

local function shown(v)
  if v == nil then return "(unset)" end
  if type(v) == "number" and math.tointeger(v) then return tostring(math.tointeger(v)) end
  if type(v) == "table" then return (util.json(v):gsub("%s+", " "):gsub(" $", "")) end
  return tostring(v)
end

local function clip(s) return #s > 120 and s:sub(1, 117) .. "..." or s end

-- What differs between the recorded identity and the current one, as short phrases;
-- parts an older baseline did not record are not compared.
function M.differences(old, new)
  local out = {}
  local function cmp(name, a, b)
    if a ~= nil and shown(a) ~= shown(b) then out[#out + 1] = clip(string.format("%s: %s -> %s", name, shown(a), shown(b))) end
  end
  cmp("server command", old.argv, new.argv)
  local keys = {}
  for k in pairs(old.env or {}) do keys[k] = true end
  for k in pairs(new.env or {}) do keys[k] = true end
  local sorted = {}
  for k in pairs(keys) do sorted[#sorted + 1] = k end
  table.sort(sorted)
  if old.env then
    for _, k in ipairs(sorted) do cmp("env " .. k, old.env[k] or "(unset)", new.env[k] or "(unset)") end
  end
  if old.server then cmp("server.host", old.server.host, new.server.host); cmp("server.port", old.server.port, new.server.port) end
  for _, k in ipairs(WORKLOAD_KEYS) do
    if old.workload then cmp("workload." .. k, old.workload[k], new.workload[k]) end
  end
  if old.dataset_sha and old.dataset_sha ~= new.dataset_sha then out[#out + 1] = "the dataset's content" end
  return out
end

return M
