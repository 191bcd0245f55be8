-- spec/ctl_perm_spec.lua: lua/ctl.lua run by a user without CAP_NET_ADMIN
-- (nobody, in the test namespace). Every command that talks to the kernel
-- fails with conntrack(8)'s message naming the missing capability, exit
-- status 1, and the table (read as root afterwards) is untouched.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"

local AS_NOBODY = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
-- what conntrack 1.4.7 prints in the same place, after the prefix
local DENIED = "Operation failed: sorry, you must be root or get CAP_NET_ADMIN capability to do this\n"

local function as_nobody(cmd)
  return ns.run("timeout -s KILL 30 " .. AS_NOBODY .. cmd .. " </dev/null")
end

-- The table as sorted lines, clocks cut (timeouts count down meanwhile).
local function table_lines()
  local lines = {}
  for flow in ns.handle():dump() do
    lines[#lines + 1] = (ctl.cut_clocks(flow:format("extended,id")))
  end
  table.sort(lines)
  return lines
end

before_each(function()
  ns.fresh()
  ns.fill()
end)

after_each(function()
  ns.fresh()
end)

describe("lua-conntrack without CAP_NET_ADMIN", function()
  it("can read the module and the scripts as nobody (the control)", function()
    for _, path in ipairs{ ns.CHILD_SO_DIR .. "/conntrack.so", "lua/ctl.lua", "lua/conntrack/ctl/commands.lua",
                           "lua/conntrack/ctl/options.lua" } do
      local _, err, status = as_nobody("test -r " .. ctl.q(path))
      assert.equal(0, status, path .. " is not readable by nobody: " .. err)
    end
    local out, err, status = as_nobody(ns.LUA .. " lua/ctl.lua -V")
    assert.equal(0, status, err)
    assert.equal(("lua-conntrack v%s (conntrack-tools compatible)\n"):format(ctl.VERSION), out .. err)
  end)

  local LINES = {
    "-L",
    "-C",
    "-S",
    "-F",
    "-D -s 10.0.0.1",
    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 100",
  }
  for _, args in ipairs(LINES) do
    it(("refuses `%s' naming CAP_NET_ADMIN, exit 1, table untouched"):format(args), function()
      local before = table_lines()
      assert.equal(#ns.sample, #before)
      local out, err, status = as_nobody(ns.LUA .. " lua/ctl.lua " .. args)
      assert.equal("", out)
      assert.equal(ctl.OUR_PREFIX .. DENIED, err)
      assert.equal(1, status)
      assert.same(before, table_lines())
    end)
  end

  it("says what conntrack says for `-L' as nobody #diff", function()
    local _, err = as_nobody("conntrack -L")
    assert.equal(ctl.THEIR_PREFIX .. DENIED, err)
  end)
end)
