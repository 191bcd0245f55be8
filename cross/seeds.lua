-- cross/seeds.lua DIR: the seeds of fuzz/standalone.c in this host's byte
-- order: every corpus message and crash reproducer of the parse and
-- differential targets (recorded on x86, converted) and every crafted one.
-- Run it with the Lua of the CPU the driver runs on (under qemu-user too).
package.path = "./?.lua;" .. package.path
local byteorder = require "fuzz.byteorder"
local messages = require "fuzz.messages"
local dir = assert(arg[1], "usage: cross/seeds.lua DIR")

local function write(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb")); f:write(bytes); f:close()
end

os.execute("mkdir -p " .. dir)
local count = 0
local p = io.popen("ls fuzz/corpus/recorded/* fuzz/corpus/parse/* fuzz/corpus/differential/* fuzz/crashes/parse-*")
for path in p:lines() do
  local f = assert(io.open(path, "rb")); local bytes = f:read("*a"); f:close()
  write(path:gsub("^fuzz/", ""):gsub("/", "-"), byteorder.from_recorded(bytes))
  count = count + 1
end
p:close()
for name, bytes in pairs(messages.samples()) do write("crafted-" .. name, bytes); count = count + 1 end
for i, body in ipairs(messages.malformed()) do write("crafted-malformed-" .. i, messages.message(2, body)); count = count + 1 end
print(("%d seeds (%s-endian) in %s"):format(count, byteorder.host, dir))
