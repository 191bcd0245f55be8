-- examples/top-hosts.lua: who is using the link, per host, every few
-- seconds: each source address's bytes per second in both directions, from
-- two readings of the table summed in the kernel's order by ct:aggregate
-- (memory grows with the hosts, not the flows), plus what the flows that
-- ended in between moved (their destroy events carry their last counters).
-- Needs accounting, on from the flows' creation:
--   sysctl -w net.netfilter.nf_conntrack_acct=1
--   lua5.4 examples/top-hosts.lua [SECONDS [ROUNDS]]    (default 5, for ever)
local conntrack = require "conntrack"

local interval = tonumber(arg[1] or "5")
local rounds = tonumber(arg[2] or "0")
if not interval or interval < 1 or not rounds then
  io.stderr:write("usage: top-hosts.lua [SECONDS [ROUNDS]]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())
-- subscribe before the first reading: no flow ends unseen
local ended_sub = assert(ct:events{ "destroy" })

-- host -> { orig_bytes =, reply_bytes =, flows = } of the table now
local function reading()
  local groups, summary = assert(ct:aggregate{ by = "orig_src" })
  local hosts = {}
  for _, g in ipairs(groups) do hosts[g.orig_src] = g end
  return hosts, summary.counters
end

-- os.time counts whole seconds: the readings are made as a second begins,
-- so that intervals are whole too
local start = os.time()
while os.time() == start do ended_sub:next(0.05) end
local before, counted = reading()
local round = 0
while rounds == 0 or round < rounds do
  round = round + 1
  -- the bytes of the flows that end meanwhile, by host
  local ended = {}
  local deadline = start + round * interval + 1
  while os.time() < deadline do
    local kind, flow = ended_sub:next(0.05)
    if kind == "destroy" then
      local e = ended[flow.orig_src] or { orig_bytes = 0, reply_bytes = 0 }
      e.orig_bytes = e.orig_bytes + (flow.orig_bytes or 0)
      e.reply_bytes = e.reply_bytes + (flow.reply_bytes or 0)
      ended[flow.orig_src] = e
    end
  end
  local now
  now, counted = reading()
  if not counted and next(now) then
    io.stderr:write("top-hosts: no counters: sysctl -w net.netfilter.nf_conntrack_acct=1\n")
  end
  local rows = {}
  local function add(host)
    local n, b, e = now[host] or {}, before[host] or {}, ended[host] or {}
    local function moved(k) return math.max((n[k] or 0) - (b[k] or 0) + (e[k] or 0), 0) / interval end
    rows[#rows + 1] = { host = host, flows = n.flows or 0, out = moved("orig_bytes"), back = moved("reply_bytes") }
  end
  for host in pairs(now) do add(host) end
  for host in pairs(ended) do if not now[host] then add(host) end end
  table.sort(rows, function(a, b)
    if a.out + a.back ~= b.out + b.back then return a.out + a.back > b.out + b.back end
    return a.host < b.host
  end)
  print(("%-39s %6s %12s %12s %12s"):format(os.date("%H:%M:%S"), "flows", "bytes/s", "sent/s", "received/s"))
  for _, r in ipairs(rows) do
    print(("%-39s %6d %12.0f %12.0f %12.0f"):format(r.host, r.flows, r.out + r.back, r.out, r.back))
  end
  print()
  io.stdout:flush()
  before = now
end
ended_sub:close()
ct:close()
