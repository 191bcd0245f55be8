/*
 * fuzz/filter.c: libFuzzer target for everything that parses a user's
 * argument: filters (addresses, prefixes, masks, ports, names) and update's
 * changes, compiled then matched against a sample flow. The input is lines
 * "key=value": an integer, "a,b" (a { value, mask } pair), true/false, a
 * string ("!..." negated), or "x|y|z" (a list of such values); a key
 * "anyD.key" (D a digit) puts key=value in alternative D of the filter's
 * `any`, nestable ("any1.any2.orig_src=..."); and lines "meta=MODE[:value]" that give the table and the pairs in
 * it a metatable whose __index (or __len) returns that value, raises, runs a
 * full collection, adds a key to the table or returns the table itself, as
 * a hostile script's argument would. No netlink I/O happens.
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
	const struct filter *f;
	struct changes c;
	struct nf_conntrack *ct;

	f = lct_filter_parse(L, 1);      /* may raise: what it allocated is a userdata */
	lct_filter_push_where(L, 1);     /* a lookup: __index runs */
	lua_pop(L, 1);
	if ((ct = nfct_new()) != NULL) {
		nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
		nfct_set_attr_u8(ct, ATTR_L4PROTO, 6);
		nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, htonl(0x0a000001));
		nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3);
		nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, htonl(0xc0a80117));
		nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(53));
		lct_filter_match(f, ct);
		lct_filter_on_message(f);
		nfct_destroy(ct);
	}
	lct_changes_parse(L, 1, &c);
	return 0;
}

enum { META_VALUE, META_RAISE, META_GC, META_MUTATE, META_SELF };

/* __index(t, k) and __len(t): upvalue 1 the mode, 2 the value */
static int metamethod(lua_State *L)
{
	switch ((int)lua_tointeger(L, lua_upvalueindex(1))) {
	case META_RAISE:
		return luaL_error(L, "metatable raised");
	case META_GC:
		lua_gc(L, LUA_GCCOLLECT, 0);
		return 0;
	case META_MUTATE:
		if (lua_type(L, 2) == LUA_TSTRING) {
			lua_pushfstring(L, "%s_", lua_tostring(L, 2));
			lua_pushinteger(L, 1);
			lua_rawset(L, 1);
		}
		return 0;
	case META_SELF:
		lua_pushvalue(L, 1);
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(2));
	return 1;
}

static void push_value(lua_State *L, const char *v);

/* "MODE[:value]" into the metatable at the top of the stack. */
static void add_meta(lua_State *L, const char *spec)
{
	static const char *const modes[] = { "index", "raise", "gc", "mutate", "self", "len" };
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec), i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strlen(modes[i]) == len && memcmp(modes[i], spec, len) == 0)
			break;
	if (i == sizeof(modes) / sizeof(modes[0]))
		return;
	lua_pushinteger(L, i == 5 ? META_VALUE : (lua_Integer)i);
	push_value(L, colon ? colon + 1 : "");
	lua_pushcclosure(L, metamethod, 2);
	lua_setfield(L, -2, i == 5 ? "__len" : "__index");
	if (i == META_RAISE) {
		lua_getfield(L, -1, "__index");
		lua_setfield(L, -2, "__len");
	}
}

/* The table at the top of the stack gets the shared metatable (upvalue-free:
 * registry key "filter-fuzz.meta"), if the input asked for one. */
static void set_meta(lua_State *L)
{
	if (lua_getfield(L, LUA_REGISTRYINDEX, "filter-fuzz.meta") == LUA_TTABLE)
		lua_setmetatable(L, -2);
	else
		lua_pop(L, 1);
}

static void push_value(lua_State *L, const char *v)
{
	char *end;
	long long n = strtoll(v, &end, 0);
	const char *comma = strchr(v, ','), *bar = strchr(v, '|');

	if (bar) {
		char *copy = strdup(v), *item, *save;
		lua_Integer i = 0;
		lua_newtable(L);
		for (item = strtok_r(copy, "|", &save); copy && item; item = strtok_r(NULL, "|", &save)) {
			push_value(L, item);
			lua_rawseti(L, -2, ++i);
		}
		free(copy);
		set_meta(L);
	} else if (*v && *end == '\0') {
		lua_pushinteger(L, n);
	} else if (comma) {
		lua_createtable(L, 2, 0);
		lua_pushinteger(L, strtoll(v, NULL, 0));
		lua_rawseti(L, -2, 1);
		lua_pushinteger(L, strtoll(comma + 1, NULL, 0));
		lua_rawseti(L, -2, 2);
		set_meta(L);
	} else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		lua_pushboolean(L, v[0] == 't');
	} else {
		lua_pushstring(L, v);
	}
}

/* key=value (value at the top, popped) into the filter at idx; "anyD.rest"
 * goes into alternative D of its `any`. */
static void set_key(lua_State *L, int idx, const char *key)
{
	if (strncmp(key, "any", 3) == 0 && key[3] >= '0' && key[3] <= '9' && key[4] == '.') {
		if (lua_getfield(L, idx, "any") != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_setfield(L, idx, "any");
		}
		if (lua_rawgeti(L, -1, key[3] - '0' + 1) != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_rawseti(L, -3, key[3] - '0' + 1);
		}
		lua_rotate(L, -3, -1);        /* value to the top */
		set_key(L, lua_gettop(L) - 1, key + 5);
		lua_pop(L, 2);
		return;
	}
	lua_setfield(L, idx, key);
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
	/* the metatable first: the pairs get it as they are made */
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "filter-fuzz.meta");
	for (line = text; (line = strstr(line, "meta=")) != NULL; line += 5)
		if (line == text || line[-1] == '\n') {
			char *end = strchr(line, '\n'), saved = 0;
			if (lua_getfield(L, LUA_REGISTRYINDEX, "filter-fuzz.meta") != LUA_TTABLE) {
				lua_pop(L, 1);
				lua_newtable(L);
				lua_pushvalue(L, -1);
				lua_setfield(L, LUA_REGISTRYINDEX, "filter-fuzz.meta");
			}
			if (end) {
				saved = *end;
				*end = '\0';
			}
			add_meta(L, line + 5);
			if (end)
				*end = saved;
			lua_pop(L, 1);
		}
	lua_pushcfunction(L, compile);
	lua_newtable(L);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (eq == NULL || strncmp(line, "meta=", 5) == 0)
			continue;
		*eq = '\0';
		push_value(L, eq + 1);
		set_key(L, lua_gettop(L) - 1, line);
	}
	set_meta(L);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		lua_pop(L, 1);
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT, 0);    /* balanced mallocs and frees: see parse.c */
	free(text);
	return 0;
}
