-- Error values that carry an exit code. Usage and config errors exit 2; interrupts
-- exit 128+signal; anything else that reaches the top is a run failure (exit 1).
local M = {}

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

local function raise(code, kind, message)
  error(setmetatable({ code = code, kind = kind, message = message }, Error), 0)
end

function M.usage(fmt, ...) raise(2, "usage", string.format(fmt, ...)) end
function M.run(fmt, ...) raise(1, "run", string.format(fmt, ...)) end
function M.interrupted(sig, message) raise(128 + sig, "interrupted", message) end

function M.is(e) return getmetatable(e) == Error end

return M
