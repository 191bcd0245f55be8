/*
 * handle.c: the handle, a netlink socket in one network namespace, and what
 * every operation does with it: requests and their acknowledgements, batches,
 * dumps on sockets of their own in the same namespace, the table's size, and
 * failures told as `nil, message, errno`. Lua code can run in the middle of
 * any operation and close the handle: its socket and namespace are reached
 * only here, at the moment of use (lct.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* Acknowledgements of a batch queue up while the kernel works through it. */
#define LCT_ACK_BUFFER (4 << 20)

struct handle {
	struct nl nl;
	int netns_fd;              /* -1: the namespace the handle was opened in */
	int closed;
	char buf[LCT_RECV_SIZE];
};

static struct handle *check_open(lua_State *L, struct handle *h)
{
	if (h->closed)
		luaL_error(L, "attempt to use a closed handle");
	return h;
}

struct handle *lct_check_handle(lua_State *L, int idx)
{
	return check_open(L, luaL_checkudata(L, idx, LCT_HANDLE));
}

int lct_handle_is_open(lua_State *L, int idx)
{
	struct handle *h = luaL_testudata(L, idx, LCT_HANDLE);

	return h != NULL && !h->closed;
}

int lct_handle_netns(lua_State *L, struct handle *h)
{
	return check_open(L, h)->netns_fd;
}

char *lct_handle_buf(struct handle *h)
{
	return h->buf;
}

/* ---- failures ---- */

/* What an errno from the kernel means for conntrack. */
const char *lct_strerror(int err)
{
	switch (err) {
	case ENOENT: return "no such flow";
	case EEXIST: return "the flow already exists";
	case EPERM:  return "operation not permitted (CAP_NET_ADMIN is needed)";
	/* the kernel has no room for labels unless a rule of the namespace uses them */
	case ENOSPC: return "no room for labels (a ct label rule in the namespace makes it)";
	/* what the kernel answers a create once nf_conntrack_max is reached */
	case ENOMEM: return "the table is full (nf_conntrack_max) or memory is short";
	/* nl.c's answer to a dump the kernel marks NLM_F_DUMP_INTR */
	case EINTR:  return "the table changed during the dump (NLM_F_DUMP_INTR): dump again";
	}
	return strerror(err);
}

/* The failure triple of the environment, as luaL_fileresult's:
 * nil, "what: message", errno. */
int lct_fail(lua_State *L, const char *what, int err)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, lct_strerror(err));
	lua_pushinteger(L, err);
	return 3;
}

/* The same for an operation that did part of its work: "(after N flows)". */
int lct_fail_after(lua_State *L, const char *what, int err, unsigned long done)
{
	char n[LCT_UINT_TEXT];

	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s (after %s flows)", what, lct_strerror(err), lct_uint_text(n, done));
	lua_pushinteger(L, err);
	return 3;
}

/* An environment failure met where no value can be returned (a dump's
 * step, an event wait) is raised as "what: message"; *last keeps the errno
 * for the object's error() method, so that no caller parses the message. */
int lct_raise(lua_State *L, int *last, const char *what, int err)
{
	*last = err;
	return luaL_error(L, "%s: %s", what, lct_strerror(err));
}

/* obj:error() -> nil, or the message and errno of what ended it */
int lct_push_last_error(lua_State *L, const char *what, int err)
{
	if (err == 0) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushfstring(L, "%s: %s", what, lct_strerror(err));
	lua_pushinteger(L, err);
	return 2;
}

/* conntrack.strerror(errno) -> the C library's text of it */
static int lct_strerror_lua(lua_State *L)
{
	lua_pushstring(L, strerror((int)lct_check_uint(L, 1, "errno", 0x7fffffff)));
	return 1;
}

/* ---- requests ---- */

/* nlh is built in the handle's buffer; the socket is taken now, after any
 * Lua code the operation ran. 0 or -errno, as nl_request. */
int lct_handle_request(lua_State *L, struct handle *h, struct nlmsghdr *nlh,
                       int (*cb)(const struct nlmsghdr *, void *), void *data)
{
	return nl_request(&check_open(L, h)->nl, nlh, h->buf, sizeof(h->buf), cb, data);
}

/* Sizes the socket for the acknowledgements of batches. */
void lct_handle_expect_batches(lua_State *L, struct handle *h)
{
	nl_set_rcvbuf(&check_open(L, h)->nl, LCT_ACK_BUFFER);
}

int lct_handle_batch(lua_State *L, struct handle *h, struct nl_batch *b, struct nl_acks *acks)
{
	return nl_batch_send(&check_open(L, h)->nl, b, h->buf, sizeof(h->buf), acks);
}

static int table_stats_cb(const struct nlmsghdr *nlh, void *data)
{
	struct table_stats *t = data;
	const struct nlattr *attr;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			continue;
		if (mnl_attr_get_type(attr) == CTA_STATS_GLOBAL_ENTRIES)
			t->entries = ntohl(mnl_attr_get_u32(attr));
		else if (mnl_attr_get_type(attr) == CTA_STATS_GLOBAL_MAX_ENTRIES) {
			t->max = ntohl(mnl_attr_get_u32(attr));
			t->has_max = 1;
		}
	}
	return MNL_CB_OK;
}

/* The number of entries of the handle's table, and its maximum. */
int lct_table_stats(lua_State *L, struct handle *h, struct table_stats *t)
{
	struct nlmsghdr *nlh = nl_ct_header(h->buf, IPCTNL_MSG_CT_GET_STATS, NLM_F_ACK, AF_UNSPEC);

	memset(t, 0, sizeof(*t));
	return lct_handle_request(L, h, nlh, table_stats_cb, t);
}

/* A dump of type on a socket of its own, opened in netns_fd, with what the
 * kernel filters exactly of f; r walks its reply in buf (LCT_RECV_SIZE
 * bytes). No Lua: a subscription's resync calls it with a namespace of its
 * own. 0, or -errno (nl left for the caller to close). */
int lct_request_dump(struct nl *nl, struct nl_reply *r, int netns_fd, char *buf, uint16_t type,
                     const struct filter *f)
{
	struct nlmsghdr *nlh;
	int rc;

	if ((rc = nl_open(nl, netns_fd, 0)) < 0)
		return rc;
	nlh = nl_ct_header(buf, type, NLM_F_DUMP, f->family);
	if (type == IPCTNL_MSG_CT_GET || type == IPCTNL_MSG_CT_GET_CTRZERO)
		lct_filter_to_request(f, nlh);
	if ((rc = nl_send(nl, nlh)) < 0)
		return rc;
	nl_reply_init(r, nl, buf, LCT_RECV_SIZE);
	r->read_ahead = 1;
	return 0;
}

/* ---- the handle ---- */

static void handle_release(struct handle *h)
{
	nl_close(&h->nl);
	if (h->netns_fd >= 0) {
		close(h->netns_fd);
		h->netns_fd = -1;
	}
	h->closed = 1;
}

/* The namespace of opts.netns: a name under /run/netns, a path, or an fd
 * (duplicated: the handle owns what it closes). -1 for the current one.
 * Leaves the namespace's name on the stack for a failure's message. */
static int open_netns(lua_State *L, int opts, int *fd)
{
	static const char *const options[] = { "netns", NULL };
	char path[4096];
	const char *name;

	*fd = -1;
	if (lua_isnoneornil(L, opts))
		return 0;
	lct_check_options(L, opts, "open", options);
	lua_getfield(L, opts, "netns");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (lua_isinteger(L, -1)) {
		int given = (int)lct_check_uint(L, -1, "netns", 0x7fffffff);
		lua_pop(L, 1);
		lua_pushfstring(L, "fd %d", given);
		*fd = fcntl(given, F_DUPFD_CLOEXEC, 0);
		return *fd < 0 ? -errno : 0;
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "bad argument 'netns': expected a name, a path or a file descriptor, got %s",
		           luaL_typename(L, -1));
	name = lct_check_cstring(L, -1, "netns");
	if (*name == '\0')
		luaL_error(L, "bad argument 'netns': empty name");
	if (strchr(name, '/') == NULL)
		snprintf(path, sizeof(path), "/run/netns/%s", name);
	else
		snprintf(path, sizeof(path), "%s", name);
	lua_pop(L, 1);
	lua_pushstring(L, path);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

/* conntrack.open([{ netns = }]) -> handle | nil, message, errno */
int lct_open(lua_State *L)
{
	struct handle *h;
	int fd, rc;

	lua_settop(L, 1);
	h = lua_newuserdatauv(L, sizeof(*h), 0);
	h->nl.sock = NULL;
	h->netns_fd = -1;
	h->closed = 1;
	luaL_setmetatable(L, LCT_HANDLE);
	if ((rc = open_netns(L, 1, &fd)) < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "open: %s: %s", lua_tostring(L, -2), strerror(-rc));
		lua_pushinteger(L, -rc);
		return 3;
	}
	h->netns_fd = fd;
	h->closed = 0;
	if ((rc = nl_open(&h->nl, fd, 0)) < 0) {
		handle_release(h);
		return lct_fail(L, "open", -rc);
	}
	lua_settop(L, 2);
	return 1;
}

static int handle_close(lua_State *L)
{
	struct handle *h = luaL_checkudata(L, 1, LCT_HANDLE);

	if (!h->closed)
		handle_release(h);
	return 0;
}

static int handle_tostring(lua_State *L)
{
	struct handle *h = luaL_checkudata(L, 1, LCT_HANDLE);

	if (h->closed)
		lua_pushliteral(L, "conntrack.handle (closed)");
	else
		lua_pushfstring(L, "conntrack.handle (%p)", (void *)h);
	return 1;
}

/* The handle's metatable, with its own methods in __index (left on the
 * stack: luaopen adds the operations), and the module's functions of it. */
void lct_handle_open(lua_State *L, int module)
{
	static const luaL_Reg meta[] = {
		{ "__gc", handle_close }, { "__close", handle_close }, { "__tostring", handle_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg methods[] = { { "close", handle_close }, { NULL, NULL } };

	module = lua_absindex(L, module);
	lua_pushcfunction(L, lct_open);
	lua_setfield(L, module, "open");
	lua_pushcfunction(L, lct_strerror_lua);
	lua_setfield(L, module, "strerror");
	luaL_newmetatable(L, LCT_HANDLE);
	luaL_setfuncs(L, meta, 0);
	lct_protect_metatable(L, LCT_HANDLE);
	luaL_newlib(L, methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_remove(L, -2);
}
