-- Reading the CSV files the engine writes, and CSV datasets (RFC 4180: fields quoted when they hold a
-- comma, a quote or a control character, quotes doubled, a newline allowed inside
-- quotes), by header name: kernels.csv, nvtx.csv, requests.csv. Writing stays with
-- format.csv_field.
local M = {}

-- The record that starts at pos of text: its fields and the position after it (past
-- the line end), or nil at the end of the text, or nil, why for a malformed quote.
local function record_at(text, pos)
  if pos > #text then return nil end
  local fields = {}
  while true do
    local value
    if text:byte(pos) == 34 then -- a quoted field: up to the quote not doubled
      local parts, i = {}, pos + 1
      while true do
        local q = text:find('"', i, true)
        if not q then return nil, "a quoted field is not closed" end
        parts[#parts + 1] = text:sub(i, q - 1)
        if text:byte(q + 1) ~= 34 then pos = q + 1; break end
        parts[#parts + 1] = '"'
        i = q + 2
      end
      value = table.concat(parts)
    else
      local e = text:find("[,\r\n]", pos) or #text + 1
      value, pos = text:sub(pos, e - 1), e
    end
    fields[#fields + 1] = value
    local c = text:byte(pos)
    if c == 44 then
      pos = pos + 1
    elseif c == 13 and text:byte(pos + 1) == 10 then
      return fields, pos + 2
    elseif c == 10 or c == 13 then
      return fields, pos + 1
    elseif c == nil then
      return fields, pos
    else
      return nil, "text after a quoted field"
    end
  end
end

-- The fields of one record held whole in text (a line without its line end), or nil
-- and why for a malformed quote.
function M.fields(text)
  local fields, after = record_at(text, 1)
  if not fields then return nil, after or "an empty record" end
  if after <= #text and not text:sub(after):match("^[\r\n]*$") then return nil, "a line break inside the record" end
  return fields
end

-- Calls fn(row) for every data record of text, row keyed by the header's names (a
-- missing trailing field is nil). Returns true, or nil and why (with the record number).
function M.each(text, fn)
  local header, pos = record_at(text, 1)
  if not header then return nil, pos or "no header" end
  local n = 0
  while true do
    local fields, next_pos = record_at(text, pos)
    if not fields then
      if next_pos then return nil, string.format("record %d: %s", n + 1, next_pos) end
      return true
    end
    n = n + 1
    local row = {}
    for i, name in ipairs(header) do row[name] = fields[i] end
    fn(row)
    pos = next_pos
  end
end

-- Every record of the file at path (a list of rows keyed by header name), or nil and
-- why when it cannot be read or parsed.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local rows = {}
  local ok, why = M.each(text or "", function(row) rows[#rows + 1] = row end)
  if not ok then return nil, path .. ": " .. why end
  return rows
end

return M
