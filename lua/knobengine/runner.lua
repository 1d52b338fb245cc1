-- The search: run the strategy (no nsys), print the table, choose the best, profile
-- it, write results/search/<run>/ and print BEST and BEST_VS_BASELINE. The run is
-- built aside and renamed into place (rundir.lua), so a failed or interrupted search
-- never leaves a half-written result behind; its finished trials stay in
-- history.sqlite for a resume.
local cjson = require("cjson")
local knob = require("knob")
local baseline_of = require("knobengine.baseline")
local baseline_capacity = require("knobengine.baseline_capacity")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local History = require("knobengine.history")
local identity = require("knobengine.identity")
local knobs = require("knobengine.knobs")
local objective = require("knobengine.objective")
local output = require("knobengine.output")
local profiling = require("knobengine.profiling")
local provenance = require("knobengine.provenance")
local record = require("knobengine.record")
local rundir = require("knobengine.rundir")
local Search = require("knobengine.search")
local strategies = require("knobengine.strategy")
local trial_source = require("knobengine.trial_source")
local util = require("knobengine.util")

local M = {}

local say, out = output.say, output.line

-- The table as printed; an objective on a metric the table does not show adds a
-- last column of it (named by the metric).
local function summary_csv(records, baseline_p50, obj)
  local extra = not format.TABLE_METRICS[obj.metric] and obj.metric or nil
  local lines = { format.TABLE_HEADER .. (extra and "," .. extra or "") }
  for _, t in ipairs(records) do
    lines[#lines + 1] = format.table_row(t, baseline_p50)
      .. (extra and "," .. format.metric_value(extra, t.valid and objective.value(t, obj) or nil) or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- The baseline's side of the objective, measured as the trials' was: for max_rate the
-- baseline's capacity (baseline_capacity.lua) when the best has one, else its client
-- metrics. Returns the metrics and where they came from.
-- A capacity that cannot be measured is said, and the objective's baseline value is
-- then null (the search's results stand).
local function objective_baseline(ctx, baseline, records, best)
  if ctx.cfg.objective.metric ~= "max_rate" or not objective.value(best, ctx.cfg.objective) then
    return baseline.metrics, "client_metrics"
  end
  local ok, rec, source = xpcall(baseline_capacity.get, errors.handler, ctx, records)
  if not ok then
    if errors.stops_run(rec) then error(rec, 0) end
    say("the baseline's capacity could not be measured (%s); the objective's baseline value is na", rec.message or "?")
    return {}, "capacity", nil
  end
  return rec.metrics, source == "trial" and "capacity_trial" or "capacity", rec.capacity_bound
end

-- Says on stderr when no valid trial has a value of the objective (max_rate without a
-- strategy that runs search:capacity, goodput of an SLO nothing measured): the best then
-- comes from the tie-breakers alone.
local function warn_if_objective_unmeasured(records, obj)
  for _, t in ipairs(records) do
    if t.valid and t.full and type(t.metrics[obj.metric]) == "number" then return end
  end
  say("no valid trial has a value of the objective %s%s; the best is chosen by the tie-breakers alone", obj.metric,
    obj.metric == "max_rate" and " (only trials a strategy runs with search:capacity measure it)" or "")
end

-- Says on stderr when the best is suspect (record.suspect_reasons): it is never best
-- silently.
local function warn_if_suspect(best)
  if not best.suspect then return end
  say("the best (mask %s) is suspect: %s; its figures may not be the server's (constraints.reject_suspect makes "
    .. "such trials invalid)", best.mask_string, table.concat(best.suspect, "; "))
end

-- Says on stderr when the best and the runner-up are closer than their noise.
local function warn_if_within_noise(records, best, obj)
  local runner, gap, noise = objective.within_noise(records, obj)
  if runner then
    say("the best (mask %s) and the runner-up (mask %s) differ by %.3f in %s, less than the spread "
      .. "of their repeats (%.3f): the choice follows the rules but is within noise", best.mask_string,
      runner.mask_string, gap, obj.metric, noise)
  end
end

-- The report of the run being built (report.md, report.html, plots/). A report that
-- cannot be written is said on stderr and never fails the search.
function M.write_report(dirs)
  local ok, err = pcall(require("knobengine.report").write, dirs.aside, dirs.final)
  if not ok and errors.stops_run(err) then error(err, 0) end
  if ok then
    say("report: %s/report.html (and report.md)", dirs.final)
  else
    say("the report could not be written (%s); run knobengine report %s to try again",
      type(err) == "table" and (err.message or "?") or tostring(err), dirs.final)
  end
end

-- While Lua code of the strategy runs, a Ctrl-C is noticed there too (a strategy that
-- loops without evaluating would otherwise never see it).
local function watch_interrupts()
  debug.sethook(function()
    local sig = knob.interrupted()
    if sig then
      debug.sethook()
      errors.interrupted(sig, "interrupted while the strategy ran")
    end
  end, "", 10000)
end

-- Marks the run interrupted, so the next one resumes it; on a disk that cannot take the
-- mark either, the run stays "running", which resumes too.
local function mark_interrupted(run)
  pcall(run.history.finish, run.history, run.id, "interrupted")
end

-- Runs the strategy; a failure ends the history run (interrupted ones, and ones whose
-- output or files could not be written, stay resumable).
local function run_strategy(strategy, search, run)
  watch_interrupts()
  local ok, err = xpcall(strategy.run, errors.handler, search)
  debug.sethook()
  if ok then return end
  if errors.stops_run(err) then
    mark_interrupted(run)
    err.resumable = true
    error(err, 0)
  end
  run.history:finish(run.id, "failed")
  if err.traceback then err = errors.prefixed(err, "strategy error: ") end
  error(err, 0)
end

-- summary.json's content (without the best's profile).
local function summary_of(ctx, strategy, baseline, records, best)
  local cfg = ctx.cfg
  local launches = 0
  for _, t in ipairs(records) do
    if not t.resumed then launches = launches + 1 end
  end
  local summary = {
    strategy = strategy.name or ctx.strategy_path,
    config_file = cfg.path,
    knobs = cfg.knobs,
    objective = { metric = cfg.objective.metric, maximize = cfg.objective.maximize },
    constraints = cfg.constraints,
    baseline = { dir = baseline.dir, config = baseline.config, metrics = baseline.metrics },
    trials = util.array({}),
    launches = launches, -- servers started by this run (resumed trials are not)
    trial_count = #records,
    mask_space = cfg.space.size,
    best_trial = best and best.trial or cjson.null,
    model = cfg.model or cjson.null, -- the report's MFU inputs
    hardware = cfg.hardware,
  }
  for i, t in ipairs(records) do
    summary.trials[i] = record.summary_entry(t)
    summary.trials[i].objective_value = objective.value(t, cfg.objective) or cjson.null
  end
  summary.profiling_overhead = { baseline = baseline.overhead, best = cjson.null }
  return summary
end

M.RESUMED_LOG = "knobengine: the best's sweep trial was measured by an earlier search that was interrupted; "
  .. "its server log was not kept (profiled_logs.txt is the log of its profiled re-run)\n"

-- The best's sweep files (logs.txt, requests*.csv: its unprofiled run) into dir, as the
-- baseline directory holds its plain run's beside the profile.
local function copy_sweep_files(best, dir)
  local names = not best.resumed and best.dir and knob.list_dir(best.dir)
  if not names then return util.write(dir .. "/logs.txt", M.RESUMED_LOG) end
  for _, name in ipairs(names) do
    if name == "logs.txt" or name:match("^requests.*%.csv$") then
      local text, err = util.read_file(best.dir .. "/" .. name)
      if not text then errors.run("cannot copy the best's %s: %s", name, tostring(err)) end
      util.write(dir .. "/" .. name, text)
    end
  end
end

-- The baseline's ncu_overhead.json (its ncu pass, docs/ncu.md), or null.
local function ncu_overhead_of(dir)
  return util.read_json(dir .. "/ncu_overhead.json") or cjson.null
end

-- Profiles the best (and, with an `ncu` section, runs its ncu pass), writes its files
-- into the run and moves the run into place. The best's client metrics stay those of
-- its sweep trial (unprofiled, like the baseline's).
local function finish_with_best(ctx, dirs, best, summary)
  local cfg = ctx.cfg
  local dir = dirs.aside .. "/best"
  util.mkdir(dir)
  util.write_json(dir .. "/config.json", best.config)
  util.write_json(dir .. "/client_metrics.json", record.client_metrics(best))
  copy_sweep_files(best, dir)
  local prof = profiling.run(ctx, best.mask, dir, "best")
  if prof.ran and not prof.valid then say("the profiled re-run of the best failed: %s", prof.error or "invalid") end
  summary.profiling_overhead.best = profiling.write(cfg, best, prof, "best")
  if cfg.ncu then
    summary.ncu_overhead = { baseline = ncu_overhead_of(ctx.results .. "/baseline"),
      best = require("knobengine.ncu").pass(ctx, best.mask, dir, "best", prof, best) }
  end
  summary.best_profiled = { ok = prof.ok or false, valid = prof.valid or false, error = prof.error or cjson.null,
    metrics = prof.metrics }
  util.write_json(dirs.aside .. "/summary.json", summary)
  local resolved = knobs.resolve(cfg, best.mask)
  util.write_json(dirs.aside .. "/best_config.json", record.best_config(best, resolved))
  util.write(dirs.aside .. "/best_command.sh", knobs.command_script(resolved, "The best configuration found by knobengine"), 493) -- 0755
  M.write_report(dirs)
  rundir.publish(dirs)
  return prof
end

-- BEST, the OBJECTIVE line (an objective other than the SPEC's) and BEST_VS_BASELINE,
-- whose client metrics compare the best with base_metrics (objective_baseline).
local function print_best(cfg, baseline, best, prof, base_metrics, bounds)
  local base_p50 = baseline.metrics.p50_latency_ms
  out(format.best_line(best, base_p50))
  if not objective.is_default(cfg.objective) then
    out(format.objective_line(cfg.objective, objective.value({ metrics = base_metrics }, cfg.objective),
      objective.value(best, cfg.objective), bounds))
  end
  local lines = format.best_vs_baseline(
    { metrics = base_metrics, trace = baseline.trace, phases = baseline.phases },
    { metrics = best.metrics, trace = prof.trace, phases = prof.phases },
    cfg.nsys.phases)
  for _, l in ipairs(lines) do out(l) end
end

local function hours(s)
  if s >= 7200 then return string.format("%.0f hours", s / 3600) end
  return string.format("%.0f minutes", s / 60)
end

-- An exhaustive strategy on a space too large to sweep stops before the first launch,
-- with an estimate from the baseline's own trial time, unless --force.
local function check_space(ctx, baseline)
  local st, size, limit = ctx.strategy, ctx.cfg.space.size, strategies.EXHAUSTIVE_LIMIT
  if not st.exhaustive or size <= limit or ctx.force then return end
  local per = type(baseline.overhead) == "table" and baseline.overhead.unprofiled_wall_s
  local estimate = type(per) == "number" and string.format(": at the baseline's %.1f s per trial, about %s",
    per, hours(size * per)) or ""
  errors.usage("strategy %s launches every one of the %d combinations, more than %d%s. Use a strategy that "
    .. "samples (coord_descent, stack_rank, bayes), fewer knob values, or --force", st.name or ctx.strategy_path,
    size, limit, estimate)
end

-- Opens history and starts (or resumes) this search's run there.
local function begin_run(ctx, baseline)
  local history = History.open(ctx.results .. "/history.sqlite")
  local hash = identity.hash(ctx.cfg, ctx.dataset_hash, "search")
  local note = history:retire_older_unfinished(ctx.strategy_path)
  local id, replay = history:begin(hash, ctx.strategy_path)
  if #replay > 0 then
    say("resuming the interrupted search (run %d): reusing %d completed trial(s)", id, #replay)
  elseif note then
    say("%s", note)
  end
  -- where executor trials keep specs and logs: a resumable backend's jobs outlive a
  -- killed engine, so theirs are found again by run id; others go with the run's aside
  local work_dir = require("knobengine.executor").work_dir(ctx, id)
  return { history = history, hash = hash, id = id, replay = replay, base_p50 = baseline.metrics.p50_latency_ms,
    work_dir = work_dir }
end

-- The search proper, inside the run's aside directory.
local function search_body(ctx, baseline, dirs, run)
  local cfg = ctx.cfg
  run.work_dir = run.work_dir or (dirs.aside .. "/.slots")
  util.mkdir(dirs.aside .. "/trials")
  out(format.TABLE_HEADER)
  local source = trial_source.new(ctx, run, dirs)
  local records = {}
  local search = Search.new({ cfg = cfg, baseline = baseline.metrics, history = run.history, options = ctx.options,
    run_trial = source.run_trial, run_batch = source.run_batch, on_trial = source.on_trial }, records)
  run_strategy(ctx.strategy, search, run)
  knob.remove_tree(run.work_dir) -- the trial processes' specs and logs
  -- a resumable backend's RESULTS/.<backend>/ goes too, when no other run's jobs are in it
  if run.work_dir ~= dirs.aside .. "/.slots" then os.remove(util.dirname(run.work_dir)) end
  if #records == 0 then
    run.history:finish(run.id, "failed")
    errors.run("the strategy evaluated no combination (%s)", ctx.strategy_path)
  end
  local best = objective.choose(records, cfg.objective)
  local summary = summary_of(ctx, ctx.strategy, baseline, records, best)
  util.write(dirs.aside .. "/summary.csv", summary_csv(records, run.base_p50, cfg.objective))
  provenance.write(dirs.aside, ctx)
  if not best then
    util.write_json(dirs.aside .. "/summary.json", summary)
    M.write_report(dirs)
    rundir.publish(dirs)
    run.history:finish(run.id, "complete", dirs.final)
    errors.run("no valid trial: every combination failed or exceeded constraints.max_error_rate (%s); see %s/summary.json",
      cfg.constraints.max_error_rate, dirs.final)
  end
  warn_if_objective_unmeasured(records, cfg.objective)
  warn_if_within_noise(records, best, cfg.objective)
  warn_if_suspect(best)
  local base_metrics, source, base_bound = objective_baseline(ctx, baseline, records, best)
  local o = summary.objective
  o.baseline_value = objective.value({ metrics = base_metrics }, cfg.objective) or cjson.null
  o.best_value = objective.value(best, cfg.objective) or cjson.null
  o.baseline_source = source
  local bounds = cfg.objective.metric == "max_rate" and { baseline = base_bound, best = best.capacity_bound } or nil
  if bounds then o.baseline_bound, o.best_bound = base_bound or cjson.null, best.capacity_bound or cjson.null end
  if source ~= "client_metrics" then summary.baseline_capacity = { metrics = base_metrics, bound = base_bound or cjson.null } end
  local prof = finish_with_best(ctx, dirs, best, summary)
  run.history:finish(run.id, "complete", dirs.final)
  print_best(cfg, baseline, best, prof, base_metrics, bounds)
  return 0
end

function M.search(ctx)
  local baseline = baseline_of.load(ctx.results)
  baseline_of.check_identity(ctx, baseline)
  check_space(ctx, baseline)
  local dirs = rundir.new(ctx.results, "search")
  local run = begin_run(ctx, baseline)
  baseline_of.say_if_no_trace(baseline)
  return rundir.guard(dirs, function()
    local ok, result = xpcall(search_body, errors.handler, ctx, baseline, dirs, run)
    if ok then return result end
    -- stopped from outside (Ctrl-C, stdout gone, a full disk): what was measured is kept
    -- for a resume
    if errors.stops_run(result) and not result.resumable then
      mark_interrupted(run)
      result.resumable = true
    end
    error(result, 0)
  end)
end

return M
