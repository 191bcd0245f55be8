/*
 * sweep.c: delete and update by filter. Candidates stream from a dump on
 * their own socket (pre-filtered by the kernel only where it is exact), are
 * verified in C, then by the predicate, and the requests go out in batches on
 * the handle's socket, every acknowledgement counted: the count is what this
 * call deleted, whatever else changes the table meanwhile. (The kernel's own
 * delete by mark, one request, reports no count; counting its flows first
 * cost a dump as long as the sweep's, which the dump's thread (ahead.c) runs
 * beside the deletes.)
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* The scratch of one sweep, a userdata so that an error leaks nothing. */
struct sweep {
	struct nl dump;              /* streams the candidates */
	struct nl_reply reply;
	struct nf_conntrack *scratch;
	struct nl_batch batch;
	struct nl_acks acks;
	char buf[LCT_RECV_SIZE];
};

struct sweep_args {
	int update, dry_run;
	const struct filter *filter;   /* its userdata stays on the stack */
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

static struct sweep *new_sweep(lua_State *L)
{
	struct sweep *s = lua_newuserdatauv(L, sizeof(*s), 0);

	s->dump.sock = NULL;
	s->scratch = NULL;
	nl_batch_init(&s->batch);
	memset(&s->acks, 0, sizeof(s->acks));
	luaL_setmetatable(L, LCT_SWEEP);
	return s;
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
static int flush_batch(lua_State *L, struct handle *h, struct sweep *s)
{
	if (s->batch.count == 0)
		return 0;
	return lct_handle_batch(L, h, &s->batch, &s->acks);
}

/* Stack: ... error. Sends what was already decided (unless the predicate
 * closed the handle), then raises the predicate's error with how far the
 * operation got. The error's text is asked for last: its __tostring is Lua
 * code too. */
static int predicate_failed(lua_State *L, int handle, struct sweep *s, const struct sweep_args *a)
{
	char n[LCT_UINT_TEXT];
	const char *msg;

	if (lct_handle_is_open(L, handle) && s->batch.count > 0)
		lct_handle_batch(L, lua_touserdata(L, handle), &s->batch, &s->acks);
	nl_close(&s->dump);
	lct_uint_text(n, s->acks.ok);
	msg = luaL_tolstring(L, -1, NULL);
	return luaL_error(L, "%s: the predicate failed after %s flows were %s: %s", a->update ? "update" : "delete",
	                  n, a->update ? "updated" : "deleted", msg);
}

/* The select step: is the flow in msg one of the filter's (and, for an
 * update, one the changes would alter)? 1, 0, or -errno. *ct: the parsed
 * flow (in s->scratch), or NULL when it was matched on the message. */
static int selected(struct sweep *s, const struct sweep_args *a, int on_message, const struct nlmsghdr *msg,
                    const struct nf_conntrack **ct)
{
	int rc;

	*ct = NULL;
	if (on_message) {
		if (msg_check(msg) < 0)
			return -EBADMSG;
		return lct_filter_match_message(a->filter, msg);
	}
	if ((rc = lct_scratch_ready(&s->scratch)) < 0)
		return rc;
	if (msg_parse(msg, s->scratch) < 0)
		return -EBADMSG;
	if (!lct_filter_match(a->filter, s->scratch) ||
	    (a->update && !lct_changes_needed(&a->changes, s->scratch)))
		return 0;
	*ct = s->scratch;
	return 1;
}

/* The predicate step (stack: ... predicate(where)): the flow in s->scratch
 * is pushed, asked, and left on the stack if accepted. 1, 0, or raises. */
static int accepted(lua_State *L, int where, int handle, struct sweep *s, const struct sweep_args *a,
                    const struct nf_conntrack **ct)
{
	*ct = lct_flow_adopt(L, &s->scratch)->ct;
	lua_pushvalue(L, where);
	lua_pushvalue(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK)
		return predicate_failed(L, handle, s, a);
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 2);
		return 0;
	}
	lua_pop(L, 1);
	return 1;
}

/* The queue step: the request for the flow in msg joins the batch, which
 * goes out when full. 0 or -errno. */
static int queue(lua_State *L, struct handle *h, struct sweep *s, const struct sweep_args *a,
                 const struct nlmsghdr *msg, const struct nf_conntrack *ct)
{
	uint8_t family = ((const struct nfgenmsg *)mnl_nlmsg_get_payload(msg))->nfgen_family;
	struct nlmsghdr *nlh = nl_ct_header(nl_batch_slot(&s->batch),
	                                    a->update ? IPCTNL_MSG_CT_NEW : IPCTNL_MSG_CT_DELETE, 0, family);

	if (!put_identity(nlh, msg))
		return 0;
	if (a->update)
		lct_changes_put(&a->changes, ct, nlh);
	nl_batch_commit(&s->batch, nlh);
	if (nl_batch_full(&s->batch))
		return flush_batch(L, h, s);
	return 0;
}

/* Stack: handle(1) filter(2) ... ; pushes the result (count, or list for
 * dry_run) or the failure triple. */
static int run_sweep(lua_State *L, struct handle *h, const struct sweep_args *a)
{
	const char *what = a->update ? "update" : "delete";
	const struct nlmsghdr *msg;
	struct sweep *s = new_sweep(L);
	int rc, list = 0, listed = 0, where = 0, top, on_message;

	if (a->dry_run) {
		lua_newtable(L);
		list = lua_gettop(L);
	}
	if (a->filter->has_where) {
		lct_filter_push_where(L, 2);
		where = lua_gettop(L);
	}
	top = lua_gettop(L);
	if ((rc = lct_request_dump(&s->dump, &s->reply, lct_handle_netns(L, h), s->buf, IPCTNL_MSG_CT_GET,
	                           a->filter)) < 0)
		return lct_fail(L, what, -rc);
	if (!a->dry_run)
		lct_handle_expect_batches(L, h);

	/* a delete by addresses needs no parsed flow: the match and the request
	 * are made from the message */
	on_message = !a->update && !a->dry_run && !a->filter->has_where && lct_filter_on_message(a->filter);
	while ((rc = nl_reply_next(&s->reply, &msg)) > 0) {
		const struct nf_conntrack *ct;

		if (NFNL_MSG_TYPE(msg->nlmsg_type) != IPCTNL_MSG_CT_NEW)
			continue;
		if ((rc = selected(s, a, on_message, msg, &ct)) <= 0) {
			if (rc < 0)
				break;
			continue;
		}
		if (where && !accepted(L, where, 1, s, a, &ct))
			continue;
		if (a->dry_run) {
			if (!where)
				lct_flow_adopt(L, &s->scratch);
			lua_rawseti(L, list, ++listed);
			continue;
		}
		rc = queue(L, h, s, a, msg, ct);
		lua_settop(L, top);
		if (rc < 0 || s->acks.error)
			break;
	}
	nl_close(&s->dump);
	if (rc >= 0)
		rc = flush_batch(L, h, s);
	if (rc == 0 && s->acks.error)
		rc = -s->acks.error;
	if (rc < 0)
		return lct_fail_after(L, what, -rc, s->acks.ok);
	if (a->dry_run) {
		lua_pushvalue(L, list);
		return 1;
	}
	lct_push_uint(L, s->acks.ok);
	return 1;
}

static const char *const sweep_options[] = { "dry_run", NULL };

static int selects_tcp_only(const struct filter *f)
{
	int i;

	for (i = 0; i < f->nterms; i++)
		if (f->terms[i].field == FIELD_PROTO && f->terms[i].single && f->terms[i].mask == ~(uint64_t)0 &&
		    f->terms[i].value == IPPROTO_TCP)
			return 1;
	return 0;
}

/* Stack: handle(1) filter(2) [changes(3)] [opts]. Everything is checked
 * before anything is sent; an empty filter is refused: flush empties a table. */
static void parse_args(lua_State *L, int update, struct sweep_args *a)
{
	int opts = update ? 4 : 3, top = lua_gettop(L);

	memset(a, 0, sizeof(*a));
	a->update = update;
	if (lua_type(L, 2) != LUA_TTABLE && lua_type(L, 2) != LUA_TFUNCTION)
		luaL_error(L, "bad argument 'filter': expected a flow, a table or a function, got %s", luaL_typename(L, 2));
	a->filter = lct_filter_parse(L, 2);   /* pushed above the arguments: kept for the operation */
	if (lct_filter_is_empty(a->filter) && !a->filter->has_where)
		luaL_error(L, "bad argument 'filter': an empty filter matches every flow (flush empties the table)");
	if (update) {   /* an argument not given is read past the filter: none */
		lct_changes_parse(L, top >= 3 ? 3 : top + 2, &a->changes);
		lct_changes_check_state(L, &a->changes, selects_tcp_only(a->filter));
	}
	if (opts <= top && !lua_isnoneornil(L, opts)) {
		luaL_checktype(L, opts, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, opts)) {
			if (!lct_key_is(L, -2, "dry_run"))
				lct_unknown_option(L, -2, update ? "update" : "delete", sweep_options);
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
