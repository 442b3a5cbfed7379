/* fs/tree.h: the folder tree and the inode numbering of the mount.
 *
 * Inode numbers are derived, not allocated, so they are stable across
 * remounts and need no table: the root is FUSE_ROOT_ID; a folder's
 * directory is (id << 32) where id = cache_store_folder_id(name, 0); a
 * message is (folder_id << 32 | uid) where folder_id =
 * cache_store_folder_id(name, UIDVALIDITY). Folders are never freed while
 * mounted, so FsFolder pointers stay valid and FORGET needs no work.
 */
#pragma once

#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/index.h"
#include "cache/store.h"
#include "fs/links.h"
#include "imap/namespace.h"

/* One folder's message list at one moment. Reference counted so that a
 * directory listing in progress keeps its snapshot while a resync swaps in
 * a new one. */
typedef struct {
	gint refs;
	uint32_t folder_id;      /* id of (folder, UIDVALIDITY) */
	CacheFolderIndex *index; /* owned */
	bool partial;            /* the first messages of a first listing still
				    streaming in; the whole one replaces it
				    (fs/sync.c) */
} FsListing;

typedef struct FsFolder FsFolder;
struct FsFolder {
	uint32_t id;    /* 0 for the root */
	char *raw;      /* full server name; NULL for the root and for
			   levels that exist only as a path prefix
			   and are not selectable */
	char *path_raw; /* raw path prefix (id key), "" for the root */
	char *name;     /* display name of this level */
	FsFolder *parent;
	GPtrArray *children; /* FsFolder*, sorted by name; replaced whole
				(copy on write) when folders come and go:
				read it with fs_folder_children() */
	bool selectable;
	bool gone; /* deleted on the server */

	/* Guarded by lock: */
	GMutex lock;
	GCond synced;       /* signalled when a sync finishes */
	FsListing *listing; /* NULL until loaded */
	bool verified;      /* listing checked against the server during
			       this mount (a persisted one is not, until
			       its first sync) */
	gint64 synced_at;   /* monotonic us of the last good sync, 0 never */
	bool syncing;
	bool dirty;         /* listing has sizes not yet saved */
	bool verify_queued; /* a background check is queued or ran */
	gint64 flags_at;    /* monotonic us of the last fetch of every
			       message's flags, 0 never (fs/sync.c) */
	gint64 used_at;     /* monotonic us a user last listed it (atomic);
			       fs/watch.c polls such folders by STATUS */
	bool streaming;     /* a first listing runs in the background for
			       an opendir (fs/sync.c) */
};

typedef struct FsTree FsTree;

/* An ImapMailboxFn for imap_list_mailboxes(): appends a CacheFolderEntry
 * to the GPtrArray user_data. */
void fs_tree_collect_folder(void *user_data, const char *name, char delimiter,
			    unsigned flags);

/* Build from the LIST result (CacheFolderEntry*). */
FsTree *fs_tree_new(CacheStore *store, GPtrArray *entries, GError **error);
/* The same, showing the folders under ns's personal prefix at the top
 * ("INBOX.Sent" as Sent/ beside INBOX/; see imap_namespace_strip()). ns
 * may be NULL; it is copied. Folder ids, inode numbers and the cache stay
 * keyed by the full server name, whatever the layout. */
FsTree *fs_tree_new_ns(CacheStore *store, GPtrArray *entries,
		       const ImapNamespace *ns, GError **error);

/* Bring the tree in line with a new LIST result: folders that appeared
 * are added (a vanished one whose name is back is revived), those that
 * vanished are marked gone and unlinked. Calls changed(parent, child,
 * data) for every directory entry that appeared or vanished. Returns the
 * number of changes. */
int fs_tree_update(FsTree *tree, GPtrArray *entries,
		   void (*changed)(FsFolder *parent, FsFolder *child,
				   void *data),
		   void *data);

/* The current children array of f (valid until the tree is freed). */
GPtrArray *fs_folder_children(const FsFolder *f);
void fs_tree_free(FsTree *tree);

/* Visit every folder (root first). */
void fs_tree_foreach(FsTree *tree, void (*fn)(FsFolder *f, void *data),
		     void *data);

/* What an inode number names. */
typedef enum { FS_INO_NONE, FS_INO_DIR, FS_INO_MESSAGE } FsInoKind;
FsInoKind fs_tree_resolve(FsTree *tree, fuse_ino_t ino, FsFolder **folder,
			  uint32_t *folder_id, uint32_t *uid);
fuse_ino_t fs_tree_dir_ino(const FsFolder *f);
fuse_ino_t fs_tree_message_ino(uint32_t folder_id, uint32_t uid);
/* Remember that folder_id belongs to f (called when a listing is loaded). */
void fs_tree_register_folder_id(FsTree *tree, uint32_t folder_id, FsFolder *f);

FsFolder *fs_folder_child(const FsFolder *f, const char *name);

/* The hard-link table of messages in several folders (fs/links.h). */
FsLinks *fs_tree_links(FsTree *tree);

FsListing *fs_listing_new(uint32_t folder_id, CacheFolderIndex *index);
FsListing *fs_listing_ref(FsListing *l);
void fs_listing_unref(FsListing *l);
/* The folder's current listing with a reference, or NULL. */
FsListing *fs_folder_get_listing(FsFolder *f);
