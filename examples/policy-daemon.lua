-- examples/policy-daemon.lua: a small policy daemon on conntrack events.
--  * marks new SSH flows (TCP port 22) coming from outside the local prefixes,
--    so that tc or policy routing can treat them apart;
--  * caps the idle timeout of UDP flows: every SWEEP seconds, UDP flows with
--    more than UDP_IDLE seconds left get UDP_IDLE (the kernel resets the
--    timeout on each packet, so only flows that stay silent expire);
--  * logs each finished flow with its packet and byte counts (accounting);
--  * survives lost events: it logs the overflow, re-reads the table
--    (resync) and applies the SSH policy to the flows read again.
-- Settings come from the environment: LOCAL_PREFIXES (comma-separated,
-- default "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"), SSH_MARK
-- (0x22), UDP_IDLE (30), SWEEP (5), EVENT_BUFFER (bytes; the module's
-- default); or from the file SETTINGS names, NAME=value lines (as the procd
-- script writes them), which it reads again on SIGHUP (EVENT_BUFFER only
-- at start). SIGTERM or Ctrl-C stops it cleanly; with SECONDS it also stops
-- after that many seconds without an event.
--   sysctl -w net.netfilter.nf_conntrack_acct=1    # for the byte counts
--   LOCAL_PREFIXES=192.168.1.0/24 lua5.4 examples/policy-daemon.lua [SECONDS]
local conntrack = require "conntrack"

-- NAME=value lines of the SETTINGS file (quotes around a value dropped), or {}
local function settings_file()
  local file, values = os.getenv("SETTINGS"), {}
  local f = file and file ~= "" and assert(io.open(file))
  if not f then return values end
  for line in f:lines() do
    local name, value = line:match("^%s*([%u_]+)=(.-)%s*$")
    if name then values[name] = value:match([[^"(.*)"$]]) or value:match("^'(.*)'$") or value end
  end
  f:close()
  return values
end

local file = settings_file()
local function setting(name, default)
  local value = file[name] or os.getenv(name)
  if value == nil or value == "" then return default end
  return value
end
local LOCAL_PREFIXES, SSH_MARK, UDP_IDLE, SWEEP
local BUFFER = tonumber(setting("EVENT_BUFFER", ""))
local QUIET = tonumber(arg[1] or "")

io.stdout:setvbuf("line")
local function log(fmt, ...)
  print(os.date("%Y-%m-%d %H:%M:%S ") .. fmt:format(...))
end

local OUTSIDE_SSH

-- (Re)reads the settings: at start, and on SIGHUP. The policy's flows, new
-- SSH flows from outside the local prefixes not marked yet, are one filter
-- matched in C ("!" before every prefix: the source is in none of them).
local function configure()
  file = settings_file()
  LOCAL_PREFIXES = setting("LOCAL_PREFIXES", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7")
  SSH_MARK = tonumber(setting("SSH_MARK", "0x22"))
  UDP_IDLE = tonumber(setting("UDP_IDLE", "30"))
  SWEEP = tonumber(setting("SWEEP", "5"))
  local outside = {}
  for prefix in LOCAL_PREFIXES:gmatch("[^,%s]+") do outside[#outside + 1] = "!" .. prefix end
  OUTSIDE_SSH = { proto = "tcp", orig_dport = 22, orig_src = outside, mark = ("!%d"):format(SSH_MARK) }
end
configure()

---- the policies ----

local ct = assert(conntrack.open())

-- "192.0.2.1:22", "[2001:db8::1]:22"; ICMP has no ports
local function endpoint(address, port)
  if address:find(":", 1, true) then address = "[" .. address .. "]" end
  return port and address .. ":" .. port or address
end

local function mark_outside_ssh(flow)
  if not flow:match(OUTSIDE_SSH) then return end
  -- the flow may be gone by now (a port scan's probe): no error for a policy
  local ok, err = ct:update(flow, { mark = SSH_MARK })
  if ok then
    log("ssh from outside: %s -> %s marked 0x%x", endpoint(flow.orig_src, flow.orig_sport),
        endpoint(flow.orig_dst, flow.orig_dport), SSH_MARK)
  elseif not err:match("no such flow") then
    log("cannot mark %s: %s", tostring(flow), err)
  end
end

local function cap_udp_timeouts()
  local n = assert(ct:update({ proto = "udp", where = function(flow) return flow.timeout > UDP_IDLE end },
                             { timeout = UDP_IDLE }))
  if n > 0 then log("udp: %d flows now expire after %s s of silence", n, UDP_IDLE) end
end

local function account(flow)
  log("end: %s %s -> %s packets %d/%d bytes %d/%d", flow.proto, endpoint(flow.orig_src, flow.orig_sport),
      endpoint(flow.orig_dst, flow.orig_dport), flow.orig_packets or 0, flow.reply_packets or 0,
      flow.orig_bytes or 0, flow.reply_bytes or 0)
end

-- What each kind of event gets (called as dispatch calls handlers: flow, kind).
local handlers = {
  new = mark_outside_ssh,
  destroy = account,
  overflow = function(count) log("events lost (overflow %d): reading the table again", count) end,
  sync = mark_outside_ssh,          -- each flow read again after an overflow
  synced = function() log("table read again: policy applied") end,
}

-- SIGHUP reads the settings again; SIGTERM (procd's stop) and SIGINT stop.
local running, stopped_by = true, nil
function handlers.signal(name)
  if name == "HUP" then
    configure()
    log("settings read again: local %s, ssh mark 0x%x, udp idle %s s", LOCAL_PREFIXES, SSH_MARK, UDP_IDLE)
  else
    running, stopped_by = false, name
  end
end

---- the loop ----

-- Updates make UPDATE events of their own: not subscribing to them keeps
-- the daemon from hearing its own changes. The signals come as events too.
local sub = assert(ct:events{ "new", "destroy", resync = true, buffer = BUFFER,
                              signals = { "TERM", "INT", "HUP" } })
log("policy daemon: local %s, ssh mark 0x%x, udp idle %s s", LOCAL_PREFIXES, SSH_MARK, UDP_IDLE)

-- One-second waits: the sweep is due between events.
local next_sweep, idle = os.time(), 0
while running and (not QUIET or idle < QUIET) do
  local kind, flow = sub:next(1)
  if kind then
    idle = kind == "signal" and idle or 0
    handlers[kind](flow, kind)
  else
    idle = idle + 1
  end
  if running and os.time() >= next_sweep then
    cap_udp_timeouts()
    next_sweep = os.time() + SWEEP
  end
end
if stopped_by then
  log("policy daemon: SIG%s, stopping", stopped_by)
else
  log("policy daemon: %s s without events, stopping", QUIET)
end
sub:close()
ct:close()
