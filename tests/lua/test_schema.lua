-- The config schema (schema.lua): every key is validated from its row, and the
-- identity is exactly the identity rows: a test walks every row, changes its key alone
-- to another valid value, and checks which identities change (run by tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local cjson = require("cjson")
local config = require("knobengine.config")
local identity = require("knobengine.identity")
local schema = require("knobengine.schema")
local util = require("knobengine.util")

-- A valid config with every optional section present, knobs of each kind.
local function base()
  return {
    serve_cmd = { "/bin/true", "--port", "{port}" },
    workload = { dataset = "d.jsonl", model = "m" },
    knobs = {
      { name = "a", flag = "--a" },
      { name = "b", key = "--b", values = { "1", "2" } },
      { name = "c", env = "C", on_value = "1" },
    },
    slo = { e2e_ms = 100 }, -- (a TTFT threshold would need streaming, which a row below turns off)
    model = { params_b = 1, layers = 2, hidden_size = 64 },
  }
end

-- The context a row applies in: a change to base() that makes the row's key usable.
local CONTEXT = {
  ["workload.synthetic."] = function(c) c.workload.dataset = nil; c.workload.synthetic = { input_tokens = 5, output_tokens = 2 } end,
  ["workload.arrival.rate"] = function(c) c.workload.arrival = { type = "poisson", rate = 5 } end,
  ["workload.arrival.burstiness"] = function(c) c.workload.arrival = { type = "gamma", rate = 5 } end,
  ["workload.arrival.min_rate"] = function(c) c.workload.arrival = { type = "sinusoid", min_rate = 1, max_rate = 4, period_s = 2 } end,
  ["workload.arrival.max_rate"] = function(c) c.workload.arrival = { type = "sinusoid", min_rate = 1, max_rate = 4, period_s = 2 } end,
  ["workload.arrival.period_s"] = function(c) c.workload.arrival = { type = "sinusoid", min_rate = 1, max_rate = 4, period_s = 2 } end,
  ["workload.arrival.time_scale"] = function(c) c.workload.arrival = { type = "trace" } end,
  ["workload.max_concurrency"] = function(c) c.workload.arrival = { type = "poisson", rate = 5 } end,
  ["executor."] = function(c) c.executor = { type = "local", slots = { { port = 9001 } } } end,
  ["executor.partition"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.gres"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.time"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.sbatch_args"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.max_jobs"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.poll_s"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.gpus_per_trial"] = function(c) c.executor = { type = "local", gpus_per_trial = 1 } end,
}

-- Changes that a generic value would not make valid: row path -> function(config).
local CHANGE = {
  serve_cmd = function(c) c.serve_cmd[#c.serve_cmd + 1] = "--x" end,
  env = function(c) c.env = { X = "1" } end,
  knobs = function(c) c.knobs[#c.knobs + 1] = { name = "d", flag = "--d" } end,
  ["knobs[].name"] = function(c) c.knobs[1].name = "a2" end,
  ["knobs[].flag"] = function(c) c.knobs[1].flag = "--a2" end,
  ["knobs[].key"] = function(c) c.knobs[2].key = "--b2" end,
  ["knobs[].values"] = function(c) c.knobs[2].values = { "1", "3" } end,
  ["knobs[].unset"] = function(c) c.knobs[2].unset = false end,
  ["knobs[].env"] = function(c) c.knobs[3].env = "C2" end,
  ["knobs[].on_value"] = function(c) c.knobs[3].on_value = "2" end,
  ["workload.arrival.type"] = function(c) c.workload.arrival = { type = "constant", rate = 5 } end,
  ["workload.arrival.min_rate"] = function(c) c.workload.arrival.min_rate = 2 end,
  ["workload.arrival.max_rate"] = function(c) c.workload.arrival.max_rate = 5 end,
  ["objective.minimize"] = function(c) c.objective = { minimize = "p95_latency_ms" } end,
  ["objective.maximize"] = function(c) c.objective = { maximize = "tokens_per_s" } end,
  ["objective.tie_breakers"] = function(c) c.objective = { tie_breakers = { "p99_latency_ms:min" } } end,
  ["executor"] = function(c) c.executor = { type = "local", slots = { { port = 9001 } } } end,
  ["executor.type"] = function(c) c.executor = { type = "slurm" } end,
  ["executor.slots"] = function(c) c.executor.slots[2] = { port = 9002 } end,
  ["executor.slots[].port"] = function(c) c.executor.slots[1].port = 9003 end,
  ["executor.slots[].env"] = function(c) c.executor.slots[1].env = { X = "1" } end,
  ["strategy_options"] = function(c) c.strategy_options = { x = 1 } end,
  ["capacity.start_rate"] = function(c) c.capacity = { start_rate = 2 } end,
  ["validate.max_batch_knob"] = function(c) c.validate = { max_batch_knob = c.knobs[1].name } end,
  ["nsys.capture_requests"] = function(c) c.nsys = { capture_requests = 2 } end,
  ["workload.dataset"] = function(c) c.workload.dataset = "other.jsonl" end,
  ["model.layers"] = function(c) c.model.layers = 3 end,
  ["model.hidden_size"] = function(c) c.model.hidden_size = 65 end,
  ["slo.ttft_ms"] = function(c) c.slo.ttft_ms = 200 end,
  ["server.ready_path"] = function(c) c.server = { ready_path = "/ready" } end,
  ["server.metrics_path"] = function(c) c.server = { metrics_path = "/other-metrics" } end,
  ["server.metrics_names"] = function(c) c.server = { metrics_names = { kv_cache_usage = "my:kv" } } end,
  ["workload.multi_turn"] = function(c) c.workload.multi_turn = {}; c.workload.endpoint = "/v1/chat/completions" end,
  ["workload.multi_turn.think_time_ms"] = function(c)
    c.workload.multi_turn = { think_time_ms = 5 }; c.workload.endpoint = "/v1/chat/completions"
  end,
  ["workload.multi_turn.max_turns"] = function(c)
    c.workload.multi_turn = { max_turns = 2 }; c.workload.endpoint = "/v1/chat/completions"
  end,
  ["nsys.gpu_metrics"] = function(c) c.nsys = { gpu_metrics = { 0, 1 } } end,
  ncu = function(c) c.ncu = {} end,
  slos = function(c) c.slos = { { name = "tight", ttft_ms = 50 } } end,
  ["slos[].name"] = function(c) c.slos = { { name = "other", ttft_ms = 50 } } end,
  workloads = function(c) c.workloads = { { name = "short", max_new_tokens = 2 } } end,
  ["workloads[].name"] = function(c) c.workloads = { { name = "other", max_new_tokens = 2 } } end,
}

local function get(c, path)
  for p in path:gmatch("[^.]+") do
    if type(c) ~= "table" then return nil end
    c = c[p]
  end
  return c
end

-- Sets the value at a dotted path (creating objects on the way).
local function set(c, path, v)
  local node = c
  local parts = {}
  for p in path:gmatch("[^.]+") do parts[#parts + 1] = p end
  for i = 1, #parts - 1 do
    node[parts[i]] = node[parts[i]] or {}
    node = node[parts[i]]
  end
  node[parts[#parts]] = v
end

-- Another valid value of a plain row than its default (or than what base() gives).
local function other_value(r)
  if r.type == "boolean" then return not r.default end
  if r.type == "enum" then
    for _, v in ipairs(r.one_of) do if v ~= r.default then return v end end
  end
  if r.type == "integer" or r.type == "number" then
    local v = (r.default or r.min or 0) + 1
    if r.max and v > r.max then v = ((r.min or 0) + r.max) / 2 end
    return r.type == "integer" and math.tointeger(math.floor(v)) or v
  end
  if r.type == "strings" then return { "x-value" } end
  if r.type == "string" then return "x-value" end
  error("no generic change for " .. r.path .. " (" .. r.type .. ")")
end

local function context_of(path)
  if CONTEXT[path] then return CONTEXT[path] end
  for prefix, f in pairs(CONTEXT) do
    if prefix:sub(-1) == "." and path:sub(1, #prefix) == prefix then return f end
  end
end

local function ids(raw, path)
  local ok, cfg = pcall(config.parse, cjson.encode(raw), "/tmp/schema-test.json")
  if not ok then error(path .. ": " .. tostring(cfg), 0) end
  return util.json(identity.of(cfg, "dataset-hash", "measure")), util.json(identity.of(cfg, "dataset-hash", "search"))
end

t.test("changing an identity key changes the identity, any other key does not", function()
  local checked = 0
  for _, r in ipairs(schema.ROWS) do
    if r.type ~= "variant" or CHANGE[r.path] then
      local before = base()
      local ctx = context_of(r.path)
      if ctx then ctx(before) end
      local after = util.copy(before)
      if CHANGE[r.path] then CHANGE[r.path](after)
      else
        local v = other_value(r)
        if v == get(before, r.path) then v = v + 1 end
        set(after, r.path, v)
      end
      local m0, s0 = ids(before, r.path)
      local m1, s1 = ids(after, r.path .. " (changed)")
      local want_m, want_s = r.identity == "measure", r.identity == "measure" or r.identity == "search"
      local got = string.format("%s: measure %s, search %s", r.path, tostring(m0 ~= m1), tostring(s0 ~= s1))
      t.eq(got, string.format("%s: measure %s, search %s", r.path, tostring(want_m), tostring(want_s)))
      checked = checked + 1
    end
  end
  t.eq(checked > 80, true)
end)

t.test("every row is used: a config key the validator does not know has no row", function()
  local known = schema.keys("")
  for _, k in ipairs({ "serve_cmd", "env", "server", "workload", "knobs", "nsys", "objective", "constraints",
    "strategy_options", "slo", "capacity", "model", "hardware", "executor" }) do
    t.eq({ k, known[k] }, { k, 1 })
  end
end)

t.test("docs/config.md holds the key table of the schema", function()
  local root = require("knob").root
  local page = util.read_file(root .. "/docs/config.md")
  local table_text = schema.doc_table()
  if not page:find(table_text, 1, true) then
    io.stderr:write("docs/config.md should hold this table (from schema.lua):\n", table_text)
    error("docs/config.md: its key table is not the schema's (regenerate it from schema.doc_table())", 0)
  end
end)

t.done()
