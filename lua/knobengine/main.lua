-- Entry point: parses the command line (args.lua) and runs the command: baseline or
-- search, capacity, load-sweep, profile, report, compare, trial, summarize, kernels, ncu.
-- Returns the exit code: 0 done, 1 run failed, 2 bad usage or config, 128+N signal.
local cjson = require("cjson")
local knob = require("knob")
local args_ = require("knobengine.args")
local config = require("knobengine.config")
local knobs = require("knobengine.knobs")
local errors = require("knobengine.errors")
local rundir = require("knobengine.rundir")
local strategy = require("knobengine.strategy")
local trace = require("knobengine.trace")
local util = require("knobengine.util")

local M = {}

local function dry_run(ctx)
  local cfg = ctx.cfg
  local n = #cfg.knobs
  local function show(label, mask)
    local r = knobs.resolve(cfg, mask)
    io.stderr:write(string.format("%s (knob_mask %s):\n  argv: %s\n", label, r.mask_string, util.shell_join(r.argv)))
    local keys = {}
    for k in pairs(r.env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do io.stderr:write(string.format("  env:  %s=%s\n", k, util.shell_quote(r.env[k]))) end
  end
  show("baseline", 0)
  show(cfg.space.boolean and "all knobs on" or "every knob at its last value", cfg.space:last())
  io.stderr:write(string.format("%d knobs, %d combinations; dataset %s\n", n, cfg.space.size, cfg.workload.dataset_path))
  local why = require("knobengine.trial").nsys_unavailable(cfg) or select(2, knob.nsys_check_importer(cfg.nsys.bin))
  io.stderr:write(why and string.format("nsys: %s; profiled launches will be skipped (trace metrics na)\n", why)
    or string.format("nsys: %s\n", util.which(cfg.nsys.bin)))
  if cfg.ncu then
    local nwhy = require("knobengine.ncu").unavailable(cfg)
    io.stderr:write(nwhy and string.format("ncu: %s; the ncu passes will be skipped\n", nwhy)
      or string.format("ncu: %s (the top %d kernels of each profiled side)\n", util.which(cfg.ncu.bin), cfg.ncu.kernels))
  end
  for i, slot in ipairs(ctx.slots or {}) do
    local env = {}
    for k, v in pairs(slot.env) do env[#env + 1] = k .. "=" .. util.shell_quote(v) end
    table.sort(env)
    io.stderr:write(string.format("slot %d: port %d%s\n", i - 1, slot.port, #env > 0 and (", " .. table.concat(env, " ")) or ""))
  end
  local st = ctx.strategy
  if st.exhaustive and cfg.space.size > strategy.EXHAUSTIVE_LIMIT then
    io.stderr:write(string.format("note: strategy %s tries all %d combinations, more than %d: a search will refuse to "
      .. "start without --force\n", st.name or ctx.strategy_path, cfg.space.size, strategy.EXHAUSTIVE_LIMIT))
  end
end

-- The server program must exist and be executable (found on PATH without a slash).
local function check_program(cfg)
  local prog = cfg.serve_cmd[1]
  local found = util.which(prog)
  if not found then
    errors.usage("serve_cmd[0]: '%s' %s", prog, prog:find("/", 1, true) and "does not exist" or "is not on PATH")
  end
  if knob.is_dir(found) or not knob.executable(found) then errors.usage("serve_cmd[0]: '%s' is not executable", found) end
end

-- The results path: not longer than the system allows, every name within NAME_MAX, and
-- results/baseline a directory if it exists.
local function check_results_path(results)
  local absolute = results:sub(1, 1) == "/" and results or (os.getenv("PWD") or ".") .. "/" .. results
  if #absolute > 3800 then errors.usage("--results: the path is %d bytes long; at most 3800 are supported", #absolute) end
  for name in results:gmatch("[^/]+") do
    if #name > 255 then errors.usage("--results: the name '%s...' is longer than 255 bytes", name:sub(1, 40)) end
  end
  local base = results .. "/baseline"
  if knob.exists(base) and not knob.is_dir(base) then
    errors.usage("--results %s: '%s' exists and is not a directory (move it aside)", results, base)
  end
end

-- Checks, before anything starts, that results can be written (the nearest existing
-- directory takes a 64 KiB probe file, so a read-only or full disk is caught). Creates
-- nothing: a problem is a usage error.
local function preflight(cfg, results)
  check_results_path(results)
  check_program(cfg)
  local dir = results
  while not knob.exists(dir) do
    local parent = util.dirname(dir)
    if parent == dir then break end
    dir = parent
  end
  if not knob.is_dir(dir) then errors.usage("--results %s: '%s' is not a directory", results, dir) end
  local probe = string.format("%s/.knobengine-probe.%d", dir, knob.getpid())
  local ok, err = knob.write_atomic(probe, string.rep("\0", 65536))
  os.remove(probe)
  if not ok then errors.usage("--results %s: cannot write there: %s", results, (err:gsub("^cannot write '[^']*': ", ""))) end
end

-- The server's port, and the executor's slot ports on this machine, must be free
-- (checked once this run owns the results directory, so a second run is told about the
-- first one, not about its server). A Slurm job's port is on its compute node: not
-- checked here.
local function check_port(cfg, slots)
  local ports = { { "server.port", cfg.server.port } }
  local local_slots = require("knobengine.executor").local_slots(cfg, slots)
  for i, slot in ipairs(local_slots) do
    ports[#ports + 1] = { string.format("executor slot %d", i - 1), slot.port }
  end
  for _, p in ipairs(ports) do
    local in_use, perr = knob.port_in_use(cfg.server.host, p[2])
    if in_use == nil then errors.usage("server.host: %s", perr) end
    if in_use then
      errors.usage("%s: %s:%d is already in use (is a server still running?)", p[1], cfg.server.host, p[2])
    end
  end
end

-- summarize and kernels: the summary of one export, as JSON or as the kernel table.
local function trace_command(command, path)
  if not knob.exists(path) then errors.usage("%s: '%s' not found", command, path) end
  local phases = { "get_batch", "prefill", "decode" }
  local summary, err = trace.read(path, phases, nil, command == "kernels" and "all" or nil)
  if not summary then errors.run("%s: %s", command, err) end
  if command == "kernels" then -- the table is the kernels: one that cannot be read is no empty list
    for _, t in ipairs({ "CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_GRAPH_TRACE" }) do
      local why = type(summary.unreadable) == "table" and summary.unreadable[t]
      if why and not why:find("^skipped") then errors.run("kernels: %s of %s cannot be read (%s)", t, path, why) end
      if why then io.stderr:write("knobengine: kernels: ", t, ": ", util.clean_text(why), "\n") end
    end
  end
  local text = command == "kernels" and require("knobengine.tables").kernels_csv(summary) or trace.json(summary, phases)
  local ok, werr = io.stdout:write(text)
  if ok then ok, werr = io.stdout:flush() end
  if not ok then errors.run("%s: cannot write to stdout (%s)", command, tostring(werr)) end
  return 0
end

-- knobengine ncu REPORT: every profiled launch of an Nsight Compute report as CSV
-- (docs/ncu.md); the ncu on PATH reads it.
local function ncu_command(path)
  if not knob.exists(path) then errors.run("ncu: '%s' not found", path) end
  if knob.is_dir(path) then errors.run("ncu: '%s' is a directory, not a report", path) end
  if not util.which("ncu") then
    errors.run("ncu: Nsight Compute's ncu is not on PATH, and it reads the report; install it "
      .. "(scripts/install-deps.sh --ncu) or put its directory on PATH")
  end
  local ncu_report = require("knobengine.ncu_report")
  local launches, err = ncu_report.read("ncu", path, 600)
  if not launches then errors.run("ncu: cannot read '%s': %s", path, err) end
  local ok, werr = io.stdout:write(ncu_report.csv(launches, require("knobengine.format").line_field))
  if ok then ok, werr = io.stdout:flush() end
  if not ok then errors.run("ncu: cannot write to stdout (%s)", tostring(werr)) end
  return 0
end

-- The run context of the command's config (run_context.lua); profile's config needs
-- no knobs.
local function context(opts)
  local cfg = config.load(opts.config, { knobs_optional = opts.command == "profile" })
  return require("knobengine.run_context").of(cfg, opts)
end

-- Pre-flight, then this process owns the results directory. A second run on the same
-- results is told about the first; a results directory that does not exist yet is
-- only created once the port is known to be free.
local function take_results(cfg, results, slots)
  preflight(cfg, results)
  if knob.is_dir(results) then
    rundir.own(results)
    check_port(cfg, slots)
  else
    check_port(cfg, slots)
    rundir.own(results)
  end
end

-- The mask of --mask (a mask string of N characters, or an integer), --best (the
-- latest search's best), or all knobs off.
local function chosen_mask(cfg, opts)
  if opts.best then
    local path = opts.results .. "/search/latest/best_config.json"
    local text = util.read_file(path)
    local ok, best = pcall(cjson.decode, text or "")
    if not text or not ok or type(best) ~= "table" or type(best.knob_mask) ~= "string" then
      errors.usage("--best: no best configuration in %s (run a search first)", path)
    end
    opts.mask = best.knob_mask
  end
  if not opts.mask then return 0 end
  local m, why = cfg.space:parse(opts.mask)
  if not m then errors.usage("%s: '%s': %s", opts.best and "--best" or "--mask", opts.mask, why) end
  return m
end

-- A level lasts workload.request_count / rate: at most config.MAX_PROBE_S.
local function check_rates(cfg, rates)
  for _, r in ipairs(rates or {}) do
    local s = cfg.workload.request_count / r
    if s > config.MAX_PROBE_S then
      errors.usage("--rates: a level of %d requests at %s requests/s would last %.0f s; at most %d s (raise the rate)",
        cfg.workload.request_count, tostring(r), s, config.MAX_PROBE_S)
    end
  end
end

-- capacity and load-sweep: one server, several measured phases.
local function load_command(ctx, opts)
  local cfg = ctx.cfg
  local mask = chosen_mask(cfg, opts)
  if opts.grid then
    take_results(cfg, opts.results, ctx.slots)
    return require("knobengine.grid").run(ctx, opts)
  end
  if opts.command == "capacity" and not cfg.slo then errors.usage("capacity needs an slo in the config") end
  check_rates(cfg, opts.rates)
  take_results(cfg, opts.results)
  local load = require("knobengine.load")
  if opts.command == "capacity" then
    load.capacity(ctx, mask)
    return 0
  end
  local levels = {}
  if opts.probes then levels = require("knobengine.probes").levels(cfg, opts.probes) end
  for i, v in ipairs(opts.rates or opts.concurrency or {}) do
    levels[i] = opts.rates and { rate = v, arrival = cfg.capacity.arrival } or { concurrency = v }
  end
  return (load.sweep(ctx, mask, levels, { experiment_id = opts.experiment_id }))
end

-- knobengine report [RUN_DIR]: (re)writes the report of a search run.
local function report_command(opts)
  local dir = opts.run_dir or (opts.results .. "/search/latest")
  if not knob.is_dir(dir) then
    errors.usage("report: %s is not a directory%s", dir, opts.run_dir and "" or " (run a search first, or name a run directory)")
  end
  local md, html = require("knobengine.report").write(dir)
  io.stdout:write(md, "\n", html, "\n")
  return 0
end

local function run(argv)
  local opts = args_.parse(argv)
  if opts.command == "summarize" or opts.command == "kernels" then return trace_command(opts.command, opts.trace) end
  if opts.command == "ncu" then return ncu_command(opts.report) end
  if opts.help then io.stdout:write(args_.usage()); return 0 end
  if opts.version then io.stdout:write("knobengine ", knob.version, "\n"); return 0 end
  if opts.command == "report" then return report_command(opts) end
  if opts.command == "trial" then
    return require("knobengine.trial_unit").run(opts, function(path)
      return context({ command = "trial", config = path, results = opts.results })
    end)
  end
  if opts.command == "compare" then
    local ctx = opts.synthetic and { results = opts.results } or context(opts)
    return require("knobengine.comparison").run(ctx, opts)
  end
  local ctx = context(opts)
  if opts.dry_run then
    check_program(ctx.cfg)
    dry_run(ctx)
    return 0
  end
  if opts.command == "validate" then
    take_results(ctx.cfg, opts.results)
    return require("knobengine.validate").run(ctx, opts)
  end
  if opts.command == "calibrate" then
    local mask = chosen_mask(ctx.cfg, opts)
    return require("knobengine.calibrate").run(ctx, mask, opts, function(rates)
      if not rates then -- no sweep runs: the results directory only
        util.mkdir(opts.results)
        return rundir.own(opts.results)
      end
      check_rates(ctx.cfg, rates)
      take_results(ctx.cfg, opts.results)
    end)
  end
  if opts.command == "profile" then
    local mask = chosen_mask(ctx.cfg, opts)
    take_results(ctx.cfg, opts.results)
    return require("knobengine.profile_config").run(ctx, mask)
  end
  if opts.command ~= "run" then return load_command(ctx, opts) end
  if opts.reprofile_baseline and not knob.is_dir(opts.results .. "/baseline") then
    errors.usage("--reprofile-baseline: %s/baseline does not exist (run without it first)", opts.results)
  end
  take_results(ctx.cfg, opts.results, ctx.slots)
  local baseline = require("knobengine.baseline")
  if opts.reprofile_baseline then return baseline.reprofile(ctx) end
  if opts.rebaseline or not knob.is_dir(opts.results .. "/baseline") then return baseline.run(ctx, opts.rebaseline) end
  return require("knobengine.runner").search(ctx)
end

-- Runs the command line; returns the exit code. Every error ends here: typed ones with
-- their own code, anything else as exit 1 (with its traceback under KNOBENGINE_DEBUG=1).
-- What a run stopped from outside (Ctrl-C, stdout gone, a full disk) says it did on
-- its way out. report and compare start no server and keep their previous output.
local function stopped_tail(result, command)
  if command == "report" or command == "compare" then return "; the previous output is kept.\n" end
  return "; servers stopped, nothing partial was kept. "
    .. (result.kind == "storage" and "Free space there (or make it writable), then run" or "Run")
    .. (result.resumable and " the same command again to resume (finished trials are kept).\n"
      or " the same command again to start over.\n")
end

function M.main(args)
  local ok, result = xpcall(run, errors.handler, args)
  if ok then return result end
  -- a message may quote a server's log, a key or a path: no control character reaches
  -- the terminal, and a usage error stays one line
  local message = util.clean_text(result.message, result.kind ~= "usage")
  if errors.stops_run(result) then
    io.stderr:write("knobengine: ", message, stopped_tail(result, args[1]))
  else
    io.stderr:write("knobengine: ", message, "\n")
  end
  if result.traceback and errors.debug_enabled() then io.stderr:write(result.traceback, "\n") end
  return result.code
end

return M
