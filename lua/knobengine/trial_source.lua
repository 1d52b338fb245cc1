-- The trials of a search, in order: a completed trial of the interrupted run at the
-- same index is reused (history.sqlite), anything new is run (here, or on the
-- executor's slots and jobs, a batch at once), stored before its row is printed, and
-- printed. Capacity trials (search:capacity) always run here.
local knob = require("knob")
local errors = require("knobengine.errors")
local Executor = require("knobengine.executor")
local format = require("knobengine.format")
local output = require("knobengine.output")
local progress = require("knobengine.progress")
local record = require("knobengine.record")
local trial = require("knobengine.trial")

local M = {}

-- A capacity search as one trial of a search (search:capacity): its row shows the
-- probe at the highest rate that held, its metrics carry max_rate.
local function capacity_trial(ctx, mask, opts)
  local started = knob.now()
  local result = require("knobengine.load").capacity(ctx, mask, { quiet = true, dir = opts.dir })
  return record.capacity(result, {
    mask = mask, mask_string = result.knob_mask, requests = opts.requests, full = true, config = result.config,
    dir = opts.dir, wall_s = knob.now() - started, max_error_rate = 1,
  })
end

local Source = {}
Source.__index = Source

-- A completed trial of the interrupted run at this index, when the strategy asks for
-- the same again; the first difference ends the replay.
function Source:reuse(index, mask, requests, kind)
  local cached = self.replay[index + 1]
  if cached and cached.mask == mask and cached.requests == requests and cached.kind == kind then
    return record.from_stored(cached)
  end
  self.replay = {} -- the strategy went another way: nothing further can be reused
end

function Source:job(index, mask, requests)
  local cfg = self.ctx.cfg
  local mask_string = cfg.space:string(mask)
  return { index = index, mask = mask, requests = requests,
    dir = string.format("%s/trials/%03d-%s", self.dirs.aside, index, mask_string),
    say = function(where)
      progress.say("[trial %d] mask %s%s%s ...", index, mask_string,
        requests < cfg.workload.request_count and string.format(" (%d requests)", requests) or "", where or "")
    end }
end

function Source:interrupted(j, err)
  local run = self.run
  pcall(run.history.mark_trial_interrupted, run.history, run.id, run.hash, j.index,
    self.ctx.cfg.space:string(j.mask), j.requests)
  error(err, 0)
end

-- Runs masks[1..] as trials first, first+1, ... on the executor; emit(rec) in order.
function Source:run_batch(first, masks, requests, emit)
  local jobs = {}
  for k, mask in ipairs(masks) do
    local cached = #jobs == 0 and self:reuse(first + k - 1, mask, requests, nil)
    if cached then emit(cached) else jobs[#jobs + 1] = self:job(first + k - 1, mask, requests) end
  end
  if #jobs == 0 then return end
  local pending = 1
  local ok, err = xpcall(self.executor.run, errors.handler, self.executor, jobs, function(_, rec)
    pending = pending + 1
    emit(rec)
  end)
  if not ok then self:interrupted(jobs[math.min(pending, #jobs)], err) end
end

function Source:run_trial(index, mask, requests, kind)
  local cached = self:reuse(index, mask, requests, kind)
  if cached then return cached end
  if self.executor and kind == nil then
    local out
    self:run_batch(index, { mask }, requests, function(rec) out = rec end)
    return out
  end
  local j = self:job(index, mask, requests)
  j.say()
  local run_one = kind == "capacity" and capacity_trial or trial.run
  local ok, rec = xpcall(run_one, errors.handler, self.ctx, mask, { dir = j.dir, requests = requests })
  if not ok then self:interrupted(j, rec) end
  return rec
end

function Source:on_trial(t)
  local run = self.run
  -- stored before it is printed: a row on stdout is always a trial a resume keeps
  if not t.resumed then run.history:record(run.id, run.hash, t, record.stored(t)) end
  output.line(format.table_row(t, run.base_p50))
  if not t.valid then output.say("trial %d (mask %s) is invalid: %s", t.trial, t.mask_string, t.error or "?") end
end

-- The search's view of history: completed trials of an interrupted run are replayed
-- in order, anything new is run and stored before its row is printed. With an
-- executor, workload trials run in trial processes on its slots or jobs (executor.lua),
-- a batch (search:evaluate_many) at once; capacity trials always run here.
function M.new(ctx, run, dirs)
  local s = setmetatable({ ctx = ctx, run = run, dirs = dirs, replay = run.replay }, Source)
  s.executor = ctx.slots and Executor.new(ctx, ctx.slots, run.work_dir, { history = run.history, run_id = run.id })
  return {
    run_batch = s.executor and function(...) return s:run_batch(...) end,
    run_trial = function(...) return s:run_trial(...) end,
    on_trial = function(t) return s:on_trial(t) end,
  }
end

return M
