-- The report's hardware counters (docs/report.md): the Nsight Compute figures of the
-- top kernels in Top Kernels, the GPU Utilisation section (nsys GPU metrics per
-- device) and the Summary's bottleneck sentences. Per GPU always: figures of two
-- devices are never summed or averaged together.
local f = require("knobengine.report.fmt")
local ncu_report = require("knobengine.ncu_report")

local M = {}

local function pct(v) return f.num(v, 1) .. "%" end

-- A side's ncu entries (report/data.lua) on one device, or every device (dev nil), in
-- the side's nsys order (kernels.csv, largest total time first), names nsys spells
-- differently after, in the file's order.
local function ranked(side, dev)
  local rank = {}
  for i, k in ipairs(side and side.kernels or {}) do
    if k.name and not rank[k.name] then rank[k.name] = i end
  end
  local list = {}
  for i, k in ipairs(side and side.ncu or {}) do
    if dev == nil or k.device == dev then list[#list + 1] = { k = k, r = rank[k.name] or math.huge, i = i } end
  end
  table.sort(list, function(a, b)
    if a.r ~= b.r then return a.r < b.r end
    return a.i < b.i
  end)
  for i, e in ipairs(list) do list[i] = e.k end
  return list
end

-- Why a side has no ncu figures.
local function ncu_reason(side)
  if not side then return "there is no best" end
  local o = side.ncu_overhead
  local why = f.get(o, "reason") or f.get(o, "error")
  if why then return why end
  if side.ncu then return "ncu profiled no launch" end
  return o and "no ncu_kernels.csv" or "no ncu pass"
end

-- The device ids of ncu entries on either side, in numeric order where they are numbers.
local function sorted_ids(set)
  local ids = {}
  for id in pairs(set) do ids[#ids + 1] = id end
  table.sort(ids, function(a, b)
    local x, y = tonumber(a), tonumber(b)
    if x and y and x ~= y then return x < y end
    return a < b
  end)
  return ids
end

local function ncu_devices(run)
  local set = {}
  for _, pair in ipairs(f.sides(run)) do
    for _, k in ipairs(pair[2] and pair[2].ncu or {}) do set[k.device] = true end
  end
  return sorted_ids(set)
end

-- ---------- Top Kernels: the Nsight Compute counters ----------

local COUNTER_HEADER = { "Kernel", "GPU", "Base occupancy %", "Base SM %", "Base DRAM %", "Base bound",
  "Best occupancy %", "Best SM %", "Best DRAM %", "Best bound" }

local function counter_cells(k)
  if not k then return { "na", "na", "na", "na" } end
  return { f.num(k.achieved_occupancy_pct, 1), f.num(k.sm_throughput_pct, 1), f.num(k.dram_throughput_pct, 1),
    k.bound or "na" }
end

local SINGLE_COUNTER_HEADER = { "Kernel", "GPU", "Achieved occupancy %", "SM %", "DRAM %", "Bound" }

-- The counter rows: a row per kernel and GPU on either side, the baseline's order first
-- (a profile run: its one side).
local function counter_rows(run)
  local by, order = {}, {}
  for _, pair in ipairs(run.single and { { run.baseline, "a" } } or { { run.baseline, "a" }, { run.best, "b" } }) do
    for _, k in ipairs(ranked(pair[1])) do
      local key = k.name .. "\0" .. k.device
      if not by[key] then by[key] = {}; order[#order + 1] = key end
      by[key][pair[2]] = k
    end
  end
  local rows = {}
  for _, key in ipairs(order) do
    local e = by[key]
    local k = e.a or e.b
    local row = { f.short(k.name), k.device }
    for _, c in ipairs(counter_cells(e.a)) do row[#row + 1] = c end
    if not run.single then
      for _, c in ipairs(counter_cells(e.b)) do row[#row + 1] = c end
    end
    rows[#rows + 1] = row
  end
  return rows
end

-- The blocks Top Kernels adds after its time table.
function M.kernel_blocks(run)
  local rows = counter_rows(run)
  if #rows == 0 then
    if not (run.baseline.ncu_overhead or (run.best and run.best.ncu_overhead)) then
      return { f.p("Hardware counters per kernel (occupancy, SM and DRAM throughput, what bounds it) come from an "
        .. "Nsight Compute pass: add an ncu section to the config (docs/ncu.md).") }
    end
    if run.single then return { f.p("Hardware counters: na (Nsight Compute: " .. ncu_reason(run.baseline) .. ").") } end
    return { f.p(string.format("Hardware counters: na (Nsight Compute: baseline: %s; best: %s).",
      ncu_reason(run.baseline), run.best and ncu_reason(run.best) or "there is no best")) }
  end
  return {
    f.p(string.format("Hardware counters of the top kernels from the Nsight Compute pass (ncu_kernels.csv%s), "
      .. "per GPU: achieved occupancy, SM (compute) and DRAM throughput in %% of peak, the "
      .. "mean over each kernel's profiled launches. Bound: memory or compute when the busier of SM and memory "
      .. "throughput reaches %d%% of peak, else latency (docs/ncu.md). ncu locks the clocks at base, so its "
      .. "durations are not the served ones.", run.single and "" or " of baseline/ and best/", ncu_report.BOUND_THRESHOLD)),
    run.single and f.table(SINGLE_COUNTER_HEADER, rows, { "l", "l", "r", "r", "r", "l" })
      or f.table(COUNTER_HEADER, rows, { "l", "l", "r", "r", "r", "l", "r", "r", "r", "l" }),
  }
end

-- ---------- GPU Utilisation: nsys GPU metrics per device ----------

-- The devices with GPU metrics on either side, as plot-safe ids (digits).
function M.devices(run)
  local set = {}
  for _, pair in ipairs(f.sides(run)) do
    local gm = pair[2] and f.get(pair[2].trace, "gpu_metrics")
    if type(gm) == "table" then
      for id in pairs(gm) do
        if tostring(id):match("^%d+$") then set[tostring(id)] = true end
      end
    end
  end
  return sorted_ids(set)
end

local function device_of(side, dev) return side and f.get(side.trace, "gpu_metrics", dev) end

-- The headline metric names of a device, the baseline's order first.
local function headline_names(run, dev)
  local names, seen = {}, {}
  for _, pair in ipairs(f.sides(run)) do
    for _, name in ipairs(f.get(device_of(pair[2], dev), "headline") or {}) do
      if not seen[name] then seen[name] = true; names[#names + 1] = name end
    end
  end
  return names
end

local function window_text(d)
  if not d then return "no samples" end
  local w = f.get(d, "window")
  if not w then return "never sampled" end
  return string.format("%s ms (%s), %s samples", f.num(w.duration_ms), w.basis == "kernels" and "the kernel span"
    or "every sample: no kernel ran on it", f.int(d.samples))
end

-- A profile run's device: its one side's figures.
local function single_device_blocks(run, dev)
  local a = device_of(run.baseline, dev)
  local rows = {}
  for _, name in ipairs(headline_names(run, dev)) do
    local m = f.get(a, "metrics", name) or {}
    rows[#rows + 1] = { name, f.num(m.mean, 1), f.num(m.p50, 1), f.num(m.max, 1) }
  end
  return {
    f.p(string.format("GPU %s: window %s.", dev, window_text(a))),
    f.table({ "Metric (% of peak)", "Mean", "p50", "Max" }, rows, { "l", "r", "r", "r" }),
    f.figure("gpu-" .. dev, "GPU " .. dev .. ": the headline metrics over the measured window, each point the mean "
      .. "of the samples in one of the window's equal buckets (120, or one per sample when there are fewer)."),
  }
end

local function device_blocks(run, dev)
  if run.single then return single_device_blocks(run, dev) end
  local a, b = device_of(run.baseline, dev), device_of(run.best, dev)
  local rows = {}
  for _, name in ipairs(headline_names(run, dev)) do
    local ma, mb = f.get(a, "metrics", name) or {}, f.get(b, "metrics", name) or {}
    rows[#rows + 1] = { name, f.num(ma.mean, 1), f.num(ma.p50, 1), f.num(ma.max, 1), f.num(mb.mean, 1),
      f.num(mb.p50, 1), f.num(mb.max, 1), f.delta(mb.mean, ma.mean, 1) }
  end
  return {
    f.p(string.format("GPU %s: baseline window %s; best window %s.", dev, window_text(a),
      run.best and window_text(b) or "no best")),
    f.table({ "Metric (% of peak)", "Base mean", "Base p50", "Base max", "Best mean", "Best p50", "Best max", "Delta mean" },
      rows, { "l", "r", "r", "r", "r", "r", "r", "r" }),
    f.figure("gpu-" .. dev, "GPU " .. dev .. ": the headline metrics over the measured window, baseline (top) and best "
      .. "(bottom), each point the mean of the samples in one of the window's equal buckets (120, or one per sample "
      .. "when there are fewer)."),
  }
end

function M.utilisation(run)
  local devices = M.devices(run)
  local blocks = {}
  if #devices == 0 then
    local t = run.baseline.trace
    local why = t and (f.get(t, "gpu_metrics_reason") or f.get(t, "reason") or "the profiles hold no GPU metrics samples")
      or ((run.single and "the run" or "the baseline") .. " has no trace_summary.json")
    blocks[1] = f.p("na: " .. why .. ". With nsys.gpu_metrics on, this section shows each GPU's SM, tensor and DRAM "
      .. "activity over the profiled launches (docs/nsys.md).")
  else
    blocks[1] = f.p("GPU metrics sampled by nsys in the profiled launches (trace_summary.json gpu_metrics), per GPU: "
      .. "mean, p50 and max over the window, the kernel span of that GPU (the samples' span on a GPU no kernel ran "
      .. "on; docs/nsys.md).")
    for _, dev in ipairs(devices) do
      for _, block in ipairs(device_blocks(run, dev)) do blocks[#blocks + 1] = block end
    end
  end
  return { id = "gpu_utilisation", title = "GPU Utilisation", blocks = blocks }
end

-- ---------- Summary: the bottleneck ----------

local BOUND_ORDER = { "memory", "compute", "latency", "na" }

local function mean_of(ks, key)
  local sum, n = 0, 0
  for _, k in ipairs(ks) do
    if f.known(k[key]) then sum, n = sum + k[key], n + 1 end
  end
  return n > 0 and sum / n or nil
end

-- "DRAM 91.7% of peak, SM 46.5%, achieved occupancy 74.5%": a group's means.
local function group_figures(bound, ks)
  local sm, dram = mean_of(ks, "sm_throughput_pct"), mean_of(ks, "dram_throughput_pct")
  local mem = mean_of(ks, "memory_throughput_pct") or dram
  local text
  if bound == "memory" then
    text = (f.num(mem, 1) == f.num(dram, 1) and "DRAM " .. pct(dram) or "memory " .. pct(mem) .. " (DRAM " .. pct(dram) .. ")")
      .. " of peak, SM " .. pct(sm)
  elseif bound == "compute" then
    text = "SM " .. pct(sm) .. " of peak, memory " .. pct(mem)
  else
    text = "SM " .. pct(sm) .. ", memory " .. pct(mem) .. " of peak"
  end
  local occ = mean_of(ks, "achieved_occupancy_pct")
  return occ and text .. ", achieved occupancy " .. pct(occ) or text
end

local BOUND_WORD = { memory = "memory-bound", compute = "compute-bound", latency = "latency-bound",
  na = "unclassified (speed-of-light figures missing)" }

-- "the top 3 kernels are memory-bound: DRAM 92.0% of peak, SM 47.0%", or by group.
function M.describe(ks)
  local groups, present = {}, {}
  for _, k in ipairs(ks) do
    local b = k.bound or "na"
    if not groups[b] then groups[b] = {}; present[#present + 1] = b end
    table.insert(groups[b], k)
  end
  local n = #ks
  if #present == 1 then
    local b = present[1]
    local subject = n == 1 and "the top kernel is " or string.format("the top %d kernels are ", n)
    return subject .. BOUND_WORD[b] .. (b == "na" and "" or ": " .. group_figures(b, ks))
  end
  local parts = {}
  for _, b in ipairs(BOUND_ORDER) do
    local g = groups[b]
    if g then
      parts[#parts + 1] = string.format("%d %s %s%s", #g, #g == 1 and "is" or "are", BOUND_WORD[b],
        b == "na" and "" or " (" .. group_figures(b, g) .. ")")
    end
  end
  return string.format("of the top %d kernels, %s", n, table.concat(parts, ", "))
end

-- The bound most of the kernels share (ties: the top kernel's).
local function dominant(ks)
  local count, best = {}, nil
  for _, k in ipairs(ks) do count[k.bound or "na"] = (count[k.bound or "na"] or 0) + 1 end
  for _, k in ipairs(ks) do
    local b = k.bound or "na"
    if not best or count[b] > count[best] then best = b end
  end
  return best
end

local function names_of(ks)
  local set = {}
  for _, k in ipairs(ks) do set[k.name] = true end
  return set
end

-- What the best changed against the baseline's top kernels on one GPU.
local function changed(a, b)
  local parts = {}
  local da, db = dominant(a), dominant(b)
  if da ~= db then
    parts[#parts + 1] = string.format("moves the bottleneck from %s to %s", BOUND_WORD[da], BOUND_WORD[db])
  else
    parts[#parts + 1] = "keeps the bottleneck " .. BOUND_WORD[da]
  end
  parts[#parts + 1] = string.format("SM %s, DRAM %s, achieved occupancy %s points",
    f.delta(mean_of(b, "sm_throughput_pct"), mean_of(a, "sm_throughput_pct"), 1),
    f.delta(mean_of(b, "dram_throughput_pct"), mean_of(a, "dram_throughput_pct"), 1),
    f.delta(mean_of(b, "achieved_occupancy_pct"), mean_of(a, "achieved_occupancy_pct"), 1))
  local na, nb, new, gone = names_of(a), names_of(b), 0, 0
  for name in pairs(nb) do if not na[name] then new = new + 1 end end
  for name in pairs(na) do if not nb[name] then gone = gone + 1 end end
  if new + gone > 0 then
    parts[#parts + 1] = string.format("%d of its top kernels %s new, %d of the baseline's left the top", new,
      new == 1 and "is" or "are", gone)
  end
  return table.concat(parts, "; ")
end

local function bottleneck(run, dev)
  local a, b = ranked(run.baseline, dev), ranked(run.best, dev)
  local head = string.format("Bottleneck on GPU %s (Nsight Compute): ", dev)
  if run.single then return head .. M.describe(a) .. "." end
  if #a > 0 and #b > 0 then
    return string.format("%sin the baseline %s; in the best %s. The best %s.", head, M.describe(a), M.describe(b),
      changed(a, b))
  elseif #a > 0 then
    return string.format("%sin the baseline %s; the best has none (%s).", head, M.describe(a), ncu_reason(run.best))
  end
  return string.format("%sin the best %s; the baseline has none (%s).", head, M.describe(b), ncu_reason(run.baseline))
end

-- "baseline SM Active 96.0%, Tensor Active 0.0%; best ...": the window means.
local function utilisation_sentence(run, dev)
  local parts, basis = {}, nil
  for _, pair in ipairs(f.sides(run)) do
    local d = device_of(pair[2], dev)
    if d then
      local means = {}
      for _, name in ipairs(f.get(d, "headline") or {}) do
        means[#means + 1] = name .. " " .. pct(f.get(d, "metrics", name, "mean"))
      end
      parts[#parts + 1] = pair[1] .. " " .. table.concat(means, ", ")
      basis = basis or f.get(d, "window", "basis")
    end
  end
  return string.format("GPU %s utilisation (nsys GPU metrics, mean over %s): %s.", dev,
    basis == "samples" and "the samples' span: no kernel ran on it" or "its kernel span", table.concat(parts, "; "))
end

-- The Summary's sentences, one per GPU: the bottleneck from ncu where that GPU has ncu
-- figures, else its utilisation from nsys GPU metrics.
function M.findings(run)
  local out, said = {}, {}
  for _, dev in ipairs(ncu_devices(run)) do
    out[#out + 1] = bottleneck(run, dev)
    said[dev] = true
  end
  for _, dev in ipairs(M.devices(run)) do
    if not said[dev] then out[#out + 1] = utilisation_sentence(run, dev) end
  end
  return out
end

return M
