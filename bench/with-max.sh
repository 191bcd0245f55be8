#!/bin/sh
# bench/with-max.sh N CMD...: runs CMD with room for N flows per namespace.
# nf_conntrack_max is global (read-only inside a namespace): it is raised only
# when ALLOW_SYSCTL=1 says the machine may be changed, and restored after.
need=$1; shift
max=/proc/sys/net/netfilter/nf_conntrack_max
old=$(cat $max)
if [ "$old" -lt "$need" ]; then
  if [ "${ALLOW_SYSCTL:-0}" = 1 ]; then
    echo "nf_conntrack_max: $old -> $need for the benchmark"
    echo "$need" > $max
    trap 'echo "$old" > $max' EXIT INT TERM
  else
    echo "nf_conntrack_max is $old: tables above it need ALLOW_SYSCTL=1 (make bench ALLOW_SYSCTL=1)" >&2
    exit 2
  fi
fi
"$@"
