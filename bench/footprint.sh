#!/bin/sh
# bench/footprint.sh [LUA...]: what the module costs a small router, per Lua
# (default lua5.1 lua5.3 lua5.4 luajit): its size stripped, built -O2 and -Os,
# beside /usr/sbin/conntrack's; and the resident memory (VmRSS) that
# `require "conntrack"`, then conntrack.open(), add to the interpreter.
# Builds in build/footprint/; measures in a network namespace of its own.
set -eu
cd "$(dirname "$0")/.."
luas=${*:-lua5.1 lua5.3 lua5.4 luajit}
out=build/footprint

stripped_size() {
  strip -o "$out/stripped" "$1"
  stat -c %s "$out/stripped"
}

# The module of $1 (a build directory), loaded by $2, in KiB of VmRSS: the
# bare interpreter; what require adds, and of that the resident pages of
# conntrack.so and of the netfilter libraries it brings; what open() adds.
rss() {
  unshare -n env LUA_CPATH="$1/?.so" "$2" -e '
    local function rss()
      for line in io.lines("/proc/self/status") do
        local kib = line:match("^VmRSS:%s*(%d+)")
        if kib then return tonumber(kib) end
      end
    end
    local function mapped(pattern)   -- resident KiB of the files whose name matches
      local kib, name = 0, nil
      for line in io.lines("/proc/self/smaps") do
        local path = line:match("^%x+%-%x+ %S+ %x+ %S+ %d+%s+(%S*)$")
        if path then name = path:match("[^/]*$") end
        local n = line:match("^Rss:%s*(%d+)")
        if n and name and name:match(pattern) then kib = kib + tonumber(n) end
      end
      return kib
    end
    collectgarbage(); local bare = rss()
    local conntrack = require "conntrack"
    collectgarbage(); local required = rss()
    local ct = assert(conntrack.open())
    collectgarbage(); local opened = rss()
    io.write(bare, " ", required - bare, " ", mapped("^conntrack%.so$"), " ",
             mapped("^libnetfilter_conntrack") + mapped("^libmnl") + mapped("^libnfnetlink"), " ",
             opened - required, "\n")
    ct:close()'
}

mkdir -p "$out"
printf '%-8s %10s %10s %9s %13s %8s %9s %10s\n' \
  "Lua" "-O2 bytes" "-Os bytes" "bare KiB" "+require KiB" "(.so KiB" "libs KiB)" "+open KiB"
for lua in $luas; do
  for opt in O2 Os; do
    MAKEFLAGS= make -s -j"$(nproc)" BUILD="$out/$lua-$opt" LUA="$lua" CFLAGS="-$opt" >/dev/null
  done
  o2=$(stripped_size "$out/$lua-O2/conntrack.so")
  os=$(stripped_size "$out/$lua-Os/conntrack.so")
  # the heap grows in steps: the median of five runs by what require adds
  set -- $(for _ in 1 2 3 4 5; do rss "$out/$lua-Os" "$lua"; done | sort -n -k 2 | sed -n 3p)
  printf '%-8s %10s %10s %9s %13s %8s %9s %10s\n' "$lua" "$o2" "$os" "$1" "$2" "$3" "$4" "$5"
done
printf '%-8s %10s   (conntrack-tools %s, stripped; both load libnetfilter_conntrack, libmnl)\n' \
  "conntrack" "$(stripped_size /usr/sbin/conntrack)" "$(conntrack -V 2>&1 | grep -o 'v[0-9.]*' | head -n 1)"
echo "RSS of the -Os build: what require and open() add to the bare interpreter's VmRSS; of require's,"
echo "the resident pages of conntrack.so and of libnetfilter_conntrack, libmnl and libnfnetlink."
rm -f "$out/stripped"
