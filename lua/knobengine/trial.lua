-- Running one trial: the spec knob.evaluate runs, the record it becomes (record.lua),
-- and for profiled runs the trace summary and the artifact set (config.json,
-- client_metrics.json, trace files, logs.txt).
local cjson = require("cjson")
local knob = require("knob")
local knobs = require("knobengine.knobs")
local observe = require("knobengine.observe")
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

-- The files of a run: a profiled run's carry the prefix "profiled_", so a directory can
-- hold the plain run and the profiled run of the same config side by side.
local function files(opts)
  local prefix = opts.profile and "profiled_" or ""
  return opts.dir .. "/" .. prefix .. "logs.txt", opts.dir .. "/" .. prefix .. "requests.csv"
end

-- The first n entries of a list (a screening trial sends fewer requests).
function M.prefix(list, n)
  if #list <= n then return list end
  return table.move(list, 1, n, 1, {})
end

-- The SLO as knob.replay takes it (docs/load.md "SLOs and goodput"), or nil.
function M.slo_spec(slo)
  if not slo then return nil end
  return { ttft_ms = slo.ttft_ms, tpot_ms = slo.tpot_ms, itl_ms = slo.itl_ms, e2e_ms = slo.e2e_ms,
    percentile = slo.quantile * 100, combine = slo.combine }
end

-- The spec knob.evaluate runs (docs/lua-api.md).
local function trial_spec(ctx, resolved, opts, requests)
  local cfg = ctx.cfg
  local log_path, requests_csv = files(opts)
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
      requests_csv = requests_csv,
      schedule = ctx.schedule and M.prefix(ctx.schedule, requests),
      max_concurrency = cfg.workload.max_concurrency,
      slo = M.slo_spec(cfg.slo),
    },
  }
  observe.add(ctx, spec.replay, M.base_url(cfg), resolved.env)
  spec.probe = opts.probe -- replays chosen one after another on this server (load.lua)
  if progress.enabled() then
    local label = opts.label or ("mask " .. resolved.mask_string)
    spec.on_phase = function(phase) progress.say("  %s: %s", label, phase) end
  end
  return spec
end

-- The capture directory (nsys's TMPDIR) of a profiled run in dir.
local function capture_dir(dir) return dir .. "/nsys-tmp" end

-- `nsys COMMAND --help` of this nsys, read once per run (cached), or nil.
local nsys_help_text = {}

local function nsys_help(bin, command)
  local key = bin .. "\0" .. command
  if nsys_help_text[key] == nil then
    local log = os.tmpname()
    local status = knob.run({ bin, command, "--help" }, log, 60)
    nsys_help_text[key] = status == 0 and util.read_file(log) or false
    os.remove(log)
  end
  return nsys_help_text[key] or nil
end

-- GPU metrics sampling of a profiled launch as the installed nsys spells it (docs/nsys.md
-- "GPU metrics"): {args, command} with args for `nsys start` (session capture; `nsys
-- launch` when only its help lists them) or `nsys profile` (process capture), or
-- {unsupported = why} when this nsys has no such option; nil when nsys.gpu_metrics is off.
-- nsys 2022.x: --gpu-metrics-device; 2023 and later: --gpu-metrics-devices.
function M.gpu_metrics_args(n)
  if not n.gpu_metrics then return nil end
  local devices = {}
  for i, d in ipairs(n.gpu_metrics == true and {} or n.gpu_metrics) do devices[i] = string.format("%d", d) end
  local value = n.gpu_metrics == true and "all" or table.concat(devices, ",")
  local commands = n.capture == "process" and { "profile" } or { "start", "launch" }
  for _, command in ipairs(commands) do
    local help = nsys_help(n.bin, command) or ""
    local name = help:find("--gpu-metrics-devices=", 1, true) and "--gpu-metrics-devices"
      or help:find("--gpu-metrics-device=", 1, true) and "--gpu-metrics-device"
    if name then
      local args = { name .. "=" .. value }
      if help:find("--gpu-metrics-frequency=", 1, true) then
        args[2] = string.format("--gpu-metrics-frequency=%d", n.gpu_metrics_frequency)
      end
      return { args = args, command = command }
    end
  end
  local asked = {}
  for i, command in ipairs(commands) do asked[i] = string.format("'%s %s --help'", n.bin, command) end
  return { unsupported = string.format("nsys.gpu_metrics is on, but %s %s no --gpu-metrics-device or "
    .. "--gpu-metrics-devices option: this nsys cannot sample GPU metrics (a newer Nsight Systems can)",
    table.concat(asked, " and "), #asked > 1 and "list" or "lists") }
end

local function plus(list, more)
  local out = table.move(list or {}, 1, #(list or {}), 1, {})
  return table.move(more, 1, #more, #out + 1, out)
end

local function nsys_spec(cfg, opts)
  local n = cfg.nsys
  local gm = M.gpu_metrics_args(n) or {}
  local launch_args = gm.command == "launch" and gm.args or {}
  local start_args = gm.args and gm.command ~= "launch" and gm.args or {}
  return {
    bin = n.bin, trace = n.trace, extra_args = plus(n.extra_args, launch_args),
    capture_args = plus(n.capture_args, start_args), capture = n.capture, output = opts.dir .. "/trace",
    session = opts.session, log_path = (files(opts)), timeout_s = n.timeout_s,
    cuda_graph_trace = n.cuda_graph_trace, tmp_dir = capture_dir(opts.dir), capture_requests = n.capture_requests,
    max_trace_mb = n.max_trace_mb, gpu_metrics_unsupported = gm.unsupported,
  }
end

-- Says on stderr when a profile that asked for GPU metrics has none, and why.
function M.warn_if_no_gpu_metrics(label, cfg, summary)
  if cfg.nsys.gpu_metrics and summary.ok and util.is_null(summary.gpu_metrics) then
    io.stderr:write(string.format("knobengine: %s: no GPU metrics: %s\n", label, summary.gpu_metrics_reason or "?"))
  end
end

local function ms(v) return type(v) == "number" and string.format("%.3f", v) or "na" end

-- A streaming client that reads data this late (ms, p99) is not keeping up: a chunk
-- that waits until the next one arrives is dated by the later arrival.
M.READ_LAG_WARN_MS = record.READ_LAG_LIMIT_MS

-- Says on stderr when the client could not keep up: an open loop that fell behind its
-- schedule (the server saw less load than asked for), or streams read late (TTFT and
-- inter-token times overstated).
function M.warn_if_behind(label, m)
  local late, hits, lag = m.send_lateness_ms, m.concurrency_cap_hits, m.read_lag_ms
  local p99 = type(late) == "table" and late.p99
  if type(p99) == "number" and p99 > record.SEND_LATENESS_LIMIT_MS or (hits or 0) > 0 then
    io.stderr:write(string.format("knobengine: %s: the client fell behind its schedule (send lateness p99 %s ms, max "
      .. "%s ms; %d request(s) waited for workload.max_concurrency)\n", label, ms(p99), ms(late.max), hits or 0))
  end
  local lag99 = type(lag) == "table" and lag.p99
  if type(lag99) == "number" and lag99 > M.READ_LAG_WARN_MS then
    io.stderr:write(string.format("knobengine: %s: the client read streamed data late (read lag p50 %s ms, p99 %s "
      .. "ms): it did not keep up with the streams, so TTFT and inter-token times may be overstated by up to that "
      .. "much; lower workload.concurrency or give the client more CPU\n", label, ms(lag.p50), ms(lag99)))
  end
end

-- Says on stderr when some requests reported a usage.completion_tokens the client did
-- not believe (far from what they sent: docs/files.md "Result"); their output tokens
-- were counted from what they sent instead.
function M.warn_if_miscounted(label, m)
  local n, ex = m.token_mismatch, m.token_mismatch_example
  if type(n) ~= "number" or n <= 0 or type(ex) ~= "table" then return end
  local sent = string.format("%d bytes of text", ex.bytes or 0)
  if type(ex.chunks) == "number" then sent = string.format("%d chunks, %s", ex.chunks, sent) end
  io.stderr:write(string.format("knobengine: %s: %d of %d request(s) reported usage.completion_tokens far from what "
    .. "they sent (e.g. %s vs %s); their output tokens are counted from what they sent instead\n", label, n,
    m.completed or n, type(ex.usage) == "number" and string.format("%.15g", ex.usage) or "?", sent))
end

-- Runs one trial. opts: dir (its directory, created), requests, profile (bool),
-- session (unique nsys session name), label (for progress lines), wrap (an argv
-- prefix the server runs under, e.g. ncu and its options; config.json keeps the
-- server's own argv). Returns the record (record.lua); raises only on interrupt.
function M.run(ctx, mask, opts)
  local cfg = ctx.cfg
  local resolved = knobs.resolve(cfg, mask)
  util.mkdir(opts.dir)
  local requests = opts.requests or cfg.workload.request_count
  local spec = trial_spec(ctx, resolved, opts, requests)
  if opts.wrap then
    spec.argv = table.move(resolved.argv, 1, #resolved.argv, #opts.wrap + 1, table.move(opts.wrap, 1, #opts.wrap, 1, {}))
  end
  local profile = opts.profile
  if profile then
    spec.nsys = nsys_spec(cfg, opts)
    util.mkdir(spec.nsys.tmp_dir)
  end
  local started = knob.now()
  local r = knob.evaluate(spec, profile)
  if profile then knob.remove_tree(spec.nsys.tmp_dir) end
  if r.metrics then
    local label = opts.label or ("mask " .. resolved.mask_string)
    M.warn_if_behind(label, r.metrics)
    M.warn_if_miscounted(label, r.metrics)
    observe.say_unavailable(r.metrics)
    r.metrics.turns = observe.per_turn(ctx, spec.replay.requests_csv)
  end
  if r.output_failed then
    errors.storage("trial %s: %s (its workload ran, but what it measured could not be stored)", resolved.mask_string,
      r.error or "?")
  end
  if r.interrupted then
    local sig = knob.interrupted() or 2
    -- a trial names its mask; the baseline, a profile and probes their label
    errors.interrupted(sig, "interrupted while running " .. (opts.label or ("trial " .. resolved.mask_string)))
  end
  local rec = record.from_result(r, {
    mask = mask, mask_string = resolved.mask_string, requests = requests,
    full = requests == cfg.workload.request_count, config = M.resolved_config(cfg, resolved, requests),
    dir = opts.dir, wall_s = knob.now() - started, max_error_rate = cfg.constraints.max_error_rate,
    require_slo = cfg.constraints.slo, reject_suspect = cfg.constraints.reject_suspect,
  })
  if opts.profile then
    local p = r.profile or {}
    if p.ok then
      rec.trace, rec.phases, rec.trace_tables = trace.summarize(cfg, p.sqlite_path, spec.nsys)
      M.warn_if_no_gpu_metrics(opts.label or ("mask " .. resolved.mask_string), cfg, rec.trace)
    else
      -- why there is no report: nsys said so, or the profiled server never ran
      rec.profile_error = p.error or rec.error or "profiling failed"
      rec.trace, rec.phases = trace.empty(cfg, rec.profile_error)
    end
    rec.profile = r.profile -- note, partial, size_limited, capture_bytes, rep_path, sqlite_path
  end
  return rec
end

-- Writes what a profiled run adds to its directory: the client metrics measured under
-- nsys (profiled_client_metrics.json, never used for a comparison) and the trace
-- summary files.
function M.write_profile(rec)
  local d = rec.dir
  if rec.ran then util.write_json(d .. "/profiled_client_metrics.json", record.client_metrics(rec)) end
  util.write_json(d .. "/trace_summary.json", rec.trace)
  util.write_json(d .. "/nvtx_phases.json", rec.phases)
  -- kernels.csv (every kernel) and nvtx.csv (every NVTX range), from the same read
  local all = rec.trace_tables
  if rec.trace.ok and all then
    local tables = require("knobengine.tables")
    util.write(d .. "/kernels.csv", tables.kernels_csv(all))
    util.write(d .. "/nvtx.csv", tables.nvtx_csv(all))
  end
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return cjson.null end
  local n = f:seek("end")
  f:close()
  return n
end

-- profiling_overhead.json: the same config measured with and without nsys. plain: the
-- unprofiled record; prof: the profiled one (or the stand-in when nsys could not run).
function M.overhead(cfg, plain, prof)
  local a, b = plain.metrics.p50_latency_ms, prof.ran and prof.metrics.p50_latency_ms or nil
  -- a profiled launch that failed (a crash under nsys, errors over the limit) says
  -- nothing about what nsys costs
  local failed = prof.ran and prof.valid == false
  local measurable = not failed and type(a) == "number" and type(b) == "number" and a > 0
  local p = prof.profile or {}
  local n = cfg.nsys
  return {
    unprofiled_p50_latency_ms = util.is_null(a) and cjson.null or a,
    profiled_p50_latency_ms = type(b) == "number" and b or cjson.null,
    overhead_ms = measurable and b - a or cjson.null,
    overhead_percent = measurable and 100 * (b - a) / a or cjson.null,
    reason = failed and ("the profiled launch failed: " .. tostring(prof.error or "invalid"))
      or (not measurable) and (prof.profile_error or prof.error or "no latency to compare") or cjson.null,
    unprofiled_wall_s = plain.wall_s or cjson.null, -- whole trials: start, warm-up, workload, stop
    profiled_wall_s = prof.ran and prof.wall_s or cjson.null,
    trace_bytes = {
      nsys_rep = file_size(prof.dir .. "/trace.nsys-rep"), sqlite = file_size(prof.dir .. "/trace.sqlite"),
      capture_peak = p.capture_bytes or cjson.null,
    },
    capture = {
      mode = n.capture, trace = n.trace, cuda_graph_trace = n.cuda_graph_trace,
      capture_requests = n.capture_requests or cjson.null, max_trace_mb = n.max_trace_mb,
      partial = p.partial or cjson.null,
    },
  }
end

return M
