/*
 * dump.c: the streaming dump iterator. Each dump has its own socket, so the
 * handle stays free for get/update/delete inside the loop, and reads one
 * datagram at a time: memory stays flat however large the table. The dump is
 * the loop's closing value: break, an error or the collector ends it. A step
 * is not re-entrant: Lua code it runs that steps the dump again gets
 * "dump already in use".
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
	const struct filter *filter;   /* its userdata: user value 2 */
	struct nf_conntrack *scratch;  /* the flow being parsed, until a match adopts it */
	int state;
	int lines;                     /* yield formatted lines instead of flows */
	int batch;                     /* yield the lines of a datagram at once */
	int last;                      /* ended, its last lines yielded: the next step ends the loop */
	int busy;                      /* a step is running: see dump_step */
	int error;                     /* the errno of the failure that ended it, for dump:error() */
	struct format format;
	const struct nlattr *tb[CTA_LABELS + 1];   /* the top level of a message only checked */
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

/* close and __close. Lua code a step runs (its predicate, a finalizer) may
 * close the dump: the socket goes at once (every read checks the state
 * first), the scratch the step parses into at the step's end. */
static int dump_close(lua_State *L)
{
	struct dump *d = luaL_checkudata(L, 1, LCT_DUMP);

	if (d->busy) {
		nl_close(&d->nl);
		d->state = DUMP_CLOSED;
	} else {
		dump_release(d, DUMP_CLOSED);
	}
	d->last = 0;
	return 0;
}

/* Only the collector calls it (the metatable is protected): no step runs. */
static int dump_gc(lua_State *L)
{
	dump_release(luaL_checkudata(L, 1, LCT_DUMP), DUMP_CLOSED);
	return 0;
}

/* The end of a step: on its return, and before any error it raises. */
static void step_end(struct dump *d)
{
	d->busy = 0;
	if (d->state == DUMP_CLOSED)
		dump_release(d, DUMP_CLOSED);
}

static int dump_fail(lua_State *L, struct dump *d, int err)
{
	dump_release(d, d->state == DUMP_CLOSED ? DUMP_CLOSED : DUMP_ENDED);
	step_end(d);
	return lct_raise(L, &d->error, "dump", -err);
}

/* dump:error() -> nil, or the message and errno of the failure that ended it */
static int dump_error(lua_State *L)
{
	return lct_push_last_error(L, "dump", ((struct dump *)luaL_checkudata(L, 1, LCT_DUMP))->error);
}

static int is_conntrack(const struct nlmsghdr *nlh)
{
	return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
	       NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_CT_NEW;
}

/* The next flow that passes the C filter: 1 and *msg, the flow parsed into
 * d->scratch if `parse`, else checked (for a line) or only its top level
 * indexed (a flow, checked when read); 0 at the end of the table. */
static int next_flow(lua_State *L, struct dump *d, const struct nlmsghdr **msg, int parse)
{
	int rc;

	while (d->state == DUMP_RUNNING) {
		if ((rc = nl_reply_next(&d->reply, msg)) <= 0) {
			if (rc < 0)
				return dump_fail(L, d, rc);
			dump_release(d, DUMP_ENDED);
			break;
		}
		if (!is_conntrack(*msg))
			continue;
		if (!parse) {
			if ((d->lines ? msg_check_index(*msg, d->tb, CTA_LABELS)
			              : msg_index_top(*msg, d->tb, CTA_LABELS)) < 0)
				return dump_fail(L, d, -EBADMSG);
			return 1;
		}
		if (lct_scratch_ready(&d->scratch) < 0)
			return dump_fail(L, d, -ENOMEM);
		if (msg_parse(*msg, d->scratch) < 0)
			return dump_fail(L, d, -EBADMSG);
		if (lct_filter_match(d->filter, d->scratch))
			return 1;
	}
	return 0;
}

/* The upvalues of the step: the metatables of dumps and of flows that
 * embed their nf_conntrack. */
#define DUMP_MT lua_upvalueindex(1)
#define FLOW_MT lua_upvalueindex(2)

/* Pushes the flow in d->scratch and calls the predicate (user value 1) with
 * it: 1 with the flow left on the stack if it is accepted, else 0. The call
 * is protected so that the step ends before the predicate's error goes on. */
static int accepted(lua_State *L, struct dump *d)
{
	if (lct_flow_adopt_mt(L, &d->scratch, FLOW_MT) == NULL) {
		step_end(d);
		return luaL_error(L, "attempt to use a closed dump");
	}
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		step_end(d);
		return lua_error(L);
	}
	if (lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

/* The dump's buffer for one line or JSON object. */
#define DUMP_LINE_MAX (MSG_JSON_MAX > MSG_LINE_MAX ? MSG_JSON_MAX : MSG_LINE_MAX)

/* The line of the flow in msg into line (DUMP_LINE_MAX bytes), written from
 * the message (format.c): its length, or -1 where only the library can. */
static int fast_line(const struct dump *d, const struct nlmsghdr *msg, char *line)
{
	if (d->format.json)
		return msg_format_json(line, msg);
	if (d->format.type != NFCT_O_DEFAULT)
		return -1;
	return msg_format_line(line, msg, NFCT_T_UNKNOWN, d->format.flags, d->format.labels);
}

/* Pushes the library's line of the flow in msg: ct is the flow parsed, or
 * NULL when it was only checked (it is parsed now). */
static void push_library_line(lua_State *L, struct dump *d, const struct nlmsghdr *msg,
                              const struct nf_conntrack *ct)
{
	if (ct == NULL) {
		if (lct_scratch_ready(&d->scratch) < 0)
			dump_fail(L, d, -ENOMEM);
		if (msg_parse(msg, d->scratch) < 0)
			dump_fail(L, d, -EBADMSG);
		ct = d->scratch;
	}
	if (lct_push_line(L, ct, NFCT_T_UNKNOWN, 0, &d->format) < 0) {
		step_end(d);
		luaL_error(L, "cannot format flow");
	}
}

static const struct nf_conntrack *top_flow(lua_State *L)
{
	return ((const struct flow *)lua_touserdata(L, -1))->ct;
}

/* The batch step: the lines of the flows left in the datagram at hand (at
 * least one flow's, reading on if it held none), as one string of lines
 * each ending in "\n", and their number (2 values); 0 at the end of the
 * table. With a predicate, one line a step: an error it raises loses no line
 * it accepted. The buffer is used with a balanced stack between its
 * operations. */
static int dump_batch(lua_State *L, struct dump *d, int parse)
{
	char line[DUMP_LINE_MAX];
	const struct nlmsghdr *msg;
	luaL_Buffer b;
	int n = 0, len;

	luaL_buffinit(L, &b);
	while ((n == 0 || (nl_reply_buffered(&d->reply) && !d->filter->has_where)) && next_flow(L, d, &msg, parse)) {
		const struct nf_conntrack *ct = parse ? d->scratch : NULL;
		int flow = d->filter->has_where;
		if (flow) {
			if (!accepted(L, d))
				continue;
			ct = top_flow(L);
		}
		if ((len = fast_line(d, msg, line)) >= 0) {
			if (flow)
				lua_pop(L, 1);
			line[len] = '\n';
			luaL_addlstring(&b, line, (size_t)len + 1);
		} else {
			push_library_line(L, d, msg, ct);
			if (flow)
				lua_remove(L, -2);
			luaL_addvalue(&b);
			luaL_addchar(&b, '\n');
		}
		n++;
	}
	if (n == 0)
		return 0;
	/* ended by the kernel, not closed by Lua code: the next step ends the loop */
	d->last = d->reply.done;
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

/* Pushes the flow of msg: parsed into d->scratch already if `parse`, else
 * kept unparsed until the loop reads it (a loop that counts never parses). */
static void push_flow(lua_State *L, struct dump *d, const struct nlmsghdr *msg, int parse)
{
	if (!parse && lct_flow_push_unparsed(L, msg, d->tb, FLOW_MT) != NULL)
		return;
	if (!parse) {                  /* too large to wait, or its parse owns memory */
		if (lct_scratch_ready(&d->scratch) < 0)
			dump_fail(L, d, -ENOMEM);
		if (msg_parse(msg, d->scratch) < 0)
			dump_fail(L, d, -EBADMSG);
	}
	lct_flow_adopt_mt(L, &d->scratch, FLOW_MT);
}

/* The next flow that passes the C filter and the predicate (user value 1),
 * or its line (1 value); 0 at the end of the table. Lines of flows no
 * filter needs parsed are written from the message. */
static int dump_one(lua_State *L, struct dump *d, int parse)
{
	const struct nlmsghdr *msg;
	char line[DUMP_LINE_MAX];
	int len;

	while (next_flow(L, d, &msg, parse)) {
		if (d->filter->has_where && !accepted(L, d))
			continue;
		if (!d->lines) {
			if (!d->filter->has_where)   /* (a predicate's flow is at the top already) */
				push_flow(L, d, msg, parse);
		} else if ((len = fast_line(d, msg, line)) >= 0) {
			lua_pushlstring(L, line, (size_t)len);
		} else {
			push_library_line(L, d, msg, d->filter->has_where ? top_flow(L) : parse ? d->scratch : NULL);
		}
		return 1;
	}
	return 0;
}

/* The generic-for step. While it runs, Lua code (the predicate, a finalizer
 * the collector calls at an allocation) may close the dump or step it
 * again: the step holds the message and the flow being parsed, so the dump
 * is busy, another step raises "dump already in use", and a close is
 * finished by step_end. A step that finds the dump closed that way ends
 * the loop as a closed dump does, with an error. (An error the step does
 * not raise itself, out of memory, leaves the dump busy: it can be closed.) */
static int dump_step(lua_State *L)
{
	struct dump *d = lua_touserdata(L, 1);
	int n, parse, closed;

	/* the metatable compared directly: cheaper than luaL_checkudata's lookup by name */
	if (d == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, DUMP_MT))
		d = luaL_checkudata(L, 1, LCT_DUMP);
	lua_settop(L, 1);
	/* flows that no filter reads are parsed when the loop reads them */
	parse = !lct_filter_is_empty(d->filter) || d->filter->has_where;
	if (d->busy)
		return luaL_error(L, "dump already in use");
	if (d->state == DUMP_CLOSED && !d->last)
		return luaL_error(L, "attempt to use a closed dump");
	d->last = 0;
	d->busy = 1;
	n = d->batch ? dump_batch(L, d, parse) : dump_one(L, d, parse);
	closed = d->state == DUMP_CLOSED && !d->reply.done;
	step_end(d);
	if (n > 0)
		return n;
	if (closed)
		return luaL_error(L, "attempt to use a closed dump");
	lua_pushnil(L);
	return 1;
}

/* opts: { zero = true } zeroes the counters as it reads them (conntrack -L -z);
 * { list = "dying" | "unconfirmed" } reads those lists instead of the table;
 * { format = "extended,id" } yields each flow's line (as flow:format would
 * give it; "json": its JSON object) instead of the flow: no flow object is made unless a predicate
 * needs one; with batch = true the lines of a whole datagram come at once,
 * with their number (fewer, larger writes: what lua-conntrack -L uses). */
static const char *const dump_options[] = { "zero", "list", "format", "batch", NULL };

static uint16_t check_dump_opts(lua_State *L, int idx, int *lines, int *batch, struct format *fmt)
{
	uint16_t type = IPCTNL_MSG_CT_GET;

	*lines = *batch = 0;
	fmt->type = NFCT_O_DEFAULT;
	fmt->flags = 0;
	fmt->labels = 0;
	fmt->json = 0;
	if (lua_isnoneornil(L, idx))
		return type;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lct_key_is(L, -2, "zero")) {
			if (lua_toboolean(L, -1))
				type = IPCTNL_MSG_CT_GET_CTRZERO;
		} else if (lct_key_is(L, -2, "list")) {
			if (lct_key_is(L, -1, "dying"))
				type = IPCTNL_MSG_CT_GET_DYING;
			else if (lct_key_is(L, -1, "unconfirmed"))
				type = IPCTNL_MSG_CT_GET_UNCONFIRMED;
			else if (!lct_key_is(L, -1, "conntrack"))
				luaL_error(L, "bad argument 'list': expected \"conntrack\", \"dying\" or \"unconfirmed\"");
		} else if (lct_key_is(L, -2, "format")) {
			lct_check_format(L, lua_gettop(L), fmt);
			*lines = 1;
		} else if (lct_key_is(L, -2, "batch")) {
			*batch = lua_toboolean(L, -1);
		} else {
			lct_unknown_option(L, -2, "dump", dump_options);
		}
		lua_pop(L, 1);
	}
	if (*batch && !*lines)
		luaL_error(L, "bad argument 'batch': batches are of lines (it needs 'format')");
	return type;
}

/* ct:dump([filter [, opts]]) -> step, dump, nil, dump */
int lct_dump(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	const struct filter *filter;
	struct dump *d;
	struct format fmt;
	uint16_t type;
	int rc, lines, batch, fidx;

	lua_settop(L, 3);
	filter = lct_filter_parse(L, 2);
	fidx = lua_gettop(L);
	type = check_dump_opts(L, 3, &lines, &batch, &fmt);
	d = lua_newuserdatauv(L, sizeof(*d), 2);
	d->nl.sock = NULL;
	d->scratch = NULL;
	d->state = DUMP_CLOSED;
	d->filter = filter;
	d->lines = lines;
	d->batch = batch;
	d->last = 0;
	d->busy = 0;
	d->error = 0;
	d->format = fmt;
	luaL_setmetatable(L, LCT_DUMP);
	lct_filter_push_where(L, 2);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, fidx);
	lua_setiuservalue(L, -2, 2);

	d->state = DUMP_RUNNING;
	if ((rc = lct_request_dump(&d->nl, &d->reply, lct_handle_netns(L, h), d->buf, type, filter)) < 0)
		return dump_fail(L, d, rc);

	luaL_getmetatable(L, LCT_DUMP);
	luaL_getmetatable(L, LCT_FLOW_PLAIN);
	lua_pushcclosure(L, dump_step, 2);
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
		{ "__gc", dump_gc }, { "__close", dump_close }, { "__tostring", dump_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = { { "close", dump_close }, { "error", dump_error }, { NULL, NULL } };

	lct_new_class(L, LCT_DUMP, meta, methods);
}
