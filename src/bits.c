/*
 * bits.c: band, bor, bxor, bnot, lshift and rshift over unsigned 32-bit
 * values (marks, status words), the same on every Lua: 5.1 and LuaJIT have
 * no bit operators (and LuaJIT's bit library is signed), 5.3 and 5.4 have
 * 64-bit ones. Arguments outside 0 .. 2^32 - 1 raise.
 */
#include "lct.h"

static uint32_t arg(lua_State *L, int idx)
{
	return (uint32_t)lct_check_uint(L, idx, idx == 1 ? "a" : "b", 0xffffffff);
}

enum { AND, OR, XOR };

static int fold(lua_State *L, int op)
{
	int i, n = lua_gettop(L);
	uint32_t r;

	luaL_argcheck(L, n >= 1, 1, "expected a value");
	r = arg(L, 1);
	for (i = 2; i <= n; i++) {
		uint32_t v = (uint32_t)lct_check_uint(L, i, "b", 0xffffffff);
		r = op == AND ? r & v : op == OR ? r | v : r ^ v;
	}
	lct_push_uint(L, r);
	return 1;
}

static int band(lua_State *L) { return fold(L, AND); }
static int bor(lua_State *L)  { return fold(L, OR); }
static int bxor(lua_State *L) { return fold(L, XOR); }

static int bnot(lua_State *L)
{
	lct_push_uint(L, ~arg(L, 1));
	return 1;
}

static int shift(lua_State *L, int left)
{
	uint32_t v = arg(L, 1);
	uint64_t n = lct_check_uint(L, 2, "n", 255);

	lct_push_uint(L, n >= 32 ? 0 : left ? v << n : v >> n);
	return 1;
}

static int lshift(lua_State *L) { return shift(L, 1); }
static int rshift(lua_State *L) { return shift(L, 0); }

void lct_bits_open(lua_State *L, int module)
{
	static const luaL_Reg fns[] = {
		{ "band", band }, { "bor", bor }, { "bxor", bxor }, { "bnot", bnot },
		{ "lshift", lshift }, { "rshift", rshift }, { NULL, NULL }
	};

	module = lua_absindex(L, module);
	lua_pushvalue(L, module);
	luaL_setfuncs(L, fns, 0);
	lua_pop(L, 1);
}
