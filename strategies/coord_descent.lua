-- Greedy coordinate descent: start from all-OFF (or strategy_options.start, a mask),
-- try flipping each knob, move to the best improving neighbour, stop at a local
-- optimum. Never evaluates a mask twice. At most 1 + N + (N-1) + ... launches,
-- usually about 2N.
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
        local neighbour = evaluate(current.mask ~ (1 << (search.n - i)))
        if search:better(neighbour, best or current) then best = neighbour end
      end
      if not best then return end -- no neighbour improves: a local optimum
      current = best
    end
  end,
}
