-- The stakeholder report of a search run (docs/report.md): report.md and report.html
-- with plots in plots/, written into the run directory at the end of every search and
-- by `knobengine report [RUN_DIR]`. The content is built once (report/*.lua sections)
-- and rendered twice (report/markdown.lua, report/html.lua).
local data = require("knobengine.report.data")
local html = require("knobengine.report.html")
local markdown = require("knobengine.report.markdown")
local narrative = require("knobengine.report.narrative")
local plots = require("knobengine.report.plots")
local profile = require("knobengine.report.profile")
local sections = require("knobengine.report.sections")
local trials = require("knobengine.report.trials")
local util = require("knobengine.util")

local M = {}

-- The document: title, meta lines, headline and the sections in reading order.
function M.document(run, final_dir)
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
    headline = narrative.headline(run),
    sections = {
      sections.environment(run), sections.aggregates(run), sections.stages(run), sections.mfu(run),
      profile.operators(run), profile.kernels(run), trials.trials(run),
    },
  }
  local load = trials.load_sweep(run)
  if load then doc.sections[#doc.sections + 1] = load end
  doc.sections[#doc.sections + 1] = narrative.summary(run)
  return doc
end

-- Writes report.md, report.html and plots/ into run_dir. final_dir: the name the run
-- will have (when run_dir is still being built aside). Returns the two paths.
function M.write(run_dir, final_dir)
  local run = data.load(run_dir)
  local doc = M.document(run, final_dir)
  local drawn, note = plots.make(run, run_dir, profile.side_by_side)
  doc.note = note
  util.write(run_dir .. "/report.md", markdown.render(doc, drawn))
  util.write(run_dir .. "/report.html", html.render(doc, drawn, run_dir))
  return run_dir .. "/report.md", run_dir .. "/report.html"
end

return M
