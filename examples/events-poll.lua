-- examples/events-poll.lua: conntrack events in a select() loop, next to the
-- program's other work. luasocket's socket.select takes any object with a
-- getfd() method, a subscription included. Run it in a throwaway namespace:
--   unshare -n lua5.4 examples/events-poll.lua
local conntrack = require "conntrack"
local socket = require "socket"

local ct = assert(conntrack.open())
local sub = assert(ct:events())   -- subscribe before the flows exist

local function show(flow) print(flow) end   -- a line as conntrack -E prints it
local handlers = { new = show, update = show, destroy = show,
                   overflow = function(count) print("events lost, overflow #" .. count) end }

-- The program's own work, one step per quiet tick: changes to the table.
local steps = {
  function() assert(ct:create{ proto = "udp", orig_src = "192.0.2.1", orig_dst = "198.51.100.1",
                               orig_sport = 5000, orig_dport = 53, timeout = 30 }) end,
  function() assert(ct:create{ proto = "tcp", orig_src = "192.0.2.1", orig_dst = "198.51.100.2", orig_sport = 5001,
                               orig_dport = 443, state = "ESTABLISHED", timeout = 60 }) end,
  function() assert(ct:update({ proto = "tcp", orig_src = "192.0.2.1" }, { mark = 1 })) end,
  function() assert(ct:delete{ orig_src = "192.0.2.1" }) end,
}

while true do
  local readable = socket.select({ sub }, nil, 0.1)
  if readable[sub] then
    sub:dispatch(handlers)           -- handles what is ready, never blocks
  elseif #steps > 0 then
    table.remove(steps, 1)()
  else
    break                            -- nothing left to do, nothing heard
  end
end
sub:close()
