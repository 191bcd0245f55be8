-- conntrack/ctl/where.lua: --where EXPR, a Lua expression over a flow's
-- fields, compiled once in a sandbox that holds only those fields and a few
-- pure functions. A name that is neither is refused before anything runs,
-- in whatever form the expression uses it.

local conntrack = require "conntrack"
local compat = require "conntrack.ctl.compat"

local M = {}

-- The module's field vocabulary, and its aliases (src, dst, sport, dport).
M.FIELDS = {}
for i, f in ipairs(conntrack.fields) do M.FIELDS[i] = f end
local is_field = {}
for _, f in ipairs(M.FIELDS) do is_field[f] = true end
for a in pairs(conntrack.aliases) do is_field[a] = true end

-- copies, so that an expression cannot change the libraries lua-conntrack uses
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
local SAFE = {
  math = copy(math), string = copy(string), tonumber = tonumber, tostring = tostring, type = type,
  pairs = pairs, ipairs = ipairs,
}

-- ---- the names an expression reads from its environment ----

local KEYWORDS = {}
for k in ("and break do else elseif end false for function if in local nil not or " ..
          "repeat return then true until while"):gmatch("%a+") do KEYWORDS[k] = true end
-- goto is a keyword from 5.2 on, and in LuaJIT
if _VERSION ~= "Lua 5.1" or rawget(_G, "jit") then KEYWORDS["goto"] = true end

-- Lua's tokens, as much as scopes need: { kind, name }, kind being "name", a
-- keyword, "string", "number", a symbol, or "<eof>" at the end.
local function tokenize(src)
  local toks, i, n = {}, 1, #src
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = src:find("]" .. eq .. "]", at, true)
    return close and close + #eq + 1 or n
  end
  local function number_length(at)
    local hex = src:match("^0[xX]%x*%.?%x*", at)
    local exp = hex and src:match("^[pP][+-]?%d+", at + #hex)
    if not hex then
      hex = src:match("^%d*%.?%d*", at)
      exp = src:match("^[eE][+-]?%d+", at + #hex)
    end
    return #hex + (exp and #exp or 0)
  end
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local stop = long_bracket(i + 2)
      i = (stop or (src:find("\n", i, true) or n)) + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and src:sub(j, j) ~= c do
        j = j + (src:sub(j, j) == "\\" and 2 or 1)
      end
      toks[#toks + 1], i = { "string" }, j + 1
    elseif c == "[" and long_bracket(i) then
      toks[#toks + 1], i = { "string" }, long_bracket(i) + 1
    elseif c:match("[%a_]") then
      local word = src:match("^[%a_][%w_]*", i)
      toks[#toks + 1], i = { KEYWORDS[word] and word or "name", word }, i + #word
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      toks[#toks + 1], i = { "number" }, i + number_length(i)
    else
      local op = src:match("^%.%.%.?", i) or src:match("^[=~<>]=", i) or src:match("^<<", i) or
                 src:match("^>>", i) or src:match("^//", i) or src:match("^::", i) or c
      toks[#toks + 1], i = { op }, i + #op
    end
  end
  toks[#toks + 1] = { "<eof>" }
  return toks
end

local UNARY = { ["not"] = true, ["-"] = true, ["#"] = true, ["~"] = true }
local BINARY = {}
for op in ("or and < > <= >= ~= == | ~ & << >> .. + - * / // % ^"):gmatch("%S+") do BINARY[op] = true end

-- The free names of a chunk that compiles: the names it reads or assigns
-- that no local, parameter or loop variable in scope declares (whatever
-- function it defines). Follows Lua's grammar over the tokens, tracking
-- scopes; raises on anything it cannot follow.
local function free_names(src)
  local toks, p = tokenize(src), 1
  local scopes, free = { {} }, {}
  local function peek(k) return toks[p + (k or 0)][1] end
  local function take() p = p + 1; return toks[p - 1] end
  local function expect(kind)
    if peek() ~= kind then error("cannot follow the expression near '" .. peek() .. "'", 0) end
    return take()
  end
  local function open(names)
    local scope = {}
    for _, name in ipairs(names or {}) do scope[name] = true end
    scopes[#scopes + 1] = scope
  end
  local function close() scopes[#scopes] = nil end
  local function use(name)
    for i = #scopes, 1, -1 do
      if scopes[i][name] then return end
    end
    free[#free + 1] = name
  end

  local block, expr, explist, funcbody

  local function tablecons()
    expect("{")
    while peek() ~= "}" do
      if peek() == "[" then
        take(); expr(); expect("]"); expect("="); expr()
      elseif peek() == "name" and peek(1) == "=" then
        take(); take(); expr()   -- a key, not a name read
      else
        expr()
      end
      if peek() ~= "," and peek() ~= ";" then break end
      take()
    end
    expect("}")
  end

  local function args()
    if peek() == "string" then
      take()
    elseif peek() == "{" then
      tablecons()
    else
      expect("(")
      if peek() ~= ")" then explist() end
      expect(")")
    end
  end

  local function suffixedexp()
    if peek() == "name" then
      use(take()[2])
    else
      expect("("); expr(); expect(")")
    end
    while true do
      local k = peek()
      if k == "." then
        take(); expect("name")
      elseif k == "[" then
        take(); expr(); expect("]")
      elseif k == ":" then
        take(); expect("name"); args()
      elseif k == "(" or k == "{" or k == "string" then
        args()
      else
        return
      end
    end
  end

  local function simpleexp()
    local k = peek()
    if k == "number" or k == "string" or k == "nil" or k == "true" or k == "false" or k == "..." then
      take()
    elseif k == "{" then
      tablecons()
    elseif k == "function" then
      take(); funcbody(false)
    else
      suffixedexp()
    end
  end

  function expr()
    repeat
      while UNARY[peek()] do take() end
      simpleexp()
    until not (BINARY[peek()] and take())
  end

  function explist()
    expr()
    while peek() == "," do take(); expr() end
  end

  function funcbody(method)
    local params = { method and "self" or nil }
    expect("(")
    while peek() ~= ")" do
      if peek() == "..." then take() else params[#params + 1] = expect("name")[2] end
      if peek() == "," then take() end
    end
    expect(")")
    open(params); block(); expect("end"); close()
  end

  local function local_names()
    local names = {}
    repeat
      if #names > 0 then take() end
      names[#names + 1] = expect("name")[2]
      if peek() == "<" then take(); expect("name"); expect(">") end   -- <const>, <close>
    until peek() ~= ","
    return names
  end

  local function statement()
    local k = take()[1]
    if k == ";" or k == "break" then
      return
    elseif k == "::" then
      expect("name"); expect("::")
    elseif k == "goto" then
      expect("name")
    elseif k == "do" then
      open(); block(); expect("end"); close()
    elseif k == "while" then
      expr(); expect("do"); open(); block(); expect("end"); close()
    elseif k == "repeat" then
      open(); block(); expect("until"); expr(); close()   -- until sees the block's locals
    elseif k == "if" then
      expr(); expect("then"); open(); block(); close()
      while peek() == "elseif" do take(); expr(); expect("then"); open(); block(); close() end
      if peek() == "else" then take(); open(); block(); close() end
      expect("end")
    elseif k == "for" then
      local names = { expect("name")[2] }
      if peek() == "=" then
        take(); expr(); expect(","); expr()
        if peek() == "," then take(); expr() end
      else
        while peek() == "," do take(); names[#names + 1] = expect("name")[2] end
        expect("in"); explist()
      end
      expect("do"); open(names); block(); expect("end"); close()
    elseif k == "function" then
      use(expect("name")[2])
      while peek() == "." do take(); expect("name") end
      local method = peek() == ":"
      if method then take(); expect("name") end
      funcbody(method)
    elseif k == "local" and peek() == "function" then
      take()
      scopes[#scopes][expect("name")[2]] = true   -- visible in its own body
      funcbody(false)
    elseif k == "local" then
      local names = local_names()
      if peek() == "=" then take(); explist() end
      for _, name in ipairs(names) do scopes[#scopes][name] = true end   -- from the next statement on
    else
      p = p - 1
      suffixedexp()
      if peek() == "=" or peek() == "," then   -- an assignment: its targets are names too
        while peek() == "," do take(); suffixedexp() end
        expect("="); explist()
      end
    end
  end

  local ENDS = { ["<eof>"] = true, ["end"] = true, ["else"] = true, ["elseif"] = true, ["until"] = true }
  function block()
    while not ENDS[peek()] do
      if peek() == "return" then
        take()
        if not ENDS[peek()] and peek() ~= ";" then explist() end
        if peek() == ";" then take() end
        return
      end
      statement()
    end
  end

  block()
  expect("<eof>")
  return free
end

-- A failure while evaluating: exit status 1. It has a string form, since
-- the module reports a predicate's error as text.
local RUNTIME = { __tostring = function(e) return e.message end }
function M.runtime_error(err)
  local text = tostring(err):gsub("^%-%-where:%d+: ", "")
  return setmetatable({ ctl_status = 1, message = "--where: " .. text, where_error = true }, RUNTIME)
end

local function usage(text)
  error({ ctl_status = 2, message = "invalid --where expression: " .. text }, 0)
end

-- Compiles EXPR; returns predicate(flow) -> boolean, or raises a usage
-- error (exit status 2) naming the problem. Every name the expression reads
-- or assigns outside its own locals, in whatever form (functions it defines
-- included), must be a field or a safe function: a typo never reads as nil.
-- The environment refuses any other name too, should one get past.
function M.compile(expr)
  local current
  local env = setmetatable({}, {
    __index = function(_, k)
      if SAFE[k] ~= nil then return SAFE[k] end
      if is_field[k] then return current[k] end
      error(("unknown name '%s'"):format(tostring(k)), 2)
    end,
    __newindex = function(_, k) error(("--where cannot assign '%s'"):format(tostring(k)), 2) end,
  })
  local source = "return (" .. expr .. "\n)"
  local chunk, err = compat.load_text(source, "=--where", env)
  if not chunk then usage((err:gsub("^%-%-where:%d+: ", ""))) end
  compat.interruptible(chunk)
  local followed, names = pcall(free_names, source)
  if not followed then usage("its names cannot be checked (" .. tostring(names) .. ")") end
  for _, name in ipairs(names) do
    if SAFE[name] == nil and not is_field[name] then usage(("unknown name '%s'"):format(name)) end
  end
  return function(flow)
    current = flow
    local ok, result = pcall(chunk)
    current = nil
    if not ok then
      -- Ctrl-C (lua.c raises "interrupted!" where the code runs) goes on as
      -- it is: the command then exits 130
      if type(result) == "string" and result:match("interrupted!$") then error(result, 0) end
      error(M.runtime_error(result), 0)
    end
    return result and true or false
  end
end

return M
