-- conntrack.parse: the path every kernel message takes, fed crafted and
-- fuzzed messages. A malformed one is an error, never a crash or an exit
-- (libnetfilter_conntrack's own parser calls exit() on some).
local ns = require "spec.helpers.ns"
package.path = "./?.lua;" .. package.path
local messages = require "fuzz.messages"
local byteorder = require "fuzz.byteorder"
local conntrack = ns.conntrack

local function files(dir)
  local list = {}
  local p = io.popen("ls " .. dir .. " 2>/dev/null")
  for name in p:lines() do list[#list + 1] = dir .. "/" .. name end
  p:close()
  return list
end

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

-- fuzz/corpus/recorded.lines: "name<TAB>line conntrack -E or -L printed"
local function recorded()
  local list = {}
  for entry in io.lines("fuzz/corpus/recorded.lines") do
    local name, line = entry:match("^([^\t]+)\t(.*)$")
    list[#list + 1] = { name = name, line = line,
                        bytes = byteorder.from_recorded(read("fuzz/corpus/recorded/" .. name)) }
  end
  return list
end

describe("conntrack.parse", function()
  local samples = messages.samples()

  it("reads a dump entry as the flow conntrack -L would print", function()
    local flow = assert(conntrack.parse(samples.tcp))
    assert.equal("tcp      6 120 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=80 [UNREPLIED] "
      .. "src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1234 mark=7 use=1", tostring(flow))
    assert.equal(42, flow.id)
    assert.equal("udp", conntrack.parse(samples.udp6).proto)
    assert.equal(3, conntrack.parse(samples.udp6).zone)
  end)

  it("reads a security context and a secmark (crafted: this kernel has no LSM that sends one)", function()
    local flow = assert(conntrack.parse(samples.secctx))
    assert.equal("tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=80 src=10.0.0.2 "
      .. "dst=10.0.0.1 sport=80 dport=1234 [ASSURED] secmark=2147483649 secctx=system_u:object_r:ssh_port_t:s0 use=1",
      tostring(flow))
    assert.equal("system_u:object_r:ssh_port_t:s0", flow.secctx)
  end)

  it("reads every recorded kernel message as conntrack -E or -L -o extended,id printed it #diff", function()
    local list = recorded()
    assert.equal(53, #list)
    for _, r in ipairs(list) do
      -- parse knows neither the event type nor the sender of an event
      local expected = r.line:gsub("^%s*%[%u+%] ", ""):gsub(" %[USERSPACE%].*$", "")
      local flow, err = conntrack.parse(r.bytes)
      assert.equal(expected, flow and flow:format("extended,id") or err, r.name)
    end
  end)

  it("reads what recorded messages hold: counters, timestamps, NAT, helper, master, labels, zones", function()
    local function flow(name)
      return assert(conntrack.parse(byteorder.from_recorded(read("fuzz/corpus/recorded/" .. name))))
    end
    local f = flow("destroy-ipv4-tcp-counters-timestamp")
    assert.is_true(f.orig_packets > 0 and f.reply_bytes > 0 and f.stop > f.start)
    f = flow("dump-ipv4-tcp-counters-mark-nat")                      -- DNAT 127.0.0.9 -> 127.0.0.1
    assert.same({ "127.0.0.9", "127.0.0.1", true }, { f.orig_dst, f.reply_src, f.dnat })
    f = flow("dump-ipv4-tcp-counters-helper-mark-nat-seqadj")        -- FTP, SNAT to 127.0.0.22
    assert.same({ "ftp", "127.0.0.22", true }, { f.helper, f.reply_dst, f.snat })
    f = flow("dump-ipv4-tcp-counters-mark-master-nat")               -- its data connection
    assert.same({ 20, "127.0.0.22", "127.0.0.1" }, { f.orig_sport, f.orig_dst, f.reply_src })
    assert.same({ [3] = true, [127] = true }, flow("new-ipv4-udp-labels").labels)
    assert.equal(7, flow("dump-ipv4-udp-counters-mark-zone").zone)
    f = flow("dump-ipv4-udp-counters-mark-origzone-synproxy")
    assert.same({ 4, 3000000000 }, { f.orig_zone, f.mark })
    assert.equal(6, flow("dump-ipv4-udp-counters-mark-replyzone-synproxy").reply_zone)
    -- `conntrack -I --reply-vtag 654321` (1.4.7, on x86) sent 654321 byte-swapped: the
    -- kernel holds, and sends, 0xf1fb0900
    assert.equal(0xf1fb0900, flow("dump-ipv4-sctp-counters-mark-synproxy").reply_vtag)
    assert.equal("icmpv6", flow("dump-ipv6-icmpv6-counters-mark-synproxy").proto)
  end)

  it("refuses what is not one whole conntrack message", function()
    local bad = {
      [""] = "parse: not a conntrack message (bad length)",
      [samples.tcp:sub(1, -2)] = "parse: not a conntrack message (bad length)",
      [samples.tcp .. "\0\0\0\0"] = "parse: not a conntrack message (bad length)",
      [samples.tcp:sub(1, 4) .. messages.u16(2 * 256) .. samples.tcp:sub(7)] =
        "parse: not a conntrack message (type)",
    }
    for bytes, message in pairs(bad) do
      local flow, err = conntrack.parse(bytes)
      assert.is_nil(flow)
      assert.equal(message, err)
    end
  end)

  it("refuses an attribute of the wrong size instead of letting the library exit", function()
    local cases = messages.malformed()
    assert.equal(8, #cases)
    for _, body in ipairs(cases) do
      local flow, err = conntrack.parse(messages.message(2, body))
      assert.is_nil(flow)
      assert.equal("parse: malformed attributes", err)
    end
  end)

  it("survives every committed fuzz input and crash reproducer", function()
    local inputs = files("fuzz/corpus/parse")
    for _, path in ipairs(files("fuzz/corpus/recorded")) do inputs[#inputs + 1] = path end
    for _, path in ipairs(files("fuzz/crashes")) do
      if path:match("/parse%-") then inputs[#inputs + 1] = path end
    end
    assert.is_true(#inputs >= 57)
    for _, path in ipairs(inputs) do
      -- all recorded on x86: little-endian headers
      local bytes = byteorder.from_recorded(read(path))
      -- an expectation's message: one made the library's parser write past its stack array (a reproducer)
      local exp = conntrack.parse_expect(bytes)
      if exp then
        assert.is_string(tostring(exp))
        assert.is_string(exp:format("xml"))
        assert.is_table(exp:totable())
      end
      local flow = conntrack.parse(bytes)
      if flow then
        assert.is_string(tostring(flow))
        assert.is_string(flow:format("extended,id,ktimestamp,labels"))
        assert.is_string(flow:format("xml"))
        assert.is_table(flow:totable())
      end
    end
  end)
end)

describe("filters from the fuzz corpus", function()
  -- the same decoding as fuzz/filter.c: lines key=value ("x|y" a list,
  -- "anyD.key" a key of alternative D of `any`), and meta=MODE[:value] for
  -- the metatable of the table and of the pairs and lists in it
  local function decode(text)
    local t, mt = {}, nil
    local function value_of(value)
      if value:find("|", 1, true) then
        local list = {}
        for item in value:gmatch("[^|]+") do list[#list + 1] = value_of(item) end
        return setmetatable(list, mt)
      end
      local a, b = value:match("^(%-?%w+),(%-?%w+)$")
      local pair = a and setmetatable({ tonumber(a), tonumber(b) }, mt)
      return tonumber(value) or pair or (value == "true") or (value ~= "false" and value) or false
    end
    local function set(into, key, value)
      local d, rest = key:match("^any(%d)%.(.*)$")
      if not d then into[key] = value; return end
      into.any = into.any or {}
      into.any[d + 1] = into.any[d + 1] or {}
      set(into.any[d + 1], rest, value)
    end
    local function raise() error("metatable raised") end
    local MODES = {
      index = function(v) return "__index", function() return value_of(v) end end,
      len = function(v) return "__len", function() return value_of(v) end end,
      raise = function() return "__index", raise end,
      gc = function() return "__index", function() collectgarbage() end end,
      mutate = function()
        return "__index", function(tab, k) if type(k) == "string" then rawset(tab, k .. "_", 1) end end
      end,
      self = function() return "__index", function(tab) return tab end end,
    }
    for spec in text:gmatch("%f[^\n%z]meta=([^\n]*)") do
      local mode, v = spec:match("^(%a+):?(.*)$")
      if MODES[mode] then
        mt = mt or {}
        local name, fn = MODES[mode](v)
        mt[name] = fn
        if mode == "raise" then mt.__len = raise end
      end
    end
    for key, value in text:gmatch("([^\n=]+)=([^\n]*)") do
      if key ~= "meta" then set(t, key, value_of(value)) end
    end
    return setmetatable(t, mt)
  end

  it("either dumps or raises a 'bad argument' error naming what was wrong", function()
    local ct = ns.fresh()
    local inputs = files("fuzz/corpus/filter")
    for _, path in ipairs(files("fuzz/crashes")) do
      if path:match("/filter%-") then inputs[#inputs + 1] = path end
    end
    for _, path in ipairs(inputs) do
      local ok, err = pcall(ct.dump, ct, decode(read(path)))
      if ok then for _ in ct:dump(decode(read(path))) do end end
      if not ok then assert(err:match("^bad argument '[%w_]+'") or err:match("metatable raised$"), err) end
    end
    assert.equal(0, ct:count())
  end)
end)
