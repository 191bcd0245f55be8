-- conntrack/ctl/protos.lua: the per-protocol options of conntrack(8)
-- (extensions/libct_proto_*.c): their long names, legality per command,
-- the port pairs that go together, their help text and how `-o save`
-- prints them. Values go into the module's field names.

local conntrack = require "conntrack"
local numbers = require "conntrack.ctl.numbers"

-- the module's protocol numbers, by name
local NUM = conntrack.protocols

local M = {}

-- Command rows of the legality tables, in conntrack's order.
M.COMMANDS = {
  "CT_LIST", "CT_CREATE", "CT_UPDATE", "CT_DELETE", "CT_GET", "CT_FLUSH", "CT_EVENT",
  "CT_VERSION", "CT_HELP", "EXP_LIST", "EXP_CREATE", "EXP_DELETE", "EXP_GET", "EXP_FLUSH",
  "EXP_EVENT", "CT_COUNT", "EXP_COUNT", "CT_STATS", "EXP_STATS", "CT_ADD",
}

-- rows = the first fifteen commands; the others are all illegal, except
-- CT_ADD, which follows CT_CREATE as the binary does.
local function legality(rows)
  local t = {}
  for i, name in ipairs(M.COMMANDS) do
    t[name] = rows[i] or (name == "CT_ADD" and rows[2]) or {}
  end
  return t
end

local PORT_HELP = "  --orig-port-src\t\toriginal source port\n" ..
  "  --orig-port-dst\t\toriginal destination port\n" ..
  "  --reply-port-src\t\treply source port\n" ..
  "  --reply-port-dst\t\treply destination port\n" ..
  "  --mask-port-src\t\tmask source port\n" ..
  "  --mask-port-dst\t\tmask destination port\n" ..
  "  --tuple-port-src\t\texpectation tuple src port\n" ..
  "  --tuple-port-src\t\texpectation tuple dst port\n"

local PORT_OPTIONS = {
  { "orig-port-src", "sport" }, { "sport", "sport" }, { "orig-port-dst", "dport" }, { "dport", "dport" },
  { "reply-port-src", "reply-port-src" }, { "reply-port-dst", "reply-port-dst" },
  { "mask-port-src", "mask-port-src" }, { "mask-port-dst", "mask-port-dst" },
}
local PORT_FLAGS = { "sport", "dport", "reply-port-src", "reply-port-dst", "mask-port-src", "mask-port-dst" }
local PORT_FIELDS = {
  sport = "orig_sport", dport = "orig_dport", ["reply-port-src"] = "reply_sport", ["reply-port-dst"] = "reply_dport",
}
local PORT_SAVE = {
  { "--sport", "orig_sport" }, { "--dport", "orig_dport" },
  { "--reply-port-src", "reply_sport" }, { "--reply-port-dst", "reply_dport" },
}
local PORT_PAIRS_MSG = { "you have to specify `--sport' and `--dport'",
                         "you have to specify `--reply-src-port' and `--reply-dst-port'" }

local function append(list, ...)
  local t = {}
  for _, v in ipairs(list) do t[#t + 1] = v end
  for _, more in ipairs({ ... }) do
    for _, v in ipairs(more) do t[#t + 1] = v end
  end
  return t
end

-- The helpers handed to parse functions (see options.lua): number parsing
-- with conntrack's messages, and the place where values go.
local function port(ctx, key, arg)
  ctx.fields[PORT_FIELDS[key]] = ctx.number(arg, "port", key)
end

local function state_of(names, message)
  return function(ctx, _, arg)
    for _, name in ipairs(names) do
      if name == arg then ctx.fields.state = arg; return end
    end
    if names.LISTEN and arg == "LISTEN" then ctx.fields.state = arg; return end
    ctx.usage(message:format(arg))
  end
end

-- A protocol's state names in the module's order (by number).
local function module_states(proto)
  local names, by_name = {}, conntrack.states[proto]
  for name, num in pairs(by_name) do
    if type(name) == "string" then names[num + 1] = name end
  end
  return names
end

-- conntrack(8) takes the module's TCP states and LISTEN; its SCTP list stops
-- before the heartbeat states, its DCCP list has IGNORE and INVALID.
local TCP_STATES = module_states("tcp")
TCP_STATES.LISTEN = true
local SCTP_STATES = { "NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
                      "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT" }
local DCCP_STATES = { "NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING",
                      "TIMEWAIT", "IGNORE", "INVALID" }

local tcp = {
  name = "tcp", num = NUM.tcp,
  options = append(PORT_OPTIONS, { { "state", "state" }, { "tuple-port-src", "tuple-port-src" },
                                   { "tuple-port-dst", "tuple-port-dst" } }),
  flags = append(PORT_FLAGS, { "state", "tuple-port-src", "tuple-port-dst" }),
  legal = legality {
    { 2, 2, 2, 2, 0, 0, 2, 0, 0 }, { 3, 3, 3, 3, 0, 0, 1, 0, 0 }, { 2, 2, 2, 2, 0, 0, 2, 0, 0 },
    { 2, 2, 2, 2, 0, 0, 2, 0, 0 }, { 3, 3, 3, 3, 0, 0, 2, 0, 0 }, {}, { 2, 2, 2, 2, 0, 0, 2, 0, 0 },
    {}, {}, {}, { 1, 1, 0, 0, 1, 1, 0, 1, 1 }, { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, {}, {},
  },
  pairs = { { "sport", "dport" }, { "reply-port-src", "reply-port-dst" } },
  pairs_msg = PORT_PAIRS_MSG,
  parse = { state = state_of(TCP_STATES, "unknown TCP state `%s'") },
  help = PORT_HELP .. "  --state\t\t\tTCP state, fe. ESTABLISHED\n",
  save = append(PORT_SAVE, { { "--state", "state" } }),
}

local function udp_like(name, num)
  return {
    name = name, num = num,
    options = append(PORT_OPTIONS, { { "tuple-port-src", "tuple-port-src" }, { "tuple-port-dst", "tuple-port-dst" } }),
    flags = append(PORT_FLAGS, { "tuple-port-src", "tuple-port-dst" }),
    legal = legality {
      { 2, 2, 2, 2 }, { 3, 3, 3, 3 }, { 2, 2, 2, 2 }, { 2, 2, 2, 2 }, { 3, 3, 3, 3 }, {}, { 2, 2, 2, 2 },
      {}, {}, {}, { 1, 1, 0, 0, 1, 1, 1, 1 }, { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, {}, {},
    },
    pairs = { { "sport", "dport" }, { "reply-port-src", "reply-port-dst" } },
    pairs_msg = PORT_PAIRS_MSG,
    parse = {},
    help = PORT_HELP,
    save = PORT_SAVE,
  }
end

-- conntrack reads a verification tag with htonl(atoi()) and prints it with
-- ntohl(): the kernel holds it byte-swapped, consistently. The same swap
-- keeps `-o save` output and -R input identical to conntrack's.
local function bswap32(v)
  local b = {}
  for i = 1, 4 do b[i] = v % 256; v = math.floor(v / 256) end   -- integers stay integers in 5.3+
  return ((b[1] * 256 + b[2]) * 256 + b[3]) * 256 + b[4]
end
M.bswap32 = bswap32

local sctp = {
  name = "sctp", num = NUM.sctp,
  options = {
    { "orig-port-src", "sport" }, { "orig-port-dst", "dport" }, { "reply-port-src", "reply-port-src" },
    { "reply-port-dst", "reply-port-dst" }, { "mask-port-src", "mask-port-src" },
    { "mask-port-dst", "mask-port-dst" }, { "state", "state" }, { "tuple-port-src", "tuple-port-src" },
    { "tuple-port-dst", "tuple-port-dst" }, { "orig-vtag", "orig-vtag" }, { "reply-vtag", "reply-vtag" },
    { "sport", "sport" }, { "dport", "dport" },
  },
  flags = append(PORT_FLAGS, { "state", "tuple-port-src", "tuple-port-dst", "orig-vtag", "reply-vtag" }),
  legal = legality {
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0 }, { 3, 3, 3, 3, 0, 0, 1, 0, 0, 1, 1 }, { 2, 2, 2, 2, 0, 0, 2, 0, 0, 2, 2 },
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0 }, { 3, 3, 3, 3, 0, 0, 2, 0, 0, 2, 2 }, {},
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0 }, {}, {}, {}, { 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1 },
    { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, {}, {},
  },
  pairs = { { "sport", "dport" }, { "reply-port-src", "reply-port-dst" } },
  pairs_msg = PORT_PAIRS_MSG,
  parse = {
    state = state_of(SCTP_STATES, "unknown SCTP state `%s'"),
    ["orig-vtag"] = function(ctx, key, arg) ctx.fields.orig_vtag = bswap32(ctx.number(arg, "u32", key)) end,
    ["reply-vtag"] = function(ctx, key, arg) ctx.fields.reply_vtag = bswap32(ctx.number(arg, "u32", key)) end,
  },
  help = PORT_HELP .. "  --state\t\t\tSCTP state, fe. ESTABLISHED\n" ..
    "  --orig-vtag\t\toriginal verification tag\n  --reply-vtag\t\treply verification tag\n",
  save = append(PORT_SAVE, { { "--state", "state" }, { "--orig-vtag", "orig_vtag", bswap32 },
                             { "--reply-vtag", "reply_vtag", bswap32 } }),
}

local dccp = {
  name = "dccp", num = NUM.dccp,
  options = {
    { "orig-port-src", "sport" }, { "orig-port-dst", "dport" }, { "reply-port-src", "reply-port-src" },
    { "reply-port-dst", "reply-port-dst" }, { "mask-port-src", "mask-port-src" },
    { "mask-port-dst", "mask-port-dst" }, { "state", "state" }, { "tuple-port-src", "tuple-port-src" },
    { "tuple-port-dst", "tuple-port-dst" }, { "sport", "sport" }, { "dport", "dport" }, { "role", "role" },
  },
  flags = append(PORT_FLAGS, { "state", "tuple-port-src", "tuple-port-dst", "role" }),
  legal = legality {
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0 }, { 3, 3, 3, 3, 0, 0, 1, 0, 0, 1 }, { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0 },
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0 }, { 3, 3, 3, 3, 0, 0, 2, 0, 0, 0 }, {},
    { 2, 2, 2, 2, 0, 0, 2, 0, 0, 0 }, {}, {}, {}, { 1, 1, 0, 0, 1, 1, 0, 1, 1, 1 },
    { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, {}, {},
  },
  pairs = { { "sport", "dport" }, { "reply-port-src", "reply-port-dst" } },
  pairs_msg = { "you have to specify `--sport' and `--dport'",
                "you have to specify `--reply-port-src' and `--report-port-dst'" },
  parse = {
    state = state_of(DCCP_STATES, "Unknown DCCP state `%s'"),
    -- conntrack accepts any prefix of the role, even an empty one
    -- (the module cannot set a role; DCCP is not tracked by current kernels)
    role = function(ctx, _, arg)
      local low = arg:lower()
      if ("client"):sub(1, #low) == low then ctx.cmd.dccp_role = "client"
      elseif ("server"):sub(1, #low) == low then ctx.cmd.dccp_role = "server"
      else ctx.usage(("Unknown DCCP role `%s'"):format(arg)) end
    end,
  },
  help = PORT_HELP .. "  --state\t\t\tDCCP state, fe. RESPOND\n",
  save = append(PORT_SAVE, { { "--state", "state" } }),
}

local function icmp_like(name, num, prefix)
  local type_, code, id = prefix .. "-type", prefix .. "-code", prefix .. "-id"
  return {
    name = name, num = num, icmp = true,
    options = { { type_, type_ }, { code, code }, { id, id } },
    flags = { type_, code, id },
    legal = legality { { 2, 2, 2 }, { 1, 1, 2 }, { 2, 2, 2 }, { 2, 2, 2 }, { 1, 1, 2 }, {}, { 2, 2, 2 } },
    parse = {
      [type_] = function(ctx, key, arg) ctx.fields.icmp_type = ctx.number(arg, "u8", key) end,
      [code] = function(ctx, key, arg) ctx.fields.icmp_code = ctx.number(arg, "u8", key) end,
      [id] = function(ctx, key, arg) ctx.fields.icmp_id = ctx.number(arg, "u16", key) end,
    },
    help = ("  --%s\t\t\t%s type\n  --%s\t\t\t%s code\n  --%s\t\t\t%s id\n")
      :format(type_, prefix, code, prefix, id, prefix),
    save = { { "--" .. type_, "icmp_type" }, { "--" .. code, "icmp_code" }, { "--" .. id, "icmp_id" } },
  }
end

local GRE_FIELDS = { srckey = "orig_sport", dstkey = "orig_dport", ["reply-key-src"] = "reply_sport",
                     ["reply-key-dst"] = "reply_dport" }
local function gre_key(ctx, key, arg)
  if GRE_FIELDS[key] then ctx.fields[GRE_FIELDS[key]] = ctx.number(arg, "key", key) end
end

local gre = {
  name = "gre", num = NUM.gre,
  options = {
    { "orig-key-src", "srckey" }, { "srckey", "srckey" }, { "orig-key-dst", "dstkey" }, { "dstkey", "dstkey" },
    { "reply-key-src", "reply-key-src" }, { "reply-key-dst", "reply-key-dst" }, { "mask-key-src", "mask-key-src" },
    { "mask-key-dst", "mask-key-dst" }, { "tuple-key-src", "tuple-key-src" }, { "tuple-key-dst", "tuple-key-dst" },
  },
  flags = { "srckey", "dstkey", "reply-key-src", "reply-key-dst", "mask-key-src", "mask-key-dst",
            "tuple-key-src", "tuple-key-dst" },
  legal = legality {
    { 2, 2, 2, 2 }, { 3, 3, 3, 3 }, { 2, 2, 2, 2 }, { 2, 2, 2, 2 }, { 3, 3, 3, 3 }, {}, { 2, 2, 2, 2 },
    {}, {}, {}, { 1, 1, 1, 1, 1, 1, 1, 1 }, { 1, 1, 1, 1 }, { 1, 1, 1, 1 }, {}, {},
  },
  pairs = { { "srckey", "dstkey" }, { "reply-key-src", "reply-key-dst" } },
  pairs_msg = { "you have to specify `--srckey' and `--dstkey'",
                "you have to specify `--reply-src-key' and `--reply-dst-key'" },
  parse = { srckey = gre_key, dstkey = gre_key, ["reply-key-src"] = gre_key, ["reply-key-dst"] = gre_key },
  help = "  --orig-key-src\t\toriginal source key\n  --orig-key-dst\t\toriginal destination key\n" ..
    "  --reply-key-src\t\treply source key\n  --reply-key-dst\t\treply destination key\n" ..
    "  --mask-key-src\t\tmask source key\n  --mask-key-dst\t\tmask destination key\n" ..
    "  --tuple-key-src\t\texpectation tuple src key\n  --tuple-key-src\t\texpectation tuple dst key\n",
  save = { { "--srckey", "orig_sport" }, { "--dstkey", "orig_dport" },
           { "--reply-key-src", "reply_sport" }, { "--reply-key-dst", "reply_dport" } },
}

M.unknown = { name = "unknown", unknown = true, options = {}, flags = {}, legal = legality {}, parse = {},
              help = "  no options (unsupported)\n", save = {} }

-- In the order conntrack registers them (its list is searched newest first,
-- which only matters for names, all distinct).
M.list = { tcp, udp_like("udp", NUM.udp), udp_like("udplite", NUM.udplite), sctp, dccp,
           icmp_like("icmp", NUM.icmp, "icmp"), icmp_like("icmpv6", NUM.icmpv6, "icmpv6"), gre }
-- Ports parse alike in every protocol that has them (GRE's keys are its own).
for _, p in ipairs(M.list) do
  if p.pairs and p ~= gre then
    for k in pairs(PORT_FIELDS) do p.parse[k] = port end
  end
end

-- The expectation's ports (GRE: keys): its tuple's and its mask's, kept
-- apart from the flow's fields (see conntrack/ctl/expect.lua).
local EXPECT_PORTS = {
  ["tuple-port-src"] = "sport", ["tuple-port-dst"] = "dport", ["mask-port-src"] = "mask_sport",
  ["mask-port-dst"] = "mask_dport", ["tuple-key-src"] = "sport", ["tuple-key-dst"] = "dport",
  ["mask-key-src"] = "mask_sport", ["mask-key-dst"] = "mask_dport",
}
local function expect_port(ctx, key, arg)
  ctx.cmd.expect_ports = ctx.cmd.expect_ports or {}
  ctx.cmd.expect_ports[EXPECT_PORTS[key]] = ctx.number(arg, key:find("key") and "key" or "port", key)
end
for _, p in ipairs(M.list) do
  for _, o in ipairs(p.options) do
    if EXPECT_PORTS[o[2]] then p.parse[o[2]] = expect_port end
  end
end

M.by_num = {}
for _, p in ipairs(M.list) do M.by_num[p.num] = p end

-- /etc/protocols, as getprotobyname/getprotobynumber read it.
local protocols
local function load_protocols()
  if protocols then return protocols end
  protocols = { by_name = {}, by_num = {} }
  local f = io.open("/etc/protocols")
  if not f then return protocols end
  for line in f:lines() do
    line = line:gsub("#.*", "")
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    local num = tonumber(words[2])
    if words[1] and num and words[2]:match("^%d+$") then
      for i, w in ipairs(words) do
        if i ~= 2 and protocols.by_name[w] == nil then protocols.by_name[w] = num end
      end
      if protocols.by_num[num] == nil then protocols.by_num[num] = words[1] end
    end
  end
  f:close()
  return protocols
end

-- conntrack's findproto: a handler by name (any case), a name from
-- /etc/protocols, or a number up to 255 (strtoul, base 0).
function M.find(name)
  for _, p in ipairs(M.list) do
    if p.name:lower() == name:lower() then return p, p.num end
  end
  local num = load_protocols().by_name[name]
  if num then return M.unknown, num end
  local n = numbers.parse(name, 0, 255)
  if n then
    return M.by_num[n] or M.unknown, n
  end
  return nil
end

-- The name conntrack -h -p prints for a protocol without a handler.
function M.help_name(p, num)
  if p ~= M.unknown then return p.name end
  return load_protocols().by_num[num] or "unknown"
end

return M
