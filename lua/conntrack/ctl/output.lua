-- conntrack/ctl/output.lua: how flows are printed. The formats conntrack
-- gets from libnetfilter_conntrack come from the module's flow:format; what
-- conntrack builds itself (-o save, the XML header and <when>, the event
-- timestamp, the [USERSPACE] suffix) and -o json are built here.

local conntrack = require "conntrack"
local json = require "conntrack.ctl.json"
local protos = require "conntrack.ctl.protos"
local where = require "conntrack.ctl.where"

local M = {}

M.PREFIX = ("lua-conntrack v%s (conntrack-tools compatible): "):format(conntrack._VERSION)
M.PROGNAME = "lua-conntrack"

-- Where the command writes: run(argv, streams) may redirect both.
M.streams = { out = io.stdout, err = io.stderr }
function M.out() return M.streams.out end
function M.err() return M.streams.err end

local XML_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n'

-- ---- -o save ----

-- conntrack_status_map: the flags -o save writes, in bit order.
local SAVE_STATUS = { "EXPECTED", "SEEN_REPLY", "ASSURED", "FIXED_TIMEOUT" }

-- libnetfilter_conntrack's NFCT_GOPT_IS_SNAT/DNAT/SPAT/DPAT: the NAT is done
-- (status) and the reply tuple differs from the original one there.
M.is_snat = function(flow, status)
  return (status or flow.status).SRC_NAT_DONE and flow.reply_dst ~= flow.orig_src or false
end
M.is_dnat = function(flow, status)
  return (status or flow.status).DST_NAT_DONE and flow.reply_src ~= flow.orig_dst or false
end

-- The reply ICMP type the kernel derives (nf_conntrack_proto_icmp's invmap).
local ICMP_REPLY = { [1] = { [8] = 0, [0] = 8, [13] = 14, [14] = 13, [15] = 16, [16] = 15, [17] = 18, [18] = 17 },
                     [58] = { [128] = 129, [129] = 128, [130] = 131, [131] = 130, [139] = 140, [140] = 139 } }

-- The 16 bits the library compares as ports; for ICMP, the id and the
-- type and code share that place in a tuple.
local function l4_pair(flow, which)
  local proto = flow.proto
  if proto == "icmp" or proto == "icmpv6" then
    local id, code = flow.icmp_id or 0, flow.icmp_code or 0
    local otype = flow.icmp_type or 0
    local rtype = ICMP_REPLY[proto == "icmp" and 1 or 58][otype] or 0
    if which == "src" then return id, rtype * 256 + code end
    return otype * 256 + code, id
  end
  if which == "src" then return flow.orig_sport or 0, flow.reply_dport or 0 end
  return flow.orig_dport or 0, flow.reply_sport or 0
end
M.is_spat = function(flow, status)
  local a, b = l4_pair(flow, "src")
  return (status or flow.status).SRC_NAT_DONE and a ~= b or false
end
M.is_dpat = function(flow, status)
  local a, b = l4_pair(flow, "dst")
  return (status or flow.status).DST_NAT_DONE and a ~= b or false
end

local HANDLERS = {}
for _, p in ipairs(protos.list) do HANDLERS[p.name] = p end

-- ct_save_snprintf: a flow as the conntrack command that would create it.
-- The flow is read once, as a table; is_snat and the others take it as well.
function M.save_line(flow, prefix)
  local f = flow:totable()
  local out = { prefix }
  local function add(opt, v)
    out[#out + 1] = opt
    out[#out + 1] = tostring(v)
  end
  if f.timeout then add("-t", f.timeout) end
  local status = f.status
  if status then
    local names = {}
    for _, name in ipairs(SAVE_STATUS) do
      if status[name] then names[#names + 1] = name end
    end
    add("-u", #names > 0 and table.concat(names, ",") or "UNSET")
  end
  if f.secmark then add("-c", f.secmark) end
  if f.zone ~= 0 then add("-w", f.zone) end
  if f.orig_zone ~= 0 then add("--orig-zone", f.orig_zone) end
  if f.reply_zone ~= 0 then add("--reply-zone", f.reply_zone) end
  if f.family ~= "ipv4" and f.family ~= "ipv6" then
    M.err():write(("WARNING: unsupported l3proto %s, skipping.\n"):format(tostring(f.family)))
    return table.concat(out, " ")
  end
  status = status or {}
  if f.orig_src then add("-s", f.orig_src) end
  if f.orig_dst then add("-d", f.orig_dst) end
  if f.reply_src then add(M.is_dnat(f, status) and "-g" or "-r", f.reply_src) end
  if f.reply_dst then add(M.is_snat(f, status) and "-n" or "-q", f.reply_dst) end
  local handler = HANDLERS[f.proto]
  if handler then
    add("-p", handler.name)
    for _, opt in ipairs(handler.save) do
      local v = f[opt[2]]
      if v ~= nil then add(opt[1], opt[3] and opt[3](v) or v) end
    end
  else
    add("-p", type(f.proto) == "number" and f.proto or 0)
  end
  return table.concat(out, " ")
end

-- ---- -o json ----

-- the status flags in bit order
local STATUS_ORDER = conntrack.status_flags
local JSON_KEYS = { "event", "time" }
for _, f in ipairs(where.FIELDS) do JSON_KEYS[#JSON_KEYS + 1] = f end
for _, k in ipairs({ "portid", "progname" }) do JSON_KEYS[#JSON_KEYS + 1] = k end

-- A flow as a JSON object with the module's field names; status as the
-- list of its flags, labels as the list of their bits.
function M.json_object(flow, extra)
  local t = flow:totable()
  if t.status then
    local flags = {}
    for _, name in ipairs(STATUS_ORDER) do
      if t.status[name] then flags[#flags + 1] = name end
    end
    t.status = flags
  end
  if t.labels then
    local bits = {}
    for bit in pairs(t.labels) do bits[#bits + 1] = bit end
    table.sort(bits)
    t.labels = bits
  end
  for k, v in pairs(extra or {}) do t[k] = v end
  return json.object(t, JSON_KEYS)
end

-- ---- printers ----

local KIND = { new = "-A", update = "-U", destroy = "-D" }

-- when: the <when> element of NFCT_OF_TIME, local time.
local function xml_when(t)
  local d = os.date("*t", math.floor(t))
  return ("<when><hour>%d</hour><min>%02d</min><sec>%02d</sec><wday>%d</wday><day>%d</day>" ..
          "<month>%d</month><year>%d</year></when>"):format(d.hour, d.min, d.sec, d.wday, d.day, d.month, d.year)
end

-- A printer for one command. how.command: CT_LIST, CT_GET, CT_DELETE,
-- CT_UPDATE or CT_EVENT, which decides, as in conntrack, which -o options
-- apply and whether the XML header (and for -L its closing tag) is written.
function M.printer(cmd, how)
  local o = cmd.output
  local command = how.command
  local opts = {}
  if o.xml then opts[#opts + 1] = "xml" end
  if o.extended then opts[#opts + 1] = "extended" end
  if o.id then opts[#opts + 1] = "id" end
  local full = command == "CT_LIST" or command == "CT_GET" or command == "CT_EVENT"
  if o.ktimestamp and full then opts[#opts + 1] = "ktimestamp" end
  if cmd.wants_labelmap and command ~= "CT_DELETE" then opts[#opts + 1] = "labels" end
  local format = table.concat(opts, ",")
  local p = { count = 0, header = false }
  local out = how.out or M.out()
  local lazy_header = command ~= "CT_DELETE" and command ~= "CT_UPDATE"

  -- The dump can format the lines itself (no flow objects: conntrack -L's
  -- speed) when the output is one of nfct_snprintf's: p.format is then the
  -- dump's `format` option and p.text(line) prints each line, or
  -- p.text(lines, n) n lines that each end in a newline (a dump's batch).
  if not o.json and not o.save then p.format = format end
  -- a dump's JSON objects are the module's too (the events' carry more)
  if o.json and command == "CT_LIST" then p.format = "json" end
  function p.text(line, n)
    if o.xml and lazy_header and not p.header then
      out:write(XML_HEADER)
      p.header = true
    end
    if n then out:write(line) else out:write(line, "\n") end
    if how.flush then out:flush() end
    p.count = p.count + (n or 1)
  end

  -- line(flow [, event]): event = { kind =, time =, portid =, progname = }
  function p.line(flow, event)
    local line
    if o.json then
      local extra
      if event then
        extra = { event = event.kind, time = event.time }
        if event.portid then
          extra.portid = tonumber(event.portid)
          extra.progname = event.progname
        end
      end
      line = M.json_object(flow, extra)
    elseif o.save then
      local prefix = command == "CT_DELETE" and "-D" or (event and KIND[event.kind]) or "-A"
      line = M.save_line(flow, prefix)
    else
      if o.xml and lazy_header and not p.header then
        out:write(XML_HEADER)
        p.header = true
      end
      line = format == "" and tostring(flow) or flow:format(format)
      -- a flow read again after lost events (--resync) has no event tag of its own
      if event and event.kind == "sync" and not o.xml then line = "   [SYNC] " .. line end
      if event and o.timestamp then
        if o.xml then
          line = line:gsub("</flow>$", function() return xml_when(event.time) .. "</flow>" end)
        else
          local sec = math.floor(event.time)
          line = ("[%.8d.%.6d]\t"):format(sec, math.floor((event.time - sec) * 1e6)) .. line
        end
      end
    end
    if event and not o.json then
      -- conntrack -E: " [USERSPACE] portid=N" (from the module for the text
      -- formats, here for XML and save), then the program if it is found
      local portid = event.portid
      if portid then
        if o.xml or o.save then line = line .. " [USERSPACE] portid=" .. portid end
        if event.progname then line = line .. " progname=" .. event.progname end
      end
    end
    out:write(line, "\n")
    if how.flush then out:flush() end
    if not (event and event.kind == "sync") then p.count = p.count + 1 end
  end

  function p.finish()
    if p.header and how.footer ~= false then
      out:write("</conntrack>\n")
      out:flush()
    end
  end
  return p
end

-- The port id of the process that caused an event, from the line the
-- module prints for it (the flow does not hold it as a field).
function M.portid(flow)
  return tostring(flow):match(" %[USERSPACE%] portid=(%d+)$")
end

-- ---- stderr ----

function M.message(text)
  M.err():write(M.PREFIX, text, "\n")
end

function M.try_help()
  M.err():write(("Try `%s -h' or '%s --help' for more information.\n"):format(M.PROGNAME, M.PROGNAME))
end

-- The summary line ("2 flow entries have been shown."); with -o json,summary
-- a JSON object instead.
function M.summary(cmd, text, count)
  if cmd.output and cmd.output.summary then
    M.err():write(json.encode({ summary = text:format(count), count = count }, { "summary", "count" }), "\n")
  else
    M.message(text:format(count))
  end
end

return M
