/*
 * expect_ops.c: the expectation table on a handle: a streaming dump (its
 * own socket, one datagram at a time), get, create, delete (one, or those
 * a filter selects), flush, count and the per-CPU statistics. Replies are
 * parsed in C; Lua sees them only after each request is over.
 */
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* nil, "op: message", errno, with the kernel's errnos told as they are
 * meant for expectations */
static int fail(lua_State *L, const char *op, int err)
{
	const char *what = NULL;

	if (err == ENOENT)
		what = strcmp(op, "expect_create") == 0 ? "no master flow of that tuple" : "no such expectation";
	else if (err == EEXIST)
		what = "the expectation already exists";
	if (what == NULL)
		return lct_fail(L, op, err);
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", op, what);
	lua_pushinteger(L, err);
	return 3;
}

/* ---- the dump ---- */

enum { XD_RUNNING, XD_DONE, XD_CLOSED };

struct xdump {
	struct nl nl;
	struct nl_reply reply;
	struct xfilter filter;
	int state;
	int busy;                  /* a step (and the predicate it calls) is running */
	int error;                 /* errno of the failure that ended it */
	char buf[LCT_RECV_SIZE];
};

static void xdump_release(struct xdump *d, int state)
{
	nl_close(&d->nl);
	d->state = state;
}

static int xdump_close(lua_State *L)
{
	xdump_release(luaL_checkudata(L, 1, LCT_XDUMP), XD_CLOSED);
	return 0;
}

static int xdump_error(lua_State *L)
{
	return lct_push_last_error(L, "expect_dump", ((struct xdump *)luaL_checkudata(L, 1, LCT_XDUMP))->error);
}

static int xdump_tostring(lua_State *L)
{
	struct xdump *d = luaL_checkudata(L, 1, LCT_XDUMP);

	lua_pushfstring(L, "conntrack.expect_dump (%s)", d->state == XD_RUNNING ? "running"
	                : d->state == XD_DONE ? "done" : "closed");
	return 1;
}

static int is_expectation(const struct nlmsghdr *nlh)
{
	return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_CTNETLINK_EXP &&
	       NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_EXP_NEW;
}

static int xdump_fail(lua_State *L, struct xdump *d, int err)
{
	xdump_release(d, d->state == XD_CLOSED ? XD_CLOSED : XD_DONE);
	d->busy = 0;
	return lct_raise(L, &d->error, "expect_dump", err);
}

/* Calls the predicate (user value 1) with the expectation on top; keeps it
 * there if accepted. The step stays busy meanwhile: its error goes on once
 * the dump is consistent again. */
static int accepted(lua_State *L, struct xdump *d)
{
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		d->busy = 0;
		return lua_error(L);
	}
	if (lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

static int xdump_step(lua_State *L)
{
	struct xdump *d = luaL_checkudata(L, 1, LCT_XDUMP);
	const struct nlmsghdr *msg;
	int rc;

	lua_settop(L, 1);
	if (d->busy)
		return luaL_error(L, "dump already in use");
	if (d->state == XD_CLOSED)
		return luaL_error(L, "attempt to use a closed dump");
	d->busy = 1;
	while (d->state == XD_RUNNING) {
		struct expect *x;
		if ((rc = nl_reply_next(&d->reply, &msg)) <= 0) {
			if (rc < 0)
				return xdump_fail(L, d, -rc);
			xdump_release(d, XD_DONE);
			break;
		}
		if (!is_expectation(msg))
			continue;
		if (msg_check_expect(msg) < 0)
			return xdump_fail(L, d, EBADMSG);
		x = lct_expect_push(L, msg, NFCT_T_UNKNOWN);
		if (!lct_xfilter_match(&d->filter, x) || (d->filter.has_where && !accepted(L, d))) {
			lua_settop(L, 1);
			continue;
		}
		d->busy = 0;
		if (d->state == XD_CLOSED)
			return luaL_error(L, "attempt to use a closed dump");
		return 1;
	}
	d->busy = 0;
#if LUA_VERSION_NUM < 504
	xdump_release(d, XD_CLOSED);
#endif
	lua_pushnil(L);
	return 1;
}

/* Opens a dump of the expectation table on a socket of its own in the
 * handle's namespace; it is left on the stack. */
static struct xdump *open_dump(lua_State *L, struct handle *h, int filter_idx)
{
	struct xdump *d;
	struct nlmsghdr *nlh;
	int rc;

	d = lua_newuserdatauv(L, sizeof(*d), 1);
	d->nl.sock = NULL;
	d->state = XD_CLOSED;
	d->busy = 0;
	d->error = 0;
	luaL_setmetatable(L, LCT_XDUMP);
	lct_xfilter_parse(L, filter_idx, &d->filter);
	if (d->filter.has_where) {
		lua_getfield(L, filter_idx, "where");
		lua_setiuservalue(L, -2, 1);
	}
	d->state = XD_RUNNING;
	if ((rc = nl_open(&d->nl, lct_handle_netns(L, h), 0)) < 0)
		xdump_fail(L, d, -rc);
	nlh = nl_exp_header(d->buf, IPCTNL_MSG_EXP_GET, NLM_F_DUMP, d->filter.family);
	if ((rc = nl_send(&d->nl, nlh)) < 0)
		xdump_fail(L, d, -rc);
	nl_reply_init(&d->reply, &d->nl, d->buf, LCT_RECV_SIZE);
	return d;
}

/* ct:expect_dump([filter]) -> step, dump, nil, dump: for exp in ct:expect_dump{ helper = "ftp" } do */
int lct_expect_dump(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);

	lua_settop(L, 2);
	open_dump(L, h, 2);
	lua_pushcfunction(L, xdump_step);
	lua_insert(L, -2);
	lua_pushnil(L);
	lua_pushvalue(L, -2);
	return 4;
}

/* ---- one expectation ---- */

static int parse_expect_cb(const struct nlmsghdr *nlh, void *data)
{
	if (!is_expectation(nlh))
		return MNL_CB_OK;
	if (lct_expect_parse(nlh, data) < 0) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	return MNL_CB_STOP;
}

/* ct:expect_get{ proto =, src =, dst =, sport =, dport = [, zone =] } ->
 * the expectation a flow of that tuple would match | nil, message, errno */
static int op_get(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct expect *key = lct_expect_new(L), *found;
	struct nlmsghdr *nlh;
	int rc;

	lct_expect_build(L, 2, key, 0);
	found = lct_expect_new(L);
	nlh = nl_exp_header(lct_handle_buf(h), IPCTNL_MSG_EXP_GET, NLM_F_ACK, lct_expect_family(key));
	nfexp_nlmsg_build(nlh, key->exp);
	if ((rc = lct_handle_request(L, h, nlh, parse_expect_cb, found)) < 0)
		return fail(L, "expect_get", -rc);
	if (!found->has_id && !nfexp_attr_is_set(found->exp, ATTR_EXP_EXPECTED))
		return fail(L, "expect_get", ENOENT);
	return 1;
}

/* ct:expect_create{ master_src =, master_dst =, master_sport =, master_dport =,
 * proto =, src =, dst =, sport =, dport =, timeout = [, mask_*, helper, ...] }
 * -> true | nil, message, errno. The master flow must exist, and have a
 * helper unless `helper` names one. */
static int op_create(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct expect *x = lct_expect_new(L);
	struct nlmsghdr *nlh;
	int rc;

	lct_expect_build(L, 2, x, 1);
	nlh = nl_exp_header(lct_handle_buf(h), IPCTNL_MSG_EXP_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
	                    lct_expect_family(x));
	nfexp_nlmsg_build(nlh, x->exp);
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return fail(L, "expect_create", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

/* Deletes that very expectation (its expected tuple and id): 0, or -errno. */
static int delete_one(lua_State *L, struct handle *h, const struct expect *x)
{
	struct nf_expect *key = nfexp_new();
	struct nlmsghdr *nlh;
	int rc;

	if (key == NULL)
		return -ENOMEM;
	if (nfexp_attr_is_set(x->exp, ATTR_EXP_EXPECTED))
		nfexp_set_attr(key, ATTR_EXP_EXPECTED, nfexp_get_attr(x->exp, ATTR_EXP_EXPECTED));
	if (nfexp_attr_is_set(x->exp, ATTR_EXP_ZONE))
		nfexp_set_attr_u16(key, ATTR_EXP_ZONE, nfexp_get_attr_u16(x->exp, ATTR_EXP_ZONE));
	nlh = nl_exp_header(lct_handle_buf(h), IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, lct_expect_family(x));
	nfexp_nlmsg_build(nlh, key);
	nfexp_destroy(key);
	if (x->has_id)
		mnl_attr_put_u32(nlh, CTA_EXPECT_ID, htonl(x->id));
	rc = lct_handle_request(L, h, nlh, NULL, NULL);
	return rc;
}

/* ct:expect_delete(exp) -> true | nil, message, errno;
 * ct:expect_delete(filter) -> the number deleted (those gone meanwhile are
 * not counted) | nil, message (with how many were deleted), errno */
static int op_delete(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct expect *x = lct_to_expect(L, 2);
	unsigned long done = 0;
	int rc;

	if (x != NULL) {
		if (!nfexp_attr_is_set(x->exp, ATTR_EXP_EXPECTED))
			return luaL_error(L, "bad argument 'expectation': delete needs its expected tuple");
		if ((rc = delete_one(L, h, x)) < 0)
			return fail(L, "expect_delete", -rc);
		lua_pushboolean(L, 1);
		return 1;
	}
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	open_dump(L, h, 2);                      /* 3 */
	for (;;) {
		lua_pushcfunction(L, xdump_step);
		lua_pushvalue(L, 3);
		lua_call(L, 1, 1);
		if (lua_isnil(L, -1))
			break;
		rc = delete_one(L, h, lct_check_expect(L, -1));
		lua_pop(L, 1);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			xdump_release(lua_touserdata(L, 3), XD_CLOSED);
			return lct_fail_after(L, "expect_delete", -rc, done);
		}
		done++;
	}
	xdump_release(lua_touserdata(L, 3), XD_CLOSED);
	lct_push_uint(L, done);
	return 1;
}

/* ct:expect_flush([{ family = }]) -> true | nil, message, errno. The
 * kernel empties the whole expectation table whatever the family asked:
 * those of one family are deleted one by one. */
static int op_flush(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct nlmsghdr *nlh;
	int family = lct_check_flush_options(L, 2, "expect_flush"), rc;

	if (family != 0) {
		lua_settop(L, 1);
		lua_createtable(L, 0, 1);
		lua_pushstring(L, family == AF_INET ? "ipv4" : "ipv6");
		lua_setfield(L, -2, "family");
		if (op_delete(L) == 3)
			return 3;
		lua_pushboolean(L, 1);
		return 1;
	}
	nlh = nl_exp_header(lct_handle_buf(h), IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, AF_UNSPEC);
	if ((rc = lct_handle_request(L, h, nlh, NULL, NULL)) < 0)
		return lct_fail(L, "expect_flush", -rc);
	lua_pushboolean(L, 1);
	return 1;
}

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	if (is_expectation(nlh))
		++*(unsigned long *)data;
	return MNL_CB_OK;
}

/* ct:expect_count() -> the number of expectations (the kernel keeps no
 * count of them: they are dumped and counted, as conntrack -C expect does) */
static int op_count(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	unsigned long n = 0;
	struct nl nl = { NULL, 0, 0, NULL };
	char *buf = lct_handle_buf(h);
	int rc;

	if ((rc = nl_open(&nl, lct_handle_netns(L, h), 0)) == 0)
		rc = nl_request(&nl, nl_exp_header(buf, IPCTNL_MSG_EXP_GET, NLM_F_DUMP, AF_UNSPEC), buf, LCT_RECV_SIZE,
		                count_cb, &n);
	nl_close(&nl);
	if (rc < 0)
		return lct_fail(L, "expect_count", -rc);
	lct_push_uint(L, n);
	return 1;
}

#define MAX_CPUS 1024
struct exp_stats {
	int ncpus;
	struct { uint16_t cpu; uint32_t v[CTA_STATS_EXP_MAX + 1]; } cpu[MAX_CPUS];
};

static int stats_cb(const struct nlmsghdr *nlh, void *data)
{
	struct exp_stats *s = data;
	const struct nfgenmsg *nfh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;

	if (s->ncpus == MAX_CPUS)
		return MNL_CB_OK;
	s->cpu[s->ncpus].cpu = ntohs(nfh->res_id);
	memset(s->cpu[s->ncpus].v, 0, sizeof(s->cpu[s->ncpus].v));
	mnl_attr_for_each(attr, nlh, sizeof(*nfh)) {
		unsigned int type = mnl_attr_get_type(attr);
		if (type > CTA_STATS_EXP_MAX || mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			continue;
		s->cpu[s->ncpus].v[type] = ntohl(mnl_attr_get_u32(attr));
	}
	s->ncpus++;
	return MNL_CB_OK;
}

/* ct:expect_stats() -> { { cpu =, new =, create =, delete = }, ... } as conntrack -S expect */
static int op_stats(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct exp_stats *s = lua_newuserdatauv(L, sizeof(*s), 0);   /* scratch */
	struct nlmsghdr *nlh;
	int rc, i;

	s->ncpus = 0;
	nlh = nl_exp_header(lct_handle_buf(h), IPCTNL_MSG_EXP_GET_STATS_CPU, NLM_F_DUMP, AF_UNSPEC);
	if ((rc = lct_handle_request(L, h, nlh, stats_cb, s)) < 0)
		return lct_fail(L, "expect_stats", -rc);
	lua_createtable(L, s->ncpus, 0);
	for (i = 0; i < s->ncpus; i++) {
		lua_createtable(L, 0, 4);
		lua_pushinteger(L, s->cpu[i].cpu);
		lua_setfield(L, -2, "cpu");
		lct_push_uint(L, s->cpu[i].v[CTA_STATS_EXP_NEW]);
		lua_setfield(L, -2, "new");
		lct_push_uint(L, s->cpu[i].v[CTA_STATS_EXP_CREATE]);
		lua_setfield(L, -2, "create");
		lct_push_uint(L, s->cpu[i].v[CTA_STATS_EXP_DELETE]);
		lua_setfield(L, -2, "delete");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

void lct_expect_ops_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", xdump_close }, { "__close", xdump_close }, { "__tostring", xdump_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = { { "close", xdump_close }, { "error", xdump_error }, { NULL, NULL } };

	lct_new_class(L, LCT_XDUMP, meta, methods);
}

void lct_expect_ops_register(lua_State *L)
{
	static const luaL_Reg ops[] = {
		{ "expect_dump", lct_expect_dump }, { "expect_get", op_get }, { "expect_create", op_create },
		{ "expect_delete", op_delete }, { "expect_flush", op_flush }, { "expect_count", op_count },
		{ "expect_stats", op_stats }, { NULL, NULL }
	};
	luaL_setfuncs(L, ops, 0);
}
