/* fs/xattr.h: extended attributes of the mount (with --xattr): where a file
 * comes from (user.imap.uid, .uidvalidity, .folder), its flags, date and
 * size from the listing, and user.mail.* from the message's ENVELOPE,
 * fetched on demand (no body) and kept in a small bounded cache. The old
 * user.imapfs.* names still answer (deprecated). */
#pragma once

#include <fuse_lowlevel.h>

#include "fs/mount.h"

typedef struct FsXattr FsXattr;

FsXattr *fs_xattr_new(void);
void fs_xattr_free(FsXattr *x);

/* The FUSE getxattr and listxattr operations (mnt->xattr is set). */
void fs_xattr_get(fuse_req_t req, FsMount *mnt, fuse_ino_t ino,
		  const char *name, size_t size);
void fs_xattr_list(fuse_req_t req, FsMount *mnt, fuse_ino_t ino, size_t size);
