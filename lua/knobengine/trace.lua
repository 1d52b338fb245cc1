-- The trace summary: its shape (docs/nsys.md "Trace summary"), how a trial gets one (from an
-- export through knob.trace_summary, or empty with a reason when there is no trace),
-- and the exact text `knobengine summarize` prints.
local cjson = require("cjson")
local knob = require("knob")
local util = require("knobengine.util")

local M = {}

local NO_TRACE_KEYS = { "gpu_compute_ms", "memcpy_ms", "osrt_wait_ms" }
local LISTS = { "top_kernels", "osrt_top_waits", "nvtx_ranges", "cuda_api_top", "missing_tables" }

-- trace_summary.json and nvtx_phases.json contents when there is no trace.
function M.empty(cfg, reason)
  local summary = { ok = false, reason = reason, top_kernels = util.array({}) }
  for _, k in ipairs(NO_TRACE_KEYS) do summary[k] = cjson.null end
  local phases = {}
  for _, p in ipairs(cfg.nsys.phases) do phases[p] = cjson.null end
  return summary, phases
end

-- Lists of the GPU metrics (and of the top kernels' split by device) as JSON arrays.
local function mark_arrays(s)
  for _, k in ipairs(s.top_kernels) do
    if type(k.devices) == "table" then util.array(k.devices) end
  end
  if type(s.gpu_metrics) ~= "table" then return end
  for _, d in pairs(s.gpu_metrics) do
    util.array(d.headline)
    util.array(d.kernels)
    if type(d.timeline) == "table" then
      util.array(d.timeline.t_ms)
      for _, series in pairs(d.timeline.series) do util.array(series) end
    end
  end
end

-- The summary table of an export (lists marked as JSON arrays), or nil, message.
-- top_kernels: how many kernels to list (default 5; "all": every one). gpu_metrics
-- (optional): {wanted = the capture asked for them, log = nsys's output of the capture},
-- which say why an export has none (docs/nsys.md "GPU metrics").
function M.read(path, phases, kernel_names, top_kernels, gpu_metrics)
  local gm = gpu_metrics or {}
  local s, err = knob.trace_summary(path, { phases = phases, kernel_names = kernel_names, top_kernels = top_kernels,
    gpu_metrics = gm.wanted == true, diagnostics_log = gm.log })
  if not s then return nil, err end
  for _, k in ipairs(LISTS) do
    if type(s[k]) == "table" then util.array(s[k]) end
  end
  util.array(s.environment.gpus)
  mark_arrays(s)
  return s
end

M.TOP_KERNELS = 5 -- kernels in a trace summary (kernels.csv has every one)

-- The GPU metrics of a summary with only the kernels of its top list.
local function gpu_metrics_of_top(gm, top)
  if type(gm) ~= "table" then return gm end
  local listed, out = {}, {}
  for _, k in ipairs(top) do listed[k.name] = true end
  for device, d in pairs(gm) do
    local copy = {}
    for k, v in pairs(d) do copy[k] = v end
    copy.kernels = util.array({})
    for _, k in ipairs(d.kernels) do
      if listed[k.name] then copy.kernels[#copy.kernels + 1] = k end
    end
    out[device] = copy
  end
  return out
end

-- Summarizes a trial's export, read once: summary (without phases, its top kernels
-- only), phases, and the whole read (every kernel: the tables' source). Never raises: a
-- trace that cannot be read gives the empty summary with the reason. nsys (optional):
-- the trial's nsys spec (trial.lua), whose log_path says why a capture that asked for
-- GPU metrics has none, and gpu_metrics_unsupported why this nsys could not ask.
function M.summarize(cfg, sqlite_path, nsys)
  local wanted = cfg.nsys.gpu_metrics ~= false and cfg.nsys.gpu_metrics ~= nil
  local all, err = M.read(sqlite_path, cfg.nsys.phases, cfg.nsys.kernel_names, "all",
    { wanted = wanted, log = wanted and nsys and nsys.log_path or nil })
  if not all then return M.empty(cfg, err) end
  local summary = {}
  for k, v in pairs(all) do summary[k] = v end
  summary.top_kernels = util.array({ table.unpack(all.top_kernels, 1, math.min(#all.top_kernels, M.TOP_KERNELS)) })
  summary.gpu_metrics = gpu_metrics_of_top(all.gpu_metrics, summary.top_kernels)
  if util.is_null(summary.gpu_metrics) and nsys and nsys.gpu_metrics_unsupported then
    summary.gpu_metrics_reason = nsys.gpu_metrics_unsupported
  end
  local phases = summary.nvtx_phases
  summary.nvtx_phases = nil
  return summary, phases, all
end

-- ---- the text of `knobengine summarize`: fixed key order, numbers as %.6f ----

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function str(s)
  if util.is_null(s) then return "null" end
  return '"' .. util.valid_utf8(s):gsub('[%z\1-\31"\\]', function(c) return ESCAPES[c] or string.format("\\u%04x", c:byte()) end) .. '"'
end

local function num(v)
  if util.is_null(v) then return "null" end
  if math.type(v) == "integer" then return string.format("%d", v) end
  return string.format("%.6f", v)
end

local function value(v)
  if type(v) == "string" then return str(v) end
  if type(v) == "boolean" then return tostring(v) end
  return num(v)
end

-- {"k": v, ...} on one line, keys in the given order (absent keys left out).
local function inline(obj, keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = obj[k]
    if v ~= nil then parts[#parts + 1] = str(k) .. ": " .. value(v) end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- A list of one-line objects, one per line ("[]" when empty).
local function list(items, keys)
  if util.is_null(items) then return "null" end
  if #items == 0 then return "[]" end
  local lines = {}
  for i, it in ipairs(items) do lines[i] = "    " .. inline(it, keys) end
  return "[\n" .. table.concat(lines, ",\n") .. "\n  ]"
end

-- An object of one-line objects in the given key order (only keys present).
local function object(obj, order, keys)
  if util.is_null(obj) then return "null" end
  local lines = {}
  for _, k in ipairs(order) do
    local v = obj[k]
    if v ~= nil then lines[#lines + 1] = "    " .. str(k) .. ": " .. (util.is_null(v) and "null" or inline(v, keys)) end
  end
  if #lines == 0 then return "{}" end
  return "{\n" .. table.concat(lines, ",\n") .. "\n  }"
end

local COPY_KINDS = { "Unknown", "HtoD", "DtoH", "HtoA", "AtoH", "AtoA", "AtoD", "DtoA", "DtoD", "HtoH", "PtoP" }

local function busy(b)
  if util.is_null(b) then return "null" end
  local devices = {}
  for d in pairs(b) do devices[#devices + 1] = d end
  table.sort(devices, function(x, y) return tonumber(x) < tonumber(y) end)
  local parts = {}
  for i, d in ipairs(devices) do parts[i] = str(d) .. ": " .. num(b[d]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function phases_text(s, names)
  local p = s.nvtx_phases
  if not util.is_null(s.nvtx_ranges) or #names == 0 then
    return object(p, names, { "total_ms", "count", "mean_ms", "percent" })
  end
  local parts = {}
  for i, name in ipairs(names) do parts[i] = str(name) .. ": null" end
  return "{" .. table.concat(parts, ", ") .. "}" -- the export has no NVTX ranges: one line
end

-- gpu_metrics: per device (by id), the window, samples, each metric, the headline
-- metrics, the top kernels' means of them and the headline metrics' timeline; null,
-- then gpu_metrics_reason says why.
local WINDOW_KEYS = { "start_ns", "end_ns", "duration_ms", "basis" }
local METRIC_KEYS = { "mean", "p50", "max", "samples" }

-- The timeline: t_ms, then the series: each headline metric's bucket means, a line each.
local function timeline_text(tl, headline, ind)
  if type(tl) ~= "table" then return "null" end
  local function list(values)
    local out = {}
    for i, v in ipairs(values) do out[i] = num(v) end
    return "[" .. table.concat(out, ", ") .. "]"
  end
  local series = {}
  for _, name in ipairs(headline) do
    if tl.series[name] then series[#series + 1] = ind .. "  " .. str(name) .. ": " .. list(tl.series[name]) end
  end
  return "{\n" .. ind .. str("t_ms") .. ": " .. list(tl.t_ms) .. ",\n" .. ind .. str("series") .. ": {\n"
    .. table.concat(series, ",\n") .. "\n" .. ind .. "}\n      }"
end

local function device_text(d)
  local ind = "        "
  local names = {}
  for name in pairs(d.metrics) do names[#names + 1] = name end
  table.sort(names)
  local metrics = {}
  for i, name in ipairs(names) do metrics[i] = ind .. str(name) .. ": " .. inline(d.metrics[name], METRIC_KEYS) end
  local headline = {}
  for i, name in ipairs(d.headline) do headline[i] = str(name) end
  local kernels = {}
  for i, k in ipairs(d.kernels) do
    kernels[i] = ind .. "{" .. str("name") .. ": " .. str(k.name) .. (k.graph and ', "graph": true' or "")
      .. ', "samples": ' .. num(k.samples) .. ', "means": ' .. inline(k.means, d.headline) .. "}"
  end
  local function block(open, lines, close)
    return #lines == 0 and open .. close or open .. "\n" .. table.concat(lines, ",\n") .. "\n      " .. close
  end
  return "{\n      \"window\": " .. (util.is_null(d.window) and "null" or inline(d.window, WINDOW_KEYS))
    .. ",\n      \"samples\": " .. num(d.samples)
    .. ",\n      \"metrics\": " .. block("{", metrics, "}")
    .. ",\n      \"headline\": [" .. table.concat(headline, ", ") .. "]"
    .. ",\n      \"kernels\": " .. block("[", kernels, "]")
    .. ",\n      \"timeline\": " .. timeline_text(d.timeline, d.headline, ind) .. "\n    }"
end

local function gpu_metrics_text(gm)
  if util.is_null(gm) then return "null" end
  local devices = {}
  for d in pairs(gm) do devices[#devices + 1] = d end
  table.sort(devices, function(x, y) return tonumber(x) < tonumber(y) end)
  local lines = {}
  for i, d in ipairs(devices) do lines[i] = "    " .. str(d) .. ": " .. device_text(gm[d]) end
  return "{\n" .. table.concat(lines, ",\n") .. "\n  }"
end

local GPU_KEYS = { "id", "name", "bus", "memory_bytes", "memory_bandwidth_bytes_per_s", "clock_hz", "sm_count",
  "compute_capability" }

-- The machine of the export: its GPUs, one per line, and the system values on one line.
local function environment_text(env)
  local gpus = "[]"
  if #env.gpus > 0 then
    local lines = {}
    for i, g in ipairs(env.gpus) do lines[i] = "      " .. inline(g, GPU_KEYS) end
    gpus = "[\n" .. table.concat(lines, ",\n") .. "\n    ]"
  end
  local names = {}
  for k in pairs(env.system) do names[#names + 1] = k end
  table.sort(names)
  return "{\n    \"gpus\": " .. gpus .. ",\n    \"system\": " .. inline(env.system, names) .. "\n  }"
end

-- Each line of the text as {key, value text}; a key absent from s is left out.
local function fields(s, phase_names)
  local f = {
    { "source", str(s.source) }, { "ok", "true" }, { "nsys_version", str(s.nsys_version) },
    { "export_schema", str(s.export_schema) },
  }
  for _, k in ipairs({ "gpu_compute_ms", "kernel_ms", "kernel_count", "graph_trace_ms", "graph_trace_count" }) do
    if s[k] ~= nil then f[#f + 1] = { k, num(s[k]) } end
  end
  f[#f + 1] = { "gpu_busy_ms", busy(s.gpu_busy_ms) }
  f[#f + 1] = { "top_kernels", list(s.top_kernels, { "name", "total_ms", "percent", "count", "graph" }) }
  f[#f + 1] = { "memcpy_ms", num(s.memcpy_ms) }
  f[#f + 1] = { "memcpy_by_kind", object(s.memcpy_by_kind, COPY_KINDS, { "ms", "bytes", "count" }) }
  for _, k in ipairs({ "memset_ms", "memset_bytes", "memset_count", "osrt_wait_ms", "osrt_total_ms", "osrt_calls" }) do
    f[#f + 1] = { k, num(s[k]) }
  end
  f[#f + 1] = { "osrt_top_waits", list(s.osrt_top_waits, { "name", "total_ms", "calls" }) }
  f[#f + 1] = { "nvtx_ranges", list(s.nvtx_ranges, { "name", "style", "total_ms", "count", "mean_ms", "percent" }) }
  f[#f + 1] = { "nvtx_phases", phases_text(s, phase_names) }
  f[#f + 1] = { "cuda_api_ms", num(s.cuda_api_ms) }
  f[#f + 1] = { "cuda_api_calls", num(s.cuda_api_calls) }
  f[#f + 1] = { "cuda_api_top", list(s.cuda_api_top, { "name", "total_ms", "percent", "calls", "mean_ms", "min_ms", "max_ms" }) }
  f[#f + 1] = { "gpu_metrics", gpu_metrics_text(s.gpu_metrics) }
  if s.gpu_metrics_reason ~= nil then f[#f + 1] = { "gpu_metrics_reason", str(s.gpu_metrics_reason) } end
  f[#f + 1] = { "environment", environment_text(s.environment) }
  if s.unreadable then
    local tables = {}
    for t in pairs(s.unreadable) do tables[#tables + 1] = t end
    table.sort(tables)
    local parts = {}
    for i, t in ipairs(tables) do parts[i] = str(t) .. ": " .. str(s.unreadable[t]) end
    f[#f + 1] = { "unreadable", "{" .. table.concat(parts, ", ") .. "}" }
  end
  local missing = {}
  for i, t in ipairs(s.missing_tables) do missing[i] = str(t) end
  f[#f + 1] = { "missing_tables", "[" .. table.concat(missing, ", ") .. "]" }
  return f
end

-- The JSON text `knobengine summarize` prints for summary s.
function M.json(s, phase_names)
  local lines = {}
  for i, kv in ipairs(fields(s, phase_names)) do lines[i] = "  " .. str(kv[1]) .. ": " .. kv[2] end
  return "{\n" .. table.concat(lines, ",\n") .. "\n}\n"
end

return M
