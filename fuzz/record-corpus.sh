#!/bin/sh
# fuzz/record-corpus.sh RAW: records the kernel's ctnetlink messages (dump
# entries and events) of real flows into RAW/, in a private network namespace
# it creates: loopback traffic with accounting, timestamps, NAT, the FTP
# helper, labels, zones, marks, plus flows `conntrack -I` creates (SCTP, GRE,
# ICMPv6, per-direction zones). Each message is one file (fuzz/record.c);
# RAW/*.lines hold what conntrack -E / -L -o extended,id printed for them.
# Run as root; the committed corpus came from (on x86, so little-endian):
#   sh fuzz/record-corpus.sh build/raw
#   lua5.4 fuzz/record-select.lua build/raw fuzz/corpus/recorded fuzz/corpus/recorded.lines
set -eu
raw=${1:?usage: fuzz/record-corpus.sh RAW_DIR}
if [ -z "${LCT_RECORD_NETNS:-}" ]; then
  exec env LCT_RECORD_NETNS=1 unshare -n sh "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$raw/events" "$raw/dump" "$here/../build"
gcc -O2 -Wall -Wextra -Werror -o "$here/../build/record" "$here/record.c" -lmnl
record=$here/../build/record
traffic="lua5.4 $here/record-traffic.lua"

ip link set lo up
sysctl -qw net.netfilter.nf_conntrack_acct=1
nft -f - <<'EOF'
table inet record {
  ct helper ftp-std { type "ftp" protocol tcp; l3proto inet; }
  chain zone {
    type filter hook output priority raw; policy accept;
    udp dport 7002 ct zone set 7
  }
  chain out {
    type filter hook output priority filter; policy accept;
    tcp dport 21 ct helper set "ftp-std"
    udp dport 7001 ct label set 3
    udp dport 7001 ct label set 127
    udp dport 7003 ct mark set 0xfffffffe
  }
}
table ip record-nat {
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.9 tcp dport 8002 dnat to 127.0.0.1
  }
  chain post {
    type nat hook postrouting priority 100; policy accept;
    tcp dport 21 snat to 127.0.0.22
  }
}
EOF

"$record" events "$raw/events" < /dev/null > /dev/null & rec=$!
conntrack -E -o extended,id < /dev/null > "$raw/events.lines" 2>/dev/null & ev=$!
trap 'kill "$rec" "$ev" 2>/dev/null || true' EXIT
sleep 0.5

# accounting on, timestamps off: the dump below is the same whenever read
$traffic tcp 127.0.0.1 8000
$traffic tcp ::1 8001
$traffic udp 127.0.0.1 7001            # labels
$traffic udp 127.0.0.1 7002            # zone 7
$traffic udp 127.0.0.1 7003            # mark 0xfffffffe
$traffic udp ::1 7004
$traffic tcp 127.0.0.1 8002 127.0.0.9  # DNAT: the reply comes from 127.0.0.1
$traffic ftp 127.0.0.1                 # helper, SNAT, sequence adjustment, master tuple
conntrack -I -p sctp -s 10.1.0.1 -d 10.1.0.2 --orig-port-src 3000 --orig-port-dst 3001 \
  --reply-port-src 3001 --reply-port-dst 3000 --state ESTABLISHED --orig-vtag 123456 --reply-vtag 654321 -t 500
conntrack -I -p gre -s 10.1.0.1 -d 10.1.0.2 --srckey 0x1234 --dstkey 0x4321 -t 500
conntrack -I -p icmpv6 -s fd00::1 -d fd00::2 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 99 -t 30
conntrack -I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 5000 --dport 5001 --orig-zone 4 -t 500 -m 3000000000
conntrack -I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 5000 --dport 5002 --reply-zone 6 -t 500
conntrack -I -p tcp -s fd00::1 -d fd00::2 --sport 6000 --dport 22 --state SYN_SENT -t 500 -w 65535
"$record" dump "$raw/dump"
conntrack -L -o extended,id > "$raw/dump.lines" 2>/dev/null

# timestamps on: flows deleted from user space, whose destroy events carry
# start and stop (a dump's entries have a start only: a line that ages)
sysctl -qw net.netfilter.nf_conntrack_timestamp=1
$traffic tcp 127.0.0.1 8100
$traffic udp ::1 7100
sleep 1
conntrack -D > /dev/null 2>&1
sleep 0.5
kill "$rec" "$ev"
wait "$rec" "$ev" || true
echo "$(ls "$raw/events" | wc -l) events, $(ls "$raw/dump" | wc -l) dump entries in $raw"
