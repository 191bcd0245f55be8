/*
 * dump.c: the streaming dump iterator. Each dump has its own socket, so the
 * handle stays free for get/update/delete inside the loop, and reads one
 * datagram at a time: memory stays flat however large the table. The dump is
 * the loop's closing value: break, an error or the collector ends it.
 */
#include <errno.h>
#include <string.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

enum { DUMP_RUNNING, DUMP_DONE, DUMP_CLOSED };
/* Where the generic for has no closing value (before 5.4), a dump that ends
 * is closed at once; in 5.4 the loop's closing value closes it. */
#if LUA_VERSION_NUM >= 504
#define DUMP_ENDED DUMP_DONE
#else
#define DUMP_ENDED DUMP_CLOSED
#endif

struct dump {
	struct nl nl;
	struct nl_reply reply;
	struct filter filter;
	struct nf_conntrack *scratch;  /* the flow being parsed, until a match adopts it */
	int state;
	int lines;                     /* yield formatted lines instead of flows */
	struct format format;
	char buf[LCT_RECV_SIZE];
};

static void dump_release(struct dump *d, int state)
{
	nl_close(&d->nl);
	if (d->scratch != NULL) {
		nfct_destroy(d->scratch);
		d->scratch = NULL;
	}
	d->state = state;
}

static int dump_close(lua_State *L)
{
	struct dump *d = luaL_checkudata(L, 1, LCT_DUMP);

	if (d->state != DUMP_CLOSED)
		dump_release(d, DUMP_CLOSED);
	return 0;
}

static int dump_fail(lua_State *L, struct dump *d, int err)
{
	dump_release(d, DUMP_ENDED);
	return luaL_error(L, "dump: %s", lct_strerror(-err));
}

static int is_conntrack(const struct nlmsghdr *nlh)
{
	return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
	       NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_CT_NEW;
}

/* The generic-for step: the next flow that passes the C filter and the
 * predicate (user value 1), or nil at the end of the table. */
static int dump_step(lua_State *L)
{
	struct dump *d = luaL_checkudata(L, 1, LCT_DUMP);
	const struct nlmsghdr *msg;
	int rc;

	if (d->state == DUMP_CLOSED)
		return luaL_error(L, "attempt to use a closed dump");
	while (d->state == DUMP_RUNNING) {
		if ((rc = nl_reply_next(&d->reply, &msg)) <= 0) {
			if (rc < 0)
				return dump_fail(L, d, rc);
			dump_release(d, DUMP_ENDED);
			break;
		}
		if (!is_conntrack(msg))
			continue;
		if (lct_scratch_ready(&d->scratch) < 0)
			return dump_fail(L, d, -ENOMEM);
		if (lct_parse_message(msg, d->scratch) < 0)
			return dump_fail(L, d, -EBADMSG);
		if (!lct_filter_match(&d->filter, d->scratch))
			continue;
		if (d->lines && !d->filter.has_where) {
			lct_push_line(L, d->scratch, NFCT_T_UNKNOWN, 0, &d->format);
			return 1;
		}
		lct_flow_adopt(L, &d->scratch);
		if (!d->filter.has_where)
			return 1;
		lua_getiuservalue(L, 1, 1);
		lua_pushvalue(L, -2);
		lua_call(L, 1, 1);
		if (lua_toboolean(L, -1)) {
			lua_pop(L, 1);
			if (d->lines) {
				lct_push_line(L, ((struct flow *)lua_touserdata(L, -1))->ct, NFCT_T_UNKNOWN, 0, &d->format);
				lua_remove(L, -2);
			}
			return 1;
		}
		lua_pop(L, 2);
	}
	lua_pushnil(L);
	return 1;
}

/* opts: { zero = true } zeroes the counters as it reads them (conntrack -L -z);
 * { list = "dying" | "unconfirmed" } reads those lists instead of the table;
 * { format = "extended,id" } yields each flow's line (as flow:format would
 * give it) instead of the flow: no flow object is made unless a predicate
 * needs one. */
static uint16_t check_dump_opts(lua_State *L, int idx, int *lines, struct format *fmt)
{
	uint16_t type = IPCTNL_MSG_CT_GET;

	*lines = 0;
	if (lua_isnoneornil(L, idx))
		return type;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
		if (strcmp(key, "zero") == 0) {
			if (lua_toboolean(L, -1))
				type = IPCTNL_MSG_CT_GET_CTRZERO;
		} else if (strcmp(key, "list") == 0) {
			const char *list = lua_tostring(L, -1);
			if (list && strcmp(list, "dying") == 0)
				type = IPCTNL_MSG_CT_GET_DYING;
			else if (list && strcmp(list, "unconfirmed") == 0)
				type = IPCTNL_MSG_CT_GET_UNCONFIRMED;
			else if (!list || strcmp(list, "conntrack") != 0)
				luaL_error(L, "bad argument 'list': expected \"conntrack\", \"dying\" or \"unconfirmed\"");
		} else if (strcmp(key, "format") == 0) {
			lct_check_format(L, lua_gettop(L), fmt);
			*lines = 1;
		} else {
			luaL_error(L, "bad argument '%s': the options of dump are 'zero', 'list' and 'format'", key);
		}
		lua_pop(L, 1);
	}
	return type;
}

/* ct:dump([filter [, opts]]) -> step, dump, nil, dump */
int lct_dump(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct filter filter;
	struct nlmsghdr *nlh;
	struct dump *d;
	struct format fmt;
	uint16_t type;
	int rc, lines;

	lct_filter_parse(L, 2, &filter);
	type = check_dump_opts(L, 3, &lines, &fmt);
	d = lua_newuserdatauv(L, sizeof(*d), 1);
	d->nl.sock = NULL;
	d->scratch = NULL;
	d->state = DUMP_CLOSED;
	d->filter = filter;
	d->lines = lines;
	d->format = fmt;
	luaL_setmetatable(L, LCT_DUMP);
	lct_filter_push_where(L, 2);
	lua_setiuservalue(L, -2, 1);

	if ((rc = nl_open(&d->nl, h->netns_fd, 0)) < 0)
		return luaL_error(L, "dump: %s", lct_strerror(-rc));
	d->state = DUMP_RUNNING;
	nlh = nl_ct_header(d->buf, type, NLM_F_DUMP, filter.family);
	if (type == IPCTNL_MSG_CT_GET || type == IPCTNL_MSG_CT_GET_CTRZERO)
		lct_filter_to_request(&filter, nlh);
	if ((rc = nl_send(&d->nl, nlh)) < 0)
		return dump_fail(L, d, rc);
	nl_reply_init(&d->reply, &d->nl, d->buf, sizeof(d->buf));

	lua_pushcfunction(L, dump_step);
	lua_insert(L, -2);
	lua_pushnil(L);
	lua_pushvalue(L, -2);
	return 4;
}

static int dump_tostring(lua_State *L)
{
	struct dump *d = luaL_checkudata(L, 1, LCT_DUMP);

	lua_pushfstring(L, "conntrack.dump (%s)", d->state == DUMP_RUNNING ? "running"
	                : d->state == DUMP_DONE ? "done" : "closed");
	return 1;
}

void lct_dump_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", dump_close }, { "__close", dump_close }, { "__tostring", dump_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = { { "close", dump_close }, { NULL, NULL } };

	luaL_newmetatable(L, LCT_DUMP);
	luaL_setfuncs(L, meta, 0);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
}
