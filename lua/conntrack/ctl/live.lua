-- conntrack/ctl/live.lua: lua-conntrack --live, who is using the link right
-- now. Every interval the table is read again (ct:aggregate, by the
-- --group-by keys, or per flow) and each group's bytes/s and packets/s are
-- the growth of its sums since the last reading, plus what its flows that
-- ended meanwhile moved (their destroy events carry their last counters), so
-- a download that just finished is not lost. With -z each reading zeroes the
-- counters it reads (as nlbwmon does): its sums are then the growth itself,
-- and other readers of the table see counters since the last reading. On a
-- terminal: a full-screen view with keys (q quit, p pause, s sort, g
-- grouping, f filter) that restores the terminal on exit and on Ctrl-C;
-- elsewhere the same table, printed every interval; with -o json, one object
-- a reading (a feed for a dashboard), wherever stdout goes.

local addr = require "conntrack.ctl.addr"
local compat = require "conntrack.ctl.compat"
local errors = require "conntrack.ctl.errors"
local json = require "conntrack.ctl.json"
local output = require "conntrack.ctl.output"
local top = require "conntrack.ctl.top"
local where = require "conntrack.ctl.where"
local conntrack = require "conntrack"

local M = {}

-- one row a flow: its original tuple
local FLOW_KEYS = "proto,orig_src,orig_sport,orig_dst,orig_dport,zone"
local SORTS = { "bytes", "packets", "flows" }

local has_socket, socket = pcall(require, "socket")
local function now() return has_socket and socket.gettime() or os.time() end

-- ---- the key of a flow, as ct:aggregate makes it ----

-- "orig_src/24/64" -> field, IPv4 and IPv6 prefix lengths (nil: whole)
local function parse_key(key)
  local name, a, b = key:match("^([^/]*)/?(%d*)/?(%d*)$")
  name = conntrack.aliases[name] or name
  a, b = tonumber(a), tonumber(b)
  if a and not b then b = a end
  return { field = name, v4 = a and math.min(a, 32), v6 = b }
end

local function cut(text, spec)
  if not spec.v4 or type(text) ~= "string" then return text end
  local family, bytes = addr.parse(text)
  if not family then return text end
  local plen, max = family == "ipv4" and spec.v4 or spec.v6, family == "ipv4" and 32 or 128
  if plen >= max then return text end
  return addr.text(family, addr.band(bytes, addr.netmask(family, plen))) .. "/" .. plen
end

local function text_of(v)
  if type(v) ~= "table" then return v == nil and "-" or tostring(v) end
  local flags = {}
  for _, name in ipairs(conntrack.status_flags) do
    if v[name] then flags[#flags + 1] = name end
  end
  return table.concat(flags, ",")
end

-- ---- the view's state ----

local function new_state(cmd, filter)
  return {
    cmd = cmd, base = filter, interval = cmd.interval or 1, zero = cmd.given.zero or nil,
    grouping = cmd.group_by or FLOW_KEYS, group_by = cmd.group_by,
    sort = cmd.sort or "bytes", paused = false, predicate = nil, expr = nil, message = nil,
  }
end

local function set_grouping(st, grouping)
  st.grouping = grouping
  st.keys, st.columns = top.keys(grouping)
  st.specs = {}
  for i, k in ipairs(st.keys) do st.specs[i] = parse_key(k) end
end

-- the filter of the readings: the command's, and the one typed in the view
local function current_filter(st)
  if not st.predicate then return st.base end
  local f, base = {}, st.base
  for k, v in pairs(base) do f[k] = v end
  local outer, typed = base.where, st.predicate
  f.where = function(flow) return (outer == nil or outer(flow)) and typed(flow) end
  return f
end

local function group_key(st, get)
  local parts = {}
  for i, spec in ipairs(st.specs) do parts[i] = text_of(cut(get(spec.field), spec)) end
  return table.concat(parts, "\1")
end

-- A reading: key -> the group's sums and key values, and when it was made.
local function reading(st, ct)
  local groups, summary = ct:aggregate(current_filter(st), { by = st.keys, zero = st.zero })
  if not groups then errors.failure("Operation failed: " .. tostring(summary)) end
  local map = {}
  for _, g in ipairs(groups) do
    map[group_key(st, function(field) return g[field] end)] = g
  end
  return { groups = map, time = now(), counters = summary.counters, flows = summary.flows }
end

local SUMS = { "orig_bytes", "reply_bytes", "orig_packets", "reply_packets" }

-- a destroyed flow's last counters, for its group
local function ended(st, flow)
  if st.predicate and not st.predicate(flow) then return end
  local key = group_key(st, function(field) return flow[field] end)
  local e = st.ended[key]
  if not e then
    e = { orig_bytes = 0, reply_bytes = 0, orig_packets = 0, reply_packets = 0, values = {} }
    for _, spec in ipairs(st.specs) do e.values[spec.field] = cut(flow[spec.field], spec) end
    st.ended[key] = e
  end
  for _, k in ipairs(SUMS) do e[k] = e[k] + (flow[k] or 0) end
  if flow.orig_bytes then st.ended_counters = true end
end

-- The rows of the view: per group, flows and rates, largest first.
local function rows(st, prev, cur)
  local dt = math.max(cur.time - prev.time, 1e-3)
  -- a table left empty meanwhile still had counters
  cur.counters = cur.counters or prev.counters or st.ended_counters
  local out = {}
  local function add(key, g, p)
    local e = st.ended[key]
    -- zeroed by the last reading: the sums are the growth
    if st.zero then p = nil end
    local r = { key = key, flows = g and g.flows or 0, values = g or p or e.values }
    for _, s in ipairs(SUMS) do
      local moved = ((g and g[s]) or 0) - ((p and p[s]) or 0) + ((e and e[s]) or 0)
      r[s] = math.max(moved, 0) / dt
    end
    r.bytes = r.orig_bytes + r.reply_bytes
    r.packets = r.orig_packets + r.reply_packets
    out[#out + 1] = r
  end
  for key, g in pairs(cur.groups) do add(key, g, prev.groups[key]) end
  -- groups whose flows all ended: since the last reading, or before it
  for key in pairs(st.ended) do
    if not cur.groups[key] then add(key, nil, prev.groups[key]) end
  end
  local sort = cur.counters and st.sort or "flows"
  return M.sorted(out, sort), sort
end

-- largest first; equal ones in the order of their keys
function M.sorted(list, sort)
  table.sort(list, function(a, b)
    if a[sort] ~= b[sort] then return a[sort] > b[sort] end
    return a.key < b.key
  end)
  return list
end

-- ---- drawing ----

local function rate(v)
  return ("%.0f"):format(v)
end

-- The text of one frame: a status line, the header, the rows (at most n).
local function frame(st, cur, list, sort, n)
  local lines = {}
  lines[1] = ("lua-conntrack --live  every %gs  %s  sort: %s  flows: %d  groups: %d%s%s"):format(
    st.interval, st.group_by and st.grouping == st.group_by and "by " .. st.grouping or
    (st.grouping == FLOW_KEYS and "per flow" or "by " .. st.grouping), sort == "flows" and "flows" or sort .. "/s",
    cur.flows, #list, st.expr and ("  where: " .. st.expr) or "", st.paused and "  [paused]" or "")
  if not cur.counters then
    lines[#lines + 1] = "no packet and byte counters (accounting is off: sysctl -w net.netfilter.nf_conntrack_acct=1)"
  end
  if st.message then lines[#lines + 1] = st.message end
  local names = {}
  for i, c in ipairs(st.columns) do names[i] = c end
  local nkeys = #names
  names[#names + 1] = "flows"
  if cur.counters then
    for _, c in ipairs{ "bytes/s", "packets/s", "orig_bytes/s", "reply_bytes/s" } do names[#names + 1] = c end
  end
  local table_rows = { names }
  for i = 1, math.min(#list, n) do
    local r, row = list[i], {}
    for j, spec in ipairs(st.specs) do
      row[j] = text_of(cut(r.values[spec.field], spec))
    end
    row[#row + 1] = tostring(r.flows)
    if cur.counters then
      for _, s in ipairs{ "bytes", "packets", "orig_bytes", "reply_bytes" } do row[#row + 1] = rate(r[s]) end
    end
    table_rows[#table_rows + 1] = row
  end
  local widths = {}
  for _, row in ipairs(table_rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  for _, row in ipairs(table_rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local pad = (" "):rep(widths[i] - #cell)
      cells[i] = i <= nkeys and cell .. pad or pad .. cell
    end
    lines[#lines + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  return lines
end

-- A reading as one JSON object: when, and the groups (at most n) with their
-- keys by field name, flows and, with accounting, rates per second.
local RATES = { "bytes", "packets", "orig_bytes", "reply_bytes", "orig_packets", "reply_packets" }
local FRAME_KEYS = { "time", "interval", "sort", "flows", "counters" }

local function frame_json(st, cur, list, sort, n)
  local keys = {}
  for i, c in ipairs(st.columns) do keys[i] = c end
  keys[#keys + 1] = "flows"
  if cur.counters then
    for _, s in ipairs(RATES) do keys[#keys + 1] = s .. "_per_s" end
  end
  local groups = {}
  for i = 1, math.min(#list, n) do
    local r, g = list[i], { flows = list[i].flows }
    for j, spec in ipairs(st.specs) do
      g[st.columns[j]] = top.json_value(cut(r.values[spec.field], spec))
    end
    if cur.counters then
      for _, s in ipairs(RATES) do g[s .. "_per_s"] = tonumber(("%.3f"):format(r[s])) end
    end
    groups[i] = json.object(g, keys)
  end
  local head = json.object({ time = tonumber(("%.3f"):format(cur.time)), interval = st.interval, sort = sort,
                             flows = cur.flows, counters = cur.counters and true or false }, FRAME_KEYS)
  return head:sub(1, -2) .. ',"groups":[' .. table.concat(groups, ",") .. "]}"
end

-- ---- the terminal ----

local function sh_out(cmd)
  local p = io.popen(cmd)
  if not p then return nil end
  local text = p:read("*a")
  p:close()
  return text
end

local function is_terminal()
  return os.execute("[ -t 1 ] && [ -t 0 ]") == true or os.execute("[ -t 1 ] && [ -t 0 ]") == 0
end

local Terminal = {}
Terminal.__index = Terminal

function Terminal.open(out)
  local saved = sh_out("stty -g < /dev/tty 2>/dev/null")
  if not saved or saved == "" then return nil end
  local t = setmetatable({ out = out, saved = saved:gsub("%s+$", "") }, Terminal)
  -- no line editing, no echo, reads that return at once; Ctrl-C still signals
  os.execute("stty -icanon -echo min 0 time 0 < /dev/tty")
  out:write("\27[?1049h\27[?25l")
  out:flush()
  return t
end

function Terminal:size()
  local rows, cols = (sh_out("stty size < /dev/tty 2>/dev/null") or ""):match("(%d+) (%d+)")
  return tonumber(rows) or 24, tonumber(cols) or 80
end

function Terminal:draw(lines)
  local rows, cols = self:size()
  local out = { "\27[H\27[2J" }
  for i = 1, math.min(#lines, rows - 1) do out[#out + 1] = lines[i]:sub(1, cols) .. "\r\n" end
  out[#out + 1] = ("q quit  p pause  s sort  g grouping  f filter"):sub(1, cols)
  self.out:write(table.concat(out))
  self.out:flush()
end

function Terminal:key()
  return io.stdin:read(1)
end

-- a line typed at the bottom, with echo and editing for the time
function Terminal:prompt(text)
  local rows = self:size()
  self.out:write(("\27[%d;1H\27[2K%s\27[?25h"):format(rows, text))
  self.out:flush()
  os.execute("stty " .. self.saved .. " < /dev/tty")
  local line = io.stdin:read("*l")
  os.execute("stty -icanon -echo min 0 time 0 < /dev/tty")
  self.out:write("\27[?25l")
  return line
end

function Terminal:restore()
  self.out:write("\27[?25h\27[?1049l")
  self.out:flush()
  os.execute("stty " .. self.saved .. " < /dev/tty")
end

-- ---- the loop ----

local function on_key(st, key, term)
  if key == "q" then return "quit" end
  if key == "p" then
    -- a resumed view starts from a fresh reading: rates over the pause would be wrong
    st.paused = not st.paused
    return st.paused and "redraw" or "reset"
  end
  if key == "s" then
    local i = 1
    while SORTS[i] ~= st.sort and i <= #SORTS do i = i + 1 end
    st.sort = SORTS[i % #SORTS + 1] or "bytes"
    return "redraw"
  end
  if key == "g" then
    local other = st.group_by or "orig_src"
    set_grouping(st, st.grouping == FLOW_KEYS and other or FLOW_KEYS)
    return "reset"
  end
  if key == "f" then
    local expr = term:prompt("where> ")
    if expr == nil or expr:match("^%s*$") then
      st.predicate, st.expr, st.message = nil, nil, nil
    else
      local ok, fn = pcall(where.compile, expr)
      if ok then
        st.predicate, st.expr, st.message = fn, expr, nil
      else
        st.message = type(fn) == "table" and fn.message or tostring(fn)
      end
    end
    return "reset"
  end
end

function M.run(cmd, ct, filter)
  local st = new_state(cmd, filter or { where = function() return false end })
  set_grouping(st, st.grouping)
  local out = output.out()
  local term = not cmd.output.json and is_terminal() and Terminal.open(out) or nil
  local sub = assert(ct:events{ "destroy", filter = filter })
  local n = cmd.top

  local loop = compat.interruptible(function()
    st.ended = {}
    local prev = reading(st, ct)
    local next_tick = prev.time + st.interval
    local last_frame
    while true do
      local wait = next_tick - now()
      if wait <= 0 then
        next_tick = math.max(next_tick + st.interval, now())
        if not st.paused then
          local cur = reading(st, ct)
          local list, sort = rows(st, prev, cur)
          st.ended, st.ended_counters, prev = {}, nil, cur
          if term then
            local rows_n = term:size()
            last_frame = { cur = cur, list = list, sort = sort }
            term:draw(frame(st, cur, list, sort, math.min(n or math.huge, rows_n - 4)))
          else
            local text
            if cmd.output.json then
              text = frame_json(st, cur, list, sort, n or math.huge) .. "\n"
            else
              local lines = frame(st, cur, list, sort, n or math.huge)
              lines[1] = os.date("%H:%M:%S ") .. lines[1]
              text = table.concat(lines, "\n") .. "\n\n"
            end
            -- the reader is gone (SIGPIPE is ignored once luasocket is loaded): done
            if not (out:write(text) and out:flush()) then return end
          end
        end
      else
        local kind, flow = sub:next(math.min(wait, 0.05))
        if kind == "destroy" and not st.paused then ended(st, flow) end
        local key = term and term:key()
        if key then
          local what = on_key(st, key, term)
          if what == "quit" then return end
          if what == "reset" then
            st.ended = {}
            prev = reading(st, ct)
            next_tick = prev.time + st.interval
          end
          if what == "redraw" and last_frame then
            local sort = last_frame.cur.counters and st.sort or "flows"
            term:draw(frame(st, last_frame.cur, M.sorted(last_frame.list, sort), sort,
                            math.min(n or math.huge, term:size() - 4)))
          end
        end
      end
    end
  end)
  local ok, err = pcall(loop)
  if term then term:restore() end
  sub:close()
  if not ok and not errors.interrupted(err) then error(err, 0) end
  return 0
end

return M
