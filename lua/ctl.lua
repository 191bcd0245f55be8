#!/usr/bin/env lua5.4
-- ctl.lua (the module conntrack.ctl, the command lua-conntrack): conntrack(8)
-- in Lua, over the conntrack module. run(argv) parses a conntrack command
-- line (or a -R file of them), runs it, and returns the exit status:
-- 2 for a bad command line, 1 for a failed operation, 0 otherwise.

-- Run as a script from a checkout, the modules beside it come first.
local script = debug.getinfo(3) == nil and arg and arg[0]
if script then
  local dir = script:match("^(.*)/[^/]*$") or "."
  package.path = dir .. "/?.lua;" .. package.path
end

local conntrack = require "conntrack"
local commands = require "conntrack.ctl.commands"
local errors = require "conntrack.ctl.errors"
local options = require "conntrack.ctl.options"
local output = require "conntrack.ctl.output"

local M = {}

-- Handles by namespace, opened on first use.
local function opener()
  local handles = {}
  return function(netns)
    local key = netns or ""
    if not handles[key] then
      local ct, msg = conntrack.open(netns and { netns = netns } or nil)
      if not ct then errors.failure(msg) end
      handles[key] = ct
    end
    return handles[key]
  end, function()
    for _, ct in pairs(handles) do ct:close() end
  end
end

local function warn(text) output.err():write(text) end

-- -R FILE: every line a command (create, add, update, delete, flush), all
-- checked before the first runs; the first failure stops them.
local function load_file(argv, ctx)
  local name = argv[2] == "-" and "/dev/stdin" or argv[2]
  local f = io.open(name, "r")
  if not f then errors.usage(("Failed to open file %s for reading"):format(name)) end
  local cmds = {}
  for line in f:lines("L") do
    line = line:gsub("^[ \t]*", "")
    if line:sub(1, 1) ~= "\n" and line:sub(1, 1) ~= "#" then
      local words = options.tokenize(line)
      words[0] = argv[0]
      cmds[#cmds + 1] = options.parse(words, warn)
    end
  end
  f:close()
  for _, cmd in ipairs(cmds) do
    if not options.FILE_COMMANDS[cmd.command] then
      errors.usage(("Cannot use command `%s' with --load-file"):format(options.COMMAND_TEXT[cmd.command] or "unknown"))
    end
  end
  ctx.load_file = true
  for _, cmd in ipairs(cmds) do commands.run(cmd, ctx) end
  return 0
end

-- run(argv [, streams]): argv[1..n] the arguments, argv[0] the program
-- name; streams = { out = file, err = file } instead of io.stdout/io.stderr.
function M.run(argv, streams)
  local saved = output.streams
  output.streams = { out = streams and streams.out or io.stdout, err = streams and streams.err or io.stderr }
  local args = { [0] = argv[0] or output.PROGNAME }
  for i = 1, #argv do args[i] = argv[i] end
  local open, close = opener()
  local ctx = { open = open }
  local ok, status = pcall(function()
    if #args > 1 and (args[1] == "-R" or args[1] == "--load-file") then
      return load_file(args, ctx)
    end
    return commands.run(options.parse(args, warn), ctx)
  end)
  output.out():flush()
  close()
  if not ok then status = errors.report(status) end
  output.streams = saved
  return status
end

if script then
  os.exit(M.run(arg))
end

return M
