-- "What the server saw": the server's own Prometheus metrics and the GPUs' telemetry
-- of the baseline and the best (docs/files.md "Server metrics", "GPU telemetry"), per
-- trial, and the sentence the Summary takes from them.
local f = require("knobengine.report.fmt")

local M = {}

-- A fraction as a percentage.
local function pct(v) return f.known(v) and 100 * v or nil end

local function hit_rate(srv)
  local q, h = f.get(srv, "prefix_cache_queries"), f.get(srv, "prefix_cache_hits")
  return f.known(q) and f.known(h) and q > 0 and 100 * h / q or nil
end

-- The rows: label, how a side's metrics give it, decimals, whether higher is better.
M.ROWS = {
  { "preemptions", function(m) return f.get(m, "server", "preemptions") end, 0 },
  { "KV cache use, mean (%)", function(m) return pct(f.get(m, "server", "kv_cache_usage_mean")) end, 1 },
  { "KV cache use, max (%)", function(m) return pct(f.get(m, "server", "kv_cache_usage_max")) end, 1 },
  { "requests running, mean", function(m) return f.get(m, "server", "requests_running_mean") end, 2, higher = true },
  { "requests waiting, mean", function(m) return f.get(m, "server", "requests_waiting_mean") end, 2 },
  { "requests waiting, max", function(m) return f.get(m, "server", "requests_waiting_max") end, 0 },
  { "prefix cache hit rate (%)", function(m) return hit_rate(f.get(m, "server")) end, 1, higher = true },
  { "prompt tokens (server)", function(m) return f.get(m, "server", "prompt_tokens") end, 0 },
  { "generation tokens (server)", function(m) return f.get(m, "server", "generation_tokens") end, 0 },
  { "GPU power, mean (W)", function(m) return f.get(m, "gpu", "power_w_mean") end, 1 },
  { "GPU SM utilisation, mean (%)", function(m) return f.get(m, "gpu", "sm_util_pct_mean") end, 1, higher = true },
  { "GPU memory used, max (MiB)", function(m) return f.get(m, "gpu", "memory_used_mib_max") end, 0 },
  { "GPU energy (J)", function(m) return f.get(m, "gpu", "energy_j") end, 1 },
  { "energy per output token (J)", function(m) return f.get(m, "joules_per_output_token") end, 4 },
  { "output tokens per joule", function(m) return f.get(m, "tokens_per_joule") end, 2, higher = true },
}

-- Why a side has no server metrics / GPU telemetry, or nil.
local function reasons(m)
  return f.get(m, "server", "unavailable"), f.get(m, "gpu", "unavailable")
end

local function sides_table(run)
  local sides, rows, marks = f.sides(run), {}, {}
  local header, align = { "Metric" }, { "l" }
  for _, s in ipairs(sides) do header[#header + 1], align[#align + 1] = s[1], "r" end
  if #sides == 2 then header[#header + 1], align[#align + 1] = "Delta", "r" end
  for _, r in ipairs(M.ROWS) do
    local v = {}
    for i, s in ipairs(sides) do v[i] = r[2](s[2] and s[2].metrics or {}) end
    local row = { r[1] }
    for i = 1, #sides do row[#row + 1] = f.num(v[i], r[3]) end
    if #sides == 2 then
      row[#row + 1] = f.delta(v[2], v[1], r[3])
      local verdict = f.judge(v[2], v[1], r.higher, r[3])
      if verdict then marks[#rows + 1] = { [4] = verdict } end
    end
    rows[#rows + 1] = row
  end
  return f.table(header, rows, align, nil, marks)
end

local function trials_table(run)
  local rows, highlight = {}, {}
  for _, i in ipairs((require("knobengine.report.trials").shown(run))) do
    local t = run.summary.trials[i]
    if t.trial == run.summary.best_trial then highlight[#rows + 1] = true end
    local m = t.metrics or {}
    rows[#rows + 1] = { f.int(t.trial), t.knob_mask, f.num(f.get(m, "server", "preemptions"), 0),
      f.num(pct(f.get(m, "server", "kv_cache_usage_max")), 1), f.num(f.get(m, "server", "requests_waiting_max"), 0),
      f.num(hit_rate(f.get(m, "server")), 1), f.num(f.get(m, "joules_per_output_token"), 4) }
  end
  return f.table({ "Trial", "Mask", "Preemptions", "KV max %", "Waiting max", "Prefix hit %", "J / token" }, rows,
    { "r", "l", "r", "r", "r", "r", "r" }, highlight)
end

function M.section(run)
  local base = run.baseline and run.baseline.metrics or {}
  local srv_why, gpu_why = reasons(base)
  local text = "What the server itself reported during the measured phase (its Prometheus metrics, scraped every "
    .. "server.metrics_interval_ms) and what the GPUs drew (NVML), beside the client's figures above."
  if srv_why then text = text .. " The server's metrics are na: " .. srv_why .. "." end
  if gpu_why then text = text .. " GPU telemetry is na: " .. gpu_why .. "." end
  local blocks = { f.p(text), sides_table(run) }
  if not run.single and #(run.summary.trials or {}) > 0 then
    blocks[#blocks + 1] = f.p("Per trial (the trials the All trials table shows, the best in bold): what the server saw.")
    blocks[#blocks + 1] = trials_table(run)
  end
  return { id = "server", title = "What the server saw", blocks = blocks }
end

-- The Summary's sentence: the best against the baseline in the server's own terms, or
-- nil when the server reported nothing.
function M.finding(run)
  if run.single or not run.best then return nil end
  local b, w = run.baseline.metrics or {}, run.best.metrics or {}
  local parts = {}
  local bp, wp = f.get(b, "server", "preemptions"), f.get(w, "server", "preemptions")
  if f.known(bp) and f.known(wp) then parts[#parts + 1] = string.format("%s preemptions vs %s", f.int(wp), f.int(bp)) end
  local bk, wk = pct(f.get(b, "server", "kv_cache_usage_mean")), pct(f.get(w, "server", "kv_cache_usage_mean"))
  if f.known(bk) and f.known(wk) then parts[#parts + 1] = string.format("KV cache use %.0f%% vs %.0f%%", wk, bk) end
  local bh, wh = hit_rate(f.get(b, "server")), hit_rate(f.get(w, "server"))
  if f.known(wh) then parts[#parts + 1] = string.format("prefix cache hits %.0f%% vs %s", wh, f.known(bh)
    and string.format("%.0f%%", bh) or "na") end
  local bq, wq = f.get(b, "server", "requests_waiting_mean"), f.get(w, "server", "requests_waiting_mean")
  if f.known(bq) and f.known(wq) then parts[#parts + 1] = string.format("%.1f requests waiting on average vs %.1f", wq, bq) end
  if #parts == 0 then return nil end
  return "What the server saw, best vs baseline: " .. table.concat(parts, "; ") .. "."
end

return M
