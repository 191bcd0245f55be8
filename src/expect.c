/*
 * expect.c: the expectation userdata and its vocabulary. An expectation is
 * what a helper (ftp, sip, tftp...) tells the kernel to await: a flow that
 * matches a tuple under a mask, related to a master flow. Its tuples are
 * the library's nf_conntrack objects, read and written with the flows'
 * fields (fields.c); its other parts are its own. Filters of expectations
 * (field values, address prefixes, a predicate) are matched here in C.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include "lct.h"

/* Which part of an expectation a field reads: a tuple, or a value of its own. */
enum xpart { X_EXPECTED, X_MASK, X_MASTER, X_NAT, X_OWN };
enum xkind { XK_TUPLE, XK_U8, XK_U16, XK_U32, XK_STRING, XK_FLAGS, XK_ID };

struct xfield {
	const char *name;
	uint8_t part, kind;
	int field;                 /* for a tuple: the flow field of its original direction */
	int attr;                  /* otherwise: ATTR_EXP_* */
	unsigned int caps;         /* CAP_CREATE, CAP_LOOKUP */
};

#define T(name, part, field, caps) { name, part, XK_TUPLE, field, 0, caps }
#define O(name, kind, attr, caps) { name, X_OWN, kind, 0, attr, caps }
#define CL (CAP_CREATE | CAP_LOOKUP)
static const struct xfield xfields[] = {
	T("family", X_EXPECTED, FIELD_FAMILY, CL),        T("proto", X_EXPECTED, FIELD_PROTO, CL),
	T("src", X_EXPECTED, FIELD_ORIG_SRC, CL),         T("dst", X_EXPECTED, FIELD_ORIG_DST, CL),
	T("sport", X_EXPECTED, FIELD_ORIG_SPORT, CL),     T("dport", X_EXPECTED, FIELD_ORIG_DPORT, CL),
	T("icmp_type", X_EXPECTED, FIELD_ICMP_TYPE, CL),  T("icmp_code", X_EXPECTED, FIELD_ICMP_CODE, CL),
	T("icmp_id", X_EXPECTED, FIELD_ICMP_ID, CL),
	T("mask_src", X_MASK, FIELD_ORIG_SRC, CAP_CREATE),   T("mask_dst", X_MASK, FIELD_ORIG_DST, CAP_CREATE),
	T("mask_sport", X_MASK, FIELD_ORIG_SPORT, CAP_CREATE), T("mask_dport", X_MASK, FIELD_ORIG_DPORT, CAP_CREATE),
	T("master_src", X_MASTER, FIELD_ORIG_SRC, CAP_CREATE),   T("master_dst", X_MASTER, FIELD_ORIG_DST, CAP_CREATE),
	T("master_sport", X_MASTER, FIELD_ORIG_SPORT, CAP_CREATE), T("master_dport", X_MASTER, FIELD_ORIG_DPORT, CAP_CREATE),
	T("nat_src", X_NAT, FIELD_ORIG_SRC, CAP_CREATE),   T("nat_dst", X_NAT, FIELD_ORIG_DST, CAP_CREATE),
	T("nat_sport", X_NAT, FIELD_ORIG_SPORT, CAP_CREATE), T("nat_dport", X_NAT, FIELD_ORIG_DPORT, CAP_CREATE),
	O("nat_dir", XK_U8, ATTR_EXP_NAT_DIR, CAP_CREATE),
	O("timeout", XK_U32, ATTR_EXP_TIMEOUT, CAP_CREATE),
	O("zone", XK_U16, ATTR_EXP_ZONE, CL),
	O("flags", XK_FLAGS, ATTR_EXP_FLAGS, CAP_CREATE),
	O("class", XK_U32, ATTR_EXP_CLASS, CAP_CREATE),
	O("helper", XK_STRING, ATTR_EXP_HELPER_NAME, CAP_CREATE),
	O("fn", XK_STRING, ATTR_EXP_FN, 0),
	O("id", XK_ID, 0, 0),
	{ NULL, 0, 0, 0, 0, 0 }
};
#undef T
#undef O
#undef CL

static const char *const flag_names[] = { "PERMANENT", "INACTIVE", "USERSPACE", NULL };

static int xfield_lookup(lua_State *L, int key_idx)
{
	const char *name;
	int i;

	if (lua_type(L, key_idx) != LUA_TSTRING)
		return -1;
	name = lua_tostring(L, key_idx);
	for (i = 0; xfields[i].name; i++)
		if (strcmp(xfields[i].name, name) == 0)
			return i;
	return -1;
}

static int xfield_check_key(lua_State *L, int key_idx)
{
	int i = xfield_lookup(L, key_idx);

	if (i < 0)
		luaL_error(L, "bad argument '%s': not a field of an expectation", lct_key_name(L, key_idx));
	return i;
}

/* ---- the object ---- */

struct expect *lct_expect_new(lua_State *L)
{
	struct expect *x = lua_newuserdatauv(L, sizeof(*x), 0);

	x->exp = NULL;
	x->id = 0;
	x->has_id = 0;
	x->type = NFCT_T_UNKNOWN;
	luaL_setmetatable(L, LCT_EXPECT);
	if ((x->exp = nfexp_new()) == NULL)
		luaL_error(L, "not enough memory");
	return x;
}

struct expect *lct_to_expect(lua_State *L, int idx)
{
	return luaL_testudata(L, idx, LCT_EXPECT);
}

struct expect *lct_check_expect(lua_State *L, int idx)
{
	return luaL_checkudata(L, idx, LCT_EXPECT);
}

/* Pushes an expectation parsed from a message (checked first),
 * of event type type (NFCT_T_UNKNOWN outside events); the message's id,
 * which the library does not keep, is kept beside it. */
struct expect *lct_expect_push(lua_State *L, const struct nlmsghdr *nlh, uint8_t type)
{
	struct expect *x = lct_expect_new(L);

	if (lct_expect_parse(nlh, x) < 0)
		luaL_error(L, "cannot parse expectation");
	x->type = type;
	return x;
}

/* The same into an existing one, without Lua (a reply's callback): 0, or -1. */
int lct_expect_parse(const struct nlmsghdr *nlh, struct expect *x)
{
	const struct nlattr *tb[CTA_EXPECT_MAX + 1];
	size_t head = MNL_ALIGN(sizeof(struct nfgenmsg));

	if (msg_check_expect(nlh) < 0 || nfexp_nlmsg_parse(nlh, x->exp) < 0)
		return -1;
	msg_attrs_of((const char *)mnl_nlmsg_get_payload(nlh) + head, (int)(mnl_nlmsg_get_payload_len(nlh) - head),
	             tb, CTA_EXPECT_MAX);
	if (tb[CTA_EXPECT_ID] != NULL) {
		x->id = msg_be32(tb[CTA_EXPECT_ID]);
		x->has_id = 1;
	}
	return 0;
}

static const struct nf_conntrack *tuple_of(const struct nf_expect *exp, int part)
{
	static const int attrs[] = { ATTR_EXP_EXPECTED, ATTR_EXP_MASK, ATTR_EXP_MASTER, ATTR_EXP_NAT_TUPLE };

	if (!nfexp_attr_is_set(exp, attrs[part]))
		return NULL;
	return nfexp_get_attr(exp, attrs[part]);
}

/* A field's numeric value (not for addresses and strings): 1, or 0 if unset. */
static int read_u64(const struct expect *x, const struct xfield *f, uint64_t *v)
{
	const struct nf_conntrack *t;

	switch (f->kind) {
	case XK_TUPLE:
		return (t = tuple_of(x->exp, f->part)) != NULL && lct_field_read_u64(t, f->field, v);
	case XK_ID:
		*v = x->id;
		return x->has_id;
	case XK_STRING:
		return 0;
	default:
		break;
	}
	if (!nfexp_attr_is_set(x->exp, f->attr)) {
		/* the kernel sends no zone for zone 0, and no flags when there are none */
		*v = 0;
		return f->kind == XK_U16 || f->kind == XK_FLAGS;
	}
	switch (f->kind) {
	case XK_U8:  *v = nfexp_get_attr_u8(x->exp, f->attr); break;
	case XK_U16: *v = nfexp_get_attr_u16(x->exp, f->attr); break;
	default:     *v = nfexp_get_attr_u32(x->exp, f->attr); break;
	}
	return 1;
}

static void push_field(lua_State *L, const struct expect *x, const struct xfield *f)
{
	const struct nf_conntrack *t;
	uint64_t v;
	int i;

	switch (f->kind) {
	case XK_TUPLE:
		if ((t = tuple_of(x->exp, f->part)) == NULL)
			break;
		lct_field_push(L, t, f->field);
		return;
	case XK_STRING:
		if (!nfexp_attr_is_set(x->exp, f->attr))
			break;
		lua_pushstring(L, nfexp_get_attr(x->exp, f->attr));
		return;
	case XK_FLAGS:
		read_u64(x, f, &v);
		lua_newtable(L);
		for (i = 0; flag_names[i]; i++)
			if (v & (1u << i)) {
				lua_pushboolean(L, 1);
				lua_setfield(L, -2, flag_names[i]);
			}
		return;
	default:
		if (!read_u64(x, f, &v))
			break;
		lct_push_uint(L, v);
		return;
	}
	lua_pushnil(L);
}

static int expect_index(lua_State *L)
{
	struct expect *x = lct_check_expect(L, 1);
	int i = xfield_lookup(L, 2);

	if (i >= 0) {
		push_field(L, x, &xfields[i]);
		return 1;
	}
	/* methods */
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "methods");
	lua_pushvalue(L, 2);
	lua_rawget(L, -2);
	if (lua_isnil(L, -1))
		return luaL_error(L, "bad argument '%s': not a field of an expectation", lct_key_name(L, 2));
	return 1;
}

static int expect_newindex(lua_State *L)
{
	return luaL_error(L, "bad argument '%s': an expectation is read-only", lct_key_name(L, 2));
}

static int expect_gc(lua_State *L)
{
	struct expect *x = lct_check_expect(L, 1);

	if (x->exp != NULL)
		nfexp_destroy(x->exp);
	x->exp = NULL;
	return 0;
}

/* The line conntrack prints for it in fmt (its -o), with the event's
 * "[NEW]" tag as conntrack -E expect prints it. */
void lct_expect_push_line(lua_State *L, const struct expect *x, const struct format *fmt)
{
	char buf[2048];
	int n = nfexp_snprintf(buf, sizeof(buf), x->exp, x->type, fmt->type, fmt->flags);

	if (n < 0)
		luaL_error(L, "cannot format expectation");
	lua_pushlstring(L, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static int expect_tostring(lua_State *L)
{
	struct format fmt = { .type = NFCT_O_DEFAULT };

	lct_expect_push_line(L, lct_check_expect(L, 1), &fmt);
	return 1;
}

static int expect_format(lua_State *L)
{
	struct expect *x = lct_check_expect(L, 1);
	struct format fmt;

	lct_check_format(L, 2, &fmt);
	if (fmt.json)
		return luaL_error(L, "bad argument 'format': json is not available for expectations");
	lct_expect_push_line(L, x, &fmt);
	return 1;
}

/* exp:totable() -> { field = value, ... } */
static int expect_totable(lua_State *L)
{
	struct expect *x = lct_check_expect(L, 1);
	int i;

	lua_newtable(L);
	for (i = 0; xfields[i].name; i++) {
		push_field(L, x, &xfields[i]);
		lua_setfield(L, -2, xfields[i].name);
	}
	return 1;
}

/* ---- filters ---- */

static void check_flags(lua_State *L, int idx, const char *key, uint32_t *v)
{
	int i;

	*v = 0;
	if (lua_type(L, idx) == LUA_TSTRING) {
		for (i = 0; flag_names[i] && !lct_key_is(L, idx, flag_names[i]); i++)
			;
		if (flag_names[i] == NULL)
			luaL_error(L, "bad argument '%s': unknown flag \"%s\" (PERMANENT, INACTIVE, USERSPACE)", key,
			           lct_key_name(L, idx));
		*v = 1u << i;
		return;
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "bad argument '%s': expected a flag name or a table of them, got %s", key,
		           luaL_typename(L, idx));
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		uint32_t one;
		if (lua_type(L, -2) == LUA_TNUMBER) {
			check_flags(L, -1, key, &one);
		} else {
			check_flags(L, -2, key, &one);
			if (!lua_toboolean(L, -1))
				one = 0;
		}
		*v |= one;
		lua_pop(L, 1);
	}
}

/* { field = value, ..., where = fn }: addresses may be prefixes; flags
 * must all be set. The predicate is left to the caller (user value). */
void lct_xfilter_parse(lua_State *L, int idx, struct xfilter *f)
{
	memset(f, 0, sizeof(*f));
	if (lua_isnoneornil(L, idx))
		return;
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		struct xterm *t;
		const struct xfield *xf;
		const char *key;
		uint32_t flags;

		if (f->nterms == LCT_MAX_XTERMS)
			luaL_error(L, "bad argument 'filter': more than %d fields", LCT_MAX_XTERMS);
		if (lct_key_is(L, -2, "where")) {
			if (!lua_isfunction(L, -1))
				luaL_error(L, "bad argument 'where': expected a function, got %s", luaL_typename(L, -1));
			f->has_where = 1;
			lua_pop(L, 1);
			continue;
		}
		t = &f->terms[f->nterms];
		t->field = xfield_check_key(L, -2);
		xf = &xfields[t->field];
		key = lua_tostring(L, -2);
		if (xf->kind == XK_TUPLE) {
			const struct field *ff = &lct_fields[xf->field];
			if (ff->kind == K_ADDR)
				lct_check_addr(L, -1, key, &t->addr, 1);
			else if (ff->kind == K_FAMILY)
				t->value = (uint64_t)lct_check_family(L, -1, key);
			else if (ff->kind == K_PROTO)
				t->value = (uint64_t)lct_check_proto(L, -1, key);
			else
				t->value = lct_check_uint(L, -1, key, ff->kind == K_U8 ? 255 : 65535);
			if (xf->part == X_EXPECTED && ff->kind == K_FAMILY)
				f->family = (uint8_t)t->value;
		} else if (xf->kind == XK_STRING) {
			const char *s = lct_check_cstring(L, -1, key);
			if (strlen(s) >= sizeof(t->str))
				luaL_error(L, "bad argument '%s': longer than any %s", key, key);
			strcpy(t->str, s);
		} else if (xf->kind == XK_FLAGS) {
			check_flags(L, -1, key, &flags);
			t->value = flags;
		} else {
			t->value = lct_check_uint(L, -1, key, xf->kind == XK_U8 ? 255 : xf->kind == XK_U16 ? 65535 : 0xffffffff);
		}
		f->nterms++;
		lua_pop(L, 1);
	}
}

static int prefix_match(const struct addr *want, const struct addr *have)
{
	int bits = want->plen, i;

	if (want->family != have->family)
		return 0;
	for (i = 0; bits > 0; i++, bits -= 32) {
		uint32_t mask = bits >= 32 ? 0xffffffffu : 0xffffffffu << (32 - bits);
		if ((ntohl(want->a[i]) ^ ntohl(have->a[i])) & mask)
			return 0;
	}
	return 1;
}

int lct_xfilter_match(const struct xfilter *f, const struct expect *x)
{
	int i;

	for (i = 0; i < f->nterms; i++) {
		const struct xterm *t = &f->terms[i];
		const struct xfield *xf = &xfields[t->field];
		uint64_t v;
		struct addr a;

		if (xf->kind == XK_TUPLE && lct_fields[xf->field].kind == K_ADDR) {
			const struct nf_conntrack *tu = tuple_of(x->exp, xf->part);
			if (tu == NULL || !lct_field_read_addr(tu, xf->field, &a) || !prefix_match(&t->addr, &a))
				return 0;
		} else if (xf->kind == XK_STRING) {
			if (!nfexp_attr_is_set(x->exp, xf->attr) || strcmp(nfexp_get_attr(x->exp, xf->attr), t->str) != 0)
				return 0;
		} else if (xf->kind == XK_FLAGS) {
			read_u64(x, xf, &v);
			if ((v & t->value) != t->value)
				return 0;
		} else if (!read_u64(x, xf, &v) || v != t->value) {
			return 0;
		}
	}
	return 1;
}

/* ---- building one from fields, for create and lookups ---- */

static struct nf_conntrack *new_tuple(lua_State *L, struct nf_conntrack **slot)
{
	if (*slot == NULL && (*slot = nfct_new()) == NULL)
		luaL_error(L, "not enough memory");
	return *slot;
}

struct tuples { struct nf_conntrack *t[4]; };   /* by enum xpart; freed by the caller */

static int tuples_gc(lua_State *L)
{
	struct tuples *ts = lua_touserdata(L, 1);
	int i;

	for (i = 0; i < 4; i++)
		if (ts->t[i] != NULL) {
			nfct_destroy(ts->t[i]);
			ts->t[i] = NULL;
		}
	return 0;
}

static int family_of(const struct nf_conntrack *ct)
{
	if (nfct_attr_is_set(ct, ATTR_ORIG_IPV4_SRC) || nfct_attr_is_set(ct, ATTR_ORIG_IPV4_DST)) return AF_INET;
	if (nfct_attr_is_set(ct, ATTR_ORIG_IPV6_SRC) || nfct_attr_is_set(ct, ATTR_ORIG_IPV6_DST)) return AF_INET6;
	return 0;
}

static void need(lua_State *L, const struct nf_conntrack *ct, int attr, const char *op, const char *key)
{
	if (ct == NULL || !nfct_attr_is_set(ct, attr))
		luaL_error(L, "bad argument '%s': %s needs it", key, op);
}

/* Fields at idx into x->exp, checked whole. For a lookup (get, delete)
 * the expected tuple is the key: the kernel finds the expectation that a
 * flow of that tuple would match. For create the master flow's tuple, the
 * expected tuple, its mask (all ones where not given) and a timeout. */
void lct_expect_build(lua_State *L, int idx, struct expect *x, int create)
{
	const char *op = create ? "create" : "lookup";
	struct tuples *ts;
	int family = 0, proto = -1, top = lua_gettop(L), i, p;

	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	ts = lua_newuserdatauv(L, sizeof(*ts), 0);
	memset(ts, 0, sizeof(*ts));
	lua_newtable(L);
	lua_pushcfunction(L, tuples_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int id = xfield_check_key(L, -2);
		const struct xfield *f = &xfields[id];
		const char *key = lua_tostring(L, -2);
		uint32_t flags;

		if (!(f->caps & (create ? CAP_CREATE : CAP_LOOKUP)))
			luaL_error(L, "bad argument '%s': %s does not take it", key, create ? "create" : "a lookup");
		if (f->kind == XK_TUPLE && lct_fields[f->field].kind == K_FAMILY)
			family = lct_check_family(L, -1, key);
		else if (f->kind == XK_TUPLE && lct_fields[f->field].kind == K_PROTO)
			proto = lct_check_proto(L, -1, key);
		else if (f->kind == XK_TUPLE)
			lct_field_set(L, -1, key, new_tuple(L, &ts->t[f->part]), f->field);
		else if (f->kind == XK_STRING)
			nfexp_set_attr(x->exp, f->attr, lct_check_cstring(L, -1, key));
		else if (f->kind == XK_FLAGS) {
			check_flags(L, -1, key, &flags);
			nfexp_set_attr_u32(x->exp, f->attr, flags);
		} else if (f->kind == XK_U8)
			nfexp_set_attr_u8(x->exp, f->attr, (uint8_t)lct_check_uint(L, -1, key, 1));
		else if (f->kind == XK_U16)
			nfexp_set_attr_u16(x->exp, f->attr, (uint16_t)lct_check_uint(L, -1, key, 65535));
		else
			nfexp_set_attr_u32(x->exp, f->attr, (uint32_t)lct_check_uint(L, -1, key, 0xffffffff));
		lua_pop(L, 1);
	}
	if (proto < 0)
		luaL_error(L, "bad argument 'proto': %s needs it", op);
	new_tuple(L, &ts->t[X_EXPECTED]);
	/* the family of every tuple: given, or that of the addresses, which must agree */
	for (p = X_EXPECTED; p <= X_NAT; p++) {
		static const char *const part_names[] = { "src", "mask_src", "master_src", "nat_src" };
		int f = ts->t[p] ? family_of(ts->t[p]) : 0;
		if (f && family && f != family)
			luaL_error(L, "bad argument '%s': an %s address does not fit the %s expectation", part_names[p],
			           f == AF_INET ? "IPv4" : "IPv6", family == AF_INET ? "IPv4" : "IPv6");
		if (f)
			family = f;
	}
	if (family == 0)
		luaL_error(L, "bad argument 'src': %s needs it", op);
	need(L, ts->t[X_EXPECTED], family == AF_INET ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC, op, "src");
	need(L, ts->t[X_EXPECTED], family == AF_INET ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST, op, "dst");
	if (create) {
		struct nf_conntrack *m = new_tuple(L, &ts->t[X_MASK]);
		static const uint32_t ones[4] = { 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu };
		need(L, ts->t[X_MASTER], family == AF_INET ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC, op, "master_src");
		need(L, ts->t[X_MASTER], family == AF_INET ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST, op, "master_dst");
		if (!nfexp_attr_is_set(x->exp, ATTR_EXP_TIMEOUT))
			luaL_error(L, "bad argument 'timeout': create needs it");
		if (!nfct_attr_is_set(m, family == AF_INET ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC))
			nfct_set_attr(m, family == AF_INET ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC, ones);
		if (!nfct_attr_is_set(m, family == AF_INET ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST))
			nfct_set_attr(m, family == AF_INET ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST, ones);
	}
	for (p = X_EXPECTED; p <= X_NAT; p++) {
		static const char *const sport_names[] = { "sport", "mask_sport", "master_sport", "nat_sport" };
		static const char *const dport_names[] = { "dport", "mask_dport", "master_dport", "nat_dport" };
		struct nf_conntrack *t = ts->t[p];
		if (t == NULL)
			continue;
		nfct_set_attr_u8(t, ATTR_ORIG_L3PROTO, (uint8_t)family);
		nfct_set_attr_u8(t, ATTR_ORIG_L4PROTO, (uint8_t)proto);
		if (msg_proto_has_ports((uint8_t)proto)) {
			/* a mask's port left out is all ones; the others' are needed */
			for (i = 0; i < 2; i++) {
				int attr = i == 0 ? ATTR_ORIG_PORT_SRC : ATTR_ORIG_PORT_DST;
				if (nfct_attr_is_set(t, attr))
					continue;
				if (p == X_MASK)
					nfct_set_attr_u16(t, attr, 0xffff);
				else if (p != X_EXPECTED || create)
					need(L, t, attr, op, i == 0 ? sport_names[p] : dport_names[p]);
			}
		}
	}
	if (create && ts->t[X_NAT] != NULL && !nfexp_attr_is_set(x->exp, ATTR_EXP_NAT_DIR))
		luaL_error(L, "bad argument 'nat_dir': a NAT tuple needs it");
	nfexp_set_attr(x->exp, ATTR_EXP_EXPECTED, ts->t[X_EXPECTED]);
	if (ts->t[X_MASK])
		nfexp_set_attr(x->exp, ATTR_EXP_MASK, ts->t[X_MASK]);
	if (ts->t[X_MASTER])
		nfexp_set_attr(x->exp, ATTR_EXP_MASTER, ts->t[X_MASTER]);
	if (ts->t[X_NAT])
		nfexp_set_attr(x->exp, ATTR_EXP_NAT_TUPLE, ts->t[X_NAT]);
	lua_settop(L, top);
}

/* The family of an expectation's expected tuple. */
uint8_t lct_expect_family(const struct expect *x)
{
	const struct nf_conntrack *t = tuple_of(x->exp, X_EXPECTED);

	return t != NULL && nfct_attr_is_set(t, ATTR_ORIG_L3PROTO) ? nfct_get_attr_u8(t, ATTR_ORIG_L3PROTO) : 0;
}

/* conntrack.parse_expect(message) -> expectation | nil, message: one
 * ctnetlink message of the expectation table, as recorded from the kernel
 * (checked whole before the library reads it) */
static int parse_expect(lua_State *L)
{
	size_t len;
	const char *bytes = luaL_checklstring(L, 1, &len);
	struct nlmsghdr *nlh;
	struct expect *x;
	int type;

	if (len < MNL_NLMSG_HDRLEN + sizeof(struct nfgenmsg) || len > LCT_RECV_SIZE) {
		lua_pushnil(L);
		lua_pushliteral(L, "parse_expect: not an expectation message (bad length)");
		return 2;
	}
	/* an aligned copy, in memory an error cannot leak */
	nlh = lua_newuserdatauv(L, len, 0);
	memcpy(nlh, bytes, len);
	type = NFNL_MSG_TYPE(nlh->nlmsg_type);
	if (nlh->nlmsg_len != len || !mnl_nlmsg_ok(nlh, (int)len) ||
	    NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK_EXP ||
	    (type != IPCTNL_MSG_EXP_NEW && type != IPCTNL_MSG_EXP_DELETE)) {
		lua_pushnil(L);
		lua_pushliteral(L, "parse_expect: not an expectation message");
		return 2;
	}
	x = lct_expect_new(L);
	if (lct_expect_parse(nlh, x) < 0) {
		lua_pushnil(L);
		lua_pushliteral(L, "parse_expect: malformed attributes");
		return 2;
	}
	return 1;
}

/* conntrack.expect_fields: the names an expectation has */
static void push_names(lua_State *L)
{
	int i;

	lua_newtable(L);
	for (i = 0; xfields[i].name; i++) {
		lua_pushstring(L, xfields[i].name);
		lua_rawseti(L, -2, i + 1);
	}
}

void lct_expect_open(lua_State *L, int module)
{
	static const luaL_Reg meta[] = {
		{ "__gc", expect_gc }, { "__index", expect_index }, { "__newindex", expect_newindex },
		{ "__tostring", expect_tostring }, { NULL, NULL }
	};
	static const luaL_Reg methods[] = {
		{ "format", expect_format }, { "totable", expect_totable }, { NULL, NULL }
	};

	module = lua_absindex(L, module);
	luaL_newmetatable(L, LCT_EXPECT);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "methods");
	lct_protect_metatable(L, LCT_EXPECT);
	lua_pop(L, 1);
	push_names(L);
	lua_setfield(L, module, "expect_fields");
	lua_pushcfunction(L, parse_expect);
	lua_setfield(L, module, "parse_expect");
}
