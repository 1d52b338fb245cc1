-- The handle a strategy drives: search.knobs, search.n, search.baseline,
-- search:masks(), search:evaluate(mask, {requests = k}), search:history().
-- Each evaluate records a trial (index, row on stdout, summary); the engine, not the
-- strategy, picks the best afterwards. A strategy only ever gets copies (record.view):
-- the records themselves live where the handle does not reach.
local config = require("knobengine.config")
local objective = require("knobengine.objective")
local record = require("knobengine.record")

local Search = {}
Search.__index = Search

-- Per handle: {ctx, records}. Kept outside the handle, so a strategy cannot edit them.
local private = setmetatable({}, { __mode = "k" })

-- ctx: cfg (the validated config), baseline (its client metrics), options (the
-- strategy's options, checked; default cfg.strategy_options), run_trial(index,
-- mask, requests) -> record, on_trial(record) (optional: called after each trial),
-- history (History, optional). records: the list the engine reads the trials from.
function Search.new(ctx, records)
  local self = setmetatable({}, Search)
  private[self] = { ctx = ctx, records = records or {} }
  self.n = #ctx.cfg.knobs
  self.knobs = {}
  for i, k in ipairs(ctx.cfg.knobs) do self.knobs[i] = { name = k.name, index = k.index } end
  self.baseline = ctx.baseline
  self.request_count = ctx.cfg.workload.request_count
  self.options = ctx.options or ctx.cfg.strategy_options
  return self
end

function Search:masks()
  local i, total = -1, 1 << self.n
  return function()
    i = i + 1
    if i < total then return i end
  end
end

-- A value as a message shows it: long strings cut, with their length.
local function shown(v)
  local s = tostring(v)
  if #s > 40 then return string.format("%s... (%d characters)", s:sub(1, 32), #s) end
  return s
end

local function parse_mask(self, mask)
  if type(mask) == "string" then
    if #mask ~= self.n or mask:find("[^01]") then
      error(string.format("search:evaluate: mask '%s' is not a %d-bit string", shown(mask), self.n), 3)
    end
    return tonumber(mask, 2)
  end
  local m = math.tointeger(mask)
  if not m or m < 0 or m >= (1 << self.n) then
    error(string.format("search:evaluate: mask %s is out of range 0..%d", shown(mask), (1 << self.n) - 1), 3)
  end
  return m
end

-- Runs the next trial of this run (kind nil: a workload; "capacity": a capacity
-- search), records it, tells the run, and returns the strategy's copy of it.
local function run_trial(p, mask, requests, kind)
  local rec = p.ctx.run_trial(#p.records, mask, requests, kind)
  rec.trial = #p.records
  p.records[#p.records + 1] = rec
  if p.ctx.on_trial then p.ctx.on_trial(rec) end
  return record.view(rec)
end

function Search:evaluate(mask, opts)
  local p = private[self]
  mask = parse_mask(self, mask)
  local requests = self.request_count
  if opts and opts.requests ~= nil then
    requests = math.tointeger(opts.requests)
    if not requests or requests < 1 or requests > self.request_count then
      error(string.format("search:evaluate: requests must be an integer in 1..%d", self.request_count), 2)
    end
  end
  return run_trial(p, mask, requests)
end

-- The capacity of a mask: the highest arrival rate at which the config's SLO holds
-- (docs/load.md "Capacity"), found on one server of that mask. It is a trial of this
-- run: its row is printed, and its result (a copy, like evaluate's) has max_rate.
function Search:capacity(mask)
  local p = private[self]
  mask = parse_mask(self, mask)
  if not p.ctx.cfg.slo then error("search:capacity: the config has no slo", 2) end
  return run_trial(p, mask, self.request_count, "capacity")
end

-- This run's trials in order; with {all = true}, every trial stored in the history
-- database, of every run (rows with run_id, trial, knob_mask, status, valid, ...).
function Search:history(opts)
  local p = private[self]
  if opts and opts.all then
    return p.ctx.history and p.ctx.history:all_trials() or {}
  end
  local out = {}
  for i, rec in ipairs(p.records) do out[i] = record.view(rec) end
  return out
end

-- True when result a is better than b by the config's objective; an invalid result
-- is never better than a valid one. Screening and full results compare alike (halving
-- ranks its screening results with it).
function Search:better(a, b)
  if not b or not b.valid then return a.valid end
  if not a.valid then return false end
  local function rec(r) return { trial = r.trial, metrics = r } end
  return objective.better(rec(a), rec(b), private[self].ctx.cfg.objective)
end

function Search:mask_string(mask) return config.mask_string(mask, self.n) end

return Search
