-- conntrack/ctl/addr.lua: addresses as conntrack(8) reads them. IPv4 goes
-- through inet_aton (so "10.1" and "010.0.0.1" mean what they mean to
-- conntrack), IPv6 through inet_pton; an address is kept as its 4 or 16
-- bytes, from which masks, prefixes and the module's text are made.

local compat = require "conntrack.ctl.compat"
local numbers = require "conntrack.ctl.numbers"
local unpack = compat.unpack

local M = {}

-- glibc's inet_aton: one to four parts, each decimal, octal or hex; the
-- text may go on after a blank.
local function inet_aton(s)
  local parts = {}
  local val
  while true do
    if not s:match("^%d") then return nil end
    val, s = numbers.leading(s, 0, 0xffffffff)   -- strtoul(s, &end, 0); ERANGE is invalid
    if not val then return nil end
    if s:sub(1, 1) ~= "." then break end
    if #parts > 2 or val > 0xff then return nil end
    parts[#parts + 1] = val
    s = s:sub(2)
  end
  if s ~= "" and not s:match("^%s") then return nil end
  local limit = ({ [0] = 0xffffffff, 0xffffff, 0xffff, 0xff })[#parts]
  if val > limit then return nil end
  local word = val
  for i, p in ipairs(parts) do word = word + p * 256 ^ (4 - i) end   -- disjoint bytes
  return compat.be_bytes(word, 4)
end

-- glibc's inet_pton for AF_INET: four decimal parts, no leading zeros.
local function inet_pton4(s)
  local bytes = {}
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not part:match("^%d+$") or (#part > 1 and part:sub(1, 1) == "0") then return nil end
    local v = tonumber(part)
    if v > 255 then return nil end
    bytes[#bytes + 1] = v
  end
  if #bytes ~= 4 then return nil end
  return string.char(unpack(bytes))
end

-- inet_pton for AF_INET6: up to eight groups, one "::", an IPv4 tail.
local function inet_pton6(s)
  if s:find("[^%x:.]") then return nil end
  local head, tail = s, nil
  local gap = s:find("::", 1, true)
  if gap then
    head, tail = s:sub(1, gap - 1), s:sub(gap + 2)
    if tail:find("::", 1, true) then return nil end
  end
  local function groups(text, last_may_be_v4)
    local out = {}
    if text == "" then return out end
    local items = {}
    for item in (text .. ":"):gmatch("([^:]*):") do items[#items + 1] = item end
    for i, item in ipairs(items) do
      if last_may_be_v4 and i == #items and item:find(".", 1, true) then
        local v4 = inet_pton4(item)
        if not v4 then return nil end
        out[#out + 1] = v4:byte(1) * 256 + v4:byte(2)
        out[#out + 1] = v4:byte(3) * 256 + v4:byte(4)
      elseif item:match("^%x%x?%x?%x?$") then
        out[#out + 1] = tonumber(item, 16)
      else
        return nil
      end
    end
    return out
  end
  local a = groups(head, not gap)
  local b = gap and groups(tail, true) or {}
  if not a or not b then return nil end
  local n = #a + #b
  if (gap and n > 7) or (not gap and n ~= 8) then return nil end
  local all = {}
  for _, g in ipairs(a) do all[#all + 1] = g end
  for _ = 1, 8 - n do all[#all + 1] = 0 end
  for _, g in ipairs(b) do all[#all + 1] = g end
  local out = {}
  for i, g in ipairs(all) do out[i] = compat.be_bytes(g, 2) end
  return table.concat(out)
end

-- "ipv4"|"ipv6", bytes for an address as conntrack parses it, or nil.
function M.parse(text)
  local b = inet_aton(text)
  if b then return "ipv4", b end
  b = inet_pton6(text)
  if b then return "ipv6", b end
  return nil
end

-- The text the module takes (and inet_ntop would print for IPv4).
function M.text(family, bytes)
  if family == "ipv4" then
    return ("%d.%d.%d.%d"):format(bytes:byte(1, 4))
  end
  local g = {}
  for i = 1, 8 do g[i] = bytes:byte(2 * i - 1) * 256 + bytes:byte(2 * i) end
  -- the longest run of two or more zero groups becomes "::", as inet_ntop does
  local best, best_len, i = nil, 1, 1
  while i <= 8 do
    if g[i] == 0 then
      local j = i
      while j <= 8 and g[j] == 0 do j = j + 1 end
      if j - i > best_len then best, best_len = i, j - i end
      i = j
    else
      i = i + 1
    end
  end
  local parts = {}
  for k = 1, 8 do parts[k] = ("%x"):format(g[k]) end
  if not best then return table.concat(parts, ":") end
  local left = table.concat(parts, ":", 1, best - 1)
  local right = table.concat(parts, ":", best + best_len, 8)
  return left .. "::" .. right
end

-- conntrack's parse_addr with a netmask: family, bytes, mask where mask is
-- nil (none given), a prefix length, or false (an invalid one). Like
-- conntrack, only the first 45 characters are read.
function M.parse_cidr(arg)
  local buf = arg:sub(1, 45)
  local mask
  local slash = buf:find("/", 1, true)
  if slash then
    local spec = buf:sub(slash + 1)
    local digits = spec:match("^%s*[+-]?%d+$")
    if spec == "" then
      mask = 0
    elseif digits then
      mask = tonumber((spec:gsub("%s", ""):gsub("^%+", "")))
      if mask < 0 then mask = false end
    else
      mask = false
    end
    buf = buf:sub(1, slash - 1)
  end
  local family, bytes = M.parse(buf)
  if not family then return nil end
  if mask and mask > (family == "ipv4" and 32 or 128) then mask = false end
  return family, bytes, mask
end

function M.netmask(family, plen)
  local n = family == "ipv4" and 4 or 16
  local out = {}
  for i = 1, n do
    local bits = math.max(0, math.min(8, plen - 8 * (i - 1)))
    out[i] = 256 - 2 ^ (8 - bits)   -- the top `bits` ones
  end
  return string.char(unpack(out))
end

-- The prefix length of a mask, or nil if its ones are not contiguous.
function M.prefix_len(mask)
  local plen, ended = 0, false
  for i = 1, #mask do
    local b = mask:byte(i)
    for bit = 7, 0, -1 do
      if compat.band(b, 2 ^ bit) ~= 0 then
        if ended then return nil end
        plen = plen + 1
      else
        ended = true
      end
    end
  end
  return plen
end

function M.band(a, b)
  local out = {}
  for i = 1, #a do out[i] = compat.band(a:byte(i), b:byte(i)) end
  return string.char(unpack(out))
end

-- The bytes of an address the module printed, nil for nil.
function M.bytes(text)
  if text == nil then return nil end
  local _, b = M.parse(text)
  return b
end

return M
