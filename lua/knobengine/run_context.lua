-- The run context: a validated config with its dataset read, the request bodies built
-- and the arrival schedule drawn, the results directory, and (a search) the strategy
-- and the executor's slots. What every command starts from; read-only once made (a
-- key added later is an error), so no module hands state to another through it. A
-- capacity grid makes one per cell, from the cell's config (config.cell).
local dataset = require("knobengine.dataset")
local schedule = require("knobengine.schedule")
local strategy = require("knobengine.strategy")

local M = {}

local function read_only(ctx)
  return setmetatable(ctx, { __newindex = function(_, k) error("the run context is read-only (" .. tostring(k) .. ")", 2) end })
end

-- The context of cfg; opts: results, force, command ("run": a search, which loads
-- opts.strategy and finds the slots), grid (capacity --grid: finds the slots).
function M.of(cfg, opts)
  local w = cfg.workload
  local data = dataset.load(w, math.max(w.request_count, w.warmup_requests))
  local bodies, turns = dataset.bodies(data.items, w)
  local ctx = {
    cfg = cfg,
    dataset_hash = data.hash,
    dataset_count = data.count,
    items = data.items,
    bodies = bodies,
    turns = turns, -- multi-turn: which body continues a conversation, and its turn
    schedule = schedule.draw(w.arrival, w.request_count, w.seed, data.items),
    results = opts.results,
    force = opts.force,
  }
  if opts.command == "run" then
    ctx.strategy_path = strategy.path(opts.strategy)
    ctx.strategy = strategy.load(ctx.strategy_path)
    ctx.options = strategy.options(ctx.strategy, cfg.strategy_options, cfg)
  end
  if opts.command == "run" or opts.grid then
    -- the executor's slots, found once (a bad setting is exit 2 before anything runs)
    ctx.slots = require("knobengine.executor").slots(cfg)
  end
  return read_only(ctx)
end

return M
