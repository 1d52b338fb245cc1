-- The baseline: the all-OFF config measured without nsys (its client metrics are the
-- reference of every comparison), then profiled in a second launch for its trace (and,
-- with an `ncu` section, a third under ncu for its top kernels: ncu.lua);
-- results/baseline/ as a search reads it back (checked, its identity compared); and
-- --reprofile-baseline, which takes its trace again.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local identity = require("knobengine.identity")
local knobs = require("knobengine.knobs")
local ncu = require("knobengine.ncu")
local output = require("knobengine.output")
local profiling = require("knobengine.profiling")
local progress = require("knobengine.progress")
local provenance = require("knobengine.provenance")
local record = require("knobengine.record")
local rundir = require("knobengine.rundir")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

local say = output.say

-- Why a baseline measurement cannot be the reference of a comparison, or nil: it must
-- be valid and have completed at least one request (with constraints.max_error_rate 1
-- a run whose every request failed is "valid", but it measured nothing).
function M.unusable(rec)
  if not rec.valid then return rec.error or "invalid" end
  local m = rec.metrics
  if type(m.completed) ~= "number" or m.completed < 1 or type(m.p50_latency_ms) ~= "number" then
    return string.format("no request completed (%s)", rec.error or "every request failed")
  end
end

-- One config measured as the baseline is, into dir (built aside, final: its name when
-- published): a plain launch for the client metrics (config.json with the identity,
-- client_metrics.json, requests, log, and the trace replay's calibration template),
-- then the profiled launch (profiling.lua) and the ncu pass, then provenance. A plain
-- run that is not usable is a run error naming `what`; a profiled launch that failed
-- is said (its trace figures are na with the reason). Returns the record, the conf
-- written, the profiling overhead and the ncu pass's figures. Shared by the baseline
-- and `knobengine profile` (tag: how progress lines and messages name the run).
function M.measure(ctx, mask, dir, final, tag)
  local cfg = ctx.cfg
  progress.say("%s: starting %s", tag, util.shell_join(knobs.resolve(cfg, mask).argv))
  local rec = trial.run(ctx, mask, { dir = dir, label = tag })
  local why = M.unusable(rec)
  if why then
    errors.run("%s failed (%s); nothing was written to %s, see the server log above", tag, why, final)
  end
  local conf = rec.config
  conf.identity = identity.of(cfg, ctx.dataset_hash, "measure")
  util.write_json(dir .. "/config.json", conf)
  util.write_json(dir .. "/client_metrics.json", record.client_metrics(rec))
  M.write_trace_template(ctx, mask, rec, dir)
  local prof = profiling.run(ctx, mask, dir, tag)
  if prof.ran and not prof.valid then say("the profiled launch of the %s failed: %s", tag, prof.error or "invalid") end
  local overhead = profiling.write(cfg, rec, prof, tag)
  local ncu_figures = ncu.pass(ctx, mask, dir, tag, prof, rec)
  provenance.write(dir, ctx)
  return rec, conf, overhead, ncu_figures
end

-- The baseline: the all-OFF config measured without nsys (its client metrics are the
-- reference of every comparison), then profiled in a second launch for its trace.
function M.run(ctx, rebaseline)
  local results = ctx.results
  local d = rundir.new(results, "baseline")
  local final, aside = d.final, d.aside
  return rundir.guard(d, function()
    M.measure(ctx, 0, aside, final, "baseline")
    if rebaseline and knob.exists(final) then
      local old = string.format("%s/baseline.replaced-%s", results, os.date("!%Y%m%dT%H%M%SZ"))
      local okm, merr = os.rename(final, old)
      if not okm then errors.run("cannot move the old baseline aside: %s", merr) end
      say("the old baseline is kept in %s", old)
    end
    rundir.publish(d)
    local okp, perr = pcall(output.line, "BASELINE_DONE")
    if not okp then errors.run("%s; the baseline itself is complete in %s", perr.message or tostring(perr), final) end
    return 0
  end)
end

-- calibration_template.json of a measured run whose workload arrives as its trace
-- (load.lua's template; none for other arrivals).
function M.write_trace_template(ctx, mask, rec, dir)
  local tpl = require("knobengine.load").trace_template(ctx, mask, rec.metrics)
  if tpl then util.write_json(dir .. "/calibration_template.json", tpl) end
end

-- A file of the baseline, decoded; a missing, unreadable or malformed one is a usage
-- error naming it (the baseline directory was damaged or hand-edited).
local function load_json(path)
  local text, err = util.read_file(path)
  if not text then errors.usage("cannot read %s (%s); measure the baseline again with --rebaseline", path, err) end
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= "table" then
    errors.usage("%s is not a JSON object (%s); measure the baseline again with --rebaseline", path,
      ok and type(v) or tostring(v))
  end
  return v
end

-- The baseline's client metrics must have the shape the comparison reads.
local function check_metrics(path, m)
  local function num(key, nullable)
    local v = m[key]
    if type(v) == "number" or (nullable and v == cjson.null) then return end
    errors.usage("%s: %s must be a number%s (got %s); measure the baseline again with --rebaseline", path, key,
      nullable and " or null" or "", v == nil and "nothing" or type(v) == "userdata" and "null" or type(v))
  end
  num("p50_latency_ms")
  num("p95_latency_ms", true)
  num("tokens_per_s", true)
  num("error_rate")
end

function M.load(results)
  local d = results .. "/baseline"
  local b = {
    dir = d,
    metrics = load_json(d .. "/client_metrics.json"),
    trace = load_json(d .. "/trace_summary.json"),
    phases = load_json(d .. "/nvtx_phases.json"),
    config = load_json(d .. "/config.json"),
    overhead = knob.exists(d .. "/profiling_overhead.json") and load_json(d .. "/profiling_overhead.json") or cjson.null,
  }
  check_metrics(d .. "/client_metrics.json", b.metrics)
  return b
end

-- Says, at the start of a search, that the baseline has no trace and how to take it.
function M.say_if_no_trace(baseline)
  local t = baseline.trace
  if t.ok ~= false then return end
  say("the baseline in %s has no trace (%s): its trace figures print na. Take only its trace again with "
    .. "--reprofile-baseline (one profiled launch; its client metrics are kept)", baseline.dir, tostring(t.reason or "?"))
end

-- --reprofile-baseline: the baseline's profiled launch again, for its trace only. Its
-- client metrics (the reference of every comparison) are kept; the directory changes
-- only when the new profile has a trace.
function M.reprofile(ctx)
  local baseline = M.load(ctx.results)
  M.check_identity(ctx, baseline)
  local d = rundir.new(ctx.results, "baseline")
  local aside = d.aside
  return rundir.guard(d, function()
    profiling.copy_unprofiled(baseline.dir, aside)
    local prof = profiling.run(ctx, 0, aside, "baseline")
    if not (prof.trace and prof.trace.ok) then
      errors.run("the baseline's profiled launch has no trace again (%s); %s is unchanged",
        tostring(prof.profile_error or (prof.trace and prof.trace.reason) or prof.error or "?"), baseline.dir)
    end
    local wall = type(baseline.overhead) == "table" and baseline.overhead.unprofiled_wall_s or nil
    local plain = { metrics = baseline.metrics, wall_s = type(wall) == "number" and wall or nil }
    profiling.write(ctx.cfg, plain, prof, "baseline")
    ncu.pass(ctx, 0, aside, "baseline", prof, plain)
    rundir.swap_in(aside, baseline.dir)
    output.line("BASELINE_DONE")
    return 0
  end)
end

-- Refuses a baseline measured with another config: its numbers would not be comparable.
function M.check_identity(ctx, baseline)
  local recorded = identity.recorded(baseline.config)
  if not recorded then
    errors.usage("the baseline in %s was measured by an older knobengine, which did not record everything that "
      .. "decides its numbers (the arrivals, the SLO, the dataset format); measure it again with --rebaseline (the "
      .. "old one is kept), or use another --results", baseline.dir)
  end
  local diff = identity.differences(recorded, identity.of(ctx.cfg, ctx.dataset_hash, "measure"))
  if #diff > 0 then
    errors.usage("the baseline in %s was measured with another config (%s); measure it again with --rebaseline "
      .. "(the old one is kept), or use another --results", baseline.dir, table.concat(diff, "; "))
  end
end

return M
