-- Dataset format "sharegpt": one JSON array of {"conversations": [{"from": "human",
-- "value": ...}, {"from": "gpt", "value": ...}, ...]}: the first human turn is the
-- prompt, the length of the reply that follows it the output length. The default of a
-- file that is a JSON array. The contract it implements is dataset.lua's
-- (docs/load.md "Datasets").
local rec = require("knobengine.dataset_record")

local M = { name = "sharegpt", layout = "array", default = true }

-- One element: the first human turn and the reply after it.
function M.item(v, path, n)
  local turns = v.conversations
  if type(turns) ~= "table" then rec.bad(path, "element", n, "needs 'conversations' (an array)") end
  for i, t in ipairs(turns) do
    if type(t) ~= "table" or type(t.from) ~= "string" or type(t.value) ~= "string" then
      rec.bad(path, "element", n, "conversations[%d] needs string 'from' and 'value'", i - 1)
    end
    if t.from == "human" and turns[i + 1] and turns[i + 1].from == "gpt" and t.value:find("%S") then
      return { prompt = t.value, max_tokens = math.max(1, rec.words(turns[i + 1].value or "")) }
    end
  end
  return nil -- no human turn with a reply: not a usable record (as vLLM's benchmarks skip them)
end

return M
