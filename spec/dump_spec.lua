-- spec/dump_spec.lua: the streaming dump iterator as a user sees it: every
-- flow once, a loop that can break or fail without harming the handle, a
-- handle free for get/update/delete inside the loop, flows that outlive the
-- dump, sockets released by the collector and memory that stays flat.
local ns = require "spec.helpers.ns"
local untimed = require("spec.helpers.common").untimed
local conntrack = ns.conntrack

-- n UDP flows from 10.1.0.1 with source ports first..last: one key per flow.
local function fill_udp(first, last)
  local ct = ns.handle()
  for port = first, last do
    assert(ct:create{ proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.2.0.1",
                      orig_sport = port, orig_dport = 53, timeout = 600 })
  end
end

-- The source ports a dump yields, and how many times each.
local function ports_of(iter, state, control, closing)
  local seen, n = {}, 0
  for f in iter, state, control, closing do
    seen[f.orig_sport] = (seen[f.orig_sport] or 0) + 1
    n = n + 1
  end
  return seen, n
end

local function range_set(first, last, step)
  local set = {}
  for port = first, last, step or 1 do set[port] = 1 end
  return set
end

-- The same flows, created by another process: its garbage stays out of the
-- memory this process measures.
local function fill_udp_elsewhere(first, last)
  local code = ("local c = require 'conntrack'; "
    .. "for p = %d, %d do assert(c.create{ proto = 'udp', orig_src = '10.1.' .. math.floor(p / 65536) .. '.1', "
    .. "orig_dst = '10.2.0.1', orig_sport = p %% 65536, orig_dport = 53, timeout = 600 }) end"):format(first, last)
  local _, err, status = ns.run(ns.LUA .. ' -e "' .. code .. '"')
  assert(status == 0, err)
end

local open_fds = ns.open_fds

local function full_gc()
  collectgarbage(); collectgarbage()
end

-- The handle answers right after a dump ended, whatever ended it.
local function assert_handle_usable(ct)
  local before = ct:count()
  assert.is_true(ct:create{ proto = "tcp", orig_src = "10.9.9.9", orig_dst = "10.9.9.8", orig_sport = 9,
                            orig_dport = 9, state = "ESTABLISHED", timeout = 60 })
  local f = assert(ct:get{ proto = "tcp", orig_src = "10.9.9.9", orig_dst = "10.9.9.8", orig_sport = 9,
                           orig_dport = 9 })
  assert.equal("10.9.9.9", f.orig_src)
  assert.equal(before + 1, ct:count())
end

describe("ct:dump", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("yields every flow exactly once, over many datagrams", function()
    fill_udp(1, 1500)
    local seen, n = ports_of(ct:dump())
    assert.equal(1500, n)
    assert.same(range_set(1, 1500), seen)
  end)

  it("yields nothing from an empty table", function()
    local n = 0
    for _ in ct:dump() do n = n + 1 end
    assert.equal(0, n)
  end)

  it("yields the flows conntrack -L lists #diff", function()
    ns.fill()
    -- the timeout column ticks between the two listings
    local ours = {}
    for f in ct:dump() do ours[#ours + 1] = untimed(tostring(f)) end
    table.sort(ours)
    local theirs = {}
    for i, line in ipairs(ns.reference_lines("-L")) do theirs[i] = untimed(line) end
    table.sort(theirs)
    assert.same(theirs, ours)
  end)

  it("is a generic for iterator of four values, the fourth being the dump", function()
    fill_udp(1, 3)
    local iter, state, control, closing = ct:dump()
    assert.equal("function", type(iter))
    assert.equal(state, closing)
    assert.is_nil(control)
    assert.equal("conntrack.dump (running)", tostring(closing))
    local seen = ports_of(iter, state, control, closing)
    assert.same(range_set(1, 3), seen)
    assert.equal("conntrack.dump (closed)", tostring(closing))
  end)

  -- 5.4's generic for closes its fourth value on break and on error; before
  -- 5.4 the dump is closed by :close() or by the collector.
  if _VERSION >= "Lua 5.4" then
    it("closes the dump on break and leaves the handle usable at once", function()
      fill_udp(1, 1000)
      local iter, state, control, closing = ct:dump()
      local n = 0
      for _ in iter, state, control, closing do
        n = n + 1
        if n == 500 then break end
      end
      assert.equal(500, n)
      assert.equal("conntrack.dump (closed)", tostring(closing))
      assert_handle_usable(ct)
      assert.equal(1001, ct:count())
    end)

    it("lets an error of the loop body reach the caller, closes the dump, keeps the handle usable", function()
      fill_udp(1, 1000)
      local iter, state, control, closing = ct:dump()
      local ok, err = pcall(function()
        local n = 0
        for _ in iter, state, control, closing do
          n = n + 1
          if n == 10 then error("stop here", 0) end
        end
      end)
      assert.is_false(ok)
      assert.equal("stop here", err)
      assert.equal("conntrack.dump (closed)", tostring(closing))
      assert_handle_usable(ct)
    end)
  else
    it("is closed by :close() after a break, and the handle is usable at once", function()
      fill_udp(1, 1000)
      local iter, state, control = ct:dump()
      local n = 0
      for _ in iter, state, control do
        n = n + 1
        if n == 500 then break end
      end
      assert.equal("conntrack.dump (running)", tostring(state))
      state:close()
      assert.equal("conntrack.dump (closed)", tostring(state))
      assert_handle_usable(ct)
      assert.equal(1001, ct:count())
    end)
  end

  it("passes an error object of the loop body through unchanged", function()
    fill_udp(1, 5)
    local thrown = { reason = "mine" }
    local ok, err = pcall(function()
      for _ in ct:dump() do error(thrown) end
    end)
    assert.is_false(ok)
    assert.equal(thrown, err)
  end)

  it("allows get, update and delete on the same handle inside the loop", function()
    fill_udp(1, 1000)
    local seen = {}
    for f in ct:dump() do
      assert.is_nil(seen[f.orig_sport], "a flow was yielded twice")
      seen[f.orig_sport] = true
      local again = assert(ct:get{ proto = "udp", orig_src = "10.1.0.1", orig_dst = "10.2.0.1",
                                   orig_sport = f.orig_sport, orig_dport = 53 })
      assert.is_true(again == f)
      if f.orig_sport % 2 == 0 then
        assert.is_true(ct:delete(f))
      else
        assert.is_true(ct:update(f, { mark = f.orig_sport }))
      end
    end
    local marks = {}
    local remaining = ports_of(ct:dump())
    for f in ct:dump() do marks[f.orig_sport] = f.mark end
    assert.same(range_set(1, 999, 2), remaining)
    for port in pairs(remaining) do assert.equal(port, marks[port]) end
    assert.equal(500, ct:count())
  end)

  it("releases the socket of a dump abandoned without a loop once collected", function()
    fill_udp(1, 300)
    full_gc()
    local before = open_fds()
    local held = {}
    for i = 1, 200 do
      local _, _, _, d = ct:dump()
      held[i] = d
    end
    -- each live dump owns a socket: the count below can tell a leak
    assert.equal(before + 200, open_fds())
    held = nil
    for _ = 1, 200 do ct:dump() end
    full_gc()
    assert.equal(before, open_fds())
    assert_handle_usable(ct)
  end)

  it("yields flows that stay readable after the loop and after the handle is closed", function()
    ns.fill()
    local own = assert(conntrack.open())
    local kept, lines = {}, {}
    for f in own:dump{ proto = "tcp" } do
      kept[#kept + 1] = f
      lines[#lines + 1] = tostring(f)
    end
    own:close()
    full_gc()
    assert.equal(2, #kept)
    for i, f in ipairs(kept) do
      assert.equal("tcp", f.proto)
      assert.equal(lines[i], tostring(f))
      assert.matches("^tcp +6 %d+ ", tostring(f))
    end
    local sources = { kept[1].orig_src, kept[2].orig_src }
    table.sort(sources)
    assert.same({ "10.0.0.1", "fd00::1" }, sources)
  end)

  it("yields flows that a loop reads only later as it would have read them at once", function()
    ns.fill()
    local ct = ns.handle()
    -- (a flow of a plain dump keeps its message until it is read)
    assert(ct:create{ proto = "udp", orig_src = "fd00::77", orig_dst = "fd00::78", orig_sport = 7,
                      orig_dport = 8, timeout = 600, mark = 5, zone = 3 })
    local unread, read = {}, {}
    for f in ct:dump() do unread[#unread + 1] = f end
    for f in ct:dump() do read[#read + 1] = f:totable() end
    full_gc()
    assert.is_true(#unread >= 3)
    assert.equal(#read, #unread)
    for i, f in ipairs(unread) do
      local t = f:totable()
      t.timeout, read[i].timeout = nil, nil   -- (a second may pass between the two dumps)
      assert.same(read[i], t)
      assert.is_true(f == unread[i] and f ~= unread[i % #unread + 1])
    end
  end)

  it("reads every field from the flow's message as the parsed flow reads it", function()
    local mixed = require "spec.helpers.mixed_flows"
    local function sysctl(name, value)
      local _, err, status = ns.run(("sysctl -qw net.netfilter.%s=%s"):format(name, value))
      assert(status == 0, err)
    end
    -- counters and timestamps on (this namespace's own settings), and real
    -- loopback traffic beside NAT, zones, ICMP, SCTP with vtags and DCCP
    sysctl("nf_conntrack_acct", 1)
    sysctl("nf_conntrack_timestamp", 1)
    local _, err, status = ns.run("nft -f examples/track-loopback.nft")
    assert(status == 0, err)
    finally(function()
      os.execute("nft delete table inet lct_track 2>/dev/null")
      sysctl("nf_conntrack_acct", 0)
      sysctl("nf_conntrack_timestamp", 0)
    end)
    mixed.fill(ct, mixed.generate_nat(300))
    assert(ct:create{ proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1, orig_dport = 2,
                      state = "ESTABLISHED", orig_vtag = 5, reply_vtag = 0x80000006, timeout = 100 })
    assert(ct:create{ proto = "dccp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 1, orig_dport = 2,
                      state = "OPEN", timeout = 100 })
    require("spec.helpers.common").udp_exchange(3, 100, 2, 50)
    local names, n = {}, 0
    for _, name in ipairs(conntrack.fields) do
      -- (a view holds no labels, helper or security context: those parse the flow)
      if name ~= "labels" and name ~= "helper" and name ~= "secctx" then names[#names + 1] = name end
    end
    local seen = {}
    for f in ct:dump() do
      local from_message = {}
      for _, name in ipairs(names) do from_message[name] = f[name] end
      f:totable()   -- parses it: the fields are the library's from here on
      for _, name in ipairs(names) do
        assert.same(f[name], from_message[name], ("%s of %s"):format(name, tostring(f)))
        if from_message[name] ~= nil then seen[name] = true end
      end
      n = n + 1
    end
    assert.is_true(n > 300)
    -- every field was there to compare in some flow (but the secmark, which
    -- only a security module sets, and the stop time, which ended flows have)
    for _, name in ipairs(names) do assert.is_true(seen[name] or name == "secmark" or name == "stop", name) end
  end)

  it("raises 'attempt to use a closed dump' when a closed dump is stepped again", function()
    fill_udp(1, 10)
    local iter, state, control, closing = ct:dump()
    for _ in iter, state, control, closing do break end
    if _VERSION < "Lua 5.4" then state:close() end
    local ok, err = pcall(iter, state, control)
    assert.is_false(ok)
    assert.equal("attempt to use a closed dump", err)

    iter, state = ct:dump()
    state:close()
    assert.equal("conntrack.dump (closed)", tostring(state))
    ok, err = pcall(iter, state)
    assert.is_false(ok)
    assert.equal("attempt to use a closed dump", err)
  end)

  it("raises 'attempt to use a closed dump' after a loop ran to its end", function()
    fill_udp(1, 10)
    local iter, state, control, closing = ct:dump()
    for _ in iter, state, control, closing do end
    local ok, err = pcall(iter, state)
    assert.is_false(ok)
    assert.equal("attempt to use a closed dump", err)
  end)

  it("keeps memory flat however large the table #slow", function()
    -- Measured in a process of its own: garbage waits for the collector in
    -- proportion to the live heap, and busted's heap is large and varies.
    local function dump_growth_kib()
      local code = "local c = require 'conntrack'; "
        .. "local function rss() for l in io.lines('/proc/self/status') do "
        .. "local v = l:match('^VmRSS:%s+(%d+)') if v then return tonumber(v) end end end; "
        .. "collectgarbage(); local before, n = rss(), 0; "
        .. "for _ in c.dump() do n = n + 1 end; io.write(n, ' ', rss() - before)"
      local out, err, status = ns.run(ns.LUA .. ' -e "' .. code .. '"')
      assert(status == 0, err)
      local n, growth = out:match("^(%d+) (%-?%d+)$")
      return tonumber(n), tonumber(growth)
    end
    fill_udp_elsewhere(1, 20000)
    local n_small, small = dump_growth_kib()
    fill_udp_elsewhere(20001, 100000)
    local n_large, large = dump_growth_kib()
    assert.equal(20000, n_small)
    assert.equal(100000, n_large)
    -- five times the flows, at most a few MiB more
    assert.is_true(large - small < 4096,
      ("RSS grew by %d KiB dumping 20,000 flows, by %d KiB dumping 100,000"):format(small, large))
  end)
end)

describe("conntrack.dump", function()
  before_each(function() ns.fresh() end)

  it("dumps the table through the module's default handle", function()
    fill_udp(1, 300)
    local seen, n = ports_of(conntrack.dump())
    assert.equal(300, n)
    assert.same(range_set(1, 300), seen)
  end)

  it("takes a filter like ct:dump", function()
    fill_udp(1, 300)
    local seen = ports_of(conntrack.dump{ orig_sport = 42 })
    assert.same({ [42] = 1 }, seen)
  end)
end)

describe("ct:dump options", function()
  local ct
  before_each(function()
    ct = ns.fresh()
    ns.fill()
  end)

  local function collect(iter, s, c, closing)
    local out = {}
    for v in iter, s, c, closing do out[#out + 1] = v end
    table.sort(out)
    return out
  end

  it("yields each flow's line with format, as flow:format gives it", function()
    -- the timeout may tick between the two dumps: it is left out
    for _, format in ipairs{ "", "extended", "extended,id", "xml" } do
      local expected, lines = {}, {}
      for flow in ct:dump() do expected[#expected + 1] = untimed(flow:format(format)) end
      for line in ct:dump(nil, { format = format }) do lines[#lines + 1] = untimed(line) end
      table.sort(expected)
      table.sort(lines)
      assert.equal(#ns.sample, #lines)
      assert.same(expected, lines)
    end
  end)

  it("applies the filter and the predicate before formatting", function()
    local lines = collect(ct:dump({ family = "ipv6", where = function(f) return f.proto ~= "udp" end },
                                  { format = "id" }))
    assert.equal(2, #lines)
    for _, line in ipairs(lines) do assert.matches("id=%d+$", line) end
  end)

  -- the lines of a batch dump, and the number of batches
  local function batch_lines(filter, format)
    local lines, batches, total = {}, 0, 0
    for text, n in ct:dump(filter, { format = format, batch = true }) do
      batches, total = batches + 1, total + n
      assert.equal("\n", text:sub(-1))
      for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    end
    assert.equal(total, #lines)
    return lines, batches
  end

  it("yields with batch the lines of a datagram at once, each ending in a newline, with their number", function()
    fill_udp(1, 2000)
    local lines, batches = batch_lines(nil, "extended")
    assert.equal(#ns.sample + 2000, #lines)
    -- a datagram holds many flows, and the table needs many datagrams
    assert.is_true(batches > 1 and batches < #lines / 10)
    local expected = {}
    for line in ct:dump(nil, { format = "extended" }) do expected[#expected + 1] = untimed(line) end
    for i, line in ipairs(lines) do lines[i] = untimed(line) end
    table.sort(expected)
    table.sort(lines)
    assert.same(expected, lines)
  end)

  it("applies the filter and the predicate to batches", function()
    local lines = batch_lines({ family = "ipv6", where = function(f) return f.proto ~= "udp" end }, "id")
    assert.equal(2, #lines)
    for _, line in ipairs(lines) do assert.matches("id=%d+$", line) end
    assert.same({}, batch_lines({ orig_src = "10.99.0.1" }, ""))
  end)

  it("refuses batch without format", function()
    local ok, err = pcall(ct.dump, ct, nil, { batch = true })
    assert.is_false(ok)
    assert.equal("bad argument 'batch': batches are of lines (it needs 'format')", err)
  end)

  it("reads the dying and unconfirmed lists, empty on a quiet table", function()
    assert.same({}, collect(ct:dump(nil, { list = "dying" })))
    assert.same({}, collect(ct:dump(nil, { list = "unconfirmed" })))
    assert.equal(#ns.sample, #collect(ct:dump(nil, { list = "conntrack", zero = true, format = "" })))
  end)

  it("refuses unknown options and lists by name", function()
    local ok, err = pcall(ct.dump, ct, nil, { lsit = "dying" })
    assert.is_false(ok)
    assert.equal("bad argument 'lsit': not an option of dump (its options: zero, list, format, batch)", err)
    ok, err = pcall(ct.dump, ct, nil, { list = "dead" })
    assert.equal("bad argument 'list': expected \"conntrack\", \"dying\" or \"unconfirmed\"", err)
    ok, err = pcall(ct.dump, ct, nil, { format = "extended,bogus" })
    assert.equal("bad argument 'format': unknown output format \"bogus\"", err)
  end)
end)
