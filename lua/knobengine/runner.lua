-- The two modes. Baseline: profile the all-OFF server once, write results/baseline/,
-- print BASELINE_DONE. Search: run the strategy (no nsys), print the table, choose the
-- best, profile it, write results/search/<run>/ and print BEST and BEST_VS_BASELINE.
-- Directories are built aside and renamed into place, so a failed or interrupted run
-- never leaves a half-written result behind.
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local History = require("knobengine.history")
local objective = require("knobengine.objective")
local Search = require("knobengine.search")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

local function say(fmt, ...) io.stderr:write("knobengine: ", string.format(fmt, ...), "\n") end

local function progress(fmt, ...)
  if knob.isatty(2) then io.stderr:write(string.format(fmt, ...), "\n") end
end

local function out(line) io.stdout:write(line, "\n") end

-- Removes the aside directory if the body fails, then re-raises.
local function with_aside(dir, body)
  local ok, err = pcall(body)
  if not ok then
    knob.remove_tree(dir)
    error(err, 0)
  end
  return err
end

local function session_name(tag)
  return string.format("knobengine-%d-%s", knob.getpid(), tag)
end

function M.baseline(ctx)
  local cfg, results = ctx.cfg, ctx.results
  util.mkdir(results)
  local final = results .. "/baseline"
  local aside = string.format("%s/.baseline.tmp.%d", results, knob.getpid())
  knob.remove_tree(aside)
  return with_aside(aside, function()
    local no_nsys = trial.nsys_unavailable(cfg)
    if no_nsys then say("%s; trace metrics will be na", no_nsys) end
    progress("baseline: starting %s", util.shell_join(config.resolve(cfg, 0).argv))
    local rec = trial.run(ctx, 0, { dir = aside, profile = true, no_profile_reason = no_nsys, session = session_name("baseline") })
    if not rec.valid then
      errors.run("baseline failed (%s); nothing was written to %s, see the server log above",
        rec.error or "invalid", final)
    end
    if rec.profile_note then say("%s", rec.profile_note) end
    if rec.profile_error and not no_nsys then say("profiling the baseline failed: %s; trace metrics will be na", rec.profile_error) end
    trial.write_artifacts(rec)
    local ok, err = os.rename(aside, final)
    if not ok then errors.run("cannot move the baseline into place: %s", err) end
    out("BASELINE_DONE")
    return 0
  end)
end

local function load_json(path)
  local text, err = util.read_file(path)
  if not text then errors.run("cannot read %s: %s", path, err) end
  local ok, v = pcall(cjson.decode, text)
  if not ok then errors.run("%s is not valid JSON (%s); remove the directory to redo it", path, v) end
  return v
end

local function load_baseline(results)
  local d = results .. "/baseline"
  return {
    dir = d,
    metrics = load_json(d .. "/client_metrics.json"),
    trace = load_json(d .. "/trace_summary.json"),
    phases = load_json(d .. "/nvtx_phases.json"),
    config = load_json(d .. "/config.json"),
  }
end

local function load_strategy(path)
  local chunk, err = loadfile(path, "t", setmetatable({}, { __index = _G }))
  if not chunk then errors.usage("strategy %s", err) end
  local ok, strategy = pcall(chunk)
  if not ok then errors.run("strategy %s failed to load: %s", path, tostring(strategy)) end
  if type(strategy) ~= "table" or type(strategy.run) ~= "function" then
    errors.usage("strategy %s must return a table with a run(search) function", path)
  end
  return strategy
end

local function summary_csv(records, baseline_p50)
  local lines = { format.TABLE_HEADER }
  for _, t in ipairs(records) do lines[#lines + 1] = format.table_row(t, baseline_p50) end
  return table.concat(lines, "\n") .. "\n"
end


-- What history keeps of a trial: enough to replay it into a resumed run.
local function stored_record(t)
  return {
    trial = t.trial, mask = t.mask, mask_string = t.mask_string, full = t.full, requests = t.requests,
    ok = t.ok, valid = t.valid, error = t.error or cjson.null, error_rate = t.error_rate,
    metrics = t.metrics, config = t.config, timing = t.timing, wall_s = t.wall_s, dir = t.dir,
    repeats = t.repeats,
  }
end

-- A trial as summary.json shows it: the stored record, with the file's key names.
local function record_json(t)
  local j = stored_record(t)
  j.knob_mask, j.full_fidelity = t.mask_string, t.full
  j.mask, j.mask_string, j.full, j.dir = nil, nil, nil, nil
  -- a trial reused from an interrupted run keeps no log in this run's directory
  j.log = t.resumed and cjson.null or (t.dir .. "/logs.txt")
  j.resumed = t.resumed or false
  return j
end

-- Says on stderr when the best and the runner-up are closer than their noise.
local function warn_if_within_noise(records, best, obj)
  local runner, gap, noise = objective.within_noise(records, best, obj)
  if runner then
    say("the best (mask %s) and the runner-up (mask %s) differ by %.3f in %s, less than the spread "
      .. "of their repeats (%.3f): the choice follows the rules but is within noise", best.mask_string,
      runner.mask_string, gap, obj.metric, noise)
  end
end

local function run_stamp()
  return os.date("!%Y%m%dT%H%M%SZ")
end

local function best_command(cfg, resolved)
  local lines = { "#!/bin/sh", "# The best configuration found by knobengine; every argument is shell-quoted.", "set -e" }
  local keys = {}
  for k in pairs(resolved.env) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do lines[#lines + 1] = "export " .. k .. "=" .. util.shell_quote(resolved.env[k]) end
  lines[#lines + 1] = "exec " .. util.shell_join(resolved.argv) .. ' "$@"'
  return table.concat(lines, "\n") .. "\n"
end

function M.search(ctx)
  local cfg, results = ctx.cfg, ctx.results
  local baseline = load_baseline(results)
  local strategy = load_strategy(ctx.strategy_path)
  local search_root = results .. "/search"
  util.mkdir(search_root)
  local stamp = run_stamp()
  local final = search_root .. "/" .. stamp
  local suffix = 1
  while knob.exists(final) do suffix = suffix + 1; final = string.format("%s/%s-%d", search_root, stamp, suffix) end
  local aside = string.format("%s/.run.tmp.%d", search_root, knob.getpid())
  knob.remove_tree(aside)
  local base_p50 = baseline.metrics.p50_latency_ms
  local n = #cfg.knobs

  local history = History.open(results .. "/history.sqlite")
  local config_hash = History.config_hash(cfg, ctx.dataset_text)
  local run_id, replay = history:begin(config_hash, ctx.strategy_path)
  if #replay > 0 then
    say("resuming the interrupted search (run %d): reusing %d completed trial(s)", run_id, #replay)
  end

  return with_aside(aside, function()
    util.mkdir(aside .. "/trials")
    out(format.TABLE_HEADER)
    local total = 1 << n
    local sctx = {
      cfg = cfg, baseline = baseline.metrics, history = history,
      run_trial = function(index, mask, requests)
        local cached = replay[index + 1]
        if cached and cached.mask == mask and cached.requests == requests then
          cached.resumed = true
          if cached.error == cjson.null then cached.error = nil end
          return cached
        end
        replay = {} -- the strategy went another way: nothing further can be reused
        local mask_string = config.mask_string(mask, n)
        progress("[trial %d] mask %s%s ...", index, mask_string,
          requests < cfg.workload.request_count and string.format(" (%d requests)", requests) or "")
        local ok, rec = pcall(trial.run, ctx, mask, { dir = string.format("%s/trials/%03d-%s", aside, index, mask_string), requests = requests })
        if not ok then
          history:mark_trial_interrupted(run_id, config_hash, index, mask_string, requests)
          error(rec, 0)
        end
        return rec
      end,
      on_trial = function(t)
        -- stored before it is printed: a row on stdout is always a trial a resume keeps
        if not t.resumed then history:record(run_id, config_hash, t, stored_record(t)) end
        out(format.table_row(t, base_p50))
        if not t.valid then say("trial %d (mask %s) is invalid: %s", t.trial, t.mask_string, t.error or "?") end
      end,
    }
    local search = Search.new(sctx)
    local ok, err = pcall(strategy.run, search)
    if not ok then
      if errors.is(err) then
        if err.kind == "interrupted" then
          history:finish(run_id, "interrupted")
          err.resumable = true
        else
          history:finish(run_id, "failed")
        end
        error(err, 0)
      end
      history:finish(run_id, "failed")
      errors.run("strategy error: %s", tostring(err))
    end
    local records = search:_records()
    local best = objective.choose(records, cfg.objective)
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
      mask_space = total,
      best_trial = best and best.trial or cjson.null,
    }
    for i, t in ipairs(records) do summary.trials[i] = record_json(t) end
    -- profiling overhead: profiled baseline p50 versus the unprofiled all-OFF trial
    for _, t in ipairs(records) do
      if t.mask == 0 and t.valid and t.full and not util.is_null(base_p50) then
        summary.profiling_overhead = {
          baseline_profiled_p50_ms = base_p50,
          all_off_unprofiled_p50_ms = t.metrics.p50_latency_ms,
          overhead_ms = base_p50 - t.metrics.p50_latency_ms,
        }
        break
      end
    end
    util.write(aside .. "/summary.csv", summary_csv(records, base_p50))
    if not best then
      util.write_json(aside .. "/summary.json", summary)
      os.rename(aside, final)
      knob.symlink(final:match("[^/]+$"), search_root .. "/latest")
      history:finish(run_id, "complete", final)
      errors.run("no valid trial: every combination failed or exceeded constraints.max_error_rate (%s); see %s/summary.json",
        cfg.constraints.max_error_rate, final)
    end

    warn_if_within_noise(records, best, cfg.objective)
    -- profile the best
    local no_nsys = trial.nsys_unavailable(cfg)
    if no_nsys then say("%s; trace metrics will be na", no_nsys) end
    progress("profiling the best (mask %s) ...", best.mask_string)
    local prof = trial.run(ctx, best.mask, { dir = aside .. "/best", profile = true, no_profile_reason = no_nsys, session = session_name("best") })
    if prof.profile_note then say("%s", prof.profile_note) end
    if prof.profile_error and not no_nsys then say("profiling the best failed: %s; trace metrics will be na", prof.profile_error) end
    if not prof.valid then say("the profiled re-run of the best failed: %s", prof.error or "invalid") end
    trial.write_artifacts(prof)
    summary.best_profiled = { ok = prof.ok, valid = prof.valid, error = prof.error or cjson.null, metrics = prof.metrics }
    util.write_json(aside .. "/summary.json", summary)
    local resolved = config.resolve(cfg, best.mask)
    util.write_json(aside .. "/best_config.json", {
      trial = best.trial, knob_mask = best.mask_string, knobs_on = util.array(resolved.knobs_on),
      argv = util.array(resolved.argv), env = resolved.env, metrics = best.metrics,
    })
    util.write(aside .. "/best_command.sh", best_command(cfg, resolved), 493) -- 0755
    local okr, rerr = os.rename(aside, final)
    if not okr then errors.run("cannot move the search results into place: %s", rerr) end
    local okl, lerr = knob.symlink(final:match("[^/]+$"), search_root .. "/latest")
    if not okl then say("%s", lerr) end
    history:finish(run_id, "complete", final)

    out(format.best_line(best, base_p50))
    local lines = format.best_vs_baseline(
      { metrics = baseline.metrics, trace = baseline.trace, phases = baseline.phases },
      { metrics = best.metrics, trace = prof.trace, phases = prof.phases },
      cfg.nsys.phases)
    for _, l in ipairs(lines) do out(l) end
    return 0
  end)
end

return M
