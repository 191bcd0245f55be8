-- conntrack/ctl/events.lua: -E. Events are printed as conntrack prints
-- them, one flushed line each, and handed to the --handler file's functions;
-- a handler's error is reported with its traceback and the stream goes on
-- (--strict stops it). Lost events are reported with their count. Ctrl-C
-- and SIGTERM end the stream as they end conntrack's: closing tag, then the
-- summary, exit status 0; if Ctrl-C interrupted the --where expression (one
-- that never ends, say), the exit status is 130, as for any other command.
-- (SIGTERM is read from the subscription, blocked meanwhile; SIGINT stays
-- lua.c's, which can interrupt Lua code that runs.)

local compat = require "conntrack.ctl.compat"
local errors = require "conntrack.ctl.errors"
local output = require "conntrack.ctl.output"

local M = {}

local HANDLER_KEYS = { new = true, update = true, destroy = true, overflow = true, sync = true, synced = true }

-- Loads a --handler file: a chunk that returns a table of functions.
function M.load_handler(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then errors.failure(("cannot load handler: %s"):format(err)) end
  compat.interruptible(chunk)
  local ok, h = xpcall(chunk, debug.traceback)
  if not ok then errors.failure(("handler %s failed to load: %s"):format(path, tostring(h))) end
  if type(h) ~= "table" then
    errors.failure(("handler %s must return a table of functions, got %s"):format(path, type(h)))
  end
  for k, v in pairs(h) do
    if not HANDLER_KEYS[k] then
      errors.failure(("handler %s: unknown event '%s' (new, update, destroy, overflow, sync, synced)")
        :format(path, tostring(k)))
    end
    if type(v) ~= "function" then
      errors.failure(("handler %s: '%s' must be a function, got %s"):format(path, k, type(v)))
    end
  end
  return h
end

-- ---- the program behind a [USERSPACE] event, as conntrack finds it ----

local function read_comm(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local line = f:read("*l")
  f:close()
  return line and line:match("^%d+ %(([^)]*)")
end

-- Does pid hold socket:[inode]? Its fdinfo files tell each descriptor's
-- inode, which pure Lua can read where it cannot read a link.
local function holds_socket(pid, inode)
  local status = io.open("/proc/" .. pid .. "/status")
  if not status then return false end
  local size = tonumber(status:read("*a"):match("\nFDSize:%s*(%d+)")) or 256
  status:close()
  for fd = 0, size - 1 do
    local f = io.open("/proc/" .. pid .. "/fdinfo/" .. fd)
    if f then
      local ino = f:read("*a"):match("\nino:%s*(%d+)")
      f:close()
      if ino == inode then return true end
    end
  end
  return false
end

-- The pid holding socket:[inode]: first the process whose pid is the port
-- id (the usual case, checked at once, before a short-lived sender exits),
-- then any other, by the links in /proc/*/fd when LuaFileSystem is there
-- (no shell: the command line starts no other program).
local has_lfs, lfs = pcall(require, "lfs")

local function pid_of_socket(portid, inode)
  if tonumber(portid) > 1 and holds_socket(portid, inode) then return portid end
  if not has_lfs then return nil end
  local target = "socket:[" .. inode .. "]"
  for pid in lfs.dir("/proc") do
    if pid:match("^%d+$") and tonumber(pid) > 1 then
      local ok, fds, dir = pcall(lfs.dir, "/proc/" .. pid .. "/fd")
      if ok then
        for fd in fds, dir do
          if lfs.symlinkattributes("/proc/" .. pid .. "/fd/" .. fd, "target") == target then return pid end
        end
      end
    end
  end
  return nil
end

-- progname(portid): the command name of the process behind a port id, as
-- conntrack finds it through the netlink sockets of the namespace; nil if it
-- is gone. table: that list (/proc/net/netlink, or /proc/PID/net/netlink
-- for the namespace of PID).
function M.prognames(table_path)
  local cache = {}
  return function(portid)
    local f = io.open(table_path or "/proc/net/netlink")
    if not f then return nil end
    local inode
    for line in f:lines() do
      local proto, pid, ino = line:match("^%x+%s+(%d+)%s+(%d+)%s+%x+%s+%d+%s+%d+%s+%x+%s+%d+%s+%d+%s+(%d+)")
      if proto == "12" and pid == portid then inode = ino; break end
    end
    f:close()
    if not inode then return nil end
    local key = portid .. ":" .. inode
    if cache[key] == nil then
      local pid = pid_of_socket(portid, inode)
      cache[key] = pid and read_comm(pid) or false
    end
    return cache[key] or nil
  end
end

-- ---- the stream ----

local KINDS = { NEW = "new", UPDATES = "update", DESTROY = "destroy" }

local interrupted = errors.interrupted

-- The message handler of user code: Ctrl-C passes through untouched; an
-- error gets the traceback of the user's frames only.
local function traceback(e)
  if interrupted(e) then return e end
  local tb = debug.traceback(tostring(e), 2)
  return (tb:gsub("\n\t%[C%]: in function 'xpcall'.*$", ""))
end

-- Stops the stream (with --strict) or lets it go on after an error.
local Stop = {}

-- run(cmd, ct, ctx, filter): the stream of the flows filter selects (nil:
-- none can match), as commands.filter builds it.
function M.run(cmd, ct, ctx, filter)
  local err = output.err()
  local handler = cmd.handler and M.load_handler(cmd.handler) or {}
  local kinds = {}
  if cmd.events and not cmd.events.ALL then
    for name, kind in pairs(KINDS) do
      if cmd.events[name] then kinds[#kinds + 1] = kind end
    end
  end
  local function report(what, e)
    err:write(output.PREFIX, what, ": ", tostring(e), "\n")
    if cmd.strict then error(Stop, 0) end
  end

  local where_interrupted = false
  if filter and filter.where then
    -- a failing --where drops the event and says why, as a handler's error does
    local pred = filter.where
    filter.where = function(flow)
      local ok, r = compat.xpcall(pred, traceback, flow)
      if ok then return r end
      if interrupted(r) then
        where_interrupted = true
        error(r, 0)
      end
      report("--where failed", r)
      return false
    end
  end
  local opts = { filter = filter, buffer = cmd.buffer_size, resync = cmd.resync or nil, signals = { "TERM" } }
  for i, k in ipairs(kinds) do opts[i] = k end
  local sub, msg, errno = ct:events(opts)
  if not sub then errors.failed("CT_EVENT", errno, msg) end
  if cmd.buffer_size then
    err:write(("NOTICE: Netlink socket buffer size has been set to %d bytes.\n"):format(sub:buffer()))
  end

  local printer = output.printer(cmd, { command = "CT_EVENT", flush = true })
  -- in another namespace, its list of sockets is known through a process in it
  local pid = cmd.netns and cmd.netns:match("^/proc/(%d+)/ns/net$")
  local progname = (not cmd.netns or pid) and M.prognames(pid and ("/proc/" .. pid .. "/net/netlink")) or nil
  local function call(name, a)
    local fn = handler[name]
    if not fn then return end
    local ok, e = compat.xpcall(fn, traceback, a, ct)
    if not ok then
      if interrupted(e) then error(e, 0) end
      report(("handler '%s' failed"):format(name), e)
    end
  end

  local status = 0
  local ok, e = pcall(function()
    while true do
      -- a short wait, so that Ctrl-C is seen even when no event comes
      local kind, flow, t = sub:next(0.25)
      if kind == "signal" then
        break
      elseif kind == "overflow" then
        err:write("WARNING: We have hit ENOBUFS! We are losing events.\n" ..
                  "This message means that the current netlink socket buffer size is too small.\n" ..
                  "Please, check --buffer-size in conntrack(8) manpage.\n")
        err:write(output.PREFIX, ("%d overflows: events were lost%s\n")
          :format(flow, cmd.resync and ", the table is read again" or ""))
        call("overflow", flow)
      elseif kind == "sync" then
        -- the table read again: shown as it is now, not counted as events
        printer.line(flow, { kind = "sync", time = t })
        call("sync", flow)
      elseif kind == "synced" then
        err:write(output.PREFIX, "the table has been read again after lost events\n")
        call("synced", nil)
      elseif kind then
        -- the sender is looked for first: a short-lived one is soon gone
        local portid = output.portid(flow)
        local name = portid and progname and progname(portid)
        printer.line(flow, { kind = kind, time = t, portid = portid, progname = name })
        call(kind, flow)
      end
    end
  end)
  if not ok and e == Stop then
    status = 1
  elseif not ok and not interrupted(e) then
    error(e, 0)
  end
  printer.finish()
  output.summary(cmd, "%d flow events have been shown.", printer.count)
  local lost = sub:overflows()
  if lost > 0 then
    output.message(("%d overflows: events were lost"):format(lost))
  end
  sub:close()
  return where_interrupted and 130 or status
end

return M
