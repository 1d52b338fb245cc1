-- Model FLOPs utilisation (docs/report.md "MFU"): the FLOPs the served tokens needed
-- per second, over the GPUs' peak. Every input and assumption is returned with the
-- number, and a number that cannot be computed is nil with the reason.
local util = require("knobengine.util")

local M = {}

-- Dense bf16/fp16 tensor peaks (TFLOPS, without sparsity) from NVIDIA's datasheets, by
-- a pattern of the GPU's name; the first match wins, so specific names come first.
M.PEAK_TFLOPS = {
  { pattern = "GH200", label = "GH200", tflops = 989.4 },
  { pattern = "H200 NVL", label = "H200 NVL", tflops = 835.0 },
  { pattern = "H200", label = "H200 SXM", tflops = 989.4 },
  { pattern = "H100 NVL", label = "H100 NVL", tflops = 835.0 },
  { pattern = "H100 PCIe", label = "H100 PCIe", tflops = 756.0 },
  { pattern = "H100", label = "H100 SXM", tflops = 989.4 },
  { pattern = "B200", label = "B200", tflops = 2250.0 },
  { pattern = "A100", label = "A100", tflops = 312.0 },
  { pattern = "A10", label = "A10", tflops = 125.0 },
  { pattern = "L40S", label = "L40S", tflops = 362.05 },
  { pattern = "L4", label = "L4", tflops = 121.0 },
  { pattern = "V100", label = "V100 (fp16)", tflops = 125.0 },
}

-- The table's entry for a GPU name, or nil.
function M.peak_of(gpu_name)
  if type(gpu_name) ~= "string" then return nil end
  for _, e in ipairs(M.PEAK_TFLOPS) do
    if gpu_name:find(e.pattern, 1, true) then return e end
  end
  return nil
end

-- FLOPs per token of a forward pass: 2 x parameters, plus 2 x layers x context x hidden
-- for attention when both are known; or the config's own figure.
local function flops_per_token(model, context)
  if model.flops_per_token then return model.flops_per_token, "model.flops_per_token (given)" end
  local f = 2 * model.params_b * 1e9
  local how = string.format("2 x %g B parameters", model.params_b)
  if model.layers and context then
    f = f + 2 * model.layers * context * model.hidden_size
    how = how .. string.format(" + attention 2 x %d layers x %.1f context x %d hidden", model.layers, context,
      model.hidden_size)
  end
  return f, how
end

-- The peak of the run's GPUs: hardware.peak_tflops, else the table by name.
local function peak(hardware, gpu_name)
  local n = hardware.gpu_count
  if hardware.peak_tflops then
    return hardware.peak_tflops * n, string.format("hardware.peak_tflops %g x %d GPU(s)", hardware.peak_tflops, n)
  end
  local e = M.peak_of(gpu_name)
  if not e then
    return nil, util.is_null(gpu_name) and "no GPU is known (no GPU in the trace, no nvidia-smi); set hardware.peak_tflops"
      or string.format("'%s' is not in the peak table; set hardware.peak_tflops", gpu_name)
  end
  return e.tflops * n, string.format("%s dense bf16/fp16 %g TFLOPS x %d GPU(s)", e.label, e.tflops, n)
end

local function num(v) return type(v) == "number" and v == v and v ~= math.huge end

-- MFU of one run. model, hardware: the config's (model may be nil); metrics: a Result;
-- gpu_name: the GPU the run used, or nil. Returns {mfu_pct (nil when unknown), reason,
-- flops_per_token, flops_how, tokens_per_s, peak_tflops, peak_how, assumptions}.
function M.compute(model, hardware, metrics, gpu_name)
  local r = { assumptions = {} }
  if not model then r.reason = "no model in the config (model.params_b or model.flops_per_token)"; return r end
  local input, output, completed, duration = metrics.input_tokens, metrics.output_tokens, metrics.completed,
    metrics.duration_s
  if not (num(output) and num(duration) and duration > 0 and num(completed) and completed > 0) then
    r.reason = "the run has no completed requests to count tokens of"
    return r
  end
  input = num(input) and input or 0
  -- with workload.repeats > 1 counts are sums over the repeats, duration_s one repeat's median
  local repeats = type(metrics.repeats) == "table" and #metrics.repeats > 1 and #metrics.repeats or 1
  input, output, completed = input / repeats, output / repeats, completed / repeats
  if input == 0 then
    r.assumptions[#r.assumptions + 1] = "the server reported no prompt tokens: prefill FLOPs are left out (MFU understated)"
  end
  local context = (input + output) / completed / 2
  r.flops_per_token, r.flops_how = flops_per_token(model, context)
  r.tokens_per_s = (input + output) / duration
  r.assumptions[#r.assumptions + 1] = "tokens = prompt + generated tokens of completed requests over the measured phase"
  if model.layers and not model.flops_per_token then
    r.assumptions[#r.assumptions + 1] = "context = half the mean prompt + output tokens per request (a token's mean position)"
  end
  r.assumptions[#r.assumptions + 1] = "forward pass only, dense (no sparsity), no recomputation; prompt tokens a "
    .. "prefix cache served count as computed (MFU overstated for configs that cache prefixes)"
  local tflops, how = peak(hardware, gpu_name)
  r.peak_how = how
  if not tflops then r.reason = how; return r end
  r.peak_tflops = tflops
  r.mfu_pct = r.flops_per_token * r.tokens_per_s / (tflops * 1e12) * 100
  return r
end

return M
