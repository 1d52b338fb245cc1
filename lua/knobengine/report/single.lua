-- The report of a profile run (knobengine profile: one config, no search; docs/report.md
-- "A profile run"): the sections of a search's report with one column of figures
-- where a search has baseline and best side by side, and a Summary of where the time
-- goes. The shared sections (Environment, MFU, GPU Utilisation, the counters) read
-- f.sides(run), which is this config alone.
local context = require("knobengine.report.context")
local counters = require("knobengine.report.counters")
local f = require("knobengine.report.fmt")
local narrative = require("knobengine.report.narrative")
local profile = require("knobengine.report.profile")
local sections = require("knobengine.report.sections")

local M = {}

local TOP = profile.TOP

local function what_was_measured(run)
  local s = run.summary
  if #(run.knobs or {}) == 0 then return "the server as configured (the config has no knobs)" end
  local on = f.knobs_on(tostring(s.knob_mask), run.knobs)
  return string.format("knob mask %s, %s", tostring(s.knob_mask), on == "none (all off)" and "every knob off" or on)
end

function M.headline(run)
  local m = run.baseline.metrics
  local k = run.baseline.kernels and run.baseline.kernels[1]
  local where = k and string.format(" Under nsys the top kernel %s takes %s%% of GPU time.", f.short(k.name, 60),
    f.num(k.percent, 1)) or ""
  return string.format("One configuration measured and profiled: %s. p50 latency %s ms, p95 %s ms, %s tokens/s, "
    .. "error rate %s.%s", what_was_measured(run), f.num(f.get(m, "p50_latency_ms")), f.num(f.get(m, "p95_latency_ms")),
    f.num(f.get(m, "tokens_per_s"), 1), f.num(f.get(m, "error_rate"), 4), where)
end

local function aggregates(run)
  local rows, m = {}, run.baseline.metrics
  for _, a in ipairs(sections.AGGREGATES) do rows[#rows + 1] = { a[1], f.num(f.get(m, a[2], a[3]), a.d) } end
  local blocks = {
    f.p("Client metrics of the configuration, measured without the profiler (the profiled launch is used for the "
      .. "trace only). Tokens/s counts generated tokens."),
    f.table({ "Metric", "Value" }, rows, { "l", "r" }),
    f.figure("cdf", "Latency of every measured request (cumulative)."),
    f.p("The profiled launch's slowdown (under 25% is the bar):"),
    sections.overhead_table(run),
  }
  sections.add_spread_blocks(run, blocks, { "Metric", "Spread" })
  return { id = "aggregates", title = "Aggregates", blocks = blocks }
end

local function stages(run)
  local names, rows = {}, {}
  for name in pairs(run.baseline.phases or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local p = f.get(run.baseline.phases, name)
    if p then rows[#rows + 1] = { name, f.num(p.total_ms), f.int(p.count), f.num(p.mean_ms), f.num(p.percent, 1) } end
  end
  local blocks = { f.p("Time inside each NVTX phase of the server (nsys.phases), from the profiled launch: total, "
    .. "count, mean and share of all NVTX range time.") }
  if #rows == 0 then
    blocks[2] = f.p("na: the profile holds no NVTX phases (" .. (f.get(run.baseline.trace, "reason")
      or (#names == 0 and "no phases configured" or "no NVTX range carries a phase's label")) .. ").")
  else
    blocks[2] = f.table({ "Phase", "Total ms", "Count", "Mean ms", "%" }, rows, { "l", "r", "r", "r", "r" })
  end
  return { id = "stages", title = "Per-Stage Timings", blocks = blocks }
end

local function operators(run)
  local rows = {}
  for i, e in ipairs(profile.operators_of(run.baseline)) do
    if i > TOP then break end
    rows[i] = { e.kind, f.short(e.name), f.num(e.total_ms), f.int(e.calls), f.num(e.mean_ms) }
  end
  local blocks = { f.p("Host-side operators by total time: the server's NVTX ranges and the CUDA runtime API calls "
    .. "it made (nsys nvtxsum and cudaapisum), top " .. TOP .. ". Ranges nest, so their times overlap.") }
  blocks[2] = #rows == 0 and f.p("na: " .. (f.get(run.baseline.trace, "reason")
    or "the profile holds no NVTX ranges or CUDA API calls") .. ".")
    or f.table({ "Kind", "Name", "Total ms", "Calls", "Mean ms" }, rows, { "l", "l", "r", "r", "r" })
  return { id = "operators", title = "Top Operators", blocks = blocks }
end

local function kernels(run)
  local rows = {}
  for i, k in ipairs(run.baseline.kernels or {}) do
    if i > TOP then break end
    rows[i] = { f.short(k.name), f.num(k.total_ms), f.int(k.count), f.num(k.mean_ms), f.num(k.percent, 1) }
  end
  local blocks = {}
  if #rows == 0 then
    blocks[1] = profile.no_kernels(run.baseline.trace, "the profile holds")
  else
    blocks[1] = f.p(string.format("GPU kernels by total time, top %d; percent is of all GPU compute time (%s ms). "
      .. "Every kernel is in kernels.csv.", TOP, f.num(f.get(run.baseline.trace, "gpu_compute_ms"))))
    blocks[2] = f.table({ "Kernel", "Total ms", "Calls", "Mean ms", "%" }, rows, { "l", "r", "r", "r", "r" })
    blocks[3] = f.figure("kernels", "Time of the top kernels.")
  end
  if #rows > 0 or run.baseline.ncu then
    for _, b in ipairs(counters.kernel_blocks(run)) do blocks[#blocks + 1] = b end
  end
  return { id = "kernels", title = "Top Kernels", blocks = blocks }
end

local function next_steps(run)
  local steps = {}
  local o, why = run.baseline.overhead, f.get(run.baseline.overhead, "reason")
  if why and why:find("^the profiled launch failed") then
    steps[#steps + 1] = why .. ": its trace is not the served run's; read profiled_logs.txt and run knobengine profile again"
  elseif f.get(run.baseline.trace, "ok") == false then
    steps[#steps + 1] = string.format("the profile has no trace (%s): fix what the reason says and run knobengine "
      .. "profile again", f.get(run.baseline.trace, "reason") or "?")
  end
  if o and f.known(o.overhead_percent) and o.overhead_percent > 25 then
    steps[#steps + 1] = "the profiler slowed the server by over 25%: use a lighter nsys.trace for a truer profile"
  end
  if not run.baseline.repeats then
    steps[#steps + 1] = "set workload.repeats to 3 or more to measure the noise"
  else
    local _, flagged = sections.spreads(run)
    if #flagged > 0 then
      steps[#steps + 1] = "the repeats vary over 10% (" .. table.concat(flagged, ", ") .. "): more requests per repeat "
        .. "(workload.request_count) or a quieter machine before trusting small differences"
    end
  end
  steps[#steps + 1] = #(run.knobs or {}) == 0 and "add knobs to the config and run knobengine (a baseline, then a "
    .. "search) to find a faster configuration" or "run knobengine (a baseline, then a search) to compare this "
    .. "configuration with the others of its knobs"
  return "Next: " .. table.concat(steps, "; ") .. "."
end

local function summary(run)
  local items = { narrative.gpu_time(run) }
  for _, sentence in ipairs(counters.findings(run)) do items[#items + 1] = sentence end
  items[#items + 1] = next_steps(run)
  return { id = "summary", title = "Summary", blocks = { f.list(items) } }
end

-- The document of a profile run (report.lua renders it as it renders a search's).
function M.document(run, final_dir)
  local name = (run.summary.config_file or "config"):match("[^/]+$")
  local doc = {
    title = "knobengine profile: " .. name,
    meta = { "Run: " .. (final_dir or run.dir), "Configuration: " .. what_was_measured(run),
      "Generated: " .. os.date("!%Y-%m-%d %H:%M UTC") },
    headline = M.headline(run),
    sections = { sections.environment(run), aggregates(run), require("knobengine.report.server").section(run), stages(run),
      sections.mfu(run), operators(run),
      kernels(run), counters.utilisation(run), summary(run) },
  }
  for _, line in ipairs(context.meta(run)) do doc.meta[#doc.meta + 1] = line end
  return doc
end

return M
