-- Dataset format "mooncake": a JSON object per line, {"timestamp": ms, "input_length":
-- n, "output_length": m, "hash_ids": [...]}; "auto" recognises a line by its
-- "input_length". The prompt is built from 512-word blocks, one per hash id, so lines
-- sharing ids share prefixes; it is built only for the records that are sent. The
-- contract it implements is dataset.lua's (docs/load.md "Datasets").
local rec = require("knobengine.dataset_record")

local M = { name = "mooncake", layout = "lines", default = false }

M.BLOCK_WORDS = 512

function M.recognise(v) return v.input_length ~= nil end

function M.item(v, path, n)
  local item = {
    input_length = rec.int_field(v.input_length, "input_length", 1, path, "line", n),
    max_tokens = rec.int_field(v.output_length, "output_length", 1, path, "line", n),
    timestamp_ms = rec.timestamp_field(v.timestamp, path, "line", n),
  }
  if not item.input_length or not item.max_tokens then rec.bad(path, "line", n, "needs 'input_length' and 'output_length'") end
  if type(v.hash_ids) ~= "table" or #v.hash_ids == 0 then rec.bad(path, "line", n, "'hash_ids' must be a non-empty array") end
  for i, h in ipairs(v.hash_ids) do
    if math.type(h) ~= "integer" and not (type(h) == "number" and math.tointeger(h)) then
      rec.bad(path, "line", n, "hash_ids[%d] must be an integer", i - 1)
    end
  end
  item.hash_ids = v.hash_ids
  return item
end

-- The prompt of an item: its blocks, 512 words each, cut to input_length.
function M.prompt(item)
  local out, n = {}, 0
  for _, h in ipairs(item.hash_ids) do
    for k = 1, M.BLOCK_WORDS do
      if n >= item.input_length then break end
      n = n + 1
      out[n] = string.format("b%d.%d", math.tointeger(h), k)
    end
  end
  for k = n + 1, item.input_length do out[k] = "t" .. k end -- more words than blocks: filler
  return table.concat(out, " ")
end

return M
