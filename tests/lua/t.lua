-- A tiny test harness: t.test(name, fn), t.eq(a, b), t.raises(fn, pattern), t.done().
local M = { passed = 0, failed = 0 }

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function deep_eq(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

function M.eq(got, want, msg)
  if not deep_eq(got, want) then
    error(string.format("%sexpected %s, got %s", msg and (msg .. ": ") or "", show(want), show(got)), 2)
  end
end

-- A new empty directory for a test's files.
function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  require("knob").mkdir_p(d)
  return d
end

function M.ok(v, msg) if not v then error(msg or "expected a true value", 2) end end

-- Calls fn, expects an error whose message (or .message) contains `plain`.
function M.raises(fn, plain)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing " .. show(plain), 2) end
  local msg = type(err) == "table" and err.message or tostring(err)
  if not msg:find(plain, 1, true) then
    error(string.format("expected an error containing %s, got %s", show(plain), show(msg)), 2)
  end
  return err
end

function M.test(name, fn)
  local ok, err = pcall(fn)
  if ok then M.passed = M.passed + 1
  else
    M.failed = M.failed + 1
    io.stderr:write("FAIL ", name, ": ", tostring(type(err) == "table" and err.message or err), "\n")
  end
end

function M.done()
  print(string.format("%d passed, %d failed", M.passed, M.failed))
  if M.failed > 0 then error(string.format("%d Lua test(s) failed", M.failed), 0) end
end

return M
