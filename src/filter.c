/*
 * filter.c: a filter table compiled once, before any I/O, into a C struct
 * kept in a userdata (its sets and alternatives are userdatas it anchors, so
 * an error half-way leaks nothing). A term is one field against one value,
 * a list of them (any of which matches) or their negation ("!"); `addr`
 * tests the four addresses at once; `any` holds alternative filters, one of
 * which must match. The part the kernel filters exactly (family, one
 * mark/mask, status/mask) goes into the dump request; every flow the kernel
 * returns is matched again in C against all terms, so a kernel surprise can
 * never widen a result.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

#define LCT_FILTER_DEPTH 16        /* `any` inside `any`: how deep */

/* The filter's userdata has one user value: the table of what it anchors. */
static void anchor(lua_State *L, int filter_idx, struct filter *f)
{
	lua_getiuservalue(L, filter_idx, 1);
	lua_insert(L, -2);
	lua_rawseti(L, -2, ++f->anchors);
	lua_pop(L, 1);
}

static uint64_t max_of(const struct field *fd)
{
	switch (fd->kind) {
	case K_U64:    return UINT64_MAX;
	case K_U32:    return 0xffffffff;
	case K_U8: case K_PROTO: return 255;
	case K_FAMILY: return AF_INET6;
	default:       return 65535;
	}
}

/* The string at idx without its leading "!" (*negate), pushed: after a "!"
 * a number's text is pushed as that number (decimal or 0x hex). */
static void push_unnegated(lua_State *L, int idx, const char *key, int *negate)
{
	const char *s = lct_check_cstring(L, idx, key), *end;
	uint64_t v;

	*negate = s[0] == '!';
	s += *negate;
	if (!*negate || !isdigit((unsigned char)s[0])) {   /* "80" stays a string: integers are numbers */
		lua_pushstring(L, s);
		return;
	}
	errno = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit((unsigned char)s[2]))
		v = strtoull(s + 2, (char **)&end, 16);
	else
		v = strtoull(s, (char **)&end, 10);
	if (*end != '\0' || errno == ERANGE)
		luaL_error(L, "bad argument '%s': expected an integer, got \"%s\"", key, s);
	lct_push_uint(L, v);
}

/* One integer (a name for family and proto) at idx, "!" allowed before it;
 * for the 32-bit fields { value, mask } too. */
static void parse_one_number(lua_State *L, int idx, const char *key, const struct field *fd,
                             struct value_mask *vm, int *negate)
{
	int table = lua_type(L, idx) == LUA_TTABLE, top = lua_gettop(L);

	idx = lua_absindex(L, idx);
	*negate = 0;
	vm->mask = ~(uint64_t)0;
	if (table) {
		size_t len = lua_rawlen(L, idx);
		if (fd->kind != K_U32 || len < 1 || len > 2)
			luaL_error(L, "bad argument '%s': expected { value, mask }", key);
		lua_rawgeti(L, idx, 1);
		idx = lua_gettop(L);
		if (len == 2) {
			lua_rawgeti(L, idx - 1, 2);
			vm->mask = lct_check_uint(L, -1, key, 0xffffffff);
			lua_pop(L, 1);
		}
	}
	if (lua_type(L, idx) == LUA_TSTRING) {
		push_unnegated(L, idx, key, negate);
		idx = lua_gettop(L);
	}
	if (fd->kind == K_FAMILY)
		vm->value = (uint64_t)lct_check_family(L, idx, key);
	else if (fd->kind == K_PROTO)
		vm->value = (uint64_t)lct_check_proto(L, idx, key);
	else
		vm->value = lct_check_uint(L, idx, key, max_of(fd));
	vm->value &= vm->mask;
	lua_settop(L, top);
}

static int compare_values(const void *pa, const void *pb)
{
	const struct value_mask *a = pa, *b = pb;

	if (a->mask != b->mask)   /* the exact ones first */
		return a->mask == ~(uint64_t)0 ? -1 : b->mask == ~(uint64_t)0 ? 1 : 0;
	return a->value < b->value ? -1 : a->value > b->value;
}

/* { value, mask } at idx of a 32-bit field: two items, the second a number. */
static int is_value_mask(lua_State *L, int idx, const struct field *fd)
{
	int number;

	if (fd->kind != K_U32 || lua_rawlen(L, idx) != 2)
		return 0;
	lua_rawgeti(L, idx, 2);
	number = lua_type(L, -1) == LUA_TNUMBER;
	lua_pop(L, 1);
	return number;
}

/* Every item of a list written "!x", or none. */
static void same_negation(lua_State *L, const char *key, lua_Integer i, int first, int this)
{
	if (i > 1 && first != this)
		luaL_error(L, "bad argument '%s': either every item of a list is negated, or none", key);
}

/* An integer field: one value, or a list of them (a values userdata). */
static void parse_numbers(lua_State *L, int fidx, struct filter *f, const char *key, const struct field *fd,
                          struct term *t)
{
	struct value_mask vm;
	struct values *vs;
	lua_Integer n, i;
	int neg;

	if (lua_type(L, -1) != LUA_TTABLE || is_value_mask(L, lua_gettop(L), fd)) {
		parse_one_number(L, -1, key, fd, &vm, &t->negate);
		t->value = vm.value;
		t->mask = vm.mask;
		return;
	}
	n = lct_check_list(L, lua_gettop(L), key);
	vs = lua_newuserdatauv(L, sizeof(*vs) + (size_t)n * sizeof(vs->items[0]), 0);
	vs->n = (uint32_t)n;
	vs->nexact = 0;
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -2, i);
		parse_one_number(L, -1, key, fd, &vs->items[i - 1], &neg);
		same_negation(L, key, i, t->negate, neg);
		t->negate = neg;
		vs->nexact += vs->items[i - 1].mask == ~(uint64_t)0;
		lua_pop(L, 1);
	}
	qsort(vs->items, (size_t)n, sizeof(vs->items[0]), compare_values);
	t->values = vs;
	anchor(L, fidx, f);
}

/* One state name (value at idx, "!" allowed) into the term's bits. */
static void add_state(lua_State *L, int idx, const char *key, struct term *t, int *negate)
{
	const char *name;
	int i, found = 0;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected a state name, got %s", key, luaL_typename(L, idx));
	name = lct_check_cstring(L, idx, key);
	*negate = name[0] == '!';
	name += *negate;
	for (i = 0; i < 3; i++) {
		int n = msg_state_number(lct_state_protos[i], name);
		t->states[i] = n;
		if (n >= 0 && n < 32)
			t->state_bits[i] |= 1u << n;
		found |= n >= 0;
	}
	if (!found)
		luaL_error(L, "bad argument '%s': unknown state \"%s\"", key, name);
}

static void parse_states(lua_State *L, const char *key, struct term *t)
{
	lua_Integer n, i;
	int neg;

	if (lua_type(L, -1) != LUA_TTABLE) {
		add_state(L, -1, key, t, &t->negate);
		return;
	}
	n = lct_check_list(L, lua_gettop(L), key);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		add_state(L, -1, key, t, &neg);
		same_negation(L, key, i, t->negate, neg);
		t->negate = neg;
		lua_pop(L, 1);
	}
	if (n > 1)
		t->states[0] = t->states[1] = t->states[2] = -1;
}

static void parse_addresses(lua_State *L, int fidx, struct filter *f, const char *key, struct term *t)
{
	const struct prefixes *p = lct_prefixes_check(L, -1, key, &t->negate);

	t->prefixes = p;
	if (lct_prefixes_count(p) == 1)
		lct_prefixes_first(p, &t->addr);
	anchor(L, fidx, f);
}

/* The value at the top of the stack, for field id, into term t. */
static void parse_term(lua_State *L, int fidx, struct filter *f, const char *key, int id, struct term *t)
{
	const struct field *fd = id == FIELD_ADDR ? NULL : &lct_fields[id];
	struct nfct_bitmask *labels;
	uint32_t v, m;
	int i;

	memset(t, 0, sizeof(*t));
	t->field = id;
	t->mask = ~(uint64_t)0;
	t->states[0] = t->states[1] = t->states[2] = -1;
	if (fd == NULL || fd->kind == K_ADDR) {
		parse_addresses(L, fidx, f, key, t);
		t->single = !t->negate && t->addr.family != 0;
		return;
	}
	switch (fd->kind) {
	case K_STATE:
		parse_states(L, key, t);
		break;
	case K_STATUS:
		lct_check_status(L, -1, key, &v, &m);
		t->value = v;
		t->mask = m;
		break;
	case K_LABELS:
		/* the 128 label bits are kept in addr.a: a flow must carry them all */
		labels = lct_check_labels(L, -1, key);
		for (i = 0; i < 128; i++)
			if (nfct_bitmask_test_bit(labels, i))
				t->addr.a[i / 32] |= 1u << (i % 32);
		nfct_bitmask_destroy(labels);
		break;
	case K_STRING: {
		size_t len;
		const char *s;
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad argument '%s': expected a string, got %s", key, luaL_typename(L, -1));
		s = lct_check_cstring(L, -1, key);
		t->negate = s[0] == '!';
		s += t->negate;
		len = strlen(s);
		if (len >= sizeof(t->str))
			luaL_error(L, "bad argument '%s': longer than %d bytes", key, (int)sizeof(t->str) - 1);
		memcpy(t->str, s, len + 1);
		break;
	}
	case K_NAT:
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			luaL_error(L, "bad argument '%s': expected a boolean, got %s", key, luaL_typename(L, -1));
		t->value = (uint64_t)lua_toboolean(L, -1);
		break;
	default:
		parse_numbers(L, fidx, f, key, fd, t);
		break;
	}
	t->single = !t->negate && t->values == NULL;
}

/* Addresses pin the family: a filter asking for an IPv6 source in "ipv4"
 * could only ever match nothing, so it is refused as the mistake it is.
 * Then what the kernel may filter: the family, one mark, the status. */
static void settle(lua_State *L, struct filter *f, int nested)
{
	int i;

	for (i = 0; i < f->nterms; i++) {
		const struct term *t = &f->terms[i];
		if (t->field == FIELD_FAMILY && t->single)
			f->family = (uint8_t)t->value;
	}
	for (i = 0; i < f->nterms; i++) {
		const struct term *t = &f->terms[i];
		int family;
		if (t->prefixes == NULL || t->negate || (family = lct_prefixes_family(t->prefixes)) == 0)
			continue;
		if (f->family && f->family != family)
			luaL_error(L, "bad argument '%s': an %s address does not fit family \"%s\"",
			           t->field == FIELD_ADDR ? "addr" : lct_fields[t->field].name,
			           family == AF_INET ? "IPv4" : "IPv6", f->family == AF_INET ? "ipv4" : "ipv6");
		f->family = (uint8_t)family;
	}
	for (i = 0; i < f->nterms && !nested; i++) {
		const struct term *t = &f->terms[i];
		if (t->field == FIELD_MARK && t->single) {
			f->has_mark = 1;
			f->mark = (uint32_t)t->value;
			f->mark_mask = (uint32_t)t->mask;
		} else if (t->field == FIELD_STATUS) {
			f->has_status = 1;
			f->status = (uint32_t)t->value;
			f->status_mask = (uint32_t)t->mask;
		}
	}
	if (nested)
		f->family = 0;
}

static const struct filter *parse_filter(lua_State *L, int idx, int depth);

/* any = { filter, ... } at the top of the stack: the alternatives. */
static void parse_any(lua_State *L, int fidx, struct filter *f, int depth)
{
	lua_Integer n, i;
	const struct filter **any;

	if (lua_type(L, -1) != LUA_TTABLE)
		luaL_error(L, "bad argument 'any': expected a list of filters, got %s", luaL_typename(L, -1));
	if (depth >= LCT_FILTER_DEPTH)
		luaL_error(L, "bad argument 'any': nested more than %d deep", LCT_FILTER_DEPTH);
	n = lct_check_list(L, lua_gettop(L), "any");
	any = lua_newuserdatauv(L, (size_t)n * sizeof(*any), 0);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -2, i);
		if (lua_type(L, -1) != LUA_TTABLE)
			luaL_error(L, "bad argument 'any': item " LCT_I " is a %s, not a filter table", LCT_IARG(i),
			           luaL_typename(L, -1));
		any[i - 1] = parse_filter(L, -1, depth + 1);
		anchor(L, fidx, f);
		lua_pop(L, 1);
	}
	f->any = any;
	f->nany = (int)n;
	anchor(L, fidx, f);
}

/* A filter table at idx, compiled into a userdata pushed on the stack. */
static const struct filter *parse_filter(lua_State *L, int idx, int depth)
{
	struct filter *f;
	int n = 0, fidx;

	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 8, "filter");
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lct_key_is(L, -1, "where") && !lct_key_is(L, -1, "any"))
			n++;
	}
	f = lua_newuserdatauv(L, sizeof(*f) + (size_t)n * sizeof(struct term), 1);
	memset(f, 0, sizeof(*f));
	f->terms = (struct term *)(f + 1);
	fidx = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, fidx, 1);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lct_key_is(L, -2, "where")) {
			if (depth > 0)
				luaL_error(L, "bad argument 'where': only the outermost filter takes a predicate");
			if (lua_type(L, -1) != LUA_TFUNCTION)
				luaL_error(L, "bad argument 'where': expected a function, got %s", luaL_typename(L, -1));
			f->has_where = 1;
		} else if (lct_key_is(L, -2, "any")) {
			parse_any(L, fidx, f, depth);
		} else {
			int id = lct_key_is(L, -2, "addr") ? FIELD_ADDR : lct_field_check_key(L, -2);
			if (f->nterms == n)   /* the table changed under the count (a hostile __index cannot: raw) */
				luaL_error(L, "bad argument 'filter': the table changed while it was read");
			parse_term(L, fidx, f, lua_tostring(L, -2), id, &f->terms[f->nterms++]);
		}
		lua_pop(L, 1);
	}
	settle(L, f, depth > 0);
	return f;
}

/* idx: nil, a function (the predicate alone) or a table of fields, `addr`,
 * `any` and an optional `where` function. Pushes the compiled filter (a
 * userdata the caller keeps while it uses the filter). Unknown keys are
 * errors: a typo must never widen a result. */
const struct filter *lct_filter_parse(lua_State *L, int idx)
{
	struct filter *f;

	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNONE: case LUA_TNIL: case LUA_TFUNCTION:
		f = lua_newuserdatauv(L, sizeof(*f), 0);
		memset(f, 0, sizeof(*f));
		f->has_where = lua_type(L, idx) == LUA_TFUNCTION;
		return f;
	case LUA_TTABLE:
		return parse_filter(L, idx, 0);
	default:
		luaL_error(L, "bad argument 'filter': expected a table or a function, got %s", luaL_typename(L, idx));
		return NULL;
	}
}

/* Pushes the filter's predicate (or nil): the function itself or its `where`. */
void lct_filter_push_where(lua_State *L, int idx)
{
	if (lua_type(L, idx) == LUA_TFUNCTION)
		lua_pushvalue(L, idx);
	else if (lua_type(L, idx) == LUA_TTABLE)
		lua_getfield(L, idx, "where");
	else
		lua_pushnil(L);
}

int lct_filter_is_empty(const struct filter *f)
{
	return f->nterms == 0 && f->nany == 0;
}

/* What the kernel filters exactly; the family travels in the nfgenmsg header. */
void lct_filter_to_request(const struct filter *f, struct nlmsghdr *nlh)
{
	if (f->has_mark) {
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(f->mark));
		mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(f->mark_mask));
	}
	if (f->has_status) {
		mnl_attr_put_u32(nlh, CTA_STATUS, htonl(f->status));
		mnl_attr_put_u32(nlh, CTA_STATUS_MASK, htonl(f->status_mask));
	}
}
