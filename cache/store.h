/* cache/store.h: the on-disk cache of one account.
 *
 * Layout under ROOT (mode 0700 directories, 0600 files):
 *   ROOT/<account-key>/folders/<folder-key>/<UIDVALIDITY>/<UID>   bodies
 *   ROOT/<account-key>/folders/<folder-key>/index                 CacheFolderIndex
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

/* Directory holding this account's cache (for messages and tests). */
const char *cache_store_dir(const CacheStore *store);

/* Open a cached body read-only. Returns an fd, or -ENOENT when not cached,
 * or another -errno. */
int cache_store_open_body(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t uid);

/* A new temp file for a body whose folder and UID may not be known yet. */
CacheBodyWriter *cache_body_writer_new(CacheStore *store, GError **error);
/* 0 or -errno (-ENOSPC when the disk is full). */
int cache_body_writer_write(CacheBodyWriter *w, const void *buf, size_t len);
uint64_t cache_body_writer_size(const CacheBodyWriter *w);
/* Rename into place and free w. 0 or -errno; w is freed either way (its
 * temp file removed on failure). */
int cache_body_writer_commit(CacheBodyWriter *w, const char *folder,
			     uint32_t uidvalidity, uint32_t uid);
/* Remove the temp file and free w. NULL is allowed. */
void cache_body_writer_abort(CacheBodyWriter *w);

/* Remove every body of folder whose UIDVALIDITY is not keep_uidvalidity,
 * and its index if that index has another UIDVALIDITY (0 removes all). */
int cache_store_drop_folder(CacheStore *store, const char *folder,
			    uint32_t keep_uidvalidity);

/* Folder index, written temp-then-rename. load returns NULL when absent or
 * unreadable (a corrupt index is removed and treated as absent). */
int cache_store_save_index(CacheStore *store, const char *folder,
			   const CacheFolderIndex *index);
CacheFolderIndex *cache_store_load_index(CacheStore *store, const char *folder);

/* The account's folder list (LIST result), for remounts and offline use.
 * folders: GPtrArray of CacheFolderEntry*. load returns NULL when absent. */
int cache_store_save_folders(CacheStore *store, GPtrArray *folders);
GPtrArray *cache_store_load_folders(CacheStore *store);

/* A stable number for (folder, uidvalidity), persisted: the same pair gets
 * the same id on every mount. Ids start at 1 and stay below 2^31.
 * uidvalidity 0 names the directory itself. 0 or -errno. */
int cache_store_folder_id(CacheStore *store, const char *folder,
			  uint32_t uidvalidity, uint32_t *id);
