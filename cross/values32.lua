-- cross/values32.lua: the kernel's u32 and u64 values read and given exactly,
-- whatever the size of lua_Integer: run by `make check-cross` with i386 Lua 5.1
-- under qemu (32-bit integers, as on routers) and by spec/numbers_spec.lua
-- with the Luas of the suite. Only what needs no netlink socket (qemu-user has
-- none): conntrack.parse, flows, filters through flow:match, the command
-- line's options and JSON. Exits 1 on the first difference.
package.path = "./?.lua;./lua/?.lua;" .. package.path
local conntrack = require "conntrack"
local messages = require "fuzz.messages"
local options = require "conntrack.ctl.options"
local output = require "conntrack.ctl.output"
local compat = require "conntrack.ctl.compat"

local checks = 0
local function fail(what, got, want)
  io.stderr:write(("values32 (%s): %s: got %s, want %s\n"):format(_VERSION, what, tostring(got), tostring(want)))
  os.exit(1)
end
local function same(what, got, want)
  checks = checks + 1
  if got ~= want or type(got) ~= type(want) then fail(what, got, want) end
end
local function raises(what, want, f, ...)
  checks = checks + 1
  local ok, err = pcall(f, ...)
  if ok then fail(what, "no error", want) end
  if type(err) == "table" then err = err.message end
  if err ~= want then fail(what, err, want) end
end

-- Big-endian bytes of v (< 2^53), by arithmetic: 5.1 has no string.pack.
local function be(v, n) return compat.be_bytes(v, n) end
local attr, nest, CTA = messages.attr, messages.nest, messages.CTA

local BIG = {
  mark = 0xfffffffe, id = 3000000000, timeout = 0xffffffff, secmark = 0x80000000, use = 2147483648,
  orig_packets = 5000000000, orig_bytes = 6000000000000, reply_packets = 4294967296,
  reply_bytes = 9007199254740992,
}
local message = messages.message(2,
  messages.tuple(CTA.TUPLE_ORIG, { src = "10.0.0.1", dst = "10.0.0.2", proto = 17, sport = 1, dport = 2 }) ..
  messages.tuple(CTA.TUPLE_REPLY, { src = "10.0.0.2", dst = "10.0.0.1", proto = 17, sport = 2, dport = 1 }) ..
  attr(CTA.TIMEOUT, be(BIG.timeout, 4)) .. attr(CTA.MARK, be(BIG.mark, 4)) ..
  attr(17, be(BIG.secmark, 4)) ..                                   -- CTA_SECMARK
  nest(CTA.COUNTERS_ORIG, attr(1, be(BIG.orig_packets, 8)), attr(2, be(BIG.orig_bytes, 8))) ..
  nest(10, attr(1, be(BIG.reply_packets, 8)), attr(2, be(BIG.reply_bytes, 8))) ..   -- CTA_COUNTERS_REPLY
  attr(CTA.USE, be(BIG.use, 4)) .. attr(CTA.ID, be(BIG.id, 4)) .. attr(CTA.ZONE, be(65535, 2)))

local flow = assert(conntrack.parse(message))
local t = flow:totable()
for name, v in pairs(BIG) do
  same("flow." .. name, flow[name], v)
  same("totable()." .. name, t[name], v)
  same("the text of " .. name, compat.integer_text(flow[name]), ("%.0f"):format(v))
end
same("flow.zone", flow.zone, 65535)
same("tostring(flow)", tostring(flow),
  "udp      17 4294967295 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 packets=5000000000 bytes=6000000000000 " ..
  "src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 packets=4294967296 bytes=9007199254740992 " ..
  "mark=4294967294 secmark=2147483648 zone=65535 use=2147483648")

-- Filters: every integer field takes its whole range, masks too.
for name, v in pairs(BIG) do
  same("match{ " .. name .. " }", flow:match{ [name] = v }, true)
end
same("match{ mark = { value, mask } }", flow:match{ mark = { 0x80000000, 0x80000000 } }, true)
same("match{ mark = { 0xffffffff, 0xffffffff } }", flow:match{ mark = { 0xffffffff, 0xffffffff } }, false)
same("match{ id = 2^32 - 1 }", flow:match{ id = 4294967295 }, false)
raises("mark past u32", "bad argument 'mark': expected an integer from 0 to 4294967295, got 4294967296",
  flow.match, flow, { mark = 4294967296 })
raises("negative mark", "bad argument 'mark': expected an integer from 0 to 4294967295, got -1",
  flow.match, flow, { mark = -1 })
raises("fractional mark", "bad argument 'mark': expected an integer, got 1.5", flow.match, flow, { mark = 1.5 })
raises("zone past u16", "bad argument 'zone': expected an integer from 0 to 65535, got 65536",
  flow.match, flow, { zone = 65536 })

-- The command line: numbers in every base it takes, to the top of the range.
local function parse(...)
  local ok, cmd = pcall(options.parse, { [0] = "lua-conntrack", ... }, function() end)
  if not ok then error(type(cmd) == "table" and cmd.message or cmd, 0) end
  return cmd
end
local list = parse("-L", "-m", "0xfffffffe/0xffffffff")
same("-m value", list.mark.value, 0xfffffffe)
same("-m mask", list.mark.mask, 0xffffffff)
same("-m 4294967295", parse("-L", "-m", "4294967295").mark.value, 4294967295)
local get = parse("-G", "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "udp", "--sport", "1", "--dport", "2",
  "--id=4294967295")
same("--id", get.fields.id, 4294967295)
local create = parse("-I", "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "udp", "--sport", "1", "--dport", "2",
  "-t", "4294967295", "-m", "0xffffffff", "-w", "65535")
same("-t", create.fields.timeout, 4294967295)
same("-c", parse("-L", "-c", "4294967295").fields.secmark, 4294967295)
same("-w", create.fields.zone, 65535)
raises("-m past u32", "unexpected value '4294967296' with -m option", parse, "-L", "-m", "4294967296")

-- JSON writes the exact digits.
local json = output.json_object(flow)
for _, name in ipairs({ "mark", "id", "timeout", "orig_packets", "orig_bytes", "reply_bytes", "use" }) do
  checks = checks + 1
  local want = ('"%s":%s'):format(name, ("%.0f"):format(BIG[name]))
  if not json:find(want, 1, true) then fail("-o json " .. name, json, want) end
end

print(("values32: %d checks passed (%s)"):format(checks, _VERSION))
