-- spec/filter_spec.lua: what a filter selects, seen through ct:dump. Each
-- field kind on a fixed set of named flows, the `where` predicate, exactness
-- where the kernel's own filters are wrong or coarse, and the exact errors of
-- a bad filter, raised before anything is sent.
local ns = require "spec.helpers.ns"
local lfs = require "lfs"
local conntrack = ns.conntrack

-- Named flows; each name is told apart by protocol, source, destination and
-- source port (ICMP id). Addresses are written as the kernel prints them.
local FLOWS = {
  tcp_est = { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.1.2", orig_sport = 1111, orig_dport = 80,
              state = "ESTABLISHED", status = { "ASSURED", "SEEN_REPLY" }, mark = 0x11, timeout = 500 },
  tcp_syn = { proto = "tcp", orig_src = "10.0.0.2", orig_dst = "10.0.2.2", orig_sport = 2222, orig_dport = 443,
              state = "SYN_SENT", mark = 0x21, timeout = 500 },
  udp_dns = { proto = "udp", orig_src = "10.1.0.1", orig_dst = "192.168.0.1", orig_sport = 5353, orig_dport = 53,
              mark = 0x10, timeout = 500 },
  udp_seen = { proto = "udp", orig_src = "10.1.0.2", orig_dst = "192.168.0.2", orig_sport = 6000, orig_dport = 53,
               status = "SEEN_REPLY", timeout = 500 },
  icmp = { proto = "icmp", orig_src = "10.2.0.1", orig_dst = "10.2.0.2", icmp_type = 8, icmp_code = 0,
           icmp_id = 77, timeout = 500 },
  sctp_est = { proto = "sctp", orig_src = "10.3.0.1", orig_dst = "10.3.0.2", orig_sport = 3000, orig_dport = 3868,
               state = "ESTABLISHED", timeout = 500 },
  sctp_wait = { proto = "sctp", orig_src = "10.3.0.1", orig_dst = "10.3.0.2", orig_sport = 3001, orig_dport = 3868,
                state = "COOKIE_WAIT", timeout = 500 },
  snat = { proto = "udp", orig_src = "192.168.1.5", orig_dst = "8.8.8.8", orig_sport = 1000, orig_dport = 53,
           reply_dst = "203.0.113.1", timeout = 500 },
  dnat = { proto = "tcp", orig_src = "198.51.100.7", orig_dst = "203.0.113.10", orig_sport = 4000, orig_dport = 80,
           reply_src = "192.168.1.80", state = "ESTABLISHED", timeout = 500 },
  zoned = { proto = "udp", orig_src = "10.4.0.1", orig_dst = "10.4.0.2", orig_sport = 7000, orig_dport = 7001,
            zone = 7, timeout = 500 },
  long = { proto = "udp", orig_src = "10.5.0.1", orig_dst = "10.5.0.2", orig_sport = 8000, orig_dport = 8001,
           timeout = 5000 },
  v6_tcp = { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000, orig_dport = 443,
             state = "ESTABLISHED", status = "ASSURED", timeout = 500 },
  v6_udp = { proto = "udp", orig_src = "fd00:0:0:1::5", orig_dst = "fd00::9", orig_sport = 1000, orig_dport = 53,
             mark = 0x12, timeout = 500 },
  v6_icmp = { proto = "icmpv6", orig_src = "fd00::5", orig_dst = "fd00::1", icmp_type = 128, icmp_code = 0,
              icmp_id = 9, timeout = 500 },
}

local function key(proto, src, dst, id)
  return ("%s %s %s %s"):format(proto, src, dst, id)
end

local NAME_OF = {}
for name, f in pairs(FLOWS) do
  NAME_OF[key(f.proto, f.orig_src, f.orig_dst, f.orig_sport or f.icmp_id)] = name
end

local function sorted(list)
  table.sort(list)
  return list
end

local function name_of(f)
  return NAME_OF[key(f.proto, f.orig_src, f.orig_dst, f.orig_sport or f.icmp_id)] or ("unexpected flow: " .. tostring(f))
end

-- The names of the flows ct:dump(filter) yields, sorted. flow:match(filter)
-- must give every flow of the table the dump's verdict (predicates aside:
-- some count their calls; and timeouts tick between the two readings).
local function names(filter)
  local found = {}
  for f in ns.handle():dump(filter) do found[#found + 1] = name_of(f) end
  sorted(found)
  if type(filter) ~= "function" and not (filter and (filter.where or filter.timeout)) then
    local matched = {}
    for f in ns.handle():dump() do
      if f:match(filter) then matched[#matched + 1] = name_of(f) end
    end
    assert.same(found, sorted(matched), "flow:match and the dump disagree")
  end
  return found
end

local function all_but(...)
  local skip, list = {}, {}
  for _, name in ipairs{ ... } do skip[name] = true end
  for name in pairs(FLOWS) do
    if not skip[name] then list[#list + 1] = name end
  end
  return sorted(list)
end

-- What ct:get needs to find a named flow.
local function tuple_of(f)
  return { proto = f.proto, orig_src = f.orig_src, orig_dst = f.orig_dst, orig_sport = f.orig_sport,
           orig_dport = f.orig_dport }
end

-- A line of conntrack -L without its timeout, which ticks between two listings.
local untimed = require("spec.helpers.common").untimed

-- The error of a dump loop over filter.
local function error_of(filter)
  local ok, err = pcall(function()
    for _ in ns.handle():dump(filter) do end
  end)
  assert.is_false(ok, "the dump did not fail")
  return err
end

-- The message ct:dump(filter) raises; called from pcall, so without the
-- position luaL_error prefixes when called from a Lua function.
local function rejection(filter)
  local ct = ns.handle()
  local ok, err = pcall(ct.dump, ct, filter)
  assert.is_false(ok, "the filter was accepted")
  return err
end

local function fill_named()
  local ct = ns.handle()
  for name, f in pairs(FLOWS) do assert(ct:create(f), name) end
end

describe("a dump filter", function()
  before_each(function()
    ns.fresh()
    fill_named()
  end)

  it("yields every flow without a filter or with an empty one", function()
    assert.same(all_but(), names())
    assert.same(all_but(), names{})
  end)

  it("selects by family", function()
    assert.same({ "v6_icmp", "v6_tcp", "v6_udp" }, names{ family = "ipv6" })
    assert.same(all_but("v6_icmp", "v6_tcp", "v6_udp"), names{ family = "ipv4" })
  end)

  it("selects by protocol, by name or number", function()
    local udp = { "long", "snat", "udp_dns", "udp_seen", "v6_udp", "zoned" }
    assert.same(udp, names{ proto = "udp" })
    assert.same(udp, names{ proto = 17 })
    assert.same({ "sctp_est", "sctp_wait" }, names{ proto = "sctp" })
    assert.same({ "sctp_est", "sctp_wait" }, names{ proto = 132 })
    assert.same({ "v6_icmp" }, names{ proto = "icmpv6" })
    assert.same({ "icmp" }, names{ proto = 1 })
    assert.same({}, names{ proto = "gre" })
  end)

  it("selects an exact IPv4 address in each of the four tuple addresses", function()
    assert.same({ "tcp_est" }, names{ orig_src = "10.0.0.1" })
    assert.same({ "udp_dns" }, names{ orig_dst = "192.168.0.1" })
    assert.same({ "dnat" }, names{ reply_src = "192.168.1.80" })
    assert.same({ "snat" }, names{ reply_dst = "203.0.113.1" })
    assert.same({ "sctp_est", "sctp_wait" }, names{ reply_src = "10.3.0.2" })
  end)

  it("selects IPv4 prefixes /8, /24 and /32", function()
    assert.same({ "icmp", "long", "sctp_est", "sctp_wait", "tcp_est", "tcp_syn", "udp_dns", "udp_seen", "zoned" },
                names{ orig_src = "10.0.0.0/8" })
    assert.same({ "tcp_est", "tcp_syn" }, names{ orig_src = "10.0.0.0/24" })
    assert.same({ "tcp_est" }, names{ orig_src = "10.0.0.1/32" })
    assert.same({ "udp_dns", "udp_seen" }, names{ orig_dst = "192.168.0.0/24" })
    assert.same({ "dnat", "udp_dns", "udp_seen" }, names{ reply_src = "192.168.0.0/16" })
    assert.same({ "dnat", "snat" }, names{ reply_dst = "192.0.0.0/2" })
  end)

  it("selects IPv6 addresses exactly and as /64 and /128 prefixes", function()
    assert.same({ "v6_tcp" }, names{ orig_src = "fd00::1" })
    assert.same({ "v6_tcp" }, names{ orig_src = "fd00:0:0:0:0:0:0:1" })
    assert.same({ "v6_icmp", "v6_tcp" }, names{ orig_src = "fd00::/64" })
    assert.same({ "v6_udp" }, names{ orig_src = "fd00:0:0:1::/64" })
    assert.same({ "v6_udp" }, names{ orig_src = "fd00:0:0:1::5/128" })
    assert.same({ "v6_icmp" }, names{ orig_dst = "fd00::1/128" })
    assert.same({ "v6_icmp", "v6_tcp", "v6_udp" }, names{ reply_dst = "fd00::/16" })
    assert.same({ "v6_tcp" }, names{ reply_src = "fd00::2" })
  end)

  it("selects by each port of both tuples", function()
    assert.same({ "tcp_est" }, names{ orig_sport = 1111 })
    assert.same({ "snat", "udp_dns", "udp_seen", "v6_udp" }, names{ orig_dport = 53 })
    assert.same({ "snat", "udp_dns", "udp_seen", "v6_udp" }, names{ reply_sport = 53 })
    assert.same({ "tcp_est" }, names{ reply_dport = 1111 })
    assert.same({}, names{ orig_sport = 0 })
  end)

  it("selects by ICMP type, code and id", function()
    assert.same({ "icmp" }, names{ icmp_type = 8 })
    assert.same({ "v6_icmp" }, names{ icmp_type = 128 })
    assert.same({ "icmp", "v6_icmp" }, names{ icmp_code = 0 })
    assert.same({ "icmp" }, names{ icmp_id = 77 })
    assert.same({}, names{ icmp_id = 78 })
  end)

  it("selects a state by name, for TCP and SCTP alike", function()
    assert.same({ "dnat", "sctp_est", "tcp_est", "v6_tcp" }, names{ state = "ESTABLISHED" })
    assert.same({ "tcp_syn" }, names{ state = "SYN_SENT" })
    assert.same({ "sctp_wait" }, names{ state = "COOKIE_WAIT" })
    assert.same({}, names{ state = "TIME_WAIT" })
  end)

  it("selects one status flag, set or negated", function()
    assert.same({ "tcp_est", "v6_tcp" }, names{ status = "ASSURED" })
    assert.same({ "tcp_est", "udp_seen" }, names{ status = "SEEN_REPLY" })
    assert.same(all_but("tcp_est", "udp_seen"), names{ status = "!SEEN_REPLY" })
    assert.same(all_but("tcp_est", "v6_tcp"), names{ status = "!ASSURED" })
  end)

  it("reads UNREPLIED as SEEN_REPLY clear", function()
    assert.same(all_but("tcp_est", "udp_seen"), names{ status = "UNREPLIED" })
    assert.same({ "tcp_est", "udp_seen" }, names{ status = "!UNREPLIED" })
  end)

  it("selects a list of status flags, all of which must hold", function()
    assert.same({ "v6_tcp" }, names{ status = { "ASSURED", "!SEEN_REPLY" } })
    assert.same({ "tcp_est" }, names{ status = { "ASSURED", "SEEN_REPLY" } })
    assert.same({ "v6_tcp" }, names{ status = { "ASSURED", "UNREPLIED" } })
  end)

  it("selects a set table of status flags, false meaning clear", function()
    assert.same({ "v6_tcp" }, names{ status = { ASSURED = true, SEEN_REPLY = false } })
    assert.same({ "udp_seen" }, names{ status = { ASSURED = false, SEEN_REPLY = true } })
    assert.same({ "tcp_est", "v6_tcp" }, names{ status = { ASSURED = true } })
  end)

  it("selects a mark exactly or under a mask", function()
    assert.same({ "udp_dns" }, names{ mark = 0x10 })
    assert.same({ "tcp_est", "udp_dns", "v6_udp" }, names{ mark = { 0x10, 0xf0 } })
    assert.same({ "tcp_est", "tcp_syn" }, names{ mark = { 0x01, 0x0f } })
    assert.same(all_but("tcp_est", "tcp_syn", "udp_dns", "v6_udp"), names{ mark = 0 })
  end)

  it("selects a zone", function()
    assert.same({ "zoned" }, names{ zone = 7 })
    assert.same({}, names{ zone = 8 })
  end)

  it("selects the default zone with zone = 0, as conntrack -L --zone 0 does #diff", function()
    local theirs = {}
    for i, line in ipairs(ns.reference_lines("-L --zone 0")) do theirs[i] = untimed(line) end
    local ours = {}
    for f in ns.handle():dump{ zone = 0 } do ours[#ours + 1] = untimed(tostring(f)) end
    assert.same(sorted(theirs), sorted(ours))
    assert.same(all_but("zoned"), names{ zone = 0 })
  end)

  it("selects a timeout exactly and under a mask", function()
    -- the timeout ticks: the exact value is trusted when it read the same before and after
    local before, found, after
    for _ = 1, 5 do
      before = assert(ns.handle():get(tuple_of(FLOWS.long))).timeout
      found = names{ timeout = before }
      after = assert(ns.handle():get(tuple_of(FLOWS.long))).timeout
      if before == after then break end
    end
    assert.equal(before, after)
    assert.same({ "long" }, found)
    -- 5000 is 0x1388: under the mask 0xf000 it reads 0x1000 while above 4096; 500 reads 0
    assert.same({ "long" }, names{ timeout = { 0x1000, 0xf000 } })
  end)

  it("selects translated flows with snat and dnat", function()
    assert.same({ "snat" }, names{ snat = true })
    assert.same({ "dnat" }, names{ dnat = true })
    assert.same(all_but("snat"), names{ snat = false })
    assert.same({}, names{ snat = true, dnat = true })
  end)

  it("takes src, dst, sport and dport for the original tuple", function()
    assert.same(names{ orig_src = "10.1.0.0/16" }, names{ src = "10.1.0.0/16" })
    assert.same({ "udp_dns" }, names{ src = "10.1.0.1" })
    assert.same({ "udp_dns", "udp_seen" }, names{ dst = "192.168.0.0/24" })
    assert.same({ "tcp_est" }, names{ sport = 1111 })
    assert.same({ "dnat", "tcp_est" }, names{ dport = 80 })
  end)

  it("combines fields with AND", function()
    assert.same({ "udp_dns", "udp_seen" }, names{ proto = "udp", orig_dport = 53, orig_src = "10.0.0.0/8" })
    assert.same({ "dnat", "sctp_est", "tcp_est" }, names{ family = "ipv4", state = "ESTABLISHED" })
    assert.same({ "tcp_est" }, names{ state = "ESTABLISHED", status = "SEEN_REPLY", mark = { 0x10, 0xf0 } })
    assert.same({}, names{ proto = "tcp", orig_dport = 53 })
  end)
end)

describe("a dump filter's where predicate", function()
  before_each(function()
    ns.fresh()
    fill_named()
  end)

  it("selects alone when the filter is a function", function()
    assert.same({ "snat", "udp_dns", "udp_seen", "v6_udp" }, names(function(f) return f.orig_dport == 53 end))
  end)

  it("is asked by flow:match after the fields, and only when they match", function()
    local asked = 0
    local filter = { proto = "tcp", where = function(f) asked = asked + 1; return f.mark ~= 0 end }
    local matched = {}
    for f in ns.handle():dump() do
      if f:match(filter) then matched[#matched + 1] = name_of(f) end
    end
    assert.same({ "tcp_est", "tcp_syn" }, sorted(matched))
    assert.equal(#names{ proto = "tcp" }, asked)
  end)

  it("runs after the fields, on the flows they selected, and yields those it accepts", function()
    local asked = {}
    local yielded = {}
    for f in ns.handle():dump{ proto = "tcp", where = function(f)
      asked[#asked + 1] = f
      return f.mark ~= 0
    end } do
      yielded[#yielded + 1] = f
    end
    assert.equal(4, #asked)
    for _, f in ipairs(asked) do
      assert.equal("tcp", f.proto)
      assert.matches("^tcp ", tostring(f))
    end
    assert.equal(2, #yielded)
    for _, f in ipairs(yielded) do assert.is_true(f.mark ~= 0) end
    assert.same({ "tcp_est", "tcp_syn" }, names{ proto = "tcp", where = function(f) return f.mark ~= 0 end })
  end)

  it("lets the predicate's error reach the caller", function()
    assert.equal("no flows today", error_of{ where = function() error("no flows today", 0) end })
    local thrown = {}
    assert.equal(thrown, error_of(function() error(thrown) end))
    assert.equal(ns.handle():count(), #names())
  end)
end)

describe("a dump filter on many flows", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("selects exactly one IPv6 source among 130", function()
    for i = 1, 130 do
      assert(ct:create{ proto = "udp", orig_src = ("fd00::%x"):format(i), orig_dst = "fd00:ffff::1",
                        orig_sport = 1000, orig_dport = 53, timeout = 500 })
    end
    local found = {}
    for f in ct:dump{ orig_src = "fd00::2a" } do found[#found + 1] = f.orig_src end
    assert.same({ "fd00::2a" }, found)
    local n = 0
    for f in ct:dump{ src = "fd00::10/124" } do
      n = n + 1
      assert.matches("^fd00::1%x$", f.orig_src)
    end
    assert.equal(16, n)
  end)

  it("selects exactly one IPv4 source among 130", function()
    for i = 1, 130 do
      assert(ct:create{ proto = "udp", orig_src = "10.0.0." .. i, orig_dst = "10.255.0.1",
                        orig_sport = 1000, orig_dport = 53, timeout = 500 })
    end
    local found = {}
    for f in ct:dump{ orig_src = "10.0.0.42" } do found[#found + 1] = f.orig_src end
    assert.same({ "10.0.0.42" }, found)
  end)

  it("selects exactly the flows whose mark under the mask matches, in both families", function()
    for mark = 0, 255 do
      local v6 = mark % 2 == 1
      assert(ct:create{ proto = "udp", orig_src = v6 and "fd00::1" or "10.0.0.1",
                        orig_dst = v6 and "fd00::2" or "10.0.0.2", orig_sport = 1000 + mark, orig_dport = 53,
                        mark = mark, timeout = 500 })
    end
    local marks = {}
    for f in ct:dump{ mark = { 0x10, 0xf0 } } do marks[#marks + 1] = f.mark end
    table.sort(marks)
    local want = {}
    for mark = 0x10, 0x1f do want[#want + 1] = mark end
    assert.same(want, marks)
  end)
end)

describe("a bad dump filter", function()
  local ct
  before_each(function()
    ct = ns.fresh()
    fill_named()
  end)

  local function assert_rejects(message, filter)
    assert.equal(message, rejection(filter))
  end

  it("names an unknown field", function()
    assert_rejects("bad argument 'orig_srcc': unknown field", { orig_srcc = "10.0.0.1" })
    assert_rejects("bad argument 'where_': unknown field", { where_ = function() end })
    assert_rejects("bad argument: field names are strings, got number", { "10.0.0.1" })
  end)

  it("names an invalid address", function()
    assert_rejects('bad argument \'orig_src\': invalid address "999.1.1.1"', { orig_src = "999.1.1.1" })
    assert_rejects('bad argument \'dst\': invalid address "fd00:::1"', { dst = "fd00:::1" })
    assert_rejects("bad argument 'reply_src': expected an address string, got number", { reply_src = 10 })
  end)

  it("names an invalid prefix length", function()
    assert_rejects('bad argument \'orig_src\': invalid prefix length in "10.0.0.0/33"', { orig_src = "10.0.0.0/33" })
    assert_rejects('bad argument \'orig_dst\': invalid prefix length in "fd00::/129"', { orig_dst = "fd00::/129" })
    assert_rejects('bad argument \'orig_src\': invalid prefix length in "10.0.0.0/"', { orig_src = "10.0.0.0/" })
    assert_rejects('bad argument \'orig_src\': invalid prefix length in "10.0.0.0/x"', { orig_src = "10.0.0.0/x" })
    assert_rejects('bad argument \'orig_src\': invalid prefix length in "10.0.0.0/-1"', { orig_src = "10.0.0.0/-1" })
  end)

  it("names a port out of range or not an integer", function()
    assert_rejects("bad argument 'orig_sport': expected an integer from 0 to 65535, got 70000", { orig_sport = 70000 })
    assert_rejects("bad argument 'dport': expected an integer from 0 to 65535, got -1", { dport = -1 })
    assert_rejects("bad argument 'orig_dport': expected an integer, got 1.5", { orig_dport = 1.5 })
    assert_rejects("bad argument 'orig_dport': expected an integer, got string", { orig_dport = "80" })
  end)

  it("names out of range ICMP fields, marks and zones", function()
    assert_rejects("bad argument 'icmp_type': expected an integer from 0 to 255, got 256", { icmp_type = 256 })
    assert_rejects("bad argument 'mark': expected an integer from 0 to 4294967295, got 4294967296",
                   { mark = 0x100000000 })
    assert_rejects("bad argument 'mark': expected an integer from 0 to 4294967295, got -1", { mark = { 1, -1 } })
    assert_rejects("bad argument 'mark': expected an integer, got nil", { mark = { 1 } })
    assert_rejects("bad argument 'mark': expected { value, mask }", { mark = { 1, 2, 3 } })
    assert_rejects("bad argument 'zone': expected an integer from 0 to 65535, got 65536", { zone = 65536 })
  end)

  it("names an unknown state", function()
    assert_rejects('bad argument \'state\': unknown state "ESTABLISHD"', { state = "ESTABLISHD" })
    assert_rejects("bad argument 'state': expected a state name, got number", { state = 3 })
  end)

  it("names an unknown status flag", function()
    assert_rejects('bad argument \'status\': unknown status flag "ASURED"', { status = "ASURED" })
    assert_rejects('bad argument \'status\': unknown status flag "ASURED"', { status = { "SEEN_REPLY", "!ASURED" } })
    assert_rejects('bad argument \'status\': unknown status flag "ASURED"', { status = { ASURED = true } })
    assert_rejects("bad argument 'status': expected a flag name or a table of them, got number", { status = 2 })
  end)

  it("names an unknown protocol", function()
    assert_rejects('bad argument \'proto\': unknown protocol "tcpp"', { proto = "tcpp" })
    assert_rejects("bad argument 'proto': expected an integer from 0 to 255, got 256", { proto = 256 })
  end)

  it("names a family the addresses contradict", function()
    assert_rejects('bad argument \'orig_src\': an IPv6 address does not fit family "ipv4"',
                   { family = "ipv4", orig_src = "fd00::1" })
    assert_rejects('bad argument \'reply_dst\': an IPv4 address does not fit family "ipv6"',
                   { family = "ipv6", reply_dst = "10.0.0.0/8" })
    assert_rejects('bad argument \'family\': expected "ipv4" or "ipv6", got "ipv5"', { family = "ipv5" })
    assert.matches("^bad argument '[%w_]+': an IPv%d address does not fit family \"ipv%d\"$",
                   rejection{ orig_src = "10.0.0.1", orig_dst = "fd00::1" })
  end)

  it("names a where that is not a function", function()
    assert_rejects("bad argument 'where': expected a function, got string", { where = "f.mark > 0" })
    assert_rejects("bad argument 'where': expected a function, got table", { proto = "tcp", where = {} })
  end)

  it("names a value of the wrong type for snat and dnat", function()
    assert_rejects("bad argument 'snat': expected a boolean, got string", { snat = "yes" })
    assert_rejects("bad argument 'dnat': expected a boolean, got number", { dnat = 1 })
  end)

  it("refuses a filter that is neither a table nor a function", function()
    assert_rejects("bad argument 'filter': expected a table or a function, got string", "tcp")
    assert_rejects("bad argument 'filter': expected a table or a function, got number", 6)
    assert_rejects("bad argument 'filter': expected a table or a function, got boolean", true)
  end)

  it("raises the same errors through conntrack.dump", function()
    local ok, err = pcall(conntrack.dump, { orig_srcc = "10.0.0.1" })
    assert.is_false(ok)
    assert.equal("bad argument 'orig_srcc': unknown field", err)
    ok, err = pcall(conntrack.dump, "tcp")
    assert.is_false(ok)
    assert.equal("bad argument 'filter': expected a table or a function, got string", err)
  end)

  it("fails before anything is sent: no socket, no predicate call, the table unchanged", function()
    local function fds()
      local n = 0
      for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
      return n
    end
    local before_names, before_count = names(), ct:count()
    local called = false
    local where = function() called = true; return true end
    collectgarbage(); collectgarbage()
    local open_before = fds()
    for _, filter in ipairs{
      { where = where, orig_srcc = "10.0.0.1" },
      { where = where, orig_src = "999.1.1.1" },
      { where = where, orig_sport = 70000 },
      { where = where, status = "ASURED" },
      { where = where, family = "ipv4", orig_src = "fd00::1" },
    } do
      local ok = pcall(ct.dump, ct, filter)
      assert.is_false(ok)
    end
    -- no collection in between: a socket opened and dropped would still count
    assert.equal(open_before, fds())
    assert.is_false(called)
    assert.equal(before_count, ct:count())
    assert.same(before_names, names())
  end)
end)
