-- The workload's prompts: read from a dataset file, one record at a time (every record
-- is checked, only the ones the run sends are kept), or made up (synthetic probes);
-- and the request bodies, in order, exactly as they are sent.
--
-- Each format (workload.dataset_format) is a plug-in, lua/knobengine/datasets/<name>.lua,
-- found by knobengine.registry; this module reads the file and dispatches each record.
-- The format contract (every format declares these; registry.lua checks them):
--   name        the workload.dataset_format value, the file's name
--   layout      "lines" (a JSON object per line), "array" (one JSON array of objects) or
--               "csv" (a header line, then a record per line: a table of strings keyed
--               by the header's names)
--   default     true: what "auto" reads a record of a file of its layout as when no
--               format recognises it (one per layout)
--   recognise(v)  (optional) true when "auto" should read record v as this format
--   item(v, path, n)  the checked record: a table with prompt or messages (or what its
--               prompt() builds from), max_tokens, timestamp_ms (all optional), or nil
--               for a record to skip; a bad record raises through
--               dataset_record.bad(path, "line" | "element", n, ...)
--   prompt(item)  (optional) builds the prompt of an item that has none, when it is sent
-- "auto": a file named *.csv is read in the csv layout, one starting with '[' in the
-- array layout, any other by lines; each record then by the format of that layout that
-- recognises it, else its default.
-- Words stand for tokens.
local cjson = require("cjson")
local knob = require("knob")
local csv = require("knobengine.csv")
local errors = require("knobengine.errors")
local rec = require("knobengine.dataset_record")
local registry = require("knobengine.registry")
local Rng = require("knobengine.rng")

local M = {}

local MAX_RECORD = 16 * 1024 * 1024

local function decode(text, path, what, n)
  if text:find("%z") then rec.bad(path, what, n, "contains a NUL byte") end
  if not utf8.len(text) then rec.bad(path, what, n, "is not valid UTF-8") end
  local ok, v = pcall(cjson.decode, text)
  if not ok then rec.bad(path, what, n, "invalid JSON: %s", (tostring(v):gsub("^.-:%d+: ", ""))) end
  if type(v) ~= "table" then rec.bad(path, what, n, "expected a JSON object") end
  return v
end

local function layout_of(path, format)
  if format ~= "auto" then return registry.get("datasets", format).layout end
  if path:lower():match("%.csv$") then return "csv" end
  local f = io.open(path, "rb")
  local head = (f and f:read(4096) or ""):gsub("^\239\187\191", "") -- a byte-order mark
  if f then f:close() end
  return (head:match("^%s*%[%s*{") or head:match("^%s*%[%s*%]")) and "array" or "lines"
end

-- How each record of the file is read: the configured format, or (auto) a function of
-- the record choosing among the formats of the layout.
local function reader(format, layout)
  if format ~= "auto" then
    local fmt = registry.get("datasets", format)
    return function() return fmt end
  end
  local recognisers, default = {}, nil
  for _, fmt in ipairs(registry.all("datasets")) do
    if fmt.layout == layout then
      if fmt.recognise then recognisers[#recognisers + 1] = fmt end
      if fmt.default then default = fmt end
    end
  end
  return function(v)
    for _, fmt in ipairs(recognisers) do if fmt.recognise(v) then return fmt end end
    return default
  end
end

-- A decoder of the csv layout's lines (records.c skips a byte-order mark and blank
-- lines): the first is the header (its names), each later one a record keyed by them;
-- returns nil for the header.
local function csv_decoder()
  local header
  return function(text, path, n)
    if not utf8.len(text) then rec.bad(path, "line", n, "is not valid UTF-8") end
    if text:find("%z") then rec.bad(path, "line", n, "contains a NUL byte") end
    local fields, why = csv.fields(text)
    if not fields then rec.bad(path, "line", n, "not a CSV record: %s", why) end
    if not header then
      local seen = {}
      for i, name in ipairs(fields) do
        fields[i] = name:match("^%s*(.-)%s*$")
        if seen[fields[i]] then rec.bad(path, "line", n, "the header names '%s' twice", fields[i]) end
        seen[fields[i]] = true
      end
      header = fields
      return nil
    end
    if #fields ~= #header then
      rec.bad(path, "line", n, "has %d fields, the header %d", #fields, #header)
    end
    local row = {}
    for i, name in ipairs(header) do row[name] = fields[i] end
    return row
  end
end

-- Reads every record of the file; keeps the first `keep` usable ones.
local function read_file(path, format, keep)
  local layout = layout_of(path, format)
  local next_record, err = knob.records(path, layout == "csv" and "lines" or layout, MAX_RECORD)
  if not next_record then errors.usage("workload.dataset: %s", (err:gsub("^cannot read '([^']*)': ", "cannot read '%1': "))) end
  local what = layout == "array" and "element" or "line"
  local format_of = reader(format, layout)
  local csv_row = layout == "csv" and csv_decoder()
  local items, count = {}, 0
  local ok, perr = pcall(function()
    for text, n in next_record do
      local v
      if csv_row then v = csv_row(text, path, n) else v = decode(text, path, what, n) end
      local fmt = v and format_of(v)
      local item = fmt and fmt.item(v, path, n)
      if item then
        count = count + 1
        item.line, item.format = n, fmt.name
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

-- The prompt of an item: its own, or the one its format builds (a mooncake record's).
local function prompt_of(item)
  if item.prompt then return item.prompt end
  local fmt = item.format and registry.get("datasets", item.format)
  return fmt and fmt.prompt and fmt.prompt(item)
end

-- The body of one request: the item's prompt or the given messages.
local function body_of(item, workload, messages, max_tokens)
  local body = {
    model = workload.model,
    max_tokens = max_tokens or item.max_tokens or workload.max_new_tokens,
    ignore_eos = true,
    temperature = 0,
    seed = workload.seed,
    stream = workload.stream,
  }
  if workload.stream then body.stream_options = { include_usage = true } end
  if workload.endpoint == "/v1/chat/completions" then
    body.messages = messages or item.messages or { { role = "user", content = prompt_of(item) } }
  else
    local prompt = prompt_of(item)
    if not prompt then
      errors.usage("workload.dataset: line %d has 'messages' but workload.endpoint is /v1/completions", item.line)
    end
    body.prompt = prompt
  end
  return cjson.encode(body)
end

-- Multi-turn: the turns of one conversation, each its user message with the history
-- before it (the conversation as recorded), asking for as many tokens as the recorded
-- reply has words; at most max_turns.
local function turns_of(item, workload, max_turns)
  local msgs = item.conversation or item.messages or { { role = "user", content = prompt_of(item) } }
  local out = {}
  for k, m in ipairs(msgs) do
    if #out >= max_turns then break end
    if m.role == "user" then
      local reply = msgs[k + 1]
      local n = reply and reply.role == "assistant" and type(reply.content) == "string" and rec.words(reply.content)
      out[#out + 1] = body_of(item, workload, table.move(msgs, 1, k, 1, {}), n and math.max(1, n) or nil)
    end
  end
  if #out == 0 then out[1] = body_of(item, workload) end
  return out
end

-- The JSON body of each item for the configured endpoint. Greedy decoding, a fixed
-- seed and ignore_eos make every run ask the server for the same work. A multi-turn
-- workload has a body per turn, conversations one after another, and returns
-- turns = {continues[b] (body b is the next turn of body b-1's conversation), turn[b]
-- (its turn, from 1)}.
function M.bodies(items, workload)
  local bodies = {}
  if not workload.multi_turn then
    for i, item in ipairs(items) do bodies[i] = body_of(item, workload) end
    return bodies
  end
  local turns = { continues = {}, turn = {} }
  for _, item in ipairs(items) do
    for t, body in ipairs(turns_of(item, workload, workload.multi_turn.max_turns)) do
      bodies[#bodies + 1] = body
      turns.continues[#bodies], turns.turn[#bodies] = t > 1, t
    end
  end
  return bodies, turns
end

return M
