/*
 * number.c: the kernel's unsigned integers (u8 to u64) to and from Lua,
 * exactly, on every Lua. Where lua_Integer is 32 bits (Lua 5.1 and LuaJIT on
 * 32-bit CPUs, as on most routers) a u32 mark or a u64 counter does not fit
 * it: such a value travels as a float, exact up to 2^53. One rule for every
 * field, in both directions.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "lct.h"

/* 2^64 as a float: the first value no u64 holds. */
#define TWO_TO_64 18446744073709551616.0

/* An integer where lua_Integer holds the value, else a float. */
void lct_push_uint(lua_State *L, uint64_t v)
{
	if (v <= (uint64_t)LUA_MAXINTEGER)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, (lua_Number)v);
}

/* The decimal text of v into buf (LCT_UINT_TEXT bytes), for messages:
 * lua_pushfstring has no conversion for 64-bit unsigned values. */
const char *lct_uint_text(char *buf, uint64_t v)
{
	snprintf(buf, LCT_UINT_TEXT, "%" PRIu64, v);
	return buf;
}

static void not_an_integer(lua_State *L, int idx, const char *key)
{
	if (lua_type(L, idx) == LUA_TNUMBER)
		luaL_error(L, "bad argument '%s': expected an integer, got %s", key, luaL_tolstring(L, idx, NULL));
	luaL_error(L, "bad argument '%s': expected an integer, got %s", key, luaL_typename(L, idx));
}

/* An integer from 0 to max at idx. A float is taken where it has an integral
 * value that this Lua's integers cannot hold (0xfffffffe on a 32-bit Lua, a
 * counter past 2^63 on 5.4); elsewhere 5.3 and 5.4 want an integer, as their
 * own libraries do. Before 5.3 every number is a float: any integral one. */
uint64_t lct_check_uint(lua_State *L, int idx, const char *key, uint64_t max)
{
	lua_Number n;
	char a[LCT_UINT_TEXT];

	if (lua_type(L, idx) != LUA_TNUMBER)
		not_an_integer(L, idx, key);
#if LUA_VERSION_NUM >= 503
	if (lua_isinteger(L, idx)) {
		lua_Integer v = lua_tointeger(L, idx);
		if (v < 0 || (uint64_t)v > max)
			luaL_error(L, "bad argument '%s': expected an integer from 0 to %s, got %s", key,
			           lct_uint_text(a, max), luaL_tolstring(L, idx, NULL));
		return (uint64_t)v;
	}
#endif
	n = lua_tonumber(L, idx);
	if (n != floor(n) || isinf(n))
		not_an_integer(L, idx, key);
#if LUA_VERSION_NUM >= 503
	if (n >= (lua_Number)LUA_MININTEGER && n < -(lua_Number)LUA_MININTEGER)
		not_an_integer(L, idx, key);
#endif
	if (n < 0 || n >= TWO_TO_64 || (uint64_t)n > max)
		luaL_error(L, "bad argument '%s': expected an integer from 0 to %s, got %s", key,
		           lct_uint_text(a, max), luaL_tolstring(L, idx, NULL));
	return (uint64_t)n;
}
