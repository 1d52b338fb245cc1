-- Dataset format "jsonl": a JSON object per line, {"prompt": "..."} or {"messages":
-- [...]} (each message's content a string or a list of parts), optionally "max_tokens"
-- (a JSON integer) and "timestamp" (ms, for arrival "trace"). The default of a file of
-- lines that no other format recognises. The contract it implements is dataset.lua's
-- (docs/load.md "Datasets").
local rec = require("knobengine.dataset_record")

local M = { name = "jsonl", layout = "lines", default = true }

local function messages(v, path, n)
  if type(v.messages) ~= "table" or #v.messages == 0 then rec.bad(path, "line", n, "'messages' must be a non-empty array") end
  for i, m in ipairs(v.messages) do
    if type(m) ~= "table" or type(m.role) ~= "string" or m.content == nil then
      rec.bad(path, "line", n, "messages[%d] needs a string 'role' and a 'content'", i - 1)
    end
    local ok, why = rec.content_ok(m.content)
    if not ok then rec.bad(path, "line", n, "messages[%d].content: %s", i - 1, why) end
  end
  return v.messages
end

-- One record: {prompt | messages, max_tokens, timestamp_ms}.
function M.item(v, path, n)
  local item = {}
  if v.prompt ~= nil then
    if type(v.prompt) ~= "string" or v.prompt == "" then rec.bad(path, "line", n, "'prompt' must be a non-empty string") end
    item.prompt = v.prompt
  elseif v.messages ~= nil then
    item.messages = messages(v, path, n)
  else
    rec.bad(path, "line", n, "needs 'prompt' or 'messages'")
  end
  item.max_tokens = rec.int_field(v.max_tokens, "max_tokens", 1, path, "line", n)
  item.timestamp_ms = rec.timestamp_field(v.timestamp, path, "line", n)
  return item
end

return M
