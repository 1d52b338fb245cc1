-- Loads optimizations.json: validates every key against its schema row (schema.lua)
-- and applies the defaults. Every problem is a usage error (exit 2)
-- naming the file and the key path, raised before anything is written.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local knobs_of = require("knobengine.knobs")
local registry = require("knobengine.registry")
local schema = require("knobengine.schema")
local Space = require("knobengine.space")
local util = require("knobengine.util")

local M = {}

M.MAX_KNOBS = 16
M.MAX_PROBE_S = 3600 -- a capacity probe (workload.request_count at one rate) lasts at most this
-- The metrics an objective or a tie-breaker can name: the C metric table's objective
-- rows (knob.metric_names), and max_rate, which a capacity trial adds (record.capacity).
M.METRICS = { max_rate = true }
for _, name in ipairs(require("knob").metric_names()) do M.METRICS[name] = true end

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

-- A path as messages name it: while an element of `workloads` is checked as a
-- workload, "workload.x" is "workloads[i].x" (self.renamed = {from, to}).
function Checker:named(path)
  local r = self.renamed
  if r and (path == r[1] or path:sub(1, #r[1] + 1) == r[1] .. ".") then return r[2] .. path:sub(#r[1] + 1) end
  return path
end

function Checker:bad(path, fmt, ...)
  path = self:named(path)
  errors.usage("config %s: %s%s", self.file, path == "" and "" or path .. ": ", string.format(fmt, ...))
end

function Checker:string(v, path, opts)
  opts = opts or {}
  if type(v) ~= "string" then self:bad(path, "expected string") end
  if not opts.empty and v == "" then self:bad(path, "must not be empty") end
  if v:find("%z") then self:bad(path, "must not contain NUL bytes") end
  if not utf8.len(v) then self:bad(path, "is not valid UTF-8") end
  local ctl, bytes = util.control_at(v)
  if ctl then
    self:bad(path, "must not contain control characters (%s at offset %d)", #bytes == 1 and
      string.format("byte 0x%02x", bytes:byte()) or string.format("U+%04X", utf8.codepoint(bytes)), ctl - 1)
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
  for digits = 15, 17 do -- the shortest that reads back as the same number: 1e-06, 1.1
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
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
      local prefix = path == "" and "" or self:named(path) .. "."
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

-- false, true (every device) or a non-empty list of distinct device indices.
function Checker:devices(v, path)
  if type(v) == "boolean" then return v end
  local list = self:array(v, path, { nonempty = true })
  local seen = {}
  for i, d in ipairs(list) do
    local p = string.format("%s[%d]", path, i - 1)
    local n = self:number(d, p, { integer = true, min = 0, max = 1023 })
    if seen[n] then self:bad(p, "device %d is listed twice", n) end
    seen[n] = true
  end
  return list
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

-- Values of rows, checked ---------------------------------------------------------

local SCALAR = { string = true, enum = true, number = true, integer = true, boolean = true, strings = true, object = true,
  devices = true }

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = 1 end
  return s
end

-- A value for row r (present), checked by its type; cpath names it in messages.
function Checker:typed(r, v, cpath)
  local t = r.type
  if t == "string" then return self:string(v, cpath, { empty = r.empty }) end
  if t == "enum" then return self:string(v, cpath, { one_of = set_of(r.one_of) }) end
  if t == "number" or t == "integer" then return self:number(v, cpath, { integer = t == "integer", min = r.min, max = r.max }) end
  if t == "boolean" then return self:boolean(v, cpath) end
  if t == "strings" then return self:string_list(v, cpath, { nonempty = r.nonempty }) end
  if t == "devices" then return self:devices(v, cpath) end
  if t == "object" then return self:object(v, cpath) end
  return v -- list, map, variant, command: their own validators check them
end

-- The value of obj's key at schema path (cpath: the concrete path for messages, as
-- "knobs[1].name" for "knobs[].name"): checked against its row, the default when absent.
function Checker:value(obj, path, cpath)
  local r = schema.row(path)
  cpath = cpath or path
  local v = obj[path:match("([^.]+)$")]
  if v == nil then
    if r.required then self:bad(cpath, "is required") end
    return util.copy(r.default)
  end
  return self:typed(r, v, cpath)
end

-- Every plain row directly under prefix, by key: checked values and defaults.
function Checker:fields(obj, prefix, cprefix)
  local out = {}
  for _, key in ipairs(schema.children(prefix)) do
    local r = schema.BY_PATH[prefix .. "." .. key]
    if r and SCALAR[r.type] and not r.types then
      out[key] = self:value(obj, prefix .. "." .. key, (cprefix or prefix) .. "." .. key)
    end
  end
  return out
end

-- The object at raw[key] (or {} when absent) with only the keys its rows name.
function Checker:section(raw, prefix)
  return self:object(raw[prefix:match("([^.]+)$")] or {}, prefix, schema.keys(prefix))
end

-- A variant's own keys (rows with `types`) for the given type: one present that the
-- type does not use (said.unused(type, the types that use it)), or one it requires
-- that is absent (said.required, with the type), is an error; the others checked.
function Checker:variant_keys(obj, prefix, kind, said)
  local out = {}
  for _, key in ipairs(schema.children(prefix)) do
    local r = schema.BY_PATH[prefix .. "." .. key]
    if r and r.types then
      local use, path = r.types[kind], prefix .. "." .. key
      if obj[key] ~= nil and not use then
        local users = {}
        for t in pairs(r.types) do users[#users + 1] = t end
        table.sort(users)
        self:bad(path, "%s", said.unused(kind, table.concat(users, "/")))
      end
      if use == "required" and obj[key] == nil then self:bad(path, said.required, kind) end
      if use then out[key] = self:value(obj, path) end
    end
  end
  return out
end

-- The sections -------------------------------------------------------------------

-- server.metrics_names: {key of knob.server_metrics() = name | [names]}, checked.
local function validate_metric_names(c, map)
  local known, out = knob.server_metrics(), {}
  for key, v in pairs(map) do
    local path = "server.metrics_names." .. tostring(key)
    if not known[key] then
      local keys = {}
      for k in pairs(known) do keys[#keys + 1] = k end
      table.sort(keys)
      c:bad(path, "is not a server metric the engine reads (%s)", table.concat(keys, ", "))
    end
    local list = type(v) == "string" and { v } or c:array(v, path, { nonempty = true })
    if #list > 4 then c:bad(path, "at most 4 names") end
    for i, n in ipairs(list) do
      c:string(n, string.format("%s[%d]", path, i - 1))
      if not n:match("^[%a_:][%w_:]*$") then c:bad(path, "'%s' is not a Prometheus metric name", n) end
    end
    out[key] = list
  end
  return out
end

local function validate_server(c, raw)
  local s = c:fields(c:section(raw, "server"), "server")
  if s.ready_path:sub(1, 1) ~= "/" then c:bad("server.ready_path", "must start with '/'") end
  if s.host:find("[%s/@]") then c:bad("server.host", "is not a host name or address") end
  if s.metrics_path ~= "" and s.metrics_path:sub(1, 1) ~= "/" then c:bad("server.metrics_path", "must start with '/' (or be \"\")") end
  s.metrics_names = validate_metric_names(c, s.metrics_names)
  return s
end

-- workload.arrival: how requests are sent (docs/load.md "Arrivals"). Every key checked for
-- the chosen type; rates are requests per second. The type's own checks are its
-- plug-in's (arrivals/<type>.lua), once the workload is known.
local function validate_arrival(c, a)
  a = c:object(a or {}, "workload.arrival", schema.keys("workload.arrival"))
  local out = c:fields(a, "workload.arrival")
  local said = { required = "is required with type '%s'",
    unused = function(kind) return string.format("is not used with type '%s'", kind) end }
  for k, v in pairs(c:variant_keys(a, "workload.arrival", out.type, said)) do out[k] = v end
  return out
end

local function validate_synthetic(c, s)
  if s == nil then return nil end
  c:object(s, "workload.synthetic", schema.keys("workload.synthetic"))
  if s.input_tokens == nil or s.output_tokens == nil then
    c:bad("workload.synthetic", "needs 'input_tokens' and 'output_tokens'")
  end
  return c:fields(s, "workload.synthetic")
end

-- workload.multi_turn: conversations, sent turn by turn (docs/load.md).
local function validate_multi_turn(c, m, w, arrival)
  if m == nil then return nil end
  c:object(m, "workload.multi_turn", schema.keys("workload.multi_turn"))
  if w.endpoint ~= "/v1/chat/completions" then
    c:bad("workload.multi_turn", "needs workload.endpoint \"/v1/chat/completions\" (a conversation is messages)")
  end
  if arrival.open then
    c:bad("workload.multi_turn", "needs a closed loop: each turn waits for the previous reply (workload.arrival is '%s')",
      w.arrival.type)
  end
  if w.synthetic then c:bad("workload.multi_turn", "needs a dataset of conversations, not workload.synthetic") end
  return c:fields(m, "workload.multi_turn")
end

local function validate_workload(c, raw, base_dir)
  if raw.workload == nil then c:bad("workload", "is required") end
  local w = c:section(raw, "workload")
  if w.dataset == nil and w.synthetic == nil then c:bad("workload.dataset", "is required (or workload.synthetic)") end
  if w.dataset ~= nil and w.synthetic ~= nil then c:bad("workload.synthetic", "cannot be used with workload.dataset (use one)") end
  local out = c:fields(w, "workload")
  out.dataset_path = out.dataset and util.join(base_dir, out.dataset) or nil
  out.dataset = out.dataset or "(synthetic)"
  out.synthetic = validate_synthetic(c, w.synthetic)
  out.arrival = validate_arrival(c, w.arrival)
  local arrival = registry.get("arrivals", out.arrival.type)
  if arrival.validate then arrival.validate(c, out.arrival, out) end
  if out.max_concurrency ~= nil and not arrival.open then
    c:bad("workload.max_concurrency", "caps an open-loop arrival (workload.arrival); a closed loop has workload.concurrency")
  end
  out.multi_turn = validate_multi_turn(c, w.multi_turn, out, arrival)
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
  knob.unset = c:value(k, "knobs[].unset", path .. ".unset")
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
  c:object(k, path, schema.keys("knobs[]"))
  local knob = { name = c:value(k, "knobs[].name", path .. ".name"), index = i - 1 }
  local kinds = {}
  for _, f in ipairs({ "flag", "key", "env" }) do if k[f] ~= nil then kinds[#kinds + 1] = f end end
  if #kinds == 0 then c:bad(path, "needs one of 'flag', 'key' or 'env'") end
  if #kinds > 1 then c:bad(path, "has both '%s' and '%s' (use one)", kinds[1], kinds[2]) end
  if k.unset ~= nil and k.values == nil then c:bad(path .. ".unset", "is only used with 'values'") end
  local f = kinds[1]
  knob[f] = c:value(k, "knobs[]." .. f, path .. "." .. f)
  if f == "flag" then
    if k.on_value ~= nil then c:bad(path .. ".on_value", "is only used with 'key' or 'env'") end
    if k.values ~= nil then c:bad(path .. ".values", "is only used with 'key' or 'env' (a flag is on or off)") end
    return knob
  end
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

-- optional: `knobengine profile` measures the server as given, so it needs none.
local function validate_knobs(c, raw, optional)
  if raw.knobs == nil and optional then return {}, Space.new({}, {}) end
  if raw.knobs == nil then c:bad("knobs", "is required") end
  local list = c:array(raw.knobs, "knobs", { nonempty = not optional })
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
    radices[i], names[i] = knobs_of.radix(knobs[i]), name
  end
  local space, why = Space.new(radices, names)
  if not space then c:bad("knobs", "the knobs' values make %s; at most 2^40 are supported", why) end
  return knobs, space
end

local function validate_nsys(c, raw)
  local nsys = c:fields(c:section(raw, "nsys"), "nsys")
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
  local o = c:section(raw, "objective")
  if o.minimize ~= nil and o.maximize ~= nil then c:bad("objective", "has both 'minimize' and 'maximize' (use one)") end
  local f = c:fields(o, "objective")
  local maximize = o.maximize ~= nil
  local metric = f.maximize or f.minimize
  if not M.METRICS[metric] then c:bad(maximize and "objective.maximize" or "objective.minimize", "unknown metric '%s'", metric) end
  local tbs = {}
  for i, s in ipairs(f.tie_breakers) do tbs[i] = parse_tie_breaker(c, s, string.format("objective.tie_breakers[%d]", i - 1)) end
  return { metric = metric, maximize = maximize, tie_breakers = tbs }
end

-- slo: thresholds (ms) on ttft_ms, tpot_ms, itl_ms, e2e_ms, at a quantile, combined.
local function validate_slo(c, raw)
  if raw.slo == nil then return nil end
  local out = c:fields(c:section(raw, "slo"), "slo")
  if not (out.ttft_ms or out.tpot_ms or out.itl_ms or out.e2e_ms) then
    c:bad("slo", "needs at least one of ttft_ms, tpot_ms, itl_ms, e2e_ms")
  end
  return out
end

-- A list of named entries (slos, workloads): each an object with a unique `name` of
-- at most 64 characters; check(entry, path) validates the rest.
local function named_list(c, raw, key, check)
  if raw[key] == nil then return nil end
  local list, out, seen = c:array(raw[key], key, { nonempty = true }), {}, {}
  for i, entry in ipairs(list) do
    local path = string.format("%s[%d]", key, i - 1)
    c:object(entry, path)
    local name = c:value(entry, key .. "[].name", path .. ".name")
    if #name > 64 then c:bad(path .. ".name", "is longer than 64 characters") end
    if seen[name] then c:bad(path .. ".name", "duplicate name '%s' (also %s[%d])", name, key, seen[name]) end
    seen[name] = i - 1
    out[i] = { name = name, index = i - 1 }
    check(entry, path, out[i])
  end
  return out
end

-- slos: several SLOs for the capacity grid, each a name and the keys of `slo`.
local function validate_slos(c, raw)
  local allowed = schema.keys("slo")
  allowed.name = 1
  return named_list(c, raw, "slos", function(entry, path, out)
    c:object(entry, path, allowed)
    local slo = c:fields(entry, "slo", path)
    if not (slo.ttft_ms or slo.tpot_ms or slo.itl_ms or slo.e2e_ms) then
      c:bad(path, "needs at least one of ttft_ms, tpot_ms, itl_ms, e2e_ms")
    end
    out.slo = slo
  end)
end

-- The workload keys an entry of `workloads` may replace (not model, endpoint, seed,
-- stream, timeouts or repeats: those are the server's and the client's, one per config).
M.WORKLOAD_SHAPE = { "dataset", "dataset_format", "synthetic", "arrival", "max_concurrency", "concurrency",
  "request_count", "max_new_tokens", "warmup_requests" }

-- workloads: several workloads for the capacity grid, each a name and the workload
-- keys it replaces (a dataset replaces the config's synthetic prompts and back),
-- checked as the workload they make (messages name workloads[i]).
local function validate_workloads(c, raw, base_dir)
  local allowed = { name = 1 }
  for _, k in ipairs(M.WORKLOAD_SHAPE) do allowed[k] = 1 end
  return named_list(c, raw, "workloads", function(entry, path, out)
    c:object(entry, path, allowed)
    local merged = {}
    for k, v in pairs(raw.workload or {}) do merged[k] = v end
    if entry.dataset ~= nil then merged.synthetic = nil end
    if entry.synthetic ~= nil then merged.dataset = nil end
    for k, v in pairs(entry) do if k ~= "name" then merged[k] = v end end
    c.renamed = { "workload", path }
    out.workload = validate_workload(c, { workload = merged }, base_dir)
    c.renamed = nil
  end)
end

-- model and hardware: inputs of the report's MFU (docs/report.md "MFU"), nothing else.
local function validate_model(c, raw)
  if raw.model == nil then return nil end
  local out = c:fields(c:section(raw, "model"), "model")
  if (out.layers == nil) ~= (out.hidden_size == nil) then
    c:bad(out.layers and "model.layers" or "model.hidden_size", "needs %s too (the attention term uses both)",
      out.layers and "model.hidden_size" or "model.layers")
  end
  if not out.params_b and not out.flops_per_token then c:bad("model", "needs params_b or flops_per_token") end
  return out
end

-- An environment map: variable names, string values (empty allowed).
local function validate_env(c, v, path)
  local env = {}
  for k, x in pairs(c:object(v or {}, path)) do
    if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then c:bad(path, "'%s' is not a valid environment variable name", tostring(k)) end
    env[k] = c:string(x, path .. "." .. k, { empty = true })
  end
  return env
end

-- For plug-ins' validate hooks: an environment map, and the allowed keys at a prefix.
function Checker:env(v, path) return validate_env(self, v, path) end

function Checker:keys(prefix) return schema.keys(prefix) end

-- executor: where sweep trials run (docs/executors.md). Absent: one at a time, in this
-- process. The keys of the backend's rows are checked here, the rest by its validate
-- hook (executors/<type>.lua).
local function validate_executor(c, raw)
  if raw.executor == nil then return nil end
  local e = c:section(raw, "executor")
  if e.type == nil then c:bad("executor.type", "is required (%s)", registry.quoted("executors")) end
  local out = c:fields(e, "executor")
  local typed = c:variant_keys(e, "executor", out.type,
    { required = 'is required with "type": "%s"',
      unused = function(_, users) return string.format('is only used with "type": "%s"', users) end })
  for k, v in pairs(typed) do if schema.row("executor." .. k).type ~= "list" then out[k] = v end end
  return registry.get("executors", out.type).validate(c, e, out)
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
  return serve_cmd, validate_env(c, raw.env, "env")
end

local function validate_constraints(c, raw, cfg)
  cfg.constraints = c:fields(c:section(raw, "constraints"), "constraints")
  if cfg.constraints.slo and not cfg.slo then c:bad("constraints.slo", "needs an slo") end
  for _, k in ipairs({ "ttft_ms", "tpot_ms", "itl_ms" }) do
    if cfg.slo and cfg.slo[k] and not cfg.workload.stream then
      c:bad("slo." .. k, "needs workload.stream (TTFT, TPOT and inter-token gaps are measured on a stream)")
    end
    for _, e in ipairs(cfg.slos or {}) do
      if e.slo[k] and not cfg.workload.stream then
        c:bad(string.format("slos[%d].%s", e.index, k), "needs workload.stream (TTFT, TPOT and inter-token gaps are measured on a stream)")
      end
    end
  end
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
  local shapes = { { w = cfg.workload } }
  for _, e in ipairs(cfg.workloads or {}) do shapes[#shapes + 1] = { w = e.workload, name = e.name } end
  -- a capacity probe needs an slo or slos (capacity, the grid, max_rate, search:capacity):
  -- without them no probe runs, and a long replay at the default start_rate is no error
  for _, shape in ipairs((cfg.slo or cfg.slos) and shapes or {}) do
    local n = shape.w.request_count
    if n / cap.start_rate > M.MAX_PROBE_S then
      c:bad("capacity.start_rate", "a probe of %d requests%s at %s requests/s would last %.0f s; at most %d s (raise the rate)",
        n, shape.name and (" (workload '" .. shape.name .. "')") or "", shown(cap.start_rate), n / cap.start_rate, M.MAX_PROBE_S)
    end
  end
  if cfg.ncu and cfg.ncu.requests > cfg.workload.request_count then
    c:bad("ncu.requests", "must be <= workload.request_count (%d)", cfg.workload.request_count)
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

-- The config of one cell of the capacity grid: cfg with its slo and workload replaced
-- (entries of cfg.slos and cfg.workloads, or nil for the config's own). A shallow copy:
-- the rest is shared and read-only.
function M.cell(cfg, slo, workload)
  local out = {}
  for k, v in pairs(cfg) do out[k] = v end
  if slo then out.slo = slo.slo end
  if workload then out.workload = workload.workload end
  return out
end

-- Loads and validates; returns the resolved config table. opts.knobs_optional: a
-- config without knobs (or with an empty list) is one config, mask 0 (profile).
function M.load(path, opts)
  local text, err = util.read_file(path)
  if not text then errors.usage("config %s: cannot read: %s", path, (tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", ""))) end
  return M.parse(text, path, opts)
end

-- Validates config text as if it were read from `path` (relative paths resolve
-- against its directory). Every problem is a usage error naming the key.
function M.parse(text, path, opts)
  if text:find("%z") then errors.usage("config %s: contains NUL bytes", path) end
  local raw = M.decode_json(text, "config " .. path)
  local c = new_checker(path)
  c:object(raw, "", schema.keys(""))
  local base_dir = util.dirname(path)
  local serve_cmd, env = validate_command(c, raw)
  local cfg = { path = path, base_dir = base_dir, serve_cmd = serve_cmd, env = env }
  cfg.server = validate_server(c, raw)
  cfg.workload = validate_workload(c, raw, base_dir)
  cfg.knobs, cfg.space = validate_knobs(c, raw, opts and opts.knobs_optional)
  cfg.nsys = validate_nsys(c, raw)
  cfg.telemetry = c:fields(c:section(raw, "telemetry"), "telemetry")
  cfg.ncu = raw.ncu ~= nil and c:fields(c:section(raw, "ncu"), "ncu") or nil
  cfg.objective = validate_objective(c, raw)
  cfg.strategy_options = c:value(raw, "strategy_options")
  cfg.slo = validate_slo(c, raw)
  cfg.slos = validate_slos(c, raw)
  cfg.workloads = validate_workloads(c, raw, base_dir)
  cfg.capacity = c:fields(c:section(raw, "capacity"), "capacity")
  cfg.calibration = c:fields(c:section(raw, "calibration"), "calibration")
  cfg.validate = c:fields(c:section(raw, "validate"), "validate")
  local cal, v = cfg.calibration, cfg.validate
  if cal.loose_mape_pct > cal.loose_max_mape_pct then
    c:bad("calibration.loose_mape_pct", "must be <= calibration.loose_max_mape_pct (it passes below one, fails from the other)")
  end
  if v.min_rate > v.max_rate then c:bad("validate.min_rate", "must be <= validate.max_rate") end
  if v.max_batch_knob then
    local known = false
    for _, k in ipairs(cfg.knobs) do known = known or k.name == v.max_batch_knob end
    if not known then c:bad("validate.max_batch_knob", "'%s' is not a knob's name", v.max_batch_knob) end
  end
  if (v.duration_s or v.period_s) > M.MAX_PROBE_S then
    c:bad(v.duration_s and "validate.duration_s" or "validate.period_s", "the sinusoidal load would last %s s; at most %d s",
      tostring(v.duration_s or v.period_s), M.MAX_PROBE_S)
  end
  cfg.model = validate_model(c, raw)
  cfg.hardware = c:fields(c:section(raw, "hardware"), "hardware")
  cfg.executor = validate_executor(c, raw)
  validate_constraints(c, raw, cfg)
  validate_together(c, cfg)
  -- a relative program path (with a slash) is relative to the config file
  if serve_cmd[1]:find("/", 1, true) and serve_cmd[1]:sub(1, 1) ~= "/" then
    serve_cmd[1] = util.join(base_dir, serve_cmd[1])
  end
  return cfg
end

return M
