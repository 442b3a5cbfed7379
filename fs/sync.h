/* fs/sync.h: keeping a folder's message listing current.
 *
 * A listing comes from the persisted index (instant at remount), then is
 * brought up to date over IMAP: nothing is fetched when UIDNEXT and EXISTS
 * did not move; new UIDs are fetched alone; expunges are found with one UID
 * SEARCH; a UIDVALIDITY change replaces everything and drops the folder's
 * cached bodies. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fs/mount.h"

enum {
	FS_SYNC_IF_MISSING, /* only when there is no listing at all */
	FS_SYNC_IF_STALE,   /* when the last sync is older than refresh_us */
	FS_SYNC_NOW,
};

/* Returns 1 when the listing changed, 0 when it did not (or the server
 * could not be reached but a listing is there to serve, stale), -ENOENT for
 * a folder that has no messages of its own, -EIO when there is no listing
 * and the server cannot be reached. */
int fs_sync_folder(FsMount *mnt, FsFolder *f, int when);

/* fs_sync_folder(FS_SYNC_IF_STALE) for an opendir, except that a folder
 * listed for the first time returns as soon as its first messages are in
 * (a partial listing, FsListing.partial) while the rest streams in on a
 * background thread. Same returns. */
int fs_sync_open_folder(FsMount *mnt, FsFolder *f);
/* Wait (bounded) until f's listing is another than partial (which was
 * partial): a longer partial one or the whole. Returns a reference to it,
 * or NULL when the listing failed or took too long. */
FsListing *fs_sync_wait_whole(FsMount *mnt, FsFolder *f, FsListing *partial);

/* Make the next FS_SYNC_IF_STALE sync of f run (a fetch found that the
 * listing names a message the server no longer has). */
void fs_sync_mark_stale(FsFolder *f);

/* Check the persisted listings of dir's subfolders against the server in
 * the background (each folder once a mount), so that the first visit to
 * each does not wait for its EXAMINE: grep -r and file managers go through
 * folders one after another. Subfolders without a persisted listing are
 * left alone: a cold listing is real work, done on the first visit. */
void fs_sync_verify_children(FsMount *mnt, FsFolder *dir);
/* Threads for those checks (2) and for persisting listings (1, so that a
 * new listing never waits for its save), started with the pool and stopped
 * before it. */
void fs_sync_start_background(FsMount *mnt);
void fs_sync_stop_background(FsMount *mnt);

/* Persist listings whose sizes were corrected since their last save. */
void fs_sync_save_dirty(FsMount *mnt);

/* Correct a message's size to the exact length of its body (after a
 * fetch, or when a cached body is found). */
void fs_sync_set_exact_size(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			    uint32_t uid, uint64_t size);
