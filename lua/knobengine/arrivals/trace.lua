-- Arrival type "trace": each dataset record's own timestamp (ms), relative to the first
-- one, times time_scale; a run longer than the dataset goes round again, one mean gap
-- after the last record. It owns workload.arrival.time_scale and needs a dataset whose
-- records have timestamps. The contract it implements is schedule.lua's (docs/load.md
-- "Arrivals"). Errors: a record without a timestamp, or one that goes back in time, is
-- a usage error naming its line.
local errors = require("knobengine.errors")

local M = { name = "trace", open = true, random = false }

M.rows = {
  { path = "workload.arrival.time_scale", type = "number", default = 1, min = 1e-6, max = 1e6, identity = "measure",
    types = { trace = "optional" }, doc = "trace: timestamps are multiplied by this" },
}

function M.validate(c, _, workload)
  if workload.synthetic then c:bad("workload.arrival.type", "'trace' needs a dataset with timestamps") end
end

function M.draw(a, n, _, items)
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

return M
