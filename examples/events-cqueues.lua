-- examples/events-cqueues.lua: conntrack events in a cqueues loop. A
-- subscription is pollable (pollfd, events, timeout), so cqueues.poll(sub)
-- sleeps until it is readable. Run it in a throwaway namespace:
--   unshare -n lua5.4 examples/events-cqueues.lua
local conntrack = require "conntrack"
local cqueues = require "cqueues"

local ct = assert(conntrack.open())
local sub = assert(ct:events())   -- subscribe before the flows exist

local function show(flow) print(flow) end   -- a line as conntrack -E prints it
local handlers = { new = show, update = show, destroy = show,
                   overflow = function(count) print("events lost, overflow #" .. count) end }

local loop = cqueues.new()

loop:wrap(function()                 -- the listener: stops after a quiet half second
  while cqueues.poll(sub, 0.5) == sub do
    sub:dispatch(handlers)           -- handles what is ready, never blocks
  end
end)

loop:wrap(function()                 -- the program's own work: changes to the table
  cqueues.sleep(0.1)
  assert(ct:create{ proto = "udp", orig_src = "192.0.2.1", orig_dst = "198.51.100.1",
                    orig_sport = 5000, orig_dport = 53, timeout = 30 })
  cqueues.sleep(0.1)
  assert(ct:create{ proto = "tcp", orig_src = "192.0.2.1", orig_dst = "198.51.100.2", orig_sport = 5001,
                    orig_dport = 443, state = "ESTABLISHED", timeout = 60 })
  cqueues.sleep(0.1)
  assert(ct:update({ proto = "tcp", orig_src = "192.0.2.1" }, { mark = 1 }))
  cqueues.sleep(0.1)
  assert(ct:delete{ orig_src = "192.0.2.1" })
end)

assert(loop:loop())
sub:close()
