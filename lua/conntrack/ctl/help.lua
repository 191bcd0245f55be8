-- conntrack/ctl/help.lua: the text of -h, conntrack(8)'s own (with this
-- program's name and version), then what only lua-conntrack has.

local M = {}

M.USAGE =
  "Command line interface for the connection tracking system. Version %s\n" ..
  "Usage: %s [commands] [options]\n" ..
  "\n" ..
  "Commands:\n" ..
  "  -L [table] [options]\t\tList conntrack or expectation table\n" ..
  "  -G [table] parameters\t\tGet conntrack or expectation\n" ..
  "  -D [table] parameters\t\tDelete conntrack or expectation\n" ..
  "  -I [table] parameters\t\tCreate a conntrack or expectation\n" ..
  "  -U [table] parameters\t\tUpdate a conntrack\n" ..
  "  -E [table] [options]\t\tShow events\n" ..
  "  -F [table]\t\t\tFlush table\n" ..
  "  -C [table]\t\t\tShow counter\n" ..
  "  -S\t\t\t\tShow statistics\n" ..
  "\n" ..
  "Tables: conntrack, expect, dying, unconfirmed\n" ..
  "\n" ..
  "Conntrack parameters and options:\n" ..
  "  -n, --src-nat ip\t\t\tsource NAT ip\n" ..
  "  -g, --dst-nat ip\t\t\tdestination NAT ip\n" ..
  "  -j, --any-nat ip\t\t\tsource or destination NAT ip\n" ..
  "  -m, --mark mark\t\t\tSet mark\n" ..
  "  -c, --secmark secmark\t\t\tSet selinux secmark\n" ..
  "  -e, --event-mask eventmask\t\tEvent mask, eg. NEW,DESTROY\n" ..
  "  -z, --zero \t\t\t\tZero counters while listing\n" ..
  "  -o, --output type[,...]\t\tOutput format, eg. xml\n" ..
  "  -l, --label label[,...]\t\tconntrack labels\n" ..
  "\n" ..
  "Expectation parameters and options:\n" ..
  "  --tuple-src ip\tSource address in expect tuple\n" ..
  "  --tuple-dst ip\tDestination address in expect tuple\n" ..
  "\n" ..
  "Updating parameters and options:\n" ..
  "  --label-add label\tAdd label\n" ..
  "  --label-del label\tDelete label\n" ..
  "\n" ..
  "Common parameters and options:\n" ..
  "  -s, --src, --orig-src ip\t\tSource address from original direction\n" ..
  "  -d, --dst, --orig-dst ip\t\tDestination address from original direction\n" ..
  "  -r, --reply-src ip\t\tSource addres from reply direction\n" ..
  "  -q, --reply-dst ip\t\tDestination address from reply direction\n" ..
  "  -p, --protonum proto\t\tLayer 4 Protocol, eg. 'tcp'\n" ..
  "  -f, --family proto\t\tLayer 3 Protocol, eg. 'ipv6'\n" ..
  "  -t, --timeout timeout\t\tSet timeout\n" ..
  "  -u, --status status\t\tSet status, eg. ASSURED\n" ..
  "  -w, --zone value\t\tSet conntrack zone\n" ..
  "  --orig-zone value\t\tSet zone for original direction\n" ..
  "  --reply-zone value\t\tSet zone for reply direction\n" ..
  "  -b, --buffer-size\t\tNetlink socket buffer size\n" ..
  "  --mask-src ip\t\t\tSource mask address\n" ..
  "  --mask-dst ip\t\t\tDestination mask address\n" ..
  "\n"

M.EXTENSIONS =
  "\n" ..
  "lua-conntrack options:\n" ..
  "  --where expr\t\t\tOnly flows for which a Lua expression over their fields holds\n" ..
  "  \t\t\t\t(-L, -D, -U, -E), e.g. 'orig_dport == 443'; several: all of them\n" ..
  "  --addr ADDR[,ADDR...]\t\tOnly flows with one of these addresses or prefixes in either\n" ..
  "  \t\t\t\ttuple, original or reply (-L, -D, -U, -E)\n" ..
  "  --handler file\t\tFor -E: a Lua file returning { new = fn, update = fn,\n" ..
  "  \t\t\t\tdestroy = fn, overflow = fn }, each called as fn(flow, ct)\n" ..
  "  --strict\t\t\tFor -E: stop at the first error of a handler or of --where\n" ..
  "  --resync\t\t\tFor -E: read the table again after events were lost\n" ..
  "  --netns name\t\t\tWork in the network namespace /run/netns/name (or a path)\n" ..
  "  -o json[,summary]\t\tOne JSON object per flow or event (and the summary, on stderr)\n" ..
  "  --group-by keys\t\tFor -L: flows grouped by fields, orig_src/24, orig_src/24/64 ...\n" ..
  "  \t\t\t\t(comma-separated), with their flows, packets and bytes\n" ..
  "  --top n\t\t\tWith --group-by: the n largest groups only\n" ..
  "  --sort sum\t\t\tWith --group-by: by bytes (the default), packets, flows,\n" ..
  "  \t\t\t\torig_bytes, orig_packets, reply_bytes or reply_packets\n" ..
  "  --live\t\t\tA live view of bytes/s and packets/s per flow, or per\n" ..
  "  \t\t\t\t--group-by group (keys: q quit, p pause, s sort, g grouping,\n" ..
  "  \t\t\t\tf filter); --top, --sort, --where and filters apply;\n" ..
  "  \t\t\t\t-z zeroes the counters it reads, -o json one object a reading\n" ..
  "  --interval s\t\t\tWith --live: seconds between readings (default 1)\n"

-- The text of -h [-p proto].
function M.text(progname, version, proto_help)
  local parts = { M.USAGE:format(version, progname) }
  if proto_help then parts[#parts + 1] = proto_help end
  parts[#parts + 1] = M.EXTENSIONS
  return table.concat(parts)
end

return M
