-- `knobengine capacity --grid`: the capacity of every cell of masks x SLOs (the
-- config's `slos`, or its `slo`) x workloads (`workloads`, or its `workload`), each a
-- capacity search (load.lua) on a server of its own: in this process one after
-- another, or on the executor's slots at once (trial_unit.lua runs a cell). A finished
-- cell is kept in RESULTS/capacity-grid/cells/<identity>-<mask>/ as soon as it ends,
-- so a run killed at any point resumes without measuring it again. SLOs go loosest
-- first, so a cell that cannot win is pruned (grid_plan.lua); --time-limit starts no
-- cell past it. Files and rules: docs/load.md "Capacity grid".
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local grid_plan = require("knobengine.grid_plan")
local identity = require("knobengine.identity")
local output = require("knobengine.output")
local progress = require("knobengine.progress")
local rundir = require("knobengine.rundir")
local run_context = require("knobengine.run_context")
local util = require("knobengine.util")

local M = {}

M.HEADER = "workload,slo,knob_mask,max_rate,bound,failed_rate,stable,probes,status"
M.MAX_MASKS = 256
M.CELL_FILE = "cell.json" -- beside a kept cell's capacity.json: the identity it was measured under

-- The grid's SLOs and workloads: the config's lists, or its own (index nil).
local function axes(cfg)
  local slos, workloads = {}, {}
  if cfg.slos then
    for i, e in ipairs(cfg.slos) do slos[i] = { name = e.name, slo = e.slo, entry = e } end
  elseif cfg.slo then
    slos[1] = { name = "slo", slo = cfg.slo }
  else
    errors.usage("capacity --grid needs slos (or an slo) in the config")
  end
  if cfg.workloads then
    for i, e in ipairs(cfg.workloads) do workloads[i] = { name = e.name, workload = e.workload, entry = e } end
  else
    workloads[1] = { name = "workload", workload = cfg.workload }
  end
  return slos, workloads
end

-- --masks parsed, or every mask of the space (at most MAX_MASKS).
local function masks_of(cfg, given)
  local out = {}
  if not given then
    if cfg.space.size > M.MAX_MASKS then
      errors.usage("capacity --grid: the knobs make %d masks; name at most %d with --masks", cfg.space.size, M.MAX_MASKS)
    end
    for m = 0, cfg.space.size - 1 do out[#out + 1] = m end
    return out
  end
  local seen = {}
  for _, s in ipairs(given) do
    local m, why = cfg.space:parse(s)
    if not m then errors.usage("--masks: '%s': %s", s, why) end
    if seen[m] then errors.usage("--masks: '%s' is listed twice", s) end
    seen[m] = true
    out[#out + 1] = m
  end
  if #out > M.MAX_MASKS then errors.usage("--masks: at most %d masks", M.MAX_MASKS) end
  return out
end

-- Every cell, keyed g.cells[w][s][mask], with the context of its (workload, SLO).
local function make_cells(ctx, g)
  local cfg = ctx.cfg
  g.cells, g.list = {}, {}
  for wi, w in ipairs(g.workloads) do
    g.cells[wi] = {}
    for si, s in ipairs(g.slos) do
      local ok, cell_ctx = xpcall(run_context.of, errors.handler, config.cell(cfg, s.entry, w.entry), { results = ctx.results })
      if not ok then
        if not w.entry or cell_ctx.kind ~= "usage" then error(cell_ctx, 0) end
        errors.usage("config %s: workloads[%d] ('%s'): %s", cfg.path, w.entry.index, w.name, cell_ctx.message)
      end
      local hash = identity.hash(cell_ctx.cfg, cell_ctx.dataset_hash, "search")
      g.cells[wi][si] = {}
      for _, mask in ipairs(g.masks) do
        local mask_string = cfg.space:string(mask)
        local c = { w = wi, s = si, mask = mask, mask_string = mask_string, ctx = cell_ctx, hash = hash,
          dir = string.format("%s/%s-%s", g.cells_dir, hash, mask_string) }
        g.cells[wi][si][mask] = c
        g.list[#g.list + 1] = c
      end
    end
  end
end

local read_json = util.read_json

-- A kept cell of the same identity: its result, or nil.
local function kept(c)
  local mark = read_json(c.dir .. "/" .. M.CELL_FILE)
  if not mark or mark.identity ~= c.hash or mark.knob_mask ~= c.mask_string then return nil end
  local result = read_json(c.dir .. "/capacity.json")
  return result and type(result.probes) == "table" and result or nil
end

local function mark_kept(g, c)
  util.write_json(c.dir .. "/" .. M.CELL_FILE, { identity = c.hash, knob_mask = c.mask_string,
    workload = g.workloads[c.w].name, slo = g.slos[c.s].name })
end

local function cell_label(g, c)
  return string.format("workload %s, slo %s, mask %s", g.workloads[c.w].name, g.slos[c.s].name, c.mask_string)
end

-- Measures c in this process: its capacity search built aside, then put in place.
local function measure_here(g, c)
  local tmp = string.format("%s.partial.%d", c.dir, knob.getpid())
  knob.remove_tree(tmp)
  local ok, result = xpcall(require("knobengine.load").capacity, errors.handler, c.ctx, c.mask, { quiet = true, dir = tmp })
  if not ok then
    knob.remove_tree(tmp)
    if errors.stops_run(result) then error(result, 0) end
    c.status, c.reason = "failed", result.message or tostring(result)
    return
  end
  knob.remove_tree(c.dir)
  local moved, err = os.rename(tmp, c.dir)
  if not moved then errors.run("cannot keep the cell in %s: %s", c.dir, tostring(err)) end
  mark_kept(g, c)
  c.result, c.status = result, "measured"
end

-- Measures cells one after another here; none starts past the deadline.
local function run_here(g, cells)
  for _, c in ipairs(cells) do
    if g.deadline and knob.now() >= g.deadline then
      c.status, c.reason = "skipped", "time limit"
    else
      g.started = g.started + 1
      progress.say("grid: cell %d of %d to measure: %s", g.started, g.to_measure, cell_label(g, c))
      measure_here(g, c)
    end
  end
end

-- Measures cells on the executor's slots, at once; none starts past the deadline.
local function run_on_slots(g, ctx, cells)
  local Executor = require("knobengine.executor")
  local ex = Executor.new(ctx, ctx.slots, g.work_dir)
  local jobs = {}
  for i, c in ipairs(cells) do
    g.started = g.started + 1
    local label = cell_label(g, c)
    jobs[i] = { index = g.started, mask = c.mask, requests = c.ctx.cfg.workload.request_count, dir = c.dir, hash = c.hash,
      cell = { slo = g.slos[c.s].entry and g.slos[c.s].entry.index, workload = g.workloads[c.w].entry and g.workloads[c.w].entry.index },
      label = "cell " .. label, c = c,
      say = function(where) progress.say("grid: cell %d of %d to measure: %s%s", jobs[i].index, g.to_measure, label, where) end }
  end
  ex:run(jobs, function(job, rec)
    local c = job.c
    if rec == false then
      c.status, c.reason = "skipped", "time limit"
    elseif rec.ok and read_json(c.dir .. "/capacity.json") then
      mark_kept(g, c)
      c.result, c.status = read_json(c.dir .. "/capacity.json"), "measured"
    else
      c.status, c.reason = "failed", rec.error or "no capacity.json"
    end
  end, g.deadline)
end

local function run_cells(g, ctx, cells)
  if #cells == 0 then return end
  if ctx.slots then run_on_slots(g, ctx, cells) else run_here(g, cells) end
end

local function measured_of(g)
  return function(w, s, mask)
    local c = g.cells[w][s][mask]
    return c and c.result
  end
end

-- The masks of (w, s) measured so far, and those still to measure in promise order.
local function split(g, w, s)
  local done, todo = {}, {}
  for _, mask in ipairs(g.masks) do
    local c = g.cells[w][s][mask]
    if c.result then done[#done + 1] = mask elseif not c.status then todo[#todo + 1] = mask end
  end
  return done, grid_plan.by_promise(g.slo_tables, s, w, todo, measured_of(g))
end

-- Prunes the cells of (w, s) that cannot win (grid_plan.prune), saying why.
local function prune(g, w, s, done, todo)
  local pruned = grid_plan.prune(g.slo_tables, s, w, todo, measured_of(g), done)
  local left = {}
  for _, mask in ipairs(todo) do
    local p = pruned[mask]
    local c = g.cells[w][s][mask]
    if p then
      c.status = "pruned"
      c.reason = string.format("its capacity under slo %s is below %s req/s, and mask %s held %s req/s under %s",
        g.slos[p.from].name, format.fixed(p.upper, 3), g.space:string(p.leader), format.fixed(p.leader_rate, 3), g.slos[s].name)
      g.pruned, g.to_measure = g.pruned + 1, g.to_measure - 1
    else
      left[#left + 1] = c
    end
  end
  return left
end

-- One SLO across the workloads: when a looser SLO was measured, the likeliest winners
-- first (one per slot), then the rest of what is left after pruning.
local function round(g, ctx, s)
  local looser = false
  for j = 1, #g.slo_tables do
    if j ~= s and grid_plan.stricter(g.slo_tables[s], g.slo_tables[j]) then looser = true end
  end
  local width = looser and (ctx.slots and #ctx.slots or 1) or math.huge
  local function pending(w)
    local done, todo = split(g, w, s)
    if g.no_prune then
      local left = {}
      for _, mask in ipairs(todo) do left[#left + 1] = g.cells[w][s][mask] end
      return left
    end
    return prune(g, w, s, done, todo) -- against what earlier runs kept, too
  end
  local leaders = {}
  for w = 1, #g.workloads do
    local left = pending(w)
    for i = 1, math.min(width, #left) do leaders[#leaders + 1] = left[i] end
  end
  run_cells(g, ctx, leaders)
  local rest = {}
  for w = 1, #g.workloads do
    for _, c in ipairs(pending(w)) do rest[#rest + 1] = c end
  end
  run_cells(g, ctx, rest)
end

-- Cells kept from an earlier run of the same identity (what a killed run left half
-- built, *.partial.PID, goes: this process holds the results).
local function reuse(g)
  for _, name in ipairs(knob.list_dir(g.cells_dir) or {}) do
    if name:match("%.partial%.%d+$") then knob.remove_tree(g.cells_dir .. "/" .. name) end
  end
  local n = 0
  for _, c in ipairs(g.list) do
    local r = kept(c)
    if r then c.result, c.status, n = r, "reused", n + 1 end
  end
  if n > 0 then output.say("capacity --grid: reusing %d cell(s) measured by an earlier run (%s)", n, g.cells_dir) end
  g.to_measure = #g.list - n
end

-- ---------- the files ----------

local function cell_entry(g, c, results)
  local r = c.result or {}
  return {
    workload = g.workloads[c.w].name, slo = g.slos[c.s].name, knob_mask = c.mask_string, status = c.status or "skipped",
    reason = c.reason or cjson.null, max_rate = r.max_rate or cjson.null, bound = r.bound or cjson.null,
    failed_rate = r.failed_rate or cjson.null, stable = r.stable == nil and cjson.null or r.stable,
    probes = r.probes and #r.probes or cjson.null,
    dir = c.result and (c.dir:sub(1, #results + 1) == results .. "/" and c.dir:sub(#results + 2) or c.dir) or cjson.null,
  }
end

local function flag(v)
  if v == true then return "1" elseif v == false then return "0" end
  return "na"
end

local function csv_row(e)
  local function num(v) return format.fixed(v ~= cjson.null and v or nil, 3) end
  return table.concat({ format.line_field(e.workload), format.line_field(e.slo), e.knob_mask, num(e.max_rate),
    e.bound ~= cjson.null and e.bound or "na", num(e.failed_rate), flag(e.stable),
    e.probes ~= cjson.null and tostring(e.probes) or "na", e.status }, ",")
end

-- The best cell of each workload x SLO.
local function bests(g, entries)
  local out = {}
  for w = 1, #g.workloads do
    for s = 1, #g.slos do
      local cells = {}
      for _, mask in ipairs(g.masks) do cells[#cells + 1] = g.cells[w][s][mask] end
      local b = grid_plan.best(cells)
      local open = 0
      for _, c in ipairs(cells) do if c.status == "skipped" or c.status == "failed" then open = open + 1 end end
      out[#out + 1] = { workload = g.workloads[w].name, slo = g.slos[s].name, knob_mask = b and b.mask_string or cjson.null,
        max_rate = b and b.result.max_rate or cjson.null, bound = b and b.result.bound or cjson.null, unmeasured = open }
    end
  end
  return out
end

local function best_line(b)
  return string.format("BEST,workload=%s,slo=%s,knob_mask=%s,max_rate=%s,bound=%s,unmeasured=%d",
    format.line_field(b.workload), format.line_field(b.slo), b.knob_mask ~= cjson.null and b.knob_mask or "na",
    format.fixed(b.max_rate ~= cjson.null and b.max_rate or nil, 3), b.bound ~= cjson.null and b.bound or "na", b.unmeasured)
end

-- capacity_grid.csv, capacity_grid.json and the heatmap into dir; stdout: the table
-- and a BEST line per workload x SLO.
local function write_outputs(g, ctx, dir, time_limit)
  local entries, lines = {}, { M.HEADER }
  for w = 1, #g.workloads do
    for s = 1, #g.slos do
      for _, mask in ipairs(g.masks) do
        local e = cell_entry(g, g.cells[w][s][mask], ctx.results)
        entries[#entries + 1] = e
        lines[#lines + 1] = csv_row(e)
      end
    end
  end
  local best = bests(g, entries)
  local slos, workloads, masks = {}, {}, {}
  for i, s in ipairs(g.slos) do slos[i] = { name = s.name, slo = s.slo } end
  for i, w in ipairs(g.workloads) do
    workloads[i] = { name = w.name, dataset = w.workload.dataset, probe_arrival = require("knobengine.load").probe_arrival(
      { workload = w.workload, capacity = ctx.cfg.capacity }).type, request_count = w.workload.request_count,
      max_new_tokens = w.workload.max_new_tokens, max_concurrency = w.workload.max_concurrency or cjson.null }
  end
  for i, m in ipairs(g.masks) do masks[i] = g.space:string(m) end
  local complete = true
  for _, e in ipairs(entries) do if e.status == "skipped" or e.status == "failed" then complete = false end end
  util.write(dir .. "/capacity_grid.csv", table.concat(lines, "\n") .. "\n")
  local grid = { slos = util.array(slos), workloads = util.array(workloads), masks = util.array(masks),
    cells = util.array(entries), best = util.array(best), pruned = g.pruned, complete = complete,
    time_limit_s = time_limit or cjson.null, capacity = ctx.cfg.capacity, knobs = ctx.cfg.knobs,
    config_file = ctx.cfg.path }
  util.write_json(dir .. "/capacity_grid.json", grid)
  local plots = require("knobengine.report.plots")
  util.mkdir(dir .. "/plots")
  local dat, script = plots.heatmap(grid, "heatmap")
  local drawn, why = plots.write(dir .. "/plots", "heatmap", dat, script)
  if not drawn then output.say("capacity --grid: the heatmap was not drawn: %s", why) end
  for _, l in ipairs(lines) do output.line(l) end
  for _, b in ipairs(best) do output.line(best_line(b)) end
  return grid
end

-- Says on stderr what was not measured, and why.
local function tell(g, grid)
  if g.pruned > 0 then
    output.say("capacity --grid: pruned %d cell(s) that could not win (capacity_grid.json says why for each)", g.pruned)
  end
  local skipped, failed = 0, 0
  for _, e in ipairs(grid.cells) do
    if e.status == "skipped" then skipped = skipped + 1 elseif e.status == "failed" then failed = failed + 1 end
  end
  if skipped > 0 then
    output.say("capacity --grid: %d cell(s) not measured: the time limit passed; run the same command again to measure "
      .. "only those", skipped)
  end
  if failed > 0 then output.say("capacity --grid: %d cell(s) failed (capacity_grid.json says why)", failed) end
end

-- The grid of the run context (a validated config with its slos and workloads).
-- opts: masks (strings, or nil for every mask), time_limit (seconds or nil), no_prune.
function M.run(ctx, opts)
  local cfg = ctx.cfg
  local g = { space = cfg.space, pruned = 0, started = 0, no_prune = opts.no_prune,
    cells_dir = ctx.results .. "/capacity-grid/cells",
    work_dir = ctx.results .. "/capacity-grid/.work" }
  g.slos, g.workloads = axes(cfg)
  g.masks = masks_of(cfg, opts.masks)
  g.slo_tables = {}
  for i, s in ipairs(g.slos) do g.slo_tables[i] = s.slo end
  util.mkdir(ctx.results .. "/capacity-grid")
  util.mkdir(g.cells_dir)
  make_cells(ctx, g)
  local d = rundir.new(ctx.results, "capacity-grid")
  util.mkdir(d.aside)
  return rundir.guard(d, function()
    if opts.time_limit then g.deadline = knob.now() + opts.time_limit end
    reuse(g)
    for _, s in ipairs(grid_plan.order(g.slo_tables)) do round(g, ctx, s) end
    knob.remove_tree(g.work_dir)
    local grid = write_outputs(g, ctx, d.aside, opts.time_limit)
    require("knobengine.provenance").write(d.aside, ctx)
    rundir.publish(d)
    tell(g, grid)
    return 0
  end)
end

return M
