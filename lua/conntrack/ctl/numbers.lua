-- conntrack/ctl/numbers.lua: unsigned numbers as conntrack reads them with
-- strtoul: decimal, or (base 0) 0x... hex and 0... octal too. The digits are
-- added one at a time against the limit, so that no value wraps (Lua's
-- tonumber(s, 16) counts modulo 2^64) and none is rounded (5.1's doubles).

local M = {}

local DIGITS = { [8] = "^[0-7]+", [10] = "^%d+", [16] = "^%x+" }

-- The number at the start of s in base (10, 16, or 0: by its prefix): its
-- value, or false if it exceeds max; and the rest of s. nil if s does not
-- start with one.
function M.leading(s, base, max)
  local radix, at = base, 1
  if base == 0 then
    if s:match("^0[xX]%x") then radix, at = 16, 3
    elseif s:match("^0") then radix = 8
    else radix = 10 end
  elseif base == 16 and s:match("^0[xX]%x") then
    at = 3
  end
  local digits = s:match(DIGITS[radix], at)
  if not digits then return nil end
  local v = 0
  for i = 1, #digits do
    v = v * radix + tonumber(digits:sub(i, i), 16)
    if v > max then
      v = false
      break
    end
  end
  return v, s:sub(at + #digits)
end

-- A whole string as a number from 0 to max, or nil.
function M.parse(text, base, max)
  local v, rest = M.leading(text, base, max)
  if v and rest == "" then return v end
  return nil
end

return M
