-- spec/ctl_diff_spec.lua: lua/ctl.lua against conntrack(8) 1.4.7, command by
-- command and option by option. The same argument line runs through both on
-- the same table (on two identical tables when it changes them): stdout,
-- stderr after each program's prefix, exit status and the table left behind
-- must agree. Where 1.4.7 is known to be wrong the right behaviour is pinned.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"

-- what a test changes in the shared namespace is undone after it
local common = require "spec.helpers.common"

before_each(function()
  ns.fresh()
end)

after_each(function()
  common.undo_all()
  ns.fresh()
end)

local function filled()
  ctl.fill(ns.handle())
end

local function sh(cmd)
  local out, err, status = ctl.run(cmd)
  assert(status == 0, cmd .. " failed: " .. err)
  return out
end

local function sysctl(name, value)
  local path = "/proc/sys/net/netfilter/" .. name
  local old = assert(ctl.slurp(path)):match("%d+")
  sh(("sysctl -qw net.netfilter.%s=%s"):format(name, value))
  common.undo(function() sh(("sysctl -qw net.netfilter.%s=%s"):format(name, old)) end)
end

-- One test per line: both programs on the filled table, which neither changes.
local function lists(lines, opts)
  for args, long in common.family(lines) do
    it(("prints what conntrack prints for `%s' #diff%s"):format(args, long), function()
      filled()
      ctl.compare(args, opts)
    end)
  end
end

-- One test per line: each program on its own copy of the filled table.
local function changes(lines, opts)
  for args, long in common.family(lines) do
    it(("leaves the table as conntrack leaves it after `%s' #diff%s"):format(args, long), function()
      ctl.compare_change(args, opts)
    end)
  end
end

-- Flows looked up in FLOWS by source port or ICMP id, for the event tests.
local function flows_by(keys)
  local list = {}
  for _, key in ipairs(keys) do
    for _, f in ipairs(ctl.FLOWS) do
      if (f.orig_sport == key or f.icmp_id == key) and not f.zone then list[#list + 1] = f; break end
    end
  end
  return list
end

-- Events of every kind: flows of both families and several protocols are
-- created, two marks changed, one flow deleted, then the table flushed.
local EVENT_FLOWS = flows_by{ 1001, 1002, 5353, 77, 40001, 1000, 9, 2002, 2005, 2009, 3868 }

local function generate(ct)
  for _, f in ipairs(EVENT_FLOWS) do assert(ct:create(f)) end
  assert.equal(1, ct:update({ proto = "tcp", orig_sport = 1002 }, { mark = 9 }))
  assert.equal(1, ct:update({ proto = "udp", orig_sport = 1000 }, { mark = 0x42 }))
  assert.equal(1, ct:delete{ proto = "udp", orig_sport = 5353 })
  assert(ct:flush())
end

-- 1.4.7 prints one of the entries -U updated, whichever it met last: when
-- one entry is updated the line is compared, else each line printed must be
-- an updated entry as `conntrack -L LIST' now shows it.
local function check_updated(list)
  return function(o, t, other)
    local n = tonumber(ctl.their_stderr(t.err):match("^(%d+) flow entries have been updated"))
    if n == 1 then
      ctl.assert_same_stdout(o.out, t.out, { ids = false }, "stdout")
    else
      local now = {}
      for _, line in ipairs(ctl.normalise(ctl.table_text(other, list or ""), { use = false })) do now[line] = true end
      for _, line in ipairs(ctl.normalise(o.out, { use = false })) do
        assert(now[line], "not an updated entry: " .. line)
      end
    end
  end
end

describe("-L", function()
  lists{ "-L", "--dump", "--dum", "-L conntrack", "-L conn", "-L dying", "-L unconfirmed", "-L expect", "-L exp" }

  describe("with addresses", function()
    lists{ "-L -s 10.0.0.1", "-L --src 10.0.0.1", "-L --orig-src 10.0.0.1", "-L --orig-s 10.0.0.1",
           "-L -d 10.0.0.2", "-L --dst 10.0.0.3", "-L --orig-dst 10.0.0.2", "-L -s 10.0.0.1 -d 10.0.0.3",
           "-L -s 10.0.0.0/24", "-L -s 10.0.0.0/16", "-L -s 10.0.0.0/8", "-L -d 10.0.0.0/30", "-L -s 10.0.0.1/32",
           "-L -s 10.0.0.1/0", "-L -s fd00::1", "-L -d fd00::9", "-L -s fd00::/64", "-L -s fd00::/16",
           "-L -d fd00::9/128", "-L -s fd00:0:0:1::/64", "-L -r 10.0.0.2", "-L --reply-src 192.168.1.80",
           "-L -q 10.0.0.1", "-L --reply-dst 203.0.113.1", "-L -r fd02::53", "-L -q fd01::1",
           "-L -s 10.0.0.0 --mask-src 255.255.255.0", "-L --mask-src 255.255.0.0 -s 10.0.0.0",
           "-L -d 10.0.0.0 --mask-dst 255.255.255.252", "-L -s fd00:: --mask-src ffff:ffff:ffff:ffff::",
           "-L -s 10.1", "-L -s 010.0.0.1" }
  end)

  describe("with families and protocols", function()
    lists{ "-L -f ipv4", "-L -f ipv6", "-L --family ipv6", "-L --fam ipv4", "-L -p tcp", "-L -p udp", "-L -p icmp",
           "-L -p icmpv6", "-L -p sctp", "-L -p gre", "-L -p udplite", "-L -p 254", "-L -p 6", "-L --protonum 17",
           "-L --prot udp", "-L -p TCP", "-L -f ipv6 -p udp", "-L -f ipv6 -p icmp", "-L -p tcp -p udp" }
  end)

  describe("with per-protocol options", function()
    lists{ "-L -p tcp --sport 1001", "-L -p tcp --dport 22", "-L -p tcp --dp 80", "-L -p tcp --orig-port-src 1001",
           "-L -p tcp --orig-port-dst 443", "-L -p tcp --reply-port-src 80", "-L -p tcp --reply-port-dst 61002",
           "-L -p tcp --orig-port-s 2005", "-L -p tcp --state ESTABLISHED", "-L -p tcp --state SYN_SENT",
           "-L -p tcp --state TIME_WAIT", "-L -p tcp --state CLOSE", "-L -p tcp --state LISTEN",
           "-L -p tcp --state NONE", "-L -p udp --dport 53", "-L -p udp --sport 5353 --dport 53",
           "-L -p udp --reply-port-src 5353", "-L -p icmp --icmp-type 8", "-L -p icmp --icmp-code 0",
           "-L -p icmp --icmp-id 78", "-L -p icmp --icmp-t 13", "-L -p icmpv6 --icmpv6-type 128",
           "-L -p icmpv6 --icmpv6-id 9", "-L -p sctp --state ESTABLISHED", "-L -p sctp --state COOKIE_WAIT",
           "-L -p sctp --sport 2905", "-L -p udplite --dport 8", "-L -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80" }
  end)

  describe("with marks, statuses, zones and secmarks", function()
    lists{ "-L -m 7", "--dump --mark 0x12", "-L --mar 1", "-L -m 0", "-L -m 0xffffffff", "-L -m 0x10/0xf0",
           "-L -m 0/0xffffff00", "-L -m 7/0x7", "-L -u ASSURED", "-L --status ASSURED", "-L -u UNREPLIED",
           "-L -u SEEN_REPLY", "-L -u assured", "-L -u FIXED_TIMEOUT", "-L -u UNSET", "-L -u !ASSURED",
           "-L -u !SEEN_REPLY", "-L -u !ASSURED -p udp",
           "-L -w 3", "-L --zone 5", "-L --zo 3", "-L -w 0", "-L --orig-zone 4", "-L --orig-z 4", "-L --reply-zone 6",
           "-L -c 0", "-L --secmark 0", "-L -p tcp -s 10.0.0.1 --dport 80 -m 7 -w 3" }
  end)

  describe("with NAT filters", function()
    lists{ "-L -n", "-L --src-nat", "-L -g", "-L --dst-nat", "-L -j", "-L --any-nat", "-L -p tcp -n", "-L -p udp -g",
           "-L -f ipv6 -j", "-L -n 203.0.113.1", "-L -n 203.0.113.1:61002", "-L -n 203.0.113.1:2002",
           "-L -g 192.168.1.80", "-L -g 192.168.1.80:8080", "-L -g 192.168.1.80:8081", "-L -g 192.168.1.53",
           "-L -g 10.9.9.9", "-L -j 192.168.1.80", "-L -j 203.0.113.1" }

    -- 1.4.7 ignores an IPv6 address given to --src-nat / --dst-nat / --any-nat
    -- and lists every translated flow; the address must be compared, as it is
    -- compared with -r (DNAT) and -q (SNAT).
    local FIXED = { { "-L -g fd02::53", "-L -g -r fd02::53" }, { "-L -g fd09::53", "-L -g -r fd09::53" },
                    { "-L --dst-nat fd02::53", "-L -g -r fd02::53" }, { "-L -n fd01::1", "-L -n -q fd01::1" },
                    { "-L -n fd09::1", "-L -n -q fd09::1" }, { "-L -p udp -g fd02::53", "-L -p udp -g -r fd02::53" } }
    for case, long in common.family(FIXED) do
      it(("compares the IPv6 address in `%s' (conntrack 1.4.7 ignores it) #diff%s"):format(case[1], long), function()
        filled()
        ctl.compare(case[1], { their_args = case[2] })
      end)
    end
  end)

  -- Other lines 1.4.7 gets wrong, each with the conntrack line that shows
  -- what it should: GRE keys are not compared (every GRE flow is listed);
  -- a status list with UNREPLIED or a !FLAG lists nothing; -j with an address lists
  -- nothing once -p is given. (Every ASSURED flow of the table is
  -- unreplied, and no TCP flow is translated from 203.0.113.1.)
  describe("where conntrack 1.4.7 is wrong", function()
    local FIXED = { { "-L -p gre --srckey 0x4d3", "-L -p gre -f ipv4" }, { "-L -p gre --dstkey 0x35", "-L -p gre -f ipv4" },
                    { "-L -p gre --srckey 1235", "-L -p gre -f ipv4" }, { "-L -p gre --srckey 1", "-L -p gre -f ipv6" },
                    { "-L -p gre --srckey 7", "-L -p gre -s 10.9.9.9" },
                    { "-L -u ASSURED,UNREPLIED", "-L -u ASSURED" }, { "-L -u UNREPLIED,ASSURED", "-L -u ASSURED" },
                    { "-L -u ASSURED,!SEEN_REPLY", "-L -u ASSURED" },
                    { "-L -p tcp -j 203.0.113.1", "-L -p tcp -n 203.0.113.1" } }
    for case, long in common.family(FIXED) do
      it(("prints for `%s' what conntrack prints for `%s' #diff%s"):format(case[1], case[2], long), function()
        filled()
        ctl.compare(case[1], { their_args = case[2] })
      end)
    end
  end)

  describe("with output formats", function()
    lists{ "-L -o extended", "-L -o xml", "-L -o id", "-L -o extended,id", "-L -o xml,id", "-L -o ktimestamp",
           "-L -o save", "-L -o XML", "-L --output extended", "-L --ou id", "-L -o xml -p udp", "-L -o save -f ipv6",
           "-L -o extended -o xml", "-L -o extended,id -s 192.168.1.10" }

    it("prints nothing on stdout for -o xml of an empty table #diff", function()
      local o = ctl.compare("-L -o xml")
      assert.equal("", o.out)
    end)

    it("prints nothing but the summary for an empty table #diff", function()
      local o = ctl.compare("-L")
      assert.equal("", o.out)
      assert.equal("0 flow entries have been shown.\n", ctl.our_stderr(o.err))
    end)
  end)

  describe("with counters and timestamps on", function()
    -- accounting and timestamps are attached to a flow when it is created,
    -- so they are switched on before real traffic makes some
    local function traffic(without_flows)
      sysctl("nf_conntrack_acct", 1)
      sysctl("nf_conntrack_timestamp", 1)
      sh("nft add table inet lct_ctl")
      common.undo(function() sh("nft delete table inet lct_ctl") end)
      sh("nft add chain inet lct_ctl out '{ type filter hook output priority 0; }'")
      sh("nft add rule inet lct_ctl out ct state new,established accept")
      local socket = require "socket"
      for _, host in ipairs{ "127.0.0.1", "::1" } do
        local v6 = host:find(":") ~= nil
        local a = assert(v6 and socket.udp6() or socket.udp())
        local b = assert(v6 and socket.udp6() or socket.udp())
        assert(a:setsockname(host, 0)); assert(b:setsockname(host, 0))
        assert(b:settimeout(2)); assert(a:settimeout(2))
        local bhost, bport = b:getsockname()
        for _ = 1, 3 do assert(a:sendto("ping", bhost, bport)) end
        local _, from, fromport = b:receivefrom()
        assert(b:sendto("pong", from, fromport))
        assert.equal("pong", (a:receive()))
        a:close(); b:close()
      end
      if not without_flows then filled() end
    end

    for args, long in common.family({ "-L", "-L -o extended", "-L -o ktimestamp", "-L -o extended,ktimestamp,id", "-L -o xml",
                                      "-L -o save", "-L -p udp -s 127.0.0.1" }) do
      it(("prints what conntrack prints for `%s' #diff%s"):format(args, long), function()
        traffic()
        ctl.compare(args)
      end)
    end

    it("zeroes the counters with -z after printing them, as conntrack -L -z does #diff", function()
      traffic(true)
      local before = ctl.table_text(nil, "")
      assert.matches("packets=[1-9]", before)
      local out, err, status = ctl.ours("-L -z")
      assert.equal(0, status)
      assert.equal(#ctl.lines_of(before) .. " flow entries have been shown.\n", ctl.our_stderr(err))
      ctl.assert_same_stdout(out, before)
      assert.not_matches("packets=[1-9]", ctl.table_text(nil, ""))
      -- and on the zeroed table both print the same
      local o = ctl.compare("--dump --zero")
      assert.not_matches("bytes=[1-9]", o.out)
    end)

    it("refuses -z with --where or --addr as conntrack refuses it with a filter, zeroing nothing", function()
      traffic(true)
      local before = ctl.table_text(nil, "")
      assert.matches("packets=[1-9]", before)
      for _, args in ipairs{ "-L -z --where 'proto == \"udp\"'", "-L -z --addr 127.0.0.1", "-L -z -p udp" } do
        local out, err, status = ctl.ours(args)
        assert.equal(2, status, args)
        assert.equal("", out)
        assert.equal(ctl.OUR_PREFIX .. "Can't use -z with filtering parameters\n" .. ctl.OUR_TRY .. "\n", err)
      end
      -- the counters as they were (delta-time may tick meanwhile)
      local function counters(text) return (text:gsub("delta%-time=%d+ ", "")) end
      assert.equal(counters(before), counters(ctl.table_text(nil, "")))
    end)
  end)

  describe("with labels", function()
    local LABELLED = {
      { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 1, orig_dport = 53, timeout = 3000,
        labels = { 1, 3 } },
      { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 2, orig_dport = 53, timeout = 3000,
        labels = { 3 } },
      { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 3, orig_dport = 22, timeout = 3000,
        state = "ESTABLISHED", labels = { 5, 7 } },
      { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 4, orig_dport = 53, timeout = 3000 },
    }

    local function labelled()
      ctl.enable_labels(ctl.run)
      common.undo(function() ctl.disable_labels(ctl.run) end)
      ctl.fill(ns.handle(), LABELLED)
    end

    for args, long in common.family({ "-L -o labels", "-L -o extended,labels", "-L -o xml,labels", "-L -l one", "-L -l three",
                                      "-L -l one,three", "-L -l one -l three", "-L --label seven", "-L -l default",
                                      "-L -l three -p udp -o id" }) do
      it(("prints what conntrack prints for `%s' #diff%s"):format(args, long), function()
        ctl.with_labels(function()
          labelled()
          ctl.compare(args)
        end)
      end)
    end

    it("prints what conntrack prints for `-L -o labels' without connlabel.conf #diff", function()
      ctl.without_labels(function()
        labelled()
        ctl.compare("-L -o labels")
      end)
    end)

    local twins = 0
    local function with_twin_labels(args)
      twins = twins + 1
      it(("leaves the labels conntrack leaves after `%s' #diff%s"):format(args, twins > 1 and " #long" or ""),
         function()
        ctl.with_labels(function()
          local opts = { flows = LABELLED, list = "-o labels", setup = ctl.enable_labels }
          if args:find("^%-U") then opts.stdout, opts.check = false, check_updated("-o labels") end
          ctl.compare_change(args, opts)
        end)
      end)
    end
    -- (the namespace of ours goes with its holder; the test namespace's rule is dropped here)
    after_each(function() ctl.disable_labels(ctl.run) end)

    with_twin_labels("-U -s 10.0.0.1 -p udp --sport 4 --label-add five")
    with_twin_labels("-U -s 10.0.0.1 -p udp --sport 1 --label-add five")
    with_twin_labels("-U -f ipv4 -p udp --label-add seven,five")
    with_twin_labels("-U -f ipv4 -p udp --sport 1 --label-del one")
    with_twin_labels("-U -f ipv4 -p udp --sport 1 --label-del")
    with_twin_labels("-U -f ipv4 -l three --label-del three")
    with_twin_labels("-D -l three")
    with_twin_labels("-D -l one,three -f ipv4")
  end)
end)

describe("-G", function()
  lists{ "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80",
         "--get -p tcp --orig-src 10.0.0.1 --orig-dst 10.0.0.2 --sport 1002 --dport 22",
         "-G -p udp -s fd00::1 -d fd00::9 --sport 1000 --dport 53",
         "-G -p icmp -s 10.0.0.4 -d 10.0.0.1 --icmp-type 8 --icmp-code 0 --icmp-id 77",
         "-G -p icmpv6 -s fd00::5 -d fd00::1 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 9",
         "-G -p sctp -s 10.0.0.1 -d 10.0.0.2 --sport 3868 --dport 3868",
         "-G -p gre -s 10.0.0.1 -d 10.0.0.2 --srckey 0x4d3 --dstkey 0x35",
         "-G -p tcp -s 192.168.1.10 -d 10.9.0.1 --sport 2002 --dport 80",
         "-G -p tcp -r 10.0.0.2 -q 10.0.0.1 --reply-port-src 80 --reply-port-dst 1001",
         "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80 -o xml",
         "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80 -o extended,id",
         "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 81",
         "-G -p udp -s 10.9.9.9 -d 10.0.0.3 --sport 1 --dport 2" }
end)

-- Runs ARGS on forty thousand flows while a second process empties the
-- table, its delay growing until the flush lands in the middle; returns
-- the count ARGS reported ("N flow entries have been VERB."), its stdout
-- and its exit status.
local function race_a_flush(args, verb)
  local flows = {}
  for i = 1, 40000 do
    flows[i] = { proto = "udp", orig_src = ("10.7.%d.%d"):format(math.floor(i / 250), i % 250 + 1), orig_dst = "10.8.0.1",
                 orig_sport = 1000 + i % 50000, orig_dport = 53, timeout = 3000 }
  end
  for _, delay in ipairs{ 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4 } do
    ns.fresh()
    ctl.fill(ns.handle(), flows)
    local flusher = ctl.spawn(("sh -c 'sleep %s; conntrack -F 2>/dev/null'"):format(delay))
    local out, err, status = ctl.ours(args)
    flusher.wait(5)
    flusher.stop()
    local n = tonumber(ctl.our_stderr(err):match("^(%d+) flow entries have been " .. verb .. "%.\n$"))
    assert(n, "unexpected stderr: " .. err)
    if n > 0 and n < #flows then
      assert.equal(0, ns.handle():count())
      return n, out, status
    end
  end
  error("the flush never landed while `" .. args .. "' ran")
end

describe("-D", function()
  changes{ "-D -p udp", "--delete -s 10.0.0.1", "-D -s 10.0.0.0/24", "-D -s 10.0.0.0/16 -p tcp", "-D -d fd00::2",
           "-D -s fd00::/64", "-D -s fd00:0:0:1::/64", "-D -f ipv6", "-D -f ipv4 -p icmp", "-D -p tcp --dport 22",
           "-D -p tcp --state SYN_SENT", "-D -p icmp --icmp-type 13", "-D -m 7",
           "-D -m 0x10/0xf0", "-D -m 0xffffffff", "-D -w 3", "-D --zone 5", "-D --orig-zone 4", "-D --reply-zone 6",
           "-D -u ASSURED", "-D -u UNREPLIED -p udp", "-D -r 192.168.1.80", "-D -q 203.0.113.1", "-D -n", "-D -g",
           "-D -j", "-D -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80", "-D -s 10.0.0.0 --mask-src 255.255.0.0",
           "-D -o xml -p udp", "-D -o extended -f ipv4 -p icmp", "-D -o id -p sctp", "-D", "-D -s 10.9.9.9",
           "-D -p tcp --dport 9" }

  it("deletes only the GRE flow with the key, where conntrack 1.4.7 deletes every GRE flow #diff", function()
    ctl.compare_change("-D -p gre --srckey 0x4d3", { their_args = "-D -p gre -f ipv4" })
  end)

  -- 1.4.7 deletes every flow the other options select, with the flag or not
  for case, long in common.family({ { "!ASSURED -f ipv6", "ASSURED -f ipv6", "-f ipv4" },
                                    { "!SEEN_REPLY -p udp", "SEEN_REPLY -p udp", "-p tcp" } }) do
    local negated, flagged, others = case[1], case[2], case[3]
    it(("deletes only the flows `-u %s' selects (conntrack 1.4.7 deletes them all) #diff%s"):format(negated, long), function()
      filled()
      local gone = ctl.theirs("-L -u " .. negated)
      local kept = ctl.theirs("-L -u " .. flagged)
      local untouched = ctl.table_text(nil, others)
      local out, err, status = ctl.ours("-D -u " .. negated)
      ctl.assert_same_stdout(out, gone)
      assert.equal(#ctl.lines_of(gone) .. " flow entries have been deleted.\n", ctl.our_stderr(err))
      assert.equal(0, status)
      ctl.assert_same_stdout(ctl.table_text(nil, "-u " .. flagged), kept)
      ctl.assert_same_stdout(ctl.theirs("-L -u " .. negated), "")
      ctl.assert_same_table(ctl.table_text(nil, others), untouched)
    end)
  end

  it("deletes the entry -i names (ids differ from table to table) #diff", function()
    local function id_of(netns)
      local out = ctl.table_text(netns, "-p tcp --dport 22 -s 10.0.0.1 -o id")
      return assert(out:match(" id=(%d+)"), out)
    end
    ctl.compare_change(nil, { their_args = function() return "-D -i " .. id_of(nil) end,
                              our_args = function(other) return "-D -i " .. id_of(other) end })
  end)

  it("counts a flow that vanishes while it deletes as gone, not as a failure #diff #slow", function()
    local n, out, status = race_a_flush("-D -p udp -d 10.8.0.1", "deleted")
    assert.equal(0, status)
    assert.equal(n, #ctl.lines_of(out))
  end)
end)

describe("-I / -A", function()
  changes{
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 10 --dport 20 --state SYN_RECV -t 3000 -u ASSURED --mark 3 --zone 4",
    "--create -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 11 --dport 20 --state TIME_WAIT -t 3000",
    "-I -p tcp -s fd10::1 -d fd10::2 --sport 12 --dport 22 --state ESTABLISHED -t 3000 --mark 0x10",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 13 --dport 53 -t 3000 --orig-zone 4",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 14 --dport 53 -t 3000 --reply-zone 6",
    "-I -p udp -s fd10::1 -d fd10::2 --sport 15 --dport 53 -t 3000 -u ASSURED",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 16 --dport 53 -t 3000 -u UNSET",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 17 --dport 53 -t 3000 -u FIXED_TIMEOUT",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 18 --dport 53 -t 3000 -m 0x10/0xf0",
    "-I -p icmp -s 10.1.0.1 -d 10.1.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 5 -t 3000",
    "-I -p icmpv6 -s fd10::1 -d fd10::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 6 -t 3000",
    "-I -p sctp -s fd10::1 -d fd10::2 --sport 16 --dport 17 --state ESTABLISHED --orig-vtag 7 --reply-vtag 8 -t 3000",
    "-I -p gre -s fd10::1 -d fd10::2 --srckey 5 --dstkey 6 -t 3000",
    "-I -p udplite -s 10.1.0.1 -d 10.1.0.2 --sport 19 --dport 20 -t 3000",
    "-I -p 254 -s 10.1.0.1 -d 10.1.0.2 -t 3000",
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 18 --dport 80 -r 192.168.0.5 -q 198.51.100.1"
      .. " --reply-port-src 8080 --reply-port-dst 40018 --state ESTABLISHED -t 3000",
    "-I -p udp -s fd10::1 -d fd10::2 --sport 19 --dport 53 -r fd11::5 -q fd10::1"
      .. " --reply-port-src 5353 --reply-port-dst 19 -t 3000",
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 20 --dport 80 --state ESTABLISHED -t 3000 --src-nat 192.168.0.1",
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 21 --dport 80 --state ESTABLISHED -t 3000 --dst-nat 192.168.0.2:8080",
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 22 --dport 80 --state ESTABLISHED -t 3000 -u SEEN_REPLY,ASSURED",
    "-A -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 23 --dport 53 -t 3000",
    "--add -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 24 --dport 80 --state ESTABLISHED -t 3000",
    -- already there: a failure, exit 1
    "-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80 --state ESTABLISHED -t 3000",
    "-I -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80 --state ESTABLISHED -t 3000 -w 3",
    -- a reply tuple without its ports: the kernel refuses it
    "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 25 --dport 80 --state ESTABLISHED -t 3000 -r 10.1.0.2 -q 10.1.0.1",
  }
end)

describe("-U", function()
  local function updates(lines)
    for args, long in common.family(lines) do
      it(("leaves the table as conntrack leaves it after `%s' #diff%s"):format(args, long), function()
        ctl.compare_change(args, { stdout = false, check = check_updated() })
      end)
    end
  end

  updates{ "-U -s 10.0.2.1 -m 9", "--update -s 10.0.2.1 -t 50", "-U -s 10.0.0.1 -p udp -m 9",
           "-U -s 10.0.0.1 -p udp -m 0x12", "-U -d 10.0.0.2 -p sctp -m 4", "-U -f ipv6 -p udp -m 0x20/0xf0",
           "-U -s 192.168.1.10 -m 3", "-U -s 192.168.1.10 -p tcp -m 3/0x1", "-U -s 10.0.0.4 -m 9",
           "-U -s 10.0.0.1 -p tcp --dport 22 -u ASSURED", "-U -f ipv4 -p gre -m 2", "-U -s 10.0.2.1 -m 9 -o xml",
           "-U -s 10.0.2.1 -m 9 -o extended", "-U -f ipv6 -p icmpv6 -t 77", "-U -s 10.0.0.0/30 -p udp -m 5",
           "-U -f ipv4 -g -m 6", "-U -f ipv4 -n -p tcp -m 6", "-U -s 10.9.9.9 -m 1", "-U -s 10.0.2.1 -m 0xffffffff" }

  -- the flows chosen are all in zone 0: 1.4.7 would miss the others (see below)
  describe("--state", function()
    updates{ "-U -s 10.0.0.1 -p tcp --dport 22 --state TIME_WAIT",
             "-U -s 10.0.0.1 -p tcp --dport 22 --state CLOSE -m 4", "-U -s fd00::1 -p tcp --dport 22 --state TIME_WAIT", "-U -s 192.168.1.10 -p tcp --state LISTEN",
             "-U -s 10.0.2.1 -p tcp --state SYN_SENT -t 40", "-U -s 10.0.2.1 -p tcp --state TIME_WAIT -o extended",
             "-U -d 10.0.0.2 -p tcp --sport 1002 --state NONE", "-U -s 10.0.0.1 -p tcp --dport 22 --state SYN_SENT",
             "-U -s 192.168.1.10 -p tcp --dport 80 --state ESTABLISHED -o xml" }
  end)


  it("updates the entry -i names (ids differ from table to table) #diff", function()
    local function id_of(netns)
      local out = ctl.table_text(netns, "-p sctp -f ipv4 -o id")
      return assert(out:match(" id=(%d+)"), out)
    end
    ctl.compare_change(nil, { their_args = function() return "-U -f ipv4 -p sctp -m 5 -i " .. id_of(nil) end,
                              our_args = function(other) return "-U -f ipv4 -p sctp -m 5 -i " .. id_of(other) end })
  end)

  -- 1.4.7 fails with "Operation not supported" when -U has no address or
  -- family (and with one, misses the flows of other zones): the update must
  -- reach every flow the options select, and count those it changed.
  local function all(_) return true end
  local function proto(name) return function(f) return f.proto == name end end
  for case, long in common.family({ { "-U -p tcp -m 9", proto "tcp", "mark", 9 }, { "-U -m 0x40", all, "mark", 0x40 },
                                    { "-U -p udp -t 100", proto "udp", "timeout", 100 } }) do
    local args, selects, field, value = case[1], case[2], case[3], case[4]
    it(("updates the flows of both families with `%s' (conntrack 1.4.7 fails) #diff%s"):format(args, long), function()
      filled()
      local _, err = ctl.theirs(args)
      assert.equal("Operation failed: Operation not supported\n", ctl.their_stderr(err):match("[^\n]*\n$"))
      local before, changed = {}, 0
      for flow in ns.handle():dump() do
        before[flow.id] = flow
        if selects(flow) and flow[field] ~= value then changed = changed + 1 end
      end
      local out, err2, status = ctl.ours(args)
      assert.equal(changed .. " flow entries have been updated.\n", ctl.our_stderr(err2))
      assert.equal(0, status)
      local n = 0
      for flow in ns.handle():dump() do
        n = n + 1
        local old = assert(before[flow.id], "a new flow: " .. tostring(flow))
        local want = selects(old) and value or old[field]
        assert(math.abs(flow[field] - want) <= (field == "timeout" and 3 or 0),
          ("%s is %d, not %d: %s"):format(field, flow[field], want, tostring(flow)))
        if field ~= "mark" then assert.equal(old.mark, flow.mark) end
      end
      assert.equal(#ctl.FLOWS, n)
      assert.is_true(#ctl.lines_of(out) >= 1)
    end)
  end

  it("counts a flow that vanishes while it updates as gone, not as a failure #diff #slow", function()
    local _, _, status = race_a_flush("-U -p udp -d 10.8.0.1 -m 5", "updated")
    assert.equal(0, status)
  end)

  it("updates flows of every zone, where conntrack 1.4.7 updates their zone-0 twin #diff", function()
    local other = ctl.twin()
    finally(other.stop)
    local out, err, status = ctl.ours("-U -f ipv4 -p tcp -s 10.0.0.1 --dport 80 -m 9", other)
    assert.equal("2 flow entries have been updated.\n", ctl.our_stderr(err))
    assert.equal(0, status)
    assert.equal(2, #ctl.lines_of(out))
    for _, zone in ipairs{ "-w 0", "-w 3" } do
      local shown = ctl.table_text(other, "-p tcp -s 10.0.0.1 --dport 80 " .. zone)
      assert.matches(" mark=9 ", shown)
    end
  end)
end)

-- What conntrack 1.4.7 does with flows in a zone of one direction, and this
-- command line with the same (the kernel keeps one such flow per tuple: a
-- zone-0 twin of it is refused as existing).
describe("flows in directional zones", function()
  local ZONED = {
    { proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.1.0.2", orig_sport = 13, orig_dport = 53,
      timeout = 3000, orig_zone = 4, mark = 1 },
    { proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.1.0.2", orig_sport = 14, orig_dport = 53,
      timeout = 3000, reply_zone = 6, mark = 3 },
    { proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.1.0.2", orig_sport = 15, orig_dport = 53,
      timeout = 3000, mark = 5 },
  }

  for args, long in common.family({ "-D --orig-zone 4", "-D --reply-zone 6", "-D -p udp --sport 13", "-D -s 10.1.0.1",
                                    "-L --orig-zone 4", "-L --reply-zone 6" }) do
    it(("does what conntrack 1.4.7 does with `%s' #diff%s"):format(args, long), function()
      ctl.compare_change(args, { flows = ZONED })
    end)
  end

  -- What 1.4.7 does varies from run to run with the order its dump meets the
  -- flows in (measured: all three updated; or "Operation failed: No such
  -- file or directory", two counted and one left; or three counted and one
  -- left); it always exits 0, and updates the flow of no zone.
  it("updates every flow of a directional zone, where conntrack 1.4.7 may leave one #diff", function()
    local other = ctl.twin{ flows = ZONED }
    finally(other.stop)
    local args = "-U -s 10.1.0.1 -m 9"
    local _, err, status = ctl.theirs(args)
    assert.equal(0, status)
    assert.matches("%d flow entries have been updated%.\n$", ctl.their_stderr(err))
    assert.matches(" mark=9 ", ctl.table_text(nil, "-p udp --sport 15"))
    local _, err2, status2 = ctl.ours(args, other)
    assert.equal("3 flow entries have been updated.\n", ctl.our_stderr(err2))
    assert.equal(0, status2)
    for _, sport in ipairs{ 13, 14, 15 } do
      assert.matches(" mark=9 ", ctl.table_text(other, "-p udp --sport " .. sport))
    end
  end)

  for case, long in common.family({ { "--orig-zone 4", 13 }, { "--reply-zone 6", 14 } }) do
    local zone, sport = case[1], case[2]
    local args = ("-A -p udp -s 10.1.0.1 -d 10.1.0.2 --sport %d --dport 53 -t 3000 %s -m 9"):format(sport, zone)
    it(("updates the flow `%s' names, which conntrack 1.4.7 leaves (0 added) #diff%s"):format(args, long), function()
      local other = ctl.twin{ flows = ZONED }
      finally(other.stop)
      local _, err, status = ctl.theirs(args)
      assert.equal("0 flow entries have been added.\n", ctl.their_stderr(err))
      assert.equal(0, status)
      assert.not_matches(" mark=9 ", ctl.table_text(nil, "-p udp --sport " .. sport))
      local _, err2, status2 = ctl.ours(args, other)
      assert.equal("1 flow entries have been added.\n", ctl.our_stderr(err2))
      assert.equal(0, status2)
      assert.matches(" mark=9 ", ctl.table_text(other, "-p udp --sport " .. sport))
    end)
  end
end)

describe("-E", function()
  for args, long in common.family({ "", "-e NEW", "-e DESTROY", "-e UPDATES", "--event-mask NEW,DESTROY", "-e ALL", "-e new",
                                    "-o extended", "-o xml", "-o id", "-o timestamp", "-o extended,id,timestamp", "-o xml,id",
                                    "-e DESTROY -o xml", "-p tcp", "-p udp -f ipv6", "-s 10.0.0.1", "-d 10.0.0.0/24",
                                    "-s fd00::/64", "-f ipv6", "-m 9", "-m 0/0xf", "-g", "-n", "-j", "-w 0",
                                    "-p tcp --dport 80", "--event" }) do
    it(("prints the events conntrack prints for `-E %s' #diff%s"):format(args, long), function()
      ctl.compare_events(args, generate)
    end)
  end

  -- SIGINT and SIGTERM: the closing tag (if the opening one was printed),
  -- the summary on stderr, exit status 0
  for _, case in ipairs{ { "INT", "-p udp" }, { "TERM", "-p udp" }, { "TERM", "-o xml" }, { "TERM", "-e DESTROY" },
                         { "TERM", "-o xml,timestamp" } } do
    it(("ends on SIG%s with its summary as conntrack does (-E %s) #diff"):format(case[1], case[2]), function()
      ctl.compare_events(case[2], generate, { signal = case[1] })
    end)
  end

  it("ends on SIGTERM before any event as conntrack does (-E -o xml: no tags) #diff", function()
    local _, t = ctl.compare_events("-o xml", function() end, { signal = "TERM" })
    assert.equal("", t.out)
  end)

  it("sizes its event socket with -b, where conntrack 1.4.7 sizes its other socket #diff", function()
    local p = ctl.spawn(ctl.CMD .. " -E -b 1000000")
    assert.is_true(ctl.await_subscribers(1), "no event socket")
    local ss = sh("ss -f netlink -a -m -e")
    p.stop()
    local sizes = {}
    for groups, rb in ss:gmatch("groups=0x(%x+).-rb(%d+)") do
      if tonumber(groups, 16) ~= 0 then sizes[#sizes + 1] = tonumber(rb) end
    end
    assert.is_true(#sizes > 0, ss)
    for _, size in ipairs(sizes) do assert.equal(2000000, size) end
    -- and says so as conntrack does
    ctl.compare_events("-b 1000000", generate)
  end)
end)

describe("-F", function()
  changes{ "-F", "--flush", "-F conntrack", "-F expect", "-F exp" }

  it("empties only IPv6 with -F -f ipv6, where conntrack 1.4.7 empties everything #diff", function()
    local other = ctl.twin()
    finally(other.stop)
    sh("conntrack -D -f ipv6")
    local out, err, status = ctl.ours("-F -f ipv6", other)
    assert.equal("connection tracking table has been emptied.\n", ctl.our_stderr(err))
    assert.equal("", out)
    assert.equal(0, status)
    local left = ctl.table_text(other)
    assert.matches("^ipv4", left)
    ctl.assert_same_table(left, ctl.table_text())
  end)

  it("empties only IPv4 with -F -f ipv4, where conntrack 1.4.7 empties everything #diff", function()
    local other = ctl.twin()
    finally(other.stop)
    sh("conntrack -D -f ipv4")
    local _, _, status = ctl.ours("-F -f ipv4", other)
    assert.equal(0, status)
    ctl.assert_same_table(ctl.table_text(other), ctl.table_text())
  end)
end)

describe("-C", function()
  lists{ "-C", "--count", "--cou", "-C conntrack", "-C expect" }

  it("counts an empty table as conntrack does #diff", function()
    local o = ctl.compare("-C")
    assert.equal("0\n", o.out)
  end)
end)

describe("-S", function()
  lists{ "-S", "--stats", "-S conntrack", "-S expect" }
end)

describe("-R", function()
  -- the table saved by conntrack -L -o save, loaded into an empty table by each
  local function saved(args)
    filled()
    local path = os.tmpname()
    common.undo(function() os.remove(path) end)
    ctl.spit(path, sh("conntrack -L -o save " .. (args or "")))
    ns.fresh()
    return path
  end

  it("loads what -o save wrote as conntrack -R does #diff", function()
    local path = saved()
    ctl.compare_change("-R " .. path, { flows = {} })
  end)

  it("loads a saved IPv6 subset as conntrack -R does #diff", function()
    local path = saved("-f ipv6")
    ctl.compare_change("--load-file " .. path, { flows = {} })
  end)

  it("round-trips a table through its own -o save and -R as conntrack does through its own #diff", function()
    local other = ctl.twin()
    local path = os.tmpname()
    finally(function()   -- busted keeps one finally per test: the last
      other.stop()
      os.remove(path)
    end)
    local function round_trip(run, netns)
      local out, err, status = run("-L -o save", netns)
      assert(status == 0, err)
      ctl.spit(path, out)
      assert(run("-F", netns))
      local _, err2, status2 = run("-R " .. path, netns)
      return err2, status2
    end
    local terr, tstatus = round_trip(ctl.theirs)
    local oerr, ostatus = round_trip(ctl.ours, other)
    assert.equal(ctl.their_stderr(terr), ctl.our_stderr(oerr))
    assert.equal(tstatus, ostatus)
    local left = ctl.table_text(other)
    assert.equal(#ctl.FLOWS, #ctl.lines_of(left))
    ctl.assert_same_table(left, ctl.table_text())
  end)

  it("applies -D lines and skips entries already there as conntrack -R does #diff", function()
    local path = os.tmpname()
    common.undo(function() os.remove(path) end)
    ctl.spit(path, "-D -s 10.0.0.1\n"
      .. "-A -t 3000 -u UNSET -s 10.0.0.1 -d 10.0.0.3 -p udp --sport 5353 --dport 53\n"
      .. "-I -t 3000 -u ASSURED -s 10.5.0.1 -d 10.5.0.2 -p udp --sport 1 --dport 2\n"
      .. "-A -t 3000 -u UNSET -s 10.0.0.9 -d 10.0.0.3 -p udp --sport 5355 --dport 53\n")
    ctl.compare_change("-R " .. path)
  end)
end)

describe("-V", function()
  it("prints its own name and version where conntrack prints its own #diff", function()
    local tout, terr, tstatus = ctl.theirs("-V")
    assert.equal("conntrack v1.4.7 (conntrack-tools)\n", tout)
    for _, args in ipairs{ "-V", "--version", "--ver" } do
      local out, err, status = ctl.ours(args)
      assert.equal(ctl.OUR_PREFIX:gsub(": $", "") .. "\n", out)
      assert.equal(terr, err)
      assert.equal(tstatus, status)
    end
  end)
end)

describe("-h", function()
  it("prints a help that names every option conntrack's help names #diff", function()
    local theirs = ctl.theirs("-h")
    for _, args in ipairs{ "-h", "--help", "--he", "" } do
      local out, err, status = ctl.ours(args)
      assert.equal(0, status, args)
      assert.equal("", err, args)
      for option in theirs:gmatch("%s(%-%-?[%w%-]+)") do
        assert(out:find(option, 1, true), ("help of `%s' does not name %s"):format(args, option))
      end
      assert.matches("Usage: ", out)
    end
  end)
end)
