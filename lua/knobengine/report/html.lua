-- report.html: the report's sections as one self-contained page: styles inline, plots
-- inlined as SVG, no script, no link to anything outside the file. Written as
-- well-formed XML (XHTML syntax in an HTML5 document) so any XML parser can check it.
local util = require("knobengine.util")

local M = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }
-- Text as XML character data: valid UTF-8, control characters other than tab and
-- newline replaced (XML forbids them), markup characters as entities.
local function escape(s) return (util.clean_text(s, true):gsub('[&<>"]', ESC)) end
M.escape = escape

local STYLE = [[
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1d1d1f; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e4e4e7; }
p.meta { color: #52525b; font-size: 13px; margin: 2px 0; }
p.headline { font-size: 17px; background: #f0f4f8; border-left: 4px solid #3f5f7f; padding: 12px 16px; }
p.note { color: #7a4b00; background: #fff7e6; padding: 8px 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #d4d4d8; padding: 4px 8px; vertical-align: top; }
th { background: #f4f4f5; text-align: left; }
td.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #fff1c2; font-weight: bold; }
td.better { color: #15803d; }
td.worse { color: #b91c1c; }
figure { margin: 12px 0 20px; }
figure svg { width: 100%; max-width: 760px; height: auto; display: block; border: 1px solid #e4e4e7; }
figcaption { font-size: 13px; color: #52525b; margin-top: 4px; }
nav a { margin-right: 12px; font-size: 13px; color: #3f5f7f; }
@media print {
  body { background: #fff; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid-page; }
  table, figure { break-inside: avoid-page; }
}
]]

-- An SVG file ready to sit inside the page: no XML declaration or DOCTYPE (both come
-- before the <svg> element) and its ids prefixed, so the definitions of two plots never
-- collide. One pass for the ids and one for the references to them: a plot of 100,000
-- points is tens of MB, and each pass copies it.
function M.inline_svg(text, prefix)
  local start = text:find("<svg", 1, true) or 1
  local prologue = text:sub(1, start - 1):gsub("<%?xml.-%?>", ""):gsub("<!DOCTYPE.->", ""):gsub("^%s+", "")
  local body = text:sub(start)
  local ids = {}
  for id in body:gmatch('%sid=[\'"]([^\'"]+)[\'"]') do ids[id] = true end
  body = body:gsub('(%sid=[\'"])([^\'"]+)([\'"])', function(open, id, close)
    if ids[id] then return open .. prefix .. id .. close end
  end)
  body = body:gsub('#([^\'"%)#]+)([\'"%)])', function(id, close)
    if ids[id] then return "#" .. prefix .. id .. close end
  end)
  if prologue == "" and body:find("^%s") then body = body:gsub("^%s+", "") end
  return prologue .. body
end

local function table_html(b, out)
  out[#out + 1] = "<table><thead><tr>"
  for _, h in ipairs(b.header) do out[#out + 1] = "<th>" .. escape(h) .. "</th>" end
  out[#out + 1] = "</tr></thead><tbody>\n"
  for i, r in ipairs(b.rows) do
    out[#out + 1] = b.highlight[i] and '<tr class="best">' or "<tr>"
    local marks = (b.marks or {})[i] or {}
    for j = 1, #b.header do
      local classes = {}
      if (b.align or {})[j] == "r" then classes[#classes + 1] = "r" end
      if marks[j] then classes[#classes + 1] = marks[j] end
      local attr = #classes > 0 and ' class="' .. table.concat(classes, " ") .. '"' or ""
      if marks[j] then attr = attr .. ' title="' .. marks[j] .. '"' end
      out[#out + 1] = "<td" .. attr .. ">" .. escape(r[j] or "") .. "</td>"
    end
    out[#out + 1] = "</tr>\n"
  end
  out[#out + 1] = "</tbody></table>\n"
end

local function figure_html(b, plots, run_dir, out)
  local p = plots[b.plot]
  local svg = p and p.file and util.read_file(p.path or (run_dir .. "/" .. p.file))
  if svg then
    out[#out + 1] = "<figure>"
    out[#out + 1] = M.inline_svg(svg, b.plot .. "-")
    out[#out + 1] = "<figcaption>" .. escape(b.caption) .. "</figcaption></figure>\n"
  else
    out[#out + 1] = '<p class="note">Plot skipped: ' .. escape(p and p.skipped or "not drawn") .. ".</p>\n"
  end
end

local function block_html(b, plots, run_dir, out)
  if b.kind == "p" then
    out[#out + 1] = "<p>" .. escape(b.text) .. "</p>\n"
  elseif b.kind == "list" then
    out[#out + 1] = "<ul>"
    for _, item in ipairs(b.items) do out[#out + 1] = "<li>" .. escape(item) .. "</li>" end
    out[#out + 1] = "</ul>\n"
  elseif b.kind == "table" then
    table_html(b, out)
  elseif b.kind == "figure" then
    figure_html(b, plots, run_dir, out)
  end
end

-- doc: as for markdown.render; plots: plots.make's table (each SVG read from its path,
-- else from run_dir).
function M.render(doc, plots, run_dir)
  local out = { '<!DOCTYPE html>\n<html lang="en" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8"/>',
    "<title>" .. escape(doc.title) .. "</title><style>" .. STYLE .. "</style></head>\n<body><main>\n",
    "<h1>" .. escape(doc.title) .. "</h1>\n" }
  for _, l in ipairs(doc.meta) do out[#out + 1] = '<p class="meta">' .. escape(l) .. "</p>\n" end
  out[#out + 1] = '<p class="headline">' .. escape(doc.headline) .. "</p>\n"
  if doc.note then out[#out + 1] = '<p class="note">' .. escape(doc.note) .. "</p>\n" end
  out[#out + 1] = "<nav>"
  for _, s in ipairs(doc.sections) do out[#out + 1] = '<a href="#' .. s.id .. '">' .. escape(s.title) .. "</a>" end
  out[#out + 1] = "</nav>\n"
  for _, s in ipairs(doc.sections) do
    out[#out + 1] = '<section id="' .. s.id .. '"><h2>' .. escape(s.title) .. "</h2>\n"
    for _, b in ipairs(s.blocks) do block_html(b, plots, run_dir, out) end
    out[#out + 1] = "</section>\n"
  end
  out[#out + 1] = "</main></body></html>\n"
  return table.concat(out)
end

return M
