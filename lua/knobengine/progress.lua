-- Progress lines on stderr, for people watching a long run: shown when stderr is a
-- terminal, or always with KNOBENGINE_PROGRESS=1 (never with KNOBENGINE_PROGRESS=0).
-- stdout is never touched.
local knob = require("knob")

local M = {}

local setting = os.getenv("KNOBENGINE_PROGRESS")
local enabled
if setting == "1" then enabled = true
elseif setting == "0" then enabled = false
else enabled = knob.isatty(2) end

function M.enabled() return enabled end

function M.say(fmt, ...)
  if enabled then io.stderr:write(string.format(fmt, ...), "\n") end
end

return M
