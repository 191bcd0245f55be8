-- spec/exports_spec.lua: what the built module shows the dynamic linker.
-- One symbol, luaopen_conntrack (the C files are built -fvisibility=hidden),
-- so that no internal name can clash with another module a Lua loads, and no
-- liblua among its libraries (the interpreter that loads it provides Lua).
local ns = require "spec.helpers.ns"

-- The plain build of the Lua under test (under check-memory, not the sanitized one).
local MODULE = ns.CHILD_SO_DIR .. "/conntrack.so"

local function lines(cmd)
  local out, err, status = ns.run(cmd)
  assert(status == 0, cmd .. ": " .. err)
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

describe("the module " .. MODULE, function()
  it("exports luaopen_conntrack and nothing else", function()
    local names = {}
    for _, line in ipairs(lines("nm -D --defined-only " .. MODULE)) do
      names[#names + 1] = line:match("(%S+)$")
    end
    assert.same({ "luaopen_conntrack" }, names)
  end)

  it("needs libnetfilter_conntrack and no Lua library", function()
    local needed = {}
    for _, line in ipairs(lines("readelf -d " .. MODULE)) do
      local lib = line:match("%(NEEDED%).-%[(.-)%]")
      if lib then needed[#needed + 1] = lib end
    end
    local all = table.concat(needed, " ")
    assert.truthy(all:match("libnetfilter_conntrack%.so"), all)
    assert.falsy(all:match("lua"), all)
  end)
end)
