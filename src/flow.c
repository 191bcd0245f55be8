/*
 * flow.c: the flow userdata. A flow owns a parsed nf_conntrack and is an
 * independent value: it outlives the dump and the handle it came from.
 * Fields are read by name through the vocabulary of fields.c.
 */
#include <errno.h>
#include <string.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

/* Flows have one of two metatables, alike but for __gc: a flow whose
 * nf_conntrack owns heap memory has LCT_FLOW's, whose __gc frees it; one
 * that embeds it has LCT_FLOW_PLAIN's, without a finalizer, so that the
 * collector frees it outright (a finalizer costs each of the flows of a
 * dump a call and a second collection cycle). mt: the index of the plain
 * metatable, or 0 to look it up. Setting a metatable allocates nothing. */
static void init_flow(lua_State *L, struct flow *fl, int embedded, int mt)
{
	fl->ct = NULL;
	fl->raw = 0;
	fl->embedded = embedded;
	fl->type = NFCT_T_UNKNOWN;
	fl->portid = 0;
	if (!embedded)
		luaL_setmetatable(L, LCT_FLOW);
	else if (mt == 0)
		luaL_setmetatable(L, LCT_FLOW_PLAIN);
	else {
		lua_pushvalue(L, mt);
		lua_setmetatable(L, -2);
	}
}

struct flow *lct_flow_new(lua_State *L)
{
	struct flow *fl = lua_newuserdatauv(L, LCT_FLOW_HEADER + msg_ct_size(), 0);

	init_flow(L, fl, 0, 0);
	return fl;
}

static int owns_heap(const struct nf_conntrack *ct)
{
	return nfct_attr_is_set(ct, ATTR_CONNLABELS) || nfct_attr_is_set(ct, ATTR_CONNLABELS_MASK) ||
	       nfct_attr_is_set(ct, ATTR_SECCTX) || nfct_attr_is_set(ct, ATTR_HELPER_INFO);
}

/* A zeroed scratch object to parse into, reusing *scratch when it owns no
 * heap memory. 0, or -ENOMEM. */
int lct_scratch_ready(struct nf_conntrack **scratch)
{
	if (*scratch != NULL && !owns_heap(*scratch)) {
		memset(*scratch, 0, msg_ct_size());
		return 0;
	}
	if (*scratch != NULL)
		nfct_destroy(*scratch);
	*scratch = nfct_new();
	return *scratch ? 0 : -ENOMEM;
}

/* Pushes a flow holding the parsed *scratch: its bytes are copied in when it
 * owns no heap memory (the scratch is then reused), else the flow takes it.
 * mt: the index of the flow metatable (a loop's upvalue), or 0. The scratch
 * is read only after the allocation, at which the collector may have run a
 * finalizer that closed its owner: then nothing is pushed and NULL returned. */
struct flow *lct_flow_adopt_mt(lua_State *L, struct nf_conntrack **scratch, int mt)
{
	struct flow *fl;
	int heap;

	mt = mt ? lua_absindex(L, mt) : 0;
	fl = lua_newuserdatauv(L, LCT_FLOW_HEADER + msg_ct_size(), 0);
	if (*scratch == NULL) {
		lua_pop(L, 1);
		return NULL;
	}
	heap = owns_heap(*scratch);
	init_flow(L, fl, !heap, mt);
	if (heap) {
		fl->ct = *scratch;
		*scratch = NULL;
	} else {
		fl->ct = (struct nf_conntrack *)((char *)fl + LCT_FLOW_HEADER);
		memcpy(fl->ct, *scratch, msg_ct_size());
	}
	return fl;
}

/* A flow that may never be read keeps its message (its top level checked
 * and indexed in tb) in its place, to be read or parsed there (flow_raw.c):
 * it must fit beside its view, and carry nothing whose parse owns heap
 * memory. NULL (nothing pushed) where it cannot wait. */
struct flow *lct_flow_push_unparsed(lua_State *L, const struct nlmsghdr *nlh, const struct nlattr *const *tb, int mt)
{
	struct flow *fl;

	if (nlh->nlmsg_len > lct_flow_raw_room() || tb[CTA_LABELS] || tb[CTA_SECCTX] || tb[CTA_HELP])
		return NULL;
	mt = mt ? lua_absindex(L, mt) : 0;
	fl = lua_newuserdatauv(L, LCT_FLOW_HEADER + msg_ct_size(), 0);
	init_flow(L, fl, 1, mt);
	memcpy((char *)fl + LCT_FLOW_HEADER, nlh, nlh->nlmsg_len);
	lct_flow_raw_hold(fl, nlh->nlmsg_len);
	return fl;
}

struct flow *lct_flow_adopt(lua_State *L, struct nf_conntrack **scratch)
{
	return lct_flow_adopt_mt(L, scratch, 0);
}

/* The flow at idx (of either metatable), or NULL. */
struct flow *lct_to_flow(lua_State *L, int idx)
{
	struct flow *fl = lua_touserdata(L, idx);
	int is_flow;

	if (fl == NULL || !lua_getmetatable(L, idx))
		return NULL;
	luaL_getmetatable(L, LCT_FLOW);
	is_flow = lua_rawequal(L, -1, -2);
	lua_pop(L, 1);
	if (!is_flow) {
		luaL_getmetatable(L, LCT_FLOW_PLAIN);
		is_flow = lua_rawequal(L, -1, -2);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return is_flow ? fl : NULL;
}

struct nf_conntrack *lct_check_flow(lua_State *L, int idx)
{
	struct flow *fl = lct_to_flow(L, idx);

	if (fl == NULL)
		fl = luaL_checkudata(L, idx, LCT_FLOW);   /* raises the usual error */

	if (fl->ct == NULL && fl->raw && lct_flow_parse_raw(fl) < 0)
		luaL_error(L, "malformed flow");
	if (fl->ct == NULL)
		luaL_argerror(L, idx, "empty flow");
	return fl->ct;
}

static int flow_gc(lua_State *L)
{
	struct flow *fl = luaL_checkudata(L, 1, LCT_FLOW);

	if (fl->ct != NULL && !fl->embedded)
		nfct_destroy(fl->ct);
	fl->ct = NULL;
	return 0;
}

/* The hottest path of a script reading flows. upvalue 1: the methods;
 * upvalue 2: field name -> field id; upvalues 3 and 4: the two flow
 * metatables, compared directly (cheaper than a lookup by name). */
static int flow_index(lua_State *L)
{
	struct flow *fl = lua_touserdata(L, 1);
	int is_flow = fl != NULL && lua_getmetatable(L, 1) &&
	              (lua_rawequal(L, -1, lua_upvalueindex(4)) || lua_rawequal(L, -1, lua_upvalueindex(3)));

	if (!is_flow || (fl->ct == NULL && !fl->raw))
		lct_check_flow(L, 1);   /* raises the usual error */
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(2)) == LUA_TNUMBER) {
		int field = (int)lua_tointeger(L, -1);
		/* a flow still held as its message is read from it while it can be */
		if (fl->ct == NULL && !lct_flow_raw_field(L, fl, field) && lct_flow_parse_raw(fl) < 0)
			return luaL_error(L, "malformed flow");
		if (fl->ct != NULL)
			lct_field_push(L, fl->ct, field);
		return 1;
	}
	if (fl->ct == NULL && lct_flow_parse_raw(fl) < 0)
		return luaL_error(L, "malformed flow");
	lua_pushvalue(L, 2);
	if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
		return 1;
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "conntrack.flow has no field '%s'", lua_tostring(L, 2));
	return luaL_error(L, "conntrack.flow has no field of type %s", luaL_typename(L, 2));
}

static int flow_newindex(lua_State *L)
{
	lct_check_flow(L, 1);
	return luaL_error(L, "conntrack.flow is read-only: use ct:update(flow, changes)");
}

/* Options of conntrack's -o, as a string ("extended,id") or a table
 * ({ extended = true, id = true }), into nfct_snprintf's type and flags. */

static const struct { const char *name; unsigned int flags; } format_options[] = {
	{ "extended", NFCT_OF_SHOW_LAYER3 }, { "id", NFCT_OF_ID },
	{ "ktimestamp", NFCT_OF_TIMESTAMP }, { "xml", 0 }, { "labels", 0 }, { "json", 0 },
};

static void add_format_option(lua_State *L, const char *name, size_t len, struct format *fmt)
{
	size_t i;

	if (len == 0)
		luaL_error(L, "bad argument 'format': an empty option name");
	for (i = 0; i < sizeof(format_options) / sizeof(format_options[0]); i++)
		if (strlen(format_options[i].name) == len && memcmp(format_options[i].name, name, len) == 0) {
			fmt->flags |= format_options[i].flags;
			if (strcmp(format_options[i].name, "xml") == 0)
				fmt->type = NFCT_O_XML;
			if (strcmp(format_options[i].name, "labels") == 0)
				fmt->labels = 1;
			if (strcmp(format_options[i].name, "json") == 0)
				fmt->json = 1;
			return;
		}
	luaL_error(L, "bad argument 'format': unknown output format \"%s\"", lua_pushlstring(L, name, len));
}

static void check_format_options(lua_State *L, int idx, struct format *fmt);

/* "json" is a format of its own: the flow's fields as a JSON object. */
void lct_check_format(lua_State *L, int idx, struct format *fmt)
{
	fmt->type = NFCT_O_DEFAULT;
	fmt->flags = 0;
	fmt->labels = 0;
	fmt->json = 0;
	if (lua_isnoneornil(L, idx))
		return;
	check_format_options(L, idx, fmt);
	if (fmt->json && (fmt->type != NFCT_O_DEFAULT || fmt->flags || fmt->labels))
		luaL_error(L, "bad argument 'format': json takes no other option");
}

static void check_format_options(lua_State *L, int idx, struct format *fmt)
{
	if (lua_type(L, idx) == LUA_TSTRING) {
		const char *s = lct_check_cstring(L, idx, "format"), *comma;
		/* "" is the default format; "extended," has an empty option */
		while (*s) {
			comma = strchr(s, ',');
			add_format_option(L, s, comma ? (size_t)(comma - s) : strlen(s), fmt);
			s = comma ? comma + 1 : s + strlen(s);
			if (comma && *s == '\0')
				add_format_option(L, s, 0, fmt);
		}
		return;
	}
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "bad argument 'format': option names are strings");
		if (lua_toboolean(L, -1))
			add_format_option(L, lct_check_cstring(L, -2, "format"), lua_rawlen(L, -2), fmt);
		lua_pop(L, 1);
	}
}

/* connlabel.conf, read once per Lua state, as conntrack reads it once per
 * run: a userdata in the registry whose __gc frees the map. NULL when there
 * is no such file (labels are then printed as bit numbers). */
static int free_labelmap(lua_State *L)
{
	struct nfct_labelmap **map = lua_touserdata(L, 1);

	if (*map)
		nfct_labelmap_destroy(*map);
	*map = NULL;
	return 0;
}

/* Reads the map of path (NULL: connlabel.conf) into the registry, in place
 * of the one read before. */
static struct nfct_labelmap *load_labelmap(lua_State *L, const char *path)
{
	struct nfct_labelmap **map = lua_newuserdatauv(L, sizeof(*map), 0);

	*map = NULL;
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, free_labelmap);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	*map = nfct_labelmap_new(path);
	lua_setfield(L, LUA_REGISTRYINDEX, "lct.labelmap");
	return *map;
}

static struct nfct_labelmap *labelmap(lua_State *L)
{
	struct nfct_labelmap **map;

	if (lua_getfield(L, LUA_REGISTRYINDEX, "lct.labelmap") == LUA_TNIL) {
		lua_pop(L, 1);
		return load_labelmap(L, NULL);
	}
	map = lua_touserdata(L, -1);
	lua_pop(L, 1);   /* the registry keeps it */
	return *map;
}

/* conntrack.labelmap([path]) -> true | nil, message, errno: the names of
 * labels in lines of the "labels" format come from path from now on
 * (conntrack 1.4.9's --labelmap), or from connlabel.conf again. */
static int set_labelmap(lua_State *L)
{
	const char *path = lua_isnoneornil(L, 1) ? NULL : lct_check_cstring(L, 1, "path");

	errno = 0;
	if (load_labelmap(L, path) == NULL && path != NULL) {
		int err = errno ? errno : ENOENT;
		lua_pushnil(L);
		lua_pushfstring(L, "labelmap: %s: %s", path, strerror(err));
		lua_pushinteger(L, err);
		return 3;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* The line of a flow in a format; ptype and portid as the flow's. Most lines
 * fit the stack; nfct_snprintf cannot report a truncation, so a line that
 * fills a buffer is printed again into a larger one (scratch memory an
 * error cannot leak). 0, or -1 with nothing pushed if the library cannot
 * print it: the caller raises, having put its own state in order. */
int lct_push_line(lua_State *L, const struct nf_conntrack *ct, unsigned int ptype, uint32_t portid,
                  const struct format *fmt)
{
	struct nfct_labelmap *map;
	char stack[2048], *buf = stack;
	size_t size = sizeof(stack);
	int n, scratch = 0;

	if (fmt->json) {
		lct_push_json(L, ct);
		return 0;
	}
	map = fmt->labels ? labelmap(L) : NULL;
	for (;;) {
		n = nfct_snprintf_labels(buf, (unsigned)size, ct, ptype, fmt->type, fmt->flags, map);
		if (n >= 0 && (size_t)n < size - 1)
			break;
		size *= 4;
		if (n < 0 || size > 1 << 20) {
			buf = NULL;
			break;
		}
		if (scratch)
			lua_pop(L, 1);
		buf = lua_newuserdatauv(L, size, 0);   /* kept on the stack while in use */
		scratch = 1;
	}
	if (buf == NULL) {
		if (scratch)
			lua_pop(L, 1);
		return -1;
	}
	/* an event caused from user space, as conntrack -E tells it */
	if (portid != 0 && fmt->type != NFCT_O_XML) {
		char id[LCT_UINT_TEXT];
		lua_pushfstring(L, "%s [USERSPACE] portid=%s", buf, lct_uint_text(id, portid));
	}
	else
		lua_pushlstring(L, buf, (size_t)n);
	if (scratch)
		lua_remove(L, -2);
	return 0;
}

static int push_formatted(lua_State *L, const struct flow *fl, const struct format *fmt)
{
	if (lct_push_line(L, fl->ct, fl->type, fl->portid, fmt) < 0)
		return luaL_error(L, "cannot format flow");
	return 1;
}

static struct flow *check_flow_struct(lua_State *L, int idx)
{
	lct_check_flow(L, idx);
	return lua_touserdata(L, idx);
}

static int flow_tostring(lua_State *L)
{
	struct format fmt = { NFCT_O_DEFAULT, 0, 0, 0 };
	return push_formatted(L, check_flow_struct(L, 1), &fmt);
}

static int flow_format(lua_State *L)
{
	const struct flow *fl = check_flow_struct(L, 1);
	struct format fmt;

	lct_check_format(L, 2, &fmt);
	return push_formatted(L, fl, &fmt);
}

static int flow_totable(lua_State *L)
{
	const struct nf_conntrack *ct = lct_check_flow(L, 1);
	int i;

	lua_createtable(L, 0, 16);
	for (i = 0; i < lct_nfields; i++) {
		lct_field_push(L, ct, i);
		lua_setfield(L, -2, lct_fields[i].name);
	}
	return 1;
}

/* flow:tuple() -> the table ct:get takes for this entry: family, protocol,
 * the original tuple and its zones. */
static int flow_tuple(lua_State *L)
{
	static const int fields[] = {
		FIELD_FAMILY, FIELD_PROTO, FIELD_ORIG_SRC, FIELD_ORIG_DST, FIELD_ORIG_SPORT, FIELD_ORIG_DPORT,
		FIELD_ICMP_TYPE, FIELD_ICMP_CODE, FIELD_ICMP_ID, FIELD_ZONE, FIELD_ORIG_ZONE,
	};
	const struct nf_conntrack *ct = lct_check_flow(L, 1);
	size_t i;

	lua_createtable(L, 0, 8);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		/* a zone the entry does not carry is no part of its key (zones read 0 then) */
		if (lct_fields[fields[i]].kind == K_U16 && !nfct_attr_is_set(ct, lct_fields[fields[i]].attr))
			continue;
		lct_field_push(L, ct, fields[i]);
		lua_setfield(L, -2, lct_fields[fields[i]].name);
	}
	return 1;
}

/* flow:match(filter) -> boolean: the verdict dump, delete and events give
 * this flow for the same filter (fields matched in C, then `where`). */
static int flow_match(lua_State *L)
{
	const struct nf_conntrack *ct = lct_check_flow(L, 1);
	const struct filter *f;

	lua_settop(L, 2);
	f = lct_filter_parse(L, 2);
	if (!lct_filter_match(f, ct)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (f->has_where) {
		lct_filter_push_where(L, 2);
		lua_pushvalue(L, 1);
		lua_call(L, 1, 1);
	}
	lua_pushboolean(L, !f->has_where || lua_toboolean(L, -1));
	return 1;
}

/* Two flows are equal when they are the same kernel entry: same original
 * tuple and zone, and the same id when both carry one. A flow is equal to
 * no other value (5.4 calls this for a flow and any other userdata). */
static int flow_eq(lua_State *L)
{
	struct flow *fa = lct_to_flow(L, 1), *fb = lct_to_flow(L, 2);
	const struct nf_conntrack *a, *b;
	int same;

	if (fa != NULL && fb != NULL && fa->raw)
		lct_check_flow(L, 1);
	if (fa != NULL && fb != NULL && fb->raw)
		lct_check_flow(L, 2);
	if (fa == NULL || fb == NULL || fa->ct == NULL || fb->ct == NULL) {
		lua_pushboolean(L, 0);
		return 1;
	}
	a = fa->ct;
	b = fb->ct;
	same = nfct_cmp(a, b, NFCT_CMP_ORIG) && nfct_get_attr_u16(a, ATTR_ZONE) == nfct_get_attr_u16(b, ATTR_ZONE);
	if (same && nfct_attr_is_set(a, ATTR_ID) && nfct_attr_is_set(b, ATTR_ID))
		same = nfct_get_attr_u32(a, ATTR_ID) == nfct_get_attr_u32(b, ATTR_ID);
	lua_pushboolean(L, same);
	return 1;
}

/* conntrack.parse(message) -> flow | nil, error: one ctnetlink message, as
 * the kernel sends it (a dump entry or an event), checked as the module
 * checks every reply: lengths, subsystem, type, then each attribute. */
int lct_parse(lua_State *L)
{
	size_t len;
	const char *bytes = luaL_checklstring(L, 1, &len);
	struct nf_conntrack **scratch;
	struct nlmsghdr *nlh;
	const char *err = NULL;
	int type;

	if (len < MNL_NLMSG_HDRLEN + sizeof(struct nfgenmsg) || len > LCT_RECV_SIZE)
		err = "parse: not a conntrack message (bad length)";
	if (err == NULL) {
		/* an aligned copy, in memory an error cannot leak */
		nlh = lua_newuserdatauv(L, len, 0);
		memcpy(nlh, bytes, len);
		type = NFNL_MSG_TYPE(nlh->nlmsg_type);
		if (nlh->nlmsg_len != len || !mnl_nlmsg_ok(nlh, (int)len))
			err = "parse: not a conntrack message (bad length)";
		else if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK ||
		         (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE))
			err = "parse: not a conntrack message (type)";
	}
	if (err != NULL) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	scratch = lua_newuserdatauv(L, sizeof(*scratch), 0);
	*scratch = NULL;
	if (lct_scratch_ready(scratch) < 0)
		return luaL_error(L, "not enough memory");
	if (msg_parse(nlh, *scratch) < 0) {
		nfct_destroy(*scratch);
		lua_pushnil(L);
		lua_pushliteral(L, "parse: malformed attributes");
		return 2;
	}
	lct_flow_adopt(L, scratch);
	if (*scratch != NULL)
		nfct_destroy(*scratch);
	return 1;
}

void lct_flow_open(lua_State *L, int module)
{
	static const luaL_Reg methods[] = {
		{ "format", flow_format }, { "totable", flow_totable }, { "match", flow_match }, { "tuple", flow_tuple },
		{ NULL, NULL }
	};
	static const luaL_Reg meta[] = {
		{ "__tostring", flow_tostring }, { "__eq", flow_eq }, { "__newindex", flow_newindex },
		{ NULL, NULL }
	};
	int i;

	module = lua_absindex(L, module);
	lua_pushcfunction(L, set_labelmap);
	lua_setfield(L, module, "labelmap");
	lua_pushcfunction(L, lct_parse);
	lua_setfield(L, module, "parse");
	luaL_newmetatable(L, LCT_FLOW);
	lua_pushcfunction(L, flow_gc);
	lua_setfield(L, -2, "__gc");
	lct_protect_metatable(L, LCT_FLOW);
	lua_newtable(L);                       /* the plain metatable */
	lua_pushliteral(L, LCT_FLOW);
	lua_setfield(L, -2, "__name");
	lct_protect_metatable(L, LCT_FLOW);
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, LCT_FLOW_PLAIN);
	/* the same function values in both: Lua 5.1 compares __eq handlers */
	for (i = 0; meta[i].name; i++) {
		lua_pushcfunction(L, meta[i].func);
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, meta[i].name);
		lua_setfield(L, -3, meta[i].name);
	}
	luaL_newlib(L, methods);
	lua_getfield(L, LUA_REGISTRYINDEX, LCT_FIELDS);
	lua_pushvalue(L, -4);
	lua_pushvalue(L, -4);
	lua_pushcclosure(L, flow_index, 4);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -3, "__index");
	lua_pop(L, 2);
}
