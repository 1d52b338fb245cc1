-- Dataset format "csv": a trace as simulators write it (Vidur's processed traces): a
-- header line naming the columns, then a request per line with num_prefill_tokens and
-- num_decode_tokens and, optionally, arrived_at (seconds from the trace's start, for
-- arrival "trace"); other columns are ignored. The prompt is num_prefill_tokens words:
-- one of its own (r<line>) first, so no record shares a prefix with another, then "a"
-- (one token in common tokenizers, so a real server counts close to the trace); the
-- output length num_decode_tokens. "auto" reads a file named *.csv in this format. The
-- contract it implements is dataset.lua's (docs/load.md "Datasets").
local rec = require("knobengine.dataset_record")

local M = { name = "csv", layout = "csv", default = true }

-- The columns it reads (Vidur's names).
M.ARRIVAL, M.PROMPT, M.OUTPUT = "arrived_at", "num_prefill_tokens", "num_decode_tokens"

-- The most tokens a record may ask for (as workload.synthetic allows).
M.MAX_TOKENS = 10000000

-- A finite decimal number as a CSV field holds one ("12", "0.5", "1e-3"; no hex, no
-- inf, no 1e400).
local function decimal(s)
  if type(s) ~= "string" then return nil end
  s = s:match("^%s*(.-)%s*$")
  local mantissa = s:match("^(%d*%.?%d*)[eE][+-]?%d+$") or s:match("^(%d*%.?%d*)$")
  if not mantissa or not mantissa:find("%d") then return nil end
  local v = tonumber(s)
  return v and v < math.huge and v or nil
end

local function count(row, name, path, n)
  local v = row[name]
  if v == nil then rec.bad(path, "line", n, "needs a '%s' column", name) end
  local x = decimal(v)
  local i = x and math.tointeger(x)
  if not i or i < 1 or i > M.MAX_TOKENS then
    rec.bad(path, "line", n, "'%s' must be an integer in 1..%d (got '%s')", name, M.MAX_TOKENS, v)
  end
  return i
end

function M.item(row, path, n)
  local item = { input_length = count(row, M.PROMPT, path, n), max_tokens = count(row, M.OUTPUT, path, n) }
  local at = row[M.ARRIVAL]
  if at ~= nil and at ~= "" then
    local s = decimal(at)
    if not s then rec.bad(path, "line", n, "'%s' must be a number of seconds >= 0 (got '%s')", M.ARRIVAL, at) end
    item.timestamp_ms = s * 1000
  end
  return item
end

-- The prompt of an item: its own first word, then "a" up to input_length words.
function M.prompt(item)
  return "r" .. item.line .. string.rep(" a", item.input_length - 1)
end

return M
