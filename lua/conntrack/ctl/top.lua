-- conntrack/ctl/top.lua: -L --group-by KEYS [--top N] [--sort SUM]: the
-- flows the filters select, grouped by the module (ct:aggregate) and printed
-- as a table with a header, or with -o json as one object per group. Without
-- accounting (nf_conntrack_acct=0) the packet and byte columns are left out,
-- stderr says why, and groups are ordered by their flows.

local conntrack = require "conntrack"
local json = require "conntrack.ctl.json"
local output = require "conntrack.ctl.output"
local rates = require "conntrack.rates"

local M = {}

local SUMS = { "orig_packets", "orig_bytes", "reply_packets", "reply_bytes" }
M.SORTS = { "bytes", "packets", "flows", "orig_packets", "orig_bytes", "reply_packets", "reply_bytes" }

-- "orig_src/24,dport" -> the keys for ct:aggregate, and the column names
-- (a field's own name: dport is orig_dport).
function M.keys(text)
  local keys, columns = {}, {}
  for key in (text .. ","):gmatch("([^,]*),") do
    local name = key:match("^[^/]*")
    keys[#keys + 1] = key
    columns[#columns + 1] = conntrack.aliases[name] or name
  end
  return keys, columns
end

-- A key's value as text: status flags joined by "," in bit order.
local text_of = rates.text_of

-- A key's value for JSON: status flags as a list of names, in bit order.
function M.json_value(v)
  if type(v) ~= "table" then return v end
  local flags = {}
  for _, name in ipairs(conntrack.status_flags) do
    if v[name] then flags[#flags + 1] = name end
  end
  return flags
end

-- The rows of the table: keys left-aligned, sums right-aligned.
local function print_table(out, columns, groups, summary)
  local names = {}
  for i, c in ipairs(columns) do names[i] = c end
  names[#names + 1] = "flows"
  local nkeys = #columns
  if summary.counters then
    for _, s in ipairs(SUMS) do names[#names + 1] = s end
  end
  local rows = { names }
  for _, g in ipairs(groups) do
    local row = {}
    for i, c in ipairs(columns) do row[i] = text_of(g[c]) end
    for i = nkeys + 1, #names do row[i] = tostring(g[names[i]]) end
    rows[#rows + 1] = row
  end
  if summary.other then
    local row = { "(other)" }
    for i = 2, nkeys do row[i] = "" end
    for i = nkeys + 1, #names do row[i] = tostring(summary.other[names[i]]) end
    rows[#rows + 1] = row
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local pad = (" "):rep(widths[i] - #cell)
      cells[i] = i <= nkeys and cell .. pad or pad .. cell
    end
    out:write((table.concat(cells, "  "):gsub("%s+$", "")), "\n")
  end
end

local function print_json(out, columns, groups, summary)
  local order = {}
  for i, c in ipairs(columns) do order[i] = c end
  order[#order + 1] = "flows"
  for _, s in ipairs(SUMS) do order[#order + 1] = s end
  for _, g in ipairs(groups) do
    local t = {}
    for k, v in pairs(g) do t[k] = M.json_value(v) end
    out:write(json.object(t, order), "\n")
  end
  if summary.other then
    local t = { other = true }
    for k, v in pairs(summary.other) do t[k] = v end
    local keys = { "other" }
    for i = #columns + 1, #order do keys[#keys + 1] = order[i] end
    out:write(json.object(t, keys), "\n")
  end
end

-- list(cmd, ct, filter, opts, fail): fail(msg, errno) reports a failed
-- operation as the command does; returns the exit status.
function M.list(cmd, ct, filter, opts, fail, usage)
  local keys, columns = M.keys(cmd.group_by)
  local agg = { by = keys, top = cmd.top, sort = cmd.sort, zero = opts.zero, list = opts.list }
  local groups, summary = {}, { flows = 0, groups = 0, counters = true }
  if filter then
    local ok, g, s, errno = pcall(ct.aggregate, ct, filter, agg)
    if not ok then
      local err = tostring(g):gsub("^[^\n]-:%d+: ", "")
      if err:match("^bad argument 'by'") then usage("--group-by: " .. err:gsub("^bad argument 'by': ", "")) end
      error(g, 0)
    end
    if not g then fail(s, errno) end
    groups, summary = g, s
  end
  local out = output.out()
  if not summary.counters and summary.flows > 0 then
    output.message("no packet and byte counters (accounting is off: sysctl -w net.netfilter.nf_conntrack_acct=1)")
  end
  if cmd.output.json then
    print_json(out, columns, groups, summary)
  else
    print_table(out, columns, groups, summary)
  end
  output.summary(cmd, ("%%d groups of %d flow entries have been shown."):format(summary.flows), #groups)
  return 0
end

return M
