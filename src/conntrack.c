/*
 * conntrack.c: luaopen_conntrack and the handle. A handle owns a netlink
 * socket in one network namespace; the module's own functions use a default
 * handle opened on first use, as io.write uses the default output file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "lct.h"

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

/* The handle's socket and namespace, for use right away (see lct.h): an
 * operation may have run Lua code that closed the handle since it began. */
struct nl *lct_handle_nl(lua_State *L, struct handle *h)
{
	return &check_open(L, h)->nl;
}

struct nl *lct_handle_nl_if_open(struct handle *h)
{
	return h->closed ? NULL : &h->nl;
}

int lct_handle_netns(lua_State *L, struct handle *h)
{
	return check_open(L, h)->netns_fd;
}

char *lct_handle_buf(struct handle *h)
{
	return h->buf;
}

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

/* The failure triple of the environment: nil, message, errno. */
int lct_fail(lua_State *L, const char *what, int err)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s: %s", what, lct_strerror(err));
	lua_pushinteger(L, err);
	return 3;
}

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
 * (duplicated: the handle owns what it closes). -1 for the current one. */
static int open_netns(lua_State *L, int opts, int *fd)
{
	char path[4096];
	const char *name;

	*fd = -1;
	if (lua_isnoneornil(L, opts))
		return 0;
	luaL_checktype(L, opts, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, opts)) {
		if (!lct_key_is(L, -2, "netns"))
			luaL_error(L, "bad argument '%s': open takes only 'netns'", lct_key_name(L, -2));
		lua_pop(L, 1);
	}
	lua_getfield(L, opts, "netns");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return 0;
	}
	if (lua_isinteger(L, -1)) {
		int given = (int)lct_check_uint(L, -1, "netns", 0x7fffffff);
		lua_pop(L, 1);
		lua_pushfstring(L, "fd %d", given);   /* for the message, should it fail */
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
	lua_pushstring(L, path);   /* for the message, should it fail */
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

/* conntrack.open([{ netns = }]) -> handle | nil, message, errno */
static int lct_open(lua_State *L)
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

/* conntrack.f(...) is ct:f(...) on the default handle (upvalue 1 is f). */
static int call_default(lua_State *L)
{
	struct handle *h;

	if (lua_getfield(L, LUA_REGISTRYINDEX, LCT_DEFAULT) == LUA_TUSERDATA &&
	    !((struct handle *)lua_touserdata(L, -1))->closed) {
		lua_insert(L, 1);
	} else {
		lua_pop(L, 1);
		lua_pushcfunction(L, lct_open);
		lua_call(L, 0, 3);
		h = lua_touserdata(L, -3);
		if (h == NULL) {
			if (lua_tocfunction(L, lua_upvalueindex(1)) == lct_dump)
				return luaL_error(L, "%s", lua_tostring(L, -2));
			return 3;
		}
		lua_pop(L, 2);
		lua_pushvalue(L, -1);
		lua_setfield(L, LUA_REGISTRYINDEX, LCT_DEFAULT);
		lua_insert(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static void build_field_names(lua_State *L)
{
	static const char *const aliases[][2] = {
		{ "src", "orig_src" }, { "dst", "orig_dst" }, { "sport", "orig_sport" }, { "dport", "orig_dport" },
	};
	int i;
	size_t j;

	lua_createtable(L, 0, lct_nfields + 4);
	for (i = 0; i < lct_nfields; i++) {
		lua_pushinteger(L, i);
		lua_setfield(L, -2, lct_fields[i].name);
	}
	for (j = 0; j < sizeof(aliases) / sizeof(aliases[0]); j++) {
		lua_getfield(L, -1, aliases[j][1]);
		lua_setfield(L, -2, aliases[j][0]);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, LCT_FIELDS);
}

int luaopen_conntrack(lua_State *L)
{
	static const luaL_Reg handle_meta[] = {
		{ "__gc", handle_close }, { "__close", handle_close }, { "__tostring", handle_tostring },
		{ NULL, NULL }
	};
	static const luaL_Reg handle_methods[] = {
		{ "dump", lct_dump }, { "events", lct_events }, { "close", handle_close }, { NULL, NULL }
	};
	const char *name;

	build_field_names(L);
	lct_flow_open(L);
	lct_dump_open(L);
	lct_sweep_open(L);
	lct_events_open(L);

	luaL_newmetatable(L, LCT_HANDLE);
	luaL_setfuncs(L, handle_meta, 0);
	lct_protect_metatable(L, LCT_HANDLE);
	luaL_newlib(L, handle_methods);
	lct_ops_register(L);
	lua_setfield(L, -2, "__index");

	/* the module: open, and every operation on the default handle */
	lua_getfield(L, -1, "__index");
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, -3)) {
		name = lua_tostring(L, -2);
		if (strcmp(name, "close") != 0) {
			lua_pushcclosure(L, call_default, 1);
			lua_setfield(L, -3, name);
		} else {
			lua_pop(L, 1);
		}
	}
	lua_pushcfunction(L, lct_open);
	lua_setfield(L, -2, "open");
	lua_pushcfunction(L, lct_parse);
	lua_setfield(L, -2, "parse");
	lua_pushliteral(L, LCT_VERSION);
	lua_setfield(L, -2, "_VERSION");
	return 1;
}
