/* fs/kernel-settings.h: what imapfs asks of the kernel's FUSE client, in
 * one place, so that the benchmark's FUSE floor (tests/bench/fuse_floor.c)
 * runs with exactly the same settings. */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>

#define FS_MESSAGE_TIMEOUT 86400.0 /* immutable once the size is exact */
#define FS_DIR_TIMEOUT 10.0

/* Called from the INIT handler. Returns whether the kernel can open files
 * without asking (an open answered ENOSYS then keeps the page cache and
 * sends neither OPEN nor RELEASE again). */
static inline bool fs_kernel_settings_apply(struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: we know size and date, so ls -l is free. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Bodies never change: do not drop pages on mtime checks. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	return (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
}
