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
/* Push the cached body of (folder, uidvalidity, uid) to inode ino. */
void fs_push_cached(FsPush *push, fuse_ino_t ino, const char *folder,
		    uint32_t uidvalidity, uint32_t uid);
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
