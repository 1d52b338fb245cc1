-- A small deterministic random generator (xorshift64*), independent of math.random's
-- state, so a seeded landscape, comparison or strategy gives the same numbers on every
-- machine and in every run. Ownership: each generator owns its state; no errors.
local M = {}

-- A generator: unit() in [0, 1), normal() standard normal, int(n) in 0..n-1.
function M.new(seed)
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

return M
