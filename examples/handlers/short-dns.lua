-- short-dns.lua: a lua-conntrack -E handler that gives UDP DNS flows a short
-- timeout once answered, instead of the kernel's 120 s for UDP streams, so a
-- busy resolver does not fill the table.
--   lua-conntrack -E -e UPDATES -p udp --dport 53 --handler examples/handlers/short-dns.lua
-- DNS_TIMEOUT (environment) chooses the timeout in seconds; the default is 5.

local TIMEOUT = tonumber(os.getenv("DNS_TIMEOUT") or "") or 5

return {
  update = function(flow, ct)
    if flow.proto == "udp" and flow.orig_dport == 53 and flow.status.SEEN_REPLY
       and (flow.timeout or 0) > TIMEOUT then
      ct:update(flow, { timeout = TIMEOUT })
    end
  end,
}
