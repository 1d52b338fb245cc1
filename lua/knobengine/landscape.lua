-- A seeded synthetic landscape that plugs in where evaluate() does: each knob value
-- has an additive effect on log p50, some pairs of knobs interact when both are set,
-- one conflicting pair (both at their last value) makes masks infeasible (the server
-- "fails": a quarter of an on/off space), and every measurement carries multiplicative
-- noise (2% at full fidelity, more for cheaper screening trials). opts.radices gives
-- knobs with values (default: every knob on/off). Used by bench/search_efficiency.lua,
-- knobengine compare --synthetic and the strategy tests; no server involved.
local Rng = require("knobengine.rng")
local Space = require("knobengine.space")

local M = {}
M.__index = M

local function rng(seed) return Rng.new(seed) end

function M.new(n, seed, opts)
  opts = opts or {}
  local r = rng(seed)
  local radices = opts.radices or {}
  for i = 1, n do radices[i] = radices[i] or 2 end
  local self = setmetatable({ n = n, noise = opts.noise or 0.02, base = 200, r = rng(seed + 7919),
    space = assert(Space.new(radices)) }, M)
  self.effect, self.pair = {}, {}
  for i = 1, n do -- each value index but 0: between -15% and +10%
    self.effect[i] = {}
    for d = 1, radices[i] - 1 do self.effect[i][d] = r.unit() * 0.25 - 0.15 end
  end
  for i = 1, n do
    for j = i + 1, n do
      if r.unit() < 0.3 then self.pair[#self.pair + 1] = { i, j, r.normal() * 0.04 } end
    end
  end
  local a = r.int(n) + 1
  local b = (a + r.int(n - 1)) % n + 1 -- a different knob
  self.conflict = { a, b }
  return self
end

function M:feasible(mask)
  local s, a, b = self.space, self.conflict[1], self.conflict[2]
  return not (s:digit(mask, a) == s.radix[a] - 1 and s:digit(mask, b) == s.radix[b] - 1)
end

-- The noise-free p50 of a mask (nil when infeasible).
function M:true_p50(mask)
  if not self:feasible(mask) then return nil end
  local x, s = 0, self.space
  for i = 1, self.n do
    local d = s:digit(mask, i)
    if d > 0 then x = x + self.effect[i][d] end
  end
  for _, p in ipairs(self.pair) do
    if s:digit(mask, p[1]) > 0 and s:digit(mask, p[2]) > 0 then x = x + p[3] end
  end
  return self.base * math.exp(x)
end

function M:optimum()
  local best, value
  for mask = 0, self.space.size - 1 do
    local v = self:true_p50(mask)
    if v and (not value or v < value) then best, value = mask, v end
  end
  return best, value
end

-- One measurement, shaped like the record trial.run returns. `fidelity` is
-- requests / request_count: the noise grows as 1/sqrt(fidelity).
function M:measure(mask, fidelity)
  local t = self:true_p50(mask)
  local rec = { mask = mask, full = fidelity >= 1, ok = t ~= nil }
  if not t then
    rec.valid, rec.error_rate, rec.error, rec.metrics = false, 1.0, "server failed to start", {}
    return rec
  end
  local sd = self.noise / math.sqrt(fidelity)
  local p50 = t * (1 + sd * self.r.normal())
  rec.valid, rec.error_rate = true, 0
  rec.metrics = { p50_latency_ms = p50, p95_latency_ms = p50 * 1.5, tokens_per_s = 1e5 / p50 }
  return rec
end

return M
