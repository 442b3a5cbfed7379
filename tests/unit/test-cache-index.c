/* Unit tests for cache/index.c: round trips, exact layout, and that every
 * damaged buffer decodes to an error. */
#include "cache/flags.h"
#include "cache/index.h"

#include <string.h>

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

static void add_msg(CacheFolderIndex *idx, uint32_t uid, bool exact,
		    uint64_t size, int64_t date, const char *name)
{
	CacheMessage m = { .uid = uid,
			   .size_exact = exact,
			   .size = size,
			   .internaldate = date,
			   .name = g_strdup(name) };

	g_array_append_val(idx->messages, m);
}

static void assert_index_equal(const CacheFolderIndex *a,
			       const CacheFolderIndex *b)
{
	g_assert_cmpuint(a->uidvalidity, ==, b->uidvalidity);
	g_assert_cmpuint(a->uidnext, ==, b->uidnext);
	g_assert_cmpuint(a->exists, ==, b->exists);
	g_assert_cmpuint(a->highestmodseq, ==, b->highestmodseq);
	g_assert_cmpuint(a->name_tag, ==, b->name_tag);
	g_assert_cmpuint(a->messages->len, ==, b->messages->len);
	for (guint i = 0; i < a->messages->len; i++) {
		CacheMessage *x = &g_array_index(a->messages, CacheMessage, i);
		CacheMessage *y = &g_array_index(b->messages, CacheMessage, i);

		g_assert_cmpuint(x->uid, ==, y->uid);
		g_assert_cmpint(x->size_exact, ==, y->size_exact);
		g_assert_cmpuint(x->size, ==, y->size);
		g_assert_cmpint(x->internaldate, ==, y->internaldate);
		g_assert_cmpstr(x->name, ==, y->name);
		g_assert_cmpuint(x->gid, ==, y->gid);
		g_assert_cmpuint(x->flags, ==, y->flags);
		g_assert_cmpuint(x->keywords, ==, y->keywords);
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

static CacheFolderIndex *small_index(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();

	idx->uidvalidity = 1234567;
	idx->uidnext = 40;
	idx->exists = 3;
	idx->highestmodseq = 0x0102030405060708ull;
	add_msg(idx, 3, true, 4211, 1709457120, "3 Re- quarterly.eml");
	add_msg(idx, 17, false, 81234, -86400, "17 Grüße – ü 😀.eml");
	add_msg(idx, 39, true, 0, 0, "");
	return idx;
}

static void test_empty(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	g_autoptr(GBytes) enc = NULL;
	const uint8_t *p;
	size_t len;

	idx->uidvalidity = 1;
	idx->uidnext = 2;
	idx->exists = 0;
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	p = g_bytes_get_data(enc, &len);
	/* magic, version, 3 x u32, u64, count, name tag, keyword count, crc */
	g_assert_cmpuint(len, ==, 8 + 4 + 12 + 8 + 4 + 4 + 4 + 4);
	g_assert_cmpmem(p, 8, "IMFSIDX1", 8);
	g_assert_cmpuint(le32(p + 8), ==, 2);
	g_assert_cmpuint(le32(p + 12), ==, 1);
	g_assert_cmpuint(le32(p + 16), ==, 2);
	g_assert_cmpuint(le32(p + 32), ==, 0);
	g_assert_cmpuint(le32(p + len - 4), ==, ref_crc32(p, len - 4));
	cache_folder_index_free(idx);
}

static void test_one(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	g_autoptr(GBytes) enc = NULL;
	const uint8_t *p;
	size_t len;
	const char *name = "4294967295 Grüße.eml";

	idx->uidvalidity = UINT32_MAX;
	idx->uidnext = UINT32_MAX;
	idx->exists = UINT32_MAX;
	idx->highestmodseq = UINT64_MAX;
	add_msg(idx, UINT32_MAX, true, UINT64_MAX, INT64_MIN, name);
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(len, ==, 48 + 28 + strlen(name));
	g_assert_cmpuint(le32(p + 44), ==, UINT32_MAX); /* uid */
	g_assert_cmpuint(p[48], ==, 1);                 /* size_exact */
	g_assert_cmpuint(le32(p + 68), ==, strlen(name));
	g_assert_cmpmem(p + 72, strlen(name), name, strlen(name));
	cache_folder_index_free(idx);
}

static void test_small(void)
{
	CacheFolderIndex *idx = small_index();

	check_round_trip(idx);
	cache_folder_index_free(idx);
}

/* Longest file name (255 bytes, made of 2-byte UTF-8) and a much longer
 * one: lengths are 32-bit. */
static void test_long_names(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	GString *n255 = g_string_new("1 ");
	g_autofree char *big = g_malloc(100001);

	while (n255->len + 2 <= 251)
		g_string_append(n255, "é");
	g_string_append(n255, ".eml");
	g_assert_cmpuint(n255->len, <=, 255);
	g_assert_true(g_utf8_validate(n255->str, -1, NULL));
	memset(big, 'x', 100000);
	big[100000] = '\0';
	idx->uidvalidity = 9;
	add_msg(idx, 1, false, 1, 1, n255->str);
	add_msg(idx, 2, false, 2, 2, big);
	check_round_trip(idx);
	g_string_free(n255, TRUE);
	cache_folder_index_free(idx);
}

static void test_large(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	g_autoptr(GBytes) enc = NULL;
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *dec;

	idx->uidvalidity = 77;
	idx->uidnext = 300001;
	idx->exists = 100000;
	idx->highestmodseq = 123456789;
	for (uint32_t i = 0; i < 100000; i++) {
		g_autofree char *name = g_strdup_printf(
		    "%u Re- Grüße zum Quartal %u.eml", i * 3 + 1, i);

		add_msg(idx, i * 3 + 1, i % 2, 1000 + i, 1700000000 + i, name);
	}
	enc = cache_folder_index_encode(idx);
	dec = cache_folder_index_decode(g_bytes_get_data(enc, NULL),
					g_bytes_get_size(enc), &err);
	g_assert_no_error(err);
	assert_index_equal(idx, dec);
	g_assert_cmpuint(cache_folder_index_find(dec, 1)->size, ==, 1000);
	g_assert_cmpuint(cache_folder_index_find(dec, 299998)->size, ==,
			 1000 + 99999);
	g_assert_cmpstr(cache_folder_index_find(dec, 151)->name, ==,
			"151 Re- Grüße zum Quartal 50.eml");
	g_assert_null(cache_folder_index_find(dec, 2));
	g_assert_null(cache_folder_index_find(dec, 300000));
	cache_folder_index_free(dec);
	cache_folder_index_free(idx);
}

static void test_find_copy(void)
{
	CacheFolderIndex *idx = small_index();
	CacheFolderIndex *copy;
	CacheFolderIndex *empty = cache_folder_index_new();

	g_assert_null(cache_folder_index_find(empty, 1));
	g_assert_null(cache_folder_index_find(idx, 0));
	g_assert_null(cache_folder_index_find(idx, 4));
	g_assert_null(cache_folder_index_find(idx, 40));
	g_assert_cmpuint(cache_folder_index_find(idx, 3)->size, ==, 4211);
	g_assert_cmpuint(cache_folder_index_find(idx, 17)->size, ==, 81234);
	g_assert_cmpuint(cache_folder_index_find(idx, 39)->uid, ==, 39);

	copy = cache_folder_index_copy(idx);
	assert_index_equal(idx, copy);
	/* Deep: the names are separate allocations. */
	g_assert_true(cache_folder_index_find(copy, 17)->name !=
		      cache_folder_index_find(idx, 17)->name);
	cache_folder_index_free(idx);
	g_assert_cmpstr(cache_folder_index_find(copy, 17)->name, ==,
			"17 Grüße – ü 😀.eml");
	cache_folder_index_free(copy);
	cache_folder_index_free(empty);
	cache_folder_index_free(NULL);
}

static void test_null_name(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	g_autoptr(GBytes) enc = NULL;
	CacheFolderIndex *dec;
	CacheMessage m = { .uid = 5, .size = 1, .internaldate = 1 };

	g_array_append_val(idx->messages, m);
	enc = cache_folder_index_encode(idx);
	dec = cache_folder_index_decode(g_bytes_get_data(enc, NULL),
					g_bytes_get_size(enc), NULL);
	g_assert_nonnull(dec);
	g_assert_cmpstr(cache_folder_index_find(dec, 5)->name, ==, "");
	cache_folder_index_free(dec);
	cache_folder_index_free(idx);
}

static void test_unsorted_encode(void)
{
	CacheFolderIndex *idx = cache_folder_index_new();

	add_msg(idx, 5, false, 1, 1, "a");
	add_msg(idx, 5, false, 1, 1, "b");
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL,
			      "*not strictly ascending*");
	g_assert_null(cache_folder_index_encode(idx));
	g_test_assert_expected_messages();
	cache_folder_index_free(idx);
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

/* Each semantic check, reached with a valid checksum. */
static void test_index_forged(void)
{
	CacheFolderIndex *idx = small_index();
	g_autoptr(GBytes) enc = cache_folder_index_encode(idx);
	size_t len;
	const uint8_t *orig = g_bytes_get_data(enc, &len);
	/* Record 0 starts at 44: uid, flags @48, size, date, len @68, name @72;
	 * record 1 starts at 72 + strlen(name0). */
	size_t rec1 = 72 + strlen("3 Re- quarterly.eml");
	uint8_t *p;

	p = g_memdup2(orig, len);
	memcpy(p, "IMFSIDX2", 8);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*magic*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 8, 3);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*version 3*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 8, 0);
	expect_error(decode_index, p, len, "*version 0*");
	g_free(p);

	p = g_memdup2(orig, len);
	p[len - 1] ^= 1;
	expect_error(decode_index, p, len, "*checksum*");
	g_free(p);

	/* A count that cannot fit must be refused before any allocation. */
	p = g_memdup2(orig, len);
	set_le32(p + 32, UINT32_MAX);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*count*");
	g_free(p);

	/* The smallest count the bound refuses: records are >= 28 bytes. */
	p = g_memdup2(orig, len);
	set_le32(p + 32, (uint32_t)((len - 48) / 28 + 1));
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*count*");
	g_free(p);

	/* One more than present but within the bound: runs out of bytes. */
	p = g_memdup2(orig, len);
	set_le32(p + 32, 4);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*truncated*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 32, 2);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*trailing*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + rec1, 3); /* uid 17 -> 3, equal to the previous */
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*ascending*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 44, 0); /* uid 0 */
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*ascending*");
	g_free(p);

	p = g_memdup2(orig, len);
	p[48] = 5;
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*flags*");
	g_free(p);

	p = g_memdup2(orig, len);
	p[73] = '\0';
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*NUL*");
	g_free(p);

	p = g_memdup2(orig, len);
	set_le32(p + 68, UINT32_MAX);
	fix_crc(p, len);
	expect_error(decode_index, p, len, "*truncated*");
	g_free(p);

	/* A folder list is not an index, and the other way round. */
	p = g_memdup2(orig, len);
	expect_error(decode_list, p, len, "*magic*");
	g_free(p);

	cache_folder_index_free(idx);
}

/* Flags and keywords survive the round trip; a keyword set shared by
 * several messages is stored once. */
static void test_flags(void)
{
	CacheFolderIndex *idx = small_index();
	uint16_t kw = cache_keywords_intern("$Label1 $Junk");
	g_autoptr(GBytes) enc = NULL;
	g_autofree char *s = NULL;
	CacheMessage *m = NULL;
	size_t len;
	const uint8_t *p;

	for (guint i = 0; i < idx->messages->len; i++) {
		m = &g_array_index(idx->messages, CacheMessage, i);
		m->flags = CACHE_FLAG_KNOWN | (i ? CACHE_FLAG_SEEN : 0);
		m->keywords = i ? kw : CACHE_KEYWORDS_NONE;
	}
	m->flags |= CACHE_FLAG_FLAGGED | CACHE_FLAG_DELETED;
	idx->name_tag = 7;
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(le32(p + 36), ==, 7); /* name tag */
	g_assert_cmpuint(le32(p + 40), ==, 1); /* one keyword string */
	g_assert_cmpuint(le32(p + 44), ==, strlen("$Label1 $Junk"));
	s = cache_flags_to_string(m->flags, m->keywords);
	g_assert_cmpstr(s, ==, "\\Seen \\Flagged \\Deleted $Label1 $Junk");
	g_clear_pointer(&s, g_free);
	s = cache_flags_to_string(CACHE_FLAG_KNOWN, CACHE_KEYWORDS_NONE);
	g_assert_cmpstr(s, ==, "");
	g_assert_cmpuint(cache_keywords_intern("$Label1 $Junk"), ==, kw);
	g_assert_cmpuint(cache_keywords_intern(""), ==, CACHE_KEYWORDS_NONE);
	cache_folder_index_free(idx);
}

/* A version 1 index (no flags) still decodes: flags unknown and MODSEQ 0
 * so that the next resync fetches them. */
static void test_version1(void)
{
	static const char name[] = "3 Hi.eml";
	GByteArray *b = g_byte_array_new();
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *dec;
	uint8_t u[8];

#define PUT32(v) (set_le32(u, (v)), g_byte_array_append(b, u, 4))
	g_byte_array_append(b, (const guint8 *)"IMFSIDX1", 8);
	PUT32(1);                      /* version */
	PUT32(77), PUT32(4), PUT32(1); /* uidvalidity uidnext exists */
	PUT32(9), PUT32(0);            /* highestmodseq */
	PUT32(1);                      /* count */
	PUT32(3);                      /* uid */
	g_byte_array_append(b, (const guint8 *)"\1", 1); /* size_exact */
	PUT32(100), PUT32(0);                            /* size */
	PUT32(1700000000), PUT32(0);                     /* date */
	PUT32(strlen(name));
	g_byte_array_append(b, (const guint8 *)name, strlen(name));
	PUT32(ref_crc32(b->data, b->len));
#undef PUT32
	dec = cache_folder_index_decode(b->data, b->len, &err);
	g_assert_no_error(err);
	g_assert_cmpuint(dec->uidvalidity, ==, 77);
	g_assert_cmpuint(dec->highestmodseq, ==, 0);
	g_assert_cmpuint(dec->messages->len, ==, 1);
	g_assert_cmpstr(g_array_index(dec->messages, CacheMessage, 0).name, ==,
			name);
	g_assert_cmpuint(g_array_index(dec->messages, CacheMessage, 0).flags,
			 ==, 0);
	g_assert_cmpuint(g_array_index(dec->messages, CacheMessage, 0).size, ==,
			 100);
	cache_folder_index_free(dec);
	g_byte_array_unref(b);
}

/* A version 2 index with the keyword strings kws (NULL-terminated) and one
 * message per entry of kw_of (keyword number, -1 ends). */
static GByteArray *v2_bytes(const char *const *kws, const int *kw_of)
{
	GByteArray *b = g_byte_array_new();
	uint8_t u[4];
	guint n = 0, nk = 0;

#define PUT32(v) (set_le32(u, (v)), g_byte_array_append(b, u, 4))
	while (kw_of[n] >= 0)
		n++;
	while (kws[nk])
		nk++;
	g_byte_array_append(b, (const guint8 *)"IMFSIDX1", 8);
	PUT32(2), PUT32(1), PUT32(n + 1), PUT32(n), PUT32(0), PUT32(0);
	PUT32(n), PUT32(0), PUT32(nk);
	for (guint i = 0; i < nk; i++) {
		PUT32(strlen(kws[i]));
		g_byte_array_append(b, (const guint8 *)kws[i], strlen(kws[i]));
	}
	for (guint i = 0; i < n; i++) {
		uint8_t rec[4] = { 0, CACHE_FLAG_KNOWN, (uint8_t)kw_of[i], 0 };

		PUT32(i + 1);
		g_byte_array_append(b, rec, 4);
		PUT32(1), PUT32(0), PUT32(1), PUT32(0), PUT32(0);
	}
	PUT32(ref_crc32(b->data, b->len));
#undef PUT32
	return b;
}

/* The keyword table must be canonical: strings distinct, not empty, all
 * used, numbered in order of first use. */
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
		GByteArray *b = v2_bytes(cases[i].kws, cases[i].kw_of);
		g_autoptr(GError) err = NULL;
		CacheFolderIndex *idx =
		    cache_folder_index_decode(b->data, b->len, &err);

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

/* A message id across folders (Gmail labels): 8 more bytes after the
 * date, flagged 0x02; records without one keep the old layout. */
static void test_gid(void)
{
	CacheFolderIndex *idx = small_index();
	g_autoptr(GBytes) plain = cache_folder_index_encode(idx);
	g_autoptr(GBytes) enc = NULL;
	const uint8_t *p;
	uint8_t *bad;
	size_t len;

	g_array_index(idx->messages, CacheMessage, 0).gid =
	    0x8123456789abcdefull;
	check_round_trip(idx);
	enc = cache_folder_index_encode(idx);
	p = g_bytes_get_data(enc, &len);
	g_assert_cmpuint(len, ==, g_bytes_get_size(plain) + 8);
	g_assert_cmpuint(p[48] & 2, ==, 2);
	g_assert_cmpuint(le32(p + 68), ==, 0x89abcdef); /* gid, low half */
	/* An id of 0 under the flag is refused. */
	bad = g_memdup2(p, len);
	memset(bad + 68, 0, 8);
	fix_crc(bad, len);
	expect_error(decode_index, bad, len, "*id 0*");
	g_free(bad);
	cache_folder_index_free(idx);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache-index/empty", test_empty);
	g_test_add_func("/cache-index/one", test_one);
	g_test_add_func("/cache-index/small", test_small);
	g_test_add_func("/cache-index/gid", test_gid);
	g_test_add_func("/cache-index/long-names", test_long_names);
	g_test_add_func("/cache-index/large", test_large);
	g_test_add_func("/cache-index/find-copy", test_find_copy);
	g_test_add_func("/cache-index/null-name", test_null_name);
	g_test_add_func("/cache-index/unsorted-encode", test_unsorted_encode);
	g_test_add_func("/cache-index/damage", test_index_damage);
	g_test_add_func("/cache-index/forged", test_index_forged);
	g_test_add_func("/cache-index/flags", test_flags);
	g_test_add_func("/cache-index/version1", test_version1);
	g_test_add_func("/cache-index/keywords-canonical",
			test_keywords_canonical);
	g_test_add_func("/cache-list/round-trip", test_list_round_trip);
	g_test_add_func("/cache-list/damage", test_list_damage);
	return g_test_run();
}
