-- examples/top-hosts.lua: who is using the link, per host, every few
-- seconds: each source address's bytes per second in both directions, from
-- a meter of conntrack.rates (two readings of the table summed by
-- ct:aggregate, memory growing with the hosts, not the flows, plus what the
-- flows that ended in between moved, from their destroy events).
-- Needs accounting, on from the flows' creation:
--   sysctl -w net.netfilter.nf_conntrack_acct=1
--   lua5.4 examples/top-hosts.lua [SECONDS [ROUNDS]]    (default 5, for ever)
-- In a checkout, conntrack.rates is found in lua/ beside examples/.
package.path = (arg[0]:match("^(.-)[^/]*$") or "./") .. "../lua/?.lua;" .. package.path
local conntrack = require "conntrack"
local rates = require "conntrack.rates"

local interval = tonumber(arg[1] or "5")
local rounds = tonumber(arg[2] or "0")
if not interval or interval < 1 or not rounds then
  io.stderr:write("usage: top-hosts.lua [SECONDS [ROUNDS]]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())
local meter = assert(rates.new(ct, { by = "orig_src" }))

-- os.time counts whole seconds: the readings are made as a second begins,
-- so that intervals are whole
local function until_second(t)
  while os.time() < t do meter:pump(0.05) end
end
local start = os.time() + 1
until_second(start)
assert(meter:read())                  -- the first interval starts here
local round = 0
while rounds == 0 or round < rounds do
  round = round + 1
  until_second(start + round * interval)
  local hosts, info = assert(meter:read())
  if not info.counters and #hosts > 0 then
    io.stderr:write("top-hosts: no counters: sysctl -w net.netfilter.nf_conntrack_acct=1\n")
  end
  print(("%-39s %6s %12s %12s %12s"):format(os.date("%H:%M:%S"), "flows", "bytes/s", "sent/s", "received/s"))
  for _, h in ipairs(hosts) do
    print(("%-39s %6d %12.0f %12.0f %12.0f"):format(h.orig_src, h.flows, h.bytes / interval,
                                                    h.orig_bytes / interval, h.reply_bytes / interval))
  end
  print()
  io.stdout:flush()
end
meter:close()
ct:close()
