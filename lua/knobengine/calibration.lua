-- Calibration against a simulator (spec/calibration-plan.md section 4; docs/load.md
-- "Calibration"): the simulator's figures per rate, read from its per-request output
-- (Vidur's request_metrics.csv) or from the plan's JSON template, against the figures a
-- load sweep measured at the same rates; the error of each, the MAPE over the rates, and
-- the plan's verdicts and advice. Pure functions over tables and files; the command is
-- calibrate.lua. Errors: a file that cannot be read or lacks a column is a usage error
-- naming the file (and the line or key).
local cjson = require("cjson")
local csv = require("knobengine.csv")
local errors = require("knobengine.errors")
local knob = require("knob")
local quantile = require("knobengine.compare").quantile
local util = require("knobengine.util")

local M = {}

local OVERHEAD = require("knobengine.probes").COLUMN
local PROFILING_ADVICE = "re-run the simulator's MLP and attention profiling for this GPU and model "
  .. "(vidur/profiling/mlp, vidur/profiling/attention)"

-- The compared figures: a name, how the sweep's Result holds it per quantile, Vidur's
-- request_metrics.csv column (seconds), and the template's key (and its unit's factor
-- to ms). optional: a simulator's file may lack it (its rows are then na); the
-- scheduler overhead is measured only against a probe sweep's ideal TTFT (probes.lua).
M.METRICS = {
  { name = "ttft_ms", measured = { p50 = { "ttft_ms", "p50" }, p99 = { "ttft_ms", "p99" } },
    vidur = "prefill_e2e_time", template = { "ttft_ms", 1 } },
  { name = "tpot_ms", measured = { p50 = { "tpot_ms", "p50" }, p99 = { "tpot_ms", "p99" } },
    vidur = "decode_time_execution_plus_preemption_normalized", template = { "tpot_ms", 1 } },
  { name = "e2e_ms", measured = { p50 = { "p50_latency_ms" }, p99 = { "p99_latency_ms" } },
    vidur = "request_e2e_time", template = { "e2e_latency_s", 1000 } },
  { name = OVERHEAD, measured = { p50 = { OVERHEAD, "p50" }, p99 = { OVERHEAD, "p99" } },
    vidur = "request_scheduling_delay", template = { OVERHEAD, 1 }, optional = true },
}
M.QUANTILES = { "p50", "p99" }

-- The plan's checks: which figure, which tolerance (config calibration.*), what to do
-- when it fails.
M.CHECKS = {
  { metric = "ttft_ms", quantile = "p50", tolerance = "strict", advice = PROFILING_ADVICE },
  { metric = "tpot_ms", quantile = "p50", tolerance = "strict", advice = PROFILING_ADVICE },
  { metric = "e2e_ms", quantile = "p99", tolerance = "loose",
    advice = "adjust the simulator's batch-size cap (replica_scheduler_config_batch_size_cap) or its CPU overhead "
      .. "parameters" },
}

local function number(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  local m = s:match("^%s*(%d*%.?%d*)[eE][+-]?%d+%s*$") or s:match("^%s*(%d*%.?%d*)%s*$")
  return m and m:find("%d") and tonumber(s) or nil
end

-- A simulator's per-request CSV (Vidur's request_metrics.csv, seconds): each figure's
-- p50 and p99 over its requests, in ms (an optional one's column may be missing: {}).
function M.from_vidur(path)
  if knob.is_dir(path) then errors.usage("--simulated: %s is a directory, not a file", path) end
  local rows, err = csv.read(path)
  if not rows then
    errors.usage("--simulated: cannot read %s: %s", path, (tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", "")))
  end
  if #rows == 0 then errors.usage("--simulated: %s has no requests", path) end
  local out = { requests = #rows, source = "vidur_request_metrics" }
  local function column(name, required)
    if rows[1][name] == nil then
      if required then errors.usage("--simulated: %s has no '%s' column (Vidur's request_metrics.csv)", path, name) end
      return {}
    end
    local v = {}
    for i, r in ipairs(rows) do
      local x = number(r[name])
      if not x then
        errors.usage("--simulated: %s line %d: '%s' %s", path, i + 1, name, r[name] == nil and "is missing (a short row)"
          or string.format("is not a number of seconds >= 0 (got '%s')", r[name]))
      end
      v[i] = x * 1000
    end
    return { p50 = quantile(v, 0.5), p99 = quantile(v, 0.99) }
  end
  for _, m in ipairs(M.METRICS) do out[m.name] = column(m.vidur, not m.optional) end
  return out
end

-- The plan's JSON template ("Output Template"): its metrics in ms, and workload.rps.
function M.from_template(path)
  local text, err = util.read_file(path)
  if not text then errors.usage("--simulated: cannot read %s: %s", path, tostring(err)) end
  local ok, t = pcall(cjson.decode, text)
  if not ok or type(t) ~= "table" or type(t.metrics) ~= "table" then
    errors.usage("--simulated: %s is not the calibration template (a JSON object with metrics)", path)
  end
  local out = { source = "template", rps = number(type(t.workload) == "table" and t.workload.rps or nil) }
  for _, m in ipairs(M.METRICS) do
    local key, factor = m.template[1], m.template[2]
    local d = t.metrics[key]
    out[m.name] = {}
    for _, q in ipairs(M.QUANTILES) do
      -- a figure the template lacks or holds as null (a non-streaming run has no TTFT) is na
      local raw = type(d) == "table" and d[q] or nil
      local v = number(raw)
      if raw ~= nil and raw ~= cjson.null and not (v and v >= 0) then
        errors.usage("--simulated: %s: metrics.%s.%s must be a number >= 0", path, key, q)
      end
      out[m.name][q] = v and v * factor or nil
    end
  end
  return out
end

-- A simulated file by its kind: *.json the template, anything else a per-request CSV.
function M.read_simulated(path)
  if path:lower():match("%.json$") then return M.from_template(path) end
  return M.from_vidur(path)
end

-- The measured figure of a sweep level's Result, or nil.
function M.measured(metrics, m, q)
  local v = metrics
  for _, k in ipairs(m.measured[q]) do v = type(v) == "table" and v[k] or nil end
  return type(v) == "number" and v or nil
end

-- error_pct of a simulated figure against the measured one (signed: the simulator
-- above the measurement is positive), nil when either is unknown or the measured is 0.
function M.error_pct(measured, simulated)
  if not measured or not simulated or measured == 0 then return nil end
  return 100 * (simulated - measured) / measured
end

-- The rows (a rate x figure x quantile each, by rate) and the MAPE of each figure and
-- quantile over the rates: levels[i] = {rate, metrics} measured, simulated[i] its
-- simulator's figures.
function M.compare(levels, simulated)
  local rows, sums = {}, {}
  for i, level in ipairs(levels) do
    for _, m in ipairs(M.METRICS) do
      for _, q in ipairs(M.QUANTILES) do
        local meas, sim = M.measured(level.metrics, m, q), (simulated[i][m.name] or {})[q]
        local e = M.error_pct(meas, sim)
        rows[#rows + 1] = { rate = level.rate, metric = m.name, quantile = q, measured = meas, simulated = sim, error_pct = e }
        local key = m.name .. " " .. q
        sums[key] = sums[key] or { sum = 0, n = 0 }
        if e then sums[key].sum, sums[key].n = sums[key].sum + math.abs(e), sums[key].n + 1 end
      end
    end
  end
  local mape = {}
  for _, m in ipairs(M.METRICS) do
    mape[m.name] = {}
    for _, q in ipairs(M.QUANTILES) do
      local t = sums[m.name .. " " .. q]
      mape[m.name][q] = t and t.n > 0 and t.sum / t.n or nil
    end
  end
  return rows, mape
end

-- The verdict of one check: "pass", "marginal" (loose: between its two limits), "fail"
-- or "na" (no MAPE: a figure the sweep or the simulator lacks).
function M.verdict(check, mape_pct, limits)
  if not mape_pct then return "na" end
  if check.tolerance == "strict" then return mape_pct < limits.strict_mape_pct and "pass" or "fail" end
  if mape_pct < limits.loose_mape_pct then return "pass" end
  return mape_pct < limits.loose_max_mape_pct and "marginal" or "fail"
end

-- Every check's {metric, quantile, tolerance, pass_below_pct, fail_from_pct, mape_pct,
-- verdict, advice}, and the overall verdict: fail over na over marginal over pass.
function M.checks(mape, limits)
  local out, rank, overall = {}, { pass = 1, marginal = 2, na = 3, fail = 4 }, "pass"
  for i, c in ipairs(M.CHECKS) do
    local v = mape[c.metric][c.quantile]
    local verdict = M.verdict(c, v, limits)
    out[i] = { metric = c.metric, quantile = c.quantile, tolerance = c.tolerance, mape_pct = v, verdict = verdict,
      pass_below_pct = c.tolerance == "strict" and limits.strict_mape_pct or limits.loose_mape_pct,
      fail_from_pct = c.tolerance == "strict" and limits.strict_mape_pct or limits.loose_max_mape_pct,
      advice = (verdict == "fail" or verdict == "marginal") and c.advice or nil }
    if rank[verdict] > rank[overall] then overall = verdict end
  end
  return out, overall
end

return M
