-- spec/events_spec.lua: subscriptions to the kernel's conntrack events as a
-- user sees them: the events of the module's own operations and of real
-- traffic, printed as conntrack -E prints them; kinds and filters; losses
-- reported (and repaired by a resync); timeouts, handlers, pollable sockets
-- released by close or the collector; the event-loop examples.
local ns = require "spec.helpers.ns"
local lfs = require "lfs"
local socket = require "socket"
local conntrack = ns.conntrack

local clock = socket.gettime

local function udp(sport, extra)
  local f = { proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.2.0.1", orig_sport = sport, orig_dport = 53,
              timeout = 600 }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

local TUPLE_KEYS = { "proto", "orig_src", "orig_dst", "orig_sport", "orig_dport", "icmp_type", "icmp_code",
                     "icmp_id", "zone" }

-- What ct:get needs of the fields a flow was created with.
local function tuple_of(fields)
  local t = {}
  for _, k in ipairs(TUPLE_KEYS) do t[k] = fields[k] end
  return t
end

-- A kernel entry's identity, as a string a set can hold.
local function identity(flow)
  return ("%s %s %s %s %s zone=%s"):format(flow.proto, flow.orig_src, flow.orig_dst,
    flow.orig_sport or flow.icmp_id, flow.orig_dport or flow.icmp_type, flow.zone or 0)
end

-- Every event until `quiet` seconds pass without one: { kind, flow, time, line }.
local function collect(sub, quiet)
  local events = {}
  for kind, flow, time in sub:each(quiet or 0.2) do
    events[#events + 1] = { kind = kind, flow = flow, time = time, line = flow and tostring(flow) }
  end
  return events
end

local function field_of(events, name)
  local list = {}
  for i, e in ipairs(events) do list[i] = e[name] end
  return list
end

-- "new 5", "destroy 6", ... for events of flows told apart by source port.
local function kinds_and_ports(events)
  local list = {}
  for i, e in ipairs(events) do list[i] = e.kind .. " " .. tostring(e.flow.orig_sport) end
  return list
end

-- Creates each flow, changes its mark, deletes it: new, update, destroy.
local function lifecycle(ct, flows)
  for _, fields in ipairs(flows) do
    assert(ct:create(fields))
    local flow = assert(ct:get(tuple_of(fields)))
    assert(ct:update(flow, { mark = 0x99 }))
    assert(ct:delete(flow))
  end
end

local open_fds = ns.open_fds

local function size(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

local function full_gc()
  collectgarbage(); collectgarbage()
end

-- Polls pred every 10 ms for up to `seconds`; whether it became true.
local function eventually(pred, seconds)
  local deadline = clock() + seconds
  repeat
    if pred() then return true end
    socket.sleep(0.01)
  until clock() > deadline
  return pred()
end

local function file_lines(path)
  local lines, f = {}, io.open(path)
  if f then
    for line in f:lines() do lines[#lines + 1] = line end
    f:close()
  end
  return lines
end

-- `conntrack -E ARGS` running alongside (at most a minute, whatever happens).
-- It is listening once it has printed the creation of a probe flow, which
-- ARGS must let through; lines about the probe are left out. conntrack -E
-- names the sender of a user-space event by portid, as the module does, then
-- adds " progname=...", which is cut off. Stop it with finally(ref.stop).
local PROBE = { proto = "tcp", orig_src = "10.255.255.1", orig_dst = "10.255.255.2", orig_sport = 1,
                orig_dport = 22, state = "ESTABLISHED", timeout = 600 }

local function reference_events(args)
  local ct = ns.handle()
  local out, pidfile = os.tmpname(), os.tmpname()
  assert(os.execute(("timeout 60 conntrack -E %s >%s 2>/dev/null & echo $! >%s"):format(args, out, pidfile)))
  local f = assert(io.open(pidfile)); local pid = f:read("*n"); f:close(); os.remove(pidfile)
  local ref = {}
  function ref.stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.remove(out)
  end
  local listening = false
  for _ = 1, 50 do
    local old = ct:get(tuple_of(PROBE))
    if old then assert(ct:delete(old)) end
    assert(ct:create(PROBE))
    listening = eventually(function() return #file_lines(out) > 0 end, 0.1)
    if listening then break end
  end
  if not listening then ref.stop(); error("conntrack -E " .. args .. " printed nothing") end
  local skip = #file_lines(out)
  -- The lines printed since it listened, once there are n of them.
  function ref.lines(n)
    local lines
    eventually(function() lines = file_lines(out); return #lines - skip >= n end, 5)
    local result = {}
    for i = skip + 1, #lines do
      if not lines[i]:find(PROBE.orig_src, 1, true) then
        result[#result + 1] = (lines[i]:gsub(" progname=.*$", ""))
      end
    end
    return result
  end
  return ref
end

local TAGS = { new = "    [NEW] ", update = " [UPDATE] ", destroy = "[DESTROY] " }

describe("ct:events", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("yields new, update and destroy, in order, for flows the module creates, changes and deletes", function()
    local sub = assert(ct:events())
    lifecycle(ct, ns.sample)
    local events = collect(sub)
    assert.equal(3 * #ns.sample, #events)
    for i, fields in ipairs(ns.sample) do
      for j, kind in ipairs{ "new", "update", "destroy" } do
        local e = events[3 * (i - 1) + j]
        assert.equal(kind, e.kind)
        assert.equal(identity(fields), identity(e.flow))
        assert.equal(kind == "new" and (fields.mark or 0) or 0x99, e.flow.mark or 0)
        assert.equal(TAGS[kind], e.line:sub(1, #TAGS[kind]))
        assert.matches(" %[USERSPACE%] portid=%d+$", e.line)
      end
    end
  end)

  it("prints each event as conntrack -E prints it #diff", function()
    local ref = reference_events("")
    finally(ref.stop)
    local sub = assert(ct:events())
    lifecycle(ct, ns.sample)
    local lines = field_of(collect(sub), "line")
    assert.equal(3 * #ns.sample, #lines)
    assert.same(lines, ref.lines(#lines))
  end)

  it("yields only the kinds subscribed", function()
    local destroys = assert(ct:events{ "destroy" })
    local changes = assert(ct:events{ "new", "update" })
    lifecycle(ct, { udp(1), udp(2) })
    assert.same({ "destroy 1", "destroy 2" }, kinds_and_ports(collect(destroys)))
    assert.same({ "new 1", "update 1", "new 2", "update 2" }, kinds_and_ports(collect(changes)))
  end)

  it("follows real TCP traffic over loopback through its states, in order", function()
    finally(function() os.execute("nft delete table inet lct_events 2>/dev/null") end)
    local _, err, status = ns.run("nft add table inet lct_events && " ..
      "nft add chain inet lct_events out '{ type filter hook output priority 0; }' && " ..
      "nft add rule inet lct_events out ct state new,established,related accept")
    assert(status == 0, "nft: " .. err)
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local sub = assert(ct:events{ filter = { proto = "tcp", orig_dport = tonumber(port) } })
    local client = assert(socket.connect("127.0.0.1", port))
    local peer = assert(server:accept())
    assert(client:send("hello\n"))
    assert.equal("hello", peer:receive("*l"))
    client:close(); peer:close(); server:close()

    local events = collect(sub, 0.3)
    local rank = { SYN_SENT = 1, SYN_RECV = 2, ESTABLISHED = 3, FIN_WAIT = 4, CLOSE_WAIT = 5, LAST_ACK = 6,
                   TIME_WAIT = 7 }
    local states, last = {}, 0
    for i, e in ipairs(events) do
      assert.equal(i == 1 and "new" or "update", e.kind)
      assert.equal(identity(events[1].flow), identity(e.flow))
      assert.is_nil(e.line:find("[USERSPACE]", 1, true))   -- the kernel caused it
      local r = assert(rank[e.flow.state], "unexpected state " .. tostring(e.flow.state))
      assert(r >= last, "state went back: " .. e.line)
      if r > last then states[#states + 1] = e.flow.state end
      last = r
    end
    assert.equal("SYN_SENT", states[1])
    assert.equal("TIME_WAIT", states[#states])
    assert.is_true(rank[states[2]] <= rank.ESTABLISHED)
    local seen = {}
    for _, s in ipairs(states) do seen[s] = true end
    assert.is_true(seen.ESTABLISHED)
    assert.is_true(seen.FIN_WAIT or seen.CLOSE_WAIT or seen.LAST_ACK)
  end)

  describe("with a filter", function()
    local FLOWS = {
      { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1000, orig_dport = 22,
        state = "ESTABLISHED", timeout = 100 },
      { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1001, orig_dport = 80,
        state = "ESTABLISHED", timeout = 100 },
      udp(1002, { orig_dport = 22 }),
      { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 1003, orig_dport = 22,
        state = "SYN_SENT", timeout = 100, mark = 3 },
      -- port 22 as the source: the reply's destination port, not the original's
      { proto = "tcp", orig_src = "10.0.0.3", orig_dst = "10.0.0.4", orig_sport = 22, orig_dport = 2222,
        state = "ESTABLISHED", timeout = 100 },
    }

    it("yields only the events of matching flows", function()
      local sub = assert(ct:events{ filter = { proto = "tcp", orig_dport = 22 } })
      lifecycle(ct, FLOWS)
      assert.same({ "new 1000", "update 1000", "destroy 1000", "new 1003", "update 1003", "destroy 1003" },
                  kinds_and_ports(collect(sub)))
    end)

    it("yields what conntrack -E -p tcp --dport 22 prints #diff", function()
      local ref = reference_events("-p tcp --dport 22")
      finally(ref.stop)
      local sub = assert(ct:events{ filter = { proto = "tcp", orig_dport = 22 } })
      lifecycle(ct, FLOWS)
      local lines = field_of(collect(sub), "line")
      assert.equal(6, #lines)
      assert.same(lines, ref.lines(#lines))
    end)

    it("takes a predicate alone, or after the fields as where", function()
      local marked = assert(ct:events{ filter = function(flow) return flow.mark == 7 end })
      local even_udp = assert(ct:events{ filter = { proto = "udp", where = function(flow)
        return flow.orig_sport % 2 == 0
      end } })
      for port = 1, 4 do assert(ct:create(udp(port, { mark = port <= 2 and 7 or nil }))) end
      assert(ct:create{ proto = "tcp", orig_src = "10.1.0.1", orig_dst = "10.2.0.1", orig_sport = 6, orig_dport = 7,
                        state = "ESTABLISHED", timeout = 60, mark = 7 })
      for port = 1, 4 do assert(ct:delete(assert(ct:get(tuple_of(udp(port)))))) end
      assert.same({ "new 1", "new 2", "new 6", "destroy 1", "destroy 2" }, kinds_and_ports(collect(marked)))
      assert.same({ "new 2", "new 4", "destroy 2", "destroy 4" }, kinds_and_ports(collect(even_udp)))
    end)

    it("raises a predicate's error from next, which then goes on with the following event", function()
      local sub = assert(ct:events{ filter = function(flow)
        if flow.orig_sport == 1 then error("no flow 1 here", 0) end
        return true
      end })
      assert(ct:create(udp(1)))
      assert(ct:create(udp(2)))
      assert.has_error(function() sub:next(1) end, "no flow 1 here")
      local kind, flow = sub:next(1)
      assert.equal("new", kind)
      assert.equal(2, flow.orig_sport)
    end)
  end)

  describe("when the kernel drops events", function()
    local BURST = 3000

    local function burst(handle)
      for port = 1, BURST do assert((handle or ct):create(udp(port))) end
    end

    local function dump_set(handle, filter)
      local set = {}
      for flow in handle:dump(filter) do set[identity(flow)] = true end
      return set
    end

    -- The flows the last resync yielded ("sync" after the last "overflow",
    -- up to "synced"), or nil if none completed.
    local function last_resync(events)
      local set, done
      for _, e in ipairs(events) do
        if e.kind == "overflow" then set, done = {}, nil
        elseif e.kind == "sync" then set[identity(e.flow)] = true
        elseif e.kind == "synced" then done = set end
      end
      return done
    end

    it("yields overflow with a running count", function()
      local sub = assert(ct:events{ buffer = 4096 })
      burst()
      local events = collect(sub)
      local counts = {}
      for _, e in ipairs(events) do
        if e.kind == "overflow" then counts[#counts + 1] = e.flow end
      end
      assert.is_true(#counts >= 1)
      for i, count in ipairs(counts) do assert.equal(i, count) end
      assert.equal(#counts, sub:overflows())
      assert.is_true(#events - #counts < BURST)   -- some events were indeed lost
    end)

    it("re-reads the table with resync: the flows of sync are those a dump yields", function()
      local sub = assert(ct:events{ buffer = 4096, resync = true })
      burst()
      local events = collect(sub)
      local synced = assert(last_resync(events), "no resync completed")
      assert.same(dump_set(ct), synced)
      for _, e in ipairs(events) do
        if e.kind == "sync" then assert.not_matches("^%s*%[", e.line) end   -- no event tag: not an event
        if e.kind == "synced" then assert.is_nil(e.flow) end
      end
    end)

    it("resyncs only the flows the filter selects", function()
      local filter = { proto = "udp", where = function(flow) return flow.orig_sport % 2 == 0 end }
      assert(ct:create{ proto = "tcp", orig_src = "10.1.0.1", orig_dst = "10.2.0.1", orig_sport = 2, orig_dport = 7,
                        state = "ESTABLISHED", timeout = 60 })
      local sub = assert(ct:events{ buffer = 4096, resync = true, filter = filter })
      burst()
      local synced = assert(last_resync(collect(sub)), "no resync completed")
      local expected = dump_set(ct, filter)
      assert.equal(BURST / 2, size(expected))
      assert.same(expected, synced)
    end)

    it("misses no flow made while it is slow and resyncing: each is an event or in a resync", function()
      -- Another process makes flows in batches while this one reads slowly,
      -- so drops happen again during the resync dumps: each must be reported.
      local sub = assert(ct:events{ "new", buffer = 4096, resync = true })
      local done = os.tmpname()
      os.remove(done)
      local maker = ("%s -e \"local ct = assert(require('conntrack').open()) for b = 0, 19 do local l = {} "
        .. "for i = 1, 200 do l[i] = { proto = 'udp', orig_src = '10.0.0.1', orig_dst = '10.0.0.2', "
        .. "orig_sport = b * 200 + i, orig_dport = 53, timeout = 600 } end assert(ct:create(l)) end\"; "
        .. "touch %s"):format(ns.LUA, done)
      assert(ns.execute("(" .. maker .. ") >/dev/null 2>&1 &"))
      finally(function()   -- the next test's table must not see the maker
        for _ = 1, 500 do if os.remove(done) then return end os.execute("sleep 0.02") end
      end)
      local seen, overflows = {}, 0
      local function made()
        local f = io.open(done)
        if f then f:close() end
        return f ~= nil
      end
      -- until the maker is done (a loaded machine may hold it back longer than
      -- the 2 s each waits; a minute at most), and then until no event comes for 2 s
      local deadline = os.time() + 60
      repeat
        local finished = made()
        for kind, flow in sub:each(2) do
          if kind == "overflow" then overflows = flow
          elseif kind == "new" or kind == "sync" then
            seen[flow.orig_sport] = true
            -- work done per event: the consumer is slower than the maker
            assert(ct:get{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2",
                           orig_sport = flow.orig_sport, orig_dport = 53 })
          end
        end
      until finished or os.time() > deadline
      assert.is_true(overflows >= 1, "the burst overflowed nothing: the test proves nothing")
      assert.equal(4000, ct:count())
      assert.equal(4000, size(seen))
    end)

    it("resyncs from the namespace of the handle", function()
      local other = ns.spawn_netns()
      local there = assert(conntrack.open{ netns = other.path })
      local sub = assert(there:events{ buffer = 4096, resync = true })
      finally(function() sub:close(); there:close(); other.stop() end)
      assert(ct:create(udp(60000)))   -- here, not there
      burst(there)
      local synced = assert(last_resync(collect(sub)), "no resync completed")
      assert.same(dump_set(there), synced)
      assert.equal(BURST, size(synced))
    end)

    it("with reliable, reports no overflow and delivers every destroy event in the end #slow", function()
      local sub = assert(ct:events{ buffer = 4096, reliable = true })
      -- Deleted flows stay in the table until a reliable listener has their
      -- destroy event: close it and let the kernel catch up whatever happens.
      finally(function()
        sub:close()
        eventually(function() return ct:count() == 0 end, 5)
      end)
      for port = 1, 200 do assert(ct:create(udp(port))) end
      collect(sub, 0.1)
      assert(ct:flush())
      local destroyed, kinds = {}, {}
      -- the kernel retries a second after the first failure, then every 0.1 s
      for _, e in ipairs(collect(sub, 2.0)) do
        kinds[e.kind] = true
        if e.kind == "destroy" then destroyed[e.flow.orig_sport] = true end
      end
      assert.same({ destroy = true }, kinds)
      for port = 1, 200 do assert(destroyed[port], "no destroy event for port " .. port) end
      assert.equal(0, sub:overflows())
      assert.equal(0, ct:count())
    end)
  end)

  it("sets the receive buffer asked for (the kernel doubles it)", function()
    assert.is_true(assert(ct:events{ buffer = 100000 }):buffer() >= 100000)
    assert.is_true(assert(ct:events{ buffer = 4096 }):buffer() >= 4096)
    assert.is_true(assert(ct:events()):buffer() >= 16 * 1024 * 1024)
  end)

  it("outlives the handle it came from", function()
    local other = assert(conntrack.open())
    local sub = assert(other:events())
    other:close()
    assert(ct:create(udp(1)))
    local kind, flow = sub:next(1)
    assert.equal("new", kind)
    assert.equal(1, flow.orig_sport)
  end)

  it("refuses bad options with the exact message, before opening anything", function()
    local before = open_fds()
    assert.has_error(function() ct:events{ "new", "bogus" } end, 'bad argument \'events\': unknown event kind "bogus"')
    assert.has_error(function() ct:events{ bogus = true } end,
                     "bad argument 'bogus': not an option of events (its options: filter, expect_filter, buffer, resync, reliable, signals)")
    assert.has_error(function() ct:events{ filter = { orig_prt = 1 } } end, "bad argument 'orig_prt': unknown field")
    assert.has_error(function() ct:events{ buffer = -1 } end,
                     "bad argument 'buffer': expected an integer from 0 to 2147483647, got -1")
    assert.equal(before, open_fds())
  end)
end)

describe("sub:next", function()
  local ct, sub
  before_each(function()
    ct = ns.fresh()
    sub = assert(ct:events())
  end)
  after_each(function() sub:close() end)

  it("returns kind, flow and the wall-clock time of an event", function()
    assert(ct:create(udp(1)))
    local kind, flow, time = sub:next()
    assert.equal("new", kind)
    assert.equal("10.1.0.1", flow.orig_src)
    assert.is_true(math.abs(time - os.time()) < 5)
  end)

  it("returns nil, 'timeout' after the timeout on a quiet subscription", function()
    local t0 = clock()
    local kind, msg = sub:next(0.2)
    local elapsed = clock() - t0
    assert.is_nil(kind)
    assert.equal("timeout", msg)
    assert.is_true(elapsed >= 0.15 and elapsed <= 1.0, "took " .. elapsed .. " s")
  end)

  it("returns at once with a timeout of 0", function()
    local t0 = clock()
    assert.same({ nil, "timeout" }, { sub:next(0) })
    assert.is_true(clock() - t0 < 0.05)
    assert(ct:create(udp(1)))
    assert.equal("new", (sub:next(0)))
  end)

  it("refuses a negative timeout", function()
    assert.has_error(function() sub:next(-1) end, "bad argument 'timeout': expected seconds >= 0, got " .. tostring(-1.0))
  end)

  it("waiting without a timeout, gives way to Ctrl-C at once", function()
    -- lua.c turns SIGINT into a hook that raises "interrupted!"
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write("local sub = require('conntrack').open():events() io.write('ready') io.flush() sub:next()")
    f:close()
    finally(function() os.remove(script) end)
    local out, err, status = ns.run(("(%s %s & P=$!; sleep 0.5; kill -INT $P; "
      .. "T=0; while kill -0 $P 2>/dev/null && [ $T -lt 30 ]; do sleep 0.1; T=$((T+1)); done; "
      .. "kill -KILL $P 2>/dev/null && echo ' still waiting after 3 s'; wait $P)"):format(ns.LUA, script))
    assert.equal("ready", out)
    assert.equal(1, status)
    assert.matches("interrupted!", err)
  end)

  it("refuses a timeout that is not a number (NaN)", function()
    -- in a child process: a NaN taken for a timeout would wait for ever
    local code = "require('conntrack').open():events():next(0/0)"
    local _, err, status = ns.run("timeout 5 " .. ns.LUA .. " -e \"" .. code .. "\"")
    assert.not_equal(124, status, "next(0/0) was still waiting after 5 s")
    assert.matches("bad argument 'timeout': expected seconds >= 0, got [-]?nan", err)
  end)
end)

describe("sub:each", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("yields what is waiting, then ends after the quiet time", function()
    local sub = assert(ct:events())
    assert(ct:create(udp(1)))
    assert(ct:create(udp(2)))
    local t0 = clock()
    assert.same({ "new 1", "new 2" }, kinds_and_ports(collect(sub, 0.2)))
    local elapsed = clock() - t0
    assert.is_true(elapsed >= 0.15 and elapsed <= 1.0, "took " .. elapsed .. " s")
  end)

  it("refuses a negative quiet time", function()
    local sub = assert(ct:events())
    assert.has_error(function() sub:each(-1) end, "bad argument 'timeout': expected seconds >= 0, got " .. tostring(-1.0))
  end)
end)

describe("sub:dispatch", function()
  local ct, sub
  before_each(function()
    ct = ns.fresh()
    sub = assert(ct:events())
  end)
  after_each(function() sub:close() end)

  it("calls the handler of each waiting event with flow, kind and time, and returns how many", function()
    lifecycle(ct, { udp(1) })
    local calls = {}
    local function record(flow, kind, time)
      calls[#calls + 1] = kind .. " " .. flow.orig_sport
      assert.is_true(math.abs(time - os.time()) < 5)
    end
    assert.equal(3, sub:dispatch{ new = record, update = record, destroy = record })
    assert.same({ "new 1", "update 1", "destroy 1" }, calls)
  end)

  it("drops events no handler takes", function()
    lifecycle(ct, { udp(1) })
    local calls = 0
    assert.equal(1, sub:dispatch{ destroy = function() calls = calls + 1 end })
    assert.equal(1, calls)
    assert.is_false(sub:pending())
  end)

  it("refuses a handler table with a misspelt kind or a handler that is no function", function()
    lifecycle(ct, { udp(1) })
    local ok, err = pcall(sub.dispatch, sub, { destory = print })
    assert.is_false(ok)
    assert.equal("bad argument 'destory': not an event kind (new, update, destroy, expect_new, expect_destroy, overflow, sync, expect_sync, synced, signal)", err)
    ok, err = pcall(sub.dispatch, sub, { destroy = 42 })
    assert.is_false(ok)
    assert.equal("bad argument 'destroy': expected a function, got number", err)
    assert.is_true(sub:pending())   -- nothing was consumed
  end)

  it("passes the running count to the overflow handler, and the resync to sync and synced", function()
    local lossy = assert(ct:events{ buffer = 4096, resync = true })
    for port = 1, 2000 do assert(ct:create(udp(port))) end
    local counts, synced, syncs = {}, 0, {}
    local handled = lossy:dispatch{
      overflow = function(count, kind) assert.equal("overflow", kind); counts[#counts + 1] = count end,
      sync = function(flow, kind) assert.equal("sync", kind); syncs[flow.orig_sport] = true end,
      synced = function(flow, kind) assert.is_nil(flow); assert.equal("synced", kind); synced = synced + 1 end,
    }
    assert.same({ 1 }, counts)
    assert.equal(1, synced)
    for port = 1, 2000 do assert(syncs[port], "no sync for port " .. port) end
    assert.equal(1 + 2000 + 1, handled)
    lossy:close()
  end)

  it("raises a handler's error with its traceback and stays usable", function()
    assert(ct:create(udp(1)))
    assert(ct:create(udp(2)))
    local function failing(flow) error("cannot handle " .. flow.orig_sport) end
    local ok, err = pcall(sub.dispatch, sub, { new = failing })
    assert.is_false(ok)
    local info = debug.getinfo(failing, "S")
    assert.truthy(err:find("cannot handle 1\nstack traceback:\n", 1, true), err)
    assert.truthy(err:find(("in function <%s:%d>"):format(info.short_src, info.linedefined), 1, true), err)
    local ports = {}
    assert.equal(1, sub:dispatch{ new = function(flow) ports[#ports + 1] = flow.orig_sport end })
    assert.same({ 2 }, ports)
  end)

  it("never blocks", function()
    local t0 = clock()
    assert.equal(0, sub:dispatch{ new = error })
    assert.is_true(clock() - t0 < 0.05)
  end)
end)

describe("sub:pending", function()
  it("tells whether an event is waiting, without reading it", function()
    local ct = ns.fresh()
    local sub = assert(ct:events())
    assert.is_false(sub:pending())
    assert(ct:create(udp(1)))
    assert.is_true(sub:pending())
    assert.is_true(sub:pending())
    assert.equal("new", (sub:next(0)))
    assert.is_false(sub:pending())
  end)
end)

describe("a subscription as a pollable object", function()
  it("gives its socket by getfd, fd and pollfd, wants reading and has no timeout of its own", function()
    local sub = assert(ns.fresh():events())
    local fd = sub:getfd()
    assert.is_true(ns.compat.is_integer(fd) and fd >= 0)
    assert.equal(fd, sub:fd())
    assert.equal(fd, sub:pollfd())
    assert.matches("^socket:", lfs.symlinkattributes("/proc/self/fd/" .. fd, "target"))
    assert.equal("r", sub:events())
    assert.is_nil(sub:timeout())
    assert.equal(("conntrack.events (fd %d)"):format(fd), tostring(sub))
  end)

  it("is ready for socket.select when an event is waiting", function()
    local ct = ns.fresh()
    local sub = assert(ct:events())
    assert.same({}, (socket.select({ sub }, nil, 0)))
    assert(ct:create(udp(1)))
    assert.equal(sub, socket.select({ sub }, nil, 1)[1])
  end)
end)

describe("sub:close", function()
  it("is idempotent, and every method then raises", function()
    local sub = assert(ns.fresh():events())
    sub:close()
    sub:close()
    assert.equal("conntrack.events (closed)", tostring(sub))
    for _, method in ipairs{ "next", "each", "dispatch", "pending", "getfd", "fd", "pollfd", "events", "timeout",
                             "buffer", "overflows" } do
      assert.has_error(function() sub[method](sub, {}) end, "attempt to use a closed subscription")
    end
  end)

  -- (5.4's to-be-closed variables; older versions close explicitly or by the collector)
  if _VERSION >= "Lua 5.4" then
    it("happens at the end of a <close> scope", function()
      local sub = load([[
        local ns, sub = ...
        do
          local s <close> = assert(ns.fresh():events())
          sub = s
        end
        return sub
      ]])(ns)
      assert.has_error(function() sub:next(0) end, "attempt to use a closed subscription")
    end)
  end

  it("ends an each loop that closes its subscription with the same error", function()
    local ct = ns.fresh()
    local sub = assert(ct:events())
    assert(ct:create(udp(1)))
    assert(ct:create(udp(2)))
    assert.has_error(function()
      for _ in sub:each(0.2) do sub:close() end
    end, "attempt to use a closed subscription")
  end)

  it("is done by the collector for subscriptions dropped without it", function()
    local ct = ns.fresh()
    full_gc()
    local before = open_fds()
    for _ = 1, 1000 do assert(ct:events()) end
    full_gc()
    assert.equal(before, open_fds())
  end)
end)

-- The examples: each creates two flows of its own (from 192.0.2.1), marks
-- one, deletes both (in table order) while its loop prints their events, then exits.
describe("the event-loop examples", function()
  before_each(function() ns.fresh() end)

  local function run_example(name)
    -- child processes load the plain build (see spec/helpers/ns.lua)
    local t0 = clock()
    local out, err, status = ns.run(("timeout 10 %s examples/%s.lua"):format(ns.LUA, name))
    assert(status == 0, name .. " failed: " .. err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    return lines, clock() - t0
  end

  -- "[NEW] udp 5000" for a line of conntrack -E
  local function summary(line)
    local tag, proto, sport = line:match("^%s*(%[%u+%]) (%l+) .- sport=(%d+) ")
    return ("%s %s %s"):format(tag, proto, sport)
  end

  for _, name in ipairs{ "events-poll", "events-luv", "events-cqueues" } do
    it(("%s.lua prints the events of its flows and exits by itself"):format(name), function()
      local lines, elapsed = run_example(name)
      assert.is_true(elapsed < 3, name .. " took " .. elapsed .. " s")
      assert.equal(5, #lines, table.concat(lines, "\n"))
      local summaries = {}
      for i, line in ipairs(lines) do
        assert.matches("^%s*%[%u+%] %l+ .* src=192%.0%.2%.1 .* %[USERSPACE%] portid=%d+$", line)
        summaries[i] = summary(line)
      end
      local destroys = { summaries[4], summaries[5] }
      table.sort(destroys)
      assert.same({ "[NEW] udp 5000", "[NEW] tcp 5001", "[UPDATE] tcp 5001" }, { ns.compat.unpack(summaries, 1, 3) })
      assert.same({ "[DESTROY] tcp 5001", "[DESTROY] udp 5000" }, destroys)
      assert.equal(0, ns.handle():count())
    end)

    it(("%s.lua prints what conntrack -E prints alongside #diff"):format(name), function()
      local ref = reference_events("")
      finally(ref.stop)
      local lines = run_example(name)
      assert.equal(5, #lines)
      assert.same(lines, ref.lines(#lines))
    end)
  end
end)
