-- `knobengine trial --spec SPEC.json --out DIR`: one trial as a unit of work, run in a
-- process of its own (by every executor backend: a local slot, a Slurm job;
-- docs/executors.md).
--
-- The spec names the config (absolute path) and the hash of everything that decides a
-- trial's outcome, so a trial never runs against a config or dataset that changed
-- since the engine wrote the spec; then the mask, the requests, and the slot's port and
-- server environment. The trial's files are built in DIR.partial.PID and renamed to
-- DIR at the end, with result.json (the record as history.sqlite stores it): DIR either
-- holds a complete trial or does not exist. A trial that fails is still a result (exit
-- 0); a bad spec is exit 2; an interrupted trial leaves nothing (130/143).
local cjson = require("cjson")
local knob = require("knob")
local errors = require("knobengine.errors")
local identity = require("knobengine.identity")
local record = require("knobengine.record")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

M.RESULT = "result.json"
M.SPEC = "spec.json" -- the spec a trial directory was made from: a re-run may replace it

-- The spec file, checked: every problem names the spec and the key.
local function read_spec(path)
  local text, err = util.read_file(path)
  if not text then errors.usage("trial --spec %s: cannot read: %s", path, tostring(err)) end
  local ok, spec = pcall(cjson.decode, text)
  if not ok or type(spec) ~= "table" then errors.usage("trial --spec %s: not a JSON object", path) end
  local function need(key, kind)
    if type(spec[key]) ~= kind then errors.usage("trial --spec %s: %s: expected %s", path, key, kind) end
  end
  need("config", "string"); need("config_hash", "string"); need("mask", "string"); need("requests", "number")
  if spec.port ~= nil then need("port", "number") end
  if spec.cell ~= nil then
    need("cell", "table")
    for _, key in ipairs({ "slo", "workload" }) do
      local v = spec.cell[key]
      if v ~= nil and not math.tointeger(v) then errors.usage("trial --spec %s: cell.%s: expected an index", path, key) end
    end
  end
  if spec.env ~= nil then
    need("env", "table")
    for k, v in pairs(spec.env) do
      if type(k) ~= "string" or type(v) ~= "string" then errors.usage("trial --spec %s: env.%s: expected string", path, tostring(k)) end
    end
  end
  return spec
end

-- The spec of a trial (the engine's side): what read_spec reads. A job of the capacity
-- grid names its cell (job.cell: indices into the config's slos and workloads, 0-based,
-- absent for the config's own) and that cell's hash (job.hash); its trial is the
-- cell's capacity search.
function M.spec(ctx, job, slot)
  local mask = ctx.cfg.space:string(job.mask)
  return {
    config = knob.realpath(ctx.cfg.path) or ctx.cfg.path,
    config_hash = job.hash or identity.hash(ctx.cfg, ctx.dataset_hash, "search"),
    mask = mask,
    requests = job.requests,
    port = slot.port,
    env = next(slot.env) and slot.env or nil,
    cell = job.cell,
    label = job.label or string.format("trial %d (mask %s)", job.index, mask),
  }
end

-- The context of the spec's cell of the capacity grid (the config's own without one).
local function cell_context(ctx, spec)
  if not spec.cell then return ctx end
  local cfg = ctx.cfg
  local function entry(list, i, what)
    if i == nil then return nil end
    local e = (list or {})[math.tointeger(i) + 1]
    if not e then errors.usage("trial: the config has no %s[%d]", what, i) end
    return e
  end
  local cell = require("knobengine.config").cell(cfg, entry(cfg.slos, spec.cell.slo, "slos"),
    entry(cfg.workloads, spec.cell.workload, "workloads"))
  return require("knobengine.run_context").of(cell, { results = ctx.results })
end

-- The trial proper into dir: a workload's trial, or a cell's capacity search.
local function run_into(ctx, spec, mask, requests, dir)
  if not spec.cell then return trial.run(ctx, mask, { dir = dir, requests = requests, label = spec.label }) end
  local result = require("knobengine.load").capacity(ctx, mask, { quiet = true, dir = dir })
  return record.capacity(result, { mask = mask, mask_string = result.knob_mask, requests = requests, full = true,
    config = result.config, dir = dir, wall_s = 0, max_error_rate = 1 })
end

local function apply_slot(cfg, spec)
  if spec.port then
    local port = math.tointeger(spec.port)
    if not port or port < 1 or port > 65535 then errors.usage("trial: port %s is not a port", tostring(spec.port)) end
    cfg.server.port = port
  end
  for k, v in pairs(spec.env or {}) do cfg.env[k] = v end
end

-- The absolute form of path, resolving its parent (which must exist) when path does not.
local function absolute(path)
  local real = knob.realpath(path)
  if real then return real end
  local parent = knob.realpath(util.dirname(path))
  return parent and (parent == "/" and "" or parent) .. "/" .. path:match("([^/]*)/*$")
end

-- The files a trial directory holds: a retry may replace a directory of these only.
local observe = require("knobengine.observe")

local function trial_file(name)
  return name == M.RESULT or name == M.SPEC or name == "logs.txt" or name == "capacity.json"
    or name:match("^requests[%-%d]*%.csv$") ~= nil or observe.is_companion(name)
end

-- The earlier trial directory at out, with this spec, holding nothing but a trial's own
-- files (and not reached through a symbolic link): a retry may replace it.
local function earlier_trial(out, abs, spec)
  local parent = knob.realpath(util.dirname(out))
  if not knob.is_dir(out) or not parent or abs ~= (parent == "/" and "" or parent) .. "/" .. out:match("([^/]*)/*$") then
    return false
  end
  for _, name in ipairs(knob.list_dir(out) or {}) do
    if not trial_file(name) then return false end
  end
  local ok, was = pcall(cjson.decode, util.read_file(out .. "/" .. M.SPEC) or "")
  return knob.exists(out .. "/" .. M.RESULT) and ok and util.json(was) == util.json(spec)
end

-- --out must be a new directory, or an earlier trial directory of this same spec (a
-- retry replaces it); never ".", "..", "/", or the working directory or a parent of it.
local function check_out(out, spec)
  local function refuse(why) errors.usage("trial --out %s: %s", out, why) end
  local last = out:match("([^/]*)/*$")
  if last == "" or last == "." or last == ".." then refuse("must name a new directory, not '.', '..' or '/'") end
  local abs = absolute(out)
  if not abs then refuse("its parent directory does not exist") end
  local cwd = knob.realpath(".") or ""
  if cwd == abs or cwd:sub(1, #abs + 1) == abs .. "/" then refuse("is the working directory or a parent of it") end
  if not knob.exists(out) then return end
  if not earlier_trial(out, abs, spec) then
    refuse("exists and is not an earlier trial of this spec; remove it or name another directory")
  end
end

-- Runs the trial of the spec into out. context(config_path) builds the run context.
function M.run(opts, context)
  local spec = read_spec(opts.spec)
  check_out(opts.out, spec)
  local ctx = cell_context(context(spec.config), spec)
  local cfg = ctx.cfg
  if identity.hash(cfg, ctx.dataset_hash, "search") ~= spec.config_hash then
    errors.usage("trial --spec %s: %s or its dataset changed since the spec was written", opts.spec, spec.config)
  end
  local mask, why = cfg.space:parse(spec.mask)
  if not mask then errors.usage("trial --spec %s: mask '%s': %s", opts.spec, spec.mask, why) end
  local requests = math.tointeger(spec.requests)
  if not requests or requests < 1 or requests > cfg.workload.request_count then
    errors.usage("trial --spec %s: requests must be an integer in 1..%d", opts.spec, cfg.workload.request_count)
  end
  apply_slot(cfg, spec)
  local out = opts.out
  local tmp = string.format("%s.partial.%d", out, knob.getpid())
  knob.remove_tree(tmp)
  local ok, rec = xpcall(run_into, errors.handler, ctx, spec, mask, requests, tmp)
  if not ok then knob.remove_tree(tmp); error(rec, 0) end
  rec.dir = out
  util.write_json(tmp .. "/" .. M.SPEC, spec)
  util.write_json(tmp .. "/" .. M.RESULT, record.stored(rec))
  knob.remove_tree(out) -- an earlier attempt of this spec (check_out)
  local okr, err = os.rename(tmp, out)
  if not okr then errors.run("cannot move the trial into %s: %s", out, err) end
  io.stdout:write(util.clean_text(out), "\n") -- one line, whatever the name holds
  return 0
end

-- The record a finished trial process left in dir, or nil and why there is none.
function M.collect(dir)
  local text = util.read_file(dir .. "/" .. M.RESULT)
  if not text then return nil, "it left no " .. M.RESULT end
  local ok, s = pcall(cjson.decode, text)
  if not ok or type(s) ~= "table" then return nil, M.RESULT .. " is not a JSON object" end
  return record.decode(s) -- measured now, by another process: not a resumed trial
end

return M
