-- The report's sweep sections: All trials (the table with knob names spelled out, the
-- best highlighted, invalid trials with their error), the main effect of each knob,
-- and the load sweep when the results have one (docs/report.md).
local f = require("knobengine.report.fmt")
local objective = require("knobengine.report.objective")
local Space = require("knobengine.space")

local M = {}

-- Sum and count of the objective's metric of the valid trials per knob and value
-- index, in one pass over the trials (kept on the run: the table and the Summary both
-- use it).
local function by_value(run, metric)
  if run.by_value then return run.by_value end
  local sum, n, knobs = {}, {}, #run.knob_names
  for i = 1, knobs do sum[i], n[i] = {}, {} end
  for _, t in ipairs(run.summary.trials) do
    local p50 = f.get(t, "metrics", metric)
    if t.valid and f.known(p50) then
      local mask = t.knob_mask
      for i = 1, knobs do
        local c = Space.index_of(mask:sub(i, i))
        if c then sum[i][c], n[i][c] = (sum[i][c] or 0) + p50, (n[i][c] or 0) + 1 end
      end
    end
  end
  run.by_value = { sum = sum, n = n }
  return run.by_value
end

-- Mean objective metric of the valid trials with knob i at value index d minus at index 0 (the
-- baseline's): {name, on_n, off_n, on, off, effect} per on/off knob (d = 1) and per
-- value of a knob with values (named name=value); effect nil when either side has no
-- trial.
local function effect_of(by, i, d, label)
  local sum, n = by.sum[i], by.n[i]
  local e = { name = label, on_n = n[d] or 0, off_n = n[0] or 0 }
  if e.on_n > 0 then e.on = sum[d] / e.on_n end
  if e.off_n > 0 then e.off = sum[0] / e.off_n end
  if e.on and e.off then e.effect = e.on - e.off end
  return e
end

-- A new list each call (callers sort it), and the metric (the objective's); the pass
-- over the trials is made once.
function M.main_effects(run)
  local metric = objective.of(run).metric
  local out, by = {}, by_value(run, metric)
  for i, name in ipairs(run.knob_names) do
    local k = (run.knobs or {})[i] or {}
    local values = type(k.values) == "table" and k.values or nil
    if not values then
      out[#out + 1] = effect_of(by, i, 1, name)
    else
      local first = k.unset == false and 2 or 1 -- index 0 is the first value when unset is false
      for d = 1, #values - (first - 1) do
        out[#out + 1] = effect_of(by, i, d, name .. "=" .. tostring(values[d + first - 1]))
      end
    end
  end
  return out, metric
end

local function status(t, best_index)
  local suspect = type(t.suspect) == "table" and #t.suspect > 0 and (" (suspect: " .. table.concat(t.suspect, "; ") .. ")") or ""
  if t.trial == best_index then return "best" .. suspect end
  if not t.valid then return "invalid: " .. (f.get(t, "error") or "?") end
  return "ok" .. suspect
end

-- A run of more trials than this shows a bounded table (docs/report.md "Large runs"):
-- the best, the TOP_SHOWN best by the objective's metric, the baseline's mask (every
-- knob at index 0) and the first INVALID_SHOWN invalid trials.
M.TABLE_LIMIT, M.TOP_SHOWN, M.INVALID_SHOWN = 1000, 50, 10

-- The positions (in summary.json's order) of the TOP_SHOWN valid trials with the best
-- value of the objective's metric, ties to the earlier trial.
local function top_by_objective(s)
  local metric = f.get(s, "objective", "metric") or "p50_latency_ms"
  local maximize = f.get(s, "objective", "maximize") and true or false
  local ranked = {}
  for i, t in ipairs(s.trials) do
    local v = f.get(t, "metrics", metric)
    if t.valid and f.known(v) then ranked[#ranked + 1] = { i = i, v = v } end
  end
  table.sort(ranked, function(x, y)
    if x.v ~= y.v then return (x.v > y.v) == maximize end
    return x.i < y.i
  end)
  local out = {}
  for k = 1, math.min(M.TOP_SHOWN, #ranked) do out[k] = ranked[k].i end
  return out, metric
end

-- The positions of the trials the table lists, in order, and a sentence saying what
-- was left out (nil when every trial is listed).
function M.shown(run)
  local s = run.summary
  local all = {}
  if #s.trials <= M.TABLE_LIMIT then
    for i = 1, #s.trials do all[i] = i end
    return all, nil
  end
  local picked, invalid, invalid_shown, baseline_shown = {}, 0, 0, false
  local top, metric = top_by_objective(s)
  for _, i in ipairs(top) do picked[i] = true end
  for i, t in ipairs(s.trials) do
    if t.trial == s.best_trial then picked[i] = true end
    if not baseline_shown and type(t.knob_mask) == "string" and not t.knob_mask:find("[^0]") then
      picked[i], baseline_shown = true, true
    end
    if not t.valid then
      invalid = invalid + 1
      if invalid_shown < M.INVALID_SHOWN then picked[i], invalid_shown = true, invalid_shown + 1 end
    end
  end
  for i = 1, #s.trials do
    if picked[i] then all[#all + 1] = i end
  end
  return all, string.format("The table lists %d of the %d trials: the best, the %d with the best %s, the baseline's "
    .. "mask (every knob at index 0) and the first invalid ones (%d of %d); the other %d are left out here. "
    .. "summary.csv in the run directory lists every trial.", #all, #s.trials, #top, metric, invalid_shown, invalid,
    #s.trials - #all)
end

-- The metrics the table always shows; an objective on another adds its column.
local SHOWN = { p50_latency_ms = true, p95_latency_ms = true, tokens_per_s = true, error_rate = true }

local function trial_row(run, t, base_p50, extra)
  local m = t.valid and t.metrics or {}
  local row = { f.int(t.trial), t.knob_mask, f.knobs_on(t.knob_mask, run.knobs or {}) }
  if extra then row[#row + 1] = f.num(f.get(m, extra.metric), extra.decimals) end
  for _, v in ipairs({ f.num(f.get(m, "p50_latency_ms")), f.num(f.get(m, "p95_latency_ms")),
    f.num(f.get(m, "tokens_per_s")), f.num(t.error_rate, 4),
    t.valid and f.delta(f.get(m, "p50_latency_ms"), base_p50) or "na", status(t, run.summary.best_trial) }) do
    row[#row + 1] = v
  end
  return row
end

-- The table's header and alignment, the objective's column after the knobs when the
-- table does not show its metric anyway.
local function trials_header(extra)
  local header, align = { "Trial", "Mask", "Knobs on" }, { "r", "l", "l" }
  if extra then header[#header + 1], align[#align + 1] = "Objective: " .. extra.label, "r" end
  for _, h in ipairs({ "p50 ms", "p95 ms", "tokens/s", "Error rate", "Delta p50 ms" }) do
    header[#header + 1], align[#align + 1] = h, "r"
  end
  header[#header + 1], align[#align + 1] = "Status", "l"
  return header, align
end

function M.trials(run)
  local s, rows, highlight = run.summary, {}, {}
  local base_p50 = f.get(run.baseline.closed_loop_metrics or run.baseline.metrics, "p50_latency_ms")
  local obj = objective.of(run)
  local extra = not SHOWN[obj.metric] and obj or nil
  local shown, left_out = M.shown(run)
  local marks, delta_column = {}, extra and 9 or 8
  for k, i in ipairs(shown) do
    local t = s.trials[i]
    rows[k] = trial_row(run, t, base_p50, extra)
    if t.trial == s.best_trial then highlight[k] = true end
    local verdict = t.valid and f.judge(f.get(t, "metrics", "p50_latency_ms"), base_p50, false)
    if verdict then marks[k] = { [delta_column] = verdict } end
  end
  local effects = {}
  local main, metric = M.main_effects(run)
  local d = metric == "error_rate" and 4 or 3
  for _, e in ipairs(main) do
    effects[#effects + 1] = { e.name, f.int(e.on_n) .. " / " .. f.int(e.off_n), f.num(e.on, d), f.num(e.off, d),
      f.delta(e.on, e.off, d) }
  end
  local blocks = {
    f.p(string.format("%d trial(s) of %d combinations, strategy %s, objective: %s %s. Metrics measured without the "
      .. "profiler; Delta p50 is against the baseline (%s ms).", s.trial_count or #s.trials, s.mask_space or 0,
      tostring(s.strategy), f.get(s, "objective", "maximize") and "maximize" or "minimize",
      tostring(f.get(s, "objective", "metric")), f.num(base_p50))),
  }
  if left_out then blocks[#blocks + 1] = f.p(left_out) end
  local header, align = trials_header(extra)
  blocks[#blocks + 1] = f.table(header, rows, align, highlight, marks)
  if not obj.default and obj.metric ~= "p95_latency_ms" then
    blocks[#blocks + 1] = f.figure("objective", string.format("%s, the objective, of every trial; the dashed line is "
      .. "the baseline's.", obj.label))
  end
  blocks[#blocks + 1] = f.figure("trials", "p50 and p95 latency of every trial; the dashed line is the baseline's p50.")
  blocks[#blocks + 1] = f.figure("pareto", "Latency against throughput; the line joins the Pareto front (no trial is both "
    .. "faster and higher-throughput).")
  local p50 = metric == "p50_latency_ms"
  local name = p50 and "p50" or objective.label(metric)
  blocks[#blocks + 1] = f.p(string.format("Main effect of each knob: the mean %s of the valid trials with it on minus "
    .. "with it off%s; for a knob with values, of each value against index 0 (unset). With few trials, or knobs that "
    .. "interact, this is an estimate.", name, p50 and " (negative is faster)" or (obj.maximize
      and " (positive is better)" or " (negative is better)")))
  blocks[#blocks + 1] = f.table({ "Knob", "Trials on / off", "Mean " .. name .. " on", "Mean " .. name .. " off",
    p50 and "Effect ms" or "Effect" }, effects, { "l", "r", "r", "r", "r" })
  return { id = "trials", title = "All trials", blocks = blocks }
end

-- The latest load sweep of the results (knobengine load-sweep), or nil.
function M.load_sweep(run)
  local sw = run.load_sweep
  if not sw or type(sw.levels) ~= "table" then return nil end
  local rows = {}
  for i, l in ipairs(sw.levels) do
    local m = l.metrics or {}
    rows[i] = { f.num(l.rate or l.concurrency, l.rate and 3 or 0), f.num(f.get(m, "ttft_ms", "p99")), f.num(f.get(m, "p50_latency_ms")),
      f.num(f.get(m, "p99_latency_ms")), f.num(f.get(m, "tokens_per_s")) }
  end
  return { id = "load", title = "Load sweep", blocks = {
    f.p(string.format("The latest load sweep in these results (mask %s, by %s): the knee is %s.", tostring(sw.knob_mask),
      tostring(sw.by), f.get(sw, "knee") and tostring(sw.knee) or "not reached")),
    f.table({ sw.by == "rate" and "Rate (req/s)" or "Concurrency", "TTFT p99 ms", "p50 ms", "p99 ms", "tokens/s" }, rows,
      { "r", "r", "r", "r", "r" }),
    f.figure("load", "p50 and p99 latency against load; the marked point is the knee."),
  } }
end

-- The runner-up of a workload x SLO in the grid's cells: the second highest max_rate.
local function runner_up(grid, b)
  local best
  for _, c in ipairs(grid.cells or {}) do
    if c.workload == b.workload and c.slo == b.slo and c.knob_mask ~= b.knob_mask and f.known(c.max_rate)
      and (not best or c.max_rate > best.max_rate) then
      best = c
    end
  end
  return best
end

-- " Its knobs differ from this search's (...)." when the grid's knob names are not the
-- search's (its masks then mean other settings), else "".
local function knobs_note(run, g)
  local a, b = {}, {}
  for i, k in ipairs(run.knobs or {}) do a[i] = tostring(k.name) end
  for i, k in ipairs(type(g.knobs) == "table" and g.knobs or {}) do b[i] = tostring(k.name) end
  if #b == 0 or table.concat(a, "\0") == table.concat(b, "\0") then return "" end
  return string.format(" Its knobs differ from this search's (%s against %s): its masks are its own.",
    table.concat(b, ", "), table.concat(a, ", "))
end

-- The latest capacity grid of the results (knobengine capacity --grid), or nil.
function M.capacity_grid(run)
  local g = run.capacity_grid
  if type(g) ~= "table" or type(g.best) ~= "table" or #g.best == 0 then return nil end
  local rows = {}
  for i, b in ipairs(g.best) do
    local r = runner_up(g, b)
    local mask = f.get(b, "knob_mask")
    local knobs = type(g.knobs) == "table" and #g.knobs > 0 and g.knobs or run.knobs or {}
    rows[i] = { tostring(b.workload), tostring(b.slo), mask or "na", mask and f.knobs_on(mask, knobs) or "na",
      f.num(f.get(b, "max_rate")), f.get(b, "bound") or "na", r and r.knob_mask or "na", r and f.num(r.max_rate) or "na",
      f.int(b.unmeasured) }
  end
  local unmeasured = 0
  for _, c in ipairs(g.cells or {}) do if c.status == "skipped" or c.status == "failed" then unmeasured = unmeasured + 1 end end
  local where = run.capacity_grid_dir and run.capacity_grid_dir:match("([^/]+)$") or "latest"
  return { id = "grid", title = "Capacity grid", blocks = {
    f.p(string.format("The latest capacity grid in these results when this report was written (capacity-grid/%s, "
      .. "config %s): %d mask(s) x %d SLO(s) x %d workload(s), the highest rate at which each SLO held for each "
      .. "(docs/load.md); %s pruned as unable to win, %d not measured.%s The best config of each SLO and workload:",
      where, tostring(f.get(g, "config_file") or "na"), #(g.masks or {}), #(g.slos or {}), #(g.workloads or {}),
      f.int(g.pruned), unmeasured, knobs_note(run, g))),
    f.table({ "Workload", "SLO", "Best mask", "Knobs on", "Max rate (req/s)", "Bound", "Runner-up", "Its rate",
      "Unmeasured" }, rows, { "l", "l", "l", "l", "r", "l", "l", "r", "r" }),
    f.figure("grid", "Max rate of every cell: a column per workload and SLO, a row per mask (na: the SLO held at no "
      .. "rate probed)."),
  } }
end

return M
