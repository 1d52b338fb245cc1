-- `knobengine validate`: method-comparison.md steps 3 and 4 online. For each method's
-- recorded search of this config (the newest complete run of each strategy in
-- history.sqlite; `--predictions FILE` adds the zero-deployment row), its pick is
-- measured on one server at four closed-loop levels (idle: concurrency 1, medium,
-- saturation and overload: 1/2, 9/10 and 11/10 of the batch cap) and under a
-- sinusoidal open loop with the SLO's goodput. Predictive accuracy: what the method
-- believed of its pick (the search's measurement, or the model's prediction) against
-- each level's measurement; optimization accuracy: goodput under the sinusoidal load
-- and the regret against the best method. docs/compare.md "Validation".
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local History = require("knobengine.history")
local identity = require("knobengine.identity")
local knobs = require("knobengine.knobs")
local load = require("knobengine.load")
local output = require("knobengine.output")
local plots = require("knobengine.report.plots")
local rundir = require("knobengine.rundir")
local util = require("knobengine.util")

local M = {}

-- The four levels of step 3: name and the concurrency at a batch cap (at least 1; the
-- overload always above the cap, also when 11/10 of a small cap rounds to it).
M.LEVELS = {
  { name = "idle", concurrency = function() return 1 end },
  { name = "medium", concurrency = function(cap) return math.max(1, cap // 2) end },
  { name = "saturation", concurrency = function(cap) return math.max(1, cap * 9 // 10) end },
  { name = "overload", concurrency = function(cap) return math.max(cap + 1, -(-(cap * 11) // 10)) end },
}
M.COMPARISON = "comparison" -- the run's directory of the comparison files
M.HEADER = "method,knob_mask,max_batch,idle,medium,saturation,overload,predicted,mape_pct,goodput,regret_pct"


local read_json = util.read_json

-- A search run's best_config.json: history keeps the run directory as the engine was
-- given it (relative to where it ran), so it is looked for under these results first.
local function best_config_of(ctx, run_dir)
  if type(run_dir) ~= "string" then return nil end
  local name = run_dir:match("([^/]+)/*$")
  return name and read_json(string.format("%s/search/%s/best_config.json", ctx.results, name))
    or read_json(run_dir .. "/best_config.json")
end

-- Each strategy's newest complete search of this config: {name, mask, predicted, run}.
-- Without a history, none (a --predictions row alone may be validated).
local function recorded_methods(ctx, wanted, optional)
  local path = ctx.results .. "/history.sqlite"
  if not knob.exists(path) then
    if optional then return {} end
    errors.usage("validate: %s does not exist (run searches first, or give --predictions)", path)
  end
  local history = History.open(path)
  local rows = history:rows("SELECT id, strategy, run_dir FROM runs WHERE status = 'complete' AND config_hash = ? "
    .. "ORDER BY id DESC", identity.hash(ctx.cfg, ctx.dataset_hash, "search"))
  history:close()
  local out, seen, metric = {}, {}, ctx.cfg.objective.metric
  for _, r in ipairs(rows) do
    local name = require("knobengine.strategy").method_name(r.strategy)
    local best = not seen[name] and (not wanted or wanted[name]) and best_config_of(ctx, r.run_dir)
    if best and type(best.knob_mask) == "string" then
      seen[name] = true
      local mask = ctx.cfg.space:parse(best.knob_mask)
      local v = type(best.metrics) == "table" and best.metrics[metric]
      out[#out + 1] = { name = name, mask = mask, predicted = type(v) == "number" and v or nil, run = r.id }
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The methods: --methods (default every recorded one) and the --predictions row.
local function methods_of(ctx, opts)
  local wanted
  if opts.methods then
    wanted = {}
    for _, m in ipairs(opts.methods) do wanted[m] = true end
  end
  local out = recorded_methods(ctx, wanted, opts.predictions ~= nil and not opts.methods)
  for name in pairs(wanted or {}) do
    local found = false
    for _, m in ipairs(out) do found = found or m.name == name end
    if not found then errors.usage("--methods: no complete search of this config by '%s' in %s/history.sqlite", name, ctx.results) end
  end
  if opts.predictions then
    local predictions = require("knobengine.predictions")
    local name = predictions.name(opts.predictions)
    for _, m in ipairs(out) do
      if m.name == name then errors.usage("--predictions: its method name '%s' is also a strategy's; rename the file", name) end
    end
    local pred = predictions.read(opts.predictions, ctx.cfg.space, ctx.cfg.objective.metric)
    local pick = predictions.strategy(pred, ctx.cfg.objective).pick
    out[#out + 1] = { name = name, mask = pick, predicted = pred[pick] }
  end
  if #out == 0 then errors.usage("validate: no complete search of this config in %s/history.sqlite (run one first)", ctx.results) end
  for _, m in ipairs(out) do -- each is a directory of the run
    if not m.name:match("^[%w][%w._-]*$") or m.name == M.COMPARISON then
      errors.usage("validate: the method name '%s' cannot name its directory (letters, digits, '.', '_', '-'; not '%s')",
        m.name, M.COMPARISON)
    end
  end
  return out
end

-- The batch cap of a method's pick: the value of validate.max_batch_knob it sets, else
-- validate.max_batch.
local function max_batch_of(cfg, mask)
  local v = cfg.validate
  if v.max_batch_knob then
    for i, k in ipairs(cfg.knobs) do
      if k.name == v.max_batch_knob then
        local n = tonumber(tostring(knobs.value(k, cfg.space:digit(mask, i)) or ""))
        if n and n >= 1 then return math.floor(n) end
      end
    end
  end
  if not v.max_batch then
    errors.usage("validate needs validate.max_batch (the batch cap) or validate.max_batch_knob naming a knob with numeric values")
  end
  return v.max_batch
end

-- The five probes of one method: the four levels (each at least twice its concurrency
-- in requests, so the level is held), then the sinusoidal load.
local function probes_of(cfg, max_batch)
  local out = {}
  for i, l in ipairs(M.LEVELS) do
    local c = l.concurrency(max_batch)
    out[i] = { name = l.name, concurrency = c, requests = math.max(cfg.workload.request_count, 2 * c) }
  end
  local v = cfg.validate
  local mean = (v.min_rate + v.max_rate) / 2
  local n = math.max(1, math.floor(mean * (v.duration_s or v.period_s) + 0.5))
  if n > load.MAX_PROBE_REQUESTS then
    errors.usage("validate: the sinusoidal load would send %d requests; at most %d (lower validate.max_rate or "
      .. "validate.duration_s)", n, load.MAX_PROBE_REQUESTS)
  end
  out[#out + 1] = { name = "optimization", rate = mean, requests = n,
    arrival_spec = { type = "sinusoid", min_rate = v.min_rate, max_rate = v.max_rate, period_s = v.period_s } }
  return out
end

-- Measures a method's pick into dir/<name>/: validation/<level>/ and optimization/, each
-- requests.csv and result.json (the Result); returns the metrics by probe name.
local function measure(ctx, method, dir)
  local mdir = dir .. "/" .. method.name
  util.mkdir(mdir)
  local probes, metrics = probes_of(ctx.cfg, method.max_batch), {}
  -- a pick whose server does not serve (a mask its sweep saw fail) is a failed row, not
  -- the end of the validation; an interrupt still stops it
  local ok, err = xpcall(load.run_probes, errors.handler, ctx, method.mask, mdir, function(k) return probes[k] end,
    function(level, m) metrics[level.name] = m end)
  if not ok then
    if errors.stops_run(err) or not errors.is(err) then error(err, 0) end
    method.error = err.message
    output.say("validate: %s: %s", method.name, err.message)
  end
  local levels = {}
  for k, p in ipairs(probes) do
    levels[p.name] = p.concurrency or cjson.null
    local sub = p.name == "optimization" and mdir .. "/optimization" or mdir .. "/validation/" .. p.name
    util.mkdir(sub)
    local from = load.probe_csv(mdir, k)
    if knob.exists(from) then
      local ok, err = os.rename(from, sub .. "/requests.csv")
      if not ok then errors.run("validate: cannot move %s: %s", from, err) end
    end
    util.write_json(sub .. "/result.json", metrics[p.name] or cjson.null)
  end
  local resolved = knobs.resolve(ctx.cfg, method.mask)
  util.write_json(mdir .. "/config.json", { knob_mask = ctx.cfg.space:string(method.mask), argv = util.array(resolved.argv),
    env = resolved.env, max_batch = method.max_batch, concurrency = levels, search_run = method.run or cjson.null,
    error = method.error or cjson.null })
  return metrics
end

-- The figures of a method: its value of the objective's metric at each level, the
-- MAPE of its prediction over the levels, its goodput under the sinusoidal load.
local function figures(cfg, method, metrics)
  local metric, levels, sum, n = cfg.objective.metric, {}, 0, 0
  for _, l in ipairs(M.LEVELS) do
    local v = type(metrics[l.name]) == "table" and metrics[l.name][metric]
    levels[l.name] = type(v) == "number" and v or nil
    if levels[l.name] and method.predicted and levels[l.name] ~= 0 then
      sum, n = sum + math.abs(method.predicted - levels[l.name]) / math.abs(levels[l.name]), n + 1
    end
  end
  local g = type(metrics.optimization) == "table" and metrics.optimization.goodput
  return { levels = levels, mape_pct = n > 0 and 100 * sum / n or nil, goodput = type(g) == "number" and g or nil }
end

-- Regret of each method's goodput against the best method's, in percent.
local function regrets(rows)
  local best
  for _, r in ipairs(rows) do
    if r.goodput and (not best or r.goodput > best) then best = r.goodput end
  end
  for _, r in ipairs(rows) do r.regret_pct = r.goodput and best and best > 0 and 100 * (best - r.goodput) / best or nil end
end

local function fixed(v, d) return v and format.fixed(v, d) or "na" end

local function row_line(cfg, r)
  local cells = { format.line_field(r.name), cfg.space:string(r.mask), tostring(r.max_batch) }
  for _, l in ipairs(M.LEVELS) do cells[#cells + 1] = fixed(r.levels[l.name], 3) end
  cells[#cells + 1] = fixed(r.predicted, 3)
  cells[#cells + 1] = fixed(r.mape_pct, 2)
  cells[#cells + 1] = fixed(r.goodput, 3)
  cells[#cells + 1] = fixed(r.regret_pct, 2)
  return table.concat(cells, ",")
end

-- summary.txt: a sentence per method.
local function summary_text(cfg, rows)
  local lines = { "knobengine validate: each method's pick measured at four load levels and under a sinusoidal load",
    string.format("objective metric: %s; levels: idle (concurrency 1), medium, saturation, overload (1/2, 9/10, 11/10 "
      .. "of the batch cap); sinusoid %s..%s req/s over %s s", cfg.objective.metric, fixed(cfg.validate.min_rate, 3),
      fixed(cfg.validate.max_rate, 3), fixed(cfg.validate.period_s, 1)), "" }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("%-14s mask %s: predicted %s, measured %s / %s / %s / %s (MAPE %s%%); goodput %s "
      .. "req/s, regret %s%%", util.clean_text(r.name), cfg.space:string(r.mask), fixed(r.predicted, 3),
      fixed(r.levels.idle, 3), fixed(r.levels.medium, 3), fixed(r.levels.saturation, 3), fixed(r.levels.overload, 3),
      fixed(r.mape_pct, 2), fixed(r.goodput, 3), fixed(r.regret_pct, 2))
      .. (r.error and ("; not measured: " .. util.clean_text(r.error)) or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- validation.{dat,gp,svg,png}: per method, its MAPE and its goodput, side by side.
local function plot(dir, rows)
  local lines = { "# method mape_pct goodput" }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("%s %s %s", plots.label(r.name), r.mape_pct and string.format("%.4f", r.mape_pct) or "NaN",
      r.goodput and string.format("%.4f", r.goodput) or "NaN")
  end
  local body = string.format([[
set multiplot layout 1,2
set style data histograms
set style fill solid 0.9 border -1
set xtics rotate by -30 scale 0
set key off
set yrange [0:*]
set title "prediction MAPE over the levels (%%)"
plot "validation.dat" using 2:xtic(1) lc rgb "%s"
set title "goodput under the sinusoidal load (req/s)"
plot "validation.dat" using 3:xtic(1) lc rgb "%s"
unset multiplot
]], plots.OTHER, plots.BASELINE)
  local ok, why = plots.write(dir, "validation", table.concat(lines, "\n") .. "\n",
    'set terminal svg size 1000,380 dynamic noenhanced font "sans,11" background rgb "white"\n' .. body)
  if ok then
    util.write(dir .. "/validation-png.gp", 'set terminal pngcairo size 1000,380 noenhanced font "sans,10" background rgb "white"\n'
      .. 'set output "validation.png"\n' .. body)
    local status = knob.run({ "gnuplot", "validation-png.gp" }, dir .. "/gnuplot-png.log", 60, dir)
    if status ~= 0 then ok, why = nil, "gnuplot could not draw validation.png (see gnuplot-png.log)" end
  end
  return ok, why
end

local function json_row(cfg, r)
  local levels = {}
  for _, l in ipairs(M.LEVELS) do levels[l.name] = r.levels[l.name] or cjson.null end
  return { method = r.name, knob_mask = cfg.space:string(r.mask), max_batch = r.max_batch, search_run = r.run or cjson.null,
    predicted = r.predicted or cjson.null, measured = levels, mape_pct = r.mape_pct or cjson.null,
    goodput = r.goodput or cjson.null, regret_pct = r.regret_pct or cjson.null, error = r.error or cjson.null }
end

-- Measures every method, prints the table and writes RESULTS/validation/<stamp>/.
function M.run(ctx, opts)
  local cfg = ctx.cfg
  if not cfg.slo then errors.usage("validate needs an slo in the config (goodput under the sinusoidal load counts the requests that meet it)") end
  local methods = methods_of(ctx, opts)
  for _, m in ipairs(methods) do m.max_batch = max_batch_of(cfg, m.mask) end
  local d = rundir.new(ctx.results, "validation")
  return rundir.guard(d, function()
    util.mkdir(d.aside)
    local rows = {}
    for i, m in ipairs(methods) do
      output.say("validate: %s (mask %s, batch cap %d): 4 levels and the sinusoidal load ...", m.name, cfg.space:string(m.mask), m.max_batch)
      local f = figures(cfg, m, measure(ctx, m, d.aside))
      rows[i] = { name = m.name, mask = m.mask, max_batch = m.max_batch, run = m.run, predicted = m.predicted,
        levels = f.levels, mape_pct = f.mape_pct, goodput = f.goodput, error = m.error }
    end
    regrets(rows)
    local json = {}
    for i, r in ipairs(rows) do json[i] = json_row(cfg, r) end
    local cdir = d.aside .. "/" .. M.COMPARISON
    util.mkdir(cdir)
    util.write_json(cdir .. "/comparison_results.json", { config_file = cfg.path, objective_metric = cfg.objective.metric,
      validate = cfg.validate, slo = cfg.slo, methods = util.array(json) })
    util.write(cdir .. "/summary.txt", summary_text(cfg, rows))
    local drawn, why = plot(cdir, rows)
    if not drawn then output.say("validate: the plot was not drawn: %s", why) end
    for _, log in ipairs({ "gnuplot.log", "gnuplot-png.log" }) do
      if util.read_file(cdir .. "/" .. log) == "" then os.remove(cdir .. "/" .. log) end
    end
    rundir.publish(d)
    output.line(M.HEADER)
    for _, r in ipairs(rows) do output.line(row_line(cfg, r)) end
    output.say("validate: wrote %s", d.final)
    return 0
  end)
end

return M
