/*
 * compat.h: the Lua 5.4 C API this module is written against, for 5.3, 5.1
 * and LuaJIT 2.1. Included by lct.h after lua.h; only what the module uses.
 * On 5.1 and LuaJIT every number is a double: a whole number is accepted
 * where 5.4 wants an integer, and counters beyond 2^53 lose precision.
 */
#ifndef LCT_COMPAT_H
#define LCT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if defined(__has_include)
#if __has_include(<luajit.h>)
#define LCT_LUAJIT 1   /* LuaJIT's headers have the 5.2 auxiliary functions */
#endif
#endif

/* Integers in messages: %I from 5.3 on; before, %f prints whole numbers as such. */
#if LUA_VERSION_NUM >= 503
#define LCT_I "%I"
#define LCT_IARG(x) ((lua_Integer)(x))
#else
#define LCT_I "%f"
#define LCT_IARG(x) ((lua_Number)(x))
#endif

/* User values 1..n of a userdata: 5.3 has a single slot and 5.1 the
 * environment table, so before 5.4 they live in a table of their own in
 * that slot (marked, as 5.1's environment starts as the globals). */
#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
static const char lct_uservalues_mark = 0;
#if LUA_VERSION_NUM == 503
#define lct_getslot(L, idx) lua_getuservalue(L, idx)
#define lct_setslot(L, idx) lua_setuservalue(L, idx)
#else
#define lct_getslot(L, idx) lua_getfenv(L, idx)
#define lct_setslot(L, idx) lua_setfenv(L, idx)
#endif
/* pushes the table of user values, or nil */
static inline void lct_uservalues(lua_State *L, int idx)
{
	lct_getslot(L, idx);
	if (lua_type(L, -1) == LUA_TTABLE) {
		lua_rawgeti(L, -1, 0);
		if (lua_touserdata(L, -1) == (void *)&lct_uservalues_mark) {
			lua_pop(L, 1);
			return;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_pushnil(L);
}
static inline int lct_setuservalue(lua_State *L, int idx, int n)
{
	idx = idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx;
	lct_uservalues(L, idx);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_createtable(L, 2, 1);
		lua_pushlightuserdata(L, (void *)&lct_uservalues_mark);
		lua_rawseti(L, -2, 0);
		lua_pushvalue(L, -1);
		lct_setslot(L, idx);
	}
	lua_insert(L, -2);
	lua_rawseti(L, -2, n);
	lua_pop(L, 1);
	return 1;
}
static inline int lct_getuservalue(lua_State *L, int idx, int n)
{
	lct_uservalues(L, idx);
	if (lua_isnil(L, -1))
		return LUA_TNIL;
	lua_rawgeti(L, -1, n);
	lua_remove(L, -2);
	return lua_type(L, -1);
}
#define lua_setiuservalue(L, idx, n) lct_setuservalue(L, idx, n)
#define lua_getiuservalue(L, idx, n) lct_getuservalue(L, idx, n)
#endif

#if LUA_VERSION_NUM == 501
#include <math.h>
#include <stdint.h>

#define LUA_OK 0
#define LUA_MAXINTEGER PTRDIFF_MAX
#define lua_rawlen(L, idx) lua_objlen(L, idx)
#define luaL_len(L, idx) ((lua_Integer)lua_objlen(L, idx))
/* the type of the value pushed, as from 5.3 on */
#define lua_getfield(L, idx, k) (lua_getfield(L, idx, k), lua_type(L, -1))
#define lua_rawgeti(L, idx, n) (lua_rawgeti(L, idx, n), lua_type(L, -1))
#define lua_rawget(L, idx) (lua_rawget(L, idx), lua_type(L, -1))
#define lua_pushlstring(L, s, len) (lua_pushlstring(L, s, len), lua_tostring(L, -1))

static inline int lct_absindex(lua_State *L, int idx)
{
	return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex lct_absindex

/* a number with an exact integer value, which is what 5.4 would hold as an integer */
static inline int lct_isinteger(lua_State *L, int idx)
{
	lua_Number n;

	if (lua_type(L, idx) != LUA_TNUMBER)
		return 0;
	n = lua_tonumber(L, idx);
	return n == floor(n) && n >= -9007199254740992.0 && n <= 9007199254740992.0;
}
#define lua_isinteger lct_isinteger

static inline const char *lct_tolstring(lua_State *L, int idx, size_t *len)
{
	if (luaL_callmeta(L, idx, "__tostring")) {
		if (!lua_isstring(L, -1))
			luaL_error(L, "'__tostring' must return a string");
	} else {
		switch (lua_type(L, idx)) {
		case LUA_TNUMBER:
		case LUA_TSTRING:  lua_pushvalue(L, idx); break;
		case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); break;
		case LUA_TNIL:     lua_pushliteral(L, "nil"); break;
		default:
			lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
		}
	}
	return lua_tolstring(L, -1, len);
}
#define luaL_tolstring lct_tolstring

#ifndef LCT_LUAJIT
static inline void lct_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
	for (; l->name != NULL; l++) {
		int i;
		for (i = 0; i < nup; i++)
			lua_pushvalue(L, -nup);
		lua_pushcclosure(L, l->func, nup);
		lua_setfield(L, -(nup + 2), l->name);
	}
	lua_pop(L, nup);
}
#define luaL_setfuncs lct_setfuncs
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs(L, l, 0))

static inline void lct_setmetatable(lua_State *L, const char *tname)
{
	luaL_getmetatable(L, tname);
	lua_setmetatable(L, -2);
}
#define luaL_setmetatable lct_setmetatable

static inline void *lct_testudata(lua_State *L, int idx, const char *tname)
{
	void *p = lua_touserdata(L, idx);
	int same;

	if (p == NULL || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, tname);
	same = lua_rawequal(L, -1, -2);
	lua_pop(L, 2);
	return same ? p : NULL;
}
#define luaL_testudata lct_testudata

/* debug.traceback does what 5.2's luaL_traceback does, from Lua */
static inline void lct_traceback(lua_State *L, lua_State *L1, const char *msg, int level)
{
	(void)L1;
	lua_getglobal(L, "debug");
	lua_getfield(L, -1, "traceback");
	lua_remove(L, -2);
	lua_pushstring(L, msg);
	lua_pushinteger(L, level + 1);
	lua_call(L, 2, 1);
}
#define luaL_traceback lct_traceback
#endif /* !LCT_LUAJIT */
#endif /* LUA_VERSION_NUM == 501 */

#endif
