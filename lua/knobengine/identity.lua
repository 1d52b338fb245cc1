-- The identity of a measurement and of a search: every schema row of that scope
-- (schema.lua "identity"), by path, with its value in the validated config, and the
-- dataset's content hash. A baseline records its measurement identity (config.json);
-- a search is compared only with a baseline of the same one. history.sqlite, trial
-- specs and compare's sweep lookup use the search identity's hash.
local knob = require("knob")
local schema = require("knobengine.schema")
local util = require("knobengine.util")

local M = {}

M.VERSION = 2 -- identities of version 1 (no "identity" field) named fewer keys

local SCOPES = { measure = { measure = true }, search = { measure = true, search = true } }

-- The value at a dotted path of the validated config (nil when unset).
local function value_at(cfg, path)
  local v = cfg
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

-- A list row (knobs): each element as the object of its rows in the scope.
local function list_value(cfg, r, scope)
  local out = util.array({})
  for i, item in ipairs(value_at(cfg, r.path) or {}) do
    local entry = {}
    for _, key in ipairs(schema.children(r.path .. "[]")) do
      local child = schema.BY_PATH[r.path .. "[]." .. key]
      if child and SCOPES[scope][child.identity] then entry[key] = item[key] end
    end
    out[i] = entry
  end
  return out
end

-- The identity (scope "measure" or "search") of cfg with the dataset's hash: a flat
-- table path -> value (unset keys absent).
function M.of(cfg, dataset_hash, scope)
  local id = { identity = M.VERSION, scope = scope, dataset_sha = dataset_hash }
  for _, r in ipairs(schema.ROWS) do
    if SCOPES[scope][r.identity] and not r.path:find("[]", 1, true) and r.type ~= "variant" then
      id[r.path] = r.type == "list" and list_value(cfg, r, scope) or util.copy(value_at(cfg, r.path))
    end
  end
  return id
end

-- The identity as 16 hex digits: the same config and dataset give the same text in
-- every process (util.json sorts keys).
function M.hash(cfg, dataset_hash, scope)
  return knob.hash64(util.json(M.of(cfg, dataset_hash, scope)))
end

-- The identity recorded with a baseline (its config.json), or nil when an older
-- knobengine recorded it (without the full identity).
function M.recorded(conf)
  local id = type(conf) == "table" and conf.identity
  if type(id) == "table" and id.identity == M.VERSION then return id end
  return nil
end

local function shown(v)
  if v == nil then return "(unset)" end
  if type(v) == "number" and math.tointeger(v) then return tostring(math.tointeger(v)) end
  if type(v) == "table" then return (util.json(v):gsub("%s+", " "):gsub(" $", "")) end
  return tostring(v)
end

local function clip(s) return #s > 120 and s:sub(1, 117) .. "..." or s end

local function sorted_keys(a, b)
  local set, out = {}, {}
  for k in pairs(a) do set[k] = true end
  for k in pairs(b) do set[k] = true end
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- What differs between two identities, as short phrases ("workload.arrival.type:
-- closed -> poisson"); a map (env) is compared entry by entry.
function M.differences(old, new)
  local out = {}
  for _, k in ipairs(sorted_keys(old, new)) do
    local a, b = old[k], new[k]
    if k == "dataset_sha" then
      if a ~= b then out[#out + 1] = "the dataset's content" end
    elseif k ~= "identity" and k ~= "scope" and schema.BY_PATH[k] and schema.BY_PATH[k].type == "map" then
      for _, e in ipairs(sorted_keys(a or {}, b or {})) do
        if shown((a or {})[e]) ~= shown((b or {})[e]) then
          out[#out + 1] = clip(string.format("%s.%s: %s -> %s", k, e, shown((a or {})[e]), shown((b or {})[e])))
        end
      end
    elseif k ~= "identity" and k ~= "scope" and shown(a) ~= shown(b) then
      out[#out + 1] = clip(string.format("%s: %s -> %s", k, shown(a), shown(b)))
    end
  end
  return out
end

return M
