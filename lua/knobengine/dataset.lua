-- The workload's prompts: read from a dataset file, one record at a time (every record
-- is checked, only the ones the run sends are kept), or made up (synthetic probes);
-- and the request bodies, in order, exactly as they are sent.
--
-- Formats (workload.dataset_format, "auto" by default):
--   jsonl     a JSON object per line: {"prompt": "..."} or {"messages": [...]} (each
--             message's content a string or a list of parts), optionally "max_tokens" (a JSON integer) and "timestamp" (ms, for
--             arrival "trace")
--   mooncake  a JSON object per line: {"timestamp": ms, "input_length": n,
--             "output_length": m, "hash_ids": [...]}; the prompt is built from
--             512-word blocks, one per hash id, so lines sharing ids share prefixes
--   sharegpt  one JSON array of {"conversations": [{"from": "human", "value": ...},
--             {"from": "gpt", "value": ...}, ...]}: the first human turn is the
--             prompt, the length of the reply that follows it the output length
-- "auto": a file starting with '[' is sharegpt; otherwise each line is read as jsonl
-- or mooncake by its keys. Words stand for tokens.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local Rng = require("knobengine.rng")

local M = {}

local MAX_RECORD = 16 * 1024 * 1024
local BLOCK_WORDS = 512

local function bad(path, what, n, fmt, ...)
  errors.usage("workload.dataset: %s %s %d: %s", path, what, n, string.format(fmt, ...))
end

local function int_field(v, name, min, path, what, n)
  if v == nil then return nil end
  local i = type(v) == "number" and math.tointeger(v) or nil
  if not i or i < min then bad(path, what, n, "'%s' must be an integer >= %d (a number, not a string)", name, min) end
  return i
end

local function timestamp_field(v, path, what, n)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 then bad(path, what, n, "'timestamp' must be a number of ms >= 0") end
  return v
end

-- An OpenAI chat message's content: a string, or a non-empty list of parts
-- ({"type": "text", "text": "..."}, or parts of other types, sent as they are); nil
-- and why when it is neither.
local function content_ok(c)
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

-- One jsonl record: {prompt | messages, max_tokens, timestamp_ms}.
local function jsonl_item(v, path, n)
  local item = {}
  if v.prompt ~= nil then
    if type(v.prompt) ~= "string" or v.prompt == "" then bad(path, "line", n, "'prompt' must be a non-empty string") end
    item.prompt = v.prompt
  elseif v.messages ~= nil then
    if type(v.messages) ~= "table" or #v.messages == 0 then bad(path, "line", n, "'messages' must be a non-empty array") end
    for i, m in ipairs(v.messages) do
      if type(m) ~= "table" or type(m.role) ~= "string" or m.content == nil then
        bad(path, "line", n, "messages[%d] needs a string 'role' and a 'content'", i - 1)
      end
      local ok, why = content_ok(m.content)
      if not ok then bad(path, "line", n, "messages[%d].content: %s", i - 1, why) end
    end
    item.messages = v.messages
  else
    bad(path, "line", n, "needs 'prompt' or 'messages'")
  end
  item.max_tokens = int_field(v.max_tokens, "max_tokens", 1, path, "line", n)
  item.timestamp_ms = timestamp_field(v.timestamp, path, "line", n)
  return item
end

-- One mooncake record; the prompt itself is built only for the records that are sent.
local function mooncake_item(v, path, n)
  local item = {
    input_length = int_field(v.input_length, "input_length", 1, path, "line", n),
    max_tokens = int_field(v.output_length, "output_length", 1, path, "line", n),
    timestamp_ms = timestamp_field(v.timestamp, path, "line", n),
  }
  if not item.input_length or not item.max_tokens then bad(path, "line", n, "needs 'input_length' and 'output_length'") end
  if type(v.hash_ids) ~= "table" or #v.hash_ids == 0 then bad(path, "line", n, "'hash_ids' must be a non-empty array") end
  for i, h in ipairs(v.hash_ids) do
    if math.type(h) ~= "integer" and not (type(h) == "number" and math.tointeger(h)) then
      bad(path, "line", n, "hash_ids[%d] must be an integer", i - 1)
    end
  end
  item.hash_ids = v.hash_ids
  return item
end

local function words(s)
  local k = 0
  for _ in s:gmatch("%S+") do k = k + 1 end
  return k
end

-- One ShareGPT record: the first human turn and the reply after it.
local function sharegpt_item(v, path, n)
  local turns = v.conversations
  if type(turns) ~= "table" then bad(path, "element", n, "needs 'conversations' (an array)") end
  for i, t in ipairs(turns) do
    if type(t) ~= "table" or type(t.from) ~= "string" or type(t.value) ~= "string" then
      bad(path, "element", n, "conversations[%d] needs string 'from' and 'value'", i - 1)
    end
    if t.from == "human" and turns[i + 1] and turns[i + 1].from == "gpt" and t.value:find("%S") then
      return { prompt = t.value, max_tokens = math.max(1, words(turns[i + 1].value or "")) }
    end
  end
  return nil -- no human turn with a reply: not a usable record (as vLLM's benchmarks skip them)
end

local function decode(text, path, what, n)
  if text:find("%z") then bad(path, what, n, "contains a NUL byte") end
  if not utf8.len(text) then bad(path, what, n, "is not valid UTF-8") end
  local ok, v = pcall(cjson.decode, text)
  if not ok then bad(path, what, n, "invalid JSON: %s", (tostring(v):gsub("^.-:%d+: ", ""))) end
  if type(v) ~= "table" then bad(path, what, n, "expected a JSON object") end
  return v
end

local function layout_of(path, format)
  if format == "sharegpt" then return "array" end
  if format ~= "auto" then return "lines" end
  local f = io.open(path, "rb")
  local head = (f and f:read(4096) or ""):gsub("^\239\187\191", "") -- a byte-order mark
  if f then f:close() end
  return (head:match("^%s*%[%s*{") or head:match("^%s*%[%s*%]")) and "array" or "lines"
end

-- Reads every record of the file; keeps the first `keep` usable ones.
local function read_file(path, format, keep)
  local layout = layout_of(path, format)
  local next_record, err = knob.records(path, layout, MAX_RECORD)
  if not next_record then errors.usage("workload.dataset: %s", (err:gsub("^cannot read '([^']*)': ", "cannot read '%1': "))) end
  local what = layout == "array" and "element" or "line"
  local items, count = {}, 0
  local ok, perr = pcall(function()
    for text, n in next_record do
      local v = decode(text, path, what, n)
      local item
      if layout == "array" then item = sharegpt_item(v, path, n)
      elseif format == "mooncake" or (format == "auto" and v.input_length ~= nil) then item = mooncake_item(v, path, n)
      else item = jsonl_item(v, path, n) end
      if item then
        count = count + 1
        item.line = n
        if #items < keep then items[#items + 1] = item end
      end
    end
  end)
  if not ok then
    if errors.is(perr) then error(perr, 0) end
    errors.usage("workload.dataset: %s", (tostring(perr):gsub("^[^:]*%.lua:%d+: ", "")))
  end
  if count == 0 then errors.usage("workload.dataset: '%s' has no prompts", path) end
  return items, count
end

-- A small deterministic generator for synthetic prompts (independent of math.random).
local function rng(seed) return Rng.new(seed).unit end

-- Synthetic probes: `keep` prompts of about input_tokens words (distinct from the
-- first word, so nothing is shared) and output_tokens each, +-spread.
local function synthetic(syn, seed, keep)
  local r = rng(seed + 1)
  local function around(v)
    return math.max(1, math.floor(v * (1 + syn.spread * (2 * r() - 1)) + 0.5))
  end
  local items = {}
  for i = 1, keep do
    local n, w = around(syn.input_tokens), {}
    for k = 1, n do w[k] = string.format("s%x", math.floor(r() * 0xffffff)) end
    w[1] = "p" .. i
    items[i] = { prompt = table.concat(w, " "), max_tokens = around(syn.output_tokens), line = i }
  end
  return items
end

-- The workload's items (the first `keep` that are sent), how many records the dataset
-- holds, and the hash that identifies its content.
function M.load(w, keep)
  if w.synthetic then
    local s = w.synthetic
    local spec = string.format("synthetic %d %d %.17g %d", s.input_tokens, s.output_tokens, s.spread, w.seed)
    return { items = synthetic(s, w.seed, keep), count = keep, hash = knob.hash64(spec) }
  end
  local path = w.dataset_path
  if knob.is_dir(path) then errors.usage("workload.dataset: cannot read '%s': Is a directory", path) end
  local items, count = read_file(path, w.dataset_format, keep)
  local hash, err = knob.file_hash(path)
  if not hash then errors.usage("workload.dataset: %s", err) end
  return { items = items, count = count, hash = hash }
end

-- The prompt of a mooncake item: its blocks, 512 words each, cut to input_length.
local function mooncake_prompt(item)
  local out, n = {}, 0
  for _, h in ipairs(item.hash_ids) do
    for k = 1, BLOCK_WORDS do
      if n >= item.input_length then break end
      n = n + 1
      out[n] = string.format("b%d.%d", math.tointeger(h), k)
    end
  end
  for k = n + 1, item.input_length do out[k] = "t" .. k end -- more words than blocks: filler
  return table.concat(out, " ")
end

-- The JSON body of each item for the configured endpoint. Greedy decoding, a fixed
-- seed and ignore_eos make every run ask the server for the same work.
function M.bodies(items, workload)
  local chat = workload.endpoint == "/v1/chat/completions"
  local bodies = {}
  for i, item in ipairs(items) do
    local body = {
      model = workload.model,
      max_tokens = item.max_tokens or workload.max_new_tokens,
      ignore_eos = true,
      temperature = 0,
      seed = workload.seed,
      stream = workload.stream,
    }
    if workload.stream then body.stream_options = { include_usage = true } end
    local prompt = item.prompt or (item.hash_ids and mooncake_prompt(item))
    if chat then
      body.messages = item.messages or { { role = "user", content = prompt } }
    else
      if not prompt then
        errors.usage("workload.dataset: line %d has 'messages' but workload.endpoint is /v1/completions", item.line)
      end
      body.prompt = prompt
    end
    bodies[i] = cjson.encode(body)
  end
  return bodies
end

return M
