-- compare --predictions FILE: a simulator's (or any model's) predicted objective per
-- mask as one more method, the zero-deployment row of method-comparison.md ("AIC-ALL"):
-- it picks the mask with the best prediction and launches it once to confirm, so its
-- cost is one launch; it is scored like the strategies (found_best, regret against the
-- recorded sweep, MAPE of its predictions). The file is CSV with a header holding
-- knob_mask and the objective's metric (other columns ignored), a row per mask (the
-- mask string of one character per knob: an integer is refused, so a mask whose
-- leading zeros a spreadsheet dropped is not read as another); docs/compare.md. Errors: usage errors naming the file,
-- the line and the column.
local csv = require("knobengine.csv")
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = {}

-- A number as a CSV field holds one (no hex, no inf, no nan).
local function decimal(s)
  local mantissa = s:match("^%-?(%d*%.?%d*)[eE][+-]?%d+$") or s:match("^%-?(%d*%.?%d*)$")
  if not mantissa or not mantissa:find("%d") then return nil end
  return tonumber(s)
end

-- The predictions of path: mask -> predicted value of metric, and how many rows.
function M.read(path, space, metric)
  local text, err = util.read_file(path)
  if not text then
    errors.usage("--predictions: cannot read %s: %s", path, (tostring(err):gsub("^" .. path:gsub("%p", "%%%0") .. ": ", "")))
  end
  local out, n, header_ok = {}, 0, false
  local ok, why = csv.each(text, function(row)
    n = n + 1
    local line = n + 1
    if not header_ok then
      if row.knob_mask == nil then errors.usage("--predictions: %s: the header has no knob_mask column", path) end
      if row[metric] == nil then
        errors.usage("--predictions: %s: the header has no %s column (the objective's metric)", path, metric)
      end
      header_ok = true
    end
    local mask, mwhy
    if #row.knob_mask ~= space.n then
      mwhy = string.format("not a mask string of %d characters (one per knob)", space.n)
    else
      mask, mwhy = space:parse(row.knob_mask)
    end
    if not mask then errors.usage("--predictions: %s line %d: knob_mask '%s': %s", path, line, row.knob_mask, mwhy) end
    if out[mask] then errors.usage("--predictions: %s line %d: mask %s is listed twice", path, line, space:string(mask)) end
    local v = decimal(row[metric] or "")
    if not v then errors.usage("--predictions: %s line %d: %s '%s' is not a number", path, line, metric, tostring(row[metric])) end
    out[mask] = v
  end)
  if not ok then errors.usage("--predictions: %s: not CSV (%s)", path, why) end
  if n == 0 then errors.usage("--predictions: %s has no rows", path) end
  return out, n
end

-- The method's name: the file's name without its extension (a usage error when that
-- leaves nothing, as for ".csv").
function M.name(path)
  local name = (path:match("([^/]*)$"):gsub("%.[^.]*$", ""))
  if name == "" then errors.usage("--predictions: %s: the file's name (without its extension) names the method; give it one", path) end
  return name
end

-- A strategy (strategy.lua's shape) that launches the mask with the best prediction
-- once and returns the predictions for the MAPE.
function M.strategy(pred, obj)
  local best
  for mask, v in pairs(pred) do
    if not best or (obj.maximize and v > pred[best] or not obj.maximize and v < pred[best])
      or (v == pred[best] and mask < best) then
      best = mask
    end
  end
  return {
    name = "predictions",
    pick = best,
    run = function(search)
      search:evaluate(best)
      return { predict = function(mask) return pred[mask] end }
    end,
  }
end

return M
