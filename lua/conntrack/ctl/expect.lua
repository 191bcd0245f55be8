-- conntrack/ctl/expect.lua: the commands on the expectation table (-L -G
-- -D -I -E -F -C -S expect), done through the module's expect_* operations
-- in the handle's namespace, printed as conntrack 1.4.7 prints them.
--
-- conntrack 1.4.7's own ways are kept where scripts may rely on them: -D
-- expect tells "0 expectations have been shown." and exits 1 even when it
-- deleted one (it never counts the deletion); -G expect prints no summary.
-- Where 1.4.7 is wrong, lua-conntrack is right: -I expect creates the
-- expectation of the protocol given with -p and the ports of --tuple-port-*
-- and --mask-port-* (1.4.7 sent a tuple without them, which the kernel took
-- as protocol 15 without ports).

local addr = require "conntrack.ctl.addr"
local compat = require "conntrack.ctl.compat"
local errors = require "conntrack.ctl.errors"
local output = require "conntrack.ctl.output"

local M = {}

local XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<expect>\n'

-- The -o options nfexp_snprintf reads: xml, and the flags it ignores.
local function format_of(cmd)
  local o = cmd.output or {}
  if o.json then errors.usage("json output is not available for expectations") end
  local parts = {}
  for _, name in ipairs({ "xml", "extended", "id" }) do
    if o[name] then parts[#parts + 1] = name end
  end
  return table.concat(parts, ","), o.xml
end

local function text(cmd, which)
  local a = cmd[which]
  return a and addr.text(a.family, a.bytes)
end

-- The tuple of -s -d -p --sport --dport: conntrack's key of -G and -D expect
-- (the kernel finds the expectation a flow of that tuple would match).
local function key_of(cmd)
  local f = cmd.fields
  return { proto = f.proto, src = text(cmd, "s"), dst = text(cmd, "d"), sport = f.orig_sport, dport = f.orig_dport,
           icmp_type = f.icmp_type, icmp_code = f.icmp_code, icmp_id = f.icmp_id }
end

-- A failure of the module as conntrack words it for the command.
local function check(command, ok, msg, errno)
  if ok == nil then errors.failed(command, errno, msg) end
  return ok
end

-- The module's errors in a dump's step come raised, their errno kept by
-- dump:error(): told as conntrack tells them. Ctrl-C passes through.
local function each(ct, filter, command)
  local function raised(err, errno)
    if errors.interrupted(err) then error(err, 0) end
    errors.failed(command, errno, err)
  end
  local ok, step, state, init = pcall(ct.expect_dump, ct, filter)
  if not ok then raised(step) end
  return function(s, c)
    local stepped, x = pcall(step, s, c)
    if not stepped then raised(x, select(2, s:error())) end
    return x
  end, state, init
end

local function list(cmd, ct)
  local fmt, xml = format_of(cmd)
  local out = output.out()
  local n = 0
  for x in each(ct, { family = cmd.family }, "EXP_LIST") do
    if xml and n == 0 then out:write(XML_HEAD) end
    out:write(x:format(fmt), "\n")
    n = n + 1
  end
  if xml and n > 0 then out:write("</expect>\n") end
  out:flush()
  output.summary(cmd, "%d expectations have been shown.", n)
  return 0
end

local function get(cmd, ct)
  local x = check("EXP_GET", ct:expect_get(key_of(cmd)))
  output.out():write(x:format(format_of(cmd)), "\n")
  return 0
end

local function delete(cmd, ct)
  local x = check("EXP_DELETE", ct:expect_get(key_of(cmd)))
  check("EXP_DELETE", ct:expect_delete(x))
  -- as conntrack 1.4.7, which counts no deletion
  output.summary(cmd, "%d expectations have been shown.", 0)
  return 1
end

local function create(cmd, ct)
  local f, p, masks = cmd.fields, cmd.expect_ports or {}, cmd.masks or {}
  local tuple = cmd.tuple or {}
  local function addr_of(a) return a and addr.text(a.family, a.bytes) end
  local family = cmd.family
  local function mask_text(bytes) return bytes and addr.text(family, bytes) end
  check("EXP_CREATE", ct:expect_create{
    proto = f.proto, timeout = f.timeout,
    master_src = text(cmd, "s"), master_dst = text(cmd, "d"), master_sport = f.orig_sport, master_dport = f.orig_dport,
    src = addr_of(tuple.src), dst = addr_of(tuple.dst), sport = p.sport, dport = p.dport,
    mask_src = mask_text(masks.s), mask_dst = mask_text(masks.d), mask_sport = p.mask_sport, mask_dport = p.mask_dport,
  })
  return 0
end

local function flush(_, ct)
  local ok, msg, errno = ct:expect_flush()
  output.message("expectation table has been emptied.")
  check("EXP_FLUSH", ok, msg, errno)
  return 0
end

local function count(_, ct)
  local n = check("EXP_COUNT", ct:expect_count())
  output.out():write(compat.integer_text(n), "\n")
  return 0
end

local function stats(_, ct)
  local out = output.out()
  for _, cpu in ipairs(check("EXP_STATS", ct:expect_stats())) do
    out:write(("cpu=%-4d\texpect_new=%s expect_create=%s expect_delete=%s \n"):format(cpu.cpu,
      compat.integer_text(cpu.new), compat.integer_text(cpu.create), compat.integer_text(cpu.delete)))
  end
  return 0
end

-- -E expect: each event's line, flushed, until Ctrl-C; then the summary.
local function events(cmd, ct)
  local fmt, xml = format_of(cmd)
  local sub = check("EXP_EVENT", ct:events{ "expect_new", "expect_destroy", buffer = cmd.buffer_size })
  local out, err = output.out(), output.err()
  local n = 0
  local ok, e = pcall(function()
    while true do
      -- a short wait, so that Ctrl-C is seen even when no event comes
      local kind, x = sub:next(0.25)
      if kind == "overflow" then
        err:write("WARNING: We have hit ENOBUFS! We are losing events.\n" ..
                  "This message means that the current netlink socket buffer size is too small.\n" ..
                  "Please, check --buffer-size in conntrack(8) manpage.\n")
      elseif kind then
        if xml and n == 0 then out:write(XML_HEAD) end
        out:write(x:format(fmt), "\n")
        out:flush()
        n = n + 1
      end
    end
  end)
  if not ok and not errors.interrupted(e) then error(e, 0) end
  if xml and n > 0 then out:write("</expect>\n") end
  out:flush()
  output.summary(cmd, "%d expectation events have been shown.", n)
  sub:close()
  return 0
end

local HANDLERS = {
  EXP_LIST = list, EXP_GET = get, EXP_DELETE = delete, EXP_CREATE = create, EXP_FLUSH = flush,
  EXP_COUNT = count, EXP_STATS = stats, EXP_EVENT = events,
}

-- Runs an EXP_ command on the handle ct; fail(command, msg, errno) raises
-- conntrack's "Operation failed" for the module's failures.
function M.run(cmd, ct)
  return HANDLERS[cmd.command](cmd, ct)
end

return M
