-- examples/top-talkers.lua: the N flows (default 10) that moved the most
-- bytes, both directions added, largest first, from one streaming dump: only
-- the N largest are kept, so memory stays small however large the table.
-- The kernel counts only with accounting on, from the flows' creation:
--   sysctl -w net.netfilter.nf_conntrack_acct=1
--   lua5.4 examples/top-talkers.lua [N]
local conntrack = require "conntrack"

local n = tonumber(arg[1] or "10")
if not n or n < 1 or n ~= math.floor(n) then
  io.stderr:write("usage: top-talkers.lua [N]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())

-- `top` is sorted, largest first, and never longer than n.
local top, counted = {}, false
for flow in ct:dump() do
  if flow.orig_bytes then counted = true end   -- nil: the kernel sent no counters
  local bytes = (flow.orig_bytes or 0) + (flow.reply_bytes or 0)
  if #top < n or bytes > top[#top].bytes then
    local i = #top
    while i >= 1 and top[i].bytes < bytes do i = i - 1 end
    table.insert(top, i + 1, { bytes = bytes, flow = flow })   -- flows outlive their loop
    top[n + 1] = nil
  end
end
ct:close()

if not counted and #top > 0 then
  io.stderr:write("top-talkers: no counters: sysctl -w net.netfilter.nf_conntrack_acct=1\n")
end
for rank, entry in ipairs(top) do
  local flow = entry.flow
  print(("%2d %12d bytes %8d packets  %s"):format(rank, entry.bytes,
        (flow.orig_packets or 0) + (flow.reply_packets or 0), tostring(flow)))
end
