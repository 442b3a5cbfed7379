/* cache/store.c: the on-disk cache of one account: keys and paths, open
 * and close, finding and storing bodies (in files of their own or in the
 * packs of small bodies), dropping a folder, and the folder index and list.
 * The other jobs live in store-file.c, store-ids.c, store-limit.c and
 * store-writer.c; store-private.h holds what they share and the lock order
 * of cache/.
 *
 * Ownership: a CacheStore owns its paths, the lock fd (an exclusive flock()
 * held for its whole life, so two daemons never share a cache directory),
 * the folder-id table and the append fd of the ids file (store-ids.c), the
 * body LRU while a bound is set (store-limit.c), the open packs and the memo
 * of folder keys.
 *
 * Locking: packs_lock guards the table of packs and packs_gen; keys_lock the
 * memo of folder keys. Everything else here is immutable after open; file
 * operations rely on O_EXCL and on the atomicity of rename() instead of
 * locks. cache_store_drop_folder() renames what goes aside into tmp/ (the
 * decision), forgets it, and only then deletes it, holding no lock.
 *
 * Invariants: a final name (body, index, folders.list, ids) only appears
 * through rename() of a complete temp file, or (ids) by appending whole
 * records. At most one live CachePack exists per pack directory: the table
 * holds it, and a pack forgotten with its directory is retired first, so
 * a reference still held elsewhere can no longer create segments. A folder
 * key is computed once per folder (store_folder_key()) and passed down.
 */
#include "cache/store-private.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define KEY_HASH_CHARS 16
#define KEY_NAME_CHARS 40
#define KEY_MAX_LEN (KEY_HASH_CHARS + 1 + KEY_NAME_CHARS)

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

char *store_folder_key(CacheStore *store, const char *folder)
{
	char *key;

	g_mutex_lock(&store->keys_lock);
	key = g_hash_table_lookup(store->keys, folder);
	if (!key) {
		key = make_key(folder);
		g_hash_table_insert(store->keys, g_strdup(folder), key);
	}
	key = g_strdup(key);
	g_mutex_unlock(&store->keys_lock);
	return key;
}

/* ---- packs of small bodies (cache/pack.h), under packs_lock ---- */

static char *pack_name(const char *key, uint32_t uidvalidity)
{
	return g_strdup_printf("%s/%" G_GUINT32_FORMAT, key, uidvalidity);
}

/* The size of a pack segment, the unit of eviction: with a bound, a small
 * part of it. */
uint64_t store_segment_max(uint64_t bound)
{
	return bound ? MIN(CACHE_PACK_SEGMENT_MAX, bound / 16)
		     : CACHE_PACK_SEGMENT_MAX;
}

/* A reference to the pack of (key, uidvalidity), opened on first use. */
static CachePack *get_pack(CacheStore *store, const char *key,
			   uint32_t uidvalidity)
{
	g_autofree char *name = pack_name(key, uidvalidity);
	g_autofree char *dir =
	    g_strdup_printf("%s/%s", store->folders_dir, name);
	CachePack *pack = NULL, *opened;
	guint gen;

	for (;;) {
		g_mutex_lock(&store->packs_lock);
		pack = g_hash_table_lookup(store->packs, name);
		if (pack)
			cache_pack_ref(pack);
		gen = store->packs_gen;
		g_mutex_unlock(&store->packs_lock);
		if (pack)
			return pack;
		/* The scan runs without the lock; a racing opener's pack
		 * wins. A drop meanwhile may have removed what was scanned:
		 * then scan again. */
		opened =
		    cache_pack_open(dir, store_segment_max(store_bound(store)));
		g_mutex_lock(&store->packs_lock);
		if (store->packs_gen == gen) {
			pack = g_hash_table_lookup(store->packs, name);
			if (!pack) {
				pack = g_steal_pointer(&opened);
				g_hash_table_insert(store->packs,
						    g_strdup(name), pack);
			}
			cache_pack_ref(pack);
		}
		g_mutex_unlock(&store->packs_lock);
		cache_pack_unref(opened);
		if (pack)
			return pack;
	}
}

/* Eviction of a segment (under lru_lock; packs_lock nests inside it). */
void store_drop_pack_segment(CacheStore *store, const char *key,
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
 * directories were moved aside. Each is retired, so that a reference still
 * held by a put under way cannot add a segment to the directory of the
 * pack that replaces it. */
static void forget_packs(CacheStore *store, const char *key,
			 uint32_t keep_uidvalidity)
{
	g_autofree char *prefix = g_strdup_printf("%s/", key);
	GHashTableIter it;
	gpointer k, v;

	g_mutex_lock(&store->packs_lock);
	store->packs_gen++;
	g_hash_table_iter_init(&it, store->packs);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		guint64 uv;

		if (!g_str_has_prefix(k, prefix) ||
		    !g_ascii_string_to_unsigned((const char *)k +
						    strlen(prefix),
						10, 0, UINT32_MAX, &uv, NULL))
			continue;
		if (keep_uidvalidity == 0 || uv != keep_uidvalidity) {
			cache_pack_retire(v);
			g_hash_table_iter_remove(&it);
		}
	}
	g_mutex_unlock(&store->packs_lock);
}

/* ---- open and close ---- */

bool store_set_errno_error(GError **error, int r, const char *what,
			   const char *path)
{
	g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-r),
		    "cache: cannot %s %s: %s", what, path, g_strerror(-r));
	return false;
}

/* The pid in the lock file (cache_store_note_owner()), or 0. */
static long lock_owner(int fd)
{
	char buf[24] = { 0 };
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	return n > 0 ? strtol(buf, NULL, 10) : 0;
}

void cache_store_note_owner(CacheStore *store)
{
	char buf[24];
	int n = g_snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(store->lock_fd, 0) < 0 ||
	    pwrite(store->lock_fd, buf, (size_t)n, 0) != n)
		g_debug("cannot note the owner in the cache lock: %s",
			g_strerror(errno));
}

static bool take_lock(CacheStore *store, GError **error)
{
	g_autofree char *path = g_strdup_printf("%s/lock", store->dir);
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return store_set_errno_error(error, -errno, "open", path);
	store->lock_fd = fd;
	if (fchmod(fd, 0600) < 0)
		return store_set_errno_error(error, -errno, "chmod", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		long pid = errno == EWOULDBLOCK ? lock_owner(fd) : 0;

		if (errno == EWOULDBLOCK && pid > 0) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN,
				    "cache directory %s is in use by another "
				    "imapfs process (pid %ld)",
				    store->dir, pid);
			return false;
		}
		if (errno == EWOULDBLOCK) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN,
				    "cache directory %s is in use by another "
				    "imapfs process",
				    store->dir);
			return false;
		}
		return store_set_errno_error(error, -errno, "lock", path);
	}
	cache_store_note_owner(store);
	return true;
}

static CacheStore *store_new(const char *root, const char *account)
{
	g_autofree char *key = make_key(account);
	CacheStore *store = g_new0(CacheStore, 1);

	store_ids_init(store);
	g_mutex_init(&store->limit_lock);
	g_mutex_init(&store->lru_lock);
	g_mutex_init(&store->packs_lock);
	g_mutex_init(&store->keys_lock);
	store->packs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					     (GDestroyNotify)cache_pack_unref);
	store->keys =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	store->lock_fd = -1;
	/* g_build_filename() drops a trailing '/' of root. */
	store->dir = g_build_filename(root, key, NULL);
	store->folders_dir = g_strdup_printf("%s/folders", store->dir);
	store->tmp_dir = g_strdup_printf("%s/tmp", store->dir);
	store->ids_path = g_strdup_printf("%s/ids", store->dir);
	store->list_path = g_strdup_printf("%s/folders.list", store->dir);
	return store;
}

CacheStore *cache_store_open(const char *root, const char *account,
			     GError **error)
{
	CacheStore *store;
	bool root_existed;
	int r;

	g_return_val_if_fail(root && account, NULL);
	if (!*root) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "cache: empty cache directory name");
		return NULL;
	}
	root_existed = g_file_test(root, G_FILE_TEST_EXISTS);
	r = store_make_root(root);
	if (r < 0) {
		store_set_errno_error(error, r, "create", root);
		return NULL;
	}

	store = store_new(root, account);
	if (!root_existed)
		store->root_made = g_strdup(root);
	store->created = !g_file_test(store->dir, G_FILE_TEST_EXISTS);
	if ((r = store_ensure_dir(store->dir)) < 0) {
		store_set_errno_error(error, r, "create", store->dir);
		goto fail;
	}
	if (!take_lock(store, error))
		goto fail;
	if ((r = store_ensure_dir(store->folders_dir)) < 0) {
		store_set_errno_error(error, r, "create", store->folders_dir);
		goto fail;
	}
	store_remove_stale_temps(store->folders_dir);
	if ((r = store_ensure_dir(store->tmp_dir)) < 0 ||
	    (r = store_clear_dir(store->tmp_dir)) < 0) {
		store_set_errno_error(error, r, "prepare", store->tmp_dir);
		goto fail;
	}
	if ((r = store_ids_load(store)) < 0) {
		store_set_errno_error(error, r, "load", store->ids_path);
		goto fail;
	}
	return store;

fail:
	cache_store_free_new(store);
	return NULL;
}

void cache_store_free_new(CacheStore *store)
{
	g_autofree char *dir = NULL;
	g_autofree char *root = NULL;
	g_autofree char *lock = NULL;
	int fd;

	if (!store)
		return;
	if (store->created)
		dir = g_strdup(store->dir);
	root = g_steal_pointer(&store->root_made);
	cache_store_free(store);
	if (!dir)
		return;
	/* Only while nobody else has opened it meanwhile: take its lock. */
	lock = g_build_filename(dir, "lock", NULL);
	fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return;
	}
	store_remove_tree_at(AT_FDCWD, dir, TREE_DEPTH + 2);
	if (fd >= 0)
		close(fd);
	if (root)
		rmdir(root); /* only when empty */
}

void cache_store_free(CacheStore *store)
{
	if (!store)
		return;
	store_ids_close(store);
	/* After the ids are saved: the flock goes with it. */
	if (store->lock_fd >= 0)
		close(store->lock_fd);
	store_stop_tracking(store);
	g_hash_table_unref(store->packs);
	g_hash_table_unref(store->keys);
	g_mutex_clear(&store->packs_lock);
	g_mutex_clear(&store->keys_lock);
	g_mutex_clear(&store->limit_lock);
	g_mutex_clear(&store->lru_lock);
	g_free(store->dir);
	g_free(store->root_made);
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

char *store_body_path(CacheStore *store, const char *key, uint32_t uidvalidity,
		      uint32_t uid)
{
	return g_strdup_printf("%s/%s/%" G_GUINT32_FORMAT "/%" G_GUINT32_FORMAT,
			       store->folders_dir, key, uidvalidity, uid);
}

/* The body file of (key, uidvalidity, uid), read-only: an fd or -errno. */
static int open_body_at(CacheStore *store, const char *key,
			uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *path = store_body_path(store, key, uidvalidity, uid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	return fd < 0 ? -errno : fd;
}

int cache_store_open_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *key = NULL;

	g_return_val_if_fail(store && folder, -EINVAL);
	if (uidvalidity == 0 || uid == 0)
		return -ENOENT; /* never cached */
	key = store_folder_key(store, folder);
	return open_body_at(store, key, uidvalidity, uid);
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
	key = store_folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	r = cache_pack_find(pack, uid, &fd, &body->offset, &len, &segment);
	cache_pack_unref(pack);
	if (r == 0) {
		body->fd = fd;
		body->size = len;
		store_touch_segment(store, folder, key, uidvalidity, segment,
				    0);
		return 0;
	}
	fd = open_body_at(store, key, uidvalidity, uid);
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
	store_touch_body(store, folder, key, uidvalidity, uid);
	return 0;
}

bool cache_store_has_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *key = NULL;
	g_autofree char *path = NULL;
	CachePack *pack;
	struct stat st;
	bool has;

	g_return_val_if_fail(store && folder, false);
	if (uidvalidity == 0 || uid == 0)
		return false;
	key = store_folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	has = cache_pack_has(pack, uid);
	cache_pack_unref(pack);
	if (has)
		return true;
	path = store_body_path(store, key, uidvalidity, uid);
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
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
	key = store_folder_key(store, folder);
	pack = get_pack(store, key, uidvalidity);
	r = cache_pack_read(pack, uid, max, out, &segment);
	cache_pack_unref(pack);
	if (r == 0) {
		store_touch_segment(store, folder, key, uidvalidity, segment,
				    0);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	fd = open_body_at(store, key, uidvalidity, uid);
	if (fd < 0)
		return fd;
	r = store_read_fd(fd, max, out, &st);
	close(fd);
	if (r == 0)
		store_touch_body(store, folder, key, uidvalidity, uid);
	return r;
}

/* Append to the pack of (key, uidvalidity); a pack retired by a drop
 * meanwhile is replaced by the new one. */
static int pack_put(CacheStore *store, const char *key, uint32_t uidvalidity,
		    uint32_t uid, const void *data, size_t len,
		    uint32_t *segment, uint64_t *size)
{
	int r;

	do {
		CachePack *pack = get_pack(store, key, uidvalidity);

		r = cache_pack_put(pack, uid, data, len, segment, size);
		cache_pack_unref(pack);
	} while (r == -ESTALE);
	return r;
}

int cache_store_put_body(CacheStore *store, const char *folder,
			 uint32_t uidvalidity, uint32_t uid, const void *data,
			 size_t len)
{
	g_autofree char *key = NULL;
	uint64_t size = 0, bound;
	uint32_t segment = 0;
	int r;

	g_return_val_if_fail(store && folder && data, -EINVAL);
	if (uidvalidity == 0 || uid == 0 || len == 0 ||
	    len > CACHE_PACK_BODY_MAX)
		return -EINVAL;
	/* A body that would not fit in a segment under the bound. */
	bound = store_bound(store);
	if (bound && len + CACHE_PACK_RECORD_HEADER > store_segment_max(bound))
		return -ENOSPC;
	key = store_folder_key(store, folder);
	r = pack_put(store, key, uidvalidity, uid, data, len, &segment, &size);
	if (store_disk_full(r) && store_evict_for_space(store, len + 4096))
		r = pack_put(store, key, uidvalidity, uid, data, len, &segment,
			     &size);
	if (store_disk_full(r))
		return -ENOSPC;
	if (r < 0)
		return r;
	store_touch_segment(store, folder, key, uidvalidity, segment, size);
	return 0;
}

int cache_store_prepare_pack(CacheStore *store, const char *folder,
			     uint32_t uidvalidity)
{
	g_autofree char *key = NULL;
	CachePack *pack;
	int r;

	g_return_val_if_fail(store && folder, -EINVAL);
	if (uidvalidity == 0)
		return -EINVAL;
	key = store_folder_key(store, folder);
	do {
		pack = get_pack(store, key, uidvalidity);
		r = cache_pack_prepare(pack);
		cache_pack_unref(pack);
	} while (r == -ESTALE);
	return r;
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

/* Move name under dirfd aside into tmp/, where the next open would clear
 * it; *trash is its path there. 0, -ENOENT when name is gone, or another
 * -errno (nothing moved). */
static int move_aside(CacheStore *store, int dirfd, const char *name,
		      char **trash)
{
	char *path = g_strdup_printf("%s/drop-XXXXXX", store->tmp_dir);
	int r;

	/* An empty directory of a fresh name, which rename() replaces. */
	if (!g_mkdtemp_full(path, 0700)) {
		r = -errno;
		g_free(path);
		return r;
	}
	if (renameat(dirfd, name, AT_FDCWD, path) < 0) {
		r = -errno;
		rmdir(path);
		g_free(path);
		return r;
	}
	*trash = path;
	return 0;
}

/* Remove name under dirfd, depth levels deep: moved aside first, so that
 * it leaves its place at once, then deleted. *trash collects what is to be
 * deleted once the caller has forgotten it. */
static int remove_aside(CacheStore *store, int dirfd, const char *name,
			int depth, GPtrArray *trash)
{
	char *moved = NULL;
	int r = move_aside(store, dirfd, name, &moved);

	if (r == -ENOENT)
		return 0;
	if (r < 0) /* tmp/ unusable: delete in place, as a last resort */
		return store_remove_tree_at(dirfd, name, depth);
	g_ptr_array_add(trash, moved);
	return 0;
}

/* Delete what remove_aside() moved aside, no lock held. */
static int empty_trash(GPtrArray *trash, int depth)
{
	int r = 0;

	for (guint i = 0; i < trash->len; i++) {
		int rr = store_remove_tree_at(
		    AT_FDCWD, g_ptr_array_index(trash, i), depth);

		if (r == 0)
			r = rr;
	}
	return r;
}

/* The index of folder (in the directory fd) goes unless it has the
 * UIDVALIDITY keep: only its header is read for that. */
static int drop_index(const char *fdir, int fd, uint32_t keep_uidvalidity)
{
	g_autoptr(GBytes) head = NULL;
	g_autofree char *ipath = g_strdup_printf("%s/index", fdir);
	struct stat st;
	uint32_t uv = 0;
	int r;

	r = store_read_head(ipath, CACHE_FOLDER_INDEX_PEEK_LEN, &head, &st);
	if (r == -ENOENT)
		return 0;
	if (r == 0 &&
	    cache_folder_index_peek(g_bytes_get_data(head, NULL),
				    g_bytes_get_size(head), &uv) &&
	    uv == keep_uidvalidity)
		return 0;
	if (unlinkat(fd, "index", 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int drop_all(CacheStore *store, const char *folder, const char *key)
{
	g_autoptr(GPtrArray) trash = g_ptr_array_new_with_free_func(g_free);
	int fd, r, rr;

	fd = open(store->folders_dir,
		  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = remove_aside(store, fd, key, TREE_DEPTH - 1, trash);
	close(fd);
	/* After a failure some bodies may be left: keep them counted (an
	 * entry whose file is gone only leaves at eviction). */
	if (r == 0) {
		store_forget_bodies(store, folder, key, 0);
		forget_packs(store, key, 0);
	}
	rr = empty_trash(trash, TREE_DEPTH - 1);
	return r < 0 ? r : rr;
}

int cache_store_drop_folder(CacheStore *store, const char *folder,
			    uint32_t keep_uidvalidity)
{
	g_autoptr(GPtrArray) names = NULL;
	g_autoptr(GPtrArray) trash = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *key = NULL, *fdir = NULL;
	int fd, r, rr;

	g_return_val_if_fail(store && folder, -EINVAL);
	key = store_folder_key(store, folder);
	if (keep_uidvalidity == 0)
		return drop_all(store, folder, key);

	fdir = g_strdup_printf("%s/%s", store->folders_dir, key);
	fd = open(fdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		store_forget_bodies(store, folder, key, keep_uidvalidity);
		forget_packs(store, key, keep_uidvalidity);
		return 0;
	}
	r = store_list_dir(fd, &names);
	for (guint i = 0; r == 0 && i < names->len; i++) {
		const char *name = g_ptr_array_index(names, i);
		uint32_t uv;

		if (parse_uidvalidity(name, &uv) && uv != keep_uidvalidity)
			r = remove_aside(store, fd, name, TREE_DEPTH - 2,
					 trash);
	}
	if (r == 0) {
		store_forget_bodies(store, folder, key, keep_uidvalidity);
		forget_packs(store, key, keep_uidvalidity);
	}
	rr = empty_trash(trash, TREE_DEPTH - 2);
	if (r == 0)
		r = rr;
	rr = drop_index(fdir, fd, keep_uidvalidity);
	if (r == 0)
		r = rr;
	close(fd);
	return r;
}

/* ---- index and folder list ---- */

typedef struct {
	const CacheFolderIndex *index;
	const char *tmp_dir;
} IndexWrite;

static int write_index(int fd, const void *data)
{
	const IndexWrite *w = data;

	return cache_folder_index_write_fd(w->index, fd, w->tmp_dir);
}

int cache_store_save_index(CacheStore *store, const char *folder,
			   const CacheFolderIndex *index)
{
	g_autofree char *key = NULL, *fdir = NULL, *path = NULL;
	IndexWrite w = { index, store ? store->tmp_dir : NULL };

	g_return_val_if_fail(store && folder && index, -EINVAL);
	key = store_folder_key(store, folder);
	fdir = g_strdup_printf("%s/%s", store->folders_dir, key);
	path = g_strdup_printf("%s/index", fdir);
	/* Streamed to the file: a large listing is never encoded in the
	 * heap. */
	return store_write_file_atomic_fn(store, "index", write_index, &w, path,
					  fdir);
}

CacheFolderIndex *cache_store_load_index(CacheStore *store, const char *folder)
{
	g_autoptr(GError) err = NULL;
	g_autofree char *key = NULL, *path = NULL;
	CacheFolderIndex *index;
	struct stat st;
	int fd;

	g_return_val_if_fail(store && folder, NULL);
	key = store_folder_key(store, folder);
	path = g_strdup_printf("%s/%s/index", store->folders_dir, key);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	/* Mapped, not read: the listing stays in the page cache. Index files
	 * are only ever replaced by rename, never changed in place. */
	index = cache_folder_index_map_fd(fd, &err);
	if (!index && fstat(fd, &st) == 0)
		store_discard_file(path, &st, err->message);
	close(fd);
	return index;
}

const char *cache_store_tmp_dir(CacheStore *store)
{
	return store->tmp_dir;
}

int cache_store_save_folders(CacheStore *store, GPtrArray *folders)
{
	g_autoptr(GBytes) bytes = NULL;

	g_return_val_if_fail(store, -EINVAL);
	bytes = cache_folder_list_encode(folders);
	if (!bytes)
		return -EINVAL;
	return store_write_file_atomic(
	    store, "list", g_bytes_get_data(bytes, NULL),
	    g_bytes_get_size(bytes), store->list_path, NULL);
}

GPtrArray *cache_store_load_folders(CacheStore *store)
{
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GError) err = NULL;
	GPtrArray *folders;
	struct stat st;

	g_return_val_if_fail(store, NULL);
	if (store_read_file(store->list_path, &bytes, &st) < 0)
		return NULL;
	folders = cache_folder_list_decode(g_bytes_get_data(bytes, NULL),
					   g_bytes_get_size(bytes), &err);
	if (!folders)
		store_discard_file(store->list_path, &st, err->message);
	return folders;
}
