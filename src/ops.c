/*
 * ops.c: get, create, update, delete, flush, count and stats on a handle.
 * Every argument is checked and built into a message before anything is
 * sent; kernel replies are parsed into C and reach Lua only afterwards.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

enum build_mode { FOR_LOOKUP, FOR_CREATE };

static int family_of(const struct nf_conntrack *ct, int attr4, int attr6)
{
	if (nfct_attr_is_set(ct, attr4)) return AF_INET;
	if (nfct_attr_is_set(ct, attr6)) return AF_INET6;
	return 0;
}

/* The family the addresses imply; all of them (and `family`) must agree. */
static int settle_family(lua_State *L, struct nf_conntrack *ct, int given)
{
	static const int pairs[][2] = {
		{ ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC }, { ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST },
		{ ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC }, { ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST },
	};
	static const char *const names[] = { "orig_src", "orig_dst", "reply_src", "reply_dst" };
	int family = given, i;

	for (i = 0; i < 4; i++) {
		int f = family_of(ct, pairs[i][0], pairs[i][1]);
		if (f == 0)
			continue;
		if (family && f != family)
			luaL_error(L, "bad argument '%s': an %s address does not fit the %s flow", names[i],
			           f == AF_INET ? "IPv4" : "IPv6", family == AF_INET ? "IPv4" : "IPv6");
		family = f;
	}
	return family;
}

/* A field op cannot go without: raised naming it. */
static void need_field(lua_State *L, const struct nf_conntrack *ct, int attr, const char *op, const char *key)
{
	if (!nfct_attr_is_set(ct, attr))
		luaL_error(L, "bad argument '%s': %s needs it", key, op);
}

/* The reply tuple is the inverse of the original (ICMP types inverted too,
 * by the library); any part of it the caller gave is kept. */
static void default_reply(struct nf_conntrack *ct)
{
	static const int reply_attrs[] = {
		ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST,
		ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST,
	};
	static const size_t sizes[] = { 4, 4, 16, 16, 2, 2 };
	uint32_t given[6][4];
	int i, is_set[6];

	for (i = 0; i < 6; i++)
		if ((is_set[i] = nfct_attr_is_set(ct, reply_attrs[i])))
			memcpy(given[i], nfct_get_attr(ct, reply_attrs[i]), sizes[i]);
	nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY);
	for (i = 0; i < 6; i++)
		if (is_set[i])
			nfct_set_attr(ct, reply_attrs[i], given[i]);
}

/* NAT is told by the reply tuple: a reply destination other than the
 * original source is a source NAT, and so on. */
static void nat_from_reply(struct nf_conntrack *ct, int family)
{
	int v4 = family == AF_INET;
	size_t len = v4 ? 4 : 16;

	if (memcmp(nfct_get_attr(ct, v4 ? ATTR_REPL_IPV4_DST : ATTR_REPL_IPV6_DST),
	           nfct_get_attr(ct, v4 ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC), len) != 0)
		nfct_set_attr(ct, v4 ? ATTR_SNAT_IPV4 : ATTR_SNAT_IPV6,
		              nfct_get_attr(ct, v4 ? ATTR_REPL_IPV4_DST : ATTR_REPL_IPV6_DST));
	if (memcmp(nfct_get_attr(ct, v4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC),
	           nfct_get_attr(ct, v4 ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST), len) != 0)
		nfct_set_attr(ct, v4 ? ATTR_DNAT_IPV4 : ATTR_DNAT_IPV6,
		              nfct_get_attr(ct, v4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC));
	if (nfct_attr_is_set(ct, ATTR_REPL_PORT_DST) &&
	    nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST) != nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC))
		nfct_set_attr_u16(ct, ATTR_SNAT_PORT, nfct_get_attr_u16(ct, ATTR_REPL_PORT_DST));
	if (nfct_attr_is_set(ct, ATTR_REPL_PORT_SRC) &&
	    nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC) != nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST))
		nfct_set_attr_u16(ct, ATTR_DNAT_PORT, nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
}

/* A table of fields at idx into ct, checked whole: what a lookup (get)
 * needs, or what the kernel needs to create a flow. */
static void build_flow(lua_State *L, int idx, struct nf_conntrack *ct, enum build_mode mode)
{
	const char *op = mode == FOR_CREATE ? "create" : "get";
	int family = 0, state_idx, top = lua_gettop(L);
	uint8_t proto;

	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	/* the state's number depends on the protocol: it is set last */
	lua_getfield(L, idx, "state");
	state_idx = lua_isnil(L, -1) ? 0 : lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int id = lct_field_check_key(L, -2);
		const struct field *f = &lct_fields[id];
		const char *key = lua_tostring(L, -2);

		if (!(f->caps & (mode == FOR_CREATE ? CAP_CREATE : CAP_LOOKUP)))
			luaL_error(L, "bad argument '%s': %s does not take it", key, op);
		if (f->kind == K_FAMILY)
			family = lct_check_family(L, -1, key);
		else if (f->kind != K_STATE)
			lct_field_set(L, -1, key, ct, id);
		lua_pop(L, 1);
	}

	need_field(L, ct, ATTR_L4PROTO, op, "proto");
	proto = nfct_get_attr_u8(ct, ATTR_L4PROTO);
	family = settle_family(L, ct, family);
	if (!family_of(ct, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC))
		luaL_error(L, "bad argument 'orig_src': %s needs it", op);
	if (!family_of(ct, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST))
		luaL_error(L, "bad argument 'orig_dst': %s needs it", op);
	nfct_set_attr_u8(ct, ATTR_L3PROTO, (uint8_t)family);

	if (msg_proto_has_ports(proto)) {
		need_field(L, ct, ATTR_ORIG_PORT_SRC, op, "orig_sport");
		need_field(L, ct, ATTR_ORIG_PORT_DST, op, "orig_dport");
	}
	if (msg_proto_is_icmp(proto)) {
		need_field(L, ct, ATTR_ICMP_TYPE, op, "icmp_type");
		need_field(L, ct, ATTR_ICMP_CODE, op, "icmp_code");
		need_field(L, ct, ATTR_ICMP_ID, op, "icmp_id");
		/* the library derives the reply's ICMP type when the type is set,
		 * from the family: set it again now that the family is known */
		nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, nfct_get_attr_u8(ct, ATTR_ICMP_TYPE));
	}
	if (state_idx) {
		const char *name = lua_tostring(L, state_idx);
		int attr = lct_state_attr(proto);
		int n = name ? msg_state_number(proto, name) : -1;
		if (attr < 0)
			luaL_error(L, "bad argument 'state': protocol %d has no states", proto);
		if (n < 0)
			luaL_error(L, "bad argument 'state': unknown state \"%s\"", name ? name : luaL_typename(L, state_idx));
		nfct_set_attr_u8(ct, attr, (uint8_t)n);
	}
	if (mode == FOR_CREATE) {
		need_field(L, ct, ATTR_TIMEOUT, op, "timeout");
		if ((proto == IPPROTO_TCP || proto == IPPROTO_SCTP) && !state_idx)
			luaL_error(L, "bad argument 'state': create needs it for %s", proto == IPPROTO_TCP ? "tcp" : "sctp");
		if (proto == IPPROTO_SCTP) {
			/* the kernel refuses an SCTP flow without both verification tags */
			if (!nfct_attr_is_set(ct, ATTR_SCTP_VTAG_ORIG))
				nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_ORIG, 0);
			if (!nfct_attr_is_set(ct, ATTR_SCTP_VTAG_REPL))
				nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_REPL, 0);
		}
		default_reply(ct);
		nat_from_reply(ct, family);
	}
	lua_settop(L, top);
}

/* ---- replies ---- */

static int parse_flow_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nf_conntrack *ct = data;

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) != IPCTNL_MSG_CT_NEW)
		return MNL_CB_OK;
	if (msg_parse(nlh, ct) < 0) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	return MNL_CB_STOP;
}

/* A new, empty nf_conntrack owned by a flow pushed on the stack. */
static struct nf_conntrack *push_empty_flow(lua_State *L)
{
	struct flow *slot = lct_flow_new(L);

	if ((slot->ct = nfct_new()) == NULL)
		luaL_error(L, "not enough memory");
	return slot->ct;
}

static struct nf_conntrack *identity_of(lua_State *L, const struct nf_conntrack *flow, const char *op);

/* ct:get{ proto =, orig_src =, ... } or ct:get(flow) (that very entry, read
 * again: its id too) -> flow | nil, message, errno */
static int op_get(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct nf_conntrack *key;   /* collected later */
	struct nf_conntrack *found;
	struct nlmsghdr *nlh;
	int rc;

	if (lct_to_flow(L, 2) != NULL) {
		key = identity_of(L, lct_check_flow(L, 2), "get");
	} else {
		key = push_empty_flow(L);
		build_flow(L, 2, key, FOR_LOOKUP);
	}
	found = push_empty_flow(L);
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_GET, NLM_F_ACK, nfct_get_attr_u8(key, ATTR_L3PROTO));
	nfct_nlmsg_build(nlh, key);
	if ((rc = lct_handle_request(L, h, nlh, parse_flow_cb, found)) < 0)
		return lct_fail(L, "get", -rc);
	/* the kernel looks up the tuple alone: a newer entry of it is not the flow asked for */
	if (nfct_attr_is_set(key, ATTR_ID) && nfct_attr_is_set(found, ATTR_ID) &&
	    nfct_get_attr_u32(key, ATTR_ID) != nfct_get_attr_u32(found, ATTR_ID))
		return lct_fail(L, "get", ENOENT);
	return 1;
}

/* A failure of item i of a batch create: { index =, message =, errno = }
 * appended to the list at idx. */
static void add_failure(lua_State *L, int list, lua_Integer i, int err)
{
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, (lua_Integer)i);
	lua_setfield(L, -2, "index");
	lua_pushfstring(L, "create: %s", lct_strerror(err));
	lua_setfield(L, -2, "message");
	lua_pushinteger(L, err);
	lua_setfield(L, -2, "errno");
	lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* ct:create{ { ... }, { ... }, ... }: every flow is checked before the
 * first is sent, then they go out in batches, every one of them whatever
 * others fail. -> the number created, and when some failed the list of
 * { index =, message =, errno = }; nil, message, errno only when nothing
 * could be sent. */
static int create_many(lua_State *L, struct handle *h)
{
	lua_Integer n = luaL_len(L, 2), i, first = 1;   /* first: the item the batch begins with */
	struct nl_batch *batch = lua_newuserdatauv(L, sizeof(*batch), 0);   /* scratch */
	struct nl_acks *acks = lua_newuserdatauv(L, sizeof(*acks), 0);
	int pass, rc = 0, list;
	unsigned int k;

	lua_newtable(L);
	list = lua_gettop(L);
	memset(acks, 0, sizeof(*acks));
	nl_batch_init(batch);
	lct_handle_expect_batches(L, h);
	for (pass = 0; pass < 2 && rc == 0; pass++)
		for (i = 1; i <= n && rc == 0; i++) {
			struct nf_conntrack *ct = push_empty_flow(L);
			struct nlmsghdr *nlh;

			if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
				luaL_error(L, "bad argument 'flows': item " LCT_I " is a %s, not a table of fields", LCT_IARG(i),
				           luaL_typename(L, -1));
			build_flow(L, -1, ct, FOR_CREATE);
			lua_pop(L, 2);
			if (pass == 0)
				continue;
			nlh = nl_ct_header(nl_batch_slot(batch), IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL,
			                   nfct_get_attr_u8(ct, ATTR_L3PROTO));
			nfct_nlmsg_build(nlh, ct);
			nl_batch_commit(batch, nlh);
			if (!nl_batch_full(batch) && i < n)
				continue;
			if ((rc = lct_handle_batch(L, h, batch, acks)) < 0)
				break;
			for (k = 0; k < acks->nfailed; k++)
				add_failure(L, list, first + acks->failed[k].index, acks->failed[k].error);
			first = i + 1;
		}
	if (rc < 0 && first == 1)
		return lct_fail(L, "create", -rc);
	/* what a batch that could not be sent or answered held is not known created */
	for (i = first; rc < 0 && i <= n; i++)
		add_failure(L, list, i, -rc);
	lct_push_uint(L, acks->ok);
	if (lua_rawlen(L, list) == 0)
		return 1;
	lua_pushvalue(L, list);
	return 2;
}

/* ct:create{ ... } -> true | nil, message, errno */
static int op_create(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct nf_conntrack *ct;
	struct nlmsghdr *nlh;
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	if (lua_rawgeti(L, 2, 1) == LUA_TTABLE)
		return create_many(L, h);
	lua_pop(L, 1);
	ct = push_empty_flow(L);
	build_flow(L, 2, ct, FOR_CREATE);
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
	                   nfct_get_attr_u8(ct, ATTR_L3PROTO));
	nfct_nlmsg_build(nlh, ct);
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return lct_fail(L, "create", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* The identity of a flow for a request: original tuple, zone and id. The
 * kernel takes a request without an original tuple as meant for no flow in
 * particular (a delete without one is a flush): a flow without its
 * addresses and protocol is refused. */
static struct nf_conntrack *identity_of(lua_State *L, const struct nf_conntrack *flow, const char *op)
{
	struct nf_conntrack *ct;
	int family = nfct_attr_is_set(flow, ATTR_ORIG_L3PROTO) ? nfct_get_attr_u8(flow, ATTR_ORIG_L3PROTO) : 0;

	if ((family != AF_INET && family != AF_INET6) || !nfct_attr_is_set(flow, ATTR_ORIG_L4PROTO) ||
	    !nfct_attr_is_set(flow, family == AF_INET ? ATTR_ORIG_IPV4_SRC : ATTR_ORIG_IPV6_SRC) ||
	    !nfct_attr_is_set(flow, family == AF_INET ? ATTR_ORIG_IPV4_DST : ATTR_ORIG_IPV6_DST))
		luaL_error(L, "bad argument 'flow': %s needs its original tuple (family, addresses, protocol)", op);
	ct = push_empty_flow(L);
	nfct_copy(ct, flow, NFCT_CP_ORIG);
	if (nfct_attr_is_set(flow, ATTR_ZONE))
		nfct_set_attr_u16(ct, ATTR_ZONE, nfct_get_attr_u16(flow, ATTR_ZONE));
	/* a zone of one direction lives in that tuple: the kernel needs it to find the entry */
	if (nfct_attr_is_set(flow, ATTR_ORIG_ZONE))
		nfct_set_attr_u16(ct, ATTR_ORIG_ZONE, nfct_get_attr_u16(flow, ATTR_ORIG_ZONE));
	if (nfct_attr_is_set(flow, ATTR_ID))
		nfct_set_attr_u32(ct, ATTR_ID, nfct_get_attr_u32(flow, ATTR_ID));
	return ct;
}

/* ct:update(flow, changes): one flow; with a filter instead, see sweep.c */
static int op_update(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	const struct nf_conntrack *flow;
	struct nf_conntrack *ct;
	struct nlmsghdr *nlh;
	struct changes changes;
	int rc;

	if (lct_to_flow(L, 2) == NULL)
		return lct_sweep_update(L);
	flow = lct_check_flow(L, 2);
	lct_changes_parse(L, 3, &changes);
	lct_changes_check_state(L, &changes, lct_flow_proto(flow) == IPPROTO_TCP);
	ct = identity_of(L, flow, "update");
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_NEW, NLM_F_ACK, nfct_get_attr_u8(ct, ATTR_L3PROTO));
	nfct_nlmsg_build(nlh, ct);
	lct_changes_put(&changes, flow, nlh);
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return lct_fail(L, "update", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* ct:delete(flow): that very entry (its id), not a newer one with its tuple;
 * with a filter instead, see sweep.c */
static int op_delete(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct nf_conntrack *ct;
	struct nlmsghdr *nlh;
	int rc;

	if (lct_to_flow(L, 2) == NULL)
		return lct_sweep_delete(L);
	ct = identity_of(L, lct_check_flow(L, 2), "delete");
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, nfct_get_attr_u8(ct, ATTR_L3PROTO));
	nfct_nlmsg_build(nlh, ct);
	/* the library does not send the id; the kernel deletes no other entry when it has one */
	if (nfct_attr_is_set(ct, ATTR_ID))
		mnl_attr_put_u32(nlh, CTA_ID, htonl(nfct_get_attr_u32(ct, ATTR_ID)));
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return lct_fail(L, "delete", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* ct:flush([{ family = }]): with nfgenmsg version 1 the kernel honours the family */
static int op_flush(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct nlmsghdr *nlh;
	int family = lct_check_flush_options(L, 2, "flush"), rc;

	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, (uint8_t)family);
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return lct_fail(L, "flush", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- statistics ---- */

static const char *const cpu_stats[CTA_STATS_MAX + 1] = {
	[CTA_STATS_FOUND] = "found", [CTA_STATS_INVALID] = "invalid",
	[CTA_STATS_INSERT] = "insert", [CTA_STATS_INSERT_FAILED] = "insert_failed",
	[CTA_STATS_DROP] = "drop", [CTA_STATS_EARLY_DROP] = "early_drop",
	[CTA_STATS_ERROR] = "error", [CTA_STATS_SEARCH_RESTART] = "search_restart",
	[CTA_STATS_CLASH_RESOLVE] = "clash_resolve", [CTA_STATS_CHAIN_TOOLONG] = "chaintoolong",
};

#define MAX_CPUS 1024
struct cpu_stats {
	int ncpus;
	struct { uint16_t cpu; uint32_t v[CTA_STATS_MAX + 1]; uint32_t present; } cpu[MAX_CPUS];
};

static int cpu_stats_cb(const struct nlmsghdr *nlh, void *data)
{
	struct cpu_stats *s = data;
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;

	if (s->ncpus == MAX_CPUS)
		return MNL_CB_OK;
	s->cpu[s->ncpus].cpu = ntohs(nfh->res_id);
	s->cpu[s->ncpus].present = 0;
	mnl_attr_for_each(attr, nlh, sizeof(*nfh)) {
		unsigned int type = mnl_attr_get_type(attr);
		if (type > CTA_STATS_MAX || mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			continue;
		s->cpu[s->ncpus].v[type] = ntohl(mnl_attr_get_u32(attr));
		s->cpu[s->ncpus].present |= 1u << type;
	}
	s->ncpus++;
	return MNL_CB_OK;
}

/* ct:count() -> entries in the table */
static int op_count(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct table_stats g;
	int rc;

	if ((rc = lct_table_stats(L, h, &g)) < 0)
		return lct_fail(L, "count", -rc);
	lct_push_uint(L, g.entries);
	return 1;
}

/* ct:stats() -> { entries =, max =, [i] = { cpu =, found =, ... } } as conntrack -S */
static int op_stats(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct cpu_stats *s = lua_newuserdatauv(L, sizeof(*s), 0);   /* scratch */
	struct table_stats g;
	struct nlmsghdr *nlh;
	int rc, i, t;

	s->ncpus = 0;
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_DUMP, AF_UNSPEC);
	if ((rc = lct_handle_request(L, h, nlh, cpu_stats_cb, s)) < 0 || (rc = lct_table_stats(L, h, &g)) < 0)
		return lct_fail(L, "stats", -rc);
	lua_createtable(L, s->ncpus, 2);
	lct_push_uint(L, g.entries);
	lua_setfield(L, -2, "entries");
	if (g.has_max) {
		lct_push_uint(L, g.max);
		lua_setfield(L, -2, "max");
	}
	for (i = 0; i < s->ncpus; i++) {
		lua_createtable(L, 0, 11);
		lua_pushinteger(L, s->cpu[i].cpu);
		lua_setfield(L, -2, "cpu");
		for (t = 0; t <= CTA_STATS_MAX; t++)
			if (cpu_stats[t] && (s->cpu[i].present & (1u << t))) {
				lct_push_uint(L, s->cpu[i].v[t]);
				lua_setfield(L, -2, cpu_stats[t]);
			}
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

void lct_ops_register(lua_State *L)
{
	static const luaL_Reg ops[] = {
		{ "get", op_get }, { "create", op_create }, { "update", op_update },
		{ "delete", op_delete }, { "flush", op_flush }, { "count", op_count },
		{ "stats", op_stats }, { NULL, NULL }
	};
	luaL_setfuncs(L, ops, 0);
}
