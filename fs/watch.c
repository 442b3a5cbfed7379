/* fs/watch.c: keeping the mount current while it is mounted.
 *
 * Two threads. The idle thread holds a connection of its own outside the
 * pool, driven by imap/watch.c: with NOTIFY it hears of new and expunged
 * mail in every folder and of folders created, deleted or renamed; without
 * NOTIFY it IDLEs on INBOX. It only notes which folders changed. The refresh
 * thread does the work through the pool: it resyncs the folders the idle thread
 * named, and every poll interval it re-reads the folder list and resyncs every
 * folder that has a listing, but for those one pipelined STATUS finds
 * unchanged (fs/preload.c). Without NOTIFY it also sends, every status
 * interval, one pipelined STATUS of the folders listed in the last ten
 * minutes and resyncs those whose counts moved, and re-reads the folder
 * list every LIST_EVERY such rounds (15 s at least). Listings that change
 * invalidate the kernel's caches (fs/sync.c).
 *
 * Locking: watch->lock guards pending, pending_all, pending_list and
 * stopping; neither thread does I/O under it.
 */
#include "fs/watch.h"

#include <errno.h>

#include "fs/preload.h"
#include "fs/sync.h"
#include "imap/folderstatus.h"
#include "imap/ops.h"
#include "imap/watch.h"

#define IDLE_SLICE_MS 200 /* how soon an unmount stops the thread */
#define RETRY_MAX_S 60
#define NO_IDLE_RECHECK_S 3600
/* Without NOTIFY: folders listed this recently are polled by STATUS, at
 * most this many; the folder list is re-read every LIST_EVERY ticks. */
#define RECENT_US (G_USEC_PER_SEC * 600)
#define STATUS_MAX_FOLDERS 64
#define LIST_EVERY 5
#define LIST_MIN_US (G_USEC_PER_SEC * 15)

struct FsWatch {
	FsMount *mnt;
	gint64 poll_us;
	GMutex lock;
	GCond cond;
	GHashTable *pending; /* raw folder names to resync */
	bool pending_all;    /* resync everything (after a reconnect) */
	bool pending_list;   /* re-read the folder list */
	bool stopping;
	bool notify;          /* the watcher has NOTIFY: no STATUS polling */
	gint64 status_us;     /* STATUS poll interval, 0 for none */
	GHashTable *statuses; /* raw name -> FolderCounts, refresh thread */
	GThread *idle_thread;
	GThread *refresh_thread;
};

static void note(FsWatch *w, const char *folder, bool list, bool all)
{
	g_mutex_lock(&w->lock);
	if (folder)
		g_hash_table_add(w->pending, g_strdup(folder));
	w->pending_list |= list;
	w->pending_all |= all;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static bool stopping(FsWatch *w)
{
	bool s;

	g_mutex_lock(&w->lock);
	s = w->stopping;
	g_mutex_unlock(&w->lock);
	return s;
}

static bool stopping_cb(void *data)
{
	return stopping(data);
}

/* Sleep up to seconds, waking early when stopping. */
static void nap(FsWatch *w, unsigned seconds)
{
	gint64 until = g_get_monotonic_time() + seconds * G_USEC_PER_SEC;

	g_mutex_lock(&w->lock);
	while (!w->stopping && g_cond_wait_until(&w->cond, &w->lock, until))
		;
	g_mutex_unlock(&w->lock);
}

/* ---- folder list ---- */

static int list_job(ImapConn *conn, const ImapMailboxState *st, void *data,
		    GError **error)
{
	return imap_list_mailboxes(conn, fs_tree_collect_folder, data, error);
}

static void entry_changed(FsFolder *parent, FsFolder *child, void *data)
{
	FsMount *mnt = data;
	fuse_ino_t dir = fs_tree_dir_ino(parent);

	g_message("folder %s %s on the server", child->path_raw,
		  child->gone ? "vanished" : "appeared");
	fs_inval_entry(mnt->inval, dir, child->name);
	fs_inval_inode(mnt->inval, dir);
	/* A name that comes back keeps its inode number: drop what the
	 * kernel still has of the old directory's contents. */
	fs_inval_inode(mnt->inval, fs_tree_dir_ino(child));
}

static void refresh_folder_list(FsWatch *w)
{
	g_autoptr(GError) error = NULL;
	GPtrArray *entries = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	int rc;

	rc = imap_pool_run(w->mnt->pool, NULL, list_job, entries,
			   (GDestroyNotify)g_ptr_array_unref, &error);
	if (rc == -ETIMEDOUT)
		return; /* the pool frees entries */
	if (rc == 0) {
		if (fs_tree_update(w->mnt->tree, entries, entry_changed,
				   w->mnt) > 0)
			cache_store_save_folders(w->mnt->store, entries);
	} else {
		g_debug("cannot re-read the folder list: %s",
			error ? error->message : g_strerror(-rc));
	}
	g_ptr_array_unref(entries);
}

/* ---- STATUS polling, for servers without NOTIFY ---- */

typedef struct {
	uint32_t uidnext, messages, uidvalidity;
	uint64_t modseq;
} FolderCounts;

typedef struct {
	char *folder;
	FolderCounts c;
	bool changed; /* news of the selected folder, no counts */
} StatusAnswer;

typedef struct {
	GPtrArray *folders; /* raw names */
	GArray *listed;     /* FolderCounts of each folder's listing */
	GArray *answers;    /* StatusAnswer */
} StatusJob;

static void status_job_free(gpointer data)
{
	StatusJob *job = data;

	for (guint i = 0; i < job->answers->len; i++)
		g_free(g_array_index(job->answers, StatusAnswer, i).folder);
	g_array_unref(job->answers);
	g_array_unref(job->listed);
	g_ptr_array_unref(job->folders);
	g_free(job);
}

/* What f's listing says of the counts STATUS gives (all zero without a
 * listing: a first answer then never matches). */
static void listed_counts(FsFolder *f, GArray *listed)
{
	FsListing *l = fs_folder_get_listing(f);
	FolderCounts c = { 0 };

	if (l && l->index)
		c = (FolderCounts){ l->index->uidnext, l->index->exists,
				    l->index->uidvalidity,
				    l->index->highestmodseq };
	fs_listing_unref(l);
	g_array_append_val(listed, c);
}

static void collect_recent(FsFolder *f, void *data)
{
	StatusJob *job = data;
	gint64 used = __atomic_load_n(&f->used_at, __ATOMIC_RELAXED);

	if (!f->selectable || f->gone || !f->raw || used == 0 ||
	    g_get_monotonic_time() - used > RECENT_US ||
	    job->folders->len >= STATUS_MAX_FOLDERS)
		return;
	g_ptr_array_add(job->folders, g_strdup(f->raw));
	listed_counts(f, job->listed);
}

static void status_answer(void *user_data, const ImapFolderStatus *st)
{
	StatusJob *job = user_data;
	StatusAnswer a = { g_strdup(st->folder),
			   { st->uidnext, st->messages, st->uidvalidity,
			     st->highestmodseq },
			   st->changed };

	g_array_append_val(job->answers, a);
}

static int status_job_run(ImapConn *conn, const ImapMailboxState *st,
			  void *data, GError **error)
{
	StatusJob *job = data;

	return imap_folder_status_many(conn, (char *const *)job->folders->pdata,
				       job->folders->len, status_answer, job,
				       error);
}

static bool counts_equal(const FolderCounts *a, const FolderCounts *b)
{
	return a->uidnext == b->uidnext && a->messages == b->messages &&
	       a->uidvalidity == b->uidvalidity && a->modseq == b->modseq;
}

/* Does a's answer match the listing its folder had when the job began? */
static bool listed_equal(const StatusJob *job, const StatusAnswer *a)
{
	for (guint i = 0; i < job->folders->len; i++)
		if (strcmp(job->folders->pdata[i], a->folder) == 0)
			return counts_equal(
			    &g_array_index(job->listed, FolderCounts, i),
			    &a->c);
	return false;
}

/* One pipelined STATUS of the recently listed folders: those whose
 * counts moved since the last round are resynced. */
static void status_tick(FsWatch *w)
{
	g_autoptr(GError) error = NULL;
	StatusJob *job = g_new0(StatusJob, 1);
	int rc;

	job->folders = g_ptr_array_new_with_free_func(g_free);
	job->answers = g_array_new(FALSE, FALSE, sizeof(StatusAnswer));
	job->listed = g_array_new(FALSE, FALSE, sizeof(FolderCounts));
	fs_tree_foreach(w->mnt->tree, collect_recent, job);
	if (job->folders->len == 0) {
		status_job_free(job);
		return;
	}
	rc = imap_pool_run(w->mnt->pool, NULL, status_job_run, job,
			   status_job_free, &error);
	if (rc == -ETIMEDOUT)
		return; /* the pool frees job */
	if (rc < 0)
		g_debug("STATUS poll: %s",
			error ? error->message : g_strerror(-rc));
	for (guint i = 0; rc == 0 && i < job->answers->len; i++) {
		StatusAnswer *a = &g_array_index(job->answers, StatusAnswer, i);
		FolderCounts *old = g_hash_table_lookup(w->statuses, a->folder);

		if (a->changed) {
			g_debug("NOOP: %s changed", a->folder);
			note(w, a->folder, false, false);
			continue;
		}
		if (old && counts_equal(old, &a->c))
			continue;
		g_hash_table_replace(w->statuses, g_strdup(a->folder),
				     g_memdup2(&a->c, sizeof(a->c)));
		/* A first answer is compared with the listing: a folder that
		 * has not changed since it was listed costs nothing more. */
		if (!old && listed_equal(job, a))
			continue;
		g_debug("STATUS: %s %s", a->folder, old ? "changed" : "first");
		note(w, a->folder, false, false);
	}
	status_job_free(job);
}

/* ---- refresh thread ---- */

typedef struct {
	FsWatch *w;
	GHashTable *only; /* raw names, or NULL for every listed folder */
	guint matched;    /* folders of only that exist */
} SyncAll;

static void sync_one(FsFolder *f, void *data)
{
	SyncAll *sa = data;
	bool listed;

	if (!f->selectable || f->gone || !f->raw)
		return;
	if (sa->only && !g_hash_table_contains(sa->only, f->raw))
		return;
	sa->matched++;
	g_mutex_lock(&f->lock);
	listed = f->listing != NULL;
	g_mutex_unlock(&f->lock);
	/* A folder nobody looked at has nothing cached to correct. */
	if (listed && !stopping(sa->w))
		fs_sync_folder(sa->w->mnt, f, FS_SYNC_NOW);
}

static gpointer refresh_main(gpointer data)
{
	FsWatch *w = data;
	gint64 next_poll = g_get_monotonic_time() + w->poll_us;
	gint64 list_us = MAX(LIST_MIN_US, LIST_EVERY * w->status_us);
	gint64 next_status = g_get_monotonic_time() + w->status_us;
	gint64 next_list = g_get_monotonic_time() + list_us;

	g_mutex_lock(&w->lock);
	while (!w->stopping) {
		GHashTable *pending;
		bool list, all, poll, status;
		bool polling = w->status_us > 0 && !w->notify;
		gint64 now;

		if (g_hash_table_size(w->pending) == 0 && !w->pending_all &&
		    !w->pending_list &&
		    g_cond_wait_until(&w->cond, &w->lock,
				      polling ? MIN(next_poll, next_status)
					      : next_poll))
			continue;
		if (w->stopping)
			break;
		now = g_get_monotonic_time();
		poll = now >= next_poll;
		status = polling && now >= next_status;
		if (status && now >= next_list) {
			w->pending_list = true;
			next_list = now + list_us;
		}
		pending = w->pending;
		w->pending = g_hash_table_new_full(g_str_hash, g_str_equal,
						   g_free, NULL);
		list = w->pending_list || poll || w->pending_all;
		all = w->pending_all || poll;
		w->pending_list = w->pending_all = false;
		g_mutex_unlock(&w->lock);

		if (status) {
			/* What it finds is resynced on the next turn. */
			status_tick(w);
			next_status = g_get_monotonic_time() + w->status_us;
		}
		if (list)
			refresh_folder_list(w);
		if (all)
			fs_preload_resync_listed(w->mnt, stopping_cb, w);
		else {
			SyncAll sa = { w, pending, 0 };

			fs_tree_foreach(w->mnt->tree, sync_one, &sa);
			/* A name we cannot place (a server's own spelling of
			 * it): better every listed folder than none. */
			if (sa.only && g_hash_table_size(pending) > 0 &&
			    sa.matched == 0) {
				sa.only = NULL;
				fs_tree_foreach(w->mnt->tree, sync_one, &sa);
			}
		}
		g_hash_table_unref(pending);
		if (poll)
			next_poll = g_get_monotonic_time() + w->poll_us;

		g_mutex_lock(&w->lock);
	}
	g_mutex_unlock(&w->lock);
	return NULL;
}

/* ---- idle thread ---- */

static void watch_event(void *user_data, const ImapWatchEvent *ev)
{
	FsWatch *w = user_data;

	switch (ev->kind) {
	case IMAP_WATCH_FOLDER_CHANGED:
		note(w, ev->folder, false, false);
		if (ev->folder_alt)
			note(w, ev->folder_alt, false, false);
		break;
	case IMAP_WATCH_FOLDERS_CHANGED:
		note(w, NULL, true, false);
		break;
	case IMAP_WATCH_NEW_MESSAGES:
	case IMAP_WATCH_EXPUNGED:
		note(w, ev->folder, false, false);
		break;
	}
}

typedef enum { SESSION_FAILED, SESSION_IDLED, SESSION_NO_IDLE } Session;

/* One session: connect, arm the watch, listen until broken or stopping. */
static Session idle_session(FsWatch *w)
{
	g_autoptr(GError) error = NULL;
	/* By the pool's rules: a refused password suspends this login
	 * too, and the pool knows the current secret. */
	ImapConn *conn = imap_pool_connect(w->mnt->pool, &error);
	ImapWatch *iw = NULL;
	Session result;
	int rc;

	if (!conn) {
		g_debug("watcher: %s", error->message);
		return SESSION_FAILED;
	}
	g_mutex_lock(&w->lock);
	w->notify = imap_conn_has_cap(conn, "NOTIFY");
	g_mutex_unlock(&w->lock);
	rc = imap_watch_start(conn, watch_event, w, &iw, &error);
	if (rc == -ENOTSUP) {
		g_debug("watcher: server has no IDLE; polling every "
			"%" G_GINT64_FORMAT " s",
			w->poll_us / G_USEC_PER_SEC);
		return SESSION_NO_IDLE;
	}
	if (rc < 0) {
		g_debug("watcher: %s", error ? error->message : "failed");
		return SESSION_FAILED;
	}
	/* Catch up with whatever happened while we were not listening. */
	note(w, NULL, true, true);
	while (rc >= 0 && !stopping(w))
		rc = imap_watch_wait(iw, IDLE_SLICE_MS, &error);
	if (rc >= 0)
		imap_watch_stop(iw, &error);
	if (error)
		g_debug("watcher: %s", error->message);
	result = imap_watch_has_idled(iw) ? SESSION_IDLED : SESSION_FAILED;
	imap_watch_free(iw);
	return result;
}

static gpointer idle_main(gpointer data)
{
	FsWatch *w = data;
	unsigned backoff = 1;

	while (!stopping(w)) {
		switch (idle_session(w)) {
		case SESSION_IDLED:
			backoff = 1;
			break;
		case SESSION_NO_IDLE:
			/* Polling does the work; look again only rarely, in
			 * case the server is upgraded while mounted. */
			backoff = NO_IDLE_RECHECK_S;
			break;
		case SESSION_FAILED:
			backoff = MIN(backoff * 2, RETRY_MAX_S);
			break;
		}
		nap(w, backoff);
	}
	return NULL;
}

FsWatch *fs_watch_new(FsMount *mnt, unsigned poll_interval,
		      unsigned status_interval)
{
	FsWatch *w = g_new0(FsWatch, 1);

	w->mnt = mnt;
	w->poll_us = (gint64)poll_interval * G_USEC_PER_SEC;
	w->status_us = (gint64)status_interval * G_USEC_PER_SEC;
	w->statuses =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->pending =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	w->refresh_thread = g_thread_new("refresh", refresh_main, w);
	w->idle_thread = g_thread_new("idle", idle_main, w);
	return w;
}

void fs_watch_free(FsWatch *w)
{
	if (!w)
		return;
	g_mutex_lock(&w->lock);
	w->stopping = true;
	g_cond_broadcast(&w->cond);
	g_mutex_unlock(&w->lock);
	g_thread_join(w->idle_thread);
	g_thread_join(w->refresh_thread);
	g_hash_table_unref(w->pending);
	g_hash_table_unref(w->statuses);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w);
}
