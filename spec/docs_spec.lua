-- spec/docs_spec.lua: the documentation says what the code does. One version
-- everywhere (module, rockspec, -V, CHANGELOG.md, the man page); the man page
-- renders cleanly and documents exactly the options the CLI accepts; every
-- code block of README.md runs.
--
-- How README.md is run (so that it cannot drift):
--  * ```lua blocks run one by one, each in a fresh process of the Lua under
--    test (env LCT_LUA, default lua5.4), from an empty table, after a prelude
--    that finds the module in the checkout and defines what the README's
--    fragments use without defining: `conntrack` (the module), `ct` (an open
--    handle), `on_new` and `on_destroy` (handlers that do nothing). A block
--    must exit 0 and write nothing to stderr.
--  * ```lua blocks are Lua 5.4. The one 5.4 feature they may use is the
--    `<close>`/`<const>` attribute of a local: on an older Lua it is dropped
--    (the 5.1 spelling of `local sub <close> = x` is `local sub = x` and an
--    explicit sub:close(); the module also closes what the collector frees).
--  * ```sh/```shell/```bash blocks and indented blocks are shell: each
--    command runs in the test namespace, with `lua-conntrack` (and
--    `lua5.4 lua/ctl.lua`) meaning `$LCT_LUA lua/ctl.lua`, on a table holding
--    the helper's sample flows; it must exit 0, or N when the line ends with
--    the comment `# exits N`. So do inline code spans that are a whole
--    `lua-conntrack ...` command. Excluded: the first screen's
--    `make deps demo` and `make deps test` (they install packages and run
--    the demo and this very suite).
--  * ```text, ```json and ```xml blocks are output samples, not code. Any
--    other fenced block, and a block that cannot run, must be preceded by
--    `<!-- not run: REASON -->`; such blocks are counted and reported.

local ns = require "spec.helpers.ns"
local options = require "conntrack.ctl.options"
local protos = require "conntrack.ctl.protos"

local LUA = ns.LUA
local SO_DIR = ns.CHILD_SO_DIR
local MAN = "doc/lua-conntrack.8"

local function slurp(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  return s
end

local function spit(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function lines_of(text)
  local t = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = line end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function keys(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

-- The elements of set a missing from set b, sorted.
local function missing(a, b)
  local t = {}
  for k in pairs(a) do
    if not b[k] then t[#t + 1] = k end
  end
  table.sort(t)
  return t
end

---- what the command line accepts, from its own tables ----

-- A local of options.lua that options.parse uses, directly or through the
-- functions it calls (its tables are not exported).
local function upvalue(fn, name, seen)
  seen = seen or {}
  if seen[fn] then return nil end
  seen[fn] = true
  local i = 1
  while true do
    local n, v = debug.getupvalue(fn, i)
    if n == nil then return nil end
    if n == name then return v end
    if type(v) == "function" then
      local found = upvalue(v, name, seen)
      if found ~= nil then return found end
    end
    i = i + 1
  end
end

local function options_table(name)
  local v = options[name] or upvalue(options.parse, name)
  assert(v ~= nil, "options.lua has no table " .. name)
  return v
end

-- Every option the command line takes whatever the protocol: getopt's short
-- letters, the long names, and what ctl.lua reads before them (-R).
local function general_options()
  local set = {}
  for c in options_table("SHORTS"):gmatch(".") do
    if c ~= ":" then set["-" .. c] = true end
  end
  for _, o in ipairs(options_table("LONGS")) do set["--" .. o.name] = true end
  for name in slurp("lua/ctl.lua"):gmatch('args%[1%] == "(%-[^"]+)"') do set[name] = true end
  return set
end

-- The options each protocol of -p adds.
local function protocol_options(p)
  local set = {}
  for _, o in ipairs(p.options) do set["--" .. o[1]] = true end
  return set
end

---- the man page, read as troff ----

local function unescape(s)
  s = s:gsub("\\f[BIRP]", ""):gsub("\\f%(..", ""):gsub("\\%-", "-"):gsub("\\&", "")
  s = s:gsub("\\%(aq", "'"):gsub("\\%((%a%a)", { lq = '"', rq = '"', oq = "'", cq = "'", bu = "*" })
  return s
end

-- The tag of every .TP paragraph: { sh =, ss =, text = } with the macro
-- and quotes gone.
local function man_tags(src)
  local tags, sh, ss, after_tp = {}, nil, nil, false
  for _, line in ipairs(lines_of(src)) do
    if after_tp then
      local text = unescape(line):gsub("^%.%a+%s*", ""):gsub('"', "")
      tags[#tags + 1] = { sh = sh, ss = ss, text = text }
      after_tp = false
    elseif line:match("^%.SH ") then
      sh, ss = unescape(line:sub(5)):gsub('"', ""), nil
    elseif line:match("^%.SS ") then
      ss = unescape(line:sub(5)):gsub('"', "")
    elseif line == ".TP" then
      after_tp = true
    end
  end
  return tags
end

local function option_words(text)
  local t = {}
  for word in text:gmatch("[^%s,]+") do
    if word:match("^%-%-%w[%w%-]*$") or word:match("^%-[^%-]$") then t[#t + 1] = word end
  end
  return t
end

-- The options the page documents: general ones, and those under each
-- "PROTO-specific fields:" heading, by protocol name.
local function documented_options()
  local general, by_proto, proto = {}, {}, nil
  for _, tag in ipairs(man_tags(slurp(MAN))) do
    if tag.sh == "OPTIONS" then
      if tag.ss == "PROTOCOL FILTER PARAMETERS" then
        local name = tag.text:match("^(%S+)%-specific fields:")
        if name then
          proto = name:lower()
          by_proto[proto] = by_proto[proto] or {}
        else
          assert(proto, "a protocol option before any `PROTO-specific fields:' heading: " .. tag.text)
          for _, w in ipairs(option_words(tag.text)) do by_proto[proto][w] = true end
        end
      else
        for _, w in ipairs(option_words(tag.text)) do general[w] = true end
      end
    end
  end
  return general, by_proto
end

-- The tag documenting option opt in the OPTIONS section.
local function tag_of(opt)
  for _, tag in ipairs(man_tags(slurp(MAN))) do
    if tag.sh == "OPTIONS" then
      for _, w in ipairs(option_words(tag.text)) do
        if w == opt then return tag.text end
      end
    end
  end
  error("no tag documents " .. opt)
end

-- The words of a tag's value list: "-u, --status [A|B][,...]" -> A, B.
local function listed_values(text)
  local set = {}
  local list = text:match("%[([%w_|,]+)%]")
  assert(list, "no [a|b|...] list in: " .. text)
  for w in list:gmatch("[%w_]+") do set[w] = true end
  return set
end

-- A shell command line as words (quotes grouped, no expansion).
local function shell_words(line)
  local words, cur, quote = {}, nil, nil
  for ch in line:gmatch(".") do
    if quote then
      if ch == quote then quote = nil else cur = cur .. ch end
    elseif ch == "'" or ch == '"' then
      quote, cur = ch, cur or ""
    elseif ch:match("%s") then
      if cur then words[#words + 1] = cur; cur = nil end
    else
      cur = (cur or "") .. ch
    end
  end
  if cur then words[#words + 1] = cur end
  return words
end

---- README.md, read as Markdown ----

local SHELL_TAGS = { sh = true, shell = true, bash = true }
local SAMPLE_TAGS = { text = true, json = true, xml = true }
local EXCLUDED = { ["make deps demo"] = true, ["make deps test"] = true }

-- Code blocks: { lang =, line =, code =, not_run = reason }; lang is "" for
-- an untagged fence and "indented" for an indented block. Also the inline
-- code spans that are whole lua-conntrack commands: { line =, code = }.
local function readme_blocks(text)
  local blocks, spans, lines = {}, {}, lines_of(text)
  local fence, pending, prose = nil, nil, {}
  local i = 1
  while i <= #lines do
    local line = lines[i]
    if fence then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = fence
        fence = nil
      else
        fence.code = fence.code .. line .. "\n"
      end
    elseif line:match("^```") then
      fence = { lang = line:match("^```%s*(%S*)"), line = i, code = "", not_run = pending }
      pending = nil
    elseif line:match("^<!%-%- not run:") then
      pending = line:match("^<!%-%- not run:%s*(.-)%s*%-%->") or ""
    elseif (line:match("^    ") or line:match("^\t")) and (i == 1 or lines[i - 1]:match("^%s*$")) then
      local block = { lang = "indented", line = i, code = "", not_run = pending }
      pending = nil
      while i <= #lines and (lines[i]:match("^    ") or lines[i]:match("^\t") or lines[i]:match("^%s*$")) do
        block.code = block.code .. lines[i]:gsub("^    ", ""):gsub("^\t", "") .. "\n"
        i = i + 1
      end
      blocks[#blocks + 1] = block
      i = i - 1
    else
      prose[#prose + 1] = { line = i, text = line }
    end
    i = i + 1
  end
  assert(fence == nil, "README.md: the fence opened at line " .. (fence and fence.line or 0) .. " is not closed")
  for _, p in ipairs(prose) do
    for span in p.text:gmatch("`([^`]+)`") do
      if span:match("^lua%-conntrack%s") or span:match("^lua5%.4 lua/ctl%.lua%s") then
        spans[#spans + 1] = { line = p.line, code = span }
      end
    end
  end
  return blocks, spans
end

-- The commands of a shell block: continuation lines joined, comments and
-- blank lines left out; each { cmd =, status = }.
local function shell_commands(code)
  local cmds, acc = {}, ""
  for _, line in ipairs(lines_of(code)) do
    if line:match("\\$") then
      acc = acc .. line:sub(1, -2) .. " "
    else
      local full = acc .. line
      acc = ""
      if not full:match("^%s*$") and not full:match("^%s*#") then
        local status = tonumber(full:match("#%s*exits%s+(%d+)%s*$") or "0")
        cmds[#cmds + 1] = { cmd = (full:gsub("%s+#.*$", "")), status = status }
      end
    end
  end
  return cmds
end

local README_BLOCKS, README_SPANS = readme_blocks(slurp("README.md"))

---- running ----

local LUA_VERSION = ns.run(LUA .. " -e 'io.write(_VERSION)'")
local PRELUDE = ("package.cpath = %q .. \"/?.so;\" .. package.cpath; package.path = \"./lua/?.lua;\" .. " ..
  "package.path; local conntrack = require \"conntrack\"; local ct = assert(conntrack.open()); " ..
  "local function on_new(flow) end; local function on_destroy(flow) end"):format(SO_DIR)

-- The block as the Lua under test runs it (the prelude on one line, so that
-- errors name the README block's own line numbers, plus one).
local function lua_source(code)
  if LUA_VERSION < "Lua 5.4" then
    code = code:gsub("%s*<%s*close%s*>", ""):gsub("%s*<%s*const%s*>", "")
  end
  return PRELUDE .. "\n" .. code
end

local function run_lua(code)
  local path = os.tmpname()
  spit(path, lua_source(code))
  local out, err, status = ns.run("timeout -s KILL 60 " .. LUA .. " " .. path .. " </dev/null")
  os.remove(path)
  return out, err, status
end

-- A directory whose `lua-conntrack` is this checkout's lua/ctl.lua run by
-- the Lua under test, with the module of the checkout.
local BIN
local function bin_dir()
  if BIN then return BIN end
  BIN = os.tmpname()
  os.remove(BIN)
  assert(os.execute("mkdir " .. BIN))
  local cwd = ns.run("pwd"):gsub("\n$", "")
  local cpath = ("package.cpath = %q .. '/?.so;' .. package.cpath"):format(SO_DIR)
  spit(BIN .. "/lua-conntrack", ("#!/bin/sh\ncd %s && exec %s -e %s lua/ctl.lua \"$@\"\n")
    :format(q(cwd), LUA, q(cpath)))
  assert(os.execute("chmod 755 " .. BIN .. "/lua-conntrack"))
  return BIN
end

local function run_shell(cmd)
  cmd = cmd:gsub("lua5%.4 lua/ctl%.lua", "lua-conntrack")
  return ns.run("PATH=" .. bin_dir() .. ":$PATH timeout -s KILL 30 sh -c " .. q(cmd) .. " </dev/null")
end

teardown(function()
  if BIN then os.execute("rm -rf " .. BIN) end
end)

---- the version ----

local function rockspec()
  local names = {}
  for name in ns.run("ls"):gmatch("[^\n]+") do
    if name:match("%.rockspec$") then names[#names + 1] = name end
  end
  assert.equal(1, #names, "one rockspec in the checkout: " .. table.concat(names, ", "))
  return names[1], slurp(names[1])
end

-- The newest release of CHANGELOG.md: version, date.
local function newest_release()
  for _, line in ipairs(lines_of(slurp("CHANGELOG.md"))) do
    local version, date = line:match("^## %[(%d[^%]]*)%] %- (%d%d%d%d%-%d%d%-%d%d)%s*$")
    if version then return version, date end
  end
  error("CHANGELOG.md has no `## [X.Y.Z] - YYYY-MM-DD' entry")
end

local function th_line()
  local th = slurp(MAN):match("\n?(%.TH [^\n]*)")
  assert(th, MAN .. " has no .TH line")
  return th
end

describe("conntrack._VERSION", function()
  local VERSION = ns.conntrack._VERSION

  it("is a version number", function()
    assert.is_string(VERSION)
    assert.truthy(VERSION:match("^%d+%.%d+%.%d+$"), VERSION)
  end)

  it("is the version of the rockspec, in its file name and its version line", function()
    local name, text = rockspec()
    local file_version, revision = name:match("^lua%-conntrack%-(.-)%-(%d+)%.rockspec$")
    assert.equal(VERSION, file_version, name)
    assert.equal(VERSION .. "-" .. revision, text:match('\nversion%s*=%s*"([^"]*)"'))
    assert.equal("lua-conntrack-" .. VERSION .. ".tar.gz", text:match('url%s*=%s*"([^"]*)"'))
    assert.equal("lua-conntrack-" .. VERSION, text:match('dir%s*=%s*"([^"]*)"'))
  end)

  it("is what lua-conntrack -V prints", function()
    local out, err, status = run_shell("lua-conntrack -V")
    assert.equal(0, status, err)
    assert.equal(("lua-conntrack v%s (conntrack-tools compatible)\n"):format(VERSION), out)
  end)

  it("is the newest entry of CHANGELOG.md", function()
    assert.equal(VERSION, (newest_release()))
  end)

  it("is the version the man page's .TH line names, dated as that entry", function()
    local th = th_line()
    local version, date = newest_release()
    assert.equal(VERSION, th:match('"lua%-conntrack ([^"]+)"'), th)
    assert.equal(date, th:match('^%.TH LUA%-CONNTRACK 8 "([^"]+)"'), th)
  end)
end)

---- the man page ----

describe("the man page " .. MAN, function()
  it("renders without a warning (groff -man -ww)", function()
    local _, err, status = ns.run("groff -man -Tutf8 -ww -z " .. MAN)
    assert.equal(0, status, "groff (Debian package groff-base) failed: " .. err)
    assert.equal("", err)
  end)

  it("documents every option the command line accepts", function()
    local general = documented_options()
    assert.same({}, missing(general_options(), general))
  end)

  it("documents no option the command line rejects", function()
    local general = documented_options()
    assert.same({}, missing(general, general_options()))
  end)

  it("documents under each protocol exactly the options -p gives it", function()
    local _, by_proto = documented_options()
    local known = {}
    for _, p in ipairs(protos.list) do
      known[p.name] = true
      local doc = by_proto[p.name]
      assert.is_table(doc, "no `" .. p.name:upper() .. "-specific fields:' in " .. MAN)
      assert.same({ undocumented = {}, rejected = {} },
        { undocumented = missing(protocol_options(p), doc), rejected = missing(doc, protocol_options(p)) },
        p.name)
    end
    assert.same({}, missing(by_proto, known))
  end)

  it("lists every name -o, -e and -u take, and only those", function()
    local lists = { { "--output", "OUTPUT_NAMES" }, { "--event-mask", "EVENT_NAMES" }, { "--status", "STATUS_NAMES" } }
    for _, l in ipairs(lists) do
      local accepted = {}
      for _, name in ipairs(options_table(l[2])) do accepted[name] = true end
      local documented = listed_values(tag_of(l[1]))
      assert.same({}, missing(accepted, documented), l[1] .. " names not documented")
      -- a documented name must be one the parser takes (UNREPLIED is -u's own)
      for name in pairs(documented) do
        local argv = l[1] == "--event-mask" and { [0] = "lua-conntrack", "-E", "-e", name }
                  or l[1] == "--status" and { [0] = "lua-conntrack", "-L", "-u", name }
                  or { [0] = "lua-conntrack", "-L", "-o", name == "summary" and "json,summary" or name }
        local ok, e = pcall(options.parse, argv, function() end)
        assert(ok, l[1] .. " " .. name .. " is documented but refused: " .. tostring(type(e) == "table" and e.message or e))
      end
    end
  end)

  it("has EXAMPLES the command line accepts", function()
    local n = 0
    for _, tag in ipairs(man_tags(slurp(MAN))) do
      if tag.sh == "EXAMPLES" then
        for segment in (tag.text .. "|"):gmatch("%s*([^|]-)%s*|") do
          local words = shell_words(segment)
          if words[1] == "lua-conntrack" then
            n = n + 1
            local argv = { [0] = "lua-conntrack" }
            for i = 2, #words do argv[i - 1] = words[i] end
            if argv[1] ~= "-R" and argv[1] ~= "--load-file" then
              local ok, e = pcall(options.parse, argv, function() end)
              assert(ok, segment .. ": " .. tostring(type(e) == "table" and e.message or e))
            end
          end
        end
      end
    end
    assert.is_true(n >= 5, "EXAMPLES has " .. n .. " lua-conntrack commands")
  end)
end)

---- README.md ----

describe("README.md", function()
  local counts = { lua = 0, shell = 0, spans = 0, excluded = 0, samples = 0, not_run = 0 }
  local not_run = {}

  before_each(function()
    ns.fresh()
  end)

  teardown(function()
    io.stderr:write(("\ndocs_spec: README.md: %d Lua blocks and %d shell commands (%d of them inline) run; " ..
      "%d first-screen commands excluded; %d output samples; %d blocks marked not run%s\n")
      :format(counts.lua, counts.shell + counts.spans, counts.spans, counts.excluded, counts.samples,
              counts.not_run, #not_run > 0 and (": " .. table.concat(not_run, "; ")) or ""))
  end)

  it("has code to run, and every fenced block is code, an output sample or marked not run", function()
    local lua_blocks = 0
    for _, b in ipairs(README_BLOCKS) do
      if b.lang == "lua" then lua_blocks = lua_blocks + 1 end
      if b.not_run then
        assert.truthy(b.not_run:match("%S"), "line " .. b.line .. ": `<!-- not run: -->' without a reason")
      else
        assert(b.lang == "lua" or b.lang == "indented" or SHELL_TAGS[b.lang] or SAMPLE_TAGS[b.lang],
          ("line %d: a ```%s block, neither run nor marked `<!-- not run: reason -->'"):format(b.line, b.lang))
      end
    end
    assert.is_true(lua_blocks > 0, "no ```lua block found")
    assert.is_true(#README_SPANS > 0, "no lua-conntrack command found")
  end)

  for _, b in ipairs(README_BLOCKS) do
    if b.not_run then
      counts.not_run = counts.not_run + 1
      not_run[#not_run + 1] = ("line %d (%s)"):format(b.line, b.not_run)
    elseif SAMPLE_TAGS[b.lang] then
      counts.samples = counts.samples + 1
    elseif b.lang == "lua" then
      counts.lua = counts.lua + 1
      it(("runs the ```lua block of line %d under %s"):format(b.line, LUA), function()
        local out, err, status = run_lua(b.code)
        assert.equal(0, status, ("README.md:%d: exit status %d\n%s%s"):format(b.line, status, out, err))
        assert.equal("", err)
      end)
    elseif b.lang == "indented" or SHELL_TAGS[b.lang] then
      for _, c in ipairs(shell_commands(b.code)) do
        if EXCLUDED[c.cmd:gsub("%s+$", "")] then
          counts.excluded = counts.excluded + 1
        else
          counts.shell = counts.shell + 1
          it(("runs `%s' (line %d)"):format(c.cmd, b.line), function()
            ns.fill()
            local out, err, status = run_shell(c.cmd)
            assert.equal(c.status, status, ("README.md:%d: %s\n%s%s"):format(b.line, c.cmd, out, err))
          end)
        end
      end
    end
  end

  for _, s in ipairs(README_SPANS) do
    counts.spans = counts.spans + 1
    it(("runs `%s' (line %d)"):format(s.code, s.line), function()
      ns.fill()
      local out, err, status = run_shell(s.code)
      assert.equal(0, status, ("README.md:%d: %s\n%s%s"):format(s.line, s.code, out, err))
    end)
  end
end)

-- The first screen's two commands minus `deps` (which installs packages):
-- their targets, run as a user runs them, each in a namespace of its own.
describe("README.md's first screen", function()
  local MAKE = ("make -s LUA=%s"):format(LUA)
  before_each(function() ns.fresh() end)

  it("gives exactly `make deps demo` and `make deps test`", function()
    local first = slurp("README.md"):match("^(.-)\n```")
    local commands = {}
    for cmd in first:gmatch("\n    (make [^#\n]-)%s*#") do commands[#commands + 1] = cmd end
    assert.same({ "make deps demo", "make deps test" }, commands)
  end)

  it("runs the demo against a real table in a private namespace", function()
    local out, err, status = ns.run(MAKE .. " demo")
    assert.equal(0, status, err)
    assert.matches("== flows created through netlink", out, 1, true)
    assert.equal(0, ns.handle():count(), "the demo reached the suite's own table")
  end)

  it("runs the suite through `make test` (one spec file of it)", function()
    local out, err, status = ns.run(MAKE .. " test BUSTED_ARGS=spec/smoke_spec.lua")
    assert.equal(0, status, out .. err)
    assert.matches("%d+ success[es]* / 0 failures / 0 errors / 0 pending", out)
  end)
end)
