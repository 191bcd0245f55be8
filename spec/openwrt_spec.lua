-- spec/openwrt_spec.lua: what OpenWrt gets, without its SDK. The feed
-- package (packaging/openwrt/Makefile) installs exactly what `make install`
-- installs, its own recipe lines run here as OpenWrt runs them; `make install`
-- needs no host Lua when given the paths; the procd script of the policy
-- daemon (examples/openwrt/) is valid shell and passes the daemon its settings.
local ns = require "spec.helpers.ns"

local PACKAGE = "packaging/openwrt/Makefile"
local INIT = "examples/openwrt/conntrack-policy"
local UCI = "examples/openwrt/conntrack-policy.config"
local DAEMON = "examples/policy-daemon.lua"
-- What the package asks `make install` for (its MAKE_FLAGS), but LUA: lua5.1 is Debian's.
local INSTALL = "MAKEFLAGS= make -s install PREFIX=/usr LIBDIR=/usr/lib/lua SHAREDIR=/usr/lib/lua LUA=lua5.1"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

local function temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(ns.execute("mkdir -p " .. q(dir)))
  return dir
end

-- "MODE PATH" of every file and link under dir, sorted.
local function files_under(dir)
  local out, err, status = ns.run("cd " .. q(dir) .. " && find . ! -type d -printf '%m %P\\n' | sort")
  assert(status == 0, err)
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

-- Lines of a Makefile with backslash continuations joined.
local function logical_lines(text)
  return (text:gsub("\\\n%s*", " ")):gmatch("[^\n]*")
end

-- The packages BuildPackage makes, and the recipe lines of each one's install.
local function package_installs(text)
  local built, recipes, current = {}, {}, nil
  for line in logical_lines(text) do
    local name = line:match("^%$%(eval %$%(call BuildPackage,([%w%-_.]+)%)%)")
    if name then built[#built + 1] = name end
    local define = line:match("^define Package/([%w%-_.]+)/install%s*$")
    if define then
      current = {}
      recipes[define] = current
    elseif line:match("^endef") then
      current = nil
    elseif current and line:match("^\t") then
      current[#current + 1] = line:sub(2)
    end
  end
  return built, recipes
end

-- A recipe line as sh runs it: OpenWrt's commands (include/rules.mk), the
-- staged `make install` for $(PKG_INSTALL_DIR), the package's root for $(1).
local COMMANDS = { INSTALL_DIR = "install -d -m0755", INSTALL_BIN = "install -m0755",
                   INSTALL_DATA = "install -m0644", INSTALL_CONF = "install -m0600", CP = "cp -fpR", LN = "ln -sf" }
local function shell_line(line, staged, root)
  local cmd = line:gsub("%$%(([%u_]+)%)", function(name)
    if name == "PKG_INSTALL_DIR" then return q(staged) end
    return COMMANDS[name]
  end):gsub("%$%(1%)", q(root))
  assert(not cmd:find("$(", 1, true), "a make variable the spec does not know, in: " .. line)
  return cmd
end

-- The value of NAME=value in the package's MAKE_FLAGS.
local function make_flag(text, name)
  for line in logical_lines(text) do
    if line:match("^MAKE_FLAGS%s*%+=") then
      local value = line:match("%s" .. name .. "=(%S+)")
      if value then return value end
    end
  end
end

describe(PACKAGE, function()
  local dirs = {}
  local function dir()
    dirs[#dirs + 1] = temp_dir()
    return dirs[#dirs]
  end
  after_each(function()
    for _, d in ipairs(dirs) do ns.execute("rm -rf " .. q(d)) end
    dirs = {}
  end)

  it("installs, across its packages, exactly what make install installs, but the manual page", function()
    local text = slurp(PACKAGE)
    local built, recipes = package_installs(text)
    assert.same({ "lua-conntrack", "lua-conntrack-cli" }, built)
    local staged = dir()
    local _, err, status = ns.run(INSTALL .. " DESTDIR=" .. q(staged))
    assert.equal(0, status, err)

    local packaged, owner = {}, {}
    for _, name in ipairs(built) do
      assert.is_table(recipes[name], "no define Package/" .. name .. "/install")
      local root = dir()
      for _, line in ipairs(recipes[name]) do
        local out, err2, status2 = ns.run("sh -ec " .. q(shell_line(line, staged, root)))
        assert.equal(0, status2, line .. "\n" .. out .. err2)
      end
      for _, file in ipairs(files_under(root)) do
        assert.is_nil(owner[file], file .. " is in " .. tostring(owner[file]) .. " and " .. name)
        owner[file] = name
        packaged[#packaged + 1] = file
      end
    end
    table.sort(packaged)

    local expected = {}
    for _, file in ipairs(files_under(staged)) do
      if not file:match("^%d+ usr/share/man/") then expected[#expected + 1] = file end
    end
    assert.is_true(#expected > 10, "make install installed almost nothing")
    assert.same(expected, packaged)
    assert.equal("lua-conntrack", owner["755 usr/lib/lua/conntrack.so"])
    assert.equal("lua-conntrack-cli", owner["755 usr/bin/lua-conntrack"])
  end)

  it("asks make install for the paths above, and OpenWrt's lua for the command", function()
    local text = slurp(PACKAGE)
    assert.same({ "/usr", "/usr/lib/lua", "/usr/lib/lua", "lua" },
                { make_flag(text, "PREFIX"), make_flag(text, "LIBDIR"), make_flag(text, "SHAREDIR"),
                  make_flag(text, "LUA") })
    assert.truthy(make_flag(text, "LUA_CFLAGS"), "no LUA_CFLAGS: make would ask pkg-config for Lua")
  end)

  it("has the module's version", function()
    assert.equal(ns.conntrack._VERSION, slurp(PACKAGE):match("\nPKG_VERSION:=(%S+)"))
  end)
end)

describe("make install with the paths given (PREFIX, LIBDIR, SHAREDIR, LUA_CFLAGS)", function()
  -- A PATH where every Lua and pkg-config's answer about Lua leave a trace and fail.
  local trap
  before_each(function()
    trap = temp_dir()
    assert(ns.execute("mkdir " .. q(trap .. "/bin")))
    for _, name in ipairs{ "lua", "lua5.1", "lua5.3", "lua5.4", "luajit" } do
      local f = assert(io.open(trap .. "/bin/" .. name, "w"))
      f:write('#!/bin/sh\necho "' .. name .. ' $*" >>"$(dirname "$0")/../asked"\nexit 1\n')
      f:close()
    end
    local f = assert(io.open(trap .. "/bin/pkg-config", "w"))
    f:write('#!/bin/sh\ncase "$*" in *lua*) echo "pkg-config $*" >>"$(dirname "$0")/../asked"; exit 1 ;; esac\n' ..
            'exec /usr/bin/pkg-config "$@"\n')
    f:close()
    assert(ns.execute("chmod 755 " .. q(trap) .. "/bin/*"))
  end)
  after_each(function() ns.execute("rm -rf " .. q(trap)) end)

  local function asked()
    local f = io.open(trap .. "/asked")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
  end

  it("builds and installs without running a Lua or asking pkg-config about Lua #long", function()
    local cmd = ("PATH=%s/bin:$PATH %s BUILD=%s/build LUA_CFLAGS=%s DESTDIR=%s/dest")
      :format(q(trap), INSTALL, q(trap), q("-I/usr/include/lua5.1"), q(trap))
    local _, err, status = ns.run(cmd)
    assert.equal(0, status, err)
    assert.equal("", asked())
    assert.truthy(io.open(trap .. "/dest/usr/lib/lua/conntrack.so"), "no module installed")
  end)

  it("would ask the host's Lua for its version without LIBDIR (what OpenWrt cannot answer)", function()
    -- (-n: the commands are only printed, but make works out their paths)
    local cmd = ("PATH=%s/bin:$PATH MAKEFLAGS= make -n install PREFIX=/usr LUA=lua5.1 BUILD=%s/build " ..
                 "LUA_CFLAGS=%s DESTDIR=%s/dest"):format(q(trap), q(trap), q("-I/usr/include/lua5.1"), q(trap))
    ns.run(cmd)
    assert.matches("^lua5%.1 %-e ", asked())
  end)
end)

describe(INIT, function()
  it("is valid shell (sh -n)", function()
    local out, err, status = ns.run("sh -n " .. INIT)
    assert.equal(0, status, out .. err)
    assert.equal("#!/bin/sh /etc/rc.common", slurp(INIT):match("^[^\n]*"))
  end)

  -- The script's functions, sourced with procd's and UCI's calls stubbed to
  -- print what they are given; SETTINGS in a temporary directory.
  local function run_script(dir, calls)
    local stubs = "config_load() { :; }; " ..
      "config_get() { case $3 in ssh_mark) eval \"$1=0x23\";; local_prefixes) eval \"$1=10.0.0.0/8,fd00::/8\";; " ..
      "*) eval \"$1=\";; esac; }; " ..
      "procd_open_instance() { :; }; procd_close_instance() { :; }; " ..
      "procd_set_param() { echo \"param $*\"; }; procd_send_signal() { echo \"signal $*\"; }; "
    return ns.run(("sh -c %s"):format(q(". ./" .. INIT .. "; SETTINGS=" .. dir .. "/run/settings.env; " ..
                                         stubs .. calls)))
  end

  it("writes the daemon every setting it reads, and only those, in a file it passes", function()
    local read = {}
    for name in slurp(DAEMON):gmatch('setting%("([%u_]+)"') do read[#read + 1] = name end
    local dir = temp_dir()
    finally(function() ns.execute("rm -rf " .. q(dir)) end)
    local out, err, status = run_script(dir, "start_service")
    assert.equal(0, status, err)
    assert.matches("\nparam env SETTINGS=" .. dir:gsub("%p", "%%%0") .. "/run/settings.env\n", "\n" .. out)
    local written, values = {}, {}
    for line in io.lines(dir .. "/run/settings.env") do
      local name, value = assert(line:match("^([%u_]+)=(.*)$"))
      written[#written + 1] = name
      values[name] = value
    end
    table.sort(read)
    table.sort(written)
    assert.is_true(#read >= 5, "the daemon reads " .. #read .. " settings")
    assert.same(read, written)
    assert.same({ "0x23", "10.0.0.0/8,fd00::/8", "" }, { values.SSH_MARK, values.LOCAL_PREFIXES, values.SWEEP })
  end)

  it("reloads by writing the settings again and sending the daemon SIGHUP", function()
    local dir = temp_dir()
    finally(function() ns.execute("rm -rf " .. q(dir)) end)
    local out, err, status = run_script(dir, "reload_service")
    assert.equal(0, status, err)
    assert.equal("signal conntrack-policy * HUP\n", out)
    assert.truthy(io.open(dir .. "/run/settings.env"), "no settings written")
  end)

  it("reads each option of the example UCI config", function()
    local got = {}
    for option in slurp(INIT):gmatch("config_get %S+ main (%S+)") do got[option] = true end
    for option in slurp(UCI):gmatch("\n%s*option (%S+)") do
      assert.is_true(got[option], "the script never reads option " .. option)
    end
  end)

  it("runs the daemon installed under the example's name", function()
    local prog = slurp(INIT):match("\nPROG=(%S+)")
    assert.equal(DAEMON:match("[^/]+$"), prog:match("[^/]+$"))
  end)
end)
