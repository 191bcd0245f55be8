-- spec/helpers/ftp.lua: real expectations, made by the kernel's own ftp
-- helper. An nft table assigns a `ct helper` of type "ftp" to TCP port 21
-- (and, with `ct state`, makes loopback tracked); a control connection on
-- 127.0.0.1:21 sends `USER x` and then `PORT 127,0,0,1,P1,P2` (the helper
-- only reads lines after a newline it has seen), and the kernel expects a
-- data connection to port P1 * 256 + P2.
local ns = require "spec.helpers.ns"
local socket = require "socket"

local M = {}

M.TABLE = "lct_ftp"
local RULES = [[
table inet lct_ftp {
  ct helper ftp_helper { type "ftp" protocol tcp; }
  chain pre { type filter hook prerouting priority 0; tcp dport 21 ct helper set "ftp_helper"; ct state new,established,related accept; }
  chain out { type filter hook output priority 0; tcp dport 21 ct helper set "ftp_helper"; ct state new,established,related accept; }
}
]]

-- Loads the table (in the namespace of exec, a shell runner: ns.run by default).
function M.setup(exec)
  exec = exec or ns.run
  local path = os.tmpname()
  local f = assert(io.open(path, "w")); f:write(RULES); f:close()
  exec("nft delete table inet " .. M.TABLE .. " 2>/dev/null")
  local _, err, status = exec("nft -f " .. path)
  os.remove(path)
  assert(status == 0, "nft -f: " .. err)
end

function M.teardown(exec)
  (exec or ns.run)("nft delete table inet " .. M.TABLE .. " 2>/dev/null")
end

-- A control connection whose PORT command makes an expectation of data
-- port p1 * 256 + p2; from source port sport if given. Returns { sport,
-- dport (the expected port), close() }; the expectation lives while its
-- master flow does.
function M.session(p1, p2, sport)
  local server = assert(socket.bind("127.0.0.1", 21))
  local client = (socket.tcp4 or socket.tcp)()
  local ok, err = pcall(function()
    assert(client:setoption("reuseaddr", true))
    if sport then assert(client:bind("127.0.0.1", sport)) end
    assert(client:connect("127.0.0.1", 21))
  end)
  local peer = ok and assert(server:accept())
  server:close()
  if not ok then client:close(); error(err, 0) end
  assert(client:send("USER x\r\n"))
  assert(peer:receive("*l"))
  assert(client:send(("PORT 127,0,0,1,%d,%d\r\n"):format(p1, p2)))
  assert(peer:receive("*l"))
  local _, port = client:getsockname()
  return {
    sport = tonumber(port),
    dport = p1 * 256 + p2,
    close = function() client:close(); peer:close() end,
  }
end

return M
