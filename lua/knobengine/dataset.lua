-- Reads the workload dataset (JSON Lines) and builds the request bodies, in file
-- order, exactly as they are sent. A line is {"prompt": "..."} or {"messages": [...]},
-- optionally with its own "max_tokens".
local cjson = require("cjson")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = {}

local MAX_LINE = 16 * 1024 * 1024

local function bad(path, lineno, fmt, ...)
  errors.usage("workload.dataset: %s line %d: %s", path, lineno, string.format(fmt, ...))
end

-- Returns a list of {prompt=..} or {messages=..} (with max_tokens when given) and the
-- file's text.
function M.load(path)
  local text, err = util.read_file(path)
  if not text then errors.usage("workload.dataset: cannot read '%s': %s", path, (tostring(err):gsub("^.-: ", ""))) end
  local items, lineno = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    if #line > MAX_LINE then bad(path, lineno, "line is longer than %d bytes", MAX_LINE) end
    if line:find("%z") then bad(path, lineno, "contains a NUL byte") end
    if line:match("%S") then
      if not utf8.len(line) then bad(path, lineno, "is not valid UTF-8") end
      local ok, v = pcall(cjson.decode, line)
      if not ok then bad(path, lineno, "invalid JSON: %s", (tostring(v):gsub("^.-:%d+: ", ""))) end
      if type(v) ~= "table" then bad(path, lineno, "expected a JSON object") end
      local item = {}
      if v.prompt ~= nil then
        if type(v.prompt) ~= "string" or v.prompt == "" then bad(path, lineno, "'prompt' must be a non-empty string") end
        item.prompt = v.prompt
      elseif v.messages ~= nil then
        if type(v.messages) ~= "table" or #v.messages == 0 then bad(path, lineno, "'messages' must be a non-empty array") end
        for i, m in ipairs(v.messages) do
          if type(m) ~= "table" or type(m.role) ~= "string" or type(m.content) ~= "string" then
            bad(path, lineno, "messages[%d] needs string 'role' and 'content'", i - 1)
          end
        end
        item.messages = v.messages
      else
        bad(path, lineno, "needs 'prompt' or 'messages'")
      end
      if v.max_tokens ~= nil then
        local mt = type(v.max_tokens) == "number" and math.tointeger(v.max_tokens) or nil
        if not mt or mt < 1 then bad(path, lineno, "'max_tokens' must be an integer >= 1 (a number, not a string)") end
        item.max_tokens = mt
      end
      item.line = lineno
      items[#items + 1] = item
    end
  end
  if #items == 0 then errors.usage("workload.dataset: '%s' has no prompts", path) end
  return items, text
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
    if chat then
      body.messages = item.messages or { { role = "user", content = item.prompt } }
    else
      if not item.prompt then
        errors.usage("workload.dataset: line %d has 'messages' but workload.endpoint is /v1/completions", item.line)
      end
      body.prompt = item.prompt
    end
    bodies[i] = cjson.encode(body)
  end
  return bodies
end

return M
