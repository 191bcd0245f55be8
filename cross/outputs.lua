-- cross/outputs.lua [EXPECTED]: what the module makes of every corpus message
-- (fuzz/corpus/*, fuzz/crashes/parse-*, converted to this host's byte order)
-- and every crafted one (fuzz/messages.lua): conntrack.parse's answer,
-- tostring, flow:format in every form, totable. Without an argument it
-- prints them; with EXPECTED (the same script's output on x86) it compares,
-- prints the differences and exits 1 if any. Lua 5.1 to 5.4; run from the top.
package.path = "./?.lua;" .. package.path
local conntrack = require "conntrack"
local byteorder = require "fuzz.byteorder"
local messages = require "fuzz.messages"

local FORMATS = { "extended", "id", "ktimestamp", "labels", "xml", "extended,id,ktimestamp,labels",
                  "xml,id,ktimestamp" }

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

local function files(pattern)
  local list, p = {}, io.popen("ls " .. pattern .. " 2>/dev/null")
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

-- Every message once, by name; recorded files are converted to host order.
local function inputs()
  local list, seen = {}, {}
  local function add(name, bytes)
    if not seen[bytes] then
      seen[bytes] = true
      list[#list + 1] = { name = name, bytes = bytes }
    end
  end
  for _, dir in ipairs({ "fuzz/corpus/recorded/*", "fuzz/corpus/parse/*", "fuzz/corpus/differential/*",
                         "fuzz/crashes/parse-*" }) do
    for _, path in ipairs(files(dir)) do add(path, byteorder.from_recorded(read(path))) end
  end
  local samples, names = messages.samples(), {}
  for name in pairs(samples) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    add("crafted " .. name, samples[name])
  end
  for i, body in ipairs(messages.malformed()) do add("crafted malformed " .. i, messages.message(2, body)) end
  return list
end

-- A value as text that tells integers, floats, strings, booleans and tables apart.
local function show(v)
  local t = type(v)
  if t == "number" then
    if math.type then return math.type(v) .. ":" .. (math.type(v) == "integer" and tostring(v) or ("%.17g"):format(v)) end
    return "number:" .. ("%.17g"):format(v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = show(k) .. "=" .. show(v[k]) end
    table.sort(keys)
    return "{" .. table.concat(keys, ",") .. "}"
  end
  return t .. ":" .. tostring(v)
end

local function render(input, out)
  out[#out + 1] = "== " .. input.name
  local flow, err = conntrack.parse(input.bytes)
  if not flow then
    out[#out + 1] = "parse: nil, " .. tostring(err)
    return
  end
  out[#out + 1] = "tostring: " .. tostring(flow)
  for _, format in ipairs(FORMATS) do out[#out + 1] = "format " .. format .. ": " .. flow:format(format) end
  out[#out + 1] = "format {extended,id}: " .. flow:format({ extended = true, id = true })
  local t, keys = flow:totable(), {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    -- a field read by name must be what totable holds
    out[#out + 1] = ("totable %s: %s%s"):format(k, show(t[k]), show(flow[k]) == show(t[k]) and "" or " ~= flow." .. k)
  end
end

local list, out = inputs(), {}
for _, input in ipairs(list) do render(input, out) end
local text = table.concat(out, "\n") .. "\n"

if not arg[1] then
  io.write(text)
  return
end
local expected, lines = read(arg[1]), {}
for line in expected:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
local differ, name = 0, "?"
for i = 1, math.max(#out, #lines) do
  if (out[i] or ""):sub(1, 3) == "== " then name = out[i] end
  if out[i] ~= lines[i] then
    differ = differ + 1
    if differ <= 10 then
      print(("%s\n  here: %s\n  x86:  %s"):format(name, out[i] or "(none)", lines[i] or "(none)"))
    end
  end
end
local parsed = select(2, text:gsub("\ntostring: ", ""))
print(("%s %s: %d messages (%d parsed), %d lines, %d differ from x86"):format(
  _VERSION, byteorder.host .. "-endian", #list, parsed, #out, differ))
os.exit(differ == 0 and #out == #lines and 0 or 1)
