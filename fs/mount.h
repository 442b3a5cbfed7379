/* fs/mount.h: everything one mount owns, shared by the FUSE operations.
 * Built by main() before the session starts; immutable afterwards except
 * through the modules' own locks. */
#pragma once

#include <fuse_lowlevel.h>
#include <glib.h>
#include <sys/types.h>

#include "cache/store.h"
#include "fs/inval.h"
#include "fs/push.h"
#include "fs/tree.h"
#include "imap/pool.h"

typedef struct FsFetch FsFetch;
struct FsLayout;

typedef struct {
	CacheStore *store;
	ImapPool *pool;
	FsTree *tree;
	FsInval *inval;
	FsPush *push; /* bodies into the page cache ahead */
	uid_t uid;    /* owner of every file (-o uid=) */
	gid_t gid;
	mode_t file_mode;  /* permission bits of messages (-o umask=) */
	mode_t dir_mode;   /* and of directories */
	gint64 refresh_us; /* a listing older than this is rechecked */
	gint64 timeout_us; /* --timeout */

	uint64_t cache_limit; /* --cache-size, 0 for none */
	bool xattr;           /* --xattr */
	struct fuse_session *se;
	struct FsWatch *watch; /* background refresh; NULL before the mount */
	GThreadPool *verifier; /* checks persisted listings ahead of visits */
	GThreadPool *saver;    /* persists listings */
	GThreadPool *streamer; /* first listings of opened folders */

	GMutex dirs_lock;      /* guards open_dirs */
	GHashTable *open_dirs; /* directory handles the kernel holds, see
				* fs_ops_release_dirs() */

	FsFetch *fetch; /* bodies being fetched, prefetch (fs/fetch.h) */

	struct FsMeta *meta;              /* flag hooks (fs/meta.h) */
	struct FsXattr *xattrs;           /* envelope cache (fs/xattr.h) */
	struct FsNameFormat *name_format; /* --name-format (never NULL) */
	struct FsSearch *search;       /* .search directories (fs/search.h) */
	const struct FsLayout *layout; /* --layout (fs/layout.h) */
	void *layout_data;             /* the layout's own state */
} FsMount;
