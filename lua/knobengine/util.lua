-- Small helpers shared by the engine modules: file reading, JSON, quoting.
local cjson = require("cjson")
local knob = require("knob")

local M = {}

function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data, rerr = f:read("a")
  f:close()
  if not data then return nil, path .. ": " .. tostring(rerr) end
  return data
end

-- A JSON file's object (or array), or nil when it is absent, unreadable or not one.
function M.read_json(path)
  local ok, v = pcall(cjson.decode, M.read_file(path) or "")
  return ok and type(v) == "table" and v or nil
end

M.REPLACEMENT = "\u{FFFD}"

-- s as valid UTF-8: every byte that is not part of a well-formed sequence (a stray
-- continuation byte, a truncated, overlong or surrogate sequence) becomes U+FFFD.
-- Text from a server log, a trace or a dataset passes here before any file format.
function M.valid_utf8(s)
  local n, bad = utf8.len(s)
  if n then return s end
  local out, from = {}, 1
  while bad do
    out[#out + 1] = s:sub(from, bad - 1)
    out[#out + 1] = M.REPLACEMENT
    from = bad + 1
    n, bad = utf8.len(s, from)
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

-- The characters that are not plain text, as UTF-8 patterns: C0 controls and DEL, C1
-- controls (U+0080-U+009F: NEL, CSI), the line and paragraph separators, and the
-- noncharacters U+FFFE and U+FFFF, which XML forbids. Tab and newline come last.
local NOT_TEXT = { "[\0-\8\11-\31\127]", "\194[\128-\159]", "\226\128[\168\169]", "\239\191[\190\191]" }
local LINES = "[\9\10]"

-- The first character of s that is not plain text (NOT_TEXT, tab and newline too):
-- its position and bytes, or nil.
function M.control_at(s)
  local at, bytes
  for _, p in ipairs({ LINES, table.unpack(NOT_TEXT) }) do
    local i, j = s:find(p)
    if i and (not at or i < at) then at, bytes = i, s:sub(i, j) end
  end
  return at, bytes
end

-- valid_utf8(s) with every character that is not plain text (NOT_TEXT) U+FFFD, tab and
-- newline too unless keep_lines: a name from outside can then neither split a line of
-- output, move a terminal's cursor, nor put a character in an XML document that XML
-- forbids.
function M.clean_text(s, keep_lines)
  s = M.valid_utf8(tostring(s))
  for _, p in ipairs(NOT_TEXT) do s = s:gsub(p, M.REPLACEMENT) end
  if not keep_lines then s = s:gsub(LINES, M.REPLACEMENT) end
  return s
end

-- Sorted keys, so JSON output is stable across runs and easy to diff.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function is_array(t)
  if getmetatable(t) and getmetatable(t).__jsontype == "array" then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

-- A JSON array marker for tables that may be empty (cjson cannot tell).
function M.array(t) return setmetatable(t or {}, { __jsontype = "array" }) end

-- Pretty JSON with sorted keys and 2-space indent.
local function encode(v, indent, out)
  local t = type(v)
  if t == "table" then
    local pad = string.rep("  ", indent + 1)
    if is_array(v) then
      if #v == 0 then out[#out + 1] = "[]"; return end
      out[#out + 1] = "[\n"
      for i, item in ipairs(v) do
        out[#out + 1] = pad
        encode(item, indent + 1, out)
        out[#out + 1] = i < #v and ",\n" or "\n"
      end
      out[#out + 1] = string.rep("  ", indent) .. "]"
    else
      local keys = sorted_keys(v)
      if #keys == 0 then out[#out + 1] = "{}"; return end
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        out[#out + 1] = pad .. cjson.encode(M.valid_utf8(tostring(k))) .. ": "
        encode(v[k], indent + 1, out)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = string.rep("  ", indent) .. "}"
    end
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "string" then
    out[#out + 1] = cjson.encode(M.valid_utf8(v)) -- control characters: \u00XX
  else
    out[#out + 1] = cjson.encode(v)
  end
end

function M.json(v)
  local out = {}
  encode(v, 0, out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

-- Writes a file atomically (mode defaults to 0644); a failure (a full disk, a read-only
-- directory) raises a storage error naming the path (errors.lua).
function M.write(path, data, mode)
  local ok, err = knob.write_atomic(path, data, mode)
  if not ok then require("knobengine.errors").storage("%s", err) end
end

function M.write_json(path, v) M.write(path, M.json(v)) end

function M.mkdir(path)
  local ok, err = knob.mkdir_p(path)
  if not ok then require("knobengine.errors").storage("%s", err) end
end

-- POSIX shell quoting: safe to paste into any sh.
function M.shell_quote(s)
  if s:match("^[%w%-%._/=:,@%+]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

function M.shell_join(argv)
  local parts = {}
  for i, a in ipairs(argv) do parts[i] = M.shell_quote(a) end
  return table.concat(parts, " ")
end

function M.dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

function M.join(dir, path)
  if path:sub(1, 1) == "/" or dir == "." then return path end
  return dir .. "/" .. path
end

function M.is_null(v) return v == nil or v == cjson.null end

-- Finds an executable on PATH (or checks a path with a slash).
-- A deep copy of a value (tables copied, metatables kept).
function M.copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = M.copy(x) end
  return setmetatable(c, getmetatable(v))
end

-- Runs a short command to completion even while this process is being interrupted (a
-- cleanup such as scancel must run after a Ctrl-C): its output (stdout and stderr)
-- and how it ended ("exited with status N", ...), or nil and why it could not start or
-- ran past timeout_s (it is then killed).
function M.capture(argv, timeout_s)
  local out = os.tmpname()
  local exited, how
  do
    local proc <close>, err = knob.spawn(argv, nil, out)
    if not proc then os.remove(out); return nil, string.format("%s: %s", argv[1], err) end
    local deadline = knob.now() + (timeout_s or 60)
    exited, how = proc:exited()
    while not exited and knob.now() < deadline do
      knob.sleep(0.01)
      exited, how = proc:exited()
    end
    proc:stop(1) -- kills one that ran too long
  end -- closing the handle ends its log pump: the output is complete in the file now
  local text = M.read_file(out) or ""
  os.remove(out)
  if not exited then return nil, string.format("%s ran past %s s", argv[1], tostring(timeout_s or 60)) end
  return text, how
end

function M.which(cmd)
  if cmd:find("/", 1, true) then return knob.exists(cmd) and cmd or nil end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/" .. cmd
    if knob.exists(p) then return p end
  end
  return nil
end

return M
