-- spec/helpers/ns.lua: the private network namespace every spec runs in.
-- Refuses to run in the machine's own namespace, so no spec can touch the
-- host's conntrack table; gives a fresh table and the reference binary.
-- LCT_SO_DIR: where the module under test was built (check-memory: build/asan)
package.cpath = (os.getenv("LCT_SO_DIR") or ".") .. "/?.so;" .. package.cpath
package.path = "./lua/?.lua;" .. package.path

local M = {}

-- What differs between Lua versions (bit operations, integers, unpack).
M.compat = require "conntrack.ctl.compat"

local function own_netns()
  local p = io.popen("readlink /proc/self/ns/net")
  local link = p:read("*l"); p:close()
  return link
end

local function interfaces()
  local names = {}
  for line in io.lines("/proc/self/net/dev") do
    local name = line:match("^%s*([^%s:]+):")
    if name then names[#names + 1] = name end
  end
  return names
end

-- `make test` enters a new namespace and names it in LCT_TEST_NETNS; a spec
-- process elsewhere, or in a namespace with real interfaces, refuses to run.
function M.assert_private()
  local marked = os.getenv("LCT_TEST_NETNS")
  local ifaces = interfaces()
  if marked == nil or marked ~= own_netns() or #ifaces ~= 1 or ifaces[1] ~= "lo" then
    error("refusing to run: not in the private network namespace of `make test`", 0)
  end
end
M.assert_private()

-- Under `make check-memory` the sanitizer runtime is preloaded into this
-- process. The commands specs run (conntrack, sysctl, other Lua processes)
-- are not what is checked: they run without it, on the plain build.
M.sanitized = os.getenv("LCT_SANITIZED") ~= nil
if M.sanitized then
  local strip = "unset LD_PRELOAD ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS LCT_SO_DIR; "
  local execute, popen = os.execute, io.popen
  os.execute = function(cmd)
    if cmd == nil then return execute() end
    return execute(strip .. cmd)
  end
  io.popen = function(cmd, mode) return popen(strip .. cmd, mode) end
end

-- Where the processes specs start find the module: the plain build of the
-- Lua under test (LUA_CPATH names it first), never the sanitized one.
M.CHILD_SO_DIR = os.getenv("LCT_CHILD_SO_DIR") or (M.sanitized and "." or (os.getenv("LCT_SO_DIR") or "."))

M.conntrack = require "conntrack"

-- The handle every spec shares; the table is emptied before each test.
function M.handle()
  if not M.ct then M.ct = assert(M.conntrack.open()) end
  return M.ct
end

function M.fresh()
  local ct = M.handle()
  assert(ct:flush())
  assert(ct:count() == 0, "table not empty after flush")
  return ct
end

-- This process's pid (a shell's /proc/self would be the shell's own).
function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*n"); f:close()
  return pid
end

-- How many entries a directory of /proc/self has.
local function entries(dir)
  local n = 0
  for name in require("lfs").dir("/proc/self/" .. dir) do
    if name ~= "." and name ~= ".." then n = n + 1 end
  end
  return n
end

-- How many file descriptors this process holds: what a leak would raise.
function M.open_fds() return entries("fd") end

-- How many threads this process runs.
function M.threads() return entries("task") end

-- The Lua under test (`make test LUA=...`), for the processes specs start.
M.LUA = os.getenv("LCT_LUA") or "lua5.4"

-- os.execute's status: 5.2+ give ok, how, code; 5.1 and LuaJIT the wait status.
local function execute(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then
    if ok % 256 == 0 then return ok == 0, "exit", ok / 256 end
    return nil, "signal", ok % 128
  end
  return ok, how, code
end
M.execute = execute

-- Runs a shell command, returns its stdout, stderr and exit status.
function M.run(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local ok, _, status = execute(cmd .. " >" .. out .. " 2>" .. err)
  local function slurp(path)
    local f = assert(io.open(path)); local s = f:read("*a"); f:close(); os.remove(path); return s
  end
  return slurp(out), slurp(err), ok and 0 or status
end

-- The lines of `conntrack ARGS` (the reference binary), sorted.
function M.reference_lines(args)
  local out, err, status = M.run("conntrack " .. args)
  assert(status == 0, "conntrack " .. args .. " failed: " .. err)
  return M.sorted_lines(out)
end

function M.sorted_lines(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  table.sort(lines)
  return lines
end

-- A second namespace, alive while the returned process runs: its
-- /proc/PID/ns/net is a path conntrack.open{ netns = } accepts.
function M.spawn_netns()
  local pidfile = os.tmpname()
  assert(os.execute("unshare -n sh -c 'echo $$ > " .. pidfile .. "; exec sleep 600' >/dev/null 2>&1 &"))
  local pid
  for _ = 1, 100 do
    local f = io.open(pidfile); pid = f and f:read("*n"); if f then f:close() end
    if pid then break end
    os.execute("sleep 0.02")
  end
  os.remove(pidfile)
  assert(pid, "could not start a namespace holder")
  return {
    pid = pid,
    path = "/proc/" .. pid .. "/ns/net",
    exec = function(cmd) return M.run("nsenter --net=/proc/" .. pid .. "/ns/net " .. cmd) end,
    stop = function() os.execute("kill " .. pid .. " 2>/dev/null") end,
  }
end

-- Some flows of every kind the tests need, created through the module.
M.sample = {
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1234, orig_dport = 80,
    state = "ESTABLISHED", timeout = 120, mark = 7 },
  { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53, timeout = 60 },
  { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8, icmp_code = 0, icmp_id = 77,
    timeout = 30 },
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000, orig_dport = 443,
    state = "SYN_SENT", timeout = 100, zone = 3 },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::9", orig_sport = 1000, orig_dport = 53, timeout = 50,
    mark = 0x12 },
  { proto = "icmpv6", orig_src = "fd00::5", orig_dst = "fd00::1", icmp_type = 128, icmp_code = 0, icmp_id = 9,
    timeout = 30 },
}

function M.fill(flows)
  local ct = M.handle()
  for _, f in ipairs(flows or M.sample) do assert(ct:create(f)) end
end

return M
