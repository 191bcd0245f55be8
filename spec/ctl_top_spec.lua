-- spec/ctl_top_spec.lua: lua-conntrack -L --group-by [--top N] [--sort SUM]
-- as a user sees it: a table with a header (or JSON objects) whose groups are
-- the module's ct:aggregate of the same filters; counters when accounting is
-- on, and a word on stderr when it is off; exact messages for bad options.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"
local mixed = require "spec.helpers.mixed_flows"

local PREFIX = ctl.OUR_PREFIX
local NO_COUNTERS = PREFIX .. "no packet and byte counters (accounting is off: " ..
                    "sysctl -w net.netfilter.nf_conntrack_acct=1)\n"

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local function sh(cmd)
  local _, err, status = ns.run(cmd)
  assert(status == 0, cmd .. ": " .. err)
end

describe("lua-conntrack -L --group-by", function()
  local ct, undo
  before_each(function()
    ct = ns.fresh()
    undo = {}
    local f = assert(io.open("/proc/sys/net/netfilter/nf_conntrack_acct"))
    local acct = f:read("*l"); f:close()
    undo[#undo + 1] = function() os.execute("sysctl -qw net.netfilter.nf_conntrack_acct=" .. acct) end
  end)
  after_each(function()
    for i = #undo, 1, -1 do undo[i]() end
  end)

  it("prints a header and the top groups the module computes, largest first", function()
    sh("sysctl -qw net.netfilter.nf_conntrack_acct=0")
    mixed.fill(ct, mixed.generate(600))
    local out, err, status = ctl.ours("-L --group-by orig_src/24,orig_dport --top 4")
    assert.equal(0, status)
    local rows = lines_of(out)
    assert.equal(5, #rows)
    assert.matches("^orig_src +orig_dport +flows$", rows[1])
    local groups, summary = assert(ct:aggregate{ by = { "orig_src/24", "orig_dport" }, top = 4 })
    for i, g in ipairs(groups) do
      local src, dport, flows = rows[i + 1]:match("^(%S+) +(%S+) +(%d+)$")
      assert.equal(g.orig_src, src)
      assert.equal(g.orig_dport and tostring(g.orig_dport) or "-", dport)
      assert.equal(g.flows, tonumber(flows))
    end
    assert.equal(NO_COUNTERS .. PREFIX .. ("4 groups of %d flow entries have been shown.\n"):format(summary.flows),
                 err)
  end)

  it("keeps the filters and --where, and prints one JSON object a group with -o json", function()
    mixed.fill(ct, mixed.generate(600))
    local out, _, status = ctl.ours("-L -p udp -s 10.1.0.0/16 --where 'mark >= 16' --group-by src,dport -o json")
    assert.equal(0, status)
    local want = {}
    for flow in ct:dump{ proto = "udp", orig_src = "10.1.0.0/16" } do
      if flow.mark >= 16 then
        local k = ('{"orig_src":"%s","orig_dport":%d,'):format(flow.orig_src, flow.orig_dport)
        want[k] = (want[k] or 0) + 1
      end
    end
    local got = {}
    for _, line in ipairs(lines_of(out)) do
      local k, n = line:match('^(.*,)"flows":(%d+)}$')
      assert.truthy(k, line)
      got[k] = tonumber(n)
    end
    assert.same(want, got)
  end)

  it("sums packets and bytes of real traffic and sorts by bytes, or by --sort", function()
    sh("sysctl -qw net.netfilter.nf_conntrack_acct=1")
    sh("nft add table inet lct_top && nft add chain inet lct_top out '{ type filter hook output priority 0; }' && " ..
       "nft add rule inet lct_top out ct state new,established accept")
    undo[#undo + 1] = function() os.execute("nft delete table inet lct_top 2>/dev/null") end
    local socket = require "socket"
    local b = assert(socket.udp()); assert(b:setsockname("127.0.0.1", 0))
    local _, port = b:getsockname()
    for i, size in ipairs{ 100, 1000, 400 } do
      local a = assert(socket.udp()); assert(a:setsockname("127.0.0." .. (i + 1), 0))
      for _ = 1, 3 do assert(a:sendto(("x"):rep(size), "127.0.0.1", port)) end
      a:close()
    end
    b:close()
    local out, err, status = ctl.ours("-L -p udp --group-by orig_src")
    assert.equal(0, status)
    local rows = lines_of(out)
    assert.matches("^orig_src +flows +orig_packets +orig_bytes +reply_packets +reply_bytes$", rows[1])
    assert.matches("^127%.0%.0%.3 +1 +3 +3084 +0 +0$", rows[2])
    assert.matches("^127%.0%.0%.4 +1 +3 +1284 +0 +0$", rows[3])
    assert.matches("^127%.0%.0%.2 +1 +3 +384 +0 +0$", rows[4])
    assert.equal(PREFIX .. "3 groups of 3 flow entries have been shown.\n", err)
    out = ctl.ours("-L -p udp --group-by orig_src --sort flows --top 1 -o json")
    assert.equal('{"orig_src":"127.0.0.2","flows":1,"orig_packets":3,"orig_bytes":384,"reply_packets":0,'
                 .. '"reply_bytes":0}\n', out)
  end)

  it("refuses what it cannot group by or sort by, with status 2", function()
    local function refused(args, msg)
      local out, err, status = ctl.ours(args)
      assert.equal(2, status)
      assert.equal("", out)
      assert.equal(PREFIX .. msg .. "\n" .. ctl.OUR_TRY .. "\n", err)
    end
    refused("-L --group-by nope", "--group-by: unknown field 'nope'")
    refused("-L --group-by orig_dport/8", "--group-by: a prefix length is for addresses, not 'orig_dport/8'")
    refused("-L --group-by mark,", "--group-by: empty key in `mark,'")
    refused("-L --top 5", "option `--top' needs `--group-by'")
    refused("-L --group-by mark --top x", "unexpected value 'x' with --top option")
    refused("-L --group-by mark --sort size", "--sort: `size' is none of flows, packets, bytes, orig_packets, "
            .. "orig_bytes, reply_packets, reply_bytes")
    refused("-D --group-by mark", "Illegal option `--group-by' with this command")
  end)
end)
