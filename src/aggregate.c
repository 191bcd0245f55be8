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
#define AGG_MAX_KEYS 16
#define AGG_FN_BYTES 62            /* the longest string a key function may return */
#define AGG_DEFAULT_MAX_GROUPS 100000

/* One part of a group's key: a field, or (field -1) the key function. Each
 * is a fixed slot of the key: a presence byte, then its value. */
struct part {
	int field;
	uint8_t plen4, plen6;          /* addresses: the prefix lengths kept */
	size_t off, size;
};

enum sum { SUM_FLOWS, SUM_PACKETS, SUM_BYTES, SUM_ORIG_PACKETS, SUM_ORIG_BYTES, SUM_REPLY_PACKETS,
           SUM_REPLY_BYTES };
static const char *const sum_names[] = { "flows", "packets", "bytes", "orig_packets", "orig_bytes",
                                         "reply_packets", "reply_bytes", NULL };

struct spec {
	int nparts;
	struct part parts[AGG_MAX_KEYS];
	size_t key_len;
	int sort, sort_given;
	size_t top;                    /* 0: every group */
	size_t max_groups;
	uint16_t type;                 /* the dump request: the table, zeroing, or a list */
};

/* The sums of a group (0: original, 1: reply direction). */
struct sums {
	uint64_t flows, packets[2], bytes[2];
};

/* A group in the table: its sums, then its key. */
struct group {
	struct sums sums;
	uint64_t rank;                 /* the sort's sum, once the dump is over */
	uint32_t hash, key_len;
	unsigned char key[];
};

/* ---- the table of groups: records side by side, found through an index
 * of (hash, record number + 1) pairs at most half full ---- */

struct slot {
	uint32_t hash, rec;            /* rec 0: empty */
};

/* Its memory is the Lua state's allocator's, outside the collector's
 * objects: grown in place (realloc), freed at once, and by the walk's
 * finalizer whatever ends the operation. */
struct table {
	struct slot *index;
	unsigned char *records;
	lua_Alloc alloc;
	void *ud;
	size_t cap, room, count, max, record;   /* index slots, records room, groups, the cap, bytes a record */
	size_t key_len;
	int counted;                   /* a flow had counters */
	struct sums other;             /* the flows of groups past the cap */
	uint64_t total;
};

/* The walk: its socket, the flow being parsed and the table, released by
 * the collector whatever ends the operation (an error of the predicate, of
 * the key function, of an allocation). */
struct walk {
	struct nl nl;
	struct nl_reply reply;
	struct nf_conntrack *scratch;
	int open;
	struct table t;
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

static void table_free(struct table *t)
{
	if (t->index)
		t->alloc(t->ud, t->index, t->cap * sizeof(struct slot), 0);
	if (t->records)
		t->alloc(t->ud, t->records, t->room * t->record, 0);
	t->index = NULL;
	t->records = NULL;
}

static int walk_gc(lua_State *L)
{
	struct walk *w = luaL_checkudata(L, 1, LCT_AGGREGATE);

	walk_release(w);
	table_free(&w->t);
	return 0;
}

/* ---- options ---- */

static size_t part_size(int field)
{
	if (field < 0)
		return 2 + AGG_FN_BYTES;                 /* presence and type, length, bytes */
	switch (lct_fields[field].kind) {
	case K_ADDR:   return 2 + 16;                /* family, prefix length, address */
	case K_STATE:  return 2 + 8;                 /* presence, protocol, state */
	case K_STRING: return 1 + 32;
	default:       return 1 + 8;
	}
}

/* "orig_src", "orig_src/24" (both families), "orig_src/24/64" (IPv4, IPv6) */
static void check_key_name(lua_State *L, int idx, struct part *p)
{
	const char *s = lct_check_cstring(L, idx, "by"), *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	char *end;
	unsigned long n4 = 32, n6 = 128;

	lua_pushlstring(L, s, len);
	p->field = lct_field_lookup(L, -1);
	lua_pop(L, 1);
	if (p->field < 0)
		luaL_error(L, "bad argument 'by': unknown field '%s'", s);
	if (lct_fields[p->field].kind == K_LABELS || p->field == FIELD_SECCTX)
		luaL_error(L, "bad argument 'by': flows are not grouped by '%s'", lct_fields[p->field].name);
	if (slash) {
		if (lct_fields[p->field].kind != K_ADDR)
			luaL_error(L, "bad argument 'by': a prefix length is for addresses, not '%s'", s);
		n4 = n6 = strtoul(slash + 1, &end, 10);
		if (*end == '/')
			n6 = strtoul(end + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || n4 > 128 || n6 > 128 || (end[-1] == '/'))
			luaL_error(L, "bad argument 'by': invalid prefix length in '%s'", s);
	}
	p->plen4 = (uint8_t)(n4 > 32 ? 32 : n4);
	p->plen6 = (uint8_t)n6;
}

static void add_part(lua_State *L, struct spec *s, int idx)
{
	struct part *p = &s->parts[s->nparts];

	if (s->nparts == AGG_MAX_KEYS)
		luaL_error(L, "bad argument 'by': at most %d keys", AGG_MAX_KEYS);
	if (lua_type(L, idx) == LUA_TFUNCTION) {
		p->field = -1;
	} else if (lua_type(L, idx) == LUA_TSTRING) {
		check_key_name(L, idx, p);
	} else {
		luaL_error(L, "bad argument 'by': expected field names or a function, got %s", luaL_typename(L, idx));
	}
	p->off = s->key_len;
	p->size = part_size(p->field);
	s->key_len += p->size;
	s->nparts++;
}

/* opts.by (at idx): a key or a list of keys. Pushes the key function or nil. */
static void check_by(lua_State *L, int idx, struct spec *s)
{
	int i, fn = 0;

	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	if (lua_type(L, idx) != LUA_TTABLE) {
		add_part(L, s, idx);
		if (lua_type(L, idx) == LUA_TFUNCTION) {
			lua_pushvalue(L, idx);
			lua_replace(L, -2);
		}
		return;
	}
	for (i = 1; lua_rawgeti(L, idx, i) != LUA_TNIL; i++) {
		add_part(L, s, -1);
		if (lua_type(L, -1) != LUA_TFUNCTION) {
			lua_pop(L, 1);
		} else if (fn++) {
			luaL_error(L, "bad argument 'by': one key function at most");
		} else {
			lua_replace(L, -2);
		}
	}
	lua_pop(L, 1);
	if (s->nparts == 0)
		luaL_error(L, "bad argument 'by': no key");
}

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
			s->sort_given = 1;
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
	check_by(L, -1, s);
	lua_remove(L, -2);
}

/* ---- the key of a flow ---- */

static void mask_addr(uint8_t *a, unsigned int bits, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < len; i++) {
		if (bits >= 8)
			bits -= 8;
		else {
			a[i] &= (uint8_t)(0xff00 >> bits);
			bits = 0;
		}
	}
}

/* big-endian: equal sums list their groups in the order of their keys */
static void put_u64(unsigned char *slot, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		slot[i] = (uint8_t)v;
}

/* The key function's value (at the top of the stack) into its slot: 1, or
 * 0 for what cannot be a key. */
static int fn_key(lua_State *L, unsigned char *slot)
{
	size_t len;
	const char *s;
	lua_Number n;

	switch (lua_type(L, -1)) {
	case LUA_TNIL:
		return 1;
	case LUA_TBOOLEAN:
		slot[0] = 'b';
		slot[1] = (unsigned char)lua_toboolean(L, -1);
		return 1;
	case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
		if (lua_isinteger(L, -1)) {
			lua_Integer i = lua_tointeger(L, -1);
			slot[0] = 'i';
			memcpy(slot + 2, &i, sizeof(i));
			return 1;
		}
#endif
		n = lua_tonumber(L, -1);
		slot[0] = 'n';
		memcpy(slot + 2, &n, sizeof(n));
		return 1;
	case LUA_TSTRING:
		s = lua_tolstring(L, -1, &len);
		if (len > AGG_FN_BYTES)
			return 0;
		slot[0] = 's';
		slot[1] = (unsigned char)len;
		memcpy(slot + 2, s, len);
		return 1;
	default:
		return 0;
	}
}

static void field_key(const struct nf_conntrack *ct, const struct part *p, unsigned char *slot)
{
	const struct field *f = &lct_fields[p->field];
	struct addr a;
	uint64_t v;

	switch (f->kind) {
	case K_ADDR:
		if (!lct_field_read_addr(ct, p->field, &a))
			return;
		slot[0] = a.family;
		slot[1] = a.family == AF_INET ? p->plen4 : p->plen6;
		memcpy(slot + 2, a.a, a.family == AF_INET ? 4 : 16);
		mask_addr(slot + 2, slot[1], a.family == AF_INET ? 4 : 16);
		return;
	case K_STRING:
		if (nfct_attr_is_set(ct, f->attr)) {
			slot[0] = 1;
			strncpy((char *)slot + 1, nfct_get_attr(ct, f->attr), 31);
		}
		return;
	default:
		if (!lct_field_read_u64(ct, p->field, &v))
			return;
		slot[0] = 1;
		if (f->kind == K_STATE)
			slot[1] = lct_flow_proto(ct);
		put_u64(slot + (f->kind == K_STATE ? 2 : 1), v);
	}
}

/* The same key read from a message's view (view.c), for the flows no Lua
 * code needs to see: what field_key reads from the parsed flow. */
static void view_key(const struct msg_view *v, const struct part *p, unsigned char *slot)
{
	const struct nlattr *const *tb = v->tb, *attr = NULL;
	uint64_t x;
	int nat;

	switch (p->field) {
	case FIELD_ORIG_SRC: case FIELD_ORIG_DST: case FIELD_REPLY_SRC: case FIELD_REPLY_DST: {
		const struct msg_tuple *t = p->field <= FIELD_ORIG_DST ? &v->orig : &v->reply;
		unsigned int len = v->family == AF_INET ? 4 : 16;
		attr = p->field == FIELD_ORIG_SRC || p->field == FIELD_REPLY_SRC ? t->src : t->dst;
		if (attr == NULL)
			return;
		slot[0] = v->family;
		slot[1] = v->family == AF_INET ? p->plen4 : p->plen6;
		memcpy(slot + 2, MSG_PAYLOAD(attr), len);
		mask_addr(slot + 2, slot[1], len);
		return;
	}
	case FIELD_STATE:
		if (v->state == NULL)
			return;
		slot[0] = 1;
		slot[1] = v->proto;
		put_u64(slot + 2, MSG_PAYLOAD(v->state)[0]);
		return;
	case FIELD_FAMILY:      x = v->family; break;
	case FIELD_PROTO:       x = v->proto; break;
	case FIELD_ZONE:        x = tb[CTA_ZONE] ? msg_be16(tb[CTA_ZONE]) : 0; break;
	case FIELD_ORIG_ZONE:   x = v->orig.zone ? msg_be16(v->orig.zone) : 0; break;
	case FIELD_REPLY_ZONE:  x = v->reply.zone ? msg_be16(v->reply.zone) : 0; break;
	case FIELD_SNAT: case FIELD_DNAT:
		if ((nat = msg_view_nat(v, p->field == FIELD_DNAT)) < 0)
			return;
		x = (uint64_t)nat;
		break;
	default:
		switch (p->field) {
		case FIELD_ORIG_SPORT:    attr = v->orig.sport; break;
		case FIELD_ORIG_DPORT:    attr = v->orig.dport; break;
		case FIELD_REPLY_SPORT:   attr = v->reply.sport; break;
		case FIELD_REPLY_DPORT:   attr = v->reply.dport; break;
		case FIELD_ICMP_TYPE:     attr = v->orig.icmp[0]; break;
		case FIELD_ICMP_CODE:     attr = v->orig.icmp[1]; break;
		case FIELD_ICMP_ID:       attr = v->orig.icmp[2]; break;
		case FIELD_ORIG_VTAG:     attr = v->vtag[0]; break;
		case FIELD_REPLY_VTAG:    attr = v->vtag[1]; break;
		case FIELD_STATUS:        attr = tb[CTA_STATUS]; break;
		case FIELD_TIMEOUT:       attr = tb[CTA_TIMEOUT]; break;
		case FIELD_MARK:          attr = tb[CTA_MARK]; break;
		case FIELD_SECMARK:       attr = tb[CTA_SECMARK]; break;
		case FIELD_USE:           attr = tb[CTA_USE]; break;
		case FIELD_ID:            attr = tb[CTA_ID]; break;
		case FIELD_ORIG_PACKETS:  attr = v->counters[0][0]; break;
		case FIELD_ORIG_BYTES:    attr = v->counters[0][1]; break;
		case FIELD_REPLY_PACKETS: attr = v->counters[1][0]; break;
		case FIELD_REPLY_BYTES:   attr = v->counters[1][1]; break;
		case FIELD_START:         attr = v->start; break;
		case FIELD_STOP:          attr = v->stop; break;
		default:                  return;   /* the helper: a view has none */
		}
		if (attr == NULL)
			return;
		switch (MSG_PAYLOAD_LEN(attr)) {
		case 1:  x = MSG_PAYLOAD(attr)[0]; break;
		case 2:  x = msg_be16(attr); break;
		case 4:  x = msg_be32(attr); break;
		default: x = msg_be64(attr); break;
		}
	}
	slot[0] = 1;
	put_u64(slot + 1, x);
}

/* Eight bytes at a time, multiplied and folded (keys are a few words long). */
static uint32_t hash_key(const unsigned char *k, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15u, w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, k + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
		h ^= h >> 32;
	}
	if (i < len) {
		w = 0;
		memcpy(&w, k + i, len - i);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53u;
	return (uint32_t)(h ^ h >> 32);
}

static struct group *record_at(const struct table *t, size_t i)
{
	return (struct group *)(t->records + i * t->record);
}

/* The index slot of key, or the empty slot where it goes. */
static struct slot *find(const struct table *t, const unsigned char *key, uint32_t h)
{
	size_t i = h & (t->cap - 1);
	struct slot *sl;

	for (;;) {
		sl = &t->index[i];
		if (sl->rec == 0 || (sl->hash == h && memcmp(record_at(t, sl->rec - 1)->key, key, t->key_len) == 0))
			return sl;
		i = (i + 1) & (t->cap - 1);
	}
}

/* Room for twice the groups: 0, or -1 out of memory. */
static int grow(struct table *t)
{
	size_t room = t->room ? t->room * 2 : 32, i;
	unsigned char *records = t->alloc(t->ud, t->records, t->room * t->record, room * t->record);
	struct slot *index;

	if (records == NULL)
		return -1;
	t->records = records;
	t->room = room;
	index = t->alloc(t->ud, NULL, 0, 2 * room * sizeof(struct slot));
	if (index == NULL)
		return -1;
	if (t->index)
		t->alloc(t->ud, t->index, t->cap * sizeof(struct slot), 0);
	t->index = index;
	t->cap = 2 * room;
	memset(t->index, 0, t->cap * sizeof(struct slot));
	for (i = 0; i < t->count; i++) {
		struct group *g = record_at(t, i);
		struct slot *sl = find(t, g->key, g->hash);
		sl->hash = g->hash;
		sl->rec = (uint32_t)i + 1;
	}
	return 0;
}

static void add_sums(struct sums *s, const struct nf_conntrack *ct, struct table *t)
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

static void add_view_sums(struct sums *s, const struct msg_view *v, struct table *t)
{
	int dir;

	s->flows++;
	for (dir = 0; dir < 2; dir++) {
		if (v->counters[dir][0])
			s->packets[dir] += msg_counter(v->counters[dir][0]), t->counted = 1;
		if (v->counters[dir][1])
			s->bytes[dir] += msg_counter(v->counters[dir][1]), t->counted = 1;
	}
}

/* The sums of key's group, a new one if need be; NULL out of memory. */
static struct sums *group_of(struct table *t, const unsigned char *key)
{
	uint32_t h = hash_key(key, t->key_len);
	struct slot *sl = find(t, key, h);
	struct group *g;

	t->total++;
	if (sl->rec)
		return &record_at(t, sl->rec - 1)->sums;
	if (t->count >= t->max)
		return &t->other;
	if (t->count == t->room) {
		if (grow(t) < 0)
			return NULL;
		sl = find(t, key, h);
	}
	g = record_at(t, t->count);
	memset(g, 0, sizeof(*g));
	g->hash = h;
	g->key_len = (uint32_t)t->key_len;
	memcpy(g->key, key, t->key_len);
	sl->hash = h;
	sl->rec = (uint32_t)++t->count;
	return &g->sums;
}

/* ---- the result ---- */

static uint64_t sum_of(const struct sums *s, int which)
{
	switch (which) {
	case SUM_PACKETS:       return s->packets[0] + s->packets[1];
	case SUM_BYTES:         return s->bytes[0] + s->bytes[1];
	case SUM_ORIG_PACKETS:  return s->packets[0];
	case SUM_ORIG_BYTES:    return s->bytes[0];
	case SUM_REPLY_PACKETS: return s->packets[1];
	case SUM_REPLY_BYTES:   return s->bytes[1];
	default:                return s->flows;
	}
}

/* The largest sums first; equal ones in the order of their keys. */
static int by_rank(const void *a, const void *b)
{
	const struct group *x = *(const struct group *const *)a, *y = *(const struct group *const *)b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? 1 : -1;
	return memcmp(x->key, y->key, x->key_len);
}

/* The top n of the groups, in heap[] (unordered): a heap whose root is the
 * last of them, replaced by any group that ranks before it. */
static void sift_down(struct group **heap, size_t n, size_t i)
{
	for (;;) {
		size_t last = i, l = 2 * i + 1, r = l + 1;
		struct group *tmp;
		if (l < n && by_rank(&heap[l], &heap[last]) > 0)
			last = l;
		if (r < n && by_rank(&heap[r], &heap[last]) > 0)
			last = r;
		if (last == i)
			return;
		tmp = heap[i], heap[i] = heap[last], heap[last] = tmp;
		i = last;
	}
}

static size_t select_top(const struct table *t, struct group **heap, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < t->count; i++) {
		struct group *g = record_at(t, i);
		if (k < n) {
			heap[k++] = g;
			if (k == n) {
				size_t j = n / 2 + 1;
				while (j-- > 0)
					sift_down(heap, n, j);
			}
		} else if (by_rank(&g, &heap[0]) < 0) {
			heap[0] = g;
			sift_down(heap, n, 0);
		}
	}
	return k;
}

static uint64_t get_u64(const unsigned char *slot)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | slot[i];
	return v;
}

static void push_status(lua_State *L, uint32_t status)
{
	int i;

	lua_newtable(L);
	for (i = 0; msg_status_names[i]; i++)
		if (status & (1u << i)) {
			lua_pushboolean(L, 1);
			lua_setfield(L, -2, msg_status_names[i]);
		}
}

/* Pushes the value of a key part, as a flow's field reads (an address cut
 * to a prefix as "10.1.2.0/24"); 0 (nothing pushed) where the flows had none. */
static int push_part(lua_State *L, const struct part *p, const unsigned char *slot)
{
	char text[INET6_ADDRSTRLEN + 8], *end;
	const char *name = NULL;
	uint64_t v;

	if (slot[0] == 0)
		return 0;
	if (p->field < 0) {
		lua_Number n;
		switch (slot[0]) {
		case 'b': lua_pushboolean(L, slot[1]); break;
		case 's': lua_pushlstring(L, (const char *)slot + 2, slot[1]); break;
#if LUA_VERSION_NUM >= 503
		case 'i': {
			lua_Integer i;
			memcpy(&i, slot + 2, sizeof(i));
			lua_pushinteger(L, i);
			break;
		}
#endif
		default:
			memcpy(&n, slot + 2, sizeof(n));
			lua_pushnumber(L, n);
		}
		return 1;
	}
	switch (lct_fields[p->field].kind) {
	case K_ADDR:
		end = msg_addr_text(text, slot[0], slot + 2);
		if (slot[1] < (slot[0] == AF_INET ? 32 : 128))
			lua_pushfstring(L, "%s/%d", text, (int)slot[1]);
		else
			lua_pushlstring(L, text, (size_t)(end - text));
		return 1;
	case K_STRING:
		lua_pushstring(L, (const char *)slot + 1);
		return 1;
	case K_STATE:
		v = get_u64(slot + 2);
		name = msg_state_name(slot[1], (unsigned)v);
		break;
	default:
		v = get_u64(slot + 1);
		break;
	}
	switch (lct_fields[p->field].kind) {
	case K_FAMILY: name = v == AF_INET ? "ipv4" : v == AF_INET6 ? "ipv6" : NULL; break;
	case K_PROTO:  name = msg_proto_name((uint8_t)v); break;
	case K_STATUS: push_status(L, (uint32_t)v); return 1;
	case K_NAT:    lua_pushboolean(L, v != 0); return 1;
	default: break;
	}
	if (name)
		lua_pushstring(L, name);
	else
		lct_push_uint(L, v);
	return 1;
}

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

	lua_createtable(L, 0, s->nparts + 5);
	for (i = 0; i < s->nparts; i++)
		if (push_part(L, &s->parts[i], g->key + s->parts[i].off))
			lua_setfield(L, -2, s->parts[i].field < 0 ? "key" : lct_fields[s->parts[i].field].name);
	push_sums(L, &g->sums, counted);
}

/* Pushes the groups, the top ones by the sort's sum, and the summary. */
static int push_result(lua_State *L, const struct spec *s, struct table *t)
{
	struct group **groups;
	size_t i, n = 0, shown;
	int sort = s->sort;

	/* without accounting there are no sums of packets and bytes to sort by */
	if (!t->counted)
		sort = SUM_FLOWS;
	for (i = 0; i < t->count; i++)
		record_at(t, i)->rank = sum_of(&record_at(t, i)->sums, sort);
	n = s->top && s->top < t->count ? s->top : t->count;
	groups = lua_newuserdatauv(L, (n ? n : 1) * sizeof(*groups), 0);
	shown = select_top(t, groups, n);
	qsort(groups, shown, sizeof(*groups), by_rank);
	lua_createtable(L, (int)shown, 0);
	for (i = 0; i < shown; i++) {
		push_group(L, s, groups[i], t->counted);
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
enum { A_KEYFN = 4, A_WHERE, A_KEY, A_WALK };

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
	memset(key, 0, s->key_len);
	for (i = 0; i < s->nparts; i++) {
		if (s->parts[i].field >= 0) {
			field_key(ct, &s->parts[i], key + s->parts[i].off);
			continue;
		}
		lua_pushvalue(L, A_KEYFN);
		lua_pushvalue(L, -2);
		call(L, w);
		if (!fn_key(L, key + s->parts[i].off)) {
			walk_release(w);
			luaL_error(L, "bad argument 'by': the key function returned a %s (keys are strings of at most %d "
			           "bytes, numbers, booleans or nil)", luaL_typename(L, -1), AGG_FN_BYTES);
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
	struct filter filter;
	struct spec s;
	struct table *t;
	struct walk *w;
	struct sums *sums;
	unsigned char *key;
	struct msg_view v;
	int rc, objects, view, i;

	if (lua_gettop(L) == 2)           /* ct:aggregate(opts) */
		lua_pushnil(L), lua_insert(L, 2);
	lct_filter_parse(L, 2, &filter);
	lua_settop(L, 3);
	check_opts(L, 3, &s);             /* A_KEYFN */
	lct_filter_push_where(L, 2);      /* A_WHERE */
	objects = !lua_isnil(L, A_KEYFN) || !lua_isnil(L, A_WHERE);
	key = lua_newuserdatauv(L, s.key_len, 0);
	w = lua_newuserdatauv(L, sizeof(*w), 0);
	w->open = 0;
	w->nl.sock = NULL;
	w->scratch = NULL;
	t = &w->t;
	memset(t, 0, sizeof(*t));
	luaL_setmetatable(L, LCT_AGGREGATE);
	t->alloc = lua_getallocf(L, &t->ud);
	t->key_len = s.key_len;
	t->max = s.max_groups;
	t->record = (sizeof(struct group) + s.key_len + 7) & ~(size_t)7;
	if (grow(t) < 0)
		return lct_fail(L, "aggregate", ENOMEM);

	/* flows no Lua code sees, under a filter matched on the message, are read from it */
	view = !objects && lct_filter_on_message(&filter);
	w->open = 1;
	rc = lct_request_dump(&w->nl, &w->reply, lct_handle_netns(L, h), w->buf, s.type, &filter);
	while (rc >= 0 && (rc = nl_reply_next(&w->reply, &msg)) > 0) {
		const struct nf_conntrack *ct;
		if (!is_conntrack(msg))
			continue;
		if (view && msg_check(msg) == 0 && msg_view(msg, &v) == 0) {
			if (lct_filter_match_message(&filter, msg)) {
				memset(key, 0, s.key_len);
				for (i = 0; i < s.nparts; i++)
					view_key(&v, &s.parts[i], key + s.parts[i].off);
				if ((sums = group_of(t, key)) == NULL) {
					rc = -ENOMEM;
					break;
				}
				add_view_sums(sums, &v, t);
			}
			continue;
		}
		if (lct_scratch_ready(&w->scratch) < 0 || msg_parse(msg, w->scratch) < 0) {
			rc = w->scratch ? -EBADMSG : -ENOMEM;
			break;
		}
		if (!lct_filter_match(&filter, w->scratch))
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
			if ((sums = group_of(t, key)) == NULL) {
				rc = -ENOMEM;
				break;
			}
			add_sums(sums, ct, t);
		}
		if (objects)
			lua_pop(L, 1);
	}
	walk_release(w);
	if (rc < 0) {
		table_free(t);
		return lct_fail(L, "aggregate", -rc);
	}
	rc = push_result(L, &s, t);
	table_free(t);
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
