-- spec/sweep_spec.lua: ct:delete and ct:update by filter over tables of
-- thousands of mixed flows. Every result is checked against the whole table,
-- flow by flow (what is left must be the table minus exactly the flows the
-- filter selects), and against `conntrack -D` run on a copy of the table.
local ns = require "spec.helpers.ns"
local mixed = require "spec.helpers.mixed_flows"
local band, bxor, bnot = ns.compat.band, ns.compat.bxor, ns.compat.bnot

local FLOWS = mixed.generate(3000)

local common = require "spec.helpers.common"
-- the error a call raises (a C function raises it without a position)
local error_of = common.error_of

-- Two sets of identities, compared so that a failure names the flows.
local function assert_same_set(expected, actual)
  assert.same({}, mixed.sorted(mixed.minus(expected, actual)), "flows expected but absent")
  assert.same({}, mixed.sorted(mixed.minus(actual, expected)), "flows present but not expected")
end

-- What a flow is besides its identity: the table's entry id (a flow deleted
-- and created again has a new one), mark, status flags, labels and state.
local function state_of(flow)
  local status, labels = {}, {}
  for flag in pairs(flow.status) do status[#status + 1] = flag end
  for bit in pairs(flow.labels or {}) do labels[#labels + 1] = bit end
  table.sort(status); table.sort(labels)
  return ("id=%d mark=%d status=%s labels=%s state=%s"):format(flow.id, flow.mark, table.concat(status, ","),
                                                             table.concat(labels, ","), flow.state or "")
end

local function snapshot(ct)
  local states = {}
  for flow in ct:dump() do states[mixed.identity(flow)] = state_of(flow) end
  return states
end

local function identities_of(list)
  local set = {}
  for _, flow in ipairs(list) do set[mixed.identity(flow)] = true end
  return set
end

local function v4(t) return mixed.family(t) == "ipv4" end
local function v6(t) return mixed.family(t) == "ipv6" end

-- Runs a delete on a filled table: the flows left are the table minus what
-- the model selects, and the count is how many went.
local function check_delete(ct, filter, model)
  mixed.fill(ct, FLOWS)
  local all = mixed.select(FLOWS, function() return true end)
  assert_same_set(all, mixed.dumped(ct))
  local doomed = mixed.select(FLOWS, model)
  -- a filter selecting nothing or everything would prove little
  assert.is_true(mixed.size(doomed) > 0 and mixed.size(doomed) < mixed.size(all))
  local n = ct:delete(filter)
  assert_same_set(mixed.minus(all, doomed), mixed.dumped(ct))
  assert.equal(mixed.size(doomed), n)
end

describe("ct:delete(filter)", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  local cases = {
    { "by an IPv4 prefix", { orig_src = "10.1.0.0/16" },
      function(t) return v4(t) and mixed.ipv4_in(t.orig_src, "10.1.0.0", 16) end },
    { "by a /24 IPv4 prefix", { orig_src = "10.1.0.0/24" },
      function(t) return v4(t) and mixed.ipv4_in(t.orig_src, "10.1.0.0", 24) end },
    { "by an exact IPv4 source", { orig_src = "10.1.0.5" }, function(t) return t.orig_src == "10.1.0.5" end },
    { "by a reply destination prefix (the reply tuple inverts the original)", { reply_dst = "10.1.0.0/16" },
      function(t) return v4(t) and mixed.ipv4_in(t.orig_src, "10.1.0.0", 16) end },
    { "by an IPv6 reply source", { reply_src = "fd00::ffff", orig_src = "fd00::5" },
      function(t) return t.orig_src == "fd00::5" end },
    { "by one IPv6 source among many", { orig_src = "fd00::5" }, function(t) return t.orig_src == "fd00::5" end },
    { "by an IPv6 source and the family", { family = "ipv6", orig_src = "fd00::5:0" },
      function(t) return t.orig_src == "fd00::5:0" end },
    { "by an IPv6 prefix", { orig_src = "fd00::/112" },
      function(t) return v6(t) and t.orig_src:match("^fd00::%x+$") ~= nil end },
    { "by family, protocol and destination port", { family = "ipv4", proto = "udp", orig_dport = 53 },
      function(t) return v4(t) and t.proto == "udp" and t.orig_dport == 53 end },
    { "by a predicate alone", function(flow) return flow.zone == 1 and flow.mark == 0x20 end,
      function(t) return mixed.zone(t) == 1 and t.mark == 0x20 end },
    { "by fields and a where predicate",
      { proto = "tcp", where = function(flow) return flow.orig_sport % 3 == 0 end },
      function(t) return t.proto == "tcp" and t.orig_sport % 3 == 0 end },
    { "by mark and mask (matched on the message)", { mark = { 0x10, 0xf0 } },
      function(t) return band(t.mark, 0xf0) == 0x10 end },
    { "by mark, mask and family (matched on the message)", { family = "ipv6", mark = { 0x10, 0xf0 } },
      function(t) return v6(t) and band(t.mark, 0xf0) == 0x10 end },
    { "by an exact mark", { mark = 0x1f }, function(t) return t.mark == 0x1f end },
    { "by mark and another field", { mark = { 0x10, 0xf0 }, proto = "udp" },
      function(t) return t.proto == "udp" and band(t.mark, 0xf0) == 0x10 end },
    { "by zone, with the twins of other zones left", { zone = 2 }, function(t) return mixed.zone(t) == 2 end },
    { "by the default zone 0", { zone = 0 }, function(t) return mixed.zone(t) == 0 end },
    { "by a zone and a source", { zone = 1, orig_src = "10.1.0.5" },
      function(t) return mixed.zone(t) == 1 and t.orig_src == "10.1.0.5" end },
    { "by a status flag", { status = "ASSURED" }, mixed.assured },
    { "by a missing status flag and a protocol", { status = "!ASSURED", proto = "udp" },
      function(t) return t.proto == "udp" and not mixed.assured(t) end },
  }
  for case, long in common.family(cases) do
    it("deletes " .. case[1] .. " exactly those flows and counts them" .. long, function()
      check_delete(ct, case[2], case[3])
    end)
  end

  it("still deletes one flow given as a flow", function()
    mixed.fill(ct, FLOWS)
    local victim
    for flow in ct:dump{ orig_src = "fd00::5", zone = 2 } do victim = flow; break end
    assert.is_true(ct:delete(victim))
    local all = mixed.select(FLOWS, function() return true end)
    assert_same_set(mixed.minus(all, { [mixed.identity(victim)] = true }), mixed.dumped(ct))
  end)

  it("returns 0 when nothing matches, and deletes nothing", function()
    mixed.fill(ct, FLOWS)
    local before = snapshot(ct)
    assert.equal(0, ct:delete{ orig_src = "10.99.0.0/16" })
    assert.equal(0, ct:delete{ mark = 0x12345 })
    assert.equal(0, ct:delete(function() return false end))
    assert.same(before, snapshot(ct))
  end)

  describe("with a predicate that raises", function()
    it("raises 'delete: the predicate failed after N flows were deleted', N the flows gone", function()
      mixed.fill(ct, FLOWS)
      local before = mixed.dumped(ct)
      local calls, accepted = 0, 0
      local err = error_of(ct.delete, ct, { family = "ipv4", where = function(flow)
        calls = calls + 1
        if calls == 1000 then error("boom", 0) end
        if flow.proto == "udp" then accepted = accepted + 1; return true end
        return false
      end })
      local n = tonumber(err:match("^delete: the predicate failed after (%d+) flows were deleted: boom$"))
      assert(n, "unexpected message: " .. err)
      local after = mixed.dumped(ct)
      local gone = mixed.minus(before, after)
      -- every flow the predicate accepted went, in batches sent before the error or right after it
      assert.is_true(accepted > 256)
      assert.equal(accepted, n)
      assert.equal(n, mixed.size(gone))
      for id in pairs(gone) do assert.truthy(id:match("^ipv4 udp "), id) end
      -- the handle is usable, and the flows left are all there
      local matches = mixed.select(FLOWS, function(t) return v4(t) and t.proto == "udp" end)
      assert.equal(mixed.size(after), ct:count())
      assert.equal(mixed.size(matches) - n, ct:delete{ family = "ipv4", proto = "udp" })
      assert_same_set(mixed.minus(mixed.select(FLOWS, function() return true end), matches), mixed.dumped(ct))
    end)

    it("shows an error value that is not a string through its __tostring", function()
      mixed.fill(ct, FLOWS)
      local value = setmetatable({}, { __tostring = function() return "no route" end })
      assert.equal("delete: the predicate failed after 0 flows were deleted: no route",
                   error_of(ct.delete, ct, function() error(value) end))
      assert.equal(#FLOWS, ct:count())
    end)
  end)

  describe("with { dry_run = true }", function()
    local cases = {
      { "an IPv6 source", { orig_src = "fd00::5" } },
      { "a mark and mask the kernel would select", { mark = { 0x10, 0xf0 } } },
      { "fields and a where predicate", { proto = "tcp", where = function(flow) return flow.zone ~= 1 end } },
      { "a predicate alone", function(flow) return flow.mark == 7 end },
    }
    for case, long in common.family(cases) do
      it("lists the flows a delete by " .. case[1] .. " then removes, and touches nothing" .. long, function()
        mixed.fill(ct, FLOWS)
        local before = snapshot(ct)
        local list = ct:delete(case[2], { dry_run = true })
        assert.same(before, snapshot(ct))
        local listed = identities_of(list)
        assert.equal(#list, mixed.size(listed))
        assert.is_true(#list > 0)
        for _, flow in ipairs(list) do assert.equal(before[mixed.identity(flow)], state_of(flow)) end
        local gone_ids = mixed.dumped(ct)
        local n = ct:delete(case[2])
        assert.equal(#list, n)
        assert_same_set(listed, mixed.minus(gone_ids, mixed.dumped(ct)))
      end)
    end

    it("returns an empty list when nothing matches", function()
      mixed.fill(ct, FLOWS)
      assert.same({}, ct:delete({ orig_src = "10.99.0.1" }, { dry_run = true }))
    end)
  end)

  describe("when another process flushes the table half-way", function()
    local BIG = mixed.generate(20000)
    local observer
    after_each(function() if observer then observer:close(); observer = nil end end)

    it("counts only the flows it deleted itself, and raises nothing #slow", function()
      mixed.fill(ct, BIG)
      observer = assert(ns.conntrack.open())
      local matched = mixed.size(mixed.select(BIG, v4))
      local calls, left_before_flush = 0, nil
      -- at the 3000th candidate the dump is mid-stream and some batches are sent
      local n = ct:delete{ family = "ipv4", where = function()
        calls = calls + 1
        if calls == 3000 then
          left_before_flush = assert(observer:count())
          local _, err, status = ns.run("conntrack -F")
          assert(status == 0, err)
        end
        return true
      end }
      assert.is_number(n)
      assert.is_true(n > 0 and n < matched)
      -- nobody else deleted before the flush, and no deletion of ours succeeded after it
      assert.equal(#BIG - left_before_flush, n)
      assert.equal(0, ct:count())
      assert.is_true(ct:create(FLOWS[1]))
      assert.equal(1, ct:count())
    end)

    -- A second process waits for the delete to start, then flushes: the
    -- flush lands wherever it lands, the bounds hold wherever that is.
    local WATCHER = [[
      local ct = assert(require("conntrack").open())
      local total, ready, done = tonumber(arg[1]), arg[2], arg[3]
      local f = assert(io.open(ready, "w")); f:close()
      local left, deadline = nil, os.time() + 10
      repeat left = assert(ct:count()) until left <= total - 1000 or os.time() > deadline
      assert(ct:flush())
      -- written whole, then named: a reader never sees the file empty
      f = assert(io.open(done .. ".part", "w")); f:write(left); f:close()
      assert(os.rename(done .. ".part", done))
    ]]

    local function wait_for(path)
      for _ = 1, 1000 do
        local f = io.open(path)
        if f then local s = f:read("*a"); f:close(); return s end
        os.execute("sleep 0.01")
      end
      error("timed out waiting for " .. path)
    end

    -- Deletes by filter while the watcher flushes; the bounds that hold
    -- wherever the flush lands.
    local function check_racing_flush(filter, model)
      mixed.fill(ct, BIG)
      local matched = mixed.size(mixed.select(BIG, model))
      local script, ready, done = os.tmpname(), os.tmpname(), os.tmpname()
      os.remove(ready); os.remove(done)
      local f = assert(io.open(script, "w")); f:write(WATCHER); f:close()
      -- a watcher left behind would flush the next test's table
      finally(function() pcall(wait_for, done); os.remove(script); os.remove(ready); os.remove(done) end)
      assert(os.execute(("%s %s %d %s %s >/dev/null 2>&1 &"):format(ns.LUA, script, #BIG, ready, done)))
      wait_for(ready)
      local n, err = ct:delete(filter)
      assert.is_nil(err)
      local left = tonumber(wait_for(done))
      -- what had gone when the watcher looked was ours alone
      assert.is_true(#BIG - left <= n, ("%d deleted, but %d had gone before the flush"):format(n, #BIG - left))
      assert.is_true(n <= matched, ("%d deleted, but only %d flows matched"):format(n, matched))
      assert.equal(0, ct:count())
      for _ in ct:dump(filter) do error("a matching flow is left") end
      assert.is_true(ct:create(FLOWS[1]))
    end

    it("survives a flush racing from a second Lua process #slow", function()
      check_racing_flush({ family = "ipv4" }, v4)
    end)

    it("never counts more than matched when it deletes by mark during a flush #slow", function()
      check_racing_flush({ mark = { 0x10, 0xf0 } }, function(t) return band(t.mark, 0xf0) == 0x10 end)
    end)
  end)
end)

describe("ct:delete against conntrack -D on a copy of the table", function()
  local ct, copy, copy_ct
  before_each(function()
    ct = ns.fresh()
    copy = ns.spawn_netns()
    copy_ct = assert(ns.conntrack.open{ netns = copy.path })
  end)
  after_each(function()
    copy_ct:close()
    copy.stop()
  end)

  -- The sorted lines of `conntrack -L` where run (ns.run or copy.exec)
  -- runs commands, without the timeout, which ticks.
  local function listed(run)
    local out, err, status = run("conntrack -L")
    assert(status == 0, err)
    local lines = ns.sorted_lines(out)
    for i, line in ipairs(lines) do lines[i] = common.untimed(line) end
    table.sort(lines)
    return lines
  end

  local cases = {
    { "-s 10.1.0.5", { orig_src = "10.1.0.5" } },
    { "-p udp --dport 53", { proto = "udp", orig_dport = 53 } },
    { "-m 0x10/0xf0", { mark = { 0x10, 0xf0 } } },
    { "-f ipv6 -m 0x10/0xf0", { family = "ipv6", mark = { 0x10, 0xf0 } } },
    { "-f ipv6 -s fd00::5", { family = "ipv6", orig_src = "fd00::5" } },
    { "-d fd00::ffff -p icmpv6", { orig_dst = "fd00::ffff", proto = "icmpv6" } },
    { "--zone 2", { zone = 2 } },
    { "--zone 0", { zone = 0 } },
    { "-f ipv4 -p tcp --state ESTABLISHED", { family = "ipv4", proto = "tcp", state = "ESTABLISHED" } },
    { "-u ASSURED -p tcp", { status = "ASSURED", proto = "tcp" } },
  }
  for case, long in common.family(cases) do
    it(("leaves the flows `conntrack -D %s` leaves #diff%s"):format(case[1], long), function()
      mixed.fill(ct, FLOWS)
      mixed.fill(copy_ct, FLOWS)
      assert.same(listed(copy.exec), listed(ns.run))

      local n = ct:delete(case[2])
      local _, err, status = copy.exec("conntrack -D " .. case[1])
      assert(status == 0, err)
      local theirs = tonumber(err:match("(%d+) flow entries have been deleted"))
      local left = listed(copy.exec)
      assert.is_true(theirs > 0 and #left > 0)
      assert.equal(theirs, n)
      assert.same(left, listed(ns.run))
    end)
  end
end)

describe("ct:update(filter, changes)", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  -- Updates a filled table; check(before, after) sees each matched flow,
  -- and every other flow must be exactly as it was (same entry, same state).
  local function check_update(filter, changes, model, check)
    mixed.fill(ct, FLOWS)
    local _, before = mixed.dumped(ct)
    local states = snapshot(ct)
    local matched = mixed.select(FLOWS, model)
    local n = ct:update(filter, changes)
    local _, after = mixed.dumped(ct)
    local changed = 0
    for id, old_state in pairs(states) do
      local new = assert(after[id], "flow gone: " .. id)
      if matched[id] then
        check(before[id], new)
        if state_of(new) ~= old_state then changed = changed + 1 end
      else
        assert.equal(old_state, state_of(new), id)
      end
    end
    return n, changed, mixed.size(matched)
  end

  it("sets the mark of the matched flows and of no other", function()
    local n, changed, matched = check_update({ orig_src = "10.1.0.0/16" }, { mark = 0x42 },
      function(t) return v4(t) and mixed.ipv4_in(t.orig_src, "10.1.0.0", 16) end,
      function(_, new) assert.equal(0x42, new.mark) end)
    assert.equal(matched, changed)
    assert.equal(matched, n)
  end)

  it("sets the TCP state of the matched flows, and counts nothing applied again", function()
    local n, changed, matched = check_update({ proto = "tcp", family = "ipv4" }, { state = "TIME_WAIT" },
      function(t) return v4(t) and t.proto == "tcp" end,
      function(_, new) assert.equal("TIME_WAIT", new.state) end)
    -- none was in TIME_WAIT: all change, then none does
    assert.equal(matched, changed)
    assert.equal(matched, n)
    assert.equal(0, ct:update({ proto = "tcp", family = "ipv4" }, { state = "TIME_WAIT" }))
  end)

  it("makes each mark (old & ~mask) xor value, for every old mark", function()
    local seen = {}
    local n, changed = check_update({ family = "ipv6" }, { mark = { 0x105, 0x0f } }, v6, function(old, new)
      seen[old.mark] = true
      assert.equal(bxor(band(old.mark, bnot(0x0f)), 0x105), new.mark)
    end)
    assert.equal(#mixed.MARKS, mixed.size(seen))
    assert.equal(changed, n)
  end)

  it("counts only the flows whose mark changes, and 0 when applied again", function()
    local stays = 0
    local n, changed = check_update({ proto = "udp" }, { mark = { 0x10, 0xf0 } },
      function(t) return t.proto == "udp" end,
      function(old, new)
        assert.equal(bxor(band(old.mark, bnot(0xf0)), 0x10), new.mark)
        if old.mark == new.mark then stays = stays + 1 end
      end)
    assert.is_true(stays > 0 and changed > 0)
    assert.equal(changed, n)
    local again = snapshot(ct)
    assert.equal(0, ct:update({ proto = "udp" }, { mark = { 0x10, 0xf0 } }))
    assert.same(again, snapshot(ct))
  end)

  it("sets the timeout of the matched flows", function()
    local n, _, matched = check_update({ proto = "udp", zone = 1 }, { timeout = 100 },
      function(t) return t.proto == "udp" and mixed.zone(t) == 1 end,
      function(_, new) assert.is_true(new.timeout <= 100 and new.timeout >= 90, new.timeout) end)
    assert.equal(matched, n)
    for flow in ct:dump{ proto = "udp", zone = 2 } do assert.is_true(flow.timeout > 3000) end
  end)

  it("adds a status flag, counting the flows that lacked it, and 0 when applied again", function()
    local lacked = 0
    local n = check_update({ proto = "tcp" }, { status = "ASSURED" }, function(t) return t.proto == "tcp" end,
      function(old, new)
        assert.is_true(new.status.ASSURED)
        if not old.status.ASSURED then lacked = lacked + 1 end
        for flag in pairs(old.status) do assert.is_true(new.status[flag], flag) end
      end)
    assert.is_true(lacked > 0)
    assert.equal(lacked, n)
    assert.equal(0, ct:update({ proto = "tcp" }, { status = "ASSURED" }))
  end)

  -- The kernel keeps some flags to itself and ignores a request to set them:
  -- update must then refuse the flag, or count only the flows it changed.
  it("never counts a flow whose status the kernel left as it was", function()
    mixed.fill(ct, FLOWS)
    for _, flag in ipairs{ "SRC_NAT", "SEQ_ADJUST", "HW_OFFLOAD" } do
      local before = snapshot(ct)
      local ok, n = pcall(ct.update, ct, { proto = "udp" }, { status = flag })
      local changed = 0
      for id, state in pairs(snapshot(ct)) do
        if state ~= before[id] then changed = changed + 1 end
      end
      if ok then
        assert.equal(changed, n, flag)
      else
        assert.truthy(tostring(n):match("^bad argument 'status': "), n)
        assert.equal(0, changed)
      end
    end
  end)

  it("changes mark and timeout at once, counting each flow once", function()
    local n, _, matched = check_update({ orig_src = "fd00::5" }, { mark = 9, timeout = 200 },
      function(t) return t.orig_src == "fd00::5" end,
      function(_, new) assert.equal(9, new.mark); assert.is_true(new.timeout <= 200 and new.timeout > 190) end)
    assert.equal(matched, n)
  end)

  it("updates by a predicate, and only the flows it accepts", function()
    local n, changed, matched = check_update(function(flow) return flow.zone == 2 and flow.proto == "icmp" end,
      { mark = 0x77 }, function(t) return mixed.zone(t) == 2 and t.proto == "icmp" end,
      function(_, new) assert.equal(0x77, new.mark) end)
    assert.equal(matched, changed)
    assert.equal(matched, n)
  end)

  it("raises 'update: the predicate failed after N flows were updated', N the flows changed", function()
    mixed.fill(ct, FLOWS)
    local before = snapshot(ct)
    local calls = 0
    local err = error_of(ct.update, ct, { family = "ipv4", where = function()
      calls = calls + 1
      if calls == 700 then error("boom", 0) end
      return true
    end }, { mark = 0x99 })
    local n = tonumber(err:match("^update: the predicate failed after (%d+) flows were updated: boom$"))
    assert(n, "unexpected message: " .. err)
    assert.equal(699, n)
    local changed = 0
    for flow in ct:dump() do
      local id = mixed.identity(flow)
      if flow.mark == 0x99 then changed = changed + 1; assert.equal("ipv4", flow.family)
      else assert.equal(before[id], state_of(flow)) end
    end
    assert.equal(n, changed)
    assert.equal(mixed.size(mixed.select(FLOWS, v4)) - n, ct:update({ family = "ipv4" }, { mark = 0x99 }))
  end)

  it("with { dry_run = true } lists the flows it would change, and changes nothing", function()
    mixed.fill(ct, FLOWS)
    local before = snapshot(ct)
    local list = ct:update({ proto = "udp" }, { mark = { 0x10, 0xf0 } }, { dry_run = true })
    assert.same(before, snapshot(ct))
    assert.is_true(#list > 0)
    local listed = identities_of(list)
    assert.equal(#list, ct:update({ proto = "udp" }, { mark = { 0x10, 0xf0 } }))
    local changed = {}
    for flow in ct:dump() do
      local id = mixed.identity(flow)
      if state_of(flow) ~= before[id] then changed[id] = true end
    end
    assert_same_set(listed, changed)
  end)

  it("returns nil, 'update: no room for labels ... (after 0 flows)' and ENOSPC without a label rule", function()
    mixed.fill(ct, FLOWS)
    local before = snapshot(ct)
    assert.same({ nil, "update: no room for labels (a ct label rule in the namespace makes it) (after 0 flows)", 28 },
                { ct:update({ proto = "udp" }, { labels = { 1 } }) })
    assert.same(before, snapshot(ct))
  end)

  -- Flows get room for labels when made while a rule of the namespace uses them.
  local function add_label_rule()
    local _, err, status = ns.run("nft add table inet lct_sweep_labels && " ..
      "nft add chain inet lct_sweep_labels c '{ type filter hook output priority 0; }' && " ..
      "nft add rule inet lct_sweep_labels c ct label set 1")
    assert(status == 0, err)
  end
  local function remove_label_rule() ns.run("nft delete table inet lct_sweep_labels") end

  it("stops at a flow without room for labels and tells how many flows it updated", function()
    -- the IPv4 flows are made before the rule, without room; the IPv6 ones after it
    mixed.fill(ct, mixed.select_list(FLOWS, v4))
    add_label_rule()
    finally(remove_label_rule)
    mixed.fill(ct, mixed.select_list(FLOWS, v6))
    local n, err, errno = ct:update({ proto = "udp" }, { labels = { 3 } })
    assert.is_nil(n)
    assert.equal(28, errno)
    local after = tonumber(err:match("^update: no room for labels %(a ct label rule in the namespace makes it%) " ..
                                     "%(after (%d+) flows%)$"))
    assert(after, "unexpected message: " .. err)
    local labelled = 0
    for flow in ct:dump() do
      if flow.labels and flow.labels[3] then
        labelled = labelled + 1
        assert.equal("ipv6 udp", flow.family .. " " .. flow.proto)
      end
    end
    assert.is_true(labelled > 0)
    assert.equal(labelled, after)
  end)

  describe("labels", function()
    before_each(function()
      add_label_rule()
      mixed.fill(ct, FLOWS)
    end)
    after_each(remove_label_rule)

    local function labels_by_kind()
      local kinds = {}
      for flow in ct:dump() do
        local bits = {}
        for bit in pairs(flow.labels or {}) do bits[#bits + 1] = bit end
        table.sort(bits)
        local kind = flow.family .. " " .. flow.proto .. " {" .. table.concat(bits, ",") .. "}"
        kinds[kind] = (kinds[kind] or 0) + 1
      end
      return kinds
    end

    local function count(model) return mixed.size(mixed.select(FLOWS, model)) end
    local function v4udp(t) return v4(t) and t.proto == "udp" end
    local function v6udp(t) return v6(t) and t.proto == "udp" end
    local function others(family, proto)
      return count(function(t) return mixed.family(t) == family and t.proto == proto end)
    end

    it("replaces, adds and removes labels, counting only the flows that change", function()
      assert.equal(count(v4udp), ct:update({ family = "ipv4", proto = "udp" }, { labels = { 1, 5 } }))
      -- the IPv4 flows already carry { 1, 5 }: only the IPv6 ones change
      assert.equal(count(v6udp), ct:update({ proto = "udp" }, { labels = { 1, 5 } }))
      assert.same({ ["ipv4 udp {1,5}"] = count(v4udp), ["ipv6 udp {1,5}"] = count(v6udp),
                    ["ipv4 tcp {}"] = others("ipv4", "tcp"), ["ipv6 tcp {}"] = others("ipv6", "tcp"),
                    ["ipv4 icmp {}"] = others("ipv4", "icmp"), ["ipv6 icmpv6 {}"] = others("ipv6", "icmpv6") },
                  labels_by_kind())

      local v6udp_filter = { family = "ipv6", proto = "udp" }
      assert.equal(count(v6udp), ct:update(v6udp_filter, { labels = { add = { 7, 127 }, remove = { 1 } } }))
      assert.equal(0, ct:update(v6udp_filter, { labels = { add = { 7 }, remove = { 1 } } }))
      -- only the IPv4 flows carry label 1 now
      assert.equal(count(v4udp), ct:update({ proto = "udp" }, { labels = { remove = { 1 } } }))
      assert.same({ ["ipv4 udp {5}"] = count(v4udp), ["ipv6 udp {5,7,127}"] = count(v6udp),
                    ["ipv4 tcp {}"] = others("ipv4", "tcp"), ["ipv6 tcp {}"] = others("ipv6", "tcp"),
                    ["ipv4 icmp {}"] = others("ipv4", "icmp"), ["ipv6 icmpv6 {}"] = others("ipv6", "icmpv6") },
                  labels_by_kind())

      -- replacing by the empty set clears them
      assert.equal(count(v4udp) + count(v6udp), ct:update({ proto = "udp" }, { labels = {} }))
      assert.equal(0, ct:update({ proto = "udp" }, { labels = {} }))
    end)
  end)
end)

describe("ct:delete and ct:update misuse", function()
  local ct
  before_each(function() ct = ns.fresh() end)

  -- { what, method, arguments, message }: called straight from pcall, so
  -- the message carries no position
  local cases = {
    { "delete with an empty filter", "delete", { {} },
      "bad argument 'filter': an empty filter matches every flow (flush empties the table)" },
    { "delete with an empty filter and dry_run", "delete", { {}, { dry_run = true } },
      "bad argument 'filter': an empty filter matches every flow (flush empties the table)" },
    { "update with an empty filter", "update", { {}, { mark = 1 } },
      "bad argument 'filter': an empty filter matches every flow (flush empties the table)" },
    { "delete with a misspelt option", "delete", { { proto = "udp" }, { dryrun = true } },
      "bad argument 'dryrun': not an option of delete (its options: dry_run)" },
    { "update with a misspelt option", "update", { { proto = "udp" }, { mark = 1 }, { dryrun = true } },
      "bad argument 'dryrun': not an option of update (its options: dry_run)" },
    { "delete with a misspelt field", "delete", { { orig_scr = "10.1.0.5" } },
      "bad argument 'orig_scr': unknown field" },
    { "delete with a number", "delete", { 42 },
      "bad argument 'filter': expected a flow, a table or a function, got number" },
    { "update changing the protocol", "update", { { proto = "udp" }, { proto = "tcp" } },
      "bad argument 'proto': update changes mark, timeout, status, labels and state only" },
    { "update changing a source", "update", { { proto = "udp" }, { mark = 1, orig_src = "10.1.0.6" } },
      "bad argument 'orig_src': update changes mark, timeout, status, labels and state only" },
    { "update setting a state without choosing TCP", "update", { { family = "ipv4" }, { state = "TIME_WAIT" } },
      "bad argument 'state': update sets the state of TCP flows only (give proto = \"tcp\")" },
    { "update setting a state TCP does not have", "update", { { proto = "tcp" }, { state = "OPEN" } },
      "bad argument 'state': unknown TCP state \"OPEN\"" },
    { "update clearing a status flag", "update", { { proto = "udp" }, { status = "!ASSURED" } },
      "bad argument 'status': update can set flags, not clear them" },
    { "update with no changes", "update", { { proto = "udp" }, {} },
      "bad argument 'changes': nothing to change" },
    { "update without changes", "update", { { proto = "udp" } },
      "bad argument 'changes': expected a table, got no value" },
    { "update with labels in neither form", "update",
      { { proto = "udp" }, { labels = { add = { 1 }, keep = { 2 } } } },
      "bad argument 'labels': expected { add = ..., remove = ... } or a set of bits" },
  }
  for _, case in ipairs(cases) do
    it("raises for " .. case[1] .. " and touches nothing", function()
      mixed.fill(ct, FLOWS)
      local before = snapshot(ct)
      assert.equal(case[4], error_of(ct[case[2]], ct, ns.compat.unpack(case[3])))
      assert.same(before, snapshot(ct))
    end)
  end
end)
