-- `knobengine profile`: one config measured as the baseline is (its client metrics
-- without nsys, then a profiled launch for its trace, and the ncu pass with an `ncu`
-- section), with its report: RESULTS/profile/<run>/ (docs/files.md). The config needs
-- no knobs; with knobs, --mask or --best chooses the combination (default: all off).
-- Built aside and renamed into place (rundir.lua): a failed or interrupted run leaves
-- nothing behind. Touches no baseline or search of the results directory.
local cjson = require("cjson")
local baseline = require("knobengine.baseline")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
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

-- The mask as the output names it: its string, or "none" for a config without knobs.
function M.mask_name(cfg, mask)
  return cfg.space.n == 0 and "none" or cfg.space:string(mask)
end

-- summary.json of a profile run: what the report reads (report/data.lua), kind "profile".
local function summary_of(ctx, mask, rec, conf, overhead, ncu_overhead)
  local cfg = ctx.cfg
  return {
    kind = "profile",
    config_file = cfg.path,
    knobs = util.array(cfg.knobs),
    knob_mask = M.mask_name(cfg, mask),
    config = conf,
    objective = { metric = cfg.objective.metric, maximize = cfg.objective.maximize },
    metrics = rec.metrics,
    valid = rec.valid,
    profiling_overhead = overhead,
    ncu_overhead = ncu_overhead or cjson.null,
    model = cfg.model or cjson.null,
    hardware = cfg.hardware,
    trials = util.array({}),
  }
end

-- The report into the run being built; one that cannot be written is said and does not
-- fail the run (knobengine report RUN_DIR tries again).
local function write_report(d)
  local ok, err = pcall(require("knobengine.report").write, d.aside, d.final)
  if not ok and errors.stops_run(err) then error(err, 0) end
  if not ok then
    output.say("the report could not be written (%s); run knobengine report %s to try again",
      type(err) == "table" and (err.message or "?") or tostring(err), d.final)
  end
  return ok
end

-- Measures and profiles mask; prints PROFILE_DONE,<run dir> (a CSV field) on stdout.
function M.run(ctx, mask)
  local cfg = ctx.cfg
  local d = rundir.new(ctx.results, "profile")
  return rundir.guard(d, function()
    local resolved = knobs.resolve(cfg, mask)
    progress.say("profile: starting %s", util.shell_join(resolved.argv))
    local rec = trial.run(ctx, mask, { dir = d.aside, label = "profile" })
    local why = baseline.unusable(rec)
    if why then
      errors.run("profile: the measured run failed (%s); nothing was written to %s, see the server log above", why, d.final)
    end
    local conf = rec.config
    conf.identity = identity.of(cfg, ctx.dataset_hash, "measure")
    util.write_json(d.aside .. "/config.json", conf)
    util.write_json(d.aside .. "/client_metrics.json", record.client_metrics(rec))
    local prof = profiling.run(ctx, mask, d.aside, "profile")
    local overhead = profiling.write(cfg, rec, prof, "profile")
    local ncu_overhead = ncu.pass(ctx, mask, d.aside, "profile", prof, rec)
    provenance.write(d.aside, ctx)
    util.write(d.aside .. "/command.sh", knobs.command_script(resolved, "The configuration knobengine profiled"), 493)
    util.write_json(d.aside .. "/summary.json", summary_of(ctx, mask, rec, conf, overhead, ncu_overhead))
    if write_report(d) then output.say("report: %s/report.html (and report.md)", d.final) end
    rundir.publish(d)
    output.line("PROFILE_DONE," .. format.line_field(d.final))
    return 0
  end)
end

return M
