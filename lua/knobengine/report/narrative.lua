-- The report's generated text: a headline for the top, and the Summary section (what
-- the best changes, which knobs matter, where GPU time goes, whether the win is beyond
-- noise, what to try next). Rules over the run's numbers, no judgement beyond them.
local context = require("knobengine.report.context")
local counters = require("knobengine.report.counters")
local f = require("knobengine.report.fmt")
local objective = require("knobengine.report.objective")
local server = require("knobengine.report.server")
local plots = require("knobengine.report.plots")
local sections = require("knobengine.report.sections")
local trials = require("knobengine.report.trials")

local M = {}

-- "lowers p50 latency from 120.000 to 80.000 ms (-33.3%)"
local function change(name, old, new, unit)
  if not f.known(old) or not f.known(new) then return name .. " is na" end
  local verb = new < old and "lowers" or new > old and "raises" or "keeps"
  return string.format("%s %s from %s to %s%s (%s)", verb, name, f.num(old), f.num(new), unit, f.pct_change(new, old))
end

function M.headline(run)
  if not run.best_record then
    return "No valid trial: every combination failed or broke a constraint; see All trials for the errors."
  end
  local b, w = run.baseline.metrics, run.best.metrics
  local mask = run.best_record.knob_mask
  local with_values = false
  for _, k in ipairs(run.knobs or {}) do if k.values then with_values = true end end
  local what = mask:find("[^0]") and string.format("The best configuration %s %s (mask %s).",
    with_values and "sets" or "turns on", f.knobs_on(mask, run.knobs or {}), mask)
    or with_values and string.format("The best configuration is the baseline's, every knob at value index 0 (mask %s): "
      .. "no combination tried beat it.", mask)
    or string.format("The best configuration keeps every knob off (mask %s): no combination tried beat the defaults.", mask)
  local against = with_values and "every knob at value index 0" or "all knobs off"
  local p50 = change("p50 latency", f.get(b, "p50_latency_ms"), f.get(w, "p50_latency_ms"), " ms")
  local throughput = change("throughput", f.get(b, "tokens_per_s"), f.get(w, "tokens_per_s"), " tokens/s")
  local obj = objective.of(run)
  if obj.default then return string.format("%s Against the baseline (%s) it %s and %s.", what, against, p50, throughput) end
  return string.format("%s Against the baseline (%s%s) it %s; it %s and %s.", what, against,
    run.baseline.at_capacity and ", each at its capacity" or "", objective.change(obj), p50, throughput)
end

-- Whether any valid trial has a value of the metric.
local function measured(run, metric)
  for _, t in ipairs(run.summary.trials or {}) do
    if t.valid and f.known(f.get(t, "metrics", metric)) then return true end
  end
  return false
end

local function knobs_that_matter(run)
  local effects, metric = trials.main_effects(run)
  table.sort(effects, function(x, y) return math.abs(x.effect or 0) > math.abs(y.effect or 0) end)
  local parts = {}
  local unit = metric == "p50_latency_ms" and " ms" or ""
  local d = metric == "error_rate" and 4 or 3
  for i, e in ipairs(effects) do
    if i > 3 or not e.effect then break end
    parts[#parts + 1] = string.format("%s %s%s", e.name, f.delta(e.on, e.off, d), unit)
  end
  if #parts == 0 and not measured(run, metric) then
    return string.format("Knob effects on %s cannot be estimated: no valid trial has a value of it.", objective.label(metric))
  end
  if #parts == 0 then return "Knob effects cannot be estimated: no knob was seen both on and off in valid trials." end
  return string.format("Knobs by the size of their main effect on %s: %s.",
    metric == "p50_latency_ms" and "p50" or objective.label(metric), table.concat(parts, ", "))
end

-- Where the time goes in the best's profile (else the baseline's; a profile run: its one).
function M.gpu_time(run)
  local side = run.best or run.baseline
  local whose = run.best and "the best's" or run.single and "the" or "the baseline's"
  local k = side.kernels and side.kernels[1]
  if k then
    return string.format("GPU time in %s profile: the top kernel %s takes %s%% (%s ms of %s ms).", whose, f.short(k.name, 60),
      f.num(k.percent, 1), f.num(k.total_ms), f.num(f.get(side.trace, "gpu_compute_ms")))
  end
  local phases, top = side.phases or {}, nil
  for name, p in pairs(phases) do
    if type(p) == "table" and (not top or p.total_ms > top.total_ms) then top = { name = name, total_ms = p.total_ms, percent = p.percent } end
  end
  if top then
    return string.format("The profile holds no GPU kernels; of the NVTX phases, %s takes the most time (%s ms, %s%% of "
      .. "range time).", top.name, f.num(top.total_ms), f.num(top.percent, 1))
  end
  return "Where time goes is unknown: " .. (run.best and "the best" or run.single and "the run" or "the baseline") .. " has no usable profile (" .. (f.get(side.trace, "reason") or "no trace") .. ")."
end

-- The Summary's noise bullet: the headline's sentence on how sure (context.lua), and
-- whether some figures vary over 10% between repeats.
local function noise(run)
  local sentence = context.confidence(run)
  if not sentence then return nil end
  if run.baseline.repeats and run.best and run.best.repeats then
    local _, flagged = sections.spreads(run)
    if #flagged > 0 then sentence = sentence:gsub("%.$", "") .. "; some figures vary over 10% between repeats." end
  end
  return sentence
end

local function next_steps(run)
  local s, steps = run.summary, {}
  if not run.baseline_missing and f.get(run.baseline.trace, "ok") == false then
    steps[#steps + 1] = string.format("the baseline has no trace (%s): take only its trace again with knobengine "
      .. "--reprofile-baseline (its client metrics are kept), then knobengine report", f.get(run.baseline.trace, "reason") or "?")
  end
  if (s.trial_count or 0) < (s.mask_space or 0) then
    steps[#steps + 1] = string.format("the strategy ran %d of %d combinations: run --strategy bruteforce to check the rest",
      s.trial_count, s.mask_space)
  end
  local m = run.best and sections.mfu_of(run, run.best)
  if m and m.mfu_pct and m.mfu_pct < 30 then
    steps[#steps + 1] = string.format("MFU is %s%%: the GPU is far from compute-bound; more concurrent requests "
      .. "(workload.concurrency) or larger batches may raise throughput", f.num(m.mfu_pct, 1))
  end
  local o = run.best and run.best.overhead
  if o and f.known(o.overhead_percent) and o.overhead_percent > 25 then
    steps[#steps + 1] = "the profiler slowed the server by over 25%: use a lighter nsys.trace for a truer profile"
  end
  if run.best then
    steps[#steps + 1] = "check the best under the real traffic pattern: knobengine capacity --best (with an slo)"
  else
    steps[#steps + 1] = "read the trials' logs.txt for why every combination failed, and raise constraints.max_error_rate "
      .. "only if some failures are expected"
  end
  return "Next: " .. table.concat(steps, "; ") .. "."
end

function M.summary(run)
  local items = { M.headline(run), knobs_that_matter(run) }
  items[#items + 1] = context.alternatives(run, plots.pareto_front)
  items[#items + 1] = M.gpu_time(run)
  items[#items + 1] = server.finding(run)
  for _, sentence in ipairs(counters.findings(run)) do items[#items + 1] = sentence end
  items[#items + 1] = noise(run)
  local suspect = run.best_record and run.best_record.suspect
  if type(suspect) == "table" and #suspect > 0 then
    items[#items + 1] = "The best's measurement is suspect: " .. table.concat(suspect, "; ") .. " (docs/files.md "
      .. "\"Suspect trials\"; constraints.reject_suspect excludes such trials)."
  end
  items[#items + 1] = next_steps(run)
  return { id = "summary", title = "Summary", blocks = { f.list(items) } }
end

return M
