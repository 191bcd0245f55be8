/*
 * groups.c: the table of groups of ct:aggregate, keyed by rows of bytes:
 * records side by side, found through an index of (hash, record number + 1)
 * pairs at most half full. Its memory is the Lua state's allocator's, outside
 * the collector's objects: grown in place, freed at once (and by the walk's
 * finalizer whatever ends the operation), never more than the groups need.
 * Past the cap, new groups' flows are summed as "other". No Lua code runs
 * here: the allocator is the only part of the Lua state it uses.
 */
#include <stdlib.h>
#include <string.h>

#include "lct.h"

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

static struct group *record_at(const struct groups *t, size_t i)
{
	return (struct group *)(t->records + i * t->record);
}

/* The index slot of key, or the empty slot where it goes. */
static struct slot *find(const struct groups *t, const unsigned char *key, uint32_t h)
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
static int grow(struct groups *t)
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

/* The sums of key's group, a new one if need be; NULL out of memory. */
struct sums *lct_groups_find(struct groups *t, const unsigned char *key)
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

/* ---- the top groups ---- */

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

static size_t select_top(const struct groups *t, struct group **heap, size_t n)
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


/* The top n groups by the sum `sort`, largest first, into top (n slots):
 * how many. */
size_t lct_groups_top(struct groups *t, int sort, struct group **top, size_t n)
{
	size_t i, shown;

	for (i = 0; i < t->count; i++)
		record_at(t, i)->rank = sum_of(&record_at(t, i)->sums, sort);
	shown = select_top(t, top, n);
	qsort(top, shown, sizeof(*top), by_rank);
	return shown;
}

void lct_groups_free(struct groups *t)
{
	if (t->index)
		t->alloc(t->ud, t->index, t->cap * sizeof(struct slot), 0);
	if (t->records)
		t->alloc(t->ud, t->records, t->room * t->record, 0);
	t->index = NULL;
	t->records = NULL;
}

/* An empty table for keys of key_len bytes, at most max groups: 0, or -1
 * out of memory. */
int lct_groups_init(struct groups *t, lua_State *L, size_t key_len, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->alloc = lua_getallocf(L, &t->ud);
	t->key_len = key_len;
	t->max = max;
	t->record = (sizeof(struct group) + key_len + 7) & ~(size_t)7;
	return grow(t);
}
