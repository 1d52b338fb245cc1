-- Arrival schedules: when each measured request is sent, in seconds from the start of
-- the measured phase (docs/load.md "Arrivals"). Drawn from workload.seed before the run, so the
-- same config sends the same schedule every time. The first request is sent at 0.
--   poisson   exponential gaps, mean 1/rate
--   gamma     gamma gaps of shape `burstiness` and mean 1/rate (1 = poisson; lower is
--             burstier: the coefficient of variation of the gaps is 1/sqrt(burstiness))
--   constant  every 1/rate
--   sinusoid  a Poisson process whose rate follows min_rate + (max_rate - min_rate) *
--             (1 - cos(2 pi t / period_s)) / 2 (it starts at min_rate), by thinning
--   trace     each dataset record's own timestamp (ms), relative to the first one,
--             times time_scale
-- "closed" has no schedule (nil).
local errors = require("knobengine.errors")

local M = {}

-- A deterministic generator (xorshift64*) of its own, so schedules do not depend on
-- anything else that uses random numbers.
local function rng(seed)
  local s = (seed * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
  if s == 0 then s = 1 end
  local r = {}
  function r.unit() -- in (0, 1)
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return (((s >> 11) & ((1 << 52) - 1)) + 0.5) / (1 << 52)
  end
  function r.normal()
    return math.sqrt(-2 * math.log(r.unit())) * math.cos(2 * math.pi * r.unit())
  end
  return r
end

-- Gamma(shape k, scale 1) by Marsaglia and Tsang; shapes below 1 by the boost
-- Gamma(k) = Gamma(k + 1) * U^(1/k).
local function gamma(r, k)
  if k < 1 then return gamma(r, k + 1) * r.unit() ^ (1 / k) end
  local d = k - 1 / 3
  local c = 1 / math.sqrt(9 * d)
  while true do
    local x, v = r.normal(), nil
    v = (1 + c * x) ^ 3
    if v > 0 and math.log(r.unit()) < 0.5 * x * x + d - d * v + d * math.log(v) then return d * v end
  end
end

local function gaps(n, gap)
  local t, out = 0, { 0 }
  for i = 2, n do
    t = t + gap()
    out[i] = t
  end
  return out
end

local function sinusoid(a, n, r)
  local function rate(t) return a.min_rate + (a.max_rate - a.min_rate) * (1 - math.cos(2 * math.pi * t / a.period_s)) / 2 end
  local t, out = 0, { 0 }
  while #out < n do
    t = t - math.log(r.unit()) / a.max_rate
    if r.unit() * a.max_rate <= rate(t) then out[#out + 1] = t end
  end
  return out
end

-- Trace: the records' own times. A run longer than the dataset goes round again, one
-- mean gap after the last record.
local function trace(a, items, n)
  for _, item in ipairs(items) do
    if item.timestamp_ms == nil then
      errors.usage("workload.arrival.type: 'trace' needs a timestamp on every dataset record (line %d has none)", item.line)
    end
  end
  local first, last = items[1].timestamp_ms, items[#items].timestamp_ms
  local span = last - first
  local round = span + (#items > 1 and span / (#items - 1) or 1)
  local out = {}
  for i = 1, n do
    local k = (i - 1) % #items + 1
    out[i] = ((items[k].timestamp_ms - first) + (i - k) // #items * round) / 1000 * a.time_scale
    if i > 1 and out[i] < out[i - 1] then
      errors.usage("workload.arrival.type: 'trace' needs ascending timestamps (line %d goes back in time)", items[k].line)
    end
  end
  return out
end

-- The schedule of n measured requests (nil for a closed loop). items: the dataset's
-- records in order (for trace).
function M.draw(arrival, n, seed, items)
  local t = arrival.type
  if t == "closed" then return nil end
  local r = rng(seed + 0x5eed)
  if t == "poisson" then return gaps(n, function() return -math.log(r.unit()) / arrival.rate end) end
  if t == "gamma" then
    local k = arrival.burstiness
    return gaps(n, function() return gamma(r, k) / (k * arrival.rate) end)
  end
  if t == "constant" then return gaps(n, function() return 1 / arrival.rate end) end
  if t == "sinusoid" then return sinusoid(arrival, n, r) end
  return trace(arrival, items, n)
end

return M
