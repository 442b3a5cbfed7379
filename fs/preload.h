/* fs/preload.h: what the mount learns of every folder at once, so that
 * the first visit to each does not cost a round trip of its own.
 *
 * At mount, one pipelined STATUS of every selectable folder on one pool
 * connection (imap/folderstatus.c): a persisted listing whose counts
 * match its folder's answer is current without an EXAMINE (fs/sync.c),
 * and the MESSAGES counts tell which folders are small enough to list
 * ahead of a visit. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fs/mount.h"

typedef struct FsPreload FsPreload;

struct FsPreloadCounts {
	uint32_t uidvalidity, uidnext, messages;
	uint64_t highestmodseq; /* 0: the server did not say */
	gint64 at;              /* monotonic us the STATUS was sent */
};
typedef struct FsPreloadCounts FsPreloadCounts;

/* Start the STATUS of every selectable folder of mnt's tree in a thread
 * of its own (the pool must be running). */
FsPreload *fs_preload_start(FsMount *mnt);
/* Wait for that thread; answers are dropped. NULL is fine. */
void fs_preload_free(FsPreload *pre);

/* The counts STATUS gave for folder raw. Waits for the answers while
 * they are on their way (bounded by the mount's timeout). False when
 * there is none: not asked, refused, the server unreachable, or the
 * folder was the connection's selected one. pre may be NULL. */
bool fs_preload_counts(FsPreload *pre, const char *raw, FsPreloadCounts *out);

/* Resync (FS_SYNC_NOW) every folder that has a listing, but for those
 * whose listing one pipelined STATUS finds current: what the watcher does
 * after it (re)connects and every poll interval, in one round trip
 * instead of one EXAMINE per folder. stop() is asked between folders. */
void fs_preload_resync_listed(FsMount *mnt, bool (*stop)(void *), void *data);

/* List dir's small subfolders that have no listing yet ahead of a visit,
 * and theirs, --list-ahead levels down in all, in pipelined batches on
 * threads of their own (a reader of one of them meanwhile waits for its
 * listing). pre may be NULL. */
void fs_preload_children(FsPreload *pre, FsFolder *dir);
