-- fuzz/record-select.lua RAW OUT: the corpus out of what fuzz/record-corpus.sh
-- recorded in RAW/: the first message of each kind (dump entry or event type,
-- family, protocol, the set of top-level attributes), named for what it
-- holds, e.g. "destroy-ipv4-tcp-counters-timestamp". Copied byte for byte
-- (little-endian headers, as recorded on x86) into OUT/; LINES gets what
-- conntrack -E / -L -o extended,id printed for each: "name<TAB>line".
local raw, out, lines = arg[1], arg[2], arg[3]
assert(lines, "usage: record-select.lua RAW OUT LINES")

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

local function u16le(s, i) local a, b = s:byte(i, i + 1); return a + b * 256 end

-- top-level CTA_* types -> the word each adds to a name
local FEATURES = {
  [5] = "helper", [8] = "mark", [9] = "counters", [14] = "master", [15] = "seqadj", [17] = "secmark",
  [18] = "zone", [19] = "secctx", [20] = "timestamp", [22] = "labels", [24] = "synproxy",
}
local PROTOS = { [1] = "icmp", [6] = "tcp", [17] = "udp", [33] = "dccp", [47] = "gre", [58] = "icmpv6",
                 [132] = "sctp", [136] = "udplite" }

-- The attributes of msg[at, stop) by type (headers as recorded: little-endian).
local function attrs(msg, at, stop)
  local t = {}
  while at + 3 < stop do
    local len, type = u16le(msg, at), u16le(msg, at + 2) % 0x8000
    if len < 4 then break end
    t[type] = { at + 4, at + len }
    at = at + len + (4 - len % 4) % 4
  end
  return t
end

-- The words of a message's name: family, protocol, features; a zone inside
-- a tuple is "origzone" or "replyzone", a reply tuple that is not the original reversed "nat".
local function describe(msg)
  local top = attrs(msg, 21, #msg + 1)
  local words, proto = { msg:byte(17) == 10 and "ipv6" or "ipv4" }, "noproto"
  local orig = top[1] and attrs(msg, top[1][1], top[1][2]) or {}
  local l4 = orig[2] and attrs(msg, orig[2][1], orig[2][2]) or {}
  if l4[1] then proto = PROTOS[msg:byte(l4[1][1])] or tostring(msg:byte(l4[1][1])) end
  words[2] = proto
  local features = {}
  for type, word in pairs(FEATURES) do
    if top[type] then features[#features + 1] = word end
  end
  local ips = {}
  for _, dir in ipairs({ 1, 2 }) do
    local tuple = top[dir] and attrs(msg, top[dir][1], top[dir][2]) or {}
    if tuple[3] then features[#features + 1] = dir == 1 and "origzone" or "replyzone" end
    local ip = tuple[1] and attrs(msg, tuple[1][1], tuple[1][2]) or {}
    local src, dst = ip[1] or ip[3], ip[2] or ip[4]
    ips[dir] = src and dst and { msg:sub(src[1], src[2] - 1), msg:sub(dst[1], dst[2] - 1) } or { "", "" }
  end
  -- NAT: the reply does not come back from where the original went
  if ips[1][1] ~= ips[2][2] or ips[1][2] ~= ips[2][1] then features[#features + 1] = "nat" end
  table.sort(features)
  for _, word in ipairs(features) do
    if word ~= words[#words] then words[#words + 1] = word end
  end
  return words
end

local function list(dir)
  local names, p = {}, io.popen("ls " .. dir)
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  return names
end

local function lines_of(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = line end
  return t
end

-- conntrack -E prints the events in the order they came; -L by id
local event_lines, dump_lines = lines_of(raw .. "/events.lines"), {}
for _, line in ipairs(lines_of(raw .. "/dump.lines")) do
  dump_lines[line:match(" id=(%d+)$")] = line   -- the last: ICMP has an id too
end

local seen, chosen = {}, {}
local function consider(path, kind, line)
  local msg = read(path)
  local name = kind .. "-" .. table.concat(describe(msg), "-")
  if not seen[name] then
    seen[name] = true
    chosen[#chosen + 1] = { name = name, msg = msg, line = line }
  end
end

for i, name in ipairs(list(raw .. "/events")) do
  consider(raw .. "/events/" .. name, name:match("%-(%a+)$"), event_lines[i])
end
for _, name in ipairs(list(raw .. "/dump")) do
  local path = raw .. "/dump/" .. name
  local msg = read(path)
  local id = attrs(msg, 21, #msg + 1)[12]   -- CTA_ID
  local n = id and ((msg:byte(id[1]) * 256 + msg:byte(id[1] + 1)) * 256 + msg:byte(id[1] + 2)) * 256 + msg:byte(id[1] + 3)
  consider(path, "dump", n and dump_lines[("%d"):format(n)])
end

os.execute("mkdir -p " .. out)
local index = assert(io.open(lines, "w"))
for _, c in ipairs(chosen) do
  local f = assert(io.open(out .. "/" .. c.name, "wb")); f:write(c.msg); f:close()
  index:write(c.name, "\t", c.line or "", "\n")
  print(c.name)
end
index:close()
