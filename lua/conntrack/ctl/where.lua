-- conntrack/ctl/where.lua: --where EXPR, a Lua expression over a flow's
-- fields, compiled once in a sandbox that holds only those fields and a few
-- pure functions. A name that is neither is refused before anything runs.

local compat = require "conntrack.ctl.compat"

local M = {}

-- The module's field vocabulary (conntrack's fields.c), and its aliases.
M.FIELDS = {
  "family", "proto", "orig_src", "orig_dst", "reply_src", "reply_dst", "orig_sport", "orig_dport",
  "reply_sport", "reply_dport", "icmp_type", "icmp_code", "icmp_id", "state", "orig_vtag", "reply_vtag",
  "status", "timeout", "mark", "secmark", "use", "id", "zone", "orig_zone", "reply_zone",
  "orig_packets", "orig_bytes", "reply_packets", "reply_bytes", "start", "stop", "labels", "helper",
  "secctx", "snat", "dnat",
}
local is_field = {}
for _, f in ipairs(M.FIELDS) do is_field[f] = true end
for _, a in ipairs({ "src", "dst", "sport", "dport" }) do is_field[a] = true end

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

local KEYWORDS = {}
for k in ("and break do else elseif end false for function goto if in local nil not or " ..
          "repeat return then true until while"):gmatch("%a+") do KEYWORDS[k] = true end

-- The free names of an expression: Name tokens not after "." or ":", not
-- keys of a table constructor. Strings, long strings and comments are
-- skipped. Returns nil when the expression defines functions (locals).
local function free_names(src)
  local names, prev, i, n = {}, nil, 1, #src
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = src:find("]" .. eq .. "]", at, true)
    return close and close + #eq + 1 or n
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
      i, prev = j + 1, "string"
    elseif c == "[" and long_bracket(i) then
      i, prev = long_bracket(i) + 1, "string"
    elseif c:match("[%a_]") then
      local name = src:match("^[%a_][%w_]*", i)
      i = i + #name
      if name == "function" then return nil end
      local next_char = src:match("^%s*(.)", i)
      local next_two = src:match("^%s*(..)", i)
      local is_key = next_char == "=" and next_two ~= "=="
      if not KEYWORDS[name] and prev ~= "." and prev ~= ":" and not is_key then
        names[#names + 1] = name
      end
      prev = name
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^0[xX][%x%.]*[pP]?[+-]?%x*", i) or src:match("^[%d%.]+[eE]?[+-]?%d*", i)
      i, prev = i + #num, "number"
    else
      local op = src:match("^%.%.%.?", i) or c
      i, prev = i + #op, op
    end
  end
  return names
end

-- A failure while evaluating: exit status 1. It has a string form, since
-- the module reports a predicate's error as text.
local RUNTIME = { __tostring = function(e) return e.message end }
function M.runtime_error(err)
  local text = tostring(err):gsub("^%-%-where:%d+: ", "")
  return setmetatable({ ctl_status = 1, message = "--where: " .. text, where_error = true }, RUNTIME)
end

-- Compiles EXPR; returns predicate(flow) -> boolean, or raises a usage
-- error (exit status 2) naming the problem.
function M.compile(expr)
  local current
  local env = setmetatable({}, {
    __index = function(_, k)
      if SAFE[k] ~= nil then return SAFE[k] end
      if is_field[k] then return current[k] end
      return nil
    end,
    __newindex = function(_, k) error(("--where cannot assign '%s'"):format(tostring(k)), 2) end,
  })
  local chunk, err = compat.load_text("return (" .. expr .. "\n)", "=--where", env)
  if not chunk then
    error({ ctl_status = 2, message = ("invalid --where expression: %s"):format((err:gsub("^%-%-where:%d+: ", ""))) }, 0)
  end
  for _, name in ipairs(free_names(expr) or {}) do
    if SAFE[name] == nil and not is_field[name] then
      error({ ctl_status = 2, message = ("invalid --where expression: unknown name '%s'"):format(name) }, 0)
    end
  end
  return function(flow)
    current = flow
    local ok, result = pcall(chunk)
    current = nil
    if not ok then error(M.runtime_error(result), 0) end
    return result and true or false
  end
end

return M
