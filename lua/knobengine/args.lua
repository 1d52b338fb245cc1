-- The command line: the usage text and parsing into {command, options}. Every mistake
-- is a usage error (exit 2) naming the argument.
local errors = require("knobengine.errors")

local M = {}

M.USAGE = [[
usage: knobengine [--config FILE] [--strategy FILE] [--results DIR] [--dry-run]
                  [--rebaseline | --reprofile-baseline] [--force]
       knobengine capacity [--mask MASK | --best] [--config FILE] [--results DIR]
       knobengine capacity --grid [--masks M,M,...] [--time-limit S] [--no-prune]
                  [--config FILE] [--results DIR]
       knobengine load-sweep (--rates R,R,... | --concurrency C,C,... | --probes IxO,...)
                  [--mask MASK | --best] [--experiment-id ID] [--config FILE]
                  [--results DIR]
       knobengine profile [--mask MASK | --best] [--config FILE] [--results DIR]
       knobengine calibrate --simulated FILE,... [--rates R,...] [--sweep DIR]
                  [--mask MASK | --best] [--config FILE] [--results DIR]
       knobengine report [RUN_DIR] [--results DIR]
       knobengine compare [--strategies S,S,...] [--seeds N] [--seed N] [--noise CV]
                  [--synthetic N | --predictions FILE] [--config FILE] [--results DIR]
       knobengine validate [--methods M,M,...] [--predictions FILE] [--config FILE]
                  [--results DIR]
       knobengine trial --spec SPEC.json --out DIR
       knobengine summarize TRACE.sqlite
       knobengine kernels TRACE.sqlite
       knobengine ncu REPORT.ncu-rep
       knobengine --help | --version

Finds the fastest combination of serving knobs for an LLM server.
First run (no RESULTS/baseline/): measures the server with no knobs and profiles it,
prints BASELINE_DONE. Later runs: evaluate knob combinations with the strategy, print
the results table, profile the best and compare it with the baseline.
capacity: the highest arrival rate at which the config's SLO holds, for one mask;
with --grid, for every mask x SLO (slos) x workload (workloads), in parallel on the
executor's slots, resuming finished cells; writes RESULTS/capacity-grid/.
load-sweep: one measured phase per rate (open loop) or concurrency, and the knee.
calibrate: compares a simulator's figures (Vidur's request_metrics.csv or the
calibration template, one file per rate) with a load sweep at the same rates (run
now, or --sweep DIR), prints the errors, the MAPE and the plan's verdicts; writes
RESULTS/calibration/.
profile: measures one config (a mask, or the server as given: the config needs no
knobs) as the baseline is measured, profiles it and writes its report into
RESULTS/profile/.
report: writes report.md and report.html (with plots) of a search or profile run
(default: the latest in RESULTS/search); every search and profile writes them at its end.
compare: replays strategies offline against the completed brute-force sweep of the
config in RESULTS/history.sqlite (or synthetic landscapes), over many seeds, and
compares their cost and accuracy; writes RESULTS/comparison/.
validate: measures each method's recorded pick (the newest search of each strategy)
at four load levels and under a sinusoidal load: predictive and optimization
accuracy; writes RESULTS/validation/.
trial: runs one trial from a spec the engine wrote (what an executor slot runs).
summarize: the trace summary of an nsys SQLite export, as JSON.
kernels: every kernel of an export as CSV, a row per kernel and device
(name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent).
ncu: every profiled launch of an Nsight Compute report as CSV (docs/ncu.md).

options:
  --config FILE     the optimization config (default: optimizations.json)
  --strategy FILE   a Lua search strategy (default: strategies/{default}.lua;
{bundled}
  --results DIR     where results go (default: results)
  --dry-run         validate config, dataset, strategy and server program, print
                    the resolved server commands to stderr, touch nothing
  --rebaseline      measure the baseline again (the old one is kept as
                    baseline.replaced-<time>), e.g. after changing the workload
  --reprofile-baseline  take the baseline's trace again (one profiled launch),
                    keeping its client metrics, e.g. after its profile failed
  --force           run an exhaustive strategy (bruteforce, halving) on more than
                    4096 combinations
  --mask MASK       the knob mask to load (default: all knobs off)
  --best            the best mask of the latest search
  --grid            capacity of every cell of masks x slos x workloads
  --masks M,...     the grid's masks (default: every mask, at most 256)
  --time-limit S    the grid starts no cell after S seconds (cells not measured
                    are said; the same command later measures only those)
  --no-prune        measure every cell of the grid, also those that cannot win
  --rates R,...     request rates (requests/s) for load-sweep and calibrate,
                    ascending
  --concurrency C,...  closed-loop concurrencies for load-sweep, ascending
  --simulated F,...  calibrate: the simulator's output per rate (*.csv per request,
                    *.json the calibration template)
  --sweep DIR       calibrate: compare with this load-sweep run instead of a new one
  --probes IxO,...  load-sweep: synthetic probes of I prompt and O output tokens at
                    concurrency 1 (the ideal TTFT; e.g. 512x128,2048x512,4096x128)
  --experiment-id ID  load-sweep: the calibration templates' id (ID-rate<r>;
                    default: the mask)
  --strategies S,...  compare: the methods (default: bruteforce, halving,
                    coord_descent, stack_rank, bayes)
  --seeds N         compare: seeds per method (default 50)
  --seed N          compare: the first seed (default 1)
  --noise CV        compare: noise as a coefficient of variation (default: from
                    the sweep's repeats)
  --synthetic N     compare on synthetic landscapes of N on/off knobs instead
  --methods M,...   validate: the methods (strategies) to measure (default: every
                    one with a complete search of the config)
  --predictions F   compare, validate: a model's predicted objective per mask (CSV knob_mask,
                    METRIC) as one more method: its best launched once
  --help            show this help
  --version         show the version

exit codes: 0 done, 1 run failed, 2 bad usage or config, 130/143 interrupted
]]

-- The usage text, with the bundled strategies as strategies/ holds them (the lines of
-- "bundled: a, b, ...)" wrapped under --strategy's text).
function M.usage()
  local strategy = require("knobengine.strategy")
  local indent = string.rep(" ", 20)
  local lines, line = {}, indent .. "bundled:"
  local names = strategy.bundled()
  for i, name in ipairs(names) do
    local word = " " .. name .. (i < #names and "," or ")")
    if #line + #word > 86 then lines[#lines + 1], line = line, indent .. word:sub(2) else line = line .. word end
  end
  lines[#lines + 1] = line
  return (M.USAGE:gsub("{(%a+)}", { default = strategy.DEFAULT, bundled = table.concat(lines, "\n") }))
end

-- Options, the commands that take them, and whether they take a value.
local OPTIONS = {
  ["--config"] = { value = true, commands = { run = 1, capacity = 1, ["load-sweep"] = 1, compare = 1, profile = 1, calibrate = 1, validate = 1 } },
  ["--results"] = { value = true, commands = { run = 1, capacity = 1, ["load-sweep"] = 1, report = 1, compare = 1, profile = 1, calibrate = 1, validate = 1 } },
  ["--strategy"] = { value = true, commands = { run = 1 } },
  ["--dry-run"] = { commands = { run = 1 } },
  ["--rebaseline"] = { commands = { run = 1 } },
  ["--reprofile-baseline"] = { commands = { run = 1 } },
  ["--force"] = { commands = { run = 1 } },
  ["--mask"] = { value = true, commands = { capacity = 1, ["load-sweep"] = 1, profile = 1, calibrate = 1 } },
  ["--best"] = { commands = { capacity = 1, ["load-sweep"] = 1, profile = 1, calibrate = 1 } },
  ["--grid"] = { commands = { capacity = 1 } },
  ["--masks"] = { value = true, commands = { capacity = 1 } },
  ["--time-limit"] = { value = true, commands = { capacity = 1 } },
  ["--no-prune"] = { commands = { capacity = 1 } },
  ["--rates"] = { value = true, commands = { ["load-sweep"] = 1, calibrate = 1 } },
  ["--simulated"] = { value = true, commands = { calibrate = 1 } },
  ["--sweep"] = { value = true, commands = { calibrate = 1 } },
  ["--concurrency"] = { value = true, commands = { ["load-sweep"] = 1 } },
  ["--experiment-id"] = { value = true, commands = { ["load-sweep"] = 1 } },
  ["--probes"] = { value = true, commands = { ["load-sweep"] = 1 } },
  ["--strategies"] = { value = true, commands = { compare = 1 } },
  ["--seeds"] = { value = true, commands = { compare = 1 } },
  ["--seed"] = { value = true, commands = { compare = 1 } },
  ["--noise"] = { value = true, commands = { compare = 1 } },
  ["--synthetic"] = { value = true, commands = { compare = 1 } },
  ["--predictions"] = { value = true, commands = { compare = 1, validate = 1 } },
  ["--methods"] = { value = true, commands = { validate = 1 } },
  ["--spec"] = { value = true, commands = { trial = 1 } },
  ["--out"] = { value = true, commands = { trial = 1 } },
}

local function key(name) return (name:gsub("^%-%-", ""):gsub("%-", "_")) end

-- The levels a load sweep accepts: the ranges of workload.arrival rates and of
-- workload.concurrency.
M.MAX_RATE, M.MAX_CONCURRENCY = 1e6, 4096

-- A number as a user writes one: decimal digits, an optional fraction and exponent
-- (tonumber alone also takes "0x10", "inf" and " 5").
local function decimal(s)
  local mantissa = s:match("^(%d*%.?%d*)[eE][+-]?%d+$") or s:match("^(%d*%.?%d*)$")
  if not mantissa or not mantissa:find("%d") then return nil end
  return tonumber(s)
end

-- A comma-separated list of ascending positive numbers (integers for concurrency), each
-- at most `max`.
local function number_list(name, s, integers, max)
  local out = {}
  for part in (s .. ","):gmatch("([^,]*),") do
    local v = decimal(part)
    if not v or v <= 0 or (integers and not math.tointeger(v)) then
      errors.usage("%s: '%s' is not a %s", name, part, integers and "positive integer" or "positive decimal number")
    end
    if v > max then errors.usage("%s: '%s' is above %s, the most supported", name, part, string.format("%.0f", max)) end
    if #out > 0 and v <= out[#out] then errors.usage("%s: the values must ascend ('%s' after %s)", name, part, out[#out]) end
    out[#out + 1] = integers and math.tointeger(v) or v
  end
  return out
end

-- An integer option in [lo, hi].
local function integer(name, s, lo, hi)
  local v = s:match("^%d+$") and math.tointeger(tonumber(s))
  if not v or v < lo or v > hi then errors.usage("%s: '%s' is not an integer in %d..%d", name, s, lo, hi) end
  return v
end

-- A comma-separated list of non-empty names (what: "name", "mask" for the message).
local function name_list(option, s, what)
  local list = {}
  for part in (s .. ","):gmatch("([^,]*),") do
    if part == "" then errors.usage("%s: an empty %s in '%s'", option, what, s) end
    list[#list + 1] = part
  end
  return list
end

local function check_compare(opts)
  opts.seeds = opts.seeds and integer("--seeds", opts.seeds, 1, 100000) or 50
  opts.seed = opts.seed and integer("--seed", opts.seed, 0, 1 << 31) or 1
  opts.synthetic = opts.synthetic and integer("--synthetic", opts.synthetic, 2, 12)
  if opts.synthetic and opts.config_given then errors.usage("--synthetic replays made-up landscapes: it takes no --config") end
  if opts.synthetic and opts.predictions then
    errors.usage("--predictions are of the config's recorded sweep: they do not go with --synthetic")
  end
  if opts.noise then
    local v = decimal(opts.noise)
    if not v or v < 0 or v > 1 then errors.usage("--noise: '%s' is not a coefficient of variation in 0..1", opts.noise) end
    opts.noise = v
  end
  if opts.strategies then opts.strategies = name_list("--strategies", opts.strategies, "name") end
end

local function check(opts)
  if opts.command == "compare" then check_compare(opts) end
  if opts.command == "trial" and not (opts.spec and opts.out) then errors.usage("trial needs --spec and --out") end
  if opts.mask and opts.best then errors.usage("--mask and --best cannot be used together") end
  if (opts.masks or opts.time_limit or opts.no_prune) and not opts.grid then
    errors.usage("--masks, --time-limit and --no-prune go with --grid")
  end
  if opts.grid and (opts.mask or opts.best) then errors.usage("--grid measures every mask (--masks chooses them), not --mask or --best") end
  if opts.time_limit then
    local v = decimal(opts.time_limit)
    if not v or v <= 0 or v > 1e7 then errors.usage("--time-limit: '%s' is not a number of seconds in (0, 1e7]", opts.time_limit) end
    opts.time_limit = v
  end
  if opts.masks then opts.masks = name_list("--masks", opts.masks, "mask") end
  if opts.rebaseline and opts.reprofile_baseline then
    errors.usage("--rebaseline measures the whole baseline again; --reprofile-baseline only its trace (use one)")
  end
  if opts.command == "validate" and opts.methods then opts.methods = name_list("--methods", opts.methods, "name") end
  if opts.command == "calibrate" then
    if not opts.simulated then errors.usage("calibrate needs --simulated FILE,... (the simulator's output, one per rate)") end
    opts.simulated = name_list("--simulated", opts.simulated, "file")
    if opts.rates then opts.rates = number_list("--rates", opts.rates, false, M.MAX_RATE) end
  end
  if opts.command == "load-sweep" then
    if (opts.rates and 1 or 0) + (opts.concurrency and 1 or 0) + (opts.probes and 1 or 0) ~= 1 then
      errors.usage("load-sweep needs --rates, --concurrency or --probes (one of them)")
    end
    if opts.probes then opts.probes = require("knobengine.probes").parse(opts.probes) end
    if opts.rates then opts.rates = number_list("--rates", opts.rates, false, M.MAX_RATE) end
    if opts.concurrency then opts.concurrency = number_list("--concurrency", opts.concurrency, true, M.MAX_CONCURRENCY) end
    if opts.experiment_id and not opts.experiment_id:match("^[%w][%w._-]*$") then
      errors.usage("--experiment-id: '%s' is not a name of letters, digits, '.', '_' and '-' that starts with a letter "
        .. "or digit", opts.experiment_id)
    end
  end
  return opts
end

local COMMANDS = { capacity = true, ["load-sweep"] = true, report = true, compare = true, trial = true, profile = true,
  calibrate = true, validate = true }

function M.parse(args)
  if args[1] == "summarize" or args[1] == "kernels" then
    if #args ~= 2 or args[2]:sub(1, 2) == "--" then errors.usage("usage: knobengine %s TRACE.sqlite", args[1]) end
    return { command = args[1], trace = args[2] }
  end
  if args[1] == "ncu" then
    if #args ~= 2 or args[2]:sub(1, 2) == "--" then errors.usage("usage: knobengine ncu REPORT.ncu-rep") end
    return { command = "ncu", report = args[2] }
  end
  local opts = { command = "run", config = "optimizations.json", results = "results" }
  local i = 1
  if COMMANDS[args[1]] then opts.command, i = args[1], 2 end
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    if opts.command == "report" and a:sub(1, 1) ~= "-" then
      if opts.run_dir then errors.usage("report takes one run directory (got '%s' and '%s')", opts.run_dir, a) end
      opts.run_dir = a
    elseif name == "--help" or name == "-h" then opts.help = true
    elseif name == "--version" then opts.version = true
    else
      local o = OPTIONS[name]
      if not o then errors.usage("unknown argument '%s' (see --help)", a) end
      if not o.commands[opts.command] then errors.usage("%s is not an option of %s (see --help)", name,
        opts.command == "run" and "a baseline or search run" or opts.command) end
      if o.value then
        if inline == nil then
          i = i + 1
          if args[i] == nil then errors.usage("%s needs a value (see --help)", name) end
          inline = args[i]
        end
        opts[key(name)] = inline
        if name == "--config" then opts.config_given = true end
      else
        opts[key(name)] = true
      end
    end
    i = i + 1
  end
  return check(opts)
end

return M
