-- examples/live-log.lua: a live log of one host's flows, one line per event
-- with its time in front, as `conntrack -E -o timestamp --orig-src ADDRESS`
-- prints it. ADDRESS may be a prefix ("10.0.0.0/24"). With SECONDS, it ends
-- after that many seconds without an event; without, it runs until Ctrl-C.
--   lua5.4 examples/live-log.lua 192.168.1.104 [SECONDS]
local conntrack = require "conntrack"

local address, quiet = arg[1], tonumber(arg[2])
if not address or (arg[2] and not quiet) then
  io.stderr:write("usage: live-log.lua ADDRESS[/PREFIX] [SECONDS]\n")
  os.exit(2)
end

local ct = assert(conntrack.open())
-- The filter goes into the socket: other hosts' events never wake us.
local sub = assert(ct:events{ filter = { orig_src = address } })
io.stdout:setvbuf("line")            -- each line out as it happens, even into a pipe

-- "[1700000000.123456]\t" as conntrack's -o timestamp writes it; `time` is
-- when the event was received.
local function stamp(time)
  local sec = math.floor(time)
  return ("[%d.%06d]\t"):format(sec, math.floor((time - sec) * 1e6))
end

-- Short waits, so that Ctrl-C is seen even while the host is silent (the
-- interpreter acts on it only between calls); `idle` counts the quiet time.
local TICK, idle = 0.25, 0
while not quiet or idle < quiet do
  local kind, flow, time = sub:next(TICK)
  if not kind then
    idle = idle + TICK
  elseif kind == "overflow" then
    -- the kernel dropped events (`flow` is then the running count): say so, go on
    io.stderr:write(("live-log: events lost (overflow %d)\n"):format(flow))
  else
    idle = 0
    print(stamp(time) .. tostring(flow))   -- tostring: the line conntrack -E prints
  end
end
sub:close()
ct:close()
