-- Load on one running server: the capacity search (the highest arrival rate at which
-- the SLO holds) and the load sweep (one measured phase per rate or concurrency, and
-- the knee). Each probe is a fresh measured phase, with its warmup, on the same server
-- (knob.evaluate's `probe`). Output formats: docs/load.md.
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local knobs = require("knobengine.knobs")
local errors = require("knobengine.errors")
local observe = require("knobengine.observe")
local output = require("knobengine.output")
local format = require("knobengine.format")
local probes = require("knobengine.probes")
local progress = require("knobengine.progress")
local rundir = require("knobengine.rundir")
local schedule = require("knobengine.schedule")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

-- A probe row: the rate, the requests it sent, each SLO metric at slo.quantile, what
-- was served, whether the SLO held and on which metrics it did not.
M.CAPACITY_HEADER = "rate,requests,ttft_q_ms,tpot_q_ms,itl_q_ms,e2e_q_ms,tokens_per_s,goodput,slo_met,failed_on"
M.SLO_METRICS = { "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms" } -- slo's thresholds, slo_at_percentile's keys
M.MAX_PROBE_REQUESTS = 1000000
M.KNEE_FACTOR = 1.5

-- The capacity search as a state machine (unit-tested without a server): start at
-- start_rate, double while the SLO holds, halve while it does not, then bisect between
-- the highest rate that held (lo) and the lowest that did not (hi) until they are
-- within `tolerance` of hi; at most max_probes probes, never above max_rate, never
-- below min_rate (a slower probe would last more than config.MAX_PROBE_S).
function M.capacity_state(opts, min_rate)
  return { start = opts.start_rate, tolerance = opts.tolerance, max_probes = opts.max_probes,
    max_rate = opts.max_rate, min_rate = min_rate or 0, probes = 0, next = math.min(opts.start_rate, opts.max_rate) }
end

-- What the result of a finished search is: "exact" (lo and hi within the tolerance),
-- "lower" (the SLO held at every rate probed: the capacity is at least lo), "bracket"
-- (the probes ran out between lo and hi) or "upper" (it held at no rate probed: the
-- capacity is below the lowest).
function M.capacity_bound(s)
  if not s.lo then return "upper" end
  if not s.hi then return "lower" end
  return (s.hi - s.lo) / s.hi <= s.tolerance and "exact" or "bracket"
end

-- Records the outcome of probing state.next; returns the next rate, or nil when done.
function M.capacity_step(s, met)
  local r = s.next
  s.probes = s.probes + 1
  if met then s.lo = math.max(s.lo or r, r) else s.hi = math.min(s.hi or r, r) end
  if s.probes >= s.max_probes then return nil end
  if not s.hi then
    if r >= s.max_rate then return nil end -- it holds at the highest rate allowed
    s.next = math.min(r * 2, s.max_rate)
  elseif not s.lo then
    if r / 2 < s.min_rate then return nil end
    s.next = r / 2
  else
    if (s.hi - s.lo) / s.hi <= s.tolerance then return nil end
    s.next = (s.lo + s.hi) / 2
  end
  return s.next
end

-- The verdict at a rate near the boundary (both a rate that held and one that did not
-- are known), from its votes ({pass = n, fail = n}): true or false once one side has a
-- majority of `repeats`, nil while more probes are needed. Far from the boundary (bisecting
-- = false) one probe decides.
function M.capacity_vote(votes, met, repeats, bisecting)
  votes.pass, votes.fail = (votes.pass or 0) + (met and 1 or 0), (votes.fail or 0) + (met and 0 or 1)
  if not bisecting then return met end
  local majority = repeats // 2 + 1
  if votes.pass >= majority then return true end
  if votes.fail >= majority then return false end
  return nil
end

-- The requests of a probe at rate: enough for min_probe_s, at least request_count.
function M.probe_requests(cfg, rate)
  local n = math.max(cfg.workload.request_count, math.ceil(rate * cfg.capacity.min_probe_s - 1e-9))
  return math.min(n, M.MAX_PROBE_REQUESTS)
end

-- The SLO metrics over their threshold at the quantile ("itl_ms", "ttft_ms+e2e_ms"),
-- "" when none is, nil when the probe has no value to judge. A probe whose requests
-- waited for workload.max_concurrency did not send at its rate (the queue moved into
-- the client, where no latency is measured): it fails on "max_concurrency".
function M.failed_on(slo, m)
  local at, out = m.slo_at_percentile, {}
  if util.is_null(at) or type(at) ~= "table" then return nil end
  for _, k in ipairs(M.SLO_METRICS) do
    local v = at[k]
    if slo[k] and type(v) == "number" and v > slo[k] then out[#out + 1] = k end
  end
  if type(m.concurrency_cap_hits) == "number" and m.concurrency_cap_hits > 0 then out[#out + 1] = "max_concurrency" end
  return table.concat(out, "+")
end

-- The arrivals of a capacity probe (at the probe's own rate): the workload's when they
-- are poisson, constant or gamma (gamma's burstiness kept: bursty traffic holds less),
-- else capacity.arrival (a closed loop, a sinusoid or a trace has no rate to set).
M.PROBE_ARRIVALS = { poisson = true, constant = true, gamma = true }
function M.probe_arrival(cfg)
  local a = cfg.workload.arrival or {}
  if M.PROBE_ARRIVALS[a.type] then return { type = a.type, burstiness = a.burstiness } end
  return { type = cfg.capacity.arrival }
end

-- The knee of a sweep: the first level whose p99 E2E latency is more than
-- KNEE_FACTOR times the lowest level's; nil when none is.
function M.knee(levels)
  local first = levels[1] and levels[1].metrics.p99_latency_ms
  if type(first) ~= "number" then return nil end
  for _, l in ipairs(levels) do
    local v = l.metrics.p99_latency_ms
    if type(v) == "number" and v > M.KNEE_FACTOR * first then return l end
  end
  return nil
end

local function flag(v)
  if util.is_null(v) then return "na" end
  return v and "1" or "0"
end

-- The replay table of one probe: open loop at `rate` (arrival `level.arrival`, or the
-- whole arrival table level.arrival_spec, e.g. a sinusoid), or closed at `concurrency`;
-- level.requests measured requests (default workload.request_count); level.bodies its
-- own prompts (default the workload's).
local function probe_replay(ctx, level, csv)
  local w = ctx.cfg.workload
  local n = level.requests or w.request_count
  return observe.add(ctx, {
    url = trial.base_url(ctx.cfg) .. w.endpoint, bodies = level.bodies or ctx.bodies, request_count = n,
    concurrency = level.concurrency or w.concurrency, warmup = w.warmup_requests,
    request_timeout_s = w.request_timeout_s, stream = w.stream, requests_csv = csv,
    schedule = level.rate and schedule.draw(level.arrival_spec or { type = level.arrival, rate = level.rate,
      burstiness = level.burstiness }, n, w.seed),
    max_concurrency = level.rate and w.max_concurrency or nil, slo = trial.slo_spec(ctx.cfg.slo),
  }, trial.base_url(ctx.cfg))
end

-- Runs `levels` (a function: k, previous probe's metrics -> the next level or nil) as
-- probes on one server of `mask`; on_probe(level, metrics) sees each result.
-- Where probe k of a run in dir keeps its requests, and a load sweep's summary file.
function M.probe_csv(dir, k) return string.format("%s/requests-%02d.csv", dir, k) end
M.SWEEP_FILE = "sweep.json"

function M.run_probes(ctx, mask, dir, next_level, on_probe)
  local level
  local function probe(k, prev)
    if prev then
      trial.warn_if_behind(level.rate and string.format("probe %d (%.3f requests/s)", k - 1, level.rate)
        or string.format("probe %d (concurrency %d)", k - 1, level.concurrency), prev)
    end
    if prev then
      observe.say_unavailable(prev)
      on_probe(level, prev)
    end
    level = next_level(k, prev)
    if not level then return nil end
    progress.say("probe %d: %s", k, level.rate and string.format("%.3f requests/s", level.rate)
      or level.probe and string.format("synthetic %s at concurrency 1", level.probe)
      or string.format("concurrency %d", level.concurrency))
    return probe_replay(ctx, level, M.probe_csv(dir, k))
  end
  local rec = trial.run(ctx, mask, { dir = dir, probe = probe, label = "mask " .. ctx.cfg.space:string(mask) })
  if not rec.ran then errors.run("the server did not serve the probes: %s", rec.error or "?") end
  return rec
end

-- One probe row of the capacity table (M.CAPACITY_HEADER).
local function probe_row(p)
  local m, at = p.metrics, p.metrics.slo_at_percentile
  local function q(k) return format.ms(type(at) == "table" and at[k] or nil) end
  return table.concat({ format.fixed(p.rate, 3), tostring(p.requests), q("ttft_ms"), q("tpot_ms"), q("itl_ms"),
    q("e2e_ms"), format.ms(m.tokens_per_s), format.ms(m.goodput), util.is_null(m.slo_met) and "na" or flag(p.slo_met),
    format.line_field(p.failed_on or "na") }, ",")
end

-- The search's levels and verdicts: next_level(k) gives the next probe (a repeat at
-- the same rate while its vote is open), record(level, metrics) takes its result.
local function capacity_driver(cfg, state, probes, quiet)
  local votes, unstable = {}, {}
  local function next_level(k)
    if k > 1 and not state.next then return nil end
    local arrival = M.probe_arrival(cfg)
    return { rate = state.next, arrival = arrival.type, burstiness = arrival.burstiness,
      requests = M.probe_requests(cfg, state.next) }
  end
  local function record(level, m)
    local failed_on = M.failed_on(cfg.slo, m)
    local met = m.slo_met == true and not (failed_on or ""):find("max_concurrency", 1, true)
    local p = { rate = level.rate, requests = level.requests, slo_met = met, failed_on = failed_on, metrics = m }
    probes[#probes + 1] = p
    if not quiet then output.line(probe_row(p)) end
    local v = votes[level.rate] or {}
    votes[level.rate] = v
    local verdict = M.capacity_vote(v, met, cfg.capacity.repeats, state.lo ~= nil and state.hi ~= nil)
    if verdict == nil then return end -- the same rate again
    if v.pass > 0 and v.fail > 0 then unstable[#unstable + 1] = level.rate end
    state.next = M.capacity_step(state, verdict)
  end
  return next_level, record, unstable
end

-- The capacity search of one mask: rows as probes finish, then MAX_RATE; the
-- capacity.json of every probe. Returns the result table.
function M.capacity(ctx, mask, opts)
  local cfg = ctx.cfg
  if not cfg.slo then errors.usage("capacity needs an slo in the config (the SLO decides which rates hold)") end
  local quiet = opts and opts.quiet -- a strategy's capacity prints nothing on stdout
  local d = opts and opts.dir and { aside = opts.dir } or rundir.new(ctx.results, "capacity")
  util.mkdir(d.aside)
  return rundir.guard(d, function()
    local state, probes = M.capacity_state(cfg.capacity, cfg.workload.request_count / config.MAX_PROBE_S), {}
    if not quiet then output.line(M.CAPACITY_HEADER) end
    local next_level, record, unstable = capacity_driver(cfg, state, probes, quiet)
    local rec = M.run_probes(ctx, mask, d.aside, next_level, record)
    local result = { knob_mask = cfg.space:string(mask), max_rate = state.lo or cjson.null,
      bound = M.capacity_bound(state), failed_rate = state.hi or cjson.null, stable = #unstable == 0,
      unstable_rates = util.array(unstable), slo = cfg.slo, capacity = cfg.capacity, probes = util.array(probes),
      config = rec.config }
    util.write_json(d.aside .. "/capacity.json", result)
    if not quiet then
      require("knobengine.provenance").write(d.aside, ctx)
      output.line(string.format("MAX_RATE,knob_mask=%s,rate=%s,bound=%s", result.knob_mask, format.fixed(result.max_rate, 3),
        result.bound))
      rundir.publish(d)
    end
    return result
  end)
end

-- The server command as a shell line: its environment (config env and env knobs) as
-- NAME=value words, then its argv.
local function command_line(cfg, mask)
  local r = knobs.resolve(cfg, mask)
  local words = knobs.env_words(r.env)
  words[#words + 1] = util.shell_join(r.argv)
  return table.concat(words, " ")
end

-- The GPU the template names: hardware.gpu, else nvidia-smi's first GPU, else null.
local function gpu_name(cfg)
  if cfg.hardware.gpu then return cfg.hardware.gpu end
  local gpus = require("knobengine.provenance").nvidia_smi_gpus()
  return gpus[1] and gpus[1].name or cjson.null
end

-- What the templates of a run say of the deployment: {gpu, command}, found once.
function M.deployment(cfg, mask) return { gpu = gpu_name(cfg), command = command_line(cfg, mask) } end

-- The calibration template of one level (spec/calibration-plan.md, "Output Template");
-- deployment: M.deployment's. A level is a rate, a concurrency, a probe or (trace =
-- true, rate: the trace's mean rate) a trace replay.
local function template(ctx, level, m, id, deployment)
  local function dist(d) return type(d) == "table" and { p50 = d.p50, p99 = d.p99, mean = d.mean } or cjson.null end
  local function seconds(ms) return type(ms) == "number" and ms / 1000 or cjson.null end
  local hw = ctx.cfg.hardware
  return {
    experiment_id = id,
    config = { model = ctx.cfg.workload.model, tp = hw.tp or cjson.null, pp = hw.pp or cjson.null,
      gpu = deployment.gpu, command = deployment.command },
    workload = { type = level.trace and "trace" or level.rate and (level.arrival .. "_trace") or level.probe and "synthetic_probe"
      or "closed_loop",
      rps = level.rate or cjson.null, concurrency = level.concurrency or cjson.null,
      dataset = level.probe and cjson.null or ctx.cfg.workload.dataset,
      input_tokens = level.input_tokens, output_tokens = level.output_tokens },
    metrics = { ttft_ms = dist(m.ttft_ms), tpot_ms = dist(m.tpot_ms),
      e2e_latency_s = { p50 = seconds(m.p50_latency_ms), p99 = seconds(m.p99_latency_ms) },
      throughput_token_s = m.tokens_per_s,
      -- measured against a probe sweep's ideal TTFT (probes.lua), when there is one
      [probes.COLUMN] = type(m[probes.COLUMN]) == "table" and dist(m[probes.COLUMN]) or nil },
  }
end

local function level_row(level, m)
  return table.concat({ level.rate and format.fixed(level.rate, 3) or level.probe or tostring(level.concurrency),
    format.ms(m.ttft_ms.p50), format.ms(m.ttft_ms.p99), format.ms(m.tpot_ms.p50), format.ms(m.tpot_ms.p99),
    format.ms(m.p50_latency_ms), format.ms(m.p99_latency_ms), format.ms(m.tokens_per_s) }, ",")
end

-- A trace replay's template (calibration_template.json of a baseline or profile run
-- whose workload arrives as its trace): nil for other arrivals. The rate is the
-- trace's mean over the measured requests' send times.
function M.trace_template(ctx, mask, m)
  local w = ctx.cfg.workload
  if w.arrival.type ~= "trace" then return nil end
  local s = ctx.schedule or {}
  local n = math.min(#s, w.request_count)
  local rate = n > 1 and s[n] > 0 and (n - 1) / s[n] or nil
  return template(ctx, { trace = true, rate = rate }, m, string.format("%s-trace", ctx.cfg.space:string(mask)),
    M.deployment(ctx.cfg, mask))
end

-- After each level: a probe's ideal point (probes.lua), or each request's scheduler
-- overhead against the ideal curve when the results have one for this mask.
local function after_level(level, m, csv_path, ideal)
  if level.probe then
    ideal.points[#ideal.points + 1] = probes.point(level, m, csv_path)
  elseif ideal.curve then
    m[probes.COLUMN] = probes.apply(csv_path, ideal.curve) or cjson.null
  end
end

-- The ideal TTFT curve a sweep measures against: the results' newest probe sweep of the
-- mask ({dir, curve}), or {points = {}} for a probe sweep, which makes one.
local function ideal_of(ctx, mask, by)
  if by == "probe" then return { points = {} } end
  local dir, points = probes.latest(ctx.results, ctx.cfg.space:string(mask))
  local curve = points and probes.curve(points)
  if curve then output.say("load-sweep: scheduler overhead against the ideal TTFT of %s", dir) end
  return { dir = curve and dir, curve = curve }
end

-- The load sweep of one mask over `levels` ({rate=...}, {concurrency=...} ascending, or
-- the synthetic probes of probes.levels).
-- opts.experiment_id: the templates' id prefix (default: the mask string); opts.quiet:
-- nothing on stdout (calibrate prints its own table). Returns 0, the published run
-- directory and the levels measured ({rate, concurrency, metrics}).
function M.sweep(ctx, mask, levels, opts)
  opts = opts or {}
  local experiment_id = opts.experiment_id
  local line = opts.quiet and function() end or output.line
  local d = rundir.new(ctx.results, "load-sweep")
  local by = levels[1].rate and "rate" or levels[1].probe and "probe" or "concurrency"
  local deployment = M.deployment(ctx.cfg, mask)
  local ideal = ideal_of(ctx, mask, by)
  return rundir.guard(d, function()
    line(by .. ",ttft_p50_ms,ttft_p99_ms,tpot_p50_ms,tpot_p99_ms,e2e_p50_ms,e2e_p99_ms,tokens_per_s")
    local done = {}
    local rec = M.run_probes(ctx, mask, d.aside, function(k) return levels[k] end, function(level, m)
      after_level(level, m, M.probe_csv(d.aside, #done + 1), ideal)
      done[#done + 1] = { rate = level.rate, concurrency = level.concurrency, probe = level.probe,
        input_tokens = level.input_tokens, output_tokens = level.output_tokens, metrics = m }
      line(level_row(level, m))
      local id = string.format("%s-%s%s", experiment_id or ctx.cfg.space:string(mask), by,
        level.rate or level.probe or level.concurrency)
      util.write_json(string.format("%s/level-%02d.json", d.aside, #done), template(ctx, level, m, id, deployment))
    end)
    local knee = by ~= "probe" and M.knee(done) or nil
    if by ~= "probe" then
      line(knee and string.format("KNEE,%s=%s", by, level_row(knee, knee.metrics):match("^[^,]+")) or "KNEE,na")
    else
      util.write_json(d.aside .. "/" .. probes.FILE, { knob_mask = ctx.cfg.space:string(mask), points = util.array(ideal.points) })
    end
    util.write_json(d.aside .. "/" .. M.SWEEP_FILE, { knob_mask = ctx.cfg.space:string(mask), by = by,
      levels = util.array(done), knee = knee and (knee.rate or knee.concurrency) or cjson.null,
      knee_factor = M.KNEE_FACTOR, config = rec.config, ideal_ttft = ideal.dir and (knob.realpath(ideal.dir) or ideal.dir) or cjson.null })
    require("knobengine.provenance").write(d.aside, ctx)
    rundir.publish(d)
    return 0, d.final, done
  end)
end

return M
