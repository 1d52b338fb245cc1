-- Entry point: parses the command line and runs baseline, search or summarize.
-- Returns the exit code: 0 done, 1 run failed, 2 bad usage or config, 128+N signal.
local knob = require("knob")
local config = require("knobengine.config")
local dataset = require("knobengine.dataset")
local errors = require("knobengine.errors")
local trace = require("knobengine.trace")
local util = require("knobengine.util")

local M = {}

M.USAGE = [[
usage: knobengine [--config FILE] [--strategy FILE] [--results DIR] [--dry-run]
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
  --dry-run         validate config and dataset, print the resolved server
                    commands to stderr, and exit without touching anything
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
    elseif name == "--config" then opts.config = value(name, inline)
    elseif name == "--strategy" then opts.strategy = value(name, inline)
    elseif name == "--results" then opts.results = value(name, inline)
    else errors.usage("unknown argument '%s' (see --help)", a) end
    i = i + 1
  end
  return opts
end

-- A strategy named without a path ("halving") is looked up among the bundled ones.
local function strategy_path(name)
  if name == nil then return knob.root .. "/strategies/bruteforce.lua" end
  if not name:find("/", 1, true) and not knob.exists(name) then
    local bundled = knob.root .. "/strategies/" .. name:gsub("%.lua$", "") .. ".lua"
    if knob.exists(bundled) then return bundled end
  end
  if not knob.exists(name) then errors.usage("strategy file '%s' not found", name) end
  return name
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

-- Checks, before anything starts, that results can be written (the nearest existing
-- directory takes a 64 KiB probe file, so a read-only or full disk is caught) and that
-- the server's port is free. Creates nothing: a problem is a usage error.
local function preflight(cfg, results)
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
  local in_use, perr = knob.port_in_use(cfg.server.host, cfg.server.port)
  if in_use == nil then errors.usage("server.host: %s", perr) end
  if in_use then
    errors.usage("server.port: %s:%d is already in use (is a server still running?)", cfg.server.host, cfg.server.port)
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
  local items, dataset_text = dataset.load(cfg.workload.dataset_path)
  local ctx = {
    cfg = cfg,
    dataset_text = dataset_text,
    bodies = dataset.bodies(items, cfg.workload),
    results = opts.results,
    strategy_path = strategy_path(opts.strategy),
  }
  if opts.dry_run then dry_run(cfg); return 0 end
  preflight(cfg, opts.results)
  local runner = require("knobengine.runner")
  if knob.is_dir(opts.results .. "/baseline") then return runner.search(ctx) end
  return runner.baseline(ctx)
end

-- Runs the command line; returns the exit code. Every error ends here: typed ones with
-- their own code, anything else as exit 1 (with its traceback under KNOBENGINE_DEBUG=1).
function M.main(args)
  local ok, result = xpcall(run, errors.handler, args)
  if ok then return result end
  if result.kind == "interrupted" then
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
