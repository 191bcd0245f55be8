-- bench/cases.lua: one measured operation per run, as its own process so
-- that time and peak RSS are its own. Usage: lua5.4 bench/cases.lua CASE.
-- Prints what it counted, which the driver checks.
package.cpath = (os.getenv("LCT_SO_DIR") or ".") .. "/?.so;" .. package.cpath
local conntrack = require "conntrack"
local ct = assert(conntrack.open())

local cases = {}

function cases.count()
  local n = 0
  for _ in ct:dump() do n = n + 1 end
  return n
end

-- five fields of every flow, as a script that looks at flows does
function cases.fields5()
  local n = 0
  for f in ct:dump() do
    local _ = f.orig_src, f.orig_dport, f.proto, f.mark, f.timeout
    n = n + 1
  end
  return n
end

-- a Lua predicate that keeps 1% of the flows
function cases.predicate()
  local n = 0
  for _ in ct:dump(function(f) return (f.orig_sport or f.icmp_id) % 100 == 0 end) do n = n + 1 end
  return n
end

-- the same selection, by the kernel (mark/mask) or by Lua
function cases.kernel_mark()
  local n = 0
  for _ in ct:dump{ mark = { 1, 3 } } do n = n + 1 end
  return n
end

function cases.user_mark()
  local n = 0
  for _ in ct:dump(function(f) return f.mark & 3 == 1 end) do n = n + 1 end
  return n
end

-- the top 20 sources (a group a flow in the benchmark's table): with the
-- default cap of 100,000 groups (the flows of later ones are summed as
-- "other"), and uncapped; and a grouping with the same 3 groups at every
-- size (for its memory)
function cases.top_src()
  local groups, summary = assert(ct:aggregate{ by = "orig_src", top = 20 })
  assert(#groups == 20)
  return summary.flows
end

function cases.top_src_all()
  local groups, summary = assert(ct:aggregate{ by = "orig_src", top = 20, max_groups = 1 << 30 })
  assert(#groups == 20 and summary.other == nil)
  return summary.flows
end

function cases.group_dport()
  local _, summary = assert(ct:aggregate{ by = "orig_dport" })
  assert(summary.groups == 3)
  return summary.flows
end

function cases.delete_prefix() return assert(ct:delete{ orig_src = "10.0.0.0/9" }) end
function cases.delete_mark() return assert(ct:delete{ mark = { 1, 1 } }) end

-- 5,000 prefixes of both families and many lengths, none matching the
-- table, and 10.0.0.0/9 (half the table): a policy's set of prefixes
local function prefix_set()
  local list = {}
  for i = 0, 4998 do
    local k = i % 5
    if k == 0 then list[#list + 1] = ("172.%d.%d.0/24"):format(16 + i % 16, i % 256)
    elseif k == 1 then list[#list + 1] = ("198.%d.%d.%d/32"):format(18 + i % 2, i % 256, (i * 7) % 256)
    elseif k == 2 then list[#list + 1] = ("100.%d.0.0/16"):format(64 + i % 64)
    elseif k == 3 then list[#list + 1] = ("2001:db8:%x::/48"):format(i)
    else list[#list + 1] = ("fd77:%x:%x::1/128"):format(i, i % 7) end
  end
  list[#list + 1] = "10.0.0.0/9"
  return list
end

function cases.one_prefix()
  local n = 0
  for _ in ct:dump{ orig_src = "10.0.0.0/9" } do n = n + 1 end
  return n
end

function cases.prefix_set()
  local n = 0
  for _ in ct:dump{ orig_src = prefix_set() } do n = n + 1 end
  return n
end

function cases.delete_set() return assert(ct:delete{ addr = prefix_set() }) end

-- counts events until `quiet` seconds pass without one
function cases.events()
  local sub = assert(ct:events{ "new", "destroy" })
  io.stdout:write("ready\n"); io.stdout:flush()
  local counts = { new = 0, destroy = 0, overflow = 0 }
  for kind in sub:each(tonumber(arg[2]) or 3) do counts[kind] = (counts[kind] or 0) + 1 end
  return ("%d %d %d"):format(counts.new, counts.destroy, counts.overflow)
end

local case = cases[arg[1]] or error("no such case: " .. tostring(arg[1]))
print(case())
