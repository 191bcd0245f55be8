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
-- checked before the first runs. Every line runs; each one that fails is
-- reported with its line number, and the status is the first failure's.
local function load_file(argv, ctx)
  local name = argv[2] == "-" and "/dev/stdin" or argv[2]
  local f = io.open(name, "r")
  if not f then errors.usage(("Failed to open file %s for reading"):format(name)) end
  local cmds, lines, number = {}, {}, 0
  for line in f:lines("L") do
    number = number + 1
    line = line:gsub("^[ \t]*", "")
    if line:sub(1, 1) ~= "\n" and line:sub(1, 1) ~= "#" then
      local words = options.tokenize(line)
      words[0] = argv[0]
      cmds[#cmds + 1] = options.parse(words, warn)
      lines[#cmds] = number
    end
  end
  f:close()
  for _, cmd in ipairs(cmds) do
    if not options.FILE_COMMANDS[cmd.command] then
      errors.usage(("Cannot use command `%s' with --load-file"):format(options.COMMAND_TEXT[cmd.command] or "unknown"))
    end
  end
  ctx.load_file = true
  local status = 0
  for i, cmd in ipairs(cmds) do
    local ok, err = pcall(commands.run, cmd, ctx)
    if not ok then
      if errors.interrupted(err) then error(err, 0) end
      if type(err) == "table" and err.ctl_status then
        err = { ctl_status = err.ctl_status, message = ("line %d: %s"):format(lines[i], err.message) }
      else
        err = ("line %d: %s"):format(lines[i], tostring(err))
      end
      local s = errors.report(err)
      if status == 0 then status = s end
    end
  end
  return status
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
