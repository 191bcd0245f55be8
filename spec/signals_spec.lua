-- spec/signals_spec.lua: conntrack.signals and ct:events{ signals = ... }.
-- Signals are sent for real, with kill, to a child process running a small
-- script; what it printed and how it ended (exit status, or the signal that
-- killed it: 128 + N) are what a user sees. In this process only misuse is
-- tried, with signals nobody sends.
local ns = require "spec.helpers.ns"
local socket = require "socket"

local conntrack = ns.conntrack
local LUA = ns.LUA
local ENV = ("LUA_CPATH='%s/?.so;;' "):format(ns.CHILD_SO_DIR or ".")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function eventually(pred, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    if pred() then return true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return pred() and true or false
end

-- The error a call raises (a C function raises it without a position).
local function error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

-- A Lua script run as a child process (killed after 20 s whatever
-- happens): lines() is what it printed so far, status() how it ended
-- (nil while it runs), kill(name) sends it a signal.
local function child(source)
  local base = os.tmpname()
  local script = base .. ".lua"
  local f = assert(io.open(script, "w"))
  f:write("io.stdout:setvbuf('line')\nlocal conntrack = require 'conntrack'\n", source)
  f:close()
  local program = ("sh -c %s"):format(q("echo $$ >" .. base .. ".pid; exec " .. LUA .. " " .. script))
  os.execute(("(%stimeout -s KILL 20 %s >%s.out 2>%s.err </dev/null; echo $? >%s.status) >/dev/null 2>&1 &")
    :format(ENV, program, base, base, base))
  local p = {}
  assert(eventually(function() p.pid = tonumber(slurp(base .. ".pid") or ""); return p.pid end, 5), "no child")
  function p.lines()
    local lines = {}
    for line in (slurp(base .. ".out") or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
    return lines
  end
  function p.stderr() return slurp(base .. ".err") or "" end
  function p.status() return tonumber(slurp(base .. ".status") or "") end
  function p.kill(name) assert(os.execute(("kill -%s %d"):format(name, p.pid))) end
  -- waits until it printed `line` (its last line so far), or ended
  function p.await(line)
    assert(eventually(function() local l = p.lines(); return l[#l] == line or p.status() end, 5),
           "the child never printed " .. line .. ": " .. p.stderr())
    assert.equal(line, p.lines()[#p.lines()], p.stderr())
  end
  function p.wait()
    assert(eventually(function() return p.status() end, 5), "the child did not end: " .. p.stderr())
    return p.status()
  end
  finally(function()
    if not p.status() then os.execute("kill -KILL " .. p.pid .. " 2>/dev/null") end
    eventually(function() return p.status() end, 5)
    for _, ext in ipairs{ "", ".lua", ".pid", ".out", ".err", ".status" } do os.remove(base .. ext) end
  end)
  return p
end

describe("conntrack.signals", function()
  it("reads each signal sent, by name, with the sender's pid, and the process lives on", function()
    local p = child([[
      local s = assert(conntrack.signals{ "TERM", "SIGHUP" })
      print("ready")
      for name, pid in s:each(10) do
        print(name, pid > 1)
        if name == "TERM" then break end
      end
      s:close()
      print("end")
    ]])
    p.await("ready")
    p.kill("HUP")
    p.await("HUP\ttrue")
    p.kill("TERM")
    assert.equal(0, p.wait(), p.stderr())
    assert.same({ "ready", "HUP\ttrue", "TERM\ttrue", "end" }, p.lines())
  end)

  it("waits in next for ever without a timeout, and returns nil, \"timeout\" after one", function()
    local p = child([[
      local s = assert(conntrack.signals{ "USR1" })
      print(s:next(0))
      print(s:next(0.05))
      print("ready")
      print(s:next())
    ]])
    p.await("ready")
    p.kill("USR1")
    assert.equal(0, p.wait(), p.stderr())
    local lines = p.lines()
    assert.same({ "nil\ttimeout", "nil\ttimeout", "ready" }, { lines[1], lines[2], lines[3] })
    assert.matches("^USR1\t%d+$", lines[4])
  end)

  it("hands waiting signals to dispatch's handlers without blocking", function()
    local p = child([[
      local s = assert(conntrack.signals{ "USR1", "USR2" })
      print("handled", s:dispatch{ USR1 = print })
      print("ready")
      while not s:pending() do os.execute("sleep 0.02") end
      os.execute("sleep 0.2")   -- USR2 too
      print("handled", s:dispatch{ USR1 = function(name) print("one", name) end,
                                   SIGUSR2 = function(name) print("two", name) end })
    ]])
    p.await("ready")
    p.kill("USR1")
    p.kill("USR2")
    assert.equal(0, p.wait(), p.stderr())
    local lines = p.lines()
    assert.equal("handled\t0", lines[1])
    table.sort(lines, function(a, b) return a < b end)
    assert.same({ "handled\t0", "handled\t2", "one\tUSR1", "ready", "two\tUSR2" }, lines)
  end)

  it("restores the mask on close: the next SIGTERM kills the process as before", function()
    local p = child([[
      local s = assert(conntrack.signals{ "TERM" })
      s:close()
      s:close()
      print("ready")
      os.execute("sleep 10")
      print("alive")
    ]])
    p.await("ready")
    p.kill("TERM")
    assert.equal(128 + 15, p.wait())
    assert.same({ "ready" }, p.lines())
  end)

  it("restores the mask when the collector takes it", function()
    local p = child([[
      do local s = assert(conntrack.signals{ "TERM" }) end
      collectgarbage(); collectgarbage()
      print("ready")
      os.execute("sleep 10")
      print("alive")
    ]])
    p.await("ready")
    p.kill("TERM")
    assert.equal(128 + 15, p.wait())
  end)

  it("delivers at close a signal that came and was not read, as it would have been", function()
    local p = child([[
      local s = assert(conntrack.signals{ "TERM" })
      print("ready")
      while not s:pending() do os.execute("sleep 0.02") end
      print("pending")
      s:close()
      print("alive")
    ]])
    p.await("ready")
    p.kill("TERM")
    assert.equal(128 + 15, p.wait())
    assert.same({ "ready", "pending" }, p.lines())
  end)

  it("keeps a signal blocked while another object still reads it", function()
    local p = child([[
      local a = assert(conntrack.signals{ "TERM" })
      local b = assert(conntrack.signals{ "TERM", "HUP" })
      a:close()
      print("ready")
      print(b:next(10))
      b:close()
      print("closed")
      os.execute("sleep 10")
    ]])
    p.await("ready")
    p.kill("TERM")
    p.await("closed")
    p.kill("HUP")
    assert.equal(128 + 1, p.wait())
    assert.matches("^TERM\t%d+$", p.lines()[2])
  end)

  it("wakes socket.select (poll), luv and cqueues loops as a subscription does", function()
    local p = child([[
      local socket = require "socket"
      local s = assert(conntrack.signals{ "USR1" })
      print("ready")
      -- poll: socket.select takes any object with getfd
      local readable = socket.select({ s }, nil, 10)
      print("select", readable[1] == s, (s:next(0)))
      -- luv: a poll handle on the descriptor
      local uv = require "luv"
      local h = uv.new_poll(s:getfd())
      h:start("r", function() print("luv", (s:next(0))); h:stop(); h:close() end)
      print("ready luv")
      uv.run()
      -- cqueues: the pollable protocol (pollfd, events, timeout)
      local cqueues = require "cqueues"
      local cq = cqueues.new()
      cq:wrap(function() cqueues.poll(s); print("cqueues", (s:next(0))) end)
      print("ready cqueues")
      assert(cq:loop())
    ]])
    p.await("ready")
    p.kill("USR1")
    p.await("ready luv")
    p.kill("USR1")
    p.await("ready cqueues")
    p.kill("USR1")
    assert.equal(0, p.wait(), p.stderr())
    assert.same({ "ready", "select\ttrue\tUSR1", "ready luv", "luv\tUSR1", "ready cqueues", "cqueues\tUSR1" },
                p.lines())
  end)

  describe("misuse", function()
    it("raises for a name that is no signal, one that cannot be caught, or none", function()
      assert.equal("bad argument 'signals': unknown signal \"TREM\"", error_of(conntrack.signals, { "TREM" }))
      assert.equal("bad argument 'signals': unknown signal \"SEGV\"", error_of(conntrack.signals, { "SEGV" }))
      assert.equal("bad argument 'signals': SIGKILL cannot be caught", error_of(conntrack.signals, { "KILL" }))
      assert.equal("bad argument 'signals': SIGSTOP cannot be caught", error_of(conntrack.signals, { "SIGSTOP" }))
      assert.equal("bad argument 'signals': no signal named", error_of(conntrack.signals, {}))
      assert.equal("bad argument 'signals': expected signal names, got number", error_of(conntrack.signals, { 15 }))
      assert.equal("bad argument 'signals': expected a list of signal names, got string",
                   error_of(conntrack.signals, "TERM"))
      assert.equal("bad argument 'signals': a NUL byte in \"TERM\\0\"", error_of(conntrack.signals, { "TERM\0" }))
    end)

    it("raises for a handler of a signal it does not read, or one that is no function", function()
      local s = assert(conntrack.signals{ "USR2" })
      finally(function() s:close() end)
      assert.equal("bad argument 'USR1': not one of the signals read", error_of(s.dispatch, s, { USR1 = print }))
      assert.equal("bad argument 'handlers': unknown signal \"USR3\"", error_of(s.dispatch, s, { USR3 = print }))
      assert.equal("bad argument 'USR2': expected a function, got number", error_of(s.dispatch, s, { USR2 = 1 }))
      assert.equal(0, s:dispatch{ USR2 = print })
    end)

    it("is a signalfd, readable, without a timeout of its own; closed, it says so and refuses use", function()
      local s = assert(conntrack.signals{ "USR2", "WINCH" })
      local fd = s:getfd()
      assert.equal(fd, s:fd())
      assert.equal(fd, s:pollfd())
      assert.equal("r", s:events())
      assert.is_nil(s:timeout())
      assert.is_false(s:pending())
      assert.equal(("conntrack.signals (fd %d: USR2 WINCH)"):format(fd), tostring(s))
      local link = ns.run("readlink /proc/" .. ns.pid() .. "/fd/" .. fd)
      assert.equal("anon_inode:[signalfd]\n", link)
      s:close()
      assert.equal("conntrack.signals (closed)", tostring(s))
      assert.equal("attempt to use a closed signals object", error_of(s.next, s, 0))
      assert.equal("attempt to use a closed signals object", error_of(s.getfd, s))
      local other = assert(conntrack.signals{ "USR2" })
      finally(function() other:close() end)
      assert.equal("bad argument 'timeout': expected seconds >= 0, got " .. tostring(-1.0),
                   error_of(other.next, other, -1))
    end)
  end)
end)

describe("ct:events{ signals = ... }", function()
  it("yields each signal as a \"signal\" event between the flows' events", function()
    ns.fresh()
    local p = child([[
      local ct = assert(conntrack.open())
      local sub = assert(ct:events{ "new", signals = { "TERM", "HUP" } })
      print("ready")
      while true do
        local kind, what, time = sub:next()
        if kind == "signal" then
          print(kind, what, type(time))
          if what == "TERM" then break end
        else
          print(kind, what.orig_dport)
        end
      end
      sub:close()
    ]])
    p.await("ready")
    assert(ns.handle():create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1,
                               orig_dport = 53, timeout = 30 })
    p.await("new\t53")
    p.kill("HUP")
    p.await("signal\tHUP\tnumber")
    p.kill("TERM")
    assert.equal(0, p.wait(), p.stderr())
    assert.same({ "ready", "new\t53", "signal\tHUP\tnumber", "signal\tTERM\tnumber" }, p.lines())
  end)

  it("hands them to dispatch's signal handler as (name, \"signal\", time)", function()
    local p = child([[
      local ct = assert(conntrack.open())
      local sub = assert(ct:events{ signals = { "USR1" } })
      print("ready")
      while not sub:pending() do os.execute("sleep 0.02") end
      print("handled", sub:dispatch{ signal = function(name, kind, time) print(name, kind, type(time)) end })
      sub:close()
      os.execute("kill -USR1 $PPID")   -- the mask is restored: this one kills
      os.execute("sleep 10")
    ]])
    p.await("ready")
    p.kill("USR1")
    assert.equal(128 + 10, p.wait())
    assert.same({ "ready", "USR1\tsignal\tnumber", "handled\t1" }, p.lines())
  end)

  it("refuses a bad signal name before subscribing", function()
    local ct = ns.fresh()
    assert.equal("bad argument 'signals': unknown signal \"TREM\"", error_of(ct.events, ct, { signals = { "TREM" } }))
  end)
end)
