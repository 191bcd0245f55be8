-- spec/ctl_fuzz_spec.lua: thousands of mutated and random command lines run
-- in-process through conntrack.ctl's run(argv) against a filled table. Each
-- must come back (no Lua error escapes), exit 0, 1 or 2, explain a failure
-- on stderr without a leaked Lua error, and leave the table alone on exit 2.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"

package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
if not (package.searchpath and package.searchpath("conntrack.ctl", package.path)) then
  package.preload["conntrack.ctl"] = function() return dofile("lua/ctl.lua") end
end
local run = require("conntrack.ctl").run
local options = require "conntrack.ctl.options"

local SEED = 20240611
local MUTATED, RANDOM = 2400, 600
-- a run that executes more Lua instructions than this is taken as hung
local BUDGET = 300 * 1000000

-- ns.sample with timeouts long enough to outlive the whole spec.
local FLOWS = {}
for i, f in ipairs(ns.sample) do
  local copy = {}
  for k, v in pairs(f) do copy[k] = v end
  copy.timeout = 3000
  FLOWS[i] = copy
end

-- Lines from ctl_diff_spec.lua and ctl_errors_spec.lua (plus a few
-- --where ones), as token lists.
local SEEDS = {}
for _, line in ipairs{
  "-L", "--dump", "-L conntrack", "-L expect", "-L dying", "-L -s 10.0.0.1", "-L --orig-src 10.0.0.1",
  "-L -d 10.0.0.2 -s 10.0.0.0/24", "-L -s fd00::/64", "-L -r 10.0.0.2", "-L -q fd01::1",
  "-L -s 10.0.0.0 --mask-src 255.255.255.0", "-L -f ipv6 -p udp", "-L -p icmp --icmp-type 8",
  "-L -p icmpv6 --icmpv6-id 9", "-L -p tcp --sport 1234 --dport 80", "-L -p tcp --state ESTABLISHED",
  "-L -p sctp --state COOKIE_WAIT", "-L -p gre --srckey 0x4d3", "-L -m 0x10/0xf0", "-L -u ASSURED,!SEEN_REPLY",
  "-L -w 3 --orig-zone 4 --reply-zone 6", "-L -c 0", "-L -n 203.0.113.1:61002", "-L -g", "-L -j 192.168.1.80",
  "-L -o extended,id", "-L -o xml", "-L -o save -f ipv6", "-L -o json", "-L -o ktimestamp,labels",
  "-L -l one,three", "-L -z", "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1234 --dport 80",
  "-G -p icmp -s 10.0.0.4 -d 10.0.0.1 --icmp-type 8 --icmp-code 0 --icmp-id 77",
  "-G -p udp -s fd00::1 -d fd00::9 --sport 1000 --dport 53 -o xml",
  "-D -p udp", "-D -s 10.0.0.0/24 -p tcp", "-D -f ipv6", "-D -m 7", "-D -u UNREPLIED -p udp", "-D -i 5", "-D",
  "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 10 --dport 20 --state SYN_RECV -t 3000 -u ASSURED --mark 3 --zone 4",
  "-I -p udp -s fd10::1 -d fd10::2 --sport 15 --dport 53 -t 3000 -u ASSURED",
  "-I -p icmp -s 10.1.0.1 -d 10.1.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 5 -t 3000",
  "-I -p sctp -s fd10::1 -d fd10::2 --sport 16 --dport 17 --state ESTABLISHED --orig-vtag 7 --reply-vtag 8 -t 3000",
  "-I -p gre -s fd10::1 -d fd10::2 --srckey 5 --dstkey 6 -t 3000", "-I -p 254 -s 10.1.0.1 -d 10.1.0.2 -t 3000",
  "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 20 --dport 80 --state ESTABLISHED -t 3000 --src-nat 192.168.0.1",
  "-A -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 23 --dport 53 -t 3000",
  "-U -s 10.0.0.1 -m 9", "--update -s 10.0.0.1 -t 50", "-U -f ipv6 -p udp -m 0x20/0xf0",
  "-U -s 10.0.0.1 -p tcp --dport 80 -u ASSURED", "-U -s 10.0.0.1 --label-add five", "-U -f ipv4 --label-del",
  "-F", "-F expect", "-C", "--count", "-S", "-S expect", "-V", "-h", "-R /dev/null", "-R /nonexistent/lct",
  "-L -s", "-L -L", "-S -C", "-L -s 999.1.1.1", "-L -s 10.0.0.1/33", "-L -f ipv7", "-L -p 256",
  "-L -u ,ASSURED", "-L -o save,xml", "-L -t 10", "-F -s 10.0.0.1", "-L --or 1.1.1.1", "-C --c", "--st",
  "-I -p tcp", "-G -s 10.0.0.1", "-D expect", "-L -m abc", "-L -p tcp --dport 70000",
  "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 99999 --dport 2 --state ESTABLISHED -t 10",
} do
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  SEEDS[#SEEDS + 1] = words
end
for _, words in ipairs{
  { "-L", "--where", "mark == 7" }, { "-L", "--where", 'proto == "udp" and orig_dport == 53' },
  { "-D", "--where", "family == 'ipv6'" }, { "-U", "-m", "1", "--where", "zone == 3" },
} do SEEDS[#SEEDS + 1] = words end

local OPTIONS = {
  "-L", "-I", "-U", "-D", "-G", "-F", "-A", "-C", "-S", "-V", "-h", "-s", "-d", "-r", "-q", "-p", "-t", "-u", "-e",
  "-z", "-[", "-]", "-{", "-}", "-a", "-m", "-i", "-f", "-o", "-n", "-g", "-c", "-b", "-j", "-w", "-l", "-<", "->",
  "-(", "-)", "--dump", "--create", "--add", "--delete", "--update", "--get", "--flush", "--counter", "--stats",
  "--version", "--help", "--orig-src", "--src", "--orig-dst", "--dst", "--reply-src", "--reply-dst", "--protonum",
  "--timeout", "--status", "--zero", "--event-mask", "--tuple-src", "--tuple-dst", "--mask-src", "--mask-dst",
  "--nat-range", "--mark", "--secmark", "--id", "--family", "--src-nat", "--dst-nat", "--output", "--buffer-size",
  "--any-nat", "--zone", "--label", "--label-add", "--label-del", "--orig-zone", "--reply-zone", "--where",
  "--handler", "--resync", "--strict", "--sport", "--dport", "--orig-port-src", "--reply-port-dst", "--state",
  "--icmp-type", "--icmp-code", "--icmp-id", "--icmpv6-type", "--orig-vtag", "--srckey", "--dstkey",
  "-x", "--foo", "-R", "--load-file",
}

local LONG = {
  ("A"):rep(5000), ("9"):rep(400), ("10.0.0.1,"):rep(300), "--" .. ("s"):rep(2000), ("\255"):rep(1000),
  ("::"):rep(500), ("fd00:"):rep(200) .. "1",
}
local JUNK = {
  "999.1.1.1", "-1", "abc", "", " ", "\t", "-", "--", "=", ",", "!", "/", "0x", "-0", "1e3", "nan", "inf",
  "4294967296", "0xffffffffffffffff", "18446744073709551616", "10.0.0.1/99", "fd00::1::2", "1.2.3.4:99999",
  ":", "10.0.0.1:", "[fd00::1]:80", "%s%d%n", "ü", "日本語", "🙂", "\255\254", "a\0b", "ASSURED,,", "!!ASSURED",
  "xml,", "0/0/0", "7/", "/7", "'", '"', "\\", "mark ==", "nil", "(", "end", "1.1.1.1 -F",
}

local COMMAND_OF_EVENTS = { CT_EVENT = true, EXP_EVENT = true }

-- A run that could block: -E (events) in any spelling, -R reading a
-- terminal, pipe or device. --netns is kept out: only the test namespace.
local function blocks(argv)
  if argv[1] == "-R" or argv[1] == "--load-file" then
    local path = argv[2]
    if path == "/dev/null" then return false end
    return path == nil or path == "-" or path:find("^/dev/") ~= nil or path:find("^/proc/") ~= nil
  end
  for _, w in ipairs(argv) do
    if w:find("^%-%-netns") then return true end
  end
  local ok, cmd = pcall(options.parse, argv, function() end)
  return ok and type(cmd) == "table" and COMMAND_OF_EVENTS[cmd.command] ~= nil
end

---- generating lines ----

local function pick(list) return list[math.random(#list)] end

local function copy(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  return t
end

local VALUES = {}
for _, words in ipairs(SEEDS) do
  for _, w in ipairs(words) do
    if w:sub(1, 1) ~= "-" then VALUES[#VALUES + 1] = w end
  end
end

local function junk()
  local r = math.random(10)
  if r == 1 then return pick(LONG) end
  if r == 2 then
    local prefix = pick(OPTIONS)
    return prefix:sub(1, math.random(1, #prefix))
  end
  if r <= 4 then return pick(VALUES) end
  return pick(JUNK)
end

local function random_option(words)
  local o = pick(OPTIONS)
  local r = math.random(6)
  if r == 1 and o:sub(1, 2) == "--" then return o:sub(1, math.random(3, #o)) end
  if r == 2 and o:sub(1, 2) == "--" then return o .. "=" .. junk() end
  if r == 3 then table.insert(words, math.random(#words + 1), junk()) end
  return o
end

local MUTATIONS = {
  function(w) if #w > 0 then table.remove(w, math.random(#w)) end end,                     -- drop
  function(w) if #w > 0 then local i = math.random(#w); table.insert(w, i, w[i]) end end,  -- duplicate
  function(w)                                                                               -- swap
    if #w > 1 then
      local i, j = math.random(#w), math.random(#w)
      w[i], w[j] = w[j], w[i]
    end
  end,
  function(w)                                                                               -- replace a value
    local values = {}
    for i, x in ipairs(w) do if x:sub(1, 1) ~= "-" then values[#values + 1] = i end end
    if #values > 0 then w[pick(values)] = junk() elseif #w > 0 then w[math.random(#w)] = junk() end
  end,
  function(w) if #w > 0 then w[math.random(#w)] = junk() end end,                          -- replace any
  function(w) table.insert(w, math.random(#w + 1), random_option(w)) end,                   -- insert an option
  function(w)                                                                               -- option -> prefix
    local opts = {}
    for i, x in ipairs(w) do if x:sub(1, 2) == "--" and #x > 3 then opts[#opts + 1] = i end end
    if #opts > 0 then local i = pick(opts); w[i] = w[i]:sub(1, math.random(3, #w[i])) end
  end,
  function(w)                                                                               -- glue two words
    if #w > 1 then local i = math.random(#w - 1); w[i] = w[i] .. w[i + 1]; table.remove(w, i + 1) end
  end,
  function(w) for i = #w, math.random(0, #w) + 1, -1 do w[i] = nil end end,                -- truncate
}

local function mutated()
  local w = copy(pick(SEEDS))
  for _ = 1, math.random(1, 4) do pick(MUTATIONS)(w) end
  return w
end

local function random_line()
  local w = {}
  for _ = 1, math.random(0, 8) do
    local r = math.random(3)
    w[#w + 1] = r == 1 and pick(OPTIONS) or r == 2 and pick(VALUES) or junk()
  end
  return w
end

---- running them ----

local function show(argv)
  local words = {}
  for i, w in ipairs(argv) do
    if #w > 40 then w = w:sub(1, 20) .. ("...(%d bytes)"):format(#w) end
    words[i] = ("%q"):format(w):gsub("\\\n", "\\n")
  end
  return "{ " .. table.concat(words, ", ") .. " }"
end

-- The table as text: the number of flows and each filled flow as -L -o
-- extended,id shows it (clocks cut), read one by one (a dump walks the
-- kernel's whole table, every namespace's, and costs milliseconds); and
-- whether a timeout was brought low enough to expire while the spec runs.
local KEYS = { "proto", "orig_src", "orig_dst", "orig_sport", "orig_dport", "icmp_type", "icmp_code", "icmp_id",
               "zone" }
local TUPLES = {}
for i, f in ipairs(FLOWS) do
  local tuple = {}
  for _, k in ipairs(KEYS) do tuple[k] = f[k] end
  TUPLES[i] = tuple
end

local function snapshot()
  local ct = ns.handle()
  local lines, short = { "count " .. tostring(ct:count()) }, false
  for _, tuple in ipairs(TUPLES) do
    local flow, msg = ct:get(tuple)
    lines[#lines + 1] = flow and (ctl.cut_clocks(flow:format("extended,id"))) or msg
    if flow and flow.timeout < 2000 then short = true end
  end
  return table.concat(lines, "\n"), short
end

local function refill()
  ns.fresh()
  ns.fill(FLOWS)
  return (snapshot())
end

-- Runs every line; returns the failures (one text each) and what was seen.
local function fuzz(lines)
  local out_path, err_path = os.tmpname(), os.tmpname()
  local failures, seen = {}, { statuses = {}, refills = 0, skipped = 0, ran = 0 }
  local before = refill()
  for _, words in ipairs(lines) do
    local argv = { [0] = "lua-conntrack" }
    for i, w in ipairs(words) do argv[i] = w end
    if blocks(argv) then
      seen.skipped = seen.skipped + 1
    else
      seen.ran = seen.ran + 1
      local out = assert(io.open(out_path, "w+"))
      local err = assert(io.open(err_path, "w+"))
      local hooks, hung = 0, false
      debug.sethook(function()
        hooks = hooks + 1
        if hooks * 1000000 > BUDGET then hung = true; error("fuzz: instruction budget exceeded", 0) end
      end, "", 1000000)
      local ok, status = pcall(run, argv, { out = out, err = err })
      debug.sethook()
      out:close()
      err:seek("set")
      local errtext = err:read("*a")
      err:close()
      local after, short = snapshot()
      local problem
      if hung then
        problem = "ran past the instruction budget (hung?)"
      elseif not ok then
        problem = "raised: " .. tostring(status)
      elseif status ~= 0 and status ~= 1 and status ~= 2 then
        problem = "exit status " .. tostring(status)
      elseif status ~= 0 and errtext == "" then
        problem = ("exit %d with nothing on stderr"):format(status)
      elseif status ~= 0 and (errtext:find("stack traceback", 1, true) or errtext:find("attempt to", 1, true)) then
        problem = ("exit %d with a Lua error on stderr: %s"):format(status, errtext)
      elseif status == 2 and after ~= before then
        problem = "exit 2 but the table changed"
      end
      if problem then failures[#failures + 1] = show(argv) .. ": " .. problem end
      seen.statuses[status] = (seen.statuses[status] or 0) + 1
      if after ~= before or short then
        before = refill()
        seen.refills = seen.refills + 1
      end
    end
  end
  os.remove(out_path); os.remove(err_path)
  return failures, seen
end

local function assert_clean(failures, seen)
  local shown = {}
  for i = 1, math.min(#failures, 40) do shown[i] = failures[i] end
  assert(#failures == 0, ("%d of %d command lines went wrong:\n%s"):format(#failures, seen.ran,
    table.concat(shown, "\n")))
end

describe("run(argv) on fuzzed command lines #slow", function()
  before_each(function()
    ns.fresh()
  end)

  after_each(function()
    ns.fresh()
  end)

  it("runs every seed line cleanly, and they cover all three exit statuses", function()
    local failures, seen = fuzz(SEEDS)
    assert_clean(failures, seen)
    assert(seen.statuses[0] and seen.statuses[1] and seen.statuses[2],
      "the seeds do not reach exit 0, 1 and 2")
    assert(seen.refills > 0, "no seed changed the table")
  end)

  it(("answers %d mutated seed lines with 0, 1 or 2 and a clean message"):format(MUTATED), function()
    math.randomseed(SEED)
    local lines = {}
    for i = 1, MUTATED do lines[i] = mutated() end
    local failures, seen = fuzz(lines)
    assert_clean(failures, seen)
    assert(seen.ran > MUTATED * 0.9, ("only %d of %d lines ran"):format(seen.ran, MUTATED))
  end)

  it(("answers %d random token lists with 0, 1 or 2 and a clean message"):format(RANDOM), function()
    math.randomseed(SEED + 1)
    local lines = {}
    for i = 1, RANDOM do lines[i] = random_line() end
    local failures, seen = fuzz(lines)
    assert_clean(failures, seen)
    assert(seen.ran > RANDOM * 0.9, ("only %d of %d lines ran"):format(seen.ran, RANDOM))
  end)
end)
