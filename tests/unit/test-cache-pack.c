/* Unit tests for cache/pack.c, each in a fresh temporary directory. */
#include "cache/pack.h"
#include "cache/crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	char *base;
	char *dir; /* the pack's directory, below base, not made yet */
} Fixture;

static void fixture_set_up(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) err = NULL;

	f->base = g_dir_make_tmp("imapfs-pack-XXXXXX", &err);
	g_assert_no_error(err);
	f->dir = g_build_filename(f->base, "key", "7", NULL);
}

static void fixture_tear_down(Fixture *f, gconstpointer data)
{
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->base);

	g_assert_cmpint(system(cmd), ==, 0);
	g_free(f->base);
	g_free(f->dir);
}

/* The body of uid: a length and bytes that depend on uid and version. */
static GBytes *body_of(uint32_t uid, unsigned version)
{
	size_t len = 1 + (uid * 7919u + version * 104729u) % 9000;
	char *p = g_malloc(len);

	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + (uid + version + i) % 26);
	return g_bytes_new_take(p, len);
}

static void put_ok(CachePack *pack, uint32_t uid, unsigned version)
{
	g_autoptr(GBytes) b = body_of(uid, version);
	uint32_t seg = 0;
	uint64_t size = 0;

	g_assert_cmpint(cache_pack_put(pack, uid, g_bytes_get_data(b, NULL),
				       g_bytes_get_size(b), &seg, &size),
			==, 0);
	g_assert_cmpuint(seg, >=, 1);
	g_assert_cmpuint(size, >=, g_bytes_get_size(b));
}

/* uid reads back as version's body. */
static void assert_found(CachePack *pack, uint32_t uid, unsigned version)
{
	g_autoptr(GBytes) want = body_of(uid, version);
	g_autofree char *got = NULL;
	uint64_t off = 0;
	uint32_t len = 0, seg = 0;
	int fd = -1;

	g_assert_cmpint(cache_pack_find(pack, uid, &fd, &off, &len, &seg), ==,
			0);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpuint(len, ==, g_bytes_get_size(want));
	got = g_malloc(len);
	g_assert_cmpint(pread(fd, got, len, (off_t)off), ==, (ssize_t)len);
	g_assert_cmpmem(got, len, g_bytes_get_data(want, NULL), len);
	close(fd);
}

static void assert_missing(CachePack *pack, uint32_t uid)
{
	uint64_t off;
	uint32_t len, seg;
	int fd = -1;

	g_assert_cmpint(cache_pack_find(pack, uid, &fd, &off, &len, &seg), ==,
			-ENOENT);
}

static char *segment(const Fixture *f, uint32_t n)
{
	return g_strdup_printf("%s/pack-%u", f->dir, n);
}

static off_t file_size(const char *path)
{
	struct stat st;

	g_assert_cmpint(stat(path, &st), ==, 0);
	return st.st_size;
}

static void test_round_trip(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *seg1 = segment(f, 1);
	struct stat st;

	assert_missing(pack, 1); /* an empty pack, no directory yet */
	g_assert_cmpint(stat(f->dir, &st), ==, -1);
	for (uint32_t uid = 1; uid <= 300; uid++)
		put_ok(pack, uid, 0);
	for (uint32_t uid = 1; uid <= 300; uid++)
		assert_found(pack, uid, 0);
	assert_missing(pack, 301);
	g_assert_cmpuint(cache_pack_count(pack), ==, 300);
	g_assert_cmpint(stat(seg1, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
	cache_pack_unref(pack);

	/* Reopened: the scan finds every record, CRCs check out. */
	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_assert_cmpuint(cache_pack_count(pack), ==, 300);
	for (uint32_t uid = 300; uid >= 1; uid--)
		assert_found(pack, uid, 0);
	/* Refused: UID 0, empty and oversized bodies. */
	{
		uint32_t seg;
		uint64_t size;
		g_autofree char *big = g_malloc0(CACHE_PACK_BODY_MAX + 1);

		g_assert_cmpint(cache_pack_put(pack, 0, "x", 1, &seg, &size),
				==, -EINVAL);
		g_assert_cmpint(cache_pack_put(pack, 5, "x", 0, &seg, &size),
				==, -EINVAL);
		g_assert_cmpint(cache_pack_put(pack, 5, big,
					       CACHE_PACK_BODY_MAX + 1, &seg,
					       &size),
				==, -EINVAL);
	}
	cache_pack_unref(pack);
}

static void test_segments(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, 64 * 1024);
	g_autofree char *seg1 = segment(f, 1), *seg2 = segment(f, 2);
	uint32_t last_seg = 0;
	struct stat st;

	for (uint32_t uid = 1; uid <= 200; uid++) {
		g_autoptr(GBytes) b = body_of(uid, 0);
		uint64_t size;

		g_assert_cmpint(
		    cache_pack_put(pack, uid, g_bytes_get_data(b, NULL),
				   g_bytes_get_size(b), &last_seg, &size),
		    ==, 0);
		g_assert_cmpuint(size, <=, 64 * 1024);
	}
	g_assert_cmpuint(last_seg, >, 3);
	/* Dropping segment 1 forgets exactly its records. */
	cache_pack_drop_segment(pack, 1);
	g_assert_cmpint(stat(seg1, &st), ==, -1);
	assert_missing(pack, 1);
	g_assert_cmpint(stat(seg2, &st), ==, 0);
	assert_found(pack, 200, 0);
	{
		guint left = cache_pack_count(pack);

		g_assert_cmpuint(left, <, 200);
		g_assert_cmpuint(left, >, 100);
		cache_pack_unref(pack);
		pack = cache_pack_open(f->dir, 64 * 1024);
		g_assert_cmpuint(cache_pack_count(pack), ==, left);
	}
	/* The last segment is gone too: the next put opens a new one. */
	cache_pack_drop_segment(pack, last_seg);
	put_ok(pack, 1, 3);
	assert_found(pack, 1, 3);
	cache_pack_unref(pack);
}

/* Records larger than the scan's read of 64 KiB, and headers across its
 * edges, between small ones: a reopened pack finds them all. */
static void test_large_records(Fixture *f, gconstpointer data)
{
	static const size_t sizes[] = {
		10, 65536 - 20,          65536, 65536 + 20, 200000,
		7,  CACHE_PACK_BODY_MAX, 1,     131072
	};
	CachePack *pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *buf = g_malloc(CACHE_PACK_BODY_MAX);

	for (uint32_t uid = 1; uid <= G_N_ELEMENTS(sizes); uid++) {
		memset(buf, 'a' + (int)uid, sizes[uid - 1]);
		g_assert_cmpint(cache_pack_put(pack, uid, buf, sizes[uid - 1],
					       &(uint32_t){ 0 },
					       &(uint64_t){ 0 }),
				==, 0);
	}
	cache_pack_unref(pack);
	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_assert_cmpuint(cache_pack_count(pack), ==, G_N_ELEMENTS(sizes));
	for (uint32_t uid = 1; uid <= G_N_ELEMENTS(sizes); uid++) {
		g_autoptr(GBytes) got = NULL;
		uint32_t seg;

		g_assert_true(cache_pack_has(pack, uid));
		g_assert_cmpint(
		    cache_pack_read(pack, uid, CACHE_PACK_BODY_MAX, &got, &seg),
		    ==, 0);
		g_assert_cmpuint(g_bytes_get_size(got), ==, sizes[uid - 1]);
		memset(buf, 'a' + (int)uid, sizes[uid - 1]);
		g_assert_cmpmem(g_bytes_get_data(got, NULL),
				g_bytes_get_size(got), buf, sizes[uid - 1]);
	}
	g_assert_false(cache_pack_has(pack, G_N_ELEMENTS(sizes) + 1));
	cache_pack_unref(pack);
}

static void test_torn_tail(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *seg1 = segment(f, 1);
	g_autoptr(GBytes) b = body_of(11, 0);
	off_t whole;
	int fd;

	for (uint32_t uid = 1; uid <= 10; uid++)
		put_ok(pack, uid, 0);
	cache_pack_unref(pack);
	whole = file_size(seg1);

	/* A crash in the middle of an append: a header and part of a body. */
	fd = open(seg1, O_WRONLY | O_APPEND);
	g_assert_cmpint(fd, >=, 0);
	{
		/* A valid header of UID 11 whose 16 bytes of body never all
		 * made it to the disk. */
		uint8_t h[CACHE_PACK_RECORD_HEADER] = { 'I', 'M', 'B', '1',
							11 };
		uint32_t hc;

		h[8] = 16;
		hc = cache_crc32c(h, 16);
		memcpy(h + 16, &hc, 4); /* little-endian machines only */
		g_assert_cmpint(write(fd, h, sizeof(h)), ==, sizeof(h));
		g_assert_cmpint(write(fd, "partial", 7), ==, 7);
	}
	close(fd);

	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_assert_cmpuint(cache_pack_count(pack), ==, 10);
	g_assert_cmpint(file_size(seg1), ==, whole); /* the tail was cut */
	for (uint32_t uid = 1; uid <= 10; uid++)
		assert_found(pack, uid, 0);
	assert_missing(pack, 11);
	g_assert_cmpint(cache_pack_put(pack, 11, g_bytes_get_data(b, NULL),
				       g_bytes_get_size(b), &(uint32_t){ 0 },
				       &(uint64_t){ 0 }),
			==, 0);
	cache_pack_unref(pack);
	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_assert_cmpuint(cache_pack_count(pack), ==, 11);
	assert_found(pack, 11, 0);
	cache_pack_unref(pack);
}

static void test_damaged_body(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *seg1 = segment(f, 1);
	uint64_t off;
	uint32_t len, seg;
	int fd;

	for (uint32_t uid = 1; uid <= 5; uid++)
		put_ok(pack, uid, 0);
	g_assert_cmpint(cache_pack_find(pack, 3, &fd, &off, &len, &seg), ==, 0);
	close(fd);
	cache_pack_unref(pack);

	/* One flipped byte inside the body of UID 3. */
	fd = open(seg1, O_RDWR);
	g_assert_cmpint(fd, >=, 0);
	{
		char c;

		g_assert_cmpint(pread(fd, &c, 1, (off_t)(off + len / 2)), ==,
				1);
		c ^= 0x20;
		g_assert_cmpint(pwrite(fd, &c, 1, (off_t)(off + len / 2)), ==,
				1);
	}
	close(fd);

	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_test_expect_message("imapfs", G_LOG_LEVEL_MESSAGE, "*damaged*");
	assert_missing(pack, 3); /* never served: fetched again instead */
	g_test_assert_expected_messages();
	assert_found(pack, 2, 0);
	assert_found(pack, 4, 0);
	/* Stored again, the new copy wins, now and after a reopen. */
	put_ok(pack, 3, 1);
	assert_found(pack, 3, 1);
	cache_pack_unref(pack);
	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	assert_found(pack, 3, 1);
	cache_pack_unref(pack);
}

static void test_last_copy_wins(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, 64 * 1024);

	for (unsigned v = 0; v < 30; v++)
		put_ok(pack, 42, v); /* over several segments */
	assert_found(pack, 42, 29);
	cache_pack_unref(pack);
	pack = cache_pack_open(f->dir, 64 * 1024);
	g_assert_cmpuint(cache_pack_count(pack), ==, 1);
	assert_found(pack, 42, 29);
	cache_pack_unref(pack);
}

typedef struct {
	CachePack *pack;
	uint32_t first;
} Writer;

static gpointer writer_main(gpointer data)
{
	Writer *w = data;

	for (uint32_t uid = w->first; uid < w->first + 250; uid++) {
		put_ok(w->pack, uid, 0);
		assert_found(w->pack, uid, 0);
	}
	return NULL;
}

static void test_threads(Fixture *f, gconstpointer data)
{
	CachePack *pack = cache_pack_open(f->dir, 256 * 1024);
	Writer w[4];
	GThread *t[4];

	for (int i = 0; i < 4; i++) {
		w[i].pack = pack;
		w[i].first = 1 + (uint32_t)i * 1000;
		t[i] = g_thread_new("writer", writer_main, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		g_thread_join(t[i]);
	cache_pack_unref(pack);
	pack = cache_pack_open(f->dir, 256 * 1024);
	g_assert_cmpuint(cache_pack_count(pack), ==, 1000);
	for (int i = 0; i < 4; i++)
		for (uint32_t uid = w[i].first; uid < w[i].first + 250; uid++)
			assert_found(pack, uid, 0);
	cache_pack_unref(pack);
}

static void test_crc(Fixture *f, gconstpointer data)
{
	static const char check[] = "123456789";
	g_autofree char *big = g_malloc(100003);

	/* The standard check values of both CRCs. */
	g_assert_cmphex(cache_crc32(check, 9), ==, 0xCBF43926u);
	g_assert_cmphex(cache_crc32c(check, 9), ==, 0xE3069283u);
	g_assert_cmphex(cache_crc32c("", 0), ==, 0);
	/* Every length and alignment agrees with a bitwise reference. */
	for (size_t i = 0; i < 100003; i++)
		big[i] = (char)(i * 31 + (i >> 7));
	for (size_t start = 0; start < 9; start++)
		for (size_t len = 0; len < 70; len += 1 + len / 8) {
			uint32_t v = 0xFFFFFFFFu;

			for (size_t i = 0; i < len; i++) {
				v ^= (uint8_t)big[start + i];
				for (int k = 0; k < 8; k++)
					v = (v & 1) ? (v >> 1) ^ 0x82F63B78u
						    : v >> 1;
			}
			g_assert_cmphex(cache_crc32c(big + start, len), ==,
					v ^ 0xFFFFFFFFu);
		}
}

static void test_names(Fixture *f, gconstpointer data)
{
	uint32_t n = 0;

	g_assert_true(cache_pack_parse_name("pack-1", &n) && n == 1);
	g_assert_true(cache_pack_parse_name("pack-2147483647", &n) &&
		      n == 2147483647u);
	g_assert_false(cache_pack_parse_name("pack-0", &n));
	g_assert_false(cache_pack_parse_name("pack-01", &n));
	g_assert_false(cache_pack_parse_name("pack-2147483648", &n));
	g_assert_false(cache_pack_parse_name("pack-", &n));
	g_assert_false(cache_pack_parse_name("pack-1x", &n));
	g_assert_false(cache_pack_parse_name("12", &n));
}

/* Two packs on one directory, neither knowing of the other's segment:
 * the second skips past it instead of failing every put with EEXIST. */
static void test_segment_taken(Fixture *f, gconstpointer data)
{
	CachePack *a = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	CachePack *b = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *seg2 = segment(f, 2);
	struct stat st;

	put_ok(a, 1, 0);
	put_ok(b, 2, 0);
	put_ok(b, 3, 0);
	assert_found(a, 1, 0);
	assert_found(b, 2, 0);
	assert_found(b, 3, 0);
	g_assert_cmpint(stat(seg2, &st), ==, 0);
	cache_pack_unref(a);
	cache_pack_unref(b);
	/* Reopened, the scan finds all three in their two segments. */
	a = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_assert_cmpuint(cache_pack_count(a), ==, 3);
	for (uint32_t uid = 1; uid <= 3; uid++)
		assert_found(a, uid, 0);
	cache_pack_unref(a);
}

/* A retired pack (its directory was dropped) forgets its records and
 * refuses appends, so a reference held across the drop creates no segment
 * next to those of the pack that replaces it. */
static void test_retired(Fixture *f, gconstpointer data)
{
	CachePack *old = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
	g_autofree char *seg1 = segment(f, 1);
	g_autofree char *seg2 = segment(f, 2);
	CachePack *fresh;
	uint32_t seg = 0;
	uint64_t size = 0;
	struct stat st;

	put_ok(old, 1, 0);
	g_assert_cmpint(system(cmd), ==, 0); /* the drop */
	cache_pack_retire(old);
	assert_missing(old, 1);
	g_assert_cmpuint(cache_pack_count(old), ==, 0);
	fresh = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	put_ok(fresh, 2, 0);
	g_assert_cmpint(cache_pack_put(old, 3, "x", 1, &seg, &size), ==,
			-ESTALE);
	put_ok(fresh, 4, 0);
	assert_found(fresh, 2, 0);
	assert_found(fresh, 4, 0);
	g_assert_cmpint(stat(seg1, &st), ==, 0);
	g_assert_cmpint(stat(seg2, &st), ==, -1);
	cache_pack_unref(old);
	cache_pack_unref(fresh);
}

static guint taken_messages;

static void count_taken(const gchar *domain, GLogLevelFlags level,
			const gchar *message, gpointer data)
{
	if (strstr(message, "exists already"))
		taken_messages++;
}

/* A segment the scan cannot open still holds its number: a new segment
 * goes past it at once, not through a failed O_EXCL create. */
static void test_unopenable_segment(Fixture *f, gconstpointer data)
{
	g_autofree char *seg1 = segment(f, 1);
	g_autofree char *seg2 = segment(f, 2);
	CachePack *pack;
	guint handler;
	struct stat st;

	g_assert_cmpint(g_mkdir_with_parents(seg1, 0700), ==, 0);
	handler = g_log_set_handler(G_LOG_DOMAIN, G_LOG_LEVEL_DEBUG,
				    count_taken, NULL);
	pack = cache_pack_open(f->dir, CACHE_PACK_SEGMENT_MAX);
	put_ok(pack, 1, 0);
	g_log_remove_handler(G_LOG_DOMAIN, handler);
	g_assert_cmpuint(taken_messages, ==, 0);
	g_assert_cmpint(stat(seg2, &st), ==, 0);
	assert_found(pack, 1, 0);
	cache_pack_unref(pack);
}

#define ADD(name, func)                                                        \
	g_test_add(name, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	ADD("/cache-pack/round-trip", test_round_trip);
	ADD("/cache-pack/segments", test_segments);
	ADD("/cache-pack/large-records", test_large_records);
	ADD("/cache-pack/torn-tail", test_torn_tail);
	ADD("/cache-pack/damaged-body", test_damaged_body);
	ADD("/cache-pack/last-copy-wins", test_last_copy_wins);
	ADD("/cache-pack/threads", test_threads);
	ADD("/cache-pack/segment-taken", test_segment_taken);
	ADD("/cache-pack/retired", test_retired);
	ADD("/cache-pack/unopenable-segment", test_unopenable_segment);
	ADD("/cache-pack/names", test_names);
	ADD("/cache-pack/crc", test_crc);
	return g_test_run();
}
