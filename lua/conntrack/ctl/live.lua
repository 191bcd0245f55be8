-- conntrack/ctl/live.lua: lua-conntrack --live, who is using the link right
-- now: every interval a meter (conntrack/rates.lua) reads the table again,
-- by the --group-by keys or per flow, and gives each group's bytes/s and
-- packets/s since the last reading, flows that ended meanwhile included;
-- with -z each reading zeroes the counters it reads. On a terminal: a
-- full-screen view with keys (q quit, p pause, s sort, g grouping, f filter)
-- that restores the terminal on exit and on Ctrl-C; elsewhere the same
-- table, printed every interval; with -o json, one object a reading (a feed
-- for a dashboard), wherever stdout goes.

local compat = require "conntrack.ctl.compat"
local errors = require "conntrack.ctl.errors"
local json = require "conntrack.ctl.json"
local output = require "conntrack.ctl.output"
local top = require "conntrack.ctl.top"
local where = require "conntrack.ctl.where"
local rates = require "conntrack.rates"

local M = {}

-- one row a flow: its original tuple
local FLOW_KEYS = "proto,orig_src,orig_sport,orig_dst,orig_dport,zone"
local SORTS = { "bytes", "packets", "flows" }

local has_socket, socket = pcall(require, "socket")
local function now() return has_socket and socket.gettime() or os.time() end

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

-- A meter of the current grouping and filter, from a fresh reading; the one
-- it replaces is closed.
local function restart(st, ct)
  if st.meter then st.meter:close() end
  local meter, err = rates.new(ct, { by = st.keys, filter = current_filter(st), zero = st.zero, sort = st.sort })
  if not meter then errors.failure("Operation failed: " .. tostring(err)) end
  st.meter = meter
  return now() + st.interval
end

-- ---- drawing ----

local RATES = { "bytes_per_s", "packets_per_s", "orig_bytes_per_s", "reply_bytes_per_s" }

-- The text of one frame: a status line, the header, the rows (at most n).
local function frame(st, info, list, n)
  local sort = info.counters and st.sort or "flows"
  local lines = {}
  lines[1] = ("lua-conntrack --live  every %gs  %s  sort: %s  flows: %d  groups: %d%s%s"):format(
    st.interval, st.grouping == FLOW_KEYS and "per flow" or "by " .. st.grouping,
    sort == "flows" and "flows" or sort .. "/s", info.flows, #list, st.expr and ("  where: " .. st.expr) or "",
    st.paused and "  [paused]" or "")
  if not info.counters then
    lines[#lines + 1] = "no packet and byte counters (accounting is off: sysctl -w net.netfilter.nf_conntrack_acct=1)"
  end
  if st.message then lines[#lines + 1] = st.message end
  local names = {}
  for i, c in ipairs(st.columns) do names[i] = c end
  local nkeys = #names
  names[#names + 1] = "flows"
  if info.counters then
    for _, c in ipairs{ "bytes/s", "packets/s", "orig_bytes/s", "reply_bytes/s" } do names[#names + 1] = c end
  end
  local table_rows = { names }
  for i = 1, math.min(#list, n) do
    local r, row = list[i], {}
    for j, c in ipairs(st.columns) do row[j] = rates.text_of(r[c]) end
    row[#row + 1] = tostring(r.flows)
    if info.counters then
      for _, s in ipairs(RATES) do row[#row + 1] = ("%.0f"):format(r[s]) end
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
local FRAME_KEYS = { "time", "interval", "sort", "flows", "counters" }

local function frame_json(st, info, list, n)
  local keys = {}
  for i, c in ipairs(st.columns) do keys[i] = c end
  keys[#keys + 1] = "flows"
  if info.counters then
    for _, s in ipairs(rates.RATES) do keys[#keys + 1] = s end
  end
  local groups = {}
  for i = 1, math.min(#list, n) do
    local r, g = list[i], { flows = list[i].flows }
    for _, c in ipairs(st.columns) do g[c] = top.json_value(r[c]) end
    if info.counters then
      for _, s in ipairs(rates.RATES) do g[s] = tonumber(("%.3f"):format(r[s])) end
    end
    groups[i] = json.object(g, keys)
  end
  local head = json.object({ time = tonumber(("%.3f"):format(info.time)), interval = st.interval,
                             sort = info.counters and st.sort or "flows", flows = info.flows,
                             counters = info.counters }, FRAME_KEYS)
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
    st.meter.sort = st.sort
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
  local n = cmd.top

  local loop = compat.interruptible(function()
    local next_tick = restart(st, ct)
    local last
    while true do
      local wait = next_tick - now()
      if wait <= 0 then
        next_tick = math.max(next_tick + st.interval, now())
        if not st.paused then
          local list, info = st.meter:read()
          if not list then errors.failure("Operation failed: " .. tostring(info)) end
          last = { list = list, info = info }
          if term then
            term:draw(frame(st, info, list, math.min(n or math.huge, term:size() - 4)))
          else
            local text
            if cmd.output.json then
              text = frame_json(st, info, list, n or math.huge) .. "\n"
            else
              local lines = frame(st, info, list, n or math.huge)
              lines[1] = os.date("%H:%M:%S ") .. lines[1]
              text = table.concat(lines, "\n") .. "\n\n"
            end
            -- the reader is gone (SIGPIPE is ignored once luasocket is loaded): done
            if not (out:write(text) and out:flush()) then return end
          end
        end
      else
        -- paused, what it takes is dropped: resuming starts a new meter
        st.meter:pump(math.min(wait, 0.05))
        local key = term and term:key()
        if key then
          local what = on_key(st, key, term)
          if what == "quit" then return end
          if what == "reset" then next_tick = restart(st, ct) end
          if what == "redraw" and last then
            rates.sorted(last.list, last.info.counters and st.sort or "flows")
            term:draw(frame(st, last.info, last.list, math.min(n or math.huge, term:size() - 4)))
          end
        end
      end
    end
  end)
  local ok, err = pcall(loop)
  if term then term:restore() end
  if st.meter then st.meter:close() end
  if not ok and not errors.interrupted(err) then error(err, 0) end
  return 0
end

return M
