/* cache/store-ids.c: the folder-id log of the cache store, a stable number
 * for each (folder, UIDVALIDITY) across mounts.
 *
 * Ownership: the store owns the table (ids, id_keys) and the append fd of
 * the ids file; this file alone touches them.
 *
 * Locking: ids_lock guards all of it, file writes included; no other lock
 * is ever taken while it is held.
 *
 * Invariants: id_keys[i] has id i + 1; its first ids_saved entries are in
 * the ids file, which is ids_size bytes long while ids_fd >= 0.
 *
 * The ids file is a header followed by an append-only log of records, each
 * with its own checksum: a new folder costs one small write instead of
 * rewriting and fsyncing the whole table (thousands of folders on a first
 * mount). A torn tail, possible only after a system crash, is cut off at the
 * next open and the file rewritten temp-then-rename with an fsync.
 */
#include "cache/store-private.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define MAX_FOLDER_ID 0x7fffffffu /* ids stay below 2^31 */
#define IDS_MAGIC "IMFSIDS1"
#define IDS_MAGIC_LEN 8
#define IDS_VERSION 1u
#define IDS_HEADER_LEN (IDS_MAGIC_LEN + 4)
#define IDS_RECORD_MIN (4 + 4 + 4) /* uidvalidity, name_len, checksum */

typedef struct {
	uint32_t uidvalidity;
	char *folder;
} IdKey;

static guint id_key_hash(gconstpointer p)
{
	const IdKey *k = p;

	return g_str_hash(k->folder) ^ (k->uidvalidity * 0x9E3779B1u);
}

static gboolean id_key_equal(gconstpointer a, gconstpointer b)
{
	const IdKey *x = a, *y = b;

	return x->uidvalidity == y->uidvalidity &&
	       strcmp(x->folder, y->folder) == 0;
}

static void id_key_free(gpointer p)
{
	IdKey *k = p;

	g_free(k->folder);
	g_free(k);
}

/* FNV-1a: enough to recognise a torn or zeroed record. */
static uint32_t fnv1a(const uint8_t *p, size_t len)
{
	uint32_t h = 0x811C9DC5u;

	while (len--) {
		h ^= *p++;
		h *= 0x01000193u;
	}
	return h;
}

static void put_le32(GByteArray *b, uint32_t v)
{
	uint8_t le[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			  (uint8_t)(v >> 24) };

	g_byte_array_append(b, le, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void append_id_record(GByteArray *b, const IdKey *k)
{
	size_t nl = strlen(k->folder);
	guint start = b->len;

	put_le32(b, k->uidvalidity);
	put_le32(b, (uint32_t)nl);
	g_byte_array_append(b, (const guint8 *)k->folder, (guint)nl);
	put_le32(b, fnv1a(b->data + start, b->len - start));
}

static uint32_t add_id_locked(CacheStore *store, uint32_t uidvalidity,
			      char *folder)
{
	IdKey *k = g_new(IdKey, 1);

	k->uidvalidity = uidvalidity;
	k->folder = folder;
	g_ptr_array_add(store->id_keys, k);
	g_hash_table_insert(store->ids, k,
			    GUINT_TO_POINTER(store->id_keys->len));
	return store->id_keys->len;
}

/* Parse the ids file; returns how many bytes hold valid records (the rest is
 * a torn or damaged tail) or 0 when even the header is unusable. */
static size_t parse_ids(CacheStore *store, const uint8_t *p, size_t len)
{
	size_t off = IDS_HEADER_LEN;

	if (len < IDS_HEADER_LEN || memcmp(p, IDS_MAGIC, IDS_MAGIC_LEN) != 0 ||
	    get_le32(p + IDS_MAGIC_LEN) != IDS_VERSION)
		return 0;
	while (len - off >= IDS_RECORD_MIN) {
		uint32_t uv = get_le32(p + off);
		uint32_t nl = get_le32(p + off + 4);
		IdKey probe;

		if (nl > len - off - IDS_RECORD_MIN)
			break;
		if (fnv1a(p + off, 8 + nl) != get_le32(p + off + 8 + nl))
			break;
		if (memchr(p + off + 8, '\0', nl))
			break;
		if (store->id_keys->len >= MAX_FOLDER_ID)
			break;
		probe.uidvalidity = uv;
		probe.folder = g_strndup((const char *)p + off + 8, nl);
		if (g_hash_table_contains(store->ids, &probe)) {
			g_free(probe.folder);
			break;
		}
		add_id_locked(store, uv, probe.folder);
		off += IDS_RECORD_MIN + nl;
	}
	return off;
}

/* Bring the ids file up to date with id_keys: append the new records, or
 * rewrite the whole file when it is missing or damaged. */
static int persist_ids_locked(CacheStore *store)
{
	g_autoptr(GByteArray) b = g_byte_array_new();
	guint n = store->id_keys->len;
	int fd, r;

	if (store->ids_fd >= 0) {
		if (store->ids_saved == n)
			return 0;
		for (guint i = store->ids_saved; i < n; i++)
			append_id_record(b,
					 g_ptr_array_index(store->id_keys, i));
		r = store_write_all(store->ids_fd, b->data, b->len);
		if (r == 0) {
			store->ids_size += b->len;
			store->ids_saved = n;
			return 0;
		}
		/* Cut a partial record so later appends stay readable. */
		if (ftruncate(store->ids_fd, store->ids_size) < 0) {
			close(store->ids_fd);
			store->ids_fd = -1;
		}
		return r;
	}

	g_byte_array_append(b, (const guint8 *)IDS_MAGIC, IDS_MAGIC_LEN);
	put_le32(b, IDS_VERSION);
	for (guint i = 0; i < n; i++)
		append_id_record(b, g_ptr_array_index(store->id_keys, i));
	r = store_write_file_atomic(store, "ids", b->data, b->len,
				    store->ids_path, NULL);
	if (r < 0)
		return r;
	fd =
	    open(store->ids_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	store->ids_fd = fd;
	store->ids_size = b->len;
	store->ids_saved = n;
	return 0;
}

int store_ids_load(CacheStore *store)
{
	g_autoptr(GBytes) bytes = NULL;
	struct stat st;
	const uint8_t *p;
	size_t len, good;
	int r;

	r = store_read_file(store->ids_path, &bytes, &st);
	if (r == -ENOENT)
		return 0; /* created with the first id */
	if (r < 0)
		return r;
	p = g_bytes_get_data(bytes, &len);
	good = parse_ids(store, p, len);
	if (good == len && good >= IDS_HEADER_LEN) {
		int fd = open(store->ids_path,
			      O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0)
			return -errno;
		store->ids_fd = fd;
		store->ids_size = (off_t)len;
		store->ids_saved = store->id_keys->len;
		return 0;
	}
	g_message("cache: %s is damaged after byte %zu; keeping %u folder ids",
		  store->ids_path, good, store->id_keys->len);
	return persist_ids_locked(store);
}

int cache_store_folder_id(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t *id)
{
	IdKey probe = { uidvalidity, (char *)folder };
	gpointer value;
	int r;

	g_return_val_if_fail(store && folder && id, -EINVAL);
	g_mutex_lock(&store->ids_lock);
	value = g_hash_table_lookup(store->ids, &probe);
	if (value) {
		g_mutex_unlock(&store->ids_lock);
		*id = GPOINTER_TO_UINT(value);
		return 0;
	}
	if (store->id_keys->len >= MAX_FOLDER_ID) {
		g_mutex_unlock(&store->ids_lock);
		return -EOVERFLOW;
	}
	*id = add_id_locked(store, uidvalidity, g_strdup(folder));
	/* A failed save (disk full) keeps the id for this mount; the next new
	 * id or cache_store_free() tries again. */
	r = persist_ids_locked(store);
	if (r < 0 && !store->ids_warned) {
		g_message("cache: cannot save folder ids in %s: %s",
			  store->ids_path, g_strerror(-r));
		store->ids_warned = true;
	}
	g_mutex_unlock(&store->ids_lock);
	return 0;
}

void store_ids_init(CacheStore *store)
{
	g_mutex_init(&store->ids_lock);
	store->ids_fd = -1;
	store->id_keys = g_ptr_array_new_with_free_func(id_key_free);
	store->ids = g_hash_table_new(id_key_hash, id_key_equal);
}

void store_ids_close(CacheStore *store)
{
	g_mutex_lock(&store->ids_lock);
	/* Only a store that took its lock may write the file. */
	if (store->lock_fd >= 0 && store->ids_saved < store->id_keys->len)
		persist_ids_locked(store);
	g_mutex_unlock(&store->ids_lock);
	if (store->ids_fd >= 0)
		close(store->ids_fd);
	store->ids_fd = -1;
	g_hash_table_unref(store->ids);
	g_ptr_array_unref(store->id_keys);
	g_mutex_clear(&store->ids_lock);
}
