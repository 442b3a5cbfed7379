/* cache/lru.h: the in-memory LRU order of cached bodies.
 *
 * Pure bookkeeping, no I/O and no locks: the caller serialises every call.
 * An entry is keyed by (folder, uidvalidity, uid), folder being a small
 * number the caller assigns; it has a size and a pin count (a pinned entry
 * is being written and must not be evicted). Entries are named by handles
 * (uint32_t) that stay valid until the entry is removed. 32 bytes per entry
 * (the array grows by half) plus 4 per hash bucket: about 4 MB for 100,000.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define CACHE_LRU_NONE UINT32_MAX
#define CACHE_LRU_MAX_SIZE ((UINT64_C(1) << 48) - 1) /* larger is clamped */

typedef struct CacheLru CacheLru;

typedef struct {
	uint32_t folder;
	uint32_t uidvalidity; /* not 0 */
	uint32_t uid;         /* not 0 */
} CacheLruKey;

CacheLru *cache_lru_new(void);
void cache_lru_free(CacheLru *lru);

/* Make room for n more entries at once (a scan knows how many). */
void cache_lru_reserve(CacheLru *lru, uint32_t n);

/* Sum of the sizes of all entries, and their number. */
uint64_t cache_lru_bytes(const CacheLru *lru);
uint32_t cache_lru_count(const CacheLru *lru);

/* The entry of key, or CACHE_LRU_NONE. */
uint32_t cache_lru_find(const CacheLru *lru, const CacheLruKey *key);
/* The entry of key; a new one (size 0, unpinned) goes to the newest end, or
 * to the oldest end when !newest. An existing entry keeps its place. */
uint32_t cache_lru_insert(CacheLru *lru, const CacheLruKey *key, bool newest);
void cache_lru_remove(CacheLru *lru, uint32_t e);
/* Move e to the newest end. */
void cache_lru_touch(CacheLru *lru, uint32_t e);

void cache_lru_set_size(CacheLru *lru, uint32_t e, uint64_t size);
uint64_t cache_lru_size(const CacheLru *lru, uint32_t e);
const CacheLruKey *cache_lru_key(const CacheLru *lru, uint32_t e);

/* Pins nest; unpinning an unpinned entry does nothing. */
void cache_lru_pin(CacheLru *lru, uint32_t e);
void cache_lru_unpin(CacheLru *lru, uint32_t e);
bool cache_lru_pinned(const CacheLru *lru, uint32_t e);

/* Walk from the least recently used: CACHE_LRU_NONE ends the walk. */
uint32_t cache_lru_oldest(const CacheLru *lru);
uint32_t cache_lru_newer(const CacheLru *lru, uint32_t e);

/* Remove the entries of folder whose uidvalidity is not keep_uidvalidity
 * (0 removes all of them). O(entries). */
void cache_lru_drop_folder(CacheLru *lru, uint32_t folder,
			   uint32_t keep_uidvalidity);

/* Called for each entry that cache_lru_evict() removes, before it goes:
 * remove what it stands for (with the caller's lock held). */
typedef void (*CacheLruEvictFn)(const CacheLruKey *key, uint64_t size,
				void *data);
/* From the least recently used on, hand every unpinned entry to fn and
 * remove it, until at most target bytes remain (pinned entries stay, even
 * when that leaves more). Returns the bytes removed. */
uint64_t cache_lru_evict(CacheLru *lru, uint64_t target, CacheLruEvictFn fn,
			 void *data);
/* The low-water mark of a bound of max bytes, 90% of it: eviction goes
 * down to there, so that it is not needed on every commit. */
uint64_t cache_lru_low_mark(uint64_t max);
