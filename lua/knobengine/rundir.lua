-- The life of a run directory, the same for every kind of run: built aside (a hidden
-- NAME.tmp.PID beside its final place), removed when the run fails, renamed into place
-- when it is complete, `latest` pointed at it; and the results directory itself: one
-- knobengine at a time (a lock), and what runs killed before they could clean up left
-- aside, removed.
local knob = require("knob")
local errors = require("knobengine.errors")
local output = require("knobengine.output")
local util = require("knobengine.util")

local M = {}

-- Where each kind of run goes under the results directory: its parent, its aside
-- name, and whether its final name is a time stamp (with a `latest` link) or fixed.
M.KINDS = {
  baseline = { parent = "", aside = ".baseline.tmp", name = "baseline" },
  search = { parent = "/search", aside = ".run.tmp" },
  capacity = { parent = "/capacity", aside = ".capacity.tmp" },
  ["load-sweep"] = { parent = "/load-sweep", aside = ".load-sweep.tmp" },
  ["capacity-grid"] = { parent = "/capacity-grid", aside = ".capacity-grid.tmp" },
  profile = { parent = "/profile", aside = ".profile.tmp" },
  calibration = { parent = "/calibration", aside = ".calibration.tmp" },
  validation = { parent = "/validation", aside = ".validation.tmp" },
}

-- A run of `kind` in results: {root, final, aside, latest}. Nothing is created but the
-- parent; an aside this process left (a retry) is removed.
function M.new(results, kind)
  local k = assert(M.KINDS[kind], kind)
  local root = results .. k.parent
  util.mkdir(root)
  local final = root .. "/" .. (k.name or os.date("!%Y%m%dT%H%M%SZ"))
  if not k.name then
    local stamp, n = final, 1
    while knob.exists(final) do n = n + 1; final = string.format("%s-%d", stamp, n) end
  end
  local aside = string.format("%s/%s.%d", root, k.aside, knob.getpid())
  knob.remove_tree(aside)
  return { root = root, final = final, aside = aside, latest = not k.name }
end

-- Runs body() and returns what it returns; when it fails, the aside directory goes and
-- the error goes on (its traceback kept).
function M.guard(d, body)
  local r = table.pack(xpcall(body, errors.handler))
  if not r[1] then
    knob.remove_tree(d.aside)
    error(r[2], 0)
  end
  return table.unpack(r, 2, r.n)
end

-- Moves the built run into place and points latest at it.
function M.publish(d)
  local ok, err = os.rename(d.aside, d.final)
  if not ok then errors.run("cannot move the results into %s: %s", d.final, err) end
  if not d.latest then return end
  local okl, lerr = knob.symlink(d.final:match("[^/]+$"), d.root .. "/latest")
  if not okl then output.say("%s", lerr) end
end

-- Replaces dir by aside: the old directory goes aside first (DIR.old.PID), then away,
-- so a crash in between leaves one that M.own puts back.
function M.swap_in(aside, dir)
  local old = string.format("%s.old.%d", dir, knob.getpid())
  local ok, err = os.rename(dir, old)
  if ok then ok, err = os.rename(aside, dir) end
  if not ok then
    if knob.exists(old) and not knob.exists(dir) then os.rename(old, dir) end
    errors.run("cannot move the new files into %s: %s", dir, tostring(err))
  end
  knob.remove_tree(old)
end

-- Removes what dead runs left aside. A directory whose replacement was cut between
-- its two renames (swap_in) is put back first.
local function remove_asides(results)
  for _, name in ipairs(knob.list_dir(results) or {}) do
    local base = name:match("^(.+)%.old%.%d+$")
    if base == M.KINDS.baseline.name then
      if not knob.exists(results .. "/" .. base) then os.rename(results .. "/" .. name, results .. "/" .. base)
      else knob.remove_tree(results .. "/" .. name) end
    end
  end
  for _, k in pairs(M.KINDS) do
    local parent = results .. k.parent
    local pattern = "^" .. k.aside:gsub("%p", "%%%0") .. "%.(%d+)$"
    for _, name in ipairs(knob.list_dir(parent) or {}) do
      local pid = name:match(pattern)
      if pid and tonumber(pid) ~= knob.getpid() then knob.remove_tree(parent .. "/" .. name) end
    end
  end
end

-- One knobengine per results directory: an exclusive lock for the whole run, and the
-- aside directories of runs that died without cleaning up are removed.
function M.own(results)
  util.mkdir(results)
  local ok, why, holder = knob.lock_dir(results)
  if not ok and why == "busy" then
    errors.usage("--results %s is in use by another knobengine (PID %s); wait for it to finish or use another --results",
      results, holder > 0 and tostring(holder) or "unknown")
  end
  if not ok then errors.usage("--results %s: %s", results, why) end
  remove_asides(results)
end

return M
