-- Search methods compared offline (docs/compare.md): each strategy runs against a
-- world where evaluate(mask) returns a measurement already made (a completed
-- brute-force sweep from history.sqlite) or a synthetic landscape's (landscape.lua),
-- perturbed by noise, over many seeds. No server is started.
--
-- A world: {space, cfg (knobs, workload.request_count, objective, strategy_options),
-- truth = {[mask] = record}, best (the record the truth chooses), trial_s(mask,
-- requests) (seconds, nil when unknown)}. Per method it counts the cost (launches,
-- requests, seconds, GPU-hours) and scores optimization accuracy (found the true best;
-- regret of the pick) and, for strategies whose run() returns predict(mask),
-- predictive accuracy (MAPE over every mask the truth measured).
-- Errors: a missing sweep or a bad option is a usage error (errors.lua).
local cjson = require("cjson")
local errors = require("knobengine.errors")
local Landscape = require("knobengine.landscape")
local objective = require("knobengine.objective")
local record = require("knobengine.record")
local Rng = require("knobengine.rng")
local Search = require("knobengine.search")
local strategies = require("knobengine.strategy")
local util = require("knobengine.util")

local M = {}

M.DEFAULT_METHODS = { "bruteforce", "halving", "coord_descent", "stack_rank", "bayes" }

local copy = util.copy

-- The record the truth chooses as best (objective.choose over every mask).
local function true_best(truth, obj)
  local list = {}
  for mask, rec in pairs(truth) do
    local r = copy(rec)
    r.trial, r.full = mask, true
    list[#list + 1] = r
  end
  table.sort(list, function(a, b) return a.trial < b.trial end)
  return objective.choose(list, obj)
end

-- The noise of a recorded sweep: the median over its masks of the objective metric's
-- coefficient of variation across repeats; nil when no trial has two repeats.
local function repeat_cv(truth, metric)
  local cvs = {}
  for _, rec in pairs(truth) do
    local xs = {}
    for _, r in ipairs(rec.repeats or {}) do
      if type(r[metric]) == "number" then xs[#xs + 1] = r[metric] end
    end
    if #xs >= 2 then
      local sum, sq = 0, 0
      for _, x in ipairs(xs) do sum = sum + x end
      local mean = sum / #xs
      for _, x in ipairs(xs) do sq = sq + (x - mean) ^ 2 end
      if mean > 0 then cvs[#cvs + 1] = math.sqrt(sq / (#xs - 1)) / mean end
    end
  end
  if #cvs == 0 then return nil end
  table.sort(cvs)
  return cvs[(#cvs + 1) // 2]
end

-- The newest complete run of this config in history whose full-fidelity trials cover
-- every mask: {run_id, run_dir, truth}. Usage error naming the best coverage otherwise.
local function find_sweep(cfg, history, hash)
  local rows = history:rows([[SELECT r.id, r.run_dir, t.requests, t.record FROM runs r JOIN trials t ON t.run_id = r.id
      WHERE r.status = 'complete' AND r.config_hash = ? AND t.status != 'interrupted' ORDER BY r.id DESC, t.trial]], hash)
  local runs, order = {}, {}
  for _, row in ipairs(rows) do
    local run = runs[row.id]
    if not run then
      run = { run_id = row.id, run_dir = row.run_dir, truth = {}, count = 0 }
      runs[row.id], order[#order + 1] = run, run
    end
    local rec = record.decode(cjson.decode(row.record))
    if row.requests == cfg.workload.request_count and rec.kind == nil and rec.mask and cfg.space:contains(rec.mask) then
      if not run.truth[rec.mask] then run.count = run.count + 1 end
      run.truth[rec.mask] = rec
    end
  end
  local most
  for _, run in ipairs(order) do
    if run.count == cfg.space.size then return run end
    if not most or run.count > most.count then most = run end
  end
  local older = history:rows("SELECT count(*) AS n FROM runs WHERE status = 'complete' AND identity IS NULL")[1].n
  errors.usage("compare: %s holds no complete sweep of this config's %d combinations%s%s; run one first "
    .. "(knobengine --strategy bruteforce with the same config and results)", history.path, cfg.space.size,
    most and string.format(" (run %d measured %d of them)", most.run_id, most.count) or "",
    older > 0 and string.format(" (%d run(s) recorded by an older knobengine are not used: their identity left out "
      .. "keys that decide the results)", older) or "")
end

-- A world of recorded measurements: the sweep's trials, their own durations.
function M.recorded(cfg, history, hash)
  local sweep = find_sweep(cfg, history, hash)
  local truth = sweep.truth
  local R = cfg.workload.request_count
  return {
    kind = "history", run_id = sweep.run_id, run_dir = sweep.run_dir, space = cfg.space, cfg = cfg,
    truth = truth, best = true_best(truth, cfg.objective), cv = repeat_cv(truth, cfg.objective.metric),
    trial_s = function(mask, requests)
      local t, rec = nil, truth[mask]
      local tm = rec.timing or {}
      if type(tm.start_s) == "number" and type(tm.workload_s) == "number" then
        t = tm.start_s + (tm.stop_s or 0) + tm.workload_s * requests / R
      elseif type(rec.wall_s) == "number" then
        t = rec.wall_s * requests / R
      end
      return t
    end,
  }
end

local SYNTHETIC_OBJECTIVE = { metric = "p50_latency_ms", maximize = false, tie_breakers = {
  { metric = "p95_latency_ms", maximize = false }, { metric = "tokens_per_s", maximize = true } } }

-- A world per seed from the synthetic landscapes of the benchmarks (no durations).
function M.synthetic(n, radices)
  return function(seed)
    local land = Landscape.new(n, seed, { noise = 0, radices = radices and copy(radices) })
    local knobs = {}
    for i = 1, n do knobs[i] = { name = "k" .. i, index = i - 1 } end
    local truth = {}
    for mask in land.space:masks() do
      local rec = land:measure(mask, 1)
      rec.requests = 100
      truth[mask] = rec
    end
    local cfg = { knobs = knobs, space = land.space, workload = { request_count = 100 }, objective = SYNTHETIC_OBJECTIVE,
      strategy_options = {}, hardware = { gpu_count = 1 } }
    return { kind = "synthetic", space = land.space, cfg = cfg, truth = truth, best = true_best(truth, SYNTHETIC_OBJECTIVE),
      trial_s = function() return nil end }
  end
end

-- The objective's metrics of a measurement, each times (1 + sd * a normal draw).
local function perturbed(rec, obj, sd, rng)
  local r = copy(rec)
  if sd > 0 and r.metrics then
    local names = { obj.metric }
    for _, tb in ipairs(obj.tie_breakers or {}) do names[#names + 1] = tb.metric end
    for _, name in ipairs(names) do
      if type(r.metrics[name]) == "number" then r.metrics[name] = r.metrics[name] * (1 + sd * rng.normal()) end
    end
  end
  return r
end

-- One strategy run on a world: {launches, requests, seconds, chosen, predict}.
local function run_once(world, strategy, seed, cv)
  local cfg, rng = world.cfg, Rng.new(seed * 7919 + 17)
  local R = cfg.workload.request_count
  local cost = { requests = 0, seconds = 0 }
  local records = {}
  local raw = {}
  if strategy.options and strategy.options.seed then raw.seed = seed end
  local search = Search.new({
    cfg = cfg, options = strategies.options(strategy, raw, cfg), baseline = {},
    run_trial = function(_, mask, requests)
      cost.requests = cost.requests + requests
      local s = world.trial_s(mask, requests)
      cost.seconds = s and cost.seconds and cost.seconds + s or nil
      local r = perturbed(world.truth[mask], cfg.objective, cv / math.sqrt(requests / R), rng)
      r.mask, r.mask_string, r.requests, r.full = mask, world.space:string(mask), requests, requests == R
      return r
    end,
  }, records)
  local ret = strategy.run(search)
  local best = objective.choose(records, cfg.objective)
  return { launches = #records, requests = cost.requests, seconds = cost.seconds, chosen = best and best.mask,
    predict = type(ret) == "table" and ret.predict or nil }
end

local function value(rec, obj)
  local v = rec and rec.valid and rec.metrics[obj.metric]
  return type(v) == "number" and v or nil
end

-- Regret of a pick in percent of the best value (math.huge: no pick or a failed one).
local function regret(world, mask)
  local obj = world.cfg.objective
  local best, got = value(world.best, obj), mask and value(world.truth[mask], obj)
  if not best or not got then return math.huge end
  return 100 * (obj.maximize and (best - got) or (got - best)) / math.abs(best)
end

-- Mean absolute percentage error of predict over the masks the truth measured.
local function mape(world, predict)
  local sum, n = 0, 0
  for mask, rec in pairs(world.truth) do
    local v, p = value(rec, world.cfg.objective), predict(mask)
    if v and v ~= 0 and type(p) == "number" then sum, n = sum + math.abs(p - v) / math.abs(v), n + 1 end
  end
  return n > 0 and 100 * sum / n or nil
end

local function quantile(xs, q)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  if #s == 0 then return nil end
  table.sort(s)
  local pos = 1 + (#s - 1) * q
  local lo, hi = math.floor(pos), math.ceil(pos)
  if s[lo] == math.huge or s[hi] == math.huge then return s[hi] end
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
end

M.quantile = quantile

-- One method over every seed: the figures of comparison_results.json.
function M.method(name, strategy, world_of, opts)
  local launches, requests, seconds, regrets, mapes, found = {}, {}, {}, {}, {}, 0
  local seconds_known, gpus = true, 1
  for k = 1, opts.seeds do
    local seed = opts.seed + k - 1
    local world = world_of(seed)
    gpus = world.cfg.hardware and world.cfg.hardware.gpu_count or 1
    local r = run_once(world, strategy, seed, opts.cv)
    launches[k], requests[k], regrets[k] = r.launches, r.requests, regret(world, r.chosen)
    if r.seconds then seconds[k] = r.seconds else seconds_known = false end
    if r.chosen ~= nil and world.best and r.chosen == world.best.trial then found = found + 1 end
    if r.predict then mapes[#mapes + 1] = mape(world, r.predict) end
    if opts.on_seed then opts.on_seed(name, k) end
  end
  local wall = seconds_known and quantile(seconds, 0.5) or nil
  return {
    name = name, seeds = opts.seeds,
    launches = { median = quantile(launches, 0.5), p90 = quantile(launches, 0.9), max = quantile(launches, 1) },
    requests = { median = quantile(requests, 0.5) },
    wall_s = { median = wall },
    gpu_hours = { median = wall and wall * gpus / 3600 },
    found_best = found / opts.seeds,
    regret_pct = { median = quantile(regrets, 0.5), p90 = quantile(regrets, 0.9), max = quantile(regrets, 1) },
    predict_mape_pct = #mapes > 0 and quantile(mapes, 0.5) or nil,
  }
end

return M
