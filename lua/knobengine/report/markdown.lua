-- report.md: the report's sections (report/fmt.lua blocks) as GitHub-flavoured
-- Markdown. Every table row has as many cells as its header; text is escaped so a
-- kernel name like gemm<float, 128> or a_b*c renders as written.
local M = {}

local util = require("knobengine.util")

local function escape(s)
  s = util.clean_text(tostring(s):gsub("[\r\n]+", " "))
  s = s:gsub("[\\`*_%[%]<>|#]", function(c)
    if c == "<" then return "&lt;" end
    if c == ">" then return "&gt;" end
    return "\\" .. c
  end)
  return s
end
M.escape = escape

local RULE = { l = ":--", r = "--:", c = ":-:" }

local function table_lines(b, out)
  local function row(cells, bold, marks)
    local parts = {}
    for i = 1, #b.header do
      local c = escape(cells[i] or "")
      if marks and marks[i] then c = c .. " (" .. marks[i] .. ")" end
      parts[i] = (bold and c ~= "") and ("**" .. c .. "**") or c
    end
    return "| " .. table.concat(parts, " | ") .. " |"
  end
  out[#out + 1] = row(b.header)
  local rule = {}
  for i = 1, #b.header do rule[i] = RULE[(b.align or {})[i] or "l"] end
  out[#out + 1] = "| " .. table.concat(rule, " | ") .. " |"
  for i, r in ipairs(b.rows) do out[#out + 1] = row(r, b.highlight[i], (b.marks or {})[i]) end
  out[#out + 1] = ""
end

local function block_lines(b, plots, out)
  if b.kind == "p" then
    out[#out + 1] = escape(b.text)
    out[#out + 1] = ""
  elseif b.kind == "list" then
    for _, item in ipairs(b.items) do out[#out + 1] = "- " .. escape(item) end
    out[#out + 1] = ""
  elseif b.kind == "table" then
    table_lines(b, out)
  elseif b.kind == "figure" then
    local p = plots[b.plot]
    if p and p.file then
      out[#out + 1] = string.format("![%s](%s)", escape(b.caption), p.file)
      out[#out + 1] = ""
      out[#out + 1] = "*" .. escape(b.caption) .. "*"
    else
      out[#out + 1] = "*Plot skipped: " .. escape(p and p.skipped or "not drawn") .. ".*"
    end
    out[#out + 1] = ""
  end
end

-- doc: {title, meta = {lines}, headline, note, sections}; plots: plots.make's table.
function M.render(doc, plots)
  local out = { "# " .. escape(doc.title), "" }
  for _, l in ipairs(doc.meta) do out[#out + 1] = escape(l) .. "  " end
  out[#out + 1] = ""
  out[#out + 1] = "**" .. escape(doc.headline) .. "**"
  out[#out + 1] = ""
  if doc.note then out[#out + 1] = "*" .. escape(doc.note) .. "*"; out[#out + 1] = "" end
  for _, s in ipairs(doc.sections) do
    out[#out + 1] = "## " .. escape(s.title)
    out[#out + 1] = ""
    for _, b in ipairs(s.blocks) do block_lines(b, plots, out) end
  end
  return table.concat(out, "\n")
end

return M
