-- examples/events-uloop.lua: conntrack events in OpenWrt's uloop (libubox's
-- Lua binding): uloop.fd_add takes the subscription itself, asks it for its
-- socket with sub:getfd(), and calls back when events wait; a timer does the
-- program's work. On OpenWrt, in a throwaway namespace:
--   unshare -n lua examples/events-uloop.lua
local uloop = require "uloop"
local conntrack = require "conntrack"

uloop.init()
local ct = assert(conntrack.open())
local sub = assert(ct:events())   -- subscribe before the flows exist

local function show(flow) print(flow) end   -- a line as conntrack -E prints it
local handlers = { new = show, update = show, destroy = show,
                   overflow = function(count) print("events lost, overflow #" .. count) end }

-- When the kernel drops events (the subscription's buffer overflowed), the
-- socket reports an error, and uloop stops watching a descriptor in error
-- unless told to call back: ULOOP_ERROR_CB, libubox's uloop.h (1 << 6), which
-- its Lua binding does not export. dispatch reads the error as "overflow".
local ULOOP_ERROR_CB = uloop.ULOOP_ERROR_CB or 64

-- The callback gets back the object given to fd_add (the subscription) and
-- what it is ready for (uloop.ULOOP_READ; 0 when only the error is pending).
local watch = uloop.fd_add(sub, function(s, events)
  s:dispatch(handlers)               -- handles what is ready, never blocks
end, uloop.ULOOP_READ + ULOOP_ERROR_CB)

-- The program's own work, one step per tick: changes to the table.
local steps = {
  function() assert(ct:create{ proto = "udp", orig_src = "192.0.2.1", orig_dst = "198.51.100.1",
                               orig_sport = 5000, orig_dport = 53, timeout = 30 }) end,
  function() assert(ct:create{ proto = "tcp", orig_src = "192.0.2.1", orig_dst = "198.51.100.2", orig_sport = 5001,
                               orig_dport = 443, state = "ESTABLISHED", timeout = 60 }) end,
  function() assert(ct:update({ proto = "tcp", orig_src = "192.0.2.1" }, { mark = 1 })) end,
  function() assert(ct:delete{ orig_src = "192.0.2.1" }) end,
}
local tick
tick = uloop.timer(function()
  local step = table.remove(steps, 1)
  if step then
    step()
    tick:set(100)                    -- uloop timers fire once: set it again
  else
    watch:delete()                   -- stop watching the socket before closing it
    uloop.cancel()
  end
end, 100)

uloop.run()
sub:close()
