-- spec/ctl_live_spec.lua: lua-conntrack --live with real loopback traffic:
-- plain periodic tables when stdout is no terminal (JSON objects with -o
-- json), rates that count the bytes of flows that ended between two
-- readings; and in a real terminal
-- (tmux, in the test namespace: send-keys drives it, capture-pane reads what
-- a person sees) the full-screen view, its keys, and the terminal restored
-- on q and on Ctrl-C.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"

local function sh(cmd)
  local out, err, status = ns.run(cmd)
  assert(status == 0, cmd .. ": " .. err)
  return out
end

local function sleep(s) os.execute("sleep " .. s) end

-- A process sending UDP datagrams of `size` bytes from 127.0.0.N to
-- 127.0.0.1:9999 every 10 ms for `seconds`; its pid.
local function sender(n, size, seconds)
  local code = ([[
    local socket = require "socket"
    local a = assert(socket.udp()); assert(a:setsockname("127.0.0.%d", 0))
    local t0 = socket.gettime()
    while socket.gettime() - t0 < %g do a:sendto(("x"):rep(%d), "127.0.0.1", 9999); socket.sleep(0.01) end
  ]]):format(n, seconds, size)
  local p = assert(io.popen(ns.LUA .. " -e '" .. code .. "' >/dev/null 2>&1 & echo $!"))
  local pid = p:read("*l")
  p:close()
  return pid
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

describe("lua-conntrack --live", function()
  local ct, undo
  before_each(function()
    ct = ns.fresh()
    undo = {}
    local f = assert(io.open("/proc/sys/net/netfilter/nf_conntrack_acct"))
    local acct = f:read("*l"); f:close()
    undo[#undo + 1] = function() os.execute("sysctl -qw net.netfilter.nf_conntrack_acct=" .. acct) end
    sh("sysctl -qw net.netfilter.nf_conntrack_acct=1")
    sh("nft add table inet lct_live && nft add chain inet lct_live out '{ type filter hook output priority 0; }' && " ..
       "nft add rule inet lct_live out ct state new,established accept")
    undo[#undo + 1] = function() os.execute("nft delete table inet lct_live 2>/dev/null") end
  end)
  after_each(function()
    for i = #undo, 1, -1 do undo[i]() end
  end)

  it("prints the table every interval when stdout is no terminal, largest rate first", function()
    sender(2, 1000, 3)
    sender(3, 100, 3)
    local out = sh("{ timeout -s INT 2.6 " .. ctl.CMD .. " --live --interval 1 -p udp --group-by orig_src </dev/null; true; }")
    local frames = {}
    for frame in (out .. "\n"):gmatch("(.-)\n\n") do frames[#frames + 1] = lines_of(frame .. "\n") end
    assert.is_true(#frames >= 2, out)
    local last = frames[#frames]
    assert.matches("^%d%d:%d%d:%d%d lua%-conntrack %-%-live  every 1s  by orig_src  sort: bytes/s  flows: 2  groups: 2$",
                   last[1])
    assert.matches("^orig_src +flows +bytes/s +packets/s +orig_bytes/s +reply_bytes/s$", last[2])
    local big = tonumber(last[3]:match("^127%.0%.0%.2 +1 +(%d+)"))
    local small = tonumber(last[4]:match("^127%.0%.0%.3 +1 +(%d+)"))
    -- about 100 datagrams a second of 1028 and of 128 bytes
    assert.is_true(big > 30000 and big < 150000, last[3])
    assert.is_true(small > 3000 and small < 20000, last[4])
  end)

  it("with -z zeroes the counters at each reading and takes its sums as the growth", function()
    sender(5, 1000, 3)   -- an address of its own: earlier senders may still run
    local out = sh("{ timeout -s INT 2.6 " .. ctl.CMD .. " --live -z --interval 1 --group-by orig_src </dev/null; true; }")
    local frames = {}
    for frame in (out .. "\n"):gmatch("(.-)\n\n") do frames[#frames + 1] = lines_of(frame .. "\n") end
    assert.is_true(#frames >= 2, out)
    local rate = tonumber(table.concat(frames[#frames], "\n"):match("\n127%.0%.0%.5 +1 +(%d+)"))
    assert(rate and rate > 30000 and rate < 150000, out)
    -- the flow's counters start again at each reading: less than what it sent
    -- in 2.6 s (about 260 datagrams of 1028 bytes)
    local flows = {}
    for flow in ct:dump{ orig_src = "127.0.0.5" } do flows[#flows + 1] = flow end
    assert.equal(1, #flows)
    assert.is_true(flows[1].orig_bytes < 1.6 * 100 * 1028, tostring(flows[1]))
    local _, err, status = ctl.ours("--live -z -p udp")
    assert.equal(2, status)
    assert.equal(ctl.OUR_PREFIX .. "Can't use -z with filtering parameters\n" .. ctl.OUR_TRY .. "\n", err)
  end)

  it("counts the bytes of a flow that ended between two readings, from its destroy event", function()
    local file = os.tmpname()
    os.execute("timeout -s INT 3.5 " .. ctl.CMD .. " --live --interval 2 -p udp --group-by orig_src </dev/null > "
               .. file .. " 2>&1 &")
    sleep(0.8)
    local socket = require "socket"
    local a = assert(socket.udp()); assert(a:setsockname("127.0.0.4", 0))
    for _ = 1, 40 do assert(a:sendto(("x"):rep(1000), "127.0.0.1", 9999)) end
    a:close()
    sleep(0.2)
    assert.equal(1, ct:delete{ orig_src = "127.0.0.4" })
    sleep(3)
    local out = ctl.slurp(file)
    os.remove(file)
    -- 40 datagrams of 1028 bytes in a frame of 2 seconds, by a group whose only flow is gone
    local flows, rate = out:match("\n127%.0%.0%.4 +(%d+) +(%d+)")
    assert.equal("0", flows, out)
    assert.is_true(math.abs(tonumber(rate) - 40 * 1028 / 2) < 40 * 1028 / 2 * 0.1, out)
  end)

  describe("in a terminal", function()
    local server = "lct-live-" .. ns.pid()
    local function tmux(args) return sh("tmux -L " .. server .. " " .. args) end
    local function screen() return tmux("capture-pane -p -t live") end
    local function await(pattern, what)
      for _ = 1, 50 do
        local text = screen()
        if text:find(pattern) then return text end
        sleep(0.1)
      end
      error(("never showed %s:\n%s"):format(what or pattern, screen()))
    end
    local stty_file

    before_each(function()
      stty_file = os.tmpname()
      local pid = sender(2, 1000, 30)
      -- the command, then what the terminal is left in, in a shell that stays
      local cmd = ("%s --live --interval 0.5 -p udp --group-by orig_src; echo EXITED $?; stty -a > %s; echo READ; sleep 60")
                  :format(ctl.CMD, stty_file)
      tmux(("new-session -d -s live -x 120 -y 20 -c %s %s"):format(ctl.q(os.getenv("PWD") or "."), ctl.q(cmd)))
      undo[#undo + 1] = function()
        os.execute("tmux -L " .. server .. " kill-server 2>/dev/null")
        os.execute("kill " .. pid .. " 2>/dev/null")
        os.remove(stty_file)
      end
    end)

    it("shows the groups full screen, changes sort, grouping and pause by key, restores the terminal on q", function()
      local text = await("127%.0%.0%.2 +1 +%d+", "the sender's row")
      assert.matches("lua%-conntrack %-%-live  every 0%.5s  by orig_src  sort: bytes/s", text)
      assert.matches("q quit  p pause  s sort  g grouping  f filter", text)
      tmux("send-keys -t live s")
      await("sort: packets/s")
      tmux("send-keys -t live g")
      text = await("per flow")
      assert.matches("proto +orig_src +orig_sport +orig_dst +orig_dport", text)
      tmux("send-keys -t live p")
      await("%[paused%]")
      tmux("send-keys -t live q")
      text = await("EXITED 0\nREAD")
      assert.not_matches("lua%-conntrack %-%-live", text)   -- the alternate screen is gone
      local stty = ctl.slurp(stty_file)
      assert.matches(" icanon", stty)
      assert.matches(" echo ", stty)
    end)

    it("filters by a --where expression typed after f", function()
      await("127%.0%.0%.2 +1 +%d+")
      tmux("send-keys -t live f")
      await("where>")
      tmux("send-keys -t live 'orig_src ~= \"127.0.0.2\"' Enter")
      local text = await("where: orig_src ~= \"127.0.0.2\"")
      assert.not_matches("127%.0%.0%.2 +1", text)
    end)

    it("restores the terminal on Ctrl-C", function()
      await("127%.0%.0%.2 +1 +%d+")
      tmux("send-keys -t live C-c")
      local text = await("EXITED 0\nREAD")
      assert.not_matches("lua%-conntrack %-%-live", text)
      assert.matches(" icanon", ctl.slurp(stty_file))
    end)
  end)

  it("writes one JSON object a reading with -o json: the groups by field name, their flows and rates", function()
    local json = require "dkjson"
    sender(6, 1000, 3)   -- addresses of their own: earlier senders may still run
    sender(7, 100, 3)
    local out = sh("{ timeout -s INT 2.6 " .. ctl.CMD .. " --live -o json --interval 1 -p udp --group-by orig_src " ..
                   "--top 1 </dev/null; true; }")
    local lines = lines_of(out)
    assert.is_true(#lines >= 2, out)
    local last, _, msg = json.decode(lines[#lines])
    assert(last, msg)
    assert.same({ "counters", "flows", "groups", "interval", "sort", "time" }, (function()
      local keys = {}
      for k in pairs(last) do keys[#keys + 1] = k end
      table.sort(keys)
      return keys
    end)())
    assert.equal(true, last.counters)
    assert.equal(2, last.flows)
    assert.equal(1, last.interval)
    assert.equal("bytes", last.sort)
    assert.is_true(math.abs(last.time - os.time()) < 5)
    assert.equal(1, #last.groups)   -- --top 1: the larger sender
    local g = last.groups[1]
    assert.equal("127.0.0.6", g.orig_src)
    assert.equal(1, g.flows)
    -- about 100 datagrams a second of 1028 bytes, sent only
    assert.is_true(g.bytes_per_s > 30000 and g.bytes_per_s < 150000, lines[#lines])
    assert.equal(g.bytes_per_s, g.orig_bytes_per_s + g.reply_bytes_per_s)
    assert.equal(0, g.reply_packets_per_s)
    assert.is_true(g.packets_per_s > 30 and g.packets_per_s < 150, lines[#lines])
  end)

  it("ends when the reader of its output is gone, as `| head` expects", function()
    local started = os.time()
    local _, err, status = ns.run("timeout 10 sh -c " .. ("'%s --live --interval 0.2 </dev/null | head -n 1'")
                                  :format(ctl.CMD))
    assert.equal(0, status, err)
    assert.is_true(os.time() - started < 5)
  end)

  it("refuses a bad interval and -o other than json, with status 2", function()
    local _, err, status = ctl.ours("--live --interval 0")
    assert.equal(2, status)
    assert.equal(ctl.OUR_PREFIX .. "unexpected value '0' with --interval option\n" .. ctl.OUR_TRY .. "\n", err)
    for _, o in ipairs{ "extended", "json,summary" } do
      _, err, status = ctl.ours("--live -o " .. o)
      assert.equal(2, status)
      assert.equal(ctl.OUR_PREFIX .. "--live takes only `-o json'\n" .. ctl.OUR_TRY .. "\n", err)
    end
  end)
end)
