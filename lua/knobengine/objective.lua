-- Choosing the best trial: among full-fidelity valid trials (error_rate <=
-- constraints.max_error_rate), the objective metric, then each tie-breaker, then the
-- lowest trial index. Values are compared at the printed precision (3 decimals), so
-- trials that print the same number are ties and the tie-breakers decide.
local util = require("knobengine.util")

local M = {}

local function key(v)
  if util.is_null(v) or v ~= v then return nil end
  return math.floor(v * 1000 + 0.5)
end

-- Returns -1 if a is better, 1 if b is better, 0 if equal on this criterion.
local function compare_metric(a, b, metric, maximize)
  local x, y = key(a.metrics[metric]), key(b.metrics[metric])
  if x == y then return 0 end
  if x == nil then return 1 end -- a missing value never wins
  if y == nil then return -1 end
  if maximize then x, y = -x, -y end
  return x < y and -1 or 1
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

function M.choose(trials, objective)
  local best
  for _, t in ipairs(trials) do
    if t.valid and t.full and (best == nil or M.better(t, best, objective)) then best = t end
  end
  return best
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
-- returns the runner-up, the gap and that spread; nil otherwise.
function M.within_noise(trials, best, objective)
  local runner
  for _, t in ipairs(trials) do
    if t ~= best and t.valid and t.full and (not runner or M.better(t, runner, objective)) then runner = t end
  end
  if not runner then return nil end
  local metric = objective.metric
  local a, b = best.metrics[metric], runner.metrics[metric]
  -- a metric that could not be computed (null: e.g. every request failed) has no gap
  if type(a) ~= "number" or type(b) ~= "number" then return nil end
  local gap = math.abs(a - b)
  local noise = math.max(spread(best, metric), spread(runner, metric))
  if gap < noise then return runner, gap, noise end
  return nil
end

return M
