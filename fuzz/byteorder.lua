-- fuzz/byteorder.lua: netlink's two byte orders. Netlink headers (nlmsghdr,
-- nlattr) are in the host's order, ctnetlink payloads in network order but
-- for the label bitmaps, the kernel's 32-bit words as they are in memory; a
-- message recorded on one CPU is read on another after those are converted.
-- Pure Lua, for Lua 5.1 to 5.4 and LuaJIT; no module needed.
local M = {}

local NESTED = 0x8000   -- NLA_F_NESTED
local NLMSG_HDRLEN, NFGENMSG_LEN = 16, 4
-- CTA_LABELS, CTA_LABELS_MASK: host-order u32 words (ctnetlink, libnetfilter_conntrack)
local HOST_WORDS = { [22] = true, [23] = true }

-- "little" or "big": string.pack where there is one (5.3+), LuaJIT's ffi,
-- else the endianness byte of Lua 5.1's bytecode header (1: little).
local function detect()
  if string.pack then return string.pack("=I2", 1):byte(1) == 1 and "little" or "big" end
  if rawget(_G, "jit") then return require("ffi").abi("le") and "little" or "big" end
  return string.dump(function() end):byte(7) == 1 and "little" or "big"
end
M.host = detect()

-- Unsigned values as bytes, with arithmetic so that Lua 5.1 builds them too.
local function bytes(v, n, order)
  local out = {}
  for i = 1, n do out[i] = v % 256; v = math.floor(v / 256) end
  local s = string.char((table.unpack or unpack)(out))
  return order == "big" and s:reverse() or s
end
function M.u16(v) return bytes(v, 2, M.host) end   -- header fields: host order
function M.u32(v) return bytes(v, 4, M.host) end
function M.be16(v) return bytes(v, 2, "big") end   -- payloads: network order
function M.be32(v) return bytes(v, 4, "big") end

local function read16(s, i, order)
  local a, b = s:byte(i, i + 1)
  if order == "big" then return a * 256 + b end
  return a + b * 256
end

-- The offsets (1-based) and widths of the host-order fields of the attributes
-- in s[at, stop), into fields: each header's nla_len and nla_type, following
-- nested attributes (NLA_F_NESTED), and the words of a top-level label
-- bitmap. An attribute whose length is impossible is the last one read: its
-- header is converted, what follows it is left as it is.
local function attr_fields(s, at, stop, order, fields, top)
  while stop - at >= 4 do
    local len, type = read16(s, at, order), read16(s, at + 2, order)
    fields[at], fields[at + 2] = 2, 2
    if len < 4 or at + len > stop then return end
    if math.floor(type / NESTED) % 2 == 1 then
      attr_fields(s, at + 4, at + len, order, fields, false)
    elseif top and HOST_WORDS[type] then
      for word = at + 4, at + len - 4, 4 do fields[word] = 4 end
    end
    at = at + len + (4 - len % 4) % 4
  end
end

-- One ctnetlink message with its host-order fields turned from order `from`
-- into order `to` ("little" or "big"): the five nlmsghdr fields, every
-- attribute's nla_len and nla_type, the label bitmaps' words. The other
-- payloads, nfgenmsg included, are left as they are; the attributes run to
-- the end of the string, whatever nlmsg_len says, so that a malformed
-- message stays malformed alike.
function M.convert(msg, from, to)
  if from == to or #msg < NLMSG_HDRLEN then return msg end
  local widths = { [1] = 4, [5] = 2, [7] = 2, [9] = 4, [13] = 4 }
  attr_fields(msg, NLMSG_HDRLEN + NFGENMSG_LEN + 1, #msg + 1, from, widths, true)
  local starts, out, pos = {}, {}, 1
  for at in pairs(widths) do starts[#starts + 1] = at end
  table.sort(starts)
  for _, at in ipairs(starts) do
    out[#out + 1] = msg:sub(pos, at - 1)
    out[#out + 1] = msg:sub(at, at + widths[at] - 1):reverse()
    pos = at + widths[at]
  end
  out[#out + 1] = msg:sub(pos)
  return table.concat(out)
end

-- A message recorded on a little-endian machine (fuzz/corpus/*), for this host.
function M.from_recorded(msg)
  return M.convert(msg, "little", M.host)
end

return M
