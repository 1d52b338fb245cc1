-- Reading an Nsight Compute report (docs/ncu.md): `ncu -i R --csv --page raw` (and
-- `--page details` for a figure the raw page lacks), run as a process, parsed with
-- csv.lua into one row per profiled launch with the figures of `knobengine ncu` and
-- ncu_kernels.csv, and the bound classification from the speed-of-light figures.
local knob = require("knob")
local csv = require("knobengine.csv")
local format = require("knobengine.format")
local util = require("knobengine.util")

local M = {}

M.HEADER = "id,name,device,device_name,duration_us,sm_throughput_pct,memory_throughput_pct,"
  .. "dram_throughput_pct,achieved_occupancy_pct,theoretical_occupancy_pct,registers_per_thread,block_size,"
  .. "grid_size,bound"

-- The bound classification: the larger of SM and memory throughput (% of peak) at or
-- above this decides compute- or memory-bound; both below: latency-bound.
M.BOUND_THRESHOLD = 60

-- The figures: where the raw page has them (the first metric present), the names the
-- details page prints them under, and their kind (time: converted to microseconds;
-- pct: a percentage, unit "%"; count: a plain number).
M.FIGURES = {
  { key = "duration_us", kind = "time", raw = { "gpu__time_duration.sum" }, details = { "Duration" } },
  { key = "sm_throughput_pct", kind = "pct", raw = { "sm__throughput.avg.pct_of_peak_sustained_elapsed" },
    details = { "Compute (SM) [%]", "Compute (SM) Throughput" } },
  { key = "memory_throughput_pct", kind = "pct",
    raw = { "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed" },
    details = { "Memory [%]", "Memory Throughput" } },
  { key = "dram_throughput_pct", kind = "pct",
    raw = { "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed", "dram__throughput.avg.pct_of_peak_sustained_elapsed" },
    details = { "DRAM Throughput" } },
  { key = "achieved_occupancy_pct", kind = "pct", raw = { "sm__warps_active.avg.pct_of_peak_sustained_active" },
    details = { "Achieved Occupancy" } },
  { key = "theoretical_occupancy_pct", kind = "pct", raw = { "sm__maximum_warps_per_active_cycle_pct" },
    details = { "Theoretical Occupancy" } },
  { key = "registers_per_thread", kind = "count", raw = { "launch__registers_per_thread" },
    details = { "Registers Per Thread" } },
  { key = "block_size", kind = "count", raw = { "launch__block_size" }, details = { "Block Size" } },
  { key = "grid_size", kind = "count", raw = { "launch__grid_size" }, details = { "Grid Size" } },
}

local TIME_UNITS = { nsecond = 1e-3, usecond = 1, msecond = 1e3, second = 1e6, ns = 1e-3, us = 1, ms = 1e3, s = 1e6 }

-- A figure's value from ncu's text and unit, or nil: a time in microseconds, a
-- percentage only with unit "%" (or none given), a count whatever its unit. ncu may group digits
-- with commas.
function M.value(kind, text, unit)
  local v = tonumber(((text or ""):gsub(",", "")))
  if not v or v ~= v or v == math.huge or v == -math.huge then return nil end
  if kind == "time" then
    local f = TIME_UNITS[unit or ""]
    return f and v * f or nil
  end
  if kind == "pct" and unit ~= "%" and unit ~= nil then return nil end
  return v
end

-- "memory", "compute" or "latency" from SM and memory throughput (% of peak), or nil
-- when either is unknown. At equal figures, memory.
function M.bound(sm, mem)
  if type(sm) ~= "number" or type(mem) ~= "number" then return nil end
  if math.max(sm, mem) < M.BOUND_THRESHOLD then return "latency" end
  return mem >= sm and "memory" or "compute"
end

-- Runs `ncu -i path --csv --page page`: its output (stdout and stderr), or nil and why.
local function ncu_csv(bin, path, page, timeout_s)
  local out = os.tmpname()
  local status, err = knob.run({ bin, "-i", path, "--csv", "--page", page, "--print-units", "auto" }, out, timeout_s)
  local text = util.read_file(out) or ""
  os.remove(out)
  require("knobengine.errors").check_interrupted("interrupted while ncu read a report")
  if not status then return nil, err end
  if status ~= 0 then
    local said = text:match("==ERROR==%s*([^\n]*)") or text:match("([^\n]+)%s*$") or "no output"
    return nil, string.format("ncu -i exited with status %d: %s", status, said)
  end
  -- ncu's own notes (==WARNING== ..., ==PROF== ...) are not CSV
  local kept = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if not line:match("^==%u+==") then kept[#kept + 1] = line end
  end
  return table.concat(kept, "\n")
end

-- The launches of the raw page: {id, name, device, device_name, figures = {key = v}}
-- in the report's order, or nil and why.
local function raw_launches(text)
  local units, launches = nil, {}
  if not text:find("%S") then return launches end -- a report without a profiled launch
  local ok, why = csv.each(text, function(row)
    if not units and row["ID"] == "" then units = row; return end -- each metric's unit, before the first launch
    units = units or {}
    local l = { id = row["ID"], name = row["Kernel Name"], device = row["launch__device_id"],
      device_name = row["device__attribute_display_name"], figures = {} }
    for _, f in ipairs(M.FIGURES) do
      for _, metric in ipairs(f.raw) do
        local v = M.value(f.kind, row[metric], units[metric])
        if v then l.figures[f.key] = v; break end
      end
    end
    launches[#launches + 1] = l
  end)
  if not ok then return nil, "cannot parse ncu's raw page: " .. why end
  return launches
end

-- Fills the figures the raw page lacked from the details page (by result ID and the
-- name ncu prints).
local function fill_from_details(launches, text)
  local by_name = {}
  for _, f in ipairs(M.FIGURES) do
    for _, name in ipairs(f.details) do by_name[name] = f end
  end
  local by_id = {}
  for _, l in ipairs(launches) do by_id[l.id] = l end
  local ok, why = csv.each(text, function(row)
    local l, f = by_id[row["ID"]], by_name[row["Metric Name"] or ""]
    if l and f and l.figures[f.key] == nil then
      l.figures[f.key] = M.value(f.kind, row["Metric Value"], row["Metric Unit"])
    end
  end)
  if not ok then return nil, "cannot parse ncu's details page: " .. why end
  return true
end

local function incomplete(launches)
  for _, l in ipairs(launches) do
    for _, f in ipairs(M.FIGURES) do
      if l.figures[f.key] == nil then return true end
    end
  end
  return false
end

-- Every profiled launch of the report at path, read with ncu `bin`, or nil and why.
function M.read(bin, path, timeout_s)
  local text, err = ncu_csv(bin, path, "raw", timeout_s)
  if not text then return nil, err end
  local launches, why = raw_launches(text)
  if not launches then return nil, why end
  if #launches > 0 and incomplete(launches) then
    text, err = ncu_csv(bin, path, "details", timeout_s)
    if not text then return nil, err end
    local ok, derr = fill_from_details(launches, text)
    if not ok then return nil, derr end
  end
  for _, l in ipairs(launches) do
    local fig = l.figures
    l.bound = M.bound(fig.sm_throughput_pct, fig.memory_throughput_pct or fig.dram_throughput_pct)
  end
  return launches
end

-- A number as ncu gave it: whole numbers without a fraction, others at up to 15
-- significant digits (no unit conversion noise); na when unknown.
local function num(v)
  if type(v) ~= "number" then return "na" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", math.tointeger(v)) end
  return string.format("%.15g", v)
end

-- The CSV text of launches (M.HEADER, then a row each). field: how a name from the
-- report is written (format.csv_field for a file, format.line_field for stdout).
function M.csv(launches, field)
  field = field or format.csv_field
  local lines = { M.HEADER }
  for _, l in ipairs(launches) do
    local row = { field(l.id or "na"), field(l.name or "na"), field(l.device or "na"), field(l.device_name or "na") }
    for _, f in ipairs(M.FIGURES) do row[#row + 1] = num(l.figures[f.key]) end
    row[#row + 1] = l.bound or "na"
    lines[#lines + 1] = table.concat(row, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
