-- Executors: sweep trials run at once, each as a `knobengine trial` process of its own
-- (trial_unit.lua) with its own server, port and devices (docs/executors.md).
--   local: one process per slot on this machine (knob.spawn);
--   slurm: one batch job per trial (sbatch), at most max_jobs at once, each on its own
--          port (server.port + k), its files in RESULTS/.slurm/run-ID/ until collected.
-- Results come back in trial order whatever order they finish in.
--
-- Ownership: the executor owns its trial processes and jobs; on any error (an
-- interrupt, a callback that raises) it stops or cancels every one before the error
-- goes on. Slurm job ids are kept in history.sqlite (jobs table): a search resumed
-- after the engine was killed re-attaches to its jobs that still run, collects the
-- ones that finished and submits the rest again. Errors: a bad executor setting is a
-- usage error; a trial process or job that ends without a result is a failed trial
-- naming how it ended (Slurm's state and reason).
local cjson = require("cjson")
local knob = require("knob")
local config = require("knobengine.config")
local errors = require("knobengine.errors")
local record = require("knobengine.record")
local slurm = require("knobengine.slurm")
local trial_unit = require("knobengine.trial_unit")
local util = require("knobengine.util")

local M = {}
M.__index = M

-- The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi -L.
local function visible_gpus()
  local cvd = os.getenv("CUDA_VISIBLE_DEVICES")
  local out = {}
  if cvd then
    local gpus, why = config.gpu_list(cvd)
    if not gpus then errors.usage("executor.gpus_per_trial: CUDA_VISIBLE_DEVICES='%s': %s", cvd, why) end
    return gpus, "CUDA_VISIBLE_DEVICES"
  end
  if not util.which("nvidia-smi") then return out, "nvidia-smi not found" end
  local text, how = util.capture({ "nvidia-smi", "-L" }, 30)
  for line in (text or ""):gmatch("[^\n]+") do
    local i = line:match("^GPU (%d+):")
    if i then out[#out + 1] = i end
  end
  return out, how == "exited with status 0" and "nvidia-smi -L" or "nvidia-smi -L failed"
end

-- The slots of the config ({port, env} each), or nil when trials run in this process.
-- gpus_per_trial: one slot per that many visible GPUs; slurm: max_jobs slots; both on
-- server.port, server.port + 1, ... Checked before anything runs (usage errors).
function M.slots(cfg)
  local e = cfg.executor
  if not e then return nil end
  if e.type == "slurm" then
    for _, cmd in ipairs({ "sbatch", "squeue", "scancel" }) do
      if not util.which(cmd) then errors.usage("executor.type: slurm needs '%s', which is not on PATH", cmd) end
    end
  end
  if e.slots then return e.slots end
  local count, per_slot = e.max_jobs, nil
  if e.gpus_per_trial then
    local gpus, from = visible_gpus()
    if #gpus < e.gpus_per_trial then
      errors.usage("executor.gpus_per_trial: %d GPU(s) per trial, but %d visible (%s)", e.gpus_per_trial, #gpus, from)
    end
    count = #gpus // e.gpus_per_trial
    per_slot = function(s)
      return { CUDA_VISIBLE_DEVICES = table.concat(gpus, ",", (s - 1) * e.gpus_per_trial + 1, s * e.gpus_per_trial) }
    end
  end
  local slots = {}
  for s = 1, count do
    local port = cfg.server.port + s - 1
    if port > 65535 then errors.usage("executor: slot %d would listen on port %d (server.port + %d)", s, port, s - 1) end
    slots[s] = { port = port, env = per_slot and per_slot(s) or {} }
  end
  return slots
end

-- Local backend: a process per trial.
local Local = {}

function Local.start(ex, job, spec_path, log)
  os.remove(log) -- an earlier attempt's; before the process opens it
  local proc, err = knob.spawn({ ex.exe, "trial", "--spec", spec_path, "--out", job.out }, nil, log)
  if not proc then errors.run("cannot start a trial process: %s", err) end
  return { proc = proc }
end

function Local.poll(_, running)
  for _, r in pairs(running) do
    local exited, how = r.handle.proc:exited()
    if exited then r.how = how end
  end
end

function Local.stop(ex, running)
  for _, r in pairs(running) do r.handle.proc:stop(ex.ctx.cfg.server.stop_timeout_s + 10) end
end

-- Slurm backend: a batch job per trial.
local Slurm = {}

-- The job a killed engine submitted for this trial, when it still runs or left its
-- result (a cancelled or lost one is submitted again).
local function reattachable(ex, job)
  local stored = ex.history and ex.history:job_of(ex.run_id, job.index)
  if not stored or stored.knob_mask ~= job.mask_string or stored.requests ~= job.requests then return nil end
  local id = tostring(stored.job_id)
  if knob.exists(job.out .. "/" .. trial_unit.RESULT) then return id end
  local s = (slurm.states({ id }) or {})[id]
  if s and not slurm.TERMINAL[s.state] then return id end
end

function Slurm.start(ex, job, spec_path, log)
  local e = ex.ctx.cfg.executor
  local attach = reattachable(ex, job)
  if attach then return { id = attach, attached = true } end -- polled like a new one
  os.remove(log) -- an earlier attempt's; before the job opens it
  local script = spec_path:gsub("%.spec%.json$", ".sbatch")
  util.write(script, slurm.script({ ex.exe, "trial", "--spec", spec_path, "--out", job.out }), 493)
  local args = { "--job-name=knobengine-" .. job.index, "--output=" .. log }
  if e.partition then args[#args + 1] = "--partition=" .. e.partition end
  if e.gres then args[#args + 1] = "--gres=" .. e.gres end
  if e.time then args[#args + 1] = "--time=" .. e.time end
  for _, a in ipairs(e.sbatch_args or {}) do args[#args + 1] = a end
  local id, err = slurm.submit(args, script)
  if not id then
    local sig = knob.interrupted()
    if sig then errors.interrupted(sig, "interrupted while submitting trials to Slurm") end
    errors.run("cannot submit trial %d to Slurm: %s", job.index, err)
  end
  if ex.history then ex.history:record_job(ex.run_id, job.index, id, job.mask_string, job.requests) end
  return { id = id }
end

-- A shared filesystem may show a finished job's result.json a moment after Slurm says
-- it ended; a job that ended without one is given this long before it counts as failed.
Slurm.RESULT_GRACE_S = 5
-- squeue may fail now and then on a busy controller; only this long a run of failures
-- stops the sweep.
Slurm.SQUEUE_FAILING_S = 60

-- Marks the trials whose job ended (r.how), from Slurm's states.
local function judge(running, states, now)
  for _, r in pairs(running) do
    if not r.how then
      local s = states[r.handle.id]
      local ended = not s and "is no longer known to Slurm" or slurm.TERMINAL[s.state] and string.format("ended %s%s",
        s.state, (s.reason ~= "" and s.reason ~= "None") and (" (" .. s.reason .. ")") or "")
      if ended then
        r.ended_at = r.ended_at or now
        if now - r.ended_at >= Slurm.RESULT_GRACE_S then r.how = string.format("(Slurm job %s) %s", r.handle.id, ended) end
      end
    end
  end
end

function Slurm.poll(ex, running)
  -- a trial that left its result is done: no need to wait for Slurm to finish the job
  local left = 0
  for _, r in pairs(running) do
    if knob.exists(r.job.out .. "/" .. trial_unit.RESULT) then
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
  local states, err = slurm.states(ids)
  if states then
    ex.squeue_failing_since = nil
    return judge(running, states, now)
  end
  ex.squeue_failing_since = ex.squeue_failing_since or now
  if now - ex.squeue_failing_since > Slurm.SQUEUE_FAILING_S then
    errors.run("cannot ask Slurm about the trials' jobs for %d s: %s", Slurm.SQUEUE_FAILING_S, err)
  end
end

-- Cancels the jobs (they stop their servers) and forgets them, and the finished ones
-- whose rows were not printed yet: a resume submits all of those anew.
function Slurm.stop(ex, running, unprinted)
  local ids, trials = {}, {}
  for _, r in pairs(running) do ids[#ids + 1], trials[#trials + 1] = r.handle.id, r.job.index end
  for _, index in ipairs(unprinted) do trials[#trials + 1] = index end
  slurm.cancel(ids, ex.ctx.cfg.server.stop_timeout_s + 30)
  if ex.history then ex.history:forget_jobs(ex.run_id, trials) end
end

-- ctx: the run context; slots: M.slots; work_dir: where specs, logs and (slurm) the
-- trials' own directories go until collected. opts: history, run_id (slurm re-attach).
function M.new(ctx, slots, work_dir, opts)
  util.mkdir(work_dir)
  opts = opts or {}
  return setmetatable({ ctx = ctx, slots = slots, work_dir = work_dir, exe = knob.realpath("/proc/self/exe"),
    backend = ctx.cfg.executor.type == "slurm" and Slurm or Local, history = opts.history, run_id = opts.run_id,
    poll_wait = ctx.cfg.executor.type == "slurm" and 0.1 or 0.02 }, M)
end

-- Starts job {index, mask, requests, dir} on a slot.
function M:start(slot, job)
  local base = string.format("%s/%03d", self.work_dir, job.index)
  job.mask_string = self.ctx.cfg.space:string(job.mask)
  -- a slurm job writes where the next run can find it; a local one straight into place
  job.out = self.backend == Slurm and string.format("%s-%s", base, job.mask_string) or job.dir
  local spec_path = base .. ".spec.json"
  util.write_json(spec_path, trial_unit.spec(self.ctx, job, slot))
  local log = base .. ".log"
  local handle = self.backend.start(self, job, spec_path, log)
  if job.say then job.say(handle.id and string.format(" on Slurm job %s%s", handle.id, handle.attached
    and " (re-attached)" or "") or string.format(" on port %d", slot.port)) end
  return { job = job, handle = handle, log = log, spec = spec_path }
end

-- The record of a finished trial; its process's stderr is passed on to ours.
function M:collect(r)
  local log = util.read_file(r.log) or ""
  for line in log:gmatch("[^\n]+") do
    if line ~= r.job.out then io.stderr:write(line, "\n") end
  end
  os.remove(r.log); os.remove(r.spec); os.remove((r.spec:gsub("%.spec%.json$", ".sbatch")))
  local rec, why = trial_unit.collect(r.job.out)
  if rec and r.job.out ~= r.job.dir then
    knob.remove_tree(r.job.dir)
    local ok, err = os.rename(r.job.out, r.job.dir)
    if not ok then errors.run("cannot move trial %d into the run: %s", r.job.index, err) end
    rec.dir = r.job.dir
  end
  if rec then return rec end
  local last = log:match("([^\n]+)\n*$") or ""
  local c = self.ctx.cfg
  return record.from_result({ ok = false, timing = {},
    error = string.format("the trial process %s and %s%s", r.how, why, last ~= "" and (": " .. last) or "") }, {
    mask = r.job.mask, mask_string = r.job.mask_string, requests = r.job.requests,
    full = r.job.requests == c.workload.request_count, dir = r.job.dir, max_error_rate = c.constraints.max_error_rate,
    config = cjson.null,
  })
end

-- Starts jobs on free slots, collects the finished ones; true when any finished.
local function step(self, jobs, running, done, state)
  for s, slot in ipairs(self.slots) do
    if not running[s] and state.started < #jobs then
      state.started = state.started + 1
      running[s] = self:start(slot, jobs[state.started])
      running[s].k = state.started
    end
  end
  self.backend.poll(self, running)
  local finished = false
  for s, r in pairs(running) do
    if r.how then done[r.k], running[s], finished = self:collect(r), nil, true end
  end
  return finished
end

-- Runs jobs on the slots; on_result(job, rec) is called in job order.
function M:run(jobs, on_result)
  local running, done, state = {}, {}, { started = 0 }
  local emitted = 0
  local ok, err = xpcall(function()
    while emitted < #jobs do
      local finished = step(self, jobs, running, done, state)
      while done[emitted + 1] do
        emitted = emitted + 1
        on_result(jobs[emitted], done[emitted])
        done[emitted] = nil
      end
      local sig = knob.interrupted()
      if sig then errors.interrupted(sig, "interrupted while trials ran on the executor") end
      if not finished then knob.sleep(self.poll_wait) end
    end
  end, errors.handler)
  if not ok then
    local unprinted = {}
    for k in pairs(done) do unprinted[#unprinted + 1] = jobs[k].index end
    self.backend.stop(self, running, unprinted)
    error(err, 0)
  end
end

return M
