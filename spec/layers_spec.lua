-- spec/layers_spec.lua: how the C files depend on each other, read from the
-- object files' symbols (nm): a file uses another when it calls a function
-- or reads a table that file defines. No cycle among the files, so each can
-- be read knowing only those below it; and the message layer (what reads and
-- writes ctnetlink messages) is Lua-free, as LPeg's stages are, so that it
-- can be fuzzed and cross-built alone. The command line's Lua modules, by
-- their requires, have no cycle either.
local ns = require "spec.helpers.ns"

-- LCT_OBJ_DIR: where make put the objects of the module under test
local OBJECTS = (os.getenv("LCT_OBJ_DIR") or "build/lua5.4") .. "/src"
local MESSAGE_LAYER = { "names", "nl", "receive", "ahead", "parse", "validate", "format", "view", "json" }

-- { file = { symbols it defines }, ... } and { file = { symbols it uses } }
local function symbols()
  local out, err, status = ns.run("cd " .. OBJECTS .. " && nm -A *.o")
  assert(status == 0, "nm in " .. OBJECTS .. ": " .. err)
  local defines, uses = {}, {}
  for file, kind, sym in out:gmatch("([%w_]+)%.o:%x* *(%a) ([%w_.]+)") do
    defines[file] = defines[file] or {}
    uses[file] = uses[file] or {}
    if kind == "U" then
      uses[file][sym] = true
    elseif kind:match("[TDRB]") then
      defines[file][sym] = true
    end
  end
  return defines, uses
end

-- { file = { file it uses = true } }
local function graph()
  local defines, uses = symbols()
  local home = {}
  for file, syms in pairs(defines) do
    for sym in pairs(syms) do home[sym] = file end
  end
  local edges = {}
  for file, syms in pairs(uses) do
    edges[file] = {}
    for sym in pairs(syms) do
      local to = home[sym]
      if to and to ~= file then edges[file][to] = true end
    end
  end
  return edges, uses
end

-- The first cycle found, as "a -> b -> a", or nil.
local function cycle(edges)
  local state, path = {}, {}
  local function visit(file)
    state[file] = "open"
    path[#path + 1] = file
    local next_files = {}
    for to in pairs(edges[file]) do next_files[#next_files + 1] = to end
    table.sort(next_files)
    for _, to in ipairs(next_files) do
      if state[to] == "open" then
        local from = 1
        while path[from] ~= to do from = from + 1 end
        return table.concat(path, " -> ", from) .. " -> " .. to
      elseif not state[to] then
        local found = visit(to)
        if found then return found end
      end
    end
    path[#path] = nil
    state[file] = "done"
  end
  local files = {}
  for file in pairs(edges) do files[#files + 1] = file end
  table.sort(files)
  for _, file in ipairs(files) do
    if not state[file] then
      local found = visit(file)
      if found then return found end
    end
  end
end

describe("the C files in " .. OBJECTS, function()
  local edges, uses = graph()

  it("are all there to be read", function()
    for _, file in ipairs({ "conntrack", "handle", "dump", "events", "ops", "sweep", "flow", "fields" }) do
      assert.truthy(edges[file], file .. ".o")
    end
  end)

  it("call each other without a cycle", function()
    assert.is_nil(cycle(edges))
  end)

  it("find a cycle where there is one (the check itself)", function()
    assert.equal("a -> b -> a", cycle({ a = { b = true }, b = { a = true } }))
  end)

  it("leave luaopen alone in conntrack.c: nothing calls back into it", function()
    for file, to in pairs(edges) do
      assert.is_nil(to.conntrack, file .. " uses conntrack.c")
    end
  end)

  it("keep the message layer free of Lua", function()
    for _, file in ipairs(MESSAGE_LAYER) do
      for sym in pairs(uses[file]) do
        assert.falsy(sym:match("^luaL?_"), file .. ".c uses " .. sym)
      end
    end
  end)
end)

-- The command line's modules (lua/ctl.lua and lua/conntrack/ctl/*.lua), by
-- what each requires, wherever in the file (a require inside a function is
-- a dependency too): no module requires one that requires it back.
describe("the command line's modules", function()
  local function requires()
    local out, err, status = ns.run("ls lua/conntrack/ctl")
    assert(status == 0, err)
    local paths = { ctl = "lua/ctl.lua" }
    for name in out:gmatch("([%w_]+)%.lua") do paths[name] = "lua/conntrack/ctl/" .. name .. ".lua" end
    local edges = {}
    for name, path in pairs(paths) do
      local f = assert(io.open(path))
      local text = f:read("*a")
      f:close()
      edges[name] = {}
      for to in text:gmatch("require%s*%(?%s*[\"']conntrack%.ctl%.([%w_]+)[\"']") do edges[name][to] = true end
      if text:find("require%s*%(?%s*[\"']conntrack%.ctl[\"']") then edges[name].ctl = true end
    end
    return edges
  end

  it("require no module that requires them back", function()
    local edges = requires()
    assert.is_true(edges.commands.events, "commands.lua no longer requires events.lua: the test reads nothing")
    assert.is_nil(cycle(edges))
  end)
end)
