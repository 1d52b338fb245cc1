-- The search's objective as the report shows it (docs/report.md "The objective"): its
-- metric's label, the baseline's and the best's value, and whether it is the SPEC's
-- (p50 minimized), in which case the report reads as it always has. For max_rate the
-- baseline's value is its capacity, measured as the trials' was (summary.json's
-- objective.baseline_value, baseline_capacity.metrics).
local f = require("knobengine.report.fmt")

local M = {}

-- Labels of metrics whose name does not say their unit plainly.
local LABELS = {
  goodput = "goodput (req/s)", max_rate = "capacity (req/s)",
  tokens_per_s = "tokens/s", requests_per_s = "requests/s", slo_attainment_pct = "SLO attainment (%)",
  error_rate = "error rate",
}

-- "p99_latency_ms" -> "p99 latency (ms)": a metric's words and its unit.
function M.label(metric)
  if LABELS[metric] then return LABELS[metric] end
  local words, unit = metric:match("^(.-)_ms$"), "ms"
  if not words then words, unit = metric:match("^(.-)_pct$"), "%" end
  if not words then return (metric:gsub("_", " ")) end
  return string.format("%s (%s)", (words:gsub("_", " ")), unit)
end

-- The run's objective: {metric, maximize, label, default, base, best, decimals}.
function M.of(run)
  local o = run.summary.objective or {}
  local metric = type(o.metric) == "string" and o.metric or "p50_latency_ms"
  local maximize = o.maximize == true
  local best_metrics = run.best and run.best.metrics or {}
  local base = f.get(o, "baseline_value")
  if base == nil and o.baseline_source == nil then base = f.get(run.baseline and run.baseline.metrics, metric) end
  return {
    metric = metric, maximize = maximize,
    -- a name summary.json should not hold (it is only ever a metric's) is not repeated
    label = metric:match("^[%w_]+$") and M.label(metric) or "the objective (an unknown metric)",
    default = metric == "p50_latency_ms" and not maximize,
    base = base, best = f.get(o, "best_value") or f.get(best_metrics, metric),
    base_bound = f.get(o, "baseline_bound"), best_bound = f.get(o, "best_bound"),
    decimals = metric == "error_rate" and 4 or 3,
  }
end

-- "better" or "worse" for a change of the objective (nil when there is none or it is na).
function M.verdict(obj, base, best)
  if not f.known(base) or not f.known(best) or base == best then return nil end
  return ((best > base) == obj.maximize) and "better" or "worse"
end

-- "raises goodput (...) from 10.000 to 12.000 (+20.0%)": the objective's change.
-- A capacity's bound in words, when it is not exact.
local BOUND_WORDS = { lower = "at least: the SLO held at every rate probed", bracket = "the probes ran out before the tolerance",
  upper = "below the lowest rate probed" }

local function bounds_text(obj)
  local parts = {}
  for _, side in ipairs({ { "baseline", obj.base_bound }, { "best", obj.best_bound } }) do
    if side[2] and BOUND_WORDS[side[2]] then parts[#parts + 1] = string.format("%s %s", side[1], BOUND_WORDS[side[2]]) end
  end
  return #parts > 0 and " (" .. table.concat(parts, "; ") .. ")" or ""
end

-- The objective's change as a verb phrase: "raises goodput (req/s), the objective,
-- from 10.000 to 12.000 (+20.0%)", "keeps ... at V", "leaves ... unmeasured (na)".
function M.change(obj)
  if not f.known(obj.base) or not f.known(obj.best) then
    return string.format("leaves %s, the objective, unmeasured (na)", obj.label)
  end
  local d = obj.decimals
  if f.num(obj.best, d) == f.num(obj.base, d) then
    return string.format("keeps %s, the objective, at %s%s", obj.label, f.num(obj.best, d), bounds_text(obj))
  end
  return string.format("%s %s, the objective, from %s to %s (%s)%s", obj.best > obj.base and "raises" or "lowers",
    obj.label, f.num(obj.base, d), f.num(obj.best, d), f.pct_change(obj.best, obj.base), bounds_text(obj))
end

return M
