-- conntrack/ctl/commands.lua: each command, done through the conntrack
-- module. What the module can select (fields, prefixes, mark/mask, status,
-- labels) goes into its filter; the rest (NAT, non-contiguous masks, secmark,
-- --where) becomes the filter's `where`. -U is one ct:update(filter) call;
-- -D deletes the selected flows one by one, since conntrack prints exactly
-- the flows the kernel confirmed deleted and ct:delete(filter) cannot say
-- which those were.
--
-- Where conntrack-tools 1.4.7 is wrong, lua-conntrack is right:
--  * -F -f ipv6 empties only the IPv6 flows (1.4.7 emptied everything);
--  * -U without an address works (1.4.7: "Operation not supported"), updates
--    every flow of a directional zone (1.4.7, depending on the order it meets
--    them, may leave one, saying "Operation failed: No such file or
--    directory" or counting it as updated, and exit 0; see ctl_diff_spec),
--    counts only flows it changed and prints each of them (1.4.7 printed
--    some);
--  * -D -t N alone deletes only flows with timeout N (1.4.7 deleted all);
--  * --dst-nat/--src-nat/--any-nat with an IPv6 address compare it (1.4.7
--    ignored it and matched any NAT);
--  * -E -b sizes the event socket (1.4.7 sized another socket);
--  * -A of an existing flow in a zone of one direction updates it (1.4.7
--    leaves it: "0 flow entries have been added");
--  * -I with a reply tuple and only the original ports, or of ICMP with its
--    options before -r/-q, creates the flow (1.4.7 created one of protocol 0);
--  * an entry vanishing during -D/-U is not an error (as 1.4.7), and is not
--    counted.
-- What the module cannot do is refused with exit status 1 rather than
-- pretended: -U --state of SCTP and DCCP flows. The expectation table's
-- commands are conntrack/ctl/expect.lua's.

-- (-E's events and -h's help are loaded when asked for: a listing starts sooner)
local conntrack = require "conntrack"
local compat = require "conntrack.ctl.compat"
local addr = require "conntrack.ctl.addr"
local errors = require "conntrack.ctl.errors"
local options = require "conntrack.ctl.options"
local output = require "conntrack.ctl.output"
local protos = require "conntrack.ctl.protos"

local M = {}

local failure, failed, dump, E = errors.failure, errors.failed, errors.dump, errors.ERRNO

local function unsupported(what)
  failure(what .. " is not supported by the conntrack module")
end

-- ---- filters ----

local function address_text(cmd, which)
  local a = cmd[which]
  return a and addr.text(a.family, a.bytes)
end

local ADDR_FIELDS = { s = "orig_src", d = "orig_dst", r = "reply_src", q = "reply_dst" }

-- filter_nat: --src-nat, --dst-nat, --any-nat, each with an optional
-- address and port, as libnetfilter_conntrack tells a translation.
local function nat_predicate(cmd)
  local given = cmd.given
  if not (given["src-nat"] or given["dst-nat"] or given["any-nat"]) then return nil end
  local any = cmd.nat.any
  local function side(spec, is_nat, is_pat, addr_field, port_field)
    return function(flow, status)
      local has = false
      local check_address = spec.bytes ~= nil
      if check_address then
        has = is_nat(flow, status) and addr.bytes(flow[addr_field]) == spec.bytes
      end
      if spec.port then
        local ret = is_pat(flow, status) and flow[port_field] == spec.port
        if check_address and has and not ret then has = false end
        if not check_address and ret then has = true end
      end
      if not check_address and not spec.port then
        has = is_nat(flow, status) or is_pat(flow, status)
      end
      return has
    end
  end
  local src = side(any or cmd.nat.src or {}, output.is_snat, output.is_spat, "reply_dst", "reply_dport")
  local dst = side(any or cmd.nat.dst or {}, output.is_dnat, output.is_dpat, "reply_src", "reply_sport")
  if given["any-nat"] then
    return function(flow) local st = flow.status or {}; return src(flow, st) or dst(flow, st) end
  elseif given["src-nat"] and given["dst-nat"] then
    return function(flow) local st = flow.status or {}; return src(flow, st) and dst(flow, st) end
  elseif given["src-nat"] then
    return function(flow) return src(flow, flow.status or {}) end
  end
  return function(flow) return dst(flow, flow.status or {}) end
end

-- The module filter for a command; its `where` gathers what the module
-- cannot select. Returns nil when nothing can match (conntrack's kernel
-- filter then returns nothing too: -m 3/1 asks for bits outside the mask).
function M.filter(cmd, purpose)
  local f, preds = {}, {}
  local given = cmd.given
  if given["mask-src"] and not cmd.s then options.usage("Can't use --mask-src without --src") end
  if given["mask-dst"] and not cmd.d then options.usage("Can't use --mask-dst without --dst") end
  if cmd.family then f.family = cmd.family end
  for letter, field in pairs(ADDR_FIELDS) do
    local a = cmd[letter]
    if a then
      local mask = cmd.masks[letter]
      local plen = mask and addr.prefix_len(mask)
      if not mask then
        f[field] = addr.text(a.family, a.bytes)
      elseif plen then
        f[field] = addr.text(a.family, addr.band(a.bytes, mask)) .. "/" .. plen
      else
        local net = addr.band(a.bytes, mask)
        preds[#preds + 1] = function(flow)
          local b = addr.bytes(flow[field])
          return b ~= nil and #b == #mask and addr.band(b, mask) == net
        end
      end
    end
  end
  local fields = cmd.fields
  if fields.proto then f.proto = fields.proto end
  for _, k in ipairs({ "orig_sport", "orig_dport", "reply_sport", "reply_dport", "icmp_type", "icmp_code",
                       "icmp_id" }) do
    f[k] = fields[k]
  end
  if purpose ~= "update" then
    if fields.state then f.state = fields.state end
    for _, k in ipairs({ "zone", "orig_zone", "reply_zone" }) do f[k] = fields[k] end
    if fields.secmark then
      -- the kernel no longer reports secmarks; libnetfilter_conntrack reads a
      -- missing one as 0
      local want = fields.secmark
      preds[#preds + 1] = function(flow) return (flow.secmark or 0) == want end
    end
    if cmd.mark then
      if compat.band(cmd.mark.value, compat.bnot(cmd.mark.mask)) ~= 0 then return nil end
      f.mark = cmd.mark.mask == 0xffffffff and cmd.mark.value or { cmd.mark.value, cmd.mark.mask }
    end
    if cmd.status then
      local names = {}
      for _, n in ipairs(cmd.status.set) do names[#names + 1] = n end
      for _, n in ipairs(cmd.status.clear) do names[#names + 1] = "!" .. n end
      if #names > 0 then f.status = names end
    end
  end
  if purpose == "delete" and fields.timeout then f.timeout = fields.timeout end
  if purpose == "delete" or purpose == "update" then f.id = fields.id end
  if cmd.label_bits then f.labels = cmd.label_bits end
  if cmd.addr then f.addr = cmd.addr end
  preds[#preds + 1] = nat_predicate(cmd)
  if cmd.where_fn then preds[#preds + 1] = cmd.where_fn end
  if #preds == 1 then
    f.where = preds[1]
  elseif #preds > 1 then
    f.where = function(flow)
      for _, p in ipairs(preds) do
        if not p(flow) then return false end
      end
      return true
    end
  end
  return f
end

-- ---- one flow's tuple, for get and create ----

local function l4_fields(cmd, t)
  local fields = cmd.fields
  for _, k in ipairs({ "orig_sport", "orig_dport", "reply_sport", "reply_dport", "icmp_type", "icmp_code",
                       "icmp_id" }) do
    t[k] = fields[k]
  end
  if cmd.proto and cmd.proto.icmp then t.icmp_id = t.icmp_id or 0 end
  return t
end

-- The lookup key of a flow the module printed: its original tuple and zone.
local function key_of(flow)
  local t = { proto = flow.proto, orig_src = flow.orig_src, orig_dst = flow.orig_dst }
  if flow.orig_sport then t.orig_sport, t.orig_dport = flow.orig_sport, flow.orig_dport end
  if flow.icmp_type then t.icmp_type, t.icmp_code, t.icmp_id = flow.icmp_type, flow.icmp_code, flow.icmp_id end
  for _, z in ipairs({ "zone", "orig_zone", "reply_zone" }) do
    if (flow[z] or 0) ~= 0 then t[z] = flow[z] end
  end
  return t
end

-- ---- commands ----

local function summary(cmd, text, count)
  output.summary(cmd, text, count)
  return count == 0 and 1 or 0
end

-- -z zeroes every flow the kernel dumps: as conntrack, not with a filter
-- that would leave some of them out of the output (--where and --addr too)
local function check_zero(cmd)
  local given = cmd.given
  if given.zero and (given.protonum or given.src or given.dst or given["reply-src"] or given["reply-dst"] or
      given.mark or given.secmark or given.status or given.id or given.zone or given.label or
      given["orig-zone"] or given["reply-zone"] or cmd.where_fn or cmd.addr) then
    options.usage("Can't use -z with filtering parameters")
  end
end

local function list(cmd, ct)
  local given = cmd.given
  check_zero(cmd)
  local f = M.filter(cmd, "list")
  local opts = { zero = given.zero or nil,
                 list = (cmd.table == "dying" or cmd.table == "unconfirmed") and cmd.table or nil }
  -- conntrack hands -u to the kernel, which refuses a status filter of no flags
  if cmd.status and #cmd.status.set == 0 and #cmd.status.clear == 0 then
    failed("CT_LIST", E.EINVAL)
  end
  if cmd.group_by then
    return require("conntrack.ctl.top").list(cmd, ct, f, opts, function(msg, errno) failed("CT_LIST", errno, msg) end,
                                             options.usage)
  end
  local printer = output.printer(cmd, { command = "CT_LIST" })
  if f and printer.format then
    -- the lines of a whole datagram at a time, with their number
    opts.format, opts.batch = printer.format, true
    for lines, n in dump(ct, "CT_LIST", f, opts) do printer.text(lines, n) end
  elseif f then
    for flow in dump(ct, "CT_LIST", f, opts) do printer.line(flow) end
  end
  printer.finish()
  output.summary(cmd, "%d flow entries have been shown.", printer.count)
  return 0
end

local function get(cmd, ct)
  if not cmd.s then failed("CT_GET", E.EINVAL) end
  local key = l4_fields(cmd, { proto = cmd.fields.proto, orig_src = address_text(cmd, "s"),
                               orig_dst = address_text(cmd, "d") })
  key.reply_sport, key.reply_dport = nil, nil
  local flow, msg, errno = ct:get(key)
  if not flow then failed("CT_GET", errno, msg) end
  local printer = output.printer(cmd, { command = "CT_GET", footer = false })
  -- conntrack passes the flow through its filter, where only -l can fail
  local wanted = true
  for _, bit in ipairs(cmd.label_bits or {}) do
    if not (flow.labels and flow.labels[bit]) then wanted = false end
  end
  if wanted then printer.line(flow) end
  return summary(cmd, "%d flow entries have been shown.", printer.count)
end

-- The fields of the flow -I/-A creates; the original tuple is derived from
-- the reply one when only that is given, as conntrack does.
local function creation(cmd)
  local fields = cmd.fields
  local t = l4_fields(cmd, { proto = fields.proto })
  t.orig_src, t.orig_dst = address_text(cmd, "s"), address_text(cmd, "d")
  t.reply_src, t.reply_dst = address_text(cmd, "r"), address_text(cmd, "q")
  if not t.orig_src then
    t.orig_src, t.orig_dst = t.reply_dst, t.reply_src
    t.orig_sport, t.orig_dport = t.orig_sport or t.reply_dport, t.orig_dport or t.reply_sport
  end
  local nat = cmd.nat
  if cmd.given["src-nat"] and nat.src and nat.src.bytes then
    t.reply_dst = addr.text(nat.src.family, nat.src.bytes)
    t.reply_dport = nat.src.port or t.reply_dport
  end
  if cmd.given["dst-nat"] and nat.dst and nat.dst.bytes then
    t.reply_src = addr.text(nat.dst.family, nat.dst.bytes)
    t.reply_sport = nat.dst.port or t.reply_sport
  end
  for _, k in ipairs({ "state", "timeout", "zone", "orig_zone", "reply_zone", "orig_vtag", "reply_vtag" }) do
    t[k] = fields[k]
  end
  if t.state and cmd.proto and cmd.proto.name == "dccp" and (t.state == "IGNORE" or t.state == "INVALID") then
    unsupported("creating a DCCP flow in state " .. t.state)
  end
  if cmd.mark then t.mark = cmd.mark.value end
  if cmd.status and #cmd.status.set > 0 then t.status = cmd.status.set end
  if cmd.label_add_bits then t.labels = cmd.label_add_bits end
  return t
end

-- conntrack sends a reply tuple whose protocol part only its reply port
-- options (or, for ICMP, its ICMP options given after -r/-q) fill in; the
-- kernel refuses it ("invalid parameters") with the original tuple given
-- too, and always for ICMP without one. The same command fails alike here.
local function refused_reply(cmd)
  if not (cmd.r or cmd.q) then return false end
  local p = cmd.proto
  if p and p.icmp then return not (cmd.s and cmd.icmp_reply_proto) end
  return cmd.s ~= nil and p ~= nil and p.pairs ~= nil and
         not (cmd.l4["reply-port-src"] or cmd.l4["reply-port-dst"] or
              cmd.l4["reply-key-src"] or cmd.l4["reply-key-dst"])
end

local function create(cmd, ct, ctx)
  local command = cmd.command
  if refused_reply(cmd) then failed(command, E.EINVAL) end
  local fields = creation(cmd)
  -- what the module refuses as incomplete, the kernel refuses as invalid
  local called, ok, msg, errno = pcall(ct.create, ct, fields)
  if not called then ok, msg, errno = nil, ok, E.EINVAL end
  if not ok and command == "CT_ADD" and errno == E.EEXIST then
    -- -A updates an existing flow (conntrack sends it without NLM_F_EXCL):
    -- the one its tuple and zones select
    local changes = { timeout = fields.timeout, mark = fields.mark, labels = fields.labels,
                      status = fields.status }
    ok, msg, errno = ct:update(key_of(fields), changes)
  end
  if not ok then failed(command, errno, msg) end
  if ctx.load_file then return 0 end
  return summary(cmd, command == "CT_ADD" and "%d flow entries have been added." or
                      "%d flow entries have been created.", 1)
end

-- ct:delete/ct:update by filter; an error of the predicate (--where) comes
-- back as itself, not as the module's report of it.
function M.sweep(ct, op, f, changes)
  local caught
  if f.where then
    local pred = f.where
    f.where = function(flow)
      local ok, r = pcall(pred, flow)
      if not ok then caught = r; error(r, 0) end
      return r
    end
  end
  local ok, n, msg, errno = pcall(ct[op], ct, f, changes)
  if not ok then error(caught or n, 0) end
  return n, msg, errno
end

-- Each flow the filter selects is deleted on its own, and printed once the
-- kernel confirmed it, as conntrack does: a flow that vanished meanwhile is
-- neither printed nor counted.
local function delete(cmd, ct, ctx)
  local f = M.filter(cmd, "delete")
  local printer = output.printer(cmd, { command = "CT_DELETE" })
  if f then
    for flow in dump(ct, "CT_DELETE", f) do
      local ok, msg, errno = ct:delete(flow)
      if ok then
        printer.line(flow)
      elseif errno ~= E.ENOENT then
        failed("CT_DELETE", errno, msg)
      end
    end
  end
  if ctx.load_file then return 0 end
  return summary(cmd, "%d flow entries have been deleted.", printer.count)
end

local function changes_of(cmd)
  local c = {}
  if cmd.fields.state then
    -- the kernel changes an SCTP or DCCP state only with its tags or role
    -- (1.4.7 said it updated an SCTP flow, and left its state as it was)
    if cmd.proto.name ~= "tcp" then
      unsupported(("changing the state of an %s flow"):format(cmd.proto.name:upper()))
    end
    c.state = cmd.fields.state
  end
  if cmd.given.timeout then c.timeout = cmd.fields.timeout end
  if cmd.mark then c.mark = { cmd.mark.value, cmd.mark.mask } end
  if cmd.status and #cmd.status.set > 0 then c.status = cmd.status.set end
  if cmd.label_del_all then
    c.labels = {}
  elseif cmd.label_add_bits then
    c.labels = { add = cmd.label_add_bits }
  elseif cmd.label_del_bits then
    c.labels = { remove = cmd.label_del_bits }
  end
  return next(c) and c or nil
end

local function update(cmd, ct, ctx)
  local f = M.filter(cmd, "update")
  local changes = changes_of(cmd)
  local printer = output.printer(cmd, { command = "CT_UPDATE" })
  local updated = 0
  if f and changes then
    -- the module calls the predicate only for flows the changes do alter
    local chosen = {}
    local pred = f.where
    f.where = function(flow)
      if pred and not pred(flow) then return false end
      chosen[#chosen + 1] = flow
      return true
    end
    local n, msg, errno = M.sweep(ct, "update", f, changes)
    if not n then failed("CT_UPDATE", errno, msg) end
    updated = n
    -- conntrack prints each flow as the kernel has it after the update
    for _, old in ipairs(chosen) do
      local now = ct:get(key_of(old))
      if now then printer.line(now) end
    end
  end
  if ctx.load_file then return 0 end
  return summary(cmd, "%d flow entries have been updated.", updated)
end

local function flush(cmd, ct)
  local ok, msg, errno = ct:flush(cmd.family and { family = cmd.family } or nil)
  if not ok then failed("CT_FLUSH", errno, msg) end
  output.message("connection tracking table has been emptied.")
  return 0
end

local function count(_, ct)
  local n, msg, errno = ct:count()
  if not n then failed("CT_COUNT", errno, msg) end
  output.out():write(compat.integer_text(n), "\n")
  return 0
end

-- nfct_stats_cb: the counters the kernel sent, in attribute order.
local STATS = { "searched", "found", "new", "invalid", "ignore", "delete", "delete_list", "insert",
                "insert_failed", "drop", "early_drop", "error", "search_restart", "clash_resolve", "chaintoolong" }

local function stats(_, ct)
  local s, msg, errno = ct:stats()
  if not s then failed("CT_STATS", errno, msg) end
  for _, cpu in ipairs(s) do
    local parts = { ("cpu=%-4d\t"):format(cpu.cpu) }
    for _, name in ipairs(STATS) do
      if cpu[name] then parts[#parts + 1] = name .. "=" .. compat.integer_text(cpu[name]) .. " " end
    end
    output.out():write(table.concat(parts), "\n")
  end
  return 0
end

-- ---- the expectation table: conntrack/ctl/expect.lua ----

local function expect(cmd, ct)
  return require("conntrack.ctl.expect").run(cmd, ct)
end

-- ---- help ----

local function usage_text(cmd)
  local proto_help
  if cmd.command == "CT_HELP" and cmd.proto then
    proto_help = ("Proto `%s' help:\n"):format(protos.help_name(cmd.proto, cmd.protonum)) .. cmd.proto.help
  end
  output.out():write(require("conntrack.ctl.help").text(cmd.argv0 or output.PROGNAME, conntrack._VERSION, proto_help))
  return 0
end

local function version()
  output.out():write(("lua-conntrack v%s (conntrack-tools compatible)\n"):format(conntrack._VERSION))
  return 0
end

local function event(cmd, ct, ctx)
  return require("conntrack.ctl.events").run(cmd, ct, ctx, M.filter(cmd, "event"))
end

-- Each command's handler(cmd, ct, ctx); those in OFFLINE get no handle.
local HANDLERS = {
  CT_LIST = list, CT_GET = get, CT_CREATE = create, CT_ADD = create, CT_DELETE = delete,
  CT_UPDATE = update, CT_FLUSH = flush, CT_EVENT = event, CT_COUNT = count, CT_STATS = stats,
  EXP_LIST = expect, EXP_CREATE = expect, EXP_DELETE = expect, EXP_GET = expect, EXP_FLUSH = expect,
  EXP_EVENT = expect, EXP_COUNT = expect, EXP_STATS = expect,
  CT_HELP = usage_text, CT_VERSION = version,
  CT_LIVE = function(cmd, ct)
    check_zero(cmd)
    return require("conntrack.ctl.live").run(cmd, ct, M.filter(cmd, "list"))
  end,
}
local OFFLINE = { CT_HELP = true, CT_VERSION = true }

-- Runs a parsed command (no command is -h); returns the exit status or
-- raises a ctl error. ctx.open(netns) gives the handle; ctx.load_file is set
-- under -R.
function M.run(cmd, ctx)
  local command = cmd.command or "CT_HELP"
  if cmd.labelmap_path then
    local ok, msg = conntrack.labelmap(cmd.labelmap_path)
    if not ok then failure(msg) end
  end
  local ct = not OFFLINE[command] and ctx.open(cmd.netns) or nil
  return HANDLERS[command](cmd, ct, ctx)
end

return M
