/*
 * fuzz/filter.c: libFuzzer target for everything that parses a user's
 * argument: filters (addresses, prefixes, masks, ports, names) and update's
 * changes, compiled then matched against a sample flow. The input is lines
 * "key=value": an integer, "a,b" (a { value, mask } pair), true/false, or a
 * string. No netlink I/O happens.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "../src/lct.h"

int luaopen_conntrack(lua_State *L);

/* (table) -> compiles it as a filter and as changes, matches a flow */
static int compile(lua_State *L)
{
	struct filter f;
	struct changes c;
	struct nf_conntrack *ct;

	lct_filter_parse(L, 1, &f);      /* may raise: nothing allocated yet */
	if ((ct = nfct_new()) != NULL) {
		nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
		nfct_set_attr_u8(ct, ATTR_L4PROTO, 6);
		nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, htonl(0x0a000001));
		nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3);
		lct_filter_match(&f, ct);
		nfct_destroy(ct);
	}
	lct_changes_parse(L, 1, &c);
	return 0;
}

static void push_value(lua_State *L, const char *v)
{
	char *end;
	long long n = strtoll(v, &end, 0);
	const char *comma = strchr(v, ',');

	if (*v && *end == '\0') {
		lua_pushinteger(L, n);
	} else if (comma) {
		lua_createtable(L, 2, 0);
		lua_pushinteger(L, strtoll(v, NULL, 0));
		lua_rawseti(L, -2, 1);
		lua_pushinteger(L, strtoll(comma + 1, NULL, 0));
		lua_rawseti(L, -2, 2);
	} else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		lua_pushboolean(L, v[0] == 't');
	} else {
		lua_pushstring(L, v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	char *text = malloc(size + 1), *line, *save;

	if (text == NULL)
		return 0;
	if (L == NULL) {
		L = luaL_newstate();
		luaL_openlibs(L);
		luaL_requiref(L, "conntrack", luaopen_conntrack, 0);   /* the field names */
		lua_pop(L, 1);
	}
	memcpy(text, data, size);
	text[size] = '\0';
	lua_pushcfunction(L, compile);
	lua_newtable(L);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		push_value(L, eq + 1);
		lua_setfield(L, -2, line);
	}
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lua_pop(L, 1);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT, 0);    /* balanced mallocs and frees: see parse.c */
	free(text);
	return 0;
}
