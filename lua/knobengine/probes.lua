-- The calibration plan's synthetic probes (Phase A: `load-sweep --probes 512x128,...`)
-- and the scheduler overhead derived from them (docs/load.md "Synthetic probes and
-- scheduler overhead"): each probe is an idle phase (concurrency 1) of prompts of one
-- length, so its TTFT p50 is the server's ideal compute TTFT at that length; the
-- points, interpolated over prompt length, are the ideal of any later request, and
-- TTFT measured minus that ideal is its scheduler overhead (queueing, batching, CPU).
-- Ownership: ideal_ttft.json of a probe sweep is written here and read here.
-- Errors: a bad --probes value is a usage error; a curve that cannot be built is nil.
local cjson = require("cjson")
local knob = require("knob")
local csv = require("knobengine.csv")
local dataset = require("knobengine.dataset")
local errors = require("knobengine.errors")
local format = require("knobengine.format")
local util = require("knobengine.util")

local M = {}

local function quantile(v, q) return require("knobengine.compare").quantile(v, q) end

M.FILE = "ideal_ttft.json"
M.COLUMN = "scheduler_overhead_ms"
M.MAX_TOKENS = 1000000

-- "512x128,2048x512" -> {{label, input_tokens, output_tokens}, ...}.
function M.parse(s)
  local out = {}
  for part in (s .. ","):gmatch("([^,]*),") do
    local i, o = part:match("^(%d+)x(%d+)$")
    i, o = tonumber(i), tonumber(o)
    if not i or i < 1 or o < 1 or i > M.MAX_TOKENS or o > M.MAX_TOKENS then
      errors.usage("--probes: '%s' is not INPUTxOUTPUT (prompt and output tokens, 1..%d each)", part, M.MAX_TOKENS)
    end
    for _, p in ipairs(out) do
      if p.label == part then errors.usage("--probes: '%s' is listed twice", part) end
    end
    out[#out + 1] = { label = part, input_tokens = math.tointeger(i), output_tokens = math.tointeger(o) }
  end
  return out
end

-- The probe levels: each one's own synthetic prompts (a seed per probe, so no probe
-- shares a prefix with another), concurrency 1.
function M.levels(cfg, probes)
  local w = cfg.workload
  local keep = math.max(w.request_count, w.warmup_requests)
  local levels = {}
  for k, p in ipairs(probes) do
    local syn = { synthetic = { input_tokens = p.input_tokens, output_tokens = p.output_tokens, spread = 0 }, seed = w.seed + 7919 * k }
    local items = dataset.load(syn, keep).items
    levels[k] = { concurrency = 1, probe = p.label, input_tokens = p.input_tokens, output_tokens = p.output_tokens,
      bodies = dataset.bodies(items, w) }
  end
  return levels
end

-- The ideal point of a probe: the server's median prompt_tokens (else the probe's
-- length) and its TTFT p50.
function M.point(level, metrics, requests_csv)
  local counts = {}
  for _, r in ipairs(csv.read(requests_csv) or {}) do
    local n = tonumber(r.prompt_tokens)
    if n and n > 0 and (r.error or "") == "" then counts[#counts + 1] = n end
  end
  local ttft = type(metrics.ttft_ms) == "table" and metrics.ttft_ms.p50 or nil
  return { probe = level.probe, prompt_tokens = #counts > 0 and quantile(counts, 0.5) or level.input_tokens,
    ttft_ms = type(ttft) == "number" and ttft or cjson.null }
end

-- The ideal TTFT at n prompt tokens from points sorted by prompt_tokens: linear between
-- neighbours, extended by the nearest segment beyond them (one point: its TTFT), never
-- below 0. nil without a point.
function M.curve(points)
  local pts = {}
  for _, p in ipairs(points) do
    if type(p.ttft_ms) == "number" and type(p.prompt_tokens) == "number" then pts[#pts + 1] = p end
  end
  table.sort(pts, function(a, b) return a.prompt_tokens < b.prompt_tokens end)
  if #pts == 0 then return nil end
  return function(n)
    if #pts == 1 then return pts[1].ttft_ms end
    local k = 1
    while k < #pts - 1 and n > pts[k + 1].prompt_tokens do k = k + 1 end
    local a, b = pts[k], pts[k + 1]
    if b.prompt_tokens == a.prompt_tokens then return a.ttft_ms end
    local v = a.ttft_ms + (n - a.prompt_tokens) * (b.ttft_ms - a.ttft_ms) / (b.prompt_tokens - a.prompt_tokens)
    return math.max(0, v)
  end
end

-- The newest probe sweep of mask in results (its run directory and points), or nil.
function M.latest(results, mask_string)
  local root = results .. require("knobengine.rundir").KINDS["load-sweep"].parent
  local names = {}
  for _, name in ipairs(knob.list_dir(root) or {}) do
    if name:match("^%d+T%d+Z") then names[#names + 1] = name end
  end
  table.sort(names, function(a, b) return a > b end)
  for _, name in ipairs(names) do
    local doc = util.read_json(root .. "/" .. name .. "/" .. M.FILE)
    if doc and doc.knob_mask == mask_string and type(doc.points) == "table" then
      return root .. "/" .. name, doc.points
    end
  end
  return nil
end

-- The scheduler overhead of every request of a requests CSV against curve: the file
-- rewritten with a last column scheduler_overhead_ms (empty where the request has no
-- TTFT or prompt count), and its p50, p99 and mean over the requests that have one.
function M.apply(path, curve)
  local text = util.read_file(path)
  if not text then return nil end
  local lines, values = {}, {}
  local header = text:match("^[^\n]*")
  lines[1] = header .. "," .. M.COLUMN
  csv.each(text, function(r)
    local ttft, n = tonumber(r.ttft_ms), tonumber(r.prompt_tokens)
    local v = ttft and n and n > 0 and (r.error or "") == "" and ttft - curve(n) or nil
    if v then values[#values + 1] = v end
    local cells = {}
    for name in (header .. ","):gmatch("([^,]*),") do cells[#cells + 1] = format.csv_field(r[name] or "") end
    cells[#cells + 1] = v and string.format("%.3f", v) or ""
    lines[#lines + 1] = table.concat(cells, ",")
  end)
  util.write(path, table.concat(lines, "\n") .. "\n")
  if #values == 0 then return nil end
  local sum = 0
  for _, v in ipairs(values) do sum = sum + v end
  return { p50 = quantile(values, 0.5), p99 = quantile(values, 0.99), mean = sum / #values, count = #values }
end

return M
