-- The two modes. Baseline: profile the all-OFF server once, write results/baseline/,
-- print BASELINE_DONE. Search: run the strategy (no nsys), print the table, choose the
-- best, profile it, write results/search/<run>/ and print BEST and BEST_VS_BASELINE.
-- Directories are built aside and renamed into place, so a failed or interrupted run
-- never leaves a half-written result behind.
local cjson = require("cjson")
local knob = require("knob")
local knobs = require("knobengine.knobs")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local History = require("knobengine.history")
local identity = require("knobengine.identity")
local objective = require("knobengine.objective")
local progress = require("knobengine.progress")
local provenance = require("knobengine.provenance")
local record = require("knobengine.record")
local Executor = require("knobengine.executor")
local Search = require("knobengine.search")
local strategies = require("knobengine.strategy")
local trace = require("knobengine.trace")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

local function say(fmt, ...) io.stderr:write("knobengine: ", string.format(fmt, ...), "\n") end

-- One line of results on stdout. A write that fails (a full disk, a closed pipe: `| head`)
-- stops the run: nothing is printed to nobody.
local function out(line)
  local ok, err = io.stdout:write(line, "\n")
  if ok then ok, err = io.stdout:flush() end
  if not ok then errors.output("cannot write the results to stdout (%s)", tostring(err)) end
end

-- Removes the aside directory if the body fails, then re-raises (traceback kept).
local function with_aside(dir, body)
  local ok, result = xpcall(body, errors.handler)
  if not ok then
    knob.remove_tree(dir)
    error(result, 0)
  end
  return result
end

local function session_name(tag)
  return string.format("knobengine-%d-%s", knob.getpid(), tag)
end

-- Why nsys cannot profile here (not found, or its report importer cannot start), or
-- nil. Checked before a profiled launch, so a capture that could never become a
-- report is not even started.
local function why_no_profile(cfg)
  local reason = trial.nsys_unavailable(cfg)
  if reason then return reason end
  local _, err = knob.nsys_check_importer(cfg.nsys.bin)
  return err
end

-- The profiled run of a config (the baseline or the best), for its trace only: client
-- metrics are never taken from it. Says on stderr what happened to its profile.
local function profile(ctx, mask, dir, tag)
  local cfg = ctx.cfg
  local reason = why_no_profile(cfg)
  if reason then
    say("%s; trace metrics will be na", reason)
    local summary, phases = trace.empty(cfg, reason)
    return { ran = false, dir = dir, trace = summary, phases = phases, profile_error = reason, metrics = {} }
  end
  progress.say("profiling the %s (mask %s) ...", tag, cfg.space:string(mask))
  local rec = trial.run(ctx, mask, { dir = dir, profile = true, session = session_name(tag), label = tag .. " under nsys" })
  local p = rec.profile or {}
  if p.note then say("%s", p.note) end
  if p.size_limited then say("profiling the %s: %s; raise nsys.max_trace_mb (0: no limit) to capture more", tag, p.partial) end
  if rec.profile_error then say("profiling the %s failed: %s; trace metrics will be na", tag, rec.profile_error) end
  if rec.trace and p.partial then rec.trace.partial = p.partial end
  return rec
end

-- Writes the profiled run's files and profiling_overhead.json beside the unprofiled
-- metrics; says so when nsys slowed the server by more than 25%.
local function write_profile(cfg, plain, prof, tag)
  trial.write_profile(prof, cfg)
  local o = trial.overhead(cfg, plain, prof)
  util.write_json(prof.dir .. "/profiling_overhead.json", o)
  if type(o.overhead_percent) == "number" and o.overhead_percent > 25 then
    say("profiling slowed the %s by %.0f%% (p50 %.3f ms under nsys, %.3f ms without): client metrics come from "
      .. "the run without nsys, but its trace shows a slowed server; lighter: nsys.trace without osrt, "
      .. "nsys.cuda_graph_trace \"graph\", nsys.capture_requests", tag, o.overhead_percent,
      o.profiled_p50_latency_ms, o.unprofiled_p50_latency_ms)
  end
  return o
end

-- Why a baseline measurement cannot be the reference of a comparison, or nil: it must
-- be valid and have completed at least one request (with constraints.max_error_rate 1
-- a run whose every request failed is "valid", but it measured nothing).
local function unusable_baseline(rec)
  if not rec.valid then return rec.error or "invalid" end
  local m = rec.metrics
  if type(m.completed) ~= "number" or m.completed < 1 or type(m.p50_latency_ms) ~= "number" then
    return string.format("no request completed (%s)", rec.error or "every request failed")
  end
end

-- The baseline: the all-OFF config measured without nsys (its client metrics are the
-- reference of every comparison), then profiled in a second launch for its trace.
function M.baseline(ctx, rebaseline)
  local cfg, results = ctx.cfg, ctx.results
  util.mkdir(results)
  local final = results .. "/baseline"
  local aside = string.format("%s/.baseline.tmp.%d", results, knob.getpid())
  knob.remove_tree(aside)
  return with_aside(aside, function()
    progress.say("baseline: starting %s", util.shell_join(knobs.resolve(cfg, 0).argv))
    local rec = trial.run(ctx, 0, { dir = aside, label = "baseline" })
    local why = unusable_baseline(rec)
    if why then
      errors.run("baseline failed (%s); nothing was written to %s, see the server log above", why, final)
    end
    local conf = rec.config
    conf.identity = identity.of(cfg, ctx.dataset_hash, "measure")
    util.write_json(aside .. "/config.json", conf)
    util.write_json(aside .. "/client_metrics.json", record.client_metrics(rec))
    write_profile(cfg, rec, profile(ctx, 0, aside, "baseline"), "baseline")
    provenance.write(aside, ctx)
    if rebaseline and knob.exists(final) then
      local old = string.format("%s/baseline.replaced-%s", results, os.date("!%Y%m%dT%H%M%SZ"))
      local okm, merr = os.rename(final, old)
      if not okm then errors.run("cannot move the old baseline aside: %s", merr) end
      say("the old baseline is kept in %s", old)
    end
    local ok, err = os.rename(aside, final)
    if not ok then errors.run("cannot move the baseline into place: %s", err) end
    local okp, perr = pcall(out, "BASELINE_DONE")
    if not okp then errors.run("%s; the baseline itself is complete in %s", perr.message or tostring(perr), final) end
    return 0
  end)
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

local function load_baseline(results)
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

local function summary_csv(records, baseline_p50)
  local lines = { format.TABLE_HEADER }
  for _, t in ipairs(records) do lines[#lines + 1] = format.table_row(t, baseline_p50) end
  return table.concat(lines, "\n") .. "\n"
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

local function best_command(resolved)
  local lines = { "#!/bin/sh", "# The best configuration found by knobengine; every argument is shell-quoted.", "set -e" }
  local keys = {}
  for k in pairs(resolved.env) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do lines[#lines + 1] = "export " .. k .. "=" .. util.shell_quote(resolved.env[k]) end
  lines[#lines + 1] = "exec " .. util.shell_join(resolved.argv) .. ' "$@"'
  return table.concat(lines, "\n") .. "\n"
end

-- The directory names of a search run: its final place (unique) and where it is built.
local function run_dirs(results)
  local search_root = results .. "/search"
  util.mkdir(search_root)
  local stamp = os.date("!%Y%m%dT%H%M%SZ")
  local final = search_root .. "/" .. stamp
  local suffix = 1
  while knob.exists(final) do suffix = suffix + 1; final = string.format("%s/%s-%d", search_root, stamp, suffix) end
  local aside = string.format("%s/.run.tmp.%d", search_root, knob.getpid())
  knob.remove_tree(aside)
  return { root = search_root, final = final, aside = aside }
end

-- The report of the run being built (report.md, report.html, plots/). A report that
-- cannot be written is said on stderr and never fails the search.
local function write_report(dirs)
  local ok, err = pcall(require("knobengine.report").write, dirs.aside, dirs.final)
  if not ok and errors.stops_run(err) then error(err, 0) end
  if ok then
    say("report: %s/report.html (and report.md)", dirs.final)
  else
    say("the report could not be written (%s); run knobengine report %s to try again",
      type(err) == "table" and (err.message or "?") or tostring(err), dirs.final)
  end
end

-- Moves the built run into place and points latest at it.
local function publish(dirs)
  local ok, err = os.rename(dirs.aside, dirs.final)
  if not ok then errors.run("cannot move the search results into place: %s", err) end
  local okl, lerr = knob.symlink(dirs.final:match("[^/]+$"), dirs.root .. "/latest")
  if not okl then say("%s", lerr) end
end

-- A capacity search as one trial of a search (search:capacity): its row shows the
-- probe at the highest rate that held, its metrics carry max_rate.
local function capacity_trial(ctx, mask, opts)
  local started = knob.now()
  local result = require("knobengine.load").capacity(ctx, mask, { quiet = true, dir = opts.dir })
  return record.capacity(result, {
    mask = mask, mask_string = result.knob_mask, requests = opts.requests, full = true, config = result.config,
    dir = opts.dir, wall_s = knob.now() - started, max_error_rate = 1,
  })
end

local Source = {}
Source.__index = Source

-- A completed trial of the interrupted run at this index, when the strategy asks for
-- the same again; the first difference ends the replay.
function Source:reuse(index, mask, requests, kind)
  local cached = self.replay[index + 1]
  if cached and cached.mask == mask and cached.requests == requests and cached.kind == kind then
    return record.from_stored(cached)
  end
  self.replay = {} -- the strategy went another way: nothing further can be reused
end

function Source:job(index, mask, requests)
  local cfg = self.ctx.cfg
  local mask_string = cfg.space:string(mask)
  return { index = index, mask = mask, requests = requests,
    dir = string.format("%s/trials/%03d-%s", self.dirs.aside, index, mask_string),
    say = function(where)
      progress.say("[trial %d] mask %s%s%s ...", index, mask_string,
        requests < cfg.workload.request_count and string.format(" (%d requests)", requests) or "", where or "")
    end }
end

function Source:interrupted(j, err)
  local run = self.run
  pcall(run.history.mark_trial_interrupted, run.history, run.id, run.hash, j.index,
    self.ctx.cfg.space:string(j.mask), j.requests)
  error(err, 0)
end

-- Runs masks[1..] as trials first, first+1, ... on the executor; emit(rec) in order.
function Source:run_batch(first, masks, requests, emit)
  local jobs = {}
  for k, mask in ipairs(masks) do
    local cached = #jobs == 0 and self:reuse(first + k - 1, mask, requests, nil)
    if cached then emit(cached) else jobs[#jobs + 1] = self:job(first + k - 1, mask, requests) end
  end
  if #jobs == 0 then return end
  local pending = 1
  local ok, err = xpcall(self.executor.run, errors.handler, self.executor, jobs, function(_, rec)
    pending = pending + 1
    emit(rec)
  end)
  if not ok then self:interrupted(jobs[math.min(pending, #jobs)], err) end
end

function Source:run_trial(index, mask, requests, kind)
  local cached = self:reuse(index, mask, requests, kind)
  if cached then return cached end
  if self.executor and kind == nil then
    local out
    self:run_batch(index, { mask }, requests, function(rec) out = rec end)
    return out
  end
  local j = self:job(index, mask, requests)
  j.say()
  local run_one = kind == "capacity" and capacity_trial or trial.run
  local ok, rec = xpcall(run_one, errors.handler, self.ctx, mask, { dir = j.dir, requests = requests })
  if not ok then self:interrupted(j, rec) end
  return rec
end

function Source:on_trial(t)
  local run = self.run
  -- stored before it is printed: a row on stdout is always a trial a resume keeps
  if not t.resumed then run.history:record(run.id, run.hash, t, record.stored(t)) end
  out(format.table_row(t, run.base_p50))
  if not t.valid then say("trial %d (mask %s) is invalid: %s", t.trial, t.mask_string, t.error or "?") end
end

-- The search's view of history: completed trials of an interrupted run are replayed
-- in order, anything new is run and stored before its row is printed. With an
-- executor, workload trials run in trial processes on its slots or jobs (executor.lua),
-- a batch (search:evaluate_many) at once; capacity trials always run here.
local function trial_source(ctx, run, dirs)
  local s = setmetatable({ ctx = ctx, run = run, dirs = dirs, replay = run.replay }, Source)
  s.executor = ctx.slots and Executor.new(ctx, ctx.slots, run.work_dir, { history = run.history, run_id = run.id })
  return {
    run_batch = s.executor and function(...) return s:run_batch(...) end,
    run_trial = function(...) return s:run_trial(...) end,
    on_trial = function(t) return s:on_trial(t) end,
  }
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
  for i, t in ipairs(records) do summary.trials[i] = record.summary_entry(t) end
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

-- Profiles the best, writes its files into the run and moves the run into place. The
-- best's client metrics stay those of its sweep trial (unprofiled, like the baseline's).
local function finish_with_best(ctx, dirs, best, summary)
  local cfg = ctx.cfg
  local dir = dirs.aside .. "/best"
  util.mkdir(dir)
  util.write_json(dir .. "/config.json", best.config)
  util.write_json(dir .. "/client_metrics.json", record.client_metrics(best))
  copy_sweep_files(best, dir)
  local prof = profile(ctx, best.mask, dir, "best")
  if prof.ran and not prof.valid then say("the profiled re-run of the best failed: %s", prof.error or "invalid") end
  summary.profiling_overhead.best = write_profile(cfg, best, prof, "best")
  summary.best_profiled = { ok = prof.ok or false, valid = prof.valid or false, error = prof.error or cjson.null,
    metrics = prof.metrics }
  util.write_json(dirs.aside .. "/summary.json", summary)
  local resolved = knobs.resolve(cfg, best.mask)
  util.write_json(dirs.aside .. "/best_config.json", record.best_config(best, resolved))
  util.write(dirs.aside .. "/best_command.sh", best_command(resolved), 493) -- 0755
  write_report(dirs)
  publish(dirs)
  return prof
end

local function print_best(cfg, baseline, best, prof)
  local base_p50 = baseline.metrics.p50_latency_ms
  out(format.best_line(best, base_p50))
  local lines = format.best_vs_baseline(
    { metrics = baseline.metrics, trace = baseline.trace, phases = baseline.phases },
    { metrics = best.metrics, trace = prof.trace, phases = prof.phases },
    cfg.nsys.phases)
  for _, l in ipairs(lines) do out(l) end
end

-- Says, at the start of a search, that the baseline has no trace and how to take it.
local function say_if_no_trace(baseline)
  local t = baseline.trace
  if t.ok ~= false then return end
  say("the baseline in %s has no trace (%s): its trace figures print na. Take only its trace again with "
    .. "--reprofile-baseline (one profiled launch; its client metrics are kept)", baseline.dir, tostring(t.reason or "?"))
end

-- Files of a profiled launch in a baseline directory; --reprofile-baseline replaces
-- these and keeps every other file (the plain run's metrics, requests, log, provenance).
local PROFILE_FILES = { ["trace.nsys-rep"] = true, ["trace.sqlite"] = true, ["trace_summary.json"] = true,
  ["nvtx_phases.json"] = true, ["kernels.csv"] = true, ["nvtx.csv"] = true, ["profiling_overhead.json"] = true }

-- A copy of the baseline directory without its profile files, in aside.
local function copy_unprofiled(dir, aside)
  util.mkdir(aside)
  for _, name in ipairs(knob.list_dir(dir) or {}) do
    if not PROFILE_FILES[name] and not name:match("^profiled_") and not knob.is_dir(dir .. "/" .. name) then
      local text, err = util.read_file(dir .. "/" .. name)
      if not text then errors.run("cannot copy %s/%s: %s", dir, name, tostring(err)) end
      util.write(aside .. "/" .. name, text)
    end
  end
end

-- Replaces dir by aside (the old directory goes aside first, then away).
local function swap_in(aside, dir)
  local old = string.format("%s.old.%d", dir, knob.getpid())
  local ok, err = os.rename(dir, old)
  if ok then ok, err = os.rename(aside, dir) end
  if not ok then
    if knob.exists(old) and not knob.exists(dir) then os.rename(old, dir) end
    errors.run("cannot move the new profile into %s: %s", dir, tostring(err))
  end
  knob.remove_tree(old)
end

-- --reprofile-baseline: the baseline's profiled launch again, for its trace only. Its
-- client metrics (the reference of every comparison) are kept; the directory changes
-- only when the new profile has a trace.
function M.reprofile_baseline(ctx)
  local baseline = load_baseline(ctx.results)
  M.check_identity(ctx, baseline)
  local aside = string.format("%s/.baseline.tmp.%d", ctx.results, knob.getpid())
  knob.remove_tree(aside)
  return with_aside(aside, function()
    copy_unprofiled(baseline.dir, aside)
    local prof = profile(ctx, 0, aside, "baseline")
    if not (prof.trace and prof.trace.ok) then
      errors.run("the baseline's profiled launch has no trace again (%s); %s is unchanged",
        tostring(prof.profile_error or (prof.trace and prof.trace.reason) or prof.error or "?"), baseline.dir)
    end
    local wall = type(baseline.overhead) == "table" and baseline.overhead.unprofiled_wall_s or nil
    write_profile(ctx.cfg, { metrics = baseline.metrics, wall_s = type(wall) == "number" and wall or nil }, prof,
      "baseline")
    swap_in(aside, baseline.dir)
    out("BASELINE_DONE")
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
  local hash = History.config_hash(ctx.cfg, ctx.dataset_hash)
  local note = history:retire_older_unfinished(ctx.strategy_path)
  local id, replay = history:begin(hash, ctx.strategy_path)
  if #replay > 0 then
    say("resuming the interrupted search (run %d): reusing %d completed trial(s)", id, #replay)
  elseif note then
    say("%s", note)
  end
  -- where executor trials keep specs and logs: slurm jobs outlive a killed engine, so
  -- theirs are found again by run id; local ones go with the run's aside directory
  local work_dir = ctx.cfg.executor and ctx.cfg.executor.type == "slurm"
    and string.format("%s/.slurm/run-%d", ctx.results, id) or nil
  return { history = history, hash = hash, id = id, replay = replay, base_p50 = baseline.metrics.p50_latency_ms,
    work_dir = work_dir }
end

-- The search proper, inside the run's aside directory.
local function search_body(ctx, baseline, dirs, run)
  local cfg = ctx.cfg
  run.work_dir = run.work_dir or (dirs.aside .. "/.slots")
  util.mkdir(dirs.aside .. "/trials")
  out(format.TABLE_HEADER)
  local source = trial_source(ctx, run, dirs)
  local records = {}
  local search = Search.new({ cfg = cfg, baseline = baseline.metrics, history = run.history, options = ctx.options,
    run_trial = source.run_trial, run_batch = source.run_batch, on_trial = source.on_trial }, records)
  run_strategy(ctx.strategy, search, run)
  knob.remove_tree(run.work_dir) -- the trial processes' specs and logs
  os.remove(ctx.results .. "/.slurm") -- only when no other run's jobs are in it
  if #records == 0 then
    run.history:finish(run.id, "failed")
    errors.run("the strategy evaluated no combination (%s)", ctx.strategy_path)
  end
  local best = objective.choose(records, cfg.objective)
  local summary = summary_of(ctx, ctx.strategy, baseline, records, best)
  util.write(dirs.aside .. "/summary.csv", summary_csv(records, run.base_p50))
  provenance.write(dirs.aside, ctx)
  if not best then
    util.write_json(dirs.aside .. "/summary.json", summary)
    write_report(dirs)
    publish(dirs)
    run.history:finish(run.id, "complete", dirs.final)
    errors.run("no valid trial: every combination failed or exceeded constraints.max_error_rate (%s); see %s/summary.json",
      cfg.constraints.max_error_rate, dirs.final)
  end
  warn_if_within_noise(records, best, cfg.objective)
  local prof = finish_with_best(ctx, dirs, best, summary)
  run.history:finish(run.id, "complete", dirs.final)
  print_best(cfg, baseline, best, prof)
  return 0
end

function M.search(ctx)
  local baseline = load_baseline(ctx.results)
  M.check_identity(ctx, baseline)
  check_space(ctx, baseline)
  local dirs = run_dirs(ctx.results)
  local run = begin_run(ctx, baseline)
  say_if_no_trace(baseline)
  return with_aside(dirs.aside, function()
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
