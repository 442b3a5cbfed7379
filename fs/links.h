/* fs/links.h: one inode for a message that the server shows in several
 * folders (Gmail labels, Cyrus EMAILID): hard links.
 *
 * A message whose listing carries a global id (CacheMessage.gid) gets the
 * inode FS_LINKS_INO_TAG | (gid folded to 61 bits) instead of (folder
 * id, UID): the top three bits are 110 (10 is fs/search.c's, 111 the
 * layout's own inodes, fs/layout.h);
 * st_nlink counts the loaded folders that hold it. Reads of that
 * inode go to one "home" instance (the first folder loaded that holds it),
 * so its body is fetched and cached once whatever the folder it is read
 * through.
 */
#pragma once

#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/index.h"

#define FS_LINKS_INO_MASK (UINT64_C(7) << 61)
#define FS_LINKS_INO_TAG (UINT64_C(6) << 61)

typedef struct FsLinks FsLinks;

FsLinks *fs_links_new(void);
void fs_links_free(FsLinks *links);

/* The inode of a message with global id gid (gid != 0). */
fuse_ino_t fs_links_ino(uint64_t gid);
static inline bool fs_links_is_link_ino(fuse_ino_t ino)
{
	return (ino & FS_LINKS_INO_MASK) == FS_LINKS_INO_TAG;
}

/* A folder's listing of generation folder_id goes from old_index (NULL:
 * none) to new_index (NULL: none), old_id and new_id their folder ids.
 * Appends to changed (NULL allowed) the inodes of messages that were
 * already known and whose link count changed, for the kernel to forget
 * their attributes. */
void fs_links_replace(FsLinks *links, uint32_t old_id,
		      const CacheFolderIndex *old_index, uint32_t new_id,
		      const CacheFolderIndex *new_index, GArray *changed);

/* Where to read the message of link inode ino: its home (folder id, UID).
 * False when no loaded folder holds it. */
bool fs_links_resolve(FsLinks *links, fuse_ino_t ino, uint32_t *folder_id,
		      uint32_t *uid);

/* How many loaded folders hold gid (at least 1). */
unsigned fs_links_count(FsLinks *links, uint64_t gid);

/* Whether (folder_id, uid) is the home of gid: false when the message is
 * read (and cached) through another folder. */
bool fs_links_is_home(FsLinks *links, uint64_t gid, uint32_t folder_id,
		      uint32_t uid);
