/* fs/sync.c: folder listings: load, resync, persist.
 *
 * Locking: folder->lock guards folder->listing, synced_at, syncing and
 * dirty, and the sizes inside the listing's messages. Only one sync of a
 * folder runs at a time (syncing); others wait on folder->synced, bounded.
 * Network work runs on a pool thread with a copy of the old index, never
 * under a lock.
 */
#include "fs/sync.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

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

static void message_clear(gpointer p)
{
	g_free(((CacheMessage *)p)->name);
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

static int cmp_uid(gconstpointer a, gconstpointer b)
{
	uint32_t x = ((const CacheMessage *)a)->uid;
	uint32_t y = ((const CacheMessage *)b)->uid;

	return x < y ? -1 : x > y;
}

/* Sort by UID and drop duplicates (a server may answer a UID twice). */
static void sort_unique(GArray *msgs)
{
	guint out = 0;

	g_array_sort(msgs, cmp_uid);
	for (guint i = 0; i < msgs->len; i++) {
		CacheMessage *m = &g_array_index(msgs, CacheMessage, i);

		if (out > 0 &&
		    g_array_index(msgs, CacheMessage, out - 1).uid == m->uid) {
			g_free(m->name);
			continue;
		}
		g_array_index(msgs, CacheMessage, out++) = *m;
	}
	g_array_set_size(msgs, out);
}

static CacheFolderIndex *index_from(const ImapMailboxState *st, GArray *msgs)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	uint32_t last =
	    msgs->len ? g_array_index(msgs, CacheMessage, msgs->len - 1).uid
		      : 0;

	g_array_unref(idx->messages);
	idx->messages = msgs;
	idx->uidvalidity = st->uidvalidity;
	idx->exists = st->exists;
	idx->highestmodseq = st->highestmodseq;
	idx->uidnext = st->uidnext ? st->uidnext : last + 1;
	return idx;
}

static GArray *new_message_array(guint reserve)
{
	GArray *a =
	    g_array_sized_new(FALSE, TRUE, sizeof(CacheMessage), reserve);

	g_array_set_clear_func(a, message_clear);
	return a;
}

/* Keep the old messages whose UIDs are still in uids (sorted). */
static void keep_existing(GArray *out, const CacheFolderIndex *old,
			  const GArray *uids)
{
	guint j = 0;

	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);

		while (j < uids->len &&
		       g_array_index(uids, uint32_t, j) < m->uid)
			j++;
		if (j < uids->len &&
		    g_array_index(uids, uint32_t, j) == m->uid) {
			CacheMessage copy = *m;

			copy.name = g_strdup(m->name);
			g_array_append_val(out, copy);
		}
	}
}

/* Copy old into out but for the UIDs in gone (sorted; may be NULL). */
static void keep_all_but(GArray *out, const CacheFolderIndex *old,
			 const GArray *gone)
{
	guint j = 0, n = gone ? gone->len : 0;

	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);
		CacheMessage copy;

		while (j < n && g_array_index(gone, uint32_t, j) < m->uid)
			j++;
		if (j < n && g_array_index(gone, uint32_t, j) == m->uid)
			continue;
		copy = *m;
		copy.name = g_strdup(m->name);
		g_array_append_val(out, copy);
	}
}

/* EXAMINE the folder anew: with QRESYNC from the old listing's MODSEQ
 * when the connection has it (*vanished then lists what was expunged
 * since), else with CONDSTORE when offered. */
static int examine_for_sync(ImapConn *conn, SyncJob *job, ImapMailboxState *st,
			    GArray **vanished, GError **error)
{
	const CacheFolderIndex *old = job->old;
	int rc;

	*vanished = NULL;
	if (old && old->highestmodseq && imap_conn_qresync(conn)) {
		GArray *v = g_array_new(FALSE, FALSE, sizeof(uint32_t));

		rc = imap_examine_qresync(conn, job->folder, old->uidvalidity,
					  old->highestmodseq, st, v, error);
		if (rc == 0 && st->uidvalidity == old->uidvalidity)
			*vanished = v;
		else
			g_array_unref(v);
	} else {
		rc = imap_conn_examine_with(
		    conn, job->folder,
		    imap_conn_has_cap(conn, "CONDSTORE") ? "(CONDSTORE)" : NULL,
		    NULL, NULL, st, error);
	}
	/* NO to EXAMINE: the folder is gone or cannot be opened. */
	if (rc < 0 && !imap_conn_is_broken(conn))
		return -ENOENT;
	return rc;
}

static int sync_job_run(ImapConn *conn, const ImapMailboxState *unused,
			void *data, GError **error)
{
	SyncJob *job = data;
	const CacheFolderIndex *old = job->old;
	g_autoptr(GArray) fresh = new_message_array(0);
	g_autoptr(GArray) vanished = NULL;
	ImapMailboxState state = { 0 };
	const ImapMailboxState *st = &state;
	GArray *msgs;
	int rc;

	rc = examine_for_sync(conn, job, &state, &vanished, error);
	if (rc < 0)
		return rc;
	if (!old || old->uidvalidity != st->uidvalidity) {
		if (st->exists > 0) {
			rc = imap_fetch_meta(conn, "1:*", collect_meta, fresh,
					     error);
			if (rc < 0)
				return rc;
		}
		sort_unique(fresh);
		job->result = index_from(st, g_steal_pointer(&fresh));
		return 0;
	}

	uint32_t last = old->messages->len
			    ? g_array_index(old->messages, CacheMessage,
					    old->messages->len - 1)
				  .uid
			    : 0;
	if (st->uidnext != 0 && st->uidnext == old->uidnext &&
	    st->exists == old->exists && st->exists == old->messages->len)
		return 0; /* nothing arrived, nothing left */

	if (st->uidnext == 0 || st->uidnext > last + 1) {
		g_autofree char *set = g_strdup_printf("%u:*", last + 1);

		rc = imap_fetch_meta(conn, set, collect_meta, fresh, error);
		if (rc < 0)
			return rc;
	}
	/* "UID n:*" answers the highest UID even when it is below n. */
	for (guint i = 0; i < fresh->len;) {
		if (g_array_index(fresh, CacheMessage, i).uid <= last)
			g_array_remove_index_fast(fresh, i);
		else
			i++;
	}
	sort_unique(fresh);

	msgs = new_message_array(old->messages->len + fresh->len);
	keep_all_but(msgs, old, vanished);
	if (msgs->len + fresh->len != st->exists) {
		/* Some messages went away (and QRESYNC did not say which, or
		 * its answer does not add up): ask which UIDs remain. */
		g_autoptr(GArray) uids =
		    g_array_new(FALSE, FALSE, sizeof(uint32_t));

		g_array_set_size(msgs, 0);
		rc = imap_search_uids(conn, uids, error);
		if (rc < 0) {
			g_array_unref(msgs);
			return rc;
		}
		keep_existing(msgs, old, uids);
	}
	for (guint i = 0; i < fresh->len; i++) {
		CacheMessage *m = &g_array_index(fresh, CacheMessage, i);
		CacheMessage moved = *m;

		m->name = NULL; /* now owned by msgs */
		g_array_append_val(msgs, moved);
	}
	job->result = index_from(st, msgs);
	return 0;
}

/* Load the persisted index when the folder has no listing yet. Under
 * f->lock. */
static void load_persisted(FsAccount *acct, FsFolder *f)
{
	CacheFolderIndex *idx;
	uint32_t gen;

	if (f->listing)
		return;
	idx = cache_store_load_index(acct->store, f->raw);
	if (!idx)
		return;
	if (cache_store_folder_id(acct->store, f->raw, idx->uidvalidity, &gen) <
	    0) {
		cache_folder_index_free(idx);
		return;
	}
	fs_tree_register_gen(acct->tree, gen, f);
	f->listing = fs_listing_new(gen, idx);
}

/* Under f->lock. A listing persisted by an earlier mount is used only
 * once checked against the server (the folder may have been recreated
 * meanwhile); when the server cannot be reached it is served as is. */
static bool needs_sync(FsAccount *acct, FsFolder *f, int when)
{
	switch (when) {
	case FS_SYNC_IF_MISSING:
		return f->listing == NULL || !f->verified;
	case FS_SYNC_IF_STALE:
		return !f->verified || f->synced_at == 0 ||
		       g_get_monotonic_time() - f->synced_at >=
			   acct->refresh_us;
	default:
		return true;
	}
}

static bool same_messages(const CacheFolderIndex *a, const CacheFolderIndex *b)
{
	if (a->uidvalidity != b->uidvalidity ||
	    a->messages->len != b->messages->len)
		return false;
	for (guint i = 0; i < a->messages->len; i++)
		if (g_array_index(a->messages, CacheMessage, i).uid !=
		    g_array_index(b->messages, CacheMessage, i).uid)
			return false;
	return true;
}

/* Tell the kernel to forget the names of messages that went away, so a
 * process that listed the folder before does not find them any more. */
static void forget_vanished(FsAccount *acct, FsFolder *f,
			    const CacheFolderIndex *old,
			    const CacheFolderIndex *now)
{
	fuse_ino_t dir = fs_tree_dir_ino(f);
	bool all = old->uidvalidity != now->uidvalidity;
	guint j = 0;

	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);

		if (!all) {
			while (
			    j < now->messages->len &&
			    g_array_index(now->messages, CacheMessage, j).uid <
				m->uid)
				j++;
			if (j < now->messages->len &&
			    g_array_index(now->messages, CacheMessage, j).uid ==
				m->uid)
				continue;
		}
		fs_inval_entry(acct->inval, dir, m->name);
	}
}

static void save_if_dirty(FsFolder *f, void *data)
{
	FsAccount *acct = data;
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
	if (cache_store_save_index(acct->store, f->raw, copy) < 0)
		g_message("cannot save the listing of %s in the cache", f->raw);
	cache_folder_index_free(copy);
	fs_listing_unref(l);
}

static void save_job(gpointer data, gpointer user_data)
{
	save_if_dirty(data, user_data);
}

int fs_sync_folder(FsAccount *acct, FsFolder *f, int when)
{
	g_autoptr(GError) error = NULL;
	SyncJob *job;
	CacheFolderIndex *result;
	FsListing *old_listing;
	uint32_t gen;
	bool changed;
	int rc;

	if (!f->selectable)
		return -ENOENT;

	g_mutex_lock(&f->lock);
	load_persisted(acct, f);
	while (f->syncing) {
		/* Someone else is syncing: their result serves us too. The
		 * pool bounds their wait, this bounds ours. */
		gint64 until = g_get_monotonic_time() + acct->refresh_us +
			       60 * G_USEC_PER_SEC;

		if (!g_cond_wait_until(&f->synced, &f->lock, until))
			break;
	}
	if (!needs_sync(acct, f, when) || f->syncing) {
		rc = f->listing ? 0 : -EIO;
		g_mutex_unlock(&f->lock);
		return rc;
	}
	f->syncing = true;
	job = g_new0(SyncJob, 1);
	job->folder = g_strdup(f->raw);
	if (f->listing)
		job->old = cache_folder_index_copy(f->listing->index);
	g_mutex_unlock(&f->lock);

	/* The job EXAMINEs by itself (with QRESYNC where it can). */
	rc = imap_pool_run(acct->pool, NULL, sync_job_run, job, sync_job_free,
			   &error);
	if (rc == -ETIMEDOUT)
		job = NULL; /* the pool frees it */

	g_mutex_lock(&f->lock);
	f->syncing = false;
	g_cond_broadcast(&f->synced);
	if (rc < 0) {
		bool have = f->listing != NULL;

		g_mutex_unlock(&f->lock);
		if (job)
			sync_job_free(job);
		/* With a listing to serve this is routine while offline
		 * (every lookup may try): keep it out of the normal log. */
		if (have)
			g_debug("cannot refresh folder %s (serving the cached "
				"listing): %s",
				f->raw,
				error ? error->message : g_strerror(-rc));
		else if (g_error_matches(error, IMAP_ERROR,
					 IMAP_ERROR_SUSPENDED))
			g_debug("cannot list folder %s: %s", f->raw,
				error->message);
		else
			g_message("cannot list folder %s: %s", f->raw,
				  error ? error->message : g_strerror(-rc));
		if (rc == -ENOENT)
			return have ? 0 : -ENOENT;
		return have ? 0 : -EIO;
	}
	f->synced_at = g_get_monotonic_time();
	f->verified = true;
	result = g_steal_pointer(&job->result);
	sync_job_free(job);
	if (!result) {
		g_mutex_unlock(&f->lock);
		return 0;
	}
	g_mutex_unlock(&f->lock);

	rc = cache_store_folder_id(acct->store, f->raw, result->uidvalidity,
				   &gen);
	if (rc < 0) {
		g_warning("cannot record folder ids in the cache: %s",
			  g_strerror(-rc));
		cache_folder_index_free(result);
		return -EIO;
	}
	fs_tree_register_gen(acct->tree, gen, f);

	g_mutex_lock(&f->lock);
	old_listing = f->listing;
	changed = !old_listing || !same_messages(old_listing->index, result);
	if (old_listing &&
	    old_listing->index->uidvalidity != result->uidvalidity) {
		g_message("folder %s was recreated on the server (UIDVALIDITY "
			  "%u -> %u): dropping its cache",
			  f->raw, old_listing->index->uidvalidity,
			  result->uidvalidity);
		cache_store_drop_folder(acct->store, f->raw,
					result->uidvalidity);
	}
	f->listing = fs_listing_new(gen, result);
	f->dirty = true;
	g_mutex_unlock(&f->lock);
	/* Persisted in the background: the reader waiting for this listing
	 * need not wait for 100,000 entries to be written too. */
	if (acct->saver)
		g_thread_pool_push(acct->saver, f, NULL);
	else
		save_if_dirty(f, acct);
	if (old_listing) {
		if (changed)
			forget_vanished(acct, f, old_listing->index, result);
		fs_listing_unref(old_listing);
	}
	if (changed)
		fs_inval_inode(acct->inval, fs_tree_dir_ino(f));
	return changed ? 1 : 0;
}

static void verify_one(gpointer data, gpointer user_data)
{
	FsAccount *acct = user_data;
	FsFolder *f = data;
	bool want;

	g_mutex_lock(&f->lock);
	load_persisted(acct, f);
	want = f->listing && !f->verified && !f->syncing;
	g_mutex_unlock(&f->lock);
	if (want)
		fs_sync_folder(acct, f, FS_SYNC_IF_MISSING);
}

void fs_sync_start_background(FsAccount *acct)
{
	acct->verifier = g_thread_pool_new(verify_one, acct, 2, FALSE, NULL);
	acct->saver = g_thread_pool_new(save_job, acct, 1, FALSE, NULL);
}

void fs_sync_stop_background(FsAccount *acct)
{
	/* Checks still queued are dropped; saves are finished. */
	if (acct->verifier)
		g_thread_pool_free(g_steal_pointer(&acct->verifier), TRUE,
				   TRUE);
	if (acct->saver)
		g_thread_pool_free(g_steal_pointer(&acct->saver), FALSE, TRUE);
}

void fs_sync_verify_children(FsAccount *acct, FsFolder *dir)
{
	GPtrArray *children = fs_folder_children(dir);

	if (!acct->verifier)
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
			g_thread_pool_push(acct->verifier, c, NULL);
	}
}

void fs_sync_set_exact_size(FsAccount *acct, FsFolder *f, uint32_t gen,
			    uint32_t uid, uint64_t size)
{
	CacheMessage *m;

	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->gen == gen) {
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

void fs_sync_save_dirty(FsAccount *acct)
{
	fs_tree_foreach(acct->tree, save_if_dirty, acct);
}
