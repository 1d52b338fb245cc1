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
local knobs = require("knobengine.knobs")
local output = require("knobengine.output")
local rundir = require("knobengine.rundir")
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

-- Measures and profiles mask; prints PROFILE_DONE,<run dir> (a CSV field) on stdout.
function M.run(ctx, mask)
  local cfg = ctx.cfg
  local d = rundir.new(ctx.results, "profile")
  return rundir.guard(d, function()
    local rec, conf, overhead, ncu_overhead = baseline.measure(ctx, mask, d.aside, d.final, "config")
    util.write(d.aside .. "/command.sh", knobs.command_script(knobs.resolve(cfg, mask),
      "The configuration knobengine profiled"), 493)
    util.write_json(d.aside .. "/summary.json", summary_of(ctx, mask, rec, conf, overhead, ncu_overhead))
    require("knobengine.runner").write_report({ aside = d.aside, final = d.final })
    rundir.publish(d)
    local ok, err = pcall(output.line, "PROFILE_DONE," .. format.line_field(d.final))
    if not ok then errors.run("%s; the profile itself is complete in %s", err.message or tostring(err), d.final) end
    return 0
  end)
end

return M
