/* fs/tree.c: folder tree built from LIST, and inode number mapping.
 *
 * Readers never lock the shape: each folder's children array is replaced
 * whole (copy on write, atomic pointer swap) when folders come and go, and
 * replaced arrays and vanished folders are kept until the tree is freed, so
 * a pointer read once stays valid. Updates are serialised by update_lock;
 * by_id is guarded by ids_lock (a reader-writer lock: lookups are hot).
 * The per-folder listing state has its own lock (FsFolder.lock).
 */
#include "fs/tree.h"

#include <errno.h>
#include <string.h>

#include "fs/names.h"
#include "imap/namespace.h"
#include "imap/ops.h"

struct FsTree {
	FsFolder *root;
	CacheStore *store;
	GPtrArray *all;        /* every FsFolder ever made, for freeing */
	GPtrArray *old_arrays; /* replaced children arrays, for freeing */
	GMutex update_lock;
	GRWLock ids_lock;
	GHashTable *by_id; /* id -> FsFolder*, live directories */
	GMutex folder_id_lock;
	GHashTable *by_folder_id; /* folder_id -> FsFolder* */
	GHashTable *gone; /* path_raw -> FsFolder*, vanished folders, for
			     revival when the name comes back; under
			     update_lock */
	FsLinks *links;   /* messages in several folders (fs/links.h) */
	ImapNamespace ns; /* personal prefix shown at the top; "" for none */
};

static FsFolder *folder_new(FsTree *tree, FsFolder *parent, const char *name,
			    const char *path_raw)
{
	FsFolder *f = g_new0(FsFolder, 1);

	f->parent = parent;
	f->name = g_strdup(name);
	f->path_raw = g_strdup(path_raw);
	f->children = g_ptr_array_new();
	g_mutex_init(&f->lock);
	g_cond_init(&f->synced);
	g_ptr_array_add(tree->all, f);
	return f;
}

static void folder_free(FsFolder *f)
{
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

GPtrArray *fs_folder_children(const FsFolder *f)
{
	return __atomic_load_n(&f->children, __ATOMIC_ACQUIRE);
}

static int cmp_child(gconstpointer a, gconstpointer b)
{
	const FsFolder *x = *(FsFolder *const *)a, *y = *(FsFolder *const *)b;

	return strcmp(x->name, y->name);
}

/* Publish a new children array for f; the old one stays readable. */
static void set_children(FsTree *tree, FsFolder *f, GPtrArray *children)
{
	GPtrArray *old = fs_folder_children(f);

	g_ptr_array_sort(children, cmp_child);
	g_atomic_pointer_set(&f->children, children);
	g_ptr_array_add(tree->old_arrays, old);
}

static FsFolder *find_by_path(GPtrArray *children, const char *path_raw)
{
	for (guint i = 0; i < children->len; i++) {
		FsFolder *f = children->pdata[i];

		if (strcmp(f->path_raw, path_raw) == 0)
			return f;
	}
	return NULL;
}

/* The child of parent whose raw path is path_raw, created if needed.
 * Under update_lock. */
/* Mark f gone or back, under its lock so that a sync swapping its listing
 * (fs/sync.c) sees one or the other: a folder that vanished no longer
 * holds its messages' links (reads of a message also elsewhere go there),
 * one that came back holds them again. */
static void set_gone(FsTree *tree, FsFolder *f, bool gone)
{
	g_mutex_lock(&f->lock);
	if (f->listing && f->gone && !gone)
		fs_links_replace(tree->links, 0, NULL, f->listing->folder_id,
				 f->listing->index, NULL);
	else if (f->listing && !f->gone && gone)
		fs_links_replace(tree->links, f->listing->folder_id,
				 f->listing->index, 0, NULL, NULL);
	f->gone = gone;
	g_mutex_unlock(&f->lock);
}

static FsFolder *child_for(FsTree *tree, FsFolder *parent, const char *seg,
			   size_t seglen, const char *path_raw, bool *added,
			   GError **error)
{
	GPtrArray *children = fs_folder_children(parent);
	g_autofree char *name = NULL;
	GPtrArray *copy;
	FsFolder *f;
	uint32_t id;
	int rc;

	f = find_by_path(children, path_raw);
	if (f)
		return f;
	f = g_hash_table_lookup(tree->gone, path_raw);
	if (f && f->parent == parent) {
		/* The same name is back (deleted and recreated, or a
		 * passing glitch): revive the folder, so that its next sync
		 * compares UIDVALIDITY with what it had and drops old data
		 * if the folder is new. */
		g_hash_table_remove(tree->gone, path_raw);
		set_gone(tree, f, false);
		copy = g_ptr_array_copy(children, NULL, NULL);
		g_ptr_array_add(copy, f);
		set_children(tree, parent, copy);
		g_rw_lock_writer_lock(&tree->ids_lock);
		g_hash_table_insert(tree->by_id, GUINT_TO_POINTER(f->id), f);
		g_rw_lock_writer_unlock(&tree->ids_lock);
		*added = true;
		return f;
	}
	if (parent == tree->root && seglen == 5 &&
	    g_ascii_strncasecmp(seg, "INBOX", 5) == 0)
		name = g_strdup("INBOX");
	else
		name = fs_name_for_folder(seg, seglen);
	/* Two server names may decode to the same text, or a personal
	 * folder shown at the top meet one outside the namespace: the one
	 * added first (personal ones are) keeps the name. */
	if (fs_folder_child(parent, name)) {
		char *other =
		    fs_name_disambiguate(name, path_raw, strlen(path_raw));
		g_message("folders %s and %s would both be shown as %s: %s "
			  "is shown as %s",
			  fs_folder_child(parent, name)->path_raw, path_raw,
			  name, path_raw, other);
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
	f = folder_new(tree, parent, name, path_raw);
	f->id = id;
	copy = g_ptr_array_copy(children, NULL, NULL);
	g_ptr_array_add(copy, f);
	set_children(tree, parent, copy);
	g_rw_lock_writer_lock(&tree->ids_lock);
	g_hash_table_insert(tree->by_id, GUINT_TO_POINTER(id), f);
	g_rw_lock_writer_unlock(&tree->ids_lock);
	*added = true;
	return f;
}

/* Add one LIST entry (and its parents). Under update_lock. Marks every
 * node on the path in seen. */
static int add_entry(FsTree *tree, const CacheFolderEntry *e, GHashTable *seen,
		     void (*changed)(FsFolder *, FsFolder *, void *),
		     void *data, GError **error)
{
	FsFolder *cur = tree->root;
	const char *name = e->name;
	const char *inner = imap_namespace_strip(&tree->ns, name, e->delimiter);
	const char *p = inner ? inner : name;

	if (e->flags & CACHE_FOLDER_NONEXISTENT)
		return 0;
	for (;;) {
		const char *end = e->delimiter ? strchr(p, e->delimiter) : NULL;
		size_t seglen = end ? (size_t)(end - p) : strlen(p);
		g_autofree char *prefix =
		    g_strndup(name, (size_t)(p - name) + seglen);
		FsFolder *parent = cur;
		bool added = false;

		cur = child_for(tree, parent, p, seglen, prefix, &added, error);
		if (!cur)
			return -EIO;
		if (added && changed)
			changed(parent, cur, data);
		g_hash_table_add(seen, cur);
		if (!end)
			break;
		p = end + 1;
	}
	if (!(e->flags & CACHE_FOLDER_NOSELECT) && !cur->selectable) {
		g_free(cur->raw);
		cur->raw = g_strdup(name);
		cur->selectable = true;
	}
	return 0;
}

/* c and everything below it vanished from the server. */
static void mark_gone(FsTree *tree, FsFolder *c)
{
	GPtrArray *children = fs_folder_children(c);

	set_gone(tree, c, true);
	g_hash_table_replace(tree->gone, c->path_raw, c);
	g_rw_lock_writer_lock(&tree->ids_lock);
	g_hash_table_remove(tree->by_id, GUINT_TO_POINTER(c->id));
	g_rw_lock_writer_unlock(&tree->ids_lock);
	for (guint i = 0; i < children->len; i++)
		mark_gone(tree, children->pdata[i]);
}

/* Unlink every folder below f that is not in seen. Under update_lock. */
static int prune(FsTree *tree, FsFolder *f, GHashTable *seen,
		 void (*changed)(FsFolder *, FsFolder *, void *), void *data)
{
	GPtrArray *children = fs_folder_children(f);
	GPtrArray *keep = g_ptr_array_new();
	int removed = 0, n = 0;

	for (guint i = 0; i < children->len; i++) {
		FsFolder *c = children->pdata[i];

		if (g_hash_table_contains(seen, c)) {
			g_ptr_array_add(keep, c);
			n += prune(tree, c, seen, changed, data);
			continue;
		}
		mark_gone(tree, c);
		if (changed)
			changed(f, c, data);
		removed++;
	}
	if (removed)
		set_children(tree, f, keep);
	else
		g_ptr_array_unref(keep);
	return n + removed;
}

static int entry_rank(const FsTree *tree, const CacheFolderEntry *e)
{
	if (!tree->ns.prefix[0] || g_ascii_strcasecmp(e->name, "INBOX") == 0)
		return 0;
	return imap_namespace_strip(&tree->ns, e->name, e->delimiter) ? 1 : 2;
}

static int apply(FsTree *tree, GPtrArray *entries,
		 void (*changed)(FsFolder *, FsFolder *, void *), void *data,
		 GError **error)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
	int n = 0;

	/* INBOX, then personal folders, then the rest: the first keeps a
	 * name that two would be shown as (INBOX.INBOX, or INBOX.X and a
	 * shared X, when the personal namespace is at the top). */
	for (int pass = 0; pass < 3; pass++) {
		for (guint i = 0; i < entries->len; i++) {
			const CacheFolderEntry *e = entries->pdata[i];

			if (entry_rank(tree, e) != pass)
				continue;
			if (add_entry(tree, e, seen, changed, data, error) < 0)
				return -EIO;
		}
	}
	n += prune(tree, tree->root, seen, changed, data);
	return n;
}

void fs_tree_collect_folder(void *user_data, const char *name, char delimiter,
			    unsigned flags)
{
	GPtrArray *entries = user_data;
	uint32_t cflags = 0;

	if (flags & IMAP_MAILBOX_NOSELECT)
		cflags |= CACHE_FOLDER_NOSELECT;
	if (flags & IMAP_MAILBOX_NOINFERIORS)
		cflags |= CACHE_FOLDER_NOINFERIORS;
	if (flags & IMAP_MAILBOX_NONEXISTENT)
		cflags |= CACHE_FOLDER_NONEXISTENT;
	g_ptr_array_add(entries,
			cache_folder_entry_new(name, delimiter, cflags));
}

FsTree *fs_tree_new(CacheStore *store, GPtrArray *entries, GError **error)
{
	return fs_tree_new_ns(store, entries, NULL, error);
}

FsTree *fs_tree_new_ns(CacheStore *store, GPtrArray *entries,
		       const ImapNamespace *ns, GError **error)
{
	FsTree *tree = g_new0(FsTree, 1);

	tree->store = store;
	tree->ns.prefix = g_strdup(ns && ns->prefix ? ns->prefix : "");
	tree->ns.delimiter = ns ? ns->delimiter : '\0';
	tree->all = g_ptr_array_new();
	tree->old_arrays =
	    g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
	g_mutex_init(&tree->update_lock);
	g_rw_lock_init(&tree->ids_lock);
	g_mutex_init(&tree->folder_id_lock);
	tree->by_id = g_hash_table_new(g_direct_hash, g_direct_equal);
	tree->by_folder_id = g_hash_table_new(g_direct_hash, g_direct_equal);
	tree->gone = g_hash_table_new(g_str_hash, g_str_equal);
	tree->links = fs_links_new();
	tree->root = folder_new(tree, NULL, "", "");
	g_mutex_lock(&tree->update_lock);
	if (apply(tree, entries, NULL, NULL, error) < 0) {
		g_mutex_unlock(&tree->update_lock);
		fs_tree_free(tree);
		return NULL;
	}
	g_mutex_unlock(&tree->update_lock);
	return tree;
}

typedef struct {
	void (*fn)(FsFolder *, FsFolder *, void *);
	void *data;
	int n;
} ChangeSink;

static void forward_change(FsFolder *parent, FsFolder *child, void *data)
{
	ChangeSink *cs = data;

	cs->n++;
	if (cs->fn)
		cs->fn(parent, child, cs->data);
}

int fs_tree_update(FsTree *tree, GPtrArray *entries,
		   void (*changed)(FsFolder *parent, FsFolder *child,
				   void *data),
		   void *data)
{
	g_autoptr(GError) error = NULL;
	ChangeSink cs = { changed, data, 0 };
	int rc;

	g_mutex_lock(&tree->update_lock);
	rc = apply(tree, entries, forward_change, &cs, &error);
	g_mutex_unlock(&tree->update_lock);
	if (rc < 0) {
		g_warning("cannot update the folder tree: %s",
			  error ? error->message : "unknown error");
		return rc;
	}
	return cs.n;
}

void fs_tree_free(FsTree *tree)
{
	if (!tree)
		return;
	for (guint i = 0; i < tree->all->len; i++)
		folder_free(tree->all->pdata[i]);
	g_ptr_array_unref(tree->all);
	g_ptr_array_unref(tree->old_arrays);
	g_hash_table_unref(tree->by_id);
	g_hash_table_unref(tree->by_folder_id);
	g_hash_table_unref(tree->gone);
	fs_links_free(tree->links);
	imap_namespace_clear(&tree->ns);
	g_mutex_clear(&tree->update_lock);
	g_rw_lock_clear(&tree->ids_lock);
	g_mutex_clear(&tree->folder_id_lock);
	g_free(tree);
}

static void visit(FsFolder *f, void (*fn)(FsFolder *, void *), void *data)
{
	GPtrArray *children = fs_folder_children(f);

	fn(f, data);
	for (guint i = 0; i < children->len; i++)
		visit(children->pdata[i], fn, data);
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

fuse_ino_t fs_tree_message_ino(uint32_t folder_id, uint32_t uid)
{
	return (fuse_ino_t)folder_id << 32 | uid;
}

FsInoKind fs_tree_resolve(FsTree *tree, fuse_ino_t ino, FsFolder **folder,
			  uint32_t *folder_id, uint32_t *uid)
{
	uint32_t hi = (uint32_t)(ino >> 32), lo = (uint32_t)ino;
	FsFolder *f;

	if (ino == FUSE_ROOT_ID) {
		*folder = tree->root;
		return FS_INO_DIR;
	}
	if (fs_links_is_link_ino(ino)) {
		if (!fs_links_resolve(tree->links, ino, &hi, &lo))
			return FS_INO_NONE;
	} else if (lo == 0) {
		g_rw_lock_reader_lock(&tree->ids_lock);
		f = g_hash_table_lookup(tree->by_id, GUINT_TO_POINTER(hi));
		g_rw_lock_reader_unlock(&tree->ids_lock);
		if (!f)
			return FS_INO_NONE;
		*folder = f;
		return FS_INO_DIR;
	}
	g_mutex_lock(&tree->folder_id_lock);
	f = g_hash_table_lookup(tree->by_folder_id, GUINT_TO_POINTER(hi));
	g_mutex_unlock(&tree->folder_id_lock);
	if (!f || f->gone)
		return FS_INO_NONE;
	*folder = f;
	*folder_id = hi;
	*uid = lo;
	return FS_INO_MESSAGE;
}

void fs_tree_register_folder_id(FsTree *tree, uint32_t folder_id, FsFolder *f)
{
	g_mutex_lock(&tree->folder_id_lock);
	g_hash_table_insert(tree->by_folder_id, GUINT_TO_POINTER(folder_id), f);
	g_mutex_unlock(&tree->folder_id_lock);
}

FsLinks *fs_tree_links(FsTree *tree)
{
	return tree->links;
}

FsFolder *fs_folder_child(const FsFolder *f, const char *name)
{
	GPtrArray *children = fs_folder_children(f);

	for (guint i = 0; i < children->len; i++) {
		FsFolder *c = children->pdata[i];

		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

FsListing *fs_listing_new(uint32_t folder_id, CacheFolderIndex *index)
{
	FsListing *l = g_new0(FsListing, 1);

	l->refs = 1;
	l->folder_id = folder_id;
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
