/*
 * groups.c: the table of groups of ct:aggregate, keyed by rows of bytes:
 * records in chunks, each twice the size of the one before (a record never
 * moves, growing copies nothing), found through an index of (hash, record
 * number + 1) pairs at most half full, rebuilt from itself when it grows.
 * Callers may hash a batch of keys first and prefetch their slots, so that
 * the memory reads of a batch overlap instead of following one another.
 * Its memory is the Lua state's allocator's, outside the collector's
 * objects: freed at once (and by the walk's finalizer whatever ends the
 * operation), never more than twice what the groups need. Past the cap, new
 * groups' flows are summed as "other". No Lua code runs here: the allocator
 * is the only part of the Lua state it uses.
 */
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "lct.h"

/* A large area the table is about to fill: its pages made present in one
 * call rather than one fault at a time (a fault costs most under
 * virtualisation). Only a hint: kernels before 5.14 refuse it. */
#define PREFAULT_MIN (256 * 1024)
static void prefault(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + page - 1) & ~(page - 1),
	          b = ((uintptr_t)p + len) & ~(page - 1);

	if (len >= PREFAULT_MIN && b > a)
		(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#else
	(void)p, (void)len;
#endif
}

/* Eight bytes at a time, multiplied and folded (keys are a few words long). */
uint32_t lct_groups_hash(const struct groups *t, const unsigned char *k)
{
	size_t len = t->key_len;
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

/* Chunk c holds GROUPS_FIRST << c records: record i is in the chunk of the
 * highest bit of i + GROUPS_FIRST. */
static struct group *record_at(const struct groups *t, size_t i)
{
	size_t n = i + GROUPS_FIRST, c = (size_t)(63 - __builtin_clzll(n)) - GROUPS_FIRST_BITS;

	return (struct group *)(t->chunks[c] + (n - (GROUPS_FIRST << c)) * t->record);
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

/* A new chunk, as many records as all before it: 0, or -1 out of memory.
 * The index, twice the room then (a power of two), is filled from the old one, which holds
 * every hash: the records are not read again. */
static int grow(struct groups *t)
{
	size_t size = GROUPS_FIRST << t->nchunks, cap = 4 * size, i, j;
	unsigned char *chunk;
	struct slot *index;

	if (t->nchunks == GROUPS_CHUNKS || (chunk = t->alloc(t->ud, NULL, 0, size * t->record)) == NULL)
		return -1;
	t->chunks[t->nchunks++] = chunk;
	t->room += size;
	prefault(chunk, size * t->record);
	index = t->alloc(t->ud, NULL, 0, cap * sizeof(struct slot));
	if (index == NULL)
		return -1;
	prefault(index, cap * sizeof(struct slot));
	memset(index, 0, cap * sizeof(struct slot));
	for (i = 0; i < t->cap; i++) {
		if (t->index[i].rec == 0)
			continue;
		for (j = t->index[i].hash & (cap - 1); index[j].rec; j = (j + 1) & (cap - 1))
			;
		index[j] = t->index[i];
	}
	if (t->index)
		t->alloc(t->ud, t->index, t->cap * sizeof(struct slot), 0);
	t->index = index;
	t->cap = cap;
	return 0;
}

/* Hints that key (hashed h) is looked up soon: stage 0 reads its index
 * slot, stage 1 the record that slot names (after stage 0 for the batch). */
void lct_groups_prefetch(const struct groups *t, uint32_t h, int stage)
{
	const struct slot *sl = &t->index[h & (t->cap - 1)];

	if (stage == 0)
		__builtin_prefetch(sl);
	else if (sl->rec)
		__builtin_prefetch(record_at(t, sl->rec - 1));
}

/* The sums of key's group (hashed h), a new one if need be; NULL out of memory. */
struct sums *lct_groups_find_hashed(struct groups *t, const unsigned char *key, uint32_t h)
{
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
	memset(&g->sums, 0, sizeof(g->sums));
	memcpy(g->key, key, t->key_len);
	sl->hash = h;
	sl->rec = (uint32_t)++t->count;
	return &g->sums;
}

struct sums *lct_groups_find(struct groups *t, const unsigned char *key)
{
	return lct_groups_find_hashed(t, key, lct_groups_hash(t, key));
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

/* x goes before y: the larger sum first, equal ones in the order of their keys. */
static int before(const struct ranked_group *x, const struct ranked_group *y, size_t key_len)
{
	if (x->rank != y->rank)
		return x->rank > y->rank;
	return memcmp(x->g->key, y->g->key, key_len) < 0;
}

/* A heap whose root is the last of the groups in it. */
static void sift_down(struct ranked_group *heap, size_t n, size_t i, size_t key_len)
{
	for (;;) {
		size_t last = i, l = 2 * i + 1, r = l + 1;
		struct ranked_group tmp;
		if (l < n && before(&heap[last], &heap[l], key_len))
			last = l;
		if (r < n && before(&heap[last], &heap[r], key_len))
			last = r;
		if (last == i)
			return;
		tmp = heap[i], heap[i] = heap[last], heap[last] = tmp;
		i = last;
	}
}

/* The top n groups by the sum `sort` into top (n slots), largest first:
 * how many. One pass over the records with a heap of n whose root is the
 * last of them, then the heap taken apart from its last (a heap sort). */
size_t lct_groups_top(const struct groups *t, int sort, struct ranked_group *top, size_t n)
{
	struct ranked_group r, tmp;
	size_t i, j, k = 0;

	for (i = 0; i < t->count; i++) {
		r.g = record_at(t, i);
		r.rank = sum_of(&r.g->sums, sort);
		if (k < n) {
			top[k++] = r;
			for (j = k == n ? n / 2 + 1 : 0; j-- > 0;)
				sift_down(top, n, j, t->key_len);
		} else if (before(&r, &top[0], t->key_len)) {
			top[0] = r;
			sift_down(top, n, 0, t->key_len);
		}
	}
	if (k < n)                     /* fewer groups than n: never made a heap */
		for (j = k / 2 + 1; j-- > 0;)
			sift_down(top, k, j, t->key_len);
	for (i = k; i-- > 1;) {
		tmp = top[0], top[0] = top[i], top[i] = tmp;
		sift_down(top, i, 0, t->key_len);
	}
	return k;
}

void lct_groups_free(struct groups *t)
{
	size_t c;

	if (t->index)
		t->alloc(t->ud, t->index, t->cap * sizeof(struct slot), 0);
	for (c = 0; c < t->nchunks; c++)
		t->alloc(t->ud, t->chunks[c], (GROUPS_FIRST << c) * t->record, 0);
	t->index = NULL;
	t->nchunks = 0;
}

/* An empty table for keys of key_len bytes, at most max groups: 0, or -1
 * out of memory. */
int lct_groups_init(struct groups *t, lua_State *L, size_t key_len, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->alloc = lua_getallocf(L, &t->ud);
	t->key_len = key_len;
	t->max = max;
	t->record = (sizeof(struct group) + key_len + 7) & ~(size_t)7;   /* sums stay aligned */
	return grow(t);
}
