/* fs/layout.h: what a message looks like in the mount (--layout).
 *
 * fs/ops.c serves folders itself and hands every message entry, and every
 * inode a layout makes of its own, to the mount's FsLayout. The eml layout
 * (a message is one file of raw bytes) is fs/ops.c's own code path and has
 * no hooks; a layout that shows a message as a directory sets
 * message_is_dir and the hooks below. A layout's own inodes carry both
 * FS_LAYOUT_INO_BITS (bits 63, 62 and 61): no folder or message inode has
 * bit 63 (folder ids stay below 2^31), so fs_tree_resolve() answers
 * FS_INO_NONE for them; the .search tree (fs/search.h) has the top bits
 * 10 and messages in several folders (fs/links.h) 110, so the three
 * never meet. fs/ops.c asks fs_layout_owns() before fs_search_owns().
 * The maildir layout (fs/maildir.h) has no hooks: its messages are eml
 * files, and fs/ops.c serves its cur/ new/ tmp/ directories, whose
 * inodes carry FS_LAYOUT_INO_BITS too (one layout per mount).
 *
 * Hooks run on FUSE worker threads, may block on the pool (bounded by its
 * timeout) and return 0 or -errno.
 */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "cache/index.h"
#include "cache/store.h"
#include "fs/mount.h"
#include "fs/options.h"

#define FS_LAYOUT_INO_BITS ((fuse_ino_t)7 << 61)

static inline bool fs_layout_owns(fuse_ino_t ino)
{
	return (ino & FS_LAYOUT_INO_BITS) == FS_LAYOUT_INO_BITS;
}

typedef struct FsLayout FsLayout;
struct FsLayout {
	const char *name;
	bool message_is_dir; /* false: the eml path of fs/ops.c */
	/* Folders hold cur/ new/ tmp/ and messages live in cur/
	 * (fs/maildir.h); messages are eml files otherwise. */
	bool maildir;

	/* The directory-entry name of m into buf (FS_NAME_MAX + 1 bytes). */
	const char *(*entry_name)(const CacheMessage *m, char *buf);
	/* Does name (from a LOOKUP) name m? */
	bool (*entry_matches)(const CacheMessage *m, const char *name);

	/* The hooks below get message inodes (a message of a listing) and
	 * the layout's own inodes. */
	int (*lookup)(FsMount *mnt, fuse_ino_t parent, const char *name,
		      struct fuse_entry_param *e);
	int (*getattr)(FsMount *mnt, fuse_ino_t ino, struct stat *st,
		       double *timeout);
	/* A directory handle for readdir (*handle, freed by releasedir). */
	int (*opendir)(FsMount *mnt, fuse_ino_t ino, void **handle);
	/* Entry i of an open directory ("." and ".." included); false past
	 * the end. name stays valid while the handle lives. */
	bool (*dir_item)(FsMount *mnt, void *handle, size_t i,
			 const char **name, struct fuse_entry_param *e);
	void (*releasedir)(void *handle);
	/* The bytes of a file (body->fd is the caller's to close). */
	int (*open_file)(FsMount *mnt, fuse_ino_t ino, CacheBody *body);
	/* Free the layout's state of a mount (at unmount). */
	void (*free)(FsMount *mnt);
};

/* The layout of kind. */
const FsLayout *fs_layout_get(FsLayoutKind kind);

/* The layouts (fs/layout.c and the files of each). */
extern const FsLayout fs_layout_eml;
extern const FsLayout fs_layout_parts;
extern const FsLayout fs_layout_maildir;
