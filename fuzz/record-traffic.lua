-- fuzz/record-traffic.lua: real loopback traffic for fuzz/record-corpus.sh
-- to record: TCP and UDP exchanges over IPv4 and IPv6, and an FTP session
-- (control connection, PORT, a data connection from port 20) for the
-- kernel's FTP helper. Usage: lua5.4 fuzz/record-traffic.lua tcp|udp|ftp ...
local socket = require "socket"

local function check(ok, err) if not ok then error(err, 2) end return ok end

-- A connection that sends both ways and closes; port: the server's;
-- to: the address the client connects to (a NAT rule's), else host.
local function tcp(host, port, to)
  local server = check(socket.bind(host, port))
  local client = check(socket.connect(to or host, port))
  local conn = check(server:accept())
  check(client:send(("x"):rep(1000) .. "\n"))
  check(conn:receive("*l"))
  check(conn:send("pong\n"))
  check(client:receive("*l"))
  client:close(); conn:close(); server:close()
end

-- A datagram each way.
local function udp(host, port)
  local new = host:find(":") and socket.udp6 or socket.udp
  local server, client = new(), new()
  check(server:setsockname(host, port))
  check(client:setpeername(host, port))
  check(client:send("ping"))
  local _, from, from_port = server:receivefrom()
  check(server:sendto("pong", from, from_port))
  check(client:receive())
  client:close(); server:close()
end

-- FTP active mode: the client announces a port with PORT; the server
-- connects to the address it reads (rewritten on the way if the control
-- connection is NATed) from port 20.
local function ftp(host)
  local server = check(socket.bind(host, 21))
  local client = check(socket.connect(host, 21))
  local control = check(server:accept())
  check(control:send("220 ready\r\n")); check(client:receive("*l"))
  -- the helper reads a command only after a line it has seen end
  check(client:send("USER anonymous\r\n")); check(control:receive("*l"))
  check(control:send("331 ok\r\n")); check(client:receive("*l"))
  local listener = check(socket.bind(host, 0))
  local _, port = listener:getsockname()
  local a, b, c, d = host:match("(%d+)%.(%d+)%.(%d+)%.(%d+)")
  check(client:send(("PORT %s,%s,%s,%s,%d,%d\r\n"):format(a, b, c, d, math.floor(port / 256), port % 256)))
  local line = check(control:receive("*l"))
  local h1, h2, h3, h4, p1, p2 = line:match("^PORT (%d+),(%d+),(%d+),(%d+),(%d+),(%d+)")
  check(control:send("200 PORT ok\r\n")); check(client:receive("*l"))
  local data = socket.tcp()
  data:setoption("reuseaddr", true)
  check(data:bind(host, 20))
  check(data:connect(("%s.%s.%s.%s"):format(h1, h2, h3, h4), p1 * 256 + p2))
  local incoming = check(listener:accept())
  check(data:send("file contents\n")); check(incoming:receive("*l"))
  data:close(); incoming:close(); listener:close()
  check(client:send("QUIT\r\n")); check(control:receive("*l"))
  check(control:send("221 bye\r\n")); check(client:receive("*l"))
  client:close(); control:close(); server:close()
  return line
end

local what = arg[1]
if what == "tcp" then tcp(arg[2], tonumber(arg[3]), arg[4])
elseif what == "udp" then udp(arg[2], tonumber(arg[3]))
elseif what == "ftp" then io.stderr:write("server read: ", ftp(arg[2]), "\n")
else error("usage: record-traffic.lua tcp HOST PORT [TO] | udp HOST PORT | ftp HOST") end
