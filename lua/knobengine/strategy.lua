-- Loading a strategy: finding its file (a path, or the name of a bundled one: the
-- .lua files of strategies/, found by listing it), running it in an environment of its
-- own, and checking the options it declares before the first launch (the contract:
-- docs/strategy-api.md).
--
-- The environment: print and io.write go to stderr (stdout carries only the results
-- table), and os.exit raises an error (a strategy cannot end the run and skip the
-- engine's cleanup). Everything else is the standard library.
--
-- Options: a strategy may declare `options = {name = {type = ..., default = ...,
-- min = ..., max = ..., doc = ...}}` with type one of integer, number, string,
-- boolean, mask (a knob mask: an integer or a mask string of N characters). The engine
-- then refuses unknown keys and wrong values in strategy_options (exit 2, naming the
-- key) and hands the strategy search.options with the defaults filled in. A strategy
-- that declares nothing gets strategy_options as they are.
local knob = require("knob")
local errors = require("knobengine.errors")

local M = {}

-- A strategy that declares `exhaustive = true` (it launches every combination) is
-- refused on a larger space unless the run says --force.
M.EXHAUSTIVE_LIMIT = 4096

-- The strategy a run without --strategy uses.
M.DEFAULT = "bruteforce"

-- The bundled strategies' folder: every .lua file in it is one (found by listing it).
function M.dir() return knob.root .. "/strategies" end

-- A strategy named without a path ("halving") is looked up among the bundled ones.
function M.path(name)
  if name == nil then return M.dir() .. "/" .. M.DEFAULT .. ".lua" end
  if not name:find("/", 1, true) and not knob.exists(name) then
    local bundled = M.dir() .. "/" .. name:gsub("%.lua$", "") .. ".lua"
    if knob.exists(bundled) then return bundled end
  end
  if not knob.exists(name) then errors.usage("strategy file '%s' not found", name) end
  return name
end

local function to_stderr(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  io.stderr:write(table.concat(t, "\t", 1, t.n), "\n")
end

local function sandbox()
  local env = setmetatable({}, { __index = _G })
  env.print = to_stderr
  env.io = setmetatable({
    write = function(...) return io.stderr:write(...) end,
    stdout = io.stderr,
    output = function() return io.stderr end,
  }, { __index = io })
  env.os = setmetatable({
    exit = function() error("os.exit is not available to a strategy: return from run() to end the search", 2) end,
  }, { __index = os })
  return env
end

function M.load(path)
  local chunk, err = loadfile(path, "t", sandbox())
  if not chunk then errors.usage("strategy %s", err) end
  local ok, strategy = xpcall(chunk, errors.handler)
  if not ok then
    error(errors.prefixed(strategy, string.format("strategy %s failed to load: ", path)), 0)
  end
  if type(strategy) ~= "table" or type(strategy.run) ~= "function" then
    errors.usage("strategy %s must return a table with a run(search) function", path)
  end
  if strategy.options ~= nil and type(strategy.options) ~= "table" then
    errors.usage("strategy %s: 'options' must be a table of option declarations", path)
  end
  if strategy.name == nil then strategy.name = M.method_name(path) end
  return strategy
end

-- The names of the bundled strategies, in the order each declares (`order`, lowest
-- first; those without one after them, by name): what --help lists. A file that does
-- not load is listed by its name, last.
function M.bundled()
  local list = {}
  for _, f in ipairs(knob.list_dir(M.dir()) or {}) do
    local name = f:match("^(.+)%.lua$")
    if name then
      local ok, st = pcall(M.load, M.dir() .. "/" .. f)
      local order = ok and math.type(st.order) and st.order or math.huge
      list[#list + 1] = { name = name, order = order }
    end
  end
  table.sort(list, function(a, b)
    if a.order ~= b.order then return a.order < b.order end
    return a.name < b.name
  end)
  local names = {}
  for i, s in ipairs(list) do names[i] = s.name end
  return names
end

local CHECKS = {
  integer = function(v) return math.type(v) == "integer" or (type(v) == "number" and math.tointeger(v) ~= nil) end,
  number = function(v) return type(v) == "number" and v == v end,
  string = function(v) return type(v) == "string" end,
  boolean = function(v) return type(v) == "boolean" end,
}

local function check_option(name, decl, v, cfg)
  local path = "strategy_options." .. name
  if decl.type == "mask" then
    local m, why = cfg.space:parse(v)
    if not m then errors.usage("%s: expected a knob mask: '%s': %s", path, tostring(math.tointeger(v) or v), why) end
    return m
  end
  local check = CHECKS[decl.type]
  if not check then errors.usage("%s: the strategy declares an unknown type '%s'", path, tostring(decl.type)) end
  if not check(v) then errors.usage("%s: expected %s", path, decl.type) end
  if decl.type == "integer" then v = math.tointeger(v) end
  if decl.min and v < decl.min then errors.usage("%s: must be >= %s (got %s)", path, decl.min, v) end
  if decl.max and v > decl.max then errors.usage("%s: must be <= %s (got %s)", path, decl.max, v) end
  return v
end

-- strategy_options checked against the strategy's declaration, defaults filled in.
function M.options(strategy, raw, cfg)
  local decls = strategy.options
  if not decls then return raw end
  local names = {}
  for name in pairs(decls) do names[#names + 1] = name end
  table.sort(names)
  for key in pairs(raw) do
    if decls[key] == nil then
      errors.usage("strategy_options.%s: not an option of strategy %s (its options: %s)", tostring(key),
        strategy.name or "?", #names > 0 and table.concat(names, ", ") or "none")
    end
  end
  local out = {}
  for _, name in ipairs(names) do
    local v = raw[name]
    if v == nil then v = decls[name].default
    else v = check_option(name, decls[name], v, cfg) end
    out[name] = v
  end
  return out
end


-- A strategy's name as compare and validate show it: its file's name without ".lua".
function M.method_name(path) return ((tostring(path):match("([^/]+)$") or "?"):gsub("%.lua$", "")) end

return M
