-- knobengine compare: runs compare.lua over the chosen world and methods, prints the
-- table on stdout and writes RESULTS/comparison/ (comparison_results.json, summary.txt,
-- cost_vs_regret.{dat,gp,svg}), replaced whole: a failure leaves the old directory.
-- Formats: docs/compare.md.
local cjson = require("cjson")
local knob = require("knob")
local compare = require("knobengine.compare")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local History = require("knobengine.history")
local identity = require("knobengine.identity")
local plots = require("knobengine.report.plots")
local progress = require("knobengine.progress")
local strategies = require("knobengine.strategy")
local util = require("knobengine.util")

local M = {}

M.HEADER = "method,seeds,launches,requests,wall_s,gpu_hours,found_best,regret_p50_pct,regret_p90_pct,predict_mape_pct"

local function fixed(v, d)
  if v == nil then return "na" end
  if v == math.huge then return "inf" end
  return string.format("%." .. d .. "f", v)
end

function M.row(m)
  return table.concat({ format.line_field(m.name), tostring(m.seeds), fixed(m.launches.median, 1), fixed(m.requests.median, 0),
    fixed(m.wall_s.median, 1), fixed(m.gpu_hours.median, 4), fixed(m.found_best, 3), fixed(m.regret_pct.median, 2),
    fixed(m.regret_pct.p90, 2), fixed(m.predict_mape_pct, 2) }, ",")
end

-- The world and what to say about it: a recorded sweep, or synthetic landscapes.
local function world_of(ctx, opts)
  if opts.synthetic then
    local world = compare.synthetic(opts.synthetic)
    return world, { kind = "synthetic", knobs = opts.synthetic, noise_from = "--noise (default 0.02)" }
  end
  local path = ctx.results .. "/history.sqlite"
  if not knob.exists(path) then errors.usage("compare: %s does not exist (run a brute-force search first)", path) end
  local world = compare.recorded(ctx.cfg, History.open(path), identity.hash(ctx.cfg, ctx.dataset_hash, "search"))
  return function() return world end, { kind = "history", path = path, run_id = world.run_id, run_dir = world.run_dir,
    config_file = ctx.cfg.path, masks = ctx.cfg.space.size, best_mask = world.best and world.space:string(world.best.trial),
    cv = world.cv }
end

-- The noise CV: --noise, else the sweep's repeat spread (synthetic: 2%).
local function noise_of(opts, source)
  if opts.noise then return opts.noise, "--noise" end
  if source.kind == "synthetic" then return 0.02, "the landscapes' 2%" end
  if source.cv then return source.cv, "the sweep's repeats (median CV of the objective metric)" end
  errors.usage("compare: the sweep has one repeat per trial, so its noise is unknown: give --noise CV (e.g. 0.02), "
    .. "or sweep with workload.repeats >= 2")
end

local function json_value(v)
  if v == nil or v == math.huge then return cjson.null end
  return v
end

local function json_method(m)
  local j = {}
  for k, v in pairs(m) do
    if type(v) == "table" then
      j[k] = {}
      for kk, vv in pairs(v) do j[k][kk] = json_value(vv) end
    else
      j[k] = json_value(v)
    end
  end
  j.predict_mape_pct = json_value(m.predict_mape_pct)
  j.wall_s.median, j.gpu_hours.median = json_value(m.wall_s.median), json_value(m.gpu_hours.median)
  return j
end

local function summary_text(result)
  local s = result.source
  local lines = {
    "knobengine compare: search methods replayed offline, no server started",
    s.kind == "history" and string.format("world: the sweep of run %d in %s (%d combinations, best %s)", s.run_id,
      util.clean_text(s.path),
      s.masks, s.best_mask or "none") or string.format("world: synthetic landscapes of %d on/off knobs, one per seed", s.knobs),
    string.format("noise: CV %.4f from %s; %d seeds from %d", result.noise.cv, result.noise.from, result.seeds, result.seed),
    "",
  }
  for _, m in ipairs(result.methods) do
    lines[#lines + 1] = string.format("%-14s %s launches (median), found the best in %s%% of seeds, median regret %s%%, "
      .. "p90 %s%%%s", util.clean_text(m.name), fixed(m.launches.median, 1), fixed(100 * m.found_best, 0), fixed(m.regret_pct.median, 2),
      fixed(m.regret_pct.p90, 2), m.predict_mape_pct and (", predicts with MAPE " .. fixed(m.predict_mape_pct, 2) .. "%") or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Method colours, in the methods' order (cycled past eight).
local COLOURS = { plots.OTHER, plots.BASELINE, "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf" }

-- cost_vs_regret: a point per method, each its own colour and marker with its name in
-- the key (a .dat block per method whose first line names it: the name reaches gnuplot
-- as data, read by columnheader, never as script). A regret that is unknown draws no
-- point; every regret 0 keeps the y axis at 0..1, not gnuplot's -1..1 around 0.
local function plot(dir, methods)
  local blocks, top, lo, hi = {}, 0, math.huge, 0
  for i, m in ipairs(methods) do
    local r = m.regret_pct.median
    if r ~= math.huge and r == r then top = math.max(top, r) end
    lo, hi = math.min(lo, m.launches.median), math.max(hi, m.launches.median)
    blocks[i] = string.format('%s "launches_median" "regret_median_pct"\n%d %.3f %s', plots.label(m.name), i,
      m.launches.median, (r == math.huge or r ~= r) and "NaN" or string.format("%.4f", r))
  end
  local series = {}
  for i = 1, #methods do
    series[i] = string.format('%s index %d using 2:3 with points pt %d ps 1.8 lc rgb "%s" title columnheader(1)',
      i == 1 and '"cost_vs_regret.dat"' or '""', i - 1, ({ 7, 5, 9, 11, 13, 15 })[(i - 1) % 6 + 1], COLOURS[(i - 1) % #COLOURS + 1])
  end
  return plots.write(dir, "cost_vs_regret", "# a block per method: its name, then launches (median) and regret "
    .. "(median, % of the best)\n" .. table.concat(blocks, "\n\n\n") .. "\n", string.format([[
set xlabel "launches (median)%s"
set ylabel "regret (median, %% of the best)"
%sset yrange [0:%s]
set offsets graph 0.1, graph 0.1, graph 0.1, 0
set key outside right top box opaque
plot %s
]], lo > 0 and hi / lo > 20 and ", log scale" or "", lo > 0 and hi / lo > 20 and "set logscale x\n" or "",
    top > 0 and "*" or "1", table.concat(series, ", \\\n     ")))
end

-- Where the files are written before they replace RESULTS/comparison.
local function aside_of(results) return string.format("%s/.comparison.tmp.%d", results, knob.getpid()) end

-- Writes the files into a fresh directory beside RESULTS/comparison (M.run removes it
-- when anything fails); returns its path.
local function write_aside(results, result)
  local aside = aside_of(results)
  knob.remove_tree(aside)
  util.mkdir(aside)
  local j = { source = result.source, noise = result.noise, seeds = result.seeds, seed = result.seed, methods = {} }
  for i, m in ipairs(result.methods) do j.methods[i] = json_method(m) end
  j.source.cv = json_value(j.source.cv)
  util.write_json(aside .. "/comparison_results.json", j)
  util.write(aside .. "/summary.txt", summary_text(result))
  local drawn, why = plot(aside, result.methods)
  if not drawn then io.stderr:write("knobengine: compare: the plot was not drawn: ", why, "\n") end
  if util.read_file(aside .. "/gnuplot.log") == "" then os.remove(aside .. "/gnuplot.log") end
  return aside
end

-- Swaps the written directory for RESULTS/comparison (after the interrupt hook is gone:
-- nothing may stop it half way).
local function move_into_place(results, aside)
  local final = results .. "/comparison"
  -- the old directory goes aside first, so there is always one complete comparison
  local old = final .. ".old." .. knob.getpid()
  local had_old = knob.is_dir(final) and os.rename(final, old)
  local okr, rerr = os.rename(aside, final)
  if not okr then
    if had_old then os.rename(old, final) end
    knob.remove_tree(aside)
    errors.run("cannot move the comparison into place: %s", rerr)
  end
  if had_old then knob.remove_tree(old) end
end

-- The methods of --strategies (bundled names or paths), loaded, and the --predictions
-- row (predictions.lua) last.
local function methods_of(ctx, opts)
  local names = opts.strategies or compare.DEFAULT_METHODS
  local out = {}
  for i, name in ipairs(names) do
    local path = strategies.path(name)
    out[i] = { name = strategies.method_name(name), strategy = strategies.load(path) }
  end
  if opts.predictions then
    local predictions = require("knobengine.predictions")
    local name = predictions.name(opts.predictions)
    local pred = predictions.read(opts.predictions, ctx.cfg.space, ctx.cfg.objective.metric)
    for _, m in ipairs(out) do
      if m.name == name then errors.usage("--predictions: its method name '%s' is also a strategy's; rename the file", name) end
    end
    out[#out + 1] = { name = name, strategy = predictions.strategy(pred, ctx.cfg.objective) }
  end
  return out
end

-- Every method over every seed, the table on stdout as each one ends, and the files
-- written aside; returns where they are.
local function compare_all(ctx, opts)
  local methods = methods_of(ctx, opts)
  local world, source = world_of(ctx, opts)
  local cv, from = noise_of(opts, source)
  local result = { source = source, noise = { cv = cv, from = from }, seeds = opts.seeds, seed = opts.seed, methods = {} }
  io.stdout:write(M.HEADER, "\n")
  for i, m in ipairs(methods) do
    progress.say("compare: %s over %d seeds ...", m.name, opts.seeds)
    result.methods[i] = compare.method(m.name, m.strategy, world, { seeds = opts.seeds, seed = opts.seed, cv = cv })
    local ok, err = io.stdout:write(M.row(result.methods[i]), "\n")
    if ok then ok, err = io.stdout:flush() end
    if not ok then errors.output("cannot write the results to stdout (%s)", tostring(err)) end
  end
  if not knob.is_dir(ctx.results) then util.mkdir(ctx.results) end
  return write_aside(ctx.results, result)
end

-- A Ctrl-C or SIGTERM stops the replay within moments (the strategies' Lua loops never
-- reach C, where the flag is otherwise seen) and leaves RESULTS/comparison as it was.
function M.run(ctx, opts)
  local ok, aside = pcall(errors.watching_interrupts, "interrupted while the methods were compared", compare_all, ctx,
    opts)
  if not ok then
    knob.remove_tree(aside_of(ctx.results))
    error(aside, 0)
  end
  move_into_place(ctx.results, aside)
  io.stderr:write("knobengine: compare: wrote ", ctx.results, "/comparison/\n")
  return 0
end

return M
