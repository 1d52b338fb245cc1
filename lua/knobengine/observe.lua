-- What a replay watches besides its own requests (docs/files.md "Server metrics",
-- "GPU telemetry"): the server's Prometheus endpoint and the GPUs during the measured
-- phase, the prefix-cache reset before it, and a multi-turn workload's conversations.
-- The one place that adds these fields to a replay table (knob.replay, docs/lua-api.md)
-- and names their files: a phase's `requests*.csv` has `server_metrics*.csv` and
-- `gpu_telemetry*.csv` beside it.
local cjson = require("cjson")
local util = require("knobengine.util")

local M = {}

M.FILES = { server_metrics = "server_metrics", gpu = "gpu_telemetry" }

-- The file of `kind` beside a phase's requests CSV (requests-03.csv ->
-- server_metrics-03.csv, profiled_requests.csv -> profiled_server_metrics.csv).
function M.companion(requests_csv, kind)
  if not requests_csv then return nil end
  local dir, before, after = requests_csv:match("^(.-)([^/]*)requests([^/]*)$")
  if not dir then return nil end
  return dir .. before .. M.FILES[kind] .. after
end

-- Whether a file name is one of a phase's companion files (server_metrics-2.csv, ...).
function M.is_companion(name)
  for _, stem in pairs(M.FILES) do
    if name:match("^" .. stem .. "[%-%d]*%.csv$") then return true end
  end
  return false
end

-- The GPUs a server was given, as NVML indices, from its CUDA_VISIBLE_DEVICES (nil:
-- every GPU; a UUID or MIG name cannot be mapped, so every GPU too).
function M.devices(env)
  local v = env and env.CUDA_VISIBLE_DEVICES
  if type(v) ~= "string" or not v:match("^%d+[%d,]*$") then return nil end
  local out = {}
  for d in v:gmatch("%d+") do out[#out + 1] = tonumber(d) end
  return out
end

-- server.metrics_names as knob.replay takes it: every value a list.
local function names(map)
  local out, any = {}, false
  for key, v in pairs(map or {}) do
    out[key] = type(v) == "string" and { v } or v
    any = true
  end
  return any and out or nil
end

-- Adds the watching fields to replay table t of a phase whose requests go to
-- t.requests_csv; base: the server's base URL; env: its environment (its GPUs). ctx.turns (a multi-turn
-- workload) applies when the phase sends the workload's own bodies.
function M.add(ctx, t, base, env)
  local cfg, s = ctx.cfg, ctx.cfg.server
  if s.metrics_path ~= "" then
    t.server_metrics = { url = base .. s.metrics_path,
      interval_ms = s.metrics_interval_ms, csv = M.companion(t.requests_csv, "server_metrics"),
      names = names(s.metrics_names) }
  else
    t.server_metrics = { off = "off (server.metrics_path is \"\")" }
  end
  if cfg.telemetry.gpu then t.gpu = { devices = M.devices(env), csv = M.companion(t.requests_csv, "gpu") } end
  if s.reset_prefix_cache then t.reset_url = base .. "/reset_prefix_cache" end
  if ctx.turns and t.bodies == ctx.bodies and not t.schedule then
    t.continues, t.think_s = ctx.turns.continues, cfg.workload.multi_turn.think_time_ms / 1000
  end
  return t
end

-- Multi-turn: each turn's figures from a phase's requests CSV (request i sent body
-- i mod #bodies): {turn, requests, completed, ttft_ms_p50, latency_ms_p50} by turn, or
-- nil for a workload of single requests. Percentiles by the engine's rule (compare.lua).
function M.per_turn(ctx, requests_csv)
  if not ctx.turns or not requests_csv then return nil end
  local rows = require("knobengine.csv").read(requests_csv)
  if not rows then return nil end
  local quantile, by, n = require("knobengine.compare").quantile, {}, #ctx.bodies
  for _, r in ipairs(rows) do
    local t = ctx.turns.turn[tonumber(r.request) % n + 1]
    local b = by[t] or { turn = t, requests = 0, completed = 0, ttft = {}, latency = {} }
    by[t] = b
    b.requests = b.requests + 1
    if r.error == "" then
      b.completed = b.completed + 1
      b.latency[#b.latency + 1] = tonumber(r.latency_ms)
      if tonumber(r.ttft_ms) then b.ttft[#b.ttft + 1] = tonumber(r.ttft_ms) end
    end
  end
  local out = {}
  for _, b in pairs(by) do
    out[#out + 1] = { turn = b.turn, requests = b.requests, completed = b.completed,
      ttft_ms_p50 = quantile(b.ttft, 0.5) or cjson.null, latency_ms_p50 = quantile(b.latency, 0.5) or cjson.null }
  end
  table.sort(out, function(x, y) return x.turn < y.turn end)
  return out
end

-- Says once per reason (stderr) when a phase had no server metrics: a server without
-- /metrics is told once, not at every trial.
local said = {}

function M.say_unavailable(m)
  local srv = type(m) == "table" and type(m.server) == "table" and m.server
  local why = srv and not util.is_null(srv.unavailable) and srv.unavailable
  if not why or said[why] or why:find("^off") then return end
  said[why] = true
  io.stderr:write(string.format("knobengine: server metrics: %s; trials are measured without them "
    .. "(server.metrics_path)\n", why))
end

return M
