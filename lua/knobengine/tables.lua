-- The tables of a trace as CSV files (docs/report.md "Tables"): kernels.csv (every
-- kernel and whole CUDA graph, a row per device it ran on) and nvtx.csv (every NVTX
-- range). Pure functions of a trace summary; numbers at 6 decimals, as `knobengine
-- summarize` prints them.
local format = require("knobengine.format")
local util = require("knobengine.util")

local M = {}

M.KERNELS_HEADER = "name,device,calls,total_ms,mean_ms,min_ms,max_ms,percent"
M.NVTX_HEADER = "name,style,calls,total_ms,mean_ms,percent"

local function n6(v) return format.fixed(v, 6) end

-- Every kernel (and whole graph) per device, largest total first (ties: the kernel's place
-- in the top list, then the device): a kernel that ran on two GPUs is two rows.
local function kernel_rows(summary)
  local rows = {}
  for rank, k in ipairs(util.is_null(summary.top_kernels) and {} or summary.top_kernels) do
    local devices = type(k.devices) == "table" and #k.devices > 0 and k.devices or { k }
    for _, d in ipairs(devices) do
      rows[#rows + 1] = { name = k.name, device = d.device, count = d.count, total_ms = d.total_ms,
        mean_ms = d.mean_ms, min_ms = d.min_ms, max_ms = d.max_ms, percent = d.percent, rank = rank }
    end
  end
  table.sort(rows, function(a, b)
    if a.total_ms ~= b.total_ms then return a.total_ms > b.total_ms end
    if a.rank ~= b.rank then return a.rank < b.rank end
    return (a.device or -1) < (b.device or -1)
  end)
  return rows
end

-- kernels.csv of a summary read with every kernel (trace.read with top_kernels "all");
-- a trace without kernel data gives the header alone.
function M.kernels_csv(summary)
  local lines = { M.KERNELS_HEADER }
  for _, k in ipairs(kernel_rows(summary)) do
    lines[#lines + 1] = table.concat({ format.csv_field(k.name), k.device and string.format("%d", k.device) or "",
      tostring(k.count), n6(k.total_ms), n6(k.mean_ms), n6(k.min_ms), n6(k.max_ms), n6(k.percent) }, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

function M.nvtx_csv(summary)
  local lines = { M.NVTX_HEADER }
  for _, r in ipairs(util.is_null(summary.nvtx_ranges) and {} or summary.nvtx_ranges) do
    lines[#lines + 1] = table.concat({ format.csv_field(r.name), r.style, tostring(r.count), n6(r.total_ms),
      n6(r.mean_ms), n6(r.percent) }, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
