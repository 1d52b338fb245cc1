-- Arrival schedules: when each measured request is sent, in seconds from the start of
-- the measured phase (docs/load.md "Arrivals"). Drawn from workload.seed before the
-- run, so the same config sends the same schedule every time. The first request is
-- sent at 0. Each arrival type is a plug-in, lua/knobengine/arrivals/<type>.lua, found
-- by knobengine.registry; this module dispatches to them and holds what they share
-- (the seeded generator, schedules from gaps).
--
-- The arrival contract (every type declares these; registry.lua checks them):
--   name        the workload.arrival.type value, the file's name
--   open        true: requests follow the drawn schedule (an open loop);
--               false: a closed loop, draw returns nil
--   random      whether the schedule depends on the seed (false: constant, trace)
--   rows        its own workload.arrival.* schema rows (types = {[name] = "optional"
--               | "required"}), e.g. gamma's burstiness
--   uses        (optional) the shared keys it uses and how: {rate = "required"}
--   validate(c, arrival, workload)  (optional) checks across its keys or with the
--               rest of the workload (c: the config Checker; c:bad raises)
--   draw(arrival, n, seed, items)  the n send times, non-decreasing, from 0; seed is
--               workload.seed (schedule.rng(seed) is the generator every type uses),
--               items the dataset's records in order (line, timestamp_ms)
-- Ownership: none; every draw stands alone. Errors: a type's own (usage errors).
local registry = require("knobengine.registry")

local M = {}

-- A deterministic generator (xorshift64*) of its own, seeded from workload.seed, so
-- schedules do not depend on anything else that uses random numbers: unit() in (0, 1),
-- normal() standard normal.
function M.rng(seed)
  local s = ((seed + 0x5eed) * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
  if s == 0 then s = 1 end
  local r = {}
  function r.unit()
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return (((s >> 11) & ((1 << 52) - 1)) + 0.5) / (1 << 52)
  end
  function r.normal()
    return math.sqrt(-2 * math.log(r.unit())) * math.cos(2 * math.pi * r.unit())
  end
  return r
end

-- n send times from 0, each gap() after the one before.
function M.gaps(n, gap)
  local t, out = 0, { 0 }
  for i = 2, n do
    t = t + gap()
    out[i] = t
  end
  return out
end

-- The plug-in of an arrival type.
function M.type(name) return registry.get("arrivals", name) end

-- The schedule of n measured requests (nil for a closed loop). items: the dataset's
-- records in order (for trace).
function M.draw(arrival, n, seed, items)
  return M.type(arrival.type).draw(arrival, n, seed, items)
end

return M
