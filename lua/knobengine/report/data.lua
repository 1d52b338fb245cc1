-- What a report is made of, read from a finished search run's files (and the results
-- directory's baseline): one table, `run`, that the sections and plots only read.
--
--   run.dir, run.summary (summary.json), run.knobs (its knobs), run.knob_names
--   run.baseline, run.best: {metrics, trace, phases, overhead, kernels (every kernel),
--     latencies (measured requests' latency_ms, unprofiled), environment, repeats,
--     ncu (ncu_kernels.csv per kernel and device, or nil), ncu_overhead}
--   run.baseline.at_capacity: true when the objective is max_rate; its metrics are
--     then those of its probe at capacity (closed_loop_metrics: its plain run's)
--   run.best_record: the best's trial entry of summary.json (nil without a best)
--   run.summary.trials: each trial as report/summary_file.lua keeps it (the best whole)
--   run.environment, run.manifest: this run's provenance files (or nil)
--   run.load_sweep: the results' latest load-sweep (sweep.json), when there is one
--   run.capacity_grid: the results' latest capacity grid (capacity_grid.json), or nil
--   run.single: a profile run (knobengine profile): run.baseline is its one measured
--     config (the run directory itself), there is no best, no trials, no load sweep
local knob = require("knob")
local csv = require("knobengine.csv")
local errors = require("knobengine.errors")
local ncu_report = require("knobengine.ncu_report")
local summary_file = require("knobengine.report.summary_file")
local trace = require("knobengine.trace")
local util = require("knobengine.util")

local M = {}

local json_file = util.read_json

-- latency_ms of the requests that succeeded (requests.csv: no error), appended to out.
local function read_latencies(path, out)
  local text = util.read_file(path)
  if not text then return nil end
  csv.each(text, function(r)
    local latency = tonumber(r.latency_ms)
    if latency and (r.error or "") == "" then out[#out + 1] = latency end
  end)
  return out
end

-- The latencies of every repeat: requests.csv, requests-2.csv, ... (nil without any).
function M.latencies(path)
  local out = read_latencies(path, {})
  if not out then return nil end
  local stem = path:gsub("%.csv$", "")
  local k = 2
  while read_latencies(string.format("%s-%d.csv", stem, k), out) do k = k + 1 end
  table.sort(out)
  return out
end

-- A kernel's row for another device added to its first row (the report shows a kernel
-- once, over every GPU).
local function merge_kernel_row(k, r)
  local sum = function(a, b) return a and b and a + b or nil end
  k.count, k.total_ms, k.percent = sum(k.count, r.count), sum(k.total_ms, r.total_ms), sum(k.percent, r.percent)
  k.min_ms = k.min_ms and r.min_ms and math.min(k.min_ms, r.min_ms) or nil
  k.max_ms = k.max_ms and r.max_ms and math.max(k.max_ms, r.max_ms) or nil
  k.mean_ms = k.total_ms and k.count and k.count > 0 and k.total_ms / k.count or nil
end

-- kernels.csv of a profiled directory (written with the config's nsys.kernel_names),
-- or nil when there is none or it cannot be parsed. Its rows are per kernel and device
-- (files of older runs: per kernel); the rows of one name are summed into one.
local function kernels_csv(path)
  local rows = csv.read(path)
  if not rows then return nil end
  local out, by_name, merged = {}, {}, false
  for _, r in ipairs(rows) do
    local row = { name = r.name, count = tonumber(r.calls), total_ms = tonumber(r.total_ms),
      mean_ms = tonumber(r.mean_ms), min_ms = tonumber(r.min_ms), max_ms = tonumber(r.max_ms),
      percent = tonumber(r.percent) }
    local k = r.name and by_name[r.name]
    if k then
      merge_kernel_row(k, row)
      merged = true
    else
      out[#out + 1] = row
      if r.name then by_name[r.name] = row end
    end
  end
  if merged then -- largest total first again (ties: the file's order)
    local rank = {}
    for i, k in ipairs(out) do rank[k] = i end
    table.sort(out, function(a, b)
      local x, y = a.total_ms or -math.huge, b.total_ms or -math.huge
      if x ~= y then return x > y end
      return rank[a] < rank[b]
    end)
  end
  return out
end

-- Every kernel of the trace in dir: kernels.csv, else the export itself, else the top 5
-- of trace_summary.json.
local function all_kernels(dir, summary)
  local listed = kernels_csv(dir .. "/kernels.csv")
  if listed then return listed end
  local sqlite = dir .. "/trace.sqlite"
  if knob.exists(sqlite) then
    local s = trace.read(sqlite, {}, nil, "all")
    if s then return s.top_kernels end
  end
  return summary and not util.is_null(summary.top_kernels) and summary.top_kernels or {}
end

-- The mean of the known values, nil without any.
local function mean(values)
  local sum, n = 0, 0
  for _, v in ipairs(values) do sum, n = sum + v, n + 1 end
  return n > 0 and sum / n or nil
end

-- ncu_kernels.csv (a row per profiled launch) as one entry per kernel and device, in
-- the order of first appearance: {name, device, launches, and each figure of
-- ncu_report.FIGURES as the mean over its launches where known}, bound classified
-- from those means by ncu_report's rule. nil when the file is absent or unreadable.
local function ncu_kernels(path)
  local rows = csv.read(path)
  if not rows then return nil end
  local out, by_key = {}, {}
  for _, r in ipairs(rows) do
    local key = tostring(r.name) .. "\0" .. tostring(r.device)
    local k = by_key[key]
    if not k then
      k = { name = r.name or "na", device = r.device or "na", launches = 0, values = {} }
      for _, fig in ipairs(ncu_report.FIGURES) do k.values[fig.key] = {} end
      by_key[key], out[#out + 1] = k, k
    end
    k.launches = k.launches + 1
    for _, fig in ipairs(ncu_report.FIGURES) do
      local v = tonumber(r[fig.key])
      if v and v == v then table.insert(k.values[fig.key], v) end
    end
  end
  for _, k in ipairs(out) do
    for _, fig in ipairs(ncu_report.FIGURES) do k[fig.key] = mean(k.values[fig.key]) end
    k.values = nil
    k.bound = ncu_report.bound(k.sm_throughput_pct, k.memory_throughput_pct or k.dram_throughput_pct)
  end
  return out
end

-- One profiled side: the baseline directory or the run's best/.
local function side(dir, requests_csv)
  local t = json_file(dir .. "/trace_summary.json")
  local metrics = json_file(dir .. "/client_metrics.json") or {}
  return {
    dir = dir, metrics = metrics, trace = t, phases = json_file(dir .. "/nvtx_phases.json"),
    overhead = json_file(dir .. "/profiling_overhead.json"), kernels = all_kernels(dir, t),
    latencies = requests_csv and M.latencies(requests_csv), environment = json_file(dir .. "/environment.json"),
    repeats = type(metrics.repeats) == "table" and metrics.repeats or nil,
    ncu = ncu_kernels(dir .. "/ncu_kernels.csv"), ncu_overhead = json_file(dir .. "/ncu_overhead.json"),
  }
end

-- The baseline's metrics at its capacity (summary.json's baseline_capacity, written for
-- the objective max_rate), or nil.
local function baseline_capacity(summary)
  local c = type(summary.baseline_capacity) == "table" and summary.baseline_capacity.metrics
  return type(c) == "table" and c or nil
end

-- The best's sweep trial directory (its unprofiled requests), when this run measured it.
local function best_trial_requests(run_dir, entry)
  if not entry or entry.resumed or entry.kind == "capacity" then return nil end
  return string.format("%s/trials/%03d-%s/requests.csv", run_dir, entry.trial, entry.knob_mask)
end

-- A profile run (results/profile/<stamp>): the one config is the run directory.
local function single_run(run_dir, summary)
  local run = { dir = run_dir, summary = summary, knob_names = {}, knobs = summary.knobs or {}, single = true }
  for i, k in ipairs(run.knobs) do run.knob_names[i] = k.name end
  run.baseline = side(run_dir, run_dir .. "/requests.csv")
  run.environment = json_file(run_dir .. "/environment.json")
  run.manifest = json_file(run_dir .. "/inputs_manifest.json")
  return run
end

-- The run in run_dir (results/search/<stamp> or results/profile/<stamp>); a directory
-- that is not a finished search or profile run is a usage error naming what is missing.
function M.load(run_dir)
  local given = run_dir
  run_dir = knob.realpath(run_dir) or run_dir -- "RUN/", "." and "latest" name the same run
  local summary = summary_file.read(run_dir .. "/summary.json")
  if not summary then
    errors.usage("report: %s is not a search or profile run (no readable summary.json there)", given)
  end
  if summary.kind == "profile" then return single_run(run_dir, summary) end
  local results = util.dirname(util.dirname(run_dir))
  local base_dir = results .. "/baseline"
  if not knob.is_dir(base_dir) then base_dir = summary.baseline and summary.baseline.dir or base_dir end
  local run = { dir = run_dir, results = results, summary = summary, knob_names = {}, knobs = summary.knobs or {} }
  for i, k in ipairs(run.knobs) do run.knob_names[i] = k.name end
  run.baseline = side(base_dir, base_dir .. "/requests.csv")
  if not knob.is_dir(base_dir) then
    -- the baseline directory is gone: its client metrics are still in summary.json
    run.baseline_missing = base_dir
    run.baseline.metrics = type(summary.baseline) == "table" and summary.baseline.metrics or {}
  end
  local best_index = summary.best_trial
  for _, t in ipairs(summary.trials or {}) do
    if type(best_index) == "number" and t.trial == best_index then run.best_record = t end
  end
  if run.best_record then
    run.best = side(run_dir .. "/best", best_trial_requests(run_dir, run.best_record))
    run.best.repeats = run.best_record and run.best_record.repeats or nil
  end
  local capacity = baseline_capacity(summary)
  if capacity then
    -- objective max_rate: the baseline is compared at its capacity, as the best is
    run.baseline.closed_loop_metrics, run.baseline.metrics = run.baseline.metrics, capacity
    run.baseline.latencies, run.baseline.at_capacity = nil, true
  end
  run.environment = json_file(run_dir .. "/environment.json")
  run.manifest = json_file(run_dir .. "/inputs_manifest.json")
  run.load_sweep = json_file(results .. "/load-sweep/latest/sweep.json")
  run.capacity_grid = json_file(results .. "/capacity-grid/latest/capacity_grid.json")
  run.capacity_grid_dir = run.capacity_grid and knob.realpath(results .. "/capacity-grid/latest")
  return run
end

return M
