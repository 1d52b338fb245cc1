-- The config schema: one row per key of optimizations.json, the one place a key is
-- spelled. A row: path ("server.port"; "knobs[].name" for a key of every element of an
-- array; "env.*" for the entries of a map), type, default, range or allowed values,
-- a one-line doc, and what it decides:
--   identity = "measure"   part of a measurement's identity: what the server and the
--                          client do (a baseline, a trial, a probe measured with another
--                          value is another measurement)
--   identity = "search"    part of a search's identity only: what its trials explore and
--                          how they are judged (knobs, constraints, the capacity search)
--   (none)                 how the engine runs (timeouts for giving up, nsys, the report's
--                          inputs, where trials run): never changes a measured number
-- The validator (config.lua), the defaults, docs/config.md's key table (checked by a
-- test) and identity.lua derive from these rows. The rows of a plug-in's keys are the
-- plug-in's (registry.lua: executors/, arrivals/): they are added here, in name order,
-- and the allowed values of executor.type, workload.arrival.type and
-- workload.dataset_format are the registered names.
local registry = require("knobengine.registry")

local M = {}

M.ROWS = {}
M.BY_PATH = {}

local function row(path, t)
  t.path = path
  M.ROWS[#M.ROWS + 1] = t
  M.BY_PATH[path] = t
end

-- The rows of a kind of plug-in, plug-ins in name order (copies: the plug-ins' own
-- tables stay as they wrote them), then each plug-in's `uses` ({key = "optional" |
-- "required"}, keys of rows under prefix that another declares) added to those rows'
-- `types`.
local function plugin_rows(kind, prefix)
  for _, r in ipairs(registry.rows(kind)) do
    local t = {}
    for k, v in pairs(r) do t[k] = v end
    if r.types then
      t.types = {}
      for k, v in pairs(r.types) do t.types[k] = v end
    end
    row(r.path, t)
  end
  for _, p in ipairs(registry.all(kind)) do
    for key, how in pairs(p.uses or {}) do
      local r = M.BY_PATH[prefix .. "." .. key]
      if not r then error(string.format("schema: plug-in %s/%s uses %s.%s, which has no row", kind, p.name, prefix, key), 0) end
      r.types = r.types or {}
      r.types[p.name] = how
    end
  end
end

-- Types: string, number, integer, boolean, enum (one_of), strings (a list of strings),
-- devices (false, true or a list of device indices), map (object of strings), object
-- (free-form), command (serve_cmd), list (an array of objects whose keys have rows of
-- their own), variant (an object whose keys depend on its type), section (an optional
-- object whose keys have rows of their own: absent, the feature is off).
row("serve_cmd", { type = "command", required = true, identity = "measure",
  doc = "the server command: an argv array, or a string split like a shell would (never run through one); `{port}` is replaced by `server.port` and must appear in `serve_cmd` or `env`" })
row("env", { type = "map", default = {}, identity = "measure", doc = "extra environment for the server; `{port}` is replaced" })
row("server.host", { type = "string", default = "127.0.0.1", identity = "measure", doc = "where the server listens" })
row("server.port", { type = "integer", default = 8000, min = 1, max = 65535, identity = "measure",
  doc = "the port, the same for every trial; in use before a start = a clear trial error" })
row("server.ready_path", { type = "string", default = "/health", doc = "polled until it answers 200; starts with `/`" })
row("server.ready_timeout_s", { type = "number", default = 900, min = 0.001, max = 86400, doc = "give up waiting for readiness" })
row("server.stop_timeout_s", { type = "number", default = 30, min = 0, max = 3600, doc = "SIGTERM, then SIGKILL after this" })
row("server.metrics_path", { type = "string", default = "/metrics",
  doc = "the server's Prometheus endpoint, scraped during every measured phase ([files.md](files.md#server-metrics)); `\"\"`: not scraped. A server without one is said once, and its trials have `server.unavailable`" })
row("server.metrics_interval_ms", { type = "integer", default = 500, min = 10, max = 60000,
  doc = "time between scrapes (a first one as the phase begins, a last as it ends); the GPUs are sampled on the same beat" })
row("server.metrics_names", { type = "object", default = {},
  doc = "other names for the server metrics the engine reads: `{\"kv_cache_usage\": \"my_server:kv_used_fraction\"}`, a name or a list of up to 4 per key of [the table](files.md#server-metrics)" })
row("server.reset_prefix_cache", { type = "boolean", default = false, identity = "measure",
  doc = "POST `/reset_prefix_cache` before each measured phase, so no phase starts with what the warmup or the previous repeat or probe cached (vLLM serves it with `VLLM_SERVER_DEV_MODE=1`); a server that does not answer 2xx fails the trial" })
row("telemetry.gpu", { type = "boolean", default = true,
  doc = "sample the server's GPUs (NVML) during measured phases: power, utilisation, memory, clocks and energy ([files.md](files.md#gpu-telemetry)); without a driver the figures are null with the reason" })

row("workload.dataset", { type = "string", doc_type = "path", doc = "the prompts (a path relative to the config; required unless `workload.synthetic`): JSON Lines, mooncake, ShareGPT or a CSV trace (Vidur's), see [load.md](load.md#datasets); its content (sha256) is part of the identity" })
row("workload.dataset_format", { type = "enum", default = "auto", one_of = { "auto", table.unpack(registry.names("datasets")) },
  identity = "measure", doc = "how to read the dataset; `auto`: a file named `*.csv` is a CSV trace, one that starts with `[{` is ShareGPT, otherwise each line is JSON Lines or mooncake by its keys" })
row("workload.synthetic.input_tokens", { type = "integer", min = 1, max = 10000000, identity = "measure",
  doc = "made-up prompts instead of a dataset: words per prompt (required with `workload.synthetic`)" })
row("workload.synthetic.output_tokens", { type = "integer", min = 1, max = 1000000, identity = "measure",
  doc = "tokens per reply (required with `workload.synthetic`)" })
row("workload.synthetic.spread", { type = "number", default = 0, min = 0, max = 0.99, identity = "measure",
  doc = "each length drawn uniformly within +-spread" })
row("workload.arrival", { type = "variant", identity = "measure",
  doc = "how requests are sent (rates in requests/s), see [load.md](load.md#arrivals)" })
row("workload.arrival.type", { type = "enum", default = "closed", identity = "measure", one_of = registry.names("arrivals"),
  doc = "`closed` (`concurrency` in flight), `poisson`, `gamma`, `constant` (`rate`), `sinusoid`, `trace` (each record's `timestamp`)" })
-- a key several arrival types use: which, and how, is theirs to say (`uses`)
row("workload.arrival.rate", { type = "number", min = 1e-6, max = 1e6, identity = "measure", doc = "the mean rate" })
plugin_rows("arrivals", "workload.arrival")
row("workload.multi_turn", { type = "section", identity = "measure",
  doc = "send each dataset record as a conversation ([load.md](load.md#multi-turn-conversations)): every user turn with the history before it, after the previous reply plus a think time; chat endpoint and closed loop only" })
row("workload.multi_turn.think_time_ms", { type = "number", default = 0, min = 0, max = 3600000, identity = "measure",
  doc = "the pause between a reply and the next turn of its conversation" })
row("workload.multi_turn.max_turns", { type = "integer", default = 64, min = 1, max = 10000, identity = "measure",
  doc = "at most this many user turns of each conversation are sent" })
row("workload.max_concurrency", { type = "integer", min = 1, max = 16384, identity = "measure",
  doc = "open-loop arrivals only: at most this many in flight (a request that finds them all busy waits and counts in `concurrency_cap_hits`)" })
row("workload.endpoint", { type = "enum", default = "/v1/completions", one_of = { "/v1/chat/completions", "/v1/completions" },
  identity = "measure", doc = "a `prompt` is sent as one user message to the chat endpoint" })
row("workload.model", { type = "string", required = true, identity = "measure", doc = "the `model` field of each request" })
row("workload.concurrency", { type = "integer", default = 8, min = 1, max = 4096, identity = "measure",
  doc = "requests in flight (closed loop; the warmup of an open loop too)" })
row("workload.request_count", { type = "integer", default = 200, min = 1, max = 10000000, identity = "measure",
  doc = "measured requests, dataset in order, wrapping around" })
row("workload.max_new_tokens", { type = "integer", default = 128, min = 1, max = 1000000, identity = "measure",
  doc = "`max_tokens` of each request (a dataset line may override)" })
row("workload.warmup_requests", { type = "integer", default = 4, min = 0, max = 1000000, identity = "measure",
  doc = "unmeasured requests first" })
row("workload.request_timeout_s", { type = "number", default = 300, min = 0.001, max = 86400, identity = "measure",
  doc = "per request (a slower one fails)" })
row("workload.seed", { type = "integer", default = 0, min = 0, max = 2 ^ 53, identity = "measure",
  doc = "sent as `seed`; requests also use `temperature: 0` and `ignore_eos: true`; also seeds the arrival schedule" })
row("workload.stream", { type = "boolean", default = true, identity = "measure", doc = "SSE streaming (needed for TTFT/ITL)" })
row("workload.repeats", { type = "integer", default = 1, min = 1, max = 16, identity = "measure",
  doc = "runs of the workload per trial on the same server: counts are summed, every latency and rate is the median across runs, summary.json keeps each run (`repeats`), requests.csv, requests-2.csv, ... When the best and the runner-up differ by less than the spread of their repeats, stderr says so" })

row("knobs", { type = "list", required = true, identity = "search",
  doc = "1-16 knobs: `{\"name\", \"flag\"}` appends the flag; `{\"name\", \"key\", \"on_value\"}` appends key and value; `{\"name\", \"env\", \"on_value\"}` sets the variable (on/off knobs); `{\"name\", \"key\" or \"env\", \"values\": [...]}` is a knob with values ([below](#knobs-with-values)). A knob has exactly one of flag/key/env; the combinations are at most 2^40. `knobengine profile` needs none" })
row("knobs[].name", { type = "string", required = true, identity = "search", doc = "unique" })
row("knobs[].flag", { type = "string", identity = "search", doc = "an on/off knob that appends this flag" })
row("knobs[].key", { type = "string", identity = "search", doc = "appends this key and the knob's value" })
row("knobs[].env", { type = "string", identity = "search", doc = "sets this environment variable to the knob's value" })
row("knobs[].on_value", { type = "string", identity = "search", doc = "the value of an on/off `key` or `env` knob" })
row("knobs[].values", { type = "strings", identity = "search",
  doc = "1-35 distinct non-empty strings a `key` or `env` knob takes; not with `on_value` or `flag`" })
row("knobs[].unset", { type = "boolean", default = true, identity = "search",
  doc = "with `values`: whether value index 0 leaves the knob unset (the server's own default)" })

row("nsys.bin", { type = "string", default = "nsys", doc = "the nsys to run" })
row("nsys.trace", { type = "string", default = "cuda,nvtx,osrt", doc = "`-t`" })
row("nsys.capture", { type = "enum", default = "session", one_of = { "process", "session" }, doc = "see [nsys.md](nsys.md)" })
row("nsys.extra_args", { type = "strings", default = { "--trace-fork-before-exec=true" }, doc = "for `nsys launch` / `nsys profile`" })
-- CPU sampling and context-switch tracing off: the summary does not need them, and
-- with them nsys 2022.4 often hangs in `nsys stop` when NVTX is traced
row("nsys.capture_args", { type = "strings", default = { "--sample=none", "--cpuctxsw=none" }, doc = "for `nsys start` / `nsys profile`" })
row("nsys.phases", { type = "strings", default = { "get_batch", "prefill", "decode" }, nonempty = true,
  doc = "NVTX labels reported as phases" })
row("nsys.kernel_names", { type = "enum", default = "demangled", one_of = { "demangled", "short" },
  doc = "group top kernels by demangled or base name" })
row("nsys.timeout_s", { type = "number", default = 600, min = 1, max = 86400, doc = "limit for each nsys command" })
row("nsys.capture_requests", { type = "integer", min = 1,
  doc = "capture only the first N measured requests (at most `workload.request_count`): session capture stops then (the workload goes on); process capture ends the profiled run there" })
row("nsys.cuda_graph_trace", { type = "enum", default = "node", one_of = { "graph", "node" },
  doc = "`--cuda-graph-trace`: `graph` records one interval per graph launch (far smaller traces)" })
row("nsys.max_trace_mb", { type = "number", default = 4096, min = 0, max = 1e7,
  doc = "the capture is stopped, and the profile marked `partial`, once it passes this many MB; `0`: no limit" })

row("nsys.gpu_metrics", { type = "devices", default = false,
  doc = "GPU metrics sampling in the profiled launches (SM, tensor and DRAM activity per device): `true` (every GPU), a list of device indices, or `false`; see [nsys.md](nsys.md#gpu-metrics)" })
row("nsys.gpu_metrics_frequency", { type = "integer", default = 10000, min = 10, max = 200000,
  doc = "GPU metrics samples per second" })
row("ncu", { type = "section", doc = "an Nsight Compute pass for the top kernels after the baseline's and the best's nsys profile (no `ncu`: none); see [ncu.md](ncu.md)" })
row("ncu.bin", { type = "string", default = "ncu", doc = "the ncu to run" })
row("ncu.kernels", { type = "integer", default = 3, min = 1, max = 50, doc = "how many kernels: the top K by nsys time" })
row("ncu.launch_count", { type = "integer", default = 1, min = 1, max = 100, doc = "launches profiled per kernel" })
row("ncu.sections", { type = "strings", default = { "SpeedOfLight", "Occupancy", "LaunchStats", "MemoryWorkloadAnalysis" },
  nonempty = true, doc = "`--section` names" })
row("ncu.requests", { type = "integer", default = 16, min = 1, max = 10000000,
  doc = "measured requests of the ncu launch (at most `workload.request_count`): ncu replays each profiled kernel many times" })
row("ncu.timeout_s", { type = "number", default = 1800, min = 1, max = 86400,
  doc = "the time budget of the ncu launch: past it the launch is stopped and what ncu wrote is kept" })
row("ncu.extra_args", { type = "strings", default = {}, doc = "more ncu options" })

row("objective.minimize", { type = "string", default = "p50_latency_ms",
  doc = "the metric to minimize: p50/p95/p99/mean_latency_ms, tokens_per_s, requests_per_s, error_rate; with an `slo` also `goodput`, `slo_attainment_pct`, and `max_rate` (the capacity of trials a strategy ran with `search:capacity`)" })
row("objective.maximize", { type = "string", doc = "or the metric to maximize (one of `objective.minimize`'s; not both)" })
row("objective.tie_breakers", { type = "strings", default = { "p95_latency_ms:min", "tokens_per_s:max" },
  doc = "`metric:min` or `metric:max`, in order" })
row("constraints.max_error_rate", { type = "number", default = 0, min = 0, max = 1, identity = "search",
  doc = "trials above it are invalid" })
row("constraints.reject_suspect", { type = "boolean", default = false, identity = "search",
  doc = "suspect trials (the client fell behind, read the streams late, or the server's token counts disagree: [files.md](files.md#suspect-trials)) are invalid" })
row("constraints.slo", { type = "boolean", default = false, identity = "search", doc = "trials whose SLO does not hold are invalid (needs an `slo`)" })

row("slo.ttft_ms", { type = "number", min = 0, max = 1e9, identity = "measure", doc = "a threshold on TTFT (at least one threshold)" })
row("slo.tpot_ms", { type = "number", min = 0, max = 1e9, identity = "measure", doc = "a threshold on TPOT" })
row("slo.itl_ms", { type = "number", min = 0, max = 1e9, identity = "measure", doc = "a threshold on the largest inter-token gap" })
row("slo.e2e_ms", { type = "number", min = 0, max = 1e9, identity = "measure", doc = "a threshold on end-to-end latency" })
row("slo.quantile", { type = "number", default = 0.99, min = 0, max = 1, identity = "measure",
  doc = "the SLO holds when each metric's value at this quantile is within its threshold" })
row("slo.combine", { type = "enum", default = "and", one_of = { "and", "or" }, identity = "measure",
  doc = "a request (and the quantile check) needs every threshold met, or any" })

row("slos", { type = "list",
  doc = "several SLOs for `knobengine capacity --grid`: each `{\"name\", ...}` with the keys of `slo`, see [load.md](load.md#capacity-grid)" })
row("slos[].name", { type = "string", required = true, doc = "unique, at most 64 characters: names the SLO in the grid's files" })
row("workloads", { type = "list",
  doc = "several workloads for `knobengine capacity --grid`: each `{\"name\", ...}` with the `workload` keys it replaces (`dataset` or `synthetic`, `dataset_format`, `arrival`, `max_concurrency`, `concurrency`, `request_count`, `max_new_tokens`, `warmup_requests`), see [load.md](load.md#capacity-grid)" })
row("workloads[].name", { type = "string", required = true, doc = "unique, at most 64 characters: names the workload in the grid's files" })

row("capacity.start_rate", { type = "number", default = 1, min = 1e-6, max = 1e6, identity = "search",
  doc = "requests/s of the first probe; at most `capacity.max_rate`, and (with an `slo` or `slos`, which every capacity probe needs) a probe lasts at most an hour" })
row("capacity.tolerance", { type = "number", default = 0.05, min = 1e-4, max = 1, identity = "search",
  doc = "the search stops when the highest rate that held and the lowest that did not are within this share of the latter" })
row("capacity.max_probes", { type = "integer", default = 12, min = 1, max = 100, identity = "search", doc = "at most this many probes" })
row("capacity.max_rate", { type = "number", default = 1e6, min = 1e-6, max = 1e6, identity = "search",
  doc = "never probe above this (a search whose SLO held up to it ends there: a lower bound)" })
row("capacity.min_probe_s", { type = "number", default = 10, min = 0, max = 3600, identity = "search",
  doc = "a probe lasts at least this long: at rate r it sends max(`workload.request_count`, r x this) requests, so a fast rate is not judged on a fraction of a second" })
row("capacity.repeats", { type = "integer", default = 3, min = 1, max = 9, identity = "search",
  doc = "near the boundary (a rate that held and one that did not known) a rate is probed until one verdict has a majority of this many; a split vote marks it unstable" })
row("capacity.arrival", { type = "enum", default = "poisson", one_of = { "constant", "poisson" }, identity = "search",
  doc = "the arrivals of capacity probes when the workload's are not poisson, constant or gamma (closed, sinusoid, trace), and of `load-sweep --rates`" })

row("calibration.strict_mape_pct", { type = "number", default = 5, min = 0, max = 1000,
  doc = "`knobengine calibrate`: TTFT and TPOT p50 pass when their MAPE against the simulator is below this (the plan's strict tolerance)" })
row("calibration.loose_mape_pct", { type = "number", default = 10, min = 0, max = 1000,
  doc = "calibrate: E2E latency p99 passes below this MAPE (the plan's loose tolerance) ..." })
row("calibration.loose_max_mape_pct", { type = "number", default = 15, min = 0, max = 1000,
  doc = "... is marginal below this, and fails at or above it" })

row("validate.max_batch", { type = "integer", min = 1, max = 100000,
  doc = "`knobengine validate`: the server's batch size cap, whose 1/2, 9/10 and 11/10 are the medium, saturation and overload concurrencies (or `validate.max_batch_knob`)" })
row("validate.max_batch_knob", { type = "string",
  doc = "validate: a knob whose value in each method's pick is its batch cap (a number), else `validate.max_batch`" })
row("validate.min_rate", { type = "number", default = 1, min = 0, max = 1e6, doc = "validate: the sinusoidal load's lowest rate (req/s)" })
row("validate.max_rate", { type = "number", default = 10, min = 1e-6, max = 1e6, doc = "validate: its highest rate" })
row("validate.period_s", { type = "number", default = 60, min = 1e-3, max = 1e7, doc = "validate: its period" })
row("validate.duration_s", { type = "number", min = 1e-3, max = 1e7, doc = "validate: how long it lasts (default one period)" })

row("model.name", { type = "string", doc = "the report's MFU inputs (no `model`: MFU is na); nothing else reads them" })
row("model.params_b", { type = "number", min = 1e-6, max = 1e6, doc = "parameters in billions (or `model.flops_per_token`)" })
row("model.flops_per_token", { type = "number", min = 1, max = 1e18, doc = "FLOPs per token (or `model.params_b`)" })
row("model.layers", { type = "integer", min = 1, max = 100000, doc = "with `model.hidden_size`: the attention term of MFU" })
row("model.hidden_size", { type = "integer", min = 1, max = 10000000, doc = "with `model.layers`" })
row("hardware.peak_tflops", { type = "number", min = 1e-3, max = 1e7, doc = "one GPU's dense bf16/fp16 peak for MFU, overriding the table in [report.md](report.md#mfu)" })
row("hardware.gpu", { type = "string", doc = "the GPU's name for load-sweep's calibration template (default: nvidia-smi's first GPU, else null)" })
row("hardware.tp", { type = "integer", min = 1, max = 4096, doc = "the server's tensor-parallel size, for the calibration template (default null)" })
row("hardware.pp", { type = "integer", min = 1, max = 4096, doc = "the server's pipeline-parallel size, for the calibration template (default null)" })
row("hardware.gpu_count", { type = "integer", default = 1, min = 1, max = 4096, doc = "GPUs the server uses (MFU's peak and compare's GPU-hours)" })

row("executor", { type = "variant", doc = "where sweep trials run (none: one at a time, in the engine); every key in [executors.md](executors.md)" })
row("executor.type", { type = "enum", required = true, one_of = registry.names("executors"), doc = "`local` slots or `slurm` jobs" })
plugin_rows("executors", "executor")
row("strategy_options", { type = "object", default = {}, doc = "options of the strategy, checked against the options it declares" })

-- The keys directly under prefix ("" for the top level): those an object there may
-- have, in order.
function M.children(prefix)
  local out, seen = {}, {}
  for _, r in ipairs(M.ROWS) do
    local p = r.path
    if prefix == "" or p:sub(1, #prefix + 1) == prefix .. "." then
      local rest = prefix == "" and p or p:sub(#prefix + 2)
      local key = rest:match("^([^.]+)")
      if key and not seen[key] then
        seen[key] = true
        out[#out + 1] = key
      end
    end
  end
  return out
end

-- The allowed-key set of the object at prefix (for Checker:object).
function M.keys(prefix)
  local set = {}
  for _, k in ipairs(M.children(prefix)) do set[k:gsub("%[%]$", "")] = 1 end
  return set
end

-- A value as the docs show it.
local function shown(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return #parts == 0 and "none" or table.concat(parts, " ")
  end
  if type(v) == "number" then
    local i = math.tointeger(v)
    if i then return tostring(i) end
    return v >= 1e5 and string.format("%g", v) or string.format("%.10g", v)
  end
  return tostring(v)
end

-- The type column of a row in docs/config.md: "integer 1-65535 (`8000`)".
local function type_text(r)
  local t = r.type == "enum" and ("`" .. table.concat(r.one_of, "`, `") .. "`") or r.doc_type or r.type
  if r.min and r.max then t = string.format("%s %s-%s", t, shown(r.min), shown(r.max))
  elseif r.min then t = string.format("%s >= %s", t, shown(r.min)) end
  if r.required then return t .. " (required)" end
  if r.default ~= nil and not (type(r.default) == "table" and next(r.default) == nil and r.type ~= "strings") then
    return string.format("%s (`%s`)", t, shown(r.default))
  end
  return t
end

local IDENTITY = { measure = "measurement", search = "search" }

-- docs/config.md's key table, every row in order (a test checks the page holds it).
function M.doc_table()
  local lines = { "| key | type (default) | identity | meaning |", "|---|---|---|---|" }
  for _, r in ipairs(M.ROWS) do
    lines[#lines + 1] = string.format("| `%s` | %s | %s | %s |", r.path, type_text(r), IDENTITY[r.identity] or "",
      r.doc or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

function M.row(path)
  local r = M.BY_PATH[path]
  if not r then error("schema: no row " .. path, 2) end
  return r
end

return M
