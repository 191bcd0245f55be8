-- bench/run.lua: speed and memory against conntrack-tools and plain C, on
-- the same table in the same run. Run by `make bench` inside a private
-- network namespace; never against a table you care about.
-- Usage: lua5.4 bench/run.lua [N ...]   (default 10000 100000 1000000)
package.cpath = (os.getenv("LCT_SO_DIR") or ".") .. "/?.so;" .. package.cpath
local conntrack = require "conntrack"
local socket = require "socket"

local ct = assert(conntrack.open())
local sizes = {}
for _, a in ipairs(arg) do sizes[#sizes + 1] = assert(tonumber(a), "sizes are numbers") end
if #sizes == 0 then sizes = { 10000, 100000, 1000000 } end
local have_ctl = io.open("lua/ctl.lua") ~= nil

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a"); p:close()
  return out
end

-- N synthetic flows, in batches: half of them from 10.0.0.0/9 (the prefix
-- deleted), the other half from 10.128.0.0/9 or IPv6; tcp/udp/icmp; marks
-- 0-3 (mark & 1 selects half); a few zones.
local function flow(i)
  local v6, near = i % 10 == 1 or i % 10 == 7, i % 2 == 0
  local f = { timeout = 3600, mark = i % 4, orig_sport = 1024 + i % 60000 }
  if i % 7 == 0 then f.zone = 1 elseif i % 11 == 0 then f.zone = 2 end
  if v6 then
    f.orig_src, f.orig_dst = ("fd00::%x:%x"):format(i >> 16, i & 0xffff), "fd00::1"
  else
    f.orig_src = ("10.%d.%d.%d"):format((near and 0 or 128) + (i >> 16), (i >> 8) & 255, i & 255)
    f.orig_dst = "192.0.2.1"
  end
  local p = i % 3
  if p == 0 then f.proto, f.state, f.orig_dport = "tcp", "ESTABLISHED", 443
  elseif p == 1 then f.proto, f.orig_dport = "udp", 53
  else
    f.proto, f.orig_sport = v6 and "icmpv6" or "icmp", nil
    f.icmp_type, f.icmp_code, f.icmp_id = v6 and 128 or 8, 0, i & 0xffff
  end
  return f
end

local function fill(n)
  assert(ct:flush())
  local batch = {}
  for i = 1, n do
    batch[#batch + 1] = flow(i)
    if #batch == 20000 or i == n then assert(ct:create(batch)); batch = {} end
  end
  assert(ct:count() == n, "the table holds " .. ct:count() .. " flows, not " .. n)
end

-- One run of a shell command: wall seconds, CPU seconds, peak RSS (KiB), stdout.
local function run(cmd)
  local tfile, ofile = os.tmpname(), os.tmpname()
  local t0 = socket.gettime()
  os.execute(("/usr/bin/time -f '%%U %%S %%M' -o %s sh -c %q > %s"):format(tfile, cmd, ofile))
  local wall = socket.gettime() - t0
  local f = io.open(tfile); local user, sys, rss = f:read("n", "n", "n"); f:close()
  f = io.open(ofile); local out = f:read("a"); f:close()
  os.remove(tfile); os.remove(ofile)
  return { wall = wall, cpu = user + sys, rss = rss, out = out }
end

local function stats(runs)
  local walls = {}
  for i, r in ipairs(runs) do walls[i] = r.wall end
  table.sort(walls)
  local best = runs[1]
  for _, r in ipairs(runs) do if r.wall < best.wall then best = r end end
  return { min = walls[1], median = walls[(#walls + 1) // 2], cpu = best.cpu, rss = best.rss,
           out = best.out, runs = #runs }
end

-- reps runs of cmd; setup (not measured) before each
local function measure(cmd, reps, setup)
  local runs = {}
  for i = 1, reps do
    if setup then setup() end
    runs[i] = run(cmd)
  end
  return stats(runs)
end

local results = { machine = sh("uname -srm"):gsub("\n", ""), cpus = sh("nproc"):gsub("\n", ""),
                  date = os.date("!%Y-%m-%dT%H:%M:%SZ"), sizes = {} }

local function row(t, name, m, ref)
  t[#t + 1] = { case = name, min = m.min, median = m.median, cpu = m.cpu, rss = m.rss,
                ratio = ref and m.min / ref.min or nil }
  io.write(("  %-44s %9.3f %9.3f %8.3f %9d %s\n"):format(name, m.min, m.median, m.cpu, m.rss,
    ref and ("%7.2f"):format(m.min / ref.min) or "      -"))
end

local LUA = "lua5.4 bench/cases.lua "
for _, n in ipairs(sizes) do
  local reps = n >= 1000000 and 2 or 3
  local del_reps = n >= 1000000 and 1 or 2
  local t = {}
  results.sizes[#results.sizes + 1] = { n = n, cases = t }
  io.write(("\nN = %d flows (min and median wall s, CPU s of the best run, peak RSS KiB, ratio to the reference)\n"):format(n))
  fill(n)
  local ref = measure("conntrack -L > /dev/null 2>&1", reps)
  row(t, "conntrack -L", ref)
  if have_ctl then
    row(t, "ctl.lua -L", measure("lua5.4 lua/ctl.lua -L > /dev/null 2>&1", reps), ref)
    local ext = measure("conntrack -L -o extended > /dev/null 2>&1", reps)
    row(t, "conntrack -L -o extended", ext)
    row(t, "ctl.lua -L -o extended", measure("lua5.4 lua/ctl.lua -L -o extended > /dev/null 2>&1", reps), ext)
    row(t, "ctl.lua -L -o json", measure("lua5.4 lua/ctl.lua -L -o json > /dev/null 2>&1", reps), ref)
  end
  local floor = measure("bench/floor", reps)
  assert(tonumber(floor.out) == n, "the C floor saw " .. floor.out)
  row(t, "C floor: libmnl dump + parse", floor)
  local walk = measure("bench/floor walk", reps)
  assert(tonumber(walk.out) == n, "the C walk saw " .. walk.out)
  row(t, "C walk floor: libmnl dump, no parse", walk)
  if have_ctl then
    row(t, "ctl.lua -L / walk floor", measure("lua5.4 lua/ctl.lua -L > /dev/null 2>&1", reps), walk)
  end
  local count = measure(LUA .. "count", reps)
  assert(tonumber(count.out) == n)
  row(t, "Lua: for f in ct:dump() count", count, floor)
  row(t, "Lua: ... count / walk floor", count, walk)
  local fields5 = measure(LUA .. "fields5", reps)
  row(t, "Lua: ... reading 5 fields", fields5, floor)
  row(t, "Lua: ... 5 fields / walk floor", fields5, walk)
  local top = measure(LUA .. "top_src", reps)
  assert(tonumber(top.out) == n)
  row(t, "ct:aggregate top 20 by orig_src / walk", top, walk)
  local top_all = measure(LUA .. "top_src_all", reps)
  assert(tonumber(top_all.out) == n)
  row(t, "... with no cap on groups / walk", top_all, walk)
  local grouped = measure(LUA .. "group_dport", reps)
  assert(tonumber(grouped.out) == n)
  row(t, "ct:aggregate by orig_dport (3 groups) / walk", grouped, walk)
  row(t, "Lua: predicate keeping 1%", measure(LUA .. "predicate", reps), floor)
  local user = measure(LUA .. "user_mark", reps)
  row(t, "mark filter in Lua (predicate)", user)
  row(t, "mark filter in the kernel (mark/mask)", measure(LUA .. "kernel_mark", reps), user)

  local one = measure(LUA .. "one_prefix", reps)
  assert(tonumber(one.out) == n // 2, "one prefix: " .. one.out)
  row(t, "dump{ orig_src = one prefix } (half)", one)
  local set = measure(LUA .. "prefix_set", reps)
  assert(set.out == one.out, "a set of 5,000 prefixes: " .. set.out)
  row(t, "dump{ orig_src = 5,000 prefixes }", set, one)

  local refill = function() fill(n) end
  local cd = measure("conntrack -D -s 10.0.0.0/9 > /dev/null 2>&1", del_reps, refill)
  row(t, "conntrack -D -s 10.0.0.0/9 (half)", cd)
  local ours = measure(LUA .. "delete_prefix", del_reps, refill)
  assert(tonumber(ours.out) == n // 2, "deleted " .. ours.out)
  row(t, "ct:delete{ orig_src = '10.0.0.0/9' }", ours, cd)
  local by_set = measure(LUA .. "delete_set", del_reps, refill)
  assert(tonumber(by_set.out) == n // 2, "deleted by set " .. by_set.out)
  row(t, "ct:delete{ addr = 5,000 prefixes }", by_set, ours)
  if have_ctl then
    row(t, "ctl.lua -D -s 10.0.0.0/9", measure("lua5.4 lua/ctl.lua -D -s 10.0.0.0/9 > /dev/null 2>&1",
      del_reps, refill), cd)
  end
  local cm = measure("conntrack -D -m 1/1 > /dev/null 2>&1", del_reps, refill)
  row(t, "conntrack -D -m 1/1 (half)", cm)
  local by_mark = measure(LUA .. "delete_mark", del_reps, refill)
  assert(tonumber(by_mark.out) == n // 2, "deleted by mark " .. by_mark.out)
  row(t, "ct:delete{ mark = { 1, 1 } }", by_mark, cm)
  -- the same delete in plain C, from one thread and from two, and the
  -- kernel's own delete by mark, which counts nothing
  local c_mark = measure("bench/delete_floor", del_reps, refill)
  local deleted, dump_s, delete_s = c_mark.out:match("^(%d+) (%S+) (%S+)")
  assert(tonumber(deleted) == n // 2, "the C delete floor deleted " .. c_mark.out)
  row(t, "C: dump by mark, then its deletes", c_mark, cm)
  row(t, "ct:delete{ mark } / that C floor", by_mark, c_mark)
  local c_two = measure("bench/delete_floor 2", del_reps, refill)
  assert(tonumber(c_two.out:match("^%d+")) == n // 2, "the C delete floor's 2 threads deleted " .. c_two.out)
  row(t, "C: the same, deletes from 2 threads / 1", c_two, c_mark)
  row(t, "kernel's delete by mark (no count)", measure("bench/delete_floor kernel", del_reps, refill), cm)
  io.write(("  (the C floor: its dump %s s, then its deletes %s s; from 2 threads %s s)\n"):format(
    dump_s, delete_s, c_two.out:match("(%S+)\n?$")))
end

-- An event burst: creates then a flush, watched by conntrack -E (default
-- buffer) and by a subscription with this library's defaults, side by side.
local burst = math.min(100000, sizes[#sizes])
do
  assert(ct:flush())
  local efile, ofile = os.tmpname(), os.tmpname()
  os.execute(("conntrack -E -e NEW,DESTROY > %s 2>/dev/null & echo $! > %s.pid"):format(efile, efile))
  local sub = assert(io.popen(LUA .. "events 3 > " .. ofile, "w"))
  socket.sleep(1)
  local t0 = socket.gettime()
  local batch = {}
  for i = 1, burst do
    batch[#batch + 1] = flow(i)
    if #batch == 20000 or i == burst then assert(ct:create(batch)); batch = {} end
  end
  assert(ct:flush())
  local produced = socket.gettime() - t0
  sub:close()                                   -- waits for 3 s of quiet
  os.execute(("kill $(cat %s.pid); rm -f %s.pid"):format(efile, efile))
  local theirs = tonumber(sh("grep -c . " .. efile)) or 0
  local f = io.open(ofile); local out = f:read("a"); f:close()
  local new, destroy, overflow = out:match("(%d+) (%d+) (%d+)")
  local ours = tonumber(new) + tonumber(destroy)
  os.remove(efile); os.remove(ofile)
  results.events = { burst = burst, expected = 2 * burst, conntrack_E = theirs, ours = ours,
                     our_overflows = tonumber(overflow), seconds = produced }
  io.write(("\nEvent burst of %d creates + flush (%d events in %.2f s, %.0f events/s produced)\n"):format(
    burst, 2 * burst, produced, 2 * burst / produced))
  io.write(("  conntrack -E (default buffer)  received %7d, lost %7d\n"):format(theirs, 2 * burst - theirs))
  io.write(("  ct:events{} (library default)  received %7d, lost %7d, overflows %s\n"):format(
    ours, 2 * burst - ours, overflow))
end

-- peak RSS of a full dump, largest table against smallest
local first, last = results.sizes[1], results.sizes[#results.sizes]
local function rss_of(s) for _, c in ipairs(s.cases) do if c.case:match("count") then return c.rss end end end
results.rss_ratio = rss_of(last) / rss_of(first)
io.write(("\nPeak RSS of a full Lua dump: %d KiB at N = %d, %d KiB at N = %d (ratio %.2f)\n"):format(
  rss_of(first), first.n, rss_of(last), last.n, results.rss_ratio))
local function grouped_rss(s) for _, c in ipairs(s.cases) do if c.case:match("3 groups") then return c.rss end end end
results.group_rss_ratio = grouped_rss(last) / grouped_rss(first)
io.write(("Peak RSS of a grouping into 3 groups: %d KiB at N = %d, %d KiB at N = %d (ratio %.2f)\n"):format(
  grouped_rss(first), first.n, grouped_rss(last), last.n, results.group_rss_ratio))

-- JSON, so that runs can be compared over time
local function json(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    if #v > 0 then
      for _, x in ipairs(v) do parts[#parts + 1] = json(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = ("%q:%s"):format(k, json(v[k])) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then return ("%q"):format(v)
  elseif t == "number" then return v == math.floor(v) and ("%d"):format(v) or ("%.6g"):format(v)
  end
  return tostring(v)
end
os.execute("mkdir -p bench/results")
local out = ("bench/results/%s.json"):format(os.date("!%Y%m%dT%H%M%SZ"))
local f = assert(io.open(out, "w")); f:write(json(results), "\n"); f:close()
io.write("\nresults: " .. out .. "\n")
