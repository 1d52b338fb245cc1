-- Running one trial: the spec knob.evaluate runs, the record it becomes (record.lua),
-- and for profiled runs the trace summary and the artifact set (config.json,
-- client_metrics.json, trace files, logs.txt).
local knob = require("knob")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
local progress = require("knobengine.progress")
local record = require("knobengine.record")
local trace = require("knobengine.trace")
local util = require("knobengine.util")

local M = {}

local function url_host(host)
  if host:find(":", 1, true) then return "[" .. host .. "]" end
  return host
end

function M.base_url(cfg)
  return string.format("http://%s:%d", url_host(cfg.server.host), cfg.server.port)
end

-- The resolved config recorded in config.json and summary.json.
function M.resolved_config(cfg, resolved, requests)
  local w = cfg.workload
  return {
    knob_mask = resolved.mask_string,
    knobs_on = util.array(resolved.knobs_on),
    argv = util.array(resolved.argv),
    env = resolved.env,
    command = util.shell_join(resolved.argv),
    server = cfg.server,
    workload = {
      dataset = w.dataset, endpoint = w.endpoint, model = w.model, concurrency = w.concurrency,
      request_count = requests, max_new_tokens = w.max_new_tokens, warmup_requests = w.warmup_requests,
      request_timeout_s = w.request_timeout_s, seed = w.seed, stream = w.stream,
    },
  }
end

-- Why nsys cannot be used, or nil when it can.
function M.nsys_unavailable(cfg)
  if not util.which(cfg.nsys.bin) then
    return string.format("nsys not found ('%s' is not on PATH); install Nsight Systems "
      .. "(scripts/install-deps.sh --nsys) or set nsys.bin", cfg.nsys.bin)
  end
  return nil
end

-- The spec knob.evaluate runs (docs/lua-api.md).
local function trial_spec(ctx, resolved, opts, requests)
  local cfg = ctx.cfg
  local log_path = opts.dir .. "/logs.txt"
  local spec = {
    argv = resolved.argv,
    env = resolved.env,
    host = cfg.server.host,
    port = cfg.server.port,
    ready_url = M.base_url(cfg) .. cfg.server.ready_path,
    ready_timeout_s = cfg.server.ready_timeout_s,
    repeats = cfg.workload.repeats,
    stop_timeout_s = cfg.server.stop_timeout_s,
    log_path = log_path,
    replay = {
      url = M.base_url(cfg) .. cfg.workload.endpoint,
      bodies = ctx.bodies,
      concurrency = cfg.workload.concurrency,
      request_count = requests,
      warmup = cfg.workload.warmup_requests,
      request_timeout_s = cfg.workload.request_timeout_s,
      stream = cfg.workload.stream,
      requests_csv = opts.dir .. "/requests.csv",
    },
  }
  if progress.enabled() then
    local label = opts.label or ("mask " .. resolved.mask_string)
    spec.on_phase = function(phase) progress.say("  %s: %s", label, phase) end
  end
  return spec
end

local function nsys_spec(cfg, opts)
  return {
    bin = cfg.nsys.bin, trace = cfg.nsys.trace, extra_args = cfg.nsys.extra_args,
    capture_args = cfg.nsys.capture_args, capture = cfg.nsys.capture, output = opts.dir .. "/trace",
    session = opts.session, log_path = opts.dir .. "/logs.txt", timeout_s = cfg.nsys.timeout_s,
  }
end

-- Runs one trial. opts: dir (its directory, created), requests, profile (bool),
-- no_profile_reason (why nsys cannot run), session (unique nsys session name), label
-- (for progress lines). Returns the record (record.lua); raises only on interrupt.
function M.run(ctx, mask, opts)
  local cfg = ctx.cfg
  local resolved = config.resolve(cfg, mask)
  util.mkdir(opts.dir)
  local requests = opts.requests or cfg.workload.request_count
  local spec = trial_spec(ctx, resolved, opts, requests)
  local profile = opts.profile and not opts.no_profile_reason
  if profile then spec.nsys = nsys_spec(cfg, opts) end
  local started = knob.now()
  local r = knob.evaluate(spec, profile)
  if r.interrupted then
    local sig = knob.interrupted() or 2
    errors.interrupted(sig, "interrupted while running trial " .. resolved.mask_string)
  end
  local rec = record.from_result(r, {
    mask = mask, mask_string = resolved.mask_string, requests = requests,
    full = requests == cfg.workload.request_count, config = M.resolved_config(cfg, resolved, requests),
    dir = opts.dir, wall_s = knob.now() - started, max_error_rate = cfg.constraints.max_error_rate,
  })
  if opts.profile then
    local reason = opts.no_profile_reason or (r.profile and r.profile.error)
    if r.profile and r.profile.ok then
      rec.trace, rec.phases = trace.summarize(cfg, r.profile.sqlite_path)
    else
      rec.trace, rec.phases = trace.empty(cfg, reason or "profiling failed")
    end
    rec.profile_error = reason
    rec.profile_note = r.profile and r.profile.note
  end
  return rec
end

-- Writes the artifact set of a profiled run into rec.dir.
function M.write_artifacts(rec)
  local d = rec.dir
  util.write_json(d .. "/config.json", rec.config)
  util.write_json(d .. "/client_metrics.json", record.client_metrics(rec))
  util.write_json(d .. "/trace_summary.json", rec.trace)
  util.write_json(d .. "/nvtx_phases.json", rec.phases)
end

return M
