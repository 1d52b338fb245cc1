-- Arrival type "closed" (the default): no schedule. workload.concurrency requests are in
-- flight, the next sent when one ends (so workload.max_concurrency does not apply). It
-- uses no workload.arrival key. The contract it implements is schedule.lua's
-- (docs/load.md "Arrivals").
local M = { name = "closed", open = false, random = false, rows = {} }

function M.draw() return nil end

return M
