/* fs/sync.c: folder listings: load, resync, persist.
 *
 * Locking: folder->lock guards folder->listing, synced_at, syncing and
 * dirty, and the sizes inside the listing's messages. Only one sync of a
 * folder runs at a time (syncing); others wait on folder->synced, bounded.
 * Network work runs on a pool thread with a copy of the old index (which
 * shares its mapped image: copies are cheap), never under a lock. New
 * listings stream into the cache's temp directory as the server answers
 * (cache/index.h), so a large folder is never listed in the heap. How the old
 * listing and the server's answers combine is in fs/merge.c (pure); the IMAP
 * commands are in imap/ops.c.
 */
#include "fs/sync.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fs/fetch.h"
#include "fs/layout.h"
#include "fs/maildir.h"
#include "cache/flags.h"
#include "fs/merge.h"
#include "fs/meta.h"
#include "fs/name-format.h"
#include "fs/names.h"
#include "fs/preload.h"
#include "fs/search.h"
#include "imap/ops.h"

typedef struct {
	char *folder;             /* raw server name */
	CacheFolderIndex *old;    /* copy, may be NULL; read only */
	CacheFolderIndex *result; /* new index, or NULL when unchanged */
	GArray *flag_updates;     /* FsMergeFlags of old messages, or NULL */
	const FsNameFormat *fmt;  /* the mount's, outlives the job */
	const char *spill_dir;    /* the cache's temp dir, outlives the job */
	FsMount *mnt;             /* for the preview of a first listing */
	FsFolder *f;              /* (folders live as long as the mount) */
	bool all_flags_due;       /* may fetch every message's flags */
	bool all_flags_done;      /* did (or listed the folder whole) */
} SyncJob;

/* Listings of at least this many messages are written to a file and
 * mapped; smaller ones stay in the heap (a mapping and two temp files per
 * folder would cost more than they save on an account of many small
 * folders). */
#define SPILL_MESSAGES 2048

/* Where a listing of about n messages is built (see SPILL_MESSAGES). */
static const char *spill_for(const SyncJob *job, uint64_t n)
{
	return n >= SPILL_MESSAGES ? job->spill_dir : NULL;
}

/* A first listing that spills shows what came in so far while the rest
 * streams in (fs_sync_open_folder()): the first PREVIEW_FIRST messages,
 * then more every PREVIEW_EVERY_US. */
#define PREVIEW_FIRST 256
#define PREVIEW_EVERY_US (200 * 1000)

/* Without CONDSTORE a flags check costs a FETCH of every message's flags:
 * not on every poll, at most this often per folder. */
#define ALL_FLAGS_INTERVAL_US (600 * G_USEC_PER_SEC)

static void sync_job_free(gpointer data)
{
	SyncJob *job = data;

	g_free(job->folder);
	cache_folder_index_free(job->old);
	cache_folder_index_free(job->result);
	if (job->flag_updates)
		g_array_unref(job->flag_updates);
	g_free(job);
}

/* The two sets of bits are the same (checked once, here). */
G_STATIC_ASSERT((int)IMAP_FLAG_SEEN == (int)CACHE_FLAG_SEEN &&
		(int)IMAP_FLAG_ANSWERED == (int)CACHE_FLAG_ANSWERED &&
		(int)IMAP_FLAG_FLAGGED == (int)CACHE_FLAG_FLAGGED &&
		(int)IMAP_FLAG_DRAFT == (int)CACHE_FLAG_DRAFT &&
		(int)IMAP_FLAG_DELETED == (int)CACHE_FLAG_DELETED);

static uint8_t flags_of(const ImapMessageMeta *m)
{
	return m->has_flags ? (uint8_t)(m->flags | CACHE_FLAG_KNOWN) : 0;
}

/* Where fetched messages go: the builder while they come in ascending
 * UID order, msgs otherwise (or when there is no builder). */
typedef struct {
	CacheIndexBuilder *b;
	GArray *msgs;
	const FsNameFormat *fmt;
	bool preview;      /* publish partial listings (a first one) */
	gint64 preview_at; /* monotonic us of the last one */
	SyncJob *job;
	const ImapMailboxState *st;
} Collect;

static void publish_preview(Collect *c);
static bool drop_preview(FsMount *mnt, FsFolder *f);
static void start_streamer(FsMount *mnt);
static void stop_streamer(FsMount *mnt);

static void collect_meta(void *user_data, const ImapMessageMeta *m)
{
	Collect *c = user_data;
	FsNameFields nf = { m->uid,          m->subject, m->subject_len,
			    m->content_type, m->from,    m->internaldate };
	CacheMessage cm = {
		.uid = m->uid,
		.size = m->size,
		.internaldate = m->internaldate,
		.gid = m->gid,
		.flags = flags_of(m),
		.keywords = cache_keywords_intern(m->keywords),
		.name = fs_name_format_message(c->fmt, &nf),
	};

	/* A message the builder refuses though in order (a write failed)
	 * is dropped: the builder's finish reports the failure. */
	if (c->b && m->uid > cache_index_builder_last_uid(c->b)) {
		guint n = cache_index_builder_add(c->b, &cm)
			      ? cache_index_builder_count(c->b)
			      : 0;

		if (c->preview && n &&
		    (n == PREVIEW_FIRST ||
		     (n % 1024 == 0 && g_get_monotonic_time() - c->preview_at >=
					   PREVIEW_EVERY_US)))
			publish_preview(c);
		g_free((char *)cm.name);
		return;
	}
	g_array_append_val(c->msgs, cm);
}

/* The listing fetch of the UIDs from first on into c, with the header
 * fields the name format needs. */
static int fetch_listing(ImapConn *conn, SyncJob *job, uint32_t first,
			 Collect *c, GError **error)
{
	unsigned fields =
	    fs_name_format_uses_from(job->fmt) ? IMAP_META_FROM : 0;

	c->fmt = job->fmt;
	return imap_fetch_meta_fields_since(conn, first, fields, collect_meta,
					    c, error);
}

static void collect_flags(void *user_data, const ImapMessageMeta *m)
{
	FsMergeFlags f = { m->uid, flags_of(m),
			   cache_keywords_intern(m->keywords) };

	g_array_append_val((GArray *)user_data, f);
}

/* The flags of the old listing's messages that changed since it was made
 * (CONDSTORE CHANGEDSINCE), or all of them where the server cannot say. */
static int fetch_flag_updates(ImapConn *conn, SyncJob *job,
			      const ImapMailboxState *st, GError **error)
{
	const CacheFolderIndex *old = job->old;
	uint32_t last = fs_merge_last_uid(old);
	bool since = old->highestmodseq && st->highestmodseq &&
		     imap_conn_modseq_caps(conn) != 0;
	g_autofree char *set = NULL;

	if (!last || (since && st->highestmodseq == old->highestmodseq) ||
	    (!since && !job->all_flags_due))
		return 0;
	job->all_flags_done = !since;
	set = g_strdup_printf("1:%u", last);
	job->flag_updates = g_array_new(FALSE, FALSE, sizeof(FsMergeFlags));
	return imap_fetch_flags(conn, set, since ? old->highestmodseq : 0,
				collect_flags, job->flag_updates, error);
}

/* Flags changed though no message came or went: the old listing with
 * them (and the new MODSEQ). */
static void sync_flags_only(SyncJob *job, const ImapMailboxState *st)
{
	CacheFolderIndex *idx;

	if (!job->flag_updates && st->highestmodseq == job->old->highestmodseq)
		return;
	idx = cache_folder_index_copy(job->old); /* shares the image */
	if ((job->flag_updates && fs_merge_flags(idx, job->flag_updates)) ||
	    st->highestmodseq != idx->highestmodseq) {
		idx->highestmodseq = st->highestmodseq;
		job->result = idx;
	} else {
		cache_folder_index_free(idx);
	}
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
	/* NO to EXAMINE: the folder is gone or cannot be opened. A server
	 * that failed ([SERVERBUG]: Dovecot while the folder is recreated)
	 * or is busy says nothing of the folder: EIO, and the next sync asks
	 * again. */
	if (rc < 0 && !imap_conn_is_broken(conn))
		return imap_conn_refused_by_failure(conn) ? -EIO : -ENOENT;
	return rc;
}

/* A new folder, or one recreated: list all of it, streamed into a
 * builder (servers answer in UID order; what comes out of order is merged
 * in afterwards). */
static int sync_full(ImapConn *conn, SyncJob *job, const ImapMailboxState *st,
		     GError **error)
{
	Collect c = { 0 };
	CacheFolderIndex hdr = { 0 }, *idx;
	int rc = 0;

	c.b = cache_index_builder_new(spill_for(job, st->exists));
	c.msgs = fs_merge_messages_new(0);
	c.job = job;
	c.st = st;
	c.preview = job->f && !job->old && spill_for(job, st->exists);
	if (st->exists > 0)
		rc = fetch_listing(conn, job, 1, &c, error);
	if (rc < 0) {
		cache_index_builder_free(c.b);
		g_array_unref(c.msgs);
		return rc;
	}
	hdr.uidvalidity = st->uidvalidity;
	hdr.exists = st->exists;
	hdr.highestmodseq = st->highestmodseq;
	hdr.uidnext =
	    st->uidnext ? st->uidnext : cache_index_builder_last_uid(c.b) + 1;
	idx = cache_index_builder_finish(c.b, &hdr, error);
	if (idx && c.msgs->len) {
		CacheFolderIndex *all =
		    fs_merge_add(idx, st, g_steal_pointer(&c.msgs),
				 spill_for(job, st->exists), error);

		cache_folder_index_free(idx);
		idx = all;
	}
	if (c.msgs)
		g_array_unref(c.msgs);
	if (!idx)
		return -EIO;
	job->result = idx;
	job->all_flags_done = true;
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
	Collect c = { NULL, fresh, NULL };
	int rc;

	if (st->uidnext == 0 || st->uidnext > last + 1) {
		rc = fetch_listing(conn, job, last + 1, &c, error);
		if (rc < 0)
			return rc;
	}
	job->result = fs_merge_delta(old, st, fresh, vanished, NULL,
				     spill_for(job, st->exists), error);
	if (job->result)
		return 0;
	if (error && *error)
		return -EIO;
	/* Some messages went away (and QRESYNC did not say which, or its
	 * answer does not add up): ask which UIDs remain. */
	uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	rc = imap_search_uids(conn, uids, error);
	if (rc < 0)
		return rc;
	job->result = fs_merge_delta(old, st, fresh, NULL, uids,
				     spill_for(job, st->exists), error);
	return job->result ? 0 : -EIO;
}

static int sync_job_work(ImapConn *conn, SyncJob *job, GError **error)
{
	const CacheFolderIndex *old = job->old;
	g_autoptr(GArray) vanished = NULL;
	ImapMailboxState st = { 0 };
	int rc;

	rc = examine_for_sync(conn, job, &st, &vanished, error);
	if (rc < 0)
		return rc;
	if (!old || old->uidvalidity != st.uidvalidity)
		return sync_full(conn, job, &st, error);
	rc = fetch_flag_updates(conn, job, &st, error);
	if (rc < 0)
		return rc;
	if (fs_merge_unchanged(old, &st)) {
		/* nothing arrived, nothing left */
		sync_flags_only(job, &st);
		return 0;
	}
	rc = sync_delta(conn, job, &st, vanished, error);
	if (rc == 0 && job->result && job->flag_updates)
		fs_merge_flags(job->result, job->flag_updates);
	return rc;
}

static int sync_job_run(ImapConn *conn, const ImapMailboxState *unused,
			void *data, GError **error)
{
	SyncJob *job = data;
	int rc = sync_job_work(conn, job, error);

	if (job->result)
		job->result->name_tag = fs_name_format_tag(job->fmt);
	return rc;
}

/* Under the folder's lock: messages in several folders gained or lost a
 * folder; the kernel forgets the link counts it has. */
static void note_links(FsMount *mnt, const FsListing *old, const FsListing *now)
{
	g_autoptr(GArray) changed =
	    g_array_new(FALSE, FALSE, sizeof(fuse_ino_t));

	fs_links_replace(fs_tree_links(mnt->tree), old ? old->folder_id : 0,
			 old ? old->index : NULL, now ? now->folder_id : 0,
			 now ? now->index : NULL, changed);
	for (guint i = 0; i < changed->len; i++)
		fs_inval_inode(mnt->inval,
			       g_array_index(changed, fuse_ino_t, i));
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
	/* Names made under another --name-format: list the folder anew. */
	if (idx->name_tag != fs_name_format_tag(mnt->name_format)) {
		cache_folder_index_free(idx);
		return;
	}
	if (cache_store_folder_id(mnt->store, f->raw, idx->uidvalidity,
				  &folder_id) < 0) {
		cache_folder_index_free(idx);
		return;
	}
	fs_tree_register_folder_id(mnt->tree, folder_id, f);
	f->listing = fs_listing_new(folder_id, idx);
	if (!f->gone)
		note_links(mnt, NULL, f->listing);
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
	uint32_t uidvalidity; /* the maildir layout's names, else 0 */
} Forget;

static void forget_one(void *user_data, const CacheMessage *m)
{
	Forget *fg = user_data;
	char buf[FS_NAME_MAX + 1];

	fs_inval_entry(fg->mnt->inval, fg->dir,
		       fg->uidvalidity
			   ? fs_maildir_name(m, fg->uidvalidity, buf)
			   : fg->mnt->layout->entry_name(m, buf));
}

/* Tell the kernel to forget the names of messages that went away, so a
 * process that listed the folder before does not find them any more. */
static void forget_vanished(FsMount *mnt, FsFolder *f,
			    const CacheFolderIndex *old,
			    const CacheFolderIndex *now)
{
	Forget fg = { mnt, fs_tree_dir_ino(f), 0 };

	if (mnt->layout->maildir) {
		fg.dir = fs_maildir_ino(f, FS_MAILDIR_CUR);
		fg.uidvalidity = old->uidvalidity;
	}
	fs_merge_foreach_gone(old, now, forget_one, &fg);
}

typedef struct {
	FsMount *mnt;
	FsFolder *f;
	uint32_t folder_id;
} FlagNews;

static void flag_changed(void *user_data, const CacheMessage *old,
			 const CacheMessage *now)
{
	FlagNews *fn = user_data;

	fs_meta_flags_changed(fn->mnt->meta, fn->f, fn->folder_id, now->uid,
			      old->flags, old->keywords, now->flags,
			      now->keywords);
}

/* A listing with this many records changed in place (or an eighth of
 * its records, if more) is saved and mapped anew from the saved file:
 * each change costs heap until then, each rebase a rewrite. */
#define OVERLAY_REBASE 4096

static bool overlay_due(const CacheFolderIndex *idx)
{
	return cache_folder_index_changed(idx) >=
	       MAX(OVERLAY_REBASE, cache_folder_index_count(idx) / 8);
}

/* After l was saved from copy: when nothing changed since, put the saved
 * file, mapped, in l's place, and its overlay goes. Not for a partial
 * listing (the whole one is still to come). */
static void rebase_listing(FsMount *mnt, FsFolder *f, FsListing *l,
			   const CacheFolderIndex *copy)
{
	CacheFolderIndex *idx = cache_store_load_index(mnt->store, f->raw);
	FsListing *old = NULL;

	if (!idx)
		return;
	g_mutex_lock(&f->lock);
	if (f->listing == l && !l->partial &&
	    cache_folder_index_generation(l->index) ==
		cache_folder_index_generation(copy) &&
	    idx->uidvalidity == l->index->uidvalidity &&
	    fs_merge_same_uids(idx, l->index)) {
		g_debug("listing of %s mapped anew from its saved file after "
			"%u changes in place",
			f->raw, cache_folder_index_changed(copy));
		idx->name_tag = l->index->name_tag;
		old = f->listing;
		f->listing =
		    fs_listing_new(l->folder_id, g_steal_pointer(&idx));
	}
	g_mutex_unlock(&f->lock);
	cache_folder_index_free(idx);
	fs_listing_unref(old);
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
	/* Sizes may be corrected while saving; a later save catches up. The
	 * copy shares the (immutable) image. */
	CacheFolderIndex *copy = cache_folder_index_copy(l->index);

	if (cache_store_save_index(mnt->store, f->raw, copy) < 0)
		g_message("cannot save the listing of %s in the cache", f->raw);
	else if (overlay_due(copy))
		rebase_listing(mnt, f, l, copy);
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
	/* A current listing serves at once, while a sync (the watcher's)
	 * runs. */
	while (f->syncing && needs_sync(mnt, f, when)) {
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
	job->fmt = mnt->name_format;
	job->spill_dir = cache_store_tmp_dir(mnt->store);
	job->mnt = mnt;
	job->f = f;
	job->all_flags_due =
	    f->flags_at == 0 ||
	    g_get_monotonic_time() - f->flags_at >= ALL_FLAGS_INTERVAL_US;
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
		if (job->all_flags_done)
			f->flags_at = f->synced_at;
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
	/* A folder gone meanwhile no longer counts (fs/tree.c set_gone); a
	 * partial listing never did. */
	if (!f->gone)
		note_links(mnt, old && !old->partial ? old : NULL, f->listing);
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
		FlagNews news = { mnt, f, folder_id };

		if (changed)
			forget_vanished(mnt, f, old->index, result);
		fs_merge_foreach_flag_change(old->index, result, flag_changed,
					     &news);
		fs_listing_unref(old);
	}
	if (changed)
		fs_inval_inode(mnt->inval, fs_tree_dir_ino(f));
	if (changed && mnt->layout->maildir)
		fs_inval_inode(mnt->inval, fs_maildir_ino(f, FS_MAILDIR_CUR));
	if (changed)
		fs_search_folder_changed(mnt->search, f);
	return changed ? 1 : 0;
}

/* Does listing idx say what STATUS said (c)? Then its folder gained,
 * lost and changed nothing since: same UIDVALIDITY, UIDNEXT and count,
 * and the same HIGHESTMODSEQ (flags too; without CONDSTORE a listing is
 * always checked by EXAMINE). */
static bool listing_is_current(const CacheFolderIndex *idx,
			       const FsPreloadCounts *c)
{
	return idx->uidvalidity == c->uidvalidity && idx->uidnext != 0 &&
	       idx->uidnext == c->uidnext && idx->exists == c->messages &&
	       cache_folder_index_count(idx) == c->messages &&
	       idx->highestmodseq != 0 &&
	       idx->highestmodseq == c->highestmodseq;
}

bool fs_sync_note_current(FsFolder *f, const FsPreloadCounts *c)
{
	bool current;

	g_mutex_lock(&f->lock);
	current = f->listing && listing_is_current(f->listing->index, c);
	if (current) {
		f->verified = true;
		f->synced_at = MAX(f->synced_at, c->at);
		f->flags_at = MAX(f->flags_at, c->at);
	}
	g_mutex_unlock(&f->lock);
	return current;
}

/* A persisted listing that the mount's STATUS of every folder found
 * current is verified without an EXAMINE of its own (fs/preload.c). */
static void verify_by_status(FsMount *mnt, FsFolder *f)
{
	FsPreloadCounts c;
	bool want;

	g_mutex_lock(&f->lock);
	load_persisted(mnt, f);
	want = f->listing && !f->verified;
	g_mutex_unlock(&f->lock);
	if (want && fs_preload_counts(mnt->preload, f->raw, &c))
		fs_sync_note_current(f, &c);
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
	/* Only a user's readdir asks for IF_STALE. */
	if (when == FS_SYNC_IF_STALE)
		__atomic_store_n(&f->used_at, g_get_monotonic_time(),
				 __ATOMIC_RELAXED);
	if (mnt->preload && when != FS_SYNC_NOW)
		verify_by_status(mnt, f);
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
	if (rc < 0 && have)
		have = !drop_preview(mnt, f);
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
	start_streamer(mnt);
	mnt->preload = fs_preload_start(mnt);
}

void fs_sync_stop_background(FsMount *mnt)
{
	/* Checks still queued are dropped; saves are finished. Everything
	 * that installs listings (and so queues saves) stops before the
	 * saver does: a push to a pool being freed is a GLib critical. */
	g_clear_pointer(&mnt->preload, fs_preload_free);
	if (mnt->verifier)
		g_thread_pool_free(g_steal_pointer(&mnt->verifier), TRUE, TRUE);
	stop_streamer(mnt);
	if (mnt->saver)
		g_thread_pool_free(g_steal_pointer(&mnt->saver), FALSE, TRUE);
}

void fs_sync_verify_children(FsMount *mnt, FsFolder *dir)
{
	GPtrArray *children = fs_folder_children(dir);

	if (!mnt->verifier)
		return;
	fs_preload_children(mnt->preload, dir);
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

bool fs_sync_claim(FsMount *mnt, FsFolder *f)
{
	bool mine;

	g_mutex_lock(&f->lock);
	load_persisted(mnt, f);
	mine = f->selectable && !f->gone && !f->listing && !f->syncing;
	if (mine)
		f->syncing = true;
	g_mutex_unlock(&f->lock);
	return mine;
}

GArray *fs_sync_messages_new(void)
{
	return fs_merge_messages_new(0);
}

void fs_sync_add_message(FsMount *mnt, GArray *msgs, const ImapMessageMeta *m)
{
	Collect c = { .msgs = msgs, .fmt = mnt->name_format };

	collect_meta(&c, m); /* no builder: into msgs */
}

void fs_sync_finish_claimed(FsMount *mnt, FsFolder *f,
			    const ImapMailboxState *st, GArray *msgs, gint64 at)
{
	g_autoptr(GError) error = NULL;
	CacheFolderIndex *result = NULL;

	/* Small folders only (fs/preload.c): listed in the heap. */
	if (msgs)
		result = fs_merge_fresh(st, msgs, NULL, &error);
	if (result) {
		result->name_tag = fs_name_format_tag(mnt->name_format);
		/* Installed while still marked syncing: a reader waiting for
		 * this listing never starts one of its own. */
		install_listing(mnt, f, result);
	}
	g_mutex_lock(&f->lock);
	f->syncing = false;
	g_cond_broadcast(&f->synced);
	if (result) {
		f->synced_at = at;
		f->verified = true;
		f->flags_at = at;
	}
	g_mutex_unlock(&f->lock);
}

void fs_sync_set_exact_size(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			    uint32_t uid, uint64_t size)
{
	CacheMessage m;

	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->folder_id == folder_id &&
	    cache_folder_index_find(f->listing->index, uid, &m, NULL) &&
	    (!m.size_exact || m.size != size)) {
		if (m.size != size)
			g_debug("%s UID %u: size %" G_GUINT64_FORMAT
				" (server said %" G_GUINT64_FORMAT ")",
				f->raw, uid, size, m.size);
		cache_folder_index_set_size(f->listing->index, uid, size, true);
		f->dirty = true;
		/* Save and map anew (rebase_listing()), asked for again
		 * every 1,024 changes until done. */
		if (mnt->saver && !f->listing->partial &&
		    overlay_due(f->listing->index) &&
		    cache_folder_index_changed(f->listing->index) % 1024 == 0)
			g_thread_pool_push(mnt->saver, f, NULL);
	}
	g_mutex_unlock(&f->lock);
}

void fs_sync_save_dirty(FsMount *mnt)
{
	fs_tree_foreach(mnt->tree, save_if_dirty, mnt);
}

/* ---- first listings: the first entries while the rest streams in ---- */

/* In the job's thread, while a first listing streams in: show what came
 * so far as a partial listing of the folder (unless it has a whole one),
 * so that an opendir or readdir waiting for it can go on. Lookups of
 * other names still wait for the whole listing (the folder stays
 * unverified). Links (fs/links.h) count only whole listings. */
static void publish_preview(Collect *c)
{
	SyncJob *job = c->job;
	FsFolder *f = job->f;
	CacheFolderIndex hdr = { 0 }, *idx;
	FsListing *l = NULL;
	uint32_t folder_id;

	hdr.uidvalidity = c->st->uidvalidity;
	hdr.exists = c->st->exists;
	hdr.uidnext = c->st->uidnext;
	hdr.name_tag = fs_name_format_tag(job->fmt);
	c->preview_at = g_get_monotonic_time();
	idx = cache_index_builder_snapshot(c->b, &hdr);
	if (!idx || cache_store_folder_id(job->mnt->store, f->raw,
					  hdr.uidvalidity, &folder_id) < 0) {
		cache_folder_index_free(idx);
		return;
	}
	fs_tree_register_folder_id(job->mnt->tree, folder_id, f);
	g_mutex_lock(&f->lock);
	if (!f->listing || f->listing->partial) {
		l = f->listing;
		f->listing = fs_listing_new(folder_id, g_steal_pointer(&idx));
		f->listing->partial = true;
		g_cond_broadcast(&f->synced);
	}
	g_mutex_unlock(&f->lock);
	fs_listing_unref(l);
	cache_folder_index_free(idx);
}

/* After a failed sync: a partial listing is not served as if it were the
 * folder. Returns whether one was dropped. */
static bool drop_preview(FsMount *mnt, FsFolder *f)
{
	FsListing *l = NULL;

	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->partial) {
		l = g_steal_pointer(&f->listing);
		g_cond_broadcast(&f->synced);
	}
	g_mutex_unlock(&f->lock);
	fs_listing_unref(l);
	return l != NULL;
}

static void stream_one(gpointer data, gpointer user_data)
{
	FsFolder *f = data;

	fs_sync_folder(user_data, f, FS_SYNC_IF_MISSING);
	g_mutex_lock(&f->lock);
	f->streaming = false;
	g_cond_broadcast(&f->synced);
	g_mutex_unlock(&f->lock);
}

static void start_streamer(FsMount *mnt)
{
	mnt->streamer = g_thread_pool_new(stream_one, mnt, 2, FALSE, NULL);
}

static void stop_streamer(FsMount *mnt)
{
	/* Listings under way are finished (their jobs are bounded by the
	 * pool's timeouts). */
	if (mnt->streamer)
		g_thread_pool_free(g_steal_pointer(&mnt->streamer), TRUE, TRUE);
}

/* How long an opendir or readdir waits for a listing that streams in. */
static gint64 stream_deadline(FsMount *mnt)
{
	return g_get_monotonic_time() + mnt->refresh_us + 60 * G_USEC_PER_SEC;
}

int fs_sync_open_folder(FsMount *mnt, FsFolder *f)
{
	gint64 until = stream_deadline(mnt);
	bool have;

	g_mutex_lock(&f->lock);
	load_persisted(mnt, f);
	if (f->listing && f->listing->partial) {
		g_mutex_unlock(&f->lock);
		return 1; /* readdir waits for the rest */
	}
	if (f->listing || !mnt->streamer) {
		g_mutex_unlock(&f->lock);
		return fs_sync_folder(mnt, f, FS_SYNC_IF_STALE);
	}
	if (!f->streaming) {
		f->streaming = true;
		g_thread_pool_push(mnt->streamer, f, NULL);
	}
	while (!f->listing && f->streaming &&
	       g_cond_wait_until(&f->synced, &f->lock, until))
		;
	have = f->listing != NULL;
	g_mutex_unlock(&f->lock);
	/* The listing (whole or its first part) is there; else the sync
	 * failed: once more here, for its answer. */
	return have ? 1 : fs_sync_folder(mnt, f, FS_SYNC_IF_MISSING);
}

FsListing *fs_sync_wait_whole(FsMount *mnt, FsFolder *f, FsListing *partial)
{
	gint64 until = stream_deadline(mnt);
	FsListing *l = NULL;

	g_mutex_lock(&f->lock);
	while (f->listing == partial &&
	       g_cond_wait_until(&f->synced, &f->lock, until))
		;
	if (f->listing && f->listing != partial)
		l = fs_listing_ref(f->listing);
	g_mutex_unlock(&f->lock);
	return l;
}
