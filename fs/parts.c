/* fs/parts.c: the parts layout (--layout=parts): a message is a directory
 * of its decoded parts (fs/parts-mime.c builds them).
 *
 * Listing a folder costs what it costs in the eml layout: a message entry
 * is a directory made from the listing alone. Looking into it (LOOKUP
 * below it, OPENDIR) builds its tree: for a message of PARTS_LAZY_MIN
 * bytes or more that is not cached, by section (fs/parts-lazy.c: files
 * are fetched on first read, or first stat where the server lacks BINARY
 * and only decoding gives the size; the tree is built again from the body
 * once that is cached); otherwise from the body, taken from the cache or
 * fetched once like a read in the eml layout (the same cache file:
 * message.eml is that file). Trees are kept for the PARTS_MAX_TREES
 * messages used last and rebuilt after. The paths table grows with every
 * name looked up (about 100 bytes each) until the unmount.
 *
 * Inodes of files and directories inside a message carry FS_LAYOUT_INO_BITS
 * and a counter; paths maps each to "FOLDER_ID:UID/name/name" and inos
 * back, for the life of the mount (the kernel may hold any of them), so a
 * rebuilt tree keeps its inode numbers. One mutex guards everything here;
 * it is never held across a fetch or a build, and nothing from a tree
 * escapes it but copies and dup()ed fds.
 */
#include <errno.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/fetch.h"
#include "fs/layout.h"
#include "fs/names.h"
#include "fs/parts-lazy.h"
#include "fs/parts-mime.h"

#define PARTS_MAX_TREES 64
#define PARTS_TIMEOUT 86400.0 /* a message's parts never change */
/* Below this, one fetch of the whole message beats several small ones. */
#define PARTS_LAZY_MIN (1024 * 1024)

typedef struct {
	uint64_t key; /* folder_id << 32 | uid */
	PartsItem *root;
	int64_t date; /* INTERNALDATE: the times of its files */
	GList *lru;   /* its link in FsParts.lru */
	bool lazy;    /* built by section: files may still be fetched */
	uint32_t uidvalidity;
} PartsTree;

typedef struct {
	GMutex lock;
	GHashTable *trees; /* key -> PartsTree* (owned) */
	GQueue lru;        /* PartsTree*, used last at the head */
	GHashTable *inos;  /* path -> ino */
	GHashTable *paths; /* ino -> path (owns the strings) */
	uint64_t next_ino;
	char *tmpdir;
	uint64_t lazy_min; /* messages this large go by section */
} FsParts;

static void tree_free(void *data)
{
	PartsTree *t = data;

	fs_parts_item_free(t->root);
	g_free(t);
}

static FsParts *parts_of(FsMount *mnt)
{
	static GMutex init_lock;
	FsParts *p;

	g_mutex_lock(&init_lock);
	p = mnt->layout_data;
	if (!p) {
		g_mime_init();
		p = g_new0(FsParts, 1);
		g_mutex_init(&p->lock);
		p->trees = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						 NULL, tree_free);
		g_queue_init(&p->lru);
		p->inos = g_hash_table_new(g_str_hash, g_str_equal);
		p->paths = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						 g_free, g_free);
		p->next_ino = 1;
		p->tmpdir =
		    g_build_filename(cache_store_dir(mnt->store), "tmp", NULL);
		p->lazy_min = PARTS_LAZY_MIN;
		/* for the tests: by section at any size */
		if (g_getenv("IMAPFS_PARTS_LAZY_MIN"))
			p->lazy_min = g_ascii_strtoull(
			    g_getenv("IMAPFS_PARTS_LAZY_MIN"), NULL, 10);
		mnt->layout_data = p;
	}
	g_mutex_unlock(&init_lock);
	return p;
}

static void parts_free(FsMount *mnt)
{
	FsParts *p = mnt->layout_data;

	if (!p)
		return;
	g_queue_clear(&p->lru);
	g_hash_table_unref(p->trees);
	g_hash_table_unref(p->inos);
	g_hash_table_unref(p->paths);
	g_mutex_clear(&p->lock);
	g_free(p->tmpdir);
	g_free(p);
	mnt->layout_data = NULL;
}

/* The inode of path (registered on first use). Under p->lock. */
static fuse_ino_t ino_for(FsParts *p, const char *path)
{
	gpointer v;
	uint64_t *key;
	char *copy;

	if (g_hash_table_lookup_extended(p->inos, path, NULL, &v))
		return (fuse_ino_t)(uintptr_t)v;
	key = g_new(uint64_t, 1);
	*key = FS_LAYOUT_INO_BITS | p->next_ino++;
	copy = g_strdup(path);
	g_hash_table_insert(p->paths, key, copy);
	g_hash_table_insert(p->inos, copy, (gpointer)(uintptr_t)*key);
	return (fuse_ino_t)*key;
}

/* The path of a message inode or of one of ours (g_free), or NULL. */
static char *path_of(FsMount *mnt, FsParts *p, fuse_ino_t ino)
{
	FsFolder *f;
	uint32_t folder_id = 0, uid = 0;
	uint64_t key = ino;
	char *path;

	if (!fs_layout_owns(ino)) {
		if (fs_tree_resolve(mnt->tree, ino, &f, &folder_id, &uid) !=
		    FS_INO_MESSAGE)
			return NULL;
		return g_strdup_printf("%u:%u", folder_id, uid);
	}
	g_mutex_lock(&p->lock);
	path = g_strdup(g_hash_table_lookup(p->paths, &key));
	g_mutex_unlock(&p->lock);
	return path;
}

/* The message's current listing entry: 0 with *mp (a copy, its name
 * not set) filled, or -ENOENT (expunged, or its folder's UIDVALIDITY
 * moved on). *fp and *lp (a reference) for the fetch. */
static int find_message(FsMount *mnt, uint32_t folder_id, uint32_t uid,
			FsFolder **fp, FsListing **lp, CacheMessage *mp)
{
	bool m;
	uint32_t fid = 0, u = 0;
	FsListing *l;

	if (fs_tree_resolve(mnt->tree, fs_tree_message_ino(folder_id, uid), fp,
			    &fid, &u) != FS_INO_MESSAGE)
		return -ENOENT;
	l = fs_folder_get_listing(*fp);
	if (!l || l->folder_id != folder_id) {
		fs_listing_unref(l);
		return -ENOENT;
	}
	g_mutex_lock(&(*fp)->lock);
	m = cache_folder_index_find(l->index, uid, mp, NULL);
	if (m)
		mp->name = NULL;
	g_mutex_unlock(&(*fp)->lock);
	if (!m) {
		fs_listing_unref(l);
		return -ENOENT;
	}
	*lp = l;
	return 0;
}

/* The UIDVALIDITY of folder_id's listing, or 0. */
static uint32_t folder_uidvalidity(FsFolder *f, uint32_t folder_id)
{
	uint32_t v = 0;

	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->folder_id == folder_id)
		v = f->listing->index->uidvalidity;
	g_mutex_unlock(&f->lock);
	return v;
}

static void evict(FsParts *p)
{
	while (g_queue_get_length(&p->lru) > PARTS_MAX_TREES) {
		PartsTree *t = g_queue_pop_tail(&p->lru);

		g_hash_table_remove(p->trees, &t->key);
	}
}

/* Forget t (under p->lock). */
static void drop_tree(FsParts *p, PartsTree *t)
{
	g_queue_delete_link(&p->lru, t->lru);
	g_hash_table_remove(p->trees, &t->key);
}

/* A new tree for the message: by section when it is large and not
 * cached (fs/parts-lazy.c), else from the whole body. NULL or -errno in
 * *rc. */
static PartsItem *build_tree(FsMount *mnt, FsParts *p, FsFolder *f,
			     FsListing *l, const CacheMessage *m, bool *lazy,
			     int *rc)
{
	CacheBody body;
	PartsItem *root = NULL;

	*lazy = false;
	if (m->size >= p->lazy_min && !fs_fetch_is_cached(mnt, f, l, m->uid))
		root = fs_parts_lazy_build(mnt, f, l->index->uidvalidity,
					   m->uid, m->size, p->tmpdir);
	if (root) {
		*lazy = true;
		return root;
	}
	*rc = fs_fetch_open(mnt, f, l, m->uid, false, &body);
	if (*rc < 0)
		return NULL;
	root = fs_parts_build(body.fd, body.offset, body.size, p->tmpdir);
	close(body.fd);
	*rc = root ? 0 : -EIO;
	return root;
}

/* The tree of the message, built when not at hand: 0 with p->lock held
 * and *tp set, or -errno without the lock. A tree built by section is
 * built again from the body once that is cached: no more fetches. */
static int lock_tree(FsMount *mnt, FsParts *p, uint32_t folder_id, uint32_t uid,
		     PartsTree **tp)
{
	uint64_t key = (uint64_t)folder_id << 32 | uid;
	PartsTree *t;
	FsFolder *f;
	FsListing *l = NULL;
	CacheMessage m;
	PartsItem *root;
	bool lazy, cached;
	int rc = find_message(mnt, folder_id, uid, &f, &l, &m);

	if (rc < 0)
		return rc;
	g_mutex_lock(&p->lock);
	t = g_hash_table_lookup(p->trees, &key);
	cached = t && t->lazy && fs_fetch_is_cached(mnt, f, l, uid);
	if (t && !cached) {
		g_queue_unlink(&p->lru, t->lru);
		g_queue_push_head_link(&p->lru, t->lru);
		fs_listing_unref(l);
		*tp = t;
		return 0;
	}
	if (t)
		drop_tree(p, t);
	g_mutex_unlock(&p->lock);
	root = build_tree(mnt, p, f, l, &m, &lazy, &rc);
	fs_listing_unref(l);
	if (!root)
		return rc;
	g_mutex_lock(&p->lock);
	t = g_hash_table_lookup(p->trees, &key);
	if (t) { /* another thread was quicker */
		fs_parts_item_free(root);
		*tp = t;
		return 0;
	}
	t = g_new0(PartsTree, 1);
	t->key = key;
	t->root = root;
	t->date = m.internaldate;
	t->lazy = lazy;
	t->uidvalidity = folder_uidvalidity(f, folder_id);
	g_queue_push_head(&p->lru, t);
	t->lru = p->lru.head;
	g_hash_table_insert(p->trees, &t->key, t);
	evict(p);
	*tp = t;
	return 0;
}

static PartsItem *child_named(PartsItem *dir, const char *name)
{
	for (guint i = 0; dir->children && i < dir->children->len; i++) {
		PartsItem *c = dir->children->pdata[i];

		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

/* The item that path names: 0 with p->lock held and *itp, *tp set, or
 * -errno without the lock. */
static int lock_item(FsMount *mnt, FsParts *p, const char *path,
		     PartsItem **itp, PartsTree **tp)
{
	uint32_t folder_id, uid;
	const char *slash = strchr(path, '/');
	g_auto(GStrv) names = NULL;
	PartsItem *it;
	int rc;

	if (sscanf(path, "%u:%u", &folder_id, &uid) != 2)
		return -ENOENT;
	rc = lock_tree(mnt, p, folder_id, uid, tp);
	if (rc < 0)
		return rc;
	it = (*tp)->root;
	if (slash) {
		names = g_strsplit(slash + 1, "/", -1);
		for (size_t i = 0; it && names[i]; i++)
			it = it->dir ? child_named(it, names[i]) : NULL;
	}
	if (!it) {
		g_mutex_unlock(&p->lock);
		return -ENOENT;
	}
	*itp = it;
	return 0;
}

static void item_attr(FsMount *mnt, const PartsTree *t, const PartsItem *it,
		      fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = mnt->uid;
	st->st_gid = mnt->gid;
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)t->date;
	if (it->dir) {
		st->st_mode = S_IFDIR | mnt->dir_mode;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blksize = 4096;
		return;
	}
	st->st_mode = S_IFREG | mnt->file_mode;
	st->st_nlink = 1;
	st->st_size = (off_t)it->size;
	st->st_blocks = (blkcnt_t)((it->size + 511) / 512);
	st->st_blksize = 65536;
}

static void fill_entry(FsMount *mnt, FsParts *p, const PartsTree *t,
		       const PartsItem *it, const char *path,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino_for(p, path);
	e->entry_timeout = PARTS_TIMEOUT;
	e->attr_timeout = PARTS_TIMEOUT;
	if (it->lazy == PARTS_LAZY_DECODE && it->fd < 0) /* size unknown */
		e->entry_timeout = e->attr_timeout = 0;
	item_attr(mnt, t, it, e->ino, &e->attr);
}

static int fetch_lazy(FsMount *mnt, FsParts *p, PartsTree *t, PartsItem *it,
		      const char *path, CacheBody *body);

/* Decode on first stat: an item whose size is known only once it is
 * fetched (PARTS_LAZY_DECODE, a server without BINARY) is fetched now.
 * Called with p->lock held (*itp, *tp from lock_item() of path), returns
 * 0 with it held (and *itp, *tp found again) or -errno without it. */
static int settle_size(FsMount *mnt, FsParts *p, const char *path,
		       PartsItem **itp, PartsTree **tp)
{
	CacheBody body;
	int rc;

	if ((*itp)->fd >= 0 || (*itp)->lazy != PARTS_LAZY_DECODE)
		return 0;
	rc = fetch_lazy(mnt, p, *tp, *itp, path, &body);
	if (rc < 0)
		return rc;
	close(body.fd);
	return lock_item(mnt, p, path, itp, tp);
}

static int parts_lookup(FsMount *mnt, fuse_ino_t parent, const char *name,
			struct fuse_entry_param *e)
{
	FsParts *p = parts_of(mnt);
	g_autofree char *path = path_of(mnt, p, parent);
	g_autofree char *child_path = NULL;
	PartsItem *dir, *it;
	PartsTree *t;
	int rc;

	if (!path)
		return -ENOENT;
	rc = lock_item(mnt, p, path, &dir, &t);
	if (rc < 0)
		return rc;
	it = dir->dir ? child_named(dir, name) : NULL;
	if (it) {
		child_path = g_strdup_printf("%s/%s", path, name);
		rc = settle_size(mnt, p, child_path, &it, &t);
		if (rc < 0)
			return rc;
		fill_entry(mnt, p, t, it, child_path, e);
	}
	g_mutex_unlock(&p->lock);
	return it ? 0 : -ENOENT;
}

static int parts_getattr(FsMount *mnt, fuse_ino_t ino, struct stat *st,
			 double *timeout)
{
	FsParts *p = parts_of(mnt);
	g_autofree char *path = path_of(mnt, p, ino);
	PartsItem *it;
	PartsTree *t;
	int rc;

	if (!path)
		return -ENOENT;
	rc = lock_item(mnt, p, path, &it, &t);
	if (rc == 0)
		rc = settle_size(mnt, p, path, &it, &t);
	if (rc < 0)
		return rc;
	item_attr(mnt, t, it, ino, st);
	g_mutex_unlock(&p->lock);
	*timeout = PARTS_TIMEOUT;
	return 0;
}

/* An open directory: a snapshot of its entries. */
typedef struct {
	fuse_ino_t ino;
	GPtrArray *names; /* char* */
	GArray *entries;  /* struct fuse_entry_param */
} PartsDir;

static int parts_opendir(FsMount *mnt, fuse_ino_t ino, void **handle)
{
	FsParts *p = parts_of(mnt);
	g_autofree char *path = path_of(mnt, p, ino);
	PartsItem *dir;
	PartsTree *t;
	PartsDir *d;
	int rc;

	if (!path)
		return -ENOENT;
	rc = lock_item(mnt, p, path, &dir, &t);
	if (rc < 0)
		return rc;
	if (!dir->dir) {
		g_mutex_unlock(&p->lock);
		return -ENOTDIR;
	}
	d = g_new0(PartsDir, 1);
	d->ino = ino;
	d->names = g_ptr_array_new_with_free_func(g_free);
	d->entries = g_array_new(FALSE, TRUE, sizeof(struct fuse_entry_param));
	for (guint i = 0; i < dir->children->len; i++) {
		PartsItem *c = dir->children->pdata[i];
		g_autofree char *cp = g_strdup_printf("%s/%s", path, c->name);
		struct fuse_entry_param e;

		fill_entry(mnt, p, t, c, cp, &e);
		g_ptr_array_add(d->names, g_strdup(c->name));
		g_array_append_val(d->entries, e);
	}
	g_mutex_unlock(&p->lock);
	*handle = d;
	return 0;
}

static bool parts_dir_item(FsMount *mnt, void *handle, size_t i,
			   const char **name, struct fuse_entry_param *e)
{
	PartsDir *d = handle;

	memset(e, 0, sizeof(*e));
	if (i < 2) {
		*name = i == 0 ? "." : "..";
		e->attr.st_ino = d->ino;
		e->attr.st_mode = S_IFDIR;
		return true;
	}
	i -= 2;
	if (i >= d->names->len)
		return false;
	*name = d->names->pdata[i];
	*e = g_array_index(d->entries, struct fuse_entry_param, i);
	return true;
}

static void parts_releasedir(void *handle)
{
	PartsDir *d = handle;

	g_ptr_array_unref(d->names);
	g_array_unref(d->entries);
	g_free(d);
}

/* Fetch a file of a tree built by section; called with p->lock held
 * (t and it from lock_item()), returns without it. The section lands in
 * a temp file that the item keeps; message.eml is the cached body. */
static int fetch_lazy(FsMount *mnt, FsParts *p, PartsTree *t, PartsItem *it,
		      const char *path, CacheBody *body)
{
	uint32_t folder_id = (uint32_t)(t->key >> 32), uid = (uint32_t)t->key;
	uint32_t uidvalidity = t->uidvalidity;
	g_autofree char *section = g_strdup(it->section);
	g_autofree char *encoding = g_strdup(it->encoding);
	PartsItem want = { .lazy = it->lazy,
			   .section = section,
			   .encoding = encoding };
	int lazy = it->lazy, fd, rc;
	FsListing *l = NULL;
	CacheMessage m;
	uint64_t size = 0;
	FsFolder *f;

	g_mutex_unlock(&p->lock);
	rc = find_message(mnt, folder_id, uid, &f, &l, &m);
	if (rc < 0)
		return rc;
	if (lazy == PARTS_LAZY_WHOLE) {
		rc = fs_fetch_open(mnt, f, l, uid, false, body);
		fs_listing_unref(l);
		return rc == -ESTALE ? rc : rc < 0 ? -EIO : 0;
	}
	fd = fs_parts_lazy_fetch(mnt, f, uidvalidity, uid, &want, p->tmpdir,
				 &size);
	if (fd == -ESTALE) {
		fs_listing_unref(l);
		return fd;
	}
	if (fd < 0) {
		/* The server cannot decode it (Dovecot refuses BINARY of
		 * broken base64): the whole message, cached, then the tree
		 * is built again from it by lock_item(). */
		rc = fs_fetch_open(mnt, f, l, uid, false, body);
		if (rc == 0)
			close(body->fd);
	}
	fs_listing_unref(l);
	if (fd < 0 && rc < 0)
		return rc == -ESTALE ? rc : -EIO;
	rc = lock_item(mnt, p, path, &it, &t);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (fd >= 0 && it->fd < 0 && it->lazy == lazy &&
	    (lazy == PARTS_LAZY_SECTION || lazy == PARTS_LAZY_DECODE)) {
		if (lazy == PARTS_LAZY_SECTION && size != it->size)
			g_debug("UID %u section %s: %" G_GUINT64_FORMAT
				" bytes, BINARY.SIZE said %" G_GUINT64_FORMAT,
				uid, section, size, it->size);
		it->fd = g_steal_fd(&fd);
		it->size = size;
	}
	if (fd >= 0)
		close(fd);
	body->fd = it->fd >= 0 ? dup(it->fd) : -1;
	body->offset = it->offset;
	body->size = it->size;
	g_mutex_unlock(&p->lock);
	return body->fd < 0 ? -EIO : 0;
}

static int parts_open_file(FsMount *mnt, fuse_ino_t ino, CacheBody *body)
{
	FsParts *p = parts_of(mnt);
	g_autofree char *path = path_of(mnt, p, ino);
	PartsItem *it;
	PartsTree *t;
	int rc;

	if (!path)
		return -ENOENT;
	rc = lock_item(mnt, p, path, &it, &t);
	if (rc < 0)
		return rc;
	if (it->dir) {
		g_mutex_unlock(&p->lock);
		return -EISDIR;
	}
	if (it->fd < 0 && it->lazy != PARTS_LAZY_NONE)
		return fetch_lazy(mnt, p, t, it, path, body);
	body->fd = dup(it->fd);
	body->offset = it->offset;
	body->size = it->size;
	g_mutex_unlock(&p->lock);
	return body->fd < 0 ? -EIO : 0;
}

/* A message directory is named like its .eml file without ".eml". */
static const char *parts_entry_name(const CacheMessage *m, char *buf)
{
	size_t n = strlen(m->name);

	if (n > 4 && g_str_has_suffix(m->name, ".eml"))
		n -= 4;
	n = MIN(n, (size_t)FS_NAME_MAX);
	memcpy(buf, m->name, n);
	buf[n] = '\0';
	return buf;
}

static bool parts_entry_matches(const CacheMessage *m, const char *name)
{
	char buf[FS_NAME_MAX + 1];

	return strcmp(parts_entry_name(m, buf), name) == 0;
}

const FsLayout fs_layout_parts = {
	.name = "parts",
	.message_is_dir = true,
	.entry_name = parts_entry_name,
	.entry_matches = parts_entry_matches,
	.lookup = parts_lookup,
	.getattr = parts_getattr,
	.opendir = parts_opendir,
	.dir_item = parts_dir_item,
	.releasedir = parts_releasedir,
	.open_file = parts_open_file,
	.free = parts_free,
};
