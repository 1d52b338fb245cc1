-- Replays a workload with knob.replay and prints one JSON line of figures.
-- lua_host bench/replay_probe.lua URL CONCURRENCY REQUESTS STREAM(0|1) MAX_TOKENS
local cjson = require("cjson")
local knob = require("knob")

local url, concurrency, requests, stream, max_tokens = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] == "1", tonumber(arg[5])
local body = cjson.encode({ model = "m", prompt = "the quick brown fox jumps over the lazy dog",
  max_tokens = max_tokens, ignore_eos = true, stream = stream,
  stream_options = stream and { include_usage = true } or nil })
local cpu0, t0 = knob.cpu_seconds(), knob.now()
local m, err = knob.replay({ url = url, bodies = { body }, concurrency = concurrency, request_count = requests,
  warmup = math.min(concurrency, 100), request_timeout_s = 60, stream = stream })
if not m then error(err, 0) end
print(cjson.encode({
  requests_per_s = m.requests_per_s, failed = m.failed, cpu_s = knob.cpu_seconds() - cpu0, wall_s = knob.now() - t0,
  ttft_p50 = m.ttft_ms.p50, tpot_p50 = m.tpot_ms.p50, completed = m.completed,
}))
