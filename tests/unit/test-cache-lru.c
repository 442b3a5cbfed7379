/* Unit tests for cache/lru.c: the LRU order of cached bodies, pure
 * bookkeeping with no I/O. */
#include "cache/lru.h"

#include <glib.h>

static CacheLruKey key(uint32_t folder, uint32_t uidvalidity, uint32_t uid)
{
	CacheLruKey k = { folder, uidvalidity, uid };

	return k;
}

static uint32_t add(CacheLru *lru, uint32_t folder, uint32_t uid, uint64_t size)
{
	CacheLruKey k = key(folder, 7, uid);
	uint32_t e = cache_lru_insert(lru, &k, true);

	g_assert_cmpuint(e, !=, CACHE_LRU_NONE);
	cache_lru_set_size(lru, e, size);
	return e;
}

/* The uids from the oldest entry to the newest, as "1 2 3". */
static char *order(const CacheLru *lru)
{
	GString *s = g_string_new(NULL);

	for (uint32_t e = cache_lru_oldest(lru); e != CACHE_LRU_NONE;
	     e = cache_lru_newer(lru, e))
		g_string_append_printf(s, "%s%u", s->len ? " " : "",
				       cache_lru_key(lru, e)->uid);
	return g_string_free(s, FALSE);
}

static void assert_order(const CacheLru *lru, const char *want)
{
	g_autofree char *got = order(lru);

	g_assert_cmpstr(got, ==, want);
}

/* What cache_lru_evict() handed over, as "uid:size" words. */
static void record_victim(const CacheLruKey *k, uint64_t size, void *data)
{
	GString *s = data;

	g_string_append_printf(s, "%s%u:%" G_GUINT64_FORMAT, s->len ? " " : "",
			       k->uid, size);
}

static void test_empty(void)
{
	CacheLru *lru = cache_lru_new();
	CacheLruKey k = key(0, 7, 1);
	g_autoptr(GString) victims = g_string_new(NULL);

	g_assert_cmpuint(cache_lru_count(lru), ==, 0);
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 0);
	g_assert_cmpuint(cache_lru_oldest(lru), ==, CACHE_LRU_NONE);
	g_assert_cmpuint(cache_lru_find(lru, &k), ==, CACHE_LRU_NONE);
	g_assert_cmpuint(cache_lru_evict(lru, 0, record_victim, victims), ==,
			 0);
	g_assert_cmpstr(victims->str, ==, "");
	cache_lru_drop_folder(lru, 0, 0);
	cache_lru_free(lru);
	cache_lru_free(NULL);
}

/* New entries go to the newest end, or the oldest with !newest; inserting
 * an existing key returns its entry where it is. */
static void test_order(void)
{
	CacheLru *lru = cache_lru_new();
	CacheLruKey k = key(0, 7, 9);
	uint32_t e1 = add(lru, 0, 1, 10);
	uint32_t e2 = add(lru, 0, 2, 20);
	uint32_t e;

	add(lru, 0, 3, 30);
	assert_order(lru, "1 2 3");
	e = cache_lru_insert(lru, &k, false);
	cache_lru_set_size(lru, e, 90);
	assert_order(lru, "9 1 2 3");
	k.uid = 2;
	g_assert_cmpuint(cache_lru_insert(lru, &k, true), ==, e2);
	g_assert_cmpuint(cache_lru_find(lru, &k), ==, e2);
	assert_order(lru, "9 1 2 3");
	g_assert_cmpuint(cache_lru_count(lru), ==, 4);
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 150);
	g_assert_cmpuint(cache_lru_size(lru, e1), ==, 10);
	g_assert_cmpuint(cache_lru_key(lru, e1)->uid, ==, 1);
	g_assert_cmpuint(cache_lru_key(lru, e1)->uidvalidity, ==, 7);
	/* Keys differ by any of their three parts. */
	k = key(1, 7, 1);
	g_assert_cmpuint(cache_lru_find(lru, &k), ==, CACHE_LRU_NONE);
	k = key(0, 8, 1);
	g_assert_cmpuint(cache_lru_find(lru, &k), ==, CACHE_LRU_NONE);
	cache_lru_free(lru);
}

static void test_touch(void)
{
	CacheLru *lru = cache_lru_new();
	uint32_t e1 = add(lru, 0, 1, 1);
	uint32_t e2 = add(lru, 0, 2, 1);
	uint32_t e3 = add(lru, 0, 3, 1);

	cache_lru_touch(lru, e1);
	assert_order(lru, "2 3 1");
	cache_lru_touch(lru, e1); /* already the newest */
	assert_order(lru, "2 3 1");
	cache_lru_touch(lru, e3);
	assert_order(lru, "2 1 3");
	cache_lru_touch(lru, e2);
	assert_order(lru, "1 3 2");
	g_assert_cmpuint(cache_lru_oldest(lru), ==, e1);
	cache_lru_free(lru);
}

/* Eviction takes the oldest unpinned entries until the bytes are at most
 * the target; pinned ones stay wherever they are. */
static void test_evict(void)
{
	CacheLru *lru = cache_lru_new();
	g_autoptr(GString) victims = g_string_new(NULL);
	uint32_t e2;

	for (uint32_t uid = 1; uid <= 10; uid++)
		add(lru, 0, uid, 100);
	e2 = cache_lru_find(lru, &(CacheLruKey){ 0, 7, 2 });
	cache_lru_pin(lru, e2);
	cache_lru_touch(lru, cache_lru_find(lru, &(CacheLruKey){ 0, 7, 1 }));
	/* 1,000 bytes, bound 500: down to the low-water mark, 450. */
	g_assert_cmpuint(cache_lru_low_mark(500), ==, 450);
	g_assert_cmpuint(cache_lru_evict(lru, cache_lru_low_mark(500),
					 record_victim, victims),
			 ==, 600);
	g_assert_cmpstr(victims->str, ==,
			"3:100 4:100 5:100 6:100 7:100 8:100");
	assert_order(lru, "2 9 10 1");
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 400);
	g_assert_cmpuint(cache_lru_count(lru), ==, 4);
	/* At or under the target: nothing goes. */
	g_string_truncate(victims, 0);
	g_assert_cmpuint(cache_lru_evict(lru, 400, record_victim, victims), ==,
			 0);
	g_assert_cmpstr(victims->str, ==, "");
	/* Everything but the pinned entry. */
	g_assert_cmpuint(cache_lru_evict(lru, 0, record_victim, victims), ==,
			 300);
	g_assert_cmpstr(victims->str, ==, "9:100 10:100 1:100");
	assert_order(lru, "2");
	g_assert_true(cache_lru_pinned(lru, e2));
	/* Pins nest; unpinning an unpinned entry does nothing. */
	cache_lru_pin(lru, e2);
	cache_lru_unpin(lru, e2);
	g_assert_true(cache_lru_pinned(lru, e2));
	cache_lru_unpin(lru, e2);
	cache_lru_unpin(lru, e2);
	g_assert_false(cache_lru_pinned(lru, e2));
	g_string_truncate(victims, 0);
	g_assert_cmpuint(cache_lru_evict(lru, 0, record_victim, victims), ==,
			 100);
	g_assert_cmpstr(victims->str, ==, "2:100");
	g_assert_cmpuint(cache_lru_count(lru), ==, 0);
	g_assert_cmpuint(cache_lru_oldest(lru), ==, CACHE_LRU_NONE);
	g_assert_cmpuint(cache_lru_low_mark(0), ==, 0);
	g_assert_cmpuint(cache_lru_low_mark(9), ==, 9);
	cache_lru_free(lru);
}

static void test_remove(void)
{
	CacheLru *lru = cache_lru_new();
	uint32_t e1 = add(lru, 0, 1, 5);
	uint32_t e2 = add(lru, 0, 2, 6);
	uint32_t e3 = add(lru, 0, 3, 7);
	uint32_t e4;
	CacheLruKey k = key(0, 7, 2);

	cache_lru_remove(lru, e2); /* the middle */
	assert_order(lru, "1 3");
	g_assert_cmpuint(cache_lru_find(lru, &k), ==, CACHE_LRU_NONE);
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 12);
	cache_lru_remove(lru, e1); /* the oldest */
	assert_order(lru, "3");
	/* A freed handle is used again. */
	e4 = add(lru, 0, 4, 8);
	g_assert_true(e4 == e1 || e4 == e2);
	assert_order(lru, "3 4");
	cache_lru_remove(lru, e4); /* the newest */
	cache_lru_remove(lru, e3);
	assert_order(lru, "");
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 0);
	g_assert_cmpuint(cache_lru_count(lru), ==, 0);
	cache_lru_free(lru);
}

static void test_drop_folder(void)
{
	CacheLru *lru = cache_lru_new();
	CacheLruKey k = key(1, 8, 100);
	uint32_t e;

	add(lru, 0, 1, 1);
	add(lru, 1, 2, 2); /* folder 1, uidvalidity 7 */
	e = cache_lru_insert(lru, &k, true);
	cache_lru_set_size(lru, e, 4);
	add(lru, 2, 3, 8);
	cache_lru_drop_folder(lru, 1, 8); /* keeps uidvalidity 8 */
	assert_order(lru, "1 100 3");
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 13);
	cache_lru_drop_folder(lru, 1, 0);
	assert_order(lru, "1 3");
	cache_lru_drop_folder(lru, 9, 0); /* unknown: nothing */
	assert_order(lru, "1 3");
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 9);
	cache_lru_free(lru);
}

/* Sizes are clamped; many entries grow the table and keep their order. */
static void test_edges(void)
{
	CacheLru *lru = cache_lru_new();
	g_autoptr(GString) victims = g_string_new(NULL);
	uint32_t e = add(lru, 0, 1, UINT64_MAX);
	uint64_t sum = CACHE_LRU_MAX_SIZE;

	g_assert_cmpuint(cache_lru_size(lru, e), ==, CACHE_LRU_MAX_SIZE);
	cache_lru_set_size(lru, e, 0);
	g_assert_cmpuint(cache_lru_bytes(lru), ==, 0);
	cache_lru_set_size(lru, e, CACHE_LRU_MAX_SIZE);
	cache_lru_reserve(lru, 50000);
	for (uint32_t uid = 2; uid <= 100000; uid++)
		add(lru, uid % 3, uid, uid);
	for (uint32_t uid = 2; uid <= 100000; uid++)
		sum += uid;
	g_assert_cmpuint(cache_lru_count(lru), ==, 100000);
	g_assert_cmpuint(cache_lru_bytes(lru), ==, sum);
	for (uint32_t uid = 2; uid <= 100000; uid += 997) {
		CacheLruKey k = key(uid % 3, 7, uid);

		e = cache_lru_find(lru, &k);
		g_assert_cmpuint(e, !=, CACHE_LRU_NONE);
		g_assert_cmpuint(cache_lru_size(lru, e), ==, uid);
	}
	/* The huge first entry goes first, and alone is enough. */
	g_assert_cmpuint(cache_lru_evict(lru, sum - CACHE_LRU_MAX_SIZE,
					 record_victim, victims),
			 ==, CACHE_LRU_MAX_SIZE);
	g_assert_cmpstr(victims->str, ==, "1:281474976710655");
	g_assert_cmpuint(cache_lru_key(lru, cache_lru_oldest(lru))->uid, ==, 2);
	cache_lru_free(lru);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache-lru/empty", test_empty);
	g_test_add_func("/cache-lru/order", test_order);
	g_test_add_func("/cache-lru/touch", test_touch);
	g_test_add_func("/cache-lru/evict", test_evict);
	g_test_add_func("/cache-lru/remove", test_remove);
	g_test_add_func("/cache-lru/drop-folder", test_drop_folder);
	g_test_add_func("/cache-lru/edges", test_edges);
	return g_test_run();
}
