-- fuzz/byteorder.lua: the host's byte order, and recorded messages converted
-- to it, on which parse_spec and cross/outputs.lua rely on every CPU.
local ns = require "spec.helpers.ns"
package.path = "./?.lua;" .. package.path
local byteorder = require "fuzz.byteorder"
local messages = require "fuzz.messages"

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

describe("byteorder.host", function()
  it("is the order the module reads netlink headers in", function()
    assert.is_truthy(ns.conntrack.parse(messages.samples().tcp))
    local other = byteorder.host == "little" and "big" or "little"
    local flow, err = ns.conntrack.parse(byteorder.convert(messages.samples().tcp, byteorder.host, other))
    assert.is_nil(flow)
    assert.equal("parse: not a conntrack message (bad length)", err)
  end)
end)

describe("byteorder.convert", function()
  it("swaps nlmsghdr, every attribute header and label words, and no other payload", function()
    local body = messages.nest(1, messages.nest(1, messages.attr(1, "\10\0\0\1")))
      .. messages.attr(7, "\0\0\0\30") .. messages.attr(22, "\8\0\0\0\0\0\0\128")
    local little = byteorder.convert(messages.message(2, body), byteorder.host, "little")
    assert.equal("38000000" .. "0001" .. "0000" .. "00000000" .. "00000000" .. "02000000"
      .. "1000" .. "0180" .. "0c00" .. "0180" .. "0800" .. "0100" .. "0a000001"
      .. "0800" .. "0700" .. "0000001e" .. "0c00" .. "1600" .. "0800000000000080", hex(little))
    assert.equal("00000038" .. "0100" .. "0000" .. "00000000" .. "00000000" .. "02000000"
      .. "0010" .. "8001" .. "000c" .. "8001" .. "0008" .. "0001" .. "0a000001"
      .. "0008" .. "0007" .. "0000001e" .. "000c" .. "0016" .. "0000000880000000",
      hex(byteorder.convert(little, "little", "big")))
  end)

  it("gives back the recorded message when converted there and back", function()
    for name in io.popen("ls fuzz/corpus/recorded"):lines() do
      local msg = read("fuzz/corpus/recorded/" .. name)
      assert.equal(msg, byteorder.convert(byteorder.convert(msg, "little", "big"), "big", "little"), name)
      assert.equal(#msg, #byteorder.from_recorded(msg))
    end
  end)

  it("stops at an impossible attribute length, leaving the rest as it is", function()
    local msg = messages.message(2, messages.u16(200) .. messages.u16(8) .. "\0\0\0\7")
    local big = byteorder.convert(byteorder.convert(msg, byteorder.host, "little"), "little", "big")
    assert.equal("00c8" .. "0008" .. "00000007", hex(big:sub(21)))
  end)
end)
