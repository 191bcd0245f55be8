-- spec/install_spec.lua: what `make install` and `luarocks make` put on a
-- machine, for the Lua under test: the module, conntrack.ctl, the command
-- (running with that Lua) and its manual page, in that version's paths, and
-- nothing else; the installed command works from there.
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"

local VERSION = ns.conntrack._VERSION
local LUA_VER = _VERSION:match("%d+%.%d+")   -- LuaJIT says 5.1

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function first_line(path)
  local f = assert(io.open(path))
  local line = f:read("*l")
  f:close()
  return line
end

-- Every file under dir, relative to it, sorted.
local function files_under(dir)
  local out = ns.run("cd " .. q(dir) .. " && find . -type f | sort")
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line:sub(3) end
  return list
end

local function temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(ns.execute("mkdir -p " .. q(dir)))
  return dir
end

-- A line of -L without its timeout, which ticks between two listings.
local function untimed(line)
  return common.untimed((line:gsub("\n$", "")))
end

-- The installed command, run without the checkout on its paths.
local function run_installed(command, env, args)
  return ns.run(("cd / && env -u LUA_PATH -u LUA_CPATH %s %s %s"):format(env or "", q(command), args))
end

describe("make install", function()
  local dest
  before_each(function() dest = temp_dir() end)
  after_each(function() ns.execute("rm -rf " .. q(dest)) end)

  it("installs the module, its Lua parts, the command and its manual page where the Lua used looks", function()
    local _, err, status = ns.run(("make -s install LUA=%s PREFIX=/usr/local DESTDIR=%s"):format(ns.LUA, q(dest)))
    assert.equal(0, status, err)
    local expected = {
      "usr/local/bin/lua-conntrack",
      ("usr/local/lib/lua/%s/conntrack.so"):format(LUA_VER),
      "usr/local/share/man/man8/lua-conntrack.8",
      ("usr/local/share/lua/%s/conntrack/ctl.lua"):format(LUA_VER),
      ("usr/local/share/lua/%s/conntrack/rates.lua"):format(LUA_VER),
    }
    for name in io.popen("ls lua/conntrack/ctl"):lines() do
      expected[#expected + 1] = ("usr/local/share/lua/%s/conntrack/ctl/%s"):format(LUA_VER, name)
    end
    table.sort(expected)
    assert.same(expected, files_under(dest))
    assert.equal("#!/usr/bin/env " .. ns.LUA, first_line(dest .. "/usr/local/bin/lua-conntrack"))
  end)

  it("gives a command that lists the table from the installed files alone", function()
    assert(ns.fresh():create(ns.sample[1]))
    local _, err, status = ns.run(("make -s install LUA=%s PREFIX=/usr/local DESTDIR=%s"):format(ns.LUA, q(dest)))
    assert.equal(0, status, err)
    local share, lib = dest .. "/usr/local/share/lua/" .. LUA_VER, dest .. "/usr/local/lib/lua/" .. LUA_VER
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(q(share .. "/?.lua;;"), q(lib .. "/?.so;;"))
    local out, err2, status2 = run_installed(dest .. "/usr/local/bin/lua-conntrack", env, "-L -p tcp")
    assert.equal(0, status2, err2)
    assert.equal(untimed(ns.reference_lines("-L -p tcp")[1]), untimed(out))
    assert.equal(("lua-conntrack v%s (conntrack-tools compatible): 1 flow entries have been shown.\n"):format(VERSION), err2)
  end)
end)

describe("luarocks make", function()
  local tree
  before_each(function() tree = temp_dir() end)
  after_each(function() ns.execute("rm -rf " .. q(tree)) end)

  it("builds offline from the checkout and installs the module, conntrack.ctl and a working command #long", function()
    assert(ns.fresh():create(ns.sample[2]))
    local rockspec = ("lua-conntrack-%s-1.rockspec"):format(VERSION)
    local _, err, status = ns.run(("luarocks --lua-version %s --tree %s make %s"):format(LUA_VER, q(tree), rockspec))
    assert.equal(0, status, err)
    local modules = {}
    for _, path in ipairs(files_under(tree)) do
      if path:match("^share/lua/") or path:match("^lib/lua/") then modules[#modules + 1] = path end
    end
    -- the module, conntrack.rates and conntrack.ctl's files, and no stray top-level "ctl"
    assert.is_true(exists(("%s/lib/lua/%s/conntrack.so"):format(tree, LUA_VER)))
    assert.is_true(exists(("%s/share/lua/%s/conntrack/ctl.lua"):format(tree, LUA_VER)))
    assert.is_true(exists(("%s/share/lua/%s/conntrack/rates.lua"):format(tree, LUA_VER)))
    assert.is_false(exists(("%s/share/lua/%s/ctl.lua"):format(tree, LUA_VER)))
    for _, path in ipairs(modules) do
      assert.truthy(path:match("/conntrack%.so$") or path:match("/conntrack/ctl[%./]") or
                    path:match("/conntrack/rates%.lua$"), path)
    end
    local out, err2, status2 = run_installed(tree .. "/bin/lua-conntrack", nil, "-L -p udp")
    assert.equal(0, status2, err2)
    assert.equal(untimed(ns.reference_lines("-L -p udp")[1]), untimed(out))
  end)
end)

describe("make rock", function()
  local tree
  before_each(function() tree = temp_dir() end)
  after_each(function() ns.execute("rm -rf " .. q(tree)) end)

  it("packs a source rock that luarocks installs offline, from anywhere, into a working command #long", function()
    assert(ns.fresh():create(ns.sample[2]))
    local dist = ("%s/build/dist-%s"):format(os.getenv("PWD"), ns.LUA)   -- apart from other Luas' runs
    local _, err, status = ns.run("make -s rock DISTDIR=" .. q(dist))
    assert.equal(0, status, err)
    local rock = ("%s/lua-conntrack-%s-1.src.rock"):format(dist, VERSION)
    _, err, status = ns.run(("cd / && luarocks --lua-version %s --tree %s install %s"):format(LUA_VER, q(tree), q(rock)))
    assert.equal(0, status, err)
    local out, err2, status2 = run_installed(tree .. "/bin/lua-conntrack", nil, "-L -p udp")
    assert.equal(0, status2, err2)
    assert.equal(untimed(ns.reference_lines("-L -p udp")[1]), untimed(out))
  end)
end)
