/* libFuzzer target for cache_folder_index_decode and cache_folder_list_decode.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-cache-index.
 *
 * The first input byte picks a mode. With bit 0 set, the trailing CRC-32 of
 * the rest is recomputed so that the fuzzer gets past the checksum and
 * exercises the record parsing. Whatever decodes must re-encode to exactly
 * the same bytes (the format is canonical) and be searchable by uid.
 */
#include "cache/flags.h"
#include "cache/index.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
	}
	return c ^ 0xFFFFFFFFu;
}

static void check_same(GBytes *enc, const uint8_t *p, size_t len)
{
	if (!enc || g_bytes_get_size(enc) != len ||
	    memcmp(g_bytes_get_data(enc, NULL), p, len) != 0)
		abort();
}

static void check_index(const uint8_t *p, size_t len)
{
	g_autoptr(GError) err = NULL;
	CacheFolderIndex *idx = cache_folder_index_decode(p, len, &err);
	CacheFolderIndex *copy;
	GBytes *enc;
	bool overflow = false;

	if (!idx) {
		if (!err)
			abort();
		return;
	}
	for (guint i = 0; i < cache_folder_index_count(idx); i++) {
		CacheMessage m, again;
		guint pos;

		cache_folder_index_get(idx, i, &m);
		if (!cache_folder_index_find(idx, m.uid, &again, &pos) ||
		    pos != i || again.name != m.name || !m.name ||
		    strlen(m.name) > len)
			abort();
		/* A keyword set beyond the process-wide table is dropped. */
		if (m.keywords == CACHE_KEYWORDS_OVERFLOW)
			overflow = true;
	}
	copy = cache_folder_index_copy(idx);
	enc = cache_folder_index_encode(copy);
	if (overflow) {
		CacheFolderIndex *again = cache_folder_index_decode(
		    g_bytes_get_data(enc, NULL), g_bytes_get_size(enc), NULL);

		if (!again || cache_folder_index_count(again) !=
				  cache_folder_index_count(idx))
			abort();
		cache_folder_index_free(again);
	} else {
		check_same(enc, p, len);
	}
	g_bytes_unref(enc);
	cache_folder_index_free(copy);
	cache_folder_index_free(idx);
}

static void check_list(const uint8_t *p, size_t len)
{
	g_autoptr(GError) err = NULL;
	GPtrArray *list = cache_folder_list_decode(p, len, &err);
	GBytes *enc;

	if (!list) {
		if (!err)
			abort();
		return;
	}
	enc = cache_folder_list_encode(list);
	check_same(enc, p, len);
	g_bytes_unref(enc);
	g_ptr_array_unref(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	/* An exact-size copy, so that any overread is caught by ASan. */
	p = malloc(len ? len : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, len);
	if ((data[0] & 1) && len >= 4) {
		uint32_t c = crc32_ieee(p, len - 4);

		for (int i = 0; i < 4; i++)
			p[len - 4 + i] = (uint8_t)(c >> (8 * i));
	}
	check_index(p, len);
	check_list(p, len);
	free(p);
	return 0;
}
