-- The report's measured sections: Environment, Aggregates, Per-Stage Timings, MFU
-- (docs/report.md). Each function takes the run (report/data.lua) and returns a section.
local mfu = require("knobengine.mfu")
local f = require("knobengine.report.fmt")
local objective = require("knobengine.report.objective")

local M = {}

-- ---------- Environment ----------

-- "52510517" -> "525.105.17" (nsys's NvDriverVersion); "12000" -> "12.0" (CUDA).
local function driver_version(v)
  v = tostring(v or "")
  if v:match("^%d%d%d%d%d%d%d%d$") then
    return string.format("%d.%d.%s", tonumber(v:sub(1, 3)), tonumber(v:sub(4, 6)), v:sub(7, 8))
  end
  return v ~= "" and v or nil
end

local function cuda_version(v)
  local n = tonumber(v)
  if not n then return nil end
  return string.format("%d.%d", n // 1000, (n % 1000) // 10)
end

-- One line per GPU: from the trace when it has TARGET_INFO_GPU, else nvidia-smi.
local function gpu_lines(run)
  local env = f.get(run.baseline.trace, "environment") or {}
  local sys = env.system or {}
  local lines = {}
  for _, g in ipairs(env.gpus or {}) do
    local mem, bw = f.get(g, "memory_bytes"), f.get(g, "memory_bandwidth_bytes_per_s")
    lines[#lines + 1] = string.format("%s: %s GiB, %s SMs, %s GB/s, compute %s, driver %s (CUDA %s)",
      f.get(g, "name") or "GPU", f.num(mem and mem / 2 ^ 30, 1), f.int(f.get(g, "sm_count")),
      f.num(bw and bw / 1e9, 0), f.get(g, "compute_capability") or "na",
      driver_version(sys.NvDriverVersion) or "na", cuda_version(sys.CudaDriverVersion) or "na")
  end
  if #lines > 0 then return lines, run.single and "the trace (TARGET_INFO_GPU)" or "the baseline's trace (TARGET_INFO_GPU)" end
  for _, g in ipairs(f.get(run.environment, "gpus") or {}) do
    lines[#lines + 1] = string.format("%s: %s GiB, driver %s", g.name, f.num((f.get(g, "memory_mib") or 0) / 1024, 1),
      g.driver)
  end
  if #lines > 0 then return lines, "nvidia-smi" end
  return { "none found (" .. (f.get(run.environment, "gpus_note") or "no GPU in the trace") .. ")" }, nil
end

function M.environment(run)
  local env, trace = run.environment or {}, run.baseline.trace or {}
  local sys = f.get(trace, "environment", "system") or {}
  local host, v = env.host or {}, env.versions or {}
  local gpus, source = gpu_lines(run)
  local rows = {
    { "Host", sys.Hostname or host.hostname or "na" },
    { "CPU", string.format("%s (%s cores)", sys.CpuDescription or f.get(host, "cpu") or "na", sys.CpuCores or f.int(f.get(host, "cpus"))) },
    { "OS", string.format("%s, kernel %s", sys.OsDescription or host.os or "na", sys.SoftwareReleaseVersion or host.kernel or "na") },
  }
  for i, g in ipairs(gpus) do rows[#rows + 1] = { i == 1 and "GPUs" or "", g } end
  rows[#rows + 1] = { "Nsight Systems", string.format("%s (export schema %s)", f.get(trace, "nsys_version") or "na",
    f.get(trace, "export_schema") or "na") }
  rows[#rows + 1] = { "knobengine", v.knobengine or "na" }
  rows[#rows + 1] = { "Lua / libcurl / SQLite", string.format("%s / %s / %s", v.lua or "na", v.libcurl or "na", v.sqlite or "na") }
  rows[#rows + 1] = { "Config", string.format("%s (hash %s)", f.get(env, "config", "path") or run.summary.config_file or "na",
    f.get(env, "config", "hash") or "na") }
  local m = run.manifest or {}
  if m.dataset then
    rows[#rows + 1] = { "Dataset", string.format("%s (sha256 %s, %s lines)", f.get(m, "dataset", "path") or "synthetic",
      (f.get(m, "dataset", "sha256") or "na"):sub(1, 16), f.int(f.get(m, "dataset", "lines"))) }
  end
  return { id = "environment", title = "Environment", blocks = {
    f.p("Where the numbers were measured: host, CPU and OS from the " .. (run.single and "" or "baseline ")
      .. "trace when it has them (else this "
      .. "run's environment.json), " .. (source and ("GPU details from " .. source .. ", ") or "")
      .. "versions from environment.json."),
    f.table({ "Item", "Value" }, rows, { "l", "l" }),
  } }
end

-- ---------- Aggregates ----------

M.AGGREGATES = {
  { "p50 latency (ms)", "p50_latency_ms" }, { "p95 latency (ms)", "p95_latency_ms" },
  { "p99 latency (ms)", "p99_latency_ms" }, { "mean latency (ms)", "mean_latency_ms" },
  { "TTFT p50 (ms)", "ttft_ms", "p50" }, { "TTFT p95 (ms)", "ttft_ms", "p95" }, { "TTFT p99 (ms)", "ttft_ms", "p99" },
  { "time to first output token p50 (ms)", "ttfot_ms", "p50" },
  { "TPOT p50 (ms)", "tpot_ms", "p50" }, { "TPOT p95 (ms)", "tpot_ms", "p95" },
  { "ITL p50 (ms)", "itl_ms", "p50" }, { "ITL p95 (ms)", "itl_ms", "p95" },
  { "AIPerf / GuideLLM \"ITL\" p50 (ms, = TPOT)", "tpot_ms", "p50" },
  { "tokens/s", "tokens_per_s", higher = true }, { "requests/s", "requests_per_s", higher = true },
  { "error rate", "error_rate", d = 4 },
}

-- The rows, the objective's first (named so) when it is not the SPEC's p50; each
-- delta marked better or worse.
local function aggregates_table(run)
  local rows, marks, obj = {}, {}, objective.of(run)
  local b, w = run.baseline.metrics, run.best and run.best.metrics or {}
  local function add(label, x, y, d, higher)
    rows[#rows + 1] = { label, f.num(x, d), f.num(y, d), f.delta(y, x, d), f.pct_change(y, x) }
    local verdict = f.judge(y, x, higher, d)
    if verdict then marks[#rows] = { [4] = verdict } end
  end
  if not obj.default then add(obj.label .. ", the objective", obj.base, obj.best, obj.decimals, obj.maximize) end
  for _, a in ipairs(M.AGGREGATES) do
    if obj.default or a[2] ~= obj.metric or a[3] then add(a[1], f.get(b, a[2], a[3]), f.get(w, a[2], a[3]), a.d, a.higher) end
  end
  return f.table({ "Metric", "Baseline", "Best", "Delta", "Change" }, rows, { "l", "r", "r", "r", "r" }, nil, marks)
end

function M.overhead_table(run)
  local rows = {}
  for _, s in ipairs(f.sides(run)) do
    local o = s[2] and s[2].overhead or {}
    rows[#rows + 1] = { s[1], f.num(f.get(o, "unprofiled_p50_latency_ms")), f.num(f.get(o, "profiled_p50_latency_ms")),
      f.get(o, "overhead_percent") and (f.num(o.overhead_percent, 1) .. "%") or ("na: " .. (f.get(o, "reason") or "not profiled")) }
  end
  return f.table({ "Run", "p50 without nsys (ms)", "p50 under nsys (ms)", "Profiling overhead" }, rows, { "l", "r", "r", "r" })
end

-- Spread of each repeat-level figure: (max - min) / median, flagged over 10%.
local SPREAD_METRICS = { "p50_latency_ms", "p95_latency_ms", "mean_latency_ms", "tokens_per_s" }

local function spread(repeats, key)
  local v = {}
  for _, r in ipairs(repeats) do
    if f.known(r[key]) then v[#v + 1] = r[key] end
  end
  if #v < 2 then return nil end
  table.sort(v)
  local median = v[(#v + 1) // 2]
  if median == 0 then return nil end
  return 100 * (v[#v] - v[1]) / median
end

function M.spreads(run)
  local rows, flagged = {}, {}
  for _, key in ipairs(SPREAD_METRICS) do
    local row = { key }
    for _, pair in ipairs(f.sides(run)) do
      local s = pair[2] or {}
      local sp = s.repeats and spread(s.repeats, key)
      row[#row + 1] = sp and (f.num(sp, 1) .. "%" .. (sp > 10 and " (over 10%)" or "")) or "na"
      if sp and sp > 10 then flagged[#flagged + 1] = key end
    end
    rows[#rows + 1] = row
  end
  return rows, flagged
end

function M.aggregates(run)
  local blocks = {
    f.p("Client metrics of the baseline (all knobs off) and the best, each measured without the profiler on the "
      .. "same workload. Delta is best minus baseline; lower is better for latencies, higher for throughput; "
      .. "tokens/s counts generated tokens." .. (run.baseline.at_capacity and (" The objective is the capacity "
      .. "within the SLO: both columns are each config's capacity probe at its highest rate that held (the "
      .. "baseline's in baseline/capacity/), not a closed-loop run.") or "") .. (run.baseline_missing and (" The baseline directory "
      .. run.baseline_missing .. " is missing: its figures come from summary.json and its profile is na.") or "")),
    aggregates_table(run),
    f.figure("cdf", "Latency of every measured request, baseline vs best (cumulative)."),
    f.p("The profiled re-runs are used for the trace only; their slowdown is disclosed here (under 25% is the bar)."),
    M.overhead_table(run),
  }
  M.add_spread_blocks(run, blocks, { "Metric", "Baseline spread", "Best spread" })
  return { id = "aggregates", title = "Aggregates", blocks = blocks }
end

-- The repeat spread's sentence and table (header: a column per side of f.sides), or
-- that noise was not measured, appended to blocks.
function M.add_spread_blocks(run, blocks, header)
  local repeats = run.baseline.repeats or (run.best and run.best.repeats)
  if not repeats then
    blocks[#blocks + 1] = f.p("Noise was not measured: workload.repeats is 1. Set it to 3 or more to see the spread "
      .. "of every figure.")
    return
  end
  local rows, flagged = M.spreads(run)
  blocks[#blocks + 1] = f.p(string.format("Repeat spread, (max - min) / median over %d repeats: %s", #repeats,
    #flagged > 0 and ("over the 10% reproducibility bar for " .. table.concat(flagged, ", ") .. ".")
      or "every figure within the 10% reproducibility bar."))
  local align = { "l" }
  for i = 2, #header do align[i] = "r" end
  blocks[#blocks + 1] = f.table(header, rows, align)
end

-- ---------- Per-Stage Timings ----------

function M.stages(run)
  local rows = {}
  local names = {}
  for name in pairs(run.baseline.phases or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local a, b = f.get(run.baseline.phases, name) or {}, run.best and f.get(run.best.phases, name) or {}
    rows[#rows + 1] = { name, f.num(a.total_ms), f.int(a.count), f.num(a.mean_ms), f.num(a.percent, 1),
      f.num(b.total_ms), f.int(b.count), f.num(b.mean_ms), f.num(b.percent, 1), f.delta(b.total_ms, a.total_ms) }
  end
  local blocks = { f.p("Time inside each NVTX phase of the server (nsys.phases), from the profiled runs: total, "
    .. "count, mean and share of all NVTX range time.") }
  local found = false
  for _, name in ipairs(names) do found = found or f.get(run.baseline.phases, name) ~= nil end
  if not found then
    blocks[#blocks + 1] = f.p("na: the profiles hold no NVTX phases (" .. (f.get(run.baseline.trace, "reason")
      or (#names == 0 and "no phases configured" or "no NVTX range carries a phase's label")) .. ").")
  else
    blocks[#blocks + 1] = f.table({ "Phase", "Base total ms", "Base count", "Base mean ms", "Base %", "Best total ms",
      "Best count", "Best mean ms", "Best %", "Delta ms" }, rows, { "l", "r", "r", "r", "r", "r", "r", "r", "r", "r" })
  end
  return { id = "stages", title = "Per-Stage Timings", blocks = blocks }
end

-- ---------- MFU ----------

-- The GPU name of a run: the baseline trace's first GPU, else nvidia-smi's.
local function gpu_name(run)
  return f.get(run.baseline.trace, "environment", "gpus", 1, "name") or f.get(run.environment, "gpus", 1, "name")
end

function M.mfu_of(run, side)
  local model = run.summary.model
  if type(model) ~= "table" then model = nil end
  return mfu.compute(model, run.summary.hardware or { gpu_count = 1 }, side.metrics, gpu_name(run))
end

function M.mfu(run)
  local rows, assumptions, reason = {}, {}, nil
  for i, s in ipairs(f.sides(run)) do
    if s[2] then
      local r = M.mfu_of(run, s[2])
      reason = reason or r.reason
      rows[#rows + 1] = { s[1], f.num(r.tokens_per_s, 1), r.flops_per_token and string.format("%.4g", r.flops_per_token) or "na",
        (r.flops_per_token and r.tokens_per_s) and f.num(r.flops_per_token * r.tokens_per_s / 1e12, 2) or "na",
        f.num(r.peak_tflops, 1), r.mfu_pct and (f.num(r.mfu_pct, 2) .. "%") or "na" }
      if i == 1 then
        assumptions = { "FLOPs per token: " .. (r.flops_how or "na"), "Peak: " .. (r.peak_how or "na") }
        for _, a in ipairs(r.assumptions) do assumptions[#assumptions + 1] = a end
      end
    end
  end
  local model_name = type(run.summary.model) == "table" and run.summary.model.name
  local blocks = { f.p("Model FLOPs utilisation" .. (model_name and (" of " .. model_name) or "") .. ": FLOPs per "
    .. "token x tokens per second / peak FLOPS of the GPUs; tokens here are prompt plus generated tokens, so the "
    .. "rate is higher than Aggregates' tokens/s. "
    .. (reason and ("Not computed: " .. reason .. ".") or "Assumptions below.")) }
  blocks[#blocks + 1] = f.table({ "Run", "Tokens/s (prompt + output)", "FLOPs/token", "Achieved TFLOPS", "Peak TFLOPS", "MFU" },
    rows, { "l", "r", "r", "r", "r", "r" })
  if run.summary.model ~= nil and type(run.summary.model) == "table" then blocks[#blocks + 1] = f.list(assumptions) end
  return { id = "mfu", title = "MFU", blocks = blocks }
end

return M
