-- conntrack/rates.lua: bytes and packets per second per group of flows,
-- for scripts and for lua-conntrack --live. A meter reads the table with
-- ct:aggregate; each later reading gives every group's growth since the one
-- before, plus what its flows that ended meanwhile moved (their destroy
-- events carry their last counters), so a transfer that just finished is not
-- lost. With zero = true each reading zeroes the counters it reads (as
-- nlbwmon does): its sums are the growth itself.
--   local meter = assert(rates.new(ct, { by = "orig_src" }))
--   meter:pump(5)                       -- or watch meter:getfd() in a loop
--   for _, g in ipairs(meter:read()) do print(g.orig_src, g.bytes_per_s) end
-- A flow that ends while the table is read may be counted in the next
-- interval rather than in this one.

local conntrack = require "conntrack"
local addr = require "conntrack.ctl.addr"

local M = {}

local SUMS = { "orig_bytes", "reply_bytes", "orig_packets", "reply_packets" }
-- what a group moved in the interval, and the same per second
local MOVED = { "bytes", "packets", "orig_bytes", "reply_bytes", "orig_packets", "reply_packets" }
M.RATES = {}
for i, s in ipairs(MOVED) do M.RATES[i] = s .. "_per_s" end
-- what a meter sorts by: a rate, or "flows"
M.SORTS = { bytes = "bytes_per_s", packets = "packets_per_s", flows = "flows" }

local has_socket, socket = pcall(require, "socket")
local function now() return has_socket and socket.gettime() or os.time() end

-- ---- the key of a flow, as ct:aggregate makes it ----

-- "orig_src/24/64" -> its field (an alias resolved), IPv4 and IPv6 lengths
local function parse_key(key)
  local name, a, b = key:match("^([^/]*)/?(%d*)/?(%d*)$")
  name = conntrack.aliases[name] or name
  a, b = tonumber(a), tonumber(b)
  if a and not b then b = a end
  return { field = name, v4 = a and math.min(a, 32), v6 = b }
end

-- an address cut to the key's prefix, "10.0.0.0/24", as ct:aggregate writes it
local function cut(value, spec)
  if not spec.v4 or type(value) ~= "string" then return value end
  local family, bytes = addr.parse(value)
  if not family then return value end
  local plen, max = family == "ipv4" and spec.v4 or spec.v6, family == "ipv4" and 32 or 128
  if plen >= max then return value end
  return addr.text(family, addr.band(bytes, addr.netmask(family, plen))) .. "/" .. plen
end

-- A key's value as text: status flags joined by "," in bit order.
function M.text_of(v)
  if type(v) ~= "table" then return v == nil and "-" or tostring(v) end
  local flags = {}
  for _, name in ipairs(conntrack.status_flags) do
    if v[name] then flags[#flags + 1] = name end
  end
  return table.concat(flags, ",")
end

local Meter = {}
Meter.__index = Meter

local function group_key(m, get)
  local parts = {}
  for i, spec in ipairs(m.specs) do parts[i] = M.text_of(cut(get(spec.field), spec)) end
  return table.concat(parts, "\1")
end

-- A reading: key -> the group's sums and key values, and when it was made.
local function reading(m)
  local groups, summary, errno = m.ct:aggregate(m.filter, { by = m.keys, zero = m.zero })
  if not groups then return nil, summary, errno end
  local map = {}
  for _, g in ipairs(groups) do
    map[group_key(m, function(field) return g[field] end)] = g
  end
  return { groups = map, time = now(), counters = summary.counters, flows = summary.flows }
end

-- A destroyed flow's last counters, for its group.
local function ended(m, flow)
  local key = group_key(m, function(field) return flow[field] end)
  local e = m.ended[key]
  if not e then
    e = { orig_bytes = 0, reply_bytes = 0, orig_packets = 0, reply_packets = 0, values = {} }
    for _, spec in ipairs(m.specs) do e.values[spec.field] = cut(flow[spec.field], spec) end
    m.ended[key] = e
  end
  for _, k in ipairs(SUMS) do e[k] = e[k] + (flow[k] or 0) end
  if flow.orig_bytes then m.ended_counters = true end
end

-- rates.new(ct, { by = "orig_src/24,orig_dport" or { ... }, filter = { ... },
-- zero = true, sort = "bytes" | "packets" | "flows" }) -> meter, or nil,
-- message, errno. It subscribes to destroy events, then reads the table once.
function M.new(ct, opts)
  if not tostring(ct):match("^conntrack.handle") then
    error(("bad argument 'ct': expected a handle, got %s"):format(type(ct)), 2)
  end
  opts = opts or {}
  local by = opts.by or "orig_src"
  if type(by) == "table" then
    for _, key in ipairs(by) do
      if type(key) ~= "string" then
        error(("bad argument 'by': keys are field names or prefixes, got a %s"):format(type(key)), 2)
      end
    end
    by = table.concat(by, ",")
  end
  local m = setmetatable({ ct = ct, filter = opts.filter or {}, zero = opts.zero or nil, ended = {},
                           sort = opts.sort or "bytes", keys = {}, specs = {} }, Meter)
  if not M.SORTS[m.sort] then error(("bad argument 'sort': %q is not bytes, packets or flows"):format(m.sort), 2) end
  for key in (by .. ","):gmatch("([^,]*),") do
    local spec = parse_key(key)
    for _, s in ipairs(MOVED) do
      if spec.field == s then error(("bad argument 'by': %s is a sum, not a key"):format(s), 2) end
    end
    m.keys[#m.keys + 1] = key
    m.specs[#m.specs + 1] = spec
  end
  -- subscribed first: no flow ends unseen between the reading and the events
  local sub, err, errno = ct:events{ "destroy", filter = m.filter }
  if not sub then return nil, err, errno end
  m.sub = sub
  m.last, err, errno = reading(m)
  if not m.last then
    sub:close()
    return nil, err, errno
  end
  return m
end

-- Takes the destroy events that came, waiting up to timeout seconds (0: only
-- those already there) for the first; returns how many it took.
local function sub_of(m)
  if not m.sub then error("attempt to use a closed meter", 3) end
  return m.sub
end

function Meter:pump(timeout)
  local sub = sub_of(self)
  local n, kind, flow = 0, sub:next(timeout or 0)
  while kind do
    if kind == "destroy" then
      ended(self, flow)
      n = n + 1
    end
    kind, flow = sub:next(0)
  end
  return n
end

-- The groups since the last reading, largest first by the meter's sort:
-- each has its key fields by name (an address cut to a prefix as
-- "10.0.0.0/24"), flows (now), what it moved meanwhile (bytes, packets,
-- orig_bytes, reply_bytes, orig_packets, reply_packets) and the same per
-- second (RATES: bytes_per_s...); then { time =, seconds =, flows =,
-- counters = } (counters false: accounting is off, sums are 0 and the order
-- is by flows). nil, message, errno if the table cannot be read.
function Meter:read()
  self:pump(0)
  local prev = self.last
  local cur, err, errno = reading(self)
  if not cur then return nil, err, errno end
  local dt = math.max(cur.time - prev.time, 1e-3)
  -- a table left empty meanwhile still had counters
  local counters = cur.counters or prev.counters or self.ended_counters or false
  local list = {}
  local function add(key, g, p)
    local e = self.ended[key]
    if self.zero then p = nil end   -- zeroed by the last reading: the sums are the growth
    local values = g or p or e.values
    local r = { key = key, flows = g and g.flows or 0 }
    for _, spec in ipairs(self.specs) do r[spec.field] = cut(values[spec.field], spec) end
    for _, s in ipairs(SUMS) do
      r[s] = math.max(((g and g[s]) or 0) - ((p and p[s]) or 0) + ((e and e[s]) or 0), 0)
    end
    r.bytes, r.packets = r.orig_bytes + r.reply_bytes, r.orig_packets + r.reply_packets
    for _, s in ipairs(MOVED) do r[s .. "_per_s"] = r[s] / dt end
    list[#list + 1] = r
  end
  for key, g in pairs(cur.groups) do add(key, g, prev.groups[key]) end
  -- groups whose flows all ended: since the last reading, or before it
  for key in pairs(self.ended) do
    if not cur.groups[key] then add(key, nil, prev.groups[key]) end
  end
  self.last, self.ended, self.ended_counters = cur, {}, nil
  M.sorted(list, counters and self.sort or "flows")
  return list, { time = cur.time, seconds = dt, flows = cur.flows, counters = counters }
end

-- The event socket, for a loop of one's own: readable when pump has events to take.
function Meter:getfd() return sub_of(self):getfd() end

function Meter:close()
  if self.sub then self.sub:close() end
  self.sub = nil
end
Meter.__close = Meter.close
Meter.__gc = Meter.close

-- largest first by "bytes", "packets" or "flows"; equal ones in key order
function M.sorted(list, sort)
  local field = M.SORTS[sort] or sort
  table.sort(list, function(a, b)
    if a[field] ~= b[field] then return a[field] > b[field] end
    return a.key < b.key
  end)
  return list
end

return M
