-- spec/diff_spec.lua: flows printed as conntrack-tools prints them. The table
-- is filled with flows of every kind (created by the module, by `conntrack -I`
-- and by real loopback traffic); every line the module prints must be the
-- line `conntrack -L [-o ...]` prints, and every field must say what the line says.
local ns = require "spec.helpers.ns"

local PROTO_NUMBERS = { tcp = 6, udp = 17, udplite = 136, icmp = 1, icmpv6 = 58, sctp = 132, dccp = 33, gre = 47 }

-- Flows the module creates: both families, every protocol, several TCP
-- states, zones, marks, a status flag, and NAT told by the reply tuple.
local MODULE_FLOWS = {
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1001, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, mark = 7, status = "ASSURED" },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1002, orig_dport = 80,
    state = "SYN_SENT", timeout = 3000 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1003, orig_dport = 80,
    state = "SYN_RECV", timeout = 3000 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1004, orig_dport = 80,
    state = "FIN_WAIT", timeout = 3000 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1005, orig_dport = 80,
    state = "CLOSE_WAIT", timeout = 3000 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1006, orig_dport = 80,
    state = "LAST_ACK", timeout = 3000 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1007, orig_dport = 80,
    state = "TIME_WAIT", timeout = 3000, zone = 5 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1008, orig_dport = 80,
    state = "CLOSE", timeout = 3000, mark = 0xffffffff, zone = 65535 },
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000, orig_dport = 443,
    state = "ESTABLISHED", timeout = 3000, zone = 3, mark = 0x12 },
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40001, orig_dport = 443,
    state = "SYN_SENT", timeout = 3000 },
  { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53,
    timeout = 3000, status = "ASSURED" },
  -- (a zone per direction: the kernel refuses different orig and reply zones on one flow)
  { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5354, orig_dport = 53,
    timeout = 3000, orig_zone = 4 },
  { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5355, orig_dport = 53,
    timeout = 3000, reply_zone = 6 },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::9", orig_sport = 1000, orig_dport = 53,
    timeout = 3000, mark = 1 },
  { proto = "udplite", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 7, orig_dport = 8,
    timeout = 3000 },
  { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8, icmp_code = 0, icmp_id = 77,
    timeout = 3000 },
  { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 13, icmp_code = 0, icmp_id = 78,
    timeout = 3000 },
  { proto = "icmpv6", orig_src = "fd00::5", orig_dst = "fd00::1", icmp_type = 128, icmp_code = 0, icmp_id = 9,
    timeout = 3000 },
  { proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 3868, orig_dport = 3868,
    state = "ESTABLISHED", orig_vtag = 5, reply_vtag = 9, timeout = 3000 },
  { proto = "sctp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2905, orig_dport = 2905,
    state = "COOKIE_WAIT", timeout = 3000 },
  { proto = "gre", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 0x4d3, orig_dport = 0x35,
    timeout = 3000 },
  { proto = "gre", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 1, orig_dport = 2, timeout = 3000 },
  { proto = 254, orig_src = "10.0.0.1", orig_dst = "10.0.0.2", timeout = 3000 },
  { proto = 254, orig_src = "fd00::1", orig_dst = "fd00::2", timeout = 3000, mark = 9 },
  -- NAT: SNAT shows in the reply destination, DNAT in the reply source.
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "10.9.0.1", orig_sport = 2001, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dst = "203.0.113.1" },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "10.9.0.1", orig_sport = 2002, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dst = "203.0.113.1", reply_dport = 61002 },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "10.9.0.1", orig_sport = 2003, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dport = 61003 },
  { proto = "udp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2004, orig_dport = 53,
    timeout = 3000, reply_src = "192.168.1.53" },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2005, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_src = "192.168.1.80", reply_sport = 8080 },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2006, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_sport = 8080 },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2007, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_src = "192.168.1.80", reply_sport = 8081,
    reply_dst = "203.0.113.9", reply_dport = 40007 },
  -- IPv6 translations differ in the first 32 bits too: conntrack(8) compares only those
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2008, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dst = "fd01::1" },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2009, orig_dport = 53,
    timeout = 3000, reply_src = "fd02::53", reply_sport = 5353 },
}

-- Flows `conntrack -I` creates. (-u must come before --mark: conntrack 1.4.7
-- ORs a later status into the mark.)
local REFERENCE_FLOWS = {
  "-p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 10 --dport 20 --state SYN_RECV -t 3000 -u ASSURED --mark 3 --zone 4",
  "-p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 11 --dport 20 --state TIME_WAIT -t 3000",
  "-p tcp -s fd10::1 -d fd10::2 --sport 12 --dport 22 --state ESTABLISHED -t 3000 --mark 0x10",
  "-p udp -s 10.1.0.1 -d 10.1.0.2 --sport 13 --dport 53 -t 3000 --orig-zone 4",
  "-p udp -s 10.1.0.1 -d 10.1.0.2 --sport 14 --dport 53 -t 3000 --reply-zone 6",
  "-p udp -s fd10::1 -d fd10::2 --sport 15 --dport 53 -t 3000 -u ASSURED",
  "-p icmp -s 10.1.0.1 -d 10.1.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 5 -t 3000",
  "-p icmpv6 -s fd10::1 -d fd10::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 6 -t 3000",
  "-p sctp -s fd10::1 -d fd10::2 --sport 16 --dport 17 --state ESTABLISHED --orig-vtag 7 --reply-vtag 8 -t 3000",
  "-p gre -s fd10::1 -d fd10::2 --srckey 5 --dstkey 6 -t 3000",
  "-p 254 -s 10.1.0.1 -d 10.1.0.2 -t 3000",
  -- translated flows: the reply tuple given whole
  "-p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 18 --dport 80 -r 192.168.0.5 -q 198.51.100.1"
    .. " --reply-port-src 8080 --reply-port-dst 40018 --state ESTABLISHED -t 3000",
  "-p udp -s fd10::1 -d fd10::2 --sport 19 --dport 53 -r fd11::5 -q fd10::1"
    .. " --reply-port-src 5353 --reply-port-dst 19 -t 3000",
}

local NFT_TABLE = "lct_diff"

-- what a test changes in the shared namespace is undone after it
local common = require "spec.helpers.common"

local function sh(cmd)
  local out, err, status = ns.run(cmd)
  assert(status == 0, cmd .. " failed: " .. err)
  return out
end

local function sysctl(name, value)
  local path = "/proc/sys/net/netfilter/" .. name
  local f = assert(io.open(path)); local old = f:read("*l"); f:close()
  sh(("sysctl -qw net.netfilter.%s=%s"):format(name, value))
  common.undo(function() sh(("sysctl -qw net.netfilter.%s=%s"):format(name, old)) end)
end

local function fill_module()
  local ct = ns.handle()
  for _, fields in ipairs(MODULE_FLOWS) do
    local ok, err = ct:create(fields)
    assert(ok, ("create %s %s: %s"):format(fields.proto, fields.orig_src, tostring(err)))
  end
end

local function fill_reference()
  for _, args in ipairs(REFERENCE_FLOWS) do sh("conntrack -I " .. args) end
end

-- Real traffic over lo: a TCP exchange (closed over IPv4, left open over
-- IPv6), a UDP request/response and an unanswered datagram, over both
-- families. Loopback is tracked only once a rule uses `ct state`.
local function fill_traffic()
  local ok, socket = pcall(require, "socket")
  assert(ok, "real traffic needs luasocket for Lua 5.4 (Debian package lua-socket)")
  sh("nft add table inet " .. NFT_TABLE)
  common.undo(function() sh("nft delete table inet " .. NFT_TABLE) end)
  sh("nft add chain inet " .. NFT_TABLE .. " out '{ type filter hook output priority 0; }'")
  sh("nft add rule inet " .. NFT_TABLE .. " out ct state new,established,related accept")

  local open = {}
  common.undo(function() for _, s in ipairs(open) do s:close() end end)
  for _, host in ipairs{ "127.0.0.1", "::1" } do
    local v6 = host:find(":") ~= nil
    local server = assert(socket.bind(host, 0))
    local _, port = server:getsockname()
    local client = assert(v6 and socket.tcp6() or socket.tcp())
    assert(client:connect(host, port))
    local peer = assert(server:accept())
    server:close()
    assert(client:send("ping\n")); assert.equal("ping", (peer:receive()))
    assert(peer:send("pong\n")); assert.equal("pong", (client:receive()))
    if v6 then
      open[#open + 1] = client; open[#open + 1] = peer
    else
      client:close(); peer:close()
    end

    local a = assert(v6 and socket.udp6() or socket.udp())
    local b = assert(v6 and socket.udp6() or socket.udp())
    assert(a:setsockname(host, 0)); assert(b:setsockname(host, 0))
    assert(a:settimeout(2)); assert(b:settimeout(2))
    local bhost, bport = b:getsockname()
    assert(a:sendto("ping", bhost, bport))
    local data, from, fromport = b:receivefrom()
    assert.equal("ping", data)
    assert(b:sendto("pong", from, fromport))
    assert.equal("pong", (a:receive()))
    assert(a:sendto("lost", host, 9))
    a:close(); b:close()
  end
  -- let the last ACKs and ICMP errors settle before the table is read twice
  socket.sleep(0.3)
end

-- Everything at once, optionally with counters and timestamps on (both are
-- attached to a flow when it is created, so they are switched on first).
local function fill_all(opts)
  if opts and opts.accounting then
    sysctl("nf_conntrack_acct", 1)
    sysctl("nf_conntrack_timestamp", 1)
  end
  fill_module()
  fill_reference()
  fill_traffic()
end

---- comparing lines ----

-- The two numbers that move while the table is read twice: the timeout
-- counts down, delta-time counts up. Each is cut out of the line (and kept)
-- so the rest of the line can be compared exactly.
local function split_clocks(line, extended)
  local timeout, delta
  local head = extended and "^(%S+%s+%d+%s+%S+%s+%d+%s+)(%d+)" or "^(%S+%s+%d+%s+)(%d+)"
  local function cut_timeout(prefix, t) timeout = tonumber(t); return prefix .. "<timeout>" end
  local function cut_delta(prefix, d, suffix) delta = tonumber(d); return prefix .. "<delta>" .. suffix end
  if line:sub(1, 1) == "<" then
    line = line:gsub("(<timeout>)(%d+)(</timeout>)", function(a, t, b) timeout = tonumber(t); return a .. b end)
    line = line:gsub("(<deltatime>)(%d+)(</deltatime>)", cut_delta)
  else
    line = line:gsub(head, cut_timeout, 1)
    line = line:gsub("(delta%-time=)(%d+)", function(p, d) return cut_delta(p, d, "") end)
  end
  assert(timeout, "no timeout found in: " .. line)
  return line, timeout, delta
end

-- ours were read first: their timeouts are as large or up to 2 s larger,
-- their delta-times as large or up to 2 s smaller; all else is identical.
local function assert_same_lines(ours, theirs, extended)
  local function index(lines)
    local keys, clocks = {}, {}
    for _, line in ipairs(lines) do
      local key, timeout, delta = split_clocks(line, extended)
      keys[#keys + 1] = key
      clocks[key] = clocks[key] or {}
      table.insert(clocks[key], { timeout = timeout, delta = delta or 0 })
    end
    table.sort(keys)
    return keys, clocks
  end
  local our_keys, our_clocks = index(ours)
  local their_keys, their_clocks = index(theirs)
  assert.same(their_keys, our_keys)
  for key, list in pairs(our_clocks) do
    local other = their_clocks[key]
    local by_timeout = function(a, b) return a.timeout < b.timeout end
    table.sort(list, by_timeout); table.sort(other, by_timeout)
    for i, c in ipairs(list) do
      local drift, ddrift = c.timeout - other[i].timeout, other[i].delta - c.delta
      assert(drift >= 0 and drift <= 2, ("timeout %d, conntrack shows %d: %s"):format(c.timeout, other[i].timeout, key))
      assert(ddrift >= 0 and ddrift <= 2, ("delta-time %d, conntrack shows %d: %s"):format(c.delta, other[i].delta, key))
    end
  end
  assert.is_true(#our_keys > 0)
end

-- The module's lines first, then conntrack's.
local function module_lines(format)
  local lines = {}
  for flow in ns.handle():dump() do
    lines[#lines + 1] = format == nil and tostring(flow) or flow:format(format)
  end
  return lines
end

local function reference_lines(args, keep)
  local lines = {}
  for _, line in ipairs(ns.reference_lines("-L " .. args)) do
    if not keep or line:find(keep) then lines[#lines + 1] = line end
  end
  return lines
end

local function assert_format_matches(format)
  local ours = module_lines(format)
  local args = format and "-o " .. format or ""
  assert_same_lines(ours, reference_lines(args), format and format:find("extended") ~= nil)
end

---- reading the fields off a line ----

local TUPLE_KEYS = { src = true, dst = true, sport = true, dport = true, type = true, code = true, id = true,
                     srckey = true, dstkey = true, packets = true, bytes = true }

-- A line of `conntrack -L -o extended,id[,ktimestamp]` as a table: the
-- family and protocol, timeout, state, the orig and reply tuples, the
-- bracketed flags, and every key=value after the tuples.
local function parse_line(line)
  local r = { orig = {}, reply = {}, flags = {} }
  line = line:gsub("%[(%a+)=([^%]]*)%]", function(k, v) r[k] = v; return "" end)
  local l3, l4, l4num, timeout, rest = line:match("^(%S+)%s+%d+%s+(%S+)%s+(%d+)%s+(%d+)%s+(.*)$")
  assert(l3, "unexpected line: " .. line)
  r.family, r.protoname, r.protonum, r.timeout = l3, l4, tonumber(l4num), tonumber(timeout)
  local section
  for word in rest:gmatch("%S+") do
    local key, value = word:match("^([%w%-]+)=(.*)$")
    local flag = word:match("^%[(%u+)%]$")
    if key == "src" then section = section == nil and r.orig or r.reply end
    if flag then
      r.flags[flag] = true
      if section == r.reply then section = r end
    elseif key and TUPLE_KEYS[key] and section ~= r then
      section[key] = value
    elseif key then
      r[key] = value
      if section == r.reply and key ~= "zone-reply" then section = r end
    else
      assert(section == nil and r.state == nil, "unexpected word " .. word .. " in: " .. line)
      r.state = word
    end
  end
  return r
end

local function num(s) return s and assert(tonumber(s), s) end

-- What the line says each field is; timeout and timestamps are compared apart.
local function fields_of_line(r)
  local o, p = r.orig, r.reply
  local has_ports = o.sport ~= nil or o.srckey ~= nil
  return {
    family = r.family, proto = r.protonum, state = r.state,
    orig_src = o.src, orig_dst = o.dst, reply_src = p.src, reply_dst = p.dst,
    orig_sport = num(o.sport or o.srckey), orig_dport = num(o.dport or o.dstkey),
    reply_sport = num(p.sport or p.srckey), reply_dport = num(p.dport or p.dstkey),
    icmp_type = num(o.type), icmp_code = num(o.code), icmp_id = num(o.id),
    orig_packets = num(o.packets), orig_bytes = num(o.bytes),
    reply_packets = num(p.packets), reply_bytes = num(p.bytes),
    mark = num(r.mark),
    -- a zone conntrack does not print is the default zone 0
    zone = num(r.zone) or 0, orig_zone = num(r["zone-orig"]) or 0, reply_zone = num(r["zone-reply"]) or 0,
    use = num(r.use), id = num(r.id),
    assured = r.flags.ASSURED == true, seen_reply = not r.flags.UNREPLIED,
    -- a translation is a reply tuple other than the inverse: address or port
    snat = p.dst ~= o.src or (has_ports and p.dport ~= o.sport) or (o.srckey ~= nil and p.dstkey ~= o.srckey),
    dnat = p.src ~= o.dst or (has_ports and p.sport ~= o.dport) or (o.dstkey ~= nil and p.srckey ~= o.dstkey),
  }
end

local function fields_of_flow(flow)
  return {
    family = flow.family, proto = PROTO_NUMBERS[flow.proto] or flow.proto, state = flow.state,
    orig_src = flow.orig_src, orig_dst = flow.orig_dst, reply_src = flow.reply_src, reply_dst = flow.reply_dst,
    orig_sport = flow.orig_sport, orig_dport = flow.orig_dport,
    reply_sport = flow.reply_sport, reply_dport = flow.reply_dport,
    icmp_type = flow.icmp_type, icmp_code = flow.icmp_code, icmp_id = flow.icmp_id,
    orig_packets = flow.orig_packets, orig_bytes = flow.orig_bytes,
    reply_packets = flow.reply_packets, reply_bytes = flow.reply_bytes,
    mark = flow.mark, zone = flow.zone, orig_zone = flow.orig_zone, reply_zone = flow.reply_zone,
    use = flow.use, id = flow.id,
    assured = flow.status.ASSURED == true, seen_reply = flow.status.SEEN_REPLY == true,
    snat = flow.snat, dnat = flow.dnat,
  }
end

-- The flows of one dump and conntrack's lines for them, paired by id.
local function flows_and_lines(args)
  local flows = {}
  for flow in ns.handle():dump() do flows[#flows + 1] = flow end
  local by_id, lines = {}, reference_lines(args)
  for _, line in ipairs(lines) do
    local r = parse_line(line)
    by_id[num(r.id)] = r
  end
  local now = os.time()
  assert.equal(#flows, #lines)
  return flows, by_id, now
end

-- ctime(3), as conntrack prints [start=...]
local CTIME = "%a %b %e %H:%M:%S %Y"

local function assert_fields_agree(opts)
  local flows, by_id, now = flows_and_lines("-o extended,id" .. (opts.timestamps and ",ktimestamp" or ""))
  assert.is_true(#flows > 0)
  for _, flow in ipairs(flows) do
    local r = by_id[flow.id]
    assert(r, "conntrack does not show the flow " .. tostring(flow))
    assert.same(fields_of_line(r), fields_of_flow(flow))
    assert(flow.timeout >= r.timeout and flow.timeout <= r.timeout + 2,
      ("timeout %d, conntrack shows %d: %s"):format(flow.timeout, r.timeout, tostring(flow)))
    if opts.timestamps then
      assert.is_number(flow.start)
      assert.equal(r.start, os.date(CTIME, math.floor(flow.start / 1e9)))
      assert.equal(r.stop, flow.stop and os.date(CTIME, math.floor(flow.stop / 1e9)))
      local delta = now - math.floor(flow.start / 1e9)
      assert(delta >= num(r["delta-time"]) and delta <= num(r["delta-time"]) + 2,
        ("delta-time %s, expected about %d: %s"):format(r["delta-time"], delta, tostring(flow)))
    else
      assert.is_nil(flow.start)
      assert.is_nil(r.start)
    end
  end
end

-- The ids `conntrack -L ARGS` shows (the id is the last key of a -o id line).
local function reference_ids(args)
  local ids = {}
  for _, line in ipairs(reference_lines(args .. " -o id")) do
    ids[#ids + 1] = assert(tonumber(line:match("id=(%d+)$")), line)
  end
  table.sort(ids)
  return ids
end

before_each(function()
  ns.fresh()
end)

after_each(function()
  common.undo_all()
  ns.fresh()
end)

describe("tostring(flow)", function()
  it("prints flows the module created as conntrack -L prints them #diff", function()
    fill_module()
    assert_format_matches(nil)
  end)

  it("prints flows conntrack -I created as conntrack -L prints them #diff", function()
    fill_reference()
    assert_format_matches(nil)
  end)

  it("prints flows of real loopback traffic as conntrack -L prints them #diff", function()
    fill_traffic()
    local lines = module_lines(nil)
    -- open and closed TCP, answered and unanswered UDP, over both families
    local seen = table.concat(lines, "\n")
    for _, what in ipairs{ "ESTABLISHED src=::1 .* %[ASSURED%]", "TIME_WAIT src=127.0.0.1 .* %[ASSURED%]",
                           "udp .* src=127.0.0.1 .* dport=9 %[UNREPLIED%]", "udp .* src=::1 .* dport=9 %[UNREPLIED%]",
                           "udp .* src=::1 dst=::1 sport=%d+ dport=%d+ src=" } do
      assert(seen:find(what), "no flow like '" .. what .. "' in:\n" .. seen)
    end
    assert_same_lines(lines, reference_lines(""), false)
  end)

  it("prints counters and delta-time as conntrack -L does with accounting and timestamps on #diff", function()
    fill_all{ accounting = true }
    local lines = module_lines(nil)
    assert.matches("packets=%d+ bytes=%d+", lines[1])
    assert.matches("delta%-time=%d+", lines[1])
    assert_same_lines(lines, reference_lines(""), false)
  end)
end)

describe("flow:format", function()
  for format, long in common.family({ "extended", "id", "extended,id", "ktimestamp", "extended,id,ktimestamp" }) do
    it(("prints what conntrack -L -o %s prints #diff%s"):format(format, long), function()
      fill_all()
      assert_format_matches(format)
    end)

    it(("prints what conntrack -L -o %s prints with accounting and timestamps on #diff%s"):format(format, long),
       function()
      fill_all{ accounting = true }
      assert_format_matches(format)
    end)
  end

  it("prints the <flow> lines of conntrack -L -o xml #diff", function()
    fill_all()
    assert_same_lines(module_lines("xml"), reference_lines("-o xml", "^<flow>"))
  end)

  it("prints the <flow> lines of conntrack -L -o xml with counters and deltatime #diff", function()
    fill_all{ accounting = true }
    local lines = module_lines("xml")
    assert.matches("<counters><packets>%d+</packets>", lines[1])
    assert_same_lines(lines, reference_lines("-o xml", "^<flow>"))
  end)

  it("takes its options as a table as conntrack -L takes -o extended,id #diff", function()
    fill_module()
    local lines = {}
    for flow in ns.handle():dump() do lines[#lines + 1] = flow:format{ extended = true, id = true, xml = false } end
    assert_same_lines(lines, reference_lines("-o extended,id"), true)
  end)
end)

describe("flow fields", function()
  it("say what conntrack -L -o extended,id shows, for flows of every origin #diff", function()
    fill_all()
    assert_fields_agree{}
  end)

  it("say what conntrack -L -o extended,id,ktimestamp shows with counters and timestamps #diff", function()
    fill_all{ accounting = true }
    assert_fields_agree{ timestamps = true }
  end)

  -- conntrack 1.4.7 lists every ICMP flow under --src-nat and --dst-nat (it
  -- compares the ICMP id with the reply's type): those are left out.
  it("snat and dnat are true for the flows conntrack -L --src-nat / --dst-nat lists #diff", function()
    fill_module()
    local icmp, snat, dnat = {}, {}, {}
    for flow in ns.handle():dump() do
      if flow.proto == "icmp" or flow.proto == "icmpv6" then
        icmp[flow.id] = true
      else
        if flow.snat then snat[#snat + 1] = flow.id end
        if flow.dnat then dnat[#dnat + 1] = flow.id end
      end
    end
    local function listed(args)
      local ids = {}
      for _, id in ipairs(reference_ids(args)) do
        if not icmp[id] then ids[#ids + 1] = id end
      end
      return ids
    end
    table.sort(snat); table.sort(dnat)
    assert.same(listed("--src-nat"), snat)
    assert.same(listed("--dst-nat"), dnat)
  end)
end)

-- The lines of a dump with `format` are written from each kernel message
-- (src/format.c) where it can, by libnetfilter_conntrack elsewhere; with
-- batch = true many come at once, each ending in "\n", with their number.
local function dump_lines(format, batch)
  local lines = {}
  if not batch then
    for line in ns.handle():dump(nil, { format = format }) do lines[#lines + 1] = line end
    return lines
  end
  for text, n in ns.handle():dump(nil, { format = format, batch = true }) do
    local count = 0
    for line in text:gmatch("([^\n]*)\n") do
      lines[#lines + 1] = line
      count = count + 1
    end
    assert.equal(n, count)
    assert.equal("\n", text:sub(-1))
  end
  return lines
end

describe("ct:dump{ format = }", function()
  for format, long in common.family{ "", "extended", "id", "extended,id", "ktimestamp", "extended,id,ktimestamp" } do
    local args = format ~= "" and "-o " .. format or ""
    local extended = format:find("extended") ~= nil
    -- (ours are read first: assert_same_lines allows for the clocks of a later read)
    it(("yields the lines conntrack -L %s prints, one by one and in batches #diff%s"):format(args, long), function()
      fill_all()
      local single, batched = dump_lines(format), dump_lines(format, true)
      local theirs = reference_lines(args)
      assert_same_lines(single, theirs, extended)
      assert_same_lines(batched, theirs, extended)
    end)

    it(("yields the lines conntrack -L %s prints with accounting and timestamps on #diff%s"):format(args, long),
       function()
      fill_all{ accounting = true }
      local single, batched = dump_lines(format), dump_lines(format, true)
      local theirs = reference_lines(args)
      assert.matches("packets=%d+ bytes=%d+", table.concat(batched, "\n"))
      assert_same_lines(single, theirs, extended)
      assert_same_lines(batched, theirs, extended)
    end)
  end

  it("yields the <flow> lines of conntrack -L -o xml in batches #diff", function()
    fill_all{ accounting = true }
    assert_same_lines(dump_lines("xml", true), reference_lines("-o xml", "^<flow>"))
  end)
end)
