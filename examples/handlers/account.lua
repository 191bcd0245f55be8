-- account.lua: a lua-conntrack -E handler that writes one line per finished
-- flow with its byte and packet counts, for billing or capacity planning.
-- The kernel counts only with accounting on (sysctl net.netfilter.nf_conntrack_acct=1).
--   lua-conntrack -E -e DESTROY --handler examples/handlers/account.lua -o json > /dev/null
-- Lines go to stderr, or to the file named by ACCOUNT_LOG.

local out = os.getenv("ACCOUNT_LOG") and assert(io.open(os.getenv("ACCOUNT_LOG"), "a")) or io.stderr
out:setvbuf("line")

return {
  destroy = function(flow)
    out:write(("%s %s %s:%s -> %s:%s bytes=%d/%d packets=%d/%d\n"):format(
      os.date("!%Y-%m-%dT%H:%M:%SZ"), flow.proto, flow.orig_src, flow.orig_sport or "-",
      flow.orig_dst, flow.orig_dport or "-", flow.orig_bytes or 0, flow.reply_bytes or 0,
      flow.orig_packets or 0, flow.reply_packets or 0))
  end,
  overflow = function(count)
    out:write(("events lost (overflow %d): the accounting is incomplete\n"):format(count))
  end,
}
