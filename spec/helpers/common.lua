-- spec/helpers/common.lua: what many specs need, written once: the error a
-- call raises, a flow's line without its clock, and what a test changed in
-- the shared namespace, undone after it.
local M = {}

-- The error f(...) raises (the test fails if it raises none).
function M.error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

-- A flow's line (or the flow) with its timeout, which counts down while a
-- test reads the table twice, as T: in conntrack's default, extended and XML
-- formats and in `-o save' (-t N).
function M.untimed(line)
  return (tostring(line):gsub("^(.-%a[%w%-]*%s+%d+%s+)%d+", "%1T"):gsub("<timeout>%d+", "<timeout>T")
                        :gsub(" %-t %d+ ", " -t T "))
end

-- What a test changed, undone by M.undo_all (in an after_each of the spec),
-- last registered first, each step even if one before it failed; the first
-- failure is raised afterwards. (busted keeps only the last finally() of a
-- test, and a test may need several.)
local steps = {}
function M.undo(fn) steps[#steps + 1] = fn end
function M.undo_all()
  local todo, first = steps, nil
  steps = {}
  for i = #todo, 1, -1 do
    local ok, err = pcall(todo[i])
    if not ok and first == nil then first = err end
  end
  if first ~= nil then error(first, 0) end
end

-- The cases of a family of tests (one test per case), each with the tag its
-- test's name ends with: the first case none, every other " #long", which
-- `make check` leaves out (`make test` runs them all).
function M.family(list)
  local i = 0
  return function()
    i = i + 1
    if list[i] ~= nil then return list[i], i == 1 and "" or " #long" end
  end
end


-- UDP datagrams over loopback from a socket of their own, bound to `from`
-- (default 127.0.0.1): `count` of `size` bytes to 127.0.0.1, answered by
-- `replies` of `reply_size`. Returns the client's port and the server's.
-- (A datagram is its payload + 8 (UDP) + 20 (IPv4) bytes.)
function M.udp_exchange(count, size, replies, reply_size, from)
  local socket = require "socket"
  from = from or "127.0.0.1"
  local server = assert(socket.udp())
  assert(server:setsockname("127.0.0.1", 0))
  local _, server_port = server:getsockname()
  local client = assert(socket.udp())
  assert(client:setsockname(from, 0))
  local _, client_port = client:getsockname()
  server:settimeout(2)
  client:settimeout(2)
  for _ = 1, count do
    assert(client:sendto(("x"):rep(size), "127.0.0.1", server_port))
    assert(server:receivefrom())
  end
  for _ = 1, replies or 0 do
    assert(server:sendto(("y"):rep(reply_size), from, client_port))
    assert(client:receivefrom())
  end
  client:close(); server:close()
  return tonumber(client_port), tonumber(server_port)
end

return M
