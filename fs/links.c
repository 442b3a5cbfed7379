/* fs/links.c: the table of messages that carry a global id, for hard
 * links (see fs/links.h).
 *
 * Ownership: one FsLinks per mount (inside FsTree). Each entry is 32 bytes
 * plus the hash table's slot: only messages with a global id have one.
 * Locking: links->lock guards the table; it is taken under a folder's
 * lock (ops.c reads counts while holding f->lock) and never takes another
 * lock itself. Invariant: an entry exists exactly while nlink > 0; its
 * home slots hold (folder id << 32 | UID) of up to two loaded instances,
 * 0 for an empty slot, home[1] only beside home[0]; reads go to home[0].
 */
#include "fs/links.h"

typedef struct {
	uint64_t key; /* gid folded to 61 bits, never 0 */
	uint64_t home[2];
	uint32_t nlink;
} Link;

struct FsLinks {
	GMutex lock;
	GHashTable *table; /* &Link.key -> Link* */
};

static uint64_t fold(uint64_t gid)
{
	uint64_t k = gid & ~FS_LINKS_INO_MASK;

	return k ? k : 1;
}

FsLinks *fs_links_new(void)
{
	FsLinks *links = g_new0(FsLinks, 1);

	g_mutex_init(&links->lock);
	links->table =
	    g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
	return links;
}

void fs_links_free(FsLinks *links)
{
	if (!links)
		return;
	g_hash_table_unref(links->table);
	g_mutex_clear(&links->lock);
	g_free(links);
}

fuse_ino_t fs_links_ino(uint64_t gid)
{
	return (fuse_ino_t)(FS_LINKS_INO_TAG | fold(gid));
}

static Link *find(FsLinks *links, uint64_t gid)
{
	uint64_t k = fold(gid);

	return g_hash_table_lookup(links->table, &k);
}

/* Under links->lock. */
static void drop_instance(FsLinks *links, uint64_t gid, uint64_t loc,
			  GArray *changed)
{
	Link *l = find(links, gid);

	if (!l)
		return;
	for (int i = 0; i < 2; i++)
		if (l->home[i] == loc)
			l->home[i] = 0;
	/* The home that stays keeps serving (its body may be cached). */
	if (!l->home[0]) {
		l->home[0] = l->home[1];
		l->home[1] = 0;
	}
	if (--l->nlink == 0) {
		g_hash_table_remove(links->table, &l->key);
		return;
	}
	if (changed) {
		fuse_ino_t ino = fs_links_ino(gid);

		g_array_append_val(changed, ino);
	}
}

/* Under links->lock. */
static void add_instance(FsLinks *links, uint64_t gid, uint64_t loc,
			 GArray *changed)
{
	Link *l = find(links, gid);

	if (!l) {
		l = g_new0(Link, 1);
		l->key = fold(gid);
		g_hash_table_insert(links->table, &l->key, l);
	} else if (changed) {
		fuse_ino_t ino = fs_links_ino(gid);

		g_array_append_val(changed, ino);
	}
	l->nlink++;
	if (l->home[0] == loc || l->home[1] == loc)
		return;
	if (!l->home[0])
		l->home[0] = loc;
	else if (!l->home[1])
		l->home[1] = loc;
}

static const CacheMessage *msg_at(const CacheFolderIndex *idx, guint i,
				  CacheMessage *buf)
{
	if (!idx || i >= cache_folder_index_count(idx))
		return NULL;
	cache_folder_index_get(idx, i, buf);
	return buf;
}

void fs_links_replace(FsLinks *links, uint32_t old_id,
		      const CacheFolderIndex *old_index, uint32_t new_id,
		      const CacheFolderIndex *new_index, GArray *changed)
{
	guint i = 0, j = 0;

	g_mutex_lock(&links->lock);
	/* Both are sorted by UID: a merge skips what did not change (the
	 * common resync), so only the difference costs hash lookups. */
	for (;;) {
		CacheMessage abuf, bbuf;
		const CacheMessage *a = msg_at(old_index, i, &abuf);
		const CacheMessage *b = msg_at(new_index, j, &bbuf);

		if (!a && !b)
			break;
		if (a && b && a->uid == b->uid && a->gid == b->gid &&
		    old_id == new_id) {
			i++, j++;
			continue;
		}
		if (a && (!b || a->uid <= b->uid)) {
			if (a->gid)
				drop_instance(links, a->gid,
					      (uint64_t)old_id << 32 | a->uid,
					      changed);
			i++;
			continue;
		}
		if (b->gid)
			add_instance(links, b->gid,
				     (uint64_t)new_id << 32 | b->uid, changed);
		j++;
	}
	g_mutex_unlock(&links->lock);
}

bool fs_links_resolve(FsLinks *links, fuse_ino_t ino, uint32_t *folder_id,
		      uint32_t *uid)
{
	uint64_t k = ino & ~FS_LINKS_INO_MASK, loc = 0;
	Link *l;

	g_mutex_lock(&links->lock);
	l = g_hash_table_lookup(links->table, &k);
	if (l)
		loc = l->home[0];
	g_mutex_unlock(&links->lock);
	if (!loc)
		return false;
	*folder_id = (uint32_t)(loc >> 32);
	*uid = (uint32_t)loc;
	return true;
}

unsigned fs_links_count(FsLinks *links, uint64_t gid)
{
	unsigned n;
	Link *l;

	g_mutex_lock(&links->lock);
	l = find(links, gid);
	n = l ? l->nlink : 1;
	g_mutex_unlock(&links->lock);
	return MAX(n, 1u);
}

bool fs_links_is_home(FsLinks *links, uint64_t gid, uint32_t folder_id,
		      uint32_t uid)
{
	uint64_t loc = (uint64_t)folder_id << 32 | uid, home = 0;
	Link *l;

	g_mutex_lock(&links->lock);
	l = find(links, gid);
	if (l)
		home = l->home[0];
	g_mutex_unlock(&links->lock);
	return !home || home == loc;
}
