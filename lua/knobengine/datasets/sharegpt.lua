-- Dataset format "sharegpt": one JSON array of {"conversations": [{"from": "human",
-- "value": ...}, {"from": "gpt", "value": ...}, ...]}: the first human turn is the
-- prompt, the length of the reply that follows it the output length. The default of a
-- file that is a JSON array. The contract it implements is dataset.lua's
-- (docs/load.md "Datasets").
local rec = require("knobengine.dataset_record")

local M = { name = "sharegpt", layout = "array", default = true }

local ROLES = { human = "user", gpt = "assistant", system = "system" }

-- Every turn as a chat message (human: user, gpt: assistant), for multi-turn workloads.
local function conversation(turns)
  local out = {}
  for _, t in ipairs(turns) do
    if ROLES[t.from] then out[#out + 1] = { role = ROLES[t.from], content = t.value } end
  end
  return out
end

-- One element: the first human turn and the reply after it (and the whole
-- conversation, which a multi-turn workload sends turn by turn).
function M.item(v, path, n)
  local turns = v.conversations
  if type(turns) ~= "table" then rec.bad(path, "element", n, "needs 'conversations' (an array)") end
  for i, t in ipairs(turns) do
    if type(t) ~= "table" or type(t.from) ~= "string" or type(t.value) ~= "string" then
      rec.bad(path, "element", n, "conversations[%d] needs string 'from' and 'value'", i - 1)
    end
    if t.from == "human" and turns[i + 1] and turns[i + 1].from == "gpt" and t.value:find("%S") then
      return { prompt = t.value, max_tokens = math.max(1, rec.words(turns[i + 1].value or "")),
        conversation = conversation(turns) }
    end
  end
  return nil -- no human turn with a reply: not a usable record (as vLLM's benchmarks skip them)
end

return M
