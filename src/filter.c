/*
 * filter.c: a filter table compiled into a C struct once, before any I/O.
 * The part the kernel filters exactly (family, mark/mask, status/mask) goes
 * into the dump request; every flow the kernel returns is matched again in C
 * against all terms, so a kernel surprise can never widen a result.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

static const uint8_t state_protos[3] = { IPPROTO_TCP, IPPROTO_SCTP, IPPROTO_DCCP };

/* A number, or { value, mask } for the 32-bit fields (mark = { 0x10, 0xf0 }). */
static void parse_number(lua_State *L, const char *key, const struct field *fd, struct term *t)
{
	uint64_t max = fd->kind == K_U64 ? UINT64_MAX
	                : fd->kind == K_U32 ? 0xffffffff
	                : fd->kind == K_U8  ? 255 : 65535;

	if (fd->kind == K_U32 && lua_type(L, -1) == LUA_TTABLE) {
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		t->value = lct_check_uint(L, -2, key, max);
		t->mask = lct_check_uint(L, -1, key, max);
		lua_pop(L, 2);
		if (lua_rawlen(L, -1) != 2)
			luaL_error(L, "bad argument '%s': expected { value, mask }", key);
		t->value &= t->mask;
		return;
	}
	t->value = lct_check_uint(L, -1, key, max);
	t->mask = ~(uint64_t)0;
}

static void parse_state(lua_State *L, const char *key, struct term *t)
{
	const char *name;
	int i, found = 0;

	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected a state name, got %s", key, luaL_typename(L, -1));
	name = lct_check_cstring(L, -1, key);
	for (i = 0; i < 3; i++) {
		t->states[i] = msg_state_number(state_protos[i], name);
		found |= t->states[i] >= 0;
	}
	if (!found)
		luaL_error(L, "bad argument '%s': unknown state \"%s\"", key, name);
}

/* The value at the top of the stack, for field id, into term t. */
static void parse_term(lua_State *L, const char *key, int id, struct term *t, struct filter *f)
{
	const struct field *fd = &lct_fields[id];
	struct nfct_bitmask *labels;
	uint32_t v, m;
	int i;

	memset(t, 0, sizeof(*t));
	t->field = id;
	t->mask = ~(uint64_t)0;
	switch (fd->kind) {
	case K_FAMILY:
		t->value = (uint64_t)lct_check_family(L, -1, key);
		f->family = (uint8_t)t->value;
		break;
	case K_PROTO:
		t->value = (uint64_t)lct_check_proto(L, -1, key);
		break;
	case K_ADDR:
		lct_check_addr(L, -1, key, &t->addr, 1);
		break;
	case K_STATE:
		parse_state(L, key, t);
		break;
	case K_STATUS:
		lct_check_status(L, -1, key, &v, &m);
		t->value = v;
		t->mask = m;
		f->has_status = 1;
		f->status = v;
		f->status_mask = m;
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
		parse_number(L, key, fd, t);
		if (id == FIELD_MARK) {
			f->has_mark = 1;
			f->mark = (uint32_t)t->value;
			f->mark_mask = (uint32_t)t->mask;
		}
		break;
	}
}

/* Addresses pin the family: a filter asking for an IPv6 source in "ipv4"
 * could only ever match nothing, so it is refused as the mistake it is. */
static void check_families(lua_State *L, struct filter *f)
{
	int i;

	for (i = 0; i < f->nterms; i++) {
		const struct term *t = &f->terms[i];
		if (lct_fields[t->field].kind != K_ADDR)
			continue;
		if (f->family && f->family != t->addr.family)
			luaL_error(L, "bad argument '%s': an %s address does not fit family \"%s\"",
			           lct_fields[t->field].name, t->addr.family == AF_INET ? "IPv4" : "IPv6",
			           f->family == AF_INET ? "ipv4" : "ipv6");
		f->family = t->addr.family;
	}
}

/* idx: nil, a function (the predicate alone) or a table of fields and an
 * optional `where` function. Unknown keys are errors: a typo must never
 * widen a result. */
void lct_filter_parse(lua_State *L, int idx, struct filter *f)
{
	memset(f, 0, sizeof(*f));
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNONE: case LUA_TNIL:
		return;
	case LUA_TFUNCTION:
		f->has_where = 1;
		return;
	case LUA_TTABLE:
		break;
	default:
		luaL_error(L, "bad argument 'filter': expected a table or a function, got %s", luaL_typename(L, idx));
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lct_key_is(L, -2, "where")) {
			if (lua_type(L, -1) != LUA_TFUNCTION)
				luaL_error(L, "bad argument 'where': expected a function, got %s", luaL_typename(L, -1));
			f->has_where = 1;
		} else {
			int id = lct_field_check_key(L, -2);
			if (f->nterms == LCT_MAX_TERMS)
				luaL_error(L, "bad argument 'filter': too many fields");
			parse_term(L, lua_tostring(L, -2), id, &f->terms[f->nterms++], f);
		}
		lua_pop(L, 1);
	}
	check_families(L, f);
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

static int match_addr(const struct addr *want, const struct addr *have)
{
	int bits = want->plen, i;

	if (want->family != have->family)
		return 0;
	for (i = 0; bits > 0; i++, bits -= 32) {
		uint32_t mask = bits >= 32 ? 0xffffffffu : htonl(~(0xffffffffu >> bits));
		if ((want->a[i] ^ have->a[i]) & mask)
			return 0;
	}
	return 1;
}

static int match_term(const struct term *t, const struct nf_conntrack *ct)
{
	const struct field *fd = &lct_fields[t->field];
	struct addr a;
	uint64_t v;
	int i;

	switch (fd->kind) {
	case K_ADDR:
		return lct_field_read_addr(ct, t->field, &a) && match_addr(&t->addr, &a);
	case K_STATE:
		if (!lct_field_read_u64(ct, t->field, &v))
			return 0;
		for (i = 0; i < 3; i++)
			if (state_protos[i] == lct_flow_proto(ct))
				return t->states[i] >= 0 && (uint64_t)t->states[i] == v;
		return 0;
	case K_LABELS: {
		const struct nfct_bitmask *b = nfct_get_attr(ct, ATTR_CONNLABELS);
		for (i = 0; i < 128; i++)
			if ((t->addr.a[i / 32] >> (i % 32)) & 1)
				if (b == NULL || i > (int)nfct_bitmask_maxbit(b) || !nfct_bitmask_test_bit(b, i))
					return 0;
		return 1;
	}
	case K_STRING:
		return nfct_attr_is_set(ct, fd->attr) && strcmp(nfct_get_attr(ct, fd->attr), t->str) == 0;
	default:
		return lct_field_read_u64(ct, t->field, &v) && (v & t->mask) == t->value;
	}
}

int lct_filter_match(const struct filter *f, const struct nf_conntrack *ct)
{
	int i;

	for (i = 0; i < f->nterms; i++)
		if (!match_term(&f->terms[i], ct))
			return 0;
	return 1;
}

/* Filters of addresses (and the family) alone are matched on the message
 * itself, without parsing it (a delete by prefix, a listing by address). */
int lct_filter_on_message(const struct filter *f)
{
	int i;

	for (i = 0; i < f->nterms; i++) {
		if (!(lct_fields[f->terms[i].field].caps & CAP_MESSAGE))
			return 0;
	}
	return 1;
}

/* An address field of a validated message, read as the parsed flow would
 * give it (lct_field_read_addr): the family is the message's if it has an
 * original tuple; an IPv6 attribute overwrites an IPv4 one in the library's
 * union. */
static int message_addr(const struct nlattr *const *tb, uint8_t family, const struct field *fd, struct addr *a)
{
	const struct nlattr *tuple = tb[fd->attr == ATTR_ORIG_IPV4_SRC || fd->attr == ATTR_ORIG_IPV4_DST ?
	                                CTA_TUPLE_ORIG : CTA_TUPLE_REPLY];
	int src = fd->attr == ATTR_ORIG_IPV4_SRC || fd->attr == ATTR_REPL_IPV4_SRC;
	const struct nlattr *t[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *v4, *v6;

	if (tb[CTA_TUPLE_ORIG] == NULL || tuple == NULL)
		return 0;
	msg_attrs_of(MSG_PAYLOAD(tuple), MSG_PAYLOAD_LEN(tuple), t, CTA_TUPLE_MAX);
	if (t[CTA_TUPLE_IP] == NULL)
		return 0;
	msg_attrs_of(MSG_PAYLOAD(t[CTA_TUPLE_IP]), MSG_PAYLOAD_LEN(t[CTA_TUPLE_IP]), ip, CTA_IP_MAX);
	v4 = ip[src ? CTA_IP_V4_SRC : CTA_IP_V4_DST];
	v6 = ip[src ? CTA_IP_V6_SRC : CTA_IP_V6_DST];
	if ((family == AF_INET ? v4 : v6) == NULL)
		return 0;
	memset(a, 0, sizeof(*a));
	a->family = family;
	a->plen = family == AF_INET ? 32 : 128;
	memcpy(a->a, MSG_PAYLOAD(v6 ? v6 : v4), family == AF_INET ? 4 : 16);
	return 1;
}

/* lct_filter_match for a filter lct_filter_on_message accepts, on a message
 * checked by msg_check. */
int lct_filter_match_message(const struct filter *f, const struct nlmsghdr *nlh)
{
	const struct nlattr *tb[CTA_TUPLE_REPLY + 1];
	size_t head = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	uint8_t family = ((const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh))->nfgen_family;
	struct addr a;
	int i;

	msg_attrs_of((const char *)nlh + head, (int)(nlh->nlmsg_len - head), tb, CTA_TUPLE_REPLY);
	for (i = 0; i < f->nterms; i++) {
		const struct term *t = &f->terms[i];
		const struct field *fd = &lct_fields[t->field];
		if (fd->kind == K_FAMILY) {
			if (tb[CTA_TUPLE_ORIG] == NULL || family != t->value)
				return 0;
		} else if (!message_addr(tb, family, fd, &a) || !match_addr(&t->addr, &a)) {
			return 0;
		}
	}
	return 1;
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
