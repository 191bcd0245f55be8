-- conntrack.parse: the path every kernel message takes, fed crafted and
-- fuzzed messages. A malformed one is an error, never a crash or an exit
-- (libnetfilter_conntrack's own parser calls exit() on some).
local ns = require "spec.helpers.ns"
package.path = "./?.lua;" .. package.path
local messages = require "fuzz.messages"
local conntrack = ns.conntrack
local CTA, attr, nest = messages.CTA, messages.attr, messages.nest

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
    local cases = {
      attr(CTA.TIMEOUT, "\0\0\0"),                      -- a 32-bit value in 3 bytes
      attr(CTA.ZONE, "\0\0\0\0"),                       -- a 16-bit value in 4 bytes
      nest(CTA.TUPLE_ORIG, nest(1, attr(1, "\10\0\0"))),   -- an IPv4 address in 3 bytes
      nest(CTA.TUPLE_ORIG, nest(2, attr(2, "\0"))),         -- a port in 1 byte
      nest(CTA.PROTOINFO, nest(1, attr(1, "\3\3"))),         -- a TCP state in 2 bytes
      nest(CTA.COUNTERS_ORIG, attr(1, "\0\0\0\0")),          -- 64-bit packets in 4 bytes
      nest(5, attr(1, "ftp")),                               -- a helper name without its NUL
      messages.u16(200) .. messages.u16(CTA.MARK) .. "\0\0\0\7",     -- an attribute longer than the message
    }
    for _, body in ipairs(cases) do
      local flow, err = conntrack.parse(messages.message(2, body))
      assert.is_nil(flow)
      assert.equal("parse: malformed attributes", err)
    end
  end)

  it("survives every committed fuzz input and crash reproducer", function()
    local inputs = files("fuzz/corpus/parse")
    for _, path in ipairs(files("fuzz/crashes")) do
      if path:match("/parse%-") then inputs[#inputs + 1] = path end
    end
    assert.is_true(#inputs >= 4)
    for _, path in ipairs(inputs) do
      local flow = conntrack.parse(read(path))
      if flow then
        assert.is_string(tostring(flow))
        assert.is_string(flow:format("extended,id,ktimestamp"))
        assert.is_table(flow:totable())
      end
    end
  end)
end)

describe("filters from the fuzz corpus", function()
  -- the same decoding as fuzz/filter.c: lines key=value, and meta=MODE[:value]
  -- for the metatable of the table and of the pairs in it
  local function decode(text)
    local t, mt = {}, nil
    local function value_of(value)
      local a, b = value:match("^(%-?%w+),(%-?%w+)$")
      local pair = a and setmetatable({ tonumber(a), tonumber(b) }, mt)
      return tonumber(value) or pair or (value == "true") or (value ~= "false" and value) or false
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
      if key ~= "meta" then t[key] = value_of(value) end
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
