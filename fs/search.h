/* fs/search.h: server-side search as directories.
 *
 * DIR/.search/QUERY/ searches the folder DIR, MOUNT/.search/QUERY/ every
 * folder; each holds one relative symbolic link per match, named like the
 * message file and pointing at it ("../../1042 Re- x.eml", or
 * "../../INBOX/Sub/1042 Re- x.eml" at the top). ".search" is never listed
 * by readdir, so tree walkers never start a search; it resolves by path
 * only. In QUERY, "%XX" stands for the byte XX ("%2F" for '/', "%25" for
 * '%'); a query cannot start with '.' (write "%2E"), so that probes for
 * dot files start no search. Results are cached for a few seconds and
 * dropped sooner when a folder they cover changes.
 *
 * The search tree has inode numbers of its own, with bit 63 set (folder
 * ids stay below 2^31, so the tree's numbers never have it): the high
 * half names a directory (a .search or a query), the low half a link in
 * a query (0 for the directory itself).
 */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "fs/mount.h"

typedef struct FsSearch FsSearch;

FsSearch *fs_search_new(FsMount *mnt);
/* After the FUSE loop has ended: frees the directory handles the kernel
 * did not release, too. */
void fs_search_free(FsSearch *s);

/* True for an inode number of the search tree. */
bool fs_search_owns(fuse_ino_t ino);

/* LOOKUP of name in the folder directory f: answers and returns true when
 * name is ".search" (in the root or a folder with messages). */
bool fs_search_lookup_dot(fuse_req_t req, FsSearch *s, FsFolder *f,
			  const char *name);

/* The FUSE operations on inodes that fs_search_owns(). */
void fs_search_lookup(fuse_req_t req, FsSearch *s, fuse_ino_t parent,
		      const char *name);
void fs_search_getattr(fuse_req_t req, FsSearch *s, fuse_ino_t ino);
void fs_search_opendir(fuse_req_t req, FsSearch *s, fuse_ino_t ino,
		       struct fuse_file_info *fi);
void fs_search_readdir(fuse_req_t req, FsSearch *s, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus);
void fs_search_releasedir(fuse_req_t req, FsSearch *s,
			  struct fuse_file_info *fi);
void fs_search_readlink(fuse_req_t req, FsSearch *s, fuse_ino_t ino);

/* The listing of f changed (messages came or went): results that cover f
 * are searched again on their next use. Any thread; s may be NULL. */
void fs_search_folder_changed(FsSearch *s, FsFolder *f);
