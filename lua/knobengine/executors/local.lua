-- The local executor backend: one `knobengine trial` process per slot on this machine
-- (knob.spawn), each slot a port and an environment: given as executor.slots, or
-- derived from the visible GPUs (executor.gpus_per_trial). It owns its rows
-- (executor.slots, executor.gpus_per_trial), their checks (ports unique, a GPU in one
-- slot only, CUDA_VISIBLE_DEVICES lists CUDA reads as they look) and its trial
-- processes, which die with the engine: nothing to re-attach to. The contract it
-- implements is executor.lua's (docs/executors.md "Writing a backend").
local knob = require("knob")
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = { name = "local", ports_here = true, resumable = false, poll_wait = 0.02 }

M.rows = {
  { path = "executor.slots", type = "list", types = { ["local"] = "optional" }, doc = "`{port, env}` per slot (at most 256)" },
  { path = "executor.slots[].port", type = "integer", required = true, min = 1, max = 65535, doc = "the slot's server port, unique" },
  { path = "executor.slots[].env", type = "map", default = {}, doc = "the slot's extra server environment" },
  { path = "executor.gpus_per_trial", type = "integer", min = 1, max = 64, types = { ["local"] = "optional" },
    doc = "instead of `slots`: one slot per that many visible GPUs" },
}

M.MAX_SLOTS = 256

-- The devices of a CUDA_VISIBLE_DEVICES value: indices or UUIDs, comma-separated, each
-- once. nil and why for a value CUDA would read otherwise than it looks: an empty entry
-- or "-1" ends the list there, a repeated device is one GPU counted twice.
function M.gpu_list(value)
  local out, seen = {}, {}
  if value == "" then return out end -- no GPU visible
  for d in (value .. ","):gmatch("([^,]*),") do
    d = d:match("^%s*(.-)%s*$")
    if d == "" then return nil, "an empty entry (CUDA ignores every device after it)" end
    if not (d:match("^%d+$") or d:match("^GPU%-[%x%-]+$") or d:match("^MIG%-[%w%-/]+$")) then
      return nil, string.format("'%s' is not a device index or UUID%s", d, d == "-1" and " (-1 hides every GPU)" or "")
    end
    if seen[d] then return nil, string.format("device %s is listed twice", d) end
    seen[d] = true
    out[#out + 1] = d
  end
  return out
end

-- Two slots must not share a GPU: each server would take the memory the other counts on.
local function check_slot_gpus(c, slots)
  local owner = {}
  for i, slot in ipairs(slots) do
    local cvd = slot.env.CUDA_VISIBLE_DEVICES
    if cvd then
      local path = string.format("executor.slots[%d].env.CUDA_VISIBLE_DEVICES", i - 1)
      local gpus, why = M.gpu_list(cvd)
      if not gpus then c:bad(path, "%s", why) end
      for _, d in ipairs(gpus) do
        if owner[d] then c:bad(path, "GPU %s is also slots[%d]'s; two servers would share it", d, owner[d]) end
        owner[d] = i - 1
      end
    end
  end
end

-- One slot: its port and the environment its servers get.
local function validate_slot(c, s, path)
  c:object(s, path, c:keys("executor.slots[]"))
  return { port = c:value(s, "executor.slots[].port", path .. ".port"), env = c:env(s.env, path .. ".env") }
end

-- Explicit slots, or one per gpus_per_trial visible GPUs.
function M.validate(c, e, out)
  if e.slots == nil and e.gpus_per_trial == nil then c:bad("executor", "needs one of 'slots' or 'gpus_per_trial'") end
  if e.slots ~= nil and e.gpus_per_trial ~= nil then c:bad("executor", "has both 'slots' and 'gpus_per_trial' (use one)") end
  if out.gpus_per_trial then return out end
  local list = c:array(e.slots, "executor.slots", { nonempty = true })
  if #list > M.MAX_SLOTS then c:bad("executor.slots", "at most %d slots are supported (got %d)", M.MAX_SLOTS, #list) end
  out.slots = {}
  local seen = {}
  for i, s in ipairs(list) do
    local path = string.format("executor.slots[%d]", i - 1)
    local slot = validate_slot(c, s, path)
    if seen[slot.port] then c:bad(path .. ".port", "duplicate port %d (also slots[%d])", slot.port, seen[slot.port]) end
    seen[slot.port] = i - 1
    out.slots[i] = slot
  end
  check_slot_gpus(c, out.slots)
  return out
end

-- The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi -L.
local function visible_gpus()
  local cvd = os.getenv("CUDA_VISIBLE_DEVICES")
  local out = {}
  if cvd then
    local gpus, why = M.gpu_list(cvd)
    if not gpus then errors.usage("executor.gpus_per_trial: CUDA_VISIBLE_DEVICES='%s': %s", cvd, why) end
    return gpus, "CUDA_VISIBLE_DEVICES"
  end
  if not util.which("nvidia-smi") then return out, "nvidia-smi not found" end
  local text, how = util.capture({ "nvidia-smi", "-L" }, 30)
  for line in (text or ""):gmatch("[^\n]+") do
    local i = line:match("^GPU (%d+):")
    if i then out[#out + 1] = i end
  end
  return out, how == "exited with status 0" and "nvidia-smi -L" or "nvidia-smi -L failed"
end

-- The configured slots, or one per gpus_per_trial visible GPUs on server.port + k.
function M.slots(cfg)
  local e = cfg.executor
  if e.slots then return e.slots end
  local gpus, from = visible_gpus()
  if #gpus < e.gpus_per_trial then
    errors.usage("executor.gpus_per_trial: %d GPU(s) per trial, but %d visible (%s)", e.gpus_per_trial, #gpus, from)
  end
  return require("knobengine.executor").port_slots(cfg, #gpus // e.gpus_per_trial, function(s)
    return { CUDA_VISIBLE_DEVICES = table.concat(gpus, ",", (s - 1) * e.gpus_per_trial + 1, s * e.gpus_per_trial) }
  end)
end

-- A process per trial, writing its directory straight into place.
function M.start(ex, job, spec_path, log)
  os.remove(log) -- an earlier attempt's; before the process opens it
  local proc, err = knob.spawn({ ex.exe, "trial", "--spec", spec_path, "--out", job.out }, nil, log)
  if not proc then errors.run("cannot start a trial process: %s", err) end
  return { proc = proc }
end

function M.where(_, slot) return string.format(" on port %d", slot.port) end

function M.poll(_, running)
  for _, r in pairs(running) do
    local exited, how = r.handle.proc:exited()
    if exited then r.how = how end
  end
end

function M.stop(ex, running)
  for _, r in pairs(running) do r.handle.proc:stop(ex.ctx.cfg.server.stop_timeout_s + 10) end
end

-- A trial process dies with the engine that started it (it and its server are killed
-- when their parent dies): a resumed search has nothing to re-attach to.
function M.reattach() return nil end

return M
