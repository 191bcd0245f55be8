-- spec/aggregate_spec.lua: ct:aggregate groups the flows a filter selects,
-- sums them and keeps the top N, as the same sums made in Lua over ct:dump()
-- would: on mixed tables, with counters from real traffic and without, past
-- the cap on groups, with key functions and predicates.
local ns = require "spec.helpers.ns"
local mixed = require "spec.helpers.mixed_flows"

local FLOWS = mixed.generate(2000)

local function sh(cmd)
  local _, err, status = ns.run(cmd)
  assert(status == 0, cmd .. ": " .. err)
end

local function sysctl(name, value)
  local f = assert(io.open("/proc/sys/net/netfilter/" .. name))
  local before = f:read("*l"); f:close()
  sh(("sysctl -qw net.netfilter.%s=%s"):format(name, value))
  return function() os.execute(("sysctl -qw net.netfilter.%s=%s"):format(name, before)) end
end

-- UDP over loopback, n datagrams one way and one back, from a port of its own
local function traffic(n)
  local socket = require "socket"
  for _, host in ipairs{ "127.0.0.1", "::1" } do
    local v6 = host:find(":") ~= nil
    local a = assert(v6 and socket.udp6() or socket.udp())
    local b = assert(v6 and socket.udp6() or socket.udp())
    assert(a:setsockname(host, 0)); assert(b:setsockname(host, 0))
    assert(b:settimeout(2))
    local bhost, bport = b:getsockname()
    for _ = 1, n do assert(a:sendto(("x"):rep(100), bhost, bport)) end
    local _, from, fromport = b:receivefrom()
    assert(b:sendto("pong", from, fromport))
    a:close(); b:close()
  end
end

-- The groups as "key1|key2 -> flows" lines, sorted: what to compare.
local function lines(groups, keys)
  local out = {}
  for _, g in ipairs(groups) do
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = tostring(g[k]) end
    out[#out + 1] = table.concat(parts, "|") .. " -> " .. g.flows
  end
  table.sort(out)
  return out
end

-- The same from Lua: key(flow) -> the key line's left side.
local function model(ct, filter, key)
  local counts = {}
  for flow in ct:dump(filter) do
    local k = key(flow)
    counts[k] = (counts[k] or 0) + 1
  end
  local out = {}
  for k, n in pairs(counts) do out[#out + 1] = k .. " -> " .. n end
  table.sort(out)
  return out, counts
end

local function v4_24(addr) return addr:match("^(%d+%.%d+%.%d+%.)") .. "0/24" end

describe("aggregate", function()
  local ct, undo
  before_each(function()
    ct = ns.fresh()
    undo = {}
  end)
  after_each(function()
    for i = #undo, 1, -1 do undo[i]() end
  end)

  describe("groups", function()
    before_each(function() mixed.fill(ct, FLOWS) end)

    it("by an address cut to a prefix, as a Lua loop over the dump counts them", function()
      local groups, summary = assert(ct:aggregate({ family = "ipv4" }, { by = "orig_src/24" }))
      assert.same(model(ct, { family = "ipv4" }, function(f) return v4_24(f.orig_src) end),
                  lines(groups, { "orig_src" }))
      local n = 0
      for _ in ct:dump{ family = "ipv4" } do n = n + 1 end
      assert.equal(n, summary.flows)
      assert.equal(#groups, summary.groups)
      assert.is_false(summary.counters)
      assert.equal("flows", summary.sort)
    end)

    it("by several fields, under a filter and a predicate", function()
      local filter = { proto = "tcp", where = function(f) return f.mark % 2 == 0 end }
      local groups = assert(ct:aggregate(filter, { by = { "orig_src", "orig_dport", "state", "zone" } }))
      assert.same(model(ct, filter, function(f)
        return table.concat({ f.orig_src, f.orig_dport, f.state, f.zone }, "|")
      end), lines(groups, { "orig_src", "orig_dport", "state", "zone" }))
    end)

    it("by IPv6 prefixes of their own (/N for IPv4, /M for IPv6 in orig_src/N/M)", function()
      local groups = assert(ct:aggregate{ by = "orig_src/8/32" })
      local seen = {}
      for _, g in ipairs(groups) do seen[g.orig_src] = g.flows end
      local v4, v6 = 0, 0
      for flow in ct:dump() do
        if flow.family == "ipv4" then v4 = v4 + (flow.orig_src:match("^10%.") and 1 or 0)
        else v6 = v6 + (flow.orig_src:match("^fd00:") and 1 or 0) end
      end
      assert.equal(v4, seen["10.0.0.0/8"])
      assert.equal(v6, seen["fd00::/32"])
    end)

    it("by a key function's value, beside fields", function()
      local groups = assert(ct:aggregate{ by = { "proto", function(f) return f.mark >= 0x20 and "high" or "low" end } })
      assert.same(model(ct, nil, function(f) return f.proto .. "|" .. (f.mark >= 0x20 and "high" or "low") end),
                  lines(groups, { "proto", "key" }))
    end)

    it("the same whether each flow is read from its message or parsed for Lua code", function()
      local keys = { "family", "proto", "orig_src/16/64", "reply_dst", "orig_dport", "reply_sport", "icmp_type",
                     "icmp_id", "state", "status", "mark", "zone", "orig_zone", "use", "snat" }
      local function text(groups)
        local out = {}
        for _, g in ipairs(groups) do
          local parts = {}
          for k, v in pairs(g) do
            if type(v) == "table" then
              local flags = {}
              for name in pairs(v) do flags[#flags + 1] = name end
              table.sort(flags)
              v = table.concat(flags, ",")
            end
            parts[#parts + 1] = k .. "=" .. tostring(v)
          end
          table.sort(parts)
          out[#out + 1] = table.concat(parts, " ")
        end
        table.sort(out)
        return out
      end
      local fast = text(assert(ct:aggregate{ by = keys }))
      assert.is_true(#fast > 100)
      assert.same(fast, text(assert(ct:aggregate(function() return true end, { by = keys }))))
    end)

    it("keeps the top N by the sum chosen, equal sums in the order of their keys", function()
      local all = assert(ct:aggregate{ by = "orig_src", sort = "flows" })
      local top = assert(ct:aggregate{ by = "orig_src", sort = "flows", top = 5 })
      assert.equal(5, #top)
      for i = 1, 5 do assert.same(all[i], top[i]) end
      for i = 2, #all do assert.is_true(all[i - 1].flows >= all[i].flows) end
      local _, counts = model(ct, nil, function(f) return f.orig_src end)
      local most = 0
      for _, n in pairs(counts) do most = math.max(most, n) end
      assert.equal(most, top[1].flows)
    end)

    it("sums the flows of groups past the cap as other", function()
      local groups, summary = assert(ct:aggregate{ by = "orig_src", max_groups = 3 })
      assert.equal(3, #groups)
      assert.equal(3, summary.groups)
      local shown = 0
      for _, g in ipairs(groups) do shown = shown + g.flows end
      assert.equal(ct:count(), shown + summary.other.flows)
    end)

    it("keeps memory to the groups: a table of flows yields a handful of groups", function()
      local groups = assert(ct:aggregate{ by = "family" })
      assert.equal(2, #groups)
      assert.equal(ct:count(), groups[1].flows + groups[2].flows)
    end)
  end)

  describe("sums", function()
    it("packets and bytes per direction, as the flows' counters add up, and sorts by them", function()
      undo[#undo + 1] = sysctl("nf_conntrack_acct", 1)
      sh("nft add table inet lct_agg && nft add chain inet lct_agg out '{ type filter hook output priority 0; }' && " ..
         "nft add rule inet lct_agg out ct state new,established accept")
      undo[#undo + 1] = function() os.execute("nft delete table inet lct_agg 2>/dev/null") end
      traffic(5)
      traffic(2)
      mixed.fill(ct, mixed.generate(50))
      local groups, summary = assert(ct:aggregate({ proto = "udp" }, { by = "orig_src", top = 2 }))
      assert.is_true(summary.counters)
      assert.equal("bytes", summary.sort)
      local want = {}
      for flow in ct:dump{ proto = "udp" } do
        local w = want[flow.orig_src] or { flows = 0, orig_packets = 0, orig_bytes = 0, reply_packets = 0, reply_bytes = 0 }
        w.flows = w.flows + 1
        for _, k in ipairs{ "orig_packets", "orig_bytes", "reply_packets", "reply_bytes" } do w[k] = w[k] + flow[k] end
        want[flow.orig_src] = w
      end
      assert.equal(2, #groups)
      for _, g in ipairs(groups) do
        local w = want[g.orig_src]
        w.orig_src = g.orig_src
        assert.same(w, g)
        assert.is_true(g.orig_bytes > 700)
      end
      assert.is_true(groups[1].orig_bytes + groups[1].reply_bytes >= groups[2].orig_bytes + groups[2].reply_bytes)
      local by_packets = assert(ct:aggregate({ proto = "udp" }, { by = "orig_src", sort = "reply_packets" }))
      for i = 2, #by_packets do assert.is_true(by_packets[i - 1].reply_packets >= by_packets[i].reply_packets) end
    end)

    it("leaves packets and bytes out, and orders by flows, when accounting is off", function()
      undo[#undo + 1] = sysctl("nf_conntrack_acct", 0)
      mixed.fill(ct, mixed.generate(100))
      local groups, summary = assert(ct:aggregate{ by = "proto", sort = "bytes" })
      assert.is_false(summary.counters)
      assert.equal("flows", summary.sort)
      for i, g in ipairs(groups) do
        assert.is_nil(g.orig_bytes)
        assert.is_nil(g.reply_packets)
        if i > 1 then assert.is_true(groups[i - 1].flows >= g.flows) end
      end
    end)
  end)

  describe("refuses", function()
    local function error_of(opts, filter)
      local ok, err = pcall(ct.aggregate, ct, filter, opts)
      assert.is_false(ok)
      return err
    end

    it("keys and options it cannot use, naming them", function()
      assert.equal("bad argument 'by': unknown field 'nope'", error_of{ by = "nope" })
      assert.equal("bad argument 'by': a prefix length is for addresses, not 'orig_dport/3'",
                   error_of{ by = "orig_dport/3" })
      assert.equal("bad argument 'by': invalid prefix length in 'orig_src/129'", error_of{ by = "orig_src/129" })
      assert.equal("bad argument 'by': invalid prefix length in 'orig_src/24/'", error_of{ by = "orig_src/24/" })
      assert.equal("bad argument 'by': flows are not grouped by 'labels'", error_of{ by = "labels" })
      assert.equal("bad argument 'by': no key", error_of{ top = 3 })
      assert.equal("bad argument 'by': no key", error_of{ by = {} })
      assert.equal("bad argument 'by': expected field names or a function, got number", error_of{ by = 3 })
      assert.equal("bad argument 'by': one key function at most",
                   error_of{ by = { function() end, function() end } })
      assert.equal("bad argument 'sort': expected one of flows, packets, bytes, orig_packets, orig_bytes, "
                   .. "reply_packets, reply_bytes", error_of{ by = "mark", sort = "size" })
      assert.equal("bad argument 'top': expected an integer, got string", error_of{ by = "mark", top = "x" })
      assert.equal("bad argument 'max_groups': expected an integer from 1 to 1073741824",
                   error_of{ by = "mark", max_groups = 0 })
      assert.equal("bad argument 'bogus': not an option of aggregate (its options: by, top, sort, max_groups, "
                   .. "zero, list)", error_of{ by = "mark", bogus = 1 })
      assert.equal("bad argument 'orig_src': invalid address \"x\"", error_of({ by = "mark" }, { orig_src = "x" }))
    end)

    it("a key function's value that cannot be a key, and passes on its errors, its socket closed", function()
      mixed.fill(ct, mixed.generate(20))
      local fds = ns.open_fds()
      assert.equal("bad argument 'by': the key function returned a table (keys are strings of at most 62 bytes, "
                   .. "numbers, booleans or nil)", error_of{ by = function() return {} end })
      assert.equal("bad argument 'by': the key function returned a string (keys are strings of at most 62 bytes, "
                   .. "numbers, booleans or nil)", error_of{ by = function() return ("x"):rep(63) end })
      assert.matches("boom$", error_of{ by = function() error("boom") end })
      assert.matches("where boom$", error_of({ by = "mark" }, function() error("where boom") end))
      assert.equal(fds, ns.open_fds())
    end)
  end)

  it("is also conntrack.aggregate, on the default handle", function()
    mixed.fill(ct, mixed.generate(30))
    local groups = assert(ns.conntrack.aggregate{ by = "family" })
    local n = 0
    for _, g in ipairs(groups) do n = n + g.flows end
    assert.equal(ct:count(), n)
  end)
end)
