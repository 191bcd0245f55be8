-- conntrack/ctl/options.lua: conntrack(8)'s command line, parsed by its own
-- rules (getopt_long abbreviations, optional table names, per-protocol
-- options that exist only after -p, the legality table per command) into a
-- plain description of what to do; commands.lua does it.
--
-- Where conntrack-tools 1.4.7 is wrong, lua-conntrack is right, on purpose:
--  * numbers are parsed strictly (-m abc, -t 1x, --sport 99999, -w 70000 are
--    errors, as in conntrack-tools 1.4.9, but with exit status 2 as any bad
--    command line; 1.4.7 silently used 0 or wrapped);
--  * -u after -m no longer overwrites the mark (1.4.7: `-m 5 -u ASSURED`
--    created mark 4);
--  * an address attached to an optional argument (--src-nat=1.2.3.4, -g1.2.3.4,
--    --label-del=foo) is used (1.4.7 ignored it);
--  * --id without an argument is an error (1.4.7 crashed);
--  * -u with several flags filters on all of them (1.4.7 matched nothing for
--    `-u ASSURED,!SEEN_REPLY`, and -D ignored negations: `-D -u !ASSURED`
--    deleted assured flows too);
--  * see commands.lua for what the commands themselves fix.
-- Known leniencies of 1.4.7 are kept, since scripts rely on them: prefixes of
-- status, event and output names (-u ASS), `-f ipv4x`, UNREPLIEDX, inet_aton
-- addresses (10.1), a stray non-option argument, -Lexpect listing conntrack.

local errors = require "conntrack.ctl.errors"
local getopt = require "conntrack.ctl.getopt"
local protos = require "conntrack.ctl.protos"
local addr = require "conntrack.ctl.addr"
local labels = require "conntrack.ctl.labels"
local where = require "conntrack.ctl.where"
local numbers = require "conntrack.ctl.numbers"

local M = {}

-- a bad command line (exit status 2), a failure (1): see errors.lua
local usage, failure = errors.usage, errors.failure
M.usage, M.failure = usage, failure

-- The generic options in conntrack's bit order, named as its messages name them.
local OPTION_NAMES = {
  "src", "dst", "reply-src", "reply-dst", "protonum", "timeout", "status", "zero", "event-mask",
  "tuple-src", "tuple-dst", "mask-src", "mask-dst", "nat-range", "mark", "id", "family", "src-nat",
  "dst-nat", "output", "secmark", "buffer-size", "any-nat", "zone", "label", "label-add",
  "label-del", "orig-zone", "reply-zone",
}
local LETTER_OPTION = {
  s = "src", d = "dst", r = "reply-src", q = "reply-dst", p = "protonum", t = "timeout", u = "status",
  z = "zero", e = "event-mask", ["["] = "tuple-src", ["]"] = "tuple-dst", ["{"] = "mask-src",
  ["}"] = "mask-dst", m = "mark", i = "id", f = "family", n = "src-nat", g = "dst-nat",
  o = "output", c = "secmark", b = "buffer-size", j = "any-nat", w = "zone", l = "label",
  ["<"] = "label-add", [">"] = "label-del", ["("] = "orig-zone", [")"] = "reply-zone",
}

-- commands_v_options: 0 illegal, 1 compulsory, 2 optional, 3 coupled (see below)
local LEGAL = {
  --               s d r q p t u z e [ ] { } a m i f n g o c b j w l < > ( )
  CT_LIST    = { 2,2,2,2,2,0,2,2,0,0,0,2,2,0,2,0,2,2,2,2,2,0,2,2,2,0,0,2,2 },
  CT_CREATE  = { 3,3,3,3,1,1,2,0,0,0,0,0,0,2,2,0,0,2,2,0,0,0,0,2,0,2,0,2,2 },
  CT_UPDATE  = { 2,2,2,2,2,2,2,0,0,0,0,2,2,0,2,2,2,2,2,2,0,0,0,0,2,2,2,0,0 },
  CT_DELETE  = { 2,2,2,2,2,2,2,0,0,0,0,2,2,0,2,2,2,2,2,2,0,0,0,2,2,0,0,2,2 },
  CT_GET     = { 3,3,3,3,1,0,0,0,0,0,0,0,0,0,0,2,0,0,0,2,0,0,0,0,2,0,0,0,0 },
  CT_FLUSH   = { 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,0,0,0,0,0,0,0,0,0,0,0,0 },
  CT_EVENT   = { 2,2,2,2,2,0,0,0,2,0,0,2,2,0,2,0,2,2,2,2,2,2,2,2,2,0,0,2,2 },
  CT_VERSION = {},
  CT_HELP    = { 0,0,0,0,2 },
  EXP_LIST   = { 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,0,0,2 },
  EXP_CREATE = { 1,1,2,2,1,1,2,0,0,1,1,1,1 },
  EXP_DELETE = { 1,1,2,2,1 },
  EXP_GET    = { 1,1,2,2,1 },
  EXP_FLUSH  = {},
  EXP_EVENT  = { 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2 },
  CT_COUNT   = {}, EXP_COUNT = {}, CT_STATS = {}, EXP_STATS = {},
  CT_ADD     = { 3,3,3,3,1,1,2,0,0,0,0,0,0,2,2,0,0,2,2,0,0,0,0,2,0,2,0,2,2 },
}
-- --live takes -L's filters, -z and -o json
LEGAL.CT_LIVE = { 2,2,2,2,2,0,2,2,0,0,0,2,2,0,2,0,2,2,2,2,2,0,2,2,2,0,0,2,2 }

-- What only lua-conntrack has, and where it makes sense.
local EXTENSIONS = {
  where = { CT_LIST = true, CT_DELETE = true, CT_UPDATE = true, CT_EVENT = true, CT_LIVE = true },
  addr = { CT_LIST = true, CT_DELETE = true, CT_UPDATE = true, CT_EVENT = true },
  handler = { CT_EVENT = true }, resync = { CT_EVENT = true }, strict = { CT_EVENT = true },
  netns = "any", group_by = { CT_LIST = true, CT_LIVE = true }, top = { CT_LIST = true, CT_LIVE = true },
  sort = { CT_LIST = true, CT_LIVE = true }, interval = { CT_LIVE = true },
}

local SHORTS = ":L::I::U::D::G::E::F::A::hVs:d:r:q:p:t:u:e:a:z[:]:{:}:m:i:f:o:n::g::c:b:C::Sj::w:l:<:>::(:):"

local function long(name, has_arg, val, exact) return { name = name, has_arg = has_arg, val = val, exact = exact } end
local LONGS = {
  long("dump", 2, "L"), long("create", 2, "I"), long("add", 2, "A"), long("delete", 2, "D"),
  long("update", 2, "U"), long("get", 2, "G"), long("flush", 2, "F"), long("event", 2, "E"),
  long("counter", 2, "C"), long("stats", 0, "S"), long("version", 0, "V"), long("help", 0, "h"),
  long("orig-src", 1, "s"), long("src", 1, "s"), long("orig-dst", 1, "d"), long("dst", 1, "d"),
  long("reply-src", 1, "r"), long("reply-dst", 1, "q"), long("protonum", 1, "p"), long("timeout", 1, "t"),
  long("status", 1, "u"), long("zero", 0, "z"), long("event-mask", 1, "e"), long("tuple-src", 1, "["),
  long("tuple-dst", 1, "]"), long("mask-src", 1, "{"), long("mask-dst", 1, "}"), long("nat-range", 1, "a"),
  long("mark", 1, "m"), long("secmark", 1, "c"), long("id", 2, "i"), long("family", 1, "f"),
  long("src-nat", 2, "n"), long("dst-nat", 2, "g"), long("output", 1, "o"), long("buffer-size", 1, "b"),
  long("any-nat", 2, "j"), long("zone", 1, "w"), long("label", 1, "l"), long("label-add", 1, "<"),
  long("label-del", 2, ">"), long("orig-zone", 1, "("), long("reply-zone", 1, ")"),
  long("where", 1, "where", true), long("handler", 1, "handler", true), long("netns", 1, "netns", true),
  long("resync", 0, "resync", true), long("strict", 0, "strict", true), long("addr", 1, "addr", true),
  long("labelmap", 1, "labelmap"),
  long("group-by", 1, "group-by", true), long("top", 1, "top", true), long("sort", 1, "sort", true),
  long("live", 0, "live", true), long("interval", 1, "interval", true),
}

-- --sort: the sums a grouping orders by
local SORTS = { bytes = true, packets = true, flows = true, orig_packets = true, orig_bytes = true,
                reply_packets = true, reply_bytes = true }

local CMD_TYPE = {
  L = { "CT_LIST", "EXP_LIST" }, I = { "CT_CREATE", "EXP_CREATE" }, D = { "CT_DELETE", "EXP_DELETE" },
  G = { "CT_GET", "EXP_GET" }, F = { "CT_FLUSH", "EXP_FLUSH" }, E = { "CT_EVENT", "EXP_EVENT" },
  V = { "CT_VERSION", "CT_VERSION" }, h = { "CT_HELP", "CT_HELP" }, C = { "CT_COUNT", "EXP_COUNT" },
  S = { "CT_STATS", "EXP_STATS" }, U = { "CT_UPDATE" }, A = { "CT_ADD" },
}

-- conntrack's get_long_opt: the first long name of a letter.
local function long_name(letter)
  for _, o in ipairs(LONGS) do
    if o.val == letter then return o.name end
  end
  return "unknown"
end

-- ---- values ----

local LIMITS = { u8 = 0xff, u16 = 0xffff, port = 0xffff, key = 0xffff, u32 = 0xffffffff }

-- A number as conntrack-tools 1.4.9 accepts it: digits only, in range (in
-- every base: never modulo 2^64). base 0 is strtoul's (0x.., 0..);
-- conntrack reads ports, ICMP fields, timeouts and sizes in base 10.
local function strict_number(text, base, max)
  return numbers.parse(text, base, max)
end

local function bad_value(text, option)
  usage(("unexpected value '%s' with %s option"):format(text, option))
end

local function number(text, kind, option)
  local base = kind == "key" and 0 or 10
  local v = strict_number(text, base, LIMITS[kind] or 0xffffffff)
  if not v then bad_value(text, option) end
  return v
end

-- parse_parameter / parse_parameter_mask: comma-separated names matched by
-- prefix, case-insensitively; SRC_NAT and DST_NAT are skipped with a warning.
local STATUS_NAMES = { "ASSURED", "SEEN_REPLY", "UNSET", "FIXED_TIMEOUT", "EXPECTED", "OFFLOAD", "HW_OFFLOAD" }
local EVENT_NAMES = { "ALL", "NEW", "UPDATES", "DESTROY" }
local OUTPUT_NAMES = { "xml", "extended", "timestamp", "id", "ktimestamp", "labels", "userspace", "save",
                       "json", "summary" }
M.STATUS_NAMES, M.EVENT_NAMES, M.OUTPUT_NAMES = STATUS_NAMES, EVENT_NAMES, OUTPUT_NAMES

local function match_name(token, names, warn)
  local low = token:lower()
  for _, skipped in ipairs({ "SRC_NAT", "DST_NAT" }) do
    if skipped:lower():sub(1, #low) == low then
      warn(("WARNING: ignoring %s, use --%s instead\n"):format(skipped, skipped == "SRC_NAT" and "src-nat" or "dst-nat"))
      return true
    end
  end
  for _, name in ipairs(names) do
    if name:lower():sub(1, #low) == low then return name end
  end
  return nil
end

local function parse_list(arg, names, warn)
  local out = {}
  local rest = arg
  while true do
    local comma = rest:find(",", 1, true)
    local token = comma and rest:sub(1, comma - 1) or rest
    if token == "" then usage(("Bad parameter `%s'"):format(comma and rest or token)) end
    local name = match_name(token, names, warn)
    if not name then usage(("Bad parameter `%s'"):format(rest)) end
    if name ~= true then out[#out + 1] = name end
    if not comma then return out end
    rest = rest:sub(comma + 1)
  end
end

-- -u: names that must be set, "!NAME" that must be clear, UNREPLIED for
-- !SEEN_REPLY (conntrack takes anything that starts with UNREPLIED). The
-- messages quote what conntrack quotes: the rest of the argument.
local function parse_status(arg, warn)
  local st = { set = {}, clear = {} }
  local rest = arg
  while true do
    local comma = rest:find(",", 1, true)
    if comma == 1 then usage(("Bad parameter `%s'"):format(rest)) end
    local negated = rest:sub(1, 1) == "!"
    local a = negated and rest:sub(2) or rest
    local token = comma and a:sub(1, comma - (negated and 2 or 1)) or a
    if comma and token == "" then usage(("Bad parameter `%s'"):format(a)) end
    if not negated and a:sub(1, 9) == "UNREPLIED" then
      st.clear[#st.clear + 1] = "SEEN_REPLY"
      if not comma then return st end
    else
      local name = token ~= "" and match_name(token, STATUS_NAMES, warn)
      if not name then usage(("Bad parameter `%s'"):format(a)) end
      if name ~= true and name ~= "UNSET" then
        local list = negated and st.clear or st.set
        list[#list + 1] = name
      end
      if not comma then return st end
    end
    rest = rest:sub(comma + 1)
  end
end

-- ---- the parser ----

local function set_family(st, family)
  if st.family == nil then
    st.family = family
  elseif st.family ~= family then
    usage("mismatched address family")
  end
end

local ADDR_FIELD = { s = "orig_src", d = "orig_dst", r = "reply_src", q = "reply_dst" }
local MASK_OF = { s = "{", d = "}", ["["] = "{", ["]"] = "}" }

-- nfct_parse_addr_from_opt: the address, its family, and a netmask where
-- the option allows CIDR (-s, -d); a netmask sets --mask-src/--mask-dst.
local function parse_address(st, letter, arg)
  local family, bytes, mask = addr.parse_cidr(arg)
  if not family then usage(("Invalid IP address `%s'"):format(arg)) end
  set_family(st, family)
  local maskopt = MASK_OF[letter]
  if mask ~= nil and not maskopt then
    usage(("CIDR notation unavailable for `--%s'"):format(long_name(letter)))
  elseif mask == false then
    usage("Invalid netmask")
  end
  st.given[LETTER_OPTION[letter]] = true
  if mask and mask ~= (family == "ipv4" and 32 or 128) then
    st.masks[letter] = addr.netmask(family, mask)
    st.given[LETTER_OPTION[maskopt]] = true
  end
  return family, bytes
end

-- split_address_and_port for --src-nat, --dst-nat, --any-nat.
local function split_nat(arg)
  local address, port
  local open = arg:find("[", 1, true)
  local colon
  if open then
    local close = arg:find("]", open + 1, true)
    if close == open + 1 then usage("No IPv6 address specified") end
    if not close then usage("No closing ']' around IPv6 address") end
    colon = arg:find(":", close, true)
    if colon then address = arg:sub(open + 1, close - 1) end
  else
    colon = arg:find(":", 1, true)
    if colon and not arg:find(":", colon + 1, true) then
      address = arg:sub(1, colon - 1)
    else
      colon = nil
    end
  end
  if colon then
    port = arg:sub(colon + 1)
    if port == "" then usage("No port specified after `:'") end
    if not port:match("^%d+$") or tonumber(port) > 65535 then usage(("Invalid port `%s'"):format(port)) end
    port = tonumber(port)
  else
    address = arg
  end
  return address, port
end

local function parse_nat(st, letter, arg)
  st.given[LETTER_OPTION[letter]] = true
  local kind = letter == "n" and "src" or letter == "g" and "dst" or "any"
  st.nat[kind] = st.nat[kind] or {}
  if not arg then return end
  local address, port = split_nat(arg)
  local family, bytes, mask = addr.parse_cidr(address)
  if not family then usage(("Invalid IP address `%s'"):format(address)) end
  set_family(st, family)
  if mask ~= nil then usage(("CIDR notation unavailable for `--%s'"):format(long_name(letter))) end
  st.nat[kind] = { family = family, bytes = bytes, port = port }
end

local function check_type(st, p, letter, optarg)
  if optarg then return "conntrack" end
  local name = p:take_optional()
  if name == nil then return "conntrack" end
  for _, t in ipairs({ "expect", "conntrack", "dying", "unconfirmed" }) do
    if t:sub(1, #name) == name then return t end
  end
  usage(("unknown type `%s'"):format(name))
  return letter
end

local function add_command(st, command)
  if st.command then usage("Invalid commands combination") end
  st.command = command
end

-- generic_opt_check: the first missing compulsory or illegal option, in the
-- table's order; then, for coupled options (3), one complete pair.
local function opt_check(given, names, row, pairs, pairs_msg)
  local special = false
  for i, name in ipairs(names) do
    local v = row[i] or 0
    if not given[name] then
      if v == 1 then usage(("You need to supply the `--%s' option for this command"):format(name)) end
    elseif v == 0 then
      usage(("Illegal option `--%s' with this command"):format(name))
    end
    if v == 3 then special = true end
  end
  if not special or not pairs then return end
  local partial = -1
  for i, pair in ipairs(pairs) do
    local a, b = given[pair[1]], given[pair[2]]
    if a and b then return end
    if (a or b) and partial < 0 then partial = i - 1 end
  end
  usage(pairs_msg[partial <= 0 and 1 or partial + 1])
end

local BASE_PAIRS = { { "src", "dst" }, { "reply-src", "reply-dst" } }
local BASE_PAIRS_MSG = { "you have to specify `--src' and `--dst'",
                         "you have to specify `--reply-src' and `--reply-dst'" }

-- conntrack's labelmap_init: read connlabel.conf unless already read; each
-- failed attempt says so (perror).
local function labelmap_init(st, warn)
  if st.labelmap then return st.labelmap end
  local map, err = labels.load(st.labelmap_path)
  if not map then warn(("nfct_labelmap_new: %s\n"):format(err)) end
  st.labelmap = map
  return map
end

-- The bits of "name[,name...]", each of which connlabel.conf must name.
local function label_bits(map, names)
  local out = {}
  for name in (names .. ","):gmatch("([^,]*),") do
    local bit = map and map[name]
    if not bit then usage(("unknown label '%s'"):format(name)) end
    out[#out + 1] = bit
  end
  return out
end

-- ---- one handler per option ----

-- OPTION[c](st, optarg, ps, c): what option c (a letter of SHORTS, or the
-- name of an extension) does to the command description st; ps is the
-- parse in progress (p the getopt state, longs its long options, warn).
local OPTION = {}

local function command_option(st, optarg, ps, c)
  local t = check_type(st, ps.p, c, optarg)
  if t == "dying" or t == "unconfirmed" then
    if c ~= "L" then usage("Can't do that command with tables `dying' and `unconfirmed'") end
    add_command(st, "CT_LIST")
  else
    local command = CMD_TYPE[c][t == "expect" and 2 or 1]
    if not command then
      usage(("Can't do --%s on %s"):format(long_name(c), t == "conntrack" and "conntrack" or "expectations"))
    end
    add_command(st, command)
  end
  st.table = t
end
for c in pairs(CMD_TYPE) do OPTION[c] = command_option end

for c in pairs(ADDR_FIELD) do
  OPTION[c] = function(st, optarg)
    local family, bytes = parse_address(st, c, optarg)
    st[c] = { family = family, bytes = bytes }
  end
end

-- --tuple-src, --tuple-dst: checked, as conntrack checks them
OPTION["["] = function(st, optarg, _, c)
  local family, bytes = parse_address(st, c, optarg)
  st.tuple = st.tuple or {}
  st.tuple[c == "[" and "src" or "dst"] = { family = family, bytes = bytes }
end
OPTION["]"] = OPTION["["]

-- --mask-src, --mask-dst
OPTION["{"] = function(st, optarg, _, c)
  local _, bytes = parse_address(st, c, optarg)
  st.masks[c == "{" and "s" or "d"] = bytes
end
OPTION["}"] = OPTION["{"]

-- -p: the protocol's own options exist from here on, as a group of their
-- own (only the last -p's apply: conntrack offsets them)
OPTION.p = function(st, optarg, ps)
  st.given.protonum = true
  local h, num = protos.find(optarg)
  if not h then usage(("`%s' unsupported protocol"):format(optarg)) end
  st.groups = st.groups + 1
  local longs = ps.longs
  for _, o in ipairs(h.options) do
    longs[#longs + 1] = long(o[1], 1, { group = st.groups, key = o[2] })
  end
  -- two names of one option share one value, so they are no ambiguity
  local vals = {}
  for i = #longs - #h.options + 1, #longs do
    local key = longs[i].val.key
    vals[key] = vals[key] or longs[i].val
    longs[i].val = vals[key]
  end
  st.proto, st.protonum = h, num
  st.fields.proto = num
end

OPTION.t = function(st, optarg)
  st.given.timeout = true
  st.fields.timeout = number(optarg, "u32", "-t")
end

OPTION.u = function(st, optarg, ps)
  st.given.status = true
  st.status = parse_status(optarg, ps.warn)
end

OPTION.e = function(st, optarg, ps)
  st.given["event-mask"] = true
  for _, name in ipairs(parse_list(optarg, EVENT_NAMES, ps.warn)) do
    st.events = st.events or {}
    st.events[name] = true
  end
end

OPTION.o = function(st, optarg, ps)
  st.given.output = true
  for _, name in ipairs(parse_list(optarg, OUTPUT_NAMES, ps.warn)) do st.output[name] = true end
  local o = st.output
  if o.labels then
    st.wants_labelmap = true
    labelmap_init(st, ps.warn)
  end
  if o.save and (o.extended or o.timestamp or o.id or o.ktimestamp or o.labels or o.xml or o.json) then
    failure("cannot combine save output with any other output type, use -o save only")
  end
  if o.json and (o.extended or o.timestamp or o.id or o.ktimestamp or o.labels or o.xml) then
    failure("cannot combine json output with any other output type, use -o json only")
  end
end

OPTION.z = function(st) st.given.zero = true end

-- --src-nat, --dst-nat, --any-nat
OPTION.n = function(st, optarg, ps, c) parse_nat(st, c, optarg or ps.p:take_optional()) end
OPTION.g, OPTION.j = OPTION.n, OPTION.n

-- -w, --orig-zone, --reply-zone
local ZONE_FIELD = { w = "zone", ["("] = "orig_zone", [")"] = "reply_zone" }
OPTION.w = function(st, optarg, _, c)
  st.given[LETTER_OPTION[c]] = true
  st.fields[ZONE_FIELD[c]] = strict_number(optarg, 0, 0xffff) or
    bad_value(optarg, c == "w" and "-w" or "--" .. LETTER_OPTION[c])
end
OPTION["("], OPTION[")"] = OPTION.w, OPTION.w

-- --id, --secmark
OPTION.i = function(st, optarg, _, c)
  if optarg == nil then usage("option `--id' requires an argument") end
  st.given[LETTER_OPTION[c]] = true
  st.fields[c == "i" and "id" or "secmark"] = strict_number(optarg, 0, 0xffffffff) or bad_value(optarg, "-" .. c)
end
OPTION.c = OPTION.i

OPTION.m = function(st, optarg)
  st.given.mark = true
  local value, mask = optarg:match("^([^/]*)/(.*)$")
  local v = strict_number(value or optarg, 0, 0xffffffff)
  local m = 0xffffffff
  if mask then m = strict_number(mask, 0, 0xffffffff) end
  if not v or not m then bad_value(optarg, "-m") end
  st.mark = { value = v, mask = m }
end

-- -l, --label-add, --label-del: conntrack reads the names where it meets them
local LABEL_KEY = { l = "label_bits", ["<"] = "label_add_bits", [">"] = "label_del_bits" }
OPTION.l = function(st, optarg, ps, c)
  st.given[LETTER_OPTION[c]] = true
  st.wants_labelmap = true
  local map = labelmap_init(st, ps.warn)
  if st.given["label-add"] and st.given["label-del"] then
    failure("cannot use --label-add and --label-del at the same time")
  end
  if c == ">" then
    optarg = optarg or ps.p:take_optional()
    if optarg == nil then st.label_del_all = true end
  end
  if optarg then
    local key = LABEL_KEY[c]
    st[key] = st[key] or {}
    for _, bit in ipairs(label_bits(map, optarg)) do table.insert(st[key], bit) end
  end
end
OPTION["<"], OPTION[">"] = OPTION.l, OPTION.l

OPTION.a = function(_, _, ps) ps.warn("WARNING: ignoring -a, deprecated option.\n") end

OPTION.f = function(st, optarg)
  st.given.family = true
  if optarg:sub(1, 4) == "ipv4" then set_family(st, "ipv4")
  elseif optarg:sub(1, 4) == "ipv6" then set_family(st, "ipv6")
  else usage(("`%s' unsupported protocol"):format(optarg)) end
end

OPTION.b = function(st, optarg)
  st.given["buffer-size"] = true
  st.buffer_size = strict_number(optarg, 10, 0x7fffffff) or bad_value(optarg, "-b")
end

-- several --where: every one must hold
OPTION.where = function(st, optarg)
  local fn, before = where.compile(optarg), st.where_fn
  st.where = optarg
  st.where_fn = before and function(flow) return before(flow) and fn(flow) end or fn
end

-- ADDR[,ADDR...]: the module's `addr`, any of a flow's four addresses
OPTION.addr = function(st, optarg)
  if st.addr then usage("--addr given twice: list the addresses of one, separated by commas") end
  st.addr = {}
  for item in (optarg .. ","):gmatch("([^,]*),") do
    local family, bytes, plen = addr.parse_cidr(item)
    if not family or plen == false or item:find("/", 1, true) and not plen then
      usage(("invalid address `%s' with --addr"):format(item))
    end
    st.addr[#st.addr + 1] = addr.text(family, bytes) .. (plen and "/" .. plen or "")
  end
end

OPTION.handler = function(st, optarg) st.handler = optarg end

OPTION.netns = function(st, optarg)
  if optarg == "" then usage("option `--netns' requires a name") end
  st.netns = optarg
end

OPTION.resync = function(st, _, _, c) st[c] = true end
-- --labelmap FILE (conntrack 1.4.9): read before the loop, see M.parse
OPTION.labelmap = function(st, optarg) st.labelmap_path = optarg end
OPTION.strict = OPTION.resync

-- --live: a command of its own
OPTION.live = function(st) add_command(st, "CT_LIVE") end

OPTION.interval = function(st, optarg)
  local v = tonumber(optarg)
  if not v or v < 0.1 or v > 3600 or not optarg:match("^[%d.]+$") then bad_value(optarg, "--interval") end
  st.interval = v
end

OPTION["group-by"] = function(st, optarg)
  if optarg == "" or optarg:find(",,", 1, true) or optarg:find(",$") then
    usage(("--group-by: empty key in `%s'"):format(optarg))
  end
  st.group_by = optarg
end

OPTION.top = function(st, optarg)
  st.top = strict_number(optarg, 10, 0x3fffffff) or bad_value(optarg, "--top")
end

OPTION.sort = function(st, optarg)
  if not SORTS[optarg] then
    usage(("--sort: `%s' is none of flows, packets, bytes, orig_packets, orig_bytes, reply_packets, "
           .. "reply_bytes"):format(optarg))
  end
  st.sort = optarg
end

-- An option of the protocol (c = { group, key }): only the last -p's apply.
local function protocol_option(st, c, optarg, ctx)
  if c.group ~= st.groups or not st.proto.parse then return end
  st.l4[c.key] = true
  -- conntrack gives the reply tuple its protocol only here (see commands.lua)
  if st.proto.icmp and (st.r or st.q) then st.icmp_reply_proto = true end
  local fn = st.proto.parse[c.key]
  if fn then fn(ctx, c.key, optarg) end
end

-- ---- the validation pass, once every option is read ----

-- the commands of which conntrack does not default the family
local FAMILY_GIVEN = { CT_LIST = 1, CT_UPDATE = 1, CT_DELETE = 1, CT_GET = 1, CT_FLUSH = 1, CT_EVENT = 1,
                       CT_LIVE = 1 }

local function validate(st)
  local command = st.command
  -- conntrack defaults the family of commands that build a flow
  if st.family == nil and command and not FAMILY_GIVEN[command] then st.family = "ipv4" end
  if st.given["any-nat"] and (st.given["src-nat"] or st.given["dst-nat"]) then
    usage("cannot specify `--src-nat' or `--dst-nat' with `--any-nat'")
  end
  opt_check(st.given, OPTION_NAMES, LEGAL[command] or {}, BASE_PAIRS, BASE_PAIRS_MSG)
  for _, ext in ipairs({ "where", "addr", "handler", "resync", "strict", "group_by", "top", "sort", "interval" }) do
    if st[ext] and not (EXTENSIONS[ext][command]) then
      usage(("Illegal option `--%s' with this command"):format((ext:gsub("_", "-"))))
    end
  end
  if (st.top or st.sort) and not st.group_by and command == "CT_LIST" then
    usage(("option `--%s' needs `--group-by'"):format(st.top and "top" or "sort"))
  end
  if st.output.summary and not st.output.json then
    failure("cannot use summary output without json, use -o json,summary")
  end
  if command == "CT_LIVE" and st.given.output and not (st.output.json and not st.output.summary) then
    usage("--live takes only `-o json'")
  end
  if command ~= "CT_HELP" and st.proto then
    local h = st.proto
    opt_check(st.l4, h.flags, h.legal[command] or {}, h.pairs, h.pairs_msg)
  end
end

-- Parses argv (argv[0] the program name) into a command description.
-- warn(text) writes conntrack's warnings to stderr as they come.
function M.parse(argv, warn)
  local st = {
    argv0 = argv[0], given = {}, fields = {}, masks = {}, nat = {}, l4 = {}, output = {},
    groups = 0, table = "conntrack",
  }
  local longs = {}
  for i, o in ipairs(LONGS) do longs[i] = o end
  -- --labelmap FILE (conntrack 1.4.9) names the file every label option reads, wherever it stands
  for i = 1, #argv do
    if argv[i] == "--" then break end
    local name, value = argv[i]:match("^%-%-(labelm[a-z]*)=?(.*)$")
    if name and ("labelmap"):sub(1, #name) == name then
      st.labelmap_path = value ~= "" and value or argv[i + 1]
    end
  end
  local ps = { p = getopt.new(argv, SHORTS, longs), longs = longs, warn = warn }
  -- what a protocol's parse function sees
  local ctx = { fields = st.fields, cmd = st, usage = usage }
  function ctx.number(text, kind, key) return number(text, kind, "--" .. key) end

  while true do
    local c, optarg = ps.p:next()
    if c == nil then break end
    if c == ":" then
      usage(("option `%s' requires an argument"):format(ps.p:last()))
    elseif c == "?" then
      usage(("unknown option `%s'"):format(ps.p:last()))
    elseif type(c) == "table" then
      protocol_option(st, c, optarg, ctx)
    else
      OPTION[c](st, optarg, ps, c)
    end
  end
  validate(st)
  return st
end

-- ---- -R: lines of a file as argument vectors ----

-- add_param_to_argv: words split on blanks; double quotes group, and a
-- backslash escapes inside them.
function M.tokenize(line)
  local words, cur, quote_open, escaped = {}, {}, false, false
  local function flush()
    words[#words + 1] = table.concat(cur)
    cur = {}
  end
  for ch in line:gmatch(".") do
    if quote_open then
      if escaped then cur[#cur + 1] = ch; escaped = false
      elseif ch == "\\" then escaped = true
      elseif ch == '"' then quote_open = false
      else cur[#cur + 1] = ch end
    elseif ch == '"' then
      quote_open = true
    elseif ch == " " or ch == "\t" or ch == "\n" then
      if #cur > 0 then flush() end
    else
      cur[#cur + 1] = ch
    end
  end
  if #cur > 0 then flush() end
  return words
end

-- The command-line spelling of a command, for -R's refusals.
M.FILE_COMMANDS = { CT_CREATE = true, CT_ADD = true, CT_UPDATE = true, CT_DELETE = true, CT_FLUSH = true }
M.COMMAND_TEXT = {
  CT_LIST = "-L", CT_GET = "-G", CT_EVENT = "-E", CT_VERSION = "-V", CT_HELP = "-h",
  EXP_LIST = "-L expect", EXP_CREATE = "-C expect", EXP_DELETE = "-D expect", EXP_GET = "-G expect",
  EXP_FLUSH = "-F expect", EXP_EVENT = "-E expect", CT_COUNT = "-C", EXP_COUNT = "-C expect",
  CT_STATS = "-S", EXP_STATS = "-S expect",
}

return M
