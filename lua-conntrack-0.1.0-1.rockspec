rockspec_format = "3.0"
package = "lua-conntrack"
version = "0.1.0-1"
source = {
   url = "git+file:///dev/null",   -- built from a checkout with `luarocks make`
   tag = "v0.1.0",
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
build = {
   type = "builtin",
   modules = {
      conntrack = {
         sources = { "src/conntrack.c", "src/dump.c", "src/fields.c", "src/filter.c",
                     "src/flow.c", "src/nl.c", "src/ops.c", "src/change.c", "src/events.c",
                     "src/sweep.c", "src/validate.c" },
         defines = { "_GNU_SOURCE" },
         libraries = { "netfilter_conntrack", "mnl" },
         incdirs = { "$(NETFILTER_CONNTRACK_INCDIR)", "$(MNL_INCDIR)" },
         libdirs = { "$(NETFILTER_CONNTRACK_LIBDIR)", "$(MNL_LIBDIR)" },
      },
      ["conntrack.ctl"] = "lua/ctl.lua",
      ["conntrack.ctl.addr"] = "lua/conntrack/ctl/addr.lua",
      ["conntrack.ctl.commands"] = "lua/conntrack/ctl/commands.lua",
      ["conntrack.ctl.compat"] = "lua/conntrack/ctl/compat.lua",
      ["conntrack.ctl.events"] = "lua/conntrack/ctl/events.lua",
      ["conntrack.ctl.getopt"] = "lua/conntrack/ctl/getopt.lua",
      ["conntrack.ctl.help"] = "lua/conntrack/ctl/help.lua",
      ["conntrack.ctl.json"] = "lua/conntrack/ctl/json.lua",
      ["conntrack.ctl.labels"] = "lua/conntrack/ctl/labels.lua",
      ["conntrack.ctl.options"] = "lua/conntrack/ctl/options.lua",
      ["conntrack.ctl.output"] = "lua/conntrack/ctl/output.lua",
      ["conntrack.ctl.protos"] = "lua/conntrack/ctl/protos.lua",
      ["conntrack.ctl.where"] = "lua/conntrack/ctl/where.lua",
   },
   install = { bin = { ["lua-conntrack"] = "lua/ctl.lua" } },
}
