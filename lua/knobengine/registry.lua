-- The plug-in registries: executor backends (lua/knobengine/executors/), arrival types
-- (lua/knobengine/arrivals/) and dataset formats (lua/knobengine/datasets/). A kind's
-- plug-ins are the .lua files of its folder, found by listing it under knob.root (no
-- list of names anywhere), each loaded as require("knobengine.<kind>.<file name>") and
-- checked against the fields its kind declares (KINDS). Every list this module returns
-- is in name order: the order of the config's allowed values and of the schema rows
-- the plug-ins declare (schema.lua).
--
-- A plug-in is loaded while the config schema is being built, so at its top it may
-- require only modules that never need the schema or the config: knob, cjson,
-- knobengine.errors, knobengine.util, knobengine.dataset_record. Anything else it
-- requires inside its functions (require("knobengine.executor") in a backend's slots).
--
-- Ownership: the loaded plug-ins, cached for the life of the process. Errors: a
-- plug-in that lacks a declared field, or whose name is not its file's, is a bug in
-- that file: a plain error naming the file and the field.
local knob = require("knob")

local M = {}

-- Per kind: the folder's config prefix (where its rows live) and the fields every
-- plug-in of the kind declares, with their Lua types ("?" after a type: optional).
M.KINDS = {
  executors = {
    prefix = "executor",
    fields = { name = "string", rows = "table", uses = "table?", validate = "function",
      slots = "function", ports_here = "boolean", resumable = "boolean", poll_wait = "number",
      start = "function", where = "function", poll = "function", stop = "function", reattach = "function?" },
    -- a backend whose jobs outlive the engine re-attaches to them
    valid = function(p) return p.resumable and type(p.reattach) ~= "function" and "'reattach' must be a function "
      .. "(the backend is resumable)" or nil end,
  },
  arrivals = {
    prefix = "workload.arrival",
    fields = { name = "string", rows = "table", uses = "table?", open = "boolean", random = "boolean",
      validate = "function?", draw = "function" },
  },
  datasets = {
    fields = { name = "string", layout = "string", default = "boolean", recognise = "function?",
      item = "function", prompt = "function?" },
  },
}

local loaded = {} -- kind -> {names = {...}, by_name = {...}}

-- The folder of a kind's plug-ins.
function M.dir(kind) return knob.root .. "/lua/knobengine/" .. kind end

local function check(kind, name, p)
  local file = string.format("lua/knobengine/%s/%s.lua", kind, name)
  if type(p) ~= "table" then error(string.format("plug-in %s must return a table", file), 0) end
  local fields = {}
  for f in pairs(M.KINDS[kind].fields) do fields[#fields + 1] = f end
  table.sort(fields)
  for _, f in ipairs(fields) do
    local want = M.KINDS[kind].fields[f]
    local t, optional = want:gsub("%?$", "")
    if not (p[f] == nil and optional == 1) and type(p[f]) ~= t then
      error(string.format("plug-in %s: '%s' must be a %s (got %s)", file, f, t, type(p[f])), 0)
    end
  end
  if p.name ~= name then error(string.format("plug-in %s: its name is '%s', not its file's", file, tostring(p.name)), 0) end
  local why = M.KINDS[kind].valid and M.KINDS[kind].valid(p)
  if why then error(string.format("plug-in %s: %s", file, why), 0) end
  return p
end

-- The plug-ins of a kind: {names = sorted list, by_name = name -> module}.
local function load(kind)
  if loaded[kind] then return loaded[kind] end
  if not M.KINDS[kind] then error("registry: no plug-in kind " .. tostring(kind), 2) end
  local files, err = knob.list_dir(M.dir(kind))
  if not files then error(string.format("registry: cannot list %s: %s", M.dir(kind), tostring(err)), 0) end
  local names, by_name = {}, {}
  for _, f in ipairs(files) do
    local name = f:match("^([%w_]+)%.lua$")
    if name then names[#names + 1] = name end
  end
  table.sort(names)
  for _, name in ipairs(names) do by_name[name] = check(kind, name, require("knobengine." .. kind .. "." .. name)) end
  loaded[kind] = { names = names, by_name = by_name }
  return loaded[kind]
end

-- The names of a kind's plug-ins, sorted (a fresh list).
function M.names(kind)
  local out = {}
  for i, n in ipairs(load(kind).names) do out[i] = n end
  return out
end

-- Every plug-in of a kind, in name order.
function M.all(kind)
  local r, out = load(kind), {}
  for i, n in ipairs(r.names) do out[i] = r.by_name[n] end
  return out
end

-- The plug-in of a kind by name, or nil.
function M.get(kind, name) return load(kind).by_name[name] end

-- The names as messages list them: "'a' or 'b'", "'a', 'b' or 'c'".
function M.quoted(kind)
  local names = load(kind).names
  local q = {}
  for i, n in ipairs(names) do q[i] = "'" .. n .. "'" end
  if #q < 2 then return q[1] or "" end
  return table.concat(q, ", ", 1, #q - 1) .. " or " .. q[#q]
end

-- Every plug-in's own schema rows, plug-ins in name order, each plug-in's in its order.
function M.rows(kind)
  local out = {}
  for _, p in ipairs(M.all(kind)) do
    for _, r in ipairs(p.rows) do out[#out + 1] = r end
  end
  return out
end

return M
