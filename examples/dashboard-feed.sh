#!/bin/sh
# examples/dashboard-feed.sh: a JSON feed for a dashboard. Every SECONDS,
# `lua-conntrack --live -o json` reads the table again and writes one object
# (the time, and the top 10 source addresses by bytes per second: flows,
# bytes/s and packets/s each way, counting flows that ended meanwhile); this
# script keeps the latest in FILE, replaced whole so that a web server (on
# OpenWrt, uhttpd serving /www) never hands out half of one. It stops after
# ROUNDS readings (default 0: never). In a checkout it runs lua/ctl.lua with
# $LUA (default lua5.4), else the installed lua-conntrack.
#   sysctl -w net.netfilter.nf_conntrack_acct=1    # for the rates
#   sh examples/dashboard-feed.sh /www/conntrack-top.json [SECONDS [ROUNDS]]
LUA=${LUA:-lua5.4}
ctl=$(dirname "$0")/../lua/ctl.lua
[ -f "$ctl" ] || ctl=$(command -v lua-conntrack)
[ $# -ge 1 ] || { echo "usage: dashboard-feed.sh FILE [SECONDS [ROUNDS]]" >&2; exit 2; }
file=$1 interval=${2:-5} rounds=${3:-0}

"$LUA" "$ctl" --live -o json --group-by orig_src --top 10 --interval "$interval" | {
  n=0
  while IFS= read -r reading; do
    printf '%s\n' "$reading" > "$file.new" && mv "$file.new" "$file"
    n=$((n + 1))
    [ "$rounds" -gt 0 ] && [ "$n" -ge "$rounds" ] && break
  done
}
