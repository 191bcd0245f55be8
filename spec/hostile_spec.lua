-- spec/hostile_spec.lua: what a script can do from the Lua code the module
-- runs in the middle of an operation (predicates, metamethods of argument
-- tables, handlers, error objects' __tostring, finalizers, <close>): close
-- the handle, the dump or the subscription, raise, yield, or call in again.
-- The outcome is a clean Lua error or the right result: never a crash, a
-- sanitizer report, an operation on the wrong namespace or on the whole
-- table. Also strings that C would cut at a NUL byte, flows that identify no
-- entry, comparisons and wait timeouts. `make check-memory` runs it too.
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"
local messages = require "fuzz.messages"
local conntrack = ns.conntrack

local CLOSED = "attempt to use a closed handle"
local CLOSED_SUB = "attempt to use a closed subscription"
local CLOSED_DUMP = "attempt to use a closed dump"
local IN_USE = "dump already in use"
local YIELD = "attempt to yield across"   -- then "a C-call boundary" (5.1: "metamethod/C-call boundary")
local N = 6
-- 5.1 and LuaJIT take no __len from a table: a list's length is its own
local TABLE_LEN = #setmetatable({}, { __len = function() return 1 end }) == 1

local function udp(sport, src)
  return { proto = "udp", orig_src = src or "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = sport, orig_dport = 53,
           timeout = 600 }
end

local function key(sport)
  local k = udp(sport)
  k.timeout = nil
  return k
end

-- The table emptied, then N flows with source ports 1..N.
local function filled()
  local ct = ns.fresh()
  for port = 1, N do assert(ct:create(udp(port))) end
  return ct
end

-- A message with the position luaL_error puts before it (if any) cut off.
local function unplaced(err)
  return (tostring(err):gsub("^[^%s:]+:%d+: ", ""))
end

-- The error a call raises, its position cut off.
local function error_of(f, ...)
  local err = common.error_of(f, ...)
  return type(err) == "string" and unplaced(err) or err
end

-- A copy of t whose metatable runs fn on __index (a key t lacks) and __len.
local function hostile(t, fn)
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  local len = #copy
  return setmetatable(copy, { __index = function() fn() end, __len = function() fn(); return len end })
end

-- f run in a coroutine: the error it raises there.
local function error_in_coroutine(f)
  local ok, err = coroutine.resume(coroutine.create(f))
  assert(not ok, "expected an error")
  return tostring(err)
end

-- An object that is garbage at once and whose finalizer runs fn (5.1 and
-- LuaJIT finalize only userdata).
local function finalizer(fn)
  if rawget(_G, "newproxy") then
    local u = newproxy(true)
    getmetatable(u).__gc = function() fn() end
  else
    setmetatable({}, { __gc = function() fn() end })
  end
end

-- Runs fn with the collector at work on every allocation, so that
-- finalizers run in the middle of the module's C code.
local function under_eager_collector(fn)
  if _VERSION == "Lua 5.4" then collectgarbage("incremental", 1, 1000) else
    collectgarbage("setpause", 1); collectgarbage("setstepmul", 1000)
  end
  local ok, err = pcall(fn)
  if _VERSION == "Lua 5.4" then collectgarbage("incremental", 200, 100) else
    collectgarbage("setpause", 200); collectgarbage("setstepmul", 200)
  end
  collectgarbage()
  if not ok then error(err, 0) end
end

local function count_in(handle)
  local n = 0
  for _ in handle:dump() do n = n + 1 end
  return n
end

describe("a handle closed by Lua code an operation runs", function()
  local ct
  before_each(function()
    filled()
    ct = assert(conntrack.open())
  end)
  after_each(function() ct:close() end)

  it("stops a delete whose predicate closes it with 'attempt to use a closed handle'", function()
    assert.equal(CLOSED, error_of(ct.delete, ct, function() ct:close(); return true end))
    assert.equal(N, ns.handle():count())
  end)

  it("stops an update whose predicate closes it", function()
    assert.equal(CLOSED, error_of(ct.update, ct, function() ct:close(); return true end, { mark = 1 }))
    for flow in ns.handle():dump() do assert.equal(0, flow.mark) end
  end)

  it("stops a create whose table closes it from __index", function()
    assert.equal(CLOSED, error_of(ct.create, ct, hostile(udp(100), function() ct:close() end)))
    assert.equal(N, ns.handle():count())
  end)

  it("stops a batch create whose list closes it from __len, or an item from __index", function()
    if TABLE_LEN then
      assert.equal(CLOSED, error_of(ct.create, ct, hostile({ udp(100) }, function() ct:close() end)))
    end
    local other = assert(conntrack.open())
    assert.equal(CLOSED, error_of(other.create, other, { udp(101), hostile(udp(102), function() other:close() end) }))
    assert.equal(N, ns.handle():count())
  end)

  it("stops a get whose key closes it from __index", function()
    assert.equal(CLOSED, error_of(ct.get, ct, hostile(key(1), function() ct:close() end)))
  end)

  it("stops an update whose labels close it from __index, of one flow or by filter", function()
    local flow = assert(ct:get(key(1)))
    assert.equal(CLOSED, error_of(ct.update, ct, flow, { labels = hostile({}, function() ct:close() end) }))
    local other = assert(conntrack.open())
    assert.equal(CLOSED, error_of(other.update, other, { proto = "udp" },
                                  { labels = hostile({}, function() other:close() end) }))
  end)

  it("sends what the predicate chose when its error object's __tostring closes the handle", function()
    local calls = 0
    local boom = setmetatable({}, { __tostring = function() ct:close(); return "boom" end })
    assert.equal("delete: the predicate failed after 1 flows were deleted: boom", error_of(ct.delete, ct, function()
      calls = calls + 1
      if calls == 1 then return true end
      error(boom)
    end))
    assert.equal(N - 1, ns.handle():count())
    assert.equal("conntrack.handle (closed)", tostring(ct))
  end)

  -- (5.4's to-be-closed variables; older versions have none)
  if _VERSION >= "Lua 5.4" then it("stops a delete whose predicate closes it through a <close> variable", function()
    local predicate = load([[
      local ct = ...
      return function()
        local h <close> = ct
        return true
      end
    ]])(ct)
    assert.equal(CLOSED, error_of(ct.delete, ct, predicate))
    assert.equal(N, ns.handle():count())
  end) end

  it("finishes each operation or raises 'attempt to use a closed handle' when a finalizer closes it", function()
    local ops = {
      function(h) return h:create{ udp(200), udp(201), udp(202) } end,
      function(h) return h:get(key(1)) end,
      function(h) return h:update({ proto = "udp" }, { mark = 3 }) end,
      function(h) return h:delete(function(f) return f.orig_sport > 100 end) end,
      function(h) return h:count() end,
      function(h) return h:stats() end,
      function(h) return h:dump({ proto = "udp" }) end,
      function(h) return h:events() end,
    }
    for round = 1, 20 do
      for i, op in ipairs(ops) do
        local h = assert(conntrack.open())
        under_eager_collector(function()
          for _ = 1, round do finalizer(function() h:close() end) end
          local ok, err = pcall(op, h)
          assert(ok or unplaced(err) == CLOSED, ("op %d: %s"):format(i, tostring(err)))
        end)
        h:close()
      end
    end
  end)

  describe("on another namespace", function()
    local other, there
    before_each(function()
      other = ns.spawn_netns()
      there = assert(conntrack.open{ netns = other.path })
      assert(there:create(udp(7, "10.9.0.1")))
    end)
    after_each(function()
      there:close()
      other.stop()
    end)

    it("never dumps the process's own table when the filter closes it from __index", function()
      local seen = {}
      local err = error_of(function()
        for flow in there:dump(hostile({ proto = "udp" }, function() there:close() end)) do
          seen[#seen + 1] = flow.orig_src
        end
      end)
      assert.equal(CLOSED, err)
      assert.same({}, seen)
    end)

    it("never subscribes to the process's own events when its options close it from __index", function()
      assert.equal(CLOSED, error_of(there.events, there, hostile({ "new" }, function() there:close() end)))
      local again = assert(conntrack.open{ netns = other.path })
      assert.equal(CLOSED, error_of(again.events, again, { filter = hostile({}, function() again:close() end) }))
    end)

    it("never sweeps the process's own table when the changes close it", function()
      assert.equal(CLOSED, error_of(there.update, there, { proto = "udp" },
                                    { labels = hostile({}, function() there:close() end) }))
      for flow in ns.handle():dump() do assert.equal(0, flow.mark) end
      assert.equal(N, ns.handle():count())
    end)
  end)
end)

describe("a subscription closed by Lua code it runs", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  it("ends a dispatch whose handler closes it, with the count so far and no error", function()
    local sub = assert(ct:events())
    for port = 1, 3 do assert(ct:create(udp(port))) end
    local calls = 0
    assert.equal(1, sub:dispatch{ new = function() calls = calls + 1; sub:close() end })
    assert.equal(1, calls)
    assert.equal("conntrack.events (closed)", tostring(sub))
  end)

  -- A 4096-byte buffer overflows under a burst of creates (events_spec.lua).
  for _, kind in ipairs{ "overflow", "sync" } do
    it(("ends a dispatch whose %s handler closes it during a resync"):format(kind), function()
      local sub = assert(ct:events{ buffer = 4096, resync = true })
      for port = 1, 3000 do assert(ct:create(udp(port))) end
      local calls = 0
      local handlers = { [kind] = function() calls = calls + 1; sub:close() end }
      local handled = 0
      for _ = 1, 100 do
        if calls > 0 then break end
        handled = handled + sub:dispatch(handlers)
      end
      assert.equal(1, calls)
      assert.equal(1, handled)
      assert.equal(CLOSED_SUB, error_of(sub.dispatch, sub, handlers))
    end)
  end

  it("ends a dispatch whose handler table closes it from __index", function()
    local sub = assert(ct:events())
    assert(ct:create(udp(1)))
    assert.equal(0, sub:dispatch(hostile({}, function() sub:close() end)))
  end)

  it("returns the event its predicate accepted as it closed it, then raises", function()
    local sub
    sub = assert(ct:events{ filter = function() sub:close(); return true end })
    assert(ct:create(udp(1)))
    local kind, flow = sub:next(1)
    assert.equal("new", kind)
    assert.equal(1, flow.orig_sport)
    assert.equal(CLOSED_SUB, error_of(sub.next, sub, 0))
  end)

  it("raises 'attempt to use a closed subscription' when its predicate closes it and refuses the event", function()
    local sub
    sub = assert(ct:events{ filter = function() sub:close(); return false end })
    assert(ct:create(udp(1)))
    assert.equal(CLOSED_SUB, error_of(sub.next, sub, 1))
    sub = assert(ct:events{ filter = function() sub:close(); return false end })
    assert(ct:create(udp(2)))
    assert.equal(CLOSED_SUB, error_of(function() for _ in sub:each(1) do end end))
  end)

  it("survives a finalizer that closes it while it reads", function()
    for round = 1, 20 do
      local sub = assert(ct:events())
      for port = 1, 5 do assert(ct:create(udp(round * 10 + port))) end
      under_eager_collector(function()
        for _ = 1, round do finalizer(function() sub:close() end) end
        local ok, err = pcall(function()
          local n = 0
          while sub:next(0) do n = n + 1 end
          return n
        end)
        assert(ok or unplaced(err) == CLOSED_SUB, tostring(err))
        ok, err = pcall(sub.dispatch, sub, { new = function() end })
        assert(ok or unplaced(err) == CLOSED_SUB, tostring(err))
      end)
      sub:close()
    end
  end)
end)

describe("a flow without its original tuple", function()
  -- conntrack.parse of a message that carries only a mark
  local function mark_only()
    return assert(conntrack.parse(messages.message(2, messages.attr(messages.CTA.MARK, "\0\0\0\5"))))
  end

  before_each(function() filled() end)

  it("is refused by delete, which would otherwise empty the table", function()
    local ct = ns.handle()
    assert.equal("bad argument 'flow': delete needs its original tuple (family, addresses, protocol)",
                 error_of(ct.delete, ct, mark_only()))
    assert.equal(N, ct:count())
  end)

  it("is refused by update", function()
    local ct = ns.handle()
    assert.equal("bad argument 'flow': update needs its original tuple (family, addresses, protocol)",
                 error_of(ct.update, ct, mark_only(), { mark = 1 }))
    for flow in ct:dump() do assert.equal(0, flow.mark) end
  end)

  it("is refused by get, as its fields or as a table without a tuple", function()
    local ct = ns.handle()
    assert.equal("bad argument 'mark': get does not take it", error_of(ct.get, ct, mark_only():totable()))
    assert.equal("bad argument 'orig_src': get needs it", error_of(ct.get, ct, { proto = "udp" }))
  end)
end)

describe("a dump stepped from its own predicate", function()
  before_each(function() filled() end)

  for _, opts in ipairs{ false, { format = "" }, { format = "extended", batch = true } } do
    local mode = not opts and "flows" or opts.batch and "batches of lines" or "lines"
    it(("raises 'dump already in use' (%s), and the handle dumps on"):format(mode), function()
      local ct = ns.handle()
      local step, state
      step, state = ct:dump(function() return step(state) ~= nil end, opts or nil)
      assert.equal(IN_USE, error_of(function() for _ in step, state do end end))
      state:close()
      assert.equal(N, count_in(ct))
    end)
  end

  it("ends with 'attempt to use a closed dump' after the flow its predicate accepted as it closed it", function()
    local ct, got = ns.handle(), {}
    local step, state
    step, state = ct:dump(function() state:close(); return true end)
    got[1] = step(state)
    assert.equal(CLOSED_DUMP, error_of(step, state))
    assert.is_not_nil(got[1].orig_sport)
    step, state = ct:dump(function() state:close(); return false end, { format = "", batch = true })
    assert.equal(CLOSED_DUMP, error_of(step, state))
  end)

  it("passes the predicate's error object on unchanged, and can be stepped again after it", function()
    local ct, boom, calls = ns.handle(), {}, 0
    local step, state = ct:dump(function()
      calls = calls + 1
      if calls == 1 then error(boom) end
      return true
    end)
    local ok, err = pcall(step, state)
    assert.is_false(ok)
    assert.equal(boom, err)
    local n = 0
    while step(state) do n = n + 1 end
    assert.equal(N - 1, n)
  end)

  it("survives a finalizer that closes it or steps it while it runs", function()
    local ct = ns.handle()
    for round = 1, 20 do
      for _, opts in ipairs{ false, { format = "" }, { format = "xml", batch = true } } do
        local step, state = ct:dump(nil, opts or nil)
        under_eager_collector(function()
          for i = 1, round do
            if i % 2 == 0 then finalizer(function() pcall(step, state) end) end
            finalizer(function() state:close() end)
          end
          local ok, err = pcall(function() while step(state) do end end)
          assert(ok or unplaced(err) == CLOSED_DUMP or unplaced(err) == IN_USE, tostring(err))
        end)
        state:close()
      end
    end
  end)
end)

describe("flow ==", function()
  it("is false against any other value, userdata or not, on either side", function()
    local ct = filled()
    local flow = assert(ct:get(key(1)))
    local _, dump = ct:dump()
    assert.is_false(flow == io.stdout)
    assert.is_false(io.stdout == flow)
    assert.is_false(flow == ct)
    assert.is_false(dump == flow)
    assert.is_false(flow == "flow")
    assert.is_true(flow == assert(ct:get(key(1))))
    assert.is_false(flow == assert(ct:get(key(2))))
    dump:close()
  end)
end)

describe("sub:next timeouts", function()
  local ct, sub
  before_each(function()
    ct = ns.fresh()
    sub = assert(ct:events())
  end)
  after_each(function() sub:close() end)

  -- the flow comes from another process while next waits
  local function create_soon(port)
    assert(ns.execute(("(sleep 0.3; LUA_CPATH='%s/?.so;;' %s -e 'assert(require(\"conntrack\").create{ proto = \"udp\", " ..
      "orig_src = \"10.0.0.1\", orig_dst = \"10.0.0.3\", orig_sport = %d, orig_dport = 53, timeout = 60 })') " ..
      ">/dev/null 2>&1 &"):format(ns.CHILD_SO_DIR, ns.LUA, port)))
  end

  it("waits out any finite timeout, beyond what an int of milliseconds holds", function()
    for i, timeout in ipairs{ 2147483.6478, 4294967.296, 1e300 } do
      create_soon(i)
      local kind, flow = sub:next(timeout)
      assert.equal("new", kind)
      assert.equal(i, flow.orig_sport)
    end
  end)

  it("waits for ever on inf, as on nil", function()
    create_soon(9)
    local kind, flow = sub:next(math.huge)
    assert.equal("new", kind)
    assert.equal(9, flow.orig_sport)
    create_soon(10)
    for k, f in sub:each(math.huge) do
      assert.same({ "new", 10 }, { k, f.orig_sport })
      break
    end
  end)

  it("returns nil, 'timeout' when a short timeout passes", function()
    assert.same({ nil, "timeout" }, { sub:next(0.05) })
  end)

  it("raises on a negative or NaN timeout", function()
    assert.matches("^bad argument 'timeout': expected seconds >= 0, got %-1", error_of(sub.next, sub, -1))
    assert.matches("^bad argument 'timeout': expected seconds >= 0, got %-?nan", error_of(sub.next, sub, 0 / 0))
    assert.matches("^bad argument 'timeout': expected seconds >= 0, got %-inf", error_of(sub.each, sub, -math.huge))
  end)
end)

describe("a string with a NUL byte", function()
  local ct
  before_each(function() ct = filled() end)

  local function dump_all(filter, opts)
    local n = 0
    for _ in ct:dump(filter, opts) do n = n + 1 end
    return n
  end

  local function refused(expected, f, ...)
    assert.equal(expected, error_of(f, ...))
    assert.equal(N, ct:count())
  end

  it("is refused in a filter, naming the field", function()
    refused([[bad argument 'orig_src': a NUL byte in "10.0.0.1\0garbage"]], dump_all, { orig_src = "10.0.0.1\0garbage" })
    refused([[bad argument 'reply_dst': a NUL byte in "10.0.0.1\0"]], ct.delete, ct, { reply_dst = "10.0.0.1\0" })
    refused([[bad argument 'proto': a NUL byte in "udp\0x"]], ct.delete, ct, { proto = "udp\0x" })
    refused([[bad argument 'family': a NUL byte in "ipv4\0x"]], dump_all, { family = "ipv4\0x" })
    refused([[bad argument 'state': a NUL byte in "ESTABLISHED\0x"]], dump_all, { state = "ESTABLISHED\0x" })
    refused([[bad argument 'status': a NUL byte in "CONFIRMED\0x"]], dump_all, { status = "CONFIRMED\0x" })
    refused([[bad argument 'status': a NUL byte in "CONFIRMED\0x"]], dump_all, { status = { "CONFIRMED\0x" } })
    refused([[bad argument 'status': a NUL byte in "CONFIRMED\0x"]], dump_all, { status = { ["CONFIRMED\0x"] = true } })
    refused([[bad argument 'helper': a NUL byte in "ftp\0x"]], dump_all, { helper = "ftp\0x" })
    refused([[bad argument 'orig_src\0': unknown field]], dump_all, { ["orig_src\0"] = "10.0.0.1" })
    refused([[bad argument 'where\0': unknown field]], ct.delete, ct, { ["where\0"] = function() return true end })
  end)

  it("is refused by create and update, naming the field", function()
    local fields = udp(100)
    fields.proto = "udp\0x"
    refused([[bad argument 'proto': a NUL byte in "udp\0x"]], ct.create, ct, fields)
    fields = udp(100)
    fields.helper = "ftp\0x"
    refused([[bad argument 'helper': a NUL byte in "ftp\0x"]], ct.create, ct, fields)
    refused([[bad argument 'status': a NUL byte in "ASSURED\0"]], ct.update, ct, assert(ct:get(key(1))),
            { status = "ASSURED\0" })
  end)

  it("is refused in an option or its name, naming it", function()
    refused([[bad argument 'format': a NUL byte in "extended\0xml"]], dump_all, nil, { format = "extended\0xml" })
    refused([[bad argument 'format': a NUL byte in "extended\0"]], dump_all, nil, { format = { ["extended\0"] = true } })
    refused([[bad argument 'list': expected "conntrack", "dying" or "unconfirmed"]], dump_all, nil, { list = "dying\0" })
    refused([[bad argument 'zero\0': not an option of dump (its options: zero, list, format, batch)]],
            dump_all, nil, { ["zero\0"] = true })
    refused([[bad argument 'family\0x': not an option of flush (its options: family)]], ct.flush, ct, { ["family\0x"] = "ipv6" })
    refused([[bad argument 'dry_run\0': not an option of delete (its options: dry_run)]], ct.delete, ct, { proto = "udp" },
            { ["dry_run\0"] = true })
    refused([[bad argument 'events': unknown event kind "new\0x"]], ct.events, ct, { "new\0x" })
    refused([[bad argument 'resync\0': not an option of events (its options: filter, expect_filter, buffer, resync, reliable, signals)]],
            ct.events, ct, { ["resync\0"] = true })
    refused([[bad argument 'netns': a NUL byte in "/proc/self/ns/net\0x"]], conntrack.open,
            { netns = "/proc/self/ns/net\0x" })
    refused([[bad argument 'netns\0': not an option of open (its options: netns)]], conntrack.open, { ["netns\0"] = "x" })
    local flow = assert(ct:get(key(1)))
    refused([[bad argument 'format': a NUL byte in "id\0"]], flow.format, flow, "id\0")
    local sub = assert(ct:events())
    refused([[bad argument 'new\0': not an event kind (new, update, destroy, expect_new, expect_destroy, overflow, sync, expect_sync, synced, signal)]],
            sub.dispatch, sub, { ["new\0"] = print })
    sub:close()
  end)
end)

describe("a prefix length or a format list", function()
  before_each(function() filled() end)

  it("is refused unless it is decimal digits alone", function()
    local ct = ns.handle()
    for _, prefix in ipairs{ "/ 8", "/+8", "/-0", "/8 ", "/0x8", "/", "/0008" } do
      assert.equal(('bad argument \'orig_src\': invalid prefix length in "10.0.0.0%s"'):format(prefix),
                   error_of(ct.delete, ct, { orig_src = "10.0.0.0" .. prefix }))
    end
    assert.equal(N, ct:count())
    assert.equal(N, ct:delete{ orig_src = "10.0.0.0/08", proto = "udp" })
  end)

  it("is refused with an empty option", function()
    local ct = ns.handle()
    for _, format in ipairs{ "extended,", ",id", "extended,,id" } do
      assert.equal("bad argument 'format': an empty option name",
                   error_of(function() for _ in ct:dump(nil, { format = format }) do end end))
    end
    for _ in ct:dump(nil, { format = "" }) do end
  end)
end)

describe("the module's metatables", function()
  it("are not handed out: getmetatable gives the type's name", function()
    local ct = filled()
    local _, dump = ct:dump()
    local sub = assert(ct:events())
    assert.same({ "conntrack.handle", "conntrack.dump", "conntrack.events", "conntrack.flow", "conntrack.flow" },
                { getmetatable(ct), getmetatable(dump), getmetatable(sub), getmetatable(assert(ct:get(key(1)))),
                  getmetatable(conntrack.parse(messages.samples().tcp)) })
    dump:close()
    sub:close()
  end)
end)

-- Every place the module runs Lua code, and what that code does there.
-- site.run(cb) runs an operation on a fresh handle ct (and subscription
-- sub) that calls cb from that place; the outcome of each action is
-- checked against site.close, site.raise, site.yield: nil (it finishes), or
-- the error it raises (plain text, or a pattern when anchored).
describe("Lua code the module runs mid-operation", function()
  local ct, sub

  local function sites()
    return {
      { name = "a delete's predicate",
        run = function(cb) return ct:delete(function(f) cb(); return f.orig_sport == 1 end) end,
        close = CLOSED, raise = "^delete: the predicate failed after 0 flows were deleted: .*boom$",
        yield = "^delete: the predicate failed after 0 flows were deleted: .*" .. YIELD },
      { name = "an update's predicate",
        run = function(cb) return ct:update(function() cb(); return true end, { mark = 9 }) end,
        close = CLOSED, raise = "^update: the predicate failed after 0 flows were updated: .*boom$",
        yield = "^update: the predicate failed after 0 flows were updated: .*" .. YIELD },
      { name = "a dry run's predicate",
        run = function(cb) return ct:delete({ where = function() cb(); return true end }, { dry_run = true }) end,
        close = nil, raise = "boom$", yield = YIELD },
      { name = "a dump's predicate",
        run = function(cb) for _ in ct:dump(function() cb(); return true end) do end end,
        close = nil, raise = "boom$", yield = YIELD },
      { name = "the predicate of a dump of lines",
        run = function(cb) for _ in ct:dump(function() cb(); return true end, { format = "id" }) do end end,
        close = nil, raise = "boom$", yield = YIELD },
      { name = "a create's table (__index)",
        run = function(cb) return ct:create(hostile(udp(100), cb)) end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      TABLE_LEN and { name = "a batch create's list (__len)",
        run = function(cb) return ct:create(hostile({ udp(100), udp(101) }, cb)) end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "a batch create's item (__index)",
        run = function(cb) return ct:create{ udp(100), hostile(udp(101), cb) } end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "a get's key (__index)",
        run = function(cb) return ct:get(hostile(key(1), cb)) end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "an update's labels (__index)",
        run = function(cb) return ct:update(assert(ct:get(key(1))), { labels = hostile({}, cb) }) end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "a dump's filter (__index)",
        run = function(cb) for _ in ct:dump(hostile({ proto = "udp" }, cb)) do end end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "the options of events (__index)",
        run = function(cb) assert(ct:events(hostile({ "new" }, cb))):close() end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "the filter of events (__index)",
        run = function(cb) assert(ct:events{ filter = hostile({}, cb) }):close() end,
        close = CLOSED, raise = "boom$", yield = YIELD },
      { name = "the options of open (__index)",
        run = function(cb) assert(conntrack.open(hostile({}, cb))):close() end,
        close = nil, raise = "boom$", yield = YIELD },
      { name = "an event's predicate (next)",
        run = function(cb)
          sub = assert(ct:events{ filter = function() cb(); return true end })
          assert(ns.handle():create(udp(100)))
          return sub:next(1)
        end,
        close = nil, raise = "boom$", yield = YIELD },
      { name = "a dispatch's handler",
        run = function(cb)
          sub = assert(ct:events())
          assert(ns.handle():create(udp(100)))
          return sub:dispatch{ new = function() cb() end }
        end,
        close = nil, raise = "boom", yield = YIELD },
      { name = "a dispatch's handler table (__index)",
        run = function(cb)
          sub = assert(ct:events())
          assert(ns.handle():create(udp(100)))
          return sub:dispatch(hostile({}, cb))
        end,
        close = nil, raise = "boom$", yield = YIELD },
    }
  end

  before_each(function()
    filled()
    ct = assert(conntrack.open())
    sub = nil
  end)
  after_each(function()
    ct:close()
    if sub then sub:close() end
  end)

  -- nil if run finishes, else its error with the position cut off
  local function outcome(run, cb)
    local ok, err = pcall(run, cb)
    if ok then return nil end
    return unplaced(err)
  end

  local function check(site, got, expected)
    if expected == nil then
      assert(got == nil, site.name .. ": expected it to finish, got " .. tostring(got))
    else
      assert(got and got:find(expected, 1, expected:sub(1, 1) ~= "^" and expected:sub(-1) ~= "$"),
             ("%s: expected %s, got %s"):format(site.name, expected, tostring(got)))
    end
  end

  for _, site in ipairs(sites()) do if site then
    describe(site.name, function()
      it("closes the handle: a clean error or the right result", function()
        check(site, outcome(site.run, function() ct:close() end), site.close)
      end)

      it("closes the subscription: the read or the dispatch ends cleanly", function()
        local got = outcome(site.run, function() if sub then sub:close() end end)
        assert(got == nil or got == CLOSED_SUB, site.name .. ": " .. tostring(got))
      end)

      it("raises: the error comes out", function()
        check(site, outcome(site.run, function() error("boom") end), site.raise)
      end)

      it("yields: 'attempt to yield across a C-call boundary'", function()
        check(site, unplaced(error_in_coroutine(function() site.run(function() coroutine.yield() end) end)),
              site.yield)
      end)

      it("calls the module again: the operation finishes", function()
        check(site, outcome(site.run, function()
          assert(ct:count())
          for _ in ct:dump() do end
          local step, state = ct:dump()
          step(state)
          state:close()
          if sub then sub:next(0) end
        end), nil)
      end)
    end)
  end end

  it("a dump's predicate that steps the same dump gets 'dump already in use'", function()
    local step, state
    step, state = ct:dump(function() step(state); return true end)
    assert.equal(IN_USE, error_of(step, state))
    state:close()
  end)

  it("a dispatch's handler may dispatch and read the same subscription", function()
    sub = assert(ct:events())
    for port = 100, 103 do assert(ns.handle():create(udp(port))) end
    local seen = {}
    local handlers = {}
    handlers.new = function(flow)
      seen[#seen + 1] = flow.orig_sport
      if #seen == 1 then
        local _, f = sub:next(0)
        seen[#seen + 1] = f.orig_sport
        sub:dispatch(handlers)
      end
    end
    assert.equal(1, sub:dispatch(handlers))
    table.sort(seen)
    assert.same({ 100, 101, 102, 103 }, seen)
  end)
end)
