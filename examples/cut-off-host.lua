-- examples/cut-off-host.lua: cut a host off: delete every flow of an address
-- (or a prefix, "10.0.0.0/24"), print how many went, then dump the address's
-- flows to show none is left. Covers more than `conntrack -D --orig-src ADDR`:
-- the flows the host started (original source), the flows it was contacted
-- by (original destination), and through NAT the flows whose reply tuple
-- names it (reply source: a port forward to it; reply destination: flows
-- translated to it). Run it as root, in the namespace whose table it is:
--   lua5.4 examples/cut-off-host.lua 192.168.1.104
local conntrack = require "conntrack"

local address = arg[1]
if not address then
  io.stderr:write("usage: cut-off-host.lua ADDRESS[/PREFIX]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())

-- Each filter's fields must all match, so "any of the four addresses" is
-- four deletes. A flow already gone with an earlier one is not seen again.
local FIELDS = { "orig_src", "orig_dst", "reply_src", "reply_dst" }

local deleted = 0
for _, field in ipairs(FIELDS) do
  local n, err = ct:delete{ [field] = address }
  if not n then
    io.stderr:write("cut-off-host: ", err, "\n")
    os.exit(1)
  end
  deleted = deleted + n
end
print(("%d flows of %s deleted"):format(deleted, address))

-- The proof: no flow of the address is left. (A host still sending opens
-- new flows at once; to keep it out, a firewall rule must drop its packets.)
-- A flow naming the address twice is listed once: `==` tells the same entry.
local left = {}
for _, field in ipairs(FIELDS) do
  for flow in ct:dump{ [field] = address } do
    local seen = false
    for _, other in ipairs(left) do seen = seen or other == flow end
    if not seen then
      left[#left + 1] = flow
      print("still there: " .. tostring(flow))
    end
  end
end
print(("%d flows of %s left"):format(#left, address))
ct:close()
os.exit(#left == 0 and 0 or 1)
