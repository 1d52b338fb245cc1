-- The profiled launches: the baseline's and the best's nsys runs, for their traces
-- only (client metrics are never taken from them), and what profiling cost.
local knob = require("knob")
local errors = require("knobengine.errors")
local output = require("knobengine.output")
local progress = require("knobengine.progress")
local trace = require("knobengine.trace")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

local say = output.say

local function session_name(tag)
  return string.format("knobengine-%d-%s", knob.getpid(), tag)
end

-- Why nsys cannot profile here (not found, or its report importer cannot start), or
-- nil. Checked before a profiled launch, so a capture that could never become a
-- report is not even started.
function M.why_not(cfg)
  local reason = trial.nsys_unavailable(cfg)
  if reason then return reason end
  local _, err = knob.nsys_check_importer(cfg.nsys.bin)
  return err
end

-- The profiled run of a config (the baseline or the best), for its trace only: client
-- metrics are never taken from it. Says on stderr what happened to its profile.
function M.run(ctx, mask, dir, tag)
  local cfg = ctx.cfg
  local reason = M.why_not(cfg)
  if reason then
    say("%s; trace metrics will be na", reason)
    local summary, phases = trace.empty(cfg, reason)
    return { ran = false, dir = dir, trace = summary, phases = phases, profile_error = reason, metrics = {} }
  end
  progress.say("profiling the %s (mask %s) ...", tag, cfg.space.n == 0 and "none" or cfg.space:string(mask))
  local rec = trial.run(ctx, mask, { dir = dir, profile = true, session = session_name(tag), label = tag .. " under nsys" })
  local p = rec.profile or {}
  if p.note then say("%s", p.note) end
  if p.size_limited then say("profiling the %s: %s; raise nsys.max_trace_mb (0: no limit) to capture more", tag, p.partial) end
  if rec.profile_error then say("profiling the %s failed: %s; trace metrics will be na", tag, rec.profile_error) end
  if rec.trace and p.partial then rec.trace.partial = p.partial end
  return rec
end

-- Writes the profiled run's files and profiling_overhead.json beside the unprofiled
-- metrics; says so when nsys slowed the server by more than 25%.
function M.write(cfg, plain, prof, tag)
  trial.write_profile(prof)
  local o = trial.overhead(cfg, plain, prof)
  util.write_json(prof.dir .. "/profiling_overhead.json", o)
  if type(o.overhead_percent) == "number" and o.overhead_percent > 25 then
    say("profiling slowed the %s by %.0f%% (p50 %.3f ms under nsys, %.3f ms without): client metrics come from "
      .. "the run without nsys, but its trace shows a slowed server; lighter: nsys.trace without osrt, "
      .. "nsys.cuda_graph_trace \"graph\", nsys.capture_requests", tag, o.overhead_percent,
      o.profiled_p50_latency_ms, o.unprofiled_p50_latency_ms)
  end
  return o
end

-- Files of a profiled launch in a baseline directory; --reprofile-baseline replaces
-- these and keeps every other file (the plain run's metrics, requests, log, provenance).
M.FILES = { ["trace.nsys-rep"] = true, ["trace.sqlite"] = true, ["trace_summary.json"] = true,
  ["nvtx_phases.json"] = true, ["kernels.csv"] = true, ["nvtx.csv"] = true, ["profiling_overhead.json"] = true }
for _, name in ipairs(require("knobengine.ncu").FILES) do M.FILES[name] = true end -- the ncu pass's (ncu.lua)

-- A copy of the baseline directory without its profile files, in aside.
function M.copy_unprofiled(dir, aside)
  util.mkdir(aside)
  for _, name in ipairs(knob.list_dir(dir) or {}) do
    if not M.FILES[name] and not name:match("^profiled_") and not knob.is_dir(dir .. "/" .. name) then
      local text, err = util.read_file(dir .. "/" .. name)
      if not text then errors.run("cannot copy %s/%s: %s", dir, name, tostring(err)) end
      util.write(aside .. "/" .. name, text)
    end
  end
end

return M
