-- spec/ctl_newer_spec.lua: what conntrack-tools 1.4.8 and 1.4.9 changed that
-- lua-conntrack adopts (README, "Newer conntrack-tools"): -A updates an
-- existing flow, -I refuses one, -U keeps to the family asked, 1.4.9's
-- --labelmap FILE, and events timed by the kernel.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"
local socket = require "socket"

local FLOW = "-p udp -s 10.0.0.1 -d 10.0.0.2 --sport 5 --dport 6 -t 100"

before_each(function() ns.fresh() end)
after_each(function() ns.fresh() end)

describe("conntrack 1.4.8", function()
  it("-I refuses an existing flow (NLM_F_EXCL), -A updates it", function()
    assert.equal(0, select(3, ctl.ours("-I " .. FLOW)))
    local _, err, status = ctl.ours("-I " .. FLOW .. " -m 3")
    assert.equal(1, status)
    assert.equal("Operation failed: Such conntrack exists, try -U to update\n", ctl.our_stderr(err))
    _, err, status = ctl.ours("-A " .. FLOW .. " -m 5")
    assert.equal(0, status)
    assert.equal("1 flow entries have been added.\n", ctl.our_stderr(err))
    assert.equal(5, ns.handle():get{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 5,
                                     orig_dport = 6 }.mark)
  end)

  it("-U -f keeps to that family", function()
    assert.equal(0, select(3, ctl.ours("-I " .. FLOW)))
    local _, _, status = ctl.ours("-U -f ipv6 -m 9")
    assert.equal(1, status)
    assert.equal(0, ns.handle():get{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 5,
                                     orig_dport = 6 }.mark)
  end)
end)

describe("conntrack 1.4.9", function()
  it("--labelmap FILE names the labels of -l, --label-add and -o labels", function()
    ctl.enable_labels(ctl.run)
    local path = os.tmpname()
    finally(function()   -- busted keeps one finally per test: the last
      ctl.disable_labels(ctl.run)
      os.remove(path)
    end)
    ctl.spit(path, "2 gold\n4 silver\n")
    ctl.without_labels(function()
      local _, err, status = ctl.ours("-I " .. FLOW .. " --label-add gold --labelmap " .. path)
      assert.equal(0, status, err)
      local out = ctl.ours("-L -o labels --labelmap=" .. path)
      assert.matches("labels=gold", out)
      out = ctl.ours("-L -l silver --labelmap " .. path)
      assert.equal("", out)
      local _, err2, status2 = ctl.ours("-L -l gold --labelmap /nonexistent")
      assert.equal(2, status2)
      assert.matches("unknown label 'gold'", err2)
    end)
  end)

  it("times events by the kernel's clock where it tells it (with nf_conntrack_timestamp)", function()
    local old = ctl.slurp("/proc/sys/net/netfilter/nf_conntrack_timestamp"):match("%d")
    assert.equal(0, select(3, ctl.run("sysctl -qw net.netfilter.nf_conntrack_timestamp=1")))
    finally(function() ctl.run("sysctl -qw net.netfilter.nf_conntrack_timestamp=" .. old) end)
    local ct = ns.handle()
    local sub = assert(ct:events{ "new" })
    local before = socket.gettime()
    assert(ct:create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 5, orig_dport = 6,
                      timeout = 100 })
    local made = socket.gettime()
    -- read a while later: the time is when the kernel made the event, not when it was read
    socket.sleep(0.3)
    local kind, _, t = sub:next(1)
    sub:close()
    assert.equal("new", kind)
    assert.is_true(t >= before - 0.01 and t <= made + 0.01, ("%f not within %f..%f"):format(t, before, made))
  end)
end)
