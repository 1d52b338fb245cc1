-- Writes data/prompts.jsonl: the deterministic default workload (run: lua5.4
-- scripts/make_dataset.lua > data/prompts.jsonl). 48 prompts of varied lengths; a
-- third share a long common prefix (a system preamble), which prefix caching can reuse.
local words = {
  "the", "server", "batch", "request", "token", "latency", "throughput", "cache", "model",
  "kernel", "memory", "prefill", "decode", "schedule", "queue", "graph", "stream", "layer",
  "attention", "weights", "budget", "engine", "prompt", "output", "length", "window", "block",
  "explain", "compare", "describe", "summarize", "why", "how", "what", "when", "which",
  "a", "an", "of", "to", "in", "for", "with", "and", "or", "on", "is", "are", "be",
}
local state = 12345
local function rand(n) -- a fixed LCG, so the file never changes
  state = (state * 1103515245 + 12345) % 2147483648
  return state % n + 1
end
local function text(n)
  local out = {}
  for i = 1, n do out[i] = words[rand(#words)] end
  return table.concat(out, " ")
end
local preamble = "You are a careful assistant for performance engineers. " .. text(320)
local lengths = { 12, 24, 40, 64, 96, 150, 220, 300, 420, 560 }
for i = 1, 48 do
  local prompt
  if i % 3 == 0 then
    prompt = preamble .. " Question " .. i .. ": " .. text(8 + rand(24))
  else
    prompt = "Question " .. i .. ": " .. text(lengths[rand(#lengths)])
  end
  io.write('{"prompt": "', prompt, '"}\n')
end
