-- Arrival type "sinusoid": a Poisson process whose rate follows min_rate + (max_rate -
-- min_rate) * (1 - cos(2 pi t / period_s)) / 2 (it starts at min_rate), drawn by
-- thinning. It owns workload.arrival.min_rate, max_rate and period_s. The contract it
-- implements is schedule.lua's (docs/load.md "Arrivals").
local M = { name = "sinusoid", open = true, random = true }

M.rows = {
  { path = "workload.arrival.min_rate", type = "number", min = 0, max = 1e6, identity = "measure",
    types = { sinusoid = "required" }, doc = "sinusoid: the lowest rate (at most `max_rate`)" },
  { path = "workload.arrival.max_rate", type = "number", min = 1e-6, max = 1e6, identity = "measure",
    types = { sinusoid = "required" }, doc = "sinusoid: the highest rate" },
  { path = "workload.arrival.period_s", type = "number", min = 1e-3, max = 1e7, identity = "measure",
    types = { sinusoid = "required" }, doc = "sinusoid: the period" },
}

function M.validate(c, a)
  if a.min_rate > a.max_rate then c:bad("workload.arrival.min_rate", "must be <= max_rate") end
end

function M.draw(a, n, seed)
  local r = require("knobengine.schedule").rng(seed)
  local function rate(t) return a.min_rate + (a.max_rate - a.min_rate) * (1 - math.cos(2 * math.pi * t / a.period_s)) / 2 end
  local t, out = 0, { 0 }
  while #out < n do
    t = t - math.log(r.unit()) / a.max_rate
    if r.unit() * a.max_rate <= rate(t) then out[#out + 1] = t end
  end
  return out
end

return M
