-- The slurm executor backend: one batch job per trial (sbatch), at most max_jobs at
-- once, job k on port server.port + k, its files in RESULTS/.slurm/run-ID/ until they
-- are collected. It owns its rows (partition, gres, time, sbatch_args, max_jobs,
-- poll_s), their checks (the sbatch options knobengine sets itself or that break the
-- trial protocol) and the Slurm commands, each run as a process, never through a
-- shell: sbatch --parsable (submit), squeue --states=all (the state of our jobs while
-- the controller remembers them), sacct (after that, where accounting is on), scancel.
-- Jobs outlive a killed engine: the runner keeps their ids in history.sqlite and a
-- resumed search re-attaches to those still queued or running, or that left their
-- result. The contract it implements is executor.lua's (docs/executors.md "Writing a
-- backend"). Errors: a failed submission is a run error; squeue failing for a minute
-- stops the sweep; a job that ended without a result is a failed trial naming the job
-- and Slurm's state and reason.
local knob = require("knob")
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = { name = "slurm", ports_here = false, resumable = true, poll_wait = 0.1 }

M.rows = {
  { path = "executor.partition", type = "string", types = { slurm = "optional" }, doc = "`sbatch --partition`" },
  { path = "executor.gres", type = "string", types = { slurm = "optional" }, doc = "`sbatch --gres` (e.g. `gpu:1`)" },
  { path = "executor.time", type = "string", types = { slurm = "optional" }, doc = "`sbatch --time` (e.g. `00:30:00`)" },
  { path = "executor.sbatch_args", type = "strings", default = {}, types = { slurm = "optional" }, doc = "more sbatch options" },
  { path = "executor.max_jobs", type = "integer", default = 8, min = 1, max = 4096, types = { slurm = "optional" },
    doc = "jobs in the queue at once" },
  { path = "executor.poll_s", type = "number", default = 1, min = 0.05, max = 600, types = { slurm = "optional" },
    doc = "how often `squeue` is asked about the jobs" },
}

-- A shared filesystem may show a finished job's result.json a moment after Slurm says
-- it ended; a job that ended without one is given this long before it counts as failed.
M.RESULT_GRACE_S = 5
-- squeue may fail now and then on a busy controller; only this long a run of failures
-- stops the sweep.
M.SQUEUE_FAILING_S = 60

-- States after which a job runs no more (squeue and sacct spell them alike).
M.TERMINAL = {
  COMPLETED = true, FAILED = true, TIMEOUT = true, CANCELLED = true, PREEMPTED = true, NODE_FAIL = true,
  OUT_OF_MEMORY = true, BOOT_FAIL = true, DEADLINE = true, REVOKED = true, SPECIAL_EXIT = true,
}

-- The settings ------------------------------------------------------------------

-- The sbatch options knobengine sets itself, and those that would break its protocol.
local SBATCH_OWN = { "^%-%-output", "^%-o", "^%-%-error", "^%-e", "^%-%-parsable" }
local SBATCH_BREAKING = { "^%-%-array", "^%-a", "^%-%-chdir", "^%-D" }

local function matches_any(s, patterns)
  for _, p in ipairs(patterns) do if s:match(p) then return true end end
  return false
end

-- Where and how each trial's batch job is submitted.
function M.validate(c, _, out)
  for i, a in ipairs(out.sbatch_args) do
    if matches_any(a, SBATCH_OWN) then
      c:bad(string.format("executor.sbatch_args[%d]", i - 1), "'%s' is set by knobengine", a)
    end
    if matches_any(a, SBATCH_BREAKING) then
      c:bad(string.format("executor.sbatch_args[%d]", i - 1), "'%s' would break the trial protocol (one job per "
        .. "trial, run where its paths are): knobengine does not allow it", a)
    end
  end
  return out
end

-- max_jobs slots on server.port, server.port + 1, ...; the Slurm commands must be here.
function M.slots(cfg)
  for _, cmd in ipairs({ "sbatch", "squeue", "scancel" }) do
    if not util.which(cmd) then errors.usage("executor.type: slurm needs '%s', which is not on PATH", cmd) end
  end
  return require("knobengine.executor").port_slots(cfg, cfg.executor.max_jobs)
end

-- The commands ------------------------------------------------------------------

-- Runs a command to completion, even during a Ctrl-C (an sbatch cut short may have
-- submitted a job nobody knows of; scancel is the cleanup): its output and exit
-- status (-1 when it died of a signal).
local function capture(argv, timeout_s)
  local text, how = util.capture(argv, timeout_s or 60)
  if not text then return nil, how end
  return text, tonumber(how:match("status (%d+)")) or -1
end

-- "id|STATE|reason" lines into {[id] = {state, reason}} for the wanted ids.
local function parse_states(text, wanted, out)
  for id, state, reason in text:gmatch("(%d+)|([%u_]+)[^|]*|([^\n]*)") do
    if wanted[id] then out[id] = { state = state, reason = reason } end
  end
end

local function last_line(text) return (text:match("([^\n]+)\n*$") or ""):sub(1, 300) end

-- Submits a batch script; the job id, or nil and why.
function M.submit(args, script)
  local argv = { "sbatch", "--parsable" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv[#argv + 1] = script
  local text, status = capture(argv)
  if not text then return nil, status end
  local id = text:match("^%s*(%d+)")
  if status ~= 0 or not id then
    return nil, string.format("sbatch exited with status %s: %s", tostring(status), last_line(text))
  end
  return id
end

-- {[job id] = {state, reason}} for the given ids that Slurm still knows: squeue, then
-- sacct for the ones squeue has forgotten (when accounting is on). nil, why when
-- squeue itself fails.
function M.states(ids)
  local text, status = capture({ "squeue", "--noheader", "--states=all", "--format=%i|%T|%r" })
  if not text then return nil, status end
  if status ~= 0 then return nil, "squeue: " .. last_line(text) end
  local wanted, out = {}, {}
  for _, id in ipairs(ids) do wanted[id] = true end
  parse_states(text, wanted, out)
  local missing = {}
  for _, id in ipairs(ids) do if not out[id] then missing[#missing + 1] = id end end
  if #missing > 0 and util.which("sacct") then
    local acct, st = capture({ "sacct", "--noheader", "--parsable2", "--format=JobID,State,Reason", "--jobs=" .. table.concat(missing, ",") })
    if acct and st == 0 then parse_states(acct, wanted, out) end
  end
  return out
end

-- Cancels the jobs and waits (at most wait_s) until Slurm runs none of them: their
-- trial processes have stopped their servers by then.
function M.cancel(ids, wait_s)
  if #ids == 0 then return end
  local argv = { "scancel" }
  for _, id in ipairs(ids) do argv[#argv + 1] = id end
  capture(argv)
  local deadline = knob.now() + (wait_s or 60)
  while knob.now() < deadline do
    local states = M.states(ids)
    local active = false
    for _, s in pairs(states or {}) do
      if not M.TERMINAL[s.state] then active = true end
    end
    if states and not active then return end
    knob.sleep(0.2)
  end
end

-- The batch script of a trial: exec knobengine trial, its output appended to log,
-- nothing else (every argument and the log path are quoted; the script is a file
-- sbatch runs, not a command line of ours). The log is opened here, not by sbatch
-- --output, which would read `%` and `\` in a path as its filename pattern.
function M.script(argv, log)
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = util.shell_quote(a) end
  return "#!/bin/sh\n# written by knobengine: one trial of a search\nexec " .. table.concat(quoted, " ")
    .. " >> " .. util.shell_quote(log) .. " 2>&1\n"
end

-- The backend ---------------------------------------------------------------------

-- The job a killed engine submitted for this trial, when it still runs or left its
-- result (a cancelled or lost one is submitted again).
local function script_of(spec_path) return (spec_path:gsub("%.spec%.json$", ".sbatch")) end

function M.reattach(ex, job, spec_path)
  local id = ex:stored_handle(job)
  if not id then return nil end
  local attached = { id = id, attached = true, files = { script_of(spec_path) } } -- polled like a new one
  if ex:has_result(job) then return attached end
  local s = (M.states({ id }) or {})[id]
  if s and not M.TERMINAL[s.state] then return attached end
end

function M.start(ex, job, spec_path, log)
  local e = ex.ctx.cfg.executor
  os.remove(log) -- an earlier attempt's; before the job opens it
  local script = script_of(spec_path)
  util.write(script, M.script({ ex.exe, "trial", "--spec", spec_path, "--out", job.out }, log), 493)
  local args = { "--job-name=knobengine-" .. job.index, "--output=/dev/null" }
  if e.partition then args[#args + 1] = "--partition=" .. e.partition end
  if e.gres then args[#args + 1] = "--gres=" .. e.gres end
  if e.time then args[#args + 1] = "--time=" .. e.time end
  for _, a in ipairs(e.sbatch_args or {}) do args[#args + 1] = a end
  local id, err = M.submit(args, script)
  if not id then
    local sig = knob.interrupted()
    if sig then errors.interrupted(sig, "interrupted while submitting trials to Slurm") end
    errors.run("cannot submit trial %d to Slurm: %s", job.index, err)
  end
  return { id = id, files = { script } }
end

function M.where(handle)
  return string.format(" on Slurm job %s%s", handle.id, handle.attached and " (re-attached)" or "")
end

-- Marks the trials whose job ended (r.how), from Slurm's states.
local function judge(running, states, now)
  for _, r in pairs(running) do
    if not r.how then
      local s = states[r.handle.id]
      local ended = not s and "is no longer known to Slurm" or M.TERMINAL[s.state] and string.format("ended %s%s",
        s.state, (s.reason ~= "" and s.reason ~= "None") and (" (" .. s.reason .. ")") or "")
      if ended then
        r.ended_at = r.ended_at or now
        if now - r.ended_at >= M.RESULT_GRACE_S then r.how = string.format("(Slurm job %s) %s", r.handle.id, ended) end
      end
    end
  end
end

function M.poll(ex, running)
  -- a trial that left its result is done: no need to wait for Slurm to finish the job
  local left = 0
  for _, r in pairs(running) do
    if ex:has_result(r.job) then
      r.how = string.format("(Slurm job %s) finished", r.handle.id)
    else
      left = left + 1
    end
  end
  local now = knob.now()
  if left == 0 or now - (ex.last_poll or 0) < ex.ctx.cfg.executor.poll_s then return end
  ex.last_poll = now
  local ids = {}
  for _, r in pairs(running) do if not r.how then ids[#ids + 1] = r.handle.id end end
  local states, err = M.states(ids)
  if states then
    ex.squeue_failing_since = nil
    return judge(running, states, now)
  end
  ex.squeue_failing_since = ex.squeue_failing_since or now
  if now - ex.squeue_failing_since > M.SQUEUE_FAILING_S then
    errors.run("cannot ask Slurm about the trials' jobs for %d s: %s", M.SQUEUE_FAILING_S, err)
  end
end

-- Cancels the jobs; they stop their servers before Slurm lets them go.
function M.stop(ex, running)
  local ids = {}
  for _, r in pairs(running) do ids[#ids + 1] = r.handle.id end
  M.cancel(ids, ex.ctx.cfg.server.stop_timeout_s + 30)
end

return M
