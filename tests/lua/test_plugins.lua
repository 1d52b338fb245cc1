-- The plug-in contracts (registry.lua): every registered executor backend, arrival type
-- and dataset format declares what its kind requires, its schema rows are valid rows,
-- and it behaves as its kind's contract says. A new plug-in file is picked up here by
-- the registry; the fixtures below (one per format and backend) must then name it too.
-- And the bundled strategies are the files of strategies/, as --help lists them (run
-- by tests/lua_host).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local t = require("t")
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local dataset = require("knobengine.dataset")
local registry = require("knobengine.registry")
local schedule = require("knobengine.schedule")
local schema = require("knobengine.schema")
local util = require("knobengine.util")

local KINDS = { "executors", "arrivals", "datasets" }

-- A valid config (as text) with `over` applied to its workload and top level.
local function config_text(workload, top)
  local raw = { serve_cmd = { "/bin/true", "--port", "{port}" }, workload = { dataset = "d.jsonl", model = "m" },
    knobs = { { name = "a", flag = "--a" } } }
  for k, v in pairs(workload or {}) do raw.workload[k] = v end
  for k, v in pairs(top or {}) do raw[k] = v end
  return cjson.encode(raw)
end

local function parse(workload, top) return config.parse(config_text(workload, top), "/tmp/plugins-test.json") end

-- Registry -----------------------------------------------------------------------

t.test("each kind's plug-ins are the .lua files of its folder, in name order", function()
  for _, kind in ipairs(KINDS) do
    local files = {}
    for _, f in ipairs(knob.list_dir(registry.dir(kind))) do
      if f:match("%.lua$") then files[#files + 1] = f:gsub("%.lua$", "") end
    end
    table.sort(files)
    t.eq(registry.names(kind), files, kind)
    t.ok(#files > 0, kind .. " has plug-ins")
    for _, p in ipairs(registry.all(kind)) do
      for field, want in pairs(registry.KINDS[kind].fields) do
        local ty, optional = want:gsub("%?$", "")
        t.ok(type(p[field]) == ty or (optional == 1 and p[field] == nil),
          string.format("%s/%s declares %s (%s)", kind, p.name, field, want))
      end
    end
  end
end)

t.test("the allowed values of the type keys are the registered names", function()
  t.eq(schema.row("executor.type").one_of, registry.names("executors"))
  t.eq(schema.row("workload.arrival.type").one_of, registry.names("arrivals"))
  local formats = registry.names("datasets")
  table.insert(formats, 1, "auto")
  t.eq(schema.row("workload.dataset_format").one_of, formats)
end)

-- The docs say what each plug-in is: the type row's doc (config.md) and its page.
t.test("every registered plug-in is documented", function()
  local docs = {
    executors = { row = "executor.type", page = "docs/executors.md", pattern = '"type": "%s"' },
    arrivals = { row = "workload.arrival.type", page = "docs/load.md", pattern = "| `%s`" },
    datasets = { page = "docs/load.md", pattern = "| `%s` |" },
  }
  for kind, d in pairs(docs) do
    local page = util.read_file(knob.root .. "/" .. d.page)
    for _, name in ipairs(registry.names(kind)) do
      if d.row then t.ok(schema.row(d.row).doc:find("`" .. name .. "`", 1, true), d.row .. "'s doc names " .. name) end
      t.ok(page:find(string.format(d.pattern, name), 1, true), d.page .. " documents " .. name)
    end
  end
end)

local ROW_TYPES = { string = true, number = true, integer = true, boolean = true, enum = true, strings = true,
  map = true, object = true, list = true }

-- A plug-in's row: a valid schema row under its kind's prefix, whose `types` name only
-- the plug-in (a key of a list's elements has none), present in the schema.
local function check_row(kind, p, r)
  local where = string.format("%s/%s: %s", kind, p.name, tostring(r.path))
  local prefix = registry.KINDS[kind].prefix .. "."
  t.ok(type(r.path) == "string" and r.path:sub(1, #prefix) == prefix, where .. ": under " .. prefix)
  t.ok(ROW_TYPES[r.type], where .. ": a row type")
  t.ok(type(r.doc) == "string" and r.doc ~= "", where .. ": has a doc")
  t.ok(r.identity == nil or r.identity == "measure" or r.identity == "search", where .. ": identity")
  if r.min and r.max then t.ok(r.min <= r.max, where .. ": min <= max") end
  if type(r.default) == "number" then t.ok(not r.min or r.default >= r.min, where .. ": default in range") end
  if r.path:find("[]", 1, true) then
    t.eq(r.types, nil, where .. ": a list element's key has no types")
  else
    t.ok(type(r.types) == "table", where .. ": has types")
    for name, how in pairs(r.types) do
      t.eq(name, p.name, where .. ": types names its plug-in")
      t.ok(how == "optional" or how == "required", where .. ": optional or required")
    end
  end
  local s = schema.BY_PATH[r.path]
  t.ok(s and s.doc == r.doc and s.type == r.type, where .. ": in the schema")
end

t.test("plug-in rows are valid schema rows, and what they use has a row", function()
  for _, kind in ipairs({ "executors", "arrivals" }) do
    local prefix = registry.KINDS[kind].prefix
    for _, p in ipairs(registry.all(kind)) do
      for _, r in ipairs(p.rows) do check_row(kind, p, r) end
      for key, how in pairs(p.uses or {}) do
        local s = schema.BY_PATH[prefix .. "." .. key]
        t.ok(s, string.format("%s/%s uses %s.%s", kind, p.name, prefix, key))
        t.eq(s.types[p.name], how)
      end
    end
  end
  t.eq(registry.get("arrivals", "nonesuch"), nil)
end)

-- Arrivals -----------------------------------------------------------------------

-- A valid workload.arrival of a type: each key it requires at a value in its range.
local function arrival_of(name)
  local a = { type = name }
  for _, key in ipairs(schema.children("workload.arrival")) do
    local r = schema.BY_PATH["workload.arrival." .. key]
    if r.types and r.types[name] == "required" then a[key] = math.max(r.min or 5, math.min(5, r.max or 5)) end
  end
  return a
end

local ITEMS = {}
for i = 1, 50 do ITEMS[i] = { line = i, prompt = "p", timestamp_ms = (i - 1) * 37.5 } end

t.test("every arrival draws n non-decreasing times from 0, reproducibly; seeded ones differ by seed", function()
  for _, p in ipairs(registry.all("arrivals")) do
    local a = parse({ arrival = arrival_of(p.name) }).workload.arrival
    local s = schedule.draw(a, 200, 7, ITEMS)
    if not p.open then
      t.eq(s, nil, p.name .. ": a closed loop has no schedule")
    else
      t.eq(#s, 200, p.name)
      t.eq(s[1], 0, p.name .. " starts at 0")
      for i = 2, #s do t.ok(s[i] >= s[i - 1] and s[i] >= 0, p.name .. ": non-decreasing at " .. i) end
      t.eq(schedule.draw(a, 200, 7, ITEMS), s, p.name .. ": reproducible")
      local other = schedule.draw(a, 200, 8, ITEMS)
      t.eq(other[200] ~= s[200], p.random, p.name .. ": another seed, another schedule")
    end
  end
end)

t.test("an arrival's keys: another type's is refused, a required one must be there", function()
  local rows = {}
  for _, key in ipairs(schema.children("workload.arrival")) do rows[key] = schema.BY_PATH["workload.arrival." .. key] end
  for _, p in ipairs(registry.all("arrivals")) do
    for key, r in pairs(rows) do
      if r.types and not r.types[p.name] then
        local a = arrival_of(p.name)
        a[key] = 1
        t.raises(function() parse({ arrival = a }) end,
          string.format("workload.arrival.%s: is not used with type '%s'", key, p.name))
      elseif r.types and r.types[p.name] == "required" then
        local a = arrival_of(p.name)
        a[key] = nil
        t.raises(function() parse({ arrival = a }) end,
          string.format("workload.arrival.%s: is required with type '%s'", key, p.name))
      end
    end
  end
end)

-- Datasets -----------------------------------------------------------------------

-- Per format: a small file of its kind, the items it reads to (the fields given), and a
-- bad record with what the error says about it.
local FIXTURES = {
  jsonl = {
    file = "d.jsonl",
    text = '{"prompt": "hello there", "max_tokens": 3}\n{"messages": [{"role": "user", "content": "hi"}], "timestamp": 5}\n',
    items = { { prompt = "hello there", max_tokens = 3, line = 1 },
      { messages = { { role = "user", content = "hi" } }, timestamp_ms = 5, line = 2 } },
    bad = '{"prompt": "a"}\n{"prompt": ""}\n',
    says = "line 2: 'prompt' must be a non-empty string",
  },
  mooncake = {
    file = "m.jsonl",
    text = '{"timestamp": 0, "input_length": 3, "output_length": 2, "hash_ids": [7]}\n'
      .. '{"timestamp": 10, "input_length": 600, "output_length": 1, "hash_ids": [7, 8]}\n',
    items = { { input_length = 3, max_tokens = 2, timestamp_ms = 0, hash_ids = { 7 }, line = 1 },
      { input_length = 600, max_tokens = 1, timestamp_ms = 10, hash_ids = { 7, 8 }, line = 2 } },
    prompts = { "b7.1 b7.2 b7.3" },
    bad = '{"timestamp": 0, "input_length": 3, "output_length": 2, "hash_ids": []}\n',
    says = "line 1: 'hash_ids' must be a non-empty array",
  },
  csv = {
    file = "trace.csv",
    text = "arrived_at,num_prefill_tokens,num_decode_tokens,pd_ratio\n0.0,3,2,1.5\n\n0.25,1,7,0.14\r\n",
    items = { { input_length = 3, max_tokens = 2, timestamp_ms = 0, line = 2 },
      { input_length = 1, max_tokens = 7, timestamp_ms = 250, line = 4 } },
    prompts = { "r2 a a", "r4" },
    bad = "arrived_at,num_prefill_tokens,num_decode_tokens\n0,3,2\n1,0x10,2\n",
    says = "line 3: 'num_prefill_tokens' must be an integer in 1..10000000 (got '0x10')",
  },
  sharegpt = {
    file = "s.json",
    text = cjson.encode({ { conversations = { { from = "human", value = "q one" }, { from = "gpt", value = "a b c" } } },
      { conversations = { { from = "gpt", value = "no question" } } } }),
    items = { { prompt = "q one", max_tokens = 3, line = 1 } },
    bad = '[{"conversations": []}, {"conversations": 5}]',
    says = "element 2: needs 'conversations' (an array)",
  },
}

local function workload(path, format)
  return { dataset_path = path, dataset_format = format, seed = 0, endpoint = "/v1/completions", model = "m",
    max_new_tokens = 16, stream = false }
end

-- The fields of an item that FIXTURES name.
local function fields(items, want)
  local out = {}
  for i, item in ipairs(items) do
    out[i] = {}
    for k in pairs(want[i] or item) do out[i][k] = item[k] end
  end
  return out
end

t.test("every format reads a file of its kind, by name and by auto, and refuses a bad record", function()
  local d = t.tmpdir()
  for _, p in ipairs(registry.all("datasets")) do
    local f = FIXTURES[p.name]
    t.ok(f, "tests/lua/test_plugins.lua has a fixture for dataset format " .. p.name)
    local path = util.join(d, f.file)
    util.write(path, f.text)
    for _, format in ipairs({ p.name, "auto" }) do
      local data = dataset.load(workload(path, format), 10)
      t.eq(fields(data.items, f.items), f.items, p.name .. " read as " .. format)
      t.eq(data.count, #f.items)
      for i, prompt in ipairs(f.prompts or {}) do
        t.eq(cjson.decode(dataset.bodies(data.items, workload(path, format))[i]).prompt, prompt)
      end
    end
    local bad = util.join(d, "bad-" .. f.file)
    util.write(bad, f.bad)
    t.raises(function() dataset.load(workload(bad, p.name), 10) end, string.format("workload.dataset: %s %s", bad, f.says))
  end
  knob.remove_tree(d)
end)

t.test("each layout has one default format, the one auto falls back to", function()
  local defaults = {}
  for _, p in ipairs(registry.all("datasets")) do
    t.ok(p.layout == "lines" or p.layout == "array" or p.layout == "csv", p.name .. ": a layout")
    if p.default then
      t.eq(defaults[p.layout], nil, p.layout .. " has one default")
      defaults[p.layout] = p.name
    else
      t.ok(p.recognise, p.name .. ": auto recognises it, or it is its layout's default")
    end
  end
  t.ok(defaults.lines and defaults.array and defaults.csv, "every layout has a default")
end)

-- Executors ----------------------------------------------------------------------

-- Per backend: a minimal valid executor setting.
local EXECUTORS = {
  ["local"] = { type = "local", slots = { { port = 9001, env = { CUDA_VISIBLE_DEVICES = "0" } } } },
  slurm = { type = "slurm" },
}

t.test("every backend validates its setting, and refuses another backend's keys", function()
  for _, p in ipairs(registry.all("executors")) do
    local e = EXECUTORS[p.name]
    t.ok(e, "tests/lua/test_plugins.lua has a fixture for executor backend " .. p.name)
    local cfg = parse(nil, { executor = e })
    t.eq(cfg.executor.type, p.name)
    for _, other in ipairs(registry.all("executors")) do
      for _, r in ipairs(other ~= p and other.rows or {}) do
        local key = r.path:match("^executor%.([%w_]+)$")
        local types = schema.BY_PATH[r.path].types
        if key and not types[p.name] then
          local users = {}
          for name in pairs(types) do users[#users + 1] = name end
          table.sort(users)
          local raw = util.copy(e)
          raw[key] = r.type == "strings" and { "x" } or 1
          t.raises(function() parse(nil, { executor = raw }) end,
            string.format('executor.%s: is only used with "type": "%s"', key, table.concat(users, "/")))
        end
      end
    end
  end
  t.raises(function() parse(nil, { executor = {} }) end,
    "executor.type: is required (" .. registry.quoted("executors") .. ")")
end)

t.test("a backend with trials that die with the engine has nothing to re-attach to", function()
  for _, p in ipairs(registry.all("executors")) do
    if not p.resumable then t.eq(p.reattach({}, {}, "x.spec.json"), nil, p.name) end
  end
end)

t.test("history's jobs table of an older knobengine: its rows become the slurm backend's", function()
  local d = t.tmpdir()
  local path = d .. "/history.sqlite"
  local db = assert(knob.db_open(path))
  db:exec([[CREATE TABLE jobs (run_id INTEGER NOT NULL, trial INTEGER NOT NULL, job_id TEXT NOT NULL,
      knob_mask TEXT NOT NULL, requests INTEGER NOT NULL, submitted_utc TEXT NOT NULL, PRIMARY KEY (run_id, trial))]])
  db:exec("INSERT INTO jobs VALUES (1, 0, '412', '01', 12, '2026-01-01T00:00:00Z')")
  db:close()
  local History = require("knobengine.history")
  local h = History.open(path)
  t.eq(h:job_of(1, 0), { backend = "slurm", handle = "412", job_id = "412", knob_mask = "01", requests = 12 })
  h:record_job(1, 1, "slurm", "413", "10", 12)
  t.eq(h:job_of(1, 1), { backend = "slurm", handle = "413", job_id = "413", knob_mask = "10", requests = 12 })
  h:close()
  h = History.open(path) -- opening again changes nothing
  t.eq(h:job_of(1, 0).handle, "412")
  h:forget_jobs(1, { 0, 1 })
  t.eq(h:job_of(1, 0), nil)
  h:close()
  knob.remove_tree(d)
end)

-- Strategies ---------------------------------------------------------------------

t.test("the bundled strategies are the files of strategies/, listed by --help in their order", function()
  local strategy = require("knobengine.strategy")
  local names, files = strategy.bundled(), {}
  for _, f in ipairs(knob.list_dir(strategy.dir())) do
    if f:match("%.lua$") then files[#files + 1] = f:gsub("%.lua$", "") end
  end
  local sorted = util.copy(names)
  table.sort(sorted)
  table.sort(files)
  t.eq(sorted, files)
  t.eq(names[1], strategy.DEFAULT)
  local help = require("knobengine.args").usage()
  t.ok(help:find("bundled: " .. table.concat(names, ", ") .. ")", 1, true), "--help lists " .. table.concat(names, ", "))
  t.ok(help:find("(default: strategies/" .. strategy.DEFAULT .. ".lua;", 1, true), "--help names the default")
  t.eq(help:find("{", 1, true), nil)
end)

t.done()
