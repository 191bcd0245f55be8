-- spec/rates_spec.lua: conntrack.rates on real loopback traffic: a meter's
-- groups move what was sent between two readings, per second too, count a
-- flow that ended in between from its destroy event, zero the table's
-- counters with zero = true, and refuse what is not a key or a sort.
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"
local rates = require "conntrack.rates"
local socket = require "socket"   -- sleep

local cleanup = common.undo
after_each(common.undo_all)

local function sh(cmd)
  local _, err, status = ns.run(cmd)
  assert(status == 0, cmd .. ": " .. err)
end

-- `count` UDP datagrams of `size` bytes from 127.0.0.N, answered once with
-- `reply` bytes; the sender's port
local function exchange(n, count, size, reply)
  return (common.udp_exchange(count, size, reply and 1, reply, "127.0.0." .. n))
end

local function by_key(list, field)
  local out = {}
  for _, g in ipairs(list) do out[g[field]] = g end
  return out
end

describe("conntrack.rates", function()
  local ct
  before_each(function()
    ct = ns.fresh()
    local f = assert(io.open("/proc/sys/net/netfilter/nf_conntrack_acct"))
    local acct = f:read("*l"); f:close()
    cleanup(function() os.execute("sysctl -qw net.netfilter.nf_conntrack_acct=" .. acct) end)
    sh("sysctl -qw net.netfilter.nf_conntrack_acct=1")
    cleanup(function() os.execute("nft delete table inet lct_track 2>/dev/null") end)
    sh("nft -f examples/track-loopback.nft")
  end)

  it("gives each group what it moved between two readings, and the same per second", function()
    exchange(2, 3, 100)                       -- before the meter: not counted
    local meter = assert(rates.new(ct, { by = "orig_src" }))
    cleanup(function() meter:close() end)
    exchange(2, 10, 1000, 500)
    exchange(3, 2, 100)
    socket.sleep(0.2)
    local list, info = assert(meter:read())
    assert.is_true(info.counters)
    assert.is_true(info.seconds >= 0.2 and info.seconds < 5, tostring(info.seconds))
    assert.equal(3, info.flows)
    local hosts = by_key(list, "orig_src")
    local two, three = hosts["127.0.0.2"], hosts["127.0.0.3"]
    assert.equal(2, two.flows)
    assert.same({ 10 * 1028, 528, 10, 1, 10 * 1028 + 528, 11 },
                { two.orig_bytes, two.reply_bytes, two.orig_packets, two.reply_packets, two.bytes, two.packets })
    assert.same({ 256, 0 }, { three.orig_bytes, three.reply_bytes })
    assert.near(two.bytes / info.seconds, two.bytes_per_s, 1e-6)
    assert.near(10 / info.seconds, two.orig_packets_per_s, 1e-6)
    -- largest first, by bytes
    assert.equal("127.0.0.2", list[1].orig_src)
    -- nothing moved since
    list = assert(meter:read())
    for _, g in ipairs(list) do assert.equal(0, g.bytes) end
  end)

  it("counts a flow that ended between the readings from its destroy event, and groups by prefix", function()
    local meter = assert(rates.new(ct, { by = "orig_src/24,proto", sort = "packets" }))
    cleanup(function() meter:close() end)
    local port = exchange(4, 4, 500)
    exchange(5, 1, 100)
    assert.equal(1, ct:delete{ orig_src = "127.0.0.4", orig_sport = port })
    meter:pump(0.5)
    local list = assert(meter:read())
    assert.equal(1, #list)
    local g = list[1]
    assert.same({ "127.0.0.0/24", "udp", 1 }, { g.orig_src, g.proto, g.flows })
    assert.equal(4 * 528 + 128, g.orig_bytes)
    assert.equal(5, g.orig_packets)
  end)

  it("with zero = true zeroes the table's counters at each reading and takes its sums as the growth", function()
    local meter = assert(rates.new(ct, { by = "orig_src", zero = true }))
    cleanup(function() meter:close() end)
    exchange(6, 5, 200)
    local hosts = by_key(assert(meter:read()), "orig_src")
    assert.equal(5 * 228, hosts["127.0.0.6"].orig_bytes)
    for flow in ct:dump{ orig_src = "127.0.0.6" } do assert.equal(0, flow.orig_bytes) end
    hosts = by_key(assert(meter:read()), "orig_src")
    assert.equal(0, hosts["127.0.0.6"].orig_bytes)
  end)

  it("refuses what is not a handle, a key or a sort, naming the argument, and a closed meter", function()
    assert.has_error(function() rates.new({}, {}) end, "bad argument 'ct': expected a handle, got table")
    assert.has_error(function() rates.new(ct, { by = "orig_src,orig_bytes" }) end,
                     "bad argument 'by': orig_bytes is a sum, not a key")
    assert.has_error(function() rates.new(ct, { by = { "proto", function() end } }) end,
                     "bad argument 'by': keys are field names or prefixes, got a function")
    assert.has_error(function() rates.new(ct, { sort = "size" }) end,
                     'bad argument \'sort\': "size" is not bytes, packets or flows')
    local meter = assert(rates.new(ct))
    meter:close()
    assert.has_error(function() meter:read() end, "attempt to use a closed meter")
  end)
end)
