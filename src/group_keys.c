/*
 * group_keys.c: the keys ct:aggregate groups flows by: field names, an
 * address cut to a prefix ("orig_src/24", "orig_src/24/64"), a key
 * function's value. A key is a row of fixed slots, one a part, compared as
 * bytes: read from a parsed flow, from a message's view (the same bytes),
 * or from the key function's value, and pushed back as the field reads.
 */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* ---- the keys of opts.by ---- */

static size_t part_size(int field)
{
	if (field < 0)
		return 2 + LCT_KEY_FN_BYTES;                 /* presence and type, length, bytes */
	switch (lct_fields[field].kind) {
	case K_ADDR:   return 2 + 16;                /* family, prefix length, address */
	case K_STATE:  return 2 + 8;                 /* presence, protocol, state */
	case K_STRING: return 1 + 32;
	default:       return 1 + 8;
	}
}

/* "orig_src", "orig_src/24" (both families), "orig_src/24/64" (IPv4, IPv6) */
static void check_key_name(lua_State *L, int idx, struct key_part *p)
{
	const char *s = lct_check_cstring(L, idx, "by"), *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	char *end;
	unsigned long n4 = 32, n6 = 128;

	lua_pushlstring(L, s, len);
	p->field = lct_field_lookup(L, -1);
	lua_pop(L, 1);
	if (p->field < 0)
		luaL_error(L, "bad argument 'by': unknown field '%s'", s);
	if (lct_fields[p->field].kind == K_LABELS || p->field == FIELD_SECCTX)
		luaL_error(L, "bad argument 'by': flows are not grouped by '%s'", lct_fields[p->field].name);
	if (slash) {
		if (lct_fields[p->field].kind != K_ADDR)
			luaL_error(L, "bad argument 'by': a prefix length is for addresses, not '%s'", s);
		n4 = n6 = strtoul(slash + 1, &end, 10);
		if (*end == '/')
			n6 = strtoul(end + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || n4 > 128 || n6 > 128 || (end[-1] == '/'))
			luaL_error(L, "bad argument 'by': invalid prefix length in '%s'", s);
	}
	p->plen4 = (uint8_t)(n4 > 32 ? 32 : n4);
	p->plen6 = (uint8_t)n6;
}

static void add_part(lua_State *L, struct keys *s, int idx)
{
	struct key_part *p = &s->parts[s->nparts];

	if (s->nparts == LCT_MAX_KEYS)
		luaL_error(L, "bad argument 'by': at most %d keys", LCT_MAX_KEYS);
	if (lua_type(L, idx) == LUA_TFUNCTION) {
		p->field = -1;
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		check_key_name(L, idx, p);
	} else {
		luaL_error(L, "bad argument 'by': expected field names or a function, got %s", luaL_typename(L, idx));
	}
	p->off = s->len;
	p->size = part_size(p->field);
	s->len += p->size;
	s->nparts++;
}

/* opts.by (at idx): a key or a list of keys, into s. Pushes the key function or nil. */
void lct_keys_check(lua_State *L, int idx, struct keys *s)
{
	int i, fn = 0;

	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	if (lua_type(L, idx) != LUA_TTABLE) {
		add_part(L, s, idx);
		if (lua_type(L, idx) == LUA_TFUNCTION) {
			lua_pushvalue(L, idx);
			lua_replace(L, -2);
		}
		return;
	}
	for (i = 1; lua_rawgeti(L, idx, i) != LUA_TNIL; i++) {
		add_part(L, s, -1);
		if (lua_type(L, -1) != LUA_TFUNCTION) {
			lua_pop(L, 1);
		} else if (fn++) {
			luaL_error(L, "bad argument 'by': one key function at most");
		} else {
			lua_replace(L, -2);
		}
	}
	lua_pop(L, 1);
	if (s->nparts == 0)
		luaL_error(L, "bad argument 'by': no key");
}

/* ---- the key of a flow ---- */

static void mask_addr(uint8_t *a, unsigned int bits, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < len; i++) {
		if (bits >= 8)
			bits -= 8;
		else {
			a[i] &= (uint8_t)(0xff00 >> bits);
			bits = 0;
		}
	}
}

/* big-endian: equal sums list their groups in the order of their keys */
static void put_u64(unsigned char *slot, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		slot[i] = (uint8_t)v;
}

/* The key function's value (at the top of the stack) into its slot: 1, or
 * 0 for what cannot be a key. */
int lct_key_from_value(lua_State *L, unsigned char *slot)
{
	size_t len;
	const char *s;
	lua_Number n;

	switch (lua_type(L, -1)) {
	case LUA_TNIL:
		return 1;
	case LUA_TBOOLEAN:
		slot[0] = 'b';
		slot[1] = (unsigned char)lua_toboolean(L, -1);
		return 1;
	case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
		if (lua_isinteger(L, -1)) {
			lua_Integer i = lua_tointeger(L, -1);
			slot[0] = 'i';
			memcpy(slot + 2, &i, sizeof(i));
			return 1;
		}
#endif
		n = lua_tonumber(L, -1);
		slot[0] = 'n';
		memcpy(slot + 2, &n, sizeof(n));
		return 1;
	case LUA_TSTRING:
		s = lua_tolstring(L, -1, &len);
		if (len > LCT_KEY_FN_BYTES)
			return 0;
		slot[0] = 's';
		slot[1] = (unsigned char)len;
		memcpy(slot + 2, s, len);
		return 1;
	default:
		return 0;
	}
}

/* The slot of part p of the parsed flow ct's key. */
void lct_key_from_flow(const struct key_part *p, const struct nf_conntrack *ct, unsigned char *slot)
{
	const struct field *f = &lct_fields[p->field];
	struct addr a;
	uint64_t v;

	switch (f->kind) {
	case K_ADDR:
		if (!lct_field_read_addr(ct, p->field, &a))
			return;
		slot[0] = a.family;
		slot[1] = a.family == AF_INET ? p->plen4 : p->plen6;
		memcpy(slot + 2, a.a, a.family == AF_INET ? 4 : 16);
		mask_addr(slot + 2, slot[1], a.family == AF_INET ? 4 : 16);
		return;
	case K_STRING:
		if (nfct_attr_is_set(ct, f->attr)) {
			slot[0] = 1;
			strncpy((char *)slot + 1, nfct_get_attr(ct, f->attr), 31);
		}
		return;
	default:
		if (!lct_field_read_u64(ct, p->field, &v))
			return;
		slot[0] = 1;
		if (f->kind == K_STATE)
			slot[1] = lct_flow_proto(ct);
		put_u64(slot + (f->kind == K_STATE ? 2 : 1), v);
	}
}

/* The same key read from a message's view (view.c), for the flows no Lua
 * code needs to see: what field_key reads from the parsed flow. */
void lct_key_from_view(const struct key_part *p, const struct msg_view *v, unsigned char *slot)
{
	const struct nlattr *const *tb = v->tb, *attr = NULL;
	uint64_t x;
	int nat;

	switch (p->field) {
	case FIELD_ORIG_SRC: case FIELD_ORIG_DST: case FIELD_REPLY_SRC: case FIELD_REPLY_DST: {
		const struct msg_tuple *t = p->field <= FIELD_ORIG_DST ? &v->orig : &v->reply;
		unsigned int len = v->family == AF_INET ? 4 : 16;
		attr = p->field == FIELD_ORIG_SRC || p->field == FIELD_REPLY_SRC ? t->src : t->dst;
		if (attr == NULL)
			return;
		slot[0] = v->family;
		slot[1] = v->family == AF_INET ? p->plen4 : p->plen6;
		memcpy(slot + 2, MSG_PAYLOAD(attr), len);
		mask_addr(slot + 2, slot[1], len);
		return;
	}
	case FIELD_STATE:
		if (v->state == NULL)
			return;
		slot[0] = 1;
		slot[1] = v->proto;
		put_u64(slot + 2, MSG_PAYLOAD(v->state)[0]);
		return;
	case FIELD_FAMILY:      x = v->family; break;
	case FIELD_PROTO:       x = v->proto; break;
	case FIELD_ZONE:        x = tb[CTA_ZONE] ? msg_be16(tb[CTA_ZONE]) : 0; break;
	case FIELD_ORIG_ZONE:   x = v->orig.zone ? msg_be16(v->orig.zone) : 0; break;
	case FIELD_REPLY_ZONE:  x = v->reply.zone ? msg_be16(v->reply.zone) : 0; break;
	case FIELD_SNAT: case FIELD_DNAT:
		if ((nat = msg_view_nat(v, p->field == FIELD_DNAT)) < 0)
			return;
		x = (uint64_t)nat;
		break;
	default:
		switch (p->field) {
		case FIELD_ORIG_SPORT:    attr = v->orig.sport; break;
		case FIELD_ORIG_DPORT:    attr = v->orig.dport; break;
		case FIELD_REPLY_SPORT:   attr = v->reply.sport; break;
		case FIELD_REPLY_DPORT:   attr = v->reply.dport; break;
		case FIELD_ICMP_TYPE:     attr = v->orig.icmp[0]; break;
		case FIELD_ICMP_CODE:     attr = v->orig.icmp[1]; break;
		case FIELD_ICMP_ID:       attr = v->orig.icmp[2]; break;
		case FIELD_ORIG_VTAG:     attr = v->vtag[0]; break;
		case FIELD_REPLY_VTAG:    attr = v->vtag[1]; break;
		case FIELD_STATUS:        attr = tb[CTA_STATUS]; break;
		case FIELD_TIMEOUT:       attr = tb[CTA_TIMEOUT]; break;
		case FIELD_MARK:          attr = tb[CTA_MARK]; break;
		case FIELD_SECMARK:       attr = tb[CTA_SECMARK]; break;
		case FIELD_USE:           attr = tb[CTA_USE]; break;
		case FIELD_ID:            attr = tb[CTA_ID]; break;
		case FIELD_ORIG_PACKETS:  attr = v->counters[0][0]; break;
		case FIELD_ORIG_BYTES:    attr = v->counters[0][1]; break;
		case FIELD_REPLY_PACKETS: attr = v->counters[1][0]; break;
		case FIELD_REPLY_BYTES:   attr = v->counters[1][1]; break;
		case FIELD_START:         attr = v->start; break;
		case FIELD_STOP:          attr = v->stop; break;
		default:                  return;   /* the helper: a view has none */
		}
		if (attr == NULL)
			return;
		switch (MSG_PAYLOAD_LEN(attr)) {
		case 1:  x = MSG_PAYLOAD(attr)[0]; break;
		case 2:  x = msg_be16(attr); break;
		case 4:  x = msg_be32(attr); break;
		default: x = msg_be64(attr); break;
		}
	}
	slot[0] = 1;
	put_u64(slot + 1, x);
}

/* The parts of a view (view.c) the keys read. */
unsigned int lct_keys_view_parts(const struct keys *k)
{
	unsigned int parts = 0;
	int i;

	for (i = 0; i < k->nparts; i++) {
		switch (k->parts[i].field) {
		case FIELD_FAMILY: case FIELD_PROTO: case FIELD_ORIG_SRC: case FIELD_ORIG_DST: case FIELD_ORIG_ZONE:
		case FIELD_STATUS: case FIELD_TIMEOUT: case FIELD_MARK: case FIELD_SECMARK: case FIELD_USE:
		case FIELD_ID: case FIELD_ZONE: case FIELD_ORIG_PACKETS: case FIELD_ORIG_BYTES:
		case FIELD_REPLY_PACKETS: case FIELD_REPLY_BYTES:
			break;
		case FIELD_STATE: case FIELD_ORIG_VTAG: case FIELD_REPLY_VTAG:
			parts |= VIEW_PROTOINFO;
			break;
		case FIELD_START: case FIELD_STOP:
			parts |= VIEW_TIMESTAMP;
			break;
		default:                  /* the reply's fields, ports and ICMP's (their unions), NAT */
			parts |= VIEW_REPLY;
		}
	}
	return parts;
}

/* ---- back to Lua ---- */

static uint64_t get_u64(const unsigned char *slot)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | slot[i];
	return v;
}

static void push_status(lua_State *L, uint32_t status)
{
	int i;

	lua_newtable(L);
	for (i = 0; msg_status_names[i]; i++)
		if (status & (1u << i)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, msg_status_names[i]);
		}
}

/* Pushes the value of key part p, as a flow's field reads (an address cut
 * to a prefix as "10.1.2.0/24"); 0 (nothing pushed) where the flows had none. */
int lct_key_push(lua_State *L, const struct key_part *p, const unsigned char *slot)
{
	char text[INET6_ADDRSTRLEN + 8], *end;
	const char *name = NULL;
	uint64_t v;

	if (slot[0] == 0)
		return 0;
	if (p->field < 0) {
		lua_Number n;
		switch (slot[0]) {
		case 'b': lua_pushboolean(L, slot[1]); break;
		case 's': lua_pushlstring(L, (const char *)slot + 2, slot[1]); break;
#if LUA_VERSION_NUM >= 503
		case 'i': {
			lua_Integer i;
			memcpy(&i, slot + 2, sizeof(i));
			lua_pushinteger(L, i);
			break;
		}
#endif
		default:
			memcpy(&n, slot + 2, sizeof(n));
			lua_pushnumber(L, n);
		}
		return 1;
	}
	switch (lct_fields[p->field].kind) {
	case K_ADDR:
		end = msg_addr_text(text, slot[0], slot + 2);
		if (slot[1] < (slot[0] == AF_INET ? 32 : 128))
			lua_pushfstring(L, "%s/%d", text, (int)slot[1]);
		else
			lua_pushlstring(L, text, (size_t)(end - text));
		return 1;
	case K_STRING:
		lua_pushstring(L, (const char *)slot + 1);
		return 1;
	case K_STATE:
		v = get_u64(slot + 2);
		name = msg_state_name(slot[1], (unsigned)v);
		break;
	default:
		v = get_u64(slot + 1);
		break;
	}
	switch (lct_fields[p->field].kind) {
	case K_FAMILY: name = v == AF_INET ? "ipv4" : v == AF_INET6 ? "ipv6" : NULL; break;
	case K_PROTO:  name = msg_proto_name((uint8_t)v); break;
	case K_STATUS: push_status(L, (uint32_t)v); return 1;
	case K_NAT:    lua_pushboolean(L, v != 0); return 1;
	default: break;
	}
	if (name)
		lua_pushstring(L, name);
	else
		lct_push_uint(L, v);
	return 1;
}

/* Pushes a field of a message's view as the parsed flow reads it: the key
 * of the whole field, read back. 0 (nothing pushed) for what a view does
 * not hold (labels, the helper, the security context). */
int lct_field_push_view(lua_State *L, const struct msg_view *v, int field)
{
	struct key_part p = { field, 32, 128, 0, 0 };
	unsigned char slot[2 + 32];   /* a field's largest slot */
	char text[INET6_ADDRSTRLEN];

	if (lct_fields[field].kind == K_LABELS || lct_fields[field].kind == K_STRING)
		return 0;
	memset(slot, 0, sizeof(slot));
	lct_key_from_view(&p, v, slot);
	if (slot[0] == 0)
		lua_pushnil(L);
	else if (lct_fields[field].kind == K_ADDR)
		lua_pushlstring(L, text, (size_t)(msg_addr_text(text, slot[0], slot + 2) - text));
	else if (lct_fields[field].kind == K_STATE)
		lct_field_push_number(L, field, get_u64(slot + 2), slot[1]);
	else
		lct_field_push_number(L, field, get_u64(slot + 1), 0);
	return 1;
}
