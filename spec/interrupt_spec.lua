-- spec/interrupt_spec.lua: a dump whose table changes under it. ctnetlink_dump_table
-- (6.x) resumes each datagram at a hash bucket and the id of the flow that did not
-- fit, and sets no cb->seq, so no reply is ever marked NLM_F_DUMP_INTR: these are
-- the guarantees that gives. The last describe fakes the mark to show its handling.
local ns = require "spec.helpers.ns"

local N = 4000

-- UDP flows from src with source ports first..last: one key per flow.
local function udp(src, first, last)
  local flows = {}
  for port = first, last do
    flows[#flows + 1] = { proto = "udp", orig_src = src, orig_dst = "10.2.0.1", orig_sport = port,
                          orig_dport = 53, timeout = 600 }
  end
  return flows
end

local function key(flow) return flow.orig_src .. " " .. flow.orig_sport end

-- A dump of the table, counting how often each flow is yielded; body(flow, n)
-- runs in the loop, after the flow is counted.
local function dump_counting(ct, body)
  local seen, n = {}, 0
  for flow in ct:dump() do
    local k = key(flow)
    seen[k] = (seen[k] or 0) + 1
    n = n + 1
    if body then body(flow, n, seen) end
  end
  return seen, n
end

-- The handle answers count, dumps exactly what is left, and creates.
local function assert_usable(ct, expected)
  assert.equal(expected, ct:count())
  local seen, n = dump_counting(ct)
  assert.equal(expected, n)
  for k, times in pairs(seen) do assert.equal(1, times, k) end
  assert.is_true(ct:create(udp("10.9.0.1", 1, 1)[1]))
  assert.equal(expected + 1, ct:count())
end

describe("a dump whose table changes under it", function()
  local ct
  before_each(function()
    ct = ns.fresh()
    assert.equal(N, ct:create(udp("10.1.0.1", 1, N)))
  end)

  -- New entries go to the head of their bucket, never after the resume point.
  it("yields every flow present throughout exactly once while the loop body creates thousands", function()
    local made = 0
    local seen, n = dump_counting(ct, function(_, i)
      if i % 20 == 0 and made < N then
        assert.equal(40, ct:create(udp("10.3.0.1", made + 1, made + 40)))
        made = made + 40
      end
    end)
    assert.equal(N, made)
    for port = 1, N do assert.equal(1, seen["10.1.0.1 " .. port], "port " .. port) end
    local new = 0
    for k, times in pairs(seen) do
      local src, port = k:match("^(%S+) (%d+)$")
      assert.is_true(src == "10.1.0.1" or (src == "10.3.0.1" and tonumber(port) <= made), k)
      assert.equal(1, times, k)
      if src == "10.3.0.1" then new = new + 1 end
    end
    assert.equal(N + new, n)
    assert_usable(ct, 2 * N)
  end)

  it("yields every flow present throughout exactly once while the loop body updates them all", function()
    local seen = dump_counting(ct, function(_, i)
      if i == 100 then assert.equal(N, ct:update({ orig_src = "10.1.0.1" }, { mark = 5 })) end
    end)
    for port = 1, N do assert.equal(1, seen["10.1.0.1 " .. port], "port " .. port) end
    assert.equal(N, ct:count())
    for flow in ct:dump() do assert.equal(5, flow.mark) end
  end)

  -- A flow deleted before its datagram is filled is not yielded; the kernel
  -- fills one datagram ahead, and where the dump reads ahead (two CPUs) its
  -- thread holds up to four more, so the deleted flows of those datagrams
  -- still are. If the flow a datagram was to resume at is gone, the kernel
  -- sends its whole bucket again: a flow left alone can come twice, never not
  -- at all.
  it("yields every flow the loop body left alone at least once when it deletes flows not yet seen", function()
    local victims, deleted, late = {}, 0, 0
    local seen = dump_counting(ct, function(flow, i, seen)
      if victims[key(flow)] then late = late + 1 end
      if i == 100 then
        deleted = ct:delete{ orig_src = "10.1.0.1", where = function(f)
          if f.orig_sport % 3 == 0 and not seen[key(f)] then victims[key(f)] = true; return true end
          return false
        end }
      end
    end)
    assert.is_true(deleted > N / 4, "deleted " .. deleted)
    local victim_count = 0
    for _ in pairs(victims) do victim_count = victim_count + 1 end
    assert.equal(victim_count, deleted)
    for port = 1, N do
      local k = "10.1.0.1 " .. port
      if not victims[k] then assert.is_true((seen[k] or 0) >= 1, k) end
    end
    for k in pairs(seen) do assert.truthy(k:match("^10%.1%.0%.1 %d+$"), k) end
    local per_datagram = 0
    for _, lines in ct:dump(nil, { format = "", batch = true }) do per_datagram = math.max(per_datagram, lines) end
    assert.is_true(late <= 5 * per_datagram,
                   ("%d of %d deleted flows yielded after (%d a datagram)"):format(late, deleted, per_datagram))
    assert_usable(ct, N - deleted)
  end)

  local function assert_cut_short(seen, n)
    assert.is_true(n >= 100 and n < N / 2, "yielded " .. n)
    for k, times in pairs(seen) do
      assert.truthy(k:match("^10%.1%.0%.1 %d+$"), k)
      assert.equal(1, times, k)
    end
  end

  it("ends without error, having yielded only what the kernel had already sent, when the loop body flushes", function()
    local seen, n = dump_counting(ct, function(_, i)
      if i == 100 then assert.is_true(ct:flush()) end
    end)
    assert_cut_short(seen, n)
    assert_usable(ct, 0)
  end)

  it("ends without error when another process flushes the table mid-dump #diff", function()
    local seen, n = dump_counting(ct, function(_, i)
      if i == 100 then
        local _, err, status = ns.run("conntrack -F")
        assert.equal(0, status, err)
      end
    end)
    assert_cut_short(seen, n)
    assert_usable(ct, 0)
  end)
end)

-- Simulated, not the kernel's behaviour: an LD_PRELOAD shim sets
-- NLM_F_DUMP_INTR on one real kernel reply of the first dump of a child
-- process, as a netlink family that tracks a generation would (the generic
-- netlink_dump_done marks the NLMSG_DONE of such a dump).
local SHIM = [[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	static ssize_t (*real)(int, struct msghdr *, int);
	static int datagrams, fired;
	const char *mode = getenv("LCT_INTR");
	struct nlmsghdr *nlh;
	int left;
	ssize_t n;

	if (real == NULL)
		real = (ssize_t (*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
	n = real(fd, msg, flags);
	if (n <= 0 || fired || mode == NULL || msg->msg_iovlen < 1)
		return n;
	nlh = msg->msg_iov[0].iov_base;
	if (!(nlh->nlmsg_flags & NLM_F_MULTI))
		return n;
	if (strcmp(mode, "data") == 0 && nlh->nlmsg_type != NLMSG_DONE && ++datagrams == 2) {
		nlh->nlmsg_flags |= NLM_F_DUMP_INTR;
		fired = 1;
	} else if (strcmp(mode, "done") == 0) {
		for (left = (int)n; NLMSG_OK(nlh, left); nlh = NLMSG_NEXT(nlh, left))
			if (nlh->nlmsg_type == NLMSG_DONE) {
				nlh->nlmsg_flags |= NLM_F_DUMP_INTR;
				fired = 1;
			}
	}
	return n;
}
]]

-- The child: a dump of the table under the shim, then a second dump and a count.
local CHILD = [[
package.cpath = (os.getenv("LCT_SO_DIR") or ".") .. "/?.so;" .. package.cpath
local ct = assert(require("conntrack").open())
local n, again = 0, 0
local ok, err = pcall(function() for _ in ct:dump() do n = n + 1 end end)
for _ in ct:dump() do again = again + 1 end
io.write(tostring(ok), "\n", (tostring(err):gsub("^[^:]*:%d+: ", "")), "\n", n, "\n", again, "\n", ct:count(), "\n")
ct:close()
]]

describe("a dump the kernel marks interrupted (simulated with an LD_PRELOAD shim)", function()
  local base, ct

  local function write(path, text)
    local f = assert(io.open(path, "w")); f:write(text); f:close()
  end

  setup(function()
    base = os.tmpname()
    write(base .. ".c", SHIM)
    write(base .. ".lua", CHILD)
    local _, err, status = ns.run("cc -shared -fPIC -o " .. base .. ".so " .. base .. ".c -ldl")
    assert.equal(0, status, err)
  end)

  teardown(function()
    for _, suffix in ipairs{ "", ".c", ".so", ".lua" } do os.remove(base .. suffix) end
  end)

  before_each(function()
    ct = ns.fresh()
    assert.equal(2000, ct:create(udp("10.1.0.1", 1, 2000)))
  end)

  local function child(mode)
    local lua = os.getenv("LCT_LUA") or "lua5.4"
    local out, err, status = ns.run(("LCT_INTR=%s LD_PRELOAD=%s.so %s %s.lua"):format(mode, base, lua, base))
    assert.equal(0, status, err)
    local ok, msg, n, again, count = out:match("^(%S+)\n(.-)\n(%d+)\n(%d+)\n(%d+)\n$")
    assert.truthy(ok, out)
    return ok, msg, tonumber(n), tonumber(again), tonumber(count)
  end

  it("raises 'dump: the table changed during the dump' at the marked datagram; the handle dumps whole afterwards", function()
    local ok, msg, n, again, count = child("data")
    assert.equal("false", ok)
    assert.equal("dump: the table changed during the dump (NLM_F_DUMP_INTR): dump again", msg)
    assert.is_true(n > 0 and n < 2000, "yielded " .. n)
    assert.equal(2000, again)
    assert.equal(2000, count)
  end)

  it("raises it too when only the dump's NLMSG_DONE is marked, after every flow", function()
    local ok, msg, n, again, count = child("done")
    assert.equal("false", ok)
    assert.equal("dump: the table changed during the dump (NLM_F_DUMP_INTR): dump again", msg)
    assert.equal(2000, n)
    assert.equal(2000, again)
    assert.equal(2000, count)
  end)
end)
