-- The Slurm commands the slurm executor needs, each run as a process (never through a
-- shell): sbatch --parsable (submit a batch script), squeue --states=all (the state
-- of our jobs while the controller remembers them), sacct (after that, where
-- accounting is on), scancel. Ownership: none; every call stands alone.
-- Errors: submit and states return nil and a message naming the command and what it
-- printed; cancel is best effort (it says nothing when a job is already gone).
local knob = require("knob")
local util = require("knobengine.util")

local M = {}

-- States after which a job runs no more (squeue and sacct spell them alike).
M.TERMINAL = {
  COMPLETED = true, FAILED = true, TIMEOUT = true, CANCELLED = true, PREEMPTED = true, NODE_FAIL = true,
  OUT_OF_MEMORY = true, BOOT_FAIL = true, DEADLINE = true, REVOKED = true, SPECIAL_EXIT = true,
}

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

-- The batch script of a trial: exec knobengine trial, nothing else (its arguments are
-- quoted; the script is a file sbatch runs, not a command line of ours).
function M.script(argv)
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = util.shell_quote(a) end
  return "#!/bin/sh\n# written by knobengine: one trial of a search\nexec " .. table.concat(quoted, " ") .. "\n"
end

return M
