-- The knob space: every combination of knob values as one integer, the mask.
--
-- Knob i (1-based, left to right) takes a value index 0 .. radix[i]-1 (a boolean knob:
-- 0 off, 1 on; a knob with values: see docs/config.md "Knobs with values"). The mask
-- is the mixed-radix number whose digits are those indices, knob 1 most significant,
-- so a space of boolean knobs is exactly the binary numbering of earlier versions.
-- The mask string has one character per knob: the digit 0-9, then a-z (36 at most).
-- Ownership: a space is immutable once made; it holds no knob names (config owns them).
-- Errors: encode/with/parse return nil and a message naming the knob and the index;
-- nothing raises.
local M = {}
M.__index = M

M.DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
M.MAX_RADIX = #M.DIGITS
M.MAX_SIZE = 1 << 40 -- masks stay exact integers, and a brute force stays countable

local DIGIT_OF = {}
for i = 1, #M.DIGITS do DIGIT_OF[M.DIGITS:sub(i, i)] = i - 1 end

-- radices: the number of value indices of each knob (2 .. 36). names (optional): for
-- messages. Returns the space, or nil and why when it has more than MAX_SIZE masks.
function M.new(radices, names)
  local self = setmetatable({ n = #radices, radix = {}, weight = {}, names = names or {} }, M)
  local size = 1
  for i = #radices, 1, -1 do
    self.radix[i] = radices[i]
    self.weight[i] = size
    if size > M.MAX_SIZE // radices[i] then return nil, string.format("more than 2^40 combinations") end
    size = size * radices[i]
  end
  self.size = size
  self.boolean = true
  for _, r in ipairs(radices) do if r ~= 2 then self.boolean = false end end
  return self
end

local function knob_label(self, i) return self.names[i] and ("'" .. self.names[i] .. "'") or ("#" .. i) end

function M:contains(mask) return math.type(mask) == "integer" and mask >= 0 and mask < self.size end

-- The value index of knob i in mask.
function M:digit(mask, i) return (mask // self.weight[i]) % self.radix[i] end

function M:digits(mask)
  local d = {}
  for i = 1, self.n do d[i] = self:digit(mask, i) end
  return d
end

local function check_index(self, i, d)
  if math.type(i) ~= "integer" or i < 1 or i > self.n then
    return string.format("there is no knob %s (knobs are 1..%d)", tostring(i), self.n)
  end
  if math.type(d) ~= "integer" or d < 0 or d >= self.radix[i] then
    return string.format("knob %s has no value index %s (it has 0..%d)", knob_label(self, i), tostring(d), self.radix[i] - 1)
  end
end

-- The mask of a list of value indices (one per knob).
function M:encode(digits)
  if type(digits) ~= "table" or #digits ~= self.n then
    return nil, string.format("expected a list of %d value indices", self.n)
  end
  local mask = 0
  for i = 1, self.n do
    local why = check_index(self, i, digits[i])
    if why then return nil, why end
    mask = mask + digits[i] * self.weight[i]
  end
  return mask
end

-- mask with knob i set to value index d.
function M:with(mask, i, d)
  local why = check_index(self, i, d)
  if why then return nil, why end
  return mask + (d - self:digit(mask, i)) * self.weight[i]
end

-- The value index a mask character stands for (0-9, then a-z), or nil.
function M.index_of(c) return DIGIT_OF[c] end

function M:string(mask)
  local c = {}
  for i = 1, self.n do
    local d = self:digit(mask, i) + 1
    c[i] = M.DIGITS:sub(d, d)
  end
  return table.concat(c)
end

-- A mask from its string (n characters) or from a decimal integer in range; else nil
-- and why (without the value: the caller names it).
function M:parse(v)
  if type(v) == "string" and #v == self.n and not v:find("[^0-9a-z]") then
    local digits = {}
    for i = 1, self.n do digits[i] = DIGIT_OF[v:sub(i, i)] end
    return self:encode(digits)
  end
  -- an integer as decimal digits only (tonumber alone also takes "0x1", "1.0", "+1", " 1")
  local m
  if type(v) == "string" then
    m = v:match("^%d+$") and math.tointeger(tonumber(v))
  else
    m = math.tointeger(v)
  end
  if m and self:contains(m) then return m end
  if type(v) == "string" and #v == self.n then
    return nil, string.format("'%s' is not a value index (0-9, a-z)", v:match("[^0-9a-z]"))
  end
  return nil, string.format("not a mask of %d knobs (%d characters, or an integer in 0..%d)",
    self.n, self.n, self.size - 1)
end

-- Every mask, ascending.
function M:masks()
  local m, size = -1, self.size
  return function()
    m = m + 1
    if m < size then return m end
  end
end

-- The mask with every knob at its last value index ("all on" for boolean knobs).
function M:last()
  return self.size - 1
end

return M
