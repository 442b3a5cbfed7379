/* fs/inval.h: kernel cache invalidations, sent from a thread of their own.
 * libfuse forbids notifying from inside a request handler (the kernel may
 * wait on the very request), so handlers only queue here. */
#pragma once

#include <fuse_lowlevel.h>

typedef struct FsInval FsInval;

FsInval *fs_inval_new(void);
/* Start sending once the session exists. */
void fs_inval_start(FsInval *inval, struct fuse_session *se);
/* Drop the kernel's attributes and cached data of ino. */
void fs_inval_inode(FsInval *inval, fuse_ino_t ino);
/* The same, not before delay_ms from now (items keep their order). */
void fs_inval_inode_later(FsInval *inval, fuse_ino_t ino, unsigned delay_ms);
/* Drop the kernel's dentry name in directory parent. */
void fs_inval_entry(FsInval *inval, fuse_ino_t parent, const char *name);
/* Stop the thread (idempotent); queued and later items are dropped. */
void fs_inval_stop(FsInval *inval);
/* Stops the thread; queued items are dropped. */
void fs_inval_free(FsInval *inval);
