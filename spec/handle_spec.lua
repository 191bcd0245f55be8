-- spec/handle_spec.lua: conntrack.open and the handle it returns: closing,
-- handles on another network namespace (by path and by fd), the module's
-- default handle, and flows that outlive their handle.
local ns = require "spec.helpers.ns"
local conntrack = ns.conntrack
local common = require "spec.helpers.common"
-- the error a call raises, without a position (pcall calls it directly)
local error_of = common.error_of
local untimed = common.untimed

local UDP = { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53,
              timeout = 60 }
local UDP_KEY = { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53 }
local TCP = { proto = "tcp", orig_src = "10.1.0.1", orig_dst = "10.1.0.2", orig_sport = 4000, orig_dport = 22,
              state = "ESTABLISHED", timeout = 120 }

local function flows_of(ct)
  local flows = {}
  for flow in ct:dump() do flows[#flows + 1] = flow end
  return flows
end

-- conntrack -L run in a namespace, as lines without the ticking timeout.
local function listed_in(ex)
  local out, err, status = ex.exec("conntrack -L")
  assert(status == 0, err)
  local lines = ns.sorted_lines(out)
  for i, line in ipairs(lines) do lines[i] = untimed(line) end
  return lines
end

describe("conntrack.open", function()
  before_each(function() ns.fresh() end)

  it("returns a handle that tostring names", function()
    local ct = assert(conntrack.open())
    assert.matches("^conntrack%.handle %(0x%x+%)$", tostring(ct))
    assert.equal(0, ct:count())
    ct:close()
    assert.equal("conntrack.handle (closed)", tostring(ct))
  end)

  it("returns nil, a message and ENOENT for a namespace name that does not exist", function()
    assert.same({ nil, "open: /run/netns/no-such-ns: No such file or directory", 2 },
                { conntrack.open{ netns = "no-such-ns" } })
  end)

  it("raises naming an unknown option", function()
    assert.equal("bad argument 'bogus': not an option of open (its options: netns)", error_of(conntrack.open, { bogus = 1 }))
  end)

  describe("on another namespace", function()
    local other
    before_each(function() other = ns.spawn_netns() end)
    after_each(function() other.stop() end)

    it("creates flows there only, as conntrack -L in each namespace shows #diff", function()
      local there = assert(conntrack.open{ netns = other.path })
      assert.is_true(there:create(UDP))
      local flows = flows_of(there)
      assert.equal(1, #flows)
      assert.same({ untimed(flows[1]) }, listed_in(other))
      assert.equal(0, ns.handle():count())
      assert.same({}, ns.reference_lines("-L"))
      there:close()
    end)

    it("dumps, gets and counts the flows of its namespace only", function()
      local here, there = ns.handle(), assert(conntrack.open{ netns = other.path })
      assert.is_true(here:create(TCP))
      assert.is_true(there:create(UDP))
      local seen_there, seen_here = flows_of(there), flows_of(here)
      assert.same({ "udp", "tcp" }, { seen_there[1].proto, seen_here[1].proto })
      assert.same({ 1, 1 }, { #seen_there, #seen_here })
      assert.same({ 1, 1 }, { there:count(), here:count() })
      assert.equal(seen_there[1], there:get(UDP_KEY))
      assert.same({ nil, "get: no such flow", 2 }, { here:get(UDP_KEY) })
      assert.is_true(there:flush())
      assert.same({ 0, 1 }, { there:count(), here:count() })
      there:close()
    end)

    -- Plain Lua has no fileno: the descriptor of a file io.open'ed on the
    -- namespace is the one /proc/<this process>/fd gains that points at it.
    local function fds_on(target)
      local p = io.popen([[for f in /proc/$PPID/fd/*; do echo "${f##*/} $(readlink "$f")"; done]])
      local fds = {}
      for line in p:lines() do
        local fd, link = line:match("^(%d+) (.*)$")
        if fd and link == target then fds[tonumber(fd)] = true end
      end
      p:close()
      return fds
    end

    it("accepts the file descriptor of the namespace #diff", function()
      local link = assert(io.popen("readlink " .. other.path)):read("*l")
      local before = fds_on(link)
      local file = assert(io.open(other.path))
      local fd
      for n in pairs(fds_on(link)) do
        if not before[n] then fd = n end
      end
      assert(fd, "no descriptor of " .. other.path .. " found in /proc/PID/fd")
      local there = assert(conntrack.open{ netns = fd })
      file:close()   -- the handle keeps a duplicate
      assert.is_true(there:create(UDP))
      assert.same({ untimed(flows_of(there)[1]) }, listed_in(other))
      assert.equal(0, ns.handle():count())
      there:close()
    end)
  end)
end)

describe("a handle", function()
  before_each(function() ns.fresh() end)

  it("closes more than once without complaint", function()
    local ct = assert(conntrack.open())
    ct:close()
    ct:close()
    assert.equal("conntrack.handle (closed)", tostring(ct))
  end)

  it("raises on any method once closed", function()
    local ct = assert(conntrack.open())
    ct:close()
    for _, method in ipairs{ "dump", "get", "create", "update", "delete", "flush", "count", "stats" } do
      assert.equal("attempt to use a closed handle", error_of(ct[method], ct, UDP), method)
    end
  end)

  -- (5.4's to-be-closed variables; older versions close explicitly or by the collector)
  if _VERSION >= "Lua 5.4" then it("closes at the end of a <close> scope", function()
    local escaped = load([[
      local conntrack, escaped = ...
      do
        local ct <close> = assert(conntrack.open())
        assert(ct:count() == 0)
        escaped = ct
      end
      return escaped
    ]])(conntrack)
    assert.equal("conntrack.handle (closed)", tostring(escaped))
    assert.equal("attempt to use a closed handle", error_of(escaped.count, escaped))
  end) end

  it("leaves its flows readable and usable after it is closed", function()
    local ct = assert(conntrack.open())
    assert.is_true(ct:create(UDP))
    local got, dumped = ct:get(UDP_KEY), flows_of(ct)[1]
    ct:close()
    collectgarbage()
    collectgarbage()
    assert.equal("10.0.0.3", got.orig_dst)
    assert.equal(53, dumped.orig_dport)
    assert.matches("^udp ", tostring(dumped))
    assert.equal(got, dumped)
    assert.is_true(ns.handle():delete(got))
    assert.equal(0, ns.handle():count())
  end)
end)

describe("the module functions", function()
  before_each(function() ns.fresh() end)

  it("work on a default handle without open()", function()
    assert.is_true(conntrack.create(UDP))
    assert.equal(1, conntrack.count())
    local flows = {}
    for flow in conntrack.dump() do flows[#flows + 1] = flow end
    assert.equal(1, #flows)
    assert.equal(flows[1], conntrack.get(UDP_KEY))
    assert.equal(1, ns.handle():count())
    assert.is_true(conntrack.update(flows[1], { mark = 3 }))
    assert.equal(3, ns.handle():get(UDP_KEY).mark)
    assert.equal(1, conntrack.stats().entries)
    assert.is_true(conntrack.delete(flows[1]))
    assert.is_true(conntrack.flush())
    assert.equal(0, ns.handle():count())
  end)
end)
