/* cache/lru.c: the in-memory LRU order of cached bodies.
 *
 * Ownership: a CacheLru owns one array of entries and one array of hash
 * buckets; nothing else is allocated per entry, so 100,000 bodies cost
 * 3.7 to 5.3 MB. Entries are addressed by index, which keeps links at 4
 * bytes and handles stable when the array grows.
 *
 * Locking: none; the caller serialises all calls.
 *
 * Invariants: a live entry has uid != 0 and is on the doubly linked LRU list
 * (oldest .. newest) and on the chain of bucket hash(key) & (nbuckets - 1);
 * a free entry has uid == 0 and is on the free list through .chain. bytes is
 * the sum of the live sizes, count the number of live entries, and
 * count <= nbuckets (a power of two).
 */
#include "cache/lru.h"

#include <glib.h>

#define MIN_BUCKETS 64u
#define MAX_PINS 0xffffu

typedef struct {
	CacheLruKey key; /* key.uid == 0: free */
	uint32_t prev, next;
	uint32_t chain; /* next in bucket, or in the free list */
	uint64_t size : 48;
	uint64_t pins : 16;
} LruEntry;

struct CacheLru {
	LruEntry *ents;
	uint32_t cap;  /* allocated entries */
	uint32_t used; /* entries ever handed out: ents[0..used) */
	uint32_t free_head;
	uint32_t count;
	uint32_t *buckets;
	uint32_t nbuckets;
	uint32_t oldest, newest;
	uint64_t bytes;
};

G_STATIC_ASSERT(sizeof(LruEntry) == 32);

static uint32_t key_hash(const CacheLruKey *k)
{
	uint32_t h = k->folder * 0x9E3779B1u;

	h ^= k->uidvalidity * 0x85EBCA77u;
	h ^= k->uid * 0xC2B2AE3Du;
	/* Final mix, so that consecutive UIDs spread over the buckets. */
	h ^= h >> 16;
	h *= 0x85EBCA6Bu;
	h ^= h >> 13;
	h *= 0xC2B2AE35u;
	h ^= h >> 16;
	return h;
}

static bool key_equal(const CacheLruKey *a, const CacheLruKey *b)
{
	return a->uid == b->uid && a->uidvalidity == b->uidvalidity &&
	       a->folder == b->folder;
}

CacheLru *cache_lru_new(void)
{
	CacheLru *lru = g_new0(CacheLru, 1);

	lru->free_head = CACHE_LRU_NONE;
	lru->oldest = lru->newest = CACHE_LRU_NONE;
	lru->nbuckets = MIN_BUCKETS;
	lru->buckets = g_new(uint32_t, lru->nbuckets);
	for (uint32_t i = 0; i < lru->nbuckets; i++)
		lru->buckets[i] = CACHE_LRU_NONE;
	return lru;
}

void cache_lru_free(CacheLru *lru)
{
	if (!lru)
		return;
	g_free(lru->ents);
	g_free(lru->buckets);
	g_free(lru);
}

uint64_t cache_lru_bytes(const CacheLru *lru)
{
	return lru->bytes;
}

uint32_t cache_lru_count(const CacheLru *lru)
{
	return lru->count;
}

static bool live(const CacheLru *lru, uint32_t e)
{
	return e < lru->used && lru->ents[e].key.uid != 0;
}

uint32_t cache_lru_find(const CacheLru *lru, const CacheLruKey *key)
{
	uint32_t e;

	if (key->uid == 0)
		return CACHE_LRU_NONE;
	e = lru->buckets[key_hash(key) & (lru->nbuckets - 1)];
	while (e != CACHE_LRU_NONE && !key_equal(&lru->ents[e].key, key))
		e = lru->ents[e].chain;
	return e;
}

/* ---- the list ---- */

static void list_unlink(CacheLru *lru, uint32_t e)
{
	LruEntry *x = &lru->ents[e];

	if (x->prev != CACHE_LRU_NONE)
		lru->ents[x->prev].next = x->next;
	else
		lru->oldest = x->next;
	if (x->next != CACHE_LRU_NONE)
		lru->ents[x->next].prev = x->prev;
	else
		lru->newest = x->prev;
}

static void list_add(CacheLru *lru, uint32_t e, bool newest)
{
	LruEntry *x = &lru->ents[e];

	if (newest) {
		x->prev = lru->newest;
		x->next = CACHE_LRU_NONE;
		if (lru->newest != CACHE_LRU_NONE)
			lru->ents[lru->newest].next = e;
		else
			lru->oldest = e;
		lru->newest = e;
	} else {
		x->prev = CACHE_LRU_NONE;
		x->next = lru->oldest;
		if (lru->oldest != CACHE_LRU_NONE)
			lru->ents[lru->oldest].prev = e;
		else
			lru->newest = e;
		lru->oldest = e;
	}
}

/* ---- the hash ---- */

static void bucket_add(CacheLru *lru, uint32_t e)
{
	uint32_t b = key_hash(&lru->ents[e].key) & (lru->nbuckets - 1);

	lru->ents[e].chain = lru->buckets[b];
	lru->buckets[b] = e;
}

static void bucket_remove(CacheLru *lru, uint32_t e)
{
	uint32_t b = key_hash(&lru->ents[e].key) & (lru->nbuckets - 1);
	uint32_t *link = &lru->buckets[b];

	while (*link != e)
		link = &lru->ents[*link].chain;
	*link = lru->ents[e].chain;
}

static void grow_buckets(CacheLru *lru)
{
	g_assert(lru->nbuckets <= G_MAXUINT32 / 2);
	g_free(lru->buckets);
	lru->nbuckets *= 2;
	lru->buckets = g_new(uint32_t, lru->nbuckets);
	for (uint32_t i = 0; i < lru->nbuckets; i++)
		lru->buckets[i] = CACHE_LRU_NONE;
	for (uint32_t e = 0; e < lru->used; e++)
		if (lru->ents[e].key.uid != 0)
			bucket_add(lru, e);
}

static void set_cap(CacheLru *lru, uint32_t cap)
{
	g_assert(cap < G_MAXUINT32 / 2);
	lru->cap = cap;
	lru->ents = g_renew(LruEntry, lru->ents, cap);
}

void cache_lru_reserve(CacheLru *lru, uint32_t n)
{
	uint32_t free_slots = lru->cap - lru->count;

	if (n > free_slots)
		set_cap(lru, lru->cap + (n - free_slots));
}

static uint32_t alloc_entry(CacheLru *lru)
{
	uint32_t e = lru->free_head;

	if (e != CACHE_LRU_NONE) {
		lru->free_head = lru->ents[e].chain;
		return e;
	}
	if (lru->used == lru->cap)
		set_cap(lru, lru->cap < 256 ? 256 : lru->cap + lru->cap / 2);
	return lru->used++;
}

uint32_t cache_lru_insert(CacheLru *lru, const CacheLruKey *key, bool newest)
{
	uint32_t e;

	g_return_val_if_fail(key->uid != 0 && key->uidvalidity != 0,
			     CACHE_LRU_NONE);
	e = cache_lru_find(lru, key);
	if (e != CACHE_LRU_NONE)
		return e;
	if (lru->count >= lru->nbuckets)
		grow_buckets(lru);
	e = alloc_entry(lru);
	lru->ents[e] = (LruEntry){ .key = *key };
	bucket_add(lru, e);
	list_add(lru, e, newest);
	lru->count++;
	return e;
}

void cache_lru_remove(CacheLru *lru, uint32_t e)
{
	g_return_if_fail(live(lru, e));
	bucket_remove(lru, e);
	list_unlink(lru, e);
	lru->bytes -= lru->ents[e].size;
	lru->count--;
	lru->ents[e].key.uid = 0;
	lru->ents[e].chain = lru->free_head;
	lru->free_head = e;
}

void cache_lru_touch(CacheLru *lru, uint32_t e)
{
	g_return_if_fail(live(lru, e));
	if (lru->newest == e)
		return;
	list_unlink(lru, e);
	list_add(lru, e, true);
}

void cache_lru_set_size(CacheLru *lru, uint32_t e, uint64_t size)
{
	g_return_if_fail(live(lru, e));
	size = MIN(size, CACHE_LRU_MAX_SIZE);
	lru->bytes = lru->bytes - lru->ents[e].size + size;
	lru->ents[e].size = size;
}

uint64_t cache_lru_size(const CacheLru *lru, uint32_t e)
{
	g_return_val_if_fail(live(lru, e), 0);
	return lru->ents[e].size;
}

const CacheLruKey *cache_lru_key(const CacheLru *lru, uint32_t e)
{
	g_return_val_if_fail(live(lru, e), NULL);
	return &lru->ents[e].key;
}

void cache_lru_pin(CacheLru *lru, uint32_t e)
{
	g_return_if_fail(live(lru, e));
	if (lru->ents[e].pins < MAX_PINS)
		lru->ents[e].pins++;
}

void cache_lru_unpin(CacheLru *lru, uint32_t e)
{
	g_return_if_fail(live(lru, e));
	if (lru->ents[e].pins > 0)
		lru->ents[e].pins--;
}

bool cache_lru_pinned(const CacheLru *lru, uint32_t e)
{
	g_return_val_if_fail(live(lru, e), false);
	return lru->ents[e].pins > 0;
}

uint32_t cache_lru_oldest(const CacheLru *lru)
{
	return lru->oldest;
}

uint32_t cache_lru_newer(const CacheLru *lru, uint32_t e)
{
	g_return_val_if_fail(live(lru, e), CACHE_LRU_NONE);
	return lru->ents[e].next;
}

void cache_lru_drop_folder(CacheLru *lru, uint32_t folder,
			   uint32_t keep_uidvalidity)
{
	for (uint32_t e = 0; e < lru->used; e++) {
		const CacheLruKey *k = &lru->ents[e].key;

		if (k->uid != 0 && k->folder == folder &&
		    (keep_uidvalidity == 0 ||
		     k->uidvalidity != keep_uidvalidity))
			cache_lru_remove(lru, e);
	}
}

uint64_t cache_lru_evict(CacheLru *lru, uint64_t target, CacheLruEvictFn fn,
			 void *data)
{
	uint64_t freed = 0;
	uint32_t e = lru->oldest;

	while (e != CACHE_LRU_NONE && lru->bytes > target) {
		uint32_t next = lru->ents[e].next;

		if (lru->ents[e].pins == 0) {
			fn(&lru->ents[e].key, lru->ents[e].size, data);
			freed += lru->ents[e].size;
			cache_lru_remove(lru, e);
		}
		e = next;
	}
	return freed;
}

uint64_t cache_lru_low_mark(uint64_t max)
{
	return max - max / 10;
}
