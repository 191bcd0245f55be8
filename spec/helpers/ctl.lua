-- spec/helpers/ctl.lua: runs one command line through conntrack(8) and
-- through lua/ctl.lua and compares what a user sees: stdout (kernel order
-- sorted, counting clocks cut out and checked within a tolerance), stderr
-- after each program's prefix, the exit status and the table left behind.
local ns = require "spec.helpers.ns"
local assert = require "luassert"

package.path = "./lua/?/init.lua;" .. package.path

local M = {}

M.VERSION = ns.conntrack._VERSION
M.THEIR_PREFIX = "conntrack v1.4.7 (conntrack-tools): "
M.OUR_PREFIX = ("lua-conntrack v%s (conntrack-tools compatible): "):format(M.VERSION)
M.THEIR_TRY = "Try `conntrack -h' or 'conntrack --help' for more information."
M.OUR_TRY = "Try `lua-conntrack -h' or 'lua-conntrack --help' for more information."
-- The command under test; LCT_CTL_CMD may name an installed one instead.
M.CMD = os.getenv("LCT_CTL_CMD") or (ns.LUA .. " lua/ctl.lua")
M.LABELS_CONF = "/etc/xtables/connlabel.conf"

-- A word for sh, quoted.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a"); f:close()
  return s
end
M.slurp = slurp

local function spit(path, text)
  local f = assert(io.open(path, "w")); f:write(text); f:close()
end
M.spit = spit

-- Runs a shell command line with stdin closed and a deadline, so a command
-- that hangs fails its test instead of the suite.
local function run(cmd)
  return ns.run("timeout -s KILL 30 " .. cmd .. " </dev/null")
end
M.run = run

local function in_netns(netns, cmd)
  if netns then return "nsenter --net=" .. netns.path .. " " .. cmd end
  return cmd
end

-- stdout, stderr, status of `conntrack ARGS` / of the command under test,
-- in the test namespace or in netns (a holder from ns.spawn_netns()).
function M.theirs(args, netns) return run(in_netns(netns, "conntrack " .. args)) end
function M.ours(args, netns) return run(in_netns(netns, M.CMD .. " " .. args)) end

---- stderr ----

local function strip_prefix(text, prefix)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do
    if line:sub(1, #prefix) == prefix then line = line:sub(#prefix + 1) end
    lines[#lines + 1] = line
  end
  local rest = text:match("[^\n]*$")
  if rest ~= "" then
    if rest:sub(1, #prefix) == prefix then rest = rest:sub(#prefix + 1) end
    lines[#lines + 1] = rest
    return table.concat(lines, "\n")
  end
  return #lines > 0 and table.concat(lines, "\n") .. "\n" or ""
end

-- What conntrack wrote on stderr, as our program must write it: after the
-- prefix, and with our program's name in the `Try ... --help' line.
function M.their_stderr(err)
  local text = strip_prefix(err, M.THEIR_PREFIX)
  return (text:gsub(M.THEIR_TRY:gsub("%p", "%%%0"), (M.OUR_TRY:gsub("%%", "%%%%"))))
end

function M.our_stderr(err) return strip_prefix(err, M.OUR_PREFIX) end

---- stdout ----

-- Cuts the clocks out of a line: the timeout counts down and delta-time
-- counts up while the two programs read the table one after the other; the
-- receive time of an event (-o timestamp) differs. Returns the rest of the
-- line and the clocks found, in order.
local function cut_clocks(line)
  local clocks = {}
  local function keep(prefix, n, suffix)
    clocks[#clocks + 1] = tonumber(n)
    return prefix .. "<clock>" .. (suffix or "")
  end
  line = line:gsub("^%[%d+%.%d+%]\t", "[<time>]\t")
  -- the program behind an event's port id is looked up after the fact, by
  -- both tools: a sender that has already exited has none
  line = line:gsub(" progname=%S+$", "")
  if line:find("^<flow") then
    line = line:gsub("(<timeout>)(%d+)(</timeout>)", keep)
    line = line:gsub("(<deltatime>)(%d+)(</deltatime>)", keep)
    line = line:gsub("<when>.-</when>", "<when><time></when>")
  elseif line:find("^%-[AI] %-t %d") then
    line = line:gsub("^(%-[AI] %-t )(%d+)", keep)
  else
    local head, tail = line:match("^(%[<time>%]\t)(.*)$")
    head, tail = head or "", tail or line
    local tag, body = tail:match("^(%s*%[%u+%] )(.*)$")
    tag, body = tag or "", body or tail
    local l3, rest = body:match("^(ipv[46]%s+%d+%s+)(.*)$")
    l3, rest = l3 or "", rest or body
    local cut, n = rest:gsub("^(%a[%w%-]*%s+%d+%s+)(%d+)", keep)
    -- an expectation's line starts with its timeout
    if n == 0 then cut = cut:gsub("^()(%d+)( proto=)", keep) end
    line = head .. tag .. l3 .. cut
    if n > 0 then line = line:gsub("(delta%-time=)(%d+)", keep) end
  end
  return line, clocks
end
M.cut_clocks = cut_clocks

local function lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local rest = text:match("[^\n]*$")
  if rest ~= "" then lines[#lines + 1] = rest .. "<no newline>" end
  return lines
end
M.lines_of = lines_of

local XML_FRAME = { ['<?xml version="1.0" encoding="utf-8"?>'] = true, ["<conntrack>"] = true,
                    ["</conntrack>"] = true }

-- The kernel's order is not defined: runs of entry lines are sorted (with
-- their clocks), the xml header and closing tag stay where they are.
local function sort_runs(entries)
  local out, run_ = {}, {}
  local function by_line(a, b)
    if a.key ~= b.key then return a.key < b.key end
    return table.concat(a.clocks, ",") < table.concat(b.clocks, ",")
  end
  local function flush()
    table.sort(run_, by_line)
    for _, e in ipairs(run_) do out[#out + 1] = e end
    run_ = {}
  end
  for _, e in ipairs(entries) do
    if XML_FRAME[e.key] then flush(); out[#out + 1] = e else run_[#run_ + 1] = e end
  end
  flush()
  return out
end

-- Normalised stdout: the lines with their clocks cut (sorted unless
-- opts.ordered), ids cut when opts.ids == false (two namespaces number
-- their entries apart), use counts cut when opts.use == false; and the
-- clocks of each line.
function M.normalise(text, opts)
  opts = opts or {}
  local entries = {}
  for _, line in ipairs(lines_of(text)) do
    if opts.ids == false then
      -- (an ICMP id follows its code and stays)
      line = line:gsub("(%S+) id=%d+", function(prev)
        if not prev:find("^code=") then return prev .. " id=<id>" end
      end):gsub("<id>%d+</id>", "<id><id></id>")
    end
    if opts.use == false then
      line = line:gsub(" use=%d+", " use=<n>"):gsub("<use>%d+</use>", "<use><n></use>")
    end
    local key, clocks = cut_clocks(line)
    entries[#entries + 1] = { key = key, clocks = clocks }
  end
  if not opts.ordered then entries = sort_runs(entries) end
  local keys, clocks = {}, {}
  for i, e in ipairs(entries) do keys[i], clocks[i] = e.key, e.clocks end
  return keys, clocks
end

-- Two outputs agree when their normalised lines are equal and every clock
-- is within 2 s of the other's.
function M.assert_same_stdout(ours, theirs, opts, what)
  local okeys, oclocks = M.normalise(ours, opts)
  local tkeys, tclocks = M.normalise(theirs, opts)
  assert.same(tkeys, okeys, what)
  for i = 1, #okeys do
    for j, c in ipairs(oclocks[i]) do
      local t = tclocks[i][j]
      assert(t and math.abs(c - t) <= 2,
        ("%s: clock %s, conntrack shows %s in: %s"):format(what or "stdout", c, tostring(t), okeys[i]))
    end
  end
end

---- tables ----

-- A table of flows of every kind, identical however many times it is
-- created: both families, every protocol, TCP and SCTP states, zones (one
-- tuple in two zones, and per direction), marks, statuses, and SNAT and
-- DNAT told by the reply tuple (the kernel marks those *_NAT_DONE).
M.FLOWS = {
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1001, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, mark = 7, status = "ASSURED" },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1001, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, mark = 7, zone = 3 },
  { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1002, orig_dport = 22,
    state = "SYN_SENT", timeout = 3000, mark = 0x10 },
  { proto = "tcp", orig_src = "10.0.1.5", orig_dst = "10.0.0.2", orig_sport = 1003, orig_dport = 22,
    state = "TIME_WAIT", timeout = 3000, zone = 5, mark = 0x1f },
  { proto = "tcp", orig_src = "10.0.2.1", orig_dst = "10.0.0.2", orig_sport = 1004, orig_dport = 443,
    state = "CLOSE", timeout = 3000, mark = 0xffffffff },
  { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 5353, orig_dport = 53,
    timeout = 3000, mark = 0x12 },
  { proto = "udp", orig_src = "10.0.0.9", orig_dst = "10.0.0.3", orig_sport = 5354, orig_dport = 53,
    timeout = 3000, status = "ASSURED", orig_zone = 4 },
  { proto = "udp", orig_src = "10.0.0.9", orig_dst = "10.0.0.3", orig_sport = 5355, orig_dport = 53,
    timeout = 3000, reply_zone = 6 },
  { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 8, icmp_code = 0, icmp_id = 77,
    timeout = 3000 },
  { proto = "icmp", orig_src = "10.0.0.4", orig_dst = "10.0.0.1", icmp_type = 13, icmp_code = 0, icmp_id = 78,
    timeout = 3000, mark = 0x20 },
  { proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 3868, orig_dport = 3868,
    state = "ESTABLISHED", orig_vtag = 5, reply_vtag = 9, timeout = 3000 },
  { proto = "gre", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 0x4d3, orig_dport = 0x35,
    timeout = 3000 },
  { proto = "udplite", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", orig_sport = 7, orig_dport = 8,
    timeout = 3000 },
  { proto = 254, orig_src = "10.0.0.1", orig_dst = "10.0.0.2", timeout = 3000 },
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40000, orig_dport = 443,
    state = "ESTABLISHED", timeout = 3000, zone = 3, mark = 0x12 },
  { proto = "tcp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 40001, orig_dport = 22,
    state = "SYN_SENT", timeout = 3000, status = "ASSURED" },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::9", orig_sport = 1000, orig_dport = 53,
    timeout = 3000, mark = 1 },
  { proto = "udp", orig_src = "fd00:0:0:1::7", orig_dst = "fd00::9", orig_sport = 1001, orig_dport = 53,
    timeout = 3000, mark = 0x10 },
  { proto = "icmpv6", orig_src = "fd00::5", orig_dst = "fd00::1", icmp_type = 128, icmp_code = 0, icmp_id = 9,
    timeout = 3000 },
  { proto = "sctp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2905, orig_dport = 2905,
    state = "COOKIE_WAIT", timeout = 3000 },
  { proto = "gre", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 1, orig_dport = 2, timeout = 3000 },
  -- SNAT: the reply goes to another address (and port); DNAT: it comes from another
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "10.9.0.1", orig_sport = 2001, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dst = "203.0.113.1" },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "10.9.0.1", orig_sport = 2002, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_dst = "203.0.113.1", reply_dport = 61002 },
  { proto = "tcp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2005, orig_dport = 80,
    state = "ESTABLISHED", timeout = 3000, reply_src = "192.168.1.80", reply_sport = 8080 },
  { proto = "udp", orig_src = "192.168.1.10", orig_dst = "203.0.113.1", orig_sport = 2004, orig_dport = 53,
    timeout = 3000, reply_src = "192.168.1.53" },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2009, orig_dport = 53,
    timeout = 3000, reply_src = "fd02::53", reply_sport = 5353 },
  { proto = "udp", orig_src = "fd00::1", orig_dst = "fd00::2", orig_sport = 2010, orig_dport = 53,
    timeout = 3000, reply_dst = "fd01::1" },
}

-- Fills the table a handle sees.
function M.fill(ct, flows)
  for _, f in ipairs(flows or M.FLOWS) do
    local ok, err = ct:create(f)
    assert(ok, ("create %s %s %s: %s"):format(tostring(f.proto), f.orig_src, f.orig_sport or f.icmp_id or "", tostring(err)))
  end
end

-- The table as `conntrack -L ARGS` shows it (normalised, sorted).
function M.table_text(netns, args)
  local out, err, status = M.theirs("-L " .. (args or "-o extended"), netns)
  assert(status == 0, "conntrack -L failed: " .. err)
  return out
end

-- The same read through the module (for tests that need no conntrack):
-- each flow as flow:format("extended") prints it.
function M.snapshot(netns)
  local ct = netns and assert(ns.conntrack.open{ netns = netns.path }) or ns.handle()
  local lines = {}
  for flow in ct:dump() do lines[#lines + 1] = flow:format("extended") .. "\n" end
  if netns then ct:close() end
  return table.concat(lines)
end

function M.assert_same_table(text_a, text_b, what)
  M.assert_same_stdout(text_a, text_b, { ids = false }, what or "table")
end

---- comparing one command line ----

local function compare_outputs(o, t, opts, args)
  local what = "`" .. args .. "'"
  assert.equal(M.their_stderr(t.err), M.our_stderr(o.err), what .. ": stderr")
  if opts.stdout ~= false then M.assert_same_stdout(o.out, t.out, opts, what .. ": stdout") end
  assert.equal(t.status, o.status, what .. ": exit status")
end

-- Runs ARGS through both programs on the same table (conntrack first,
-- opts.their_args instead when the reference is another line), compares
-- what they print, and checks that neither changed the table. opts: ordered,
-- ids, use as for normalise. Returns both results.
function M.compare(args, opts)
  opts = opts or {}
  local before = M.table_text()
  local t, o = {}, {}
  t.out, t.err, t.status = M.theirs(opts.their_args or args)
  local after_theirs = M.table_text()
  o.out, o.err, o.status = M.ours(args)
  local after_ours = M.table_text()
  compare_outputs(o, t, opts, args)
  M.assert_same_table(before, after_theirs, "table after conntrack " .. (opts.their_args or args))
  M.assert_same_table(before, after_ours, "table after ours " .. args)
  return o, t
end

-- A second namespace holding the same table as the test namespace (both
-- filled with opts.flows or M.FLOWS after opts.setup(exec) prepared each;
-- exec runs a shell command in it). Returns its holder; .stop() ends it.
function M.twin(opts)
  opts = opts or {}
  local other = ns.spawn_netns()
  local ok, err = pcall(function()
    local exec_here = function(cmd) return run(cmd) end
    local exec_there = function(cmd) return run(in_netns(other, cmd)) end
    if opts.setup then opts.setup(exec_here); opts.setup(exec_there) end
    M.fill(ns.handle(), opts.flows)
    local handle = assert(ns.conntrack.open{ netns = other.path })
    M.fill(handle, opts.flows)
    handle:close()
  end)
  if not ok then other.stop(); error(err, 0) end
  return other
end

-- For commands that change the table: conntrack runs in the test
-- namespace, ours in a twin; what they print and the tables they leave must
-- agree. opts as for twin, and: their_args / our_args (strings, or
-- functions of the namespace holder, nil for the test one) when the line
-- differs per namespace; list, the -L options the tables are compared
-- with; stdout = false to skip stdout; check(o, t, other) for more.
function M.compare_change(args, opts)
  opts = opts or {}
  local other = M.twin(opts)
  local ok, err = pcall(function()
    local t, o = {}, {}
    local targs, oargs = opts.their_args or args, opts.our_args or args
    if type(targs) == "function" then targs = targs(nil) end
    if type(oargs) == "function" then oargs = oargs(other) end
    t.out, t.err, t.status = M.theirs(targs)
    o.out, o.err, o.status = M.ours(oargs, other)
    local copts = { ids = false, ordered = opts.ordered, use = opts.use, stdout = opts.stdout }
    compare_outputs(o, t, copts, oargs)
    M.assert_same_table(M.table_text(other, opts.list), M.table_text(nil, opts.list), "table after `" .. oargs .. "'")
    if opts.check then opts.check(o, t, other) end
  end)
  other.stop()
  if not ok then error(err, 0) end
end

---- events ----

-- Netlink sockets subscribed to conntrack groups, in this namespace or in
-- the namespace of process pid.
function M.subscribers(pid)
  local n = 0
  for line in io.lines(pid and ("/proc/%d/net/netlink"):format(pid) or "/proc/net/netlink") do
    local eth, groups = line:match("^%x+%s+(%d+)%s+%d+%s+(%x+)")
    if eth == "12" and tonumber(groups, 16) ~= 0 then n = n + 1 end
  end
  return n
end

local function sleep(s) os.execute("sleep " .. s) end
M.sleep = sleep

-- Starts a command in the background; .stop([signal]) ends it (SIGINT, as
-- Ctrl-C does) and returns its stdout, stderr and exit status; .wait(s)
-- waits up to s seconds for it to end alone.
function M.spawn(cmd)
  local base = os.tmpname()
  spit(base .. ".sh", "echo $$ > " .. base .. ".pid\nexec " .. cmd .. "\n")
  assert(os.execute(("(sh %s </dev/null >%s.out 2>%s.err; echo $? >%s.rc) &"):format(base .. ".sh", base, base, base)))
  local pid
  for _ = 1, 200 do
    pid = tonumber(slurp(base .. ".pid") or "")
    if pid then break end
    sleep(0.02)
  end
  assert(pid, "could not start " .. cmd)
  local p = { pid = pid }
  function p.done() return slurp(base .. ".rc") ~= nil and slurp(base .. ".rc") ~= "" end
  function p.wait(seconds)
    for _ = 1, math.floor((seconds or 5) / 0.05) do
      if p.done() then return true end
      sleep(0.05)
    end
    return p.done()
  end
  function p.output()
    return slurp(base .. ".out") or "", slurp(base .. ".err") or ""
  end
  function p.stop(signal)
    if not p.done() then
      os.execute(("kill -%s %d 2>/dev/null"):format(signal or "INT", pid))
      if not p.wait(5) then os.execute("kill -KILL " .. pid .. " 2>/dev/null"); p.wait(5) end
    end
    local out, err = p.output()
    local status = tonumber((slurp(base .. ".rc") or ""):match("%d+"))
    for _, ext in ipairs{ "", ".sh", ".pid", ".out", ".err", ".rc" } do os.remove(base .. ext) end
    return out, err, status
  end
  return p
end

-- Waits until n sockets listen to conntrack events (or 5 s have passed).
function M.await_subscribers(n, pid)
  for _ = 1, 100 do
    if M.subscribers(pid) >= n then return true end
    sleep(0.05)
  end
  return false
end

-- Runs `-E ARGS` through both programs at once, lets generate(ct) make
-- events with the shared handle, stops both (SIGINT, as Ctrl-C does, or
-- opts.signal) and compares.
-- opts.theirs / opts.ours: whole command lines instead; opts.netns: the
-- holder of the namespace they listen in; opts.handle: generate's handle.
function M.compare_events(args, generate, opts)
  opts = opts or {}
  local pid = opts.netns and opts.netns.pid
  local base = M.subscribers(pid)
  local theirs = M.spawn(opts.theirs or ("conntrack -E " .. args))
  local ours = M.spawn(opts.ours or (M.CMD .. " -E " .. args))
  M.await_subscribers(base + 2, pid)
  generate(opts.handle or ns.handle())
  sleep(opts.settle or 0.4)
  local t, o = {}, {}
  t.out, t.err, t.status = theirs.stop(opts.signal)
  o.out, o.err, o.status = ours.stop(opts.signal)
  assert.is_true(#t.err > 0, "conntrack -E " .. args .. " printed no summary")
  compare_outputs(o, t, { ordered = true }, opts.ours or ("-E " .. args))
  return o, t
end

---- labels ----

-- /etc/xtables/connlabel.conf, which both programs read, is put in place
-- (text, or the usual names) for the duration of fn and the machine's own
-- (if any) restored after.
function M.with_labels(fn, text)
  local old = slurp(M.LABELS_CONF)
  local had_dir = ns.execute("test -d /etc/xtables")
  if not had_dir then assert(ns.execute("mkdir /etc/xtables")) end
  spit(M.LABELS_CONF, text or "0 default\n1 one\n3 three\n5 five\n7 seven\n")
  local ok, err = pcall(fn)
  if old then spit(M.LABELS_CONF, old) else os.remove(M.LABELS_CONF) end
  if not had_dir then os.remove("/etc/xtables") end
  if not ok then error(err, 0) end
end

-- The same with no connlabel.conf at all (the machine's own put aside).
function M.without_labels(fn)
  local old = slurp(M.LABELS_CONF)
  if old then assert(os.rename(M.LABELS_CONF, M.LABELS_CONF .. ".lct-saved")) end
  local ok, err = pcall(fn)
  if old then assert(os.rename(M.LABELS_CONF .. ".lct-saved", M.LABELS_CONF)) end
  if not ok then error(err, 0) end
end

-- The kernel gives flows a label area only once a rule uses ct labels.
function M.enable_labels(exec)
  for _, cmd in ipairs{ "nft add table inet lct_labels",
                        "nft add chain inet lct_labels c '{ type filter hook output priority 0; }'",
                        "nft add rule inet lct_labels c ct label set 7" } do
    local _, err, status = exec(cmd)
    assert(status == 0, cmd .. ": " .. err)
  end
end

function M.disable_labels(exec)
  exec("nft delete table inet lct_labels")
end

return M
