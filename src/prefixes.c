/*
 * prefixes.c: a set of addresses and prefixes, IPv4 and IPv6 mixed, built
 * once from Lua and looked up in C without Lua. The prefixes are sorted by
 * family, length and value; a lookup masks the address to each length the
 * set holds and searches that run: a few binary searches, however many
 * thousands of prefixes. Also conntrack.in_prefix, the same lookup for
 * predicates.
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "lct.h"

#define LCT_PREFIXES "conntrack.prefixes"

struct prefix {
	uint8_t fam;               /* 0: IPv4, 1: IPv6 */
	uint8_t plen;
	uint64_t hi, lo;           /* host order, masked; IPv4 in hi's top 32 bits */
};

/* The prefixes of one family and one length: entries [start, start + count). */
struct run {
	uint8_t plen;
	uint32_t start, count;
};

struct prefixes {
	uint32_t n;
	int nruns[2];
	struct run runs[2][129];
	struct prefix entries[];
};

static void mask_key(uint64_t *hi, uint64_t *lo, int plen)
{
	if (plen == 0) {
		*hi = *lo = 0;
	} else if (plen <= 64) {
		*hi &= plen == 64 ? ~(uint64_t)0 : ~(~(uint64_t)0 >> plen);
		*lo = 0;
	} else if (plen < 128) {
		*lo &= ~(~(uint64_t)0 >> (plen - 64));
	}
}

/* an address as a key: IPv4 bits counted from hi's top, as IPv6's are */
static void key_of(const struct addr *a, uint64_t *hi, uint64_t *lo)
{
	uint32_t w[4];
	int i;

	for (i = 0; i < 4; i++)
		w[i] = ntohl(a->a[i]);
	if (a->family == AF_INET) {
		*hi = (uint64_t)w[0] << 32;
		*lo = 0;
	} else {
		*hi = (uint64_t)w[0] << 32 | w[1];
		*lo = (uint64_t)w[2] << 32 | w[3];
	}
}

static int compare(const void *pa, const void *pb)
{
	const struct prefix *a = pa, *b = pb;

	if (a->fam != b->fam)   return a->fam < b->fam ? -1 : 1;
	if (a->plen != b->plen) return a->plen < b->plen ? -1 : 1;
	if (a->hi != b->hi)     return a->hi < b->hi ? -1 : 1;
	if (a->lo != b->lo)     return a->lo < b->lo ? -1 : 1;
	return 0;
}

int lct_prefixes_has(const struct prefixes *p, const struct addr *a)
{
	int fam = a->family == AF_INET6, r;
	uint64_t hi0, lo0;

	key_of(a, &hi0, &lo0);
	for (r = 0; r < p->nruns[fam]; r++) {
		const struct run *run = &p->runs[fam][r];
		uint64_t hi = hi0, lo = lo0;
		uint32_t low = run->start, high = run->start + run->count;

		mask_key(&hi, &lo, run->plen);
		while (low < high) {
			uint32_t mid = low + (high - low) / 2;
			const struct prefix *e = &p->entries[mid];
			if (e->hi == hi && e->lo == lo)
				return 1;
			if (e->hi < hi || (e->hi == hi && e->lo < lo))
				low = mid + 1;
			else
				high = mid;
		}
	}
	return 0;
}

uint32_t lct_prefixes_count(const struct prefixes *p)
{
	return p->n;
}

/* The set's first prefix, as an address and its length. */
void lct_prefixes_first(const struct prefixes *p, struct addr *a)
{
	const struct prefix *e = &p->entries[0];

	memset(a, 0, sizeof(*a));
	a->family = e->fam ? AF_INET6 : AF_INET;
	a->plen = e->plen;
	a->a[0] = htonl((uint32_t)(e->hi >> 32));
	a->a[1] = htonl((uint32_t)e->hi);
	a->a[2] = htonl((uint32_t)(e->lo >> 32));
	a->a[3] = htonl((uint32_t)e->lo);
}

/* The one family every prefix of the set has, or 0 when it has both. */
int lct_prefixes_family(const struct prefixes *p)
{
	if (p->nruns[0] && p->nruns[1])
		return 0;
	return p->nruns[1] ? AF_INET6 : AF_INET;
}

/* The text at idx without a leading "!": pushed, and *negate says whether
 * there was one. */
static void push_unnegated(lua_State *L, int idx, const char *key, int *negate)
{
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected an address string, got %s", key, luaL_typename(L, idx));
	s = lct_check_cstring(L, idx, key);
	*negate = s[0] == '!';
	lua_pushstring(L, s + *negate);
}

/* One address or prefix, or a list of them, at idx into a new set pushed
 * on the stack (a userdata: the collector frees it, an error leaks
 * nothing). *negate: the addresses were written "!a" (all of them, or
 * none: NULL refuses it). */
struct prefixes *lct_prefixes_check(lua_State *L, int idx, const char *key, int *negate)
{
	lua_Integer n = 1, i;
	struct prefixes *p;
	struct addr a;
	uint32_t k, out;
	int neg = 0, fam;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TTABLE)
		n = lct_check_list(L, idx, key);
	else if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected an address string or a list of them, got %s", key,
		           luaL_typename(L, idx));
	if ((uint64_t)n > 0xffffff)
		luaL_error(L, "bad argument '%s': too many addresses", key);
	p = lua_newuserdatauv(L, sizeof(*p) + (size_t)n * sizeof(struct prefix), 0);
	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, LCT_PREFIXES);
	for (i = 1; i <= n; i++) {
		int this_neg;
		struct prefix *e = &p->entries[i - 1];
		if (lua_type(L, idx) == LUA_TTABLE)
			lua_rawgeti(L, idx, i);
		else
			lua_pushvalue(L, idx);
		push_unnegated(L, -1, key, &this_neg);
		if (negate == NULL && this_neg)
			luaL_error(L, "bad argument '%s': no \"!\" here", key);
		if (i > 1 && this_neg != neg)
			luaL_error(L, "bad argument '%s': either every address of a list is negated, or none", key);
		neg = this_neg;
		lct_check_addr(L, -1, key, &a, 1);
		lua_pop(L, 2);
		e->fam = a.family == AF_INET6;
		e->plen = a.plen;
		key_of(&a, &e->hi, &e->lo);
		mask_key(&e->hi, &e->lo, a.plen);
	}
	qsort(p->entries, (size_t)n, sizeof(struct prefix), compare);
	/* without duplicates, in runs of one family and one length */
	for (k = 0, out = 0; k < (uint32_t)n; k++) {
		const struct prefix *e = &p->entries[k];
		struct run *last;
		if (out > 0 && compare(e, &p->entries[out - 1]) == 0)
			continue;
		p->entries[out] = *e;
		fam = e->fam;
		last = p->nruns[fam] ? &p->runs[fam][p->nruns[fam] - 1] : NULL;
		if (last == NULL || last->plen != e->plen) {
			last = &p->runs[fam][p->nruns[fam]++];
			last->plen = e->plen;
			last->start = out;
			last->count = 0;
		}
		last->count++;
		out++;
	}
	p->n = out;
	if (negate)
		*negate = neg;
	return p;
}

/* The set at idx: a set conntrack.prefixes made, or one built now (pushed). */
static const struct prefixes *to_prefixes(lua_State *L, int idx, const char *key)
{
	const struct prefixes *p = luaL_testudata(L, idx, LCT_PREFIXES);

	return p != NULL ? p : lct_prefixes_check(L, idx, key, NULL);
}

/* conntrack.in_prefix(address, prefix_or_list, ...) -> boolean: the address
 * is in one of them. A nil address (a flow without that field) is in none. */
static int in_prefix(lua_State *L)
{
	int i, top = lua_gettop(L);
	struct addr a;

	if (top < 2)
		return luaL_error(L, "bad argument 'prefix': expected a prefix or a list of them, got no value");
	if (lua_isnil(L, 1)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lct_check_addr(L, 1, "address", &a, 0);
	for (i = 2; i <= top; i++) {
		if (lct_prefixes_has(to_prefixes(L, i, "prefix"), &a)) {
			lua_pushboolean(L, 1);
			return 1;
		}
		lua_settop(L, top);
	}
	lua_pushboolean(L, 0);
	return 1;
}

/* conntrack.prefixes(list) -> a set built once, for in_prefix in a
 * predicate that runs for every flow. */
static int new_prefixes(lua_State *L)
{
	lct_prefixes_check(L, 1, "prefixes", NULL);
	return 1;
}

static int prefixes_tostring(lua_State *L)
{
	const struct prefixes *p = luaL_checkudata(L, 1, LCT_PREFIXES);

	lua_pushfstring(L, "conntrack.prefixes (%d)", (int)p->n);
	return 1;
}

static int prefixes_len(lua_State *L)
{
	const struct prefixes *p = luaL_checkudata(L, 1, LCT_PREFIXES);

	lua_pushinteger(L, (lua_Integer)p->n);
	return 1;
}

void lct_prefixes_open(lua_State *L, int module)
{
	module = lua_absindex(L, module);
	luaL_newmetatable(L, LCT_PREFIXES);
	lua_pushcfunction(L, prefixes_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, prefixes_len);
	lua_setfield(L, -2, "__len");
	lct_protect_metatable(L, LCT_PREFIXES);
	lua_pop(L, 1);
	lua_pushcfunction(L, in_prefix);
	lua_setfield(L, module, "in_prefix");
	lua_pushcfunction(L, new_prefixes);
	lua_setfield(L, module, "prefixes");
}
