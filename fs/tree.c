/* fs/tree.c: folder tree built from LIST, and inode number mapping.
 *
 * The tree's shape is fixed once built; only the per-folder listing state
 * changes (under each folder's lock). The gen table (id of folder +
 * UIDVALIDITY -> folder) grows as listings load, under tree->lock.
 */
#include "fs/tree.h"

#include <errno.h>
#include <string.h>

#include "fs/names.h"

struct FsTree {
	FsFolder *root;
	GHashTable *by_id;   /* id -> FsFolder*, directories */
	GMutex lock;
	GHashTable *by_gen;  /* gen -> FsFolder*, under lock */
	CacheStore *store;
};

static FsFolder *folder_new(FsFolder *parent, const char *name,
			    const char *path_raw)
{
	FsFolder *f = g_new0(FsFolder, 1);

	f->parent = parent;
	f->name = g_strdup(name);
	f->path_raw = g_strdup(path_raw);
	f->children = g_ptr_array_new();
	g_mutex_init(&f->lock);
	g_cond_init(&f->synced);
	return f;
}

static void folder_free(FsFolder *f)
{
	for (guint i = 0; i < f->children->len; i++)
		folder_free(f->children->pdata[i]);
	g_ptr_array_unref(f->children);
	if (f->listing)
		fs_listing_unref(f->listing);
	g_mutex_clear(&f->lock);
	g_cond_clear(&f->synced);
	g_free(f->raw);
	g_free(f->path_raw);
	g_free(f->name);
	g_free(f);
}

/* The child of parent whose raw path is path_raw, created if needed. */
static FsFolder *child_for(FsTree *tree, FsFolder *parent, const char *seg,
			   size_t seglen, const char *path_raw, GError **error)
{
	g_autofree char *name = NULL;
	FsFolder *f;
	uint32_t id;
	int rc;

	for (guint i = 0; i < parent->children->len; i++) {
		f = parent->children->pdata[i];
		if (strcmp(f->path_raw, path_raw) == 0)
			return f;
	}
	if (parent == tree->root && seglen == 5 &&
	    g_ascii_strncasecmp(seg, "INBOX", 5) == 0)
		name = g_strdup("INBOX");
	else
		name = fs_name_for_folder(seg, seglen);
	/* Two server names may decode to the same text. */
	if (fs_folder_child(parent, name)) {
		char *other = fs_name_disambiguate(name, path_raw,
						   strlen(path_raw));
		g_free(name);
		name = other;
	}
	rc = cache_store_folder_id(tree->store, path_raw, 0, &id);
	if (rc < 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-rc),
			    "cannot record folder ids in the cache: %s",
			    g_strerror(-rc));
		return NULL;
	}
	f = folder_new(parent, name, path_raw);
	f->id = id;
	g_ptr_array_add(parent->children, f);
	g_hash_table_insert(tree->by_id, GUINT_TO_POINTER(id), f);
	return f;
}

static int cmp_child(gconstpointer a, gconstpointer b)
{
	const FsFolder *x = *(FsFolder *const *)a, *y = *(FsFolder *const *)b;

	return strcmp(x->name, y->name);
}

static void sort_children(FsFolder *f, void *data)
{
	g_ptr_array_sort(f->children, cmp_child);
}

static int add_entry(FsTree *tree, const CacheFolderEntry *e, GError **error)
{
	FsFolder *cur = tree->root;
	const char *name = e->name;
	const char *p = name;

	if (e->flags & CACHE_FOLDER_NONEXISTENT)
		return 0;
	for (;;) {
		const char *end = e->delimiter ? strchr(p, e->delimiter) : NULL;
		size_t seglen = end ? (size_t)(end - p) : strlen(p);
		g_autofree char *prefix =
			g_strndup(name, (size_t)(p - name) + seglen);

		cur = child_for(tree, cur, p, seglen, prefix, error);
		if (!cur)
			return -EIO;
		if (!end)
			break;
		p = end + 1;
	}
	if (!(e->flags & CACHE_FOLDER_NOSELECT)) {
		cur->selectable = true;
		g_free(cur->raw);
		cur->raw = g_strdup(name);
	}
	return 0;
}

FsTree *fs_tree_new(CacheStore *store, GPtrArray *entries, GError **error)
{
	FsTree *tree = g_new0(FsTree, 1);

	tree->store = store;
	tree->root = folder_new(NULL, "", "");
	tree->by_id = g_hash_table_new(g_direct_hash, g_direct_equal);
	tree->by_gen = g_hash_table_new(g_direct_hash, g_direct_equal);
	g_mutex_init(&tree->lock);
	for (guint i = 0; i < entries->len; i++) {
		if (add_entry(tree, entries->pdata[i], error) < 0) {
			fs_tree_free(tree);
			return NULL;
		}
	}
	fs_tree_foreach(tree, sort_children, NULL);
	return tree;
}

void fs_tree_free(FsTree *tree)
{
	if (!tree)
		return;
	folder_free(tree->root);
	g_hash_table_unref(tree->by_id);
	g_hash_table_unref(tree->by_gen);
	g_mutex_clear(&tree->lock);
	g_free(tree);
}

FsFolder *fs_tree_root(FsTree *tree)
{
	return tree->root;
}

static void visit(FsFolder *f, void (*fn)(FsFolder *, void *), void *data)
{
	fn(f, data);
	for (guint i = 0; i < f->children->len; i++)
		visit(f->children->pdata[i], fn, data);
}

void fs_tree_foreach(FsTree *tree, void (*fn)(FsFolder *f, void *data),
		     void *data)
{
	visit(tree->root, fn, data);
}

fuse_ino_t fs_tree_dir_ino(const FsFolder *f)
{
	return f->id == 0 ? FUSE_ROOT_ID : (fuse_ino_t)f->id << 32;
}

fuse_ino_t fs_tree_message_ino(uint32_t gen, uint32_t uid)
{
	return (fuse_ino_t)gen << 32 | uid;
}

FsInoKind fs_tree_resolve(FsTree *tree, fuse_ino_t ino, FsFolder **folder,
			  uint32_t *gen, uint32_t *uid)
{
	uint32_t hi = (uint32_t)(ino >> 32), lo = (uint32_t)ino;
	FsFolder *f;

	if (ino == FUSE_ROOT_ID) {
		*folder = tree->root;
		return FS_INO_DIR;
	}
	if (lo == 0) {
		f = g_hash_table_lookup(tree->by_id, GUINT_TO_POINTER(hi));
		if (!f)
			return FS_INO_NONE;
		*folder = f;
		return FS_INO_DIR;
	}
	g_mutex_lock(&tree->lock);
	f = g_hash_table_lookup(tree->by_gen, GUINT_TO_POINTER(hi));
	g_mutex_unlock(&tree->lock);
	if (!f)
		return FS_INO_NONE;
	*folder = f;
	*gen = hi;
	*uid = lo;
	return FS_INO_MESSAGE;
}

void fs_tree_register_gen(FsTree *tree, uint32_t gen, FsFolder *f)
{
	g_mutex_lock(&tree->lock);
	g_hash_table_insert(tree->by_gen, GUINT_TO_POINTER(gen), f);
	g_mutex_unlock(&tree->lock);
}

FsFolder *fs_folder_child(const FsFolder *f, const char *name)
{
	for (guint i = 0; i < f->children->len; i++) {
		FsFolder *c = f->children->pdata[i];

		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

FsListing *fs_listing_new(uint32_t gen, CacheFolderIndex *index)
{
	FsListing *l = g_new0(FsListing, 1);

	l->refs = 1;
	l->gen = gen;
	l->index = index;
	return l;
}

FsListing *fs_listing_ref(FsListing *l)
{
	g_atomic_int_inc(&l->refs);
	return l;
}

void fs_listing_unref(FsListing *l)
{
	if (l && g_atomic_int_dec_and_test(&l->refs)) {
		cache_folder_index_free(l->index);
		g_free(l);
	}
}

FsListing *fs_folder_get_listing(FsFolder *f)
{
	FsListing *l;

	g_mutex_lock(&f->lock);
	l = f->listing ? fs_listing_ref(f->listing) : NULL;
	g_mutex_unlock(&f->lock);
	return l;
}
