-- conntrack/ctl/labels.lua: connlabel.conf, read as libnetfilter_conntrack
-- reads it ("BIT NAME" lines), so that label names mean the same bits to
-- lua-conntrack as to conntrack(8) and to nft.

local numbers = require "conntrack.ctl.numbers"

local M = {}

M.PATH = "/etc/xtables/connlabel.conf"

-- name -> bit, or nil and the strerror text conntrack's perror() prints.
function M.load(path)
  local f, err, errno = io.open(path or M.PATH, "r")
  if not f then
    return nil, (err:gsub("^.-: ", "")), errno
  end
  local map, seen, added = {}, {}, 0
  for line in f:lines() do
    if line:sub(1, 1) ~= "#" then
      local num, rest
      local hex = line:match("^%s*0[xX](%x+)")
      if hex then
        num, rest = numbers.parse(hex, 16, 1023), line:match("^%s*0[xX]%x+(.*)$")
      else
        local digits = line:match("^%s*(%d+)")
        if digits then
          num = digits:match("^0") and numbers.parse(digits, 8, 1023) or numbers.parse(digits, 10, 1023)
          rest = line:match("^%s*%d+(.*)$")
        end
      end
      if num and num < 1024 and not seen[num] then
        local name = rest:match("^[ \f\r\t\v]*(.-)[ \f\r\t\v]*$")
        if name ~= "" and not name:find("[^%w %-]") and map[name] == nil then
          map[name] = num
          seen[num] = true
          added = added + 1
        end
      end
    end
  end
  f:close()
  if added == 0 then return nil, "Success", 0 end
  return map
end

return M
