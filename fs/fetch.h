/* fs/fetch.h: message bodies, from the cache or fetched into it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs/mount.h"

/* What is fetched that nobody read yet (--prefetch). */
typedef enum {
	FS_PREFETCH_OFF,   /* only what is read: metered providers */
	FS_PREFETCH_AHEAD, /* for sequential readers, the messages ahead */
} FsPrefetch;

/* The fetch state of one mount (FsMount.fetch): fetches under way,
 * read patterns for prefetch, heads of large bodies and the bodies kept
 * in memory off a full disk. Free it only once no fetch job can run (the
 * pool is freed). */
FsFetch *fs_fetch_new(void);
/* NULL is allowed. */
void fs_fetch_free(FsFetch *fetch);

/* The complete body of message uid in listing l of folder f (body->size
 * bytes at body->offset of body->fd, which the caller closes), fetching it
 * first when it is not cached; readers of the same uncached message share
 * one fetch. first_read (a read at offset 0) feeds the sequential-read
 * detector that starts prefetch. 0, or -errno on failure (-EIO: server
 * unreachable or no valid body; -ESTALE: the folder's UIDVALIDITY
 * changed). */
int fs_fetch_open(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid,
		  bool first_read, CacheBody *body);

/* Bytes of a large message's head fetched alone for a small first read. */
#define FS_FETCH_HEAD_BYTES 65536

/* The first FS_FETCH_HEAD_BYTES of message uid (fewer only if the server
 * sent fewer), fetched with BODY.PEEK[]<0.N> and kept in a small memory
 * table; NULL when that failed (the caller fetches the whole body). */
GBytes *fs_fetch_head(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid);
/* A read at off of folder f: reads past the heads let prefetch take
 * large bodies too. */
void fs_fetch_note_read(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			off_t off);
/* A readdirplus handed out the entries of messages [from, to) of listing
 * l, and the kernel knows their inodes: the cached bodies of the
 * first of them go into the page cache (fs/push.h), as a tree walk reads
 * them next. Within the same bounds as a reader's push ahead. */
void fs_fetch_note_entries(FsMount *mnt, FsFolder *f, FsListing *l, guint from,
			   guint to);
/* Folder f was just opened as a directory (its listing is being read):
 * a first read of its first message next starts a walk through it, and
 * prefetch begins at once, with that message in the first batch. */
void fs_fetch_note_listed(FsMount *mnt, FsFolder *f, uint32_t folder_id);
/* Forget the bodies of folder kept in memory off a full disk, but those
 * of keep_uidvalidity (0: all), as cache_store_drop_folder() does on
 * disk. */
void fs_fetch_forget_folder(FsMount *mnt, const char *folder,
			    uint32_t keep_uidvalidity);
/* Set before the mount serves requests. */
void fs_fetch_set_prefetch(FsFetch *fetch, FsPrefetch mode);

/* Is the whole body at hand (disk cache or memory table)? */
bool fs_fetch_is_cached(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid);
