-- examples/demo.lua: a tour of lua-conntrack against the real kernel table.
-- Run it with `make demo`, which gives it a private network namespace with
-- tracking turned on for loopback; never run it in a namespace you care about.
local conntrack = require "conntrack"
local socket = require "socket"

local ct = assert(conntrack.open())
assert(ct:flush())

local function section(title) print(("\n== %s"):format(title)) end

section("flows created through netlink (no traffic is sent)")
assert(ct:create{ proto = "tcp", orig_src = "192.168.1.104", orig_dst = "10.0.0.2",
                  orig_sport = 40001, orig_dport = 22, state = "ESTABLISHED", timeout = 300, mark = 1 })
assert(ct:create{ proto = "udp", orig_src = "192.168.1.104", orig_dst = "10.0.0.53",
                  orig_sport = 5353, orig_dport = 53, timeout = 30 })
assert(ct:create{ proto = "tcp", orig_src = "fd00::7", orig_dst = "fd00::1", orig_sport = 50000,
                  orig_dport = 443, state = "SYN_SENT", timeout = 60, zone = 2 })
assert(ct:create{ proto = "udp", orig_src = "10.1.1.1", orig_dst = "198.51.100.1", orig_sport = 1000,
                  orig_dport = 123, reply_src = "198.51.100.1", reply_dst = "203.0.113.9", timeout = 60 })
print(("%d flows in the table"):format(ct:count()))

section("real traffic over loopback: a TCP exchange and a UDP datagram")
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local client = assert(socket.connect("127.0.0.1", port))
local peer = assert(server:accept())
client:send("hello\n"); print("server got: " .. peer:receive("*l"))
client:close(); peer:close(); server:close()
local udp = socket.udp(); udp:sendto("ping", "127.0.0.1", 9); udp:close()

section("every flow, as conntrack -L prints it")
for flow in ct:dump() do print(flow) end

section("fields of the loopback TCP flow")
for flow in ct:dump{ proto = "tcp", orig_dst = "127.0.0.1" } do
  print(("%s:%d -> %s:%d  state=%s  assured=%s  timeout=%ds"):format(flow.orig_src, flow.orig_sport,
        flow.orig_dst, flow.orig_dport, flow.state, tostring(flow.status.ASSURED == true), flow.timeout))
end

section("filters: every flow of 192.168.0.0/16, and a Lua predicate")
for flow in ct:dump{ orig_src = "192.168.0.0/16" } do print(flow) end
for flow in ct:dump(function(f) return f.snat end) do print("translated: " .. tostring(flow)) end

section("update: mark the SSH flow and shorten its timeout")
local ssh = assert(ct:get{ proto = "tcp", orig_src = "192.168.1.104", orig_dst = "10.0.0.2",
                           orig_sport = 40001, orig_dport = 22 })
assert(ct:update(ssh, { mark = 0x42, timeout = 20 }))
print(assert(ct:get{ proto = "tcp", orig_src = "192.168.1.104", orig_dst = "10.0.0.2",
                     orig_sport = 40001, orig_dport = 22 }))

section("delete: cut off 192.168.1.104")
for flow in ct:dump{ orig_src = "192.168.1.104" } do assert(ct:delete(flow)) end
print(("%d flows left"):format(ct:count()))

section("errors: bad input raises, a missing flow is a failure triple")
print(select(2, pcall(ct.create, ct, { proto = "tcp", orig_src = "999.1.1.1" })))
print(ct:delete(ssh))

section("flush only IPv6")
assert(ct:flush{ family = "ipv6" })
for flow in ct:dump() do print(flow) end
