-- Compares the bundled strategies on seeded synthetic landscapes (N = 6, 8, 10; 100
-- seeds each): launches (median, max), share of seeds where the chosen mask is the
-- exact optimum, share within 2% of it. Run: build/tests/lua_host bench/search_efficiency.lua
local knob = require("knob")
local Landscape = require("knobengine.landscape")
local objective = require("knobengine.objective")
local Search = require("knobengine.search")
local strategies = require("knobengine.strategy")

local SEEDS = tonumber(arg[1]) or 100
local STRATEGIES = { "bruteforce", "coord_descent", "halving" }
local OBJECTIVE = { metric = "p50_latency_ms", maximize = false, tie_breakers = {
  { metric = "p95_latency_ms", maximize = false }, { metric = "tokens_per_s", maximize = true } } }
local REQUESTS = 200

local function run(strategy, land)
  local knobs = {}
  for i = 1, land.n do knobs[i] = { name = "k" .. i, index = i - 1 } end
  local cost = 0
  local records = {}
  local cfg = { knobs = knobs, workload = { request_count = REQUESTS }, strategy_options = {}, objective = OBJECTIVE }
  local search = Search.new({
    cfg = cfg, options = strategies.options(strategy, {}, cfg),
    baseline = {},
    run_trial = function(_, mask, requests)
      cost = cost + requests
      local rec = land:measure(mask, requests / REQUESTS)
      rec.requests = requests
      return rec
    end,
  }, records)
  strategy.run(search)
  local best = objective.choose(records, OBJECTIVE)
  return #records, cost, best and best.mask
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

print(string.format("%-14s %3s %8s %8s %12s %10s %11s", "strategy", "N", "launches", "max", "requests/%", "exact_best", "within_2pct"))
for _, n in ipairs({ 6, 8, 10 }) do
  for _, name in ipairs(STRATEGIES) do
    local strategy = dofile(knob.root .. "/strategies/" .. name .. ".lua")
    local launches, costs, exact, near = {}, {}, 0, 0
    for seed = 1, SEEDS do
      local land = Landscape.new(n, seed)
      local opt_mask, opt = land:optimum()
      local l, cost, chosen = run(strategy, land)
      launches[#launches + 1] = l
      costs[#costs + 1] = cost / ((1 << n) * REQUESTS) * 100
      if chosen == opt_mask then exact = exact + 1 end
      if chosen and land:true_p50(chosen) <= opt * 1.02 then near = near + 1 end
    end
    local maxl = 0
    for _, l in ipairs(launches) do maxl = math.max(maxl, l) end
    print(string.format("%-14s %3d %8.1f %8d %12.1f %10.2f %11.2f", name, n, median(launches), maxl,
      median(costs), exact / SEEDS, near / SEEDS))
  end
end
