-- conntrack/ctl/errors.lua: how the command line fails. A failure is raised
-- as { ctl_status = 2 | 1, message = ... } and reported once, by report():
-- 2 for a bad command line (followed by conntrack's "Try ... --help" line),
-- 1 for an operation that failed, 130 for Ctrl-C. An operation's failure is
-- told from its errno, never from the module's message: in conntrack's words
-- where it has its own (err2str), else the C library's text of the errno.

local conntrack = require "conntrack"
local output = require "conntrack.ctl.output"

local M = {}

function M.usage(msg) error({ ctl_status = 2, message = msg }, 0) end
function M.failure(msg) error({ ctl_status = 1, message = msg }, 0) end

-- Ctrl-C: lua.c raises "interrupted!" in the Lua code that runs; the
-- command exits 130.
function M.interrupted(err) return type(err) == "string" and err:match("interrupted!$") ~= nil end

M.ERRNO = { EPERM = 1, ENOENT = 2, ENOMEM = 12, EEXIST = 17, EINVAL = 22, ETIME = 62,
            EAFNOSUPPORT = 97, ENOTSUPP = 524 }
local E = M.ERRNO

-- the commands conntrack's err2str answers EINVAL for with "invalid parameters"
local INVALID_PARAMETERS = {
  CT_LIST = 1, CT_CREATE = 1, CT_UPDATE = 1, CT_DELETE = 1, CT_GET = 1, CT_FLUSH = 1, CT_EVENT = 1,
  CT_VERSION = 1, CT_HELP = 1, EXP_LIST = 1, EXP_CREATE = 1, EXP_DELETE = 1, EXP_GET = 1, EXP_FLUSH = 1,
  EXP_EVENT = 1, CT_COUNT = 1,
}

-- conntrack's err2str: its own words for some errors of some commands.
local function err2str(errno, c)
  if c == "CT_LIST" and errno == E.ENOTSUPP then return "function not implemented" end
  if INVALID_PARAMETERS[c] and errno == E.EINVAL then return "invalid parameters" end
  if c == "CT_CREATE" and errno == E.EEXIST then return "Such conntrack exists, try -U to update" end
  if (c == "CT_CREATE" or c == "CT_GET" or c == "CT_DELETE" or c == "CT_ADD") and errno == E.ENOENT then
    return "such conntrack doesn't exist"
  end
  if (c == "CT_CREATE" or c == "CT_GET" or c == "CT_ADD") and errno == E.ENOMEM then return "not enough memory" end
  if c == "CT_GET" and errno == E.EAFNOSUPPORT then return "protocol not supported" end
  if (c == "CT_CREATE" or c == "CT_ADD") and errno == E.ETIME then return "conntrack has expired" end
  if c == "EXP_CREATE" and errno == E.ENOENT then return "master conntrack not found" end
  if errno == E.EPERM then return "sorry, you must be root or get CAP_NET_ADMIN capability to do this" end
  return conntrack.strerror(errno)
end

-- failed(command, errno [, message]): the operation failed with errno, as
-- conntrack says it; without an errno (a failure the module raised that is
-- no errno of the kernel's) its message is told as it is.
function M.failed(command, errno, message)
  if errno then M.failure("Operation failed: " .. err2str(errno, command)) end
  M.failure("Operation failed: " .. tostring(message))
end

-- ct:dump with its failures told as conntrack tells them: a step that
-- raises leaves its errno in dump:error(). Ctrl-C passes through.
function M.dump(ct, command, filter, opts)
  local function fail(err, errno)
    if M.interrupted(err) then error(err, 0) end
    M.failed(command, errno, err)
  end
  local ok, step, state, init, closing = pcall(ct.dump, ct, filter, opts)
  if not ok then fail(step) end
  return function(s, c)
    local stepped, v, n = pcall(step, s, c)
    if not stepped then
      local _, errno = s:error()
      fail(v, errno)
    end
    return v, n
  end, state, init, closing
end

-- report(err) -> the exit status of a raised failure, told on stderr.
function M.report(err)
  if type(err) == "table" and err.ctl_status then
    output.message(err.message)
    if err.ctl_status == 2 then output.try_help() end
    return err.ctl_status
  end
  if M.interrupted(err) then return 130 end
  output.message("Operation failed: " .. tostring(err))
  return 1
end

return M
