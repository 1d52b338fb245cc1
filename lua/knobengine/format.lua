-- The strict stdout format (README "What it prints"): number formats, the CSV table, the
-- BEST line and the BEST_VS_BASELINE block. Pure functions returning strings.
local util = require("knobengine.util")

local M = {}

M.TABLE_HEADER = "trial,knob_mask,p50_latency_ms,p95_latency_ms,tokens_per_s,error_rate,delta_p50_ms"
-- The metrics the table shows; an objective on another metric adds a column of it to
-- summary.csv (never to stdout's table).
M.TABLE_METRICS = { p50_latency_ms = true, p95_latency_ms = true, tokens_per_s = true, error_rate = true }

local function missing(v) return util.is_null(v) or v ~= v or v == math.huge or v == -math.huge end

local function fixed(v, decimals)
  if missing(v) then return "na" end
  local s = string.format("%." .. decimals .. "f", v)
  if s:match("^%-0%.0*$") then s = s:sub(2) end -- no "-0.000"
  return s
end

M.fixed = fixed
function M.ms(v) return fixed(v, 3) end
function M.rate(v) return fixed(v, 4) end
function M.percent(v) return fixed(v, 2) end

-- A signed delta at 3 decimals: "+1.250", "-3.000", "+0.000"; na when either side is.
function M.delta(new, old)
  if missing(new) or missing(old) then return "na" end
  local s = string.format("%.3f", new - old)
  if s:match("^%-0%.0*$") then s = s:sub(2) end
  if s:sub(1, 1) ~= "-" then s = "+" .. s end
  return s
end

-- CSV field (RFC 4180): valid UTF-8, quoted when it holds a comma, a quote or any
-- control character (a newline stays inside the quotes).
function M.csv_field(s)
  s = util.valid_utf8(tostring(s))
  if s:find('[,"%c]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

-- A field of a stdout line: as csv_field, with control characters replaced first, so
-- a name from a trace or a strategy file can never split or forge a line.
function M.line_field(s) return M.csv_field(util.clean_text(s)) end

-- One table row. An invalid trial shows na for every metric but its error_rate.
function M.table_row(t, baseline_p50)
  local m = t.valid and t.metrics or {}
  return table.concat({
    tostring(t.trial), t.mask_string, M.ms(m.p50_latency_ms), M.ms(m.p95_latency_ms),
    M.ms(m.tokens_per_s), M.rate(t.error_rate), t.valid and M.delta(m.p50_latency_ms, baseline_p50) or "na",
  }, ",")
end

-- A metric's value as the table prints it: error_rate at 4 decimals, others at 3.
function M.metric_value(metric, v)
  return metric == "error_rate" and M.rate(v) or M.ms(v)
end

-- The OBJECTIVE line of an objective other than the SPEC's (README "What it prints"):
-- the baseline's and the best's value of its metric, measured the same way.
-- bounds (objective max_rate): {baseline = bound, best = bound} of the two capacities,
-- appended as baseline_bound= and best_bound=.
function M.objective_line(obj, base_value, best_value, bounds)
  local d = M.delta(best_value, base_value)
  if obj.metric == "error_rate" and d ~= "na" then
    d = M.rate(best_value - base_value)
    if d:sub(1, 1) ~= "-" then d = "+" .. d end
  end
  local line = string.format("OBJECTIVE,metric=%s,direction=%s,baseline=%s,best=%s,delta=%s", obj.metric,
    obj.maximize and "maximize" or "minimize", M.metric_value(obj.metric, base_value),
    M.metric_value(obj.metric, best_value), d)
  if bounds then line = line .. string.format(",baseline_bound=%s,best_bound=%s", bounds.baseline or "na", bounds.best or "na") end
  return line
end

function M.best_line(t, baseline_p50)
  return string.format("BEST,knob_mask=%s,p50_latency_ms=%s,delta_p50_ms=%s", t.mask_string,
    M.ms(t.metrics.p50_latency_ms), M.delta(t.metrics.p50_latency_ms, baseline_p50))
end

local function compare_line(name, old, new)
  return string.format("%s: %s -> %s (%s)", name, M.ms(old), M.ms(new), M.delta(new, old))
end

local function kernel_lines(summary)
  local kernels = summary and summary.top_kernels
  if util.is_null(kernels) or #kernels == 0 then return { "1) na" } end
  local lines = {}
  for i, k in ipairs(kernels) do
    lines[i] = string.format("%d) %s,%s,%s", i, M.line_field(k.name), M.ms(k.total_ms), M.percent(k.percent))
  end
  return lines
end

local function phase_total(phases, name)
  local p = phases and phases[name]
  if util.is_null(p) then return nil end
  return p.total_ms
end

-- base/best: {metrics=..., trace=trace summary or nil, phases=nvtx phases or nil}
function M.best_vs_baseline(base, best, phase_names)
  local L = { "BEST_VS_BASELINE" }
  for _, k in ipairs({ "p50_latency_ms", "p95_latency_ms", "tokens_per_s" }) do
    L[#L + 1] = compare_line(k, base.metrics[k], best.metrics[k])
  end
  L[#L + 1] = ""
  for _, k in ipairs({ "gpu_compute_ms", "memcpy_ms", "osrt_wait_ms" }) do
    L[#L + 1] = compare_line(k, base.trace and base.trace[k], best.trace and best.trace[k])
  end
  L[#L + 1] = ""
  for _, name in ipairs(phase_names) do
    L[#L + 1] = compare_line("nvtx_" .. name .. "_ms", phase_total(base.phases, name), phase_total(best.phases, name))
  end
  L[#L + 1] = ""
  L[#L + 1] = "TOP_KERNELS_BASELINE"
  for _, l in ipairs(kernel_lines(base.trace)) do L[#L + 1] = l end
  L[#L + 1] = ""
  L[#L + 1] = "TOP_KERNELS_BEST"
  for _, l in ipairs(kernel_lines(best.trace)) do L[#L + 1] = l end
  return L
end

return M
