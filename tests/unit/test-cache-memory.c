/* Unit tests for cache/memory.c: keep, find, the byte bound, drop. */
#include "cache/memory.h"

#include <errno.h>
#include <glib.h>
#include <string.h>
#include <unistd.h>

/* The len bytes of body b, read back through its fd. */
static char *read_body(const CacheBody *b)
{
	char *buf = g_malloc0(b->size + 1);
	ssize_t n = pread(b->fd, buf, b->size, (off_t)b->offset);

	g_assert_cmpint(n, ==, (ssize_t)b->size);
	return buf;
}

static void test_keep_find(void)
{
	CacheMemory *mem = cache_memory_new(1 << 20);
	CacheBody b = { -1, 0, 0 };
	g_autofree char *got = NULL;

	g_assert_cmpint(cache_memory_find(mem, "INBOX", 7, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_keep(mem, "INBOX", 7, 1, "hello", 5), ==,
			0);
	g_assert_cmpint(cache_memory_find(mem, "INBOX", 7, 1, &b), ==, 0);
	g_assert_cmpuint(b.size, ==, 5);
	g_assert_cmpuint(b.offset, ==, 0);
	got = read_body(&b);
	g_assert_cmpstr(got, ==, "hello");
	close(b.fd);
	/* Another folder, UIDVALIDITY or UID is another body. */
	g_assert_cmpint(cache_memory_find(mem, "Sent", 7, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "INBOX", 8, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "INBOX", 7, 2, &b), ==, -ENOENT);
	/* A second copy replaces the first. */
	g_assert_cmpint(cache_memory_keep(mem, "INBOX", 7, 1, "again!", 6), ==,
			0);
	g_assert_cmpint(cache_memory_find(mem, "INBOX", 7, 1, &b), ==, 0);
	g_assert_cmpuint(b.size, ==, 6);
	close(b.fd);
	cache_memory_free(mem);
}

static void test_bound(void)
{
	CacheMemory *mem = cache_memory_new(10);
	CacheBody b;

	g_assert_cmpint(cache_memory_keep(mem, "F", 1, 1, "aaaa", 4), ==, 0);
	g_usleep(1000);
	g_assert_cmpint(cache_memory_keep(mem, "F", 1, 2, "bbbb", 4), ==, 0);
	g_usleep(1000);
	/* uid 1 is used again: uid 2 is now the least recently used. */
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 1, &b), ==, 0);
	close(b.fd);
	g_usleep(1000);
	g_assert_cmpint(cache_memory_keep(mem, "F", 1, 3, "cccc", 4), ==, 0);
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 2, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 1, &b), ==, 0);
	close(b.fd);
	/* A body larger than the bound is kept alone. */
	g_assert_cmpint(cache_memory_keep(mem, "F", 1, 4, "0123456789abc", 13),
			==, 0);
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 4, &b), ==, 0);
	close(b.fd);
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "F", 1, 3, &b), ==, -ENOENT);
	cache_memory_free(mem);
}

static void test_drop_folder(void)
{
	CacheMemory *mem = cache_memory_new(1 << 20);
	CacheBody b;

	g_assert_cmpint(cache_memory_keep(mem, "A", 1, 1, "x", 1), ==, 0);
	g_assert_cmpint(cache_memory_keep(mem, "A", 2, 1, "y", 1), ==, 0);
	g_assert_cmpint(cache_memory_keep(mem, "B", 1, 1, "z", 1), ==, 0);
	cache_memory_drop_folder(mem, "A", 2);
	g_assert_cmpint(cache_memory_find(mem, "A", 1, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "A", 2, 1, &b), ==, 0);
	close(b.fd);
	cache_memory_drop_folder(mem, "A", 0);
	g_assert_cmpint(cache_memory_find(mem, "A", 2, 1, &b), ==, -ENOENT);
	g_assert_cmpint(cache_memory_find(mem, "B", 1, 1, &b), ==, 0);
	close(b.fd);
	cache_memory_free(mem);
}

/* A reader's fd stays good after its body is dropped. */
static void test_fd_outlives_drop(void)
{
	CacheMemory *mem = cache_memory_new(1 << 20);
	CacheBody b;
	g_autofree char *got = NULL;

	g_assert_cmpint(cache_memory_keep(mem, "A", 1, 1, "kept", 4), ==, 0);
	g_assert_cmpint(cache_memory_find(mem, "A", 1, 1, &b), ==, 0);
	cache_memory_drop_folder(mem, "A", 0);
	got = read_body(&b);
	g_assert_cmpstr(got, ==, "kept");
	close(b.fd);
	cache_memory_free(mem);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache-memory/keep-find", test_keep_find);
	g_test_add_func("/cache-memory/bound", test_bound);
	g_test_add_func("/cache-memory/drop-folder", test_drop_folder);
	g_test_add_func("/cache-memory/fd-outlives-drop",
			test_fd_outlives_drop);
	return g_test_run();
}
