-- Choosing the best trial: among full-fidelity valid trials (error_rate <=
-- constraints.max_error_rate), the objective metric, then each tie-breaker, then the
-- lowest trial index. Values are compared at the printed precision (3 decimals), so
-- trials that print the same number are ties and the tie-breakers decide. Every
-- function here reads views (record.view: the metrics at the top level), the shape a
-- strategy sees, so a strategy's search:better and the engine's choice agree.
local record = require("knobengine.record")
local util = require("knobengine.util")

local M = {}

local function key(v)
  if util.is_null(v) or v ~= v then return nil end
  return math.floor(v * 1000 + 0.5)
end

-- Returns -1 if a is better, 1 if b is better, 0 if equal on this criterion.
local function compare_metric(a, b, metric, maximize)
  local x, y = key(a[metric]), key(b[metric])
  if x == y then return 0 end
  if x == nil then return 1 end -- a missing value never wins
  if y == nil then return -1 end
  if maximize then x, y = -x, -y end
  return x < y and -1 or 1
end

-- The SPEC's objective: stdout is exactly the SPEC's for it, other objectives add
-- their OBJECTIVE line (format.objective_line).
function M.is_default(obj) return obj.metric == "p50_latency_ms" and not obj.maximize end
function M.direction(obj) return obj.maximize and "maximize" or "minimize" end

-- The objective's value of a record (its metrics), nil when it has none.
function M.value(rec, obj)
  local v = rec and rec.metrics and rec.metrics[obj.metric]
  if type(v) ~= "number" or v ~= v then return nil end
  return v
end

function M.better(a, b, objective)
  local c = compare_metric(a, b, objective.metric, objective.maximize)
  if c ~= 0 then return c < 0 end
  for _, tb in ipairs(objective.tie_breakers) do
    c = compare_metric(a, b, tb.metric, tb.maximize)
    if c ~= 0 then return c < 0 end
  end
  return a.trial < b.trial
end

-- The valid full-fidelity views of records, each with its record.
local function candidates(records)
  local out = {}
  for _, r in ipairs(records) do
    if r.valid and r.full then out[#out + 1] = { view = record.view(r), rec = r } end
  end
  return out
end

-- The best record (nil when none is valid at full fidelity), and the runner-up.
local function best_two(records, objective)
  local best, runner
  for _, c in ipairs(candidates(records)) do
    if not best or M.better(c.view, best.view, objective) then best, runner = c, best
    elseif not runner or M.better(c.view, runner.view, objective) then runner = c end
  end
  return best, runner
end

function M.choose(records, objective)
  local best = best_two(records, objective)
  return best and best.rec
end

-- The spread (max - min) of a trial's metric across its repeats, or 0.
local function spread(t, metric)
  local lo, hi
  for _, r in ipairs(t.repeats or {}) do
    local v = r[metric]
    if type(v) == "number" then lo, hi = math.min(lo or v, v), math.max(hi or v, v) end
  end
  return lo and hi - lo or 0
end

-- When the best and the runner-up differ by less than the spread of their repeats,
-- returns the runner-up record, the gap and that spread; nil otherwise.
function M.within_noise(records, objective)
  local best, runner = best_two(records, objective)
  if not runner then return nil end
  local metric = objective.metric
  local a, b = best.view[metric], runner.view[metric]
  -- a metric that could not be computed (null: e.g. every request failed) has no gap
  if type(a) ~= "number" or type(b) ~= "number" then return nil end
  local gap = math.abs(a - b)
  local noise = math.max(spread(best.view, metric), spread(runner.view, metric))
  if gap < noise then return runner.rec, gap, noise end
  return nil
end

return M
