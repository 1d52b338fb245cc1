-- The capacity grid's decisions, without a server (docs/load.md "Capacity grid"): in
-- which order the SLOs are measured, which cells cannot win and are pruned, and the
-- best config of each SLO x workload. A cell is {workload, slo, mask, result} where
-- result is load.capacity's (max_rate, bound, failed_rate) once measured.
-- Ownership: pure functions over the tables given; no errors.
local M = {}

local THRESHOLDS = { "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms" }

-- True when every request that meets a also meets b, so a config's capacity under a is
-- at most its capacity under b: both combine with "and", a's quantile is at least b's,
-- and each threshold b sets, a sets too, no higher. (An "or" SLO is never compared.)
function M.stricter(a, b)
  if a.combine ~= "and" or b.combine ~= "and" or a.quantile < b.quantile then return false end
  for _, k in ipairs(THRESHOLDS) do
    if b[k] and not (a[k] and a[k] <= b[k]) then return false end
  end
  return true
end

-- The SLOs' indices in measuring order: an SLO after every one it is strictly
-- stricter than (so their capacities can prune it), otherwise in the config's order.
function M.order(slos)
  local n, before = #slos, {}
  for i = 1, n do
    before[i] = 0
    for j = 1, n do
      if i ~= j and M.stricter(slos[i], slos[j]) and not M.stricter(slos[j], slos[i]) then before[i] = before[i] + 1 end
    end
  end
  local order = {}
  for i = 1, n do order[i] = i end
  table.sort(order, function(x, y)
    if before[x] ~= before[y] then return before[x] < before[y] end
    return x < y
  end)
  return order
end

-- What a measured capacity proves: the rate that held (a lower bound, 0 without one)
-- and the rate it is known to fail at (an upper bound; none when it held up to the
-- last rate probed: bound "lower").
function M.lower(result) return type(result.max_rate) == "number" and result.max_rate or 0 end
function M.upper(result)
  if result.bound == "lower" then return math.huge end
  return type(result.failed_rate) == "number" and result.failed_rate or math.huge
end

-- The lowest upper bound of a config (mask) on a workload under SLOs looser than slo,
-- and which SLO gave it: capacity under slo cannot be higher. measured(w, s, mask):
-- the result of a cell, or nil.
local function tightest_upper(slos, s, w, mask, measured)
  local best, from = math.huge, nil
  for j, other in ipairs(slos) do
    local r = j ~= s and M.stricter(slos[s], other) and measured(w, j, mask)
    if r and M.upper(r) < best then best, from = M.upper(r), j end
  end
  return best, from
end

-- The cells of (w, s) that cannot win: a config whose capacity under a looser SLO is
-- already below what another config proved under s (below the rate it failed at, so
-- a failed rate equal to the proved one is enough). Returns {[mask] = {upper, from,
-- leader, leader_rate}} for the masks given (not yet measured).
function M.prune(slos, s, w, masks, measured, measured_masks)
  local leader, leader_rate = nil, 0
  for _, mask in ipairs(measured_masks) do
    local r = measured(w, s, mask)
    if r and M.lower(r) > leader_rate then leader, leader_rate = mask, M.lower(r) end
  end
  local out = {}
  if not leader then return out end
  for _, mask in ipairs(masks) do
    local up, from = tightest_upper(slos, s, w, mask, measured)
    -- its capacity is below the rate it failed at, so up <= leader_rate is enough
    if from and up <= leader_rate then out[mask] = { upper = up, from = from, leader = leader, leader_rate = leader_rate } end
  end
  return out
end

-- The masks of (w, s) in the order to measure them: highest upper bound under a
-- looser SLO first (the likeliest winners prove the most), ties in mask order.
function M.by_promise(slos, s, w, masks, measured)
  local keyed = {}
  for i, mask in ipairs(masks) do keyed[i] = { mask = mask, up = (tightest_upper(slos, s, w, mask, measured)), i = i } end
  table.sort(keyed, function(a, b)
    if a.up ~= b.up then return a.up > b.up end
    return a.i < b.i
  end)
  local out = {}
  for i, k in ipairs(keyed) do out[i] = k.mask end
  return out
end

-- The best cell of a list (measured cells of one SLO x workload): the highest max_rate,
-- ties to the earlier mask; nil when none held anywhere.
function M.best(cells)
  local best
  for _, c in ipairs(cells) do
    local r = c.result
    if r and type(r.max_rate) == "number" and (not best or r.max_rate > best.result.max_rate) then best = c end
  end
  return best
end

return M
