#!/bin/sh
# examples/where-oneliner.sh: an ad-hoc question conntrack's options cannot
# ask, as a --where expression over the flow's fields: the TCP flows to a port
# range (8000-8999) that expire within a minute. Extra arguments are added
# (-o json, -f ipv6, ...). In a checkout it runs lua/ctl.lua with $LUA
# (default lua5.4; run it from the top directory, where conntrack.so is built),
# else the installed lua-conntrack.
#   sh examples/where-oneliner.sh [-o extended]
LUA=${LUA:-lua5.4}
ctl=$(dirname "$0")/../lua/ctl.lua
[ -f "$ctl" ] || ctl=$(command -v lua-conntrack)

exec "$LUA" "$ctl" -L -p tcp --where 'orig_dport >= 8000 and orig_dport <= 8999 and timeout < 60' "$@"
