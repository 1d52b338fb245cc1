-- The ncu pass (docs/ncu.md): after the baseline's and the best's nsys profile, one
-- more launch of the same config under Nsight Compute, filtered to the top kernels of
-- that side's nsys trace, for kernel-level hardware figures: ncu.ncu-rep,
-- ncu_kernels.csv (ncu_report.lua) and ncu_overhead.json (what the launch cost). Never
-- in sweep trials; never fails the run: without ncu, kernels or counter access the
-- reason is said once and written down.
local cjson = require("cjson")
local knob = require("knob")
local csv = require("knobengine.csv")
local ncu_report = require("knobengine.ncu_report")
local output = require("knobengine.output")
local progress = require("knobengine.progress")
local trial = require("knobengine.trial")
local util = require("knobengine.util")

local M = {}

local say = output.say

-- Files of the pass in a profiled directory (profiling.FILES lists them too).
M.FILES = { "ncu.ncu-rep", "ncu_kernels.csv", "ncu_overhead.json", "ncu_logs.txt" }

M.PERMISSION = "ncu may not read this GPU's performance counters: run knobengine as root, or let every user "
  .. "read them (the nvidia kernel module option NVreg_RestrictProfilingToAdminUsers=0, e.g. 'options nvidia "
  .. "NVreg_RestrictProfilingToAdminUsers=0' in /etc/modprobe.d/, then reload the module or reboot)"

-- The uid of this process, from /proc (nil when it cannot be told).
local function uid()
  local status = util.read_file("/proc/self/status") or ""
  return tonumber(status:match("\nUid:%s*(%d+)"))
end

-- Why ncu cannot run here, or nil: not installed, or the driver keeps the counters for
-- administrators and this is not one.
function M.unavailable(cfg)
  local bin = cfg.ncu.bin
  if not util.which(bin) then
    return string.format("ncu not found ('%s' is not on PATH); install Nsight Compute (scripts/install-deps.sh "
      .. "--ncu) or set ncu.bin", bin)
  end
  local params = util.read_file("/proc/driver/nvidia/params") or ""
  if params:match("RmProfilingAdminOnly:%s*1") and uid() ~= 0 then
    return M.PERMISSION .. " (/proc/driver/nvidia/params says RmProfilingAdminOnly: 1)"
  end
  return nil
end

-- The names of the top n kernels of the nsys trace in dir (kernels.csv, by total time;
-- whole CUDA graphs and unnamed kernels left out), or nil and why there are none.
function M.top_kernels(dir, trace_summary, n)
  local rows, err = csv.read(dir .. "/kernels.csv")
  if not rows then
    local why = type(trace_summary) == "table" and not util.is_null(trace_summary.reason) and trace_summary.reason
    return nil, string.format("there is no nsys trace to take the top kernels from (%s)", tostring(why or err))
  end
  -- kernels.csv has a row per kernel and device: a kernel's time is its rows' sum
  local total, order, graphs = {}, {}, 0
  for _, r in ipairs(rows) do
    local name = r.name or ""
    if name:match("^%[CUDA graph %d+%]$") then graphs = graphs + 1
    elseif name ~= "" and not name:match("^%[unknown string id %d+%]$") then
      if not total[name] then order[#order + 1] = name end
      total[name] = (total[name] or 0) + (tonumber(r.total_ms) or 0)
    end
  end
  table.sort(order, function(a, b) return total[a] > total[b] or (total[a] == total[b] and a < b) end)
  local names = { table.unpack(order, 1, math.min(n, #order)) }
  if #names > 0 then return names end
  if graphs > 0 then
    return nil, "the nsys trace has only whole CUDA graphs, no kernel names (nsys.cuda_graph_trace \"graph\"): "
      .. "set it to \"node\" for the ncu pass"
  end
  return nil, "the nsys trace has no CUDA kernel (no GPU work was traced)"
end

-- A kernel name as a literal in ncu's regular expressions.
local function regex_literal(s)
  return (s:gsub("[%^%$%.%|%?%*%+%(%)%[%]%{%}\\]", "\\%0"))
end

-- ncu and its options, before the server's argv (docs/ncu.md "The command line").
function M.argv(cfg, names, report)
  local n = cfg.ncu
  local literals = {}
  for i, name in ipairs(names) do literals[i] = regex_literal(name) end
  local argv = { n.bin, "--target-processes", "all",
    "--kernel-name-base", cfg.nsys.kernel_names == "short" and "function" or "demangled",
    "--kernel-name", "regex:^(" .. table.concat(literals, "|") .. ")$",
    "--launch-count", tostring(n.launch_count * #names) }
  for _, s in ipairs(n.sections) do
    argv[#argv + 1] = "--section"
    argv[#argv + 1] = s
  end
  for _, a in ipairs({ "--export", report, "--force-overwrite" }) do argv[#argv + 1] = a end
  for _, a in ipairs(n.extra_args) do argv[#argv + 1] = a end
  return argv
end

-- The workload of the ncu launch: ncu.requests measured requests (no warm-up), closed
-- loop at workload.concurrency, in rounds of `concurrency` requests so the time budget
-- is checked after each (each request's timeout is at most what is left of it).
local function rounds(ctx, deadline, state)
  local cfg = ctx.cfg
  local w, bodies, left, sent = cfg.workload, ctx.bodies, cfg.ncu.requests, 0
  return function(_, prev)
    if prev then
      state.completed = state.completed + (prev.completed or 0)
      state.failed = state.failed + (prev.failed or 0)
    end
    if left <= 0 then return nil end
    local remaining = deadline - knob.now()
    if remaining <= 0 then state.timed_out = true; return nil end
    local n = math.min(w.concurrency, left)
    local round = {}
    for j = 1, n do round[j] = bodies[(sent + j - 1) % #bodies + 1] end
    left, sent = left - n, sent + n
    return { url = trial.base_url(cfg) .. w.endpoint, bodies = round, concurrency = n, request_count = n, warmup = 0,
      request_timeout_s = math.min(w.request_timeout_s, remaining), stream = w.stream }
  end
end

-- The context of the ncu launch: the run's, with the server's readiness deadline
-- within the launch's budget.
local function budgeted(ctx, budget_s)
  local cfg = ctx.cfg
  local server = {}
  for k, v in pairs(cfg.server) do server[k] = v end
  server.ready_timeout_s = math.min(server.ready_timeout_s, budget_s)
  return setmetatable({ cfg = setmetatable({ server = server }, { __index = cfg }) }, { __index = ctx })
end

-- Runs the config under ncu (prefix); its record and what the launch did.
local function launch(ctx, mask, dir, tag, prefix)
  local n = ctx.cfg.ncu
  local run_dir = dir .. "/ncu-launch"
  local state = { completed = 0, failed = 0 }
  local started = knob.now()
  progress.say("ncu pass of the %s: %s ...", tag, util.clean_text(util.shell_join(prefix)))
  local rec = trial.run(budgeted(ctx, n.timeout_s), mask, { dir = run_dir, wrap = prefix, requests = n.requests,
    probe = rounds(ctx, started + n.timeout_s, state), label = tag .. " under ncu" })
  state.wall_s = knob.now() - started
  state.timed_out = state.timed_out or state.wall_s >= n.timeout_s
  os.rename(run_dir .. "/logs.txt", dir .. "/ncu_logs.txt")
  knob.remove_tree(run_dir)
  return rec, state
end

-- Why the ncu launch left no report, from what ncu logged.
local function no_report_reason(dir, names, cfg)
  local log = util.read_file(dir .. "/ncu_logs.txt") or ""
  if log:find("ERR_NVGPUCTRPERM", 1, true) then return M.PERMISSION .. " (ncu said ERR_NVGPUCTRPERM)" end
  if log:find("No kernels were profiled", 1, true) then
    return string.format("ncu profiled no kernel: no launch matched the %d name(s) of the nsys trace (nsys.kernel_names "
      .. "\"%s\"); see %s/ncu_logs.txt", #names, cfg.nsys.kernel_names, dir)
  end
  local said = log:match("==ERROR==%s*([^\n]*)")
  return string.format("ncu wrote no report%s; see %s/ncu_logs.txt", said and (" (" .. said .. ")") or "", dir)
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return cjson.null end
  local size = f:seek("end")
  f:close()
  return size
end

-- Exports the report into ncu_kernels.csv; the number of launches, or nil and why.
local function export(cfg, dir)
  local t0 = knob.now()
  local launches, err = ncu_report.read(cfg.ncu.bin, dir .. "/ncu.ncu-rep", math.max(60, cfg.ncu.timeout_s))
  if not launches then return nil, "the report could not be read: " .. err end
  util.write(dir .. "/ncu_kernels.csv", ncu_report.csv(launches))
  return #launches, knob.now() - t0
end

-- ncu_overhead.json before the launch: the settings, the kernels asked for, the
-- unprofiled trial to compare the launch's wall time with.
local function base_info(cfg, names, plain)
  local n = cfg.ncu
  return {
    ran = false, reason = cjson.null, partial = cjson.null, error = cjson.null,
    kernels = util.array(names or {}), launch_count = n.launch_count, sections = util.array(n.sections),
    requests = n.requests, requests_completed = cjson.null, requests_failed = cjson.null,
    ncu_wall_s = cjson.null, unprofiled_wall_s = type(plain.wall_s) == "number" and plain.wall_s or cjson.null,
    unprofiled_requests = cfg.workload.request_count, overhead_s = cjson.null, export_s = cjson.null,
    profiled_launches = cjson.null, report_bytes = cjson.null, command = cjson.null,
  }
end

-- What the launch did, into info.
local function record_launch(info, cfg, dir, names, rec, state)
  local n = cfg.ncu
  info.ran = true
  info.ncu_wall_s = state.wall_s
  info.requests_completed, info.requests_failed = state.completed, state.failed
  if type(info.unprofiled_wall_s) == "number" then info.overhead_s = state.wall_s - info.unprofiled_wall_s end
  if rec.error then info.error = rec.error end
  if state.timed_out then
    info.partial = string.format("the ncu launch was stopped at ncu.timeout_s (%g s): the report holds what ncu had "
      .. "profiled by then", n.timeout_s)
  end
  info.report_bytes = file_size(dir .. "/ncu.ncu-rep")
  if util.is_null(info.report_bytes) then info.reason = no_report_reason(dir, names, cfg); return end
  local count, export_s = export(cfg, dir)
  if not count then info.reason = export_s; return end
  info.profiled_launches, info.export_s = count, export_s
  if count == 0 then info.reason = no_report_reason(dir, names, cfg) end
end

-- The ncu pass of a profiled side (tag "baseline" or "best") in dir, after its nsys
-- profile (prof: its record, for the trace's reason; plain: the unprofiled trial, for
-- the cost). Writes ncu_overhead.json and returns its content; nil without cfg.ncu.
function M.pass(ctx, mask, dir, tag, prof, plain)
  local cfg = ctx.cfg
  if not cfg.ncu then return nil end
  local why = M.unavailable(cfg)
  local names
  if not why then names, why = M.top_kernels(dir, prof and prof.trace, cfg.ncu.kernels) end
  local info = base_info(cfg, names, plain or {})
  if why then
    say("no ncu pass for the %s: %s", tag, why)
    info.reason = why
  else
    local prefix = M.argv(cfg, names, dir .. "/ncu")
    -- as recorded: the report relative to the directory (which is renamed into place
    -- after the launch wrote into it)
    info.command = util.array(M.argv(cfg, names, "ncu"))
    local rec, state = launch(ctx, mask, dir, tag, prefix)
    record_launch(info, cfg, dir, names, rec, state)
    if not util.is_null(info.partial) then say("ncu pass of the %s: %s", tag, info.partial) end
    if not util.is_null(info.reason) then say("ncu pass of the %s: %s", tag, info.reason) end
  end
  util.write_json(dir .. "/ncu_overhead.json", info)
  return info
end

return M
