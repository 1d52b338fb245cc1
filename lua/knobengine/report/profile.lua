-- The report's profile sections, baseline and best side by side: Top Operators (NVTX
-- ranges and CUDA API calls) and Top Kernels (docs/report.md), with the kernels'
-- hardware counters (report/counters.lua).
local counters = require("knobengine.report.counters")
local f = require("knobengine.report.fmt")

local M = {}

local TOP = 10
M.TOP = TOP -- rows of the operator and kernel tables (report/single.lua's too)

-- The union of the top n entries of two lists (by total_ms), keyed by key(entry):
-- {key, a = entry or nil, b = entry or nil}, largest first.
function M.side_by_side(list_a, list_b, key, n)
  local by, order = {}, {}
  local function add(list, side)
    for i, e in ipairs(list or {}) do
      if i > n then break end
      local k = key(e)
      if not by[k] then by[k] = { key = k }; order[#order + 1] = by[k] end
      by[k][side] = e
    end
  end
  add(list_a, "a")
  add(list_b, "b")
  -- an entry outside one side's top n still shows that side's figure
  for _, pair in ipairs({ { list_a, "a" }, { list_b, "b" } }) do
    for _, e in ipairs(pair[1] or {}) do
      local row = by[key(e)]
      if row and not row[pair[2]] then row[pair[2]] = e end
    end
  end
  local function size(r) return math.max(r.a and r.a.total_ms or 0, r.b and r.b.total_ms or 0) end
  table.sort(order, function(x, y)
    if size(x) ~= size(y) then return size(x) > size(y) end
    return x.key < y.key
  end)
  return order
end

-- A side's NVTX ranges and CUDA API calls as one list, largest total first.
function M.operators_of(side)
  local list = {}
  local t = side and side.trace or {}
  for _, r in ipairs(f.get(t, "nvtx_ranges") or {}) do
    list[#list + 1] = { kind = "NVTX", name = r.name, total_ms = r.total_ms, calls = r.count, mean_ms = r.mean_ms }
  end
  local seen = {}
  for _, a in ipairs(f.get(t, "cuda_api_top") or {}) do
    -- a versioned entry point (cudaMemcpy_v3020) nested in its public one prints with the
    -- same name: the larger, outer one stands for both
    if not seen[a.name] then
      list[#list + 1] = { kind = "CUDA API", name = a.name, total_ms = a.total_ms, calls = a.calls, mean_ms = a.mean_ms }
      seen[a.name] = true
    end
  end
  table.sort(list, function(x, y) return x.total_ms > y.total_ms end)
  return list
end

function M.operators(run)
  local key = function(e) return e.kind .. "\0" .. e.name end
  local rows = {}
  for _, r in ipairs(M.side_by_side(M.operators_of(run.baseline), M.operators_of(run.best), key, TOP)) do
    local a, b = r.a or {}, r.b or {}
    local e = r.a or r.b
    rows[#rows + 1] = { e.kind, f.short(e.name), f.num(a.total_ms), f.int(a.calls), f.num(a.mean_ms),
      f.num(b.total_ms), f.int(b.calls), f.num(b.mean_ms), f.delta(b.total_ms, a.total_ms) }
  end
  local blocks = { f.p("Host-side operators by total time: the server's NVTX ranges and the CUDA runtime API calls "
    .. "it made (nsys nvtxsum and cudaapisum), top " .. TOP .. " of each run. Ranges nest, so their times overlap.") }
  if #rows == 0 then
    blocks[#blocks + 1] = f.p("na: " .. (f.get(run.baseline.trace, "reason") or "the profiles hold no NVTX ranges or CUDA API calls") .. ".")
  else
    blocks[#blocks + 1] = f.table({ "Kind", "Name", "Base total ms", "Base calls", "Base mean ms", "Best total ms",
      "Best calls", "Best mean ms", "Delta ms" }, rows, { "l", "l", "r", "r", "r", "r", "r", "r", "r" })
  end
  return { id = "operators", title = "Top Operators", blocks = blocks }
end

-- Top Kernels' paragraph when a profile holds no kernel (subject: "the profiles hold"
-- or "the profile holds").
function M.no_kernels(trace, subject)
  local missing = f.get(trace, "missing_tables") or {}
  return f.p("na: " .. subject .. " no GPU kernels ("
    .. (f.get(trace, "reason") or (#missing > 0 and ("the trace has no " .. table.concat(missing, ", ")) or "none ran"))
    .. "). On a GPU server with nsys.trace including cuda this table lists the top " .. TOP .. " kernels.")
end

function M.kernels(run)
  local key = function(k) return k.name end
  local rows = {}
  for _, r in ipairs(M.side_by_side(run.baseline.kernels, run.best and run.best.kernels, key, TOP)) do
    local a, b = r.a or {}, r.b or {}
    rows[#rows + 1] = { f.short(r.key), f.num(a.total_ms), f.int(a.count), f.num(a.mean_ms), f.num(a.percent, 1),
      f.num(b.total_ms), f.int(b.count), f.num(b.mean_ms), f.num(b.percent, 1), f.delta(b.total_ms, a.total_ms) }
  end
  local base_gpu, best_gpu = f.get(run.baseline.trace, "gpu_compute_ms"), run.best and f.get(run.best.trace, "gpu_compute_ms")
  local blocks = {}
  if #rows == 0 then
    blocks[1] = M.no_kernels(run.baseline.trace, "the profiles hold")
  else
    blocks[1] = f.p(string.format("GPU kernels by total time, top %d of each run; percent is of all GPU compute time "
      .. "(baseline %s ms, best %s ms). Every kernel is in kernels.csv of baseline/ and best/.", TOP,
      f.num(base_gpu), f.num(best_gpu)))
    blocks[2] = f.table({ "Kernel", "Base total ms", "Base calls", "Base mean ms", "Base %", "Best total ms", "Best calls",
      "Best mean ms", "Best %", "Delta ms" }, rows, { "l", "r", "r", "r", "r", "r", "r", "r", "r", "r" })
    blocks[3] = f.figure("kernels", "Time of the top kernels, baseline vs best.")
  end
  if #rows > 0 or run.baseline.ncu or (run.best and run.best.ncu) then
    for _, b in ipairs(counters.kernel_blocks(run)) do blocks[#blocks + 1] = b end
  end
  return { id = "kernels", title = "Top Kernels", blocks = blocks }
end

return M
