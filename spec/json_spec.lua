-- spec/json_spec.lua: JSON objects written in C (src/json.c from the
-- kernel's message, src/flow_json.c from a parsed flow) are, byte for byte,
-- what the command line's Lua encoder makes of the same flows: mixed tables,
-- counters and timestamps from real traffic, labels, translated flows.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"
local mixed = require "spec.helpers.mixed_flows"
local output = require "conntrack.ctl.output"

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

-- Loopback UDP both ways over IPv4 and IPv6, tracked, with counters and
-- timestamps (attached when a flow is made, so switched on before).
local function traffic(undo)
  undo[#undo + 1] = sysctl("nf_conntrack_acct", 1)
  undo[#undo + 1] = sysctl("nf_conntrack_timestamp", 1)
  sh("nft add table inet lct_json && nft add chain inet lct_json out '{ type filter hook output priority 0; }' && " ..
     "nft add rule inet lct_json out ct label set 5 ct state new,established accept")
  undo[#undo + 1] = function() os.execute("nft delete table inet lct_json 2>/dev/null") end
  local socket = require "socket"
  for _, host in ipairs{ "127.0.0.1", "::1" } do
    local v6 = host:find(":") ~= nil
    local a = assert(v6 and socket.udp6() or socket.udp())
    local b = assert(v6 and socket.udp6() or socket.udp())
    assert(a:setsockname(host, 0)); assert(b:setsockname(host, 0))
    assert(a:settimeout(2)); assert(b:settimeout(2))
    local bhost, bport = b:getsockname()
    for _ = 1, 3 do assert(a:sendto("ping", bhost, bport)) end
    local _, from, fromport = b:receivefrom()
    assert(b:sendto("pong", from, fromport))
    a:close(); b:close()
    -- they outlive a slow run (valgrind): the table holds still between two dumps
    assert(ns.handle():update({ orig_src = host }, { timeout = 3600 }))
  end
end

-- Lines with their timeout cut out (it may tick between two dumps), sorted;
-- and by line, the timeouts (to compare roughly) and timestamps.
-- Where the Lua encoder's numbers are doubles (Lua 5.1: 2^53 and past), its
-- timestamps are inexact, "1.796456227063772e+18": C prints every digit.
local function normalised(lines)
  local out, cut = {}, {}
  for _, line in ipairs(lines) do
    local t = {}
    line = line:gsub('"timeout":(%d+)', function(v) t.timeout = tonumber(v); return '"timeout":T' end)
    line = line:gsub('"(st[ao][rp]t?)":([^,}]+)', function(k, v) t[k] = v; return '"' .. k .. '":S' end)
    out[#out + 1] = line
    cut[line] = t
  end
  table.sort(out)
  return out, cut
end

local function assert_same_objects(ours, reference)
  local a, ca = normalised(ours)
  local b, cb = normalised(reference)
  assert.equal(#b, #a)
  for i = 1, #a do
    assert.equal(b[i], a[i])
    local x, y = ca[a[i]], cb[b[i]]
    -- (dumps can be a minute apart under valgrind on a busy machine)
    if x.timeout then assert.is_true(math.abs(x.timeout - y.timeout) <= 300, a[i]) end
    for _, k in ipairs{ "start", "stop" } do
      if x[k] then
        assert.matches("^%d+$", x[k])
        if y[k]:match("^%d+$") then assert.equal(y[k], x[k])
        else assert.is_true(math.abs(tonumber(x[k]) - tonumber(y[k])) <= tonumber(x[k]) * 1e-15, a[i]) end
      end
    end
  end
end

local function reference(ct)
  local lines = {}
  for flow in ct:dump() do lines[#lines + 1] = output.json_object(flow) end
  return lines
end

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

describe("JSON written in C", function()
  local ct, undo
  before_each(function()
    ct = ns.fresh()
    undo = {}
  end)
  after_each(function()
    for i = #undo, 1, -1 do undo[i]() end
    ct:flush()
  end)

  -- a flow whose reply goes to another address: translated, snat true
  local SNAT = { proto = "tcp", orig_src = "10.7.0.1", orig_dst = "10.7.0.2", orig_sport = 4000, orig_dport = 80,
                 reply_src = "10.7.0.2", reply_dst = "192.0.2.9", reply_sport = 80, reply_dport = 4001,
                 state = "ESTABLISHED", timeout = 600, status = "ASSURED" }

  local function mixed_table()
    mixed.fill(ct, mixed.generate(1500))
    traffic(undo)
    assert(ct:create(SNAT))
  end

  it("-L -o json prints what the Lua encoder made of each flow, on a mixed table", function()
    mixed_table()
    local out, err, status = ctl.ours("-L -o json")
    assert.equal(0, status, err)
    local lines = lines_of(out)
    assert.is_true(#lines > 1500)
    assert_same_objects(lines, reference(ct))
    -- what the table holds shows in it: counters, timestamps, labels, translation
    assert.matches('"orig_packets":[1-9]%d*,"orig_bytes":[1-9]', out)
    assert.matches('"start":%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d+[,}]', out)
    assert.matches('"labels":%[5%]', out)
    assert.matches('"reply_dst":"192.0.2.9".-"snat":true,"dnat":false}', out)
    assert.matches('"icmp_type":8,"icmp_code":0,"icmp_id":%d+', out)
  end)

  it("dump{ format = 'json' } and flow:format('json') give the Lua encoder's objects", function()
    mixed_table()
    local lines, batched = {}, {}
    for line in ct:dump(nil, { format = "json" }) do lines[#lines + 1] = line end
    for text in ct:dump(nil, { format = "json", batch = true }) do
      for _, line in ipairs(lines_of(text)) do batched[#batched + 1] = line end
    end
    local ref = reference(ct)
    assert_same_objects(lines, ref)
    assert_same_objects(batched, ref)
    local formatted = {}
    for flow in ct:dump() do formatted[#formatted + 1] = flow:format("json") end
    assert_same_objects(formatted, ref)
  end)

  it("keeps a filter and a predicate", function()
    mixed_table()
    local lines = {}
    for line in ct:dump({ proto = "udp", where = function(f) return f.orig_dport == 53 end }, { format = "json" }) do
      lines[#lines + 1] = line
    end
    local ref = {}
    for flow in ct:dump{ proto = "udp" } do
      if flow.orig_dport == 53 then ref[#ref + 1] = output.json_object(flow) end
    end
    assert.is_true(#ref > 0)
    assert_same_objects(lines, ref)
  end)

  it("prints 64-bit timestamps with every digit", function()
    traffic(undo)
    for line in ct:dump(nil, { format = "json" }) do
      local start = line:match('"start":([^,}]+)')
      assert.matches("^%d+$", start)
      if math.type then
        for flow in ct:dump() do
          if flow:format("json") == line then assert.equal(tostring(flow.start), start) end
        end
      end
    end
  end)

  it("takes no other format option with json", function()
    assert.has_error(function() ct:dump(nil, { format = "json,extended" }) end,
                     "bad argument 'format': json takes no other option")
    assert(ct:create(mixed.generate(1)[1]))
    local flow
    for f in ct:dump() do flow = f end
    assert.has_error(function() flow:format{ json = true, xml = true } end,
                     "bad argument 'format': json takes no other option")
  end)
end)
