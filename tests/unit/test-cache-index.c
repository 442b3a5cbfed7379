/* Unit tests for cache/index.c and cache/index-build.c: the exact layout
 * (against a reference encoder written here from the format's description),
 * round trips, the overlay, spilled and mapped indexes, and that every
 * damaged buffer decodes to an error. */
#include "cache/flags.h"
#include "cache/index.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

/* Reference CRC-32 (IEEE, bitwise) to forge buffers that pass the checksum
 * and reach the deeper checks. */
static uint32_t ref_crc32(const uint8_t *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
	}
	return c ^ 0xFFFFFFFFu;
}

static void fix_crc(uint8_t *p, size_t len)
{
	uint32_t c = ref_crc32(p, len - 4);

	for (int i = 0; i < 4; i++)
		p[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void set_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void set_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* An index in the making: a header and messages (names owned). */
typedef struct {
	CacheFolderIndex hdr;
	GArray *msgs;
} Draft;

static void draft_clear(gpointer p)
{
	g_free((char *)((CacheMessage *)p)->name);
}

static Draft *draft_new(void)
{
	Draft *d = g_new0(Draft, 1);

	d->msgs = g_array_new(FALSE, TRUE, sizeof(CacheMessage));
	g_array_set_clear_func(d->msgs, draft_clear);
	return d;
}

static CacheMessage *add_msg(Draft *d, uint32_t uid, bool exact, uint64_t size,
			     int64_t date, const char *name)
{
	CacheMessage m = { .uid = uid,
			   .size_exact = exact,
			   .size = size,
			   .internaldate = date,
			   .name = g_strdup(name) };

	g_array_append_val(d->msgs, m);
	return &g_array_index(d->msgs, CacheMessage, d->msgs->len - 1);
}

/* The index of d (freed), built in the heap or spilled to dir. */
static CacheFolderIndex *draft_build_in(Draft *d, const char *dir)
{
	CacheIndexBuilder *b = cache_index_builder_new(dir);
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *idx;

	for (guint i = 0; i < d->msgs->len; i++)
		g_assert_true(cache_index_builder_add(
		    b, &g_array_index(d->msgs, CacheMessage, i)));
	g_assert_cmpuint(cache_index_builder_count(b), ==, d->msgs->len);
	idx = cache_index_builder_finish(b, &d->hdr, &err);
	g_assert_no_error(err);
	g_assert_nonnull(idx);
	g_array_unref(d->msgs);
	g_free(d);
	return idx;
}

static CacheFolderIndex *draft_build(Draft *d)
{
	return draft_build_in(d, NULL);
}

static void assert_index_equal(const CacheFolderIndex *a,
			       const CacheFolderIndex *b)
{
	g_assert_cmpuint(a->uidvalidity, ==, b->uidvalidity);
	g_assert_cmpuint(a->uidnext, ==, b->uidnext);
	g_assert_cmpuint(a->exists, ==, b->exists);
	g_assert_cmpuint(a->highestmodseq, ==, b->highestmodseq);
	g_assert_cmpuint(a->name_tag, ==, b->name_tag);
	g_assert_cmpuint(cache_folder_index_count(a), ==,
			 cache_folder_index_count(b));
	for (guint i = 0; i < cache_folder_index_count(a); i++) {
		CacheMessage x, y;

		cache_folder_index_get(a, i, &x);
		cache_folder_index_get(b, i, &y);
		g_assert_cmpuint(x.uid, ==, y.uid);
		g_assert_cmpuint(cache_folder_index_uid_at(a, i), ==, x.uid);
		g_assert_cmpint(x.size_exact, ==, y.size_exact);
		g_assert_cmpuint(x.size, ==, y.size);
		g_assert_cmpint(x.internaldate, ==, y.internaldate);
		g_assert_cmpstr(x.name, ==, y.name);
		g_assert_cmpuint(x.gid, ==, y.gid);
		g_assert_cmpuint(x.flags, ==, y.flags);
		g_assert_cmpuint(x.keywords, ==, y.keywords);
	}
}

/* Decode, compare, re-encode to the very same bytes. */
static void check_round_trip(const CacheFolderIndex *idx)
{
	g_autoptr(GBytes) enc = cache_folder_index_encode(idx);
	g_autoptr(GBytes) again = NULL;
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *dec;

	g_assert_nonnull(enc);
	dec = cache_folder_index_decode(g_bytes_get_data(enc, NULL),
					g_bytes_get_size(enc), &err);
	g_assert_no_error(err);
	g_assert_nonnull(dec);
	assert_index_equal(idx, dec);
	again = cache_folder_index_encode(dec);
	g_assert_true(g_bytes_equal(enc, again));
	cache_folder_index_free(dec);
}

static Draft *small_draft(void)
{
	Draft *d = draft_new();

	d->hdr.uidvalidity = 1234567;
	d->hdr.uidnext = 40;
	d->hdr.exists = 3;
	d->hdr.highestmodseq = 0x0102030405060708ull;
	add_msg(d, 3, true, 4211, 1709457120, "3 Re- quarterly.eml");
	add_msg(d, 17, false, 81234, -86400, "17 Grüße – ü 😀.eml");
	add_msg(d, 39, true, 0, 0, "");
	return d;
}

static CacheFolderIndex *small_index(void)
{
	return draft_build(small_draft());
}

/* The reference encoder: the format as cache/index.c describes it. */
typedef struct {
	uint32_t uid;
	uint8_t flags, imap_flags;
	uint16_t kw;
	uint64_t size;
	int64_t date;
	uint64_t gid;
	const char *name;
} RefMsg;

static GByteArray *ref_encode(const CacheFolderIndex *h, const RefMsg *m,
			      guint n, const char *const *kws)
{
	GByteArray *b = g_byte_array_new();
	uint8_t hdr[48] = { 0 }, rec[40], w[4];
	uint32_t off = 0, names = 0, nkw = 0;

	for (guint i = 0; i < n; i++)
		names += (uint32_t)strlen(m[i].name) + 1;
	while (kws && kws[nkw])
		nkw++;
	memcpy(hdr, "IMFSIDX1", 8);
	set_le32(hdr + 8, 3);
	set_le32(hdr + 12, h->uidvalidity);
	set_le32(hdr + 16, h->uidnext);
	set_le32(hdr + 20, h->exists);
	set_le64(hdr + 24, h->highestmodseq);
	set_le32(hdr + 32, n);
	set_le32(hdr + 36, h->name_tag);
	set_le32(hdr + 40, names);
	set_le32(hdr + 44, nkw);
	g_byte_array_append(b, hdr, 48);
	for (guint i = 0; i < n; i++) {
		set_le32(rec, m[i].uid);
		rec[4] = m[i].flags;
		rec[5] = m[i].imap_flags;
		rec[6] = (uint8_t)m[i].kw;
		rec[7] = (uint8_t)(m[i].kw >> 8);
		set_le64(rec + 8, m[i].size);
		set_le64(rec + 16, (uint64_t)m[i].date);
		set_le64(rec + 24, m[i].gid);
		set_le32(rec + 32, off);
		set_le32(rec + 36, (uint32_t)strlen(m[i].name));
		off += (uint32_t)strlen(m[i].name) + 1;
		g_byte_array_append(b, rec, 40);
	}
	for (guint i = 0; i < n; i++)
		g_byte_array_append(b, (const uint8_t *)m[i].name,
				    (guint)strlen(m[i].name) + 1);
	for (guint i = 0; i < nkw; i++) {
		set_le32(w, (uint32_t)strlen(kws[i]));
		g_byte_array_append(b, w, 4);
		g_byte_array_append(b, (const uint8_t *)kws[i],
				    (guint)strlen(kws[i]));
	}
	set_le32(w, ref_crc32(b->data, b->len));
	g_byte_array_append(b, w, 4);
	return b;
}

static void assert_bytes(GBytes *enc, const GByteArray *want)
{
	g_assert_cmpmem(g_bytes_get_data(enc, NULL), g_bytes_get_size(enc),
			want->data, want->len);
}

static void test_empty(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	CacheFolderIndex *dec;
	g_autoptr(GBytes) enc = NULL;
	const uint8_t *p;
	size_t len;

	idx->uidvalidity = 1;
	idx->uidnext = 2;
	g_assert_cmpuint(cache_folder_index_count(idx), ==, 0);
	g_assert_false(cache_folder_index_find(idx, 1, NULL, NULL));
	g_assert_false(cache_folder_index_set_size(idx, 1, 1, true));
	enc = cache_folder_index_encode(idx);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(len, ==, 48 + 4);
	g_assert_cmpmem(p, 8, "IMFSIDX1", 8);
	g_assert_cmpuint(le32(p + 8), ==, 3);
	g_assert_cmpuint(le32(p + 12), ==, 1);
	g_assert_cmpuint(le32(p + 16), ==, 2);
	g_assert_cmpuint(le32(p + 32), ==, 0);
	g_assert_cmpuint(le32(p + len - 4), ==, ref_crc32(p, len - 4));
	dec = cache_folder_index_decode(p, len, NULL);
	g_assert_nonnull(dec);
	assert_index_equal(idx, dec);
	cache_folder_index_free(dec);
	cache_folder_index_free(idx);
}

/* Every byte of a one-message index, against the reference encoder and
 * at the offsets the format gives. */
static void test_one(void)
{
	Draft *d = draft_new();
	const char *name = "4294967295 Grüße.eml";
	CacheMessage *m;
	CacheFolderIndex *idx;
	g_autoptr(GBytes) enc = NULL;
	GByteArray *want;
	RefMsg r = { UINT32_MAX,
		     1,
		     0,
		     0,
		     UINT64_MAX,
		     INT64_MIN,
		     0x0102030405060708ull,
		     name };
	const uint8_t *p;
	size_t len;

	d->hdr.uidvalidity = UINT32_MAX;
	d->hdr.uidnext = UINT32_MAX;
	d->hdr.exists = UINT32_MAX;
	d->hdr.highestmodseq = UINT64_MAX;
	d->hdr.name_tag = 5;
	m = add_msg(d, UINT32_MAX, true, UINT64_MAX, INT64_MIN, name);
	m->gid = 0x0102030405060708ull;
	idx = draft_build(d);
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	want = ref_encode(idx, &r, 1, NULL);
	assert_bytes(enc, want);
	g_byte_array_unref(want);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(len, ==, 48 + 40 + strlen(name) + 1 + 4);
	g_assert_cmpuint(le32(p + 36), ==, 5);                /* name tag */
	g_assert_cmpuint(le32(p + 40), ==, strlen(name) + 1); /* names */
	g_assert_cmpuint(le32(p + 48), ==, UINT32_MAX);       /* uid */
	g_assert_cmpuint(p[52], ==, 1);                       /* size_exact */
	g_assert_cmpuint(le32(p + 72), ==, 0x05060708);       /* gid */
	g_assert_cmpuint(le32(p + 80), ==, 0);                /* name_off */
	g_assert_cmpuint(le32(p + 84), ==, strlen(name));
	g_assert_cmpmem(p + 88, strlen(name) + 1, name, strlen(name) + 1);
	cache_folder_index_free(idx);
}

static void test_small(void)
{
	CacheFolderIndex *idx = small_index();
	static const RefMsg r[] = {
		{ 3, 1, 0, 0, 4211, 1709457120, 0, "3 Re- quarterly.eml" },
		{ 17, 0, 0, 0, 81234, -86400, 0, "17 Grüße – ü 😀.eml" },
		{ 39, 1, 0, 0, 0, 0, 0, "" },
	};
	g_autoptr(GBytes) enc = cache_folder_index_encode(idx);
	GByteArray *want = ref_encode(idx, r, 3, NULL);

	assert_bytes(enc, want);
	g_byte_array_unref(want);
	check_round_trip(idx);
	cache_folder_index_free(idx);
}

/* Longest file name (255 bytes, made of 2-byte UTF-8) and a much longer
 * one: lengths are 32-bit. */
static void test_long_names(void)
{
	Draft *d = draft_new();
	GString *n255 = g_string_new("1 ");
	g_autofree char *big = g_malloc(100001);
	CacheFolderIndex *idx;

	while (n255->len + 2 <= 251)
		g_string_append(n255, "é");
	g_string_append(n255, ".eml");
	g_assert_cmpuint(n255->len, <=, 255);
	g_assert_true(g_utf8_validate(n255->str, -1, NULL));
	memset(big, 'x', 100000);
	big[100000] = '\0';
	d->hdr.uidvalidity = 9;
	add_msg(d, 1, false, 1, 1, n255->str);
	add_msg(d, 2, false, 2, 2, big);
	idx = draft_build(d);
	check_round_trip(idx);
	g_string_free(n255, TRUE);
	cache_folder_index_free(idx);
}

static Draft *large_draft(void)
{
	Draft *d = draft_new();

	d->hdr.uidvalidity = 77;
	d->hdr.uidnext = 300001;
	d->hdr.exists = 100000;
	d->hdr.highestmodseq = 123456789;
	for (uint32_t i = 0; i < 100000; i++) {
		g_autofree char *name = g_strdup_printf(
		    "%u Re- Grüße zum Quartal %u.eml", i * 3 + 1, i);

		add_msg(d, i * 3 + 1, i % 2, 1000 + i, 1700000000 + i, name);
	}
	return d;
}

static void test_large(void)
{
	CacheFolderIndex *idx = draft_build(large_draft());
	g_autoptr(GBytes) enc = NULL;
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *dec;
	CacheMessage m;
	guint pos;

	enc = cache_folder_index_encode(idx);
	dec = cache_folder_index_decode(g_bytes_get_data(enc, NULL),
					g_bytes_get_size(enc), &err);
	g_assert_no_error(err);
	assert_index_equal(idx, dec);
	g_assert_true(cache_folder_index_find(dec, 1, &m, &pos));
	g_assert_cmpuint(m.size, ==, 1000);
	g_assert_cmpuint(pos, ==, 0);
	g_assert_true(cache_folder_index_find(dec, 299998, &m, &pos));
	g_assert_cmpuint(m.size, ==, 1000 + 99999);
	g_assert_cmpuint(pos, ==, 99999);
	g_assert_true(cache_folder_index_find(dec, 151, &m, NULL));
	g_assert_cmpstr(m.name, ==, "151 Re- Grüße zum Quartal 50.eml");
	g_assert_false(cache_folder_index_find(dec, 2, &m, NULL));
	g_assert_false(cache_folder_index_find(dec, 300000, NULL, NULL));
	cache_folder_index_free(dec);
	cache_folder_index_free(idx);
}

/* Copies share the image (the names stay valid while any copy lives)
 * but not the overlay. */
static void test_find_copy(void)
{
	CacheFolderIndex *idx = small_index();
	CacheFolderIndex *copy;
	CacheFolderIndex *empty = cache_folder_index_new();
	CacheMessage m, c;

	g_assert_false(cache_folder_index_find(empty, 1, NULL, NULL));
	g_assert_false(cache_folder_index_find(idx, 0, NULL, NULL));
	g_assert_false(cache_folder_index_find(idx, 4, NULL, NULL));
	g_assert_false(cache_folder_index_find(idx, 40, NULL, NULL));
	g_assert_true(cache_folder_index_find(idx, 3, &m, NULL));
	g_assert_cmpuint(m.size, ==, 4211);
	g_assert_true(cache_folder_index_find(idx, 39, &m, NULL));
	g_assert_cmpuint(m.uid, ==, 39);

	copy = cache_folder_index_copy(idx);
	assert_index_equal(idx, copy);
	g_assert_true(cache_folder_index_find(idx, 17, &m, NULL));
	g_assert_true(cache_folder_index_find(copy, 17, &c, NULL));
	g_assert_true(m.name == c.name);
	g_assert_true(cache_folder_index_set_size(copy, 17, 5, true));
	g_assert_true(cache_folder_index_find(idx, 17, &m, NULL));
	g_assert_cmpuint(m.size, ==, 81234);
	cache_folder_index_free(idx);
	g_assert_true(cache_folder_index_find(copy, 17, &c, NULL));
	g_assert_cmpstr(c.name, ==, "17 Grüße – ü 😀.eml");
	g_assert_cmpuint(c.size, ==, 5);
	g_assert_true(c.size_exact);
	cache_folder_index_free(copy);
	cache_folder_index_free(empty);
	cache_folder_index_free(NULL);
}

/* In-place changes show through every accessor, copy and encoding. */
static void test_overlay(void)
{
	CacheFolderIndex *idx = small_index();
	uint16_t kw = cache_keywords_intern("$Overlay");
	g_autoptr(GBytes) enc = NULL;
	CacheFolderIndex *dec, *copy;
	CacheMessage m;

	g_assert_true(cache_folder_index_set_flags(
	    idx, 39, CACHE_FLAG_KNOWN | CACHE_FLAG_SEEN, kw));
	g_assert_true(cache_folder_index_set_size(idx, 39, 77, false));
	g_assert_false(cache_folder_index_set_flags(idx, 38, 0, 0));
	cache_folder_index_get(idx, 2, &m);
	g_assert_cmpuint(m.flags, ==, CACHE_FLAG_KNOWN | CACHE_FLAG_SEEN);
	g_assert_cmpuint(m.keywords, ==, kw);
	g_assert_cmpuint(m.size, ==, 77);
	g_assert_false(m.size_exact);
	copy = cache_folder_index_copy(idx);
	enc = cache_folder_index_encode(idx);
	dec = cache_folder_index_decode(g_bytes_get_data(enc, NULL),
					g_bytes_get_size(enc), NULL);
	assert_index_equal(idx, dec);
	assert_index_equal(copy, dec);
	cache_folder_index_free(dec);
	cache_folder_index_free(copy);
	cache_folder_index_free(idx);
}

static void test_null_name(void)
{
	CacheIndexBuilder *b = cache_index_builder_new(NULL);
	CacheFolderIndex hdr = { 0 };
	CacheMessage m = { .uid = 5, .size = 1, .internaldate = 1 };
	CacheFolderIndex *idx;

	g_assert_true(cache_index_builder_add(b, &m));
	idx = cache_index_builder_finish(b, &hdr, NULL);
	g_assert_true(cache_folder_index_find(idx, 5, &m, NULL));
	g_assert_cmpstr(m.name, ==, "");
	check_round_trip(idx);
	cache_folder_index_free(idx);
}

/* The builder takes records in ascending UID order only. */
static void test_builder_order(void)
{
	CacheIndexBuilder *b = cache_index_builder_new(NULL);
	CacheMessage m = { .uid = 5, .name = "a" };
	CacheFolderIndex hdr = { 0 };
	CacheFolderIndex *idx;

	g_assert_cmpuint(cache_index_builder_last_uid(b), ==, 0);
	g_assert_true(cache_index_builder_add(b, &m));
	g_assert_false(cache_index_builder_add(b, &m));
	m.uid = 4;
	g_assert_false(cache_index_builder_add(b, &m));
	m.uid = 6;
	g_assert_true(cache_index_builder_add(b, &m));
	g_assert_cmpuint(cache_index_builder_last_uid(b), ==, 6);
	g_assert_cmpuint(cache_index_builder_count(b), ==, 2);
	idx = cache_index_builder_finish(b, &hdr, NULL);
	g_assert_cmpuint(cache_folder_index_count(idx), ==, 2);
	cache_folder_index_free(idx);
	cache_index_builder_free(cache_index_builder_new(NULL));
}

static guint count_dir(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	guint n = 0;

	while (d && g_dir_read_name(d))
		n++;
	return n;
}

/* Snapshots of a spilling builder show what was added so far and stay
 * valid after the builder goes on, finishes and is gone. */
static void check_snapshots(const char *dir)
{
	CacheIndexBuilder *b = cache_index_builder_new(dir);
	CacheIndexBuilder *heap = cache_index_builder_new(NULL);
	CacheFolderIndex hdr = { .uidvalidity = 5, .exists = 3000 };
	CacheFolderIndex *snap[2], *whole;
	uint16_t kw = cache_keywords_intern("$Snap");
	CacheMessage m = { 0 };

	g_assert_null(cache_index_builder_snapshot(b, &hdr)); /* empty */
	for (uint32_t i = 1; i <= 3000; i++) {
		g_autofree char *name = g_strdup_printf("%u snap.eml", i);

		m.uid = i;
		m.size = i;
		m.name = name;
		m.keywords = i % 7 ? CACHE_KEYWORDS_NONE : kw;
		g_assert_true(cache_index_builder_add(b, &m));
		g_assert_true(cache_index_builder_add(heap, &m));
		if (i == 1000)
			snap[0] = cache_index_builder_snapshot(b, &hdr);
		if (i == 2500)
			snap[1] = cache_index_builder_snapshot(b, &hdr);
	}
	g_assert_null(cache_index_builder_snapshot(heap, &hdr));
	cache_index_builder_free(heap);
	whole = cache_index_builder_finish(b, &hdr, NULL);
	g_assert_nonnull(whole);
	for (guint s = 0; s < 2; s++) {
		guint n = s ? 2500 : 1000;

		g_assert_nonnull(snap[s]);
		g_assert_cmpuint(snap[s]->uidvalidity, ==, 5);
		g_assert_cmpuint(cache_folder_index_count(snap[s]), ==, n);
		for (guint i = 0; i < n; i++) {
			CacheMessage x, y;

			cache_folder_index_get(snap[s], i, &x);
			cache_folder_index_get(whole, i, &y);
			g_assert_cmpuint(x.uid, ==, y.uid);
			g_assert_cmpuint(x.size, ==, y.size);
			g_assert_cmpuint(x.keywords, ==, y.keywords);
			g_assert_cmpstr(x.name, ==, y.name);
		}
		g_assert_true(cache_folder_index_find(snap[s], n, &m, NULL));
		g_assert_false(
		    cache_folder_index_find(snap[s], n + 1, NULL, NULL));
		cache_folder_index_free(snap[s]);
	}
	cache_folder_index_free(whole);
}

/* A spilled index is the same index, mapped from a file that is gone
 * from the directory; written to a file and mapped back, it is the same
 * again, and a damaged file is refused. */
static void test_spill_map(void)
{
	g_autofree char *dir = g_dir_make_tmp("imapfs-index-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "index", NULL);
	CacheFolderIndex *heap = draft_build(large_draft());
	CacheFolderIndex *spilt = draft_build_in(large_draft(), dir);
	CacheFolderIndex *mapped;
	g_autoptr(GBytes) a = cache_folder_index_encode(heap);
	g_autoptr(GBytes) b = NULL;
	g_autoptr(GError) err = NULL;
	int fd;

	g_assert_cmpuint(count_dir(dir), ==, 0);
	assert_index_equal(heap, spilt);
	check_snapshots(dir);
	b = cache_folder_index_encode(spilt);
	g_assert_true(g_bytes_equal(a, b));

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(cache_folder_index_write_fd(spilt, fd, dir), ==, 0);
	close(fd);
	g_assert_cmpuint(count_dir(dir), ==, 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	mapped = cache_folder_index_map_fd(fd, &err);
	close(fd);
	g_assert_no_error(err);
	assert_index_equal(heap, mapped);
	cache_folder_index_free(mapped);

	/* A flipped byte deep in the names: the checksum catches it. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	g_assert_cmpint(pwrite(fd, "#", 1, (off_t)g_bytes_get_size(a) - 100),
			==, 1);
	g_assert_null(cache_folder_index_map_fd(fd, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	g_clear_error(&err);
	g_assert_cmpint(ftruncate(fd, 10), ==, 0);
	g_assert_null(cache_folder_index_map_fd(fd, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	close(fd);
	g_unlink(path);
	g_rmdir(dir);
	cache_folder_index_free(spilt);
	cache_folder_index_free(heap);
}

typedef void *(*DecodeFunc)(const void *, size_t, GError **);

static void *decode_index(const void *p, size_t len, GError **error)
{
	return cache_folder_index_decode(p, len, error);
}

static void *decode_list(const void *p, size_t len, GError **error)
{
	return cache_folder_list_decode(p, len, error);
}

static void expect_error(DecodeFunc decode, const uint8_t *p, size_t len,
			 const char *pattern)
{
	g_autoptr(GError) err = NULL;

	g_assert_null(decode(p, len, &err));
	g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL);
	if (pattern && !g_pattern_match_simple(pattern, err->message))
		g_error("error \"%s\" does not match \"%s\"", err->message,
			pattern);
}

/* Every truncation and every single-byte change must fail cleanly. The
 * copies are exact-size heap blocks so ASan sees any overread. */
static void check_damage(DecodeFunc decode, GBytes *enc)
{
	size_t len;
	const uint8_t *orig = g_bytes_get_data(enc, &len);
	static const uint8_t xors[] = { 0x01, 0x02, 0x10, 0x80, 0xff };

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = g_memdup2(orig, MAX(cut, 1));

		expect_error(decode, cut ? p : NULL, cut, NULL);
		expect_error(decode, p, cut, NULL);
		g_free(p);
	}
	for (size_t i = 0; i < len; i++) {
		for (size_t k = 0; k < G_N_ELEMENTS(xors); k++) {
			uint8_t *p = g_memdup2(orig, len);

			p[i] ^= xors[k];
			expect_error(decode, p, len, NULL);
			g_free(p);
		}
	}
	/* One byte too many, even with a matching checksum. */
	{
		uint8_t *p = g_malloc(len + 1);

		memcpy(p, orig, len - 4);
		p[len - 4] = 0;
		fix_crc(p, len + 1);
		expect_error(decode, p, len + 1, "*trailing*");
		g_free(p);
	}
}

static void test_index_damage(void)
{
	CacheFolderIndex *idx = small_index();
	g_autoptr(GBytes) enc = cache_folder_index_encode(idx);

	check_damage(decode_index, enc);
	cache_folder_index_free(idx);
}

/* A copy of orig with one 32-bit field changed and the checksum made
 * right again: each check is reached past the checksum. */
static void expect_forged(const uint8_t *orig, size_t len, size_t at,
			  uint32_t v, const char *pattern)
{
	uint8_t *p = g_memdup2(orig, len);

	set_le32(p + at, v);
	fix_crc(p, len);
	expect_error(decode_index, p, len, pattern);
	g_free(p);
}

static void expect_forged_byte(const uint8_t *orig, size_t len, size_t at,
			       uint8_t v, const char *pattern)
{
	uint8_t *p = g_memdup2(orig, len);

	p[at] = v;
	fix_crc(p, len);
	expect_error(decode_index, p, len, pattern);
	g_free(p);
}

/* Each semantic check, reached with a valid checksum. Records start at
 * 48, 40 bytes each; the names at 48 + 3 * 40 = 168. */
static void test_index_forged(void)
{
	CacheFolderIndex *idx = small_index();
	g_autoptr(GBytes) enc = cache_folder_index_encode(idx);
	size_t len;
	const uint8_t *orig = g_bytes_get_data(enc, &len);
	size_t r1 = 48 + 40, names = 48 + 3 * 40;
	uint8_t *p;

	p = g_memdup2(orig, len);
	memcpy(p, "IMFSIDX2", 8);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*magic*");
	g_free(p);

	/* The earlier formats are not read: the folder is listed anew. */
	expect_forged(orig, len, 8, 2, "*version 2*");
	expect_forged(orig, len, 8, 1, "*version 1*");
	expect_forged(orig, len, 8, 4, "*version 4*");

	p = g_memdup2(orig, len);
	p[len - 1] ^= 1;
	expect_error(decode_index, p, len, "*checksum*");
	g_free(p);

	/* Counts and lengths that cannot fit are refused before use. */
	expect_forged(orig, len, 32, UINT32_MAX, "*count*");
	expect_forged(orig, len, 32, (uint32_t)((len - 52) / 40 + 1),
		      "*count*");
	expect_forged(orig, len, 32, 2, "*");
	expect_forged(orig, len, 40, UINT32_MAX, "*names*");
	expect_forged(orig, len, 40, (uint32_t)(len - names), "*names*");
	expect_forged(orig, len, 44, 1, "*keyword*");
	expect_forged(orig, len, 44, UINT32_MAX, "*keyword*");

	expect_forged(orig, len, r1, 3, "*ascending*"); /* uid 17 -> 3 */
	expect_forged(orig, len, 48, 0, "*ascending*"); /* uid 0 */
	expect_forged_byte(orig, len, 48 + 4, 2, "*flags*");
	expect_forged_byte(orig, len, 48 + 5, 0x40, "*flags*");
	expect_forged_byte(orig, len, 48 + 6, 1, "*keyword 1*");
	expect_forged(orig, len, r1 + 32, 0, "*offset*");
	expect_forged(orig, len, r1 + 36, 3, "*terminated*");
	expect_forged(orig, len, r1 + 36, UINT32_MAX, "*truncated*");
	expect_forged(orig, len, 48 + 80 + 36, 1, "*truncated*");
	expect_forged_byte(orig, len, names + 1, 0, "*NUL*");

	/* A folder list is not an index, and the other way round. */
	p = g_memdup2(orig, len);
	expect_error(decode_list, p, len, "*magic*");
	g_free(p);

	cache_folder_index_free(idx);
}

/* Flags and keywords survive the round trip; a keyword set shared by
 * several messages is stored once, after the names. */
static void test_flags(void)
{
	Draft *d = small_draft();
	uint16_t kw = cache_keywords_intern("$Label1 $Junk");
	CacheFolderIndex *idx;
	g_autoptr(GBytes) enc = NULL;
	g_autofree char *s = NULL;
	CacheMessage *m = NULL;
	static const char *const kws[] = { "$Label1 $Junk", NULL };
	RefMsg r[] = {
		{ 3, 1, 0x80, 0, 4211, 1709457120, 0, "3 Re- quarterly.eml" },
		{ 17, 0, 0x81, 1, 81234, -86400, 0, "17 Grüße – ü 😀.eml" },
		{ 39, 1, 0, 1, 0, 0, 0, "" },
	};
	GByteArray *want;

	for (guint i = 0; i < d->msgs->len; i++) {
		m = &g_array_index(d->msgs, CacheMessage, i);
		m->flags = CACHE_FLAG_KNOWN | (i ? CACHE_FLAG_SEEN : 0);
		m->keywords = i ? kw : CACHE_KEYWORDS_NONE;
	}
	m->flags |= CACHE_FLAG_FLAGGED | CACHE_FLAG_DELETED;
	r[2].imap_flags = m->flags;
	r[0].imap_flags = CACHE_FLAG_KNOWN;
	r[1].imap_flags = CACHE_FLAG_KNOWN | CACHE_FLAG_SEEN;
	d->hdr.name_tag = 7;
	s = cache_flags_to_string(m->flags, m->keywords);
	g_assert_cmpstr(s, ==, "\\Seen \\Flagged \\Deleted $Label1 $Junk");
	g_clear_pointer(&s, g_free);
	idx = draft_build(d);
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	want = ref_encode(idx, r, 3, kws);
	assert_bytes(enc, want);
	g_byte_array_unref(want);
	s = cache_flags_to_string(CACHE_FLAG_KNOWN, CACHE_KEYWORDS_NONE);
	g_assert_cmpstr(s, ==, "");
	g_assert_cmpuint(cache_keywords_intern("$Label1 $Junk"), ==, kw);
	g_assert_cmpuint(cache_keywords_intern(""), ==, CACHE_KEYWORDS_NONE);
	cache_folder_index_free(idx);
}

/* Keyword strings are numbered in order of first use, each used, none
 * twice, none empty: anything else would not re-encode the same. */
static void test_keywords_canonical(void)
{
	static const char *const two[] = { "$A", "$B", NULL };
	static const char *const dup[] = { "$A", "$A", NULL };
	static const char *const empty[] = { "", NULL };
	static const struct {
		const char *const *kws;
		int kw_of[4];
		const char *err; /* NULL: decodes */
	} cases[] = {
		{ two, { 1, 2, 1, -1 }, NULL },
		{ two, { 0, 1, 2, -1 }, NULL },
		{ two, { 2, 1, -1 }, "*range*" },  /* not in first-use order */
		{ two, { 1, 1, -1 }, "*unused*" }, /* $B never used */
		{ two, { 1, 3, -1 }, "*range*" },  /* no such string */
		{ dup, { 1, 2, -1 }, "*twice*" },
		{ empty, { 1, -1 }, "*keyword*" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		CacheFolderIndex h = { .uidvalidity = 1 };
		RefMsg m[4];
		guint n = 0;
		GByteArray *b;
		g_autoptr(GError) err = NULL;
		CacheFolderIndex *idx;

		for (; cases[i].kw_of[n] >= 0 && n < 4; n++)
			m[n] = (RefMsg){ .uid = n + 1,
					 .imap_flags = CACHE_FLAG_KNOWN,
					 .kw = (uint16_t)cases[i].kw_of[n],
					 .name = "x" };
		b = ref_encode(&h, m, n, cases[i].kws);
		idx = cache_folder_index_decode(b->data, b->len, &err);
		if (!cases[i].err) {
			g_autoptr(GBytes) again = NULL;

			g_assert_no_error(err);
			again = cache_folder_index_encode(idx);
			g_assert_cmpmem(g_bytes_get_data(again, NULL),
					g_bytes_get_size(again), b->data,
					b->len);
			cache_folder_index_free(idx);
		} else {
			g_assert_null(idx);
			if (!g_pattern_match_simple(cases[i].err, err->message))
				g_error("case %zu: %s", i, err->message);
		}
		g_byte_array_unref(b);
	}
}

static GPtrArray *sample_list(void)
{
	GPtrArray *l = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);

	g_ptr_array_add(l, cache_folder_entry_new("INBOX", '/', 0));
	g_ptr_array_add(l, cache_folder_entry_new("Gr&APw-&AN8-e", '.',
						  CACHE_FOLDER_NOINFERIORS));
	g_ptr_array_add(l,
			cache_folder_entry_new("[Gmail]", '/',
					       CACHE_FOLDER_NOSELECT |
						   CACHE_FOLDER_NONEXISTENT));
	g_ptr_array_add(l, cache_folder_entry_new("", '\0', 0));
	g_ptr_array_add(l, cache_folder_entry_new("Ünï/cødé", '\xff', 0));
	return l;
}

static void check_list_round_trip(GPtrArray *l)
{
	g_autoptr(GBytes) enc = cache_folder_list_encode(l);
	g_autoptr(GBytes) again = NULL;
	g_autoptr(GError) err = NULL;
	g_autoptr(GPtrArray) dec = NULL;

	g_assert_nonnull(enc);
	dec = cache_folder_list_decode(g_bytes_get_data(enc, NULL),
				       g_bytes_get_size(enc), &err);
	g_assert_no_error(err);
	g_assert_cmpuint(dec->len, ==, l ? l->len : 0);
	for (guint i = 0; l && i < l->len; i++) {
		CacheFolderEntry *a = g_ptr_array_index(l, i);
		CacheFolderEntry *b = g_ptr_array_index(dec, i);

		g_assert_cmpstr(a->name, ==, b->name);
		g_assert_cmpint(a->delimiter, ==, b->delimiter);
		g_assert_cmpuint(a->flags, ==, b->flags);
	}
	again = cache_folder_list_encode(dec);
	g_assert_true(g_bytes_equal(enc, again));
}

static void test_list_round_trip(void)
{
	g_autoptr(GPtrArray) empty = g_ptr_array_new();
	g_autoptr(GPtrArray) l = sample_list();
	g_autoptr(GPtrArray) one = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	g_autoptr(GPtrArray) many = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	g_autoptr(GBytes) enc = NULL;
	const uint8_t *p;
	size_t len;

	check_list_round_trip(NULL);
	check_list_round_trip(empty);
	g_ptr_array_add(one, cache_folder_entry_new("INBOX", '/', 0));
	check_list_round_trip(one);
	check_list_round_trip(l);
	for (int i = 0; i < 5000; i++) {
		g_autofree char *name = g_strdup_printf("F%d", i);

		g_ptr_array_add(many, cache_folder_entry_new(name, '/', 0));
	}
	check_list_round_trip(many);

	enc = cache_folder_list_encode(one);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(len, ==, 8 + 4 + 4 + 1 + 4 + 4 + 5 + 4);
	g_assert_cmpmem(p, 8, "IMFSLST1", 8);
	g_assert_cmpuint(le32(p + 8), ==, 1);
	g_assert_cmpuint(le32(p + 12), ==, 1);
	g_assert_cmpuint(p[16], ==, '/');
	g_assert_cmpuint(le32(p + 21), ==, 5);
	g_assert_cmpmem(p + 25, 5, "INBOX", 5);
	g_assert_cmpuint(le32(p + len - 4), ==, ref_crc32(p, len - 4));
}

static void test_list_damage(void)
{
	g_autoptr(GPtrArray) l = sample_list();
	g_autoptr(GBytes) enc = cache_folder_list_encode(l);
	size_t len;
	const uint8_t *orig = g_bytes_get_data(enc, &len);
	uint8_t *p;

	check_damage(decode_list, enc);

	p = g_memdup2(orig, len);
	set_le32(p + 8, 7);
	fix_crc(p, len);
	expect_error(decode_list, p, len, "*version 7*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 12, UINT32_MAX);
	fix_crc(p, len);
	expect_error(decode_list, p, len, "*count*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 17, 1u << 3); /* unknown flag */
	fix_crc(p, len);
	expect_error(decode_list, p, len, "*flags*");
	g_free(p);

	p = g_memdup2(orig, len);
	p[25] = '\0'; /* inside "INBOX" */
	fix_crc(p, len);
	expect_error(decode_list, p, len, "*NUL*");
	g_free(p);

	p = g_memdup2(orig, len);
	expect_error(decode_index, p, len, "*magic*");
	g_free(p);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache-index/empty", test_empty);
	g_test_add_func("/cache-index/one", test_one);
	g_test_add_func("/cache-index/small", test_small);
	g_test_add_func("/cache-index/long-names", test_long_names);
	g_test_add_func("/cache-index/large", test_large);
	g_test_add_func("/cache-index/find-copy", test_find_copy);
	g_test_add_func("/cache-index/overlay", test_overlay);
	g_test_add_func("/cache-index/null-name", test_null_name);
	g_test_add_func("/cache-index/builder-order", test_builder_order);
	g_test_add_func("/cache-index/spill-map", test_spill_map);
	g_test_add_func("/cache-index/damage", test_index_damage);
	g_test_add_func("/cache-index/forged", test_index_forged);
	g_test_add_func("/cache-index/flags", test_flags);
	g_test_add_func("/cache-index/keywords-canonical",
			test_keywords_canonical);
	g_test_add_func("/cache-list/round-trip", test_list_round_trip);
	g_test_add_func("/cache-list/damage", test_list_damage);
	return g_test_run();
}
