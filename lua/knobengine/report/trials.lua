-- The report's sweep sections: All trials (the table with knob names spelled out, the
-- best highlighted, invalid trials with their error), the main effect of each knob,
-- and the load sweep when the results have one (docs/report.md).
local f = require("knobengine.report.fmt")

local M = {}

-- Mean p50 of the valid trials with knob i at value index d minus at index 0 (the
-- baseline's): {name, on_n, off_n, on, off, effect} per on/off knob (d = 1) and per
-- value of a knob with values (named name=value); effect nil when either side has no
-- trial.
local function effect_of(run, i, d, label)
  local sum, n = { on = 0, off = 0 }, { on = 0, off = 0 }
  for _, t in ipairs(run.summary.trials) do
    local p50 = f.get(t, "metrics", "p50_latency_ms")
    local c = tonumber(t.knob_mask:sub(i, i), 36)
    if t.valid and f.known(p50) and (c == d or c == 0) then
      local side = c == d and "on" or "off"
      sum[side], n[side] = sum[side] + p50, n[side] + 1
    end
  end
  local e = { name = label, on_n = n.on, off_n = n.off }
  if n.on > 0 then e.on = sum.on / n.on end
  if n.off > 0 then e.off = sum.off / n.off end
  if e.on and e.off then e.effect = e.on - e.off end
  return e
end

function M.main_effects(run)
  local out = {}
  for i, name in ipairs(run.knob_names) do
    local k = (run.knobs or {})[i] or {}
    local values = type(k.values) == "table" and k.values or nil
    if not values then
      out[#out + 1] = effect_of(run, i, 1, name)
    else
      local first = k.unset == false and 2 or 1 -- index 0 is the first value when unset is false
      for d = 1, #values - (first - 1) do
        out[#out + 1] = effect_of(run, i, d, name .. "=" .. tostring(values[d + first - 1]))
      end
    end
  end
  return out
end

local function status(t, best_index)
  if t.trial == best_index then return "best" end
  if not t.valid then return "invalid: " .. (f.get(t, "error") or "?") end
  return "ok"
end

function M.trials(run)
  local s, rows, highlight = run.summary, {}, {}
  local base_p50 = f.get(run.baseline.metrics, "p50_latency_ms")
  for i, t in ipairs(s.trials) do
    local m = t.valid and t.metrics or {}
    rows[i] = { f.int(t.trial), t.knob_mask, f.knobs_on(t.knob_mask, run.knobs or {}), f.num(f.get(m, "p50_latency_ms")),
      f.num(f.get(m, "p95_latency_ms")), f.num(f.get(m, "tokens_per_s")), f.num(t.error_rate, 4),
      t.valid and f.delta(f.get(m, "p50_latency_ms"), base_p50) or "na", status(t, s.best_trial) }
    if t.trial == s.best_trial then highlight[i] = true end
  end
  local effects = {}
  for _, e in ipairs(M.main_effects(run)) do
    effects[#effects + 1] = { e.name, f.int(e.on_n) .. " / " .. f.int(e.off_n), f.num(e.on), f.num(e.off), f.delta(e.on, e.off) }
  end
  return { id = "trials", title = "All trials", blocks = {
    f.p(string.format("%d trial(s) of %d combinations, strategy %s, objective: %s %s. Metrics measured without the "
      .. "profiler; Delta p50 is against the baseline (%s ms).", s.trial_count or #s.trials, s.mask_space or 0,
      tostring(s.strategy), f.get(s, "objective", "maximize") and "maximize" or "minimize",
      tostring(f.get(s, "objective", "metric")), f.num(base_p50))),
    f.table({ "Trial", "Mask", "Knobs on", "p50 ms", "p95 ms", "tokens/s", "Error rate", "Delta p50 ms", "Status" },
      rows, { "r", "l", "l", "r", "r", "r", "r", "r", "l" }, highlight),
    f.figure("trials", "p50 and p95 latency of every trial; the dashed line is the baseline's p50."),
    f.figure("pareto", "Latency against throughput; the line joins the Pareto front (no trial is both faster and higher-throughput)."),
    f.p("Main effect of each knob: the mean p50 of the valid trials with it on minus with it off (negative is faster); "
      .. "for a knob with values, of each value against index 0 (unset). With few trials, or knobs that interact, "
      .. "this is an estimate."),
    f.table({ "Knob", "Trials on / off", "Mean p50 on", "Mean p50 off", "Effect ms" }, effects, { "l", "r", "r", "r", "r" }),
  } }
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

return M
