-- spec/ctl_smoke_spec.lua: lua/ctl.lua at a glance: run() as a function and
-- as a script, and what only lua-conntrack has (--where, -o json, --handler).
-- The differential suite (spec/ctl_*_spec.lua) compares it with conntrack(8).
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"

-- In a checkout conntrack.ctl is lua/ctl.lua.
package.preload["conntrack.ctl"] = function() return dofile("lua/ctl.lua") end
local ctl = require "conntrack.ctl"

local PREFIX = "lua-conntrack v" .. ns.conntrack._VERSION .. " (conntrack-tools compatible): "

-- Runs ctl.run in this process; returns stdout, stderr and the status.
local function run(...)
  local out, err = io.tmpfile(), io.tmpfile()
  local status = ctl.run({ [0] = "lua-conntrack", ... }, { out = out, err = err })
  out:seek("set"); err:seek("set")
  local o, e = out:read("*a"), err:read("*a")
  out:close(); err:close()
  return o, e, status
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs the script as a user would, from the checkout root.
local function script(args)
  return ns.run(ns.LUA .. " lua/ctl.lua " .. args)
end

local SSH_KEY = { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 40022, orig_dport = 22 }
local WEB_KEY = { proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 40080, orig_dport = 80 }
local function established(key)
  local t = { state = "ESTABLISHED", timeout = 300 }
  for k, v in pairs(key) do t[k] = v end
  return t
end
local SSH, WEB = established(SSH_KEY), established(WEB_KEY)

-- Lines with their timeout (which ticks between two listings) blanked, sorted.
local function untimed(text)
  local lines = type(text) == "table" and text or ns.sorted_lines(text)
  local out = {}
  for i, l in ipairs(lines) do
    out[i] = common.untimed(l)
  end
  table.sort(out)
  return out
end

describe("conntrack.ctl.run", function()
  before_each(function() ns.fresh() end)

  it("returns the exit status instead of exiting", function()
    local _, err, status = run("-L", "-p", "999")
    assert.equal(2, status)
    assert.equal(PREFIX .. "`999' unsupported protocol\n" ..
                 "Try `lua-conntrack -h' or 'lua-conntrack --help' for more information.\n", err)
  end)

  it("prints the flows and conntrack's summary on the streams it is given", function()
    ns.fill({ SSH })
    local out, err, status = run("-L")
    assert.equal(0, status)
    assert.equal(PREFIX .. "1 flow entries have been shown.\n", err)
    assert.same(untimed(tostring(assert(ns.handle():get(SSH_KEY))):gsub("use=2", "use=1")), untimed(out))
  end)

  it("refuses -U --state of an SCTP or DCCP flow with status 1, touching nothing", function()
    ns.fill({ { proto = "sctp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 1, orig_dport = 2,
                state = "ESTABLISHED", timeout = 300 } })
    for proto, state in pairs{ sctp = "CLOSED", dccp = "CLOSING" } do
      local _, err, status = run("-U", "-s", "10.0.0.1", "-p", proto, "--state", state, "-m", "1")
      assert.equal(1, status)
      assert.equal(PREFIX .. "changing the state of an " .. proto:upper() .. " flow is not supported by the " ..
                   "conntrack module\n", err)
    end
    for flow in ns.handle():dump() do assert.equal(0, flow.mark) end
  end)

  it("fails a -D that matched nothing with status 1", function()
    local _, err, status = run("-D", "-p", "tcp", "--dport", "22")
    assert.equal(1, status)
    assert.equal(PREFIX .. "0 flow entries have been deleted.\n", err)
  end)

  it("lists what conntrack -L lists #diff", function()
    ns.fill()
    local out, _, status = run("-L", "-o", "extended")
    assert.equal(0, status)
    assert.same(untimed(ns.reference_lines("-L -o extended")), untimed(out))
  end)
end)

describe("lua/ctl.lua as a script", function()
  before_each(function() ns.fresh() end)

  it("runs from the checkout root and exits with the command's status", function()
    local out, err, status = script("-V")
    assert.equal(0, status)
    assert.equal("lua-conntrack v" .. ns.conntrack._VERSION .. " (conntrack-tools compatible)\n", out)
    assert.equal("", err)
    _, _, status = script("-L --bogus")
    assert.equal(2, status)
  end)

  it("writes conntrack's -o save lines, and -R restores them as conntrack -R does #diff", function()
    ns.fill()
    local saved, _, status = script("-L -o save")
    assert.equal(0, status)
    assert.same(untimed(ns.reference_lines("-L -o save")), untimed(saved))
    local file = os.tmpname()
    local f = assert(io.open(file, "w")); f:write(saved); f:close()
    ns.fresh()
    assert.equal(0, select(3, ns.run("conntrack -R " .. file)))
    local theirs = ns.reference_lines("-L")
    ns.fresh()
    _, _, status = script("-R " .. file)
    os.remove(file)
    assert.equal(0, status)
    assert.same(untimed(theirs), untimed(ns.reference_lines("-L")))
  end)
end)

describe("--where", function()
  before_each(function() ns.fresh() end)

  it("refuses an expression that does not compile, before touching the table", function()
    ns.fill({ SSH })
    local _, err, status = run("-D", "--where", "orig_dport ==")
    assert.equal(2, status)
    assert.equal(PREFIX .. "invalid --where expression: unexpected symbol near ')'\n" ..
                 "Try `lua-conntrack -h' or 'lua-conntrack --help' for more information.\n", err)
    assert.equal(1, ns.handle():count())
  end)

  it("refuses a name that is not a field", function()
    local _, err, status = run("-L", "--where", "orig_dprt == 22")
    assert.equal(2, status)
    assert.equal(PREFIX .. "invalid --where expression: unknown name 'orig_dprt'\n" ..
                 "Try `lua-conntrack -h' or 'lua-conntrack --help' for more information.\n", err)
  end)

  -- A typo read as nil would make `~= 53' true for every flow.
  it("refuses a name that is not a field inside a function the expression defines, before touching the table", function()
    ns.fill({ SSH, WEB })
    for _, case in ipairs{
      { "(function() return orig_dprot ~= 53 end)()", "orig_dprot" },
      { "(function() local orig_dprot = orig_dprot return orig_dprot ~= 53 end)()", "orig_dprot" },
      { "(function(x) return x end)(1) and x ~= 53", "x" },
      { "(function() if mark then local q = 1 else return q ~= 53 end end)()", "q" },
      { "(function() for i = 1, 2 do end return i ~= 53 end)()", "i" },
      { "(function() stash = mark return true end)()", "stash" },
    } do
      local _, err, status = run("-D", "--where", case[1])
      assert.equal(2, status, case[1])
      assert.equal(PREFIX .. ("invalid --where expression: unknown name '%s'\n"):format(case[2]) ..
                   "Try `lua-conntrack -h' or 'lua-conntrack --help' for more information.\n", err)
    end
    assert.equal(2, ns.handle():count())
  end)

  it("takes the locals, parameters and loop variables of the functions it defines", function()
    ns.fill({ SSH, WEB })
    local out, _, status = run("-L", "--where",
      "(function(port) local wanted = { [22] = true } for p in pairs(wanted) do if p == port then return true end end " ..
      "return false end)(orig_dport)")
    assert.equal(0, status)
    assert.equal(1, #ns.sorted_lines(out))
    assert.truthy(out:find("dport=22 ", 1, true))
  end)

  it("deletes only the flows the expression selects", function()
    ns.fill({ SSH, WEB })
    local out, err, status = run("-D", "-p", "tcp", "--where", "orig_dport == 22 and status.CONFIRMED")
    assert.equal(0, status)
    assert.equal(PREFIX .. "1 flow entries have been deleted.\n", err)
    assert.truthy(out:find("dport=22 ", 1, true))
    assert.is_nil(ns.handle():get(SSH_KEY))
    assert.truthy(ns.handle():get(WEB_KEY))
  end)

  -- The script in the background, a real SIGINT once the expression runs
  -- (snippet, a Lua chunk, then gives -E its event); stdout, stderr, status
  -- (137 if it did not end on SIGINT: killed after 20 s).
  local function interrupted(args, snippet)
    local out, err = os.tmpname(), os.tmpname()
    local rc = ns.run(("sh -c %s"):format(shell_quote(
      -- under load the interpreter may take longer than any fixed sleep to start:
      -- wait (up to 10 s) for its netlink socket, or -E's signalfd, opened after
      -- its subscription (it is timeout's child), then for the expression to spin
      ("timeout -s KILL 20 %s lua/ctl.lua %s > %s 2> %s & P=$!; for i in $(seq 100); do " ..
       "C=$(tr -d ' ' < /proc/$P/task/$P/children 2>/dev/null); " ..
       "[ -n \"$C\" ] && ls -l /proc/$C/fd 2>/dev/null | grep -q %s && break; sleep 0.1; done; " ..
       -- Ctrl-C reaches the interpreter once, as from a terminal (timeout would
       -- pass it on to its process group too: a second SIGINT kills lua.c)
       "%s; sleep 0.5; kill -INT ${C:-$P}; wait $P; echo $?")
        :format(ns.LUA, args, out, err, args:match("^%-E") and "signalfd" or "socket:",
                snippet and (ns.LUA .. " -e " .. shell_quote(snippet)) or ":"))))
    local function slurp(path)
      local h = assert(io.open(path)); local s = h:read("*a"); h:close(); os.remove(path); return s
    end
    return slurp(out), slurp(err), tonumber(rc)
  end
  local ENDLESS = shell_quote("(function() while true do end end)()")

  for _, command in ipairs{ "-L", "-D", "-U -m 3" } do
    it(("exits 130 on Ctrl-C during an endless expression (%s), having acted on no flow"):format(command), function()
      ns.fill({ SSH, WEB })
      local out, err, status = interrupted(command .. " --where " .. ENDLESS)
      assert.equal(130, status, err)
      assert.equal("", out)
      assert.equal("", err)
      assert.equal(2, ns.handle():count())
      assert.equal(0, assert(ns.handle():get(SSH_KEY)).mark)
    end)
  end

  it("exits 130 on Ctrl-C during an endless expression of -E, after its summary", function()
    local out, err, status = interrupted("-E --where " .. ENDLESS,
      'assert(require("conntrack").create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.3", ' ..
      'orig_sport = 1, orig_dport = 53, timeout = 60 })')
    assert.equal(130, status, err)
    assert.equal("", out)
    assert.equal(PREFIX .. "0 flow events have been shown.\n", err)
  end)
end)

describe("-o json", function()
  before_each(function() ns.fresh() end)

  it("prints one object per flow with the module's field names", function()
    ns.fill({ SSH })
    local out, _, status = run("-L", "-o", "json")
    assert.equal(0, status)
    local id = assert(ns.handle():get(SSH_KEY)).id
    assert.equal('{"family":"ipv4","proto":"tcp","orig_src":"10.0.0.1","orig_dst":"10.0.0.2",' ..
                 '"reply_src":"10.0.0.2","reply_dst":"10.0.0.1","orig_sport":40022,"orig_dport":22,' ..
                 '"reply_sport":22,"reply_dport":40022,"state":"ESTABLISHED","status":["CONFIRMED"],' ..
                 '"timeout":T,"mark":0,"use":1,"id":' .. id .. ',"zone":0,"orig_zone":0,"reply_zone":0,' ..
                 '"snat":false,"dnat":false}\n', (out:gsub('"timeout":%d+', '"timeout":T')))
  end)
end)

describe("--handler", function()
  before_each(function() ns.fresh() end)

  -- Runs `-E ARGS` (with env, "NAME=value ...") while a Lua snippet makes
  -- flows, ends it with Ctrl-C; returns its stdout, stderr and exit status.
  local function stream(args, snippet, env)
    local out, err = os.tmpname(), os.tmpname()
    local rc = ns.run(("sh -c %s"):format(shell_quote(
      ("%s %s lua/ctl.lua -E %s > %s 2> %s & P=$!; sleep 0.5; %s -e %s; sleep 0.3; " ..
       "kill -INT $P; wait $P; echo $?"):format(env or "", ns.LUA, args, out, err, ns.LUA, shell_quote(snippet)))))
    local function slurp(path)
      local h = assert(io.open(path)); local s = h:read("*a"); h:close(); os.remove(path); return s
    end
    return slurp(out), slurp(err), tonumber(rc)
  end

  local MAKE = 'local c = require "conntrack" ' ..
    'assert(c.create{ proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 40022, ' ..
    'orig_dport = 22, state = "ESTABLISHED", timeout = 300 }) ' ..
    'assert(c.create{ proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", orig_sport = 40080, ' ..
    'orig_dport = 80, state = "ESTABLISHED", timeout = 300 })'

  it("re-marks SSH flows through the example handler", function()
    local out, err, status = stream("-e NEW -p tcp --dport 22 --handler examples/handlers/remark-ssh.lua", MAKE)
    assert.equal(0, status)
    assert.equal(1, select(2, out:gsub("%[NEW%]", "")))
    assert.equal(PREFIX .. "1 flow events have been shown.\n", err)
    assert.equal(0x22, assert(ns.handle():get(SSH_KEY)).mark)
    assert.equal(0, assert(ns.handle():get(WEB_KEY)).mark)
  end)

  it("shortens answered DNS flows through the example handler", function()
    local dns = { proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.53", orig_sport = 40053, orig_dport = 53 }
    local out, _, status = stream("-e UPDATES -p udp --dport 53 --handler examples/handlers/short-dns.lua",
      'local c = require "conntrack" ' ..
      'assert(c.create{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.53", orig_sport = 40053, ' ..
      'orig_dport = 53, timeout = 120 }) ' ..
      'local f = assert(c.get{ proto = "udp", orig_src = "10.0.0.1", orig_dst = "10.0.0.53", orig_sport = 40053, ' ..
      'orig_dport = 53 }) assert(c.update(f, { status = "SEEN_REPLY" }))')
    assert.equal(0, status)
    assert.truthy(out:find("[UPDATE]", 1, true))
    assert.is_true(assert(ns.handle():get(dns)).timeout <= 5)
  end)

  it("writes one accounting line per finished flow through the example handler", function()
    local log = os.tmpname()
    local _, _, status = stream("-e DESTROY --handler examples/handlers/account.lua",
      MAKE .. ' local f = assert(c.get{ proto = "tcp", orig_src = "10.0.0.1", orig_dst = "10.0.0.2", ' ..
      'orig_sport = 40022, orig_dport = 22 }) assert(c.delete(f))', "ACCOUNT_LOG=" .. log)
    local f = assert(io.open(log)); local text = f:read("*a"); f:close(); os.remove(log)
    assert.equal(0, status)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ tcp 10%.0%.0%.1:40022 %-> 10%.0%.0%.2:22 " ..
                   "bytes=0/0 packets=0/0\n$", text)
  end)

  it("reports a failing handler with its traceback and goes on", function()
    local handler = os.tmpname()
    local f = assert(io.open(handler, "w"))
    f:write('return { new = function(flow) if flow.orig_dport == 22 then error("no ssh here") end end }\n')
    f:close()
    local out, err, status = stream("-e NEW --handler " .. handler, MAKE)
    os.remove(handler)
    assert.equal(0, status)
    assert.equal(2, select(2, out:gsub("%[NEW%]", "")))
    assert.truthy(err:find(PREFIX .. "handler 'new' failed: " .. handler .. ":1: no ssh here\nstack traceback:\n",
                           1, true))
    assert.truthy(err:find(PREFIX .. "2 flow events have been shown.\n", 1, true))
  end)

  it("stops at a failing handler with --strict, with status 1", function()
    local handler = os.tmpname()
    local f = assert(io.open(handler, "w"))
    f:write("return { new = function() error('stop') end }\n")
    f:close()
    local out, err, status = stream("-e NEW --strict --handler " .. handler, MAKE)
    os.remove(handler)
    assert.equal(1, status)
    assert.equal(1, select(2, out:gsub("%[NEW%]", "")))
    assert.truthy(err:find(PREFIX .. "1 flow events have been shown.\n", 1, true))
  end)
end)
