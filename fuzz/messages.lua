-- fuzz/messages.lua: ctnetlink messages built by hand, as the kernel lays
-- them out: the seeds of the parse fuzzer and the crafted input of
-- spec/parse_spec.lua and cross/outputs.lua. Host byte order for netlink
-- headers, network order for addresses, ports and 32-bit values.
local byteorder = require "fuzz.byteorder"
local M = {}

local NESTED = 0x8000
M.CTA = { TUPLE_ORIG = 1, TUPLE_REPLY = 2, STATUS = 3, PROTOINFO = 4, TIMEOUT = 7, MARK = 8,
          COUNTERS_ORIG = 9, USE = 11, ID = 12, SECMARK = 17, ZONE = 18, SECCTX = 19 }

local function align(s) return s .. ("\0"):rep((4 - #s % 4) % 4) end

-- Headers in the host's order, found at run time (fuzz/byteorder.lua), so
-- that the same messages are the kernel's on a big-endian CPU too.
local u16, u32, be16, be32 = byteorder.u16, byteorder.u32, byteorder.be16, byteorder.be32
M.u16, M.u32 = u16, u32

function M.attr(type, payload)
  return align(u16(4 + #payload) .. u16(type) .. payload)
end

function M.nest(type, ...)
  return M.attr(type + NESTED, table.concat({ ... }))
end

local function ipv4(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end

-- a tuple: { src = "10.0.0.1", dst = "10.0.0.2", proto = 6, sport = 1, dport = 2 } (IPv4), or
-- v6src/v6dst as 16-byte strings; icmp = { type, code, id }
function M.tuple(type, t)
  local ip = t.v6src and M.nest(1, M.attr(3, t.v6src), M.attr(4, t.v6dst))
             or M.nest(1, M.attr(1, ipv4(t.src)), M.attr(2, ipv4(t.dst)))
  local proto = { M.attr(1, string.char(t.proto)) }
  if t.sport then proto[#proto + 1] = M.attr(2, be16(t.sport)); proto[#proto + 1] = M.attr(3, be16(t.dport)) end
  if t.icmp then
    proto[#proto + 1] = M.attr(4, be16(t.icmp[3]))
    proto[#proto + 1] = M.attr(5, string.char(t.icmp[1]))
    proto[#proto + 1] = M.attr(6, string.char(t.icmp[2]))
  end
  return M.nest(type, ip, M.nest(2, table.concat(proto)))
end

-- A whole message: family (2 or 10), body = concatenated attributes.
-- msg_type 0 is IPCTNL_MSG_CT_NEW, 2 IPCTNL_MSG_CT_DELETE; subsystem 1 is ctnetlink.
function M.message(family, body, msg_type)
  local payload = string.char(family, 0) .. be16(0) .. body
  return u32(16 + #payload) .. u16(256 + (msg_type or 0)) .. u16(0) .. u32(0) .. u32(0) .. payload
end

-- Well-formed samples, one per kind of flow.
function M.samples()
  local tcp = { src = "10.0.0.1", dst = "10.0.0.2", proto = 6, sport = 1234, dport = 80 }
  local reply = { src = "10.0.0.2", dst = "10.0.0.1", proto = 6, sport = 80, dport = 1234 }
  local v6a, v6b = ("\253" .. ("\0"):rep(14) .. "\1"), ("\253" .. ("\0"):rep(14) .. "\2")
  return {
    tcp = M.message(2, M.tuple(M.CTA.TUPLE_ORIG, tcp) .. M.tuple(M.CTA.TUPLE_REPLY, reply)
      .. M.attr(M.CTA.STATUS, be32(8)) .. M.attr(M.CTA.TIMEOUT, be32(120)) .. M.attr(M.CTA.MARK, be32(7))
      .. M.nest(M.CTA.PROTOINFO, M.nest(1, M.attr(1, "\3"))) .. M.attr(M.CTA.USE, be32(1))
      .. M.attr(M.CTA.ID, be32(42))),
    udp6 = M.message(10, M.tuple(M.CTA.TUPLE_ORIG, { v6src = v6a, v6dst = v6b, proto = 17, sport = 5, dport = 53 })
      .. M.tuple(M.CTA.TUPLE_REPLY, { v6src = v6b, v6dst = v6a, proto = 17, sport = 53, dport = 5 })
      .. M.attr(M.CTA.TIMEOUT, be32(30)) .. M.attr(M.CTA.ZONE, be16(3))),
    icmp = M.message(2, M.tuple(M.CTA.TUPLE_ORIG, { src = "10.0.0.4", dst = "10.0.0.1", proto = 1, icmp = { 8, 0, 77 } })
      .. M.tuple(M.CTA.TUPLE_REPLY, { src = "10.0.0.1", dst = "10.0.0.4", proto = 1, icmp = { 0, 0, 77 } })
      .. M.attr(M.CTA.TIMEOUT, be32(30)), 2),
    -- crafted, not recorded: the kernel sends a security context only under
    -- SELinux (or another LSM with secids), which this machine has not
    secctx = M.message(2, M.tuple(M.CTA.TUPLE_ORIG, tcp) .. M.tuple(M.CTA.TUPLE_REPLY, reply)
      .. M.attr(M.CTA.STATUS, be32(14)) .. M.attr(M.CTA.TIMEOUT, be32(431999))
      .. M.nest(M.CTA.PROTOINFO, M.nest(1, M.attr(1, "\3")))
      .. M.attr(M.CTA.SECMARK, be32(0x80000001))
      .. M.nest(M.CTA.SECCTX, M.attr(1, "system_u:object_r:ssh_port_t:s0\0"))
      .. M.attr(M.CTA.USE, be32(1)) .. M.attr(M.CTA.ID, be32(3000000000))),
  }
end

-- Malformed bodies, each a message of family 2 once wrapped: sizes the
-- library's parser would exit() on, a string without its NUL, an attribute
-- longer than the message. Each must be refused as "malformed attributes".
function M.malformed()
  local attr, nest, CTA = M.attr, M.nest, M.CTA
  return {
    attr(CTA.TIMEOUT, "\0\0\0"),                      -- a 32-bit value in 3 bytes
    attr(CTA.ZONE, "\0\0\0\0"),                       -- a 16-bit value in 4 bytes
    nest(CTA.TUPLE_ORIG, nest(1, attr(1, "\10\0\0"))),   -- an IPv4 address in 3 bytes
    nest(CTA.TUPLE_ORIG, nest(2, attr(2, "\0"))),         -- a port in 1 byte
    nest(CTA.PROTOINFO, nest(1, attr(1, "\3\3"))),         -- a TCP state in 2 bytes
    nest(CTA.COUNTERS_ORIG, attr(1, "\0\0\0\0")),          -- 64-bit packets in 4 bytes
    nest(5, attr(1, "ftp")),                               -- a helper name without its NUL
    u16(200) .. u16(CTA.MARK) .. "\0\0\0\7",                 -- an attribute longer than the message
  }
end

return M
