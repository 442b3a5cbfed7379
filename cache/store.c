/* cache/store.c: the on-disk cache of one account.
 *
 * Ownership: a CacheStore owns its paths, the lock fd (an exclusive flock()
 * held for its whole life, so two daemons never share a cache directory),
 * the folder-id table, the append fd of the ids file and, while a bound is
 * set, the body LRU (cache/lru.h) with its table of folder keys. A
 * CacheBodyWriter owns its fd (a temp file, or a memfd once the disk is
 * full) and temp path and borrows the store, which must outlive it.
 *
 * Locking: ids_lock guards the folder-id table, the key array and the ids
 * file. lru_lock guards the LRU, the folder-key table and max_bytes; the
 * only file operation under it is unlink() of evicted bodies. limit_lock
 * serialises cache_store_set_limit(), whose directory scan runs without
 * lru_lock (commits made meanwhile are tracked and kept as most recent).
 * Order: limit_lock, then lru_lock; ids_lock is never held with either.
 * Everything else is immutable after open; file operations rely on O_EXCL
 * and on the atomicity of rename() instead of locks.
 *
 * Invariants: a final name (body, index, folders.list, ids) only appears
 * through rename() of a complete temp file from tmp/, or (ids) by appending
 * whole records. id_keys[i] has id i + 1; its first ids_saved entries are in
 * the ids file, which is ids_size bytes long while ids_fd >= 0. While lru is
 * set, every body on disk has an entry (a body being committed has one,
 * pinned, from before its rename), so the tracked bytes never undercount;
 * an entry whose file vanished is dropped when it is evicted. A writer's fd
 * holds exactly size bytes; tmp_path == NULL means memory mode.
 *
 * The ids file is a header followed by an append-only log of records, each
 * with its own checksum: a new folder costs one small write instead of
 * rewriting and fsyncing the whole table (thousands of folders on a first
 * mount). A torn tail, possible only after a system crash, is cut off at the
 * next open and the file rewritten temp-then-rename with an fsync.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "cache/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/lru.h"
#include "cache/pack.h"

#define KEY_HASH_CHARS 16
#define KEY_NAME_CHARS 40
#define KEY_MAX_LEN (KEY_HASH_CHARS + 1 + KEY_NAME_CHARS)
#define MAX_FOLDER_ID 0x7fffffffu /* ids stay below 2^31 */
#define RENAME_TRIES 4
#define TREE_DEPTH 3 /* folders/<key>/<uidvalidity>/<uid> */
/* LRU entries of pack segments: folder number with this bit, the segment
 * number as the uid (folder numbers stay far below it). */
#define LRU_PACK_BIT 0x80000000u

#define IDS_MAGIC "IMFSIDS1"
#define IDS_MAGIC_LEN 8
#define IDS_VERSION 1u
#define IDS_HEADER_LEN (IDS_MAGIC_LEN + 4)
#define IDS_RECORD_MIN (4 + 4 + 4) /* uidvalidity, name_len, checksum */

typedef struct {
	uint32_t uidvalidity;
	char *folder;
} IdKey;

struct CacheStore {
	char *dir;         /* ROOT/<account-key> */
	char *folders_dir; /* dir/folders */
	char *tmp_dir;     /* dir/tmp */
	char *ids_path;
	char *list_path;
	int lock_fd;

	GMutex ids_lock;
	GHashTable *ids;    /* IdKey* -> id, keys owned by id_keys */
	GPtrArray *id_keys; /* IdKey*, id_keys[i] has id i + 1 */
	guint ids_saved;    /* leading id_keys already in the file */
	int ids_fd;         /* O_APPEND fd, -1 when a rewrite is due */
	off_t ids_size;     /* bytes of whole records in the file */
	bool ids_warned;

	GMutex limit_lock;
	GMutex lru_lock;
	CacheLru *lru;            /* NULL: no bound, nothing tracked */
	uint64_t max_bytes;       /* 0 with lru: tracking during a scan */
	GPtrArray *fkeys;         /* folder number -> folder key */
	GHashTable *fnum_by_key;  /* folder key -> number + 1 */
	GHashTable *fnum_by_name; /* raw folder name -> number + 1 */
	gint tracking;            /* lru != NULL, read without the lock */

	GMutex packs_lock;
	GHashTable *packs; /* "<folder key>/<uidvalidity>" -> CachePack* */
	GHashTable *keys;  /* raw folder name -> folder key, a memo */
};

struct CacheBodyWriter {
	CacheStore *store;
	int fd;              /* temp file, or memfd in memory mode */
	char *tmp_path;      /* NULL in memory mode */
	uint64_t size;       /* bytes written to fd */
	uint64_t evict_mark; /* size at the last eviction for space */
	int error;           /* first write error, sticky */
};

static void remove_stale_temps(const char *folders_dir);

/* ---- keys and paths ---- */

static bool key_char_ok(unsigned char c)
{
	return g_ascii_isalnum(c) || c == '.' || c == '_' || c == '@' ||
	       c == '-';
}

/* First 16 hex chars of SHA-256(s), '-', and up to 40 safe ASCII chars of
 * s for people reading the tree. Never ".", ".." or containing '/'. */
static char *make_key(const char *s)
{
	g_autofree char *sum =
	    g_compute_checksum_for_string(G_CHECKSUM_SHA256, s, -1);
	char *key = g_malloc(KEY_MAX_LEN + 1);
	size_t n = KEY_HASH_CHARS;

	memcpy(key, sum, KEY_HASH_CHARS);
	key[n++] = '-';
	for (const unsigned char *p = (const unsigned char *)s;
	     *p && n < KEY_MAX_LEN; p++)
		key[n++] = key_char_ok(*p) ? (char)*p : '_';
	key[n] = '\0';
	return key;
}

static char *folder_dir(const CacheStore *store, const char *folder)
{
	g_autofree char *key = make_key(folder);

	return g_strdup_printf("%s/%s", store->folders_dir, key);
}

/* ---- small file helpers, 0 or -errno ---- */

/* mkdir 0700 whatever the umask; an existing directory is fine. */
static int ensure_dir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return chmod(path, 0700) < 0 ? -errno : 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Create root and its missing parents, each 0700 whatever the umask. Levels
 * are made one by one so that a strict umask cannot lock us out. */
static int make_root(const char *root)
{
	g_autoptr(GPtrArray) missing = g_ptr_array_new_with_free_func(g_free);
	char *p = g_strdup(root);
	struct stat st;

	while (stat(p, &st) < 0) {
		char *parent;

		if (errno != ENOENT) {
			int r = -errno;

			g_free(p);
			return r;
		}
		parent = g_path_get_dirname(p);
		g_ptr_array_add(missing, p);
		if (strcmp(parent, p) == 0) {
			g_free(parent);
			return -ENOENT;
		}
		p = parent;
	}
	g_free(p);
	for (guint i = missing->len; i-- > 0;) {
		int r = ensure_dir(g_ptr_array_index(missing, i));

		if (r < 0)
			return r;
	}
	if (stat(root, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int close_checked(int fd)
{
	/* On Linux the fd is gone even when close() says EINTR. */
	if (close(fd) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Whole regular file behind fd (not closed), at most max bytes (-EFBIG
 * beyond); st describes the file that was read. */
static int read_fd(int fd, uint64_t max, GBytes **out, struct stat *st)
{
	GByteArray *buf;
	size_t used = 0;
	int r = 0;

	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if ((uint64_t)st->st_size > max)
		return -EFBIG;
	buf = g_byte_array_sized_new(
	    (guint)MIN((uint64_t)st->st_size + 1, 64u << 20));
	for (;;) {
		ssize_t n;

		if (buf->len - used < 65536)
			g_byte_array_set_size(buf, (guint)used + 65536 +
						       (guint)used / 2);
		n = read(fd, buf->data + used, buf->len - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (r < 0) {
		g_byte_array_unref(buf);
		return r;
	}
	g_byte_array_set_size(buf, (guint)used);
	*out = g_byte_array_free_to_bytes(buf);
	return 0;
}

static int read_file(const char *path, GBytes **out, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), r;

	if (fd < 0)
		return -errno;
	r = read_fd(fd, UINT64_MAX, out, st);
	close(fd);
	return r;
}

/* A file that failed to decode is removed, unless a writer has replaced it
 * with a new one since it was read. */
static void discard_file(const char *path, const struct stat *was,
			 const char *why)
{
	struct stat now;

	g_message("cache: removing unreadable %s: %s", path, why);
	if (lstat(path, &now) == 0 && now.st_dev == was->st_dev &&
	    now.st_ino == was->st_ino)
		unlink(path);
}

/* A new 0600 temp file in tmp/; returns an fd or -errno. */
static int make_temp(const CacheStore *store, const char *prefix, char **path)
{
	char *tmpl = g_strdup_printf("%s/%s-XXXXXX", store->tmp_dir, prefix);
	int fd, r;

	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		g_free(tmpl);
		return r;
	}
	if (fchmod(fd, 0600) < 0) {
		r = -errno;
		close(fd);
		unlink(tmpl);
		g_free(tmpl);
		return r;
	}
	*path = tmpl;
	return fd;
}

/* rename(), creating the missing parent directories on ENOENT. Bounded
 * because a concurrent drop_folder may remove them again. */
static int rename_into(const char *tmp, const char *final, const char *dir1,
		       const char *dir2)
{
	for (int i = 0;; i++) {
		int r;

		if (rename(tmp, final) == 0)
			return 0;
		r = -errno;
		if (r != -ENOENT || i == RENAME_TRIES)
			return r;
		if (dir1 && (r = ensure_dir(dir1)) < 0)
			return r;
		if (dir2 && (r = ensure_dir(dir2)) < 0)
			return r;
	}
}

/* Temp file, fsync, rename: after a crash either the old or the new file. */
static int write_file_atomic(const CacheStore *store, const char *prefix,
			     const void *data, size_t len, const char *final,
			     const char *dir)
{
	g_autofree char *tmp = NULL;
	int fd, r, rc;

	fd = make_temp(store, prefix, &tmp);
	if (fd < 0)
		return fd;
	r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	rc = close_checked(fd);
	if (r == 0)
		r = rc;
	if (r == 0)
		r = rename_into(tmp, final, dir, NULL);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Names in the directory fd (which stays open), without "." and "..". */
static int list_dir(int fd, GPtrArray **out)
{
	GPtrArray *names;
	struct dirent *de;
	DIR *d;
	int dfd = dup(fd);

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		int r = -errno;

		close(dfd);
		return r;
	}
	rewinddir(d);
	names = g_ptr_array_new_with_free_func(g_free);
	while ((errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		g_ptr_array_add(names, g_strdup(de->d_name));
	}
	if (errno) {
		int r = -errno;

		closedir(d);
		g_ptr_array_unref(names);
		return r;
	}
	closedir(d);
	*out = names;
	return 0;
}

/* Remove name under dirfd: a file, or a directory at most depth levels
 * deep. Symlinks are removed, never followed. Missing is success. */
static int remove_tree_at(int dirfd, const char *name, int depth)
{
	g_autoptr(GPtrArray) names = NULL;
	int fd, r;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth <= 0)
		return -errno;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++)
		r = remove_tree_at(fd, g_ptr_array_index(names, i), depth - 1);
	close(fd);
	if (r == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		r = -errno;
	return r;
}

/* Empty the directory at path (stale temp files). */
static int clear_dir(const char *path)
{
	g_autoptr(GPtrArray) names = NULL;
	int fd, r;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++)
		r = remove_tree_at(fd, g_ptr_array_index(names, i), TREE_DEPTH);
	close(fd);
	return r;
}

/* ---- folder ids ---- */

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
		r = write_all(store->ids_fd, b->data, b->len);
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
	r = write_file_atomic(store, "ids", b->data, b->len, store->ids_path,
			      NULL);
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

static int load_ids(CacheStore *store)
{
	g_autoptr(GBytes) bytes = NULL;
	struct stat st;
	const uint8_t *p;
	size_t len, good;
	int r;

	r = read_file(store->ids_path, &bytes, &st);
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

/* ---- body LRU: state, under lru_lock ---- */

static void start_tracking_locked(CacheStore *store)
{
	store->lru = cache_lru_new();
	store->max_bytes = 0;
	store->fkeys = g_ptr_array_new_with_free_func(g_free);
	store->fnum_by_key = g_hash_table_new(g_str_hash, g_str_equal);
	store->fnum_by_name =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_atomic_int_set(&store->tracking, 1);
}

/* Also used by cache_store_free(), where the mutex still works. */
static void stop_tracking(CacheStore *store)
{
	g_mutex_lock(&store->lru_lock);
	g_atomic_int_set(&store->tracking, 0);
	g_clear_pointer(&store->lru, cache_lru_free);
	g_clear_pointer(&store->fnum_by_key, g_hash_table_unref);
	g_clear_pointer(&store->fnum_by_name, g_hash_table_unref);
	g_clear_pointer(&store->fkeys, g_ptr_array_unref);
	store->max_bytes = 0;
	g_mutex_unlock(&store->lru_lock);
}

/* The number of a folder key, assigned on first use. */
static uint32_t key_num_locked(CacheStore *store, const char *key)
{
	gpointer v = g_hash_table_lookup(store->fnum_by_key, key);
	char *copy;

	if (v)
		return GPOINTER_TO_UINT(v) - 1;
	copy = g_strdup(key);
	g_ptr_array_add(store->fkeys, copy);
	g_hash_table_insert(store->fnum_by_key, copy,
			    GUINT_TO_POINTER(store->fkeys->len));
	return store->fkeys->len - 1;
}

/* The number of a raw folder name; key is make_key(folder) when the caller
 * has it. Names are remembered so that touching a body hashes no SHA-256. */
static uint32_t folder_num_locked(CacheStore *store, const char *folder,
				  const char *key)
{
	gpointer v = g_hash_table_lookup(store->fnum_by_name, folder);
	g_autofree char *made = NULL;
	uint32_t num;

	if (v)
		return GPOINTER_TO_UINT(v) - 1;
	if (!key)
		key = made = make_key(folder);
	num = key_num_locked(store, key);
	g_hash_table_insert(store->fnum_by_name, g_strdup(folder),
			    GUINT_TO_POINTER(num + 1));
	return num;
}

/* ---- packs of small bodies (cache/pack.h), under packs_lock ---- */

static char *pack_name(const char *key, uint32_t uidvalidity)
{
	return g_strdup_printf("%s/%" G_GUINT32_FORMAT, key, uidvalidity);
}

/* make_key(folder), remembered: a SHA-256 per body read adds up. */
static char *folder_key(CacheStore *store, const char *folder)
{
	char *key;

	g_mutex_lock(&store->packs_lock);
	key = g_hash_table_lookup(store->keys, folder);
	if (!key) {
		key = make_key(folder);
		g_hash_table_insert(store->keys, g_strdup(folder), key);
	}
	key = g_strdup(key);
	g_mutex_unlock(&store->packs_lock);
	return key;
}

/* The size of a pack segment, the unit of eviction: with a bound, a small
 * part of it. */
static uint64_t segment_max(uint64_t bound)
{
	return bound ? MIN(CACHE_PACK_SEGMENT_MAX, bound / 16)
		     : CACHE_PACK_SEGMENT_MAX;
}

/* A reference to the pack of (key, uidvalidity), opened on first use. */
static CachePack *get_pack(CacheStore *store, const char *key,
			   uint32_t uidvalidity)
{
	g_autofree char *name = pack_name(key, uidvalidity);
	g_autofree char *dir = NULL;
	uint64_t bound;
	CachePack *pack, *opened;

	g_mutex_lock(&store->packs_lock);
	pack = g_hash_table_lookup(store->packs, name);
	if (pack)
		cache_pack_ref(pack);
	g_mutex_unlock(&store->packs_lock);
	if (pack)
		return pack;

	g_mutex_lock(&store->lru_lock);
	bound = store->max_bytes;
	g_mutex_unlock(&store->lru_lock);
	/* The scan runs without the lock; a racing opener's pack wins. */
	dir = g_strdup_printf("%s/%s", store->folders_dir, name);
	opened = cache_pack_open(dir, segment_max(bound));
	g_mutex_lock(&store->packs_lock);
	pack = g_hash_table_lookup(store->packs, name);
	if (!pack) {
		pack = opened;
		opened = NULL;
		g_hash_table_insert(store->packs, g_steal_pointer(&name), pack);
	}
	cache_pack_ref(pack);
	g_mutex_unlock(&store->packs_lock);
	cache_pack_unref(opened);
	return pack;
}

/* Eviction of a segment (under lru_lock; packs_lock nests inside it). */
static void drop_pack_segment(CacheStore *store, const char *key,
			      uint32_t uidvalidity, uint32_t segment)
{
	g_autofree char *name = pack_name(key, uidvalidity);
	CachePack *pack;

	g_mutex_lock(&store->packs_lock);
	pack = g_hash_table_lookup(store->packs, name);
	if (pack)
		cache_pack_drop_segment(pack, segment);
	g_mutex_unlock(&store->packs_lock);
	if (!pack) {
		g_autofree char *path = g_strdup_printf(
		    "%s/%s/" CACHE_PACK_PREFIX "%" G_GUINT32_FORMAT,
		    store->folders_dir, name, segment);

		if (unlink(path) < 0 && errno != ENOENT)
			g_debug("cache: cannot evict %s: %s", path,
				g_strerror(errno));
	}
}

/* Forget the packs of key whose UIDVALIDITY is not keep (0: all): their
 * directories were removed. */
static void forget_packs(CacheStore *store, const char *key,
			 uint32_t keep_uidvalidity)
{
	g_autofree char *prefix = g_strdup_printf("%s/", key);
	GHashTableIter it;
	gpointer k, v;

	g_mutex_lock(&store->packs_lock);
	g_hash_table_iter_init(&it, store->packs);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		guint64 uv;

		if (!g_str_has_prefix(k, prefix) ||
		    !g_ascii_string_to_unsigned((const char *)k +
						    strlen(prefix),
						10, 0, UINT32_MAX, &uv, NULL))
			continue;
		if (keep_uidvalidity == 0 || uv != keep_uidvalidity)
			g_hash_table_iter_remove(&it);
	}
	g_mutex_unlock(&store->packs_lock);
}

/* Remove the least recently used unpinned bodies until at most target bytes
 * are tracked. Returns the bytes that left the accounting. */
static uint64_t evict_locked(CacheStore *store, uint64_t target)
{
	CacheLru *lru = store->lru;
	uint64_t freed = 0;
	uint32_t e = cache_lru_oldest(lru);

	while (e != CACHE_LRU_NONE && cache_lru_bytes(lru) > target) {
		uint32_t next = cache_lru_newer(lru, e);
		const CacheLruKey *k = cache_lru_key(lru, e);
		g_autofree char *path = NULL;

		if (cache_lru_pinned(lru, e)) {
			e = next;
			continue;
		}
		if (k->folder & LRU_PACK_BIT) {
			drop_pack_segment(
			    store,
			    g_ptr_array_index(store->fkeys,
					      k->folder & ~LRU_PACK_BIT),
			    k->uidvalidity, k->uid);
			freed += cache_lru_size(lru, e);
			cache_lru_remove(lru, e);
			e = next;
			continue;
		}
		path = g_strdup_printf(
		    "%s/%s/%" G_GUINT32_FORMAT "/%" G_GUINT32_FORMAT,
		    store->folders_dir,
		    (const char *)g_ptr_array_index(store->fkeys, k->folder),
		    k->uidvalidity, k->uid);
		/* Readers holding the file open keep reading it. A file that
		 * is already gone only leaves the accounting. */
		if (unlink(path) < 0 && errno != ENOENT)
			g_debug("cache: cannot evict %s: %s", path,
				g_strerror(errno));
		freed += cache_lru_size(lru, e);
		cache_lru_remove(lru, e);
		e = next;
	}
	return freed;
}

/* Commits evict down to here, so that eviction is not needed per commit. */
static uint64_t low_mark(uint64_t max)
{
	return max - max / 10;
}

/* The disk is full: evict at least want bytes (and a tenth of the cache)
 * if a bound is set. True when something was evicted. */
static bool evict_for_space(CacheStore *store, uint64_t want)
{
	uint64_t freed = 0;

	g_mutex_lock(&store->lru_lock);
	if (store->lru && store->max_bytes) {
		uint64_t bytes = cache_lru_bytes(store->lru);
		uint64_t drop = MIN(bytes, MAX(want, bytes / 10));

		freed = evict_locked(store, bytes - drop);
	}
	g_mutex_unlock(&store->lru_lock);
	return freed > 0;
}

/* A body of size bytes is about to be renamed into place: account for it
 * now, pinned so that no other commit evicts it before it exists, and make
 * room. *reserved tells cache_lru_unpin() is due. -EFBIG when the body
 * alone exceeds the bound. */
static int reserve_body(CacheStore *store, const char *folder, const char *key,
			uint32_t uidvalidity, uint32_t uid, uint64_t size,
			bool *reserved)
{
	CacheLruKey k = { 0, uidvalidity, uid };
	uint32_t e;
	int r = 0;

	*reserved = false;
	g_mutex_lock(&store->lru_lock);
	if (!store->lru)
		goto out;
	if (store->max_bytes && size > store->max_bytes) {
		r = -EFBIG;
		goto out;
	}
	k.folder = folder_num_locked(store, folder, key);
	e = cache_lru_insert(store->lru, &k, true);
	cache_lru_touch(store->lru, e);
	cache_lru_set_size(store->lru, e, size);
	cache_lru_pin(store->lru, e);
	*reserved = true;
	if (store->max_bytes && cache_lru_bytes(store->lru) > store->max_bytes)
		evict_locked(store, low_mark(store->max_bytes));
out:
	g_mutex_unlock(&store->lru_lock);
	return r;
}

/* The commit of a body is over: stored under final, or not. */
static void finish_body(CacheStore *store, const char *folder, const char *key,
			uint32_t uidvalidity, uint32_t uid, uint64_t size,
			bool reserved, bool stored, const char *final)
{
	CacheLruKey k = { 0, uidvalidity, uid };
	struct stat st;
	bool exists = false;
	uint32_t e;

	if (!reserved && !stored)
		return;
	/* A failed commit may leave an older copy in place (two fetches of
	 * the same body): it stays accounted. */
	if (!stored)
		exists = lstat(final, &st) == 0 && S_ISREG(st.st_mode);
	g_mutex_lock(&store->lru_lock);
	if (!store->lru)
		goto out;
	k.folder = folder_num_locked(store, folder, key);
	e = cache_lru_find(store->lru, &k);
	if (stored) {
		/* Absent when a drop_folder() or a new bound came meanwhile:
		 * the file exists now, so it is tracked again. */
		if (e == CACHE_LRU_NONE)
			e = cache_lru_insert(store->lru, &k, true);
		else if (reserved)
			cache_lru_unpin(store->lru, e);
		cache_lru_set_size(store->lru, e, size);
	} else if (e != CACHE_LRU_NONE) {
		cache_lru_unpin(store->lru, e);
		/* Pinned still: another commit of the same body is under way
		 * and settles the entry. */
		if (exists)
			cache_lru_set_size(store->lru, e, (uint64_t)st.st_size);
		else if (!cache_lru_pinned(store->lru, e))
			cache_lru_remove(store->lru, e);
	}
out:
	g_mutex_unlock(&store->lru_lock);
}

/* ---- body LRU: scanning what is on disk ---- */

typedef struct {
	int64_t mtime_ns;
	uint64_t size;
	uint32_t folder; /* index into the scan's keys */
	uint32_t uidvalidity;
	uint32_t uid; /* or the segment number of a pack */
	bool pack;
} ScanItem;

/* A directory entry name that our own code writes for a UIDVALIDITY or
 * UID: decimal, 1..2^32-1, no leading zero. */
static bool parse_body_name(const char *name, uint32_t *v)
{
	guint64 n;

	if (name[0] < '1' || name[0] > '9' ||
	    !g_ascii_string_to_unsigned(name, 10, 1, UINT32_MAX, &n, NULL))
		return false;
	*v = (uint32_t)n;
	return true;
}

/* Open name under dirfd as a directory; *fd = -1 when it is gone or is
 * not a directory. */
static int open_subdir(int dirfd, const char *name, int *fd)
{
	*fd = openat(dirfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
		return 0;
	return -errno;
}

/* Entries of the directory fd (taken over and closed), each name handed to
 * fn. */
static int scan_dir(int fd,
		    int (*fn)(int dirfd, const char *name, unsigned char type,
			      void *data),
		    void *data)
{
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int r = 0;

	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while (r == 0 && (errno = 0, de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			r = fn(dirfd(d), de->d_name, de->d_type, data);
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

typedef struct {
	GPtrArray *keys; /* folder keys found */
	GArray *items;   /* ScanItem */
	uint32_t folder, uidvalidity;
} Scan;

typedef struct {
	uint64_t ino;
	uint32_t uid; /* or segment number */
	bool pack;
} BodyName;

static gint body_name_cmp(gconstpointer pa, gconstpointer pb)
{
	const BodyName *a = pa, *b = pb;

	return a->ino < b->ino ? -1 : a->ino > b->ino;
}

/* The bodies of one UIDVALIDITY directory, stat()ed in inode order: on a
 * cold cache this reads the inode table in order rather than at random
 * (several times faster on ext4). */
static int scan_bodies_in(Scan *scan, int fd)
{
	g_autoptr(GArray) names = g_array_new(FALSE, FALSE, sizeof(BodyName));
	struct dirent *de;
	DIR *d = fdopendir(fd);
	int r = 0;

	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		BodyName b = { de->d_ino, 0, false };

		if ((de->d_type == DT_REG || de->d_type == DT_UNKNOWN) &&
		    (parse_body_name(de->d_name, &b.uid) ||
		     (b.pack = cache_pack_parse_name(de->d_name, &b.uid))))
			g_array_append_val(names, b);
	}
	if (errno)
		r = -errno;
	g_array_sort(names, body_name_cmp);
	for (guint i = 0; r == 0 && i < names->len; i++) {
		const BodyName *b = &g_array_index(names, BodyName, i);
		char name[32];
		ScanItem it;
		struct stat st;

		g_snprintf(name, sizeof(name), "%s%" G_GUINT32_FORMAT,
			   b->pack ? CACHE_PACK_PREFIX : "", b->uid);
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = -errno;
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		it.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
			      st.st_mtim.tv_nsec;
		it.size = (uint64_t)st.st_size;
		it.folder = scan->folder;
		it.uidvalidity = scan->uidvalidity;
		it.uid = b->uid;
		it.pack = b->pack;
		g_array_append_val(scan->items, it);
	}
	closedir(d);
	return r;
}

static int scan_uidvalidity(int dirfd, const char *name, unsigned char type,
			    void *data)
{
	Scan *scan = data;
	int fd, r;

	if ((type != DT_DIR && type != DT_UNKNOWN) ||
	    !parse_body_name(name, &scan->uidvalidity))
		return 0;
	r = open_subdir(dirfd, name, &fd);
	if (r < 0 || fd < 0)
		return r;
	return scan_bodies_in(scan, fd);
}

static int scan_folder(int dirfd, const char *name, unsigned char type,
		       void *data)
{
	Scan *scan = data;
	int fd, r;

	if (type != DT_DIR && type != DT_UNKNOWN)
		return 0;
	r = open_subdir(dirfd, name, &fd);
	if (r < 0 || fd < 0)
		return r;
	scan->folder = scan->keys->len;
	g_ptr_array_add(scan->keys, g_strdup(name));
	return scan_dir(fd, scan_uidvalidity, scan);
}

/* Newest first; ties in a fixed order so that runs are reproducible. */
static gint scan_item_cmp(gconstpointer pa, gconstpointer pb)
{
	const ScanItem *a = pa, *b = pb;

	if (a->mtime_ns != b->mtime_ns)
		return a->mtime_ns < b->mtime_ns ? 1 : -1;
	if (a->folder != b->folder)
		return a->folder < b->folder ? 1 : -1;
	if (a->uidvalidity != b->uidvalidity)
		return a->uidvalidity < b->uidvalidity ? 1 : -1;
	if (a->pack != b->pack)
		return a->pack ? 1 : -1;
	if (a->uid != b->uid)
		return a->uid < b->uid ? 1 : -1;
	return 0;
}

static int scan_bodies(CacheStore *store, Scan *scan)
{
	int fd = open(store->folders_dir,
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	return scan_dir(fd, scan_folder, scan);
}

/* Scanned bodies go to the oldest end, oldest mtime first; bodies committed
 * during the scan are already tracked and stay the most recent. */
static void merge_scan_locked(CacheStore *store, Scan *scan)
{
	g_autofree uint32_t *nums = g_new(uint32_t, scan->keys->len + 1);

	for (guint i = 0; i < scan->keys->len; i++)
		nums[i] = CACHE_LRU_NONE;
	cache_lru_reserve(store->lru, scan->items->len);
	g_array_sort(scan->items, scan_item_cmp);
	for (guint i = 0; i < scan->items->len; i++) {
		const ScanItem *it = &g_array_index(scan->items, ScanItem, i);
		CacheLruKey k = { 0, it->uidvalidity, it->uid };
		uint32_t e;

		if (nums[it->folder] == CACHE_LRU_NONE)
			nums[it->folder] = key_num_locked(
			    store, g_ptr_array_index(scan->keys, it->folder));
		k.folder = nums[it->folder] | (it->pack ? LRU_PACK_BIT : 0);
		if (cache_lru_find(store->lru, &k) != CACHE_LRU_NONE)
			continue;
		e = cache_lru_insert(store->lru, &k, false);
		cache_lru_set_size(store->lru, e, it->size);
	}
}

int cache_store_set_limit(CacheStore *store, uint64_t max_bytes)
{
	Scan scan = { 0 };
	bool scanned;
	int r;

	g_return_val_if_fail(store, -EINVAL);
	g_mutex_lock(&store->limit_lock);
	if (max_bytes == 0) {
		stop_tracking(store);
		g_mutex_unlock(&store->limit_lock);
		return 0;
	}
	g_mutex_lock(&store->lru_lock);
	scanned = !store->lru;
	if (scanned)
		start_tracking_locked(store);
	g_mutex_unlock(&store->lru_lock);

	if (scanned) {
		scan.keys = g_ptr_array_new_with_free_func(g_free);
		scan.items = g_array_new(FALSE, FALSE, sizeof(ScanItem));
		r = scan_bodies(store, &scan);
		if (r < 0) {
			stop_tracking(store);
			goto out;
		}
	}
	g_mutex_lock(&store->lru_lock);
	if (scanned)
		merge_scan_locked(store, &scan);
	store->max_bytes = max_bytes;
	evict_locked(store, max_bytes);
	g_debug("cache: %u bodies, %" G_GUINT64_FORMAT
		" bytes, bound %" G_GUINT64_FORMAT,
		cache_lru_count(store->lru), cache_lru_bytes(store->lru),
		max_bytes);
	g_mutex_unlock(&store->lru_lock);
	r = 0;
out:
	if (scan.keys)
		g_ptr_array_unref(scan.keys);
	if (scan.items)
		g_array_unref(scan.items);
	g_mutex_unlock(&store->limit_lock);
	return r;
}

void cache_store_touch_body(CacheStore *store, const char *folder,
			    uint32_t uidvalidity, uint32_t uid)
{
	CacheLruKey k = { 0, uidvalidity, uid };
	uint32_t e;

	if (!store || !folder || !g_atomic_int_get(&store->tracking))
		return;
	g_mutex_lock(&store->lru_lock);
	if (store->lru) {
		k.folder = folder_num_locked(store, folder, NULL);
		e = cache_lru_find(store->lru, &k);
		if (e != CACHE_LRU_NONE)
			cache_lru_touch(store->lru, e);
	}
	g_mutex_unlock(&store->lru_lock);
}

uint64_t cache_store_body_bytes(CacheStore *store)
{
	uint64_t bytes = 0;

	g_return_val_if_fail(store, 0);
	g_mutex_lock(&store->lru_lock);
	if (store->lru)
		bytes = cache_lru_bytes(store->lru);
	g_mutex_unlock(&store->lru_lock);
	return bytes;
}

/* Bodies of folder left the disk (uidvalidity != keep, or all for 0). */
static void forget_folder(CacheStore *store, const char *folder,
			  const char *key, uint32_t keep_uidvalidity)
{
	g_mutex_lock(&store->lru_lock);
	if (store->lru) {
		uint32_t num = folder_num_locked(store, folder, key);

		cache_lru_drop_folder(store->lru, num, keep_uidvalidity);
		cache_lru_drop_folder(store->lru, num | LRU_PACK_BIT,
				      keep_uidvalidity);
	}
	g_mutex_unlock(&store->lru_lock);
	forget_packs(store, key, keep_uidvalidity);
}

/* ---- open and close ---- */

static bool set_errno_error(GError **error, int r, const char *what,
			    const char *path)
{
	g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
		    "cache: cannot %s %s: %s", what, path, g_strerror(-r));
	return false;
}

static bool take_lock(CacheStore *store, GError **error)
{
	g_autofree char *path = g_strdup_printf("%s/lock", store->dir);
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return set_errno_error(error, -errno, "open", path);
	store->lock_fd = fd;
	if (fchmod(fd, 0600) < 0)
		return set_errno_error(error, -errno, "chmod", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN,
				    "cache directory %s is in use by another "
				    "imapfs process",
				    store->dir);
			return false;
		}
		return set_errno_error(error, -errno, "lock", path);
	}
	return true;
}

CacheStore *cache_store_open(const char *root, const char *account,
			     GError **error)
{
	g_autofree char *key = NULL;
	CacheStore *store;
	int r;

	g_return_val_if_fail(root && account, NULL);
	if (!*root) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache: empty cache directory name");
		return NULL;
	}
	r = make_root(root);
	if (r < 0) {
		set_errno_error(error, r, "create", root);
		return NULL;
	}

	key = make_key(account);
	store = g_new0(CacheStore, 1);
	g_mutex_init(&store->ids_lock);
	g_mutex_init(&store->limit_lock);
	g_mutex_init(&store->lru_lock);
	g_mutex_init(&store->packs_lock);
	store->packs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					     (GDestroyNotify)cache_pack_unref);
	store->keys =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	store->lock_fd = -1;
	store->ids_fd = -1;
	/* g_build_filename() drops a trailing '/' of root. */
	store->dir = g_build_filename(root, key, NULL);
	store->folders_dir = g_strdup_printf("%s/folders", store->dir);
	store->tmp_dir = g_strdup_printf("%s/tmp", store->dir);
	store->ids_path = g_strdup_printf("%s/ids", store->dir);
	store->list_path = g_strdup_printf("%s/folders.list", store->dir);
	store->id_keys = g_ptr_array_new_with_free_func(id_key_free);
	store->ids = g_hash_table_new(id_key_hash, id_key_equal);

	if ((r = ensure_dir(store->dir)) < 0) {
		set_errno_error(error, r, "create", store->dir);
		goto fail;
	}
	if (!take_lock(store, error))
		goto fail;
	if ((r = ensure_dir(store->folders_dir)) < 0) {
		set_errno_error(error, r, "create", store->folders_dir);
		goto fail;
	}
	remove_stale_temps(store->folders_dir);
	if ((r = ensure_dir(store->tmp_dir)) < 0 ||
	    (r = clear_dir(store->tmp_dir)) < 0) {
		set_errno_error(error, r, "prepare", store->tmp_dir);
		goto fail;
	}
	if ((r = load_ids(store)) < 0) {
		set_errno_error(error, r, "load", store->ids_path);
		goto fail;
	}
	return store;

fail:
	cache_store_free(store);
	return NULL;
}

void cache_store_free(CacheStore *store)
{
	if (!store)
		return;
	g_mutex_lock(&store->ids_lock);
	if (store->lock_fd >= 0 && store->ids_saved < store->id_keys->len)
		persist_ids_locked(store);
	g_mutex_unlock(&store->ids_lock);
	if (store->ids_fd >= 0)
		close(store->ids_fd);
	/* Last: the flock goes with it. */
	if (store->lock_fd >= 0)
		close(store->lock_fd);
	g_hash_table_unref(store->ids);
	g_ptr_array_unref(store->id_keys);
	stop_tracking(store);
	g_hash_table_unref(store->packs);
	g_hash_table_unref(store->keys);
	g_mutex_clear(&store->packs_lock);
	g_mutex_clear(&store->ids_lock);
	g_mutex_clear(&store->limit_lock);
	g_mutex_clear(&store->lru_lock);
	g_free(store->dir);
	g_free(store->folders_dir);
	g_free(store->tmp_dir);
	g_free(store->ids_path);
	g_free(store->list_path);
	g_free(store);
}

const char *cache_store_dir(const CacheStore *store)
{
	return store->dir;
}

/* ---- bodies ---- */

int cache_store_open_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *fdir = NULL, *path = NULL;
	int fd;

	g_return_val_if_fail(store && folder, -EINVAL);
	if (uidvalidity == 0 || uid == 0)
		return -ENOENT; /* never cached */
	fdir = folder_dir(store, folder);
	path = g_strdup_printf("%s/%" G_GUINT32_FORMAT "/%" G_GUINT32_FORMAT,
			       fdir, uidvalidity, uid);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

static bool disk_full(int r)
{
	return r == -ENOSPC || r == -EDQUOT;
}

static bool evict_for_space(CacheStore *store, uint64_t want);

/* A segment of folder's pack was written or read: account its size (0:
 * keep it) and make it the most recent; make room under the bound. */
static void touch_segment(CacheStore *store, const char *folder,
			  const char *key, uint32_t uidvalidity,
			  uint32_t segment, uint64_t size)
{
	CacheLruKey k = { 0, uidvalidity, segment };
	uint32_t e;

	if (!g_atomic_int_get(&store->tracking))
		return;
	g_mutex_lock(&store->lru_lock);
	if (!store->lru)
		goto out;
	k.folder = folder_num_locked(store, folder, key) | LRU_PACK_BIT;
	e = cache_lru_find(store->lru, &k);
	if (e == CACHE_LRU_NONE && size == 0)
		goto out; /* evicted meanwhile */
	if (e == CACHE_LRU_NONE)
		e = cache_lru_insert(store->lru, &k, true);
	cache_lru_touch(store->lru, e);
	if (size) {
		cache_lru_set_size(store->lru, e, size);
		/* Pinned: the body just written must survive its own
		 * commit's eviction. */
		cache_lru_pin(store->lru, e);
		if (store->max_bytes &&
		    cache_lru_bytes(store->lru) > store->max_bytes)
			evict_locked(store, low_mark(store->max_bytes));
		cache_lru_unpin(store->lru, e);
	}
out:
	g_mutex_unlock(&store->lru_lock);
}

int cache_store_find_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, CacheBody *body)
{
	g_autofree char *key = NULL;
	CachePack *pack;
	struct stat st;
	uint32_t len, segment;
	int fd, r;

	g_return_val_if_fail(store && folder && body, -EINVAL);
	body->fd = -1;
	if (uidvalidity == 0 || uid == 0)
		return -ENOENT;
	/* The pack first: most bodies are small, and a miss there costs no
	 * system call. Either copy is right: bodies never change. */
	key = folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	r = cache_pack_find(pack, uid, &fd, &body->offset, &len, &segment);
	cache_pack_unref(pack);
	if (r == 0) {
		body->fd = fd;
		body->size = len;
		touch_segment(store, folder, key, uidvalidity, segment, 0);
		return 0;
	}
	fd = cache_store_open_body(store, folder, uidvalidity, uid);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	body->fd = fd;
	body->offset = 0;
	body->size = (uint64_t)st.st_size;
	cache_store_touch_body(store, folder, uidvalidity, uid);
	return 0;
}

int cache_store_read_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, size_t max,
			  GBytes **out)
{
	g_autofree char *key = NULL;
	CachePack *pack;
	struct stat st;
	uint32_t segment;
	int fd, r;

	g_return_val_if_fail(store && folder && out, -EINVAL);
	if (uidvalidity == 0 || uid == 0)
		return -ENOENT;
	key = folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	r = cache_pack_read(pack, uid, max, out, &segment);
	cache_pack_unref(pack);
	if (r == 0) {
		touch_segment(store, folder, key, uidvalidity, segment, 0);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	fd = cache_store_open_body(store, folder, uidvalidity, uid);
	if (fd < 0)
		return fd;
	r = read_fd(fd, max, out, &st);
	close(fd);
	if (r == 0)
		cache_store_touch_body(store, folder, uidvalidity, uid);
	return r;
}

int cache_store_put_body(CacheStore *store, const char *folder,
			 uint32_t uidvalidity, uint32_t uid, const void *data,
			 size_t len)
{
	g_autofree char *key = NULL;
	CachePack *pack;
	uint64_t size = 0;
	uint32_t segment = 0;
	int r;

	g_return_val_if_fail(store && folder && data, -EINVAL);
	if (uidvalidity == 0 || uid == 0 || len == 0 ||
	    len > CACHE_PACK_BODY_MAX)
		return -EINVAL;
	g_mutex_lock(&store->lru_lock);
	r = store->max_bytes && len + CACHE_PACK_RECORD_HEADER >
				    segment_max(store->max_bytes)
		? -ENOSPC /* would not fit in a segment under the bound */
		: 0;
	g_mutex_unlock(&store->lru_lock);
	if (r < 0)
		return r;
	key = folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	r = cache_pack_put(pack, uid, data, len, &segment, &size);
	if (disk_full(r) && evict_for_space(store, len + 4096))
		r = cache_pack_put(pack, uid, data, len, &segment, &size);
	cache_pack_unref(pack);
	if (disk_full(r))
		return -ENOSPC;
	if (r < 0)
		return r;
	touch_segment(store, folder, key, uidvalidity, segment, size);
	return 0;
}

static int memfd_open(void)
{
	int fd = memfd_create("imapfs-body", MFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* A write to memory failing with ENOSPC is not a full disk: keep -ENOSPC
 * for that meaning alone. */
static int memory_error(int r)
{
	return disk_full(r) ? -ENOMEM : r;
}

/* Copy the first len bytes of src to dst (at its offset). */
static int copy_fd(int src, int dst, uint64_t len)
{
	g_autofree char *buf = g_malloc(65536);
	uint64_t off = 0;

	while (off < len) {
		ssize_t n =
		    pread(src, buf, (size_t)MIN(len - off, 65536u), (off_t)off);
		int r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than we wrote */
		r = write_all(dst, buf, (size_t)n);
		if (r < 0)
			return memory_error(r);
		off += (uint64_t)n;
	}
	return 0;
}

int cache_body_in_memory(const void *data, size_t len)
{
	int fd = memfd_open(), r;

	if (fd < 0)
		return fd;
	r = write_all(fd, data, len);
	if (r < 0) {
		close(fd);
		return memory_error(r);
	}
	return fd;
}

/* The disk is full: move the body written so far into a memfd and remove
 * the temp file. w->fd must be readable (the temp fd, or a reopened one). */
static int writer_to_memory(CacheBodyWriter *w)
{
	int mfd = memfd_open(), r;

	if (mfd < 0)
		return mfd;
	r = copy_fd(w->fd, mfd, w->size);
	if (r < 0) {
		close(mfd);
		return r;
	}
	close(w->fd);
	w->fd = mfd;
	unlink(w->tmp_path);
	g_clear_pointer(&w->tmp_path, g_free);
	g_debug("cache: disk full, a body of %" G_GUINT64_FORMAT
		" bytes so far goes on in memory",
		w->size);
	return 0;
}

#define STALE_PREFIX ".tmp-"

/* Temp files that writers made next to their final names (see
 * cache_body_writer_new_at) and that a crash left behind. */
static void remove_stale_temps(const char *folders_dir)
{
	GDir *fdirs = g_dir_open(folders_dir, 0, NULL);
	const char *fname;

	if (!fdirs)
		return;
	while ((fname = g_dir_read_name(fdirs))) {
		g_autofree char *fpath =
		    g_build_filename(folders_dir, fname, NULL);
		GDir *uvdirs = g_dir_open(fpath, 0, NULL);
		const char *uvname;

		if (!uvdirs)
			continue;
		while ((uvname = g_dir_read_name(uvdirs))) {
			g_autofree char *uvpath =
			    g_build_filename(fpath, uvname, NULL);
			GDir *bodies = g_dir_open(uvpath, 0, NULL);
			const char *bname;

			if (!bodies)
				continue;
			while ((bname = g_dir_read_name(bodies))) {
				if (g_str_has_prefix(bname, STALE_PREFIX)) {
					g_autofree char *b = g_build_filename(
					    uvpath, bname, NULL);
					unlink(b);
				}
			}
			g_dir_close(bodies);
		}
		g_dir_close(uvdirs);
	}
	g_dir_close(fdirs);
}

CacheBodyWriter *cache_body_writer_new_at(CacheStore *store, const char *folder,
					  uint32_t uidvalidity, GError **error)
{
	g_autofree char *key = make_key(folder);
	g_autofree char *fdir =
	    g_strdup_printf("%s/%s", store->folders_dir, key);
	g_autofree char *uvdir =
	    g_strdup_printf("%s/%" G_GUINT32_FORMAT, fdir, uidvalidity);
	g_autofree char *tmpl =
	    g_strdup_printf("%s/" STALE_PREFIX "XXXXXX", uvdir);
	CacheBodyWriter *w;
	int fd;

	if (uidvalidity == 0)
		return cache_body_writer_new(store, error);
	fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* First body of this folder and UIDVALIDITY. The template
		 * was overwritten by the failed attempt: rebuild it. */
		g_free(tmpl);
		tmpl = g_strdup_printf("%s/" STALE_PREFIX "XXXXXX", uvdir);
		if (ensure_dir(fdir) == 0 && ensure_dir(uvdir) == 0)
			fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return cache_body_writer_new(store, error); /* full disk etc. */
	w = g_new0(CacheBodyWriter, 1);
	w->store = store;
	w->fd = fd;
	w->tmp_path = g_steal_pointer(&tmpl);
	w->evict_mark = UINT64_MAX;
	return w;
}

CacheBodyWriter *cache_body_writer_new(CacheStore *store, GError **error)
{
	CacheBodyWriter *w;
	char *path = NULL;
	int fd;

	g_return_val_if_fail(store, NULL);
	fd = make_temp(store, "body", &path);
	if (disk_full(fd) && evict_for_space(store, 0))
		fd = make_temp(store, "body", &path);
	if (disk_full(fd)) {
		fd = memfd_open();
		if (fd < 0) {
			set_errno_error(error, fd, "keep a body in", "memory");
			return NULL;
		}
	} else if (fd < 0) {
		set_errno_error(error, fd, "create a temp file in",
				store->tmp_dir);
		return NULL;
	}
	w = g_new0(CacheBodyWriter, 1);
	w->store = store;
	w->fd = fd;
	w->tmp_path = path;
	w->evict_mark = UINT64_MAX;
	return w;
}

int cache_body_writer_write(CacheBodyWriter *w, const void *buf, size_t len)
{
	const char *p = buf;

	g_return_val_if_fail(w, -EINVAL);
	if (w->error)
		return w->error;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			w->size += (uint64_t)n;
			continue;
		}
		r = n < 0 ? -errno : -EIO;
		if (r == -EINTR)
			continue;
		if (!w->tmp_path || !disk_full(r)) {
			w->error = w->tmp_path ? r : memory_error(r);
			return w->error;
		}
		/* Evict again only once the last eviction let us go on. */
		if (w->evict_mark != w->size) {
			w->evict_mark = w->size;
			if (evict_for_space(w->store, len))
				continue;
		}
		r = writer_to_memory(w);
		if (r < 0) {
			w->error = r;
			return r;
		}
	}
	return 0;
}

uint64_t cache_body_writer_size(const CacheBodyWriter *w)
{
	return w->size;
}

static void writer_free(CacheBodyWriter *w)
{
	if (w->fd >= 0)
		close(w->fd);
	g_free(w->tmp_path);
	g_free(w);
}

/* Closed temp file, full disk at rename: reopen it to move it to memory. */
static int rename_failed_to_memory(CacheBodyWriter *w)
{
	w->fd = open(w->tmp_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (w->fd < 0)
		return -errno;
	return writer_to_memory(w);
}

int cache_body_writer_commit_fd(CacheBodyWriter *w, const char *folder,
				uint32_t uidvalidity, uint32_t uid,
				int *uncached_fd)
{
	g_autofree char *key = NULL, *fdir = NULL, *uvdir = NULL;
	g_autofree char *final = NULL;
	CacheStore *store;
	bool reserved = false;
	int r;

	g_return_val_if_fail(w && uncached_fd, -EINVAL);
	*uncached_fd = -1;
	store = w->store;
	r = w->error;
	if (r == 0 && (!folder || uidvalidity == 0 || uid == 0))
		r = -EINVAL;
	if (r == 0 && !w->tmp_path)
		r = -ENOSPC; /* in memory since the disk filled */
	if (r == 0) {
		key = make_key(folder);
		fdir = g_strdup_printf("%s/%s", store->folders_dir, key);
		uvdir =
		    g_strdup_printf("%s/%" G_GUINT32_FORMAT, fdir, uidvalidity);
		final = g_strdup_printf("%s/%" G_GUINT32_FORMAT, uvdir, uid);
		r = reserve_body(store, folder, key, uidvalidity, uid, w->size,
				 &reserved);
		if (r == -EFBIG) {
			/* Never fits: serve it from the temp file itself. */
			unlink(w->tmp_path);
			g_clear_pointer(&w->tmp_path, g_free);
			r = -ENOSPC;
		}
	}
	if (r == 0) {
		r = close_checked(w->fd);
		w->fd = -1;
		if (disk_full(r))
			r = -EIO; /* the bytes may not be on disk: not servable
				   */
	}
	if (r == 0) {
		/* An existing final file has the same bytes: replace it. */
		r = rename_into(w->tmp_path, final, fdir, uvdir);
		if (disk_full(r) && evict_for_space(store, 0))
			r = rename_into(w->tmp_path, final, fdir, uvdir);
		if (disk_full(r)) {
			r = rename_failed_to_memory(w);
			if (r == 0)
				r = -ENOSPC;
		}
	}
	if (key)
		finish_body(store, folder, key, uidvalidity, uid, w->size,
			    reserved, r == 0, final);
	if (r == -ENOSPC) {
		if (w->fd >= 0 && lseek(w->fd, 0, SEEK_SET) == 0) {
			*uncached_fd = w->fd;
			w->fd = -1;
		} else {
			r = -EIO; /* -ENOSPC promises an fd */
		}
	}
	if (r < 0 && w->tmp_path)
		unlink(w->tmp_path);
	writer_free(w);
	return r;
}

int cache_body_writer_commit(CacheBodyWriter *w, const char *folder,
			     uint32_t uidvalidity, uint32_t uid)
{
	int fd = -1;
	int r = cache_body_writer_commit_fd(w, folder, uidvalidity, uid, &fd);

	if (fd >= 0)
		close(fd);
	return r;
}

void cache_body_writer_abort(CacheBodyWriter *w)
{
	if (!w)
		return;
	if (w->tmp_path)
		unlink(w->tmp_path);
	writer_free(w);
}

/* ---- folders ---- */

static bool parse_uidvalidity(const char *name, uint32_t *uv)
{
	guint64 v;

	if (!g_ascii_isdigit(name[0]) ||
	    !g_ascii_string_to_unsigned(name, 10, 1, UINT32_MAX, &v, NULL))
		return false;
	*uv = (uint32_t)v;
	return true;
}

int cache_store_drop_folder(CacheStore *store, const char *folder,
			    uint32_t keep_uidvalidity)
{
	g_autoptr(GPtrArray) names = NULL;
	g_autoptr(GBytes) bytes = NULL;
	g_autofree char *key = NULL, *fdir = NULL, *ipath = NULL;
	struct stat st;
	int fd, r, rr;

	g_return_val_if_fail(store && folder, -EINVAL);
	key = make_key(folder);
	if (keep_uidvalidity == 0) {
		fd = open(store->folders_dir,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		r = remove_tree_at(fd, key, TREE_DEPTH - 1);
		close(fd);
		/* After a failure some bodies may be left: keep them counted
		 * (an entry whose file is gone only leaves at eviction). */
		if (r == 0)
			forget_folder(store, folder, key, 0);
		return r;
	}

	fdir = g_strdup_printf("%s/%s", store->folders_dir, key);
	fd = open(fdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		forget_folder(store, folder, key, keep_uidvalidity);
		return 0;
	}
	r = list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++) {
		const char *name = g_ptr_array_index(names, i);
		uint32_t uv;

		if (parse_uidvalidity(name, &uv) && uv != keep_uidvalidity)
			r = remove_tree_at(fd, name, TREE_DEPTH - 2);
	}
	if (r == 0)
		forget_folder(store, folder, key, keep_uidvalidity);

	ipath = g_strdup_printf("%s/index", fdir);
	rr = read_file(ipath, &bytes, &st);
	if (rr != -ENOENT) {
		g_autoptr(GError) err = NULL;
		CacheFolderIndex *index = NULL;

		if (rr == 0)
			index = cache_folder_index_decode(
			    g_bytes_get_data(bytes, NULL),
			    g_bytes_get_size(bytes), &err);
		if (!index || index->uidvalidity != keep_uidvalidity) {
			if (unlinkat(fd, "index", 0) < 0 && errno != ENOENT &&
			    r == 0)
				r = -errno;
		}
		cache_folder_index_free(index);
	}
	close(fd);
	return r;
}

int cache_store_save_index(CacheStore *store, const char *folder,
			   const CacheFolderIndex *index)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autofree char *fdir = NULL, *path = NULL;

	g_return_val_if_fail(store && folder && index, -EINVAL);
	bytes = cache_folder_index_encode(index);
	if (!bytes)
		return -EINVAL;
	fdir = folder_dir(store, folder);
	path = g_strdup_printf("%s/index", fdir);
	return write_file_atomic(store, "index", g_bytes_get_data(bytes, NULL),
				 g_bytes_get_size(bytes), path, fdir);
}

CacheFolderIndex *cache_store_load_index(CacheStore *store, const char *folder)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) err = NULL;
	g_autofree char *fdir = NULL, *path = NULL;
	CacheFolderIndex *index;
	struct stat st;

	g_return_val_if_fail(store && folder, NULL);
	fdir = folder_dir(store, folder);
	path = g_strdup_printf("%s/index", fdir);
	if (read_file(path, &bytes, &st) < 0)
		return NULL;
	index = cache_folder_index_decode(g_bytes_get_data(bytes, NULL),
					  g_bytes_get_size(bytes), &err);
	if (!index)
		discard_file(path, &st, err->message);
	return index;
}

int cache_store_save_folders(CacheStore *store, GPtrArray *folders)
{
	g_autoptr(GBytes) bytes = NULL;

	g_return_val_if_fail(store, -EINVAL);
	bytes = cache_folder_list_encode(folders);
	if (!bytes)
		return -EINVAL;
	return write_file_atomic(store, "list", g_bytes_get_data(bytes, NULL),
				 g_bytes_get_size(bytes), store->list_path,
				 NULL);
}

GPtrArray *cache_store_load_folders(CacheStore *store)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) err = NULL;
	GPtrArray *folders;
	struct stat st;

	g_return_val_if_fail(store, NULL);
	if (read_file(store->list_path, &bytes, &st) < 0)
		return NULL;
	folders = cache_folder_list_decode(g_bytes_get_data(bytes, NULL),
					   g_bytes_get_size(bytes), &err);
	if (!folders)
		discard_file(store->list_path, &st, err->message);
	return folders;
}
