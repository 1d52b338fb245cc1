-- The report's plots (docs/report.md "Plots"), gpu-DEV one per GPU with GPU metrics:
-- for each, NAME.dat (the numbers) and
-- NAME.gp (a gnuplot script) in RUN/plots/, and NAME.svg drawn by gnuplot run as a
-- process. The .dat and .gp files stay so a user can restyle a plot and run
-- `gnuplot NAME.gp` in that directory. Without gnuplot the files are still written
-- and the report says the plots were skipped.
local knob = require("knob")
local errors = require("knobengine.errors")
local f = require("knobengine.report.fmt")
local util = require("knobengine.util")

local M = {}

-- Series colours; the report's own styles never use them, so a rendered page shows
-- plot pixels in these colours only where a plot was drawn.
M.BASELINE, M.BEST, M.OTHER = "#1f77b4", "#d62728", "#ff7f0e"

local HEADER = [[
# knobengine report plot: run `gnuplot %s.gp` in this directory to redraw %s.svg
set terminal svg size 760,380 dynamic noenhanced font "sans,11" background rgb "white"
set output "%s.svg"
set border lc rgb "#444444"
set grid lc rgb "#dddddd"
set key top left box opaque
]]

-- A label as a double-quoted string of a .dat file: gnuplot reads data strings as
-- text (no backquote or macro expansion happens there), so a name from a config, trace
-- or dataset only needs its quotes, backslashes and control characters (a newline would
-- end the record) replaced. Never used in a .gp script, whose strings stay constants.
function M.label(s)
  return '"' .. util.clean_text(s):gsub('["\\]', "'") .. '"'
end
local q = M.label

local function n(v) return f.known(v) and string.format("%.6f", v) or "NaN" end

-- Up to this many valid trials the trials plot labels each with its mask and marks
-- every point; beyond, labels would overlap into a black band and each marker is an
-- SVG element the page inlines, so it draws plain lines over the trial index.
M.MARKED_LIMIT = 1000

local TRIALS_MARKED = [[
set xlabel "trial (knob mask)"
set ylabel "latency (ms)"
set xtics rotate by -45
set key outside top center horizontal
plot "trials.dat" using 1:2:xtic(4) with linespoints lc rgb "%s" lw 2 pt 7 title "p50", \
     "" using 1:3 with linespoints lc rgb "%s" lw 2 pt 5 title "p95", \
     %s with lines dt 2 lc rgb "#555555" title "baseline p50", \
     "" using 1:($5 == 1 ? $2 : 1/0) with points pt 7 ps 2.2 lc rgb "%s" title "best"
]]

local TRIALS_LINES = [[
set xlabel "trial"
set ylabel "latency (ms)"
set key outside top center horizontal
plot "trials.dat" using 1:2 with lines lc rgb "%s" lw 1 title "p50", \
     "" using 1:3 with lines lc rgb "%s" lw 1 title "p95", \
     %s with lines dt 2 lc rgb "#555555" title "baseline p50", \
     "" using 1:($5 == 1 ? $2 : 1/0) with points pt 7 ps 2.2 lc rgb "%s" title "best"
]]

-- trials: p50 and p95 per valid trial, the best marked, the baseline's p50 dashed.
local function trials_plot(run)
  local lines = { "# trial p50_ms p95_ms mask is_best" }
  for _, t in ipairs(run.summary.trials) do
    if t.valid then
      lines[#lines + 1] = string.format("%d %s %s %s %d", t.trial, n(f.get(t, "metrics", "p50_latency_ms")),
        n(f.get(t, "metrics", "p95_latency_ms")), q(t.knob_mask), t.trial == run.summary.best_trial and 1 or 0)
    end
  end
  if #lines == 1 then return nil, "no valid trial" end
  local base = f.get(run.baseline.closed_loop_metrics or run.baseline.metrics, "p50_latency_ms")
  -- an unknown baseline p50 draws no line (NaN plots nothing)
  local script = #lines - 1 <= M.MARKED_LIMIT and TRIALS_MARKED or TRIALS_LINES
  return table.concat(lines, "\n") .. "\n", string.format(script, M.BASELINE, M.OTHER, n(base), M.BEST)
end

-- objective: the objective's metric per valid trial (an objective other than p50 or
-- p95, which the trials plot draws), the best marked, the baseline's dashed.
local function objective_plot(run, obj)
  if obj.default or obj.metric == "p95_latency_ms" then return nil, "the trials plot shows the objective" end
  -- the first line names the columns: the objective's label reaches gnuplot as data
  local lines = { "# trial value mask is_best", q("trial") .. " " .. q(obj.label) .. " " .. q("mask") .. " " .. q("is_best") }
  for _, t in ipairs(run.summary.trials) do
    local v = f.get(t, "metrics", obj.metric)
    if t.valid and f.known(v) then
      lines[#lines + 1] = string.format("%d %s %s %d", t.trial, n(v), q(t.knob_mask), t.trial == run.summary.best_trial and 1 or 0)
    end
  end
  if #lines == 2 then return nil, "no valid trial has a value of the objective" end
  local marked = #lines - 2 <= M.MARKED_LIMIT
  return table.concat(lines, "\n") .. "\n", string.format([[
set xlabel "%s"
set ylabel "the objective (see the key)"
%sset key outside top center horizontal
plot "objective.dat" using 1:2%s with %s lc rgb "%s" lw 2 %stitle columnheader(2), \
     %s with lines dt 2 lc rgb "#555555" title "baseline", \
     "" using 1:($4 == 1 ? $2 : 1/0) with points pt 7 ps 2.2 lc rgb "%s" title "best"
]], marked and "trial (knob mask)" or "trial", marked and "set xtics rotate by -45\n" or "",
    marked and ":xtic(3)" or "", marked and "linespoints" or "lines", M.BASELINE, marked and "pt 7 " or "",
    n(obj.base), M.BEST)
end

-- The trials on no other trial's dominated side: none both faster and higher-throughput
-- (x: tokens/s, higher is better; y: p50, lower is better), by x. One sort and a sweep
-- from the highest x down: a point is on the front when its y is below every y of a
-- higher x and is the lowest of its own x.
function M.pareto_front(points)
  local order = {}
  for i, p in ipairs(points) do order[i] = { p = p, i = i } end
  table.sort(order, function(a, b)
    if a.p.x ~= b.p.x then return a.p.x > b.p.x end
    if a.p.y ~= b.p.y then return a.p.y < b.p.y end
    return a.i < b.i
  end)
  local front, lowest_right, k = {}, math.huge, 1
  while k <= #order do
    local x, lowest_here = order[k].p.x, order[k].p.y -- a group of equal x starts with its lowest y
    while k <= #order and order[k].p.x == x do
      local p = order[k].p
      if p.y == lowest_here and p.y < lowest_right then front[#front + 1] = order[k] end
      k = k + 1
    end
    lowest_right = math.min(lowest_right, lowest_here)
  end
  table.sort(front, function(a, b)
    if a.p.x ~= b.p.x then return a.p.x < b.p.x end
    return a.i < b.i
  end)
  for j, o in ipairs(front) do front[j] = o.p end
  return front
end

-- pareto: p50 against tokens/s for every valid trial, the front joined, the baseline.
local function pareto_plot(run)
  local points = {}
  for _, t in ipairs(run.summary.trials) do
    local x, y = f.get(t, "metrics", "tokens_per_s"), f.get(t, "metrics", "p50_latency_ms")
    if t.valid and f.known(x) and f.known(y) then points[#points + 1] = { x = x, y = y, mask = t.knob_mask } end
  end
  if #points == 0 then return nil, "no valid trial" end
  local lines = { "# tokens_per_s p50_ms mask (index 0: trials, 1: Pareto front, 2: baseline)" }
  for _, p in ipairs(points) do lines[#lines + 1] = string.format("%s %s %s", n(p.x), n(p.y), q(p.mask)) end
  lines[#lines + 1] = "\n"
  for _, p in ipairs(M.pareto_front(points)) do lines[#lines + 1] = string.format("%s %s %s", n(p.x), n(p.y), q(p.mask)) end
  lines[#lines + 1] = "\n"
  lines[#lines + 1] = string.format("%s %s %s", n(f.get(run.baseline.metrics, "tokens_per_s")),
    n(f.get(run.baseline.metrics, "p50_latency_ms")), q("baseline"))
  return table.concat(lines, "\n") .. "\n", string.format([[
set xlabel "throughput (tokens/s)"
set ylabel "p50 latency (ms)"
set key top right
plot "pareto.dat" index 0 using 1:2 with points pt 7 ps 1.2 lc rgb "%s" title "trials", \
     "" index 1 using 1:2 with linespoints lw 2 pt 7 ps 1.6 lc rgb "%s" title "Pareto front", \
     "" index 2 using 1:2 with points pt 9 ps 2.2 lc rgb "#222222" title "baseline"
]], M.BASELINE, M.BEST)
end

local function cdf_block(latencies)
  local lines = {}
  for i, v in ipairs(latencies) do lines[i] = string.format("%s %.6f", n(v), i / #latencies) end
  return table.concat(lines, "\n")
end

-- cdf: every measured request's latency, baseline and best (both unprofiled).
local function cdf_plot(run)
  local a, b = run.baseline.latencies, run.best and run.best.latencies
  if run.baseline.at_capacity then
    return nil, "the objective is max_rate: each side's requests at its capacity are in its capacity probe files"
  end
  local first = f.sides(run)[1][1]
  if not a or #a == 0 then return nil, "the " .. first .. " has no requests.csv with completed requests" end
  local text = "# latency_ms fraction (index 0: " .. first .. (run.single and "" or ", 1: best") .. ")\n" .. cdf_block(a) .. "\n"
  local script = string.format([[
set xlabel "latency (ms)"
set ylabel "fraction of requests"
set yrange [0:1]
set key bottom right
plot "cdf.dat" index 0 using 1:2 with steps lw 2 lc rgb "%s" title "%s"]], M.BASELINE, first)
  if b and #b > 0 then
    text = text .. "\n\n" .. cdf_block(b) .. "\n"
    script = script .. string.format([[, \
     "" index 1 using 1:2 with steps lw 2 lc rgb "%s" title "best"]], M.BEST)
  end
  return text, script .. "\n"
end

-- kernels of a profile run: the top kernels' total time as bars.
local function single_kernels_plot(rows)
  local lines = { "# kernel total_ms" }
  for _, r in ipairs(rows) do lines[#lines + 1] = string.format("%s %s", q(f.short(r.key, 28)), n(r.a and r.a.total_ms or 0)) end
  return table.concat(lines, "\n") .. "\n", string.format([[
set ylabel "total time (ms)"
set style data histograms
set style fill solid 0.9 border -1
set xtics rotate by -30 scale 0
set key off
plot "kernels.dat" using 2:xtic(1) lc rgb "%s"
]], M.BASELINE)
end

-- kernels: total time of the top kernels, baseline vs best, as clustered bars.
local function kernels_plot(run, side_by_side)
  local rows = side_by_side(run.baseline.kernels, run.best and run.best.kernels, function(k) return k.name end, 8)
  if #rows == 0 then return nil, "the profiles hold no GPU kernels" end
  if run.single then return single_kernels_plot(rows) end
  local lines = { "# kernel baseline_total_ms best_total_ms" }
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("%s %s %s", q(f.short(r.key, 28)), n(r.a and r.a.total_ms or 0), n(r.b and r.b.total_ms or 0))
  end
  return table.concat(lines, "\n") .. "\n", string.format([[
set ylabel "total time (ms)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set xtics rotate by -30 scale 0
set key top right
plot "kernels.dat" using 2:xtic(1) lc rgb "%s" title "baseline", "" using 3 lc rgb "%s" title "best"
]], M.BASELINE, M.BEST)
end

-- load: p50 and p99 against the level of the latest load sweep, the knee marked.
local function load_plot(run)
  local sw = run.load_sweep
  if not sw or type(sw.levels) ~= "table" or #sw.levels == 0 then return nil, "no load sweep in these results" end
  local lines = { "# level p50_ms p99_ms is_knee" }
  for _, l in ipairs(sw.levels) do
    local level = l.rate or l.concurrency
    lines[#lines + 1] = string.format("%s %s %s %d", n(level), n(f.get(l, "metrics", "p50_latency_ms")),
      n(f.get(l, "metrics", "p99_latency_ms")), level == f.get(sw, "knee") and 1 or 0)
  end
  return table.concat(lines, "\n") .. "\n", string.format([[
set xlabel "%s"
set ylabel "latency (ms)"
plot "load.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "%s" title "p50", \
     "" using 1:3 with linespoints lw 2 pt 5 lc rgb "%s" title "p99", \
     "" using 1:($4 == 1 ? $3 : 1/0) with points pt 6 ps 3 lw 2 lc rgb "%s" title "knee"
]], sw.by == "rate" and "request rate (req/s)" or "concurrency", M.BASELINE, M.OTHER, M.BEST)
end

-- The headline metrics' colours in a GPU plot, in headline order.
local METRIC_COLOURS = { M.BASELINE, M.OTHER, "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf" }

-- One side's timeline of a device as a .dat block (its first line names the columns:
-- gnuplot reads them with columnheader, as data, never as script) and how many metric
-- columns it has; nil when the side has none. A metric without any sample in the
-- window is left out (a line of NaN alone would stop gnuplot).
local function timeline_block(side, dev, colour_of)
  local d = side and f.get(side.trace, "gpu_metrics", dev)
  local tl = d and f.get(d, "timeline")
  if not tl then return nil end
  local names, columns, colours = {}, {}, {}
  for _, name in ipairs(f.get(d, "headline") or {}) do
    local series = f.get(tl, "series", name)
    local any = false
    for _, v in ipairs(series or {}) do any = any or f.known(v) end
    if any then names[#names + 1] = q(name); columns[#columns + 1] = series; colours[#colours + 1] = colour_of(name) end
  end
  if #columns == 0 then return nil end
  local lines = { q("t_ms") .. " " .. table.concat(names, " ") }
  for k, t in ipairs(tl.t_ms) do
    local row = { n(t) }
    for _, series in ipairs(columns) do row[#row + 1] = n(series[k]) end
    lines[#lines + 1] = table.concat(row, " ")
  end
  return table.concat(lines, "\n"), colours
end

-- A colour per headline metric of a device, the same in both panels: by its place in
-- the baseline's headline list, then the best's.
local function metric_colours(run, dev)
  local index, k = {}, 0
  for _, pair in ipairs(f.sides(run)) do
    local side = pair[2]
    for _, name in ipairs(f.get(side and side.trace, "gpu_metrics", dev, "headline") or {}) do
      if not index[name] then k = k + 1; index[name] = k end
    end
  end
  return function(name) return METRIC_COLOURS[((index[name] or 1) - 1) % #METRIC_COLOURS + 1] end
end

-- gpu-DEV: the headline metrics of one GPU over its window, a panel per side.
local function gpu_plot(run, dev)
  local panels, blocks = {}, {}
  local colour_of = metric_colours(run, dev)
  for _, pair in ipairs(f.sides(run)) do
    local block, colours = timeline_block(pair[2], dev, colour_of)
    if block then
      blocks[#blocks + 1] = block
      panels[#panels + 1] = { title = pair[1], colours = colours, index = #blocks - 1 }
    end
  end
  if #panels == 0 then return nil, "no GPU metrics timeline for GPU " .. dev end
  local script = { string.format([[
set terminal svg size 760,%d dynamic noenhanced font "sans,11" background rgb "white"
set multiplot layout %d,1
set ylabel "%% of peak"
set yrange [0:*]
set key below horizontal]], 280 * #panels, #panels) }
  for _, p in ipairs(panels) do
    local series = {}
    for i, colour in ipairs(p.colours) do
      series[i] = string.format([[%s index %d using 1:%d with lines lw 2 lc rgb "%s" title columnheader(%d)]],
        i == 1 and string.format('"gpu-%s.dat"', dev) or '""', p.index, i + 1, colour, i + 1)
    end
    script[#script + 1] = string.format('set title "%s: ms from the start of its window"\nplot %s', p.title,
      table.concat(series, ", \\\n     "))
  end
  script[#script + 1] = "unset multiplot\n"
  return "# t_ms and the headline metrics (% of peak); a block per side (" .. panels[1].title
    .. (panels[2] and ", then " .. panels[2].title or "") .. "), its first line names the columns\n"
    .. table.concat(blocks, "\n\n\n") .. "\n", table.concat(script, "\n")
end

-- The capacity grid as a heatmap (capacity_grid.json's table): a column per workload
-- and SLO, a row per mask, each cell's max_rate as its colour and label (na: white).
-- Every name is in the .dat file only (tic labels read with xticlabels/yticlabels).
function M.heatmap(grid, name)
  local cells = type(grid) == "table" and grid.cells or {}
  if #cells == 0 then return nil, "no capacity grid" end
  local column, row, columns, rows, best = {}, {}, 0, 0, {}
  for _, b in ipairs(type(grid.best) == "table" and grid.best or {}) do
    best[tostring(b.workload) .. "\0" .. tostring(b.slo) .. "\0" .. tostring(b.knob_mask)] = true
  end
  local lines = { "# column row max_rate label column_name mask (label: >= a lower bound, * the best)" }
  for _, c in ipairs(cells) do
    local ckey = tostring(c.workload) .. "\0" .. tostring(c.slo)
    if not column[ckey] then column[ckey], columns = columns, columns + 1 end
    if not row[c.knob_mask] then row[c.knob_mask], rows = rows, rows + 1 end
    local rate = f.known(c.max_rate) and c.max_rate or nil
    local label = rate and ((c.bound == "lower" and ">= " or "") .. f.num(rate, 1)
      .. (best[ckey .. "\0" .. tostring(c.knob_mask)] and " *" or ""))
      or ((c.status == "measured" or c.status == "reused") and "na" or tostring(c.status))
    lines[#lines + 1] = string.format("%d %d %s %s %s %s", column[ckey], row[c.knob_mask], n(rate), q(label),
      q(tostring(c.workload) .. " / " .. tostring(c.slo)), q(c.knob_mask))
  end
  return table.concat(lines, "\n") .. "\n", string.format([[
set terminal svg size 760,%d dynamic noenhanced font "sans,11" background rgb "white"
set palette defined (0 "#f7fbff", 1 "#08306b")
set cbrange [0:*]
set cblabel "max rate (req/s)"
set xrange [-0.5:%s]
set yrange [-0.5:%s]
set xtics rotate by -20
set ylabel "knob mask"
unset key
unset grid
plot "%s.dat" using 1:2:(0.5):(0.5):3 with boxxyerror fs solid 1.0 noborder fc palette, \
     "" using 1:2:4 with labels boxed, \
     "" using 1:2:xticlabels(5) with points ps 0, \
     "" using 1:2:yticlabels(6) with points ps 0
]], 160 + 28 * rows, n(columns - 0.5), n(rows - 0.5), name or "heatmap")
end

-- Draws NAME.svg from NAME.gp in dir; nil, why when gnuplot fails. gnuplot runs with
-- dir as its working directory and the script's plain name as its only argument: no
-- path reaches a gnuplot command (its double-quoted strings expand backquotes through
-- the shell). A Ctrl-C stops gnuplot (knob.run) and is raised here, so an interrupted
-- report is never one with its plots quietly skipped.
local function draw(dir, name)
  local status, err = knob.run({ "gnuplot", name .. ".gp" }, dir .. "/gnuplot.log", 60, dir)
  errors.check_interrupted("interrupted while gnuplot drew " .. name .. ".svg")
  if not status then return nil, err end
  if status ~= 0 or not knob.exists(dir .. "/" .. name .. ".svg") then
    return nil, string.format("gnuplot exited with status %d (see plots/gnuplot.log)", status)
  end
  return true
end

M.NO_GNUPLOT = "gnuplot is not installed (Debian: apt-get install gnuplot-nox)"

-- Writes NAME.dat and NAME.gp (the script after the common header) into dir and draws
-- NAME.svg. Returns true, or nil and why it was not drawn (the .dat and .gp stay).
function M.write(dir, name, dat, script)
  util.write(dir .. "/" .. name .. ".dat", dat)
  util.write(dir .. "/" .. name .. ".gp", string.format(HEADER, name, name, name) .. script)
  if not util.which("gnuplot") then return nil, M.NO_GNUPLOT end
  return draw(dir, name)
end

-- Writes every plot of the run into dir, a fresh directory that becomes RUN/plots
-- (report.lua builds it aside). Returns {name = {file = "plots/NAME.svg", path = where
-- it is now} or {skipped = why}} and a note for the report when plots could not be
-- drawn at all.
function M.make(run, dir, side_by_side, gpu_devices, obj)
  util.mkdir(dir)
  local have_gnuplot = util.which("gnuplot") ~= nil
  local makers = { trials = trials_plot, pareto = pareto_plot, cdf = cdf_plot,
    kernels = function(r) return kernels_plot(r, side_by_side) end, load = load_plot,
    objective = function(r) return objective_plot(r, obj) end,
    grid = function(r) return M.heatmap(r.capacity_grid, "grid") end }
  local names = { "objective", "trials", "pareto", "cdf", "kernels", "load", "grid" }
  for _, dev in ipairs(gpu_devices or {}) do
    names[#names + 1] = "gpu-" .. dev
    makers["gpu-" .. dev] = function(r) return gpu_plot(r, dev) end
  end
  local out = {}
  for _, name in ipairs(names) do
    local dat, script = makers[name](run)
    if not dat then
      out[name] = { skipped = script }
    else
      local ok, err = M.write(dir, name, dat, script)
      out[name] = ok and { file = "plots/" .. name .. ".svg", path = dir .. "/" .. name .. ".svg" } or { skipped = err }
    end
  end
  local note = not have_gnuplot and "Plots were skipped: " .. M.NO_GNUPLOT .. "; "
    .. "their data and scripts are in plots/." or nil
  return out, note
end

return M
