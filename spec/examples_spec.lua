-- spec/examples_spec.lua: the examples users copy, each run as a user runs
-- it (its own process, with the Lua under test: LCT_LUA) on the test
-- namespace's table, and what it prints and leaves behind checked: cutting a
-- host off, a live log, a policy daemon, top talkers, --where, JSON into jq,
-- events in OpenWrt's real uloop (libubox, built for lua5.1 and LuaJIT).
local ns = require "spec.helpers.ns"
local socket = require "socket"

local LUA = ns.LUA or os.getenv("LCT_LUA") or "lua5.4"
-- Child processes load the plain build of the Lua under test (see spec/helpers/ns.lua).
local ENV = ("LUA_CPATH='%s/?.so;;' LUA=%s "):format(ns.CHILD_SO_DIR or ".", LUA)

local clock = socket.gettime

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

local function file_lines(path)
  local f = io.open(path)
  if not f then return {} end
  local text = f:read("*a"); f:close()
  return lines_of(text)
end

-- Polls pred every 20 ms for up to `seconds`; whether it became true.
local function eventually(pred, seconds)
  local deadline = clock() + seconds
  repeat
    if pred() then return true end
    socket.sleep(0.02)
  until clock() > deadline
  return pred() and true or false
end

-- what to undo after the test (spec/helpers/common.lua)
local common = require "spec.helpers.common"
local cleanup = common.undo
after_each(function() pcall(common.undo_all) end)

-- Runs a command line with stdin closed and a deadline: stdout, stderr, status.
local function run(cmd)
  return ns.run(ENV .. "timeout -s KILL 30 " .. cmd .. " </dev/null")
end

-- An example running alongside, killed after 30 s whatever happens: its
-- pid, its output so far, whether it has ended, its exit status. Stop it
-- with cleanup(proc.stop).
local function start(cmd)
  local base = os.tmpname()
  local proc = { out = base .. ".out", err = base .. ".err" }
  local pidfile, statusfile = base .. ".pid", base .. ".status"
  local program = ("sh -c %s"):format(q("echo $$ >" .. pidfile .. "; exec " .. cmd))
  os.execute(("(%stimeout -s KILL 30 %s >%s 2>%s </dev/null; echo $? >%s) >/dev/null 2>&1 &")
    :format(ENV, program, proc.out, proc.err, statusfile))
  assert(eventually(function() proc.pid = tonumber(file_lines(pidfile)[1]); return proc.pid end, 5),
         "did not start: " .. cmd)
  function proc.lines() return file_lines(proc.out) end
  function proc.stderr() return table.concat(file_lines(proc.err), "\n") end
  function proc.status() return tonumber(file_lines(statusfile)[1]) end
  function proc.wait(seconds) return eventually(function() return proc.status() ~= nil end, seconds) end
  function proc.signal(name) os.execute(("kill -%s %d 2>/dev/null"):format(name, proc.pid)) end
  function proc.stop()
    if not proc.status() then proc.signal("TERM"); proc.signal("CONT") end
    proc.wait(5)
    for _, path in ipairs{ base, proc.out, proc.err, pidfile, statusfile } do os.remove(path) end
  end
  return proc
end

-- What a line of conntrack -L or -E shows, the timeout (which counts down) cut out.
local function without_timeout(line)
  return (line:gsub("^(%s*%S+%s+%d+ )%d+ ", "%1T "))
end

-- A kernel entry's identity, as a string a set can hold.
local function identity(flow)
  return ("%s %s %s %s %s zone=%s"):format(flow.proto, flow.orig_src, flow.orig_dst,
    flow.orig_sport or flow.icmp_id, flow.orig_dport or flow.icmp_type, flow.zone or 0)
end

local TUPLE_KEYS = { "proto", "orig_src", "orig_dst", "orig_sport", "orig_dport", "icmp_type", "icmp_code",
                     "icmp_id", "zone" }

-- What ct:get needs of the fields a flow was created with.
local function tuple_of(fields)
  local t = {}
  for _, k in ipairs(TUPLE_KEYS) do t[k] = fields[k] end
  return t
end

-- The identities of the flows in the table.
local function table_set(handle)
  local set = {}
  for flow in handle:dump() do set[identity(flow)] = true end
  return set
end

-- Accounting on (1) or off (0) for the flows created from now on, as it was
-- again after the test, so that later specs find the namespace unchanged.
local ACCT = "/proc/sys/net/netfilter/nf_conntrack_acct"
local function accounting(value)
  local before = assert(file_lines(ACCT)[1], "no " .. ACCT)
  cleanup(function() os.execute("sysctl -qw net.netfilter.nf_conntrack_acct=" .. before) end)
  local _, err, status = ns.run("sysctl -qw net.netfilter.nf_conntrack_acct=" .. value)
  assert(status == 0, err)
end

-- Loopback traffic tracked and counted, for the examples that need counters.
local function track_and_count_loopback()
  cleanup(function() os.execute("nft delete table inet lct_track 2>/dev/null") end)
  local _, err, status = ns.run("nft -f examples/track-loopback.nft")
  assert(status == 0, err)
  accounting(1)
end

local udp_exchange = common.udp_exchange

-- `bytes` bytes over a loopback TCP connection; the client's port and the server's.
local function tcp_exchange(bytes)
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, server_port = server:getsockname()
  local client = assert(socket.connect("127.0.0.1", server_port))
  local _, client_port = client:getsockname()
  local peer = assert(server:accept())
  assert(client:send(("z"):rep(bytes)))
  assert.equal(bytes, #assert(peer:receive(bytes)))
  client:close(); peer:close(); server:close()
  return tonumber(client_port), tonumber(server_port)
end

local function tcp(src, dst, sport, dport, extra)
  local f = { proto = "tcp", orig_src = src, orig_dst = dst, orig_sport = sport, orig_dport = dport,
              state = "ESTABLISHED", timeout = 600 }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

local function udp(src, dst, sport, dport, extra)
  local f = { proto = "udp", orig_src = src, orig_dst = dst, orig_sport = sport, orig_dport = dport, timeout = 600 }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

local ct
before_each(function() ct = ns.fresh() end)
after_each(function() ns.fresh() end)

describe("examples/cut-off-host.lua", function()
  local HOST = "10.0.0.1"
  local OF_HOST = {
    tcp(HOST, "10.0.0.2", 1000, 80),                                    -- it started
    udp("10.0.0.3", HOST, 5353, 53),                                    -- it was contacted
    { proto = "icmp", orig_src = HOST, orig_dst = "10.0.0.2", icmp_type = 8, icmp_code = 0, icmp_id = 7,
      timeout = 30 },
    tcp("10.0.0.5", "203.0.113.1", 1001, 80, { reply_src = HOST, reply_dst = "10.0.0.5", reply_sport = 8080,
                                               reply_dport = 1001 }),  -- a port forward to it
    udp("10.0.0.6", "198.51.100.9", 1002, 123, { reply_src = "198.51.100.9", reply_dst = HOST,
                                                 reply_sport = 123, reply_dport = 1002 }),  -- translated to it
  }
  local OTHERS = {
    tcp("10.0.0.3", "10.0.0.4", 1000, 80),
    tcp("10.0.0.10", "10.0.0.2", 1000, 80),                             -- an address it is a prefix of
    udp("10.0.0.5", "10.0.0.11", 1003, 53),
    tcp("fd00::1", "fd00::2", 1000, 443),
  }

  it("deletes the flows of the address on either side and through NAT, and shows none is left", function()
    assert.equal(#OF_HOST, ct:create(OF_HOST))
    assert.equal(#OTHERS, ct:create(OTHERS))
    local out, err, status = run(LUA .. " examples/cut-off-host.lua " .. HOST)
    assert.equal(0, status, err)
    assert.equal("5 flows of 10.0.0.1 deleted\n0 flows of 10.0.0.1 left\n", out)
    assert.equal("", err)
    local left = table_set(ct)
    local want = {}
    for _, f in ipairs(OTHERS) do want[identity(f)] = true end
    assert.same(want, left)
  end)

  it("takes an IPv6 address in any spelling, and flows in zones", function()
    assert.equal(4, ct:create{
      tcp("fd00::1", "fd00::2", 1000, 22, { zone = 3 }),
      udp("fd00::9", "fd00::1", 1001, 53),
      tcp("fd00::10", "fd00::2", 1000, 22),
      tcp(HOST, "10.0.0.2", 1000, 80),
    })
    local out, err, status = run(LUA .. " examples/cut-off-host.lua fd00:0:0::1")
    assert.equal(0, status, err)
    assert.equal("2 flows of fd00:0:0::1 deleted\n0 flows of fd00:0:0::1 left\n", out)
    assert.same({ ["tcp fd00::10 fd00::2 1000 22 zone=0"] = true, ["tcp 10.0.0.1 10.0.0.2 1000 80 zone=0"] = true },
                table_set(ct))
  end)

  it("without an address prints its usage, exits 2 and deletes nothing", function()
    assert.equal(#OTHERS, ct:create(OTHERS))
    local out, err, status = run(LUA .. " examples/cut-off-host.lua")
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("usage: cut-off-host.lua ADDRESS[/PREFIX]\n", err)
    assert.equal(#OTHERS, ct:count())
  end)
end)

describe("examples/live-log.lua", function()
  local HOST, OTHER, PROBE_DST = "10.7.0.1", "10.7.0.2", "10.7.9.9"

  it("prints only the host's events, in order, each after a timestamp, and ends after the quiet time", function()
    local log = start(LUA .. " examples/live-log.lua " .. HOST .. " 1")
    cleanup(log.stop)
    -- it listens once it prints the creation of a probe flow of the host
    local listening = false
    for port = 1, 50 do
      assert(ct:create(udp(HOST, PROBE_DST, port, 9)))
      listening = eventually(function() return #log.lines() > 0 end, 0.1)
      if listening then break end
    end
    assert(listening, "live-log printed nothing: " .. log.stderr())

    local sub = assert(ct:events{ filter = { orig_src = HOST } })   -- what it should print
    local t0 = clock()
    assert(ct:create(tcp(HOST, "10.7.0.9", 1000, 80)))
    assert(ct:create(tcp(OTHER, "10.7.0.9", 1000, 80)))
    assert(ct:create(udp(OTHER, HOST, 1000, 53)))                   -- to the host: not --orig-src
    assert.equal(1, ct:update({ proto = "tcp", orig_src = HOST }, { mark = 5 }))
    assert(ct:create(udp(HOST, "10.7.0.9", 1001, 53)))
    assert(ct:delete{ orig_src = OTHER })
    assert(ct:delete{ proto = "tcp", orig_src = HOST })
    assert(ct:delete{ proto = "udp", orig_src = HOST, orig_dport = 53 })
    local t1 = clock()
    local expected = {}
    for _, flow in sub:each(0.2) do expected[#expected + 1] = tostring(flow) end
    sub:close()

    assert(log.wait(5), "live-log did not end after 1 s without events")
    assert.equal(0, log.status(), log.stderr())
    local lines, summaries, last = {}, {}, 0
    for _, line in ipairs(log.lines()) do
      local sec, usec, rest = line:match("^%[(%d+)%.(%d%d%d%d%d%d)%]\t(.*)$")
      assert(sec, "no timestamp: " .. line)
      if not rest:find("dst=" .. PROBE_DST, 1, true) then
        local time = tonumber(sec) + tonumber(usec) / 1e6
        assert.is_true(time >= t0 - 1 and time <= t1 + 1, line)
        assert.is_true(time >= last, "out of order: " .. line)
        last = time
        lines[#lines + 1] = rest
        local tag, proto, src, sport = rest:match("^%s*%[(%u+)%] (%l+) .- src=(%S+) .- sport=(%d+) ")
        summaries[#summaries + 1] = ("%s %s %s %s"):format(tag, proto, src, sport)
      end
    end
    assert.same({ "NEW tcp 10.7.0.1 1000", "UPDATE tcp 10.7.0.1 1000", "NEW udp 10.7.0.1 1001",
                  "DESTROY tcp 10.7.0.1 1000", "DESTROY udp 10.7.0.1 1001" }, summaries)
    assert.same(expected, lines)                                    -- as conntrack -E prints them
  end)

  it("refuses a duration that is no number with its usage and exit status 2", function()
    local out, err, status = run(LUA .. " examples/live-log.lua " .. HOST .. " soon")
    assert.equal(2, status)
    assert.equal("", out)
    assert.equal("usage: live-log.lua ADDRESS[/PREFIX] [SECONDS]\n", err)
  end)
end)

describe("examples/policy-daemon.lua", function()
  local MARK = 0x22
  local SETTINGS = "LOCAL_PREFIXES=10.0.0.0/8,fd00::/8 UDP_IDLE=5 SWEEP=1 "

  -- The daemon, listening once it has logged its settings; it stops after
  -- `quiet` seconds without events (2 unless given).
  local function daemon(settings, quiet)
    local proc = start("env " .. settings .. LUA .. " examples/policy-daemon.lua " .. (quiet or 2))
    cleanup(proc.stop)
    assert(eventually(function() return (proc.lines()[1] or ""):find("policy daemon: local", 1, true) end, 5),
           "the daemon did not start: " .. proc.stderr())
    return proc
  end

  local function log_of(proc)
    local list = {}
    for i, line in ipairs(proc.lines()) do
      list[i] = assert(line:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d (.*)$"), "no date: " .. line)
    end
    return list
  end

  local function find(list, pattern)
    for _, line in ipairs(list) do
      if line:match(pattern) then return line end
    end
  end

  it("marks SSH from outside only, caps idle UDP timeouts, logs each end with its counts", function()
    track_and_count_loopback()
    local proc = daemon(SETTINGS)
    local FLOWS = {
      outside4 = tcp("198.51.100.7", "10.0.0.2", 40000, 22),
      inside4 = tcp("10.1.1.1", "10.0.0.2", 40001, 22),
      outside6 = tcp("2001:db8::7", "fd00::2", 40002, 22),
      inside6 = tcp("fd00::5", "fd00::2", 40003, 22),
      web = tcp("198.51.100.7", "10.0.0.2", 40004, 80),
      from_ssh_port = tcp("198.51.100.7", "10.0.0.2", 22, 2222),
      dns = udp("10.1.1.1", "10.0.0.53", 40005, 53),
      short = udp("10.1.1.1", "10.0.0.53", 40006, 53, { timeout = 3 }),
    }
    for _, f in pairs(FLOWS) do assert(ct:create(f)) end
    -- real traffic, then its end: 3 x 100 bytes out, 1 x 50 back
    local client_port, server_port = udp_exchange(3, 100, 1, 50)
    assert.equal(1, ct:delete{ proto = "udp", orig_src = "127.0.0.1", orig_sport = client_port })

    -- the daemon handles events in order: once the end is logged, every new flow was seen
    local ended = ("^end: udp 127%%.0%%.0%%.1:%d %%-> 127%%.0%%.0%%.1:%d "):format(client_port, server_port)
    assert(eventually(function() return find(log_of(proc), ended) end, 5), "no end logged")
    local function get(name) return assert(ct:get(tuple_of(FLOWS[name]))) end
    local function mark(name) return get(name).mark end
    assert.equal(MARK, mark("outside4"))
    assert.equal(MARK, mark("outside6"))
    for _, name in ipairs{ "inside4", "inside6", "web", "from_ssh_port", "dns" } do
      assert.equal(0, mark(name), name)
    end
    assert(eventually(function() return get("dns").timeout <= 5 end, 5), "the UDP timeout was not capped")
    assert.is_true(get("short").timeout <= 3)
    for _, name in ipairs{ "outside4", "inside4", "web" } do
      assert.is_true(get(name).timeout > 500, name)   -- TCP is left alone
    end

    assert(proc.wait(6), "the daemon did not stop after 2 s without events")
    assert.equal(0, proc.status(), proc.stderr())
    local log = log_of(proc)
    assert.equal(("end: udp 127.0.0.1:%d -> 127.0.0.1:%d packets 3/1 bytes 384/78"):format(client_port, server_port),
                 find(log, ended))
    local marked = {}
    for _, line in ipairs(log) do
      if line:match("^ssh from outside") then marked[#marked + 1] = line end
    end
    table.sort(marked)
    assert.same({ "ssh from outside: 198.51.100.7:40000 -> 10.0.0.2:22 marked 0x22",
                  "ssh from outside: [2001:db8::7]:40002 -> [fd00::2]:22 marked 0x22" }, marked)
    assert.truthy(find(log, "^udp: %d+ flows now expire after 5 s of silence$"))
    assert.equal("policy daemon: 2 s without events, stopping", log[#log])
  end)

  it("stops cleanly on SIGTERM, as procd stops it, and on Ctrl-C (SIGINT)", function()
    for _, name in ipairs{ "TERM", "INT" } do
      local proc = daemon(SETTINGS, 60)
      proc.signal(name)
      assert(proc.wait(5), "the daemon did not stop on SIG" .. name)
      assert.equal(0, proc.status(), proc.stderr())
      assert.equal("", proc.stderr())
      local log = log_of(proc)
      assert.equal("policy daemon: SIG" .. name .. ", stopping", log[#log])
    end
  end)

  it("reads the settings procd's script wrote again on SIGHUP, and goes on with them", function()
    local dir = os.tmpname()
    os.remove(dir)
    cleanup(function() os.execute("rm -rf " .. q(dir)) end)
    local settings = dir .. "/settings.env"
    -- the file as examples/openwrt/conntrack-policy writes it from UCI
    local function write(mark)
      local stubs = ("config_load() { :; }; config_get() { case $3 in ssh_mark) eval \"$1=%s\";; " ..
                     "local_prefixes) eval \"$1=10.0.0.0/8\";; *) eval \"$1=\";; esac; }; "):format(mark)
      local _, err, status = ns.run(("sh -c %s"):format(q(". ./examples/openwrt/conntrack-policy; SETTINGS=" ..
                                                        settings .. "; " .. stubs .. "write_settings")))
      assert(status == 0, err)
    end
    write("0x23")
    local proc = daemon("SETTINGS=" .. settings .. " SSH_MARK=0x99 ", 60)
    local first = tcp("198.51.100.7", "10.0.0.2", 40000, 22)
    assert(ct:create(first))
    assert(eventually(function() return ct:get(tuple_of(first)).mark == 0x23 end, 5), "not marked 0x23")
    write("0x24")
    proc.signal("HUP")
    assert(eventually(function() return find(log_of(proc), "^settings read again") end, 5), "nothing logged on SIGHUP")
    assert.equal("settings read again: local 10.0.0.0/8, ssh mark 0x24, udp idle 30 s",
                 find(log_of(proc), "^settings read again"))
    local second = tcp("198.51.100.7", "10.0.0.2", 40001, 22)
    assert(ct:create(second))
    assert(eventually(function() return ct:get(tuple_of(second)).mark == 0x24 end, 5), "not marked 0x24")
    assert.equal(0x23, ct:get(tuple_of(first)).mark)
    proc.signal("TERM")
    assert(proc.wait(5), "the daemon did not stop on SIGTERM")
    assert.equal(0, proc.status(), proc.stderr())
  end)

  it("survives lost events: logs the overflow, re-reads the table and marks the SSH flows it missed", function()
    local proc = daemon(SETTINGS .. "EVENT_BUFFER=4096 ")
    -- stopped while the burst comes, it surely loses events, and re-reads a table that no longer changes
    proc.signal("STOP")
    local burst = {}
    for i = 1, 1000 do
      burst[#burst + 1] = tcp("198.51.100." .. (i % 250 + 1), "10.0.0.2", 10000 + i, 22)   -- outside
      burst[#burst + 1] = tcp("10.9.0." .. (i % 250 + 1), "10.0.0.2", 10000 + i, 22)       -- inside
    end
    assert.equal(2000, ct:create(burst))
    proc.signal("CONT")
    assert(proc.wait(15), "the daemon did not stop after the burst")
    assert.equal(0, proc.status(), proc.stderr())
    local log = log_of(proc)
    assert.truthy(find(log, "^events lost %(overflow 1%): reading the table again$"), table.concat(log, "\n"))
    assert.truthy(find(log, "^table read again: policy applied$"))
    local outside, inside = 0, 0
    for flow in ct:dump{ proto = "tcp", orig_dport = 22 } do
      if flow.orig_src:match("^198%.51%.100%.") then
        assert.equal(MARK, flow.mark, tostring(flow))
        outside = outside + 1
      else
        assert.equal(0, flow.mark, tostring(flow))
        inside = inside + 1
      end
    end
    assert.same({ 1000, 1000 }, { outside, inside })
  end)
end)

describe("examples/top-talkers.lua", function()
  -- "rank bytes packets sport" of each line it prints
  local function ranks(out)
    local list = {}
    for _, line in ipairs(lines_of(out)) do
      local rank, bytes, packets, flow = line:match("^%s*(%d+)%s+(%d+) bytes%s+(%d+) packets  (.*)$")
      assert(rank, "unexpected line: " .. line)
      list[#list + 1] = { rank = tonumber(rank), bytes = tonumber(bytes), packets = tonumber(packets),
                          sport = tonumber(flow:match(" sport=(%d+) ")), line = flow }
    end
    return list
  end

  it("prints the N flows with the most bytes, largest first", function()
    track_and_count_loopback()
    local tcp_port = tcp_exchange(100000)
    local big = udp_exchange(5, 1000)                -- 5 x 1028 bytes
    local middle = udp_exchange(3, 300)              -- 3 x 328
    local small = udp_exchange(1, 10)                -- 1 x 38
    assert(ct:create(udp("10.0.0.1", "10.0.0.2", 1, 53)))   -- no traffic: 0 bytes

    local out, err, status = run(LUA .. " examples/top-talkers.lua 3")
    assert.equal(0, status, err)
    local top = ranks(out)
    assert.equal(3, #top, out)
    assert.equal(tcp_port, top[1].sport)
    assert.is_true(top[1].bytes > 100000, out)
    assert.same({ 2, 5140, 5, big }, { top[2].rank, top[2].bytes, top[2].packets, top[2].sport })
    assert.same({ 3, 984, 3, middle }, { top[3].rank, top[3].bytes, top[3].packets, top[3].sport })
    for flow in ct:dump{ proto = "udp", orig_sport = big } do   -- the line conntrack -L prints
      assert.equal(without_timeout(tostring(flow)), without_timeout(top[2].line))
    end

    out, err, status = run(LUA .. " examples/top-talkers.lua")   -- 10 by default: all 5
    assert.equal(0, status, err)
    local all = ranks(out)
    local sports = {}
    for i, entry in ipairs(all) do sports[i] = entry.sport end
    assert.same({ tcp_port, big, middle, small, 1 }, sports)
    assert.same({ 38, 0 }, { all[4].bytes, all[5].bytes })
  end)

  it("says how to turn accounting on when the kernel sends no counters", function()
    accounting(0)
    assert(ct:create(udp("10.0.0.1", "10.0.0.2", 1, 53)))
    local out, err, status = run(LUA .. " examples/top-talkers.lua")
    assert.equal(0, status, err)
    assert.equal("top-talkers: no counters: sysctl -w net.netfilter.nf_conntrack_acct=1\n", err)
    assert.equal(1, #ranks(out))
  end)
end)

describe("examples/top-hosts.lua", function()
  it("prints each host's bytes per second, counting a flow that ended in the interval", function()
    track_and_count_loopback()
    local proc = start(LUA .. " examples/top-hosts.lua 2 2")
    cleanup(proc.stop)
    os.execute("sleep 1.5")                 -- it reads the table first as the next second begins
    udp_exchange(10, 1000)                  -- 10 x 1028 bytes in the first interval
    local gone = udp_exchange(4, 500)       -- 4 x 528 bytes, from a flow deleted at once
    assert.equal(1, ct:delete{ proto = "udp", orig_sport = gone })
    assert.is_true(proc.wait(8), "still running")
    assert.equal(0, proc.status(), proc.stderr())
    local lines = proc.lines()
    assert.matches("^%d%d:%d%d:%d%d +flows +bytes/s +sent/s +received/s$", lines[1])
    -- (10 x 1028 + 4 x 528) / 2 s, all sent by 127.0.0.1
    local flows, rate, sent, received = lines[2]:match("^127%.0%.0%.1 +(%d+) +(%d+) +(%d+) +(%d+)$")
    assert.same({ "1", "6196", "6196", "0" }, { flows, rate, sent, received }, table.concat(lines, "\n"))
    -- in the second interval nothing moved
    assert.matches("^127%.0%.0%.1 +1 +0 +0 +0$", lines[4] or "", table.concat(lines, "\n"))
  end)
end)

describe("examples/where-oneliner.sh", function()
  local MATCH = {
    tcp("10.0.0.1", "10.0.0.2", 1000, 8080, { timeout = 30 }),
    tcp("10.0.0.1", "10.0.0.2", 1001, 8999, { timeout = 59 }),
    tcp("10.0.0.1", "10.0.0.2", 1002, 8000, { timeout = 10 }),
    tcp("fd00::1", "fd00::2", 1003, 8443, { timeout = 20 }),
  }
  local OTHERS = {
    tcp("10.0.0.1", "10.0.0.2", 1004, 8080, { timeout = 300 }),
    tcp("10.0.0.1", "10.0.0.2", 1005, 9000, { timeout = 30 }),
    tcp("10.0.0.1", "10.0.0.2", 1006, 7999, { timeout = 30 }),
    udp("10.0.0.1", "10.0.0.2", 1007, 8080, { timeout = 30 }),
    { proto = "icmp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", icmp_type = 8, icmp_code = 0, icmp_id = 1,
      timeout = 30 },
  }

  -- the lines of a dump (a get's would read use=2: the kernel holds the entry while it answers)
  local function expected_lines(flows)
    local want, lines = {}, {}
    for _, f in ipairs(flows) do want[identity(f)] = true end
    for flow in ct:dump() do
      if want[identity(flow)] then lines[#lines + 1] = without_timeout(tostring(flow)) end
    end
    assert.equal(#flows, #lines)
    table.sort(lines)
    return lines
  end

  local function printed(out)
    local lines = {}
    for i, line in ipairs(lines_of(out)) do lines[i] = without_timeout(line) end
    table.sort(lines)
    return lines
  end

  it("lists the TCP flows to ports 8000-8999 that expire within a minute", function()
    assert.equal(#MATCH, ct:create(MATCH))
    assert.equal(#OTHERS, ct:create(OTHERS))
    local out, err, status = run("sh examples/where-oneliner.sh")
    assert.equal(0, status, err)
    assert.same(expected_lines(MATCH), printed(out))
    assert.matches(": 4 flow entries have been shown%.\n$", err)
  end)

  it("adds its arguments to the command line", function()
    assert.equal(#MATCH, ct:create(MATCH))
    local out, err, status = run("sh examples/where-oneliner.sh -f ipv6")
    assert.equal(0, status, err)
    assert.same(expected_lines{ MATCH[4] }, printed(out))
  end)
end)

describe("examples/json-jq.sh", function()
  it("counts the flows of each source address with jq, most first", function()
    local _, _, has_jq = ns.run("command -v jq")
    assert(has_jq == 0, "jq is not installed (apt-get install jq)")
    assert.equal(8, ct:create{
      udp("10.0.0.1", "10.0.0.2", 1, 53), udp("10.0.0.1", "10.0.0.2", 2, 53), tcp("10.0.0.1", "10.0.0.3", 3, 80),
      tcp("fd00::1", "fd00::2", 1, 80), udp("fd00::1", "fd00::2", 2, 53),
      tcp("10.0.0.2", "10.0.0.1", 1, 80), tcp("10.0.0.2", "10.0.0.1", 2, 80),
      udp("192.0.2.9", "10.0.0.1", 1, 53),
    })
    local out, err, status = run("sh examples/json-jq.sh")
    assert.equal(0, status, err)
    assert.equal("3\t10.0.0.1\n2\t10.0.0.2\n2\tfd00::1\n1\t192.0.2.9\n", out)
  end)
end)

describe("examples/dashboard-feed.sh", function()
  it("keeps the latest reading of the busiest hosts in a file, as one JSON object", function()
    local json = require "dkjson"
    assert.equal(4, ct:create{
      udp("10.0.0.1", "10.0.0.2", 1, 53), udp("10.0.0.1", "10.0.0.2", 2, 53), tcp("fd00::1", "fd00::2", 1, 80),
      tcp("10.0.0.2", "10.0.0.1", 1, 80),
    })
    local file = os.tmpname()
    local _, err, status = run("timeout 20 sh examples/dashboard-feed.sh " .. file .. " 1 2")
    assert.equal(0, status, err)
    local lines = file_lines(file)
    os.remove(file)
    assert.equal(1, #lines, table.concat(lines, "\n"))
    local reading = assert(json.decode(lines[1]))
    assert.equal(4, reading.flows)
    assert.equal(1, reading.interval)
    local flows = {}
    for _, g in ipairs(reading.groups) do flows[g.orig_src] = g.flows end
    assert.same({ ["10.0.0.1"] = 2, ["10.0.0.2"] = 1, ["fd00::1"] = 1 }, flows)
  end)
end)

-- OpenWrt's own uloop (libubox's Lua binding, Lua 5.1 C API) on lua5.1 and
-- LuaJIT, whatever Lua runs the suite: spec/helpers/build-uloop.sh builds it
-- into build/LUA/ beside the module `make LUA=...` builds there, and the
-- example runs with that directory first on LUA_CPATH.
for _, ulua in ipairs{ "lua5.1", "luajit" } do
  describe(("examples/events-uloop.lua on %s and OpenWrt's uloop"):format(ulua), function()
    local built   -- true once built, or what the build printed

    -- Runs `ulua -e prelude [file]` with the module and uloop built for ulua (built on first use).
    local function run_uloop(prelude, file)
      if built == nil then
        local out, err, status = ns.run(("MAKEFLAGS= make -s LUA=%s && sh spec/helpers/build-uloop.sh %s")
                                          :format(ulua, ulua))
        built = status == 0 or (out .. err)
      end
      assert(built == true, "cannot build conntrack.so and uloop.so for " .. ulua .. ":\n" .. tostring(built))
      return ns.run(("LUA_CPATH='build/%s/?.so;;' timeout -s KILL 30 %s -e %s %s </dev/null")
                      :format(ulua, ulua, q((prelude:gsub("\n%s*", " "))), file or ""))
    end

    -- The real uloop, its fd callbacks counted on stderr at the end of run.
    local COUNT_CALLBACKS = [[local uloop = require "uloop"
      local fd_add, run, calls = uloop.fd_add, uloop.run, 0
      uloop.fd_add = function(obj, cb, flags)
        return fd_add(obj, function(...) calls = calls + 1; return cb(...) end, flags)
      end
      uloop.run = function() local r = run(); io.stderr:write("callbacks ", calls, "\n"); return r end]]

    -- The example's own flows, as "[TAG] proto sport" in the order printed.
    local function summaries(lines)
      local list = {}
      for _, line in ipairs(lines) do
        local tag, proto, src, sport = line:match("^%s*(%[%u+%]) (%l+) .- src=(%S+) .- sport=(%d+) ")
        if src == "192.0.2.1" then list[#list + 1] = ("%s %s %s"):format(tag, proto, sport) end
      end
      return list
    end

    it("prints the events of its flows through uloop's fd callback, then ends", function()
      local out, err, status = run_uloop(COUNT_CALLBACKS, "examples/events-uloop.lua")
      assert.equal(0, status, err)
      local lines = lines_of(out)
      assert.equal(5, #lines, out)
      for _, line in ipairs(lines) do
        assert.matches("^%s*%[%u+%] %l+ .* src=192%.0%.2%.1 .* %[USERSPACE%] portid=%d+$", line)
      end
      local got = summaries(lines)
      local destroys = { got[4], got[5] }
      table.sort(destroys)
      assert.same({ "[NEW] udp 5000", "[NEW] tcp 5001", "[UPDATE] tcp 5001" }, { got[1], got[2], got[3] })
      assert.same({ "[DESTROY] tcp 5001", "[DESTROY] udp 5000" }, destroys)
      -- four steps, 100 ms apart, each makes events the callback handles before the next
      local calls = tonumber(err:match("callbacks (%d+)"))
      assert.is_true(calls and calls >= 4, err)
      assert.equal(0, ct:count())
    end)

    -- uloop stops watching a descriptor the kernel flags with an error (an
    -- overflow is ENOBUFS) unless fd_add was given ULOOP_ERROR_CB.
    it("keeps printing events after the kernel dropped some for it", function()
      -- conntrack.open gives a handle whose subscriptions have a small buffer, overflowed at once
      local SMALL_BUFFER = [[local conntrack = require "conntrack"
        local open = conntrack.open
        conntrack.open = function(...)
          local ct = assert(open(...))
          return setmetatable({ events = function(_)
            local sub = assert(ct:events{ buffer = 4096 })
            for port = 1, 300 do
              assert(ct:create{ proto = "udp", orig_src = "192.0.2.9", orig_dst = "198.51.100.9", orig_sport = port,
                                orig_dport = 53, timeout = 30 })
            end
            return sub
          end }, { __index = function(_, name) return function(_, ...) return ct[name](ct, ...) end end })
        end]]
      local out, err, status = run_uloop(SMALL_BUFFER, "examples/events-uloop.lua")
      assert.equal(0, status, err)
      local lines = lines_of(out)
      local lost
      for i, line in ipairs(lines) do
        if line:match("^events lost, overflow #1$") then lost = i end
      end
      assert(lost, "the burst overflowed nothing, the test proves nothing:\n" .. out)
      local after = summaries({ select(lost + 1, (table.unpack or unpack)(lines)) })
      assert.same({ "[NEW] tcp 5001", "[UPDATE] tcp 5001" }, { after[#after - 3], after[#after - 2] })
      local destroys = { after[#after - 1], after[#after] }
      table.sort(destroys)
      assert.same({ "[DESTROY] tcp 5001", "[DESTROY] udp 5000" }, destroys)
    end)

    -- What the example relies on: fd_add takes the subscription (a userdata)
    -- and asks it for its descriptor by getfd; a table is refused.
    it("is the real uloop: takes the subscription, hands it back with ULOOP_READ, refuses a table", function()
      local out, err, status = run_uloop([[local uloop = require "uloop"
        local conntrack = require "conntrack"
        uloop.init()
        local ct = assert(conntrack.open())
        local sub = assert(ct:events())
        local watch = uloop.fd_add(sub, function(obj, events)
          print(rawequal(obj, sub), events == uloop.ULOOP_READ, obj:dispatch{ new = function() end })
          uloop.cancel()
        end, uloop.ULOOP_READ)
        assert(ct:create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1,
                          orig_dport = 53, timeout = 30 })
        local safety = uloop.timer(function() uloop.cancel() end, 5000)
        uloop.run()
        safety:cancel()
        watch:delete()
        local ok, e = pcall(function()
          local w = uloop.fd_add({ getfd = function() return sub:getfd() end }, function() end, uloop.ULOOP_READ)
          return w
        end)
        print(ok, (tostring(e):gsub("^[^:]*:%d+: ", "")))]])
      assert.equal(0, status, err)
      assert.equal("true\ttrue\t1\nfalse\tbad argument #1 to 'fd_add' (userdata expected, got table)\n", out)
    end)

    -- procd stops a service with SIGTERM: read from a signalfd, it reaches
    -- the loop's callback instead of uloop's own handler or the default kill
    it("watches conntrack.signals as it watches a subscription: SIGTERM reaches the callback", function()
      local out, err, status = run_uloop([[local uloop = require "uloop"
        local conntrack = require "conntrack"
        uloop.init()
        local sig = assert(conntrack.signals{ "TERM" })
        local watch = uloop.fd_add(sig, function(obj, events)
          print(rawequal(obj, sig), events == uloop.ULOOP_READ, obj:next(0))
          uloop.cancel()
        end, uloop.ULOOP_READ)
        local send = uloop.timer(function() os.execute("kill -TERM $PPID") end, 50)
        local safety = uloop.timer(function() uloop.cancel() end, 5000)
        uloop.run()
        safety:cancel()
        watch:delete()
        sig:close()
        print("end")]])
      assert.equal(0, status, err)
      assert.matches("^true\ttrue\tTERM\t%d+\nend\n$", out)
    end)
  end)
end
