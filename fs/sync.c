/* fs/sync.c: folder listings: load, resync, persist.
 *
 * Locking: folder->lock guards folder->listing, synced_at, syncing and
 * dirty, and the sizes inside the listing's messages. Only one sync of a
 * folder runs at a time (syncing); others wait on folder->synced, bounded.
 * Network work runs on a pool thread with a copy of the old index, never
 * under a lock. How the old listing and the server's answers combine is
 * in fs/merge.c (pure); the IMAP commands are in imap/ops.c.
 */
#include "fs/sync.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fs/fetch.h"
#include "fs/layout.h"
#include "fs/merge.h"
#include "fs/names.h"
#include "imap/ops.h"

typedef struct {
	char *folder;             /* raw server name */
	CacheFolderIndex *old;    /* copy, may be NULL; read only */
	CacheFolderIndex *result; /* new index, or NULL when unchanged */
} SyncJob;

static void sync_job_free(gpointer data)
{
	SyncJob *job = data;

	g_free(job->folder);
	cache_folder_index_free(job->old);
	cache_folder_index_free(job->result);
	g_free(job);
}

static void collect_meta(void *user_data, const ImapMessageMeta *m)
{
	GArray *msgs = user_data;
	CacheMessage cm = {
		.uid = m->uid,
		.size = m->size,
		.internaldate = m->internaldate,
		.name = fs_name_for_message(m->uid, m->subject, m->subject_len),
	};

	g_array_append_val(msgs, cm);
}

/* EXAMINE the folder anew, with QRESYNC from the old listing's MODSEQ
 * where the connection can (*vanished then lists what was expunged
 * since). */
static int examine_for_sync(ImapConn *conn, SyncJob *job, ImapMailboxState *st,
			    GArray **vanished, GError **error)
{
	const CacheFolderIndex *old = job->old;
	int rc;

	rc = imap_examine_resync(conn, job->folder, old ? old->uidvalidity : 0,
				 old ? old->highestmodseq : 0, st, vanished,
				 error);
	/* NO to EXAMINE: the folder is gone or cannot be opened. */
	if (rc < 0 && !imap_conn_is_broken(conn))
		return -ENOENT;
	return rc;
}

/* A new folder, or one recreated: list all of it. */
static int sync_full(ImapConn *conn, SyncJob *job, const ImapMailboxState *st,
		     GError **error)
{
	g_autoptr(GArray) fresh = fs_merge_messages_new(0);
	int rc;

	if (st->exists > 0) {
		rc = imap_fetch_meta_since(conn, 1, collect_meta, fresh, error);
		if (rc < 0)
			return rc;
	}
	job->result = fs_merge_fresh(st, g_steal_pointer(&fresh));
	return 0;
}

/* The old listing plus what arrived, less what went away. */
static int sync_delta(ImapConn *conn, SyncJob *job, const ImapMailboxState *st,
		      const GArray *vanished, GError **error)
{
	const CacheFolderIndex *old = job->old;
	g_autoptr(GArray) fresh = fs_merge_messages_new(0);
	g_autoptr(GArray) uids = NULL;
	uint32_t last = fs_merge_last_uid(old);
	int rc;

	if (st->uidnext == 0 || st->uidnext > last + 1) {
		rc = imap_fetch_meta_since(conn, last + 1, collect_meta, fresh,
					   error);
		if (rc < 0)
			return rc;
	}
	job->result = fs_merge_delta(old, st, fresh, vanished, NULL);
	if (job->result)
		return 0;
	/* Some messages went away (and QRESYNC did not say which, or its
	 * answer does not add up): ask which UIDs remain. */
	uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	rc = imap_search_uids(conn, uids, error);
	if (rc < 0)
		return rc;
	job->result = fs_merge_delta(old, st, fresh, NULL, uids);
	return 0;
}

static int sync_job_run(ImapConn *conn, const ImapMailboxState *unused,
			void *data, GError **error)
{
	SyncJob *job = data;
	const CacheFolderIndex *old = job->old;
	g_autoptr(GArray) vanished = NULL;
	ImapMailboxState st = { 0 };
	int rc;

	rc = examine_for_sync(conn, job, &st, &vanished, error);
	if (rc < 0)
		return rc;
	if (!old || old->uidvalidity != st.uidvalidity)
		return sync_full(conn, job, &st, error);
	if (fs_merge_unchanged(old, &st))
		return 0; /* nothing arrived, nothing left */
	return sync_delta(conn, job, &st, vanished, error);
}

/* Load the persisted index when the folder has no listing yet. Under
 * f->lock. */
static void load_persisted(FsMount *mnt, FsFolder *f)
{
	CacheFolderIndex *idx;
	uint32_t folder_id;

	if (f->listing)
		return;
	idx = cache_store_load_index(mnt->store, f->raw);
	if (!idx)
		return;
	if (cache_store_folder_id(mnt->store, f->raw, idx->uidvalidity,
				  &folder_id) < 0) {
		cache_folder_index_free(idx);
		return;
	}
	fs_tree_register_folder_id(mnt->tree, folder_id, f);
	f->listing = fs_listing_new(folder_id, idx);
}

/* Under f->lock. A listing persisted by an earlier mount is used only
 * once checked against the server (the folder may have been recreated
 * meanwhile); when the server cannot be reached it is served as is. */
static bool needs_sync(FsMount *mnt, FsFolder *f, int when)
{
	switch (when) {
	case FS_SYNC_IF_MISSING:
		return f->listing == NULL || !f->verified;
	case FS_SYNC_IF_STALE:
		return !f->verified || f->synced_at == 0 ||
		       g_get_monotonic_time() - f->synced_at >= mnt->refresh_us;
	default:
		return true;
	}
}

typedef struct {
	FsMount *mnt;
	fuse_ino_t dir;
} Forget;

static void forget_one(void *user_data, const CacheMessage *m)
{
	Forget *fg = user_data;
	char buf[FS_NAME_MAX + 1];

	fs_inval_entry(fg->mnt->inval, fg->dir,
		       fg->mnt->layout->entry_name(m, buf));
}

/* Tell the kernel to forget the names of messages that went away, so a
 * process that listed the folder before does not find them any more. */
static void forget_vanished(FsMount *mnt, FsFolder *f,
			    const CacheFolderIndex *old,
			    const CacheFolderIndex *now)
{
	Forget fg = { mnt, fs_tree_dir_ino(f) };

	fs_merge_foreach_gone(old, now, forget_one, &fg);
}

static void save_if_dirty(FsFolder *f, void *data)
{
	FsMount *mnt = data;
	FsListing *l = NULL;

	g_mutex_lock(&f->lock);
	if (f->dirty && f->listing) {
		l = fs_listing_ref(f->listing);
		f->dirty = false;
	}
	g_mutex_unlock(&f->lock);
	if (!l)
		return;
	/* Sizes may be corrected while saving; a later save catches up. */
	g_mutex_lock(&f->lock);
	CacheFolderIndex *copy = cache_folder_index_copy(l->index);
	g_mutex_unlock(&f->lock);
	if (cache_store_save_index(mnt->store, f->raw, copy) < 0)
		g_message("cannot save the listing of %s in the cache", f->raw);
	cache_folder_index_free(copy);
	fs_listing_unref(l);
}

static void save_job(gpointer data, gpointer user_data)
{
	save_if_dirty(data, user_data);
}

/* Wait for a sync of f in progress, then decide whether this caller
 * syncs: returns the job to run (f->syncing is then set), or NULL with
 * *rc what fs_sync_folder() returns. */
static SyncJob *sync_begin(FsMount *mnt, FsFolder *f, int when, int *rc)
{
	SyncJob *job;

	g_mutex_lock(&f->lock);
	load_persisted(mnt, f);
	while (f->syncing) {
		/* Someone else is syncing: their result serves us too. The
		 * pool bounds their wait, this bounds ours. */
		gint64 until = g_get_monotonic_time() + mnt->refresh_us +
			       60 * G_USEC_PER_SEC;

		if (!g_cond_wait_until(&f->synced, &f->lock, until))
			break;
	}
	if (!needs_sync(mnt, f, when) || f->syncing) {
		*rc = f->listing ? 0 : -EIO;
		g_mutex_unlock(&f->lock);
		return NULL;
	}
	f->syncing = true;
	job = g_new0(SyncJob, 1);
	job->folder = g_strdup(f->raw);
	if (f->listing)
		job->old = cache_folder_index_copy(f->listing->index);
	g_mutex_unlock(&f->lock);
	return job;
}

/* Let the syncs waiting for this one go on; after a good job (rc >= 0)
 * note the sync and take its result (NULL: unchanged). Returns whether f
 * has a listing to serve. */
static bool sync_end(FsFolder *f, int rc, SyncJob *job,
		     CacheFolderIndex **result)
{
	bool have;

	g_mutex_lock(&f->lock);
	f->syncing = false;
	g_cond_broadcast(&f->synced);
	if (rc >= 0) {
		f->synced_at = g_get_monotonic_time();
		f->verified = true;
		*result = g_steal_pointer(&job->result);
	}
	have = f->listing != NULL;
	g_mutex_unlock(&f->lock);
	return have;
}

/* Log a failed sync; returns what fs_sync_folder() returns. */
static int sync_failed(FsFolder *f, int rc, bool have, const GError *error)
{
	/* With a listing to serve this is routine while offline (every
	 * lookup may try): keep it out of the normal log. */
	if (have)
		g_debug("cannot refresh folder %s (serving the cached "
			"listing): %s",
			f->raw, error ? error->message : g_strerror(-rc));
	else if (g_error_matches(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED))
		g_debug("cannot list folder %s: %s", f->raw, error->message);
	else
		g_message("cannot list folder %s: %s", f->raw,
			  error ? error->message : g_strerror(-rc));
	if (rc == -ENOENT)
		return have ? 0 : -ENOENT;
	return have ? 0 : -EIO;
}

/* Put result (taken) in place of f's listing under the folder id folder_id;
 * a new UIDVALIDITY drops the folder's cached bodies. Returns the old
 * listing (caller unrefs; may be NULL) and sets *changed. */
static FsListing *swap_listing(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			       CacheFolderIndex *result, bool *changed)
{
	uint32_t uidvalidity = result->uidvalidity;
	uint32_t old_uidvalidity = 0;
	FsListing *old;

	g_mutex_lock(&f->lock);
	old = f->listing;
	*changed = !old || !fs_merge_same_uids(old->index, result);
	if (old && old->index->uidvalidity != uidvalidity)
		old_uidvalidity = old->index->uidvalidity;
	f->listing = fs_listing_new(folder_id, result);
	f->dirty = true;
	g_mutex_unlock(&f->lock);
	if (old_uidvalidity) {
		/* Outside the lock: deleting a large folder takes a while,
		 * and bodies of the new UIDVALIDITY are kept. */
		g_message("folder %s was recreated on the server (UIDVALIDITY "
			  "%u -> %u): dropping its cache",
			  f->raw, old_uidvalidity, uidvalidity);
		cache_store_drop_folder(mnt->store, f->raw, uidvalidity);
		fs_fetch_forget_folder(mnt, f->raw, uidvalidity);
	}
	return old;
}

/* Install a new listing (taken), persist it, and tell the kernel what
 * changed. Returns 1 when the listing changed, 0 if not, -EIO. */
static int install_listing(FsMount *mnt, FsFolder *f, CacheFolderIndex *result)
{
	FsListing *old;
	uint32_t folder_id;
	bool changed;
	int rc;

	rc = cache_store_folder_id(mnt->store, f->raw, result->uidvalidity,
				   &folder_id);
	if (rc < 0) {
		g_warning("cannot record folder ids in the cache: %s",
			  g_strerror(-rc));
		cache_folder_index_free(result);
		return -EIO;
	}
	fs_tree_register_folder_id(mnt->tree, folder_id, f);
	old = swap_listing(mnt, f, folder_id, result, &changed);
	/* Persisted in the background: the reader waiting for this listing
	 * need not wait for 100,000 entries to be written too. */
	if (mnt->saver)
		g_thread_pool_push(mnt->saver, f, NULL);
	else
		save_if_dirty(f, mnt);
	if (old) {
		if (changed)
			forget_vanished(mnt, f, old->index, result);
		fs_listing_unref(old);
	}
	if (changed)
		fs_inval_inode(mnt->inval, fs_tree_dir_ino(f));
	return changed ? 1 : 0;
}

int fs_sync_folder(FsMount *mnt, FsFolder *f, int when)
{
	g_autoptr(GError) error = NULL;
	CacheFolderIndex *result = NULL;
	SyncJob *job;
	bool have;
	int rc;

	if (!f->selectable)
		return -ENOENT;
	job = sync_begin(mnt, f, when, &rc);
	if (!job)
		return rc;
	/* The job EXAMINEs by itself (with QRESYNC where it can). */
	rc = imap_pool_run(mnt->pool, NULL, sync_job_run, job, sync_job_free,
			   &error);
	if (rc == -ETIMEDOUT)
		job = NULL; /* the pool frees it */
	have = sync_end(f, rc, job, &result);
	if (job)
		sync_job_free(job);
	if (rc < 0)
		return sync_failed(f, rc, have, error);
	if (!result)
		return 0;
	return install_listing(mnt, f, result);
}

void fs_sync_mark_stale(FsFolder *f)
{
	g_mutex_lock(&f->lock);
	f->synced_at = 0;
	g_mutex_unlock(&f->lock);
}

static void verify_one(gpointer data, gpointer user_data)
{
	FsMount *mnt = user_data;
	FsFolder *f = data;
	bool want;

	g_mutex_lock(&f->lock);
	load_persisted(mnt, f);
	want = f->listing && !f->verified && !f->syncing;
	g_mutex_unlock(&f->lock);
	if (want)
		fs_sync_folder(mnt, f, FS_SYNC_IF_MISSING);
}

void fs_sync_start_background(FsMount *mnt)
{
	mnt->verifier = g_thread_pool_new(verify_one, mnt, 2, FALSE, NULL);
	mnt->saver = g_thread_pool_new(save_job, mnt, 1, FALSE, NULL);
}

void fs_sync_stop_background(FsMount *mnt)
{
	/* Checks still queued are dropped; saves are finished. */
	if (mnt->verifier)
		g_thread_pool_free(g_steal_pointer(&mnt->verifier), TRUE, TRUE);
	if (mnt->saver)
		g_thread_pool_free(g_steal_pointer(&mnt->saver), FALSE, TRUE);
}

void fs_sync_verify_children(FsMount *mnt, FsFolder *dir)
{
	GPtrArray *children = fs_folder_children(dir);

	if (!mnt->verifier)
		return;
	for (guint i = 0; i < children->len; i++) {
		FsFolder *c = children->pdata[i];
		bool queue;

		if (!c->selectable)
			continue;
		g_mutex_lock(&c->lock);
		queue = !c->verify_queued && !c->verified;
		c->verify_queued = true;
		g_mutex_unlock(&c->lock);
		if (queue)
			g_thread_pool_push(mnt->verifier, c, NULL);
	}
}

void fs_sync_set_exact_size(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			    uint32_t uid, uint64_t size)
{
	CacheMessage *m;

	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->folder_id == folder_id) {
		m = cache_folder_index_find(f->listing->index, uid);
		if (m && (!m->size_exact || m->size != size)) {
			if (m->size != size)
				g_debug("%s UID %u: size %" G_GUINT64_FORMAT
					" (server said %" G_GUINT64_FORMAT ")",
					f->raw, uid, size, m->size);
			m->size = size;
			m->size_exact = true;
			f->dirty = true;
		}
	}
	g_mutex_unlock(&f->lock);
}

void fs_sync_save_dirty(FsMount *mnt)
{
	fs_tree_foreach(mnt->tree, save_if_dirty, mnt);
}
