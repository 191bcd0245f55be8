/*
 * change.c: what update changes (mark, timeout, status flags, labels, the
 * TCP state),
 * parsed whole into a struct before any I/O, then written into each update
 * request and compared with each flow to skip those already as asked.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>

#include "lct.h"

/* labels = { 1, 5 } replaces the flow's labels; { add = { 1 }, remove = { 5 } }
 * sets and clears bits and leaves the others as they are. */
static void parse_labels(lua_State *L, int idx, struct changes *c)
{
	int i, has_parts = 0;
	static const char *const parts[] = { "add", "remove" };

	idx = lua_absindex(L, idx);
	c->has_labels = 1;
	if (lua_type(L, idx) == LUA_TTABLE) {
		lua_getfield(L, idx, "add");
		lua_getfield(L, idx, "remove");
		has_parts = !lua_isnil(L, -1) || !lua_isnil(L, -2);
		lua_pop(L, 2);
	}
	if (!has_parts) {
		struct nfct_bitmask *b = lct_check_labels(L, idx, "labels");
		for (i = 0; i < 128; i++)
			if (nfct_bitmask_test_bit(b, i))
				c->labels[i / 32] |= 1u << (i % 32);
		nfct_bitmask_destroy(b);
		memset(c->labels_mask, 0xff, sizeof(c->labels_mask));
		return;
	}
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING ||
		    (strcmp(lua_tostring(L, -2), "add") != 0 && strcmp(lua_tostring(L, -2), "remove") != 0))
			luaL_error(L, "bad argument 'labels': expected { add = ..., remove = ... } or a set of bits");
		lua_pop(L, 1);
	}
	for (i = 0; i < 2; i++) {
		struct nfct_bitmask *b;
		int bit;
		lua_getfield(L, idx, parts[i]);
		if (!lua_isnil(L, -1)) {
			b = lct_check_labels(L, -1, "labels");
			for (bit = 0; bit < 128; bit++)
				if (nfct_bitmask_test_bit(b, bit)) {
					c->labels_mask[bit / 32] |= 1u << (bit % 32);
					if (i == 0) c->labels[bit / 32] |= 1u << (bit % 32);
				}
			nfct_bitmask_destroy(b);
		}
		lua_pop(L, 1);
	}
}

/* state = "TIME_WAIT": a TCP state, as conntrack -U -p tcp --state sets it */
static void parse_state(lua_State *L, int idx, struct changes *c)
{
	int n;

	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "bad argument 'state': expected a TCP state name, got %s", luaL_typename(L, idx));
	if ((n = msg_state_number(IPPROTO_TCP, lct_check_cstring(L, idx, "state"))) < 0)
		luaL_error(L, "bad argument 'state': unknown TCP state \"%s\"", lua_tostring(L, idx));
	c->has_state = 1;
	c->state = (uint8_t)n;
}

void lct_changes_parse(lua_State *L, int idx, struct changes *c)
{
	memset(c, 0, sizeof(*c));
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "bad argument 'changes': expected a table, got %s", luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int id = lct_field_check_key(L, -2);
		const char *key = lua_tostring(L, -2);

		if (!(lct_fields[id].caps & CAP_UPDATE))
			luaL_error(L, "bad argument '%s': update changes mark, timeout, status, labels and state only", key);
		if (id == FIELD_MARK) {
			c->has_mark = 1;
			c->mark_mask = 0xffffffff;
			if (lua_type(L, -1) == LUA_TTABLE) {
				lua_rawgeti(L, -1, 1);
				lua_rawgeti(L, -2, 2);
				c->mark = (uint32_t)lct_check_uint(L, -2, key, 0xffffffff);
				c->mark_mask = (uint32_t)lct_check_uint(L, -1, key, 0xffffffff);
				lua_pop(L, 2);
			} else {
				c->mark = (uint32_t)lct_check_uint(L, -1, key, 0xffffffff);
			}
		} else if (id == FIELD_TIMEOUT) {
			c->has_timeout = 1;
			c->timeout = (uint32_t)lct_check_uint(L, -1, key, 0xffffffff);
		} else if (id == FIELD_STATUS) {
			uint32_t value, mask;
			lct_check_status(L, -1, key, &value, &mask);
			if (value != mask)
				luaL_error(L, "bad argument 'status': update can set flags, not clear them");
			/* the kernel silently ignores every other flag */
			if (value & ~(uint32_t)(IPS_SEEN_REPLY | IPS_ASSURED | IPS_FIXED_TIMEOUT))
				luaL_error(L, "bad argument 'status': update can set SEEN_REPLY, ASSURED and FIXED_TIMEOUT only");
			c->has_status = 1;
			c->status = value;
		} else if (id == FIELD_STATE) {
			parse_state(L, -1, c);
		} else {
			parse_labels(L, -1, c);
		}
		lua_pop(L, 1);
	}
	if (!c->has_mark && !c->has_timeout && !c->has_status && !c->has_labels && !c->has_state)
		luaL_error(L, "bad argument 'changes': nothing to change");
}

/* Appends the changes to an update request for flow old. The kernel applies
 * the mark as new = (old & ~mask) ^ value, atomically; the status it takes
 * whole and refuses (EBUSY) if that would clear a bit, so the flags are
 * added to the flow's own. */
void lct_changes_put(const struct changes *c, const struct nf_conntrack *old, struct nlmsghdr *nlh)
{
	if (c->has_mark) {
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(c->mark));
		mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(c->mark_mask));
	}
	if (c->has_timeout)
		mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(c->timeout));
	if (c->has_status)
		mnl_attr_put_u32(nlh, CTA_STATUS, htonl(nfct_get_attr_u32(old, ATTR_STATUS) | c->status));
	if (c->has_labels) {
		mnl_attr_put(nlh, CTA_LABELS, sizeof(c->labels), c->labels);
		mnl_attr_put(nlh, CTA_LABELS_MASK, sizeof(c->labels_mask), c->labels_mask);
	}
	if (c->has_state) {
		/* the kernel takes the state alone and leaves the window tracking and timeout as they are */
		struct nlattr *info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
		struct nlattr *tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
		mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, c->state);
		mnl_attr_nest_end(nlh, tcp);
		mnl_attr_nest_end(nlh, info);
	}
}

/* The state is TCP's: update refuses it for another flow, and by filter
 * unless the filter selects TCP flows only (as conntrack's -p tcp). */
void lct_changes_check_state(lua_State *L, const struct changes *c, int is_tcp)
{
	if (c->has_state && !is_tcp)
		luaL_error(L, "bad argument 'state': update sets the state of TCP flows only (give proto = \"tcp\")");
}

/* Would the changes alter this flow? Re-applying an update counts nothing. */
int lct_changes_needed(const struct changes *c, const struct nf_conntrack *ct)
{
	if (c->has_mark) {
		uint32_t old = nfct_get_attr_u32(ct, ATTR_MARK);
		if (((old & ~c->mark_mask) ^ c->mark) != old)
			return 1;
	}
	if (c->has_timeout && nfct_get_attr_u32(ct, ATTR_TIMEOUT) != c->timeout)
		return 1;
	if (c->has_status && (nfct_get_attr_u32(ct, ATTR_STATUS) & c->status) != c->status)
		return 1;
	if (c->has_state && (!nfct_attr_is_set(ct, ATTR_TCP_STATE) || nfct_get_attr_u8(ct, ATTR_TCP_STATE) != c->state))
		return 1;
	if (c->has_labels) {
		const struct nfct_bitmask *b = nfct_get_attr(ct, ATTR_CONNLABELS);
		int i;
		for (i = 0; i < 128; i++) {
			int have = b != NULL && i <= (int)nfct_bitmask_maxbit(b) && nfct_bitmask_test_bit(b, i);
			int mask = (c->labels_mask[i / 32] >> (i % 32)) & 1;
			int want = (c->labels[i / 32] >> (i % 32)) & 1;
			if (mask && have != want)
				return 1;
		}
	}
	return 0;
}
