-- The handle a strategy drives: search.knobs, search.n, search.baseline,
-- search:masks(), search:evaluate(mask, {requests = k}), search:history().
-- Each evaluate records a trial (index, row on stdout, summary); the engine, not the
-- strategy, picks the best afterwards.
local config = require("knobengine.config")
local objective = require("knobengine.objective")

local Search = {}
Search.__index = Search

-- ctx: cfg, bodies, run_dir, baseline (client metrics), on_trial (callback)
function Search.new(ctx)
  local self = setmetatable({}, Search)
  self._ctx = ctx
  self._trials = {}
  self.n = #ctx.cfg.knobs
  self.knobs = {}
  for i, k in ipairs(ctx.cfg.knobs) do self.knobs[i] = { name = k.name, index = k.index } end
  self.baseline = ctx.baseline
  self.request_count = ctx.cfg.workload.request_count
  self.options = ctx.cfg.strategy_options
  return self
end

function Search:masks()
  local i, total = -1, 1 << self.n
  return function()
    i = i + 1
    if i < total then return i end
  end
end

local function parse_mask(self, mask)
  if type(mask) == "string" then
    if #mask ~= self.n or mask:find("[^01]") then
      error(string.format("search:evaluate: mask '%s' is not a %d-bit string", mask, self.n), 3)
    end
    return tonumber(mask, 2)
  end
  local m = math.tointeger(mask)
  if not m or m < 0 or m >= (1 << self.n) then
    error(string.format("search:evaluate: mask %s is out of range 0..%d", tostring(mask), (1 << self.n) - 1), 3)
  end
  return m
end

-- A strategy-facing copy of a record (metrics flattened, no internals).
local function view(t)
  local v = {
    trial = t.trial, mask = t.mask, mask_string = t.mask_string, ok = t.ok, valid = t.valid,
    full = t.full, requests = t.requests, error = t.error, error_rate = t.error_rate,
  }
  for k, x in pairs(t.metrics) do if v[k] == nil then v[k] = x end end
  return v
end

function Search:evaluate(mask, opts)
  mask = parse_mask(self, mask)
  local requests = self.request_count
  if opts and opts.requests ~= nil then
    requests = math.tointeger(opts.requests)
    if not requests or requests < 1 or requests > self.request_count then
      error(string.format("search:evaluate: requests must be an integer in 1..%d", self.request_count), 2)
    end
  end
  local record = self._ctx.run_trial(#self._trials, mask, requests)
  record.trial = #self._trials
  self._trials[#self._trials + 1] = record
  if self._ctx.on_trial then self._ctx.on_trial(record) end
  return view(record)
end

-- This run's trials in order; with {all = true}, every trial stored in the history
-- database, of every run (rows with run_id, trial, knob_mask, status, valid, ...).
function Search:history(opts)
  if opts and opts.all then
    return self._ctx.history and self._ctx.history:all_trials() or {}
  end
  local out = {}
  for i, t in ipairs(self._trials) do out[i] = view(t) end
  return out
end

-- True when result a is better than b by the config's objective (an invalid or
-- screening result is never better than a valid full one).
function Search:better(a, b)
  if not b or not b.valid then return a.valid end
  if not a.valid then return false end
  local function rec(r) return { trial = r.trial, metrics = r } end
  return objective.better(rec(a), rec(b), self._ctx.cfg.objective)
end

function Search:mask_string(mask) return config.mask_string(mask, self.n) end

-- Engine side: the recorded trials.
function Search:_records() return self._trials end

return Search
