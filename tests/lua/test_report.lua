-- Unit tests of the report's calculations: MFU against a hand calculation, the peak
-- table, the Pareto front (against the definition), knob main effects, the bounded
-- trials table, summary.json read in pieces (against a whole decode, in every layout),
-- a failed report leaving the previous one, the interrupt hook's bookkeeping, the
-- Markdown and HTML escaping, and the hardware counters' words (run by tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local context = require("knobengine.report.context")
local counters = require("knobengine.report.counters")
local errors = require("knobengine.errors")
local html = require("knobengine.report.html")
local markdown = require("knobengine.report.markdown")
local mfu = require("knobengine.mfu")
local plots = require("knobengine.report.plots")
local report = require("knobengine.report")
local summary_file = require("knobengine.report.summary_file")
local trials = require("knobengine.report.trials")
local util = require("knobengine.util")

local function near(got, want, what)
  if math.abs(got - want) > 1e-9 * math.max(1, math.abs(want)) then
    error(string.format("%s: expected %.12g, got %.12g", what, want, got), 2)
  end
end

t.test("MFU matches a hand calculation (parameters and attention)", function()
  -- 100 requests, 100000 prompt + 20000 output tokens in 10 s: 12000 tokens/s;
  -- context = 1200 tokens per request / 2 = 600;
  -- FLOPs/token = 2 x 7e9 + 2 x 32 layers x 600 x 4096 = 14157286400;
  -- achieved 1.698874368e14 FLOP/s over an H100 SXM's 989.4e12: 17.17075%
  local metrics = { input_tokens = 100000, output_tokens = 20000, completed = 100, duration_s = 10 }
  local r = mfu.compute({ params_b = 7, layers = 32, hidden_size = 4096 }, { gpu_count = 1 }, metrics,
    "NVIDIA H100 80GB HBM3")
  near(r.tokens_per_s, 12000, "tokens/s")
  near(r.flops_per_token, 14157286400, "FLOPs/token")
  near(r.peak_tflops, 989.4, "peak")
  near(r.mfu_pct, 14157286400 * 12000 / 989.4e12 * 100, "MFU")
  t.eq(string.format("%.4f", r.mfu_pct), "17.1708")
  -- the config's own FLOPs per token and peak, over two GPUs
  r = mfu.compute({ flops_per_token = 1e9 }, { gpu_count = 2, peak_tflops = 100 }, metrics, nil)
  near(r.mfu_pct, 1e9 * 12000 / 200e12 * 100, "MFU with overrides")
  t.eq(r.peak_how, "hardware.peak_tflops 100 x 2 GPU(s)")
end)

t.test("MFU with repeats: counts summed over the repeats, the duration one repeat's", function()
  local one = { input_tokens = 100000, output_tokens = 20000, completed = 100, duration_s = 10 }
  local three = { input_tokens = 300000, output_tokens = 60000, completed = 300, duration_s = 10,
    repeats = { {}, {}, {} } }
  local a = mfu.compute({ params_b = 7, layers = 32, hidden_size = 4096 }, { gpu_count = 1 }, one, "H100")
  local b = mfu.compute({ params_b = 7, layers = 32, hidden_size = 4096 }, { gpu_count = 1 }, three, "H100")
  near(b.tokens_per_s, 12000, "tokens/s")
  near(b.mfu_pct, a.mfu_pct, "MFU")
end)

t.test("MFU is na with the reason when an input is missing", function()
  local metrics = { input_tokens = 0, output_tokens = 10, completed = 1, duration_s = 1 }
  t.eq(mfu.compute(nil, { gpu_count = 1 }, metrics, "H100").reason,
    "no model in the config (model.params_b or model.flops_per_token)")
  local r = mfu.compute({ params_b = 1 }, { gpu_count = 1 }, metrics, nil)
  t.eq(r.mfu_pct, nil)
  t.eq(r.reason, "no GPU is known (no GPU in the trace, no nvidia-smi); set hardware.peak_tflops")
  t.eq(r.assumptions[1], "the server reported no prompt tokens: prefill FLOPs are left out (MFU understated)")
  t.eq(mfu.compute({ params_b = 1 }, { gpu_count = 1 }, metrics, "Radeon").reason,
    "'Radeon' is not in the peak table; set hardware.peak_tflops")
  t.eq(mfu.compute({ params_b = 1 }, { gpu_count = 1 }, { completed = 0 }, "H100").reason,
    "the run has no completed requests to count tokens of")
end)

t.test("the peak table matches the most specific name first", function()
  t.eq(mfu.peak_of("NVIDIA A100-SXM4-40GB").tflops, 312.0)
  t.eq(mfu.peak_of("NVIDIA A10").tflops, 125.0)
  t.eq(mfu.peak_of("NVIDIA H100 PCIe").tflops, 756.0)
  t.eq(mfu.peak_of("NVIDIA GH200 480GB").label, "GH200")
  t.eq(mfu.peak_of("NVIDIA L40S").tflops, 362.05)
  t.eq(mfu.peak_of("NVIDIA L4").tflops, 121.0)
  t.eq(mfu.peak_of(nil), nil)
end)

t.test("model and hardware keys are checked", function()
  local base = [[{"serve_cmd": ["x", "{port}"], "workload": {"model": "m", "synthetic": {"input_tokens": 4, "output_tokens": 4}}, "knobs": [{"name": "k", "flag": "--k"}], %s}]]
  local cfg = config.parse(string.format(base, [["model": {"params_b": 7, "layers": 32, "hidden_size": 4096}]]), "c.json")
  t.eq(cfg.model, { params_b = 7, layers = 32, hidden_size = 4096 })
  t.eq(cfg.hardware, { gpu_count = 1 })
  t.raises(function() config.parse(string.format(base, [["model": {"layers": 2, "params_b": 1}]]), "c.json") end,
    "config c.json: model.layers: needs model.hidden_size too")
  t.raises(function() config.parse(string.format(base, [["model": {"name": "x"}]]), "c.json") end,
    "model: needs params_b or flops_per_token")
  t.raises(function() config.parse(string.format(base, [["hardware": {"peak_tflop": 1}]]), "c.json") end,
    "hardware.peak_tflop: unknown key")
end)

t.test("the Pareto front keeps the trials nothing beats on both axes", function()
  local pts = { { x = 100, y = 10 }, { x = 200, y = 12 }, { x = 150, y = 15 }, { x = 200, y = 11 }, { x = 50, y = 9 } }
  local front = plots.pareto_front(pts)
  local got = {}
  for i, p in ipairs(front) do got[i] = p.x .. "/" .. p.y end
  t.eq(got, { "50/9", "100/10", "200/11" })
end)

-- The front by its definition: the points no other point beats on one axis and
-- matches or beats on the other (quadratic: for checking only).
local function front_by_definition(points)
  local out = {}
  for _, p in ipairs(points) do
    local dominated = false
    for _, o in ipairs(points) do
      if o ~= p and o.x >= p.x and o.y <= p.y and (o.x > p.x or o.y < p.y) then dominated = true end
    end
    if not dominated then out[#out + 1] = p end
  end
  table.sort(out, function(a, b) return a.x < b.x or (a.x == b.x and a.id < b.id) end)
  return out
end

t.test("the Pareto front by sort and sweep is the front by definition (ties, duplicates, a long front)", function()
  math.randomseed(7)
  for round = 1, 40 do
    local pts = {}
    for i = 1, 1 + (round * 7) % 60 do
      -- few distinct values, so equal x, equal y and exact duplicates all occur
      local x = math.random(1, round % 3 == 0 and 40 or 6)
      local y = round % 3 == 0 and 50 - x + math.random(0, 1) or math.random(1, 6)
      pts[i] = { x = x, y = y, id = i }
    end
    local got, want = {}, {}
    for i, p in ipairs(plots.pareto_front(pts)) do got[i] = p.id end
    for i, p in ipairs(front_by_definition(pts)) do want[i] = p.id end
    t.eq(got, want, "round " .. round)
  end
end)

t.test("main effects: mean p50 with each knob on minus off, valid trials only", function()
  local run = { knob_names = { "a", "b" }, summary = { trials = {
    { knob_mask = "00", valid = true, metrics = { p50_latency_ms = 10 } },
    { knob_mask = "10", valid = true, metrics = { p50_latency_ms = 6 } },
    { knob_mask = "01", valid = true, metrics = { p50_latency_ms = 12 } },
    { knob_mask = "11", valid = false, metrics = { p50_latency_ms = 1 } },
  } } }
  local e = trials.main_effects(run)
  t.eq({ e[1].name, e[1].on, e[1].off, e[1].effect }, { "a", 6.0, 11.0, -5.0 })
  t.eq({ e[2].name, e[2].on_n, e[2].off_n, e[2].effect }, { "b", 1, 2, 4.0 })
  -- a knob with values: each value against index 0
  local mixed = { knob_names = { "seqs" }, knobs = { { name = "seqs", values = { "8", "64" }, unset = true } },
    summary = { trials = {
      { knob_mask = "0", valid = true, metrics = { p50_latency_ms = 10 } },
      { knob_mask = "1", valid = true, metrics = { p50_latency_ms = 14 } },
      { knob_mask = "2", valid = true, metrics = { p50_latency_ms = 7 } },
    } } }
  e = trials.main_effects(mixed)
  t.eq({ e[1].name, e[1].effect, e[2].name, e[2].effect }, { "seqs=8", 4.0, "seqs=64", -3.0 })
end)

local function many_trials(n)
  local list = {}
  for i = 1, n do
    local invalid = i % 40 == 0
    list[i] = { trial = i - 1, knob_mask = string.format("%d%d", i % 2, (i // 2) % 2), valid = not invalid,
      error = invalid and "the server exited" or nil, error_rate = invalid and 1 or 0,
      metrics = invalid and {} or { p50_latency_ms = 100 + (i * 37) % 1000, tokens_per_s = 1000 } }
  end
  return list
end

t.test("the trials table lists every trial up to the limit, then the best, the top, the baseline's and some invalid", function()
  local run = { knob_names = { "a", "b" }, summary = { trials = many_trials(trials.TABLE_LIMIT),
    objective = { metric = "p50_latency_ms", maximize = false }, best_trial = 5 } }
  local shown, left_out = trials.shown(run)
  t.eq(#shown, trials.TABLE_LIMIT)
  t.eq(left_out, nil)
  run.summary.trials = many_trials(3 * trials.TABLE_LIMIT)
  shown, left_out = trials.shown(run)
  local picked, invalid = {}, 0
  for k, i in ipairs(shown) do
    picked[run.summary.trials[i].trial] = true
    if k > 1 then t.ok(i > shown[k - 1], "in trial order") end
    if not run.summary.trials[i].valid then invalid = invalid + 1 end
  end
  t.ok(picked[5], "the best")
  t.ok(picked[3], "the first trial of mask 00")
  t.eq(invalid, trials.INVALID_SHOWN)
  -- the 50 lowest p50s: 100 + (i * 37) % 1000 is lowest where i * 37 % 1000 is
  local valid = {}
  for _, tr in ipairs(run.summary.trials) do if tr.valid then valid[#valid + 1] = tr end end
  table.sort(valid, function(x, y)
    local a, b = x.metrics.p50_latency_ms, y.metrics.p50_latency_ms
    return a < b or (a == b and x.trial < y.trial)
  end)
  for k = 1, trials.TOP_SHOWN do t.ok(picked[valid[k].trial], "top " .. k) end
  t.eq(#shown, trials.TOP_SHOWN + 1 + 1 + trials.INVALID_SHOWN) -- none of those overlap here
  t.eq(left_out, string.format("The table lists %d of the 3000 trials: the best, the 50 with the best p50_latency_ms, "
    .. "the baseline's mask (every knob at index 0) and the first invalid ones (10 of 75); the other %d are left out "
    .. "here. summary.csv in the run directory lists every trial.", #shown, 3000 - #shown))
  -- maximize: the top are the highest
  run.summary.objective = { metric = "tokens_per_s", maximize = true }
  run.summary.trials[7].metrics.tokens_per_s = 5000
  shown = trials.shown(run)
  local has = false
  for _, i in ipairs(shown) do has = has or i == 7 end
  t.ok(has, "the highest tokens/s")
end)

local function tmp_dir(name)
  local dir = string.format("%s/knobengine-lua-%s-%d", os.getenv("TMPDIR") or "/tmp", name, knob.getpid())
  knob.remove_tree(dir)
  util.mkdir(dir)
  return dir
end

-- summary.json in another writer's layout: compact, or indented by one space or a tab.
local function relaid(v, indent)
  if indent == nil then return cjson.encode(v) end
  local out = {}
  local function enc(x, pad)
    if type(x) ~= "table" then out[#out + 1] = cjson.encode(x); return end
    local is_list = #x > 0 or next(x) == nil
    out[#out + 1] = is_list and "[\n" or "{\n"
    local keys = {}
    if is_list then for i = 1, #x do keys[i] = i end else for k in pairs(x) do keys[#keys + 1] = k end; table.sort(keys) end
    for i, k in ipairs(keys) do
      out[#out + 1] = pad .. indent .. (is_list and "" or cjson.encode(k) .. ": ")
      enc(x[k], pad .. indent)
      out[#out + 1] = i < #keys and ",\n" or "\n"
    end
    out[#out + 1] = pad .. (is_list and "]" or "}")
  end
  enc(v, "")
  return table.concat(out)
end

t.test("summary.json read in pieces keeps what the report reads, in every layout", function()
  local dir = tmp_dir("summary")
  local list = many_trials(3000)
  for i, tr in ipairs(list) do
    tr.config = { argv = { "serve", "--port", "1", "x\n    }\n  ]", '"[{' }, env = {} }
    tr.metrics.ttft_ms = { p50 = 1, p99 = 2 }
    tr.repeats = i == 8 and { { p50_latency_ms = 1 } } or nil
  end
  local summary = { best_trial = 7, objective = { metric = "tokens_per_s", maximize = true }, trials = list,
    knobs = { { name = "a" }, { name = "b" } }, zz = { "]", { "[" } } }
  -- knobengine's own; cjson's (compact, keys in any order); indented by a space, a tab
  local layouts = { util.json(summary), relaid(summary), relaid(summary, " "), relaid(summary, "\t") }
  for n, text in ipairs(layouts) do
    util.write(dir .. "/summary.json", text)
    summary_file.CHUNK = 997 -- elements, strings and escapes cut by chunk ends
    local got = summary_file.read(dir .. "/summary.json")
    summary_file.CHUNK = 1 << 20
    t.eq(cjson.encode(summary_file.read(dir .. "/summary.json").trials[100]), cjson.encode(got.trials[100]))
    t.eq(#got.trials, 3000, "layout " .. n)
    t.eq(got.zz, summary.zz)
    t.eq(got.knobs, summary.knobs)
    -- the best's entry whole when best_trial comes first (sorted keys), else its repeats
    if n ~= 2 then t.eq(got.trials[8].config, list[8].config, "the best whole") end
    t.eq(got.trials[8].repeats, list[8].repeats)
    for i = 1, 3000, 97 do
      local a, b = got.trials[i], list[i]
      t.eq({ a.trial, a.knob_mask, a.valid, a.error, a.error_rate }, { b.trial, b.knob_mask, b.valid, b.error, b.error_rate })
      t.eq(a.metrics, { p50_latency_ms = b.metrics.p50_latency_ms, tokens_per_s = b.metrics.tokens_per_s })
    end
  end
  util.write(dir .. "/summary.json", util.json(summary):sub(1, 200000))
  t.eq(summary_file.read(dir .. "/summary.json"), nil, "cut short")
  util.write(dir .. "/summary.json", "{\"trials\": [{\"trial\": 1}, {\"trial\": ]}")
  t.eq(summary_file.read(dir .. "/summary.json"), nil, "not JSON")
  t.eq(summary_file.read(dir .. "/none.json"), nil, "absent")
  util.write(dir .. "/summary.json", "{\"strategy\": \"x\"}")
  t.eq(summary_file.read(dir .. "/summary.json"), { strategy = "x" }, "no trials")
  knob.remove_tree(dir)
end)

t.test("a report that fails half way leaves the previous report.md, report.html and plots/", function()
  local dir = tmp_dir("run")
  local run = dir .. "/search/r1"
  util.mkdir(run .. "/plots")
  util.write(run .. "/summary.json", util.json({ strategy = "bruteforce", best_trial = 0, knobs = { { name = "k" } },
    objective = { metric = "p50_latency_ms", maximize = false }, baseline = { metrics = { p50_latency_ms = 2 } },
    trials = { { trial = 0, knob_mask = "1", valid = true, error_rate = 0, metrics = { p50_latency_ms = 1 } } } }))
  for _, f in ipairs({ "report.md", "report.html", "plots/trials.svg" }) do util.write(run .. "/" .. f, "old " .. f) end
  -- report.html cannot be written: its staging name is taken by a directory
  local html_stage = string.format("%s/.report.html.tmp.%d", run, knob.getpid())
  util.mkdir(html_stage .. "/x")
  t.ok(not pcall(report.write, run))
  for _, f in ipairs({ "report.md", "report.html", "plots/trials.svg" }) do t.eq(util.read_file(run .. "/" .. f), "old " .. f) end
  t.eq(knob.exists(string.format("%s/.plots.tmp.%d", run, knob.getpid())), false)
  t.eq(knob.exists(string.format("%s/.report.md.tmp.%d", run, knob.getpid())), false)
  knob.remove_tree(html_stage)
  local md = report.write(run)
  t.ok(util.read_file(md):find("## All trials", 1, true), "written once it can be")
  t.eq(knob.is_dir(run .. "/plots"), true)
  t.eq(knob.exists(run .. "/plots/trials.dat"), true)
  knob.remove_tree(dir)
end)

t.test("watching_interrupts returns what the body returns and puts the previous hook back", function()
  local outer = function() end
  debug.sethook(outer, "", 1000000)
  local a, b = errors.watching_interrupts("x", function(x, y) return x + y, "two" end, 1, 2)
  t.eq({ a, b }, { 3, "two" })
  t.eq(debug.gethook(), outer)
  local err = t.raises(function() errors.watching_interrupts("x", function() error("boom") end) end, "boom")
  t.eq(err.kind, "run")
  t.eq(debug.gethook(), outer)
  debug.sethook()
  errors.watching_interrupts("x", function() end)
  t.eq(debug.gethook(), nil)
end)

t.test("Markdown and HTML escape what would change the rendering", function()
  t.eq(markdown.escape("gemm<float, 128>(a*, b_c) | x\n[y]"), "gemm&lt;float, 128&gt;(a\\*, b\\_c) \\| x \\[y\\]")
  t.eq(html.escape('a<b & "c">'), "a&lt;b &amp; &quot;c&quot;&gt;")
  local svg = [[<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">
<svg><defs><circle id='gpDot' r='1'/></defs><use xlink:href='#gpDot'/><path fill="url(#gpDot)"/></svg>]]
  t.eq(html.inline_svg(svg, "p-"),
    [[<svg><defs><circle id='p-gpDot' r='1'/></defs><use xlink:href='#p-gpDot'/><path fill="url(#p-gpDot)"/></svg>]])
end)

-- An ncu entry as report/data.lua makes it.
local function ncu_kernel(name, device, sm, mem, dram, occ, bound)
  return { name = name, device = device, launches = 1, sm_throughput_pct = sm, memory_throughput_pct = mem,
    dram_throughput_pct = dram, achieved_occupancy_pct = occ, bound = bound }
end

t.test("the bottleneck in words: one bound, mixed bounds (means per group), memory beyond DRAM", function()
  t.eq(counters.describe({ ncu_kernel("a", "0", 47, 92, 92, 60, "memory"), ncu_kernel("b", "0", 45, 90, 90, 70, "memory"),
    ncu_kernel("c", "0", 49, 94, 94, nil, "memory") }),
    "the top 3 kernels are memory-bound: DRAM 92.0% of peak, SM 47.0%, achieved occupancy 65.0%")
  t.eq(counters.describe({ ncu_kernel("a", "0", 30, 80, 40, 50, "memory"), ncu_kernel("b", "0", 85, 20, 10, 90, "compute"),
    ncu_kernel("c", "0", 10, 5, 5, 20, "latency"), ncu_kernel("d", "0", 82, 30, 30, 80, "compute"),
    ncu_kernel("e", "0", nil, nil, nil, nil, nil) }),
    "of the top 5 kernels, 1 is memory-bound (memory 80.0% (DRAM 40.0%) of peak, SM 30.0%, achieved occupancy 50.0%), "
    .. "2 are compute-bound (SM 83.5% of peak, memory 25.0%, achieved occupancy 85.0%), 1 is latency-bound "
    .. "(SM 10.0%, memory 5.0% of peak, achieved occupancy 20.0%), 1 is unclassified (speed-of-light figures missing)")
  t.eq(counters.describe({ ncu_kernel("a", "0", 10, 5, 5, nil, "latency") }),
    "the top kernel is latency-bound: SM 10.0%, memory 5.0% of peak")
end)

t.test("the bottleneck per GPU, what the best changed, and nsys GPU metrics when there is no ncu", function()
  local run = {
    baseline = { kernels = { { name = "b" }, { name = "a" } },
      ncu = { ncu_kernel("a", "0", 40, 90, 90, 50, "memory"), ncu_kernel("b", "0", 45, 95, 95, 60, "memory"),
        ncu_kernel("a", "1", 20, 10, 10, 30, "latency") } },
    best = { kernels = {}, ncu = { ncu_kernel("a", "0", 85, 40, 40, 70, "compute"), ncu_kernel("c", "0", 88, 20, 20, 80, "compute") },
      ncu_overhead = { reason = "ncu profiled no kernel" } },
  }
  t.eq(counters.findings(run), {
    "Bottleneck on GPU 0 (Nsight Compute): in the baseline the top 2 kernels are memory-bound: DRAM 92.5% of peak, "
      .. "SM 42.5%, achieved occupancy 55.0%; in the best the top 2 kernels are compute-bound: SM 86.5% of peak, "
      .. "memory 30.0%, achieved occupancy 75.0%. The best moves the bottleneck from memory-bound to compute-bound; "
      .. "SM +44.0, DRAM -62.5, achieved occupancy +20.0 points; 1 of its top kernels is new, 1 of the baseline's left the top.",
    "Bottleneck on GPU 1 (Nsight Compute): in the baseline the top kernel is latency-bound: SM 20.0%, memory 10.0% of "
      .. "peak, achieved occupancy 30.0%; the best has none (ncu profiled no kernel).",
  })
  local rows = counters.kernel_blocks(run)[2].rows
  -- the baseline's nsys order (b before a), GPU by GPU as listed; the best's new kernel last
  t.eq(rows[1], { "b", "0", "60.0", "45.0", "95.0", "memory", "na", "na", "na", "na" })
  t.eq(rows[2], { "a", "0", "50.0", "40.0", "90.0", "memory", "70.0", "85.0", "40.0", "compute" })
  t.eq(rows[4], { "c", "0", "na", "na", "na", "na", "80.0", "88.0", "20.0", "compute" })
  local gm = { ["0"] = { headline = { "SM Active", "Tensor Active" },
    metrics = { ["SM Active"] = { mean = 96.5 }, ["Tensor Active"] = { mean = 0 } } } }
  local plain = { baseline = { trace = { gpu_metrics = gm } }, best = { trace = { gpu_metrics = gm } } }
  t.eq(counters.findings(plain), { "GPU 0 utilisation (nsys GPU metrics, mean over its kernel span): baseline SM "
    .. "Active 96.5%, Tensor Active 0.0%; best SM Active 96.5%, Tensor Active 0.0%." })
  -- a GPU with ncu figures gets its bottleneck, one with GPU metrics only its utilisation
  run.baseline.trace = { gpu_metrics = { ["1"] = gm["0"], ["2"] = gm["0"] } }
  local said = counters.findings(run)
  t.eq(#said, 3)
  t.eq(said[3]:match("^GPU 2 utilisation") ~= nil, true)
  t.eq(counters.kernel_blocks(plain)[1].text:match("^Hardware counters per kernel") ~= nil, true)
  plain.baseline.ncu_overhead = { reason = "ncu not found" }
  t.eq(counters.kernel_blocks(plain)[1].text,
    "Hardware counters: na (Nsight Compute: baseline: ncu not found; best: no ncu pass).")
end)

t.test("how sure: a bootstrap interval over the repeats, within or beyond noise, or not measured", function()
  t.eq({ context.bootstrap_interval({ 10, 10, 10 }, { 8, 8, 8 }) }, { -2.0, -2.0 })
  t.eq(context.bootstrap_interval({ 10 }, { 8, 8 }), nil)
  local lo, hi = context.bootstrap_interval({ 10, 12, 11 }, { 10, 12, 11 })
  t.eq(lo < 0 and hi > 0, true)
  local function run_with(base, best)
    local function reps(v) local r = {} for i, x in ipairs(v) do r[i] = { p50_latency_ms = x } end return r end
    return { summary = { objective = { metric = "p50_latency_ms" } }, best_record = { trial = 1 },
      baseline = { metrics = {}, repeats = base and reps(base) }, best = { metrics = {}, repeats = best and reps(best) } }
  end
  t.eq(context.confidence(run_with({ 10, 10.2, 10.1, 10.3, 10.0 }, { 8, 8.1, 8.2, 8.0, 8.1 })):match("^Beyond noise: the 95%% "
    .. "bootstrap interval of the p50 latency %(ms%) difference over the repeats is %[%-2%.%d+, %-1%.%d+%] %(5 and 5 "
    .. "repeats%)%.$") ~= nil, true)
  t.eq(context.confidence(run_with({ 10, 12, 11, 10, 12 }, { 11, 10, 12, 12, 10 })):match("^Within noise: .* includes 0 "
    .. "%(5 and 5 repeats%)%.$") ~= nil, true)
  -- fewer than 5 a side: the spread rule (a bootstrap of 3 values is far too narrow)
  t.eq(context.confidence(run_with({ 10, 11, 12 }, { 8.6, 9.6, 10.6 })), "Within noise: the p50 latency (ms) difference "
    .. "of the means (1.400) is within the larger spread of the repeats (2.000; 3 and 3 repeats, too few for an interval).")
  t.eq(context.confidence(run_with({ 10, 10.2, 10.1 }, { 8, 8.1, 8.2 })):match("^Beyond noise: ") ~= nil, true)
  t.eq(context.confidence(run_with(nil, nil)), "How sure: noise not measured (workload.repeats = 1); repeat with "
    .. "workload.repeats >= 3.")
end)

t.test("the Pareto alternatives to the best, in words", function()
  local function trial(i, mask, p50, p95, tps)
    return { trial = i, knob_mask = mask, valid = true, metrics = { p50_latency_ms = p50, p95_latency_ms = p95, tokens_per_s = tps } }
  end
  local trials = { trial(0, "00", 100, 200, 1000), trial(1, "01", 120, 128, 1070), trial(2, "10", 130, 300, 900) }
  local run = { summary = { trials = trials }, best_record = trials[1] }
  t.eq(context.alternatives(run, plots.pareto_front),
    "Alternatives on the Pareto front (p50 against tokens/s), against the best: 01: p50 +20.0%, p95 -36.0%, tokens/s +7.0%.")
  run.summary.trials = { trials[1], trials[3] } -- 10 is dominated: the best is alone on the front
  t.eq(context.alternatives(run, plots.pareto_front), nil)
end)

t.done()
