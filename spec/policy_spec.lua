-- spec/policy_spec.lua: the filter words of policy scripts (addr, lists of
-- values and prefixes, "!" negation, any), each checked against the plain-Lua
-- predicate that says the same thing, on a table of IPv4, IPv6 and NATed
-- flows, through dump, delete, update and events; then the same words in
-- predicates (status flags, bit helpers, in_prefix) and the exact errors.
local ns = require "spec.helpers.ns"
local mixed = require "spec.helpers.mixed_flows"
local conntrack = ns.conntrack
local band = ns.compat.band

local FLOWS = mixed.generate_nat(300)

local function dport(t) return t.orig_dport end
local function proto_of(t) return t.proto end

-- { name, filter, model(t) } for a generated flow table t
local CASES = {
  { "addr, one IPv4 host: NATed flows by their reply addresses too", { addr = "192.0.2.3" },
    function(t) return mixed.addr_in(t, "192.0.2.3") end },
  { "addr, one IPv6 prefix", { addr = "fd98::1:0/125" }, function(t) return mixed.addr_in(t, "fd98::1:0/125") end },
  { "addr, a list of IPv4 and IPv6 prefixes and hosts",
    { addr = { "10.1.0.0/24", "fd00::/120", "198.51.100.2", "fd99::4" } },
    function(t) return mixed.addr_in(t, { "10.1.0.0/24", "fd00::/120", "198.51.100.2", "fd99::4" }) end },
  { "orig_src, a list of prefixes of many lengths, both families",
    { orig_src = { "10.1.0.4/31", "10.10.0.0/16", "fd00::5:0/112", "2001:db8::/32", "11.1.0.5", "fe80::/10" } },
    function(t)
      return mixed.in_prefix(t.orig_src, { "10.1.0.4/31", "10.10.0.0/16", "fd00::5:0/112", "2001:db8::/32",
                                           "11.1.0.5", "fe80::/10" })
    end },
  { "reply_dst, a list", { reply_dst = { "192.0.2.0/30", "fd99::/16" } },
    function(t) return mixed.in_prefix(mixed.reply_dst(t), { "192.0.2.0/30", "fd99::/16" }) end },
  { "orig_src negated", { orig_src = "!10.1.0.0/16" }, function(t) return not mixed.in_prefix(t.orig_src, "10.1.0.0/16") end },
  { "addr, a negated list", { addr = { "!10.1.0.0/16", "!fd00::/120", "!192.0.2.0/24" } },
    function(t) return not mixed.addr_in(t, { "10.1.0.0/16", "fd00::/120", "192.0.2.0/24" }) end },
  { "a list of ports", { orig_dport = { 53, 443 } }, function(t) return dport(t) == 53 or dport(t) == 443 end },
  { "a negated port (flows without ports included)", { orig_dport = "!53" }, function(t) return dport(t) ~= 53 end },
  { "a list of protocols", { proto = { "udp", "icmpv6" } },
    function(t) return proto_of(t) == "udp" or proto_of(t) == "icmpv6" end },
  { "a negated protocol", { proto = "!tcp" }, function(t) return proto_of(t) ~= "tcp" end },
  { "a list of states", { state = { "SYN_SENT", "TIME_WAIT" } }, function(t) return t.state == "SYN_SENT" end },
  { "a negated state", { state = "!ESTABLISHED" }, function(t) return t.state ~= "ESTABLISHED" end },
  { "a list of zones", { zone = { 0, 2 } }, function(t) return mixed.zone(t) ~= 1 end },
  { "a negated zone and a negated family", { zone = "!1", family = "!ipv4" },
    function(t) return mixed.zone(t) ~= 1 and mixed.family(t) == "ipv6" end },
  { "a list of marks, one under a mask", { mark = { 0x10, { 0x20, 0xf0 }, 7 } },
    function(t) return t.mark == 0x10 or band(t.mark, 0xf0) == 0x20 or t.mark == 7 end },
  { "a negated mark under a mask", { mark = { "!0x10", 0xf0 } }, function(t) return band(t.mark, 0xf0) ~= 0x10 end },
  { "a negated list of marks", { mark = { "!0", "!0x10" } }, function(t) return t.mark ~= 0 and t.mark ~= 0x10 end },
  { "any of two filters", { any = { { orig_src = "10.1.0.0/16", proto = "udp" }, { family = "ipv6", zone = 1 } } },
    function(t)
      return (mixed.in_prefix(t.orig_src, "10.1.0.0/16") and t.proto == "udp") or
             (mixed.family(t) == "ipv6" and mixed.zone(t) == 1)
    end },
  { "any nested, and fields beside it",
    { proto = { "tcp", "udp" }, any = { { addr = "192.0.2.0/24" }, { any = { { orig_dport = 80 }, { mark = "!0" } } } } },
    function(t)
      return (t.proto == "tcp" or t.proto == "udp") and
             (mixed.addr_in(t, "192.0.2.0/24") or t.orig_dport == 80 or t.mark ~= 0)
    end },
  { "any of addresses alone (matched on the kernel's message)",
    { any = { { orig_src = "10.1.0.0/24" }, { reply_src = "198.51.100.0/30" }, { family = "ipv6", orig_src = "fd00::/120" } } },
    function(t)
      return mixed.in_prefix(t.orig_src, "10.1.0.0/24") or mixed.in_prefix(mixed.reply_src(t), "198.51.100.0/30") or
             mixed.in_prefix(t.orig_src, "fd00::/120")
    end },
}

local function fill(ct)
  assert(ct:flush())
  local n, failures = ct:create(FLOWS)
  assert.is_nil(failures)
  assert.equal(#FLOWS, n)
end

describe("policy filters against their plain-Lua predicates", function()
  local ct
  local everything = mixed.select(FLOWS, function() return true end)

  setup(function() ct = ns.fresh() end)
  teardown(function() ct:flush() end)

  it("builds a table of both families with NATed flows", function()
    fill(ct)
    local dumped = mixed.dumped(ct)
    assert.same(mixed.sorted(everything), mixed.sorted(dumped))
    local natted = 0
    for flow in ct:dump() do if flow.snat or flow.dnat then natted = natted + 1 end end
    assert.is_true(natted > #FLOWS / 3)
  end)

  for _, case in ipairs(CASES) do
    local name, filter, model = case[1], case[2], case[3]
    local want = mixed.select(FLOWS, model)

    it("dump selects " .. name, function()
      fill(ct)
      assert.is_true(mixed.size(want) > 0 and mixed.size(want) < #FLOWS, "the case must split the table")
      assert.same(mixed.sorted(want), mixed.sorted((mixed.dumped(ct, filter))))
      local by_match = {}
      for flow in ct:dump() do
        if flow:match(filter) then by_match[mixed.identity(flow)] = true end
      end
      assert.same(mixed.sorted(want), mixed.sorted(by_match))
    end)

    it("delete removes " .. name .. ", and nothing else", function()
      fill(ct)
      assert.equal(mixed.size(want), ct:delete(filter))
      assert.same(mixed.sorted(mixed.minus(everything, want)), mixed.sorted((mixed.dumped(ct))))
    end)

    it("update changes " .. name .. ", and nothing else", function()
      fill(ct)
      assert.equal(mixed.size(want), ct:update(filter, { mark = 0xabc }))
      assert.same(mixed.sorted(want), mixed.sorted((mixed.dumped(ct, { mark = 0xabc }))))
    end)

    it("events yield " .. name, function()
      assert(ct:flush())
      local sub = assert(ct:events{ "new", filter = filter })
      fill(ct)
      local seen = {}
      for kind, flow in sub:each(0.3) do
        assert.equal("new", kind)
        seen[mixed.identity(flow)] = true
      end
      sub:close()
      assert.same(mixed.sorted(want), mixed.sorted(seen))
    end)
  end

  it("finds a set of thousands of prefixes exactly", function()
    fill(ct)
    local list, model = {}, {}
    for i = 0, 3999 do
      list[#list + 1] = ("10.%d.%d.0/24"):format(100 + i % 100, math.floor(i / 100))
      list[#list + 1] = ("fc%02x:%x::/32"):format(i % 200, i)
    end
    list[#list + 1] = "10.1.0.5"
    list[#list + 1] = "fd00::5:0/112"
    model = mixed.select(FLOWS, function(t) return t.orig_src == "10.1.0.5" or mixed.in_prefix(t.orig_src, "fd00::5:0/112") end)
    assert.same(mixed.sorted(model), mixed.sorted((mixed.dumped(ct, { orig_src = list }))))
    assert.same(mixed.sorted(model), mixed.sorted((mixed.dumped(ct, { where = function(flow)
      return conntrack.in_prefix(flow.orig_src, list)
    end }))))
  end)
end)

describe("predicates with the filters' words", function()
  local ct

  setup(function()
    ct = ns.fresh()
    fill(ct)
  end)
  teardown(function() ct:flush() end)

  it("read each status flag as the filter status = FLAG selects it, UNREPLIED included", function()
    local flags = { "UNREPLIED" }
    for _, f in ipairs(conntrack.status_flags) do flags[#flags + 1] = f end
    for flow in ct:dump() do
      for _, flag in ipairs(flags) do
        assert.equal(flow:match{ status = flag }, flow.status[flag], flag)
      end
    end
  end)

  it("raise on a status flag that does not exist", function()
    for flow in ct:dump() do
      assert.has_error(function() return flow.status.ASURED end, 'unknown status flag "ASURED"')
      break
    end
  end)

  it("have u32 bit operations on every Lua", function()
    assert.equal(0xf0, conntrack.band(0xfff0, 0xff))
    assert.equal(0xffffffff, conntrack.bor(0xffff0000, 0xffff))
    assert.equal(0x80000001, conntrack.bxor(0x80000000, 1))
    assert.equal(0x0000ffff, conntrack.bnot(0xffff0000))
    assert.equal(0x80000000, conntrack.lshift(1, 31))
    assert.equal(0, conntrack.lshift(1, 32))
    assert.equal(1, conntrack.rshift(0x80000000, 31))
    assert.equal(0x10, conntrack.band(0x11, 0x31, 0xf0))
    assert.has_error(function() conntrack.band(0x100000000, 1) end,
                     "bad argument 'a': expected an integer from 0 to 4294967295, got 4294967296")
    assert.has_error(function() conntrack.bor(1, -1) end,
                     "bad argument 'b': expected an integer from 0 to 4294967295, got -1")
  end)

  it("test addresses with in_prefix as the filters do", function()
    local set = { "10.1.0.0/28", "fd00::/124", "192.0.2.1" }
    local compiled = conntrack.prefixes(set)
    assert.equal(3, #compiled)
    for flow in ct:dump() do
      assert.equal(flow:match{ orig_src = set }, conntrack.in_prefix(flow.orig_src, set))
      assert.equal(flow:match{ orig_src = set }, conntrack.in_prefix(flow.orig_src, compiled))
      assert.equal(flow:match{ reply_dst = set }, conntrack.in_prefix(flow.reply_dst, "10.1.0.0/28", "fd00::/124",
                                                                      "192.0.2.1"))
    end
    assert.is_false(conntrack.in_prefix(nil, set))
  end)
end)

describe("a bad policy filter", function()
  local ct

  setup(function() ct = ns.fresh() end)

  local function rejects(message, filter)
    assert(ct:create(FLOWS[1]))
    local ok, err = pcall(ct.delete, ct, filter)
    assert.is_false(ok)
    assert.equal(message, err)
    assert.equal(1, ct:count())
    assert.has_error(function() ct:dump(filter) end, message)
    assert.has_error(function() ct:events{ filter = filter } end, message)
    assert(ct:flush())
  end

  it("names a list that mixes negated and plain items", function()
    rejects("bad argument 'orig_src': either every address of a list is negated, or none",
            { orig_src = { "10.0.0.1", "!10.0.0.2" } })
    rejects("bad argument 'orig_dport': either every item of a list is negated, or none",
            { orig_dport = { 53, "!80" } })
  end)

  it("names an empty list, which would match nothing", function()
    rejects("bad argument 'addr': an empty list matches nothing", { addr = {} })
    rejects("bad argument 'zone': an empty list matches nothing", { zone = {} })
    rejects("bad argument 'any': an empty list matches nothing", { any = {} })
  end)

  it("names a table that is not a list", function()
    rejects("bad argument 'orig_dport': expected a list, got a table with key x", { orig_dport = { x = 1 } })
  end)

  it("takes integers as numbers; only a negation is written as text", function()
    rejects("bad argument 'orig_dport': expected an integer, got string", { orig_dport = "53" })
    rejects('bad argument \'orig_dport\': expected an integer, got "5x"', { orig_dport = "!5x" })
    rejects("bad argument 'orig_dport': expected an integer from 0 to 65535, got 70000", { orig_dport = "!70000" })
  end)

  it("names what any holds that is no filter, and a predicate inside it", function()
    rejects("bad argument 'any': item 1 is a string, not a filter table", { any = { "tcp" } })
    rejects("bad argument 'any': expected a list of filters, got boolean", { any = true })
    rejects("bad argument 'where': only the outermost filter takes a predicate",
            { any = { { where = function() return true end } } })
    rejects("bad argument 'orig_srcc': unknown field", { any = { { orig_srcc = "10.0.0.1" } } })
  end)

  it("refuses any nested without end", function()
    local loop = { proto = "tcp" }
    loop.any = { loop }
    rejects("bad argument 'any': nested more than 16 deep", loop)
  end)

  it("names a family that addresses of one family contradict", function()
    rejects("bad argument 'addr': an IPv6 address does not fit family \"ipv4\"",
            { family = "ipv4", addr = { "fd00::1", "fd00::2" } })
  end)
end)

describe("a delete with lists or negations", function()
  it("is never left to the kernel's own selection by mark", function()
    local ct = ns.fresh()
    fill(ct)
    -- the kernel would take a mark list or negation as its first value only
    local want = mixed.select(FLOWS, function(t) return t.mark ~= 0x10 end)
    assert.equal(mixed.size(want), ct:delete{ mark = "!0x10" })
    assert.same(mixed.sorted(mixed.minus(mixed.select(FLOWS, function() return true end), want)),
                mixed.sorted((mixed.dumped(ct))))
    ct:flush()
  end)
end)
