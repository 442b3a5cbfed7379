/* cache/index.c: binary encoding of folder indexes and folder lists.
 *
 * Pure code: no I/O, no shared state except the CRC tables, which are built
 * once under g_once. All integers are little-endian.
 *
 * Folder index:
 *   "IMFSIDX1"  u32 version  u32 uidvalidity  u32 uidnext  u32 exists
 *   u64 highestmodseq  u32 count
 *   count x { u32 uid  u8 flags  u64 size  i64 internaldate
 *             [u64 gid, when flags has 0x02]
 *             u32 name_len  name bytes (no NUL) }
 *   u32 crc32 of every byte before it
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

#include "cache/crc32.h"

#define INDEX_MAGIC "IMFSIDX1"
#define LIST_MAGIC "IMFSLST1"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1u

#define INDEX_HEADER_LEN (MAGIC_LEN + 4 + 4 + 4 + 4 + 8 + 4)
#define INDEX_RECORD_MIN (4 + 1 + 8 + 8 + 4)
#define LIST_HEADER_LEN (MAGIC_LEN + 4 + 4)
#define LIST_RECORD_MIN (1 + 4 + 4)
#define CRC_LEN 4

#define MSG_SIZE_EXACT 0x01u
#define MSG_HAS_GID 0x02u
#define MSG_FLAGS_KNOWN (MSG_SIZE_EXACT | MSG_HAS_GID)
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

static void put_u64(Out *o, uint64_t v)
{
	for (int i = 0; i < 8; i++)
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

static uint32_t load_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static bool get_u32(In *in, uint32_t *v)
{
	if (in->left < 4)
		return false;
	*v = load_u32(in->p);
	in->p += 4;
	in->left -= 4;
	return true;
}

static bool get_u64(In *in, uint64_t *v)
{
	if (in->left < 8)
		return false;
	*v = (uint64_t)load_u32(in->p) | (uint64_t)load_u32(in->p + 4) << 32;
	in->p += 8;
	in->left -= 8;
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

/* Checks magic, version and checksum; on success in covers the bytes
 * between the version and the checksum. */
static bool check_envelope(const void *data, size_t len, const char *magic,
			   size_t header_len, const char *what, In *in,
			   GError **error)
{
	const uint8_t *p = data;
	uint32_t version, stored;

	if (!data || len < header_len + CRC_LEN) {
		set_truncated(error, what);
		return false;
	}
	if (memcmp(p, magic, MAGIC_LEN) != 0) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: bad magic", what);
		return false;
	}
	version = load_u32(p + MAGIC_LEN);
	if (version != FORMAT_VERSION) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: unsupported version %" G_GUINT32_FORMAT, what,
			    version);
		return false;
	}
	stored = load_u32(p + len - CRC_LEN);
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

static void message_clear(gpointer data)
{
	CacheMessage *m = data;

	g_clear_pointer(&m->name, g_free);
}

static GArray *message_array_new(guint reserve)
{
	GArray *a =
	    g_array_sized_new(FALSE, FALSE, sizeof(CacheMessage), reserve);

	g_array_set_clear_func(a, message_clear);
	return a;
}

CacheFolderIndex *cache_folder_index_new(void)
{
	CacheFolderIndex *index = g_new0(CacheFolderIndex, 1);

	index->messages = message_array_new(0);
	return index;
}

void cache_folder_index_free(CacheFolderIndex *index)
{
	if (!index)
		return;
	if (index->messages)
		g_array_unref(index->messages);
	g_free(index);
}

CacheFolderIndex *cache_folder_index_copy(const CacheFolderIndex *index)
{
	CacheFolderIndex *copy;
	guint n;

	g_return_val_if_fail(index != NULL, NULL);
	n = index->messages ? index->messages->len : 0;
	copy = g_new0(CacheFolderIndex, 1);
	copy->uidvalidity = index->uidvalidity;
	copy->uidnext = index->uidnext;
	copy->exists = index->exists;
	copy->highestmodseq = index->highestmodseq;
	copy->messages = message_array_new(n);
	for (guint i = 0; i < n; i++) {
		CacheMessage m =
		    g_array_index(index->messages, CacheMessage, i);

		m.name = g_strdup(m.name);
		g_array_append_val(copy->messages, m);
	}
	return copy;
}

CacheMessage *cache_folder_index_find(const CacheFolderIndex *index,
				      uint32_t uid)
{
	guint lo = 0, hi;

	if (!index || !index->messages)
		return NULL;
	hi = index->messages->len;
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		CacheMessage *m =
		    &g_array_index(index->messages, CacheMessage, mid);

		if (m->uid == uid)
			return m;
		if (m->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

GBytes *cache_folder_index_encode(const CacheFolderIndex *index)
{
	guint n;
	size_t len = INDEX_HEADER_LEN + CRC_LEN;
	uint32_t prev = 0;
	uint8_t *buf;
	Out o;

	g_return_val_if_fail(index != NULL, NULL);
	n = index->messages ? index->messages->len : 0;
	/* Sizing pass; also enforces what the decoder will demand. */
	for (guint i = 0; i < n; i++) {
		const CacheMessage *m =
		    &g_array_index(index->messages, CacheMessage, i);
		size_t nl = m->name ? strlen(m->name) : 0;

		if (m->uid <= prev) {
			g_critical("cache index: uids not strictly ascending "
				   "(%" G_GUINT32_FORMAT
				   " after %" G_GUINT32_FORMAT ")",
				   m->uid, prev);
			return NULL;
		}
		if (nl > UINT32_MAX) {
			g_critical("cache index: name too long");
			return NULL;
		}
		prev = m->uid;
		len += INDEX_RECORD_MIN + nl + (m->gid ? 8 : 0);
	}

	buf = g_malloc(len);
	o.p = buf;
	put_bytes(&o, INDEX_MAGIC, MAGIC_LEN);
	put_u32(&o, FORMAT_VERSION);
	put_u32(&o, index->uidvalidity);
	put_u32(&o, index->uidnext);
	put_u32(&o, index->exists);
	put_u64(&o, index->highestmodseq);
	put_u32(&o, n);
	for (guint i = 0; i < n; i++) {
		const CacheMessage *m =
		    &g_array_index(index->messages, CacheMessage, i);
		size_t nl = m->name ? strlen(m->name) : 0;

		put_u32(&o, m->uid);
		put_u8(&o, (m->size_exact ? MSG_SIZE_EXACT : 0) |
			       (m->gid ? MSG_HAS_GID : 0));
		put_u64(&o, m->size);
		put_u64(&o, (uint64_t)m->internaldate);
		if (m->gid)
			put_u64(&o, m->gid);
		put_u32(&o, (uint32_t)nl);
		put_bytes(&o, m->name, nl);
	}
	return finish(buf, len, &o);
}

CacheFolderIndex *cache_folder_index_decode(const void *data, size_t len,
					    GError **error)
{
	g_autoptr(GArray) messages = NULL;
	CacheFolderIndex *index;
	uint32_t uidvalidity, uidnext, exists, count, prev = 0;
	uint64_t modseq;
	In in;

	if (!check_envelope(data, len, INDEX_MAGIC, INDEX_HEADER_LEN,
			    "cache index", &in, error))
		return NULL;
	if (!get_u32(&in, &uidvalidity) || !get_u32(&in, &uidnext) ||
	    !get_u32(&in, &exists) || !get_u64(&in, &modseq) ||
	    !get_u32(&in, &count)) {
		set_truncated(error, "cache index");
		return NULL;
	}
	/* Bound the allocation by what the buffer can actually hold. */
	if (count > in.left / INDEX_RECORD_MIN) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: message count %" G_GUINT32_FORMAT
			    " exceeds the data",
			    count);
		return NULL;
	}
	messages = message_array_new(count);
	for (uint32_t i = 0; i < count; i++) {
		CacheMessage m = { 0 };
		uint64_t date;
		uint8_t flags;

		if (!get_u32(&in, &m.uid) || !get_u8(&in, &flags) ||
		    !get_u64(&in, &m.size) || !get_u64(&in, &date)) {
			set_truncated(error, "cache index");
			return NULL;
		}
		if (m.uid <= prev) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: uids not strictly ascending");
			return NULL;
		}
		if (flags & ~MSG_FLAGS_KNOWN) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: unknown message flags 0x%x",
				    flags);
			return NULL;
		}
		prev = m.uid;
		m.size_exact = flags & MSG_SIZE_EXACT;
		m.internaldate = (int64_t)date;
		if ((flags & MSG_HAS_GID) && !get_u64(&in, &m.gid)) {
			set_truncated(error, "cache index");
			return NULL;
		}
		if ((flags & MSG_HAS_GID) && m.gid == 0) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: message id 0");
			return NULL;
		}
		m.name = get_name(&in, "cache index", error);
		if (!m.name)
			return NULL;
		g_array_append_val(messages, m);
	}
	if (in.left) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: %zu trailing bytes", in.left);
		return NULL;
	}
	index = g_new0(CacheFolderIndex, 1);
	index->uidvalidity = uidvalidity;
	index->uidnext = uidnext;
	index->exists = exists;
	index->highestmodseq = modseq;
	index->messages = g_steal_pointer(&messages);
	return index;
}

bool cache_folder_index_peek(const void *data, size_t len,
			     uint32_t *uidvalidity)
{
	const uint8_t *p = data;

	if (!data || len < MAGIC_LEN + 4 + 4 ||
	    memcmp(p, INDEX_MAGIC, MAGIC_LEN) != 0 ||
	    load_u32(p + MAGIC_LEN) != FORMAT_VERSION)
		return false;
	*uidvalidity = load_u32(p + MAGIC_LEN + 4);
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

	if (!check_envelope(data, len, LIST_MAGIC, LIST_HEADER_LEN,
			    "cache folder list", &in, error))
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
