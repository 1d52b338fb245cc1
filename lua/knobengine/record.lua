-- The trial record: the one shape a trial has inside the engine, and every view of it
-- that leaves the engine. Nothing else builds or takes apart a record.
--
--   trial        index in this run's table (set by the search)
--   mask         integer; mask_string its N-character string
--   requests     measured requests; full = (requests == workload.request_count)
--   ok           the trial ran to the end (the server served the workload)
--   ran          the workload was replayed (metrics were measured), even if it failed
--   valid        ok and error_rate <= constraints.max_error_rate (and the SLO met, with
--                constraints.slo)
--   error        why it failed or is invalid, or nil
--   error_rate   1.0 when the workload never ran
--   metrics      the client metrics exactly as knob.evaluate returns them (docs/files.md
--                "Result"); every view copies them whole, so a metric added in C
--                appears everywhere without a change here
--   repeats      each repeat's metrics when workload.repeats > 1, else nil
--   timing       {start_s, workload_s, stop_s, killed}; wall_s the whole trial
--   config       the resolved config (trial.resolved_config)
--   dir          its directory; resumed = true when replayed from history.sqlite
--   kind         nil for a trial, "capacity" for a capacity search (search:capacity):
--                its metrics are the highest passing probe's, plus max_rate
--   profiled runs also: trace, phases (trace summary, NVTX phases), profile_error
--   (why there is no trace), profile (knob.evaluate's profile table: note, partial,
--   size_limited, capture_bytes)
local cjson = require("cjson")
local util = require("knobengine.util")

local M = {}

local copy = util.copy

-- The validity gates (docs/files.md "Suspect trials"): what makes a measurement
-- suspect, the client's own limits.
M.SEND_LATENESS_LIMIT_MS = 10 -- open loop: p99 of how late requests were sent
M.READ_LAG_LIMIT_MS = 5 -- streaming: p99 of how long received data waited to be read
M.QUEUE_MIN_SCRAPES = 3 -- open loop: scrapes that all saw a waiting request (the server's queue)

-- Why a Result cannot be trusted as measured, or nil: the client fell behind its
-- schedule, read the streams late (TTFT and ITL overstated), the server's token
-- counts disagree with what it streamed, or (open loop) the server's queue never
-- drained while it was scraped.
function M.suspect_reasons(m)
  local out = {}
  local late = type(m.send_lateness_ms) == "table" and m.send_lateness_ms.p99
  if type(late) == "number" and late > M.SEND_LATENESS_LIMIT_MS then
    out[#out + 1] = string.format("the client fell behind its schedule (send lateness p99 %.3f ms > %d)", late,
      M.SEND_LATENESS_LIMIT_MS)
  end
  local lag = type(m.read_lag_ms) == "table" and m.read_lag_ms.p99
  if type(lag) == "number" and lag > M.READ_LAG_LIMIT_MS then
    out[#out + 1] = string.format("the client read the streams late (read lag p99 %.3f ms > %d)", lag, M.READ_LAG_LIMIT_MS)
  end
  if type(m.token_mismatch) == "number" and m.token_mismatch > 0 then
    out[#out + 1] = string.format("%d request(s) reported token counts far from what they streamed", m.token_mismatch)
  end
  local srv = type(m.server) == "table" and m.server or {}
  local waiting = srv.requests_waiting_min
  if type(late) == "number" and type(waiting) == "number" and waiting > 0 and (srv.scrapes or 0) >= M.QUEUE_MIN_SCRAPES then
    out[#out + 1] = string.format("the server's queue never drained (at least %.15g request(s) waiting in every "
      .. "scrape while requests were due): the open loop overloaded it for the whole phase", waiting)
  end
  return #out > 0 and out or nil
end

-- A record from a knob.evaluate result. f: mask, mask_string, requests, full, config,
-- dir, wall_s, max_error_rate, require_slo, reject_suspect.
function M.from_result(r, f)
  local metrics = r.metrics or {}
  local rec = {
    mask = f.mask, mask_string = f.mask_string, requests = f.requests, full = f.full,
    ok = r.ok, error = r.error, metrics = metrics, repeats = r.repeats, timing = r.timing,
    wall_s = f.wall_s, config = f.config, dir = f.dir, ran = r.metrics ~= nil,
  }
  -- a trial that never replayed counts as every request failed
  rec.error_rate = type(metrics.error_rate) == "number" and metrics.error_rate or 1.0
  rec.valid = r.ok and rec.error_rate <= f.max_error_rate
  if r.ok and not rec.valid and not rec.error then
    rec.error = string.format("error_rate %.4f exceeds constraints.max_error_rate", rec.error_rate)
  end
  if rec.valid and f.require_slo and metrics.slo_met ~= true then
    rec.valid = false
    rec.error = rec.error or "the SLO is not met (constraints.slo)"
  end
  rec.suspect = r.metrics and M.suspect_reasons(metrics) or nil
  if rec.valid and rec.suspect and f.reject_suspect then
    rec.valid = false
    rec.error = "suspect (constraints.reject_suspect): " .. table.concat(rec.suspect, "; ")
  end
  return rec
end

-- A capacity search run as a trial (search:capacity): its metrics are those of the
-- probe at the highest rate that held, plus max_rate; invalid when it held at none.
-- result: load.capacity's; f as for from_result.
function M.capacity(result, f)
  local at
  for _, p in ipairs(result.probes) do
    if p.slo_met and p.rate == result.max_rate then at = p end
  end
  local rec = M.from_result({ ok = #result.probes > 0, metrics = at and copy(at.metrics), timing = {},
    error = not at and "the SLO held at no rate probed" or nil }, f)
  rec.kind = "capacity"
  rec.capacity_bound = result.bound -- what max_rate is: exact, lower, bracket or upper (load.capacity_bound)
  rec.metrics.max_rate = result.max_rate
  rec.valid = at ~= nil
  return rec
end

-- What history.sqlite and a trial's result.json keep of a record: enough to replay it
-- into a resumed run (M.decode reads it back).
function M.stored(rec)
  return {
    trial = rec.trial, mask = rec.mask, mask_string = rec.mask_string, full = rec.full, requests = rec.requests,
    ok = rec.ok, valid = rec.valid, error = rec.error or cjson.null, error_rate = rec.error_rate,
    metrics = rec.metrics, config = rec.config, timing = rec.timing, wall_s = rec.wall_s, dir = rec.dir,
    repeats = rec.repeats, kind = rec.kind, capacity_bound = rec.capacity_bound,
    suspect = rec.suspect and util.array(rec.suspect) or cjson.null,
  }
end

-- A record back from its stored form (M.stored, after a JSON round trip: numbers
-- come back as floats, nil as null). The one place those fix-ups are made.
function M.decode(s)
  local rec = copy(s)
  if rec.error == cjson.null then rec.error = nil end
  if rec.kind == cjson.null then rec.kind = nil end
  if rec.capacity_bound == cjson.null then rec.capacity_bound = nil end
  if rec.suspect == cjson.null then rec.suspect = nil end
  rec.mask = math.tointeger(rec.mask)
  return rec
end

-- A record replayed from history into a resumed run: decoded, marked resumed.
function M.from_stored(s)
  local rec = M.decode(s)
  rec.resumed = true
  return rec
end

-- A record as summary.json lists it: the stored form with the file's key names.
function M.summary_entry(rec)
  local j = M.stored(rec)
  j.knob_mask, j.full_fidelity = rec.mask_string, rec.full
  j.mask, j.mask_string, j.full, j.dir = nil, nil, nil, nil
  -- a trial reused from an interrupted run keeps no log in this run's directory
  -- relative to the run directory (the run is built aside and renamed into place)
  j.log = rec.resumed and cjson.null or ((rec.dir:match("(trials/[^/]+)$") or rec.dir) .. "/logs.txt")
  j.resumed = rec.resumed or false
  return j
end

-- client_metrics.json: ok, error and every metric at the top level (and each repeat's
-- metrics under repeats when workload.repeats > 1).
function M.client_metrics(rec)
  local cm = { ok = rec.ok, error = rec.error or cjson.null, repeats = rec.repeats }
  for k, v in pairs(rec.metrics) do cm[k] = v end
  return cm
end

-- What a strategy and the objective see: a copy with the metrics at the top level, so
-- a strategy can read r.p50_latency_ms and can never change the engine's record.
function M.view(rec)
  local v = {
    trial = rec.trial, mask = rec.mask, mask_string = rec.mask_string, ok = rec.ok, valid = rec.valid,
    full = rec.full, requests = rec.requests, error = rec.error, error_rate = rec.error_rate,
    repeats = copy(rec.repeats),
  }
  for k, x in pairs(rec.metrics) do
    if v[k] == nil then v[k] = copy(x) end
  end
  return v
end

-- best_config.json of the chosen record.
function M.best_config(rec, resolved)
  return {
    trial = rec.trial, knob_mask = rec.mask_string, knobs_on = util.array(resolved.knobs_on),
    argv = util.array(resolved.argv), env = resolved.env, metrics = rec.metrics,
  }
end

return M
