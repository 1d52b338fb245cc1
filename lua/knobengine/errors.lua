-- Error values that carry an exit code. Usage and config errors exit 2; interrupts
-- exit 128+signal; anything else that reaches the top is a run failure (exit 1).
--
-- Engine code raises typed errors (usage, run, interrupted). Anything else (a Lua
-- runtime error, error() with a string or a table) is caught with M.handler under
-- xpcall, which keeps the traceback of the place that failed: KNOBENGINE_DEBUG=1
-- prints it.
local M = {}

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

local function raise(code, kind, message)
  error(setmetatable({ code = code, kind = kind, message = message }, Error), 0)
end

function M.usage(fmt, ...) raise(2, "usage", string.format(fmt, ...)) end
function M.run(fmt, ...) raise(1, "run", string.format(fmt, ...)) end
-- this machine cannot store what the run measured (a full disk, a read-only or failing
-- filesystem): exit 1, and a search stops resumable, its finished trials kept
function M.storage(fmt, ...) raise(1, "storage", string.format(fmt, ...)) end
-- An interrupt is raised once: the hook that raises one from a strategy's own Lua loop
-- (runner.lua) goes too, so the cleanup on the way out (stopping servers, cancelling
-- jobs) is not itself cut short by it.
function M.interrupted(sig, message)
  debug.sethook()
  raise(128 + sig, "interrupted", message)
end

-- The message of the innermost M.watching_interrupts running, for M.check_interrupted.
local watching_message

-- Runs body(...) so that a Ctrl-C or SIGTERM stops it: the C side only sets a flag
-- (knob.interrupted), which a count hook checks inside long Lua loops and turns into
-- M.interrupted(sig, message). The hook that was there before is put back on the way
-- out, unless an interrupt is on its way (raised once: see M.interrupted); other errors
-- come through with their traceback (M.handler).
function M.watching_interrupts(message, body, ...)
  local knob = require("knob")
  local old_hook, old_mask, old_count = debug.gethook()
  local outer_message = watching_message
  watching_message = message
  debug.sethook(function()
    local sig = knob.interrupted()
    if sig then M.interrupted(sig, message) end
  end, "", 10000)
  local results = table.pack(xpcall(body, M.handler, ...))
  local interrupted = not results[1] and results[2].kind == "interrupted"
  if type(old_hook) == "function" and not interrupted then debug.sethook(old_hook, old_mask, old_count)
  else debug.sethook() end
  watching_message = outer_message
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- Raises the interrupt at once when one came: for code after a C call that returned
-- early because of it (knob.run stops its child), so it is not taken for a failure.
-- The message is that of the watching_interrupts around, else the one given.
function M.check_interrupted(message)
  local sig = require("knob").interrupted()
  if sig then M.interrupted(sig, watching_message or message) end
end

-- stdout cannot be written (a full disk, a reader that went away): exit 1
function M.output(fmt, ...) raise(1, "output", string.format(fmt, ...)) end

function M.is(e) return getmetatable(e) == Error end

-- An error from outside the run's own logic (Ctrl-C, stdout gone, a disk that cannot
-- take the results): the run stops, and what it finished is kept for a resume.
function M.stops_run(e) return type(e) == "table" and (e.kind == "interrupted" or e.kind == "output" or e.kind == "storage") end

-- A message for any error value: a string as it is, a table by its message field or
-- __tostring, anything else by its type.
function M.describe(e)
  if type(e) == "string" then return e end
  if type(e) == "table" then
    if type(e.message) == "string" then return e.message end
    local mt = getmetatable(e)
    if mt and mt.__tostring then return tostring(e) end
  end
  if type(e) == "number" then return tostring(e) end
  return string.format("(error object is a %s value)", type(e))
end

-- xpcall handler: typed errors pass through; anything else becomes a run error
-- (exit 1) carrying the traceback from where it was raised.
function M.handler(e)
  if M.is(e) then return e end
  local message = M.describe(e)
  return setmetatable({ code = 1, kind = "run", message = message, traceback = debug.traceback(message, 2) }, Error)
end

-- The same error with its message prefixed (its traceback kept).
function M.prefixed(e, prefix)
  return setmetatable({ code = e.code, kind = e.kind, message = prefix .. e.message, traceback = e.traceback,
    resumable = e.resumable }, Error)
end

function M.debug_enabled()
  local d = os.getenv("KNOBENGINE_DEBUG")
  return d ~= nil and d ~= "" and d ~= "0"
end

return M
