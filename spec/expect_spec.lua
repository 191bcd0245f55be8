-- spec/expect_spec.lua: the expectation table through the module, on real
-- expectations the kernel's ftp helper makes (spec/helpers/ftp.lua): their
-- fields, their lines as conntrack prints them, dumps and their filters,
-- get, create, delete, flush, count, stats, and their events alone or with
-- flows' (losses reported and repaired by a resync).
local ns = require "spec.helpers.ns"
local ftp = require "spec.helpers.ftp"
local conntrack = ns.conntrack

local function all(ct, filter)
  local list = {}
  for x in ct:expect_dump(filter) do list[#list + 1] = x end
  return list
end

-- conntrack's lines with their timeouts (first word) cut: a second may pass
local function cut_timeout(line) return (line:gsub("^(%s*%[?%u*%]?%s*)%d+ ", "%1T ")) end

local function their_lines(args)
  local out, err, status = ns.run("conntrack " .. args)
  assert(status == 0, err)
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = cut_timeout(line) end
  return lines
end

local ct, sessions
local function session(p1, p2, sport)
  local s = ftp.session(p1, p2, sport)
  sessions[#sessions + 1] = s
  return s
end

setup(function() ftp.setup() end)
teardown(function() ftp.teardown() end)
before_each(function()
  sessions = {}
  ct = ns.fresh()
  assert(ct:expect_flush())
end)
after_each(function()
  for _, s in ipairs(sessions) do s.close() end
  ns.fresh()
end)

describe("an expectation", function()
  it("reads the helper's expectation field by field", function()
    local s = session(200, 10)
    local list = all(ct)
    assert.equal(1, #list)
    local x = list[1]
    assert.equal("ipv4", x.family)
    assert.equal("tcp", x.proto)
    assert.equal("127.0.0.1", x.src)
    assert.equal("127.0.0.1", x.dst)
    assert.equal(0, x.sport)
    assert.equal(200 * 256 + 10, x.dport)
    assert.equal("255.255.255.255", x.mask_src)
    assert.equal("255.255.255.255", x.mask_dst)
    assert.equal(0, x.mask_sport)
    assert.equal(65535, x.mask_dport)
    assert.equal("127.0.0.1", x.master_src)
    assert.equal(s.sport, x.master_sport)
    assert.equal(21, x.master_dport)
    assert.equal("ftp", x.helper)
    assert.equal(0, x.class)
    assert.equal(0, x.zone)
    assert.same({}, x.flags)
    assert.is_true(x.timeout > 290 and x.timeout <= 300)
    assert.is_number(x.id)
    assert.is_nil(x.nat_src)
    assert.same(x.dport, x:totable().dport)
  end)

  it("prints as conntrack -L expect does, in every -o form", function()
    session(200, 10)
    local x = all(ct)[1]
    assert.same(their_lines("-L expect"), { cut_timeout(tostring(x)) })
    local xml = their_lines("-L expect -o xml")
    assert.equal(cut_timeout(x:format("xml")):gsub("<timeout>%d+</timeout>", ""),
                 (xml[3]:gsub("<timeout>%d+</timeout>", "")))
    assert.same(their_lines("-L expect -o extended"), { cut_timeout(x:format("extended")) })
  end)

  it("refuses unknown fields and writes", function()
    session(200, 10)
    local x = all(ct)[1]
    assert.has_error(function() return x.orig_src end, "bad argument 'orig_src': not a field of an expectation")
    assert.has_error(function() x.dport = 1 end, "bad argument 'dport': an expectation is read-only")
  end)
end)

describe("expect_dump", function()
  it("selects by fields, prefixes, flags and a predicate", function()
    local a = session(200, 10)
    session(201, 11)
    assert.equal(2, #all(ct))
    assert.equal(1, #all(ct, { dport = 200 * 256 + 10 }))
    assert.equal(a.sport, all(ct, { master_sport = a.sport })[1].master_sport)
    assert.equal(2, #all(ct, { src = "127.0.0.0/8", helper = "ftp" }))
    assert.equal(0, #all(ct, { src = "10.0.0.0/8" }))
    assert.equal(0, #all(ct, { helper = "sip" }))
    assert.equal(0, #all(ct, { flags = "PERMANENT" }))
    assert.equal(0, #all(ct, { family = "ipv6" }))
    assert.equal(1, #all(ct, { where = function(x) return x.dport == 201 * 256 + 11 end }))
  end)

  it("is empty on an empty table, and raises a predicate's error", function()
    assert.same({}, all(ct))
    session(200, 10)
    assert.has_error(function() all(ct, { where = function() error("boom", 0) end }) end, "boom")
    assert.equal(1, #all(ct))
  end)

  it("refuses what no expectation has", function()
    assert.has_error(function() ct:expect_dump{ bogus = 1 } end, "bad argument 'bogus': not a field of an expectation")
    assert.has_error(function() ct:expect_dump{ src = "300.1.1.1" } end)
    assert.has_error(function() ct:expect_dump{ flags = "SOON" } end,
      "bad argument 'flags': unknown flag \"SOON\" (PERMANENT, INACTIVE, USERSPACE)")
  end)

  it("works in another namespace through its handle", function()
    local other = ns.spawn_netns()
    local h = assert(conntrack.open{ netns = other.path })
    session(200, 10)
    assert.same({}, all(h))
    assert.equal(0, h:expect_count())
    h:close()
    other.stop()
  end)
end)

describe("expect_get", function()
  it("finds the expectation a flow of a tuple would match", function()
    session(200, 10)
    local x = assert(ct:expect_get{ proto = "tcp", src = "127.0.0.1", dst = "127.0.0.1", sport = 0, dport = 51210 })
    assert.equal(51210, x.dport)
    -- the mask ignores the source port
    assert.equal(51210, assert(ct:expect_get{ proto = "tcp", src = "127.0.0.1", dst = "127.0.0.1", sport = 999,
                                            dport = 51210 }).dport)
    local none, msg, errno = ct:expect_get{ proto = "tcp", src = "127.0.0.1", dst = "127.0.0.1", sport = 0, dport = 1 }
    assert.is_nil(none)
    assert.equal("expect_get: no such expectation", msg)
    assert.equal(2, errno)
  end)

  it("needs a protocol and addresses", function()
    assert.has_error(function() ct:expect_get{ src = "127.0.0.1", dst = "127.0.0.1" } end,
      "bad argument 'proto': lookup needs it")
    assert.has_error(function() ct:expect_get{ proto = "tcp", dst = "127.0.0.1" } end,
      "bad argument 'src': lookup needs it")
    assert.has_error(function() ct:expect_get{ proto = "tcp", src = "127.0.0.1", dst = "::1" } end)
    assert.has_error(function() ct:expect_get{ proto = "tcp", src = "127.0.0.1", dst = "127.0.0.1", timeout = 3 } end,
      "bad argument 'timeout': a lookup does not take it")
  end)
end)

describe("expect_create", function()
  local function on_master(s, extra)
    local f = { proto = "tcp", master_src = "127.0.0.1", master_dst = "127.0.0.1", master_sport = s.sport,
                master_dport = 21, src = "127.0.0.1", dst = "127.0.0.1", sport = 0, dport = 4000, mask_sport = 0,
                timeout = 100 }
    for k, v in pairs(extra or {}) do f[k] = v end
    return f
  end

  it("adds an expectation to a master flow with a helper", function()
    local s = session(200, 10)
    assert.is_true(ct:expect_create(on_master(s)))
    local x = all(ct, { dport = 4000 })[1]
    assert.equal(s.sport, x.master_sport)
    assert.equal("ftp", x.helper)
    assert.equal(65535, x.mask_dport)
    assert.equal(1, #ns.reference_lines("-L expect 2>/dev/null | grep dport=4000"))
  end)

  it("fails without its master flow, leaving the table alone", function()
    local s = session(200, 10)
    local ok, msg, errno = ct:expect_create(on_master(s, { master_sport = s.sport + 1 }))
    assert.is_nil(ok)
    assert.equal("expect_create: no master flow of that tuple", msg)
    assert.equal(2, errno)
    assert.equal(1, ct:expect_count())
  end)

  it("checks every field before sending anything", function()
    local s = session(200, 10)
    local f = on_master(s)
    f.timeout = nil
    assert.has_error(function() ct:expect_create(f) end, "bad argument 'timeout': create needs it")
    assert.has_error(function() ct:expect_create(on_master(s, { master_src = "::1" })) end)
    assert.has_error(function() ct:expect_create(on_master(s, { id = 1 })) end,
      "bad argument 'id': create does not take it")
    assert.equal(1, ct:expect_count())
  end)
end)

describe("expect_delete, expect_flush, expect_count, expect_stats", function()
  it("deletes one expectation, those a filter selects, or all", function()
    session(200, 10); session(201, 11); session(202, 12)
    assert.equal(3, ct:expect_count())
    local x = all(ct, { dport = 200 * 256 + 10 })[1]
    assert.is_true(ct:expect_delete(x))
    assert.equal(2, ct:expect_count())
    local ok, msg, errno = ct:expect_delete(x)
    assert.is_nil(ok); assert.equal("expect_delete: no such expectation", msg); assert.equal(2, errno)
    assert.equal(1, ct:expect_delete{ dport = 201 * 256 + 11 })
    assert.equal(0, ct:expect_delete{ helper = "sip" })
    assert.equal(1, ct:expect_count())
    assert.is_true(ct:expect_flush())
    assert.equal(0, ct:expect_count())
    assert.same(their_lines("-L expect"), {})
  end)

  it("flushes only the family asked for", function()
    session(200, 10)
    assert.is_true(ct:expect_flush{ family = "ipv6" })
    assert.equal(1, ct:expect_count())
    assert.has_error(function() ct:expect_flush{ proto = "tcp" } end)
  end)

  it("counts per CPU as conntrack -S expect", function()
    local before = ct:expect_stats()
    session(200, 10)
    local after = ct:expect_stats()
    assert.equal(#ns.reference_lines("-S expect"), #after)
    local created = 0
    for i, cpu in ipairs(after) do
      assert.equal(i - 1, cpu.cpu)
      created = created + cpu.create - before[i].create
      assert.is_number(cpu.new); assert.is_number(cpu.delete)
    end
    assert.is_true(created >= 1)
  end)

  it("works through the module's default handle", function()
    session(200, 10)
    assert.equal(1, conntrack.expect_count())
    local n = 0
    for _ in conntrack.expect_dump() do n = n + 1 end
    assert.equal(1, n)
  end)
end)

describe("expectation events", function()
  local function collect(sub)
    local list = {}
    for kind, obj in sub:each(0.3) do list[#list + 1] = { kind = kind, obj = obj } end
    return list
  end

  it("come alone, printed as conntrack -E expect prints them", function()
    local sub = assert(ct:events{ "expect_new", "expect_destroy" })
    session(200, 10)
    assert.is_true(ct:expect_flush())
    local events = collect(sub)
    sub:close()
    assert.is_true(#events >= 2)
    assert.equal("expect_new", events[1].kind)
    assert.equal("expect_destroy", events[#events].kind)
    assert.matches("^    %[NEW%] %d+ proto=6 src=127%.0%.0%.1 .* dport=51210 ", tostring(events[1].obj))
    assert.matches("^%[DESTROY%] ", tostring(events[#events].obj))
    assert.equal(51210, events[1].obj.dport)
    for _, e in ipairs(events) do assert.is_nil(getmetatable(e.obj) == "conntrack.flow" or nil) end
  end)

  it("mix with flows' events, each filtered by its own filter", function()
    local sub = assert(ct:events{ "new", "expect_new", filter = { orig_dport = 21 },
                                  expect_filter = { where = function(x) return x.dport == 201 * 256 + 11 end } })
    session(200, 10)
    session(201, 11)
    local kinds = {}
    for _, e in ipairs(collect(sub)) do
      kinds[#kinds + 1] = e.kind
      if e.kind == "expect_new" then assert.equal(201 * 256 + 11, e.obj.dport) end
      if e.kind == "new" then assert.equal(21, e.obj.orig_dport) end
    end
    sub:close()
    assert.same({ "new", "new", "expect_new" }, { kinds[1], kinds[2], kinds[#kinds] })
  end)

  it("report losses and re-read the expectations on resync", function()
    local sub = assert(ct:events{ "expect_new", "expect_destroy", buffer = 1, resync = true })
    -- a small receive buffer cannot hold the events of 40 sessions
    for i = 1, 40 do session(150, i) end
    local kinds, synced = {}, {}
    for kind, obj in sub:each(0.3) do
      kinds[kind] = (kinds[kind] or 0) + 1
      if kind == "expect_sync" then synced[#synced + 1] = obj.dport end
    end
    sub:close()
    assert.is_true((kinds.overflow or 0) >= 1, "no overflow reported")
    assert.equal(1, kinds.synced)
    assert.equal(ct:expect_count(), #synced)
  end)

  it("refuses an unknown kind", function()
    assert.has_error(function() ct:events{ "expect_update" } end,
      "bad argument 'events': unknown event kind \"expect_update\"")
    local sub = assert(ct:events{ "expect_new" })
    assert.has_error(function() sub:dispatch{ expect_renew = print } end)
    assert.equal(0, sub:dispatch{ expect_new = print, expect_sync = print })
    sub:close()
  end)
end)

describe("conntrack.parse_expect", function()
  local function le16(n) return string.char(n % 256, math.floor(n / 256) % 256) end
  local function le32(n) return le16(n % 65536) .. le16(math.floor(n / 65536)) end
  local function be16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
  local function be32(n) return be16(math.floor(n / 65536)) .. be16(n % 65536) end
  local function attr(t, payload)
    local a = le16(4 + #payload) .. le16(t) .. payload
    return a .. string.rep("\0", (4 - #a % 4) % 4)
  end
  local function tuple(src, dst, sport, dport)
    return attr(0x8001, attr(1, src) .. attr(2, dst)) ..
           attr(0x8002, attr(1, "\6") .. attr(2, be16(sport)) .. attr(3, be16(dport)))
  end
  local LO = "\127\0\0\1"
  local function message(timeout_payload, helper)
    local body = "\2\0\0\0" ..
      attr(0x8001, tuple(LO, LO, 40000, 21)) .. attr(0x8002, tuple(LO, LO, 0, 4000)) ..
      attr(0x8003, tuple("\255\255\255\255", "\255\255\255\255", 0, 65535)) ..
      attr(4, timeout_payload or be32(300)) .. attr(5, be32(77)) .. attr(6, helper or "ftp\0") .. attr(9, be32(0))
    return le32(16 + #body) .. le16(2 * 256) .. le16(0) .. le32(0) .. le32(0) .. body
  end

  it("reads an expectation message as the kernel sends it", function()
    local x = assert(conntrack.parse_expect(message()))
    assert.equal(4000, x.dport)
    assert.equal(40000, x.master_sport)
    assert.equal(77, x.id)
    assert.equal("ftp", x.helper)
    assert.equal("300 proto=6 src=127.0.0.1 dst=127.0.0.1 sport=0 dport=4000 mask-src=255.255.255.255 " ..
      "mask-dst=255.255.255.255 sport=0 dport=65535 master-src=127.0.0.1 master-dst=127.0.0.1 sport=40000 dport=21 " ..
      "class=0 helper=ftp", tostring(x))
  end)

  it("refuses a malformed one instead of letting the library end the process", function()
    assert.same({ nil, "parse_expect: malformed attributes" }, { conntrack.parse_expect(message(be16(300))) })
    assert.same({ nil, "parse_expect: malformed attributes" }, { conntrack.parse_expect(message(nil, "ftp!")) })
    assert.same({ nil, "parse_expect: not an expectation message (bad length)" }, { conntrack.parse_expect("x") })
    local flowish = message():sub(1, 4) .. le16(1 * 256) .. message():sub(7)
    assert.same({ nil, "parse_expect: not an expectation message" }, { conntrack.parse_expect(flowish) })
  end)
end)
