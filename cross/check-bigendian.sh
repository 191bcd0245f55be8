#!/bin/sh
# cross/check-bigendian.sh: the module on big-endian CPUs. Built for s390x and
# run under qemu-s390x-static (Lua 5.4 and 5.1): every corpus and crafted
# message parsed, printed and tabled byte for byte as on x86
# (cross/outputs.lua), then the differential and parse fuzz targets driven by
# fuzz/standalone.c for a bounded time. Every src/*.c compiled for 32-bit
# big-endian MIPS. Installs what it needs (root); prints PASS/FAIL per step
# and exits non-zero on a failure. FUZZ_SECONDS (60) and PARSE_FUZZ_SECONDS
# (20) bound the fuzz runs. A crash input is left in build/cross-bigendian/,
# big-endian: byteorder.convert(bytes, "big", "little") before it joins fuzz/crashes/.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
work=build/cross-bigendian
s390x=build/sysroot-s390x
mipsel=build/sysroot-mipsel
fuzz_seconds=${FUZZ_SECONDS:-60}
parse_seconds=${PARSE_FUZZ_SECONDS:-20}
WARN="-Wall -Wextra -Werror -std=gnu11"

# The comparison runs in a private mount namespace whose /etc has a
# connlabel.conf of its own (the label names printed with -o labels), the
# same for x86 and for qemu (which looks in the sysroot's /etc first, then
# the host's); the host's /etc is not touched.
if [ "${1:-}" = "--outputs" ]; then
  set -e
  mkdir -p "$work/etc"
  mount -t tmpfs none "$work/etc"
  mkdir -p "$work/etc/upper/xtables" "$work/etc/work"
  printf '3 three\n127 last\n' > "$work/etc/upper/xtables/connlabel.conf"
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$work/etc/upper,workdir=$work/etc/work" /etc
  export TZ=UTC
  said=""
  for v in 5.4 5.1; do
    so=$([ "$v" = 5.4 ] && echo . || echo build/lua5.1)
    LUA_CPATH="$so/?.so" "lua$v" cross/outputs.lua > "$work/expected-$v.txt"
    LUA_CPATH="$work/s390x-lua$v/?.so" qemu-s390x-static -L "$s390x" "$s390x/usr/bin/lua$v" \
      cross/outputs.lua "$work/expected-$v.txt" > "$work/outputs-$v.txt" || { cat "$work/outputs-$v.txt"; exit 1; }
    said="$said${said:+; }$(tail -n 1 "$work/outputs-$v.txt")"
  done
  echo "$said"
  exit 0
fi

start=$(date +%s)
mkdir -p "$work"
passed=0 failed=0 summary=""

# step NAME COMMAND...: runs it, its output in $work/NAME.log; the last line
# of the log goes into the summary.
step() {
  name=$1; shift
  t0=$(date +%s)
  if "$@" > "$work/$name.log" 2>&1; then
    verdict=PASS; passed=$((passed + 1))
  else
    verdict=FAIL; failed=$((failed + 1))
    tail -n 25 "$work/$name.log"
  fi
  line="$verdict $name ($(( $(date +%s) - t0 )) s): $(tail -n 1 "$work/$name.log")"
  echo "$line"
  summary="$summary$line
"
}

install() {
  need=""
  for p in qemu-user-static gcc-s390x-linux-gnu gcc-mips-linux-gnu build-essential pkg-config lua5.4 \
           liblua5.4-dev lua5.1 liblua5.1-0-dev libnetfilter-conntrack-dev libmnl-dev util-linux; do
    dpkg -s "$p" > /dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    apt-get update -qq || { sleep 30; apt-get update -qq; } ||
      echo "apt-get update failed for some index (a mirror syncing?): going on with what it has" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
  fi
  # Debian 12 has no big-endian mips port: the headers (architecture-independent
  # but for Lua's multiarch one) come from mipsel's packages
  sh cross/sysroot.sh s390x "$s390x" libc6 libreadline8 libtinfo6 liblua5.4-0 liblua5.4-dev lua5.4 \
    liblua5.1-0 liblua5.1-0-dev lua5.1 libnetfilter-conntrack3 libnetfilter-conntrack-dev \
    libmnl0 libmnl-dev libnfnetlink0 libnfnetlink-dev &&
  sh cross/sysroot.sh mipsel "$mipsel" liblua5.4-dev liblua5.1-0-dev libnetfilter-conntrack-dev \
    libmnl-dev libnfnetlink-dev &&
  echo "qemu-s390x-static, s390x-linux-gnu-gcc, mips-linux-gnu-gcc; sysroots $s390x, $mipsel"
}

# The x86 builds the expected outputs come from (Lua 5.4 and 5.1).
build_native() {
  make -s && make -s LUA=lua5.1 && echo "./conntrack.so, build/lua5.1/conntrack.so"
}

# "ELF64, 2's complement, big endian, IBM S/390"
elf() {
  readelf -h "$1" | sed -n 's/^ *\(Class\|Data\|Machine\): *//p' | paste -sd, - | sed 's/,\([^ ]\)/, \1/g'
}

s390x_cc() {
  lua=$1; shift
  s390x-linux-gnu-gcc -O2 -g $WARN -fPIC -I"$s390x/usr/include/$lua" -I"$s390x/usr/include/s390x-linux-gnu" \
    -I"$s390x/usr/include" "$@" -L"$s390x/usr/lib/s390x-linux-gnu" \
    -Wl,-rpath-link,"$s390x/usr/lib/s390x-linux-gnu" -Wl,-rpath-link,"$s390x/lib/s390x-linux-gnu" \
    -lnetfilter_conntrack -lnfnetlink -lmnl
}

build_s390x() {
  for v in 5.4 5.1; do
    mkdir -p "$work/s390x-lua$v"
    s390x_cc "lua$v" -shared -o "$work/s390x-lua$v/conntrack.so" src/*.c || return 1
  done
  s390x_cc lua5.4 -o "$work/standalone-differential" fuzz/standalone.c fuzz/differential.c src/*.c -llua5.4 -lm &&
  s390x_cc lua5.4 -o "$work/standalone-parse" fuzz/standalone.c fuzz/parse.c src/*.c -llua5.4 -lm &&
  elf "$work/s390x-lua5.4/conntrack.so"
}

outputs() {
  unshare -m --propagation private sh "$0" --outputs
}

fuzz() {
  rm -rf "$work/seeds"
  qemu-s390x-static -L "$s390x" "$s390x/usr/bin/lua5.4" cross/seeds.lua "$work/seeds" || return 1
  d=$(qemu-s390x-static -L "$s390x" "$work/standalone-differential" -t "$fuzz_seconds" \
        -o "$work/crash-differential-" "$work/seeds") || { echo "differential: crashed, input in $work/crash-differential-*"; return 1; }
  p=$(qemu-s390x-static -L "$s390x" "$work/standalone-parse" -t "$parse_seconds" \
        -o "$work/crash-parse-" "$work/seeds") || { echo "parse: crashed, input in $work/crash-parse-*"; return 1; }
  echo "differential: ${d#standalone: }; parse: ${p#standalone: }"
}

# Compiled, not run (nothing runs 32-bit big-endian MIPS user space here
# with these libraries): every file, with the headers of both Luas, linked
# into a shared object.
mips() {
  for v in 5.4 5.1; do
    rm -rf "$work/mips-lua$v" && mkdir -p "$work/mips-lua$v"
    (cd "$work/mips-lua$v" && mips-linux-gnu-gcc -O2 $WARN -fPIC -I"$top/$mipsel/usr/include/lua$v" \
       -I"$top/$mipsel/usr/include/mipsel-linux-gnu" -I"$top/$mipsel/usr/include" -c "$top"/src/*.c &&
     mips-linux-gnu-gcc -shared -o conntrack.so ./*.o) || return 1
  done
  echo "$(ls src/*.c | wc -l) files x Lua 5.4, 5.1: $(elf "$work/mips-lua5.4/conntrack.so")"
}

step install install
step build-x86 build_native
step build-s390x build_s390x
step outputs-s390x outputs
step fuzz-s390x fuzz
step compile-mips mips

echo
echo "== big-endian summary ($(( $(date +%s) - start )) s)"
printf '%s' "$summary"
if [ "$failed" -eq 0 ]; then
  echo "check-bigendian: PASS ($passed steps)"
else
  echo "check-bigendian: FAIL ($failed of $((passed + failed)) steps; logs in $work/)"
  exit 1
fi
