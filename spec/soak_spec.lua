-- Long-lived daemons: resources come back whatever the caller abandons, and
-- a full table is a clear failure that breaks nothing else. #slow
local ns = require "spec.helpers.ns"
package.path = "./?.lua;" .. package.path
local messages = require "fuzz.messages"

local open_fds = ns.open_fds

-- The file read whole and closed: a loop of io.lines left early leaves it
-- open until the collector finds it (LuaJIT kept it past every collection,
-- one descriptor more than the count taken before).
local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("\nVmRSS:%s*(%d+)"))
end

local function settle()
  collectgarbage(); collectgarbage()
end

describe("resources #slow", function()
  local ct
  before_each(function()
    ct = ns.fresh()
    -- the samples, with timeouts that outlast the test
    local flows = {}
    for i, f in ipairs(ns.sample) do
      flows[i] = {}
      for k, v in pairs(f) do flows[i][k] = v end
      flows[i].timeout = 3600
    end
    ns.fill(flows)
  end)

  it("come back after 10,000 dumps abandoned by break or by an error", function()
    settle()
    local fds = open_fds()
    math.randomseed(7)
    for i = 1, 10000 do
      local stop = math.random(0, #ns.sample)
      if i % 2 == 0 then
        local n = 0
        for _ in ct:dump() do n = n + 1; if n >= stop then break end end
      else
        pcall(function()
          local n = 0
          for _ in ct:dump() do n = n + 1; if n >= stop then error("stop") end end
        end)
      end
      if i % 1000 == 0 then settle() end
    end
    settle()
    assert.equal(fds, open_fds())
    assert.equal(#ns.sample, ct:count())
  end)

  it("come back after 10,000 subscriptions dropped without close", function()
    settle()
    local fds, rss = open_fds(), nil
    for i = 1, 10000 do
      local sub = assert(ct:events{ buffer = 65536 })
      if i % 3 == 0 then sub:next(0) end
      if i % 500 == 0 then settle() end
      -- RSS from after the first 500, once the allocator holds what 500
      -- garbage subscriptions take (how much it keeps of it depends on
      -- what ran before); a leak of the 9,500 after would still show
      if i == 500 then rss = rss_kib() end
    end
    settle()
    assert.equal(fds, open_fds())
    -- (AddressSanitizer keeps freed memory in quarantine: RSS tells nothing there)
    if not ns.sanitized then
      assert.is_true(rss_kib() - rss < 8192, "RSS grew by " .. (rss_kib() - rss) .. " KiB")
    end
  end)

  it("come back after 1,000,000 flow objects created and collected", function()
    -- in a process of its own: garbage waits for the collector in proportion
    -- to the live heap, and busted's is large
    local code = [[
      package.path = "./?.lua;./lua/?.lua;" .. package.path
      local conntrack, bytes = require "conntrack", require("fuzz.messages").samples().tcp
      local function rss()
        for l in io.lines("/proc/self/status") do local v = l:match("^VmRSS:%s*(%d+)") if v then return tonumber(v) end end
      end
      for _ = 1, 20000 do assert(conntrack.parse(bytes)) end
      collectgarbage()
      local before = rss()
      for i = 1, 1000000 do local flow = conntrack.parse(bytes); if i % 100 == 0 then tostring(flow) end end
      collectgarbage()
      io.write(rss() - before)
    ]]
    local path = os.tmpname()
    f = assert(io.open(path, "w")); f:write(code); f:close()
    local out, err, status = ns.run(ns.LUA .. " " .. path)
    os.remove(path)
    assert.equal(0, status, err)
    assert.is_true(tonumber(out) < 4096, "RSS grew by " .. out .. " KiB")
  end)
end)

describe("a full table #slow", function()
  it("makes create fail clearly, and everything else keeps working", function()
    local ct = ns.fresh()
    -- assured flows: the kernel evicts unassured ones to make room for new
    local max
    for line in io.lines("/proc/sys/net/netfilter/nf_conntrack_max") do max = tonumber(line) end
    local batch, created = {}, 0
    for i = 1, max do
      batch[#batch + 1] = { proto = "udp", orig_src = ("10.%d.%d.%d"):format(math.floor(i / 65536), math.floor(i / 256) % 256, i % 256),
                            orig_dst = "192.0.2.1", orig_sport = 1000, orig_dport = 53, timeout = 600,
                            status = "ASSURED" }
      if #batch == 20000 or i == max then created = created + assert(ct:create(batch)); batch = {} end
    end
    assert.equal(max, created)
    local ok, err, errno = ct:create{ proto = "udp", orig_src = "192.0.2.7", orig_dst = "192.0.2.1",
                                      orig_sport = 1, orig_dport = 53, timeout = 60 }
    assert.is_nil(ok)
    assert.equal("create: the table is full (nf_conntrack_max) or memory is short", err)
    assert.equal(12, errno)
    -- reading, deleting and counting still work, and a freed slot takes a flow again
    assert.equal(max, ct:count())
    assert.equal(1, ct:delete{ orig_src = "10.0.0.1" })
    assert.is_true(ct:create{ proto = "udp", orig_src = "192.0.2.7", orig_dst = "192.0.2.1",
                              orig_sport = 1, orig_dport = 53, timeout = 60 })
    assert(ct:flush())
  end)
end)
