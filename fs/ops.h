/* fs/ops.h: the FUSE low-level operations of imapfs. The session's user
 * data is the FsMount. */
#pragma once

#include <fuse_lowlevel.h>

#include "fs/mount.h"

extern const struct fuse_lowlevel_ops fs_ops;

/* Frees the directory handles the kernel never released. RELEASEDIR goes
 * out in the background, and the kernel drops it when the connection ends
 * first (an unmount right after a listing, a signal while a directory is
 * open). Call once the session loop has returned: its workers are joined,
 * so no handler can still use a handle. */
void fs_ops_release_dirs(FsMount *mnt);

/* Append one READDIR(PLUS) entry at buf + *used (size bytes in all); entry
 * offset next. Returns false, appending nothing, when it does not fit. */
bool fs_ops_add_entry(fuse_req_t req, char *buf, size_t size, size_t *used,
		      const char *name, const struct fuse_entry_param *e,
		      off_t next, bool plus);
