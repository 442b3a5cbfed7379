/* cache/index-build.c: writing folder indexes record by record, and mapping
 * them from files (the format is in cache/index.c).
 *
 * A builder either keeps its output in the heap (encode, tests) or spills
 * it to two unlinked temp files in a directory: records (after room for the
 * header) and names, joined at the end, so that a listing of a million
 * messages never sits in the heap. The result of a spilling builder is the
 * joined file, mapped read only; it goes away with its last mapping.
 * Ownership: a builder is used by one thread at a time and freed by
 * finish. Invariant: records arrive in strictly ascending UID order, and
 * keywords are numbered in order of first use, so the output is canonical.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/crc32.h"
#include "cache/flags.h"
#include "cache/index-private.h"
#include "cache/index.h"

#define COPY_CHUNK (64 * 1024)

struct CacheIndexBuilder {
	GByteArray *recs, *names; /* heap mode */
	FILE *rf, *nf;            /* spill mode: records (after the header
				     room) and names */
	uint32_t last;
	guint count;
	uint64_t names_len;
	GHashTable *kw_local; /* interned id -> local number */
	GPtrArray *kw_strings;
	int err; /* first failure, -errno */
};

/* An unlinked temp file in dir, opened for update. */
static FILE *spill_file(const char *dir, int *err)
{
	g_autofree char *tmpl = g_strdup_printf("%s/index-XXXXXX", dir);
	int fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	unlink(tmpl);
	f = fdopen(fd, "w+");
	if (!f) {
		*err = -errno;
		close(fd);
	}
	return f;
}

static CacheIndexBuilder *builder_new(void)
{
	CacheIndexBuilder *b = g_new0(CacheIndexBuilder, 1);

	b->kw_local = g_hash_table_new(NULL, NULL);
	b->kw_strings = g_ptr_array_new();
	return b;
}

CacheIndexBuilder *cache_index_builder_new(const char *spill_dir)
{
	CacheIndexBuilder *b = builder_new();
	static const uint8_t room[INDEX_HEADER_LEN];

	if (!spill_dir) {
		b->recs = g_byte_array_new();
		b->names = g_byte_array_new();
		g_byte_array_append(b->recs, room, sizeof(room));
		return b;
	}
	b->rf = spill_file(spill_dir, &b->err);
	if (b->rf)
		b->nf = spill_file(spill_dir, &b->err);
	if (b->rf && fwrite(room, 1, sizeof(room), b->rf) != sizeof(room))
		b->err = -EIO;
	return b;
}

void cache_index_builder_free(CacheIndexBuilder *b)
{
	if (!b)
		return;
	if (b->recs)
		g_byte_array_unref(b->recs);
	if (b->names)
		g_byte_array_unref(b->names);
	if (b->rf)
		fclose(b->rf);
	if (b->nf)
		fclose(b->nf);
	g_hash_table_unref(b->kw_local);
	g_ptr_array_unref(b->kw_strings);
	g_free(b);
}

uint32_t cache_index_builder_last_uid(const CacheIndexBuilder *b)
{
	return b->last;
}

guint cache_index_builder_count(const CacheIndexBuilder *b)
{
	return b->count;
}

static void put(CacheIndexBuilder *b, bool name, const void *p, size_t len)
{
	GByteArray *a = name ? b->names : b->recs;
	FILE *f = name ? b->nf : b->rf;

	if (a)
		g_byte_array_append(a, p, (guint)len);
	else if (f && fwrite(p, 1, len, f) != len && !b->err)
		b->err = -EIO;
}

/* The local number of an interned keyword set, assigned on first use. */
static guint local_keyword(CacheIndexBuilder *b, uint16_t id)
{
	gpointer v;

	if (id == CACHE_KEYWORDS_NONE || id == CACHE_KEYWORDS_OVERFLOW)
		return 0;
	if (g_hash_table_lookup_extended(b->kw_local, GUINT_TO_POINTER(id),
					 NULL, &v))
		return GPOINTER_TO_UINT(v);
	g_ptr_array_add(b->kw_strings, (gpointer)cache_keywords_get(id));
	g_hash_table_insert(b->kw_local, GUINT_TO_POINTER(id),
			    GUINT_TO_POINTER(b->kw_strings->len));
	return b->kw_strings->len;
}

bool cache_index_builder_add(CacheIndexBuilder *b, const CacheMessage *m)
{
	size_t nl = m->name ? strlen(m->name) : 0;
	uint8_t r[INDEX_RECORD_LEN];
	guint kw;

	if (b->err || m->uid <= b->last)
		return false;
	if (b->names_len + nl + 1 > UINT32_MAX || b->count == UINT32_MAX ||
	    (m->flags & ~CACHE_FLAGS_ALL)) {
		g_critical("cache index: invalid message");
		b->err = -EINVAL;
		return false;
	}
	kw = local_keyword(b, m->keywords);
	index_store_u32(r + REC_UID, m->uid);
	r[REC_FLAGS] = m->size_exact ? INDEX_MSG_SIZE_EXACT : 0;
	r[REC_IMAP_FLAGS] = m->flags;
	r[REC_KEYWORD] = (uint8_t)kw;
	r[REC_KEYWORD + 1] = (uint8_t)(kw >> 8);
	index_store_u64(r + REC_SIZE, m->size);
	index_store_u64(r + REC_DATE, (uint64_t)m->internaldate);
	index_store_u64(r + REC_GID, m->gid);
	index_store_u32(r + REC_NAME_OFF, (uint32_t)b->names_len);
	index_store_u32(r + REC_NAME_LEN, (uint32_t)nl);
	put(b, false, r, sizeof(r));
	put(b, true, m->name ? m->name : "", nl + 1);
	b->names_len += nl + 1;
	b->count++;
	b->last = m->uid;
	return true;
}

static void make_header(const CacheIndexBuilder *b, const CacheFolderIndex *hdr,
			uint8_t *p)
{
	memcpy(p, INDEX_MAGIC, INDEX_MAGIC_LEN);
	index_store_u32(p + HDR_VERSION, INDEX_VERSION);
	index_store_u32(p + HDR_UIDVALIDITY, hdr->uidvalidity);
	index_store_u32(p + HDR_UIDNEXT, hdr->uidnext);
	index_store_u32(p + HDR_EXISTS, hdr->exists);
	index_store_u64(p + HDR_MODSEQ, hdr->highestmodseq);
	index_store_u32(p + HDR_COUNT, b->count);
	index_store_u32(p + HDR_NAME_TAG, hdr->name_tag);
	index_store_u32(p + HDR_NAMES_LEN, (uint32_t)b->names_len);
	index_store_u32(p + HDR_KWCOUNT, b->kw_strings->len);
}

/* The keyword table, the records' file only. */
static void put_keywords(CacheIndexBuilder *b)
{
	for (guint i = 0; i < b->kw_strings->len; i++) {
		const char *kw = b->kw_strings->pdata[i];
		uint8_t len[4];

		index_store_u32(len, (uint32_t)strlen(kw));
		put(b, false, len, 4);
		put(b, false, kw, strlen(kw));
	}
}

/* Heap mode: the whole encoding. */
static GBytes *finish_heap(CacheIndexBuilder *b, const CacheFolderIndex *hdr)
{
	uint8_t crc[4];

	make_header(b, hdr, b->recs->data);
	g_byte_array_append(b->recs, b->names->data, b->names->len);
	put_keywords(b);
	index_store_u32(crc, cache_crc32(b->recs->data, b->recs->len));
	g_byte_array_append(b->recs, crc, 4);
	return g_byte_array_free_to_bytes(g_steal_pointer(&b->recs));
}

/* Spill mode: names appended to the records, then the keyword table, the
 * header and the checksum; returns the file's length or -errno. */
static gssize finish_file(CacheIndexBuilder *b, const CacheFolderIndex *hdr)
{
	g_autofree uint8_t *buf = g_malloc(COPY_CHUNK);
	int fd = fileno(b->rf);
	uint8_t h[INDEX_HEADER_LEN], crc[4];
	uint32_t c = 0;
	off_t len, at;
	size_t n;

	if (!b->err && (fflush(b->nf) != 0 || fseek(b->nf, 0, SEEK_SET) != 0))
		b->err = -errno;
	while (!b->err && (n = fread(buf, 1, COPY_CHUNK, b->nf)) > 0)
		put(b, false, buf, n);
	if (!b->err && ferror(b->nf))
		b->err = -EIO;
	put_keywords(b);
	if (!b->err && fflush(b->rf) != 0)
		b->err = -errno;
	make_header(b, hdr, h);
	if (!b->err && pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		b->err = -EIO;
	if (b->err)
		return b->err;
	len = lseek(fd, 0, SEEK_END);
	for (at = 0; at < len;) {
		ssize_t got = pread(fd, buf, MIN(COPY_CHUNK, len - at), at);

		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		c = cache_crc32_update(c, buf, (size_t)got);
		at += got;
	}
	index_store_u32(crc, c);
	if (pwrite(fd, crc, 4, len) != 4)
		return -EIO;
	return (gssize)len + 4;
}

/* Map the first len bytes of fd, check them (the checksum when
 * verify_crc) and make an index of them. */
static CacheFolderIndex *map_index(int fd, size_t len, bool verify_crc,
				   GError **error)
{
	CacheIndexImage *img;
	void *p;

	if (len < INDEX_HEADER_LEN + INDEX_CRC_LEN) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: truncated");
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "cache index: cannot map: %s", g_strerror(e));
		return NULL;
	}
	/* Read once from start to end: let the kernel read ahead. */
	madvise(p, len, MADV_SEQUENTIAL);
	img = index_image_open(p, len, true, verify_crc, error);
	if (!img) {
		munmap(p, len);
		return NULL;
	}
	madvise(p, len, MADV_NORMAL);
	return index_from_image(img);
}

CacheFolderIndex *cache_index_builder_finish(CacheIndexBuilder *b,
					     const CacheFolderIndex *hdr,
					     GError **error)
{
	CacheFolderIndex *index = NULL;
	gssize len;

	if (b->recs && !b->err) {
		g_autoptr(GBytes) bytes = finish_heap(b, hdr);
		gsize n;
		uint8_t *data =
		    g_bytes_unref_to_data(g_steal_pointer(&bytes), &n);
		CacheIndexImage *img =
		    index_image_open(data, n, false, false, error);

		if (img)
			index = index_from_image(img);
		else
			g_free(data);
		cache_index_builder_free(b);
		return index;
	}
	len = b->err ? b->err : finish_file(b, hdr);
	if (len < 0)
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-len),
			    "cannot write a folder index: %s (is the cache "
			    "directory full?)",
			    g_strerror((int)-len));
	else
		index = map_index(fileno(b->rf), (size_t)len, false, error);
	cache_index_builder_free(b);
	return index;
}

/* Feed every message of index (overlay applied) to b. */
static void feed(CacheIndexBuilder *b, const CacheFolderIndex *index)
{
	guint n = cache_folder_index_count(index);

	for (guint i = 0; i < n; i++) {
		CacheMessage m;

		cache_folder_index_get(index, i, &m);
		if (!cache_index_builder_add(b, &m) && !b->err)
			b->err = -EINVAL;
	}
}

GBytes *cache_folder_index_encode(const CacheFolderIndex *index)
{
	CacheIndexBuilder *b;
	GBytes *bytes = NULL;

	g_return_val_if_fail(index != NULL, NULL);
	b = cache_index_builder_new(NULL);
	feed(b, index);
	if (!b->err)
		bytes = finish_heap(b, index);
	cache_index_builder_free(b);
	return bytes;
}

int cache_folder_index_write_fd(const CacheFolderIndex *index, int fd,
				const char *spill_dir)
{
	static const uint8_t room[INDEX_HEADER_LEN];
	CacheIndexBuilder *b = builder_new();
	int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	gssize r;

	if (dupfd < 0 || !(b->rf = fdopen(dupfd, "w+"))) {
		if (dupfd >= 0)
			close(dupfd);
		cache_index_builder_free(b);
		return -errno;
	}
	b->nf = spill_file(spill_dir, &b->err);
	put(b, false, room, sizeof(room));
	feed(b, index);
	r = b->err ? b->err : finish_file(b, index);
	cache_index_builder_free(b);
	return r < 0 ? (int)r : 0;
}

CacheFolderIndex *cache_folder_index_map_fd(int fd, GError **error)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
			    "cache index: %s", g_strerror(e));
		return NULL;
	}
	return map_index(fd, (size_t)st.st_size, true, error);
}

/* Map the first len bytes of f (flushed first), or NULL. */
static void *map_prefix(FILE *f, size_t len)
{
	void *p;

	if (fflush(f) != 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fileno(f), 0);
	return p == MAP_FAILED ? NULL : p;
}

CacheFolderIndex *cache_index_builder_snapshot(CacheIndexBuilder *b,
					       const CacheFolderIndex *hdr)
{
	CacheIndexImage *img;
	CacheFolderIndex *index;
	size_t rlen = INDEX_HEADER_LEN + (size_t)b->count * INDEX_RECORD_LEN;
	void *recs, *names = NULL;

	if (!b->rf || b->err || !b->count)
		return NULL;
	/* The files only grow: what is mapped now does not change. */
	recs = map_prefix(b->rf, rlen);
	if (!recs)
		return NULL;
	names = map_prefix(b->nf, (size_t)b->names_len);
	if (!names) {
		munmap(recs, rlen);
		return NULL;
	}
	img = g_new0(CacheIndexImage, 1);
	img->ref = 1;
	img->base = recs;
	img->len = rlen;
	img->mapped = true;
	img->count = b->count;
	img->recs = img->base + INDEX_HEADER_LEN;
	img->names = names;
	img->names_len = (uint32_t)b->names_len;
	img->names_map = names;
	img->names_map_len = (size_t)b->names_len;
	img->kwcount = b->kw_strings->len;
	img->kw = g_new0(uint16_t, img->kwcount + 1);
	for (guint i = 0; i < img->kwcount; i++)
		img->kw[i + 1] = cache_keywords_intern(b->kw_strings->pdata[i]);
	index = index_from_image(img);
	index->uidvalidity = hdr->uidvalidity;
	index->uidnext = hdr->uidnext;
	index->exists = hdr->exists;
	index->highestmodseq = hdr->highestmodseq;
	index->name_tag = hdr->name_tag;
	return index;
}
