/*
 * fields.c: the one vocabulary of flow fields. A field name means the same in
 * a flow, a filter, create and update; this file maps each name to its
 * libnetfilter_conntrack attribute and converts between Lua values and it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lct.h"

#define CL (CAP_CREATE | CAP_LOOKUP)
#define CU (CAP_CREATE | CAP_UPDATE)
const struct field lct_fields[FIELD_COUNT] = {
	[FIELD_FAMILY]        = { "family",        K_FAMILY, ATTR_L3PROTO, 0, CL | CAP_MESSAGE },
	[FIELD_PROTO]         = { "proto",         K_PROTO,  ATTR_L4PROTO, 0, CL | CAP_SOCKET },
	[FIELD_ORIG_SRC]      = { "orig_src",      K_ADDR,   ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC,
	                          CL | CAP_MESSAGE | CAP_SOCKET },
	[FIELD_ORIG_DST]      = { "orig_dst",      K_ADDR,   ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST,
	                          CL | CAP_MESSAGE | CAP_SOCKET },
	[FIELD_REPLY_SRC]     = { "reply_src",     K_ADDR,   ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, CL | CAP_MESSAGE },
	[FIELD_REPLY_DST]     = { "reply_dst",     K_ADDR,   ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, CL | CAP_MESSAGE },
	[FIELD_ORIG_SPORT]    = { "orig_sport",    K_PORT,   ATTR_ORIG_PORT_SRC, 0, CL },
	[FIELD_ORIG_DPORT]    = { "orig_dport",    K_PORT,   ATTR_ORIG_PORT_DST, 0, CL },
	[FIELD_REPLY_SPORT]   = { "reply_sport",   K_PORT,   ATTR_REPL_PORT_SRC, 0, CL },
	[FIELD_REPLY_DPORT]   = { "reply_dport",   K_PORT,   ATTR_REPL_PORT_DST, 0, CL },
	[FIELD_ICMP_TYPE]     = { "icmp_type",     K_U8,     ATTR_ICMP_TYPE, 0, CL },
	[FIELD_ICMP_CODE]     = { "icmp_code",     K_U8,     ATTR_ICMP_CODE, 0, CL },
	[FIELD_ICMP_ID]       = { "icmp_id",       K_U16BE,  ATTR_ICMP_ID, 0, CL },
	/* CAP_SOCKET, CAP_UPDATE: the TCP state only (the socket filter knows no
	 * other protocol's; the kernel changes SCTP's and DCCP's only with their
	 * tags and roles) */
	[FIELD_STATE]         = { "state",         K_STATE,  0, 0, CU | CAP_SOCKET },
	[FIELD_ORIG_VTAG]     = { "orig_vtag",     K_U32,    ATTR_SCTP_VTAG_ORIG, 0, CL },
	[FIELD_REPLY_VTAG]    = { "reply_vtag",    K_U32,    ATTR_SCTP_VTAG_REPL, 0, CL },
	[FIELD_STATUS]        = { "status",        K_STATUS, ATTR_STATUS, 0, CU },
	[FIELD_TIMEOUT]       = { "timeout",       K_U32,    ATTR_TIMEOUT, 0, CU },
	[FIELD_MARK]          = { "mark",          K_U32,    ATTR_MARK, 0, CU | CAP_MESSAGE },
	[FIELD_SECMARK]       = { "secmark",       K_U32,    ATTR_SECMARK, 0, CAP_CREATE },
	[FIELD_USE]           = { "use",           K_U32,    ATTR_USE, 0, 0 },
	[FIELD_ID]            = { "id",            K_U32,    ATTR_ID, 0, 0 },
	[FIELD_ZONE]          = { "zone",          K_U16,    ATTR_ZONE, 0, CL },
	[FIELD_ORIG_ZONE]     = { "orig_zone",     K_U16,    ATTR_ORIG_ZONE, 0, CL },
	[FIELD_REPLY_ZONE]    = { "reply_zone",    K_U16,    ATTR_REPL_ZONE, 0, CL },
	[FIELD_ORIG_PACKETS]  = { "orig_packets",  K_U64,    ATTR_ORIG_COUNTER_PACKETS, 0, 0 },
	[FIELD_ORIG_BYTES]    = { "orig_bytes",    K_U64,    ATTR_ORIG_COUNTER_BYTES, 0, 0 },
	[FIELD_REPLY_PACKETS] = { "reply_packets", K_U64,    ATTR_REPL_COUNTER_PACKETS, 0, 0 },
	[FIELD_REPLY_BYTES]   = { "reply_bytes",   K_U64,    ATTR_REPL_COUNTER_BYTES, 0, 0 },
	[FIELD_START]         = { "start",         K_U64,    ATTR_TIMESTAMP_START, 0, 0 },
	[FIELD_STOP]          = { "stop",          K_U64,    ATTR_TIMESTAMP_STOP, 0, 0 },
	[FIELD_LABELS]        = { "labels",        K_LABELS, ATTR_CONNLABELS, 0, CU },
	[FIELD_HELPER]        = { "helper",        K_STRING, ATTR_HELPER_NAME, 0, CAP_CREATE },
	[FIELD_SECCTX]        = { "secctx",        K_STRING, ATTR_SECCTX, 0, 0 },
	[FIELD_SNAT]          = { "snat",          K_NAT,    ATTR_REPL_IPV4_DST, ATTR_ORIG_IPV4_SRC, 0 },
	[FIELD_DNAT]          = { "dnat",          K_NAT,    ATTR_REPL_IPV4_SRC, ATTR_ORIG_IPV4_DST, 0 },
};
#undef CL
#undef CU
const int lct_nfields = FIELD_COUNT;

/* The library's attribute of the protocol's state, or -1 if it has none. */
int lct_state_attr(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:  return ATTR_TCP_STATE;
	case IPPROTO_SCTP: return ATTR_SCTP_STATE;
	case IPPROTO_DCCP: return ATTR_DCCP_STATE;
	}
	return -1;
}

uint8_t lct_flow_proto(const struct nf_conntrack *ct)
{
	return nfct_attr_is_set(ct, ATTR_L4PROTO) ? nfct_get_attr_u8(ct, ATTR_L4PROTO) : 0;
}

/* ---- names ---- */

/* The registry's table of field names (and the aliases src, dst, sport,
 * dport) to field ids; and the vocabulary exported to Lua, for lua/ and for
 * scripts: module.fields (the names in order, and by name what create,
 * get and update take), .aliases, .protocols (name <-> number), .states
 * (per protocol, name <-> number) and .status_flags (bit i + 1). */
static const char *const aliases[][2] = {
	{ "src", "orig_src" }, { "dst", "orig_dst" }, { "sport", "orig_sport" }, { "dport", "orig_dport" },
};

static void push_field_table(lua_State *L)
{
	static const struct { const char *name; unsigned int cap; } caps[] = {
		{ "create", CAP_CREATE }, { "lookup", CAP_LOOKUP }, { "update", CAP_UPDATE },
	};
	int i;
	size_t j;

	lua_createtable(L, lct_nfields, lct_nfields);
	for (i = 0; i < lct_nfields; i++) {
		lua_pushstring(L, lct_fields[i].name);
		lua_rawseti(L, -2, i + 1);
		lua_createtable(L, 0, 3);
		for (j = 0; j < sizeof(caps) / sizeof(caps[0]); j++) {
			lua_pushboolean(L, (lct_fields[i].caps & caps[j].cap) != 0);
			lua_setfield(L, -2, caps[j].name);
		}
		lua_setfield(L, -2, lct_fields[i].name);
	}
}

static void push_names(lua_State *L)
{
	int i, n;

	lua_createtable(L, msg_nprotos, msg_nprotos);
	for (i = 0; i < msg_nprotos; i++) {
		lua_pushinteger(L, msg_protos[i].num);
		lua_setfield(L, -2, msg_protos[i].name);
		lua_pushstring(L, msg_protos[i].name);
		lua_rawseti(L, -2, msg_protos[i].num);
	}
	lua_setfield(L, -2, "protocols");
	lua_createtable(L, 0, msg_nstates);
	for (i = 0; i < msg_nstates; i++) {
		lua_newtable(L);
		for (n = 0; msg_states[i].names[n]; n++) {
			lua_pushinteger(L, n);
			lua_setfield(L, -2, msg_states[i].names[n]);
			lua_pushstring(L, msg_states[i].names[n]);
			lua_rawseti(L, -2, n);
		}
		lua_setfield(L, -2, msg_proto_name(msg_states[i].proto));
	}
	lua_setfield(L, -2, "states");
	lua_newtable(L);
	for (n = 0; msg_status_names[n]; n++) {
		lua_pushstring(L, msg_status_names[n]);
		lua_rawseti(L, -2, n + 1);
	}
	lua_setfield(L, -2, "status_flags");
}

static int status_index(lua_State *L);

void lct_fields_open(lua_State *L, int module)
{
	int i;
	size_t j;

	module = lua_absindex(L, module);
	lua_createtable(L, 0, lct_nfields + 4);
	for (i = 0; i < lct_nfields; i++) {
		lua_pushinteger(L, i);
		lua_setfield(L, -2, lct_fields[i].name);
	}
	lua_createtable(L, 0, 4);
	for (j = 0; j < sizeof(aliases) / sizeof(aliases[0]); j++) {
		lua_getfield(L, -2, aliases[j][1]);
		lua_setfield(L, -3, aliases[j][0]);
		lua_pushstring(L, aliases[j][1]);
		lua_setfield(L, -2, aliases[j][0]);
	}
	lua_setfield(L, module, "aliases");
	lua_setfield(L, LUA_REGISTRYINDEX, LCT_FIELDS);
	push_field_table(L);
	lua_setfield(L, module, "fields");
	lua_pushvalue(L, module);
	push_names(L);
	lua_pop(L, 1);
	luaL_newmetatable(L, LCT_STATUS);
	lua_pushcfunction(L, status_index);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}

/* The field id of the string at key_idx, through the registry's name table
 * (which also holds the aliases src, dst, sport, dport); -1 if unknown. */
int lct_field_lookup(lua_State *L, int key_idx)
{
	int id;

	if (lua_type(L, key_idx) != LUA_TSTRING)
		return -1;
	key_idx = lua_absindex(L, key_idx);
	lua_getfield(L, LUA_REGISTRYINDEX, LCT_FIELDS);
	lua_pushvalue(L, key_idx);
	lua_rawget(L, -2);
	id = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
	lua_pop(L, 2);
	return id;
}

int lct_field_check_key(lua_State *L, int key_idx)
{
	int id = lct_field_lookup(L, key_idx);

	if (id < 0) {
		if (lua_type(L, key_idx) == LUA_TSTRING)
			luaL_error(L, "bad argument '%s': unknown field", lct_key_name(L, key_idx));
		luaL_error(L, "bad argument: field names are strings, got %s", luaL_typename(L, key_idx));
	}
	return id;
}

/* ---- reading ---- */

static int state_attr(const struct nf_conntrack *ct)
{
	int attr = lct_state_attr(lct_flow_proto(ct));

	return attr >= 0 && nfct_attr_is_set(ct, attr) ? attr : -1;
}

/* Translation shows in the reply tuple: for snat its destination (address
 * or port) is not the original source, for dnat its source is not the
 * original destination, as conntrack --src-nat/--dst-nat tell them.
 * (nfct_getobjopt compares only 32 bits, wrong for IPv6.) attr and attr6 of
 * the field name the two IPv4 address attributes compared. */
static int read_nat(const struct nf_conntrack *ct, const struct field *f, uint64_t *v)
{
	uint8_t family = nfct_attr_is_set(ct, ATTR_L3PROTO) ? nfct_get_attr_u8(ct, ATTR_L3PROTO) : 0;
	int reply = f->attr, orig = f->attr6, is_snat = f->attr == ATTR_REPL_IPV4_DST;
	int reply_port = is_snat ? ATTR_REPL_PORT_DST : ATTR_REPL_PORT_SRC;
	int orig_port = is_snat ? ATTR_ORIG_PORT_SRC : ATTR_ORIG_PORT_DST;

	if (family == AF_INET6) {
		reply += ATTR_ORIG_IPV6_SRC - ATTR_ORIG_IPV4_SRC;
		orig += ATTR_ORIG_IPV6_SRC - ATTR_ORIG_IPV4_SRC;
	} else if (family != AF_INET) {
		return 0;
	}
	if (!nfct_attr_is_set(ct, reply) || !nfct_attr_is_set(ct, orig))
		return 0;
	*v = memcmp(nfct_get_attr(ct, reply), nfct_get_attr(ct, orig), family == AF_INET ? 4 : 16) != 0;
	if (msg_proto_has_ports(lct_flow_proto(ct)) && nfct_attr_is_set(ct, reply_port) &&
	    nfct_attr_is_set(ct, orig_port) && nfct_get_attr_u16(ct, reply_port) != nfct_get_attr_u16(ct, orig_port))
		*v = 1;
	return 1;
}

/* The numeric value of a field, host order; 0 if the flow lacks it. */
int lct_field_read_u64(const struct nf_conntrack *ct, int field, uint64_t *v)
{
	const struct field *f = &lct_fields[field];
	int attr = f->attr;

	switch (f->kind) {
	case K_STATE:
		if ((attr = state_attr(ct)) < 0)
			return 0;
		*v = nfct_get_attr_u8(ct, attr);
		return 1;
	case K_NAT:
		return read_nat(ct, f, v);
	case K_ADDR: case K_LABELS: case K_STRING:
		return 0;
	default:
		break;
	}
	if (!nfct_attr_is_set(ct, attr)) {
		/* the kernel sends no zone for the default zone 0 */
		if (f->kind != K_U16)
			return 0;
		*v = 0;
		return 1;
	}
	switch (f->kind) {
	case K_FAMILY: case K_PROTO: case K_U8:
		*v = nfct_get_attr_u8(ct, attr); break;
	case K_PORT: case K_U16BE:
		*v = ntohs(nfct_get_attr_u16(ct, attr)); break;
	case K_U16:
		*v = nfct_get_attr_u16(ct, attr); break;
	case K_U32: case K_STATUS:
		*v = nfct_get_attr_u32(ct, attr); break;
	default:
		*v = nfct_get_attr_u64(ct, attr); break;
	}
	return 1;
}

int lct_field_read_addr(const struct nf_conntrack *ct, int field, struct addr *a)
{
	const struct field *f = &lct_fields[field];
	uint8_t family = nfct_attr_is_set(ct, ATTR_L3PROTO) ? nfct_get_attr_u8(ct, ATTR_L3PROTO) : 0;
	int attr = family == AF_INET ? f->attr : f->attr6;

	if ((family != AF_INET && family != AF_INET6) || !nfct_attr_is_set(ct, attr))
		return 0;
	a->family = family;
	a->plen = family == AF_INET ? 32 : 128;
	memcpy(a->a, nfct_get_attr(ct, attr), family == AF_INET ? 4 : 16);
	return 1;
}

/* A flow's status: the flags set, true (what pairs() walks). Reading any
 * other flag gives false, UNREPLIED reads as SEEN_REPLY clear, as in a
 * filter; a name that is no flag raises (a typo never reads as nil). */
static int status_index(lua_State *L)
{
	const char *name = lua_tostring(L, 2);
	int i;

	if (lua_type(L, 2) == LUA_TSTRING && strcmp(name, "UNREPLIED") == 0) {
		lua_getfield(L, 1, "SEEN_REPLY");
		lua_pushboolean(L, !lua_toboolean(L, -1));
		return 1;
	}
	for (i = 0; lua_type(L, 2) == LUA_TSTRING && msg_status_names[i]; i++)
		if (strcmp(msg_status_names[i], name) == 0) {
			lua_pushboolean(L, 0);
			return 1;
		}
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "unknown status flag \"%s\"", name);
	return luaL_error(L, "status flags are named by strings, got %s", luaL_typename(L, 2));
}

static void push_status(lua_State *L, uint32_t status)
{
	int i;

	lua_createtable(L, 0, 4);
	for (i = 0; msg_status_names[i]; i++)
		if (status & (1u << i)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, msg_status_names[i]);
		}
	luaL_setmetatable(L, LCT_STATUS);
}

static void push_labels(lua_State *L, const struct nf_conntrack *ct)
{
	const struct nfct_bitmask *b = nfct_get_attr(ct, ATTR_CONNLABELS);
	int i, max;

	lua_newtable(L);
	if (b == NULL)
		return;
	max = nfct_bitmask_maxbit(b);
	for (i = 0; i <= max; i++)
		if (nfct_bitmask_test_bit(b, i)) {
			lua_pushboolean(L, 1);
			lua_rawseti(L, -2, i);
		}
}

/* Pushes the Lua value of a field, nil where the kernel did not send it. */
void lct_field_push(lua_State *L, const struct nf_conntrack *ct, int field)
{
	const struct field *f = &lct_fields[field];
	uint64_t v;
	struct addr a;
	char text[INET6_ADDRSTRLEN];

	switch (f->kind) {
	case K_ADDR:
		if (!lct_field_read_addr(ct, field, &a))
			break;
		lua_pushlstring(L, text, (size_t)(msg_addr_text(text, a.family, a.a) - text));
		return;
	case K_LABELS:
		if (!nfct_attr_is_set(ct, f->attr))
			break;
		push_labels(L, ct);
		return;
	case K_STRING:
		if (!nfct_attr_is_set(ct, f->attr))
			break;
		lua_pushstring(L, nfct_get_attr(ct, f->attr));
		return;
	default:
		if (!lct_field_read_u64(ct, field, &v))
			break;
		lct_field_push_number(L, field, v, f->kind == K_STATE ? lct_flow_proto(ct) : 0);
		return;
	}
	lua_pushnil(L);
}

/* Pushes the value v of a field read as a number (host order), as a flow
 * reads it: names for a family, protocol or state (of protocol proto),
 * a table of flags for a status, a boolean for NAT. */
void lct_field_push_number(lua_State *L, int field, uint64_t v, uint8_t proto)
{
	const char *name;

	switch (lct_fields[field].kind) {
	case K_FAMILY:
		if (v == AF_INET)       lua_pushliteral(L, "ipv4");
		else if (v == AF_INET6) lua_pushliteral(L, "ipv6");
		else                    lct_push_uint(L, v);
		return;
	case K_PROTO:
		if ((name = msg_proto_name((uint8_t)v)) != NULL) lua_pushstring(L, name);
		else                                              lct_push_uint(L, v);
		return;
	case K_STATE:
		if ((name = msg_state_name(proto, (unsigned)v)) != NULL) lua_pushstring(L, name);
		else                                                      lct_push_uint(L, v);
		return;
	case K_STATUS:
		push_status(L, (uint32_t)v);
		return;
	case K_NAT:
		lua_pushboolean(L, v != 0);
		return;
	default:
		lct_push_uint(L, v);
	}
}

/* ---- checking Lua values; errors name the argument and the value ---- */

/* Pushes the string at idx with each NUL byte written as \0, for a message. */
static const char *escaped(lua_State *L, int idx)
{
	luaL_Buffer b;
	size_t len, i;
	const char *s = lua_tolstring(L, idx, &len);

	luaL_buffinit(L, &b);
	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			luaL_addstring(&b, "\\0");
		else
			luaL_addchar(&b, s[i]);
	}
	luaL_pushresult(&b);
	return lua_tostring(L, -1);
}

const char *lct_check_cstring(lua_State *L, int idx, const char *key)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);

	if (strlen(s) != len)
		luaL_error(L, "bad argument '%s': a NUL byte in \"%s\"", key, escaped(L, idx));
	return s;
}

int lct_key_is(lua_State *L, int idx, const char *name)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		return 0;
	s = lua_tolstring(L, idx, &len);
	return len == strlen(name) && memcmp(s, name, len) == 0;
}

const char *lct_key_name(lua_State *L, int idx)
{
	size_t len;
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		return "?";
	s = lua_tolstring(L, idx, &len);
	return strlen(s) == len ? s : escaped(L, idx);
}

/* An options table at idx holds only the names given (a NULL-terminated
 * list): one wording for a misspelt option of every operation. */
void lct_check_options(lua_State *L, int idx, const char *op, const char *const *names)
{
	int i;

	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		for (i = 0; names[i] && !lct_key_is(L, -2, names[i]); i++)
			;
		if (names[i] == NULL)
			lct_unknown_option(L, -2, op, names);
		lua_pop(L, 1);
	}
}

/* A flush's options, { family = "ipv4" | "ipv6" } or none: the family, or 0. */
int lct_check_flush_options(lua_State *L, int idx, const char *op)
{
	static const char *const names[] = { "family", NULL };
	int family = 0;

	if (lua_isnoneornil(L, idx))
		return 0;
	lct_check_options(L, idx, op, names);
	lua_pushliteral(L, "family");
	if (lua_rawget(L, idx) != LUA_TNIL)
		family = lct_check_family(L, -1, "family");
	lua_pop(L, 1);
	return family;
}

/* Raises: "bad argument 'KEY': not an option of OP (its options: a, b, c)". */
int lct_unknown_option(lua_State *L, int key_idx, const char *op, const char *const *names)
{
	luaL_Buffer b;
	int i;

	key_idx = lua_absindex(L, key_idx);
	luaL_buffinit(L, &b);
	for (i = 0; names[i]; i++) {
		if (i > 0)
			luaL_addstring(&b, ", ");
		luaL_addstring(&b, names[i]);
	}
	luaL_pushresult(&b);
	return luaL_error(L, "bad argument '%s': not an option of %s (its options: %s)", lct_key_name(L, key_idx),
	                  op, lua_tostring(L, -1));
}

void lct_check_addr(lua_State *L, int idx, const char *key, struct addr *a, int allow_prefix)
{
	char text[INET6_ADDRSTRLEN + 8];
	const char *s, *slash;
	size_t len;
	long plen = -1;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected an address string, got %s", key, luaL_typename(L, idx));
	s = lct_check_cstring(L, idx, key);
	len = strlen(s);
	if (len >= sizeof(text))
		luaL_error(L, "bad argument '%s': invalid address \"%s\"", key, s);
	memcpy(text, s, len + 1);
	if ((slash = strchr(text, '/')) != NULL) {
		/* decimal digits only: strtol would take " 8", "+8" and "-0" */
		size_t digits = strspn(slash + 1, "0123456789");
		if (!allow_prefix)
			luaL_error(L, "bad argument '%s': a prefix is not allowed here, got \"%s\"", key, s);
		if (digits == 0 || digits > 3 || slash[1 + digits] != '\0')
			luaL_error(L, "bad argument '%s': invalid prefix length in \"%s\"", key, s);
		plen = strtol(slash + 1, NULL, 10);
		text[slash - text] = '\0';
	}
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, text, a->a) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, text, a->a) == 1)
		a->family = AF_INET6;
	else
		luaL_error(L, "bad argument '%s': invalid address \"%s\"", key, s);
	a->plen = a->family == AF_INET ? 32 : 128;
	if (plen >= 0) {
		if (plen > a->plen)
			luaL_error(L, "bad argument '%s': invalid prefix length in \"%s\"", key, s);
		a->plen = (uint8_t)plen;
	}
}

/* How many items the list at idx holds; anything but 1..n keys raises. */
lua_Integer lct_check_list(lua_State *L, int idx, const char *key)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n)
			luaL_error(L, "bad argument '%s': expected a list, got a table with key %s", key,
			           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
		count++;
	}
	if (count == 0)
		luaL_error(L, "bad argument '%s': an empty list matches nothing", key);
	return n;
}

int lct_check_proto(lua_State *L, int idx, const char *key)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = lct_check_cstring(L, idx, key);
		int num = msg_proto_number(s);
		if (num < 0)
			luaL_error(L, "bad argument '%s': unknown protocol \"%s\"", key, s);
		return num;
	}
	return (int)lct_check_uint(L, idx, key, 255);
}

int lct_check_family(lua_State *L, int idx, const char *key)
{
	const char *s;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument '%s': expected \"ipv4\" or \"ipv6\", got %s", key, luaL_typename(L, idx));
	s = lct_check_cstring(L, idx, key);
	if (strcmp(s, "ipv4") == 0)
		return AF_INET;
	if (strcmp(s, "ipv6") == 0)
		return AF_INET6;
	return luaL_error(L, "bad argument '%s': expected \"ipv4\" or \"ipv6\", got \"%s\"", key, s);
}

static void add_status_name(lua_State *L, const char *key, const char *name, uint32_t *value, uint32_t *mask)
{
	int negate = 0, i;

	if (name[0] == '!') {
		negate = 1;
		name++;
	}
	if (strcmp(name, "UNREPLIED") == 0) {
		negate = !negate;
		name = "SEEN_REPLY";
	}
	for (i = 0; msg_status_names[i]; i++)
		if (strcmp(msg_status_names[i], name) == 0) {
			*mask |= 1u << i;
			if (negate) *value &= ~(1u << i);
			else        *value |= 1u << i;
			return;
		}
	luaL_error(L, "bad argument '%s': unknown status flag \"%s\"", key, name);
}

/* "ASSURED", { "ASSURED", "!SEEN_REPLY" } or { ASSURED = true, SEEN_REPLY = false }:
 * the flags named must be set, those negated must be clear. */
void lct_check_status(lua_State *L, int idx, const char *key, uint32_t *value, uint32_t *mask)
{
	*value = *mask = 0;
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		add_status_name(L, key, lct_check_cstring(L, idx, key), value, mask);
		return;
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "bad argument '%s': expected a flag name or a table of them, got %s", key, luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TSTRING) {
			add_status_name(L, key, lct_check_cstring(L, -1, key), value, mask);
		} else if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TBOOLEAN) {
			lua_pushfstring(L, "%s%s", lua_toboolean(L, -1) ? "" : "!", lct_check_cstring(L, -2, key));
			add_status_name(L, key, lua_tostring(L, -1), value, mask);
			lua_pop(L, 1);
		} else {
			luaL_error(L, "bad argument '%s': expected flag names, got a %s", key, luaL_typename(L, -1));
		}
		lua_pop(L, 1);
	}
}

/* Labels as a list of bit numbers { 1, 5 } or a set { [1] = true, [5] = true }.
 * Everything is checked before the bitmask is allocated, so an error leaks nothing. */
static int label_bit(lua_State *L, const char *key)
{
	if (lua_type(L, -1) == LUA_TBOOLEAN)
		return lua_toboolean(L, -1) ? (int)lct_check_uint(L, -2, key, 127) : -1;
	return (int)lct_check_uint(L, -1, key, 127);
}

struct nfct_bitmask *lct_check_labels(lua_State *L, int idx, const char *key)
{
	struct nfct_bitmask *b;
	int pass;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "bad argument '%s': expected a table of label bits, got %s", key, luaL_typename(L, idx));
	/* the kernel's label area is 128 bits: always send all of it */
	b = NULL;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && (b = nfct_bitmask_new(127)) == NULL)
			luaL_error(L, "not enough memory");
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			int bit = label_bit(L, key);
			if (b != NULL && bit >= 0)
				nfct_bitmask_set_bit(b, bit);
			lua_pop(L, 1);
		}
	}
	return b;
}

/* ---- writing a Lua value into a flow, for create and update ---- */

void lct_field_set(lua_State *L, int idx, const char *key, struct nf_conntrack *ct, int field)
{
	const struct field *f = &lct_fields[field];
	struct addr a;
	uint32_t value, mask;

	switch (f->kind) {
	case K_FAMILY:
		nfct_set_attr_u8(ct, ATTR_L3PROTO, (uint8_t)lct_check_family(L, idx, key));
		break;
	case K_PROTO:
		nfct_set_attr_u8(ct, ATTR_L4PROTO, (uint8_t)lct_check_proto(L, idx, key));
		break;
	case K_ADDR:
		lct_check_addr(L, idx, key, &a, 0);
		if (a.family == AF_INET) nfct_set_attr_u32(ct, f->attr, a.a[0]);
		else                     nfct_set_attr(ct, f->attr6, a.a);
		break;
	case K_PORT: case K_U16BE:
		nfct_set_attr_u16(ct, f->attr, htons((uint16_t)lct_check_uint(L, idx, key, 65535)));
		break;
	case K_U8:
		nfct_set_attr_u8(ct, f->attr, (uint8_t)lct_check_uint(L, idx, key, 255));
		break;
	case K_U16:
		nfct_set_attr_u16(ct, f->attr, (uint16_t)lct_check_uint(L, idx, key, 65535));
		break;
	case K_U32:
		nfct_set_attr_u32(ct, f->attr, (uint32_t)lct_check_uint(L, idx, key, 0xffffffff));
		break;
	case K_STATUS:
		lct_check_status(L, idx, key, &value, &mask);
		nfct_set_attr_u32(ct, ATTR_STATUS, value);
		break;
	case K_LABELS:
		nfct_set_attr(ct, ATTR_CONNLABELS, lct_check_labels(L, idx, key));
		break;
	case K_STRING:
		if (lua_type(L, idx) != LUA_TSTRING)
			luaL_error(L, "bad argument '%s': expected a string, got %s", key, luaL_typename(L, idx));
		nfct_set_attr(ct, f->attr, lct_check_cstring(L, idx, key));
		break;
	case K_STATE:   /* needs the protocol: set by the caller */
	default:
		luaL_error(L, "bad argument '%s': a flow's %s cannot be set", key, key);
	}
}
