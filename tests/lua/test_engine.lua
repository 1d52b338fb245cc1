-- Unit tests of the Lua engine modules (run by tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local cjson = require("cjson")
local config = require("knobengine.config")
local knobs = require("knobengine.knobs")
local dataset = require("knobengine.dataset")
local format = require("knobengine.format")
local objective = require("knobengine.objective")
local Search = require("knobengine.search")
local util = require("knobengine.util")
local knob = require("knob")

t.test("split_command works like a shell, without running one", function()
  t.eq(config.split_command([[vllm serve 'a b' "c \"d\"" e\ f --port {port}]]),
    { "vllm", "serve", "a b", 'c "d"', "e f", "--port", "{port}" })
  t.eq(config.split_command("a;b $(x) `y` | z"), { "a;b", "$(x)", "`y`", "|", "z" })
  t.eq(config.split_command("''"), { "" })
  local argv, err = config.split_command("a 'b")
  t.eq(argv, nil); t.eq(err, "unterminated single quote")
end)

local Space = require("knobengine.space")

t.test("mask strings put knobs[0] leftmost; on/off knobs number masks in binary", function()
  local s3, s4 = Space.new({ 2, 2, 2 }), Space.new({ 2, 2, 2, 2 })
  t.eq(s3:string(0), "000")
  t.eq(s3:string(4), "100")
  t.eq(s4:string(6), "0110")
  t.eq(s3:digit(4, 1), 1); t.eq(s3:digit(4, 3), 0)
  t.eq(s3.size, 8); t.ok(s3.boolean)
  -- on/off knobs: exactly the binary numbering and bit strings of every earlier version
  local s5 = Space.new({ 2, 2, 2, 2, 2 })
  for m = 0, 31 do
    local bits = {}
    for i = 1, 5 do bits[i] = ((m >> (5 - i)) & 1) == 1 and "1" or "0" end
    t.eq(s5:string(m), table.concat(bits)); t.eq(s5:parse(table.concat(bits)), m)
  end
end)

t.test("mixed-radix masks: digits, strings, with, parse, errors name the knob and index", function()
  local s = Space.new({ 3, 2, 12 }, { "seqs", "eager", "chunk" })
  t.eq(s.size, 72); t.ok(not s.boolean)
  local m = s:encode({ 2, 1, 11 })
  t.eq(m, 2 * 24 + 1 * 12 + 11)
  t.eq(s:string(m), "21b"); t.eq(s:digits(m), { 2, 1, 11 })
  t.eq(s:parse("21b"), m); t.eq(s:parse(tostring(m)), m); t.eq(s:parse(m), m)
  t.eq(s:with(m, 1, 0), 23); t.eq(s:string(s:with(m, 3, 10)), "21a")
  local masks = {}
  for x in s:masks() do masks[#masks + 1] = x end
  t.eq(#masks, 72); t.eq(masks[1], 0); t.eq(masks[72], s:last())
  local bad, why = s:with(m, 1, 3)
  t.eq(bad, nil); t.eq(why, "knob 'seqs' has no value index 3 (it has 0..2)")
  t.eq(select(2, s:with(m, 4, 0)), "there is no knob 4 (knobs are 1..3)")
  t.eq(select(2, s:parse("31b")), "knob 'seqs' has no value index 3 (it has 0..2)")
  t.eq(select(2, s:parse("2!b")), "'!' is not a value index (0-9, a-z)")
  t.eq(select(2, s:parse("72")), "not a mask of 3 knobs (3 characters, or an integer in 0..71)")
  t.eq(select(2, Space.new({ 36, 36, 36, 36, 36, 36, 36, 36, 36 })), "more than 2^40 combinations")
end)

local function sample_config()
  local dir = os.tmpname()
  os.remove(dir)
  knob.mkdir_p(dir)
  util.write(dir .. "/d.jsonl", '{"prompt": "hello there"}\n\n{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}\n')
  util.write(dir .. "/c.json", cjson.encode({
    serve_cmd = "./srv serve m --port {port}",
    env = { A = "x{port}" },
    server = { port = 9123 },
    workload = { dataset = "d.jsonl", model = "m", endpoint = "/v1/chat/completions" },
    knobs = {
      { name = "f", flag = "--fast" },
      { name = "k", key = "--dtype", on_value = "fp8" },
      { name = "e", env = "BACKEND", on_value = "X" },
    },
  }))
  return dir, config.load(dir .. "/c.json")
end

t.test("config defaults, relative paths and mask resolution", function()
  local dir, cfg = sample_config()
  t.eq(cfg.serve_cmd[1], dir .. "/./srv")
  t.eq(cfg.workload.dataset_path, dir .. "/d.jsonl")
  t.eq(cfg.workload.concurrency, 8)
  t.eq(cfg.server.ready_path, "/health")
  t.eq(cfg.objective.metric, "p50_latency_ms")
  local r = knobs.resolve(cfg, 5) -- 101
  t.eq(r.mask_string, "101")
  t.eq(r.argv, { dir .. "/./srv", "serve", "m", "--port", "9123", "--fast" })
  t.eq(r.env, { A = "x9123", BACKEND = "X" })
  t.eq(r.knobs_on, { "f", "e" })
  r = knobs.resolve(cfg, 2)
  t.eq(r.argv[#r.argv - 1], "--dtype"); t.eq(r.argv[#r.argv], "fp8")
  knob.remove_tree(dir)
end)

t.test("dataset bodies are deterministic OpenAI requests", function()
  local dir, cfg = sample_config()
  local data = dataset.load(cfg.workload, 100)
  local items = data.items
  t.eq(#items, 2); t.eq(data.count, 2); t.eq(#data.hash, 16)
  local bodies = dataset.bodies(items, cfg.workload)
  local b1, b2 = cjson.decode(bodies[1]), cjson.decode(bodies[2])
  t.eq(b1.messages[1].content, "hello there")
  t.eq(b1.max_tokens, 128); t.eq(b2.max_tokens, 3)
  t.eq(b1.ignore_eos, true); t.eq(b1.stream, true); t.eq(b1.stream_options.include_usage, true)
  t.eq(b1.temperature, 0)
  cfg.workload.endpoint = "/v1/completions"
  t.raises(function() dataset.bodies(items, cfg.workload) end, "line 3 has 'messages'")
  knob.remove_tree(dir)
end)

t.test("number formats are exact", function()
  t.eq(format.ms(1.23456), "1.235")
  t.eq(format.ms(cjson.null), "na")
  t.eq(format.ms(0 / 0), "na")
  t.eq(format.ms(-0.0001), "0.000")
  t.eq(format.rate(0.05), "0.0500")
  t.eq(format.percent(12.345), "12.35")
  t.eq(format.delta(3, 1.75), "+1.250")
  t.eq(format.delta(1, 4), "-3.000")
  t.eq(format.delta(1, 1), "+0.000")
  t.eq(format.delta(1.0000001, 1), "+0.000")
  t.eq(format.delta(nil, 1), "na")
  t.eq(format.csv_field('a,b"c'), '"a,b""c"')
end)

t.test("table rows show na for invalid trials but their error_rate", function()
  local good = { trial = 0, mask_string = "01", valid = true, error_rate = 0,
    metrics = { p50_latency_ms = 10, p95_latency_ms = 12.5, tokens_per_s = 100 } }
  t.eq(format.table_row(good, 11), "0,01,10.000,12.500,100.000,0.0000,-1.000")
  local bad = { trial = 1, mask_string = "10", valid = false, error_rate = 0.25, metrics = { p50_latency_ms = 5 } }
  t.eq(format.table_row(bad, 11), "1,10,na,na,na,0.2500,na")
  t.eq(format.best_line(good, 11), "BEST,knob_mask=01,p50_latency_ms=10.000,delta_p50_ms=-1.000")
end)

t.test("BEST_VS_BASELINE block is exact", function()
  local base = { metrics = { p50_latency_ms = 10, p95_latency_ms = 20, tokens_per_s = 5 },
    trace = { gpu_compute_ms = 1, memcpy_ms = cjson.null, osrt_wait_ms = 2,
      top_kernels = { { name = "k,1", total_ms = 0.5, percent = 50 } } },
    phases = { get_batch = { total_ms = 3 }, prefill = cjson.null } }
  local best = { metrics = { p50_latency_ms = 8, p95_latency_ms = 21, tokens_per_s = 6 } }
  local lines = format.best_vs_baseline(base, best, { "get_batch", "prefill", "decode" })
  t.eq(table.concat(lines, "\n"), table.concat({
    "BEST_VS_BASELINE",
    "p50_latency_ms: 10.000 -> 8.000 (-2.000)",
    "p95_latency_ms: 20.000 -> 21.000 (+1.000)",
    "tokens_per_s: 5.000 -> 6.000 (+1.000)",
    "",
    "gpu_compute_ms: 1.000 -> na (na)",
    "memcpy_ms: na -> na (na)",
    "osrt_wait_ms: 2.000 -> na (na)",
    "",
    "nvtx_get_batch_ms: 3.000 -> na (na)",
    "nvtx_prefill_ms: na -> na (na)",
    "nvtx_decode_ms: na -> na (na)",
    "",
    "TOP_KERNELS_BASELINE",
    '1) "k,1",0.500,50.00',
    "",
    "TOP_KERNELS_BEST",
    "1) na",
  }, "\n"))
end)

local function rec(i, p50, p95, tps, valid, full)
  return { trial = i, valid = valid ~= false, full = full ~= false,
    metrics = { p50_latency_ms = p50, p95_latency_ms = p95, tokens_per_s = tps } }
end

t.test("best: objective, then tie-breakers, then lowest trial", function()
  local obj = { metric = "p50_latency_ms", maximize = false, tie_breakers = {
    { metric = "p95_latency_ms", maximize = false }, { metric = "tokens_per_s", maximize = true } } }
  t.eq(objective.choose({ rec(0, 10, 5, 1), rec(1, 9, 9, 1), rec(2, 9.0001, 1, 1) }, obj).trial, 2) -- 9.000 == 9.000, p95 decides
  t.eq(objective.choose({ rec(0, 9, 5, 1), rec(1, 9, 5, 2) }, obj).trial, 1)
  t.eq(objective.choose({ rec(0, 9, 5, 2), rec(1, 9, 5, 2) }, obj).trial, 0)
  t.eq(objective.choose({ rec(0, 1, 1, 1, false), rec(1, 5, 5, 5) }, obj).trial, 1)
  t.eq(objective.choose({ rec(0, 1, 1, 1, true, false), rec(1, 5, 5, 5) }, obj).trial, 1)
  t.eq(objective.choose({ rec(0, 1, 1, 1, false) }, obj), nil)
end)

t.test("within_noise: best and runner-up closer than their repeats' spread", function()
  local obj = { metric = "p50_latency_ms", maximize = false, tie_breakers = {} }
  local function trial(i, p50, reps)
    local r = rec(i, p50, 1, 1)
    r.repeats = {}
    for k, v in ipairs(reps) do r.repeats[k] = { p50_latency_ms = v } end
    return r
  end
  local a, b, c = trial(0, 10.0, { 9.5, 10.0, 10.8 }), trial(1, 10.4, { 10.3, 10.4, 10.5 }), trial(2, 30, { 30, 30, 30 })
  local runner, gap, noise = objective.within_noise({ a, b, c }, obj)
  t.eq(runner, b)
  t.ok(math.abs(gap - 0.4) < 1e-9 and math.abs(noise - 1.3) < 1e-9)
  t.eq(objective.within_noise({ a, c }, obj), nil) -- 20 ms apart: clear
  local p, q = rec(0, 10, 1, 1), rec(1, 10.1, 1, 1)
  t.eq(objective.within_noise({ p, q }, obj), nil) -- no repeats, no measured spread
  -- every request failed but max_error_rate is 1: the metrics are null, never a number
  local x, y = trial(0, cjson.null, { 1, 2 }), trial(1, cjson.null, { 1, 2 })
  t.eq(objective.choose({ x, y }, obj), x)
  t.eq(objective.within_noise({ x, y }, obj), nil)
end)

t.test("record: one shape, copies for strategies, every metric in every view", function()
  local record = require("knobengine.record")
  local r = { ok = true, metrics = { p50_latency_ms = 5, error_rate = 0, ttft_ms = { p50 = 1 }, new_metric = 7 },
    timing = { start_s = 1 } }
  local rec = record.from_result(r, { mask = 1, mask_string = "01", requests = 4, full = true, config = {},
    dir = "/d", wall_s = 2, max_error_rate = 0 })
  t.eq(rec.valid, true)
  rec.trial = 3
  local v = record.view(rec)
  t.eq(v.new_metric, 7); t.eq(v.trial, 3)
  v.ttft_ms.p50 = 99 -- a strategy's edit never reaches the record
  t.eq(rec.metrics.ttft_ms.p50, 1)
  t.eq(record.client_metrics(rec).new_metric, 7)
  t.eq(record.summary_entry(rec).metrics.new_metric, 7)
  local back = record.from_stored(cjson.decode(cjson.encode(record.stored(rec))))
  t.eq(back.resumed, true); t.eq(back.error, nil); t.eq(back.metrics.new_metric, 7)
  local never = record.from_result({ ok = false, error = "boom", timing = {} }, { max_error_rate = 0.5 })
  t.eq(never.error_rate, 1.0); t.eq(never.valid, false); t.eq(never.metrics, {})
end)

t.test("search handle: masks, evaluate, history, bad masks", function()
  local calls = {}
  local s = Search.new({
    cfg = { knobs = { { name = "a", index = 0 }, { name = "b", index = 1 } }, workload = { request_count = 10 }, strategy_options = {} },
    baseline = { p50_latency_ms = 1 },
    run_trial = function(index, mask, requests)
      calls[#calls + 1] = { index, mask, requests }
      return { mask = mask, mask_string = Space.new({ 2, 2 }):string(mask), ok = true, valid = true,
        full = requests == 10, requests = requests, error_rate = 0, metrics = { p50_latency_ms = mask } }
    end,
  })
  local masks = {}
  for m in s:masks() do masks[#masks + 1] = m end
  t.eq(masks, { 0, 1, 2, 3 })
  local r = s:evaluate("10")
  t.eq(r.trial, 0); t.eq(r.mask, 2); t.eq(r.p50_latency_ms, 2)
  r = s:evaluate(1, { requests = 3 })
  t.eq(r.full, false)
  t.eq(calls, { { 0, 2, 10 }, { 1, 1, 3 } })
  t.eq(#s:history(), 2)
  t.raises(function() s:evaluate(4) end, "out of range 0..3")
  t.raises(function() s:evaluate("1x") end, "search:evaluate: mask '1x': knob 'b' has no value index 33 (it has 0..1)")
  t.raises(function() s:evaluate("1-") end, "mask '1-': '-' is not a value index (0-9, a-z)")
  t.raises(function() s:evaluate("101") end, "mask '101': not a mask string of 2 characters")
  t.eq(s:with(0, 2, 1), 1); t.eq(s:digits(2), { 1, 0 }); t.eq(s:mask({ 1, 1 }), 3)
  t.raises(function() s:with(0, 2, 2) end, "search:with: knob 'b' has no value index 2 (it has 0..1)")
  t.eq(s.knobs[1].size, 2); t.eq(s.knobs[1].values, { "off", "on" }); t.eq(s.size, 4)
  t.raises(function() s:evaluate(0, { requests = 11 }) end, "requests must be an integer in 1..10")
end)

t.test("bundled bruteforce strategy evaluates every mask in order", function()
  local strategy = dofile(knob.root .. "/strategies/bruteforce.lua")
  local seen = {}
  local s = Search.new({ cfg = { knobs = { { name = "a" }, { name = "b" }, { name = "c" } }, workload = { request_count = 1 },
    strategy_options = {} }, run_trial = function(_, m) seen[#seen + 1] = m; return { metrics = {} } end })
  strategy.run(s)
  t.eq(seen, { 0, 1, 2, 3, 4, 5, 6, 7 })
end)

local Landscape = require("knobengine.landscape")

-- Runs a bundled strategy against a synthetic landscape; returns the records.
local function run_on_landscape(name, n, seed, options)
  local land = Landscape.new(n, seed, { noise = 0 })
  local knobs = {}
  for i = 1, n do knobs[i] = { name = "k" .. i, index = i - 1 } end
  local obj = { metric = "p50_latency_ms", maximize = false, tie_breakers = {} }
  local records = {}
  local st = dofile(knob.root .. "/strategies/" .. name .. ".lua")
  local cfg = { knobs = knobs, workload = { request_count = 100 }, strategy_options = options or {}, objective = obj }
  local s = Search.new({
    cfg = cfg, options = require("knobengine.strategy").options(st, cfg.strategy_options, cfg),
    baseline = {},
    run_trial = function(_, mask, requests)
      local r = land:measure(mask, requests / 100)
      r.mask_string, r.requests = land.space:string(mask), requests
      return r
    end,
  }, records)
  st.run(s)
  return records, land, obj
end

t.test("landscape: deterministic per seed, a conflicting pair, measured noise as configured", function()
  local a, b, other = Landscape.new(8, 5), Landscape.new(8, 5), Landscape.new(8, 6)
  local differs = false
  for m = 0, 255 do
    t.eq(a:true_p50(m), b:true_p50(m))
    if a:true_p50(m) ~= other:true_p50(m) then differs = true end
  end
  t.ok(differs, "two seeds gave the same landscape")
  for seed = 1, 50 do -- the conflict is between two different knobs: masks with both ON fail
    local land = Landscape.new(6, seed)
    local c1, c2 = land.conflict[1], land.conflict[2]
    t.ok(c1 ~= c2, "a knob conflicts with itself")
    for m = 0, 63 do
      local both = land.space:digit(m, c1) == 1 and land.space:digit(m, c2) == 1
      t.eq(land:feasible(m), not both)
    end
  end
  local noisy, sum, sq, n = Landscape.new(4, 9, { noise = 0.02 }), 0, 0, 4000
  local truth = noisy:true_p50(0)
  for _ = 1, n do
    local rel = noisy:measure(0, 1).metrics.p50_latency_ms / truth - 1
    sum, sq = sum + rel, sq + rel * rel
  end
  local sd = math.sqrt(sq / n - (sum / n) ^ 2)
  t.ok(math.abs(sd - 0.02) < 0.002, "measured noise sd " .. sd)
end)

t.test("coord_descent: never twice, stops at a local optimum", function()
  for seed = 1, 20 do
    local recs, land, obj = run_on_landscape("coord_descent", 6, seed)
    local seen = {}
    for _, r in ipairs(recs) do
      t.ok(not seen[r.mask], "mask evaluated twice"); seen[r.mask] = true
    end
    t.eq(recs[1].mask, 0)
    local best = objective.choose(recs, obj)
    for i = 0, 5 do -- every neighbour of the result was evaluated and is not better
      local nb = best.mask ~ (1 << i)
      t.ok(seen[nb], "neighbour not evaluated")
      local v = land:true_p50(nb)
      t.ok(v == nil or v >= land:true_p50(best.mask))
    end
  end
end)

t.test("halving: screens all, confirms the best fraction, best is confirmed", function()
  local recs, land, obj = run_on_landscape("halving", 5, 3, { screen_requests = 10, keep_fraction = 0.25 })
  t.eq(#recs, 32 + 8)
  for i = 1, 32 do t.eq(recs[i].requests, 10); t.eq(recs[i].full, false) end
  for i = 33, 40 do t.eq(recs[i].full, true) end
  local best = objective.choose(recs, obj)
  t.ok(best.full)
  t.eq(best.mask, (land:optimum())) -- noise-free: the true optimum survives screening
end)

t.test("knobs with values: argv, env, labels; unset false applies the first value", function()
  local dir = os.tmpname()
  os.remove(dir)
  knob.mkdir_p(dir)
  util.write(dir .. "/d.jsonl", '{"prompt": "hello"}\n')
  util.write(dir .. "/c.json", cjson.encode({
    serve_cmd = "srv --port {port}", workload = { dataset = "d.jsonl", model = "m" },
    knobs = {
      { name = "seqs", key = "--max-num-seqs", values = { "64", "128", "256" } },
      { name = "dtype", key = "--kv-cache-dtype", values = { "auto", "fp8" }, unset = false },
      { name = "backend", env = "BACKEND", values = { "A", "B" } },
      { name = "eager", flag = "--enforce-eager" },
    },
  }))
  local cfg = config.load(dir .. "/c.json")
  t.eq(cfg.space.radix, { 4, 2, 3, 2 }); t.eq(cfg.space.size, 48)
  local base = knobs.resolve(cfg, 0)
  t.eq(base.mask_string, "0000")
  t.eq(base.argv, { "srv", "--port", "8000", "--kv-cache-dtype", "auto" }) -- unset false: index 0 is "auto"
  t.eq(base.knobs_on, { "dtype=auto" }); t.eq(base.env.BACKEND, nil)
  local r = knobs.resolve(cfg, cfg.space:parse("3121"))
  t.eq(r.argv, { "srv", "--port", "8000", "--max-num-seqs", "256", "--kv-cache-dtype", "fp8", "--enforce-eager" })
  t.eq(r.env.BACKEND, "B")
  t.eq(r.knobs_on, { "seqs=256", "dtype=fp8", "backend=B", "eager" })
  local s = Search.new({ cfg = cfg, run_trial = function() end })
  t.eq(s.knobs[1].values, { "(unset)", "64", "128", "256" }); t.eq(s.knobs[2].values, { "auto", "fp8" })
  t.eq(s.knobs[1].size, 4); t.eq(s.size, 48)
end)

local compare = require("knobengine.compare")

t.test("compare: brute force always finds the best at zero noise; a seed gives the same figures", function()
  local world = compare.synthetic(5)
  local brute = dofile(knob.root .. "/strategies/bruteforce.lua")
  local m = compare.method("bruteforce", brute, world, { seeds = 10, seed = 1, cv = 0 })
  t.eq(m.found_best, 1.0); t.eq(m.regret_pct.max, 0.0); t.eq(m.launches.median, 32.0)
  t.eq(m.wall_s.median, nil) -- synthetic trials have no duration
  local cd = dofile(knob.root .. "/strategies/coord_descent.lua")
  local a = compare.method("coord_descent", cd, world, { seeds = 10, seed = 3, cv = 0.05 })
  local b = compare.method("coord_descent", cd, world, { seeds = 10, seed = 3, cv = 0.05 })
  t.eq(a, b)
  local sr = compare.method("stack_rank", dofile(knob.root .. "/strategies/stack_rank.lua"), world,
    { seeds = 10, seed = 1, cv = 0 })
  t.eq(sr.launches.max >= 6, true); t.ok(sr.predict_mape_pct and sr.predict_mape_pct >= 0)
  t.eq(compare.quantile({ 1, 2, 3, 4 }, 0.5), 2.5); t.eq(compare.quantile({ 1, math.huge }, 0.9), math.huge)
end)

t.test("stack_rank: one launch per knob value alone, then stacks while it improves; predicts additively", function()
  for seed = 1, 20 do
    local recs, land = run_on_landscape("stack_rank", 6, seed)
    t.eq(recs[1].mask, 0)
    for i = 1, 6 do t.eq(recs[i + 1].mask, 1 << (6 - i)) end -- each knob alone, knob 1 first
    t.ok(#recs <= 7 + 5)
  end
  -- on a landscape without interactions the prediction is exact
  local st = dofile(knob.root .. "/strategies/stack_rank.lua")
  local land = Landscape.new(4, 2, { noise = 0 })
  land.pair, land.conflict = {}, { 1, 1 }
  land.feasible = function() return true end
  local cfg = { knobs = { { name = "a" }, { name = "b" }, { name = "c" }, { name = "d" } }, workload = { request_count = 1 },
    strategy_options = {}, objective = { metric = "p50_latency_ms", maximize = false, tie_breakers = {} } }
  local ret = st.run(Search.new({ cfg = cfg, run_trial = function(_, mask) return land:measure(mask, 1) end }))
  for mask = 0, 15 do t.ok(math.abs(ret.predict(mask) - land:true_p50(mask)) < 1e-9) end
end)

t.test("pretty JSON is sorted and keeps nulls", function()
  t.eq(util.json({ b = 1, a = { 1.5, cjson.null }, c = util.array({}) }),
    '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1,\n  "c": []\n}\n')
  t.eq(util.shell_quote("it's"), "'it'\\''s'")
  t.eq(util.shell_join({ "a", "b c", "$x" }), "a 'b c' '$x'")
end)

t.test("GPU metrics options are spelled as the installed nsys's help says, read once per run", function()
  local trial = require("knobengine.trial")
  local dir = t.tmpdir()
  local function fake_nsys(name, help)
    local path = dir .. "/" .. name
    assert(knob.write_atomic(path, string.format("#!/bin/sh\necho \"$@\" >> %s/calls\ncat <<'EOF'\n%s\nEOF\n",
      dir, help), 493)) -- 0755
    return path
  end
  local old = fake_nsys("nsys-2022", "\t--gpu-metrics-device=\n\t--gpu-metrics-frequency=\n")
  local new = fake_nsys("nsys-2024", "\t--gpu-metrics-devices=\n\t--gpu-metrics-frequency=\n")
  local base = { capture = "session", gpu_metrics_frequency = 5000 }
  local function args(bin, over)
    local n = util.copy(base)
    n.bin = bin
    for k, v in pairs(over) do n[k] = v end
    return trial.gpu_metrics_args(n)
  end
  t.eq(args(old, { gpu_metrics = false }), nil)
  t.eq(args(old, { gpu_metrics = true }), { args = { "--gpu-metrics-device=all", "--gpu-metrics-frequency=5000" },
    command = "start" })
  t.eq(args(old, { gpu_metrics = { 0, 3 } }).args[1], "--gpu-metrics-device=0,3")
  t.eq(args(new, { gpu_metrics = { 1 } }), { args = { "--gpu-metrics-devices=1", "--gpu-metrics-frequency=5000" },
    command = "start" })
  t.eq(args(new, { gpu_metrics = true, capture = "process" }).command, "profile")
  t.eq(util.read_file(dir .. "/calls"), "start --help\nstart --help\nprofile --help\n") -- each once per nsys
  knob.remove_tree(dir)
end)

t.test("docs/lua-api.md documents exactly the knob module's functions", function()
  local f = assert(io.open(knob.root .. "/docs/lua-api.md"))
  local doc = f:read("a")
  f:close()
  local documented, exported = {}, {}
  for name in doc:gmatch("`knob%.([%w_]+)") do documented[name] = true end
  for name in pairs(knob) do exported[name] = true end
  for name in pairs(exported) do t.ok(documented[name], "knob." .. name .. " is not documented") end
  for name in pairs(documented) do t.ok(exported[name], "knob." .. name .. " is documented but does not exist") end
  local methods = {}
  for m in doc:gmatch("`proc:([%w_]+)") do methods[m] = true end
  t.eq(methods, { wait_ready = true, stop = true, pid = true, exited = true })
end)

t.test("suspect trials: the client's limits and the token check; reject_suspect makes them invalid", function()
  local record = require("knobengine.record")
  local m = { error_rate = 0, send_lateness_ms = { p99 = 12.5 }, read_lag_ms = { p99 = 5 }, token_mismatch = 2 }
  local reasons = record.suspect_reasons(m)
  t.eq(reasons, { "the client fell behind its schedule (send lateness p99 12.500 ms > 10)",
    "2 request(s) reported token counts far from what they streamed" })
  t.eq(record.suspect_reasons({ send_lateness_ms = { p99 = 10 }, read_lag_ms = { p99 = 5.5 }, token_mismatch = 0 }),
    { "the client read the streams late (read lag p99 5.500 ms > 5)" })
  t.eq(record.suspect_reasons({ token_mismatch = 0 }), nil)
  local f = { mask = 1, mask_string = "01", requests = 4, full = true, max_error_rate = 0 }
  local rec = record.from_result({ ok = true, metrics = m }, f)
  t.eq({ rec.valid, rec.suspect }, { true, reasons })
  local back = record.decode(cjson.decode(cjson.encode(record.stored(rec))))
  t.eq(back.suspect, reasons)
  t.eq(record.decode(cjson.decode(cjson.encode(record.stored(record.from_result({ ok = true, metrics = {} }, f))))).suspect, nil)
  f.reject_suspect = true
  rec = record.from_result({ ok = true, metrics = m }, f)
  t.eq({ rec.valid, rec.error }, { false, "suspect (constraints.reject_suspect): " .. table.concat(reasons, "; ") })
end)

t.done()
