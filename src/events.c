/*
 * events.c: subscriptions to the kernel's conntrack events. The socket is
 * read only when the caller asks (next, each, dispatch), never inside a
 * library callback. Losses are never silent: a kernel drop (ENOBUFS) is an
 * "overflow" event, optionally followed by a re-read of the table ("sync"
 * events, then "synced") so a mirror can reconcile. Chosen signals come as
 * "signal" events (a signalfd read between datagrams, see signals.c). Lua
 * code run meanwhile (a predicate, a handler, a finalizer) may close the
 * subscription or read it again: every read checks it is open, and no state
 * is held across Lua.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define LCT_EVENTS_BUFFER (64 << 20)   /* default: a burst of 2 x 100,000 fits, measured */

enum { EV_NEW = 1, EV_UPDATE = 2, EV_DESTROY = 4, EV_XNEW = 8, EV_XDESTROY = 16 };
#define EV_FLOWS (EV_NEW | EV_UPDATE | EV_DESTROY)
#define EV_EXPECTATIONS (EV_XNEW | EV_XDESTROY)
#define EV_NKINDS 5
enum { SYNC_NONE, SYNC_DUMPING, SYNC_XDUMPING, SYNC_DONE };

/* by bit: flows' events, then expectations' */
static const char *const kind_names[] = { "new", "update", "destroy", "expect_new", "expect_destroy" };

struct events {
	struct nl nl;
	int closed;
	int netns_fd;               /* owned copy, for a resync dump */
	unsigned int kinds;         /* EV_* wanted */
	int resync;
	int sync;                   /* SYNC_* */
	lua_Integer overflows;
	int error;                  /* the errno of the failure raised last, for sub:error() */
	const struct filter *filter;   /* its userdata: user value 2 */
	struct xfilter xfilter;     /* of expectations' events (its predicate: user value 3) */
	struct nf_conntrack *scratch;
	struct sigwatch sig;        /* signals = { ... }: fd -1 without */
	struct nl sync_nl;          /* the resync dump */
	struct nl_reply sync_reply;
	size_t len, off;            /* events not yet handed out in buf */
	char buf[LCT_RECV_SIZE];
	char sync_buf[LCT_RECV_SIZE];
};

static struct events *check_events(lua_State *L, int idx)
{
	struct events *ev = luaL_checkudata(L, idx, LCT_EVENTS);

	if (ev->closed)
		luaL_error(L, "attempt to use a closed subscription");
	return ev;
}

static int events_close(lua_State *L)
{
	struct events *ev = luaL_checkudata(L, 1, LCT_EVENTS);

	if (!ev->closed) {
		nl_close(&ev->nl);
		nl_close(&ev->sync_nl);
		if (ev->scratch != NULL)
			nfct_destroy(ev->scratch);
		ev->scratch = NULL;
		if (ev->netns_fd >= 0)
			close(ev->netns_fd);
		ev->netns_fd = -1;
		lct_sigwatch_close(&ev->sig);
		ev->closed = 1;
	}
	return 0;
}

/* The kind of an event message: NEW with NLM_F_CREATE is a new flow. */
static int kind_of(const struct nlmsghdr *nlh)
{
	if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_CTNETLINK_EXP) {
		switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
		case IPCTNL_MSG_EXP_NEW:    return EV_XNEW;
		case IPCTNL_MSG_EXP_DELETE: return EV_XDESTROY;
		}
		return 0;
	}
	if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK)
		return 0;
	switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
	case IPCTNL_MSG_CT_NEW:
		return nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL) ? EV_NEW : EV_UPDATE;
	case IPCTNL_MSG_CT_DELETE:
		return EV_DESTROY;
	}
	return 0;
}

/* What next_event and its parts return when Lua code closed the subscription. */
#define EV_CLOSED (-1)

static int nfct_type_of(int kind)
{
	return kind & (EV_NEW | EV_XNEW) ? NFCT_T_NEW : kind == EV_UPDATE ? NFCT_T_UPDATE : NFCT_T_DESTROY;
}

static const char *kind_name(int kind)
{
	int i;

	for (i = 0; i < EV_NKINDS; i++)
		if (kind == 1 << i)
			return kind_names[i];
	return "?";
}

/* Whether the predicate in the subscription's user value uv holds for the
 * object on top of the stack; the object is popped when it does not. */
static int holds(lua_State *L, int ev_idx, int uv)
{
	lua_getiuservalue(L, ev_idx, uv);
	lua_pushvalue(L, -2);
	lua_call(L, 1, 1);
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 2);
		return 0;
	}
	lua_pop(L, 1);
	return 1;
}

/* The same as push_if_match for an expectation's message: its own filter
 * and predicate (user value 3). kind 0: a resync's. */
static int push_expect_if_match(lua_State *L, int ev_idx, struct events *ev, const struct nlmsghdr *msg, int kind)
{
	struct expect *x;

	if (ev->closed)
		return EV_CLOSED;
	if (msg_check_expect(msg) < 0)
		return 0;
	x = lct_expect_push(L, msg, (uint8_t)(kind ? nfct_type_of(kind) : NFCT_T_UNKNOWN));
	if (!lct_xfilter_match(&ev->xfilter, x)) {
		lua_pop(L, 1);
		return 0;
	}
	if (ev->xfilter.has_where && !holds(L, ev_idx, 3))
		return 0;
	return ev->closed ? EV_CLOSED : 1;
}

/* Parses msg into a new flow on the stack if it passes the C filter and the
 * predicate (user value 1); returns whether it did, or EV_CLOSED. */
static int push_if_match(lua_State *L, int ev_idx, struct events *ev, const struct nlmsghdr *msg, int kind)
{
	struct flow *fl;

	if (ev->closed)
		return EV_CLOSED;
	if (lct_scratch_ready(&ev->scratch) < 0)
		return luaL_error(L, "not enough memory");
	if (msg_parse(msg, ev->scratch) < 0 || !lct_filter_match(ev->filter, ev->scratch))
		return 0;
	if ((fl = lct_flow_adopt(L, &ev->scratch)) == NULL)
		return EV_CLOSED;
	fl->type = (uint8_t)(kind ? nfct_type_of(kind) : NFCT_T_UNKNOWN);
	fl->portid = kind ? msg->nlmsg_pid : 0;
	if (ev->filter->has_where && !holds(L, ev_idx, 1))
		return 0;
	return 1;
}

/* The expectations' part of a resync, once the flows' is over. */
static int start_expect_resync(struct events *ev)
{
	int rc;

	nl_close(&ev->sync_nl);
	if ((rc = nl_open(&ev->sync_nl, ev->netns_fd, 0)) < 0 ||
	    (rc = nl_send(&ev->sync_nl, nl_exp_header(ev->sync_buf, IPCTNL_MSG_EXP_GET, NLM_F_DUMP,
	                                              ev->xfilter.family))) < 0)
		return rc;
	nl_reply_init(&ev->sync_reply, &ev->sync_nl, ev->sync_buf, LCT_RECV_SIZE);
	ev->sync = SYNC_XDUMPING;
	return 0;
}

static int start_resync(struct events *ev)
{
	int rc;

	if (!(ev->kinds & EV_FLOWS))
		return start_expect_resync(ev);
	nl_close(&ev->sync_nl);
	if ((rc = lct_request_dump(&ev->sync_nl, &ev->sync_reply, ev->netns_fd, ev->sync_buf, IPCTNL_MSG_CT_GET,
	                           ev->filter)) < 0)
		return rc;
	ev->sync = SYNC_DUMPING;
	return 0;
}

/* Stack: ... flow. Pushes kind, flow, time for an event: 3. */
static int push_event(lua_State *L, const char *kind)
{
	lua_pushstring(L, kind);
	lua_insert(L, -2);
	lua_pushnumber(L, lct_now(CLOCK_REALTIME));
	return 3;
}

/* The same for an event of the kernel: its time is when the kernel made it
 * where the kernel says (CTA_TIMESTAMP_EVENT, as conntrack 1.4.9 prints it),
 * else when it was received. */
static int push_kernel_event(lua_State *L, const char *kind, const struct nlmsghdr *nlh)
{
	double t;

	lua_pushstring(L, kind);
	lua_insert(L, -2);
	lua_pushnumber(L, msg_event_time(nlh, &t) ? t : lct_now(CLOCK_REALTIME));
	return 3;
}

/* The next flow of a resync dump as a "sync" event (an expectation as an
 * "expect_sync" one); 0 when it is over. */
static int next_sync(lua_State *L, int ev_idx, struct events *ev)
{
	const struct nlmsghdr *msg;
	int rc = 0, pushed, expectations = ev->sync == SYNC_XDUMPING;

	while (!ev->closed && (rc = nl_reply_next(&ev->sync_reply, &msg)) > 0) {
		if (expectations) {
			if (NFNL_MSG_TYPE(msg->nlmsg_type) != IPCTNL_MSG_EXP_NEW)
				continue;
			pushed = push_expect_if_match(L, ev_idx, ev, msg, 0);
		} else {
			if (NFNL_MSG_TYPE(msg->nlmsg_type) != IPCTNL_MSG_CT_NEW)
				continue;
			pushed = push_if_match(L, ev_idx, ev, msg, 0);
		}
		if (pushed == EV_CLOSED)
			break;
		if (pushed)
			return push_event(L, expectations ? "expect_sync" : "sync");
	}
	if (ev->closed)
		return EV_CLOSED;
	nl_close(&ev->sync_nl);
	ev->sync = SYNC_DONE;
	if (rc == 0 && !expectations && (ev->kinds & EV_EXPECTATIONS))
		rc = start_expect_resync(ev);
	if (rc < 0)
		return lct_raise(L, &ev->error, "events: resync failed", -rc);
	return 0;
}

/* One datagram of events, without blocking: 1, 0 if none, -errno. (A
 * datagram too large for the buffer cannot be an event: skipped.) */
static int receive(struct events *ev)
{
	ssize_t n;

	while ((n = nl_receive(&ev->nl, ev->buf, sizeof(ev->buf), MSG_DONTWAIT)) == -EMSGSIZE)
		;
	if (n <= 0)
		return (int)n;
	ev->len = (size_t)n;
	ev->off = 0;
	return 1;
}

/* Discards the events queued when the kernel reported a drop: the resync
 * dump that follows supersedes them, and the kernel reports a further drop
 * only once the queue has been empty. Bounded by what the buffer can hold,
 * so a flood cannot keep us here. */
static void drain(struct events *ev)
{
	int size = 0;
	long drained = 0;
	socklen_t len = sizeof(size);

	ev->off = ev->len;
	if (getsockopt(nl_fd(&ev->nl), SOL_SOCKET, SO_RCVBUF, &size, &len) < 0)
		size = 0;
	while (drained <= size) {
		int rc = receive(ev);
		if (rc == 0 || (rc < 0 && rc != -ENOBUFS))
			break;
		drained += rc > 0 ? (long)ev->len : 0;
	}
	ev->off = ev->len;
}

/* The next wanted event of the datagram at hand: 3 (pushed), 0 when it is
 * used up, or EV_CLOSED. */
static int next_queued(lua_State *L, int ev_idx, struct events *ev)
{
	int rc;

	while (ev->off < ev->len) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)(ev->buf + ev->off);
		int left = (int)(ev->len - ev->off), kind;

		if (!mnl_nlmsg_ok(nlh, left))
			break;
		ev->off += NLMSG_ALIGN(nlh->nlmsg_len);
		kind = kind_of(nlh);
		if (!(kind & ev->kinds))
			continue;
		rc = kind & EV_EXPECTATIONS ? push_expect_if_match(L, ev_idx, ev, nlh, kind)
		                            : push_if_match(L, ev_idx, ev, nlh, kind);
		if (rc == 0)
			continue;
		if (rc == EV_CLOSED)
			return EV_CLOSED;
		return push_kernel_event(L, kind_name(kind), nlh);
	}
	ev->off = ev->len;
	return 0;
}

/* Reads the next datagram without blocking: 1 when one came, 0 if none
 * waits, or 3 with an "overflow" event pushed (the kernel dropped events:
 * said, and the table re-read if asked). Raises on a failure. */
static int read_more(lua_State *L, struct events *ev)
{
	int rc = receive(ev);

	if (rc == -ENOBUFS) {
		ev->overflows++;
		if (ev->resync) {
			drain(ev);
			if ((rc = start_resync(ev)) < 0)
				return lct_raise(L, &ev->error, "events: resync failed", -rc);
		}
		lua_pushliteral(L, "overflow");
		lua_pushinteger(L, ev->overflows);
		lua_pushnumber(L, lct_now(CLOCK_REALTIME));
		return 3;
	}
	if (rc < 0)
		return lct_raise(L, &ev->error, "events", -rc);
	return rc;
}

/* Waits until the socket (or the signals' descriptor) is readable or the
 * deadline passes: 1 to read again, 0 to return (the deadline passed, or
 * lua.c's hook waits to run: Ctrl-C). */
static int wait_readable(lua_State *L, struct events *ev, double timeout, double deadline)
{
	struct pollfd p[2] = { { nl_fd(&ev->nl), POLLIN, 0 }, { ev->sig.fd, POLLIN, 0 } };
	int rc = lct_wait_readable(L, p, ev->sig.fd >= 0 ? 2 : 1, timeout, deadline);

	if (rc < 0) {
		ev->error = -rc;
		return luaL_error(L, "events: %s", strerror(-rc));
	}
	return rc;
}

/* A signal of the subscription's as a "signal" event: 3 pushed (kind,
 * name, time), or 0 if none waits. */
static int next_signal(lua_State *L, struct events *ev)
{
	uint32_t pid;
	int rc = lct_sigwatch_read(&ev->sig, &pid);

	if (rc < 0)
		return lct_raise(L, &ev->error, "events: signals", -rc);
	if (rc == 0)
		return 0;
	lua_pushstring(L, lct_signal_name(rc));
	return push_event(L, "signal");
}

/* Pushes kind, flow, time for the next event and returns 3, or returns 0
 * when none came within timeout seconds (< 0: wait for ever) or a signal
 * came; EV_CLOSED: Lua code it ran closed the subscription. A resync's
 * "sync" events and its "synced" come before the events queued after it. */
static int next_event(lua_State *L, int ev_idx, struct events *ev, double timeout)
{
	double deadline = lct_now(CLOCK_MONOTONIC) + timeout;
	int rc;

	for (;;) {
		if (ev->closed)
			return EV_CLOSED;
		while (ev->sync == SYNC_DUMPING || ev->sync == SYNC_XDUMPING)
			if ((rc = next_sync(L, ev_idx, ev)) != 0)
				return rc;
		if (ev->sync == SYNC_DONE) {
			ev->sync = SYNC_NONE;
			lua_pushnil(L);
			return push_event(L, "synced");
		}
		if ((rc = next_queued(L, ev_idx, ev)) != 0)
			return rc;
		if (ev->closed)
			return EV_CLOSED;
		/* between datagrams: a signal is seen even under a flood of events */
		if ((rc = next_signal(L, ev)) != 0)
			return rc;
		if ((rc = read_more(L, ev)) == 3)
			return rc;
		if (rc == 0 && !wait_readable(L, ev, timeout, deadline))
			return 0;
	}
}

/* The outcome of next_event for next and each: n values, or nothing (0). */
static int event_or_nothing(lua_State *L, int n)
{
	if (n == EV_CLOSED)
		return luaL_error(L, "attempt to use a closed subscription");
	return n;
}

/* sub:next([timeout]) -> kind, flow, time | nil, "timeout" */
static int events_next(lua_State *L)
{
	struct events *ev = check_events(L, 1);
	double timeout = lct_check_timeout(L, 2);
	int n;

	lua_settop(L, 1);
	if ((n = event_or_nothing(L, next_event(L, 1, ev, timeout))) > 0)
		return n;
	lua_pushnil(L);
	lua_pushliteral(L, "timeout");
	return 2;
}

/* the generic-for step of sub:each(t): upvalue 1 is the quiet time allowed
 * (-1: for ever), checked by each */
static int each_step(lua_State *L)
{
	struct events *ev = check_events(L, 1);
	double timeout = lua_tonumber(L, lua_upvalueindex(1));

	lua_settop(L, 1);
	if (event_or_nothing(L, next_event(L, 1, ev, timeout)) > 0)
		return 3;
	lua_pushnil(L);
	return 1;
}

/* for kind, flow, time in sub:each([quiet]) do: ends after quiet seconds without events */
static int events_each(lua_State *L)
{
	check_events(L, 1);
	lua_pushnumber(L, lct_check_timeout(L, 2));
	lua_pushcclosure(L, each_step, 1);
	lua_pushvalue(L, 1);
	return 2;
}

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* sub:dispatch{ new = fn, update = fn, destroy = fn, overflow = fn, ... }:
 * hands every event already waiting to its handler as (flow, kind, time),
 * without blocking; returns how many it handed out. A handler's error comes
 * back with its traceback; the subscription stays usable. A handler (or a
 * predicate) that closes the subscription ends the dispatch there. */
static int events_dispatch(lua_State *L)
{
	struct events *ev = check_events(L, 1);
	lua_Integer handled = 0;
	int base;

	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	/* a misspelt kind would silently drop its events */
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		static const char *const kinds[] = { "new", "update", "destroy", "expect_new", "expect_destroy",
		                                     "overflow", "sync", "expect_sync", "synced", "signal", NULL };
		int i;
		for (i = 0; kinds[i] && !lct_key_is(L, -2, kinds[i]); i++)
			;
		if (kinds[i] == NULL)
			return luaL_error(L, "bad argument '%s': not an event kind (new, update, destroy, expect_new, "
			                  "expect_destroy, overflow, sync, expect_sync, synced, signal)",
			                  lua_type(L, -2) == LUA_TSTRING ? lct_key_name(L, -2) : luaL_typename(L, -2));
		if (!lua_isfunction(L, -1))
			return luaL_error(L, "bad argument '%s': expected a function, got %s", kinds[i], luaL_typename(L, -1));
		lua_pop(L, 1);
	}
	lua_pushcfunction(L, traceback);
	base = lua_gettop(L);
	while (!ev->closed && next_event(L, 1, ev, 0) > 0) {
		if (lua_getfield(L, 2, lua_tostring(L, base + 1)) == LUA_TNIL) {
			lua_settop(L, base);
			continue;
		}
		lua_pushvalue(L, base + 2);
		lua_pushvalue(L, base + 1);
		lua_pushvalue(L, base + 3);
		if (lua_pcall(L, 3, 0, base) != LUA_OK)
			return lua_error(L);
		handled++;
		lua_settop(L, base);
	}
	lua_pushinteger(L, handled);
	return 1;
}

/* sub:pending(): are events waiting (or a resync under way)? Never blocks. */
static int events_pending(lua_State *L)
{
	struct events *ev = check_events(L, 1);
	struct pollfd p = { nl_fd(&ev->nl), POLLIN, 0 }, sig = { ev->sig.fd, POLLIN, 0 };

	lua_pushboolean(L, ev->off < ev->len || ev->sync != SYNC_NONE || poll(&p, 1, 0) > 0 ||
	                (sig.fd >= 0 && poll(&sig, 1, 0) > 0));
	return 1;
}

static int events_getfd(lua_State *L)
{
	lua_pushinteger(L, nl_fd(&check_events(L, 1)->nl));
	return 1;
}

/* cqueues' pollable protocol: readable, no timeout of its own */
static int events_events(lua_State *L)
{
	check_events(L, 1);
	lua_pushliteral(L, "r");
	return 1;
}

static int events_timeout(lua_State *L)
{
	check_events(L, 1);
	lua_pushnil(L);
	return 1;
}

/* sub:buffer() -> the receive buffer size in effect, in bytes */
static int events_buffer(lua_State *L)
{
	struct events *ev = check_events(L, 1);
	int size;
	socklen_t len = sizeof(size);

	if (getsockopt(nl_fd(&ev->nl), SOL_SOCKET, SO_RCVBUF, &size, &len) < 0)
		return lct_fail(L, "buffer", errno);
	lua_pushinteger(L, size);
	return 1;
}

/* sub:error() -> nil, or the message and errno of the failure raised last */
static int events_error(lua_State *L)
{
	return lct_push_last_error(L, "events", ((struct events *)luaL_checkudata(L, 1, LCT_EVENTS))->error);
}

static int events_overflows(lua_State *L)
{
	lua_pushinteger(L, check_events(L, 1)->overflows);
	return 1;
}

static int events_tostring(lua_State *L)
{
	struct events *ev = luaL_checkudata(L, 1, LCT_EVENTS);

	if (ev->closed)
		lua_pushliteral(L, "conntrack.events (closed)");
	else
		lua_pushfstring(L, "conntrack.events (fd %d)", nl_fd(&ev->nl));
	return 1;
}

/* The part of the filter a socket filter (BPF, built by the library) can
 * decide, so unwanted events never wake the process: the protocol, a TCP
 * state, original addresses and prefixes. Every event that passes is still
 * matched in C against the whole filter. */
static int attach_bpf(int fd, const struct filter *f)
{
	struct nfct_filter *bpf = nfct_filter_create();
	int i, j, n = 0, rc = 0, proto = -1;

	if (bpf == NULL)
		return -ENOMEM;
	for (i = 0; i < f->nterms; i++)
		if (f->terms[i].field == FIELD_PROTO && f->terms[i].single && f->terms[i].mask == ~(uint64_t)0)
			proto = (int)f->terms[i].value;
	/* one value each (the outermost terms: `any` is left to C) */
	for (i = 0; i < f->nterms; i++) {
		const struct term *t = &f->terms[i];
		int src = t->field == FIELD_ORIG_SRC, dst = t->field == FIELD_ORIG_DST;

		if (!t->single || t->field == FIELD_ADDR || !(lct_fields[t->field].caps & CAP_SOCKET))
			continue;
		if (t->field == FIELD_PROTO && proto >= 0) {
			nfct_filter_add_attr_u32(bpf, NFCT_FILTER_L4PROTO, (uint32_t)proto);
			n++;
		} else if (t->field == FIELD_STATE && proto == IPPROTO_TCP && t->states[0] >= 0) {
			struct nfct_filter_proto p = { IPPROTO_TCP, (uint16_t)t->states[0] };
			nfct_filter_add_attr(bpf, NFCT_FILTER_L4PROTO_STATE, &p);
			n++;
		} else if ((src || dst) && t->addr.family == AF_INET) {
			/* the filter compares words as loaded, in host order */
			struct nfct_filter_ipv4 a = { ntohl(t->addr.a[0]),
			                              t->addr.plen ? 0xffffffffu << (32 - t->addr.plen) : 0 };
			nfct_filter_add_attr(bpf, src ? NFCT_FILTER_SRC_IPV4 : NFCT_FILTER_DST_IPV4, &a);
			n++;
		} else if ((src || dst) && t->addr.family == AF_INET6) {
			struct nfct_filter_ipv6 a;
			for (j = 0; j < 4; j++) {
				int bits = t->addr.plen - 32 * j;
				a.addr[j] = ntohl(t->addr.a[j]);
				a.mask[j] = bits >= 32 ? 0xffffffffu : bits <= 0 ? 0 : 0xffffffffu << (32 - bits);
			}
			nfct_filter_add_attr(bpf, src ? NFCT_FILTER_SRC_IPV6 : NFCT_FILTER_DST_IPV6, &a);
			n++;
		}
	}
	if (n > 0 && nfct_filter_attach(fd, bpf) < 0)
		rc = -errno;
	nfct_filter_destroy(bpf);
	return rc;
}

struct events_opts {
	unsigned int kinds;
	int buffer, resync, reliable, has_signals;
	sigset_t signals;
};

static const char *const events_options[] = { "filter", "expect_filter", "buffer", "resync", "reliable",
                                               "signals", NULL };

/* { "new", "destroy", "expect_new", filter = {...}, expect_filter = {...},
 *   buffer = n, resync = b, reliable = b, signals = { "TERM", "HUP" } }:
 * the compiled filter is pushed */
static const struct filter *parse_opts(lua_State *L, int idx, struct events_opts *o, struct xfilter *xf)
{
	const struct filter *f = NULL;

	o->kinds = 0;
	o->buffer = LCT_EVENTS_BUFFER;
	o->resync = o->reliable = o->has_signals = 0;
	memset(xf, 0, sizeof(*xf));
	if (lua_isnoneornil(L, idx)) {
		o->kinds = EV_FLOWS;
		return lct_filter_parse(L, idx);
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) == LUA_TNUMBER) {
			int i;
			for (i = 0; i < EV_NKINDS && !lct_key_is(L, -1, kind_names[i]); i++)
				;
			if (i == EV_NKINDS && lua_type(L, -1) == LUA_TSTRING)
				luaL_error(L, "bad argument 'events': unknown event kind \"%s\"", lct_key_name(L, -1));
			if (i == EV_NKINDS)
				luaL_error(L, "bad argument 'events': unknown event kind %s", luaL_typename(L, -1));
			o->kinds |= 1u << i;
		} else {
			if (lct_key_is(L, -2, "filter")) {
				f = lct_filter_parse(L, -1);
				lua_insert(L, idx + 1);   /* kept below the iteration */
			} else if (lct_key_is(L, -2, "expect_filter"))
				lct_xfilter_parse(L, lua_gettop(L), xf);
			else if (lct_key_is(L, -2, "buffer"))
				o->buffer = (int)lct_check_uint(L, -1, "buffer", 0x7fffffff);
			else if (lct_key_is(L, -2, "resync"))
				o->resync = lua_toboolean(L, -1);
			else if (lct_key_is(L, -2, "reliable"))
				o->reliable = lua_toboolean(L, -1);
			else if (lct_key_is(L, -2, "signals")) {
				lct_signals_parse(L, -1, "signals", &o->signals);
				o->has_signals = 1;
			} else
				lct_unknown_option(L, -2, "events", events_options);
		}
		lua_pop(L, 1);
	}
	if (o->kinds == 0)
		o->kinds = EV_FLOWS;
	if (f == NULL) {
		lua_pushnil(L);
		f = lct_filter_parse(L, -1);
		lua_remove(L, -2);
	}
	return f;
}

/* ct:events([opts]) -> subscription | nil, message, errno */
int lct_events(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	struct events_opts o;
	const struct filter *f;
	struct xfilter xf;
	struct events *ev;
	unsigned int groups = 0;
	int rc, on = 1, netns_fd;

	lua_settop(L, 2);
	f = parse_opts(L, 2, &o, &xf);   /* pushed at 3 */
	ev = lua_newuserdatauv(L, sizeof(*ev), 3);
	ev->nl.sock = ev->sync_nl.sock = NULL;
	ev->scratch = NULL;
	ev->closed = 1;
	ev->netns_fd = -1;
	ev->sig.fd = -1;
	luaL_setmetatable(L, LCT_EVENTS);
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "filter");
		lct_filter_push_where(L, -1);
		lua_setiuservalue(L, -3, 1);
		lua_pop(L, 1);
		lua_getfield(L, 2, "expect_filter");
		if (lua_istable(L, -1)) {
			lua_getfield(L, -1, "where");
			lua_setiuservalue(L, -3, 3);
		}
		lua_pop(L, 1);
	}
	lua_pushvalue(L, 3);
	lua_setiuservalue(L, -2, 2);
	ev->kinds = o.kinds;
	ev->filter = f;
	ev->xfilter = xf;
	ev->resync = o.resync;
	ev->sync = SYNC_NONE;
	ev->overflows = 0;
	ev->error = 0;
	ev->len = ev->off = 0;
	if ((netns_fd = lct_handle_netns(L, h)) >= 0 && (ev->netns_fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return lct_fail(L, "events", errno);
	ev->closed = 0;
	if (o.kinds & EV_NEW)     groups |= NF_NETLINK_CONNTRACK_NEW;
	if (o.kinds & EV_UPDATE)  groups |= NF_NETLINK_CONNTRACK_UPDATE;
	if (o.kinds & EV_DESTROY) groups |= NF_NETLINK_CONNTRACK_DESTROY;
	if (o.kinds & EV_XNEW)    groups |= NF_NETLINK_CONNTRACK_EXP_NEW;
	if (o.kinds & EV_XDESTROY) groups |= NF_NETLINK_CONNTRACK_EXP_DESTROY;
	if ((rc = nl_open(&ev->nl, ev->netns_fd, groups)) < 0)
		return lct_fail(L, "events", -rc);
	/* the socket filter would judge expectations' messages as flows': C alone then */
	if ((rc = nl_set_rcvbuf(&ev->nl, o.buffer)) < 0 ||
	    (!(o.kinds & EV_EXPECTATIONS) && (rc = attach_bpf(nl_fd(&ev->nl), f)) < 0))
		return lct_fail(L, "events", -rc);
	if (o.reliable) {
		/* as conntrackd: the kernel reports a failed delivery to the sender
		 * instead of dropping, and this socket never sees ENOBUFS */
		setsockopt(nl_fd(&ev->nl), SOL_NETLINK, NETLINK_BROADCAST_ERROR, &on, sizeof(on));
		setsockopt(nl_fd(&ev->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof(on));
	}
	/* last: the signals are blocked only once nothing else can fail */
	if (o.has_signals && (rc = lct_sigwatch_open(L, &ev->sig, &o.signals)) < 0)
		return lct_fail(L, "events", -rc);
	return 1;
}

void lct_events_open(lua_State *L)
{
	static const luaL_Reg meta[] = {
		{ "__gc", events_close }, { "__close", events_close }, { "__tostring", events_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = {
		{ "next", events_next }, { "each", events_each }, { "dispatch", events_dispatch },
		{ "pending", events_pending }, { "getfd", events_getfd }, { "fd", events_getfd },
		{ "pollfd", events_getfd }, { "events", events_events }, { "timeout", events_timeout },
		{ "buffer", events_buffer }, { "overflows", events_overflows }, { "error", events_error }, { "close", events_close },
		{ NULL, NULL }
	};

	lct_new_class(L, LCT_EVENTS, meta, methods);
}
