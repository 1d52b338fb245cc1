-- `knobengine calibrate --simulated FILE,... [--rates R,...] [--sweep DIR]`: the
-- simulator's figures per rate against a load sweep of the same workload at the same
-- rates (run now, or an earlier one), the plan's verdicts and advice (calibration.lua;
-- docs/load.md "Calibration"). Writes RESULTS/calibration/<stamp>/ (calibration.json
-- and the plot), built aside and renamed into place; stdout: the table, the MAPE and
-- CHECK lines, CALIBRATION.
local cjson = require("cjson")
local knob = require("knob")
local calibration = require("knobengine.calibration")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local output = require("knobengine.output")
local plots = require("knobengine.report.plots")
local rundir = require("knobengine.rundir")
local util = require("knobengine.util")

local M = {}

M.HEADER = "rate,metric,quantile,measured,simulated,error_pct"

local function same_rate(a, b) return math.abs(a - b) <= 1e-9 * math.max(math.abs(a), math.abs(b)) end

-- The sweep of --sweep DIR: its rate levels, checked against the mask asked for.
local function earlier_sweep(ctx, dir, mask)
  local s = util.read_json(dir .. "/" .. require("knobengine.load").SWEEP_FILE)
  if not s or type(s.levels) ~= "table" then
    errors.usage("--sweep: %s is not a load sweep (no readable sweep.json there)", dir)
  end
  if s.by ~= "rate" then errors.usage("--sweep: %s swept %s; calibrate compares arrival rates", dir, tostring(s.by)) end
  if s.knob_mask ~= ctx.cfg.space:string(mask) then
    errors.usage("--sweep: %s measured mask %s, not %s (give --mask %s)", dir, tostring(s.knob_mask),
      ctx.cfg.space:string(mask), tostring(s.knob_mask))
  end
  return s.levels
end

-- The rates: --rates, else the earlier sweep's, else the templates' workload.rps; one
-- simulated file per rate, in order.
local function rates_of(opts, simulated, sweep_levels)
  local rates = opts.rates
  if not rates and sweep_levels then
    rates = {}
    for i, l in ipairs(sweep_levels) do rates[i] = l.rate end
  end
  if not rates then
    rates = {}
    for i, s in ipairs(simulated) do
      if not s.rps then
        errors.usage("--simulated: %s does not say its rate (a per-request CSV never does): give --rates", opts.simulated[i])
      end
      if i > 1 and s.rps <= rates[i - 1] then errors.usage("--simulated: the templates' rates must ascend (%s)", opts.simulated[i]) end
      rates[i] = s.rps
    end
  end
  if #rates ~= #simulated then
    errors.usage("--simulated: %d file(s) for %d rate(s); give one per rate, in the rates' order", #simulated, #rates)
  end
  for i, s in ipairs(simulated) do
    if s.rps and not same_rate(s.rps, rates[i]) then
      errors.usage("--simulated: %s is at %s requests/s, not %s", opts.simulated[i], tostring(s.rps), tostring(rates[i]))
    end
  end
  return rates
end

-- The measured level of each rate: the earlier sweep's, or a sweep run now (quietly).
local function measured_levels(ctx, mask, rates, sweep_levels, opts)
  if sweep_levels then
    local out = {}
    for i, r in ipairs(rates) do
      for _, l in ipairs(sweep_levels) do
        if type(l.rate) == "number" and same_rate(l.rate, r) then out[i] = { rate = r, metrics = l.metrics } end
      end
      if not out[i] then errors.usage("--sweep: %s has no level at %s requests/s", opts.sweep, tostring(r)) end
    end
    return opts.sweep, out
  end
  local levels = {}
  for i, r in ipairs(rates) do levels[i] = { rate = r, arrival = ctx.cfg.capacity.arrival } end
  local _, dir, done = require("knobengine.load").sweep(ctx, mask, levels, { quiet = true })
  return dir, done
end

local function field(v, d) return v and format.fixed(v, d) or "na" end

-- stdout: a row per rate, figure and quantile; MAPE of each; the checks; the verdict.
local function print_result(rows, mape, checks, overall)
  output.line(M.HEADER)
  for _, r in ipairs(rows) do
    output.line(table.concat({ format.fixed(r.rate, 3), r.metric, r.quantile, field(r.measured, 3), field(r.simulated, 3),
      field(r.error_pct, 2) }, ","))
  end
  for _, m in ipairs(calibration.METRICS) do
    for _, q in ipairs(calibration.QUANTILES) do
      output.line(string.format("MAPE,metric=%s,quantile=%s,mape_pct=%s", m.name, q, field(mape[m.name][q], 2)))
    end
  end
  for _, c in ipairs(checks) do
    output.line(string.format("CHECK,metric=%s,quantile=%s,tolerance=%s,pass_below_pct=%s,fail_from_pct=%s,mape_pct=%s,"
      .. "verdict=%s", c.metric, c.quantile, c.tolerance, format.fixed(c.pass_below_pct, 2), format.fixed(c.fail_from_pct, 2),
      field(c.mape_pct, 2), c.verdict))
  end
  output.line("CALIBRATION,verdict=" .. overall)
end

-- calibration.dat/.gp/.svg: per checked figure, measured and simulated against the rate.
local function plot(dir, rows)
  local blocks, panels = {}, {}
  for i, c in ipairs(calibration.CHECKS) do
    local lines = { "# rate measured simulated: " .. c.metric .. " " .. c.quantile }
    for _, r in ipairs(rows) do
      if r.metric == c.metric and r.quantile == c.quantile then
        lines[#lines + 1] = string.format("%.6f %s %s", r.rate, r.measured and string.format("%.6f", r.measured) or "NaN",
          r.simulated and string.format("%.6f", r.simulated) or "NaN")
      end
    end
    blocks[i] = table.concat(lines, "\n")
    panels[i] = string.format([[set title "%s %s (ms)"
plot "calibration.dat" index %d using 1:2 with linespoints lw 2 pt 7 lc rgb "%s" title "measured", \
     "" index %d using 1:3 with linespoints lw 2 dt 2 pt 5 lc rgb "%s" title "simulated"]], c.metric:gsub("_ms$", ""),
      c.quantile, i - 1, plots.BASELINE, i - 1, plots.BEST)
  end
  return plots.write(dir, "calibration", table.concat(blocks, "\n\n\n") .. "\n", string.format([[
set terminal svg size 1140,380 dynamic noenhanced font "sans,11" background rgb "white"
set multiplot layout 1,%d
set xlabel "request rate (req/s)"
set yrange [0:*]
set key top left
%s
unset multiplot
]], #panels, table.concat(panels, "\n")))
end

local function json_rows(rows)
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = { rate = r.rate, metric = r.metric, quantile = r.quantile, measured = r.measured or cjson.null,
      simulated = r.simulated or cjson.null, error_pct = r.error_pct or cjson.null }
  end
  return util.array(out)
end

-- What calibration.json holds (docs/load.md "Calibration").
local function document(ctx, mask, opts, sweep_dir, simulated, rows, mape, checks, overall)
  local sims, m = {}, {}
  for i, s in ipairs(simulated) do sims[i] = { file = opts.simulated[i], source = s.source, requests = s.requests or cjson.null } end
  for name, qs in pairs(mape) do m[name] = { p50 = qs.p50 or cjson.null, p99 = qs.p99 or cjson.null } end
  local cs = {}
  for i, c in ipairs(checks) do
    cs[i] = util.copy(c)
    cs[i].mape_pct, cs[i].advice = c.mape_pct or cjson.null, c.advice or cjson.null
  end
  return { knob_mask = ctx.cfg.space:string(mask), config_file = ctx.cfg.path, sweep = knob.realpath(sweep_dir) or sweep_dir,
    simulated = util.array(sims), limits = ctx.cfg.calibration, rows = json_rows(rows), mape_pct = m, checks = util.array(cs),
    verdict = overall }
end

-- Reads the inputs (usage errors before anything runs), measures or reuses the sweep,
-- compares, prints and writes. take_results(rates): main.lua's lock of the results
-- directory, with the checks of the rates and the port when a sweep is to run (rates).
function M.run(ctx, mask, opts, take_results)
  local simulated = {}
  for i, path in ipairs(opts.simulated) do simulated[i] = calibration.read_simulated(path) end
  local sweep_levels = opts.sweep and earlier_sweep(ctx, opts.sweep, mask)
  local rates = rates_of(opts, simulated, sweep_levels)
  take_results(not sweep_levels and rates or nil)
  local sweep_dir, levels = measured_levels(ctx, mask, rates, sweep_levels, opts)
  local rows, mape = calibration.compare(levels, simulated)
  local checks, overall = calibration.checks(mape, ctx.cfg.calibration)
  local d = rundir.new(ctx.results, "calibration")
  return rundir.guard(d, function()
    util.mkdir(d.aside)
    local drawn, why = plot(d.aside, rows)
    if not drawn then output.say("calibrate: the plot was not drawn: %s", why) end
    if util.read_file(d.aside .. "/gnuplot.log") == "" then os.remove(d.aside .. "/gnuplot.log") end
    util.write_json(d.aside .. "/calibration.json", document(ctx, mask, opts, sweep_dir, simulated, rows, mape, checks, overall))
    rundir.publish(d)
    print_result(rows, mape, checks, overall)
    for _, c in ipairs(checks) do
      if c.advice then
        local limits = c.pass_below_pct == c.fail_from_pct and string.format("pass below %s%%", format.fixed(c.pass_below_pct, 2))
          or string.format("pass below %s%%, fail from %s%%", format.fixed(c.pass_below_pct, 2), format.fixed(c.fail_from_pct, 2))
        output.say("calibrate: %s %s: MAPE %s%% %s the %s tolerance (%s): %s", c.metric, c.quantile,
          format.fixed(c.mape_pct, 2), c.verdict == "fail" and "fails" or "is marginal in", c.tolerance, limits, c.advice)
      end
    end
    output.say("calibrate: %s (the sweep: %s)", d.final, sweep_dir)
    return 0
  end)
end

return M
