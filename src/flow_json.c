/*
 * flow_json.c: a parsed flow as one JSON object, the object json.c writes
 * from the message: each field of flow:totable() in the order of the field
 * table, status as the list of its flags, labels as the list of their bits.
 * For the flows json.c declines, events, and flow:format("json").
 */
#include <string.h>
#include <netinet/in.h>

#include "lct.h"

/* A string, escaped in pieces (it may be as long as a security context). */
static void add_string(luaL_Buffer *b, const char *s)
{
	char piece[6 * 128 + 2];
	size_t len = strlen(s), n;

	luaL_addchar(b, '"');
	while (len > 0) {
		n = len < 128 ? len : 128;
		/* without the quotes msg_json_string puts around each piece */
		luaL_addlstring(b, piece + 1, (size_t)(msg_json_string(piece, s, n) - piece) - 2);
		s += n;
		len -= n;
	}
	luaL_addchar(b, '"');
}

static void add_labels(luaL_Buffer *b, const struct nf_conntrack *ct)
{
	const struct nfct_bitmask *bits = nfct_get_attr(ct, ATTR_CONNLABELS);
	char num[LCT_UINT_TEXT];
	int i, max, first = 1;

	luaL_addchar(b, '[');
	max = bits ? (int)nfct_bitmask_maxbit(bits) : -1;
	for (i = 0; i <= max; i++)
		if (nfct_bitmask_test_bit(bits, i)) {
			if (!first)
				luaL_addchar(b, ',');
			luaL_addlstring(b, num, (size_t)(msg_json_uint(num, (uint64_t)i) - num));
			first = 0;
		}
	luaL_addchar(b, ']');
}

/* The flow has the field: flow:totable() gives it a value. */
static int present(const struct nf_conntrack *ct, int field)
{
	struct addr a;
	uint64_t v;

	switch (lct_fields[field].kind) {
	case K_ADDR:
		return lct_field_read_addr(ct, field, &a);
	case K_LABELS: case K_STRING:
		return nfct_attr_is_set(ct, lct_fields[field].attr);
	default:
		return lct_field_read_u64(ct, field, &v);
	}
}

/* The value of a field the flow has (present). */
static void add_value(luaL_Buffer *b, const struct nf_conntrack *ct, int field)
{
	const struct field *f = &lct_fields[field];
	char text[512], *p = text;
	const char *name = NULL;
	struct addr a;
	uint64_t v = 0;

	switch (f->kind) {
	case K_ADDR:
		lct_field_read_addr(ct, field, &a);
		msg_addr_text(text, a.family, a.a);
		name = text;
		break;
	case K_LABELS:
		add_labels(b, ct);
		return;
	case K_STRING:
		add_string(b, nfct_get_attr(ct, f->attr));
		return;
	default:
		lct_field_read_u64(ct, field, &v);
		switch (f->kind) {
		case K_FAMILY:
			name = v == AF_INET ? "ipv4" : v == AF_INET6 ? "ipv6" : NULL;
			break;
		case K_PROTO:
			name = msg_proto_name((uint8_t)v);
			break;
		case K_STATE:
			name = msg_state_name(lct_flow_proto(ct), (unsigned)v);
			break;
		case K_STATUS:
			p = msg_json_status(p, (uint32_t)v);
			break;
		case K_NAT:
			name = "";   /* not a string: true or false */
			memcpy(p, v ? "true" : "false", v ? 4 : 5);
			p += v ? 4 : 5;
			break;
		default:
			break;
		}
		if (p == text && name == NULL)
			p = msg_json_uint(p, v);
		break;
	}
	if (name && p == text)
		add_string(b, name);
	else
		luaL_addlstring(b, text, (size_t)(p - text));
}

void lct_push_json(lua_State *L, const struct nf_conntrack *ct)
{
	luaL_Buffer b;
	int i, members = 0;

	luaL_buffinit(L, &b);
	luaL_addchar(&b, '{');
	for (i = 0; i < lct_nfields; i++) {
		char key[40];
		if (!present(ct, i))
			continue;
		luaL_addlstring(&b, key, (size_t)(msg_json_key(key, lct_fields[i].name, &members) - key));
		add_value(&b, ct, i);
	}
	luaL_addchar(&b, '}');
	luaL_pushresult(&b);
}
