-- remark-ssh.lua: a lua-conntrack -E handler that marks every new SSH flow,
-- so that tc or policy routing can give interactive traffic its own class.
--   lua-conntrack -E -e NEW -p tcp --dport 22 --handler examples/handlers/remark-ssh.lua
-- SSH_MARK (environment) chooses the mark; the default is 0x22.

local MARK = tonumber(os.getenv("SSH_MARK") or "") or 0x22

local function remark(flow, ct)
  if flow.proto ~= "tcp" or flow.orig_dport ~= 22 or flow.mark == MARK then return end
  -- the flow may already be gone: that is no error for a policy
  local ok, err = ct:update(flow, { mark = MARK })
  if not ok and not err:match("no such flow") then error(err) end
end

return { new = remark, update = remark }
