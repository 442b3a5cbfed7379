/* cache/store-limit.c: the size bound of the cache store: the LRU order of
 * bodies (cache/lru.h), the scan of what is on disk when a bound is set,
 * and eviction.
 *
 * Ownership: while a bound is set the store owns the LRU and its table of
 * folder keys (fkeys, fnum_by_key, fnum_by_name); this file alone touches
 * them. An LRU entry is a body file (folder number, UIDVALIDITY, UID) or a
 * pack segment (folder number | LRU_PACK_BIT, UIDVALIDITY, segment).
 *
 * Locking: lru_lock guards the LRU, the folder-key table and max_bytes; the
 * only file operation under it is unlink() of evicted bodies and segments
 * (packs_lock and a pack's lock nest inside it for the latter). limit_lock
 * serialises cache_store_set_limit(), whose directory scan runs without
 * lru_lock (commits made meanwhile are tracked and kept as most recent).
 *
 * Invariants: while lru is set, every body on disk has an entry (a body
 * being committed has one, pinned, from before its rename), so the tracked
 * bytes never undercount; an entry whose file vanished is dropped when it
 * is evicted.
 */
#include "cache/store-private.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ---- state, under lru_lock ---- */

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
void store_stop_tracking(CacheStore *store)
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

/* The number of a raw folder name; key is its folder key when the caller
 * has it (NULL: looked up). Names are remembered, so a known folder costs
 * one hash lookup. */
static uint32_t folder_num_locked(CacheStore *store, const char *folder,
				  const char *key)
{
	gpointer v = g_hash_table_lookup(store->fnum_by_name, folder);
	g_autofree char *made = NULL;
	uint32_t num;

	if (v)
		return GPOINTER_TO_UINT(v) - 1;
	if (!key)
		key = made = store_folder_key(store, folder);
	num = key_num_locked(store, key);
	g_hash_table_insert(store->fnum_by_name, g_strdup(folder),
			    GUINT_TO_POINTER(num + 1));
	return num;
}

/* An evicted entry's file goes. Readers holding it open keep reading it;
 * a file that is already gone only leaves the accounting. */
static void evict_one(const CacheLruKey *k, uint64_t size, void *data)
{
	CacheStore *store = data;
	g_autofree char *path = NULL;

	if (k->folder & LRU_PACK_BIT) {
		store_drop_pack_segment(
		    store,
		    g_ptr_array_index(store->fkeys, k->folder & ~LRU_PACK_BIT),
		    k->uidvalidity, k->uid);
		return;
	}
	path =
	    store_body_path(store, g_ptr_array_index(store->fkeys, k->folder),
			    k->uidvalidity, k->uid);
	if (unlink(path) < 0 && errno != ENOENT)
		g_debug("cache: cannot evict %s: %s", path, g_strerror(errno));
}

/* Remove the least recently used unpinned bodies until at most target bytes
 * are tracked. Returns the bytes that left the accounting. */
static uint64_t evict_locked(CacheStore *store, uint64_t target)
{
	return cache_lru_evict(store->lru, target, evict_one, store);
}

/* The disk is full: evict at least want bytes (and a tenth of the cache)
 * if a bound is set. True when something was evicted. */
bool store_evict_for_space(CacheStore *store, uint64_t want)
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
int store_reserve_body(CacheStore *store, const char *folder, const char *key,
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
		evict_locked(store, cache_lru_low_mark(store->max_bytes));
out:
	g_mutex_unlock(&store->lru_lock);
	return r;
}

/* The commit of a body is over: stored under final, or not. */
void store_finish_body(CacheStore *store, const char *folder, const char *key,
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

/* ---- scanning what is on disk ---- */

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

static int collect_body(int dirfd, const struct dirent *de, void *data)
{
	BodyName b = { de->d_ino, 0, false };

	if ((de->d_type == DT_REG || de->d_type == DT_UNKNOWN) &&
	    (parse_body_name(de->d_name, &b.uid) ||
	     (b.pack = cache_pack_parse_name(de->d_name, &b.uid))))
		g_array_append_val((GArray *)data, b);
	return 0;
}

/* The bodies of one UIDVALIDITY directory fd, stat()ed in inode order: on
 * a cold cache this reads the inode table in order rather than at random
 * (several times faster on ext4). */
static int scan_bodies_in(Scan *scan, int fd)
{
	g_autoptr(GArray) names = g_array_new(FALSE, FALSE, sizeof(BodyName));
	int r = store_walk_dir(fd, collect_body, names);

	g_array_sort(names, body_name_cmp);
	for (guint i = 0; r == 0 && i < names->len; i++) {
		const BodyName *b = &g_array_index(names, BodyName, i);
		char name[32];
		ScanItem it;
		struct stat st;

		g_snprintf(name, sizeof(name), "%s%" G_GUINT32_FORMAT,
			   b->pack ? CACHE_PACK_PREFIX : "", b->uid);
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
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
	return r;
}

static int scan_uidvalidity(int dirfd, const struct dirent *de, void *data)
{
	Scan *scan = data;
	int fd, r;

	if ((de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
	    !parse_body_name(de->d_name, &scan->uidvalidity))
		return 0;
	r = store_open_subdir(dirfd, de->d_name, &fd);
	if (r < 0 || fd < 0)
		return r;
	r = scan_bodies_in(scan, fd);
	close(fd);
	return r;
}

static int scan_folder(int dirfd, const struct dirent *de, void *data)
{
	Scan *scan = data;
	int fd, r;

	if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
		return 0;
	r = store_open_subdir(dirfd, de->d_name, &fd);
	if (r < 0 || fd < 0)
		return r;
	scan->folder = scan->keys->len;
	g_ptr_array_add(scan->keys, g_strdup(de->d_name));
	r = store_walk_dir(fd, scan_uidvalidity, scan);
	close(fd);
	return r;
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
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
	    r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = store_walk_dir(fd, scan_folder, scan);
	close(fd);
	return r;
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
		store_stop_tracking(store);
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
			store_stop_tracking(store);
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

void store_touch_body(CacheStore *store, const char *folder, const char *key,
		      uint32_t uidvalidity, uint32_t uid)
{
	CacheLruKey k = { 0, uidvalidity, uid };
	uint32_t e;

	if (!store || !folder || !g_atomic_int_get(&store->tracking))
		return;
	g_mutex_lock(&store->lru_lock);
	if (store->lru) {
		k.folder = folder_num_locked(store, folder, key);
		e = cache_lru_find(store->lru, &k);
		if (e != CACHE_LRU_NONE)
			cache_lru_touch(store->lru, e);
	}
	g_mutex_unlock(&store->lru_lock);
}

void cache_store_touch_body(CacheStore *store, const char *folder,
			    uint32_t uidvalidity, uint32_t uid)
{
	store_touch_body(store, folder, NULL, uidvalidity, uid);
}

uint64_t store_bound(CacheStore *store)
{
	uint64_t bound;

	g_mutex_lock(&store->lru_lock);
	bound = store->max_bytes;
	g_mutex_unlock(&store->lru_lock);
	return bound;
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
void store_forget_bodies(CacheStore *store, const char *folder, const char *key,
			 uint32_t keep_uidvalidity)
{
	g_mutex_lock(&store->lru_lock);
	if (store->lru) {
		uint32_t num = folder_num_locked(store, folder, key);

		cache_lru_drop_folder(store->lru, num, keep_uidvalidity);
		cache_lru_drop_folder(store->lru, num | LRU_PACK_BIT,
				      keep_uidvalidity);
	}
	g_mutex_unlock(&store->lru_lock);
}
/* A segment of folder's pack was written or read: account its size (0:
 * keep it) and make it the most recent; make room under the bound. */
void store_touch_segment(CacheStore *store, const char *folder, const char *key,
			 uint32_t uidvalidity, uint32_t segment, uint64_t size)
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
			evict_locked(store,
				     cache_lru_low_mark(store->max_bytes));
		cache_lru_unpin(store->lru, e);
	}
out:
	g_mutex_unlock(&store->lru_lock);
}
