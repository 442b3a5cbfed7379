/* cache/index.c: the folder index format, its checks and accessors, and
 * the folder list format.
 *
 * No I/O (files, mappings and the builder are in cache/index-build.c; an
 * image only unmaps itself when its last copy goes), no shared state
 * except the CRC and keyword tables. All integers are little-endian.
 *
 * Folder index (version 3): fixed-size records, so that a mapped file is
 * read in place, message i at a known offset:
 *   header (48 bytes): "IMFSIDX1"  u32 version  u32 uidvalidity
 *     u32 uidnext  u32 exists  u64 highestmodseq  u32 count  u32 name_tag
 *     u32 names_len  u32 kwcount
 *   count x 40-byte records, UIDs strictly ascending:
 *     u32 uid  u8 flags (0x01: size exact)  u8 imap_flags  u16 keyword
 *     (number of a string of the keyword table, 0 for none, numbered in
 *     order of first use)  u64 size  i64 internaldate  u64 gid (0: none)
 *     u32 name_off  u32 name_len
 *   names_len bytes: each record's name followed by a NUL, in record order
 *     (name_off is the running offset: the encoding stays canonical)
 *   kwcount x { u32 len  keyword string }
 *   u32 crc32 of every byte before it
 * Versions 1 and 2 (variable-length records) are not read: such an index is
 * treated as damaged and removed, and the folder is listed anew.
 * Folder list:
 *   "IMFSLST1"  u32 version  u32 count
 *   count x { u8 delimiter  u32 flags  u32 name_len  name bytes (no NUL) }
 *   u32 crc32 of every byte before it
 *
 * The encoding is canonical: a buffer that decodes re-encodes to the same
 * bytes. A NULL name is encoded as the empty name.
 */
#include "cache/index.h"

#include <string.h>
#include <sys/mman.h>

#include "cache/crc32.h"
#include "cache/flags.h"
#include "cache/index-private.h"

#define LIST_MAGIC "IMFSLST1"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1u /* the folder list */
#define LIST_HEADER_LEN (MAGIC_LEN + 4 + 4)
#define LIST_RECORD_MIN (1 + 4 + 4)
#define CRC_LEN 4

#define FOLDER_FLAGS_KNOWN                                                     \
	(CACHE_FOLDER_NOSELECT | CACHE_FOLDER_NOINFERIORS |                    \
	 CACHE_FOLDER_NONEXISTENT)

/* Writer over a buffer whose size was computed beforehand. */
typedef struct {
	uint8_t *p;
} Out;

static void put_u8(Out *o, uint8_t v)
{
	*o->p++ = v;
}

static void put_u32(Out *o, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		*o->p++ = (uint8_t)(v >> (8 * i));
}

static void put_bytes(Out *o, const void *data, size_t len)
{
	if (len)
		memcpy(o->p, data, len);
	o->p += len;
}

/* Reader: every get_ checks the remaining length first. */
typedef struct {
	const uint8_t *p;
	size_t left;
} In;

static bool get_u8(In *in, uint8_t *v)
{
	if (in->left < 1)
		return false;
	*v = in->p[0];
	in->p++;
	in->left--;
	return true;
}

static bool get_u32(In *in, uint32_t *v)
{
	if (in->left < 4)
		return false;
	*v = index_load_u32(in->p);
	in->p += 4;
	in->left -= 4;
	return true;
}

/* A length-prefixed name: checked against the buffer, no NUL inside. */
static char *get_name(In *in, const char *what, GError **error)
{
	uint32_t len;
	char *name;

	if (!get_u32(in, &len) || len > in->left) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: truncated name", what);
		return NULL;
	}
	if (memchr(in->p, '\0', len)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: name contains a NUL byte", what);
		return NULL;
	}
	name = g_malloc(len + 1);
	if (len)
		memcpy(name, in->p, len);
	name[len] = '\0';
	in->p += len;
	in->left -= len;
	return name;
}

static void set_truncated(GError **error, const char *what)
{
	g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: truncated",
		    what);
}

/* Checks magic, version (1 to max_version; *version gets it) and
 * checksum; on success in covers the bytes between the version and the
 * checksum. */
static bool check_envelope(const void *data, size_t len, const char *magic,
			   size_t header_len, uint32_t max_version,
			   uint32_t *version, const char *what, In *in,
			   GError **error)
{
	const uint8_t *p = data;
	uint32_t stored;

	if (!data || len < header_len + CRC_LEN) {
		set_truncated(error, what);
		return false;
	}
	if (memcmp(p, magic, MAGIC_LEN) != 0) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: bad magic", what);
		return false;
	}
	*version = index_load_u32(p + MAGIC_LEN);
	if (*version < 1 || *version > max_version) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: unsupported version %" G_GUINT32_FORMAT, what,
			    *version);
		return false;
	}
	stored = index_load_u32(p + len - CRC_LEN);
	if (cache_crc32(p, len - CRC_LEN) != stored) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: checksum mismatch", what);
		return false;
	}
	in->p = p + MAGIC_LEN + 4;
	in->left = len - CRC_LEN - MAGIC_LEN - 4;
	return true;
}

static GBytes *finish(uint8_t *buf, size_t len, Out *o)
{
	g_assert((size_t)(o->p - buf) == len - CRC_LEN);
	put_u32(o, cache_crc32(buf, len - CRC_LEN));
	return g_bytes_new_take(buf, len);
}

/* ---- folder index: checks ---- */

static bool index_fail(GError **error, const char *what)
{
	g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "cache index: %s",
		    what);
	return false;
}

/* The keyword table at p (kwcount strings, ending exactly at end) into
 * img->kw as interned ids. */
static bool check_keywords(CacheIndexImage *img, const uint8_t *p,
			   const uint8_t *end, GError **error)
{
	In in = { p, (size_t)(end - p) };

	if (img->kwcount > 65535 || img->kwcount > in.left / 4)
		return index_fail(error, "keyword table truncated");
	img->kw = g_new0(uint16_t, img->kwcount + 1);
	for (guint i = 1; i <= img->kwcount; i++) {
		g_autofree char *kw = get_name(&in, "cache index", error);
		uint16_t id;

		if (!kw)
			return false;
		/* What the encoder never writes would not re-encode the same.
		 */
		if (!*kw || strlen(kw) > CACHE_KEYWORDS_MAX_LEN)
			return index_fail(error, "bad keyword string");
		id = cache_keywords_intern(kw);
		for (guint j = 1; j < i; j++)
			if (id != CACHE_KEYWORDS_OVERFLOW && img->kw[j] == id)
				return index_fail(error,
						  "keyword string twice");
		img->kw[i] = id;
	}
	if (in.left) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: %zu trailing bytes", in.left);
		return false;
	}
	return true;
}

/* One record against the previous UID, the names and the keyword
 * numbers used so far. */
static bool check_record(const CacheIndexImage *img, const uint8_t *r,
			 uint32_t *prev, uint32_t *name_at, guint *kw_used,
			 GError **error)
{
	uint32_t uid = index_load_u32(r + REC_UID);
	guint kw = (guint)r[REC_KEYWORD] | (guint)r[REC_KEYWORD + 1] << 8;
	uint32_t off = index_load_u32(r + REC_NAME_OFF);
	uint32_t nl = index_load_u32(r + REC_NAME_LEN);

	if (uid <= *prev)
		return index_fail(error, "uids not strictly ascending");
	*prev = uid;
	if ((r[REC_FLAGS] & ~INDEX_MSG_SIZE_EXACT) ||
	    (r[REC_IMAP_FLAGS] & ~CACHE_FLAGS_ALL)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: unknown message flags 0x%x",
			    r[REC_FLAGS]);
		return false;
	}
	/* Strings are numbered in order of first use. */
	if (kw > img->kwcount || kw > *kw_used + 1) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: keyword %u out of range", kw);
		return false;
	}
	*kw_used = MAX(*kw_used, kw);
	if (off != *name_at)
		return index_fail(error, "name offset out of order");
	if (nl >= img->names_len - off)
		return index_fail(error, "truncated name");
	if (img->names[off + nl] != '\0')
		return index_fail(error, "name not terminated");
	if (memchr(img->names + off, '\0', nl))
		return index_fail(error, "name contains a NUL byte");
	*name_at = off + nl + 1;
	return true;
}

/* Magic, version, checksum and the lengths of the header. */
static bool check_header(CacheIndexImage *img, bool verify_crc, GError **error)
{
	const uint8_t *p = img->base;
	size_t len = img->len, room;
	uint32_t version;

	if (!p || len < INDEX_HEADER_LEN + INDEX_CRC_LEN)
		return index_fail(error, "truncated");
	if (memcmp(p, INDEX_MAGIC, INDEX_MAGIC_LEN) != 0)
		return index_fail(error, "bad magic");
	version = index_load_u32(p + HDR_VERSION);
	if (version != INDEX_VERSION) {
		g_set_error(
		    error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
		    "cache index: unsupported version %" G_GUINT32_FORMAT,
		    version);
		return false;
	}
	if (verify_crc && cache_crc32(p, len - INDEX_CRC_LEN) !=
			      index_load_u32(p + len - INDEX_CRC_LEN))
		return index_fail(error, "checksum mismatch");
	img->count = index_load_u32(p + HDR_COUNT);
	img->names_len = index_load_u32(p + HDR_NAMES_LEN);
	img->kwcount = index_load_u32(p + HDR_KWCOUNT);
	room = len - INDEX_HEADER_LEN - INDEX_CRC_LEN;
	/* Bound everything by what the buffer can actually hold. */
	if (img->count > room / INDEX_RECORD_LEN) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: message count %u exceeds the data",
			    img->count);
		return false;
	}
	room -= (size_t)img->count * INDEX_RECORD_LEN;
	if (img->names_len > room)
		return index_fail(error, "names truncated");
	img->recs = p + INDEX_HEADER_LEN;
	img->names =
	    (const char *)img->recs + (size_t)img->count * INDEX_RECORD_LEN;
	return true;
}

static void image_release(CacheIndexImage *img, bool with_base)
{
	if (img->names_map)
		munmap(img->names_map, img->names_map_len);
	if (with_base && img->mapped)
		munmap((void *)img->base, img->len);
	else if (with_base)
		g_free((void *)img->base);
	g_free(img->kw);
	g_free(img);
}

CacheIndexImage *index_image_open(const uint8_t *base, size_t len, bool mapped,
				  bool verify_crc, GError **error)
{
	CacheIndexImage *img = g_new0(CacheIndexImage, 1);
	uint32_t prev = 0, name_at = 0;
	guint kw_used = 0;

	img->ref = 1;
	img->base = base;
	img->len = len;
	img->mapped = mapped;
	if (!check_header(img, verify_crc, error) ||
	    !check_keywords(img, (const uint8_t *)img->names + img->names_len,
			    base + len - INDEX_CRC_LEN, error))
		goto fail;
	for (guint i = 0; i < img->count; i++)
		if (!check_record(img, img->recs + (size_t)i * INDEX_RECORD_LEN,
				  &prev, &name_at, &kw_used, error))
			goto fail;
	if (name_at != img->names_len) {
		index_fail(error, "unused name bytes");
		goto fail;
	}
	if (kw_used != img->kwcount) {
		index_fail(error, "unused keyword strings");
		goto fail;
	}
	return img;
fail:
	image_release(img, false);
	return NULL;
}

static CacheIndexImage *image_ref(CacheIndexImage *img)
{
	if (img)
		g_atomic_int_inc(&img->ref);
	return img;
}

static void image_unref(CacheIndexImage *img)
{
	if (img && g_atomic_int_dec_and_test(&img->ref))
		image_release(img, true);
}

/* ---- folder index: in memory ---- */

/* A record changed since the image was made. */
typedef struct {
	uint64_t size;
	bool size_exact;
	uint8_t flags;
	uint16_t keywords;
} Patch;

CacheFolderIndex *cache_folder_index_new(void)
{
	CacheFolderIndex *index = g_new0(CacheFolderIndex, 1);

	g_mutex_init(&index->lock);
	index->overlay = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	return index;
}

CacheFolderIndex *index_from_image(CacheIndexImage *img)
{
	CacheFolderIndex *index = cache_folder_index_new();
	const uint8_t *p = img->base;

	index->uidvalidity = index_load_u32(p + HDR_UIDVALIDITY);
	index->uidnext = index_load_u32(p + HDR_UIDNEXT);
	index->exists = index_load_u32(p + HDR_EXISTS);
	index->highestmodseq = index_load_u64(p + HDR_MODSEQ);
	index->name_tag = index_load_u32(p + HDR_NAME_TAG);
	index->image = img;
	return index;
}

void cache_folder_index_free(CacheFolderIndex *index)
{
	if (!index)
		return;
	image_unref(index->image);
	g_hash_table_unref(index->overlay);
	g_mutex_clear(&index->lock);
	g_free(index);
}

CacheFolderIndex *cache_folder_index_copy(const CacheFolderIndex *index)
{
	CacheFolderIndex *copy;
	CacheFolderIndex *src = (CacheFolderIndex *)index;
	GHashTableIter it;
	gpointer k, v;

	g_return_val_if_fail(index != NULL, NULL);
	copy = cache_folder_index_new();
	copy->uidvalidity = index->uidvalidity;
	copy->uidnext = index->uidnext;
	copy->exists = index->exists;
	copy->highestmodseq = index->highestmodseq;
	copy->name_tag = index->name_tag;
	copy->image = image_ref(index->image);
	g_mutex_lock(&src->lock);
	g_hash_table_iter_init(&it, src->overlay);
	while (g_hash_table_iter_next(&it, &k, &v))
		g_hash_table_insert(copy->overlay, k,
				    g_memdup2(v, sizeof(Patch)));
	copy->overlay_len = g_hash_table_size(copy->overlay);
	copy->generation = src->generation;
	g_mutex_unlock(&src->lock);
	return copy;
}

guint cache_folder_index_count(const CacheFolderIndex *index)
{
	return index && index->image ? index->image->count : 0;
}

uint32_t cache_folder_index_uid_at(const CacheFolderIndex *index, guint i)
{
	g_assert(i < cache_folder_index_count(index));
	return index_load_u32(index->image->recs +
			      (size_t)i * INDEX_RECORD_LEN + REC_UID);
}

/* Record i as the image has it. */
static void read_record(const CacheIndexImage *img, guint i, CacheMessage *m)
{
	const uint8_t *r = img->recs + (size_t)i * INDEX_RECORD_LEN;
	guint kw = (guint)r[REC_KEYWORD] | (guint)r[REC_KEYWORD + 1] << 8;

	m->uid = index_load_u32(r + REC_UID);
	m->size_exact = r[REC_FLAGS] & INDEX_MSG_SIZE_EXACT;
	m->flags = r[REC_IMAP_FLAGS];
	m->keywords = img->kw[kw];
	m->size = index_load_u64(r + REC_SIZE);
	m->internaldate = (int64_t)index_load_u64(r + REC_DATE);
	m->gid = index_load_u64(r + REC_GID);
	m->name = img->names + index_load_u32(r + REC_NAME_OFF);
}

static void apply_patch(const Patch *p, CacheMessage *m)
{
	m->size = p->size;
	m->size_exact = p->size_exact;
	m->flags = p->flags;
	m->keywords = p->keywords;
}

void cache_folder_index_get(const CacheFolderIndex *index, guint i,
			    CacheMessage *out)
{
	CacheFolderIndex *ix = (CacheFolderIndex *)index;
	const Patch *p;

	g_assert(i < cache_folder_index_count(index));
	read_record(index->image, i, out);
	if (!g_atomic_int_get(&ix->overlay_len))
		return;
	g_mutex_lock(&ix->lock);
	p = g_hash_table_lookup(ix->overlay, GUINT_TO_POINTER(out->uid));
	if (p)
		apply_patch(p, out);
	g_mutex_unlock(&ix->lock);
}

bool cache_folder_index_find(const CacheFolderIndex *index, uint32_t uid,
			     CacheMessage *out, guint *pos)
{
	guint lo = 0, hi = cache_folder_index_count(index);

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		uint32_t u = cache_folder_index_uid_at(index, mid);

		if (u == uid) {
			if (out)
				cache_folder_index_get(index, mid, out);
			if (pos)
				*pos = mid;
			return true;
		}
		if (u < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The patch of uid, made from the image when there is none yet. Under
 * index->lock. */
static Patch *patch_of(CacheFolderIndex *index, uint32_t uid, guint pos)
{
	Patch *p = g_hash_table_lookup(index->overlay, GUINT_TO_POINTER(uid));
	CacheMessage m;

	if (p)
		return p;
	read_record(index->image, pos, &m);
	p = g_new(Patch, 1);
	p->size = m.size;
	p->size_exact = m.size_exact;
	p->flags = m.flags;
	p->keywords = m.keywords;
	g_hash_table_insert(index->overlay, GUINT_TO_POINTER(uid), p);
	g_atomic_int_set(&index->overlay_len,
			 g_hash_table_size(index->overlay));
	return p;
}

guint cache_folder_index_changed(const CacheFolderIndex *index)
{
	return g_atomic_int_get(&((CacheFolderIndex *)index)->overlay_len);
}

guint cache_folder_index_generation(const CacheFolderIndex *index)
{
	CacheFolderIndex *ix = (CacheFolderIndex *)index;
	guint g;

	g_mutex_lock(&ix->lock);
	g = ix->generation;
	g_mutex_unlock(&ix->lock);
	return g;
}

bool cache_folder_index_set_size(CacheFolderIndex *index, uint32_t uid,
				 uint64_t size, bool exact)
{
	guint pos;
	Patch *p;

	if (!cache_folder_index_find(index, uid, NULL, &pos))
		return false;
	g_mutex_lock(&index->lock);
	p = patch_of(index, uid, pos);
	p->size = size;
	p->size_exact = exact;
	index->generation++;
	g_mutex_unlock(&index->lock);
	return true;
}

bool cache_folder_index_set_flags(CacheFolderIndex *index, uint32_t uid,
				  uint8_t flags, uint16_t keywords)
{
	guint pos;
	Patch *p;

	if (!cache_folder_index_find(index, uid, NULL, &pos))
		return false;
	g_mutex_lock(&index->lock);
	p = patch_of(index, uid, pos);
	p->flags = flags;
	p->keywords = keywords;
	index->generation++;
	g_mutex_unlock(&index->lock);
	return true;
}

CacheFolderIndex *cache_folder_index_decode(const void *data, size_t len,
					    GError **error)
{
	uint8_t *copy = g_memdup2(data, len);
	CacheIndexImage *img = index_image_open(copy, len, false, true, error);

	if (!img) {
		g_free(copy);
		return NULL;
	}
	return index_from_image(img);
}

bool cache_folder_index_peek(const void *data, size_t len,
			     uint32_t *uidvalidity)
{
	const uint8_t *p = data;

	if (!data || len < HDR_UIDVALIDITY + 4 ||
	    memcmp(p, INDEX_MAGIC, INDEX_MAGIC_LEN) != 0 ||
	    index_load_u32(p + HDR_VERSION) != INDEX_VERSION)
		return false;
	*uidvalidity = index_load_u32(p + HDR_UIDVALIDITY);
	return true;
}

CacheFolderEntry *cache_folder_entry_new(const char *name, char delimiter,
					 uint32_t flags)
{
	CacheFolderEntry *e = g_new0(CacheFolderEntry, 1);

	e->name = g_strdup(name);
	e->delimiter = delimiter;
	e->flags = flags;
	return e;
}

void cache_folder_entry_free(CacheFolderEntry *entry)
{
	if (!entry)
		return;
	g_free(entry->name);
	g_free(entry);
}

GBytes *cache_folder_list_encode(GPtrArray *folders)
{
	guint n = folders ? folders->len : 0;
	size_t len = LIST_HEADER_LEN + CRC_LEN;
	uint8_t *buf;
	Out o;

	for (guint i = 0; i < n; i++) {
		const CacheFolderEntry *e = g_ptr_array_index(folders, i);
		size_t nl = e->name ? strlen(e->name) : 0;

		if ((e->flags & ~(uint32_t)FOLDER_FLAGS_KNOWN) ||
		    nl > UINT32_MAX) {
			g_critical("cache folder list: invalid entry");
			return NULL;
		}
		len += LIST_RECORD_MIN + nl;
	}

	buf = g_malloc(len);
	o.p = buf;
	put_bytes(&o, LIST_MAGIC, MAGIC_LEN);
	put_u32(&o, FORMAT_VERSION);
	put_u32(&o, n);
	for (guint i = 0; i < n; i++) {
		const CacheFolderEntry *e = g_ptr_array_index(folders, i);
		size_t nl = e->name ? strlen(e->name) : 0;

		put_u8(&o, (uint8_t)e->delimiter);
		put_u32(&o, e->flags);
		put_u32(&o, (uint32_t)nl);
		put_bytes(&o, e->name, nl);
	}
	return finish(buf, len, &o);
}

GPtrArray *cache_folder_list_decode(const void *data, size_t len,
				    GError **error)
{
	g_autoptr(GPtrArray) folders = NULL;
	uint32_t count;
	In in;

	uint32_t version;

	if (!check_envelope(data, len, LIST_MAGIC, LIST_HEADER_LEN,
			    FORMAT_VERSION, &version, "cache folder list", &in,
			    error))
		return NULL;
	if (!get_u32(&in, &count)) {
		set_truncated(error, "cache folder list");
		return NULL;
	}
	if (count > in.left / LIST_RECORD_MIN) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache folder list: folder count %" G_GUINT32_FORMAT
			    " exceeds the data",
			    count);
		return NULL;
	}
	folders = g_ptr_array_new_full(count,
				       (GDestroyNotify)cache_folder_entry_free);
	for (uint32_t i = 0; i < count; i++) {
		CacheFolderEntry *e;
		uint8_t delim;
		uint32_t flags;
		char *name;

		if (!get_u8(&in, &delim) || !get_u32(&in, &flags)) {
			set_truncated(error, "cache folder list");
			return NULL;
		}
		if (flags & ~(uint32_t)FOLDER_FLAGS_KNOWN) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache folder list: unknown flags 0x%x",
				    flags);
			return NULL;
		}
		name = get_name(&in, "cache folder list", error);
		if (!name)
			return NULL;
		e = g_new0(CacheFolderEntry, 1);
		e->name = name;
		e->delimiter = (char)delim;
		e->flags = flags;
		g_ptr_array_add(folders, e);
	}
	if (in.left) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache folder list: %zu trailing bytes", in.left);
		return NULL;
	}
	return g_steal_pointer(&folders);
}
