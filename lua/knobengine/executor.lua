-- The local executor: sweep trials run at once on the config's slots, each in a process
-- of its own (`knobengine trial`, trial_unit.lua) with its own server, port and devices
-- (docs/executors.md). Results come back in trial order whatever order they finish in.
--
-- Ownership: the executor owns its trial processes; on any error (an interrupt, a
-- callback that raises) it stops every one of them (each stops its own server) before
-- the error goes on. Errors: a bad executor setting is a usage error; a trial process
-- that dies without a result is a failed trial naming how it ended.
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local trial_unit = require("knobengine.trial_unit")
local util = require("knobengine.util")

local M = {}
M.__index = M

-- The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi -L.
local function visible_gpus()
  local cvd = os.getenv("CUDA_VISIBLE_DEVICES")
  local out = {}
  if cvd then
    for d in cvd:gmatch("[^,]+") do out[#out + 1] = d end
    return out, "CUDA_VISIBLE_DEVICES"
  end
  if not util.which("nvidia-smi") then return out, "nvidia-smi not found" end
  local log = os.tmpname()
  local status = knob.run({ "nvidia-smi", "-L" }, log, 30)
  for line in (util.read_file(log) or ""):gmatch("[^\n]+") do
    local i = line:match("^GPU (%d+):")
    if i then out[#out + 1] = i end
  end
  os.remove(log)
  return out, status == 0 and "nvidia-smi -L" or "nvidia-smi -L failed"
end

-- The slots of the config ({port, env} each), or nil when trials run in this process.
-- gpus_per_trial: one slot per that many visible GPUs, on server.port, server.port + 1, ...
function M.slots(cfg)
  local e = cfg.executor
  if not e then return nil end
  if e.slots then return e.slots end
  local gpus, from = visible_gpus()
  local per = e.gpus_per_trial
  if #gpus < per then
    errors.usage("executor.gpus_per_trial: %d GPU(s) per trial, but %d visible (%s)", per, #gpus, from)
  end
  local slots = {}
  for s = 1, #gpus // per do
    slots[s] = { port = cfg.server.port + s - 1,
      env = { CUDA_VISIBLE_DEVICES = table.concat(gpus, ",", (s - 1) * per + 1, s * per) } }
  end
  return slots
end

-- ctx: the run context; slots: M.slots; work_dir: where specs and process logs go.
function M.new(ctx, slots, work_dir)
  util.mkdir(work_dir)
  local exe = knob.realpath("/proc/self/exe")
  return setmetatable({ ctx = ctx, slots = slots, work_dir = work_dir, exe = exe }, M)
end

-- Starts job {index, mask, requests, dir} on a slot.
function M:start(slot, job)
  local base = string.format("%s/%03d", self.work_dir, job.index)
  util.write_json(base .. ".spec.json", trial_unit.spec(self.ctx, job, slot))
  os.remove(base .. ".log")
  local proc, err = knob.spawn({ self.exe, "trial", "--spec", base .. ".spec.json", "--out", job.dir }, nil, base .. ".log")
  if not proc then errors.run("cannot start a trial process: %s", err) end
  return { job = job, proc = proc, log = base .. ".log" }
end

-- The record of a finished trial process; its stderr is passed on to ours.
function M:collect(r, how)
  local log = util.read_file(r.log) or ""
  for line in log:gmatch("[^\n]+") do
    if line ~= r.job.dir then io.stderr:write(line, "\n") end
  end
  os.remove(r.log)
  os.remove((r.log:gsub("%.log$", ".spec.json")))
  local rec, why = trial_unit.collect(r.job.dir)
  if rec then return rec end
  local last = log:match("([^\n]+)\n*$") or ""
  local c = self.ctx.cfg
  return require("knobengine.record").from_result({ ok = false, timing = {},
    error = string.format("the trial process %s and %s%s", how, why, last ~= "" and (": " .. last) or "") }, {
    mask = r.job.mask, mask_string = c.space:string(r.job.mask), requests = r.job.requests,
    full = r.job.requests == c.workload.request_count, dir = r.job.dir, max_error_rate = c.constraints.max_error_rate,
    config = cjson.null,
  })
end

-- Stops every running trial process (each stops its server first).
local function stop_all(self, running)
  local timeout = self.ctx.cfg.server.stop_timeout_s + 10
  for _, r in pairs(running) do r.proc:stop(timeout) end
end

-- Runs jobs on the slots; on_result(job, rec) is called in job order.
function M:run(jobs, on_result)
  local running, done = {}, {}
  local started, emitted = 0, 0
  local ok, err = xpcall(function()
    while emitted < #jobs do
      for s, slot in ipairs(self.slots) do
        if not running[s] and started < #jobs then
          started = started + 1
          running[s] = self:start(slot, jobs[started])
          running[s].k = started
        end
      end
      local finished = false
      for s, r in pairs(running) do
        local exited, how = r.proc:exited()
        if exited then
          done[r.k], running[s], finished = self:collect(r, how), nil, true
        end
      end
      while done[emitted + 1] do
        emitted = emitted + 1
        on_result(jobs[emitted], done[emitted])
        done[emitted] = nil
      end
      local sig = knob.interrupted()
      if sig then errors.interrupted(sig, "interrupted while trials ran on the slots") end
      if not finished then knob.sleep(0.02) end
    end
  end, errors.handler)
  if not ok then
    stop_all(self, running)
    error(err, 0)
  end
end

return M
