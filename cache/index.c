/* cache/index.c: binary encoding of folder indexes and folder lists.
 *
 * Pure code: no I/O, no shared state except the CRC tables, which are built
 * once under g_once. All integers are little-endian.
 *
 * Folder index (version 2):
 *   "IMFSIDX1"  u32 version  u32 uidvalidity  u32 uidnext  u32 exists
 *   u64 highestmodseq  u32 count
 *   u32 name_tag  u32 kwcount  kwcount x { u32 len  keyword string }
 *   count x { u32 uid  u8 flags  u8 imap_flags  u16 keyword (index into the
 *             keyword strings above, 0 for none, the first string being
 *             number 1)  u64 size  i64 internaldate
 *             [u64 gid, when flags has 0x02]
 *             u32 name_len  name bytes (no NUL) }
 *   u32 crc32 of every byte before it
 * Version 1 had no keyword table and no imap_flags or keyword fields. It
 * still decodes: flags come out unknown and the MODSEQ 0, so that the next
 * resync fetches every message's flags.
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
#include "cache/flags.h"

#define INDEX_MAGIC "IMFSIDX1"
#define LIST_MAGIC "IMFSLST1"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1u /* the folder list */
#define INDEX_VERSION 2u
#define INDEX_VERSION_V1 1u

#define INDEX_HEADER_LEN (MAGIC_LEN + 4 + 4 + 4 + 4 + 8 + 4)
#define INDEX_RECORD_MIN (4 + 1 + 1 + 2 + 8 + 8 + 4)
#define INDEX_RECORD_MIN_V1 (4 + 1 + 8 + 8 + 4)
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
	*version = load_u32(p + MAGIC_LEN);
	if (*version < 1 || *version > max_version) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: unsupported version %" G_GUINT32_FORMAT, what,
			    *version);
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
	copy->name_tag = index->name_tag;
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

/* The keyword sets the messages use, numbered from 1 in order of first
 * use: the file stores each string once. */
typedef struct {
	GHashTable *local; /* global id -> local number */
	GPtrArray *strings;
	size_t bytes;
} KeywordTable;

static void keyword_table_build(KeywordTable *t, const GArray *messages)
{
	t->local = g_hash_table_new(NULL, NULL);
	t->strings = g_ptr_array_new();
	t->bytes = 0;
	for (guint i = 0; messages && i < messages->len; i++) {
		uint16_t id = g_array_index(messages, CacheMessage, i).keywords;
		const char *kw;

		if (id == CACHE_KEYWORDS_NONE ||
		    id == CACHE_KEYWORDS_OVERFLOW ||
		    g_hash_table_contains(t->local, GUINT_TO_POINTER(id)))
			continue;
		kw = cache_keywords_get(id);
		g_ptr_array_add(t->strings, (gpointer)kw);
		g_hash_table_insert(t->local, GUINT_TO_POINTER(id),
				    GUINT_TO_POINTER(t->strings->len));
		t->bytes += 4 + strlen(kw);
	}
}

static void keyword_table_clear(KeywordTable *t)
{
	g_hash_table_unref(t->local);
	g_ptr_array_unref(t->strings);
}

/* Sizing pass; also enforces what the decoder will demand. 0 on error. */
static size_t index_encoded_len(const CacheFolderIndex *index, guint n,
				const KeywordTable *kt)
{
	size_t len = INDEX_HEADER_LEN + 4 + 4 + kt->bytes + CRC_LEN;
	uint32_t prev = 0;

	for (guint i = 0; i < n; i++) {
		const CacheMessage *m =
		    &g_array_index(index->messages, CacheMessage, i);
		size_t nl = m->name ? strlen(m->name) : 0;

		if (m->uid <= prev) {
			g_critical("cache index: uids not strictly ascending "
				   "(%" G_GUINT32_FORMAT
				   " after %" G_GUINT32_FORMAT ")",
				   m->uid, prev);
			return 0;
		}
		if (nl > UINT32_MAX || (m->flags & ~CACHE_FLAGS_ALL)) {
			g_critical("cache index: invalid message");
			return 0;
		}
		prev = m->uid;
		len += INDEX_RECORD_MIN + nl + (m->gid ? 8 : 0);
	}
	return len;
}

GBytes *cache_folder_index_encode(const CacheFolderIndex *index)
{
	KeywordTable kt;
	guint n;
	size_t len;
	uint8_t *buf;
	Out o;

	g_return_val_if_fail(index != NULL, NULL);
	n = index->messages ? index->messages->len : 0;
	keyword_table_build(&kt, index->messages);
	len = index_encoded_len(index, n, &kt);
	if (!len) {
		keyword_table_clear(&kt);
		return NULL;
	}
	buf = g_malloc(len);
	o.p = buf;
	put_bytes(&o, INDEX_MAGIC, MAGIC_LEN);
	put_u32(&o, INDEX_VERSION);
	put_u32(&o, index->uidvalidity);
	put_u32(&o, index->uidnext);
	put_u32(&o, index->exists);
	put_u64(&o, index->highestmodseq);
	put_u32(&o, n);
	put_u32(&o, index->name_tag);
	put_u32(&o, kt.strings->len);
	for (guint i = 0; i < kt.strings->len; i++) {
		const char *kw = kt.strings->pdata[i];

		put_u32(&o, (uint32_t)strlen(kw));
		put_bytes(&o, kw, strlen(kw));
	}
	for (guint i = 0; i < n; i++) {
		const CacheMessage *m =
		    &g_array_index(index->messages, CacheMessage, i);
		size_t nl = m->name ? strlen(m->name) : 0;
		guint kw = GPOINTER_TO_UINT(g_hash_table_lookup(
		    kt.local, GUINT_TO_POINTER(m->keywords)));

		put_u32(&o, m->uid);
		put_u8(&o, (m->size_exact ? MSG_SIZE_EXACT : 0) |
			       (m->gid ? MSG_HAS_GID : 0));
		put_u8(&o, m->flags);
		put_u8(&o, (uint8_t)kw);
		put_u8(&o, (uint8_t)(kw >> 8));
		put_u64(&o, m->size);
		put_u64(&o, (uint64_t)m->internaldate);
		if (m->gid)
			put_u64(&o, m->gid);
		put_u32(&o, (uint32_t)nl);
		put_bytes(&o, m->name, nl);
	}
	keyword_table_clear(&kt);
	return finish(buf, len, &o);
}

/* The keyword strings of a version 2 index, as global ids ([0] = none). */
static GArray *decode_keywords(In *in, GError **error)
{
	g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(uint16_t));
	uint16_t none = CACHE_KEYWORDS_NONE;
	uint32_t count;

	g_array_append_val(ids, none);
	if (!get_u32(in, &count) || count > in->left / 4 || count > 65535) {
		set_truncated(error, "cache index keywords");
		return NULL;
	}
	for (uint32_t i = 0; i < count; i++) {
		g_autofree char *kw = get_name(in, "cache index", error);
		uint16_t id;

		if (!kw)
			return NULL;
		/* What the encoder never writes would not re-encode the same.
		 */
		if (!*kw || strlen(kw) > CACHE_KEYWORDS_MAX_LEN) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: bad keyword string");
			return NULL;
		}
		id = cache_keywords_intern(kw);
		for (guint j = 1; j < ids->len; j++)
			if (id != CACHE_KEYWORDS_OVERFLOW &&
			    g_array_index(ids, uint16_t, j) == id) {
				g_set_error(
				    error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: keyword string twice");
				return NULL;
			}
		g_array_append_val(ids, id);
	}
	return g_steal_pointer(&ids);
}

/* One message record; false with error set. */
static bool decode_message(In *in, uint32_t version, const GArray *kw,
			   guint *kw_used, CacheMessage *m, GError **error)
{
	uint64_t date;
	uint8_t flags, lo = 0, hi = 0;

	if (!get_u32(in, &m->uid) || !get_u8(in, &flags) ||
	    (version >= 2 && (!get_u8(in, &m->flags) || !get_u8(in, &lo) ||
			      !get_u8(in, &hi))) ||
	    !get_u64(in, &m->size) || !get_u64(in, &date)) {
		set_truncated(error, "cache index");
		return false;
	}
	if ((flags & ~MSG_FLAGS_KNOWN) || (m->flags & ~CACHE_FLAGS_ALL)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: unknown message flags 0x%x", flags);
		return false;
	}
	if (version >= 2) {
		guint k = (guint)lo | (guint)hi << 8;

		/* Strings are numbered in order of first use. */
		if (k >= kw->len || k > *kw_used + 1) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: keyword %u out of range", k);
			return false;
		}
		*kw_used = MAX(*kw_used, k);
		m->keywords = g_array_index(kw, uint16_t, k);
	}
	m->size_exact = flags & MSG_SIZE_EXACT;
	m->internaldate = (int64_t)date;
	if ((flags & MSG_HAS_GID) && !get_u64(in, &m->gid)) {
		set_truncated(error, "cache index");
		return false;
	}
	if ((flags & MSG_HAS_GID) && m->gid == 0) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: message id 0");
		return false;
	}
	m->name = get_name(in, "cache index", error);
	return m->name != NULL;
}

CacheFolderIndex *cache_folder_index_decode(const void *data, size_t len,
					    GError **error)
{
	g_autoptr(GArray) messages = NULL;
	g_autoptr(GArray) kw = NULL;
	CacheFolderIndex *index;
	uint32_t version, uidvalidity, uidnext, exists, count, prev = 0;
	uint32_t name_tag = 0;
	guint kw_used = 0;
	uint64_t modseq;
	In in;

	if (!check_envelope(data, len, INDEX_MAGIC, INDEX_HEADER_LEN,
			    INDEX_VERSION, &version, "cache index", &in, error))
		return NULL;
	if (!get_u32(&in, &uidvalidity) || !get_u32(&in, &uidnext) ||
	    !get_u32(&in, &exists) || !get_u64(&in, &modseq) ||
	    !get_u32(&in, &count)) {
		set_truncated(error, "cache index");
		return NULL;
	}
	if (version >= 2 && !get_u32(&in, &name_tag)) {
		set_truncated(error, "cache index");
		return NULL;
	}
	if (version >= 2 && !(kw = decode_keywords(&in, error)))
		return NULL;
	/* Bound the allocation by what the buffer can actually hold. */
	if (count >
	    in.left / (version >= 2 ? INDEX_RECORD_MIN : INDEX_RECORD_MIN_V1)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: message count %" G_GUINT32_FORMAT
			    " exceeds the data",
			    count);
		return NULL;
	}
	messages = message_array_new(count);
	for (uint32_t i = 0; i < count; i++) {
		CacheMessage m = { 0 };

		if (!decode_message(&in, version, kw, &kw_used, &m, error)) {
			g_free(m.name);
			return NULL;
		}
		if (m.uid <= prev) {
			g_free(m.name);
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "cache index: uids not strictly ascending");
			return NULL;
		}
		prev = m.uid;
		g_array_append_val(messages, m);
	}
	if (in.left) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: %zu trailing bytes", in.left);
		return NULL;
	}
	if (kw && kw_used + 1 != kw->len) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache index: unused keyword strings");
		return NULL;
	}
	index = g_new0(CacheFolderIndex, 1);
	index->uidvalidity = uidvalidity;
	index->uidnext = uidnext;
	index->exists = exists;
	/* Version 1 kept no flags: a MODSEQ of 0 makes the next resync fetch
	 * them all. */
	index->highestmodseq = version >= 2 ? modseq : 0;
	index->name_tag = name_tag;
	index->messages = g_steal_pointer(&messages);
	return index;
}

bool cache_folder_index_peek(const void *data, size_t len,
			     uint32_t *uidvalidity)
{
	const uint8_t *p = data;

	if (!data || len < MAGIC_LEN + 4 + 4 ||
	    memcmp(p, INDEX_MAGIC, MAGIC_LEN) != 0 ||
	    load_u32(p + MAGIC_LEN) < INDEX_VERSION_V1 ||
	    load_u32(p + MAGIC_LEN) > INDEX_VERSION)
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
