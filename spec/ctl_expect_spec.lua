-- spec/ctl_expect_spec.lua: the expectation table's commands of lua/ctl.lua
-- against conntrack(8) 1.4.7, on real expectations of the kernel's ftp
-- helper (spec/helpers/ftp.lua). Commands that read run through both on the
-- same table; commands that change it run on two tables made alike (the
-- master flows' source ports, which the sessions choose, are told apart as
-- SPORT); -E expect runs side by side while a control connection is made.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"
local ftp = require "spec.helpers.ftp"

local sessions = {}
local function session(p1, p2)
  local s = ftp.session(p1, p2)
  sessions[#sessions + 1] = s
  return s
end

local function close_sessions()
  for _, s in ipairs(sessions) do s.close() end
  sessions = {}
end

-- The table of two expectations every test starts from; returns the
-- masters' source ports.
local function two()
  local a = session(200, 10)
  local b = session(201, 11)
  return { a.sport, b.sport }
end

local function reset()
  close_sessions()
  ns.fresh()
  assert(ns.handle():expect_flush())
end

setup(function() ftp.setup() end)
teardown(function() ftp.teardown() end)
before_each(reset)
after_each(reset)

local function expect_table()
  local out, err, status = ctl.run("conntrack -L expect")
  assert(status == 0, err)
  return out
end

-- The lines with the masters' source ports written as SPORT1, SPORT2, clocks cut.
local function normal(text, sports)
  local lines = {}
  for _, line in ipairs(ctl.lines_of(text)) do
    for i, sport in ipairs(sports) do
      line = line:gsub("sport=" .. sport .. " ", "sport=SPORT" .. i .. " ")
                 :gsub("<sport>" .. sport .. "</sport>", "<sport>SPORT" .. i .. "</sport>")
    end
    lines[#lines + 1] = (ctl.cut_clocks(line))
  end
  table.sort(lines)
  return lines
end

local HEAD = "-s 127.0.0.1 -d 127.0.0.1 -p tcp"
local KEY = HEAD .. " --sport 0 --dport 51210 --reply-port-src 1 --reply-port-dst 2"
local CREATE = "-s 127.0.0.1 -d 127.0.0.1 -p tcp --sport SPORT --dport 21 --tuple-src 127.0.0.1 " ..
  "--tuple-dst 127.0.0.1 --tuple-port-src 0 --tuple-port-dst 4001 --mask-src 255.255.255.255 " ..
  "--mask-dst 255.255.255.255 --mask-port-src 0 --mask-port-dst 65535 -t 100"

describe("reading the expectation table", function()
  for _, args in ipairs({
    "-L expect", "-L expect -o xml", "-L expect -o extended", "-L expect -o id", "-L expect -o extended,id",
    "-L expect -o save", "-L expect -f ipv4", "-L expect -f ipv6", "-C expect", "-S expect",
    "-G expect " .. KEY, "-G expect " .. KEY:gsub("51210", "51211"),
    "-G expect " .. KEY:gsub("-p tcp", "-p udp"), "-G expect -s 127.0.0.1 -d 127.0.0.1 -p icmp",
    "-G expect " .. HEAD .. " --sport 0 --dport 51210",
    "-G expect " .. KEY .. " -o xml", "-L expect -z", "-L expect -s 127.0.0.1", "-C expect -f ipv4",
    "-L expect --tuple-src 1.2.3.4", "-G expect -s 127.0.0.1", "-D expect " .. KEY:gsub("51210", "51211"),
    "-D expect -s 127.0.0.1 -d 127.0.0.1 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 1",
    "-F expect -f ipv4", "-E expect -s 1.1.1.1", "-E expect -e NEW",
  }) do
    it(("prints what conntrack prints for `%s' #diff"):format(args), function()
      two()
      if args == "-S expect" then
        -- counters move between the two runs: the lines and their names agree
        local o, t = {}, {}
        o.out, o.err, o.status = ctl.ours(args)
        t.out, t.err, t.status = ctl.theirs(args)
        assert.equal(t.status, o.status)
        assert.equal(t.err, o.err)
        assert.equal((t.out:gsub("%d+ ", "N ")), (o.out:gsub("%d+ ", "N ")))
      else
        ctl.compare(args, { ordered = args:find("xml") ~= nil })
      end
    end)
  end

  it("prints nothing but its summary for an empty table, in xml too #diff", function()
    ctl.compare("-L expect")
    ctl.compare("-L expect -o xml")
    ctl.compare("-C expect")
  end)

  it("reads another namespace's table, which /proc does not show", function()
    two()
    local other = ns.spawn_netns()
    local out, _, status = ctl.ours("--netns " .. other.path .. " -C expect")
    other.stop()
    assert.equal(0, status)
    assert.equal("0\n", out)
    assert.equal("2\n", (ctl.ours("-C expect")))
  end)
end)

-- conntrack on a table, then ours on a table made alike; what they print and
-- the expectation tables they leave must agree (check(theirs, ours) for more).
local function compare_change(args, check)
  local sports = two()
  local t = {}
  t.out, t.err, t.status = ctl.theirs((args:gsub("SPORT", sports[1])))
  local their_table, their_out = normal(expect_table(), sports), normal(t.out, sports)
  reset()
  sports = two()
  local o = {}
  o.out, o.err, o.status = ctl.ours((args:gsub("SPORT", sports[1])))
  local our_table = normal(expect_table(), sports)
  assert.equal(ctl.their_stderr(t.err), ctl.our_stderr(o.err), args .. ": stderr")
  assert.same(their_out, normal(o.out, sports), args .. ": stdout")
  assert.equal(t.status, o.status, args .. ": exit status")
  if check then check(their_table, our_table) else assert.same(their_table, our_table, args .. ": table") end
  return our_table
end

describe("changing the expectation table", function()
  it("deletes the expectation a tuple selects, exiting 1 as conntrack 1.4.7 does #diff", function()
    local left = compare_change("-D expect " .. KEY)
    assert.equal(1, #left)
  end)

  it("flushes the table #diff", function()
    assert.same({}, compare_change("-F expect"))
  end)

  it("creates an expectation on a master flow #diff", function()
    -- conntrack 1.4.7 sends the expected tuple without its protocol and
    -- ports (the kernel shows proto=15): lua-conntrack creates the one asked
    compare_change("-I expect " .. CREATE, function(theirs, ours)
      assert.equal(#theirs, #ours)
      local found
      for _, line in ipairs(ours) do
        if line:find("proto=6 src=127.0.0.1 dst=127.0.0.1 sport=0 dport=4001 ", 1, true) then found = line end
      end
      assert.truthy(found, table.concat(ours, "\n"))
    end)
  end)

  it("fails as conntrack fails without the master flow, or for an existing expectation #diff", function()
    compare_change("-I expect " .. CREATE:gsub("SPORT", "1"))
  end)

  it("refuses an expectation that exists, as conntrack words it", function()
    local args = "-I expect " .. CREATE:gsub("SPORT", two()[1])
    assert.equal(0, select(3, ctl.ours(args)))
    local _, err, status = ctl.ours(args)
    assert.equal(1, status)
    assert.equal("Operation failed: File exists\n", ctl.our_stderr(err))
  end)
end)

describe("expectation events", function()
  it("are printed as conntrack -E expect prints them while a control connection is made #diff", function()
    ctl.compare_events("expect", function() session(202, 12); assert(ns.handle():expect_flush()) end)
  end)

  it("in xml too #diff", function()
    ctl.compare_events("expect -o xml", function() session(203, 13) end)
  end)
end)
