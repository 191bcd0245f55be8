#!/bin/sh
# cross/check-i386.sh: the module built for i386 against Debian's i386 Lua 5.1
# and libraries, run under qemu-i386 (this kernel runs no 32-bit binaries):
# lua_Integer is 32 bits there, as on 32-bit routers. Runs cross/values32.lua.
set -eu
cd "$(dirname "$0")/.."
sysroot=build/sysroot-i386
out=build/i386-lua5.1
cross/sysroot.sh i386 "$sysroot" libc6 libreadline8 libtinfo6 lua5.1 liblua5.1-0 liblua5.1-0-dev \
  libnetfilter-conntrack3 libnetfilter-conntrack-dev libmnl0 libmnl-dev libnfnetlink0 libnfnetlink-dev
# luaconf.h includes lua5.1-deb-multiarch.h from the i386 include directory
make -s BUILD="$out" CC=i686-linux-gnu-gcc \
  CPPFLAGS="-I$sysroot/usr/include/lua5.1 -I$sysroot/usr/include/i386-linux-gnu -I$sysroot/usr/include" \
  LIBS="-L$sysroot/usr/lib/i386-linux-gnu -lnetfilter_conntrack -lnfnetlink -lmnl" \
  "$out/conntrack.so"
LUA_CPATH="$out/?.so" qemu-i386-static -L "$sysroot" "$sysroot/usr/bin/lua5.1" cross/values32.lua
