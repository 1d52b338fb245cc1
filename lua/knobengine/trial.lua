-- Running one trial through knob.evaluate and turning its result into the record the
-- engine keeps (summary.json, the table, history). Profiled runs also write their
-- artifact set (config.json, client_metrics.json, trace files, logs.txt).
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
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

local NO_TRACE_KEYS = { "gpu_compute_ms", "memcpy_ms", "osrt_wait_ms" }

-- trace_summary.json and nvtx_phases.json contents when there is no trace.
function M.empty_trace(cfg, reason)
  local summary = { ok = false, reason = reason, top_kernels = util.array({}) }
  for _, k in ipairs(NO_TRACE_KEYS) do summary[k] = cjson.null end
  local phases = {}
  for _, p in ipairs(cfg.nsys.phases) do phases[p] = cjson.null end
  return summary, phases
end

-- Summarizes a trace export; returns summary, phases (without raising).
function M.summarize(cfg, sqlite_path)
  local json, err = knob.trace_summary(sqlite_path, { phases = cfg.nsys.phases, kernel_names = cfg.nsys.kernel_names })
  if not json then return M.empty_trace(cfg, err) end
  local summary = cjson.decode(json)
  local phases = summary.nvtx_phases
  summary.nvtx_phases = nil
  return summary, phases
end

-- Runs one trial. opts: dir (its directory, created), requests, profile (bool),
-- session (unique nsys session name). Returns the record; raises only on interrupt.
function M.run(ctx, mask, opts)
  local cfg = ctx.cfg
  local resolved = config.resolve(cfg, mask)
  util.mkdir(opts.dir)
  local log_path = opts.dir .. "/logs.txt"
  local requests = opts.requests or cfg.workload.request_count
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
  local profile = opts.profile and not opts.no_profile_reason
  if profile then
    spec.nsys = {
      bin = cfg.nsys.bin, trace = cfg.nsys.trace, extra_args = cfg.nsys.extra_args,
      capture_args = cfg.nsys.capture_args,
      capture = cfg.nsys.capture, output = opts.dir .. "/trace", session = opts.session,
      log_path = log_path, timeout_s = cfg.nsys.timeout_s,
    }
  end
  local started = knob.now()
  local r = knob.evaluate(spec, profile)
  if r.interrupted then
    local sig = knob.interrupted() or 2
    errors.interrupted(sig, "interrupted while running trial " .. resolved.mask_string)
  end
  local record = {
    mask = mask,
    mask_string = resolved.mask_string,
    full = requests == cfg.workload.request_count,
    requests = requests,
    ok = r.ok,
    error = r.error,
    timing = r.timing,
    wall_s = knob.now() - started,
    config = M.resolved_config(cfg, resolved, requests),
    dir = opts.dir,
  }
  local metrics = {}
  local not_metrics = { ok = true, error = true, timing = true, profile = true, repeats = true, interrupted = true }
  for k, v in pairs(r) do
    if not not_metrics[k] then metrics[k] = v end
  end
  record.metrics = metrics
  record.repeats = r.repeats -- each repeat's metrics when workload.repeats > 1
  -- a trial that never replayed counts as every request failed
  record.error_rate = r.error_rate ~= nil and r.error_rate or 1.0
  record.valid = r.ok and record.error_rate <= cfg.constraints.max_error_rate
  if r.ok and not record.valid and not record.error then
    record.error = string.format("error_rate %.4f exceeds constraints.max_error_rate", record.error_rate)
  end
  if opts.profile then
    local reason = opts.no_profile_reason or (r.profile and r.profile.error)
    if r.profile and r.profile.ok then
      record.trace, record.phases = M.summarize(cfg, r.profile.sqlite_path)
    else
      record.trace, record.phases = M.empty_trace(cfg, reason or "profiling failed")
    end
    record.profile_error = reason
    record.profile_note = r.profile and r.profile.note
  end
  return record
end

-- Writes the artifact set of a profiled run into record.dir.
function M.write_artifacts(record)
  local d = record.dir
  util.write_json(d .. "/config.json", record.config)
  local cm = { ok = record.ok, error = record.error or cjson.null }
  for k, v in pairs(record.metrics) do cm[k] = v end
  util.write_json(d .. "/client_metrics.json", cm)
  util.write_json(d .. "/trace_summary.json", record.trace)
  util.write_json(d .. "/nvtx_phases.json", record.phases)
end

return M
