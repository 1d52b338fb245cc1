-- Stack rank: measure the baseline's mask and each knob value alone (one launch each:
-- 1 + the sum of (values - 1) over the knobs, N + 1 for on/off knobs), rank the single
-- changes that beat the baseline, then stack them in rank order, one value per knob,
-- while each addition improves the result; the first that does not ends the search.
--
-- It also predicts every combination from the single effects, assuming they do not
-- interact (they multiply the objective metric: an additive model on a log scale). That
-- prediction is what `knobengine compare` scores as predictive accuracy.

-- The objective metric's value of a valid result, nil otherwise.
local function value_of(search, r)
  local metric = search.objective and search.objective.metric or "p50_latency_ms"
  local v = r.valid and r[metric]
  if type(v) == "number" and v > 0 then return v end
end

-- predict(mask): the baseline's value times each set knob value's ratio to it; nil for
-- a mask with a knob value that failed alone.
local function additive_model(search, base, singles)
  local base_v = value_of(search, base)
  if not base_v then return nil end
  local ratio = {}
  for _, s in ipairs(singles) do
    local v = value_of(search, s.result)
    ratio[s.knob .. ":" .. s.digit] = v and v / base_v or false
  end
  return function(mask)
    local v = base_v
    for i = 1, search.n do
      local d = search:digit(mask, i)
      if d ~= 0 then
        local r = ratio[i .. ":" .. d]
        if not r then return nil end
        v = v * r
      end
    end
    return v
  end
end

return {
  name = "stack_rank",
  order = 4, -- its place in --help's list of bundled strategies
  run = function(search)
    local base = search:evaluate(0)
    local singles = {}
    for i = 1, search.n do
      for d = 1, search.knobs[i].size - 1 do
        singles[#singles + 1] = { knob = i, digit = d, result = search:evaluate(search:with(0, i, d)) }
      end
    end
    local ranked = {}
    for _, s in ipairs(singles) do
      if search:better(s.result, base) then ranked[#ranked + 1] = s end
    end
    table.sort(ranked, function(a, b) return search:better(a.result, b.result) end)
    local current, used = base, {}
    for _, s in ipairs(ranked) do
      if not used[s.knob] then
        -- the first stacked value is its single trial, already measured
        local r = current == base and s.result or search:evaluate(search:with(current.mask, s.knob, s.digit))
        if not search:better(r, current) then break end
        current, used[s.knob] = r, true
      end
    end
    return { predict = additive_model(search, base, singles) }
  end,
}
