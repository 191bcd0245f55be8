-- spec/helpers/mixed_flows.lua: tables of thousands of mixed flows (IPv4 and
-- IPv6; tcp, udp, icmp; zones 0-2; marks; ASSURED or not) built the same way
-- every time, and the identity string that names one flow in such a table,
-- the same for a generated flow table and for a dumped flow.
local M = {}

-- Sources that differ from each other in one place only, so an inexact
-- match (a prefix too long or too short, an inverted IPv6 filter) shows.
M.V4_SOURCES = { "10.1.0.5", "10.1.0.50", "10.1.0.4", "10.1.5.0", "10.1.200.7",
                 "10.10.0.5", "10.0.255.5", "192.168.0.5", "11.1.0.5", "10.1.255.255" }
M.V6_SOURCES = { "fd00::5", "fd00::50", "fd00::4", "fd00::5:0", "fd00:0:0:5::",
                 "fd01::5", "fd00::105", "fe80::5", "fd00::6", "2001:db8::5" }
M.MARKS = { 0, 0x10, 0x1f, 0x20, 0x110, 0x30, 0x11, 0xf0, 7 }
local DPORTS = { 53, 80, 443, 8080 }

-- A number from 0 to k - 1 that looks random but is the same every run:
-- the attributes of flow i vary independently of each other.
-- (Rounds of Park-Miller: every product stays exact in a double, so all Lua
-- versions build the same tables.)
local function pick(i, salt, k)
  local x = (i * 7919 + salt * 104729) % 2147483647
  for round = 1, 4 do x = (x * 48271 + round * salt) % 2147483647 end
  return x % k
end

local function copy(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

-- n flows, plus a twin in the next zone for every 13th: the same tuple in
-- two zones is two entries. Each flow is a table ct:create takes.
function M.generate(n)
  local flows = {}
  for i = 1, n do
    local v6 = i % 3 == 0
    local kind = math.floor(i / 3) % 3
    local f = { orig_src = (v6 and M.V6_SOURCES or M.V4_SOURCES)[pick(i, 1, 10) + 1],
                orig_dst = v6 and "fd00::ffff" or "10.9.0.1",
                timeout = 3600, mark = M.MARKS[pick(i, 2, 9) + 1], zone = pick(i, 3, 3) }
    if kind == 2 then
      f.proto, f.icmp_type, f.icmp_code, f.icmp_id = v6 and "icmpv6" or "icmp", v6 and 128 or 8, 0, i
    else
      f.proto, f.orig_sport, f.orig_dport = kind == 0 and "tcp" or "udp", 1024 + i, DPORTS[pick(i, 4, 4) + 1]
      if kind == 0 then f.state = pick(i, 5, 2) == 0 and "ESTABLISHED" or "SYN_SENT" end
    end
    if pick(i, 6, 4) == 0 then f.status = "ASSURED" end
    flows[#flows + 1] = f
    if i % 13 == 0 then
      local twin = copy(f)
      twin.zone = (f.zone + 1) % 3
      flows[#flows + 1] = twin
    end
  end
  return flows
end

-- M.generate(n) with address translation: every 4th flow a source NAT
-- (another reply destination), every 4th after it a destination NAT
-- (another reply source), in both families.
function M.generate_nat(n)
  local flows = M.generate(n)
  for i, f in ipairs(flows) do
    local v6 = f.orig_src:find(":", 1, true)
    if i % 4 == 1 then
      f.reply_dst = v6 and ("fd99::%d"):format(i % 7 + 1) or ("192.0.2.%d"):format(i % 7 + 1)
    elseif i % 4 == 2 then
      f.reply_src = v6 and ("fd98::1:%d"):format(i % 5 + 1) or ("198.51.100.%d"):format(i % 5 + 1)
    end
  end
  return flows
end

-- Facts about a generated flow table, as the model of a filter sees them.
function M.family(t) return t.orig_src:find(":", 1, true) and "ipv6" or "ipv4" end
function M.zone(t) return t.zone or 0 end
function M.assured(t) return t.status == "ASSURED" end

function M.ipv4_in(addr, prefix, len)
  local function number(a)
    local b1, b2, b3, b4 = a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return ((tonumber(b1) * 256 + tonumber(b2)) * 256 + tonumber(b3)) * 256 + tonumber(b4)
  end
  local unit = 2 ^ (32 - len)
  return math.floor(number(addr) / unit) == math.floor(number(prefix) / unit)
end

function M.reply_src(t) return t.reply_src or t.orig_dst end
function M.reply_dst(t) return t.reply_dst or t.orig_src end

-- An address as bytes and its width in bits, in plain Lua (the model must
-- not share the module's matcher).
local function bytes(addr)
  local b = {}
  if not addr:find(":", 1, true) then
    for x in addr:gmatch("%d+") do b[#b + 1] = tonumber(x) end
    return b, 32
  end
  local groups, head, tail = {}, addr:match("^(.-)::(.*)$")
  local function split(s, into) for g in s:gmatch("[^:]+") do into[#into + 1] = tonumber(g, 16) end end
  if head then
    local h, t = {}, {}
    split(head, h); split(tail, t)
    for _, g in ipairs(h) do groups[#groups + 1] = g end
    for _ = 1, 8 - #h - #t do groups[#groups + 1] = 0 end
    for _, g in ipairs(t) do groups[#groups + 1] = g end
  else
    split(addr, groups)
  end
  for _, g in ipairs(groups) do b[#b + 1] = math.floor(g / 256); b[#b + 1] = g % 256 end
  return b, 128
end

-- addr (nil: none) is in prefix ("a/len" or an address), or in one of a list.
function M.in_prefix(addr, prefix)
  if addr == nil then return false end
  if type(prefix) == "table" then
    for _, p in ipairs(prefix) do
      if M.in_prefix(addr, p) then return true end
    end
    return false
  end
  local p, len = prefix:match("^(.-)/(%d+)$")
  local a, width = bytes(addr)
  local q, qwidth = bytes(p or prefix)
  if width ~= qwidth then return false end
  len = tonumber(len) or width
  for i = 1, #a do
    local bits = math.min(8, len - (i - 1) * 8)
    if bits <= 0 then break end
    local unit = 2 ^ (8 - bits)
    if math.floor(a[i] / unit) ~= math.floor(q[i] / unit) then return false end
  end
  return true
end

-- Any of the four addresses of a generated flow is in the prefix or list.
function M.addr_in(t, prefix)
  return M.in_prefix(t.orig_src, prefix) or M.in_prefix(t.orig_dst, prefix) or
         M.in_prefix(M.reply_src(t), prefix) or M.in_prefix(M.reply_dst(t), prefix)
end

-- Family, protocol, original tuple and zone: a generated flow table or a
-- dumped flow (whose zone 0 may read nil or 0).
function M.identity(f)
  local family = f.family or M.family(f)
  local ports = f.icmp_type and ("type=%d code=%d id=%d"):format(f.icmp_type, f.icmp_code, f.icmp_id)
                or ("sport=%d dport=%d"):format(f.orig_sport, f.orig_dport)
  return ("%s %s src=%s dst=%s %s zone=%d"):format(family, f.proto, f.orig_src, f.orig_dst, ports, f.zone or 0)
end

-- Creates the flows through ct (a handle, possibly of another namespace).
function M.fill(ct, flows)
  for _, f in ipairs(flows) do
    local ok, err = ct:create(f)
    assert(ok, err and (err .. ": " .. M.identity(f)))
  end
end

-- The set of identities of the generated flows that model(t) selects.
function M.select(flows, model)
  local set = {}
  for _, f in ipairs(flows) do
    if model(f) then set[M.identity(f)] = true end
  end
  return set
end

-- The generated flows that model(t) selects, as a list to fill a table with.
function M.select_list(flows, model)
  local list = {}
  for _, f in ipairs(flows) do
    if model(f) then list[#list + 1] = f end
  end
  return list
end

-- The set of identities in the table, and the flows by identity.
function M.dumped(ct, filter)
  local set, byid = {}, {}
  for flow in ct:dump(filter) do
    local id = M.identity(flow)
    set[id], byid[id] = true, flow
  end
  return set, byid
end

function M.size(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

function M.minus(a, b)
  local r = {}
  for k in pairs(a) do if not b[k] then r[k] = true end end
  return r
end

-- The members of a set, sorted: what assert.same prints when sets differ.
function M.sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

return M
