#!/bin/sh
# examples/json-jq.sh: the flow table as JSON lines (-o json, one object per
# flow with the module's field names) into jq: how many flows each source
# address has, most first, as "COUNT<TAB>ADDRESS" lines. In a checkout it runs
# lua/ctl.lua with $LUA (default lua5.4; run it from the top directory, where
# conntrack.so is built), else the installed lua-conntrack.
#   sh examples/json-jq.sh          # needs jq (apt-get install jq)
LUA=${LUA:-lua5.4}
ctl=$(dirname "$0")/../lua/ctl.lua
[ -f "$ctl" ] || ctl=$(command -v lua-conntrack)

# -s reads every line into one array; group_by sorts by address, and sort_by
# is stable, so addresses with as many flows stay in address order.
"$LUA" "$ctl" -L -o json |
  jq -r -s 'group_by(.orig_src) | map([length, .[0].orig_src]) | sort_by(-.[0]) | .[] | "\(.[0])\t\(.[1])"'
