-- Unit tests of the report's calculations: MFU against a hand calculation, the peak
-- table, the Pareto front, knob main effects, and the Markdown and HTML escaping
-- (run by tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local config = require("knobengine.config")
local html = require("knobengine.report.html")
local markdown = require("knobengine.report.markdown")
local mfu = require("knobengine.mfu")
local plots = require("knobengine.report.plots")
local trials = require("knobengine.report.trials")

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

t.test("Markdown and HTML escape what would change the rendering", function()
  t.eq(markdown.escape("gemm<float, 128>(a*, b_c) | x\n[y]"), "gemm&lt;float, 128&gt;(a\\*, b\\_c) \\| x \\[y\\]")
  t.eq(html.escape('a<b & "c">'), "a&lt;b &amp; &quot;c&quot;&gt;")
  local svg = [[<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd">
<svg><defs><circle id='gpDot' r='1'/></defs><use xlink:href='#gpDot'/><path fill="url(#gpDot)"/></svg>]]
  t.eq(html.inline_svg(svg, "p-"),
    [[<svg><defs><circle id='p-gpDot' r='1'/></defs><use xlink:href='#p-gpDot'/><path fill="url(#p-gpDot)"/></svg>]])
end)

t.done()
