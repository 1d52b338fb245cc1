-- Arrival type "constant": a request every 1/rate seconds. The contract it implements
-- is schedule.lua's (docs/load.md "Arrivals").
local M = { name = "constant", open = true, random = false, rows = {}, uses = { rate = "required" } }

function M.draw(a, n)
  return require("knobengine.schedule").gaps(n, function() return 1 / a.rate end)
end

return M
