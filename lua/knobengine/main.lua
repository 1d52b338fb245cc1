-- Entry point: parses the command line and runs baseline, search or summarize.
-- Returns the exit code: 0 done, 1 run failed, 2 bad usage or config, 128+N signal.
local knob = require("knob")
local config = require("knobengine.config")
local dataset = require("knobengine.dataset")
local errors = require("knobengine.errors")
local schedule = require("knobengine.schedule")
local strategy = require("knobengine.strategy")
local trace = require("knobengine.trace")
local util = require("knobengine.util")

local M = {}

M.USAGE = [[
usage: knobengine [--config FILE] [--strategy FILE] [--results DIR] [--dry-run]
                  [--rebaseline]
       knobengine summarize TRACE.sqlite
       knobengine --help | --version

Finds the fastest combination of serving knobs for an LLM server.
First run (no RESULTS/baseline/): profiles the server with no knobs and prints
BASELINE_DONE. Later runs: evaluate knob combinations with the strategy, print the
results table, profile the best and compare it with the baseline.

options:
  --config FILE     the optimization config (default: optimizations.json)
  --strategy FILE   a Lua search strategy (default: strategies/bruteforce.lua;
                    bundled: bruteforce, halving, coord_descent)
  --results DIR     where results go (default: results)
  --dry-run         validate config, dataset, strategy and server program, print
                    the resolved server commands to stderr, touch nothing
  --rebaseline      measure the baseline again (the old one is kept as
                    baseline.replaced-<time>), e.g. after changing the workload
  --help            show this help
  --version         show the version

exit codes: 0 done, 1 run failed, 2 bad usage or config, 130/143 interrupted
]]

local function parse_args(args)
  local opts = { config = "optimizations.json", results = "results" }
  local i = 1
  local function value(name, inline)
    if inline then return inline end
    i = i + 1
    if args[i] == nil then errors.usage("%s needs a value (see --help)", name) end
    return args[i]
  end
  if args[1] == "summarize" then
    if #args ~= 2 then errors.usage("usage: knobengine summarize TRACE.sqlite") end
    return { summarize = args[2] }
  end
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    if name == "--help" or name == "-h" then opts.help = true
    elseif name == "--version" then opts.version = true
    elseif name == "--dry-run" then opts.dry_run = true
    elseif name == "--rebaseline" then opts.rebaseline = true
    elseif name == "--config" then opts.config = value(name, inline)
    elseif name == "--strategy" then opts.strategy = value(name, inline)
    elseif name == "--results" then opts.results = value(name, inline)
    else errors.usage("unknown argument '%s' (see --help)", a) end
    i = i + 1
  end
  return opts
end

local function dry_run(cfg)
  local n = #cfg.knobs
  local function show(label, mask)
    local r = config.resolve(cfg, mask)
    io.stderr:write(string.format("%s (knob_mask %s):\n  argv: %s\n", label, r.mask_string, util.shell_join(r.argv)))
    local keys = {}
    for k in pairs(r.env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do io.stderr:write(string.format("  env:  %s=%s\n", k, util.shell_quote(r.env[k]))) end
  end
  show("baseline", 0)
  show("all knobs on", (1 << n) - 1)
  io.stderr:write(string.format("%d knobs, %d combinations; dataset %s\n", n, 1 << n, cfg.workload.dataset_path))
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

-- The server's port must be free (checked once this run owns the results directory,
-- so a second run is told about the first one, not about its server).
local function check_port(cfg)
  local in_use, perr = knob.port_in_use(cfg.server.host, cfg.server.port)
  if in_use == nil then errors.usage("server.host: %s", perr) end
  if in_use then
    errors.usage("server.port: %s:%d is already in use (is a server still running?)", cfg.server.host, cfg.server.port)
  end
end

-- One knobengine per results directory: an exclusive lock for the whole run, and the
-- aside directories of runs that died without cleaning up are removed.
local function own_results(results)
  util.mkdir(results)
  local ok, why, holder = knob.lock_dir(results)
  if not ok and why == "busy" then
    errors.usage("--results %s is in use by another knobengine (PID %s); wait for it to finish or use another --results",
      results, holder > 0 and tostring(holder) or "unknown")
  end
  if not ok then errors.usage("--results %s: %s", results, why) end
  for _, parent in ipairs({ results, results .. "/search" }) do
    for _, name in ipairs(knob.list_dir(parent) or {}) do
      local pid = name:match("^%.baseline%.tmp%.(%d+)$") or name:match("^%.run%.tmp%.(%d+)$")
      if pid and tonumber(pid) ~= knob.getpid() then knob.remove_tree(parent .. "/" .. name) end
    end
  end
end

local function summarize(path)
  if not knob.exists(path) then errors.usage("summarize: '%s' not found", path) end
  local phases = { "get_batch", "prefill", "decode" }
  local summary, err = trace.read(path, phases)
  if not summary then errors.run("summarize: %s", err) end
  io.stdout:write(trace.json(summary, phases))
  return 0
end

local function run(args)
  local opts = parse_args(args)
  if opts.summarize then return summarize(opts.summarize) end
  if opts.help then io.stdout:write(M.USAGE); return 0 end
  if opts.version then io.stdout:write("knobengine ", knob.version, "\n"); return 0 end
  local cfg = config.load(opts.config)
  local w = cfg.workload
  local data = dataset.load(w, math.max(w.request_count, w.warmup_requests))
  local ctx = {
    cfg = cfg,
    dataset_hash = data.hash,
    dataset_count = data.count,
    bodies = dataset.bodies(data.items, w),
    schedule = schedule.draw(w.arrival, w.request_count, w.seed, data.items),
    results = opts.results,
    strategy_path = strategy.path(opts.strategy),
  }
  ctx.strategy = strategy.load(ctx.strategy_path)
  ctx.options = strategy.options(ctx.strategy, cfg.strategy_options, cfg)
  if opts.dry_run then
    check_program(cfg)
    dry_run(cfg)
    return 0
  end
  preflight(cfg, opts.results)
  -- a second run on the same results is told about the first; a results directory that
  -- does not exist yet is only created once the port is known to be free
  if knob.is_dir(opts.results) then
    own_results(opts.results)
    check_port(cfg)
  else
    check_port(cfg)
    own_results(opts.results)
  end
  local runner = require("knobengine.runner")
  if opts.rebaseline or not knob.is_dir(opts.results .. "/baseline") then return runner.baseline(ctx, opts.rebaseline) end
  return runner.search(ctx)
end

-- Runs the command line; returns the exit code. Every error ends here: typed ones with
-- their own code, anything else as exit 1 (with its traceback under KNOBENGINE_DEBUG=1).
function M.main(args)
  local ok, result = xpcall(run, errors.handler, args)
  if ok then return result end
  if result.kind == "interrupted" or result.kind == "output" then
    io.stderr:write("knobengine: ", result.message, "; servers stopped, nothing partial was kept. ",
      result.resumable and "Run the same command again to resume (finished trials are kept).\n"
        or "Run the same command again to start over.\n")
  else
    io.stderr:write("knobengine: ", result.message, "\n")
  end
  if result.traceback and errors.debug_enabled() then io.stderr:write(result.traceback, "\n") end
  return result.code
end

return M
