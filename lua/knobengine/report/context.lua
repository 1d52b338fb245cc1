-- What the report's reader needs before any figure (docs/report.md "What was tested"):
-- the model, the workload's shape and the best's command as meta lines; how sure the
-- win is (a bootstrap interval of the objective's difference over the repeats); and
-- the Pareto alternatives to the best, in words.
local f = require("knobengine.report.fmt")
local objective = require("knobengine.report.objective")
local rng = require("knobengine.rng")

local M = {}

-- The config the workload was measured with: the baseline's (a search), or the one
-- config's (a profile run).
local function measured_config(run)
  return f.get(run.summary, "baseline", "config") or f.get(run.summary, "config") or {}
end

local function model_line(run)
  local cfg = measured_config(run)
  local served = f.get(cfg, "workload", "model") or f.get(run.manifest, "model")
  local m = f.get(run.summary, "model") or {}
  local parts = { "Model: " .. (served and tostring(served) or "na") .. " (workload.model)" }
  if m.name or m.params_b then
    parts[#parts + 1] = string.format("model: %s%s", m.name and tostring(m.name) or "unnamed",
      f.known(m.params_b) and string.format(", %s B parameters", f.num(m.params_b, 1)) or "")
  end
  return table.concat(parts, "; ")
end

-- "closed loop at concurrency 4" / "poisson arrivals at 20.000 req/s (at most 64 in flight)"
local function arrival_text(id, w)
  local kind = id["workload.arrival.type"] or "closed"
  if kind == "closed" then return "closed loop at concurrency " .. f.int(w.concurrency or id["workload.concurrency"]) end
  local rate = id["workload.arrival.rate"]
  return string.format("%s arrivals%s", tostring(kind), f.known(rate) and (" at " .. f.num(rate) .. " req/s") or "")
end

local function lengths_text(manifest)
  local p, o = f.get(manifest, "prompt_words"), f.get(manifest, "max_output_tokens")
  local parts = {}
  if p then parts[#parts + 1] = string.format("prompts %s-%s words (mean %s)", f.int(p.min), f.int(p.max), f.num(p.mean, 0)) end
  if o then parts[#parts + 1] = string.format("up to %s output tokens (mean %s)", f.int(o.max), f.num(o.mean, 1)) end
  return parts
end

local function workload_line(run)
  local cfg = measured_config(run)
  local w, id = cfg.workload or {}, cfg.identity or {}
  local source = f.get(run.manifest, "dataset", "path") or w.dataset or (w.synthetic and "synthetic prompts") or "na"
  local parts = { string.format("Workload: %s measured requests (+%s warm-up) from %s, %s",
    f.int(w.request_count), f.int(w.warmup_requests), tostring(source), arrival_text(id, w)) }
  for _, p in ipairs(lengths_text(run.manifest)) do parts[#parts + 1] = p end
  local repeats = f.get(run.manifest, "requests", "repeats") or id["workload.repeats"]
  if f.known(repeats) and repeats > 1 then parts[#parts + 1] = f.int(repeats) .. " repeats" end
  return table.concat(parts, "; ")
end

-- The meta lines: model, workload and (with a best, or the one config of a profile
-- run) its command.
function M.meta(run)
  local lines = { model_line(run), workload_line(run) }
  local chosen = run.single and measured_config(run) or f.get(run.best_record, "config")
  local cmd = f.get(chosen, "command")
  if cmd then
    local words = require("knobengine.knobs").env_words(f.get(chosen, "env") or {})
    words[#words + 1] = tostring(cmd)
    lines[#lines + 1] = (run.single and "Command: " or "Best command: ") .. table.concat(words, " ")
      .. (run.single and " (command.sh)" or " (best_command.sh)")
  end
  return lines
end

-- ---------- how sure ----------

-- With at least this many repeats on each side the interval is a bootstrap's; with
-- fewer, resampling 2-4 values gives intervals far too narrow, so the rule is the
-- spread's: the difference against the larger side's max - min.
M.BOOTSTRAP_MIN_REPEATS, M.BOOTSTRAP_SAMPLES, M.BOOTSTRAP_SEED = 5, 2000, 1

local function values_of(repeats, metric)
  local v = {}
  for _, r in ipairs(repeats or {}) do
    if f.known(r[metric]) then v[#v + 1] = r[metric] end
  end
  return v
end

local function resampled_mean(v, r)
  local sum = 0
  for _ = 1, #v do sum = sum + v[r.int(#v) + 1] end
  return sum / #v
end

-- The 95% percentile-bootstrap interval of mean(b) - mean(a): each side's repeats
-- resampled with replacement, BOOTSTRAP_SAMPLES times, seeded (the same report every
-- time). nil with fewer than 2 values on either side.
function M.bootstrap_interval(a, b)
  if #a < 2 or #b < 2 then return nil end
  local r, diffs = rng.new(M.BOOTSTRAP_SEED), {}
  for i = 1, M.BOOTSTRAP_SAMPLES do diffs[i] = resampled_mean(b, r) - resampled_mean(a, r) end
  table.sort(diffs)
  local n = #diffs
  return diffs[math.max(1, math.floor(0.025 * n + 0.5))], diffs[math.min(n, math.floor(0.975 * n + 0.5))]
end

local function spread(v)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(v) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return hi - lo
end

local function mean(v)
  local sum = 0
  for _, x in ipairs(v) do sum = sum + x end
  return sum / #v
end

-- "Within noise: the difference of the means (0.300) is within the repeats' spread (1.000; 3 and 3 repeats)".
local function spread_rule(obj, a, b)
  local gap, noise = math.abs(mean(b) - mean(a)), math.max(spread(a), spread(b))
  return string.format("%s: the %s difference of the means (%s) is %s the larger spread of the repeats (%s; %d and %d "
    .. "repeats, too few for an interval)", gap > noise and "Beyond noise" or "Within noise", obj.label,
    f.num(gap, obj.decimals), gap > noise and "beyond" or "within", f.num(noise, obj.decimals), #a, #b)
end

-- The sentence on how sure the win is: beyond the noise, within it, or unmeasured;
-- the headline ends with it and the Summary's noise bullet is it. nil without a best
-- or a value of the objective.
function M.confidence(run)
  if not run.best_record then return nil end
  local obj = objective.of(run)
  if obj.metric == "max_rate" then
    if not (f.known(obj.base) and f.known(obj.best)) then return nil end
    return "How sure: each capacity is decided by a majority of capacity.repeats probes at each rate near its boundary "
      .. "(capacity.json: stable, unstable_rates)."
  end
  local a, b = values_of(run.baseline.repeats, obj.metric), values_of(run.best and run.best.repeats, obj.metric)
  if #a < 2 or #b < 2 then
    return "How sure: noise not measured (workload.repeats = 1); repeat with workload.repeats >= 3."
  end
  if #a < M.BOOTSTRAP_MIN_REPEATS or #b < M.BOOTSTRAP_MIN_REPEATS then return spread_rule(obj, a, b) .. "." end
  local lo, hi = M.bootstrap_interval(a, b)
  local d = obj.decimals
  local interval = string.format("[%s, %s]", f.delta(lo, 0, d), f.delta(hi, 0, d))
  if lo <= 0 and hi >= 0 then
    return string.format("Within noise: the 95%% bootstrap interval of the %s difference over the repeats, %s, "
      .. "includes 0 (%d and %d repeats).", obj.label, interval, #a, #b)
  end
  return string.format("Beyond noise: the 95%% bootstrap interval of the %s difference over the repeats is %s "
    .. "(%d and %d repeats).", obj.label, interval, #a, #b)
end

-- ---------- the alternatives ----------

M.ALTERNATIVES_SHOWN = 3

-- The Pareto front's other trials (p50 against tokens/s) against the best, in words:
-- "1010: p50 +20.0%, p95 -36.0%, tokens/s +7.0%". nil when the best is alone on it.
function M.alternatives(run, pareto_front)
  local best = run.best_record
  if not best then return nil end
  local points = {}
  for _, t in ipairs(run.summary.trials) do
    local x, y = f.get(t, "metrics", "tokens_per_s"), f.get(t, "metrics", "p50_latency_ms")
    if t.valid and f.known(x) and f.known(y) then points[#points + 1] = { x = x, y = y, t = t } end
  end
  local words = {}
  local bm = best.metrics or {}
  for _, p in ipairs(pareto_front(points)) do
    if p.t.trial ~= best.trial and p.t.knob_mask ~= best.knob_mask and #words < M.ALTERNATIVES_SHOWN then
      local m = p.t.metrics
      words[#words + 1] = string.format("%s: p50 %s, p95 %s, tokens/s %s", p.t.knob_mask,
        f.pct_change(m.p50_latency_ms, bm.p50_latency_ms), f.pct_change(f.get(m, "p95_latency_ms"), f.get(bm, "p95_latency_ms")),
        f.pct_change(m.tokens_per_s, bm.tokens_per_s))
    end
  end
  if #words == 0 then return nil end
  return "Alternatives on the Pareto front (p50 against tokens/s), against the best: " .. table.concat(words, "; ") .. "."
end

return M
