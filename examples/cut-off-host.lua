-- examples/cut-off-host.lua: cut a host off: delete every flow of an address
-- (or a prefix, "10.0.0.0/24"), print how many went, then dump the address's
-- flows to show none is left. The filter's `addr` is any of a flow's four
-- addresses, so this covers more than `conntrack -D --orig-src ADDR`: the
-- flows the host started, those it was contacted by, and through NAT those
-- whose reply tuple names it (a port forward to it, flows translated to it).
-- Run it as root, in the namespace whose table it is:
--   lua5.4 examples/cut-off-host.lua 192.168.1.104
local conntrack = require "conntrack"

local address = arg[1]
if not address then
  io.stderr:write("usage: cut-off-host.lua ADDRESS[/PREFIX]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())
local deleted, err = ct:delete{ addr = address }
if not deleted then
  io.stderr:write("cut-off-host: ", err, "\n")
  os.exit(1)
end
print(("%d flows of %s deleted"):format(deleted, address))

-- The proof: no flow of the address is left. (A host still sending opens
-- new flows at once; to keep it out, a firewall rule must drop its packets.)
local left = 0
for flow in ct:dump{ addr = address } do
  left = left + 1
  print("still there: " .. tostring(flow))
end
print(("%d flows of %s left"):format(left, address))
ct:close()
os.exit(left == 0 and 0 or 1)
