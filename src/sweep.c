/*
 * sweep.c: delete and update by filter. Candidates stream from a dump on
 * their own socket (pre-filtered by the kernel only where it is exact), are
 * verified in C, then by the predicate, and the requests go out in batches on
 * the handle's socket, every acknowledgement counted. A delete by mark alone
 * is left to the kernel, which selects exactly and deletes by itself.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

#define LCT_ACK_BUFFER (4 << 20)

struct sweep {
	struct nl dump;              /* streams the candidates */
	struct nl_reply reply;
	struct nf_conntrack *scratch;
	struct nl_batch batch;
	char buf[LCT_RECV_SIZE];
};

struct sweep_args {
	int update, dry_run;
	struct filter filter;
	struct changes changes;
};

static int sweep_close(lua_State *L)
{
	struct sweep *s = luaL_checkudata(L, 1, LCT_SWEEP);

	nl_close(&s->dump);
	if (s->scratch != NULL) {
		nfct_destroy(s->scratch);
		s->scratch = NULL;
	}
	return 0;
}

/* The identity of the flow a dump message describes (original tuple, zone,
 * id), copied verbatim: the kernel deletes or updates that entry and no other.
 * 0 if the message has no original tuple: a delete without one would be a
 * flush. */
static int put_identity(struct nlmsghdr *nlh, const struct nlmsghdr *msg)
{
	const struct nlattr *attr;
	int tuple = 0;

	mnl_attr_for_each(attr, msg, sizeof(struct nfgenmsg)) {
		uint16_t type = mnl_attr_get_type(attr);
		if (type == CTA_TUPLE_ORIG || type == CTA_ZONE || type == CTA_ID)
			mnl_attr_put(nlh, attr->nla_type, mnl_attr_get_payload_len(attr), mnl_attr_get_payload(attr));
		tuple |= type == CTA_TUPLE_ORIG;
	}
	return tuple;
}

/* The handle's socket is taken at each batch: the predicate may have closed it. */
static int flush_batch(lua_State *L, struct handle *h, struct sweep *s, struct nl_acks *acks)
{
	if (s->batch.count == 0)
		return 0;
	return nl_batch_send(lct_handle_nl(L, h), &s->batch, lct_handle_buf(h), LCT_RECV_SIZE, acks);
}

/* Stack: ... error. Sends what was already decided (unless the predicate
 * closed the handle), then raises the predicate's error with how far the
 * operation got. The error's text is asked for last: its __tostring is Lua
 * code too. */
static int predicate_failed(lua_State *L, struct handle *h, struct sweep *s,
                            struct nl_acks *acks, const struct sweep_args *a)
{
	const char *what = a->update ? "update" : "delete";
	struct nl *nl = lct_handle_nl_if_open(h);
	const char *msg;

	if (nl != NULL)
		nl_batch_send(nl, &s->batch, lct_handle_buf(h), LCT_RECV_SIZE, acks);
	nl_close(&s->dump);
	msg = luaL_tolstring(L, -1, NULL);
	return luaL_error(L, "%s: the predicate failed after %d flows were %s: %s", what,
	                  (int)acks->ok, a->update ? "updated" : "deleted", msg);
}

static struct sweep *new_sweep(lua_State *L)
{
	struct sweep *s = lua_newuserdatauv(L, sizeof(*s), 0);

	s->dump.sock = NULL;
	s->scratch = NULL;
	nl_batch_init(&s->batch);
	luaL_setmetatable(L, LCT_SWEEP);
	return s;
}

/* Stack: handle(1) filter(2) ... ; pushes the result (count, or list for
 * dry_run) or the failure triple. */
static int run_sweep(lua_State *L, struct handle *h, const struct sweep_args *a)
{
	const char *what = a->update ? "update" : "delete";
	struct nl_acks acks = { 0, 0, 0 };
	const struct nlmsghdr *msg;
	struct nlmsghdr *nlh;
	struct sweep *s = new_sweep(L);
	int rc, list = 0, listed = 0, top, on_message;

	if (a->dry_run) {
		lua_newtable(L);
		list = lua_gettop(L);
	}
	if (a->filter.has_where)
		lct_filter_push_where(L, 2);
	top = lua_gettop(L);

	if ((rc = nl_open(&s->dump, lct_handle_netns(L, h), 0)) < 0)
		return lct_fail(L, what, -rc);
	nl_set_rcvbuf(lct_handle_nl(L, h), LCT_ACK_BUFFER);
	nlh = nl_ct_header(s->buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, a->filter.family);
	lct_filter_to_request(&a->filter, nlh);
	if ((rc = nl_send(&s->dump, nlh)) < 0)
		return lct_fail(L, what, -rc);
	nl_reply_init(&s->reply, &s->dump, s->buf, sizeof(s->buf));

	/* a delete by addresses needs no parsed flow: the match and the request
	 * are made from the message */
	on_message = !a->update && !a->dry_run && !a->filter.has_where && lct_filter_on_message(&a->filter);
	while ((rc = nl_reply_next(&s->reply, &msg)) > 0) {
		const struct nf_conntrack *ct = NULL;

		if (NFNL_MSG_TYPE(msg->nlmsg_type) != IPCTNL_MSG_CT_NEW)
			continue;
		if (on_message) {
			if (lct_check_message(msg) < 0) {
				rc = -EBADMSG;
				break;
			}
			if (!lct_filter_match_message(&a->filter, msg))
				continue;
		} else {
			if ((rc = lct_scratch_ready(&s->scratch)) < 0)
				break;
			if (lct_parse_message(msg, s->scratch) < 0) {
				rc = -EBADMSG;
				break;
			}
			if (!lct_filter_match(&a->filter, s->scratch))
				continue;
			if (a->update && !lct_changes_needed(&a->changes, s->scratch))
				continue;
			ct = s->scratch;
		}
		if (a->filter.has_where) {
			ct = lct_flow_adopt(L, &s->scratch)->ct;
			lua_pushvalue(L, top);
			lua_pushvalue(L, -2);
			if (lua_pcall(L, 1, 1, 0) != LUA_OK)
				return predicate_failed(L, h, s, &acks, a);
			if (!lua_toboolean(L, -1)) {
				lua_settop(L, top);
				continue;
			}
			lua_pop(L, 1);
		}
		if (a->dry_run) {
			if (!a->filter.has_where)
				lct_flow_adopt(L, &s->scratch);
			lua_rawseti(L, list, ++listed);
			continue;
		}
		nlh = nl_ct_header(nl_batch_slot(&s->batch), a->update ? IPCTNL_MSG_CT_NEW : IPCTNL_MSG_CT_DELETE,
		                   0, ((const struct nfgenmsg *)mnl_nlmsg_get_payload(msg))->nfgen_family);
		if (!put_identity(nlh, msg)) {
			lua_settop(L, top);
			continue;
		}
		if (a->update)
			lct_changes_put(&a->changes, ct, nlh);
		nl_batch_commit(&s->batch, nlh);
		lua_settop(L, top);
		if (nl_batch_full(&s->batch) && (rc = flush_batch(L, h, s, &acks)) < 0)
			break;
		if (acks.error)
			break;
	}
	nl_close(&s->dump);
	if (rc >= 0)
		rc = flush_batch(L, h, s, &acks);
	if (rc == 0 && acks.error)
		rc = -acks.error;
	if (rc < 0) {
		lct_fail(L, what, -rc);
		lua_pushfstring(L, "%s (after %d flows)", lua_tostring(L, -2), (int)acks.ok);
		lua_replace(L, -3);
		return 3;
	}
	if (a->dry_run) {
		lua_pushvalue(L, list);
		return 1;
	}
	lct_push_uint(L, acks.ok);
	return 1;
}

/* A filter of a mark (and a family) alone: the kernel selects the same flows
 * and deletes them in one request. It reports no count: the count is how much
 * the table shrank meanwhile, never more than the flows that matched just
 * before; exact unless another process deletes flows at the same time. */
static int kernel_selects(const struct sweep_args *a)
{
	int i;

	if (a->update || a->dry_run || a->filter.has_where || !a->filter.has_mark)
		return 0;
	for (i = 0; i < a->filter.nterms; i++) {
		const char *name = lct_fields[a->filter.terms[i].field].name;
		if (strcmp(name, "mark") != 0 && strcmp(name, "family") != 0)
			return 0;
	}
	return 1;
}

static int table_size(lua_State *L, struct handle *h, uint32_t *entries);

/* The flows the kernel selects for the filter, counted without parsing them. */
static int count_selected(lua_State *L, struct handle *h, struct sweep *s, const struct filter *f, uint32_t *n)
{
	const struct nlmsghdr *msg;
	struct nlmsghdr *nlh;
	int rc;

	*n = 0;
	if ((rc = nl_open(&s->dump, lct_handle_netns(L, h), 0)) < 0)
		return rc;
	nlh = nl_ct_header(s->buf, IPCTNL_MSG_CT_GET, NLM_F_DUMP, f->family);
	lct_filter_to_request(f, nlh);
	if ((rc = nl_send(&s->dump, nlh)) == 0) {
		nl_reply_init(&s->reply, &s->dump, s->buf, sizeof(s->buf));
		while ((rc = nl_reply_next(&s->reply, &msg)) > 0)
			if (NFNL_MSG_TYPE(msg->nlmsg_type) == IPCTNL_MSG_CT_NEW)
				(*n)++;
	}
	nl_close(&s->dump);
	return rc;
}

static int kernel_delete(lua_State *L, struct handle *h, const struct sweep_args *a)
{
	struct sweep *s = new_sweep(L);
	struct nlmsghdr *nlh;
	uint32_t before, after, matched;
	int rc;

	if ((rc = count_selected(L, h, s, &a->filter, &matched)) < 0 || (rc = table_size(L, h, &before)) < 0)
		return lct_fail(L, "delete", -rc);
	nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_DELETE, NLM_F_ACK, a->filter.family);
	lct_filter_to_request(&a->filter, nlh);
	if ((rc = nl_request(lct_handle_nl(L, h), nlh, lct_handle_buf(h), LCT_RECV_SIZE, NULL, NULL)) < 0)
		return lct_fail(L, "delete", -rc);
	if ((rc = table_size(L, h, &after)) < 0)
		return lct_fail(L, "delete", -rc);
	lct_push_uint(L, before <= after ? 0 : before - after < matched ? before - after : matched);
	return 1;
}

static int entries_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *attr;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg))
		if (mnl_attr_get_type(attr) == CTA_STATS_GLOBAL_ENTRIES &&
		    mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
			*(uint32_t *)data = ntohl(mnl_attr_get_u32(attr));
	return MNL_CB_OK;
}

static int table_size(lua_State *L, struct handle *h, uint32_t *entries)
{
	struct nlmsghdr *nlh = nl_ct_header(lct_handle_buf(h), IPCTNL_MSG_CT_GET_STATS, NLM_F_ACK, AF_UNSPEC);

	*entries = 0;
	return nl_request(lct_handle_nl(L, h), nlh, lct_handle_buf(h), LCT_RECV_SIZE, entries_cb, entries);
}

/* Stack: handle(1) filter(2) [changes(3)] [opts]. Everything is checked
 * before anything is sent; an empty filter is refused: flush empties a table. */
static void parse_args(lua_State *L, int update, struct sweep_args *a)
{
	int opts = update ? 4 : 3;

	memset(a, 0, sizeof(*a));
	a->update = update;
	if (lua_type(L, 2) != LUA_TTABLE && lua_type(L, 2) != LUA_TFUNCTION)
		luaL_error(L, "bad argument 'filter': expected a flow, a table or a function, got %s", luaL_typename(L, 2));
	lct_filter_parse(L, 2, &a->filter);
	if (a->filter.nterms == 0 && !a->filter.has_where)
		luaL_error(L, "bad argument 'filter': an empty filter matches every flow (flush empties the table)");
	if (update)
		lct_changes_parse(L, 3, &a->changes);
	if (!lua_isnoneornil(L, opts)) {
		luaL_checktype(L, opts, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, opts)) {
			if (!lct_key_is(L, -2, "dry_run"))
				luaL_error(L, "bad argument '%s': the options are 'dry_run'", lct_key_name(L, -2));
			a->dry_run = lua_toboolean(L, -1);
			lua_pop(L, 1);
		}
	}
}

/* ct:delete(filter [, { dry_run = true }]) -> count | flows */
int lct_sweep_delete(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct sweep_args a;

	parse_args(L, 0, &a);
	if (kernel_selects(&a))
		return kernel_delete(L, h, &a);
	return run_sweep(L, h, &a);
}

/* ct:update(filter, changes [, { dry_run = true }]) -> count | flows */
int lct_sweep_update(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct sweep_args a;

	parse_args(L, 1, &a);
	return run_sweep(L, h, &a);
}

void lct_sweep_open(lua_State *L)
{
	luaL_newmetatable(L, LCT_SWEEP);
	lua_pushcfunction(L, sweep_close);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
}
