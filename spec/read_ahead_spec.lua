-- spec/read_ahead_spec.lua: a dump of more than one datagram is received by
-- a thread of its own while the loop reads (src/ahead.c), where the process
-- may run on two CPUs or more; on one CPU, by the loop alone. Either way the
-- loop sees the same flows, and no thread outlives the dump: not at its
-- end, a break, close(), an error or the collector.
local ns = require "spec.helpers.ns"
local mixed = require "spec.helpers.mixed_flows"

local FLOWS = mixed.generate(3000)   -- about 25 datagrams

local threads = ns.threads

-- The CPUs this process may use (nproc counts its affinity).
local function cpus()
  local p = assert(io.popen("nproc"))
  local n = tonumber(p:read("*l")); p:close()
  return n
end

local function full_gc() collectgarbage(); collectgarbage() end

describe("a dump of many datagrams", function()
  local ct, reader
  before_each(function()
    ct = ns.fresh()
    mixed.fill(ct, FLOWS)
    reader = cpus() >= 2 and 1 or 0
    assert.equal(1, threads())
  end)

  it("is received by a second thread while the loop reads, which ends with the dump", function()
    local during, n = 0, 0
    for _ in ct:dump() do
      n = n + 1
      if n == 2000 then during = threads() end
    end
    assert.equal(#FLOWS, n)
    assert.equal(1 + reader, during)
    assert.equal(1, threads())
  end)

  it("is received by the loop alone where the process has one CPU", function()
    local code = "local ct = assert(require('conntrack').open()); local n, during = 0, 0; "
      .. "for _ in ct:dump() do n = n + 1; if n == 2000 then "
      .. "local t = 0; for _ in require('lfs').dir('/proc/self/task') do t = t + 1 end; during = t - 2 end end; "
      .. "io.write(n, ' ', during)"
    local out, err, status = ns.run("taskset -c 0 " .. ns.LUA .. ' -e "' .. code .. '"')
    assert(status == 0, err)
    assert.equal(#FLOWS .. " 1", out)
  end)

  it("stops its thread when closed mid-table, and the handle works on at once", function()
    local iter, state, control, dump = ct:dump()
    for _ = 1, 1000 do assert.is_not_nil(iter(state, control)) end
    assert.equal(1 + reader, threads())
    dump:close()
    assert.equal(1, threads())
    assert.equal(#FLOWS, ct:count())
    local f = FLOWS[1]
    assert.is_not_nil(ct:get{ proto = f.proto, orig_src = f.orig_src, orig_dst = f.orig_dst, orig_sport = f.orig_sport,
                              orig_dport = f.orig_dport, zone = f.zone })
  end)

  it("stops its thread at a break (Lua 5.4's closing value) or an error of the loop body", function()
    if _VERSION == "Lua 5.4" then
      local n = 0
      for _ in ct:dump() do
        n = n + 1
        if n == 1000 then break end
      end
      assert.equal(1, threads())
    end
    local ok, err = pcall(function()
      local n = 0
      for _ in ct:dump() do
        n = n + 1
        if n == 1000 then error("stop here") end
      end
    end)
    assert.is_false(ok)
    assert.matches("stop here", err)
    full_gc()   -- (before 5.4 the collector closes a dump left by an error)
    assert.equal(1, threads())
  end)

  it("stops the thread of a dump abandoned mid-table once collected", function()
    local iter, state, control = ct:dump()
    for _ = 1, 1000 do assert.is_not_nil(iter(state, control)) end
    assert.equal(1 + reader, threads())
    iter, state, control = nil, nil, nil
    full_gc()
    assert.equal(1, threads())
  end)

  it("lets the loop body start processes (a fork has no thread) and reads on", function()
    local n = 0
    for _ in ct:dump() do
      n = n + 1
      if n == 1000 then assert.is_true(ns.run("true") ~= nil) end
    end
    assert.equal(#FLOWS, n)
  end)

  it("gives aggregate, delete and count the same flows", function()
    local _, summary = assert(ct:aggregate{ by = "proto" })
    assert.equal(#FLOWS, summary.flows)
    local marked = mixed.size(mixed.select(FLOWS, function(t) return t.mark == 0x10 end))
    assert.is_true(marked > 100)
    assert.equal(marked, ct:delete{ mark = 0x10 })
    assert.equal(#FLOWS - marked, ct:count())
    assert.equal(1, threads())
  end)
end)
