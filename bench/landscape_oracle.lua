-- Serves one seeded synthetic landscape (knobengine.landscape, as bench/search_efficiency.lua
-- builds it for knobengine's strategies) over stdin and stdout, so an optimizer outside
-- this tree (bench/optuna_landscapes.py drives Optuna with it) searches the very same
-- landscape under the same noise model.
--   lua_host bench/landscape_oracle.lua N SEED [R1,R2,...]   (value counts per knob; default on/off)
-- First line out: {"n":N,"radices":[...],"optimum_p50":X}. Then for every line in,
-- "measure D1 ... DN" (a value index per knob) answers the measured p50 at full fidelity
-- or "infeasible" (the server failed to start), and "true D1 ... DN" the noise-free p50.
local cjson = require("cjson")
local Landscape = require("knobengine.landscape")

local n, seed = assert(tonumber(arg[1]), "N"), assert(tonumber(arg[2]), "SEED")
local radices
if arg[3] then
  radices = {}
  for r in arg[3]:gmatch("%d+") do radices[#radices + 1] = tonumber(r) end
end
local land = Landscape.new(n, seed, { radices = radices })
local _, optimum = land:optimum()
io.stdout:setvbuf("line")
print(cjson.encode({ n = n, radices = land.space.radix, optimum_p50 = optimum }))

local function mask_of(rest)
  local digits = {}
  for d in rest:gmatch("%d+") do digits[#digits + 1] = tonumber(d) end
  return assert(land.space:encode(digits))
end

for line in io.lines() do
  local verb, rest = line:match("^(%a+)%s*(.*)$")
  if verb == "measure" then
    local rec = land:measure(mask_of(rest), 1)
    print(rec.ok and string.format("%.17g", rec.metrics.p50_latency_ms) or "infeasible")
  elseif verb == "true" then
    local t = land:true_p50(mask_of(rest))
    print(t and string.format("%.17g", t) or "infeasible")
  else
    error("landscape_oracle: expected 'measure D1..DN' or 'true D1..DN', got: " .. line, 0)
  end
end
