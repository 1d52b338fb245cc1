-- Greedy coordinate descent: start from the baseline's mask (or strategy_options.start),
-- try every other value of each knob, move to the best improving neighbour, stop at a
-- local optimum. Never evaluates a mask twice. With N on/off knobs at most
-- 1 + N + (N-1) + ... launches, usually about 2N.
return {
  name = "coord_descent",
  order = 2, -- its place in --help's list of bundled strategies
  options = {
    start = { type = "mask", default = 0, doc = "the mask to start from" },
  },
  run = function(search)
    local seen = {}
    -- the neighbours of a mask not yet measured, as one batch (parallel on executor slots)
    local function measure_neighbours(mask)
      local batch = {}
      for i = 1, search.n do
        for d = 0, search.knobs[i].size - 1 do
          local m = search:with(mask, i, d)
          if seen[m] == nil and d ~= search:digit(mask, i) then batch[#batch + 1] = m; seen[m] = false end
        end
      end
      for _, r in ipairs(search:evaluate_many(batch)) do seen[r.mask] = r end
    end
    local current = search:evaluate(search.options.start)
    seen[current.mask] = current
    while true do
      measure_neighbours(current.mask)
      local best
      for i = 1, search.n do
        for d = 0, search.knobs[i].size - 1 do
          local neighbour = seen[search:with(current.mask, i, d)]
          if neighbour and neighbour ~= current and search:better(neighbour, best or current) then best = neighbour end
        end
      end
      if not best then return end -- no neighbour improves: a local optimum
      current = best
    end
  end,
}
