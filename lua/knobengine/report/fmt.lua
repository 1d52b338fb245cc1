-- Number and text formats of the report, and the blocks its sections are made of
-- (docs/report.md). A section is {id, title, blocks}; a block is one of
--   {kind = "p", text = ...}             a paragraph of plain text
--   {kind = "list", items = {...}}       a bulleted list of plain text
--   {kind = "table", header = {...}, rows = {{...}}, align = {"l", "r", ...},
--    highlight = {[row index] = true},
--    marks = {[row index] = {[column index] = "better" | "worse"}}}   cells are plain text;
--    a marked cell renders with the word (Markdown) or in colour (HTML)
--   {kind = "figure", plot = name, caption = ...}   a plot of report/plots.lua
-- Renderers (markdown.lua, html.lua) escape the text; nothing here is markup.
local knob_setting = require("knobengine.knobs")
local Space = require("knobengine.space")
local util = require("knobengine.util")

local M = {}

local function known(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
M.known = known

-- A number with d decimals, "na" when unknown.
function M.num(v, d)
  if not known(v) then return "na" end
  local s = string.format("%." .. (d or 3) .. "f", v)
  if s:match("^%-0%.0*$") then s = s:sub(2) end
  return s
end

-- A count (JSON numbers come back as floats): "248", "na" when unknown.
function M.int(v)
  if not known(v) then return "na" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", math.floor(v)) end
  return M.num(v, 3)
end

-- new - old with a sign, "na" when either is unknown.
function M.delta(new, old, d)
  if not known(new) or not known(old) then return "na" end
  local s = M.num(new - old, d)
  return s:sub(1, 1) == "-" and s or "+" .. s
end

-- (new - old) / old in percent with a sign, "na" when unknown or old is 0.
function M.pct_change(new, old)
  if not known(new) or not known(old) or old == 0 then return "na" end
  local s = M.num(100 * (new - old) / old, 1)
  return (s:sub(1, 1) == "-" and s or "+" .. s) .. "%"
end

-- A field of a table that may be null: t[k1][k2]...
function M.get(t, ...)
  for _, k in ipairs({ ... }) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  if util.is_null(t) then return nil end
  return t
end

-- What a mask string sets: the names of the on/off knobs it turns on and name=value
-- of the knobs with values (summary.json's knobs), "none (all off)" when it sets none.
function M.knobs_on(mask, knobs)
  local on = {}
  for i = 1, #mask do
    local k, d = knobs[i] or {}, Space.index_of(mask:sub(i, i))
    local label = knob_setting.label({ name = k.name or ("knob " .. i), values = k.values, unset = k.unset,
      on_value = k.on_value }, d or 0)
    if label then on[#on + 1] = label end
  end
  return #on == 0 and "none (all off)" or table.concat(on, " + ")
end

-- A long name cut to n characters (not bytes: a character is never split), "..."
-- marking the cut (full names are in the CSV files).
function M.short(name, n)
  n = n or 70
  name = util.valid_utf8(name)
  if utf8.len(name) <= n then return name end
  return name:sub(1, utf8.offset(name, n - 2) - 1) .. "..."
end

-- The measured sides of a run, each {name, side}: the baseline and the best of a
-- search (the best's side nil without one), or the one config of a profile run.
function M.sides(run)
  if run.single then return { { "this config", run.baseline } } end
  return { { "baseline", run.baseline }, { "best", run.best } }
end

function M.p(text) return { kind = "p", text = text } end
function M.list(items) return { kind = "list", items = items } end
function M.figure(plot, caption) return { kind = "figure", plot = plot, caption = caption } end
function M.table(header, rows, align, highlight, marks)
  return { kind = "table", header = header, rows = rows, align = align, highlight = highlight or {}, marks = marks or {} }
end

-- "better" or "worse" for a change from old to new of a figure where lower (or, with
-- higher_better, higher) is better; nil when unchanged at d decimals or unknown.
function M.judge(new, old, higher_better, d)
  if not known(new) or not known(old) or M.num(new, d) == M.num(old, d) then return nil end
  return ((new > old) == (higher_better and true or false)) and "better" or "worse"
end

return M
