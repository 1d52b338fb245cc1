-- The handle a strategy drives: search.knobs, search.n, search.size, search.baseline,
-- search:masks(), search:evaluate(mask, {requests = k}), search:history(), and the
-- knob space (search:digit, search:with, search:digits, search:mask; space.lua).
-- Each evaluate records a trial (index, row on stdout, summary); the engine, not the
-- strategy, picks the best afterwards. A strategy only ever gets copies (record.view):
-- the records themselves live where the handle does not reach.
local knobs = require("knobengine.knobs")
local objective = require("knobengine.objective")
local record = require("knobengine.record")
local Space = require("knobengine.space")

local Search = {}
Search.__index = Search

-- Per handle: {ctx, records}. Kept outside the handle, so a strategy cannot edit them.
local private = setmetatable({}, { __mode = "k" })

-- ctx: cfg (the validated config), baseline (its client metrics), options (the
-- strategy's options, checked; default cfg.strategy_options), run_trial(index,
-- mask, requests) -> record, on_trial(record) (optional: called after each trial),
-- history (History, optional). records: the list the engine reads the trials from.
-- The labels of a knob's value indices, index 0 first: off/on, or its values.
local function value_labels(k)
  if not k.values then return { "off", "on" } end
  local labels = {}
  if k.unset then labels[1] = "(unset)" end
  for _, v in ipairs(k.values) do labels[#labels + 1] = v end
  return labels
end

function Search.new(ctx, records)
  local self = setmetatable({}, Search)
  local cfg = ctx.cfg
  local space = cfg.space
  if not space then -- a config made by hand (tests, benchmarks)
    local radices, names = {}, {}
    for i, k in ipairs(cfg.knobs) do radices[i], names[i] = knobs.radix(k), k.name end
    space = assert(Space.new(radices, names))
  end
  private[self] = { ctx = ctx, records = records or {}, space = space }
  self.n = #cfg.knobs
  self.size = space.size
  self.knobs = {}
  for i, k in ipairs(cfg.knobs) do
    self.knobs[i] = { name = k.name, index = k.index, size = space.radix[i], values = value_labels(k) }
  end
  self.baseline = ctx.baseline
  self.request_count = cfg.workload.request_count
  self.options = ctx.options or cfg.strategy_options
  if cfg.objective then self.objective = { metric = cfg.objective.metric, maximize = cfg.objective.maximize } end
  return self
end

-- Every mask, ascending (0 is the baseline's: every knob at value index 0).
function Search:masks() return private[self].space:masks() end

-- A value as a message shows it: long strings cut, with their length.
local function shown(v)
  local s = tostring(v)
  if #s > 40 then return string.format("%s... (%d characters)", s:sub(1, 32), #s) end
  return s
end

local function parse_mask(self, mask, what)
  local space = private[self].space
  if type(mask) == "string" then
    local m, why = space:parse(mask)
    if #mask ~= self.n then why = string.format("not a mask string of %d characters", self.n) end
    if not m then error(string.format("search:%s: mask '%s': %s", what, shown(mask), why), 3) end
    return m
  end
  local m = math.tointeger(mask)
  if not m or not space:contains(m) then
    error(string.format("search:%s: mask %s is out of range 0..%d", what, shown(mask), space.size - 1), 3)
  end
  return m
end

-- The value index of knob i (1-based) in mask.
function Search:digit(mask, i)
  mask = parse_mask(self, mask, "digit")
  if math.type(i) ~= "integer" or i < 1 or i > self.n then
    error(string.format("search:digit: there is no knob %s (knobs are 1..%d)", shown(i), self.n), 2)
  end
  return private[self].space:digit(mask, i)
end

-- Every knob's value index in mask, knob 1 first.
function Search:digits(mask) return private[self].space:digits(parse_mask(self, mask, "digits")) end

-- mask with knob i set to value index d.
function Search:with(mask, i, d)
  local m, why = private[self].space:with(parse_mask(self, mask, "with"), i, d)
  if not m then error("search:with: " .. why, 2) end
  return m
end

-- The mask of a list of value indices, one per knob.
function Search:mask(digits)
  local m, why = private[self].space:encode(digits)
  if not m then error("search:mask: " .. why, 2) end
  return m
end

-- Runs the next trial of this run (kind nil: a workload; "capacity": a capacity
-- search), records it, tells the run, and returns the strategy's copy of it.
-- Numbers a finished trial, keeps it, tells the run; the strategy's copy of it.
local function keep(p, rec)
  rec.trial = #p.records
  p.records[#p.records + 1] = rec
  if p.ctx.on_trial then p.ctx.on_trial(rec) end
  return record.view(rec)
end

local function run_trial(p, mask, requests, kind)
  return keep(p, p.ctx.run_trial(#p.records, mask, requests, kind))
end

-- opts.requests checked (default request_count).
local function requests_of(self, opts, what)
  if not opts or opts.requests == nil then return self.request_count end
  local requests = math.tointeger(opts.requests)
  if not requests or requests < 1 or requests > self.request_count then
    error(string.format("search:%s: requests must be an integer in 1..%d", what, self.request_count), 3)
  end
  return requests
end

function Search:evaluate(mask, opts)
  mask = parse_mask(self, mask, "evaluate")
  return run_trial(private[self], mask, requests_of(self, opts, "evaluate"))
end

-- Evaluates a batch of masks, at once when the config has executor slots (else one
-- after another); the results come back in the order of masks, and the trials are
-- numbered and printed in that order.
function Search:evaluate_many(masks, opts)
  local p = private[self]
  if type(masks) ~= "table" then error("search:evaluate_many: expected a list of masks", 2) end
  local parsed = {}
  for i, mask in ipairs(masks) do parsed[i] = parse_mask(self, mask, "evaluate_many") end
  local requests = requests_of(self, opts, "evaluate_many")
  local views = {}
  if not p.ctx.run_batch then
    for i, mask in ipairs(parsed) do views[i] = run_trial(p, mask, requests) end
    return views
  end
  p.ctx.run_batch(#p.records, parsed, requests, function(rec) views[#views + 1] = keep(p, rec) end)
  return views
end

-- The capacity of a mask: the highest arrival rate at which the config's SLO holds
-- (docs/load.md "Capacity"), found on one server of that mask. It is a trial of this
-- run: its row is printed, and its result (a copy, like evaluate's) has max_rate.
function Search:capacity(mask)
  local p = private[self]
  mask = parse_mask(self, mask, "capacity")
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
  return objective.better(a, b, private[self].ctx.cfg.objective)
end

function Search:mask_string(mask) return private[self].space:string(parse_mask(self, mask, "mask_string")) end

return Search
