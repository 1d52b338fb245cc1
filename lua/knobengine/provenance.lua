-- Provenance of a run (docs/report.md "Provenance"): environment.json (the machine,
-- the GPUs nvidia-smi sees, the library versions, the nsys used, the config's hash) and
-- inputs_manifest.json (the dataset's path, sha256, line count, and the prompt and
-- output lengths of the requests sent). Written into baseline/ and every run directory.
local cjson = require("cjson")
local knob = require("knob")
local identity = require("knobengine.identity")
local util = require("knobengine.util")

local M = {}

-- The first line of a file matching pattern (its capture), or nil.
local function file_match(path, pattern)
  local f = io.open(path, "r")
  if not f then return nil end
  for line in f:lines() do
    local v = line:match(pattern)
    if v then f:close(); return v end
  end
  f:close()
  return nil
end

-- Runs argv (found on PATH) to completion; its output, or nil, why.
local function output_of(argv, timeout_s)
  if not util.which(argv[1]) then return nil, argv[1] .. " not found" end
  local log = string.format("%s/knobengine-%d-%s.out", os.getenv("TMPDIR") or "/tmp", knob.getpid(), argv[1]:match("[^/]+$"))
  os.remove(log)
  local status, err = knob.run(argv, log, timeout_s)
  local text = util.read_file(log)
  os.remove(log)
  if not status then return nil, err end
  if status ~= 0 then return nil, string.format("%s exited with status %d", argv[1], status) end
  return text or ""
end

local function number_or_null(s)
  local v = tonumber(s)
  return v or cjson.null
end

-- The GPUs nvidia-smi lists (name, memory, driver), or an empty list and the reason.
function M.nvidia_smi_gpus()
  local text, err = output_of({ "nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
    "--format=csv,noheader,nounits" }, 30)
  local gpus = util.array({})
  if not text then return gpus, err end
  for line in text:gmatch("[^\n]+") do
    local index, name, mem, driver = line:match("^%s*([^,]*),%s*([^,]*),%s*([^,]*),%s*([^,]*)%s*$")
    if index then
      gpus[#gpus + 1] = { index = number_or_null(index), name = name, memory_mib = number_or_null(mem), driver = driver }
    end
  end
  return gpus
end

-- environment.json's content.
function M.environment(ctx)
  local si = knob.system_info()
  local gpus, gpu_note = M.nvidia_smi_gpus()
  return {
    taken_utc = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    host = {
      hostname = si.hostname, os = file_match("/etc/os-release", '^PRETTY_NAME="?([^"]*)"?') or si.os,
      kernel = si.kernel_release, machine = si.machine, cpus = si.cpus,
      cpu = file_match("/proc/cpuinfo", "^model name%s*:%s*(.-)%s*$") or cjson.null,
    },
    gpus = gpus, gpus_note = gpu_note or cjson.null,
    versions = { knobengine = knob.version, lua = si.lua, libcurl = si.libcurl, sqlite = si.sqlite },
    -- the nsys that profiles (its version is in each trace_summary.json: nsys_version)
    nsys = util.which(ctx.cfg.nsys.bin) or cjson.null,
    config = { path = ctx.cfg.path, hash = identity.hash(ctx.cfg, ctx.dataset_hash, "search") },
  }
end

-- Lines of a file (newlines, plus a last line without one), read in 1 MiB blocks.
local function count_lines(path)
  local f = io.open(path, "rb")
  if not f then return cjson.null end
  local n, last = 0, "\n"
  while true do
    local block = f:read(1048576)
    if not block then break end
    local _, k = block:gsub("\n", "")
    n, last = n + k, block:sub(-1)
  end
  f:close()
  return last == "\n" and n or n + 1
end

local function words(s)
  local _, n = s:gsub("%S+", "")
  return n
end

-- The words of an item's prompt (dataset formats say words stand for tokens).
local function prompt_words(item)
  if item.input_length then return item.input_length end
  if item.prompt then return words(item.prompt) end
  local n = 0
  for _, m in ipairs(item.messages or {}) do
    if type(m.content) == "string" then n = n + words(m.content) end
    for _, part in ipairs(type(m.content) == "table" and m.content or {}) do -- a list of parts: its text parts
      if part.type == "text" and type(part.text) == "string" then n = n + words(part.text) end
    end
  end
  return n
end

local function stats_of(values)
  if #values == 0 then return cjson.null end
  table.sort(values)
  local sum = 0
  for _, v in ipairs(values) do sum = sum + v end
  return { min = values[1], max = values[#values], mean = sum / #values, p50 = values[(#values + 1) // 2] }
end

-- inputs_manifest.json's content: the measured requests' items (ctx.items).
function M.manifest(ctx)
  local w = ctx.cfg.workload
  local prompts, outputs = {}, {}
  for i = 1, math.min(#ctx.items, w.request_count) do
    prompts[i] = prompt_words(ctx.items[i])
    outputs[i] = ctx.items[i].max_tokens or w.max_new_tokens
  end
  local dataset
  if w.synthetic then
    dataset = { synthetic = w.synthetic, path = cjson.null, sha256 = cjson.null, lines = cjson.null }
  else
    local sha = knob.file_sha256(w.dataset_path)
    dataset = { path = w.dataset_path, format = w.dataset_format, sha256 = sha or cjson.null,
      lines = count_lines(w.dataset_path), records = ctx.dataset_count }
  end
  return {
    dataset = dataset, model = w.model, endpoint = w.endpoint, stream = w.stream,
    requests = { measured = w.request_count, warmup = w.warmup_requests, repeats = w.repeats },
    prompt_words = stats_of(prompts), max_output_tokens = stats_of(outputs),
  }
end

-- Writes both files into dir. A failure to describe the machine never fails a run.
function M.write(dir, ctx)
  util.write_json(dir .. "/environment.json", M.environment(ctx))
  util.write_json(dir .. "/inputs_manifest.json", M.manifest(ctx))
end

return M
