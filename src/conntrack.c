/*
 * conntrack.c: luaopen_conntrack, which only assembles the module from each
 * concern's x_open: the handle's methods (handle.c, dump.c, aggregate.c, events.c,
 * ops.c, expect_ops.c), flows, conntrack.signals (signals.c), and the
 * module's functions, which work on a default handle opened on first use, as
 * io.write uses the default output file.
 */
#include <string.h>

#include "lct.h"

/* conntrack.f(...) is ct:f(...) on the default handle (upvalue 1 is f). */
static int call_default(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, LCT_DEFAULT) == LUA_TUSERDATA && lct_handle_is_open(L, -1)) {
		lua_insert(L, 1);
	} else {
		lua_pop(L, 1);
		lua_pushcfunction(L, lct_open);
		lua_call(L, 0, 3);
		if (lua_isnil(L, -3)) {
			/* dump raises its failures, as io.lines does */
			if (lua_tocfunction(L, lua_upvalueindex(1)) == lct_dump ||
			    lua_tocfunction(L, lua_upvalueindex(1)) == lct_expect_dump)
				return luaL_error(L, "%s", lua_tostring(L, -2));
			return 3;
		}
		lua_pop(L, 2);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, LCT_DEFAULT);
		lua_insert(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

int luaopen_conntrack(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "dump", lct_dump }, { "events", lct_events }, { "aggregate", lct_aggregate }, { NULL, NULL }
	};
	const char *name;

	lua_newtable(L);                 /* the module */
	lct_fields_open(L, -1);
	lct_flow_open(L, -1);
	lct_prefixes_open(L, -1);
	lct_bits_open(L, -1);
	lct_dump_open(L);
	lct_aggregate_open(L);
	lct_sweep_open(L);
	lct_events_open(L);
	lct_expect_open(L, -1);
	lct_expect_ops_open(L);
	lct_signals_open(L, -1);
	lct_handle_open(L, -1);          /* pushes the handle's methods */
	luaL_setfuncs(L, methods, 0);
	lct_ops_register(L);
	lct_expect_ops_register(L);

	/* every operation, on the default handle */
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		name = lua_tostring(L, -2);
		if (strcmp(name, "close") != 0) {
			lua_pushcclosure(L, call_default, 1);
			lua_setfield(L, -4, name);
		} else {
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	lua_pushliteral(L, LCT_VERSION);
	lua_setfield(L, -2, "_VERSION");
	return 1;
}
