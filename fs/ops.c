/* fs/ops.c: the FUSE low-level operations.
 *
 * Handlers run on libfuse's worker threads. They never block on a lock
 * while doing network I/O (sync and fetch wait on the pool, bounded by its
 * timeout), and never notify the kernel themselves (fs/inval.c does).
 * Messages never change for a given inode, so their entries and attributes
 * are cached by the kernel for a long time once their size is exact; OPEN
 * and FLUSH are answered ENOSYS so the kernel stops sending them and keeps
 * the page cache.
 */
#include "fs/ops.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/fetch.h"
#include "fs/kernel-settings.h"
#include "fs/layout.h"
#include "fs/maildir.h"
#include "fs/names.h"
#include "fs/search.h"
#include "fs/sync.h"
#include "fs/xattr.h"

#define NEGATIVE_TIMEOUT 10.0
#define SMALL_READ (128 * 1024)

static bool no_open_supported;
static time_t mount_time;

static FsMount *mount_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void dir_attr(FsMount *mnt, const FsFolder *f, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = fs_tree_dir_ino(f);
	st->st_mode = S_IFDIR | mnt->dir_mode;
	st->st_nlink = 2 + fs_folder_children(f)->len;
	st->st_uid = mnt->uid;
	st->st_gid = mnt->gid;
	st->st_size = 4096;
	st->st_blksize = 4096;
	st->st_mtime = st->st_ctime = st->st_atime = mount_time;
}

/* A message the server shows in several folders is one inode there: a
 * hard link. Not where a message is a directory (--layout=parts): a
 * directory has one parent. */
static fuse_ino_t message_ino(FsMount *mnt, uint32_t folder_id,
			      const CacheMessage *m)
{
	return m->gid && !mnt->layout->message_is_dir
		   ? fs_links_ino(m->gid)
		   : fs_tree_message_ino(folder_id, m->uid);
}

static void message_attr(FsMount *mnt, uint32_t folder_id,
			 const CacheMessage *m, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = message_ino(mnt, folder_id, m);
	st->st_mode = S_IFREG | mnt->file_mode;
	if (mnt->layout->message_is_dir) {
		st->st_mode = S_IFDIR | mnt->dir_mode;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blksize = 4096;
		st->st_uid = mnt->uid;
		st->st_gid = mnt->gid;
		st->st_mtime = st->st_ctime = st->st_atime =
		    (time_t)m->internaldate;
		return;
	}
	st->st_nlink =
	    m->gid ? fs_links_count(fs_tree_links(mnt->tree), m->gid) : 1;
	st->st_uid = mnt->uid;
	st->st_gid = mnt->gid;
	st->st_size = (off_t)m->size;
	st->st_blocks = (blkcnt_t)((m->size + 511) / 512);
	st->st_blksize = 65536;
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)m->internaldate;
}

/* Sizes start as RFC822.SIZE hints; the read that fetches a body corrects
 * a wrong hint and tells the kernel before it answers (op_read), so even
 * hinted attributes can be cached long. */
static double message_attr_timeout(const CacheMessage *m)
{
	/* A hint of 0 would make the kernel skip reading altogether: let it
	 * ask again, and getattr fetches the body (settle_zero_size). */
	if (!m->size_exact && m->size == 0)
		return 0.0;
	return FS_MESSAGE_TIMEOUT;
}

static void dir_entry(FsMount *mnt, const FsFolder *f,
		      struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = fs_tree_dir_ino(f);
	e->attr_timeout = FS_DIR_TIMEOUT;
	e->entry_timeout = FS_DIR_TIMEOUT;
	dir_attr(mnt, f, &e->attr);
}

/* Look up uid in f's listing of generation folder_id (0: the current one) and
 * fill e. Returns 0 or -ENOENT. */
static int message_entry(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			 uint32_t uid, const char *name,
			 struct fuse_entry_param *e, bool *exact)
{
	CacheMessage mm, *m;
	int rc = -ENOENT;

	g_mutex_lock(&f->lock);
	if (f->listing &&
	    (folder_id == 0 || f->listing->folder_id == folder_id)) {
		m = cache_folder_index_find(f->listing->index, uid, &mm, NULL)
			? &mm
			: NULL;
		if (m && (!name || mnt->layout->entry_matches(m, name))) {
			memset(e, 0, sizeof(*e));
			e->ino = message_ino(mnt, f->listing->folder_id, m);
			e->entry_timeout = FS_MESSAGE_TIMEOUT;
			e->attr_timeout = message_attr_timeout(m);
			message_attr(mnt, f->listing->folder_id, m, &e->attr);
			if (exact)
				*exact = m->size_exact;
			rc = 0;
		}
	}
	g_mutex_unlock(&f->lock);
	return rc;
}

/* A server that claims RFC822.SIZE 0 would make the kernel believe the
 * file is empty and never read it: learn the real size first. */
static void settle_zero_size(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			     uint32_t uid, bool exact,
			     struct fuse_entry_param *e)
{
	FsListing *l;
	CacheBody body;
	int rc;

	if (e->attr.st_size != 0 || exact || mnt->layout->message_is_dir)
		return;
	l = fs_folder_get_listing(f);
	if (!l)
		return;
	rc = fs_fetch_open(mnt, f, l, uid, false, &body);
	fs_listing_unref(l);
	if (rc == 0) {
		close(body.fd);
		message_entry(mnt, f, folder_id, uid, NULL, e, NULL);
	}
}

static void reply_negative(fuse_req_t req)
{
	struct fuse_entry_param e = { 0 };

	e.ino = 0; /* a cached negative entry */
	e.entry_timeout = NEGATIVE_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void dir_handle_free(void *data);

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	FsMount *mnt = userdata;

	/* INIT comes before any other request, on one thread. */
	g_mutex_init(&mnt->dirs_lock);
	mnt->open_dirs = g_hash_table_new_full(g_direct_hash, g_direct_equal,
					       dir_handle_free, NULL);
	mount_time = time(NULL);
	no_open_supported = fs_kernel_settings_apply(conn);
}

static void op_destroy(void *userdata)
{
	fs_sync_save_dirty(userdata);
}

/* An inode of the .search tree (fs/search.h); the layout's own inodes
 * (fs/layout.h) share its bit 63 and are asked first. */
static bool search_ino(fuse_ino_t ino)
{
	return fs_search_owns(ino) && !fs_layout_owns(ino);
}

/* Does a request on ino (of kind) go to the layout's hooks? */
static bool layout_ino(FsMount *mnt, fuse_ino_t ino, FsInoKind kind)
{
	return mnt->layout->message_is_dir &&
	       (kind == FS_INO_MESSAGE ||
		(kind == FS_INO_NONE && fs_layout_owns(ino)));
}

static void layout_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int rc = mount_of(req)->layout->lookup(mount_of(req), parent, name, &e);

	if (rc == -ENOENT)
		reply_negative(req);
	else if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/* ---- the maildir layout: cur/ new/ tmp/ (fs/maildir.h) ---- */

static void maildir_entry(FsMount *mnt, FsFolder *f, int which,
			  struct fuse_entry_param *e)
{
	dir_entry(mnt, f, e);
	e->ino = fs_maildir_ino(f, which);
	e->attr.st_ino = e->ino;
	e->attr.st_nlink = 2;
}

/* Does m of f's current listing have the cur/ name name? */
static bool maildir_name_is(FsFolder *f, uint32_t uid, const char *name)
{
	char buf[FS_NAME_MAX + 1];
	CacheMessage m;
	bool same = false;

	g_mutex_lock(&f->lock);
	if (f->listing &&
	    cache_folder_index_find(f->listing->index, uid, &m, NULL))
		same = strcmp(fs_maildir_name(
				  &m, f->listing->index->uidvalidity, buf),
			      name) == 0;
	g_mutex_unlock(&f->lock);
	return same;
}

/* LOOKUP in cur/, new/ or tmp/. A name with outdated flags is ENOENT,
 * as it is for a file renamed on a local Maildir. */
static void maildir_lookup(fuse_req_t req, FsMount *mnt, fuse_ino_t parent,
			   const char *name)
{
	struct fuse_entry_param e;
	bool exact = false;
	FsFolder *f;
	uint32_t uid;
	int which, rc;

	if (fs_maildir_resolve(mnt, parent, &f, &which) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (which != FS_MAILDIR_CUR || !f->selectable ||
	    !fs_maildir_parse_uid(name, &uid)) {
		reply_negative(req);
		return;
	}
	rc = fs_sync_folder(mnt, f, FS_SYNC_IF_MISSING);
	if (rc < 0 && rc != -ENOENT) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (maildir_name_is(f, uid, name) &&
	    message_entry(mnt, f, 0, uid, NULL, &e, &exact) == 0) {
		settle_zero_size(mnt, f, 0, uid, exact, &e);
		fuse_reply_entry(req, &e);
	} else {
		reply_negative(req);
	}
}

/* LOOKUP of name in folder f's directory in the maildir layout: cur/,
 * new/, tmp/ and subfolders, never messages. */
static void maildir_folder_lookup(fuse_req_t req, FsMount *mnt, FsFolder *f,
				  const char *name)
{
	struct fuse_entry_param e;
	char buf[FS_NAME_MAX + 1];
	const char *real = fs_maildir_child_real(name, buf);
	int which = fs_maildir_which(name);
	FsFolder *child;

	if (which) {
		maildir_entry(mnt, f, which, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	child = fs_folder_child(f, real ? real : name);
	if (child) {
		dir_entry(mnt, child, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	if (!fs_search_lookup_dot(req, mnt->search, f, name))
		reply_negative(req);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FsMount *mnt = mount_of(req);
	struct fuse_entry_param e;
	FsFolder *f, *child;
	uint32_t folder_id, uid;
	bool exact = false;
	FsInoKind kind;
	int rc;

	if (mnt->layout->maildir && fs_layout_owns(parent)) {
		maildir_lookup(req, mnt, parent, name);
		return;
	}
	if (layout_ino(mnt, parent, FS_INO_NONE)) {
		layout_lookup(req, parent, name);
		return;
	}
	if (search_ino(parent)) {
		fs_search_lookup(req, mnt->search, parent, name);
		return;
	}
	kind = fs_tree_resolve(mnt->tree, parent, &f, &folder_id, &uid);
	if (layout_ino(mnt, parent, kind)) {
		layout_lookup(req, parent, name);
		return;
	}
	if (kind != FS_INO_DIR) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (mnt->layout->maildir) {
		maildir_folder_lookup(req, mnt, f, name);
		return;
	}
	child = fs_folder_child(f, name);
	if (child) {
		dir_entry(mnt, child, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	if (fs_search_lookup_dot(req, mnt->search, f, name))
		return;
	/* Names that cannot be messages (".hidden", "desktop.ini") never
	 * cost a server round trip. */
	if (!f->selectable || !fs_name_parse_uid(name, &uid)) {
		reply_negative(req);
		return;
	}
	rc = fs_sync_folder(mnt, f, FS_SYNC_IF_MISSING);
	if (rc < 0 && rc != -ENOENT) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (message_entry(mnt, f, 0, uid, name, &e, &exact) == 0) {
		settle_zero_size(mnt, f, 0, uid, exact, &e);
		fuse_reply_entry(req, &e);
	} else {
		reply_negative(req);
	}
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	struct fuse_entry_param e;
	FsFolder *f;
	uint32_t folder_id = 0, uid = 0;
	bool exact = false;
	struct stat st;
	double timeout;
	FsInoKind kind = fs_tree_resolve(mnt->tree, ino, &f, &folder_id, &uid);
	int which;

	if (mnt->layout->maildir &&
	    fs_maildir_resolve(mnt, ino, &f, &which) == 0) {
		maildir_entry(mnt, f, which, &e);
		fuse_reply_attr(req, &e.attr, FS_DIR_TIMEOUT);
		return;
	}
	if (kind == FS_INO_NONE && layout_ino(mnt, ino, kind)) {
		int rc = mnt->layout->getattr(mnt, ino, &st, &timeout);

		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_attr(req, &st, timeout);
		return;
	}
	if (search_ino(ino)) {
		fs_search_getattr(req, mnt->search, ino);
		return;
	}
	switch (kind) {
	case FS_INO_DIR:
		dir_attr(mnt, f, &st);
		fuse_reply_attr(req, &st, FS_DIR_TIMEOUT);
		return;
	case FS_INO_MESSAGE:
		if (message_entry(mnt, f, folder_id, uid, NULL, &e, &exact) ==
		    0) {
			settle_zero_size(mnt, f, folder_id, uid, exact, &e);
			fuse_reply_attr(req, &e.attr, e.attr_timeout);
			return;
		}
		break;
	case FS_INO_NONE:
		break;
	}
	fuse_reply_err(req, ENOENT);
}

/* ---- directories ---- */

typedef struct {
	FsFolder *folder;
	GPtrArray *children; /* snapshot; arrays live as long as the tree */
	FsListing *listing;  /* may be NULL */
	void *layout_dir;    /* a layout's directory instead (fs/layout.h) */
	const FsLayout *layout;
	int maildir;     /* FS_MAILDIR_* of folder: its cur/ new/ or tmp/ */
	size_t noted_to; /* entries handed out and noted (note_entries()) */
} DirHandle;

static void dir_handle_free(void *data)
{
	DirHandle *dh = data;

	fs_listing_unref(dh->listing);
	if (dh->layout_dir)
		dh->layout->releasedir(dh->layout_dir);
	g_free(dh);
}

void fs_ops_release_dirs(FsMount *mnt)
{
	guint left;

	if (!mnt->open_dirs)
		return;
	left = g_hash_table_size(mnt->open_dirs);
	if (left)
		g_debug("%u directory handles were not released", left);
	g_clear_pointer(&mnt->open_dirs, g_hash_table_unref);
	g_mutex_clear(&mnt->dirs_lock);
}

static void release_dir(FsMount *mnt, DirHandle *dh)
{
	g_mutex_lock(&mnt->dirs_lock);
	g_hash_table_steal(mnt->open_dirs, dh);
	g_mutex_unlock(&mnt->dirs_lock);
	dir_handle_free(dh);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	DirHandle *dh;
	FsFolder *f;
	uint32_t folder_id, uid;
	void *layout_dir = NULL;
	FsInoKind kind;
	int rc = 0, maildir = 0;

	kind = fs_tree_resolve(mnt->tree, ino, &f, &folder_id, &uid);
	if (mnt->layout->maildir &&
	    fs_maildir_resolve(mnt, ino, &f, &maildir) == 0)
		kind = FS_INO_DIR; /* f's messages, or nothing */
	else if (search_ino(ino)) {
		fs_search_opendir(req, mnt->search, ino, fi);
		return;
	}
	if (layout_ino(mnt, ino, kind)) {
		rc = mnt->layout->opendir(mnt, ino, &layout_dir);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		f = NULL;
	} else if (kind != FS_INO_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (f && f->selectable &&
	    (!mnt->layout->maildir || maildir == FS_MAILDIR_CUR)) {
		rc = fs_sync_open_folder(mnt, f);
		if (rc < 0 && rc != -ENOENT) {
			fuse_reply_err(req, EIO);
			return;
		}
	}
	dh = g_new0(DirHandle, 1);
	dh->folder = f;
	dh->layout_dir = layout_dir;
	dh->layout = mnt->layout;
	dh->maildir = maildir;
	if (f) {
		dh->children = fs_folder_children(f);
		dh->listing = fs_folder_get_listing(f);
		if (dh->listing)
			fs_fetch_note_listed(mnt, f, dh->listing->folder_id);
	}
	fi->fh = (uint64_t)(uintptr_t)dh;
	/* The kernel may keep its cached listing unless it just changed;
	 * changes found elsewhere are invalidated through fs/inval.c. */
	fi->cache_readdir = 1;
	fi->keep_cache = rc == 1 ? 0 : 1;
	g_mutex_lock(&mnt->dirs_lock);
	g_hash_table_add(mnt->open_dirs, dh);
	g_mutex_unlock(&mnt->dirs_lock);
	/* An opendir interrupted meanwhile never gets a RELEASEDIR. */
	if (fuse_reply_open(req, fi) != 0)
		release_dir(mnt, dh);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	DirHandle *dh = (DirHandle *)(uintptr_t)fi->fh;

	if (search_ino(ino)) {
		fs_search_releasedir(req, mount_of(req)->search, fi);
		return;
	}
	if (dh)
		release_dir(mount_of(req), dh);
	fuse_reply_err(req, 0);
}

bool fs_ops_add_entry(fuse_req_t req, char *buf, size_t size, size_t *used,
		      const char *name, const struct fuse_entry_param *e,
		      off_t next, bool plus)
{
	size_t left = size - *used, need;

	if (plus)
		need = fuse_add_direntry_plus(req, buf + *used, left, name, e,
					      next);
	else
		need = fuse_add_direntry(req, buf + *used, left, name, &e->attr,
					 next);
	if (need > left)
		return false;
	*used += need;
	return true;
}

static void message_item(FsMount *mnt, DirHandle *dh, const CacheMessage *m,
			 struct fuse_entry_param *e)
{
	FsFolder *f = dh->folder;

	g_mutex_lock(&f->lock); /* sizes may be corrected meanwhile */
	e->ino = message_ino(mnt, dh->listing->folder_id, m);
	e->entry_timeout = FS_MESSAGE_TIMEOUT;
	e->attr_timeout = message_attr_timeout(m);
	message_attr(mnt, dh->listing->folder_id, m, &e->attr);
	g_mutex_unlock(&f->lock);
}

/* Entry i (past "." and "..") of a directory in the maildir layout: of
 * a folder, subfolders then cur/ new/ tmp/; of cur/, the messages. */
static bool maildir_item(FsMount *mnt, DirHandle *dh, size_t i,
			 const char **name, struct fuse_entry_param *e,
			 char *namebuf)
{
	size_t nchild = dh->children->len;
	CacheMessage m;

	if (dh->maildir == FS_MAILDIR_CUR) {
		if (!dh->listing ||
		    i >= cache_folder_index_count(dh->listing->index))
			return false;
		cache_folder_index_get(dh->listing->index, (guint)i, &m);
		*name = fs_maildir_name(&m, dh->listing->index->uidvalidity,
					namebuf);
		message_item(mnt, dh, &m, e);
		return true;
	}
	if (dh->maildir)
		return false; /* new/ and tmp/ stay empty */
	if (i < nchild) {
		FsFolder *c = dh->children->pdata[i];

		*name = fs_maildir_child_name(c->name, namebuf);
		dir_entry(mnt, c, e);
		return true;
	}
	i -= nchild;
	if (i >= 3)
		return false;
	*name = fs_maildir_dir_name((int)i + 1);
	maildir_entry(mnt, dh->folder, (int)i + 1, e);
	return true;
}

/* Entry i of a directory: ".", "..", subfolders, then messages. Fills
 * name and st (and e for readdirplus). Returns false past the end. */
static bool dir_item(FsMount *mnt, DirHandle *dh, size_t i, const char **name,
		     struct fuse_entry_param *e, char *namebuf)
{
	FsFolder *f = dh->folder;
	size_t nchild, nmsg;

	memset(e, 0, sizeof(*e));
	if (dh->layout_dir)
		return mnt->layout->dir_item(mnt, dh->layout_dir, i, name, e);
	nchild = dh->children->len;
	nmsg = dh->listing ? cache_folder_index_count(dh->listing->index) : 0;
	if (i == 0 || i == 1) {
		FsFolder *d = (i == 1 && f->parent) ? f->parent : f;

		*name = i == 0 ? "." : "..";
		e->attr.st_ino = fs_tree_dir_ino(d);
		if (dh->maildir)
			e->attr.st_ino = i == 0 ? fs_maildir_ino(f, dh->maildir)
						: fs_tree_dir_ino(f);
		e->attr.st_mode = S_IFDIR;
		return true;
	}
	i -= 2;
	if (mnt->layout->maildir)
		return maildir_item(mnt, dh, i, name, e, namebuf);
	if (i < nchild) {
		FsFolder *c = dh->children->pdata[i];

		*name = c->name;
		dir_entry(mnt, c, e);
		return true;
	}
	i -= nchild;
	if (i < nmsg) {
		CacheMessage m;

		cache_folder_index_get(dh->listing->index, (guint)i, &m);
		*name = mnt->layout->entry_name(&m, namebuf);
		message_item(mnt, dh, &m, e);
		return true;
	}
	return false;
}

/* dh shows a partial listing (fs_sync_open_folder()) and reached its end:
 * wait for the whole one, which lists the same messages first. 1 when dh
 * has it now, 0 when there is nothing to wait for, -EIO when the listing
 * failed. */
static int whole_listing(FsMount *mnt, DirHandle *dh)
{
	FsListing *l;

	if (dh->layout_dir || !dh->listing || !dh->listing->partial ||
	    (dh->maildir && dh->maildir != FS_MAILDIR_CUR))
		return 0;
	l = fs_sync_wait_whole(mnt, dh->folder, dh->listing);
	if (!l)
		return -EIO;
	fs_listing_unref(dh->listing);
	dh->listing = l;
	return 1;
}

/* Entries [from, to) of dh went out with their attributes and the kernel
 * took them in: the bodies of the messages among them can be pushed
 * (fs_fetch_note_entries()). */
static void note_entries(FsMount *mnt, DirHandle *dh, size_t from, size_t to)
{
	size_t first; /* the entry of the first message */

	if (dh->layout_dir || !dh->listing || mnt->layout->message_is_dir)
		return;
	if (dh->maildir == FS_MAILDIR_CUR)
		first = 2;
	else if (!mnt->layout->maildir)
		first = 2 + dh->children->len;
	else
		return;
	from = MAX(from, first);
	if (to <= from)
		return;
	fs_fetch_note_entries(mnt, dh->folder, dh->listing,
			      (guint)(from - first), (guint)(to - first));
}

static void readdir_common(fuse_req_t req, size_t size, off_t off,
			   struct fuse_file_info *fi, bool plus)
{
	FsMount *mnt = mount_of(req);
	DirHandle *dh = (DirHandle *)(uintptr_t)fi->fh;
	g_autofree char *buf = g_malloc(size);
	size_t used = 0;
	struct fuse_entry_param e;
	const char *name;
	char namebuf[FS_NAME_MAX + 1];

	if (off == 0 && !dh->layout_dir) {
		/* A new pass (also after rewinddir): show the directory as
		 * it is now, not as it was at opendir. */
		FsListing *now = fs_folder_get_listing(dh->folder);

		fs_listing_unref(dh->listing);
		dh->listing = now;
		dh->children = fs_folder_children(dh->folder);
		fs_sync_verify_children(mnt, dh->folder);
	}
	/* The kernel asks for the next entries once it has taken in the
	 * ones before (their inodes exist now): those can be pushed. */
	if (off == 0)
		dh->noted_to = 0;
	if (plus && (size_t)off > dh->noted_to) {
		note_entries(mnt, dh, dh->noted_to, (size_t)off);
		dh->noted_to = (size_t)off;
	}
	for (size_t i = (size_t)off;; i++) {
		int more = 1;

		/* Past the end of a partial listing: what is there goes out
		 * first, the next call waits for more. */
		while (!dir_item(mnt, dh, i, &name, &e, namebuf) &&
		       (more = used > 0 ? 0 : whole_listing(mnt, dh)) > 0)
			;
		if (more < 0) {
			fuse_reply_err(req, EIO);
			return;
		}
		if (more == 0)
			break;
		if (!fs_ops_add_entry(req, buf, size, &used, name, &e,
				      (off_t)(i + 1), plus))
			break;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (search_ino(ino)) {
		fs_search_readdir(req, mount_of(req)->search, size, off, fi,
				  false);
		return;
	}
	readdir_common(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	if (search_ino(ino)) {
		fs_search_readdir(req, mount_of(req)->search, size, off, fi,
				  true);
		return;
	}
	readdir_common(req, size, off, fi, true);
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (no_open_supported) {
		/* From now on the kernel opens without asking us. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* The message that ino names, in the current listing of its folder: 0
 * with *lp (a reference) and *mp set, -EISDIR for no message, -ESTALE
 * when the listing moved on. */
static int read_target(FsMount *mnt, fuse_ino_t ino, FsFolder **fp,
		       uint32_t *uidp, FsListing **lp, CacheMessage *mp)
{
	FsListing *l;
	uint32_t folder_id;

	if (fs_tree_resolve(mnt->tree, ino, fp, &folder_id, uidp) !=
	    FS_INO_MESSAGE)
		return -EISDIR;
	l = fs_folder_get_listing(*fp);
	if (!l || l->folder_id != folder_id ||
	    !cache_folder_index_find(l->index, *uidp, mp, NULL)) {
		fs_listing_unref(l);
		return -ESTALE;
	}
	*lp = l;
	return 0;
}

/* A small first read of a large message (a file manager sniffing its
 * type): answer it from the message's head alone. True when it did. */
static bool read_from_head(fuse_req_t req, FsMount *mnt, FsFolder *f,
			   FsListing *l, uint32_t uid, size_t size, off_t off,
			   uint64_t hinted_size)
{
	GBytes *head;

	if (off != 0 || size > FS_FETCH_HEAD_BYTES ||
	    hinted_size <= FS_FETCH_HEAD_BYTES ||
	    fs_fetch_is_cached(mnt, f, l, uid))
		return false;
	head = fs_fetch_head(mnt, f, l, uid);
	if (head && g_bytes_get_size(head) == FS_FETCH_HEAD_BYTES) {
		fuse_reply_buf(req, g_bytes_get_data(head, NULL), size);
		g_bytes_unref(head);
		return true;
	}
	if (head)
		g_bytes_unref(head); /* shorter than the hint said */
	return false;
}

/* The fetch corrected the size of ino from size_before to size_after:
 * tell the kernel. */
static void note_size_change(FsMount *mnt, fuse_ino_t ino, uint64_t size_before,
			     uint64_t size_after)
{
	if (size_after > size_before) {
		/* The server's RFC822.SIZE was too small. Drop the kernel's
		 * attributes now, before the reader's next read() asks for
		 * the part past the old end; attributes only (offset -1)
		 * touches no page, so it is safe inside this handler. A
		 * hint that was too large needs nothing: the short read
		 * that follows shrinks the kernel's size, which an
		 * invalidation here would stop. */
		fuse_lowlevel_notify_inval_inode(mnt->se, ino, -1, 0);
	} else if (size_after < size_before) {
		/* Once the short read has shrunk the size, refresh the
		 * rest (st_blocks) too. */
		fs_inval_inode_later(mnt->inval, ino, 200);
	}
}

/* Answer a read of size bytes at off from body, and close its fd. */
static void reply_body(fuse_req_t req, CacheBody *body, size_t size, off_t off)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	size_t want;

	/* The body may sit inside a pack: never read past its end. */
	want = (uint64_t)off >= body->size
		   ? 0
		   : (size_t)MIN((uint64_t)size, body->size - (uint64_t)off);
	if (want <= SMALL_READ) {
		/* Most messages are small: one pread and one write cost
		 * fewer system calls than splicing through a pipe. */
		static __thread char buf[SMALL_READ];
		ssize_t n = 0;

		while (want > 0 &&
		       (n = pread(body->fd, buf, want,
				  (off_t)(body->offset + (uint64_t)off))) < 0 &&
		       errno == EINTR)
			;
		close(body->fd);
		if (n < 0)
			fuse_reply_err(req, EIO);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		return;
	}
	bv.buf[0].size = want;
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = body->fd;
	bv.buf[0].pos = (off_t)(body->offset + (uint64_t)off);
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	close(body->fd);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	uint64_t size_before, size_after;
	CacheMessage m;
	FsListing *l = NULL;
	FsFolder *f;
	uint32_t uid;
	CacheBody body;
	int rc;

	if (fs_layout_owns(ino) && mnt->layout->open_file) {
		rc = mnt->layout->open_file(mnt, ino, &body);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			reply_body(req, &body, size, off);
		return;
	}
	rc = read_target(mnt, ino, &f, &uid, &l, &m);
	if (rc == 0 && mnt->layout->message_is_dir) {
		fs_listing_unref(l);
		rc = -EISDIR;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	size_before = m.size;
	g_debug("read %s UID %u: %zu bytes at %lld", f->raw, uid, size,
		(long long)off);
	fs_fetch_note_read(mnt, f, l->folder_id, off);
	if (off == 0)
		fs_push_note_read(mnt->push, ino);
	if (read_from_head(req, mnt, f, l, uid, size, off, size_before)) {
		fs_listing_unref(l);
		return;
	}
	rc = fs_fetch_open(mnt, f, l, uid, off == 0, &body);
	/* The fetch may have corrected the size (in l's overlay). */
	size_after = cache_folder_index_find(l->index, uid, &m, NULL)
			 ? m.size
			 : size_before;
	fs_listing_unref(l);
	if (rc < 0) {
		fuse_reply_err(req, rc == -ESTALE ? ESTALE : EIO);
		return;
	}
	note_size_change(mnt, ino, size_before, size_after);
	reply_body(req, &body, size, off);
}

/* Only the search results are symbolic links (fs/search.c). */
static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (search_ino(ino))
		fs_search_readlink(req, mount_of(req)->search, ino);
	else
		fuse_reply_err(req, EINVAL);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = { 0 };

	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes (fs/xattr.c) ---- */

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	if (!mount_of(req)->xattr) {
		/* ENOSYS makes the kernel stop asking for the whole mount:
		 * without it ls -l costs two round trips a file. But the
		 * kernel then answers ENODATA to ACL names, and ls -l asks
		 * the kernel once a file and twice a directory (the parts
		 * layout): EOPNOTSUPP to the names ls asks first tells it
		 * that the mount has none, and it asks no more. */
		fuse_reply_err(req,
			       g_str_has_prefix(name, "system.posix_acl_") ||
				       g_str_has_prefix(name, "security.")
				   ? EOPNOTSUPP
				   : ENOSYS);
		return;
	}
	if (fs_search_owns(ino)) {
		fuse_reply_err(req, ENODATA); /* no attributes of their own */
		return;
	}
	fs_xattr_get(req, mount_of(req), ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (!mount_of(req)->xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (fs_search_owns(ino)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	fs_xattr_list(req, mount_of(req), ino, size);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.flush = op_flush,
	.release = op_release,
	.read = op_read,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.readlink = op_readlink,
};
