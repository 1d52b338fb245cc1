-- The baseline's capacity, for a search whose objective is max_rate: the best's
-- capacity is then compared with the baseline's, measured the same way (a capacity
-- search of the baseline's mask, docs/load.md), never with the closed-loop baseline.
-- It is measured once: kept in results/baseline/capacity/ with the search identity it
-- was measured under and reused while that identity holds; a capacity trial of the
-- baseline's mask in this run is used instead of measuring again.
local cjson = require("cjson")
local knob = require("knob")
local identity = require("knobengine.identity")
local output = require("knobengine.output")
local record = require("knobengine.record")
local util = require("knobengine.util")

local M = {}

M.DIR = "capacity" -- under results/baseline/

local function as_record(ctx, result, dir)
  return record.capacity(result, { mask = 0, mask_string = result.knob_mask, requests = ctx.cfg.workload.request_count,
    full = true, config = result.config, dir = dir, wall_s = 0, max_error_rate = 1 })
end

local function stored(path, hash)
  local text = util.read_file(path)
  local ok, v = pcall(cjson.decode, text or "")
  if ok and type(v) == "table" and v.identity == hash and type(v.probes) == "table" then return v end
  return nil
end

-- A capacity search of mask 0 into dir, built aside and renamed into place.
local function measure(ctx, dir, hash)
  output.say("measuring the baseline's capacity once for the objective max_rate (kept in %s)", dir)
  local aside = string.format("%s.tmp.%d", dir, knob.getpid())
  knob.remove_tree(aside)
  local result = require("knobengine.load").capacity(ctx, 0, { quiet = true, dir = aside })
  result.identity = hash
  util.write_json(aside .. "/capacity.json", result)
  knob.remove_tree(dir)
  local ok, err = os.rename(aside, dir)
  if not ok then
    knob.remove_tree(aside)
    require("knobengine.errors").run("cannot keep the baseline's capacity in %s: %s", dir, tostring(err))
  end
  return result
end

-- The baseline's capacity record (record.capacity: metrics of its probe at max_rate,
-- and max_rate) and where it came from: "trial" (this run measured mask 0),
-- "kept" (an earlier search's, same identity) or "measured" (now).
function M.get(ctx, records)
  for _, r in ipairs(records) do
    if r.kind == "capacity" and r.mask == 0 and r.full then return r, "trial" end
  end
  local hash = identity.hash(ctx.cfg, ctx.dataset_hash, "search")
  local dir = ctx.results .. "/baseline/" .. M.DIR
  local kept = stored(dir .. "/capacity.json", hash)
  if kept then return as_record(ctx, kept, dir), "kept" end
  return as_record(ctx, measure(ctx, dir, hash), dir), "measured"
end

return M
