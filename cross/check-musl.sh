#!/bin/sh
# cross/check-musl.sh: every C file compiles against musl (OpenWrt's libc)
# with -Werror, for Lua 5.4 and 5.1. Debian's musl-gcc sees only musl's own
# headers, so the headers the module needs (Lua, libmnl,
# libnetfilter_conntrack, the kernel's) are linked into an include directory
# of their own: no glibc header can slip in.
set -eu
cd "$(dirname "$0")/.."
inc=build/musl-include
mkdir -p "$inc"
for dir in lua5.4 lua5.1 libmnl libnetfilter_conntrack libnfnetlink linux asm-generic; do
  ln -sfn "/usr/include/$dir" "$inc/$dir"
done
multiarch=/usr/include/$(gcc -print-multiarch)
ln -sfn "$multiarch/asm" "$inc/asm"
for lua in lua5.4 lua5.1; do
  ln -sfn "$multiarch/$lua-deb-multiarch.h" "$inc/$lua-deb-multiarch.h"
done
for lua in lua5.4 lua5.1; do
  for src in src/*.c; do
    musl-gcc -O2 -fPIC -Wall -Wextra -Werror -std=gnu11 -I"$inc" -I"$inc/$lua" -c "$src" -o /dev/null
  done
  echo "musl: $(ls src/*.c | wc -l) files compile with -Werror ($lua)"
done
