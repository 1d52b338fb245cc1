-- What a run prints: its result lines on stdout (the strict contract of README "What
-- it prints") and its messages on stderr.
local errors = require("knobengine.errors")
local util = require("knobengine.util")

local M = {}

-- A message on stderr. It may quote a server's log or answer: control characters
-- (a terminal escape, a carriage return) and invalid UTF-8 are replaced (U+FFFD);
-- line breaks stay.
function M.say(fmt, ...)
  io.stderr:write("knobengine: ", util.clean_text(string.format(fmt, ...), true), "\n")
end

-- One line of results on stdout. A write that fails (a full disk, a closed pipe: `| head`)
-- stops the run: nothing is printed to nobody.
function M.line(line)
  local ok, err = io.stdout:write(line, "\n")
  if ok then ok, err = io.stdout:flush() end
  if not ok then errors.output("cannot write the results to stdout (%s)", tostring(err)) end
end

return M
