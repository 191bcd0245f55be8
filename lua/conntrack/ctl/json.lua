-- conntrack/ctl/json.lua: the small JSON encoder -o json needs: objects with
-- keys in a given order, arrays, strings, integers, floats and booleans.

local compat = require "conntrack.ctl.compat"

local M = {}

local is_integer, integer_text = compat.is_integer, compat.integer_text

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function string_value(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local encode

-- A table is an array when its keys are exactly 1..n (an empty one too).
local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

function encode(v, keys)
  local t = type(v)
  if t == "string" then return string_value(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "nil" then return "null" end
  if t == "number" then
    if is_integer(v) then return integer_text(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return (("%.16g"):format(v):gsub(",", "."))
  end
  if t == "table" then
    local out = {}
    if not keys and is_array(v) then
      for i = 1, #v do out[i] = encode(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    local order = keys or {}
    if not keys then
      for k in pairs(v) do order[#order + 1] = k end
      table.sort(order, function(a, b) return tostring(a) < tostring(b) end)
    end
    for _, k in ipairs(order) do
      if v[k] ~= nil then out[#out + 1] = string_value(tostring(k)) .. ":" .. encode(v[k]) end
    end
    return "{" .. table.concat(out, ",") .. "}"
  end
  error("json: cannot encode a " .. t)
end

-- encode(value [, keys]): keys, a list, orders an object's members (those
-- missing are left out); other objects are sorted by key.
M.encode = encode

-- The quoted names of keys, made once for object().
local quoted = setmetatable({}, { __mode = "k", __index = function(cache, keys)
  local q = {}
  for i, k in ipairs(keys) do q[i] = string_value(k) .. ":" end
  cache[keys] = q
  return q
end })

-- object(t, keys): encode(t, keys) for a flat object, faster.
function M.object(t, keys)
  local names, out, n = quoted[keys], { "{" }, 1
  for i = 1, #keys do
    local v = t[keys[i]]
    if v ~= nil then
      out[n + 1] = n > 1 and "," or ""
      out[n + 2] = names[i]
      local tv = type(v)
      if tv == "string" then
        out[n + 3] = v:find('[%c"\\]') and string_value(v) or '"' .. v .. '"'
      elseif tv == "number" and is_integer(v) then
        out[n + 3] = integer_text(v)
      else
        out[n + 3] = encode(v)
      end
      n = n + 3
    end
  end
  out[n + 1] = "}"
  return table.concat(out)
end

return M
