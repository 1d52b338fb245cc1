-- What the dataset formats (lua/knobengine/datasets/) share to check a record: the
-- error that names the file and the record, integer and timestamp fields, an OpenAI
-- chat message's content, word counts (words stand for tokens). Ownership: none.
-- Errors: bad() raises a usage error "workload.dataset: PATH line N: ..." (or
-- "element N" for a record of a JSON array).
local errors = require("knobengine.errors")

local M = {}

-- what: "line" or "element"; n: the record's number (from 1).
function M.bad(path, what, n, fmt, ...)
  errors.usage("workload.dataset: %s %s %d: %s", path, what, n, string.format(fmt, ...))
end

function M.int_field(v, name, min, path, what, n)
  if v == nil then return nil end
  local i = type(v) == "number" and math.tointeger(v) or nil
  if not i or i < min then M.bad(path, what, n, "'%s' must be an integer >= %d (a number, not a string)", name, min) end
  return i
end

function M.timestamp_field(v, path, what, n)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    M.bad(path, what, n, "'timestamp' must be a finite number of ms >= 0")
  end
  return v
end

-- An OpenAI chat message's content: a string, or a non-empty list of parts
-- ({"type": "text", "text": "..."}, or parts of other types, sent as they are); nil
-- and why when it is neither.
function M.content_ok(c)
  if type(c) == "string" then return true end
  if type(c) ~= "table" or #c == 0 then return nil, "expected a string or a non-empty array of parts" end
  for j, part in ipairs(c) do
    if type(part) ~= "table" or type(part.type) ~= "string" then
      return nil, string.format("parts[%d] needs a string 'type'", j - 1)
    end
    if part.type == "text" and type(part.text) ~= "string" then
      return nil, string.format("parts[%d] of type 'text' needs a string 'text'", j - 1)
    end
  end
  return true
end

function M.words(s)
  local k = 0
  for _ in s:gmatch("%S+") do k = k + 1 end
  return k
end

return M
