-- Arrival type "poisson": exponential gaps of mean 1/rate (as vLLM's `bench serve`
-- with --request-rate). The contract it implements is schedule.lua's (docs/load.md
-- "Arrivals").
local M = { name = "poisson", open = true, random = true, rows = {}, uses = { rate = "required" } }

function M.draw(a, n, seed)
  local schedule = require("knobengine.schedule")
  local r = schedule.rng(seed)
  return schedule.gaps(n, function() return -math.log(r.unit()) / a.rate end)
end

return M
