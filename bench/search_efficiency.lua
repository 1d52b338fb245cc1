-- Compares the bundled strategies on seeded synthetic landscapes (N = 6, 8, 10 on/off
-- knobs, and a mixed space of 4 knobs with 2, 3, 4 and 4 value indices; 100 seeds
-- each): launches (median, max), share of seeds where the chosen mask is the exact
-- optimum, share within 2% of it. Run: build/tests/lua_host bench/search_efficiency.lua
--
-- With --launches SEEDS N [strategy ...] (default bayes, coord_descent), for the peers
-- section of bench/run.py: on N on/off knobs, per seed, the launches until the pick
-- (objective.choose over the trials so far) is within 2% of the true optimum, and the
-- launches of the whole search (the strategy stops itself); one JSON line per strategy,
-- as bench/optuna_landscapes.py prints Optuna's on the same landscapes.
local cjson = require("cjson")
local knob = require("knob")
local Landscape = require("knobengine.landscape")
local objective = require("knobengine.objective")
local Search = require("knobengine.search")
local strategies = require("knobengine.strategy")

local LAUNCHES = arg[1] == "--launches"
local SEEDS = tonumber(LAUNCHES and arg[2] or arg[1]) or 100
local STRATEGIES = { "bruteforce", "coord_descent", "halving", "stack_rank", "bayes" }
local SPACES = {
  { label = "6", n = 6 }, { label = "8", n = 8 }, { label = "10", n = 10 },
  { label = "2x3x4x4", n = 4, radices = { 2, 3, 4, 4 } },
}
local OBJECTIVE = { metric = "p50_latency_ms", maximize = false, tie_breakers = {
  { metric = "p95_latency_ms", maximize = false }, { metric = "tokens_per_s", maximize = true } } }
local REQUESTS = 200

local function knobs_of(land)
  local knobs = {}
  for i = 1, land.n do
    knobs[i] = { name = "k" .. i, index = i - 1 }
    local r = land.space.radix[i]
    if r > 2 then
      knobs[i].values, knobs[i].unset = {}, true
      for v = 1, r - 1 do knobs[i].values[v] = tostring(v) end
    end
  end
  return knobs
end

local function run(strategy, land, seed)
  local cost = 0
  local records = {}
  local cfg = { knobs = knobs_of(land), space = land.space, workload = { request_count = REQUESTS },
    strategy_options = {}, objective = OBJECTIVE }
  local raw = (strategy.options and strategy.options.seed) and { seed = seed } or {}
  local search = Search.new({
    cfg = cfg, options = strategies.options(strategy, raw, cfg),
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
  return #records, cost, best and best.mask, records
end

-- The first launch count whose pick is within 2% of the optimum (nil: never).
local function launches_to_within(records, land, optimum)
  local prefix = {}
  for k, rec in ipairs(records) do
    prefix[k] = rec
    local best = objective.choose(prefix, OBJECTIVE)
    if best and land:true_p50(best.mask) <= optimum * 1.02 then return k end
  end
end

local function print_launches(n, names)
  for _, name in ipairs(#names > 0 and names or { "bayes", "coord_descent" }) do
    local strategy = dofile(knob.root .. "/strategies/" .. name .. ".lua")
    local reached, total = {}, {}
    for seed = 1, SEEDS do
      local land = Landscape.new(n, seed)
      local _, optimum = land:optimum()
      local launches, _, _, records = run(strategy, land, seed)
      reached[seed], total[seed] = launches_to_within(records, land, optimum) or cjson.null, launches
    end
    print(cjson.encode({ method = "knobengine " .. name, reached = reached, launches = total }))
  end
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

if LAUNCHES then
  print_launches(tonumber(arg[3]) or 10, table.move(arg, 4, #arg, 1, {}))
  return
end

print(string.format("%-14s %7s %8s %8s %12s %10s %11s %8s", "strategy", "space", "launches", "max", "requests/%",
  "exact_best", "within_2pct", "cpu_s"))
for _, sp in ipairs(SPACES) do
  for _, name in ipairs(STRATEGIES) do
    local strategy = dofile(knob.root .. "/strategies/" .. name .. ".lua")
    local launches, costs, exact, near = {}, {}, 0, 0
    local started = os.clock()
    for seed = 1, SEEDS do
      local land = Landscape.new(sp.n, seed, { radices = sp.radices })
      local opt_mask, opt = land:optimum()
      local l, cost, chosen = run(strategy, land, seed)
      launches[#launches + 1] = l
      costs[#costs + 1] = cost / (land.space.size * REQUESTS) * 100
      if chosen == opt_mask then exact = exact + 1 end
      if chosen and land:true_p50(chosen) <= opt * 1.02 then near = near + 1 end
    end
    local maxl = 0
    for _, l in ipairs(launches) do maxl = math.max(maxl, l) end
    print(string.format("%-14s %7s %8.1f %8d %12.1f %10.2f %11.2f %8.2f", name, sp.label, median(launches), maxl,
      median(costs), exact / SEEDS, near / SEEDS, os.clock() - started))
  end
end
