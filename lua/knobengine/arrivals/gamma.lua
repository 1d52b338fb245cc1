-- Arrival type "gamma": gamma gaps of shape `burstiness` and mean 1/rate (1 is Poisson;
-- lower is burstier: the coefficient of variation of the gaps is 1/sqrt(burstiness),
-- as vLLM's --burstiness). It owns workload.arrival.burstiness. The contract it
-- implements is schedule.lua's (docs/load.md "Arrivals").
local M = { name = "gamma", open = true, random = true, uses = { rate = "required" } }

M.rows = {
  { path = "workload.arrival.burstiness", type = "number", default = 1, min = 1e-3, max = 1000, identity = "measure",
    types = { gamma = "optional" }, doc = "gamma: the shape (1 is Poisson; below 1 burstier)" },
}

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

function M.draw(a, n, seed)
  local schedule = require("knobengine.schedule")
  local r, k = schedule.rng(seed), a.burstiness
  return schedule.gaps(n, function() return gamma(r, k) / (k * a.rate) end)
end

return M
