-- spec/helpers/uloop.lua: a stand-in for OpenWrt's uloop (libubox's Lua
-- binding, not packaged by Debian) over luasocket's socket.select, enough to
-- run examples/events-uloop.lua: init, fd_add, timer, run, cancel, ULOOP_*.
-- Like libubox, fd_add asks the object for its descriptor once, by getfd.
local socket = require "socket"

local M = { ULOOP_READ = 1, ULOOP_WRITE = 2, ULOOP_EDGE_TRIGGER = 4, ULOOP_BLOCKING = 8 }

local watches, timers, cancelled = {}, {}, false

-- Is flag (a power of two) set in flags? (no bit operators in Lua 5.1)
local function has(flags, flag)
  return math.floor(flags / flag) % 2 == 1
end

function M.init()
  watches, timers, cancelled = {}, {}, false
  return true
end

-- libubox's get_sock_fd: a number is the descriptor, else obj:getfd().
-- (Errors as libubox raises them: messages without a position.)
local function descriptor(obj)
  if type(obj) == "number" then return obj end
  local getfd = obj.getfd
  if getfd == nil then error("socket type missing 'getfd' method", 0) end
  return getfd(obj)
end

-- fd_add(obj, cb, flags): cb(obj, events) whenever the descriptor is ready.
function M.fd_add(obj, cb, flags)
  if type(flags) ~= "number" or flags == 0 then error("flags cannot be zero", 0) end
  if type(cb) ~= "function" then error("bad argument #2 to 'fd_add' (function expected)", 2) end
  local fd = descriptor(obj)
  -- what socket.select polls: the number fd_add was given, never obj again
  local watch = { obj = obj, cb = cb, flags = flags, pollable = { getfd = function() return fd end } }
  watches[watch] = true
  return { delete = function() watches[watch] = nil end }
end

-- timer(cb [, msecs]): cb() once, msecs from now (or from :set(msecs)).
function M.timer(cb, msecs)
  if type(cb) ~= "function" then error("invalid arg list", 0) end
  local timer = {}
  function timer:set(ms)
    self.due = socket.gettime() + ms / 1000
    timers[self] = true
  end
  function timer:remaining()
    if not timers[self] then return -1 end
    return math.max(0, math.floor((self.due - socket.gettime()) * 1000))
  end
  function timer:cancel() timers[self] = nil end
  timer.cb = cb
  if msecs then timer:set(msecs) end
  return timer
end

function M.cancel()
  cancelled = true
end

-- Copies of the keys, so that callbacks may add and delete while we go.
local function keys(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  return list
end

-- Runs until cancel(). (libubox would wait for ever with nothing to watch;
-- the stand-in returns, so that a broken example ends its test.)
function M.run()
  cancelled = false
  while not cancelled do
    local now, wait = socket.gettime(), nil
    for _, timer in ipairs(keys(timers)) do
      local left = math.max(0, timer.due - now)
      if wait == nil or left < wait then wait = left end
    end
    local reads, writes = {}, {}
    for _, watch in ipairs(keys(watches)) do
      if has(watch.flags, M.ULOOP_READ) then reads[#reads + 1] = watch.pollable end
      if has(watch.flags, M.ULOOP_WRITE) then writes[#writes + 1] = watch.pollable end
    end
    if wait == nil and #reads == 0 and #writes == 0 then break end
    local readable, writable = socket.select(reads, writes, wait)
    for _, watch in ipairs(keys(watches)) do
      local events = (readable[watch.pollable] and M.ULOOP_READ or 0)
                   + (writable[watch.pollable] and M.ULOOP_WRITE or 0)
      if events > 0 and watches[watch] and not cancelled then watch.cb(watch.obj, events) end
    end
    now = socket.gettime()
    for _, timer in ipairs(keys(timers)) do
      if timers[timer] and timer.due <= now and not cancelled then
        timers[timer] = nil
        timer.cb()
      end
    end
  end
  return true
end

return M
