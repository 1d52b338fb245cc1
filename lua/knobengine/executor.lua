-- The executor runner: sweep trials run at once, each as a `knobengine trial` process
-- of its own (trial_unit.lua) with its own server, port and devices, on a backend
-- (lua/knobengine/executors/<executor.type>.lua, found by knobengine.registry;
-- docs/executors.md). Results come back in trial order whatever order they finish in.
--
-- The backend contract (every backend declares these; registry.lua checks them):
--   name              the executor.type value, the file's name
--   rows, uses        its executor.* schema rows (with types = {[name] = "optional" |
--                     "required"}) and the shared rows it uses (schema.lua adds them)
--   validate(c, e, out)  its own checks: c the config Checker, e the raw executor
--                     object, out its checked keys; returns the validated executor
--   slots(cfg)        the slots trials run on, {port, env} each (port_slots helps);
--                     a usage error when the setting cannot work here
--   ports_here        its slots' ports are on this machine: checked free before a run
--   resumable         its trials outlive a killed engine: their files go where the
--                     next run finds them, their handles' ids are kept in history.sqlite
--                     (jobs table) and a resume calls reattach before start
--   poll_wait         seconds to sleep between polls when nothing finished
--   reattach(ex, job, spec_path)  the handle of the trial a killed engine left running
--                     or finished (ex:stored_handle(job), ex:has_result(job)), or nil
--                     to start it anew
--   start(ex, job, spec_path, log)  starts `ex.exe trial --spec spec_path --out job.out`
--                     with its stderr in log; returns a handle: a table of the
--                     backend's, with id (a string) for a resumable backend and files
--                     (optional: what to remove once the trial is collected). Raises a
--                     run error when it cannot
--   where(handle, slot)  the progress text of where the trial runs (" on port 8000")
--   poll(ex, running) sets r.how (how it ended, said when it left no result) on each
--                     r of running ({job, handle}) whose trial process ended
--   stop(ex, running) stops every running trial and returns once none runs
--
-- Ownership: the runner owns the trial processes and jobs its backend started; on any
-- error (an interrupt, a callback that raises) it stops every one before the error
-- goes on, and forgets the stored handles of those a resume must start anew. Errors:
-- a bad executor setting is a usage error; a trial that ends without a result is a
-- failed trial naming how it ended.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local record = require("knobengine.record")
local registry = require("knobengine.registry")
local trial_unit = require("knobengine.trial_unit")
local util = require("knobengine.util")

local M = {}
M.__index = M

-- The backend of a validated config's executor.
function M.backend(cfg) return registry.get("executors", cfg.executor.type) end

-- count slots on server.port, server.port + 1, ...; per_slot(s) their env (default none).
function M.port_slots(cfg, count, per_slot)
  local slots = {}
  for s = 1, count do
    local port = cfg.server.port + s - 1
    if port > 65535 then errors.usage("executor: slot %d would listen on port %d (server.port + %d)", s, port, s - 1) end
    slots[s] = { port = port, env = per_slot and per_slot(s) or {} }
  end
  return slots
end

-- The slots of the config ({port, env} each), or nil when trials run in this process.
-- Checked before anything runs (usage errors).
function M.slots(cfg)
  if not cfg.executor then return nil end
  return M.backend(cfg).slots(cfg)
end

-- The slots whose ports are on this machine (a run checks they are free).
function M.local_slots(cfg, slots)
  return cfg.executor and M.backend(cfg).ports_here and slots or {}
end

-- Where a run's trials keep specs and logs when its backend's trials outlive a killed
-- engine (found again by run id: RESULTS/.<type>/run-ID), else nil (the run's aside
-- directory).
function M.work_dir(ctx, run_id)
  local e = ctx.cfg.executor
  if not e or not M.backend(ctx.cfg).resumable then return nil end
  return string.format("%s/.%s/run-%d", ctx.results, e.type, run_id)
end

-- ctx: the run context; slots: M.slots; work_dir: where specs, logs and (a resumable
-- backend's) trial directories go until collected. opts: history, run_id (re-attach).
function M.new(ctx, slots, work_dir, opts)
  util.mkdir(work_dir)
  opts = opts or {}
  local backend = M.backend(ctx.cfg)
  return setmetatable({ ctx = ctx, slots = slots, work_dir = work_dir, exe = knob.realpath("/proc/self/exe"),
    backend = backend, history = opts.history, run_id = opts.run_id, poll_wait = backend.poll_wait }, M)
end

-- For a backend: the handle id stored for this trial of the run by a killed engine,
-- when it was this backend's and ran the same mask and requests.
function M:stored_handle(job)
  local stored = self.history and self.history:job_of(self.run_id, job.index)
  if not stored or stored.backend ~= self.backend.name or stored.knob_mask ~= job.mask_string
    or stored.requests ~= job.requests then
    return nil
  end
  return tostring(stored.handle)
end

-- For a backend: whether the trial left its result in job.out.
function M:has_result(job) return knob.exists(job.out .. "/" .. trial_unit.RESULT) end

-- Starts job {index, mask, requests, dir} on a slot.
function M:start(slot, job)
  local base = string.format("%s/%03d", self.work_dir, job.index)
  local backend = self.backend
  job.mask_string = self.ctx.cfg.space:string(job.mask)
  -- a resumable backend's trial writes where the next run finds it; others into place
  job.out = backend.resumable and string.format("%s-%s", base, job.mask_string) or job.dir
  local spec_path = base .. ".spec.json"
  util.write_json(spec_path, trial_unit.spec(self.ctx, job, slot))
  local log = base .. ".log"
  local handle = backend.resumable and backend.reattach(self, job, spec_path)
  if not handle then
    handle = backend.start(self, job, spec_path, log)
    if backend.resumable and self.history then
      self.history:record_job(self.run_id, job.index, backend.name, handle.id, job.mask_string, job.requests)
    end
  end
  if job.say then job.say(backend.where(handle, slot)) end
  return { job = job, handle = handle, log = log, spec = spec_path }
end

-- The record of a finished trial; its process's stderr is passed on to ours.
function M:collect(r)
  local log = util.read_file(r.log) or ""
  for line in log:gmatch("[^\n]+") do
    if line ~= r.job.out then io.stderr:write(line, "\n") end
  end
  os.remove(r.log); os.remove(r.spec)
  for _, f in ipairs(r.handle.files or {}) do os.remove(f) end
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

-- Past the run's deadline (Executor:run's), no job starts: once none runs, the ones
-- never started are done with no record (false).
local function past_deadline(state, running, done, jobs)
  if not state.deadline or knob.now() < state.deadline then return false end
  if next(running) == nil then
    for k = state.started + 1, #jobs do done[k] = false end
    state.started = #jobs
  end
  return true
end

-- Starts jobs on free slots, collects the finished ones; true when any finished.
local function step(self, jobs, running, done, state)
  local stopping = past_deadline(state, running, done, jobs)
  for s, slot in ipairs(self.slots) do
    if not stopping and not running[s] and state.started < #jobs then
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

-- Stops every running trial; a resumable backend's stored handles of those, and of the
-- finished ones whose rows were not printed yet, are forgotten: a resume starts all of
-- those anew.
function M:stop(running, done, jobs)
  self.backend.stop(self, running)
  if not (self.backend.resumable and self.history) then return end
  local trials = {}
  for _, r in pairs(running) do trials[#trials + 1] = r.job.index end
  for k in pairs(done) do trials[#trials + 1] = jobs[k].index end
  self.history:forget_jobs(self.run_id, trials)
end

-- The runner's loop: starts jobs on free slots, collects them, emits in order; on any
-- error it stops every trial it started.
local function run_loop(self, jobs, on_result, deadline)
  local running, done, state = {}, {}, { started = 0, deadline = deadline }
  local emitted = 0
  local ok, err = xpcall(function()
    while emitted < #jobs do
      local finished = step(self, jobs, running, done, state)
      while done[emitted + 1] ~= nil do
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
    self:stop(running, done, jobs)
    error(err, 0)
  end
end

-- Runs jobs on the slots; on_result(job, rec) is called in job order. With a deadline
-- (knob.now() seconds), no job starts past it and those never started get rec false.
-- The count hook
-- that turns a Ctrl-C into an error wherever Lua runs (the strategy's) is off in here:
-- raised between a backend's start and the runner's note of it, it would leave a
-- trial nobody stops (a queued Slurm job); the loop checks for the interrupt itself.
-- It is put back on the way out, unless an interrupt is on its way.
function M:run(jobs, on_result, deadline)
  local hook, mask, count = debug.gethook()
  debug.sethook()
  local ok, err = xpcall(run_loop, errors.handler, self, jobs, on_result, deadline)
  if type(hook) == "function" and (ok or err.kind ~= "interrupted") then debug.sethook(hook, mask, count) end
  if not ok then error(err, 0) end
end

return M
