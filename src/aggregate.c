/*
 * aggregate.c: ct:aggregate(filter, opts), the flows a filter selects
 * grouped by keys (fields, addresses cut to a prefix, a key function) with
 * their sums of flows, packets and bytes per direction, and the top N groups
 * by any sum. Computed while the dump streams, on a socket of its own: memory
 * grows with the number of groups (up to a cap, past which new groups are
 * summed as "other"), never with the table's size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include "lct.h"

#define LCT_AGGREGATE "conntrack.aggregate"
#define AGG_DEFAULT_MAX_GROUPS 100000

static const char *const sum_names[] = { "flows", "packets", "bytes", "orig_packets", "orig_bytes",
                                         "reply_packets", "reply_bytes", NULL };

struct spec {
	struct keys keys;
	int sort;                      /* enum sum */
	size_t top;                    /* 0: every group */
	size_t max_groups;
	uint16_t type;                 /* the dump request: the table, zeroing, or a list */
};

/* The walk: its socket, the flow being parsed and the table, released by
 * the collector whatever ends the operation (an error of the predicate, of
 * the key function, of an allocation). */
struct walk {
	struct nl nl;
	struct nl_reply reply;
	struct nf_conntrack *scratch;
	int open;
	struct groups t;
	char buf[LCT_RECV_SIZE];
};

static void walk_release(struct walk *w)
{
	if (w->open)
		nl_close(&w->nl);
	w->open = 0;
	if (w->scratch != NULL) {
		nfct_destroy(w->scratch);
		w->scratch = NULL;
	}
}

static int walk_gc(lua_State *L)
{
	struct walk *w = luaL_checkudata(L, 1, LCT_AGGREGATE);

	walk_release(w);
	lct_groups_free(&w->t);
	return 0;
}

/* ---- options ---- */

static const char *const agg_options[] = { "by", "top", "sort", "max_groups", "zero", "list", NULL };

/* opts (idx) into s; pushes the key function or nil. */
static void check_opts(lua_State *L, int idx, struct spec *s)
{
	memset(s, 0, sizeof(*s));
	s->max_groups = AGG_DEFAULT_MAX_GROUPS;
	s->sort = SUM_BYTES;
	s->type = IPCTNL_MSG_CT_GET;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lct_key_is(L, -2, "top")) {
			s->top = (size_t)lct_check_uint(L, -1, "top", 1u << 30);
		} else if (lct_key_is(L, -2, "max_groups")) {
			s->max_groups = (size_t)lct_check_uint(L, -1, "max_groups", 1u << 30);
			if (s->max_groups == 0)
				luaL_error(L, "bad argument 'max_groups': expected an integer from 1 to %d", 1 << 30);
		} else if (lct_key_is(L, -2, "sort")) {
			int i;
			for (i = 0; sum_names[i] && !lct_key_is(L, -1, sum_names[i]); i++)
				;
			if (sum_names[i] == NULL)
				luaL_error(L, "bad argument 'sort': expected one of flows, packets, bytes, orig_packets, "
				           "orig_bytes, reply_packets, reply_bytes");
			s->sort = i;
		} else if (lct_key_is(L, -2, "zero")) {
			if (lua_toboolean(L, -1))
				s->type = IPCTNL_MSG_CT_GET_CTRZERO;
		} else if (lct_key_is(L, -2, "list")) {
			if (lct_key_is(L, -1, "dying"))
				s->type = IPCTNL_MSG_CT_GET_DYING;
			else if (lct_key_is(L, -1, "unconfirmed"))
				s->type = IPCTNL_MSG_CT_GET_UNCONFIRMED;
			else if (!lct_key_is(L, -1, "conntrack"))
				luaL_error(L, "bad argument 'list': expected \"conntrack\", \"dying\" or \"unconfirmed\"");
		} else if (!lct_key_is(L, -2, "by")) {
			lct_unknown_option(L, -2, "aggregate", agg_options);
		}
		lua_pop(L, 1);
	}
	if (lua_getfield(L, idx, "by") == LUA_TNIL)
		luaL_error(L, "bad argument 'by': no key");
	lct_keys_check(L, -1, &s->keys);
	lua_remove(L, -2);
}

/* ---- sums ---- */

static void add_sums(struct sums *s, const struct nf_conntrack *ct, struct groups *t)
{
	static const int fields[2][2] = { { FIELD_ORIG_PACKETS, FIELD_ORIG_BYTES },
	                                  { FIELD_REPLY_PACKETS, FIELD_REPLY_BYTES } };
	uint64_t v;
	int dir;

	s->flows++;
	for (dir = 0; dir < 2; dir++) {
		if (lct_field_read_u64(ct, fields[dir][0], &v))
			s->packets[dir] += v, t->counted = 1;
		if (lct_field_read_u64(ct, fields[dir][1], &v))
			s->bytes[dir] += v, t->counted = 1;
	}
}

/* The flows read from their messages wait in a batch: their keys hashed
 * and their slots prefetched together, then summed (groups.c). */
#define AGG_BATCH 16
struct batch {
	size_t n;
	uint32_t hash[AGG_BATCH];
	struct sums add[AGG_BATCH];    /* one flow's counters */
	unsigned char *keys;           /* AGG_BATCH keys */
};

static void add(struct sums *to, const struct sums *s)
{
	to->flows += s->flows;
	to->packets[0] += s->packets[0];
	to->packets[1] += s->packets[1];
	to->bytes[0] += s->bytes[0];
	to->bytes[1] += s->bytes[1];
}

/* The flow of view v, its key at b->keys + b->n * key_len, into the batch. */
static void batch_add(struct batch *b, const struct msg_view *v, struct groups *t)
{
	struct sums *s = &b->add[b->n];
	int dir;

	memset(s, 0, sizeof(*s));
	s->flows = 1;
	for (dir = 0; dir < 2; dir++) {
		if (v->counters[dir][0])
			s->packets[dir] = msg_counter(v->counters[dir][0]), t->counted = 1;
		if (v->counters[dir][1])
			s->bytes[dir] = msg_counter(v->counters[dir][1]), t->counted = 1;
	}
	b->hash[b->n] = lct_groups_hash(t, b->keys + b->n * t->key_len);
	b->n++;
}

/* The batch into the groups: 0, or -ENOMEM. */
static int batch_flush(struct batch *b, struct groups *t)
{
	struct sums *sums;
	size_t i;

	for (i = 0; i < b->n; i++)
		lct_groups_prefetch(t, b->hash[i], 0);
	for (i = 0; i < b->n; i++)
		lct_groups_prefetch(t, b->hash[i], 1);
	for (i = 0; i < b->n; i++) {
		if ((sums = lct_groups_find_hashed(t, b->keys + i * t->key_len, b->hash[i])) == NULL)
			return -ENOMEM;
		add(sums, &b->add[i]);
	}
	b->n = 0;
	return 0;
}

/* ---- the result ---- */

static void push_sums(lua_State *L, const struct sums *s, int counted)
{
	lct_push_uint(L, s->flows);
	lua_setfield(L, -2, "flows");
	if (!counted)
		return;
	lct_push_uint(L, s->packets[0]);
	lua_setfield(L, -2, "orig_packets");
	lct_push_uint(L, s->bytes[0]);
	lua_setfield(L, -2, "orig_bytes");
	lct_push_uint(L, s->packets[1]);
	lua_setfield(L, -2, "reply_packets");
	lct_push_uint(L, s->bytes[1]);
	lua_setfield(L, -2, "reply_bytes");
}

static void push_group(lua_State *L, const struct spec *s, const struct group *g, int counted)
{
	int i;

	lua_createtable(L, 0, s->keys.nparts + 5);
	for (i = 0; i < s->keys.nparts; i++) {
		const struct key_part *p = &s->keys.parts[i];
		if (lct_key_push(L, p, g->key + p->off))
			lua_setfield(L, -2, p->field < 0 ? "key" : lct_fields[p->field].name);
	}
	push_sums(L, &g->sums, counted);
}

/* Pushes the groups, the top ones by the sort's sum, and the summary. */
static int push_result(lua_State *L, const struct spec *s, struct groups *t)
{
	struct ranked_group *groups;
	size_t i, n = 0, shown;
	int sort = s->sort;

	/* without accounting there are no sums of packets and bytes to sort by */
	if (!t->counted)
		sort = SUM_FLOWS;
	n = s->top && s->top < t->count ? s->top : t->count;
	groups = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*groups), 0);
	shown = lct_groups_top(t, sort, groups, n);
	lua_createtable(L, (int)shown, 0);
	for (i = 0; i < shown; i++) {
		push_group(L, s, groups[i].g, t->counted);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_createtable(L, 0, 5);
	lct_push_uint(L, t->total);
	lua_setfield(L, -2, "flows");
	lct_push_uint(L, t->count);
	lua_setfield(L, -2, "groups");
	lua_pushboolean(L, t->counted);
	lua_setfield(L, -2, "counters");
	lua_pushstring(L, sum_names[sort]);
	lua_setfield(L, -2, "sort");
	if (t->other.flows) {
		lua_createtable(L, 0, 5);
		push_sums(L, &t->other, t->counted);
		lua_setfield(L, -2, "other");
	}
	return 2;
}

/* ---- the operation ---- */

static int is_conntrack(const struct nlmsghdr *nlh)
{
	return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
	       NFNL_MSG_TYPE(nlh->nlmsg_type) == IPCTNL_MSG_CT_NEW;
}

/* Calls the function below its argument; an error ends the walk first. */
static void call(lua_State *L, struct walk *w)
{
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		walk_release(w);
		lua_error(L);
	}
}

/* Stack slots of the operation. */
enum { A_KEYFN = 4, A_WHERE, A_KEY, A_WALK, A_FILTER };

/* The key of the flow ct (the flow object at the top of the stack if there
 * is a predicate or key function) into key; 0, or 1 if the predicate
 * rejects the flow. */
static int key_of(lua_State *L, struct walk *w, const struct spec *s, const struct nf_conntrack *ct,
                  unsigned char *key)
{
	int i;

	if (!lua_isnil(L, A_WHERE)) {
		lua_pushvalue(L, A_WHERE);
		lua_pushvalue(L, -2);
		call(L, w);
		i = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (!i)
			return 1;
	}
	memset(key, 0, s->keys.len);
	for (i = 0; i < s->keys.nparts; i++) {
		const struct key_part *p = &s->keys.parts[i];
		if (p->field >= 0) {
			lct_key_from_flow(p, ct, key + p->off);
			continue;
		}
		lua_pushvalue(L, A_KEYFN);
		lua_pushvalue(L, -2);
		call(L, w);
		if (!lct_key_from_value(L, key + p->off)) {
			walk_release(w);
			luaL_error(L, "bad argument 'by': the key function returned a %s (keys are strings of at most %d "
			           "bytes, numbers, booleans or nil)", luaL_typename(L, -1), LCT_KEY_FN_BYTES);
		}
		lua_pop(L, 1);
	}
	return 0;
}

/* ct:aggregate([filter,] opts) -> groups, summary; nil, message, errno */
int lct_aggregate(lua_State *L)
{
	struct handle *h = lct_check_handle(L, 1);
	const struct nlmsghdr *msg;
	const struct filter *filter;
	struct spec s;
	struct groups *t;
	struct walk *w;
	struct sums *sums;
	unsigned char *key;
	struct msg_view v;
	struct batch b;
	unsigned char *slot;
	unsigned int parts;
	int rc, objects, view, i;

	if (lua_gettop(L) == 2)           /* ct:aggregate(opts) */
		lua_pushnil(L), lua_insert(L, 2);
	if (lua_type(L, 2) != LUA_TNIL && lua_type(L, 2) != LUA_TTABLE && lua_type(L, 2) != LUA_TFUNCTION)
		lct_filter_parse(L, 2);       /* raises: not a filter */
	lua_settop(L, 3);
	check_opts(L, 3, &s);             /* A_KEYFN */
	lct_filter_push_where(L, 2);      /* A_WHERE */
	objects = !lua_isnil(L, A_KEYFN) || !lua_isnil(L, A_WHERE);
	key = lua_newuserdatauv(L, s.keys.len * AGG_BATCH, 0);
	b.n = 0;
	b.keys = key;
	w = lua_newuserdatauv(L, sizeof(*w), 0);
	w->open = 0;
	w->nl.sock = NULL;
	w->scratch = NULL;
	t = &w->t;
	memset(t, 0, sizeof(*t));
	luaL_setmetatable(L, LCT_AGGREGATE);
	filter = lct_filter_parse(L, 2);  /* A_FILTER, kept for the walk */
	if (lct_groups_init(t, L, s.keys.len, s.max_groups) < 0)
		return lct_fail(L, "aggregate", ENOMEM);

	/* flows no Lua code sees, under a filter matched on the message, are read from it */
	view = !objects && lct_filter_on_message(filter);
	parts = lct_keys_view_parts(&s.keys);
	w->open = 1;
	rc = lct_request_dump(&w->nl, &w->reply, lct_handle_netns(L, h), w->buf, s.type, filter);
	while (rc >= 0 && (rc = nl_reply_next(&w->reply, &msg)) > 0) {
		const struct nf_conntrack *ct;
		if (!is_conntrack(msg))
			continue;
		if (view && msg_check_index(msg, v.tb, CTA_LABELS) == 0 && msg_view_indexed(msg, &v, parts) == 0) {
			if (lct_filter_match_message(filter, msg)) {
				slot = b.keys + b.n * s.keys.len;
				memset(slot, 0, s.keys.len);
				for (i = 0; i < s.keys.nparts; i++)
					lct_key_from_view(&s.keys.parts[i], &v, slot + s.keys.parts[i].off);
				batch_add(&b, &v, t);
				if (b.n == AGG_BATCH && (rc = batch_flush(&b, t)) < 0)
					break;
			}
			continue;
		}
		/* the groups take their flows in the order they came (the cap's "other") */
		if ((rc = batch_flush(&b, t)) < 0)
			break;
		if (lct_scratch_ready(&w->scratch) < 0 || msg_parse(msg, w->scratch) < 0) {
			rc = w->scratch ? -EBADMSG : -ENOMEM;
			break;
		}
		if (!lct_filter_match(filter, w->scratch))
			continue;
		ct = w->scratch;
		if (objects) {
			if (lct_flow_adopt(L, &w->scratch) == NULL) {
				rc = -ENOMEM;
				break;
			}
			ct = ((const struct flow *)lua_touserdata(L, -1))->ct;
		}
		if (key_of(L, w, &s, ct, key) == 0) {
			if ((sums = lct_groups_find(t, key)) == NULL) {
				rc = -ENOMEM;
				break;
			}
			add_sums(sums, ct, t);
		}
		if (objects)
			lua_pop(L, 1);
	}
	if (rc >= 0)
		rc = batch_flush(&b, t);
	walk_release(w);
	if (rc < 0) {
		lct_groups_free(t);
		return lct_fail(L, "aggregate", -rc);
	}
	rc = push_result(L, &s, t);
	lct_groups_free(t);
	return rc;
}

void lct_aggregate_open(lua_State *L)
{
	luaL_newmetatable(L, LCT_AGGREGATE);
	lua_pushcfunction(L, walk_gc);
	lua_setfield(L, -2, "__gc");
	lct_protect_metatable(L, LCT_AGGREGATE);
	lua_pop(L, 1);
}

