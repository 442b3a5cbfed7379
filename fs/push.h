/* fs/push.h: cached bodies pushed into the kernel's page cache ahead of a
 * reader going through a folder in order (FUSE_NOTIFY_STORE), so that its
 * next files are read without a round trip to the daemon.
 *
 * Pushing is a hint: it runs on a thread of its own (the kernel may hold a
 * page lock while it waits for one of our replies, so a handler must never
 * push), drops work beyond a bounded queue, and ignores the kernel's
 * refusals (an inode it has already forgotten). Bodies are immutable per
 * inode, so a late push never shows old bytes. */
#pragma once

#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdint.h>

#include "cache/store.h"

typedef struct FsPush FsPush;

FsPush *fs_push_new(CacheStore *store);
/* Start pushing once the session exists; queued items wait until then. */
void fs_push_start(FsPush *push, struct fuse_session *se);
typedef struct {
	fuse_ino_t ino;
	uint32_t uid;
} FsPushMessage;

/* Push the cached bodies of n messages of (folder, uidvalidity), in this
 * order, before older work: the folder a reader is in, or just listed, is
 * the one read next. run (not 0) names the folder: a run of it that is
 * still at the front of the queue keeps its place, and this one follows
 * it. Inodes pushed or read already are left out. */
void fs_push_cached_run(FsPush *push, uint32_t run, const char *folder,
			uint32_t uidvalidity, const FsPushMessage *msgs,
			guint n);
/* Push a body at hand (just fetched); takes a reference to bytes. */
void fs_push_bytes(FsPush *push, fuse_ino_t ino, GBytes *bytes);
/* A reader got ino's first bytes from us: a push of it would copy them
 * again, so queued and later pushes of ino are dropped. */
void fs_push_note_read(FsPush *push, fuse_ino_t ino);
/* Stop the thread (before the session ends); queued items are dropped and
 * later ones refused. */
void fs_push_stop(FsPush *push);
/* Stop if need be, and free. NULL is allowed. */
void fs_push_free(FsPush *push);
