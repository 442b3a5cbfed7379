/* cache/store-private.h: what the pieces of the cache store share, and
 * nothing else includes. The public API is cache/store.h.
 *
 * The store is split by job:
 *   store.c         keys and paths, open and close, find/put of bodies, the
 *                   packs of small bodies, drop_folder, index and list
 *   store-file.c    small file helpers and the one directory walker
 *   store-ids.c     the folder-id log (the ids file)
 *   store-limit.c   the size bound: LRU accounting, scan and eviction
 *   store-writer.c  the body writer and its disk-full memory fallback
 *
 * Lock order of cache/ (a lock may be taken while holding the ones before
 * it, never the other way round):
 *   limit_lock -> lru_lock -> packs_lock -> a CachePack's own lock
 * keys_lock and ids_lock are leaves: nothing else is taken while either is
 * held (ids_lock is never held with another lock at all). The only disk
 * I/O under lru_lock is unlink() of evicted bodies and segments; under
 * ids_lock, the writes of the ids file; under a CachePack's lock, the I/O
 * of its own segments. limit_lock serialises cache_store_set_limit(),
 * whose directory scan runs without lru_lock. Nothing in cache/ holds a
 * lock across a directory's recursive delete or an index decode.
 *
 * Internal functions shared by the pieces are prefixed store_.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cache/lru.h"
#include "cache/pack.h"
#include "cache/store.h"

#define TREE_DEPTH 3 /* folders/<key>/<uidvalidity>/<uid> */
/* LRU entries of pack segments: folder number with this bit, the segment
 * number as the uid (folder numbers stay far below it). */
#define LRU_PACK_BIT 0x80000000u
/* Prefix of the temp files that writers make next to their final names. */
#define STALE_PREFIX ".tmp-"

struct CacheStore {
	char *dir;         /* ROOT/<account-key> */
	char *folders_dir; /* dir/folders */
	char *tmp_dir;     /* dir/tmp */
	char *ids_path;
	char *list_path;
	int lock_fd;
	bool created;    /* this open made dir: see cache_store_free_new() */
	char *root_made; /* ROOT, when this open made it */

	/* store-ids.c, under ids_lock */
	GMutex ids_lock;
	GHashTable *ids;    /* IdKey* -> id, keys owned by id_keys */
	GPtrArray *id_keys; /* IdKey*, id_keys[i] has id i + 1 */
	guint ids_saved;    /* leading id_keys already in the file */
	int ids_fd;         /* O_APPEND fd, -1 when a rewrite is due */
	off_t ids_size;     /* bytes of whole records in the file */
	bool ids_warned;

	/* store-limit.c, under lru_lock (limit_lock: see above) */
	GMutex limit_lock;
	GMutex lru_lock;
	CacheLru *lru;            /* NULL: no bound, nothing tracked */
	uint64_t max_bytes;       /* 0 with lru: tracking during a scan */
	GPtrArray *fkeys;         /* folder number -> folder key */
	GHashTable *fnum_by_key;  /* folder key -> number + 1 */
	GHashTable *fnum_by_name; /* raw folder name -> number + 1 */
	gint tracking;            /* lru != NULL, read without the lock */

	/* store.c */
	GMutex packs_lock;
	GHashTable *packs; /* "<folder key>/<uidvalidity>" -> CachePack* */
	guint packs_gen;   /* bumped whenever packs are forgotten */
	GMutex keys_lock;
	GHashTable *keys; /* raw folder name -> folder key, a memo */
};

static inline bool store_disk_full(int r)
{
	return r == -ENOSPC || r == -EDQUOT;
}

/* ---- store.c ---- */

/* The folder key of folder (a SHA-256 and a readable part, see store.h),
 * computed once per folder and remembered. Newly allocated. */
char *store_folder_key(CacheStore *store, const char *folder);
/* The file of a body stored on its own (not in a pack). Newly allocated. */
char *store_body_path(CacheStore *store, const char *key, uint32_t uidvalidity,
		      uint32_t uid);
/* Evict one segment of the pack of (key, uidvalidity); under lru_lock. */
void store_drop_pack_segment(CacheStore *store, const char *key,
			     uint32_t uidvalidity, uint32_t segment);
/* The size of a pack segment under bound (0: none). */
uint64_t store_segment_max(uint64_t bound);
bool store_set_errno_error(GError **error, int r, const char *what,
			   const char *path);

/* ---- store-file.c: 0 or -errno unless said otherwise ---- */

/* mkdir 0700 whatever the umask; an existing directory is fine. */
int store_ensure_dir(const char *path);
/* Create root and its missing parents, each 0700 whatever the umask. */
int store_make_root(const char *root);
int store_write_all(int fd, const void *buf, size_t len);
/* close(), where EINTR is no error (the fd is gone on Linux). */
int store_close_checked(int fd);
/* Whole regular file behind fd (not closed), at most max bytes (-EFBIG
 * beyond); st describes the file that was read. *out is the caller's. */
int store_read_fd(int fd, uint64_t max, GBytes **out, struct stat *st);
int store_read_file(const char *path, GBytes **out, struct stat *st);
/* At most len bytes from the start of path (a header); *out is the
 * caller's. */
int store_read_head(const char *path, size_t len, GBytes **out,
		    struct stat *st);
/* Remove a file that failed to decode, unless replaced since. */
void store_discard_file(const char *path, const struct stat *was,
			const char *why);
/* A new 0600 temp file prefix-XXXXXX in tmp/: an fd (and *path, the
 * caller's), or -errno. */
int store_make_temp(const CacheStore *store, const char *prefix, char **path);
/* rename(), creating the missing parents dir1 and dir2 on ENOENT. */
int store_rename_into(const char *tmp, const char *final, const char *dir1,
		      const char *dir2);
/* Temp file, fsync, rename: after a crash either the old or the new file. */
int store_write_file_atomic(const CacheStore *store, const char *prefix,
			    const void *data, size_t len, const char *final,
			    const char *dir);
/* The same with the content written by write_fn(fd, data) (0 or -errno), for
 * files streamed rather than held in one buffer. */
int store_write_file_atomic_fn(const CacheStore *store, const char *prefix,
			       int (*write_fn)(int fd, const void *data),
			       const void *data, const char *final,
			       const char *dir);

/* Called for each entry of a directory but "." and ".."; a non-zero
 * return stops the walk and is returned by store_walk_dir(). */
typedef int (*StoreWalkFn)(int dirfd, const struct dirent *de, void *data);
/* The one directory walker: every entry of the directory fd (which stays
 * open and the caller's) handed to fn, from the start. */
int store_walk_dir(int fd, StoreWalkFn fn, void *data);
/* Open name under dirfd as a directory; *fd = -1 when it is gone or is
 * not a directory. */
int store_open_subdir(int dirfd, const char *name, int *fd);
/* Names in the directory fd (which stays open); *out is the caller's. */
int store_list_dir(int fd, GPtrArray **out);
/* Remove name under dirfd: a file, or a directory at most depth levels
 * deep. Symlinks are removed, never followed. Missing is success. */
int store_remove_tree_at(int dirfd, const char *name, int depth);
/* Empty the directory at path. */
int store_clear_dir(const char *path);

/* ---- store-ids.c ---- */

void store_ids_init(CacheStore *store);
/* Read the ids file (a damaged tail is cut off and the file rewritten). */
int store_ids_load(CacheStore *store);
/* Save what is unsaved, close the file and free the table. */
void store_ids_close(CacheStore *store);

/* ---- store-limit.c ---- */

/* Also used by cache_store_free(). */
void store_stop_tracking(CacheStore *store);
/* The bound, 0 for none. */
uint64_t store_bound(CacheStore *store);
/* The disk is full: evict at least want bytes (and a tenth of the cache)
 * if a bound is set. True when something was evicted. */
bool store_evict_for_space(CacheStore *store, uint64_t want);
/* A body of size bytes is about to be renamed into place: account for it
 * now, pinned, and make room. *reserved tells store_finish_body() to
 * unpin. -EFBIG when the body alone exceeds the bound. */
int store_reserve_body(CacheStore *store, const char *folder, const char *key,
		       uint32_t uidvalidity, uint32_t uid, uint64_t size,
		       bool *reserved);
/* The commit of a body is over: stored under final, or not. */
void store_finish_body(CacheStore *store, const char *folder, const char *key,
		       uint32_t uidvalidity, uint32_t uid, uint64_t size,
		       bool reserved, bool stored, const char *final);
/* cache_store_touch_body() with the folder key when the caller has it. */
void store_touch_body(CacheStore *store, const char *folder, const char *key,
		      uint32_t uidvalidity, uint32_t uid);
/* A segment of folder's pack was written or read: account its size (0:
 * keep it) and make it the most recent; make room under the bound. */
void store_touch_segment(CacheStore *store, const char *folder, const char *key,
			 uint32_t uidvalidity, uint32_t segment, uint64_t size);
/* Bodies of folder left the disk (uidvalidity != keep, or all for 0). */
void store_forget_bodies(CacheStore *store, const char *folder, const char *key,
			 uint32_t keep_uidvalidity);

/* ---- store-writer.c ---- */

/* Remove the temp files that writers made next to their final names and
 * a crash left behind. */
void store_remove_stale_temps(const char *folders_dir);
