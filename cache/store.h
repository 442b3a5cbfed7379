/* cache/store.h: the on-disk cache of one account.
 *
 * Layout under ROOT (mode 0700 directories, 0600 files):
 *   ROOT/<account-key>/folders/<folder-key>/<UIDVALIDITY>/<UID>   bodies
 *   ROOT/<account-key>/folders/<folder-key>/<UIDVALIDITY>/pack-<N>
 *                                               small bodies (cache/pack.h)
 *   ROOT/<account-key>/folders/<folder-key>/index CacheFolderIndex
 *   ROOT/<account-key>/folders.list                               folder list
 *   ROOT/<account-key>/ids                                        folder ids
 *   ROOT/<account-key>/tmp/                                       temp files
 * <account-key> and <folder-key> are derived from a SHA-256 of the account
 * string and of the raw server folder name (plus a short sanitised ASCII part
 * for people reading the tree), so no server string can escape the root.
 *
 * Bodies are immutable: written to tmp/ and renamed into place, so a crash
 * leaves at most a temp file (removed at the next open), never a short body
 * under a final name. Every function here is thread-safe.
 *
 * The bytes of bodies may be bounded (cache_store_set_limit()): the least
 * recently used bodies are then removed to make room. When the disk is full
 * a body being written moves to an anonymous memory file, which the caller
 * serves once instead of the cache file (cache_body_writer_commit_fd()).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/index.h"

typedef struct CacheStore CacheStore;
typedef struct CacheBodyWriter CacheBodyWriter;

/* Open or create the cache of account (any string naming it, such as
 * "imaps://user@host:993") under root. Removes stale temp files. */
CacheStore *cache_store_open(const char *root, const char *account,
			     GError **error);
void cache_store_free(CacheStore *store);
/* For an account that never mounted (a failed login, an unreachable
 * server): free store and remove the account's directory, and the root,
 * if this open created them, so that failed attempts leave nothing. */
void cache_store_free_new(CacheStore *store);
/* Write our pid into the cache's lock file, for the message another
 * process gets when it finds the cache in use (again after a fork). */
void cache_store_note_owner(CacheStore *store);

/* Directory holding this account's cache (for messages and tests). */
const char *cache_store_dir(const CacheStore *store);

/* Open a body stored in a file of its own (written by a CacheBodyWriter)
 * read-only. Returns an fd, or -ENOENT when there is none, or another
 * -errno. */
int cache_store_open_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid);

/* A cached body: size bytes at offset of fd, which the caller closes. */
typedef struct {
	int fd;
	uint64_t offset;
	uint64_t size;
} CacheBody;

/* Find a cached body, in a file of its own or in the folder's pack of
 * small bodies (cache/pack.h), and count it as used for the LRU order.
 * 0, -ENOENT when not cached, or another -errno. */
int cache_store_find_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, CacheBody *body);

/* Is a body cached? Cheaper than cache_store_find_body(), for a caller
 * that decides whether to fetch (a damaged copy is found out when it is
 * read), and not counted as a use. */
bool cache_store_has_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid);

/* The bytes of a cached body of at most max bytes (-EFBIG when longer),
 * read and checked in one go; counts as used like cache_store_find_body().
 * 0, -ENOENT when not cached, or another -errno. */
int cache_store_read_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, size_t max,
			  GBytes **out);

/* Store a small body (1..CACHE_PACK_BODY_MAX bytes) in the folder's pack:
 * one append instead of a file created and renamed. 0, -ENOSPC when the
 * disk is full even after evicting (or the body would not fit under the
 * bound), or another -errno. */
int cache_store_put_body(CacheStore *store, const char *folder,
			 uint32_t uidvalidity, uint32_t uid, const void *data,
			 size_t len);
/* Create the folder's pack (directories and first segment) ahead of its
 * first cache_store_put_body(): creating files and directories is slow on
 * some disks, and a reader should not wait for it. 0 or -errno. */
int cache_store_prepare_pack(CacheStore *store, const char *folder,
			     uint32_t uidvalidity);

/* A new temp file for a body whose folder and UID may not be known yet.
 * When the disk is full (ENOSPC, EDQUOT) the writer starts in memory
 * instead (see cache_body_writer_commit_fd()); NULL only on other errors. */
CacheBodyWriter *cache_body_writer_new(CacheStore *store, GError **error);
/* The same, for a body whose folder and UIDVALIDITY are known: the temp
 * file goes next to its final name, so the commit is a rename within one
 * directory (on ext4 several times cheaper than across directories).
 * Falls back to cache_body_writer_new() when that directory cannot be
 * used. A crash may leave such a temp file; the next open removes it. */
CacheBodyWriter *cache_body_writer_new_at(CacheStore *store, const char *folder,
					  uint32_t uidvalidity, GError **error);
/* 0 or -errno. A full disk is not an error: what was written so far moves
 * to memory and writing goes on there (after one try at evicting old
 * bodies when a bound is set). */
int cache_body_writer_write(CacheBodyWriter *w, const void *buf, size_t len);
uint64_t cache_body_writer_size(const CacheBodyWriter *w);
/* Rename into place and free w. 0 or -errno; w is freed either way (its
 * temp file removed on failure). -ENOSPC when the body could not be stored
 * (disk full, or larger than the whole bound): its bytes are dropped. */
int cache_body_writer_commit(CacheBodyWriter *w, const char *folder,
			     uint32_t uidvalidity, uint32_t uid);
/* Like cache_body_writer_commit(), with the disk-full fallback: when the
 * body cannot be stored on disk (ENOSPC or EDQUOT while creating the temp
 * file, writing it, or renaming it), the writer keeps the bytes in an
 * anonymous memory file (memfd_create, MFD_CLOEXEC) instead, and this
 * returns -ENOSPC with *uncached_fd set to a read-only-usable fd holding
 * the complete body (offset 0), which the caller serves and closes.
 * A body larger than the whole bound is not cached either: -ENOSPC, with
 * *uncached_fd on its (already unlinked) temp file.
 * Any other failure returns -errno with *uncached_fd = -1. On success
 * returns 0 and *uncached_fd = -1. Frees w either way. */
int cache_body_writer_commit_fd(CacheBodyWriter *w, const char *folder,
				uint32_t uidvalidity, uint32_t uid,
				int *uncached_fd);
/* Remove the temp file and free w. NULL is allowed. */
void cache_body_writer_abort(CacheBodyWriter *w);

/* A new anonymous memory file (memfd, close-on-exec) holding a copy of the
 * len bytes at data, for a body the disk cannot take; served like the fd
 * of cache_body_writer_commit_fd(). Returns the fd, which the caller
 * closes (its offset is at the end: read it with pread()), or -errno
 * (-ENOMEM, never -ENOSPC, for a memory file that cannot grow). */
int cache_memfile_from_bytes(const void *data, size_t len);

/* Bound the bytes of message bodies kept (0: no bound, the default).
 * Existing bodies are scanned (their sizes and mtimes give the initial LRU
 * order: oldest mtime first) and the least recently used are removed until
 * the total is at most max_bytes; from then on every commit evicts as
 * needed (down to about 90% of the bound, so eviction is not per commit).
 * Scanning 100,000 bodies must take well under a second. Returns 0 or -errno.
 */
int cache_store_set_limit(CacheStore *store, uint64_t max_bytes);

/* Note that a body was used (read), for the LRU order. In-memory, O(1),
 * thread-safe; a no-op when there is no bound. */
void cache_store_touch_body(CacheStore *store, const char *folder,
			    uint32_t uidvalidity, uint32_t uid);

/* Bytes of bodies currently in the cache (tracked while there is a
 * bound; 0 otherwise). Bodies being committed count from the moment their
 * commit starts. */
uint64_t cache_store_body_bytes(CacheStore *store);

/* Remove every body of folder whose UIDVALIDITY is not keep_uidvalidity,
 * and its index if that index has another UIDVALIDITY (0 removes all).
 * The removed bodies leave the LRU accounting. */
int cache_store_drop_folder(CacheStore *store, const char *folder,
			    uint32_t keep_uidvalidity);

/* Folder index, written temp-then-rename. load returns NULL when absent or
 * unreadable (a corrupt index is removed and treated as absent). */
int cache_store_save_index(CacheStore *store, const char *folder,
			   const CacheFolderIndex *index);
CacheFolderIndex *cache_store_load_index(CacheStore *store, const char *folder);
/* Where large listings being built spill to (see CacheIndexBuilder). */
const char *cache_store_tmp_dir(CacheStore *store);

/* The account's folder list (LIST result), for remounts and offline use.
 * folders: GPtrArray of CacheFolderEntry*. load returns NULL when absent. */
int cache_store_save_folders(CacheStore *store, GPtrArray *folders);
GPtrArray *cache_store_load_folders(CacheStore *store);

/* A stable number for (folder, uidvalidity), persisted: the same pair gets
 * the same id on every mount. Ids start at 1 and stay below 2^31.
 * uidvalidity 0 names the directory itself. 0 or -errno. */
int cache_store_folder_id(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t *id);
