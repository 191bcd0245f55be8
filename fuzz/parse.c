/*
 * fuzz/parse.c: libFuzzer target for the path every kernel message takes:
 * conntrack.parse (validation, then libnetfilter_conntrack's parser), then
 * every way a flow is read: each field, tostring, every output format; and
 * the same for an expectation's message (conntrack.parse_expect).
 * The input is a whole netlink message. A harness may keep one Lua state.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <lualib.h>
#include "../src/lct.h"

int luaopen_conntrack(lua_State *L);

static const char reader[] =
	"local conntrack = ...\n"
	"return function(bytes)\n"
	"  local x = conntrack.parse_expect(bytes)\n"
	"  if x then\n"
	"    local _ = tostring(x), x:format('xml')\n"
	"    for k in pairs(x:totable()) do local _ = x[k] end\n"
	"  end\n"
	"  local flow = conntrack.parse(bytes)\n"
	"  if not flow then return end\n"
	"  local _ = tostring(flow), flow:format('extended,id,ktimestamp'), flow:format('xml')\n"
	"  for k in pairs(flow:totable()) do local _ = flow[k] end\n"
	"end\n";

static lua_State *state(void)
{
	static lua_State *L;

	if (L == NULL) {
		L = luaL_newstate();
		luaL_openlibs(L);
		luaL_requiref(L, "conntrack", luaopen_conntrack, 0);
		if (luaL_loadstring(L, reader) != LUA_OK)
			abort();
		lua_insert(L, -2);
		lua_call(L, 1, 1);          /* leaves the reader function */
	}
	return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = state();

	lua_pushvalue(L, 1);
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lua_pop(L, 1);              /* a Lua error is an answer, not a crash */
	/* Each input frees what it made: libFuzzer checks every input for more
	 * mallocs than frees, and garbage left to a later collection made each
	 * one a suspect, a LeakSanitizer scan each: seconds of a short run, until
	 * libFuzzer gave up checking after 1,000. */
	lua_gc(L, LUA_GCCOLLECT, 0);
	return 0;
}
