rockspec_format = "3.0"
package = "lua-conntrack"
version = "0.1.0-1"
-- The release tarball `make rock` packs beside this rockspec into
-- lua-conntrack-0.1.0-1.src.rock, which `luarocks install` builds offline; in a
-- checkout, `luarocks make` builds from the tree and fetches nothing.
source = {
   url = "lua-conntrack-0.1.0.tar.gz",
   dir = "lua-conntrack-0.1.0",
}
description = {
   summary = "Linux Netfilter connection tracking, programmable from Lua",
   detailed = [[
      Flow objects, streaming dumps, filters, get/create/update/delete and
      flush against the kernel's conntrack table, over libnetfilter_conntrack
      and libmnl.
   ]],
   license = "GPL-2.0-or-later",
   labels = { "netfilter", "conntrack", "linux", "firewall" },
}
supported_platforms = { "linux" }
dependencies = { "lua >= 5.1" }   -- 5.1 (and LuaJIT), 5.3, 5.4; src/compat.h bridges them
external_dependencies = {
   NETFILTER_CONNTRACK = { header = "libnetfilter_conntrack/libnetfilter_conntrack.h",
                           library = "netfilter_conntrack" },
   MNL = { header = "libmnl/libmnl.h", library = "mnl" },
}
-- Built and installed by the Makefile (module, conntrack.ctl, the command,
-- its manual page): LuaRocks' builtin type would also copy lua/ctl.lua in as
-- a stray top-level module "ctl". Each Lua's headers get a build directory
-- of their own, so one checkout serves several versions.
build = {
   type = "make",
   build_variables = {
      LUA = "$(LUA)",
      LUA_CFLAGS = "-I$(LUA_INCDIR)",
      BUILD = "build/rock$(LUA_INCDIR)",
      CFLAGS = "$(CFLAGS)",
      WERROR = "",   -- a newer compiler's new warning must not fail a user's build
   },
   install_variables = {
      LUA = "$(LUA)",
      LUA_CFLAGS = "-I$(LUA_INCDIR)",
      BUILD = "build/rock$(LUA_INCDIR)",
      PREFIX = "$(PREFIX)",
      LIBDIR = "$(LIBDIR)",
      SHAREDIR = "$(LUADIR)",
      BINDIR = "$(BINDIR)",
   },
}
