-- spec/ops_spec.lua: get, create, update, delete, flush, count and stats
-- against the real table of the test namespace, with conntrack(8) as the
-- reference for what the kernel holds afterwards.
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"
-- the error a call raises, without a position (pcall calls it directly)
local error_of = common.error_of

local function copy(t, changes)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  for k, v in pairs(changes or {}) do r[k] = v end
  return r
end

-- A flow table without some of its fields.
local function without(t, ...)
  local r = copy(t)
  for _, k in ipairs{ ... } do r[k] = nil end
  return r
end

-- The timeout ticks between two listings: compare lines without it.
local untimed = common.untimed

-- The table as conntrack -L prints it, and as the module dumps it.
local function listed()
  local lines = ns.reference_lines("-L")
  for i, line in ipairs(lines) do lines[i] = untimed(line) end
  table.sort(lines)
  return lines
end

local function dumped(ct, format)
  local lines = {}
  for flow in ct:dump() do lines[#lines + 1] = untimed(format and flow:format(format) or tostring(flow)) end
  table.sort(lines)
  return lines
end

-- Every entry with its id: two snapshots are equal when nothing changed.
local function snapshot(ct) return dumped(ct, "id") end

local function flows_of(ct, filter)
  local flows = {}
  for flow in ct:dump(filter) do flows[#flows + 1] = flow end
  return flows
end

local TCP = { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1234, orig_dport = 80,
              state = "ESTABLISHED", timeout = 120 }
local TCP_KEY = { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1234, orig_dport = 80 }
local ICMP = { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8, icmp_code = 0,
               icmp_id = 77, timeout = 30 }

-- A flow has room for labels only if, when it was made, a rule of the
-- namespace used them.
local function add_label_rule()
  local _, err, status = ns.run("nft add table inet lct_labels && " ..
    "nft add chain inet lct_labels c '{ type filter hook output priority 0; }' && " ..
    "nft add rule inet lct_labels c ct label set 127")
  assert(status == 0, "nft: " .. err)
end

local function remove_label_rule() ns.run("nft delete table inet lct_labels") end

describe("create", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  local cases = {
    { "a tcp flow", TCP, { proto = "tcp", family = "ipv4", state = "ESTABLISHED", orig_sport = 1234, orig_dport = 80,
                           reply_sport = 80, reply_dport = 1234 } },
    { "a udp flow", { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53,
                      timeout = 60 }, { proto = "udp", reply_src = "10.0.0.3", reply_dst = "10.0.0.1" } },
    { "a udplite flow", { proto = "udplite", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 7,
                          orig_dport = 9, timeout = 60 }, { proto = "udplite", orig_sport = 7, orig_dport = 9 } },
    { "an icmp flow", ICMP, { proto = "icmp", icmp_type = 8, icmp_code = 0, icmp_id = 77 } },
    { "an icmpv6 flow", { proto = "icmpv6", orig_src = "fd00::5", orig_dst = "fd00::1", icmp_type = 128,
                          icmp_code = 0, icmp_id = 9, timeout = 30 },
      { proto = "icmpv6", family = "ipv6", icmp_type = 128, icmp_id = 9 } },
    { "an sctp flow", { proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.5", orig_sport = 36412,
                        orig_dport = 36412, state = "ESTABLISHED", orig_vtag = 0x1234, reply_vtag = 0x5678,
                        timeout = 60 },
      { proto = "sctp", state = "ESTABLISHED", orig_vtag = 0x1234, reply_vtag = 0x5678 } },
    { "a gre flow", { proto = "gre", orig_src = "10.0.0.1", orig_dst = "10.0.0.7", orig_sport = 1, orig_dport = 2,
                      timeout = 60 }, { proto = "gre", orig_sport = 1, orig_dport = 2 } },
    { "a flow of an unknown protocol number", { proto = 99, orig_src = "10.0.0.1", orig_dst = "10.0.0.8",
                                                timeout = 60 }, { proto = 99, family = "ipv4" } },
    { "an IPv6 tcp flow", { proto = "tcp", family = "ipv6", orig_src = "fd00::1", orig_dst = "fd00::2",
                            orig_sport = 40000, orig_dport = 443, state = "SYN_SENT", timeout = 100 },
      { family = "ipv6", orig_src = "fd00::1", reply_src = "fd00::2", state = "SYN_SENT" } },
    { "an IPv6 udp flow", { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::9", orig_sport = 1000,
                            orig_dport = 53, timeout = 50 }, { family = "ipv6", orig_dst = "fd00::9" } },
    { "a flow in a zone", copy(TCP, { zone = 3 }), { zone = 3 } },
    { "a marked flow", copy(TCP, { mark = 0xdeadbeef }), { mark = 0xdeadbeef } },
  }
  for _, case in ipairs(cases) do
    local name, fields, expected = case[1], case[2], case[3]
    it("creates " .. name .. " that conntrack -L shows #diff", function()
      assert.is_true(ct:create(fields))
      local flows = flows_of(ct)
      assert.equal(1, #flows)
      for k, v in pairs(expected) do assert.equal(v, flows[1][k], k) end
      assert.same(dumped(ct), listed())
    end)
  end

  it("sets the status flags given #diff", function()
    assert.is_true(ct:create(copy(TCP, { status = { "ASSURED", "SEEN_REPLY" } })))
    local status = flows_of(ct)[1].status
    assert.is_true(status.ASSURED)
    assert.is_true(status.SEEN_REPLY)
    assert.same(dumped(ct), listed())
  end)

  it("sets labels while a rule of the namespace uses them", function()
    add_label_rule()
    finally(remove_label_rule)
    assert.is_true(ct:create(copy(TCP, { labels = { 1, 5, 127 } })))
    assert.same({ [1] = true, [5] = true, [127] = true }, ct:get(TCP_KEY).labels)
  end)

  it("expresses NAT through the reply tuple #diff", function()
    assert.is_true(ct:create(copy(TCP, { reply_src = "192.168.1.1", reply_dst = "192.168.1.2",
                                         reply_sport = 8080, reply_dport = 3000 })))
    local flow = ct:get(TCP_KEY)
    assert.is_true(flow.snat)
    assert.is_true(flow.dnat)
    assert.equal("192.168.1.1", flow.reply_src)
    assert.equal(3000, flow.reply_dport)
    assert.same(dumped(ct), listed())
  end)

  it("tells source NAT from destination NAT", function()
    assert.is_true(ct:create(copy(TCP, { reply_dst = "192.168.1.2" })))
    assert.is_true(ct:create{ proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::10", orig_sport = 1,
                              orig_dport = 2, reply_src = "fd00::99", timeout = 100 })
    local snat = ct:get(TCP_KEY)
    local dnat = ct:get{ proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::10", orig_sport = 1, orig_dport = 2 }
    assert.same({ true, false }, { snat.snat, snat.dnat })
    assert.same({ false, true }, { dnat.snat, dnat.dnat })
  end)

  it("returns nil, a message and EEXIST for a flow that exists", function()
    assert.is_true(ct:create(TCP))
    assert.same({ nil, "create: the flow already exists", 17 }, { ct:create(TCP) })
    assert.equal(1, ct:count())
  end)

  describe("refuses", function()
    local missing = {
      { "timeout", TCP, "bad argument 'timeout': create needs it" },
      { "state", TCP, "bad argument 'state': create needs it for tcp" },
      { "proto", TCP, "bad argument 'proto': create needs it" },
      { "orig_src", TCP, "bad argument 'orig_src': create needs it" },
      { "orig_dst", TCP, "bad argument 'orig_dst': create needs it" },
      { "orig_sport", TCP, "bad argument 'orig_sport': create needs it" },
      { "orig_dport", TCP, "bad argument 'orig_dport': create needs it" },
      { "icmp_type", ICMP, "bad argument 'icmp_type': create needs it" },
      { "icmp_code", ICMP, "bad argument 'icmp_code': create needs it" },
      { "icmp_id", ICMP, "bad argument 'icmp_id': create needs it" },
    }
    for _, case in ipairs(missing) do
      local key, fields, message = case[1], case[2], case[3]
      local article = fields.proto:match("^[aeiou]") and "an " or "a "
      it(article .. fields.proto .. " flow without " .. key, function()
        assert.equal(message, error_of(ct.create, ct, without(fields, key)))
      end)
    end

    it("an sctp flow without state", function()
      local sctp = { proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.5", orig_sport = 1, orig_dport = 2,
                     timeout = 60 }
      assert.equal("bad argument 'state': create needs it for sctp", error_of(ct.create, ct, sctp))
    end)

    it("the fields only the kernel sets", function()
      for _, key in ipairs{ "use", "id", "orig_packets", "orig_bytes", "reply_packets", "reply_bytes", "start",
                            "stop", "secctx", "snat", "dnat" } do
        assert.equal("bad argument '" .. key .. "': create does not take it",
                     error_of(ct.create, ct, copy(TCP, { [key] = 1 })))
      end
    end)

    it("unknown fields", function()
      assert.equal("bad argument 'bogus': unknown field", error_of(ct.create, ct, copy(TCP, { bogus = 1 })))
    end)

    local wrong = {
      { "orig_sport", "80", "bad argument 'orig_sport': expected an integer, got string" },
      { "orig_sport", 1.5, "bad argument 'orig_sport': expected an integer, got 1.5" },
      { "orig_sport", 65536, "bad argument 'orig_sport': expected an integer from 0 to 65535, got 65536" },
      { "orig_dport", -1, "bad argument 'orig_dport': expected an integer from 0 to 65535, got -1" },
      { "timeout", 4294967296,
        "bad argument 'timeout': expected an integer from 0 to 4294967295, got 4294967296" },
      { "mark", true, "bad argument 'mark': expected an integer, got boolean" },
      { "zone", 65536, "bad argument 'zone': expected an integer from 0 to 65535, got 65536" },
      { "orig_src", "999.1.1.1", 'bad argument \'orig_src\': invalid address "999.1.1.1"' },
      { "orig_src", 10, "bad argument 'orig_src': expected an address string, got number" },
      { "orig_dst", "10.0.0.0/8", 'bad argument \'orig_dst\': a prefix is not allowed here, got "10.0.0.0/8"' },
      { "reply_src", "fd00::1", "bad argument 'reply_src': an IPv6 address does not fit the IPv4 flow" },
      { "family", "ipv6", "bad argument 'orig_src': an IPv4 address does not fit the IPv6 flow" },
      { "family", "inet", 'bad argument \'family\': expected "ipv4" or "ipv6", got "inet"' },
      { "proto", "xtp", 'bad argument \'proto\': unknown protocol "xtp"' },
      { "proto", 256, "bad argument 'proto': expected an integer from 0 to 255, got 256" },
      { "state", "OPEN", 'bad argument \'state\': unknown state "OPEN"' },
      { "status", "FAST", 'bad argument \'status\': unknown status flag "FAST"' },
      { "status", 4, "bad argument 'status': expected a flag name or a table of them, got number" },
      { "labels", { 128 }, "bad argument 'labels': expected an integer from 0 to 127, got 128" },
      { "labels", "1", "bad argument 'labels': expected a table of label bits, got string" },
    }
    for _, case in ipairs(wrong) do
      local key, value, message = case[1], case[2], case[3]
      it(string.format("%s = %s", key, type(value) == "string" and string.format("%q", value) or
                       type(value) == "table" and "{ " .. value[1] .. " }" or tostring(value)), function()
        assert.equal(message, error_of(ct.create, ct, copy(TCP, { [key] = value })))
      end)
    end

    it("a state for a protocol without states", function()
      assert.equal("bad argument 'state': protocol 17 has no states",
                   error_of(ct.create, ct, { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3",
                                             orig_sport = 1, orig_dport = 2, timeout = 60, state = "ESTABLISHED" }))
    end)

    it("an ICMP type out of range", function()
      assert.equal("bad argument 'icmp_type': expected an integer from 0 to 255, got 256",
                   error_of(ct.create, ct, copy(ICMP, { icmp_type = 256 })))
    end)
  end)

  it("leaves the table unchanged when it fails", function()
    ns.fill()
    local before = snapshot(ct)
    error_of(ct.create, ct, without(TCP, "timeout"))
    error_of(ct.create, ct, copy(TCP, { reply_dst = "fd00::1" }))
    error_of(ct.create, ct, copy(TCP, { labels = { 200 } }))
    assert.is_nil(ct:create(ns.sample[1]))
    assert.same(before, snapshot(ct))
  end)
end)

describe("get", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("returns the flow of an original tuple", function()
    ns.fill()
    local flow = ct:get(TCP_KEY)
    assert.equal(flows_of(ct, { proto = "tcp", orig_dport = 80 })[1], flow)
    assert.equal("ESTABLISHED", flow.state)
    assert.equal(7, flow.mark)
  end)

  it("returns IPv6 and ICMP flows", function()
    ns.fill()
    assert.equal("fd00::2", ct:get{ proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000,
                                    orig_dport = 443, zone = 3 }.orig_dst)
    assert.equal(77, ct:get{ proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8,
                             icmp_code = 0, icmp_id = 77 }.icmp_id)
  end)

  it("refuses a lookup without the original tuple", function()
    assert.is_true(ct:create(TCP))
    local ok, err = pcall(ct.get, ct, { proto = "tcp", reply_src = "10.0.0.2", reply_dst = "10.0.0.1",
                                         reply_sport = 80, reply_dport = 1234 })
    assert.is_false(ok)
    assert.equal("bad argument 'orig_src': get needs it", err)
  end)

  it("tells apart the same tuple in two zones", function()
    assert.is_true(ct:create(TCP))
    assert.is_true(ct:create(copy(TCP, { zone = 5, mark = 55 })))
    assert.equal(55, ct:get(copy(TCP_KEY, { zone = 5 })).mark)
    assert.equal(0, ct:get(TCP_KEY).mark)
    assert.same({ nil, "get: no such flow", 2 }, { ct:get(copy(TCP_KEY, { zone = 6 })) })
  end)

  it("returns nil, a message and ENOENT for an absent flow", function()
    assert.same({ nil, "get: no such flow", 2 }, { ct:get(TCP_KEY) })
    assert.is_true(ct:create(TCP))
    assert.same({ nil, "get: no such flow", 2 }, { ct:get(copy(TCP_KEY, { orig_dport = 81 })) })
  end)

  it("refuses what does not identify a flow", function()
    assert.equal("bad argument 'timeout': get does not take it", error_of(ct.get, ct, copy(TCP_KEY, { timeout = 5 })))
    assert.equal("bad argument 'mark': get does not take it", error_of(ct.get, ct, copy(TCP_KEY, { mark = 5 })))
    assert.equal("bad argument 'orig_dport': get needs it", error_of(ct.get, ct, without(TCP_KEY, "orig_dport")))
    assert.equal("bad argument 'bogus': unknown field", error_of(ct.get, ct, copy(TCP_KEY, { bogus = 1 })))
  end)
end)

describe("get of a flow, and flow:tuple", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("reads the same entry again, with what changed since", function()
    ns.fill()
    for flow in ct:dump() do
      local again = assert(ct:get(flow))
      assert.equal(flow, again)
      assert.equal(flow.zone, again.zone)
    end
    local tcp = ct:get(TCP_KEY)
    assert.is_true(ct:update(tcp, { mark = 0x99 }))
    assert.equal(0x99, ct:get(tcp).mark)
    assert.is_true(ct:delete(tcp))
    assert.same({ nil, "get: no such flow", 2 }, { ct:get(tcp) })
  end)

  it("gives the table get takes: family, protocol, original tuple and zone", function()
    ns.fill()
    for flow in ct:dump() do
      local key = flow:tuple()
      assert.equal(flow, assert(ct:get(key)))
      assert.is_nil(key.mark)
      assert.is_nil(key.timeout)
      assert.is_nil(key.reply_src)
    end
    local zoned = assert(ct:get{ proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000,
                                 orig_dport = 443, zone = 3 })
    assert.same({ family = "ipv6", proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000,
                  orig_dport = 443, zone = 3 }, zoned:tuple())
  end)
end)

describe("create of a list", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  local function udp(port)
    return { proto = "udp", orig_src = "10.7.0.1", orig_dst = "10.7.0.2", orig_sport = port, orig_dport = 53,
             timeout = 100 }
  end

  it("returns the number created alone when every flow was", function()
    assert.same({ 3 }, { ct:create{ udp(1), udp(2), udp(3) } })
    assert.equal(3, ct:count())
  end)

  it("creates every flow it can and lists the ones that failed, by index", function()
    assert.is_true(ct:create(udp(2)))
    assert.is_true(ct:create(udp(3)))
    local n, failures = ct:create{ udp(1), udp(2), udp(3), udp(4) }
    assert.equal(2, n)
    assert.same({ { index = 2, message = "create: the flow already exists", errno = 17 },
                  { index = 3, message = "create: the flow already exists", errno = 17 } }, failures)
    assert.equal(4, ct:count())
  end)

  it("counts indexes across batches", function()
    local list = {}
    for port = 1, 700 do list[port] = udp(port) end
    assert.is_true(ct:create(udp(300)))
    assert.is_true(ct:create(udp(699)))
    local n, failures = ct:create(list)
    assert.equal(698, n)
    assert.same({ 300, 699 }, { failures[1].index, failures[2].index })
    assert.equal(2, #failures)
    assert.equal(700, ct:count())
  end)
end)

describe("update", function()
  local ct, flow
  before_each(function()
    ct = ns.fresh()
    assert.is_true(ct:create(copy(TCP, { mark = 0xf0f0 })))
    flow = ct:get(TCP_KEY)
  end)

  it("sets the mark, seen by get and conntrack -L #diff", function()
    assert.is_true(ct:update(flow, { mark = 5 }))
    assert.equal(5, ct:get(TCP_KEY).mark)
    assert.matches(" mark=5 ", ns.reference_lines("-L")[1])
  end)

  it("changes the mark under a mask as conntrack -U does #diff", function()
    local twin = copy(TCP_KEY, { orig_dport = 81 })
    assert.is_true(ct:create(copy(TCP, { orig_dport = 81, mark = 0xf0f0 })))
    -- value bits outside the mask are flipped too: new = (old & ~mask) ~ value,
    -- here (0xf0f0 & ~0xff) ~ 0x10101
    assert.is_true(ct:update(flow, { mark = { 0x10101, 0x00ff } }))
    local _, err, status = ns.run("conntrack -U -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1234 --dport 81 -m 0x10101/0xff")
    assert(status == 0, err)
    assert.equal(0x1f101, ct:get(TCP_KEY).mark)
    assert.equal(ct:get(twin).mark, ct:get(TCP_KEY).mark)
  end)

  it("sets the timeout, seen by get and conntrack -L #diff", function()
    assert.is_true(ct:update(flow, { timeout = 500 }))
    local timeout = ct:get(TCP_KEY).timeout
    assert.is_true(timeout >= 498 and timeout <= 500, "timeout " .. timeout)
    local shown = tonumber(ns.reference_lines("-L")[1]:match("^%S+%s+%d+%s+(%d+) "))
    assert.is_true(shown >= 498 and shown <= 500, "conntrack -L timeout " .. shown)
  end)

  it("adds a status flag, seen by get and conntrack -L #diff", function()
    assert.is_false(flow.status.ASSURED)
    assert.is_true(ct:update(flow, { status = "ASSURED" }))
    assert.is_true(ct:get(TCP_KEY).status.ASSURED)
    assert.matches(" %[ASSURED%] ", ns.reference_lines("-L")[1])
  end)

  describe("labels", function()
    local labelled, key
    after_each(remove_label_rule)
    before_each(function()
      add_label_rule()
      key = copy(TCP_KEY, { orig_dport = 81 })
      assert.is_true(ct:create(copy(TCP, { orig_dport = 81, labels = { 1, 5 } })))
      labelled = ct:get(key)
    end)

    it("replaces them with a set of bits", function()
      assert.is_true(ct:update(labelled, { labels = { 3, 127 } }))
      assert.same({ [3] = true, [127] = true }, ct:get(key).labels)
    end)

    it("adds and removes bits, keeping the others", function()
      assert.is_true(ct:update(labelled, { labels = { add = { 2 }, remove = { 5 } } }))
      assert.same({ [1] = true, [2] = true }, ct:get(key).labels)
    end)
  end)

  it("returns nil, a message and ENOSPC for labels on a flow made while no rule used them", function()
    assert.same({ nil, "update: no room for labels (a ct label rule in the namespace makes it)", 28 },
                { ct:update(flow, { labels = { 1 } }) })
  end)

  it("changes several things at once", function()
    assert.is_true(ct:update(flow, { mark = 9, timeout = 300, status = { "ASSURED" } }))
    local now = ct:get(TCP_KEY)
    assert.equal(9, now.mark)
    assert.is_true(now.status.ASSURED)
    assert.is_true(now.timeout > 200)
  end)

  describe("state", function()
    it("turns an ESTABLISHED flow into TIME_WAIT as conntrack -U --state does #diff", function()
      local twin = copy(TCP_KEY, { orig_dport = 81 })
      assert.is_true(ct:create(copy(TCP, { orig_dport = 81, mark = 0xf0f0 })))
      assert.is_true(ct:update(flow, { state = "TIME_WAIT" }))
      local _, err, status = ns.run("conntrack -U -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1234 --dport 81 " ..
                                    "--state TIME_WAIT")
      assert(status == 0, err)
      local ours, theirs = ct:get(TCP_KEY), ct:get(twin)
      assert.equal("TIME_WAIT", ours.state)
      assert.equal("TIME_WAIT", theirs.state)
      -- the state alone changes: the timeout runs on as it was
      assert.is_true(ours.timeout > 100, "timeout " .. ours.timeout)
      assert.equal(untimed(tostring(theirs)):gsub("dport=81", "dport=80"):gsub("sport=81", "sport=80"),
                   untimed(tostring(ours)))
    end)

    it("takes the name LISTEN for SYN_SENT2, as conntrack does", function()
      assert.is_true(ct:update(flow, { state = "LISTEN" }))
      assert.equal("SYN_SENT2", ct:get(TCP_KEY).state)
    end)

    it("changes the state of a real loopback connection", function()
      local socket = require "socket"
      local client, peer, server
      finally(function()   -- busted keeps one finally per test: the last
        for _, s in ipairs{ server, client, peer } do s:close() end   -- made in this order
        os.execute("nft delete table inet lct_state 2>/dev/null")
      end)
      local _, err, status = ns.run("nft add table inet lct_state && " ..
        "nft add chain inet lct_state out '{ type filter hook output priority 0; }' && " ..
        "nft add rule inet lct_state out ct state new,established,related accept")
      assert(status == 0, "nft: " .. err)
      server = assert(socket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      client = assert(socket.connect("127.0.0.1", port))
      peer = assert(server:accept())
      assert(client:send("hello\n"))
      assert.equal("hello", peer:receive("*l"))
      local key = { proto = "tcp", orig_dst = "127.0.0.1", orig_dport = tonumber(port) }
      local real = assert(flows_of(ct, key)[1])
      assert.equal("ESTABLISHED", real.state)
      assert.is_true(ct:update(real, { state = "TIME_WAIT" }))
      assert.equal("TIME_WAIT", flows_of(ct, key)[1].state)
      assert.matches(" TIME_WAIT src=127%.0%.0%.1 ", table.concat(ns.reference_lines("-L -p tcp"), "\n"))
    end)

    it("refuses a flow of another protocol, and a name TCP does not have", function()
      assert.is_true(ct:create(ICMP))
      local icmp = ct:get{ proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8,
                           icmp_code = 0, icmp_id = 77 }
      assert.equal("bad argument 'state': update sets the state of TCP flows only (give proto = \"tcp\")",
                   error_of(ct.update, ct, icmp, { state = "TIME_WAIT" }))
      assert.equal("bad argument 'state': unknown TCP state \"COOKIE_WAIT\"",
                   error_of(ct.update, ct, flow, { state = "COOKIE_WAIT" }))
      assert.equal("bad argument 'state': expected a TCP state name, got number",
                   error_of(ct.update, ct, flow, { state = 7 }))
      assert.equal("ESTABLISHED", ct:get(TCP_KEY).state)
    end)
  end)

  it("refuses unknown fields and those it cannot change", function()
    assert.equal("bad argument 'bogus': unknown field", error_of(ct.update, ct, flow, { bogus = 1 }))
    for _, key in ipairs{ "zone", "orig_src", "orig_dport", "id", "proto" } do
      assert.equal("bad argument '" .. key .. "': update changes mark, timeout, status, labels and state only",
                   error_of(ct.update, ct, flow, { [key] = 1 }))
    end
    assert.equal("bad argument 'status': update can set flags, not clear them",
                 error_of(ct.update, ct, flow, { status = "!ASSURED" }))
    assert.equal("bad argument 'changes': nothing to change", error_of(ct.update, ct, flow, {}))
    assert.equal("bad argument 'mark': expected an integer, got nil", error_of(ct.update, ct, flow, { mark = { 1 } }))
    assert.equal("bad argument 'mark': expected an integer from 0 to 4294967295, got -1",
                 error_of(ct.update, ct, flow, { mark = -1 }))
    assert.equal(0xf0f0, ct:get(TCP_KEY).mark)
  end)

  it("returns nil, a message and ENOENT for a deleted flow", function()
    assert.is_true(ct:delete(flow))
    assert.same({ nil, "update: no such flow", 2 }, { ct:update(flow, { mark = 1 }) })
  end)
end)

describe("delete", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("removes exactly that flow #diff", function()
    ns.fill()
    local keep = {}
    for _, line in ipairs(dumped(ct)) do
      if not line:match("^tcp .* dport=80 ") then keep[#keep + 1] = line end
    end
    assert.is_true(ct:delete(ct:get(TCP_KEY)))
    assert.equal(#ns.sample - 1, ct:count())
    assert.same(keep, dumped(ct))
    assert.same(keep, listed())
  end)

  it("removes the flow of its zone only", function()
    assert.is_true(ct:create(TCP))
    assert.is_true(ct:create(copy(TCP, { zone = 5 })))
    assert.is_true(ct:delete(ct:get(copy(TCP_KEY, { zone = 5 }))))
    local left = flows_of(ct)
    assert.equal(1, #left)
    assert.equal(0, left[1].zone)
  end)

  it("returns nil, a message and ENOENT the second time", function()
    assert.is_true(ct:create(TCP))
    local flow = ct:get(TCP_KEY)
    assert.is_true(ct:delete(flow))
    assert.same({ nil, "delete: no such flow", 2 }, { ct:delete(flow) })
  end)

  it("does not remove a newer entry with the tuple of a stale flow", function()
    assert.is_true(ct:create(TCP))
    local stale = ct:get(TCP_KEY)
    assert.is_true(ct:delete(stale))
    -- a flow made at once would take the freed entry, and with it its id
    assert.is_true(ct:create(ns.sample[2]))
    assert.is_true(ct:create(TCP))
    local fresh = ct:get(TCP_KEY)
    assert.are_not.equal(stale.id, fresh.id)
    assert.is_false(stale == fresh)
    assert.same({ nil, "delete: no such flow", 2 }, { ct:delete(stale) })
    assert.equal(fresh, ct:get(TCP_KEY))
  end)
end)

describe("flush", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  local function by_family(family)
    local lines = {}
    for flow in ct:dump{ family = family } do lines[#lines + 1] = untimed(flow:format("id")) end
    table.sort(lines)
    return lines
  end

  it("empties the table #diff", function()
    ns.fill()
    assert.is_true(ct:flush())
    assert.equal(0, ct:count())
    assert.same({}, listed())
  end)

  it("removes only the IPv6 flows with family = 'ipv6'", function()
    ns.fill()
    local ipv4 = by_family("ipv4")
    assert.is_true(#ipv4 > 0 and #ipv4 < #ns.sample)
    assert.is_true(ct:flush{ family = "ipv6" })
    assert.same(ipv4, snapshot(ct))
  end)

  it("removes only the IPv4 flows with family = 'ipv4'", function()
    ns.fill()
    local ipv6 = by_family("ipv6")
    assert.is_true(#ipv6 > 0 and #ipv6 < #ns.sample)
    assert.is_true(ct:flush{ family = "ipv4" })
    assert.same(ipv6, snapshot(ct))
  end)

  it("raises naming an unknown key", function()
    ns.fill()
    assert.equal("bad argument 'bad': not an option of flush (its options: family)", error_of(ct.flush, ct, { bad = 1 }))
    assert.equal('bad argument \'family\': expected "ipv4" or "ipv6", got "ipx"',
                 error_of(ct.flush, ct, { family = "ipx" }))
    assert.equal(#ns.sample, ct:count())
  end)
end)

describe("count", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("is the number of flows, as conntrack -C says #diff", function()
    assert.equal(0, ct:count())
    ns.fill()
    local n = 0
    for _ in ct:dump() do n = n + 1 end
    assert.equal(#ns.sample, n)
    assert.equal(n, ct:count())
    assert.equal(tostring(n), (ns.run("conntrack -C"):gsub("%s+$", "")))
  end)
end)

describe("stats", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  -- conntrack -S: one line per CPU, "cpu=N found=N ..."
  local function reference_stats()
    local cpus = {}
    for _, line in ipairs(ns.reference_lines("-S")) do
      local cpu = {}
      for k, v in line:gmatch("(%w[%w_]*)=(%d+)") do cpu[k] = tonumber(v) end
      cpus[#cpus + 1] = cpu
    end
    table.sort(cpus, function(a, b) return a.cpu < b.cpu end)
    return cpus
  end

  it("has one entry per CPU with the counters of conntrack -S #diff", function()
    ns.fill()
    local stats = ct:stats()
    local reference = reference_stats()
    assert.equal(#reference, #stats)
    for i, cpu in ipairs(stats) do assert.same(reference[i], cpu) end
  end)

  it("counts the entries and the table's maximum", function()
    ns.fill()
    local stats = ct:stats()
    assert.equal(ct:count(), stats.entries)
    assert.is_true(ns.compat.is_integer(stats.max))
    assert.is_true(stats.max > 0)
  end)

  it("counts each created flow as one insert", function()
    local function inserts()
      local n = 0
      for _, cpu in ipairs(ct:stats()) do n = n + cpu.insert end
      return n
    end
    local before = inserts()
    ns.fill()
    assert.equal(before + #ns.sample, inserts())
  end)
end)

describe("without CAP_NET_ADMIN", function()
  before_each(function() ns.fresh() end)

  local function lines_of(text)
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    return lines
  end

  local function cwd()
    local p = io.popen("pwd")
    local dir = p:read("*l")
    p:close()
    return dir
  end

  -- Runs Lua as nobody in this namespace, returns what it prints.
  local function as_nobody(code)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format("package.cpath = %q .. package.cpath\n", cwd() .. "/" .. ns.CHILD_SO_DIR .. "/?.so;"), code)
    f:close()
    local out, err, status = ns.run("setpriv --reuid=nobody --regid=nogroup --clear-groups " .. ns.LUA .. " - <" .. script)
    os.remove(script)
    assert(status == 0, err)
    return out
  end

  it("returns nil, a message and EPERM, and a dump raises", function()
    local _, err, status = ns.run("setpriv --reuid=nobody --regid=nogroup --clear-groups test -r " ..
                                  cwd() .. "/" .. ns.CHILD_SO_DIR .. "/conntrack.so")
    assert(status == 0, "conntrack.so is not readable by nobody " .. err)
    ns.fill()
    local out = as_nobody([[
      local ct = assert(require("conntrack").open())
      local function show(...) print(table.concat({ tostring(select(1, ...)), select(2, ...) }, "|")) end
      show(ct:create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.9", orig_sport = 1, orig_dport = 2,
                      timeout = 60 })
      show(ct:get{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53 })
      show(ct:count())
      show(ct:flush())
      local ok, err = pcall(function() for _ in ct:dump() do end end)
      print(ok, (err:gsub("^[^:]*:%d+: ", "")))
    ]])
    assert.same({
      "nil|create: operation not permitted (CAP_NET_ADMIN is needed)|1",
      "nil|get: operation not permitted (CAP_NET_ADMIN is needed)|1",
      "nil|count: operation not permitted (CAP_NET_ADMIN is needed)|1",
      "nil|flush: operation not permitted (CAP_NET_ADMIN is needed)|1",
      "false\tdump: operation not permitted (CAP_NET_ADMIN is needed)",
    }, lines_of(out))
    assert.equal(#ns.sample, ns.handle():count())
  end)
end)
