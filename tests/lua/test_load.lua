-- Unit tests of realistic load: arrival schedules (their statistics, reproducibility),
-- the dataset formats, the capacity grid's plan and calibration's arithmetic (run by
-- tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local cjson = require("cjson")
local knob = require("knob")
local calibration = require("knobengine.calibration")
local dataset = require("knobengine.dataset")
local grid_plan = require("knobengine.grid_plan")
local schedule = require("knobengine.schedule")
local util = require("knobengine.util")

-- Mean rate and coefficient of variation of the gaps of a schedule.
local function stats(s)
  local n = #s - 1
  local mean = s[#s] / n
  local var = 0
  for i = 2, #s do var = var + (s[i] - s[i - 1] - mean) ^ 2 end
  return 1 / mean, math.sqrt(var / (n - 1)) / mean
end

t.test("poisson, gamma and constant arrivals: rate within 5%, CV within 10% of theory", function()
  local cases = {
    { { type = "poisson", rate = 20 }, 1 },
    { { type = "gamma", rate = 20, burstiness = 1 }, 1 },
    { { type = "gamma", rate = 50, burstiness = 0.25 }, 2 },
    { { type = "gamma", rate = 5, burstiness = 4 }, 0.5 },
    { { type = "constant", rate = 8 }, 0 },
  }
  for _, case in ipairs(cases) do
    local a, cv_want = case[1], case[2]
    -- 2000 requests of the default seed; and ten seeds together, where chance alone
    -- moves the mean rate by well under 2%
    local s = schedule.draw(a, 2000, 0)
    t.eq(#s, 2000); t.eq(s[1], 0)
    local rate, cv = stats(s)
    t.ok(math.abs(rate / a.rate - 1) < 0.05, string.format("%s: rate %.3f, want %.3f", a.type, rate, a.rate))
    t.ok(math.abs(cv - cv_want) <= 0.1 * math.max(cv_want, 0.01), string.format("%s %s: CV %.3f, want %.3f", a.type,
      tostring(a.burstiness), cv, cv_want))
    local rates, cvs = 0, 0
    for seed = 1, 10 do
      local r, v = stats(schedule.draw(a, 2000, seed))
      rates, cvs = rates + r / 10, cvs + v / 10
    end
    t.ok(math.abs(rates / a.rate - 1) < 0.02, string.format("%s: mean rate over seeds %.3f", a.type, rates))
    t.ok(math.abs(cvs - cv_want) <= 0.05 * math.max(cv_want, 0.01), string.format("%s: mean CV over seeds %.3f", a.type, cvs))
  end
end)

t.test("schedules are reproducible from the seed and change with it", function()
  local a = { type = "gamma", rate = 10, burstiness = 0.5 }
  t.eq(schedule.draw(a, 100, 7), schedule.draw(a, 100, 7))
  t.ok(schedule.draw(a, 100, 7)[50] ~= schedule.draw(a, 100, 8)[50])
  t.eq(schedule.draw({ type = "closed" }, 100, 7), nil)
end)

t.test("sinusoid: the rate follows the wave", function()
  local a = { type = "sinusoid", min_rate = 2, max_rate = 38, period_s = 20 }
  local s = schedule.draw(a, 4000, 3)
  local lo, hi = 0, 0 -- arrivals near the trough (t mod 20 < 2.5) and the crest (7.5-12.5)
  for _, x in ipairs(s) do
    local ph = x % 20
    if ph < 2.5 or ph > 17.5 then lo = lo + 1 elseif ph > 7.5 and ph < 12.5 then hi = hi + 1 end
  end
  t.ok(hi > 5 * lo, string.format("crest %d vs trough %d", hi, lo))
  local rate = (#s - 1) / s[#s]
  t.ok(math.abs(rate / 20 - 1) < 0.1, "mean rate " .. rate) -- the mean of the wave
end)

t.test("trace: the records' timestamps, relative, scaled, wrapped", function()
  local items = { { timestamp_ms = 1000, line = 1 }, { timestamp_ms = 1500, line = 2 }, { timestamp_ms = 3000, line = 3 } }
  t.eq(schedule.draw({ type = "trace", time_scale = 1 }, 3, 0, items), { 0, 0.5, 2 })
  t.eq(schedule.draw({ type = "trace", time_scale = 0.5 }, 5, 0, items), { 0, 0.25, 1, 1.5, 1.75 })
  t.raises(function() schedule.draw({ type = "trace", time_scale = 1 }, 2, 0, { { line = 4 } }) end, "line 4 has none")
end)

local function workload(path, over)
  local w = { dataset_path = path, dataset_format = "auto", seed = 0, endpoint = "/v1/completions", model = "m",
    max_new_tokens = 16, stream = true }
  for k, v in pairs(over or {}) do w[k] = v end
  return w
end

t.test("ShareGPT: the first human turn and the length of its reply", function()
  local d = t.tmpdir()
  util.write(d .. "/sg.json", cjson.encode({
    { id = "a", conversations = { { from = "human", value = "hello there" }, { from = "gpt", value = "one two three" } } },
    { id = "b", conversations = { { from = "gpt", value = "no question" } } },
    { id = "c", conversations = { { from = "human", value = "q" }, { from = "gpt", value = "a" } } },
  }))
  local data = dataset.load(workload(d .. "/sg.json"), 10)
  t.eq(data.count, 2)
  t.eq(data.items[1].prompt, "hello there"); t.eq(data.items[1].max_tokens, 3)
  t.eq(data.items[2].max_tokens, 1)
  util.write(d .. "/bad.json", '[{"conversations": [{"from": "human"}]}]')
  t.raises(function() dataset.load(workload(d .. "/bad.json"), 10) end, "element 1: conversations[0] needs string")
  util.write(d .. "/cut.json", '[{"conversations": []}, {"convers')
  t.raises(function() dataset.load(workload(d .. "/cut.json"), 10) end, "is not a JSON array of records")
  knob.remove_tree(d)
end)

t.test("mooncake: prompts from 512-word blocks, shared ids share prefixes", function()
  local d = t.tmpdir()
  util.write(d .. "/mc.jsonl", table.concat({
    cjson.encode({ timestamp = 0, input_length = 600, output_length = 7, hash_ids = { 1, 2 } }),
    cjson.encode({ timestamp = 250, input_length = 520, output_length = 3, hash_ids = { 1, 3 } }),
  }, "\n") .. "\n")
  local data = dataset.load(workload(d .. "/mc.jsonl"), 10)
  local b = dataset.bodies(data.items, workload(nil))
  local p1, p2 = cjson.decode(b[1]).prompt, cjson.decode(b[2]).prompt
  local function count(s) local n = 0; for _ in s:gmatch("%S+") do n = n + 1 end; return n end
  t.eq(count(p1), 600); t.eq(count(p2), 520)
  t.eq(p1:sub(1, 3000), p2:sub(1, 3000)) -- block 1 is shared
  t.ok(p1:sub(-100) ~= p2:sub(-100))
  t.eq(cjson.decode(b[1]).max_tokens, 7)
  t.eq(data.items[2].timestamp_ms, 250)
  util.write(d .. "/bad.jsonl", cjson.encode({ timestamp = 0, input_length = "5", output_length = 1, hash_ids = { 1 } }) .. "\n")
  t.raises(function() dataset.load(workload(d .. "/bad.jsonl"), 10) end, "line 1: 'input_length' must be an integer")
  knob.remove_tree(d)
end)

t.test("synthetic probes: lengths with spread, distinct prompts, reproducible", function()
  local w = workload(nil, { synthetic = { input_tokens = 100, output_tokens = 20, spread = 0.1 } })
  local a, b = dataset.load(w, 50), dataset.load(w, 50)
  t.eq(a.items, b.items); t.eq(a.hash, b.hash)
  for _, item in ipairs(a.items) do
    local n = 0
    for _ in item.prompt:gmatch("%S+") do n = n + 1 end
    t.ok(n >= 90 and n <= 110, "input " .. n)
    t.ok(item.max_tokens >= 18 and item.max_tokens <= 22)
  end
  t.ok(a.items[1].prompt:sub(1, 10) ~= a.items[2].prompt:sub(1, 10))
end)

t.test("a dataset is read a record at a time: only the records sent are kept", function()
  local d = t.tmpdir()
  local lines = {}
  for i = 1, 5000 do lines[i] = cjson.encode({ prompt = "p" .. i }) end
  util.write(d .. "/big.jsonl", table.concat(lines, "\n") .. "\n")
  local data = dataset.load(workload(d .. "/big.jsonl"), 10)
  t.eq(#data.items, 10); t.eq(data.count, 5000)
  t.eq(data.hash, knob.hash64(table.concat(lines, "\n") .. "\n"))
  knob.remove_tree(d)
end)


t.test("the client says when it fell behind: its schedule, or the streams it reads", function()
  local trial = require("knobengine.trial")
  local said = {}
  local real = io.stderr
  io.stderr = { write = function(_, text) said[#said + 1] = text end }
  local ok, err = pcall(function()
    trial.warn_if_behind("mask 01", { read_lag_ms = { p50 = 0.05, p99 = 0.7, max = 9 }, concurrency_cap_hits = 0 })
    trial.warn_if_behind("mask 10", { read_lag_ms = { p50 = 5.1, p99 = 22.69, max = 37 }, concurrency_cap_hits = 0 })
    trial.warn_if_behind("probe 2 (8.000 requests/s)", { send_lateness_ms = { p50 = 1, p99 = 12.5, max = 40 },
      concurrency_cap_hits = 3, read_lag_ms = { p50 = 0.1, p99 = 0.2, max = 0.3 } })
  end)
  io.stderr = real
  assert(ok, err)
  t.eq(#said, 2)
  t.eq(said[1], "knobengine: mask 10: the client read streamed data late (read lag p50 5.100 ms, p99 22.690 ms): it "
    .. "did not keep up with the streams, so TTFT and inter-token times may be overstated by up to that much; lower "
    .. "workload.concurrency or give the client more CPU\n")
  t.eq(said[2], "knobengine: probe 2 (8.000 requests/s): the client fell behind its schedule (send lateness p99 12.500 "
    .. "ms, max 40.000 ms; 3 request(s) waited for workload.max_concurrency)\n")
end)

-- Drives the capacity state machine against a server that holds its SLO up to `limit`.
local function capacity_run(opts, limit, min_rate)
  local load = require("knobengine.load")
  local s = load.capacity_state(opts, min_rate)
  local probed, r = {}, s.next
  while r do
    probed[#probed + 1] = r
    r = load.capacity_step(s, r <= limit)
  end
  return probed, s.lo, load.capacity_bound(s)
end

t.test("capacity: bisection within the tolerance, bounds said, never above max_rate or below min_rate", function()
  local base = { start_rate = 8, tolerance = 0.1, max_probes = 20, max_rate = 1e6 }
  local probed, lo, bound = capacity_run(base, 100)
  t.eq({ lo, bound }, { 96, "exact" })
  t.eq({ probed[1], probed[2], probed[3], probed[4], probed[5] }, { 8, 16, 32, 64, 128 })
  probed, lo, bound = capacity_run({ start_rate = 8, tolerance = 0.1, max_probes = 3, max_rate = 1e6 }, 100)
  t.eq({ probed, lo, bound }, { { 8, 16, 32 }, 32, "lower" }) -- every probe held: at least 32
  probed, lo, bound = capacity_run({ start_rate = 8, tolerance = 0.1, max_probes = 20, max_rate = 20 }, 100)
  t.eq({ probed, lo, bound }, { { 8, 16, 20 }, 20, "lower" }) -- it holds at the most allowed
  probed, lo, bound = capacity_run({ start_rate = 50, tolerance = 0.1, max_probes = 20, max_rate = 20 }, 100)
  t.eq(probed[1], 20) -- a start above max_rate starts at max_rate
  probed, lo, bound = capacity_run(base, 1, 2)
  t.eq({ probed, lo, bound }, { { 8, 4, 2 }, nil, "upper" }) -- no probe slower than min_rate
  probed, lo, bound = capacity_run({ start_rate = 8, tolerance = 0.01, max_probes = 7, max_rate = 1e6 }, 100)
  t.eq({ lo, bound }, { 96, "bracket" }) -- between 96 and 112 when the probes ran out
end)

t.test("capacity: near the boundary a rate is probed until a majority of repeats agrees", function()
  local load = require("knobengine.load")
  local v = {}
  t.eq(load.capacity_vote(v, true, 3, false), true) -- far from the boundary: one probe decides
  v = {}
  t.eq(load.capacity_vote(v, true, 3, true), nil)
  t.eq(load.capacity_vote(v, false, 3, true), nil) -- 1:1, one more
  t.eq(load.capacity_vote(v, false, 3, true), false)
  t.eq(v, { pass = 1, fail = 2 })
  v = {}
  t.eq(load.capacity_vote(v, true, 3, true), nil)
  t.eq(load.capacity_vote(v, true, 3, true), true) -- two agree: no third probe
  t.eq(load.capacity_vote({}, false, 1, true), false)
  local cfg = { workload = { request_count = 30 }, capacity = { min_probe_s = 10 } }
  t.eq({ load.probe_requests(cfg, 2), load.probe_requests(cfg, 64), load.probe_requests(cfg, 1e9) }, { 30, 640, 1000000 })
  local slo = { ttft_ms = 50, itl_ms = 10 }
  t.eq(load.failed_on(slo, { slo_at_percentile = { ttft_ms = 60, tpot_ms = 99, itl_ms = 11, e2e_ms = 1 } }), "ttft_ms+itl_ms")
  t.eq(load.failed_on(slo, { slo_at_percentile = { ttft_ms = 40, itl_ms = 9 } }), "")
  t.eq(load.failed_on(slo, { slo_at_percentile = cjson.null }), nil)
end)

local function slo(t) return { combine = t.combine or "and", quantile = t.quantile or 0.99, ttft_ms = t.ttft_ms,
  tpot_ms = t.tpot_ms, itl_ms = t.itl_ms, e2e_ms = t.e2e_ms } end

t.test("grid: an SLO is stricter when every request meeting it meets the other", function()
  t.eq(grid_plan.stricter(slo({ ttft_ms = 50 }), slo({ ttft_ms = 100 })), true)
  t.eq(grid_plan.stricter(slo({ ttft_ms = 100 }), slo({ ttft_ms = 50 })), false)
  t.eq(grid_plan.stricter(slo({ ttft_ms = 50, itl_ms = 20 }), slo({ ttft_ms = 100 })), true) -- one more threshold
  t.eq(grid_plan.stricter(slo({ ttft_ms = 50 }), slo({ ttft_ms = 100, itl_ms = 20 })), false) -- one fewer
  t.eq(grid_plan.stricter(slo({ ttft_ms = 50, quantile = 0.9 }), slo({ ttft_ms = 100 })), false) -- a lower quantile
  t.eq(grid_plan.stricter(slo({ ttft_ms = 50, combine = "or" }), slo({ ttft_ms = 100 })), false)
  -- loosest first, the config's order among the incomparable
  t.eq(grid_plan.order({ slo({ ttft_ms = 10 }), slo({ itl_ms = 5 }), slo({ ttft_ms = 100 }), slo({ ttft_ms = 50 }) }),
    { 2, 3, 4, 1 })
end)

t.test("grid: a cell is pruned only when its capacity under a looser SLO is below one proved under its own", function()
  local slos = { slo({ ttft_ms = 100 }), slo({ ttft_ms = 50 }) } -- 2 is stricter than 1
  local results = {
    [1] = { [0] = { max_rate = 400, bound = "exact", failed_rate = 420 }, [1] = { max_rate = 100, bound = "exact", failed_rate = 110 },
      [2] = { max_rate = 800, bound = "lower" }, [3] = { max_rate = 150, bound = "bracket", failed_rate = 300 } },
    [2] = { [0] = { max_rate = 200, bound = "exact", failed_rate = 210 } },
  }
  local function measured(w, s, mask) return w == 1 and results[s][mask] or nil end
  -- measured under slo 2: mask 0 at 200 req/s; mask 1 fails at 110 under the looser slo 1: it cannot win
  local pruned = grid_plan.prune(slos, 2, 1, { 1, 2, 3 }, measured, { 0 })
  t.eq(pruned[1], { upper = 110, from = 1, leader = 0, leader_rate = 200 })
  t.eq(pruned[2], nil) -- held everywhere it was probed under slo 1: no upper bound
  t.eq(pruned[3], nil) -- may reach up to 300
  t.eq(grid_plan.prune(slos, 1, 1, { 1 }, measured, { 0 }), {}) -- nothing looser than slo 1
  t.eq(grid_plan.prune(slos, 2, 1, { 1 }, measured, {}), {})    -- nothing proved under slo 2 yet
  -- the likeliest winners first: no upper bound, then the highest
  t.eq(grid_plan.by_promise(slos, 2, 1, { 1, 2, 3 }, measured), { 2, 3, 1 })
  t.eq(grid_plan.best({ { result = results[1][1] }, { result = results[1][0] }, { result = { max_rate = cjson.null } } }).result,
    results[1][0])
end)

t.test("csv traces: an infinite arrival, a header name twice and a huge count are refused naming the line", function()
  local d = t.tmpdir()
  local path = util.join(d, "trace.csv")
  local function load() return dataset.load({ dataset_path = path, dataset_format = "auto", seed = 0 }, 4) end
  util.write(path, "arrived_at,num_prefill_tokens,num_decode_tokens\n0,3,2\n1e400,3,2\n")
  t.raises(load, "line 3: 'arrived_at' must be a number of seconds >= 0 (got '1e400')")
  util.write(path, " arrived_at , num_prefill_tokens ,num_prefill_tokens,num_decode_tokens\n0,3,3,2\n")
  t.raises(load, "line 1: the header names 'num_prefill_tokens' twice")
  util.write(path, "arrived_at , num_prefill_tokens,num_decode_tokens\n0,100000000,2\n")
  t.raises(load, "line 2: 'num_prefill_tokens' must be an integer in 1..10000000 (got '100000000')")
  util.write(path, "arrived_at , num_prefill_tokens,num_decode_tokens\n0.5,3,2\n")
  t.eq(load().items[1].timestamp_ms, 500) -- header names trimmed
  knob.remove_tree(d)
end)

-- Calibration ---------------------------------------------------------------------

t.test("calibration: a Vidur request_metrics.csv's percentiles in ms, as numpy's linear rule", function()
  local d = t.tmpdir()
  local path = util.join(d, "request_metrics.csv")
  local lines = { "Request Id,request_e2e_time,prefill_e2e_time,decode_time_execution_plus_preemption_normalized,"
    .. "request_scheduling_delay,other" }
  for i = 1, 5 do lines[#lines + 1] = string.format("%d,%g,%g,%g,%g,x", i - 1, i, i / 10, i / 100, 0) end
  util.write(path, table.concat(lines, "\n") .. "\n")
  local s = calibration.read_simulated(path)
  -- values 1..5 s: p50 = 3, p99 = 4 + 0.96 x (5 - 4) = 4.96
  t.eq({ s.e2e_ms.p50, s.e2e_ms.p99, s.requests }, { 3000, 4960, 5 })
  t.eq({ s.ttft_ms.p50, s.tpot_ms.p50, s.scheduler_overhead_ms.p99 }, { 300, 30, 0 })
  util.write(path, "Request Id,request_e2e_time\n0,1\n")
  t.raises(function() calibration.read_simulated(path) end, "has no 'prefill_e2e_time' column")
  util.write(path, lines[1] .. "\n0,1,2,3,4,x\n1,1,fast,3,4,x\n")
  t.raises(function() calibration.read_simulated(path) end, "line 3: 'prefill_e2e_time' is not a number of seconds >= 0 (got 'fast')")
  local tpl = util.join(d, "sim.json")
  util.write(tpl, cjson.encode({ workload = { rps = 2.0 }, metrics = { ttft_ms = { p50 = 120.5, p99 = 350.2 },
    tpot_ms = { p50 = 25.4, p99 = 45.1 }, e2e_latency_s = { p50 = 3.2, p99 = 6.8 } } }))
  s = calibration.read_simulated(tpl)
  t.eq({ s.rps, s.ttft_ms.p99, s.e2e_ms.p50, s.e2e_ms.p99 }, { 2, 350.2, 3200, 6800 })
  knob.remove_tree(d)
end)

t.test("calibration: errors, MAPE over the rates and the plan's verdicts equal a hand computation", function()
  local function level(rate, ttft50, tpot50, e2e99)
    return { rate = rate, metrics = { ttft_ms = { p50 = ttft50, p99 = 2 * ttft50 }, tpot_ms = { p50 = tpot50, p99 = 2 * tpot50 },
      p50_latency_ms = e2e99 / 2, p99_latency_ms = e2e99 } }
  end
  local function sim(ttft50, tpot50, e2e99)
    return { ttft_ms = { p50 = ttft50, p99 = 2 * ttft50 }, tpot_ms = { p50 = tpot50, p99 = nil },
      e2e_ms = { p50 = e2e99 / 2, p99 = e2e99 } }
  end
  -- rate 1: ttft +4%, tpot -2%, e2e p99 +10%; rate 2: ttft -2%, tpot +4%, e2e p99 -14%
  local rows, mape = calibration.compare({ level(1, 100, 20, 1000), level(2, 200, 25, 2000) },
    { sim(104, 19.6, 1100), sim(196, 26, 1720) })
  t.eq(#rows, 16)
  t.eq({ rows[1].rate, rows[1].metric, rows[1].quantile }, { 1, "ttft_ms", "p50" })
  t.eq(string.format("%.6f", rows[1].error_pct), "4.000000")
  t.eq(rows[4].error_pct, nil) -- tpot p99: the simulator has none
  t.eq({ string.format("%.6f", mape.ttft_ms.p50), string.format("%.6f", mape.tpot_ms.p50),
    string.format("%.6f", mape.e2e_ms.p99) }, { "3.000000", "3.000000", "12.000000" })
  t.eq(mape.tpot_ms.p99, nil)
  local limits = { strict_mape_pct = 5, loose_mape_pct = 10, loose_max_mape_pct = 15 }
  local checks, overall = calibration.checks(mape, limits)
  t.eq({ checks[1].verdict, checks[2].verdict, checks[3].verdict, overall }, { "pass", "pass", "marginal", "marginal" })
  t.ok(checks[3].advice:find("batch-size cap", 1, true))
  t.eq(checks[1].advice, nil)
  limits.strict_mape_pct = 3
  checks, overall = calibration.checks(mape, limits)
  t.eq({ checks[1].verdict, overall }, { "fail", "fail" })
  t.ok(checks[1].advice:find("vidur/profiling/mlp", 1, true))
  t.eq(calibration.verdict(calibration.CHECKS[3], nil, limits), "na")
end)

t.test("probes: the ideal TTFT between, beyond and at one point, never below 0", function()
  local probes = require("knobengine.probes")
  local curve = probes.curve({ { prompt_tokens = 2048, ttft_ms = 30 }, { prompt_tokens = 512, ttft_ms = 10 },
    { prompt_tokens = 4096, ttft_ms = 70 }, { prompt_tokens = 100, ttft_ms = cjson.null } })
  t.eq({ curve(512), curve(1280), curve(2048), curve(3072), curve(8192) }, { 10, 20, 30, 50, 150 })
  t.eq(curve(0), 10 - 512 * 20 / 1536) -- the first segment extended
  t.eq(probes.curve({ { prompt_tokens = 512, ttft_ms = 100 }, { prompt_tokens = 1024, ttft_ms = 300 } })(10), 0)
  t.eq(probes.curve({ { prompt_tokens = 512, ttft_ms = 12 } })(9999), 12)
  t.eq(probes.curve({}), nil)
  t.eq(probes.parse("512x128,4096x1"), { { label = "512x128", input_tokens = 512, output_tokens = 128 },
    { label = "4096x1", input_tokens = 4096, output_tokens = 1 } })
  t.raises(function() probes.parse("512x128,") end, "--probes: '' is not INPUTxOUTPUT")
end)

t.done()
