-- Replays a workload with knob.replay and prints one JSON line of figures, for the
-- client-at-scale benchmarks of bench/run.py.
-- lua_host bench/scale_probe.lua URL open|constant RATE|closed CONCURRENCY REQUESTS STREAM(0|1) MAX_TOKENS
--         PROMPT_WORDS
--         [REQUESTS_CSV]
-- open: Poisson arrivals at RATE; constant: one every 1/RATE s.
-- With REQUESTS_CSV, request i carries `"user": "i"` (knobsim's --first-token-log names
-- it) and its row goes to that file, so client and server times can be paired.
local cjson = require("cjson")
local knob = require("knob")
local schedule = require("knobengine.schedule")

local url, mode, level, requests = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local stream, max_tokens, words = arg[5] == "1", tonumber(arg[6]), tonumber(arg[7])
local w = {}
for i = 1, words do w[i] = "w" .. (i % 1000) end
local csv = arg[8]
local prompt = table.concat(w, " ")
local function body(user)
  return cjson.encode({ model = "m", prompt = prompt, max_tokens = max_tokens, ignore_eos = true, user = user,
    stream = stream, stream_options = stream and { include_usage = true } or nil })
end
local bodies = { body(nil) }
if csv then for i = 1, requests do bodies[i] = body(tostring(i - 1)) end end
local spec = { url = url, bodies = bodies, request_count = requests, warmup = 0, request_timeout_s = 120,
  stream = stream, concurrency = mode == "closed" and level or 64, requests_csv = csv }
local ARRIVAL = { open = "poisson", constant = "constant" }
if ARRIVAL[mode] then spec.schedule = schedule.draw({ type = ARRIVAL[mode], rate = level }, requests, 0) end
local cpu0, t0 = knob.cpu_seconds(), knob.now()
local m, err = knob.replay(spec)
if not m then error(err, 0) end
print(cjson.encode({
  requests_per_s = m.requests_per_s, completed = m.completed, failed = m.failed,
  cpu_s = knob.cpu_seconds() - cpu0, wall_s = knob.now() - t0, body_bytes = #bodies[#bodies],
  late_p50 = m.send_lateness_ms.p50, late_p99 = m.send_lateness_ms.p99, late_max = m.send_lateness_ms.max,
  ttft_p50 = m.ttft_ms.p50, tpot_p50 = m.tpot_ms.p50,
  lag_p50 = m.read_lag_ms.p50, lag_p99 = m.read_lag_ms.p99, lag_max = m.read_lag_ms.max,
}))
