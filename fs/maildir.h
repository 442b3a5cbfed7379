/* fs/maildir.h: the maildir layout (--layout=maildir): every folder
 * directory holds cur/, new/ and tmp/; cur/ holds the folder's messages
 * as "UID.UIDVALIDITY.imapfs:2,FLAGS" files with the bytes of the eml
 * layout. fs/ops.c serves these directories; this module names things,
 * numbers the three directories and renames files when flags change.
 *
 * A server folder named cur, new or tmp is shown as "cur~folder" (and so
 * on) so that it never hides the Maildir directory of its parent. */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/index.h"
#include "fs/mount.h"

enum { FS_MAILDIR_CUR = 1, FS_MAILDIR_NEW = 2, FS_MAILDIR_TMP = 3 };

/* The suffix a folder named like a Maildir directory gets. */
#define FS_MAILDIR_CLASH_SUFFIX "~folder"

/* The inode of directory which (FS_MAILDIR_*) of folder f. */
fuse_ino_t fs_maildir_ino(const FsFolder *f, int which);
/* Is ino one of ours? Then *f and *which are filled (0), else -ENOENT. */
int fs_maildir_resolve(FsMount *mnt, fuse_ino_t ino, FsFolder **f, int *which);
/* "cur", "new", "tmp" -> FS_MAILDIR_*, else 0. */
int fs_maildir_which(const char *name);
const char *fs_maildir_dir_name(int which);
/* The file name of m in cur/ (buf: FS_NAME_MAX + 1 bytes). */
const char *fs_maildir_name(const CacheMessage *m, uint32_t uidvalidity,
			    char *buf);
/* The UID a cur/ file name starts with. */
bool fs_maildir_parse_uid(const char *name, uint32_t *uid);
/* The name a child folder is shown under (buf: FS_NAME_MAX + 1 bytes). */
const char *fs_maildir_child_name(const char *name, char *buf);
/* The child folder's real name for a shown name, or NULL. */
const char *fs_maildir_child_real(const char *shown, char *buf);
/* Register the flag hook that renames files (before the mount starts). */
void fs_maildir_init(FsMount *mnt);
