-- The stakeholder report of a search run (docs/report.md): report.md and report.html
-- with plots in plots/, written into the run directory at the end of every search and
-- by `knobengine report [RUN_DIR]`. The content is built once (report/*.lua sections)
-- and rendered twice (report/markdown.lua, report/html.lua).
local knob = require("knob")
local errors = require("knobengine.errors")
local progress = require("knobengine.progress")
local context = require("knobengine.report.context")
local counters = require("knobengine.report.counters")
local data = require("knobengine.report.data")
local html = require("knobengine.report.html")
local markdown = require("knobengine.report.markdown")
local narrative = require("knobengine.report.narrative")
local plots = require("knobengine.report.plots")
local profile = require("knobengine.report.profile")
local sections = require("knobengine.report.sections")
local server = require("knobengine.report.server")
local trials = require("knobengine.report.trials")
local util = require("knobengine.util")

local M = {}

-- The document: title, meta lines, headline and the sections in reading order.
function M.document(run, final_dir)
  if run.single then return require("knobengine.report.single").document(run, final_dir) end
  local s = run.summary
  local name = (s.config_file or "config"):match("[^/]+$")
  local doc = {
    title = "knobengine report: " .. name,
    meta = {
      "Run: " .. (final_dir or run.dir),
      string.format("Strategy: %s; %d trial(s); objective: %s %s", tostring(s.strategy), s.trial_count or #s.trials,
        (s.objective or {}).maximize and "maximize" or "minimize", tostring((s.objective or {}).metric)),
      "Generated: " .. os.date("!%Y-%m-%d %H:%M UTC"),
    },
    headline = narrative.headline(run) .. (context.confidence(run) and " " .. context.confidence(run) or ""),
    sections = {
      sections.environment(run), sections.aggregates(run), server.section(run), sections.stages(run),
      sections.mfu(run), profile.operators(run), profile.kernels(run), counters.utilisation(run), trials.trials(run),
    },
  }
  for _, line in ipairs(context.meta(run)) do doc.meta[#doc.meta + 1] = line end
  local load = trials.load_sweep(run)
  if load then doc.sections[#doc.sections + 1] = load end
  local grid = trials.capacity_grid(run)
  if grid then doc.sections[#doc.sections + 1] = grid end
  doc.sections[#doc.sections + 1] = narrative.summary(run)
  return doc
end

-- Where a report is built before it replaces the previous one (in run_dir, so the
-- renames stay on one filesystem).
local function staging(run_dir)
  local pid = knob.getpid()
  return { plots = string.format("%s/.plots.tmp.%d", run_dir, pid),
    md = string.format("%s/.report.md.tmp.%d", run_dir, pid), html = string.format("%s/.report.html.tmp.%d", run_dir, pid) }
end

local function clear(staged)
  knob.remove_tree(staged.plots)
  knob.remove_tree(staged.plots .. ".old")
  os.remove(staged.md)
  os.remove(staged.html)
end

local function summary_size_mb(run_dir)
  local f = io.open(run_dir .. "/summary.json", "rb")
  if not f then return 0 end
  local size = f:seek("end") or 0
  f:close()
  return size / 1e6
end

-- The report built into the staging names. Progress lines only for `knobengine
-- report` (no final_dir): a search says its own.
local function build(run_dir, final_dir, staged)
  local say = final_dir and function() end or progress.say
  say("report: reading %s/summary.json (%.1f MB) ...", run_dir, summary_size_mb(run_dir))
  local run = data.load(run_dir)
  say("report: %d trial(s); writing report.md, report.html and plots/ ...", #(run.summary.trials or {}))
  local doc = M.document(run, final_dir)
  local drawn, note = plots.make(run, staged.plots, profile.side_by_side, counters.devices(run),
    require("knobengine.report.objective").of(run))
  doc.note = note
  util.write(staged.md, markdown.render(doc, drawn))
  util.write(staged.html, html.render(doc, drawn, run_dir))
end

-- The staged report in place of the previous one. The old plots/ goes aside first, so
-- a rename that fails puts it back; no hook may cut these renames short.
local function commit(run_dir, staged)
  local hook, mask, count = debug.gethook()
  debug.sethook()
  local plots_dir, old = run_dir .. "/plots", staged.plots .. ".old"
  local had_old = knob.is_dir(plots_dir) and os.rename(plots_dir, old)
  local ok, err = os.rename(staged.plots, plots_dir)
  if ok then ok, err = os.rename(staged.md, run_dir .. "/report.md") end
  if ok then ok, err = os.rename(staged.html, run_dir .. "/report.html") end
  if not ok and had_old and not knob.is_dir(plots_dir) then os.rename(old, plots_dir) end
  clear(staged)
  if type(hook) == "function" then debug.sethook(hook, mask, count) end
  if not ok then errors.run("report: cannot move the report into place: %s", err) end
end

-- Writes report.md, report.html and plots/ into run_dir. final_dir: the name the run
-- will have (when run_dir is still being built aside). Returns the two paths. The
-- three are built aside and replace the previous ones together once all are written:
-- a report that fails or is interrupted (Ctrl-C, SIGTERM: raised as an interrupted
-- error within moments) leaves the previous one as it was.
function M.write(run_dir, final_dir)
  local staged = staging(run_dir)
  clear(staged)
  local ok, err = pcall(errors.watching_interrupts, "interrupted while the report was written", build, run_dir,
    final_dir, staged)
  if not ok then
    clear(staged)
    error(err, 0)
  end
  commit(run_dir, staged)
  return run_dir .. "/report.md", run_dir .. "/report.html"
end

return M
