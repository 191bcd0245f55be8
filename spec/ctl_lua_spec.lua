-- spec/ctl_lua_spec.lua: what lua/ctl.lua does beyond conntrack(8): --where
-- predicates (sandboxed, checked before anything is touched), -o json,
-- --handler files for -E (errors reported, --strict stops), --netns, and the
-- module conntrack.ctl whose run(argv) returns the exit status.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"
local common = require "spec.helpers.common"
local json = require "dkjson"

-- From a checkout the module conntrack.ctl is lua/ctl.lua (installed as
-- conntrack/ctl.lua).
local CTL_MODULE = [[
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
if not (package.searchpath and package.searchpath("conntrack.ctl", package.path)) then
  package.preload["conntrack.ctl"] = function() return dofile("lua/ctl.lua") end
end
]]
assert((loadstring or load)(CTL_MODULE))()

local temp = {}

before_each(function()
  ns.fresh()
end)

after_each(function()
  for _, path in ipairs(temp) do os.remove(path) end
  temp = {}
  ns.fresh()
end)

local function filled()
  ctl.fill(ns.handle())
end

local function file(text)
  local path = os.tmpname()
  temp[#temp + 1] = path
  ctl.spit(path, text)
  return path
end

local function flows(filter)
  local list = {}
  for flow in ns.handle():dump(filter) do list[#list + 1] = flow end
  return list
end

local function flows_in(netns, filter)
  local ct = assert(ns.conntrack.open{ netns = netns.path })
  local list = {}
  for flow in ct:dump(filter) do list[#list + 1] = flow end
  ct:close()
  return list
end

-- What conntrack -L would print for these flows, one line each.
local function lines_for(list, format)
  local out = {}
  for _, flow in ipairs(list) do out[#out + 1] = (format and flow:format(format) or tostring(flow)) .. "\n" end
  return table.concat(out)
end

local function where(expr) return "--where " .. ctl.q(expr) end

-- The control for tests that expect nothing to happen: on the filled
-- table a plain expression selects the two flows marked 7.
local function where_works()
  local out, err, status = ctl.ours("-L " .. where("mark == 7"))
  assert.equal(0, status, err)
  ctl.assert_same_stdout(out, lines_for(flows{ mark = 7 }))
  assert.equal(2, #ctl.lines_of(out))
end

describe("--where", function()
  describe("with -L", function()
    -- each expression and the conntrack options that select the same flows
    local SAME = {
      { 'orig_dport == 22', "-p tcp --dport 22 -f ipv4", "-f ipv4" },
      { 'proto == "udp" and mark == 0x12', "-p udp -m 0x12" },
      { 'family == "ipv6" and state == "ESTABLISHED"', "-f ipv6 -p tcp --state ESTABLISHED" },
      { 'zone == 3', "-w 3" },
      { 'status.ASSURED', "-u ASSURED" },
      { 'snat', "-n -p tcp" , "-p tcp" },
      { 'reply_src ~= orig_dst', "-g -p tcp", "-p tcp" },
      { '(orig_bytes or 0) > 1e6', "-s 10.200.0.0/16" },
    }
    for case, long in common.family(SAME) do
      local expr, theirs, extra = case[1], case[2], case[3]
      it(("lists the flows for which `%s' is true #diff%s"):format(expr, long), function()
        filled()
        ctl.compare("-L " .. (extra and extra .. " " or "") .. where(expr), { their_args = "-L " .. theirs })
      end)
    end

    it("lists the flows for which an `or' of two fields is true", function()
      filled()
      local list = flows{ orig_src = "10.0.0.9" }
      for _, f in ipairs(flows{ proto = "icmp", icmp_type = 13 }) do list[#list + 1] = f end
      assert.equal(3, #list)
      local out, err, status = ctl.ours("-L " .. where('orig_src == "10.0.0.9" or icmp_type == 13'))
      ctl.assert_same_stdout(out, lines_for(list))
      assert.equal("3 flow entries have been shown.\n", ctl.our_stderr(err))
      assert.equal(0, status)
    end)

    it("applies conntrack's options first, then the expression #diff", function()
      filled()
      ctl.compare("-L -p udp -o extended " .. where("mark >= 0x10"),
                  { their_args = "-L -p udp -o extended -m 0x10/0xfffffff0" })
    end)

    it("prints the flows in the -o format asked for", function()
      filled()
      local out, _, status = ctl.ours("-L -o xml,id " .. where('proto == "icmp"'))
      local list = flows{ proto = "icmp" }
      assert.equal(2, #list)
      ctl.assert_same_stdout(out, '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n'
        .. lines_for(list, "xml,id") .. "</conntrack>\n")
      assert.equal(0, status)
    end)
  end)

  describe("with -D", function()
    it("deletes only the flows for which the expression is true", function()
      filled()
      local gone = flows(function(f) return f.proto == "tcp" and f.orig_dport == 22 end)
      assert.equal(3, #gone)
      local kept = flows(function(f) return not (f.proto == "tcp" and f.orig_dport == 22) end)
      local out, err, status = ctl.ours("-D -p tcp " .. where("orig_dport == 22"))
      ctl.assert_same_stdout(out, lines_for(gone))
      assert.equal("3 flow entries have been deleted.\n", ctl.our_stderr(err))
      assert.equal(0, status)
      ctl.assert_same_stdout(lines_for(flows()), lines_for(kept))
    end)

    it("exits with 1 when the expression is true for no flow", function()
      filled()
      local before = ctl.snapshot()
      local out, err, status = ctl.ours("-D " .. where("mark == 12345"))
      assert.equal("", out)
      assert.equal("0 flow entries have been deleted.\n", ctl.our_stderr(err))
      assert.equal(1, status)
      ctl.assert_same_table(ctl.snapshot(), before)
    end)
  end)

  describe("with -U", function()
    it("changes only the flows for which the expression is true", function()
      filled()
      local chosen = {}
      for _, f in ipairs(flows(function(f) return f.orig_dport == 53 end)) do chosen[f.id] = true end
      local n = 0
      for _ in pairs(chosen) do n = n + 1 end
      assert.equal(9, n) -- (the GRE flow's key 0x35 is its dport)
      local _, err, status = ctl.ours("-U -m 0x99 " .. where("orig_dport == 53"))
      assert.equal("9 flow entries have been updated.\n", ctl.our_stderr(err))
      assert.equal(0, status)
      for _, f in ipairs(flows()) do
        if chosen[f.id] then assert.equal(0x99, f.mark) else assert.not_equal(0x99, f.mark) end
      end
    end)
  end)

  describe("with -E", function()
    it("prints only the events for which the expression is true #diff", function()
      local function generate(ct)
        ctl.fill(ct)
        assert(ct:update({ proto = "udp", orig_sport = 5353 }, { mark = 3 }))
        assert(ct:flush())
      end
      ctl.compare_events("-p udp", generate, { ours = ctl.CMD .. " -E " .. where('proto == "udp"') })
    end)
  end)

  describe("that is not valid Lua", function()
    for args, long in common.family{ "-L " .. where("orig_dport =="), "-D " .. where("orig_dport =="),
                                     "-D -p udp " .. where(")"), "-U -m 1 " .. where("mark = 1"),
                                     "-E " .. where("proto == 'udp"), "-L " .. where("flow flow") } do
      it(("is refused with exit 2 and nothing touched: `%s'%s"):format(args, long), function()
        filled()
        where_works()
        local before = ctl.snapshot()
        local out, err, status = ctl.ours(args)
        assert.equal("", out)
        assert.equal(2, status)
        assert(err:sub(1, #ctl.OUR_PREFIX) == ctl.OUR_PREFIX, "no prefix in: " .. err)
        assert.not_matches("flow entries", err)
        ctl.assert_same_table(ctl.snapshot(), before)
      end)
    end
  end)

  describe("in its sandbox", function()
    it("cannot reach os, io, package, require, load, dofile or debug", function()
      filled()
      where_works()
      local out = ctl.ours("-L " .. where("os or io or package or require or load or loadfile or dofile or debug"))
      assert.equal("", out)
    end)

    it("cannot end the program with os.exit", function()
      filled()
      where_works()
      local before = ctl.snapshot()
      local _, _, status = ctl.ours("-D " .. where("os.exit(7)"))
      assert.not_equal(7, status)
      ctl.assert_same_table(ctl.snapshot(), before)
    end)

    it("cannot open a file with io.open", function()
      filled()
      where_works()
      local path = os.tmpname()
      os.remove(path)
      temp[#temp + 1] = path
      ctl.ours("-L " .. where(("io.open(%q, 'w')"):format(path)))
      assert.is_nil(ctl.slurp(path))
    end)

    it("cannot load a chunk that reaches the real environment", function()
      filled()
      where_works()
      local _, _, status = ctl.ours("-D " .. where('load("return os")().exit(7)'))
      assert.not_equal(7, status)
      assert.equal(#ctl.FLOWS, ns.handle():count())
    end)
  end)
end)

describe("-o json", function()
  local SCALARS = { "family", "proto", "orig_src", "orig_dst", "reply_src", "reply_dst", "orig_sport", "orig_dport",
                    "reply_sport", "reply_dport", "icmp_type", "icmp_code", "icmp_id", "state", "orig_vtag",
                    "reply_vtag", "mark", "zone", "orig_zone", "reply_zone", "id", "use" }

  local function decode_lines(text)
    local objects = {}
    for _, line in ipairs(ctl.lines_of(text)) do
      local obj, _, msg = json.decode(line)
      assert(type(obj) == "table", ("not a JSON object (%s): %s"):format(tostring(msg), line))
      objects[#objects + 1] = obj
    end
    return objects
  end

  local function has_status(status, name)
    if type(status) ~= "table" then return false end
    if status[name] == true then return true end
    for _, v in ipairs(status) do if v == name then return true end end
    return false
  end

  it("prints one JSON object per flow with the module's field names and values", function()
    filled()
    local out, _, status = ctl.ours("-L -o json")
    assert.equal(0, status)
    local objects = decode_lines(out)
    local by_id = {}
    for _, obj in ipairs(objects) do
      assert(obj.id, "no id in " .. json.encode(obj))
      by_id[obj.id] = obj
    end
    local all = flows()
    assert.equal(#all, #objects)
    for _, flow in ipairs(all) do
      local obj = assert(by_id[flow.id], "no object for " .. tostring(flow))
      local want, got = {}, {}
      for _, key in ipairs(SCALARS) do want[key], got[key] = flow[key], obj[key] end
      assert.same(want, got)
      assert(math.abs(obj.timeout - flow.timeout) <= 2, tostring(flow))
      assert.equal(flow.status.ASSURED == true, has_status(obj.status, "ASSURED"), tostring(flow))
    end
  end)

  it("is read by jq", function()
    filled()
    local path = file(ctl.ours("-L -o json -p tcp"))
    local out, err, status = ctl.run("jq -r .orig_src " .. path)
    assert.equal(0, status, err)
    local srcs = {}
    for _, f in ipairs(flows{ proto = "tcp" }) do srcs[#srcs + 1] = f.orig_src .. "\n" end
    table.sort(srcs)
    local got = ctl.lines_of(out)
    table.sort(got)
    assert.equal(table.concat(srcs), table.concat(got, "\n") .. "\n")
  end)

  it("prints only the flows conntrack's options select", function()
    filled()
    local out, _, status = ctl.ours("-L -o json -f ipv6 -p udp")
    assert.equal(0, status)
    assert.equal(#flows{ family = "ipv6", proto = "udp" }, #decode_lines(out))
  end)

  it("prints one JSON object per event, in the order conntrack prints them #diff", function()
    local theirs = ctl.spawn("conntrack -E")
    local ours = ctl.spawn(ctl.CMD .. " -E -o json")
    ctl.await_subscribers(2)
    local ct = ns.handle()
    ctl.fill(ct)
    assert(ct:update({ proto = "tcp", orig_sport = 1002 }, { mark = 9 }))
    assert(ct:flush())
    ctl.sleep(0.4)
    local tout = theirs.stop()
    local oout, oerr, ostatus = ours.stop()
    assert.equal(0, ostatus, oerr)
    local lines, objects = ctl.lines_of(tout), decode_lines(oout)
    assert.equal(#lines, #objects)
    for i, line in ipairs(lines) do
      local tag = line:match("%[(%u+)%]"):lower()
      local kind
      for _, v in pairs(objects[i]) do
        if type(v) == "string" and v:lower() == tag then kind = v end
      end
      assert(kind, ("event %d: no field says %s in %s"):format(i, tag, json.encode(objects[i])))
      assert.equal(line:match("src=(%S+)"), objects[i].orig_src)
      assert.equal(tonumber(line:match("sport=(%d+)") or line:match("srckey=(0x%x+)") or line:match("type=(%d+)")),
                   objects[i].orig_sport or objects[i].icmp_type)
    end
  end)
end)

describe("--handler", function()
  local SSH_MARK = 0x22

  local function tcp(src, dport, sport)
    return { proto = "tcp", orig_src = src, orig_dst = src:find(":") and "fd00::100" or "10.0.0.100",
             orig_sport = sport or 40000 + dport, orig_dport = dport, state = "ESTABLISHED", timeout = 3000 }
  end

  local function mark_of(f)
    local list = flows{ orig_src = f.orig_src, orig_sport = f.orig_sport, orig_dport = f.orig_dport }
    return list[1] and list[1].mark
  end

  -- Waits until the flow's mark is the value (or 5 s have passed).
  local function await_mark(f, value)
    for _ = 1, 100 do
      if mark_of(f) == value then return true end
      ctl.sleep(0.05)
    end
    return false
  end

  local function listen(args)
    local base = ctl.subscribers()
    local p = ctl.spawn(ctl.CMD .. " -E " .. args)
    assert.is_true(ctl.await_subscribers(base + 1), "-E " .. args .. " did not subscribe")
    return p
  end

  local REMARK_SSH = ([[
-- marks new SSH flows so that policy routing can pick them
return {
  new = function(flow, ct)
    if flow.proto == "tcp" and flow.orig_dport == 22 then
      assert(ct:update(flow, { mark = %d }))
    end
  end,
}
]]):format(SSH_MARK)

  it("re-marks the SSH flows a handler picks out of the events", function()
    local p = listen("--handler " .. file(REMARK_SSH))
    local ssh = { tcp("10.0.0.1", 22), tcp("fd00::1", 22), tcp("10.0.0.2", 22, 50000) }
    local other = { tcp("10.0.0.1", 80), tcp("fd00::1", 2222),
                    { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.100", orig_sport = 1, orig_dport = 22,
                      timeout = 3000, mark = 5 } }
    ctl.fill(ns.handle(), ssh)
    ctl.fill(ns.handle(), other)
    for _, f in ipairs(ssh) do assert(await_mark(f, SSH_MARK), "not re-marked: " .. f.orig_src) end
    ctl.sleep(0.2)
    local out, err, status = p.stop()
    assert.equal(0, mark_of(other[1]))
    assert.equal(0, mark_of(other[2]))
    assert.equal(5, mark_of(other[3]))
    assert.equal(0, status, err)
    assert.matches("%[NEW%] tcp", out)
  end)

  it("runs update and destroy handlers with the table at hand", function()
    local handler = file([[
return {
  update = function(flow, ct)
    if flow.mark == 1 then assert(ct:update(flow, { mark = 2 })) end
  end,
  destroy = function(flow, ct)
    if flow.orig_dport == 25 then
      assert(ct:create{ proto = "udp", orig_src = flow.orig_src, orig_dst = flow.orig_dst, orig_sport = 1,
                        orig_dport = 2525, timeout = 300 })
    end
  end,
}
]])
    local p = listen("--handler " .. handler)
    local ct = ns.handle()
    local f = tcp("10.0.0.7", 25)
    assert(ct:create(f))
    assert(ct:update({ orig_src = "10.0.0.7", orig_dport = 25 }, { mark = 1 }))
    assert.is_true(await_mark(f, 2), "the update handler did not run")
    assert(ct:delete{ orig_src = "10.0.0.7", orig_dport = 25 })
    local tomb = { orig_src = "10.0.0.7", orig_sport = 1, orig_dport = 2525 }
    for _ = 1, 100 do
      if #flows{ orig_src = "10.0.0.7", orig_dport = 2525 } > 0 then break end
      ctl.sleep(0.05)
    end
    local _, err, status = p.stop()
    assert.equal(1, #flows(tomb), "the destroy handler did not run")
    assert.equal(0, status, err)
  end)

  local FAILING = ([[
return {
  new = function(flow, ct)
    if flow.orig_dport == 23 then error("telnet is not welcome here") end
    if flow.orig_dport == 22 then assert(ct:update(flow, { mark = %d })) end
  end,
}
]]):format(SSH_MARK)

  it("reports a handler's error with its traceback and goes on with the stream", function()
    local p = listen("--handler " .. file(FAILING))
    local telnet, ssh = tcp("10.0.0.1", 23), tcp("10.0.0.1", 22)
    assert(ns.handle():create(telnet))
    ctl.sleep(0.2)
    assert(ns.handle():create(ssh))
    assert.is_true(await_mark(ssh, SSH_MARK), "the stream stopped after the error")
    assert.is_false(p.done(), "ended after a handler's error")
    local _, err, status = p.stop()
    assert.matches("telnet is not welcome here", err)
    assert.matches("stack traceback", err)
    assert.equal(0, status)
  end)

  it("stops at a handler's error with --strict", function()
    local p = listen("--strict --handler " .. file(FAILING))
    assert(ns.handle():create(tcp("10.0.0.1", 23)))
    assert.is_true(p.wait(5), "still running after the handler's error")
    local ssh = tcp("10.0.0.1", 22)
    assert(ns.handle():create(ssh))
    ctl.sleep(0.2)
    local _, err, status = p.stop()
    assert.matches("telnet is not welcome here", err)
    assert.matches("stack traceback", err)
    assert.not_equal(0, status)
    assert.equal(0, mark_of(ssh))
  end)

  it("refuses a handler file that does not compile, before listening", function()
    local path = file("return { new = function(flow) end\n")
    local out, err, status = ctl.ours("-E --handler " .. path)
    assert.equal("", out)
    assert.not_equal(0, status)
    assert(err:find(path, 1, true), "the message does not name the file: " .. err)
  end)

  it("refuses a handler file that does not exist", function()
    local out, err, status = ctl.ours("-E --handler /nonexistent/handler.lua")
    assert.equal("", out)
    assert.not_equal(0, status)
    assert.matches("/nonexistent/handler.lua", err, 1, true)
  end)

  it("is a usage error with a command other than -E", function()
    local _, err, status = ctl.ours("-L --handler " .. file(REMARK_SSH))
    assert.equal(2, status)
    assert.matches(ctl.OUR_TRY, err, 1, true)
  end)
end)

describe("--netns", function()
  local other

  before_each(function()
    other = ns.spawn_netns()
    local ct = assert(ns.conntrack.open{ netns = other.path })
    ctl.fill(ct)
    ct:close()
  end)

  after_each(function()
    other.stop()
  end)

  local function compare_there(args)
    local tout, terr, tstatus = ctl.theirs(args, other)
    local out, err, status = ctl.ours("--netns " .. other.path .. " " .. args)
    ctl.assert_same_stdout(out, tout)
    assert.equal(ctl.their_stderr(terr), ctl.our_stderr(err))
    assert.equal(tstatus, status)
  end

  it("lists the table of the namespace a path names #diff", function()
    compare_there("-L")
    compare_there("-L -p udp -o extended")
    compare_there("-C")
  end)

  it("deletes in that namespace and leaves this one alone", function()
    filled()
    local here = ctl.snapshot()
    local out, err, status = ctl.ours("--netns " .. other.path .. " -D -p udp")
    assert.equal(0, status, err)
    assert.equal(#ctl.lines_of(out) .. " flow entries have been deleted.\n", ctl.our_stderr(err))
    assert.equal(0, #flows_in(other, { proto = "udp" }))
    ctl.assert_same_table(ctl.snapshot(), here)
  end)

  it("prints the events of that namespace #diff", function()
    local handle = assert(ns.conntrack.open{ netns = other.path })
    finally(function() handle:close() end)
    assert(handle:flush())
    ctl.compare_events("", function(ct) ctl.fill(ct); assert(ct:flush()) end, {
      netns = other, handle = handle,
      theirs = "nsenter --net=" .. other.path .. " conntrack -E",
      ours = ctl.CMD .. " --netns " .. other.path .. " -E" })
  end)

  it("takes a name under /run/netns", function()
    -- `ip netns attach' names the namespace (creating /run/netns, a mount
    -- of itself, if it is not there); all of it is undone after
    local had_dir = ns.execute("test -d /run/netns")
    local name = "lct-ctl-" .. other.pid
    local _, err, status = ctl.run(("ip netns attach %s %d"):format(name, other.pid))
    finally(function()
      ctl.run("ip netns delete " .. name)
      if not had_dir then ctl.run("umount /run/netns && rmdir /run/netns") end
    end)
    assert.equal(0, status, err)
    local out, err2, status2 = ctl.ours("--netns " .. name .. " -C")
    assert.equal(0, status2, err2)
    assert.equal(#ctl.FLOWS .. "\n", out)
  end)

  it("fails with exit 1 for a namespace that does not exist", function()
    local out, err, status = ctl.ours("--netns /nonexistent/netns -L")
    assert.equal("", out)
    assert.equal(1, status)
    assert(err:sub(1, #ctl.OUR_PREFIX) == ctl.OUR_PREFIX, "no prefix in: " .. err)
    assert.matches("/nonexistent/netns", err, 1, true)
  end)
end)

describe("conntrack.ctl", function()
  it("is a module with a run function", function()
    local mod = require "conntrack.ctl"
    assert.is_function(mod.run)
  end)

  it("run(argv) returns the exit status instead of exiting", function()
    filled()
    local script = file(CTL_MODULE .. [[
local ctl = require "conntrack.ctl"
local a = ctl.run{ "-C" }
local b = ctl.run{ "-x" }
local c = ctl.run{ "-D", "-s", "10.9.9.9" }
local d = ctl.run{ "-L", "-p", "icmp" }
io.stderr:write(("STATUS %s %s %s %s\n"):format(a, b, c, d))
]])
    local out, err, status = ctl.run(ns.LUA .. " " .. script)
    assert.equal(0, status, err)
    assert.matches("STATUS 0 2 1 0\n$", err)
    local lines = ctl.lines_of(out)
    assert.equal(tostring(#ctl.FLOWS), lines[1])
    assert.equal(3, #lines)
  end)
end)
