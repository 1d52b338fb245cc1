-- A seeded synthetic landscape that plugs in where evaluate() does: each knob has an
-- additive effect on log p50, some pairs interact, one conflicting pair makes about a
-- quarter of the masks infeasible (the server "fails"), and every measurement carries
-- multiplicative noise (2% at full fidelity, more for cheaper screening trials). Used
-- by bench/search_efficiency.lua and the strategy tests; no server involved.
local M = {}
M.__index = M

-- A small deterministic generator (xorshift64*), independent of math.random's state.
local function rng(seed)
  local s = (seed * 2654435761 + 88172645463325252) & 0x7fffffffffffffff
  if s == 0 then s = 1 end
  local r = {}
  function r.unit()
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return ((s >> 11) & ((1 << 52) - 1)) / (1 << 52)
  end
  function r.normal()
    local u1, u2 = math.max(r.unit(), 1e-12), r.unit()
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
  end
  function r.int(n) return math.floor(r.unit() * n) end
  return r
end

function M.new(n, seed, opts)
  opts = opts or {}
  local r = rng(seed)
  local self = setmetatable({ n = n, noise = opts.noise or 0.02, base = 200, r = rng(seed + 7919) }, M)
  self.effect, self.pair = {}, {}
  for i = 1, n do self.effect[i] = r.unit() * 0.25 - 0.15 end -- between -15% and +10%
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

local function on(mask, n, i) return (mask >> (n - i)) & 1 == 1 end

function M:feasible(mask)
  return not (on(mask, self.n, self.conflict[1]) and on(mask, self.n, self.conflict[2]))
end

-- The noise-free p50 of a mask (nil when infeasible).
function M:true_p50(mask)
  if not self:feasible(mask) then return nil end
  local x = 0
  for i = 1, self.n do if on(mask, self.n, i) then x = x + self.effect[i] end end
  for _, p in ipairs(self.pair) do
    if on(mask, self.n, p[1]) and on(mask, self.n, p[2]) then x = x + p[3] end
  end
  return self.base * math.exp(x)
end

function M:optimum()
  local best, value
  for mask = 0, (1 << self.n) - 1 do
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
