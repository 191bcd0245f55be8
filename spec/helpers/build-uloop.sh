#!/bin/sh
# spec/helpers/build-uloop.sh LUA: OpenWrt's real uloop Lua module (libubox's
# lua/uloop.c, Lua 5.1 C API) built for LUA (lua5.1 or luajit) as
# build/LUA/uloop.so, beside that Lua's conntrack.so (`make LUA=...`). Built
# from a copy in build/libubox: ../shared/vendor/libubox is read-only in CI.
set -eu
lua=${1:?usage: spec/helpers/build-uloop.sh lua5.1|luajit}
src=${LIBUBOX_SRC:-../shared/vendor/libubox}

case $lua in
  lua5.1) lua_cflags=$(pkg-config --cflags lua5.1) ;;
  # LuaJIT's headers lack two Lua 5.1 compatibility names uloop.c still
  # uses; lua5.1's lauxlib.h defines them exactly so.
  luajit) lua_cflags="$(pkg-config --cflags luajit) -DluaI_openlib=luaL_openlib -DluaL_reg=luaL_Reg" ;;
  *) echo "build-uloop.sh: libubox's uloop binding is for Lua 5.1: lua5.1 or luajit, not $lua" >&2; exit 2 ;;
esac

if [ ! -f build/libubox/lua/uloop.c ]; then
  [ -f "$src/lua/uloop.c" ] || { echo "build-uloop.sh: no libubox sources in $src" >&2; exit 1; }
  mkdir -p build
  cp -r "$src" "build/libubox.$$"
  chmod -R u+w "build/libubox.$$"   # the copy keeps read-only modes; make clean must remove it
  # another run of the suite may have put its copy in place meanwhile
  mv -T "build/libubox.$$" build/libubox 2>/dev/null || rm -rf "build/libubox.$$"
fi

# The module alone, without cmake or json-c (../shared/vendor/README.md);
# written aside and renamed, so that a running Lua (or another run of the
# suite building it too) never sees half a file.
mkdir -p "build/$lua"
# shellcheck disable=SC2086   # lua_cflags is a list of flags
cc -shared -fPIC -Os -Ibuild/libubox $lua_cflags -o "build/$lua/uloop.so.$$" \
   build/libubox/lua/uloop.c build/libubox/uloop.c build/libubox/utils.c
mv "build/$lua/uloop.so.$$" "build/$lua/uloop.so"
