-- conntrack/ctl/compat.lua: what the command line needs that Lua 5.1,
-- LuaJIT, 5.3 and 5.4 spell differently: bit operations on unsigned 32-bit
-- values, "is this number an integer", unpack, text chunks compiled in an
-- environment, and user code Ctrl-C can interrupt. 5.3 and later use their
-- native operators.

local M = {}

M.unpack = table.unpack or unpack

-- Integer operators are syntax 5.1 cannot parse, so they are compiled here.
local native = _VERSION >= "Lua 5.3" and load([[
  return {
    band = function(a, b) return a & b end,
    bor = function(a, b) return a | b end,
    bxor = function(a, b) return a ~ b end,
    bnot = function(a) return ~a & 0xffffffff end,
    lshift = function(a, n) return (a << n) & 0xffffffff end,
    rshift = function(a, n) return a >> n end,
  }
]])

-- Before 5.3, numbers are doubles: the bits of 0 <= a < 2^32 are found by
-- arithmetic, one at a time (the command line does a handful per run).
local function bitwise(a, b, want)
  local r, bit = 0, 1
  for _ = 1, 32 do
    local x, y = a % 2, b % 2
    if want[x + y] then r = r + bit end
    a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
  end
  return r
end

local ops = native and native() or {
  band = function(a, b) return bitwise(a, b, { [2] = true }) end,
  bor = function(a, b) return bitwise(a, b, { true, true }) end,
  bxor = function(a, b) return bitwise(a, b, { true }) end,
  bnot = function(a) return 0xffffffff - a end,
  lshift = function(a, n) return (a * 2 ^ n) % 2 ^ 32 end,
  rshift = function(a, n) return math.floor(a / 2 ^ n) end,
}
M.band, M.bor, M.bxor, M.bnot, M.lshift, M.rshift = ops.band, ops.bor, ops.bxor, ops.bnot, ops.lshift, ops.rshift

-- An integer as 5.3+ hold it; before, a double with an exact integer value.
if math.type then
  function M.is_integer(v) return math.type(v) == "integer" end
else
  function M.is_integer(v)
    return type(v) == "number" and v % 1 == 0 and v >= -2 ^ 53 and v <= 2 ^ 53
  end
end

-- The decimal text of an integral number, exact on every Lua: before 5.3
-- "%d" is a C long (32 bits on 32-bit CPUs: a mark of 0xfffffffe would read
-- -2) and tostring rounds past 14 digits; a u32 or a u64 counter that does not
-- fit a 32-bit Lua's integers arrives as a float.
if math.type then
  function M.integer_text(v)
    return math.type(v) == "integer" and tostring(v) or ("%.0f"):format(v)
  end
else
  function M.integer_text(v) return ("%.0f"):format(v) end
end

-- Big-endian bytes of an unsigned value.
function M.be_bytes(v, n)
  local out = {}
  for i = n, 1, -1 do
    out[i] = v % 256
    v = math.floor(v / 256)
  end
  return string.char(M.unpack(out))
end

-- xpcall passing arguments, which 5.1's does not.
local args_passed = select(2, xpcall(function(x) return x end, debug.traceback, true))
function M.xpcall(f, handler, ...)
  if args_passed then return xpcall(f, handler, ...) end
  local n, args = select("#", ...), { ... }
  return xpcall(function() return f(M.unpack(args, 1, n)) end, handler)
end

-- LuaJIT runs no hooks in compiled code, and Ctrl-C reaches a Lua program
-- as a hook (lua.c's): user code that may never end (--where, handlers)
-- stays interpreted there, functions it defines included.
function M.interruptible(chunk)
  local jit = rawget(_G, "jit")
  if type(jit) == "table" and jit.off then jit.off(chunk, true) end
  return chunk
end

-- Compiles source text (never bytecode) as a chunk running in env.
function M.load_text(source, name, env)
  if setfenv then   -- 5.1 and LuaJIT
    if source:byte(1) == 27 then return nil, "attempt to load a binary chunk" end
    local chunk, err = loadstring(source, name)
    if chunk then setfenv(chunk, env) end
    return chunk, err
  end
  return load(source, name, "t", env)
end

return M
