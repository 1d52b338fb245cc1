-- Greedy coordinate descent: start from the baseline's mask (or strategy_options.start),
-- try every other value of each knob, move to the best improving neighbour, stop at a
-- local optimum. Never evaluates a mask twice. With N on/off knobs at most
-- 1 + N + (N-1) + ... launches, usually about 2N.
return {
  name = "coord_descent",
  options = {
    start = { type = "mask", default = 0, doc = "the mask to start from" },
  },
  run = function(search)
    local seen = {}
    local function evaluate(mask)
      if seen[mask] == nil then seen[mask] = search:evaluate(mask) end
      return seen[mask]
    end
    local current = evaluate(search.options.start)
    while true do
      local best
      for i = 1, search.n do
        for d = 0, search.knobs[i].size - 1 do
          if d ~= search:digit(current.mask, i) then
            local neighbour = evaluate(search:with(current.mask, i, d))
            if search:better(neighbour, best or current) then best = neighbour end
          end
        end
      end
      if not best then return end -- no neighbour improves: a local optimum
      current = best
    end
  end,
}
