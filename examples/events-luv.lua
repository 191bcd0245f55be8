-- examples/events-luv.lua: conntrack events in a libuv loop (luv): a poll
-- handle on the subscription's socket, a timer doing the program's work.
-- Run it in a throwaway namespace:
--   unshare -n lua5.4 examples/events-luv.lua
local conntrack = require "conntrack"
local uv = require "luv"

local ct = assert(conntrack.open())
local sub = assert(ct:events())   -- subscribe before the flows exist

local function show(flow) print(flow) end   -- a line as conntrack -E prints it
local handlers = { new = show, update = show, destroy = show,
                   overflow = function(count) print("events lost, overflow #" .. count) end }

local poll = uv.new_poll(sub:getfd())
poll:start("r", function(err)
  assert(not err, err)
  sub:dispatch(handlers)             -- handles what is ready, never blocks
end)

-- The program's own work, one step per tick: changes to the table.
local steps = {
  function() assert(ct:create{ proto = "udp", orig_src = "192.0.2.1", orig_dst = "198.51.100.1",
                               orig_sport = 5000, orig_dport = 53, timeout = 30 }) end,
  function() assert(ct:create{ proto = "tcp", orig_src = "192.0.2.1", orig_dst = "198.51.100.2", orig_sport = 5001,
                               orig_dport = 443, state = "ESTABLISHED", timeout = 60 }) end,
  function() assert(ct:update({ proto = "tcp", orig_src = "192.0.2.1" }, { mark = 1 })) end,
  function() assert(ct:delete{ orig_src = "192.0.2.1" }) end,
}
local timer = uv.new_timer()
timer:start(100, 100, function()
  local step = table.remove(steps, 1)
  if step then return step() end
  timer:close()
  poll:close()                       -- stop watching the socket before closing it
end)

uv.run()
sub:close()
