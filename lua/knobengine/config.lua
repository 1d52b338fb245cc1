-- Loads optimizations.json, validates every key, applies defaults, and resolves a knob
-- mask into the server's argv and environment. Every problem is a usage error (exit 2)
-- naming the file and the key path, raised before anything is written.
local cjson = require("cjson")
local errors = require("knobengine.errors")
local Space = require("knobengine.space")
local util = require("knobengine.util")

local M = {}

M.MAX_KNOBS = 16
M.MAX_PROBE_S = 3600 -- a capacity probe (workload.request_count at one rate) lasts at most this
M.ENDPOINTS = { ["/v1/completions"] = true, ["/v1/chat/completions"] = true }
M.METRICS = {
  p50_latency_ms = true, p95_latency_ms = true, p99_latency_ms = true, mean_latency_ms = true,
  tokens_per_s = true, requests_per_s = true, error_rate = true, goodput = true, slo_attainment_pct = true, max_rate = true,
}

-- Field checkers: each returns the (possibly converted) value or raises via bad().
local function kind(v)
  if v == cjson.null then return "null" end
  local t = type(v)
  if t == "number" then return "number" end
  if t == "table" then
    local n, max = 0, 0
    for k in pairs(v) do
      n = n + 1
      if math.type(k) == "integer" and k > max then max = k end
    end
    if n > 0 and max == n then return "array" end
    if n == 0 then return "empty" end
    return "object"
  end
  return t
end

local Checker = {}
Checker.__index = Checker

local function new_checker(file) return setmetatable({ file = file }, Checker) end

function Checker:bad(path, fmt, ...)
  errors.usage("config %s: %s%s", self.file, path == "" and "" or path .. ": ", string.format(fmt, ...))
end

function Checker:string(v, path, opts)
  opts = opts or {}
  if type(v) ~= "string" then self:bad(path, "expected string") end
  if not opts.empty and v == "" then self:bad(path, "must not be empty") end
  if v:find("%z") then self:bad(path, "must not contain NUL bytes") end
  if not utf8.len(v) then self:bad(path, "is not valid UTF-8") end
  local ctl = v:find("[%c\127]")
  if ctl then
    self:bad(path, "must not contain control characters (byte 0x%02x at offset %d)", v:byte(ctl), ctl - 1)
  end
  if opts.one_of and not opts.one_of[v] then
    local names = {}
    for k in pairs(opts.one_of) do names[#names + 1] = "'" .. k .. "'" end
    table.sort(names)
    self:bad(path, "expected one of %s (got '%s')", table.concat(names, ", "), v)
  end
  return v
end

-- Numbers in messages as the user wrote them: 2, not 2.0.
local function shown(v)
  local i = math.tointeger(v)
  if i then return tostring(i) end
  return string.format("%.17g", v)
end

function Checker:number(v, path, opts)
  opts = opts or {}
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    self:bad(path, "expected %s", opts.integer and "integer" or "number")
  end
  if opts.integer then
    local i = math.tointeger(v)
    if not i then self:bad(path, "expected integer (got %s)", shown(v)) end
    v = i
  end
  if opts.min and v < opts.min then self:bad(path, "must be >= %s (got %s)", shown(opts.min), shown(v)) end
  if opts.max and v > opts.max then self:bad(path, "must be <= %s (got %s)", shown(opts.max), shown(v)) end
  return v
end

function Checker:boolean(v, path)
  if type(v) ~= "boolean" then self:bad(path, "expected boolean") end
  return v
end

function Checker:object(v, path, allowed)
  local k = kind(v)
  if k ~= "object" and k ~= "empty" then self:bad(path, "expected object") end
  if allowed then
    local unknown = {}
    for key in pairs(v) do
      if type(key) ~= "string" or allowed[key] == nil then unknown[#unknown + 1] = tostring(key) end
    end
    table.sort(unknown)
    if #unknown > 0 then
      local prefix = path == "" and "" or path .. "."
      errors.usage("config %s: %s%s: unknown key", self.file, prefix, unknown[1])
    end
  end
  return v
end

function Checker:array(v, path, opts)
  opts = opts or {}
  local k = kind(v)
  if k == "empty" then
    if opts.nonempty then self:bad(path, "must not be empty") end
    return {}
  end
  if k ~= "array" then self:bad(path, "expected array") end
  return v
end

function Checker:string_list(v, path, opts)
  local list = self:array(v, path, opts)
  local out = {}
  for i, s in ipairs(list) do out[i] = self:string(s, string.format("%s[%d]", path, i - 1), { empty = true }) end
  return out
end

-- Splits a command string like a POSIX shell would (quotes and backslashes), without
-- expansions: the result is run directly, never through a shell.
function M.split_command(s)
  local argv, cur, i, n, have = {}, {}, 1, #s, false
  while i <= n do
    local c = s:sub(i, i)
    if c == "'" then
      local j = s:find("'", i + 1, true)
      if not j then return nil, "unterminated single quote" end
      cur[#cur + 1] = s:sub(i + 1, j - 1); have = true; i = j + 1
    elseif c == '"' then
      i = i + 1
      local closed = false
      while i <= n do
        local d = s:sub(i, i)
        if d == '"' then closed = true; i = i + 1; break end
        if d == "\\" and i < n and s:sub(i + 1, i + 1):match('["\\$`]') then
          cur[#cur + 1] = s:sub(i + 1, i + 1); i = i + 2
        else
          cur[#cur + 1] = d; i = i + 1
        end
      end
      if not closed then return nil, "unterminated double quote" end
      have = true
    elseif c == "\\" then
      if i == n then return nil, "trailing backslash" end
      cur[#cur + 1] = s:sub(i + 1, i + 1); have = true; i = i + 2
    elseif c:match("%s") then
      if have then argv[#argv + 1] = table.concat(cur); cur = {}; have = false end
      i = i + 1
    else
      cur[#cur + 1] = c; have = true; i = i + 1
    end
  end
  if have then argv[#argv + 1] = table.concat(cur) end
  return argv
end

local function line_col(text, offset)
  local line, col = 1, 1
  for i = 1, math.min(offset, #text + 1) - 1 do
    if text:byte(i) == 10 then line, col = line + 1, 1 else col = col + 1 end
  end
  return line, col
end

-- The first key that appears twice in one object of valid JSON text: its path
-- ("server.port", "knobs[1].name"), its line and column; nil when every key is unique.
-- cjson keeps the last of two silently, so a config could say one thing and mean another.
local function duplicate_key(text)
  local stack = {} -- per open object or array: {keys = set or nil, path = ..., index = n}
  local pos, n = 1, #text
  local function path_of(k) -- the containers' keys and indices, then k
    local p = ""
    for i = 1, #stack - 1 do
      local f = stack[i]
      p = f.keys and (p .. (p == "" and "" or ".") .. f.key) or (p .. "[" .. f.index .. "]")
    end
    return p .. (p == "" and "" or ".") .. k
  end
  while pos <= n do
    local s, e, c = text:find('([{}%[%]",:])', pos)
    if not s then break end
    if c == '"' then
      local close = s + 1
      while true do
        close = text:find('["\\]', close)
        if text:byte(close) == 92 then close = close + 2 else break end
      end
      local top = stack[#stack]
      if top and top.keys and top.expect_key then
        local raw = text:sub(s, close)
        local key = raw:find("\\", 1, true) and cjson.decode(raw) or raw:sub(2, -2)
        if top.keys[key] then
          local line, col = line_col(text, s)
          return path_of(key), line, col
        end
        top.keys[key], top.key, top.expect_key = true, key, false
      end
      pos = close + 1
    else
      local top = stack[#stack]
      if c == "{" then stack[#stack + 1] = { keys = {}, expect_key = true }
      elseif c == "[" then stack[#stack + 1] = { index = 0 }
      elseif c == "}" or c == "]" then stack[#stack] = nil
      elseif c == "," and top then
        if top.keys then top.expect_key = true else top.index = top.index + 1 end
      end
      pos = e + 1
    end
  end
end

-- Decodes JSON text, turning cjson's "at character N" into line and column; a key
-- given twice in one object is an error naming it.
function M.decode_json(text, what)
  local ok, v = pcall(cjson.decode, text)
  if ok then
    local dup, line, col = duplicate_key(text)
    if dup then errors.usage("%s: line %d, column %d: duplicate key '%s'", what, line, col, dup) end
    return v
  end
  local msg = tostring(v):gsub("^.-:%d+: ", "")
  local offset = tonumber(msg:match("at character (%d+)"))
  if offset then
    local line, col = line_col(text, offset)
    msg = msg:gsub(" at character %d+", "")
    errors.usage("%s: invalid JSON at line %d, column %d: %s", what, line, col, msg)
  end
  errors.usage("%s: invalid JSON: %s", what, msg)
end

local DEFAULTS = {
  server = { host = "127.0.0.1", port = 8000, ready_path = "/health", ready_timeout_s = 900, stop_timeout_s = 30 },
  workload = {
    endpoint = "/v1/completions", concurrency = 8, request_count = 200, max_new_tokens = 128,
    warmup_requests = 4, request_timeout_s = 300, seed = 0, stream = true, repeats = 1,
  },
  nsys = {
    bin = "nsys", trace = "cuda,nvtx,osrt", capture = "session", timeout_s = 600,
    extra_args = { "--trace-fork-before-exec=true" },
    cuda_graph_trace = "node", -- "graph": one record per graph launch, far smaller traces
    max_trace_mb = 4096, -- the capture is stopped when its files pass this (0: no limit)
    -- CPU sampling and context-switch tracing off: they are not needed for the summary,
    -- and with them nsys 2022.4 often hangs in `nsys stop` when NVTX is traced
    capture_args = { "--sample=none", "--cpuctxsw=none" },
    phases = { "get_batch", "prefill", "decode" }, kernel_names = "demangled",
  },
  objective = { minimize = "p50_latency_ms", tie_breakers = { "p95_latency_ms:min", "tokens_per_s:max" } },
  constraints = { max_error_rate = 0 },
}

local function get(t, k, default)
  local v = t[k]
  if v == nil then return default end
  return v
end

local function validate_server(c, raw)
  local s = c:object(get(raw, "server", {}), "server",
    { host = 1, port = 1, ready_path = 1, ready_timeout_s = 1, stop_timeout_s = 1 })
  local d = DEFAULTS.server
  local ready_path = c:string(get(s, "ready_path", d.ready_path), "server.ready_path")
  if ready_path:sub(1, 1) ~= "/" then c:bad("server.ready_path", "must start with '/'") end
  local host = c:string(get(s, "host", d.host), "server.host")
  if host:find("[%s/@]") then c:bad("server.host", "is not a host name or address") end
  return {
    host = host,
    port = c:number(get(s, "port", d.port), "server.port", { integer = true, min = 1, max = 65535 }),
    ready_path = ready_path,
    ready_timeout_s = c:number(get(s, "ready_timeout_s", d.ready_timeout_s), "server.ready_timeout_s", { min = 0.001, max = 86400 }),
    stop_timeout_s = c:number(get(s, "stop_timeout_s", d.stop_timeout_s), "server.stop_timeout_s", { min = 0, max = 3600 }),
  }
end

-- workload.arrival: how requests are sent (docs/load.md "Arrivals"). Every key checked for the
-- chosen type; rates are requests per second.
local ARRIVAL_KEYS = {
  closed = {}, poisson = { rate = true }, constant = { rate = true }, gamma = { rate = true, burstiness = false },
  sinusoid = { min_rate = true, max_rate = true, period_s = true }, trace = { time_scale = false },
}

local function validate_arrival(c, a)
  if a == nil then return { type = "closed" } end
  local allowed = { type = 1, rate = 1, burstiness = 1, min_rate = 1, max_rate = 1, period_s = 1, time_scale = 1 }
  c:object(a, "workload.arrival", allowed)
  local t = c:string(get(a, "type", "closed"), "workload.arrival.type", { one_of = ARRIVAL_KEYS })
  local out = { type = t }
  for key in pairs(allowed) do
    local needed = ARRIVAL_KEYS[t][key]
    if key ~= "type" and a[key] ~= nil and needed == nil then c:bad("workload.arrival." .. key, "is not used with type '%s'", t) end
    if needed and a[key] == nil then c:bad("workload.arrival." .. key, "is required with type '%s'", t) end
  end
  local function rate(key, min) return c:number(a[key], "workload.arrival." .. key, { min = min, max = 1e6 }) end
  if a.rate ~= nil then out.rate = rate("rate", 1e-6) end
  if t == "gamma" then out.burstiness = c:number(get(a, "burstiness", 1), "workload.arrival.burstiness", { min = 1e-3, max = 1000 }) end
  if t == "sinusoid" then
    out.min_rate, out.max_rate = rate("min_rate", 0), rate("max_rate", 1e-6)
    out.period_s = c:number(a.period_s, "workload.arrival.period_s", { min = 1e-3, max = 1e7 })
    if out.min_rate > out.max_rate then c:bad("workload.arrival.min_rate", "must be <= max_rate") end
  end
  if t == "trace" then out.time_scale = c:number(get(a, "time_scale", 1), "workload.arrival.time_scale", { min = 1e-6, max = 1e6 }) end
  return out
end

local function validate_synthetic(c, s)
  if s == nil then return nil end
  c:object(s, "workload.synthetic", { input_tokens = 1, output_tokens = 1, spread = 1 })
  if s.input_tokens == nil or s.output_tokens == nil then
    c:bad("workload.synthetic", "needs 'input_tokens' and 'output_tokens'")
  end
  return {
    input_tokens = c:number(s.input_tokens, "workload.synthetic.input_tokens", { integer = true, min = 1, max = 10000000 }),
    output_tokens = c:number(s.output_tokens, "workload.synthetic.output_tokens", { integer = true, min = 1, max = 1000000 }),
    spread = c:number(get(s, "spread", 0), "workload.synthetic.spread", { min = 0, max = 0.99 }),
  }
end

local function validate_workload(c, raw, base_dir)
  if raw.workload == nil then c:bad("workload", "is required") end
  local w = c:object(raw.workload, "workload", {
    dataset = 1, endpoint = 1, model = 1, concurrency = 1, request_count = 1, max_new_tokens = 1,
    warmup_requests = 1, request_timeout_s = 1, seed = 1, stream = 1, repeats = 1, arrival = 1, max_concurrency = 1,
    dataset_format = 1, synthetic = 1,
  })
  local d = DEFAULTS.workload
  if w.dataset == nil and w.synthetic == nil then c:bad("workload.dataset", "is required (or workload.synthetic)") end
  if w.dataset ~= nil and w.synthetic ~= nil then c:bad("workload.synthetic", "cannot be used with workload.dataset (use one)") end
  if w.model == nil then c:bad("workload.model", "is required") end
  local dataset = w.dataset ~= nil and c:string(w.dataset, "workload.dataset") or nil
  local out = {
    dataset = dataset or "(synthetic)",
    dataset_path = dataset and util.join(base_dir, dataset) or nil,
    dataset_format = c:string(get(w, "dataset_format", "auto"), "workload.dataset_format",
      { one_of = { auto = 1, jsonl = 1, mooncake = 1, sharegpt = 1 } }),
    synthetic = validate_synthetic(c, w.synthetic),
    arrival = validate_arrival(c, w.arrival),
    endpoint = c:string(get(w, "endpoint", d.endpoint), "workload.endpoint", { one_of = M.ENDPOINTS }),
    model = c:string(w.model, "workload.model"),
    concurrency = c:number(get(w, "concurrency", d.concurrency), "workload.concurrency", { integer = true, min = 1, max = 4096 }),
    request_count = c:number(get(w, "request_count", d.request_count), "workload.request_count", { integer = true, min = 1, max = 10000000 }),
    max_new_tokens = c:number(get(w, "max_new_tokens", d.max_new_tokens), "workload.max_new_tokens", { integer = true, min = 1, max = 1000000 }),
    warmup_requests = c:number(get(w, "warmup_requests", d.warmup_requests), "workload.warmup_requests", { integer = true, min = 0, max = 1000000 }),
    request_timeout_s = c:number(get(w, "request_timeout_s", d.request_timeout_s), "workload.request_timeout_s", { min = 0.001, max = 86400 }),
    seed = c:number(get(w, "seed", d.seed), "workload.seed", { integer = true, min = 0, max = 2 ^ 53 }),
    stream = c:boolean(get(w, "stream", d.stream), "workload.stream"),
    repeats = c:number(get(w, "repeats", d.repeats), "workload.repeats", { integer = true, min = 1, max = 16 }),
  }
  if w.max_concurrency ~= nil then
    if out.arrival.type == "closed" then c:bad("workload.max_concurrency", "caps an open-loop arrival (workload.arrival); a closed loop has workload.concurrency") end
    out.max_concurrency = c:number(w.max_concurrency, "workload.max_concurrency", { integer = true, min = 1, max = 16384 })
  end
  if out.arrival.type == "trace" and out.synthetic then c:bad("workload.arrival.type", "'trace' needs a dataset with timestamps") end
  return out
end

-- A knob's value list: non-empty, distinct strings, at most 36 value indices in all.
local function knob_values(c, k, path, knob)
  if k.on_value ~= nil then c:bad(path, "has both 'values' and 'on_value' (use one)") end
  local list = c:array(k.values, path .. ".values", { nonempty = true })
  local values, first = {}, {}
  for i, v in ipairs(list) do
    local vpath = string.format("%s.values[%d]", path, i - 1)
    values[i] = c:string(v, vpath)
    if first[v] then c:bad(vpath, "duplicate value '%s' of knob '%s' (also values[%d])", v, knob.name, first[v]) end
    first[v] = i - 1
  end
  knob.values = values
  knob.unset = k.unset == nil or c:boolean(k.unset, path .. ".unset")
  if #values + (knob.unset and 1 or 0) > Space.MAX_RADIX then
    c:bad(path .. ".values", "knob '%s' has %d values; at most %d are supported (%d with \"unset\": false)",
      knob.name, #values, Space.MAX_RADIX - 1, Space.MAX_RADIX)
  end
  if #values == 1 and not knob.unset then
    c:bad(path .. ".values", "knob '%s' has one value and \"unset\": false: it can take only one setting", knob.name)
  end
end

-- One knob: a flag (on/off), key or env with on_value (on/off), or key or env with values.
local function validate_knob(c, k, i)
  local path = string.format("knobs[%d]", i - 1)
  c:object(k, path, { name = 1, flag = 1, key = 1, env = 1, on_value = 1, values = 1, unset = 1 })
  if k.name == nil then c:bad(path .. ".name", "is required") end
  local name = c:string(k.name, path .. ".name")
  local kinds = {}
  for _, f in ipairs({ "flag", "key", "env" }) do if k[f] ~= nil then kinds[#kinds + 1] = f end end
  if #kinds == 0 then c:bad(path, "needs one of 'flag', 'key' or 'env'") end
  if #kinds > 1 then c:bad(path, "has both '%s' and '%s' (use one)", kinds[1], kinds[2]) end
  local knob = { name = name, index = i - 1 }
  if k.unset ~= nil and k.values == nil then c:bad(path .. ".unset", "is only used with 'values'") end
  if k.flag ~= nil then
    knob.flag = c:string(k.flag, path .. ".flag")
    if k.on_value ~= nil then c:bad(path .. ".on_value", "is only used with 'key' or 'env'") end
    if k.values ~= nil then c:bad(path .. ".values", "is only used with 'key' or 'env' (a flag is on or off)") end
    return knob
  end
  local f = kinds[1]
  knob[f] = c:string(k[f], path .. "." .. f)
  if f == "env" and not knob.env:match("^[%a_][%w_]*$") then
    c:bad(path .. ".env", "'%s' is not a valid environment variable name", knob.env)
  end
  if k.values ~= nil then
    knob_values(c, k, path, knob)
  else
    if k.on_value == nil then c:bad(path .. ".on_value", "is required with '%s' (or give 'values')", f) end
    knob.on_value = c:string(k.on_value, path .. ".on_value", { empty = true })
  end
  return knob
end

-- The number of value indices of a knob: 2 for on/off, else its values (+1 unset).
function M.radix(knob)
  if not knob.values then return 2 end
  return #knob.values + (knob.unset and 1 or 0)
end

local function validate_knobs(c, raw)
  if raw.knobs == nil then c:bad("knobs", "is required") end
  local list = c:array(raw.knobs, "knobs", { nonempty = true })
  if #list > M.MAX_KNOBS then
    c:bad("knobs", "at most %d knobs are supported (got %d: 2^%d trials)", M.MAX_KNOBS, #list, #list)
  end
  local knobs, seen, radices, names, args = {}, {}, {}, {}, {}
  for i, k in ipairs(list) do
    knobs[i] = validate_knob(c, k, i)
    local name = knobs[i].name
    if seen[name] then c:bad(string.format("knobs[%d].name", i - 1), "duplicate knob name '%s' (also knobs[%d])", name, seen[name]) end
    seen[name] = i - 1
    local arg = knobs[i].flag or knobs[i].key or ("env:" .. knobs[i].env)
    if args[arg] then
      c:bad(string.format("knobs[%d].%s", i - 1, knobs[i].flag and "flag" or knobs[i].key and "key" or "env"),
        "'%s' is also knobs[%d]'s; a knob must own its argument (give it values instead)", (arg:gsub("^env:", "")), args[arg])
    end
    args[arg] = i - 1
    radices[i], names[i] = M.radix(knobs[i]), name
  end
  local space, why = Space.new(radices, names)
  if not space then c:bad("knobs", "the knobs' values make %s; at most 2^40 are supported", why) end
  return knobs, space
end

local function validate_nsys(c, raw)
  local n = c:object(get(raw, "nsys", {}), "nsys", { bin = 1, trace = 1, extra_args = 1, capture_args = 1,
    capture = 1, phases = 1, kernel_names = 1, timeout_s = 1, capture_requests = 1, cuda_graph_trace = 1,
    max_trace_mb = 1 })
  local d = DEFAULTS.nsys
  local nsys = {
    bin = c:string(get(n, "bin", d.bin), "nsys.bin"),
    trace = c:string(get(n, "trace", d.trace), "nsys.trace"),
    extra_args = n.extra_args ~= nil and c:string_list(n.extra_args, "nsys.extra_args") or d.extra_args,
    capture_args = n.capture_args ~= nil and c:string_list(n.capture_args, "nsys.capture_args") or d.capture_args,
    capture = c:string(get(n, "capture", d.capture), "nsys.capture", { one_of = { session = 1, process = 1 } }),
    phases = n.phases ~= nil and c:string_list(n.phases, "nsys.phases", { nonempty = true }) or d.phases,
    kernel_names = c:string(get(n, "kernel_names", d.kernel_names), "nsys.kernel_names", { one_of = { demangled = 1, short = 1 } }),
    timeout_s = c:number(get(n, "timeout_s", d.timeout_s), "nsys.timeout_s", { min = 1, max = 86400 }),
    cuda_graph_trace = c:string(get(n, "cuda_graph_trace", d.cuda_graph_trace), "nsys.cuda_graph_trace",
      { one_of = { node = 1, graph = 1 } }),
    max_trace_mb = c:number(get(n, "max_trace_mb", d.max_trace_mb), "nsys.max_trace_mb", { min = 0, max = 1e7 }),
  }
  if n.capture_requests ~= nil then
    nsys.capture_requests = c:number(n.capture_requests, "nsys.capture_requests", { integer = true, min = 1 })
  end
  for i, a in ipairs(nsys.extra_args) do
    if a:find("^%-%-cuda%-graph%-trace") then
      c:bad(string.format("nsys.extra_args[%d]", i - 1), "set nsys.cuda_graph_trace instead of '%s'", a)
    end
  end
  return nsys
end

local function parse_tie_breaker(c, s, path)
  local metric, dir = s:match("^([%w_]+):(%a+)$")
  if not metric or (dir ~= "min" and dir ~= "max") then c:bad(path, "expected 'metric:min' or 'metric:max' (got '%s')", s) end
  if not M.METRICS[metric] then c:bad(path, "unknown metric '%s'", metric) end
  return { metric = metric, maximize = dir == "max" }
end

local function validate_objective(c, raw)
  local o = c:object(get(raw, "objective", {}), "objective", { minimize = 1, maximize = 1, tie_breakers = 1 })
  if o.minimize ~= nil and o.maximize ~= nil then c:bad("objective", "has both 'minimize' and 'maximize' (use one)") end
  local d = DEFAULTS.objective
  local maximize = o.maximize ~= nil
  local metric = c:string(o.maximize or get(o, "minimize", d.minimize), maximize and "objective.maximize" or "objective.minimize")
  if not M.METRICS[metric] then c:bad(maximize and "objective.maximize" or "objective.minimize", "unknown metric '%s'", metric) end
  local tbs = {}
  local raw_tbs = o.tie_breakers ~= nil and c:string_list(o.tie_breakers, "objective.tie_breakers") or d.tie_breakers
  for i, s in ipairs(raw_tbs) do tbs[i] = parse_tie_breaker(c, s, string.format("objective.tie_breakers[%d]", i - 1)) end
  return { metric = metric, maximize = maximize, tie_breakers = tbs }
end

-- slo: thresholds (ms) on ttft_ms, tpot_ms, itl_ms, e2e_ms, at a quantile, combined.
local function validate_slo(c, raw)
  if raw.slo == nil then return nil end
  local s = c:object(raw.slo, "slo", { ttft_ms = 1, tpot_ms = 1, itl_ms = 1, e2e_ms = 1, quantile = 1, combine = 1 })
  local out, any = {}, false
  for _, k in ipairs({ "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms" }) do
    if s[k] ~= nil then
      out[k] = c:number(s[k], "slo." .. k, { min = 0, max = 1e9 })
      any = true
    end
  end
  if not any then c:bad("slo", "needs at least one of ttft_ms, tpot_ms, itl_ms, e2e_ms") end
  out.quantile = c:number(get(s, "quantile", 0.99), "slo.quantile", { min = 0, max = 1 })
  out.combine = c:string(get(s, "combine", "and"), "slo.combine", { one_of = { ["and"] = 1, ["or"] = 1 } })
  return out
end

-- capacity: the search for the highest rate at which the SLO holds.
local function validate_capacity(c, raw)
  local s = c:object(get(raw, "capacity", {}), "capacity",
    { start_rate = 1, tolerance = 1, max_probes = 1, arrival = 1, max_rate = 1 })
  return {
    start_rate = c:number(get(s, "start_rate", 1), "capacity.start_rate", { min = 1e-6, max = 1e6 }),
    tolerance = c:number(get(s, "tolerance", 0.05), "capacity.tolerance", { min = 1e-4, max = 1 }),
    max_probes = c:number(get(s, "max_probes", 12), "capacity.max_probes", { integer = true, min = 1, max = 100 }),
    max_rate = c:number(get(s, "max_rate", 1e6), "capacity.max_rate", { min = 1e-6, max = 1e6 }),
    arrival = c:string(get(s, "arrival", "poisson"), "capacity.arrival", { one_of = { poisson = 1, constant = 1 } }),
  }
end

-- model and hardware: inputs of the report's MFU (docs/report.md "MFU"), nothing else.
local function validate_model(c, raw)
  if raw.model == nil then return nil end
  local m = c:object(raw.model, "model", { name = 1, params_b = 1, flops_per_token = 1, layers = 1, hidden_size = 1 })
  local out = {}
  if m.name ~= nil then out.name = c:string(m.name, "model.name") end
  if m.params_b ~= nil then out.params_b = c:number(m.params_b, "model.params_b", { min = 1e-6, max = 1e6 }) end
  if m.flops_per_token ~= nil then
    out.flops_per_token = c:number(m.flops_per_token, "model.flops_per_token", { min = 1, max = 1e18 })
  end
  if m.layers ~= nil then out.layers = c:number(m.layers, "model.layers", { integer = true, min = 1, max = 100000 }) end
  if m.hidden_size ~= nil then
    out.hidden_size = c:number(m.hidden_size, "model.hidden_size", { integer = true, min = 1, max = 10000000 })
  end
  if (out.layers == nil) ~= (out.hidden_size == nil) then
    c:bad(out.layers and "model.layers" or "model.hidden_size", "needs %s too (the attention term uses both)",
      out.layers and "model.hidden_size" or "model.layers")
  end
  if not out.params_b and not out.flops_per_token then c:bad("model", "needs params_b or flops_per_token") end
  return out
end

local function validate_hardware(c, raw)
  local h = c:object(get(raw, "hardware", {}), "hardware", { peak_tflops = 1, gpu_count = 1 })
  local out = { gpu_count = c:number(get(h, "gpu_count", 1), "hardware.gpu_count", { integer = true, min = 1, max = 4096 }) }
  if h.peak_tflops ~= nil then out.peak_tflops = c:number(h.peak_tflops, "hardware.peak_tflops", { min = 1e-3, max = 1e7 }) end
  return out
end

-- One slot of the local executor: its port and the environment its servers get.
-- The devices of a CUDA_VISIBLE_DEVICES value: indices or UUIDs, comma-separated, each
-- once. nil and why for a value CUDA would read otherwise than it looks: an empty entry
-- or "-1" ends the list there, a repeated device is one GPU counted twice.
function M.gpu_list(value)
  local out, seen = {}, {}
  if value == "" then return out end -- no GPU visible
  for d in (value .. ","):gmatch("([^,]*),") do
    d = d:match("^%s*(.-)%s*$")
    if d == "" then return nil, "an empty entry (CUDA ignores every device after it)" end
    if not (d:match("^%d+$") or d:match("^GPU%-[%x%-]+$") or d:match("^MIG%-[%w%-/]+$")) then
      return nil, string.format("'%s' is not a device index or UUID%s", d, d == "-1" and " (-1 hides every GPU)" or "")
    end
    if seen[d] then return nil, string.format("device %s is listed twice", d) end
    seen[d] = true
    out[#out + 1] = d
  end
  return out
end

-- Two slots must not share a GPU: each server would take the memory the other counts on.
local function check_slot_gpus(c, slots)
  local owner = {}
  for i, slot in ipairs(slots) do
    local cvd = slot.env.CUDA_VISIBLE_DEVICES
    if cvd then
      local path = string.format("executor.slots[%d].env.CUDA_VISIBLE_DEVICES", i - 1)
      local gpus, why = M.gpu_list(cvd)
      if not gpus then c:bad(path, "%s", why) end
      for _, d in ipairs(gpus) do
        if owner[d] then c:bad(path, "GPU %s is also slots[%d]'s; two servers would share it", d, owner[d]) end
        owner[d] = i - 1
      end
    end
  end
end

local function validate_slot(c, s, path)
  c:object(s, path, { port = 1, env = 1 })
  if s.port == nil then c:bad(path .. ".port", "is required") end
  local slot = { port = c:number(s.port, path .. ".port", { integer = true, min = 1, max = 65535 }), env = {} }
  for k, v in pairs(c:object(get(s, "env", {}), path .. ".env")) do
    if not tostring(k):match("^[%a_][%w_]*$") then c:bad(path .. ".env", "'%s' is not a valid environment variable name", tostring(k)) end
    slot.env[k] = c:string(v, path .. ".env." .. k, { empty = true })
  end
  return slot
end

-- The slurm executor's settings: where and how each trial's batch job is submitted.
local function validate_slurm(c, e, out)
  for _, k in ipairs({ "slots", "gpus_per_trial" }) do
    if e[k] ~= nil then c:bad("executor." .. k, "is only used with \"type\": \"local\"") end
  end
  for _, k in ipairs({ "partition", "gres", "time" }) do
    if e[k] ~= nil then out[k] = c:string(e[k], "executor." .. k) end
  end
  out.sbatch_args = c:string_list(get(e, "sbatch_args", {}), "executor.sbatch_args")
  for i, a in ipairs(out.sbatch_args) do
    if a:match("^%-%-output") or a:match("^%-o") or a:match("^%-%-error") or a:match("^%-e") or a:match("^%-%-parsable") then
      c:bad(string.format("executor.sbatch_args[%d]", i - 1), "'%s' is set by knobengine", a)
    end
    if a:match("^%-%-array") or a:match("^%-a") or a:match("^%-%-chdir") or a:match("^%-D") then
      c:bad(string.format("executor.sbatch_args[%d]", i - 1), "'%s' would break the trial protocol (one job per "
        .. "trial, run where its paths are): knobengine does not allow it", a)
    end
  end
  out.max_jobs = c:number(get(e, "max_jobs", 8), "executor.max_jobs", { integer = true, min = 1, max = 4096 })
  out.poll_s = c:number(get(e, "poll_s", 1), "executor.poll_s", { min = 0.05, max = 600 })
  return out
end

-- executor: where sweep trials run (docs/executors.md). Absent: one at a time, in this
-- process. {"type": "local", "slots": [...]} or {"type": "local", "gpus_per_trial": k}.
local function validate_executor(c, raw)
  if raw.executor == nil then return nil end
  local e = c:object(raw.executor, "executor", { type = 1, slots = 1, gpus_per_trial = 1, partition = 1, gres = 1,
    time = 1, sbatch_args = 1, max_jobs = 1, poll_s = 1 })
  if e.type == nil then c:bad("executor.type", "is required ('local' or 'slurm')") end
  local out = { type = c:string(e.type, "executor.type", { one_of = { ["local"] = true, slurm = true } }) }
  if out.type == "slurm" then return validate_slurm(c, e, out) end
  for _, k in ipairs({ "partition", "gres", "time", "sbatch_args", "max_jobs", "poll_s" }) do
    if e[k] ~= nil then c:bad("executor." .. k, "is only used with \"type\": \"slurm\"") end
  end
  if e.slots == nil and e.gpus_per_trial == nil then c:bad("executor", "needs one of 'slots' or 'gpus_per_trial'") end
  if e.slots ~= nil and e.gpus_per_trial ~= nil then c:bad("executor", "has both 'slots' and 'gpus_per_trial' (use one)") end
  if e.gpus_per_trial ~= nil then
    out.gpus_per_trial = c:number(e.gpus_per_trial, "executor.gpus_per_trial", { integer = true, min = 1, max = 64 })
    return out
  end
  local list = c:array(e.slots, "executor.slots", { nonempty = true })
  if #list > 256 then c:bad("executor.slots", "at most 256 slots are supported (got %d)", #list) end
  out.slots = {}
  local seen = {}
  for i, s in ipairs(list) do
    local path = string.format("executor.slots[%d]", i - 1)
    local slot = validate_slot(c, s, path)
    if seen[slot.port] then c:bad(path .. ".port", "duplicate port %d (also slots[%d])", slot.port, seen[slot.port]) end
    seen[slot.port] = i - 1
    out.slots[i] = slot
  end
  check_slot_gpus(c, out.slots)
  return out
end

local function validate_command(c, raw)
  if raw.serve_cmd == nil then c:bad("serve_cmd", "is required") end
  local serve_cmd
  if type(raw.serve_cmd) == "string" then
    c:string(raw.serve_cmd, "serve_cmd")
    local argv, serr = M.split_command(raw.serve_cmd)
    if not argv then c:bad("serve_cmd", "%s", serr) end
    serve_cmd = argv
  else
    serve_cmd = c:string_list(raw.serve_cmd, "serve_cmd", { nonempty = true })
  end
  if #serve_cmd == 0 or serve_cmd[1] == "" then c:bad("serve_cmd", "must name a program") end
  local env = {}
  for k, v in pairs(c:object(get(raw, "env", {}), "env")) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then c:bad("env", "'%s' is not a valid environment variable name", tostring(k)) end
    env[k] = c:string(v, "env." .. k, { empty = true })
  end
  return serve_cmd, env
end

local function validate_constraints(c, raw, cfg)
  local cons = c:object(get(raw, "constraints", {}), "constraints", { max_error_rate = 1, slo = 1 })
  cfg.constraints = {
    max_error_rate = c:number(get(cons, "max_error_rate", 0), "constraints.max_error_rate", { min = 0, max = 1 }),
    slo = c:boolean(get(cons, "slo", false), "constraints.slo"),
  }
  if cfg.constraints.slo and not cfg.slo then c:bad("constraints.slo", "needs an slo") end
  local m = cfg.objective.metric
  if (m == "goodput" or m == "slo_attainment_pct" or m == "max_rate") and not cfg.slo then
    c:bad(cfg.objective.maximize and "objective.maximize" or "objective.minimize", "'%s' needs an slo", m)
  end
end

-- Checks that need more than one part of the config.
local function validate_together(c, cfg)
  local cap = cfg.capacity
  if cap.start_rate > cap.max_rate then
    c:bad("capacity.start_rate", "must be <= capacity.max_rate (%s)", shown(cap.max_rate))
  end
  if cfg.workload.request_count / cap.start_rate > M.MAX_PROBE_S then
    c:bad("capacity.start_rate", "a probe of %d requests at %s requests/s would last %.0f s; at most %d s (raise the rate)",
      cfg.workload.request_count, shown(cap.start_rate), cfg.workload.request_count / cap.start_rate, M.MAX_PROBE_S)
  end
  if cfg.nsys.capture_requests and cfg.nsys.capture_requests > cfg.workload.request_count then
    c:bad("nsys.capture_requests", "must be <= workload.request_count (%d)", cfg.workload.request_count)
  end
  -- the engine chooses the port: the command must say where it goes
  local has_port = false
  for _, a in ipairs(cfg.serve_cmd) do if a:find("{port}", 1, true) then has_port = true end end
  for _, v in pairs(cfg.env) do if v:find("{port}", 1, true) then has_port = true end end
  if not has_port then c:bad("serve_cmd", "must contain {port} (replaced by server.port) so the server listens where the engine looks") end
  for _, k in ipairs(cfg.knobs) do
    if k.env and cfg.env[k.env] ~= nil then
      c:bad(string.format("knobs[%d].env", k.index), "'%s' is also set in env; a knob must own its variable", k.env)
    end
    for i, slot in ipairs(cfg.executor and cfg.executor.slots or {}) do
      if k.env and slot.env[k.env] ~= nil then
        c:bad(string.format("executor.slots[%d].env", i - 1), "'%s' is also a knob's variable (knobs[%d]); a knob must own it",
          k.env, k.index)
      end
    end
  end
end

-- Loads and validates; returns the resolved config table.
function M.load(path)
  local text, err = util.read_file(path)
  if not text then errors.usage("config %s: cannot read: %s", path, (tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", ""))) end
  return M.parse(text, path)
end

-- Validates config text as if it were read from `path` (relative paths resolve
-- against its directory). Every problem is a usage error naming the key.
function M.parse(text, path)
  if text:find("%z") then errors.usage("config %s: contains NUL bytes", path) end
  local raw = M.decode_json(text, "config " .. path)
  local c = new_checker(path)
  c:object(raw, "", {
    serve_cmd = 1, env = 1, server = 1, workload = 1, knobs = 1, nsys = 1, objective = 1,
    constraints = 1, strategy_options = 1, slo = 1, capacity = 1, model = 1, hardware = 1, executor = 1,
  })
  local base_dir = util.dirname(path)
  local serve_cmd, env = validate_command(c, raw)
  local server = validate_server(c, raw)
  local workload = validate_workload(c, raw, base_dir)
  local knobs, space = validate_knobs(c, raw)
  local cfg = {
    path = path,
    base_dir = base_dir,
    serve_cmd = serve_cmd,
    env = env,
    server = server,
    workload = workload,
    knobs = knobs,
    space = space,
    nsys = validate_nsys(c, raw),
    objective = validate_objective(c, raw),
    strategy_options = c:object(get(raw, "strategy_options", {}), "strategy_options"),
    slo = validate_slo(c, raw),
    capacity = validate_capacity(c, raw),
    model = validate_model(c, raw),
    hardware = validate_hardware(c, raw),
    executor = validate_executor(c, raw),
  }
  validate_constraints(c, raw, cfg)
  validate_together(c, cfg)
  -- a relative program path (with a slash) is relative to the config file
  if serve_cmd[1]:find("/", 1, true) and serve_cmd[1]:sub(1, 1) ~= "/" then
    serve_cmd[1] = util.join(base_dir, serve_cmd[1])
  end
  return cfg
end

-- The mask string of a mask: one value index per knob (space.lua).
function M.mask_string(cfg, mask) return cfg.space:string(mask) end

-- The value a knob gets at value index d: nil when unset (index 0 of an on/off knob,
-- or of a knob with values and "unset"); for an on/off knob, true or its on_value.
function M.knob_value(knob, d)
  if not knob.values then
    if d == 0 then return nil end
    return knob.on_value or true
  end
  if knob.unset then
    if d == 0 then return nil end
    return knob.values[d]
  end
  return knob.values[d + 1]
end

-- The label of a knob at value index d: its name for an on/off knob that is on,
-- name=value for a knob with values, nil when unset.
function M.knob_label(knob, d)
  local v = M.knob_value(knob, d)
  if v == nil then return nil end
  if not knob.values then return knob.name end
  return knob.name .. "=" .. v
end

local function subst_port(s, port) return (s:gsub("{port}", tostring(port))) end

-- The server command of a mask: argv, env (config env + knob env) and the labels of
-- the knobs it sets (knob_label).
function M.resolve(cfg, mask)
  local port = cfg.server.port
  local argv, env, on = {}, {}, {}
  for i, a in ipairs(cfg.serve_cmd) do argv[i] = subst_port(a, port) end
  for k, v in pairs(cfg.env) do env[k] = subst_port(v, port) end
  for i, k in ipairs(cfg.knobs) do
    local d = cfg.space:digit(mask, i)
    local v = M.knob_value(k, d)
    if v ~= nil then
      on[#on + 1] = M.knob_label(k, d)
      if k.flag then argv[#argv + 1] = k.flag
      elseif k.key then argv[#argv + 1] = k.key; argv[#argv + 1] = v
      else env[k.env] = subst_port(v, port) end
    end
  end
  return { mask = mask, mask_string = cfg.space:string(mask), argv = argv, env = env, knobs_on = on }
end

return M
