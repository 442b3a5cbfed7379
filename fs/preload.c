/* fs/preload.c: the mount-time STATUS of every folder (see preload.h).
 *
 * One thread sends the STATUS batch through the pool and files the
 * answers; readers wait for them on pre->cond, never longer than the
 * mount's timeout from the start. The job's own data goes to the pool
 * (which frees it, also after a timeout); the answers are copied into
 * pre only when the job finished.
 *
 * Locking: pre->lock guards answers, done and stopping. No I/O under it.
 */
#include "fs/preload.h"

#include <errno.h>

#include "fs/name-format.h"
#include "fs/sync.h"
#include "imap/bulk.h"
#include "imap/folderstatus.h"

/* Accounts with more folders than this are asked about the first ones
 * only; the rest are checked one by one, as without this module. */
#define PRELOAD_MAX_FOLDERS 20000
/* Subfolders listed ahead when a directory is read: those holding at most
 * this many messages, at most this many messages a directory. */
#define PREFETCH_MAX_MESSAGES 500
#define PREFETCH_BATCH_MESSAGES 20000
#define PREFETCH_THREADS 2

struct FsPreload {
	FsMount *mnt;
	GThread *thread;
	gint64 started; /* monotonic us */
	GMutex lock;
	GCond cond;
	GHashTable *answers; /* raw name -> FsPreloadCounts */
	bool done;
	bool stopping;         /* under lock: no more pushes to prefetch */
	GThreadPool *prefetch; /* directories whose subfolders to list */
};

typedef struct {
	GPtrArray *folders;  /* raw names */
	GHashTable *answers; /* raw name -> FsPreloadCounts */
	gint64 at;
} StatusJob;

static void status_job_free(gpointer data)
{
	StatusJob *job = data;

	g_ptr_array_unref(job->folders);
	if (job->answers)
		g_hash_table_unref(job->answers);
	g_free(job);
}

static void collect_folder(FsFolder *f, void *data)
{
	StatusJob *job = data;

	if (f->selectable && !f->gone && f->raw &&
	    job->folders->len < PRELOAD_MAX_FOLDERS)
		g_ptr_array_add(job->folders, g_strdup(f->raw));
}

static void status_answer(void *user_data, const ImapFolderStatus *st)
{
	StatusJob *job = user_data;
	FsPreloadCounts c = { 0 };

	/* Without all three counts the answer proves nothing. */
	if (st->changed || !st->has_uidvalidity || !st->has_uidnext ||
	    !st->has_messages)
		return;
	c.uidvalidity = st->uidvalidity;
	c.uidnext = st->uidnext;
	c.messages = st->messages;
	c.highestmodseq = st->has_modseq ? st->highestmodseq : 0;
	c.at = job->at;
	g_hash_table_replace(job->answers, g_strdup(st->folder),
			     g_memdup2(&c, sizeof(c)));
}

static int status_job_run(ImapConn *conn, const ImapMailboxState *unused,
			  void *data, GError **error)
{
	StatusJob *job = data;

	job->at = g_get_monotonic_time();
	return imap_folder_status_many(conn, (char *const *)job->folders->pdata,
				       job->folders->len, status_answer, job,
				       error);
}

static gpointer preload_main(gpointer data)
{
	FsPreload *pre = data;
	g_autoptr(GError) error = NULL;
	StatusJob *job = g_new0(StatusJob, 1);
	guint asked;
	int rc;

	job->folders = g_ptr_array_new_with_free_func(g_free);
	job->answers =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	fs_tree_foreach(pre->mnt->tree, collect_folder, job);
	asked = job->folders->len;
	rc = job->folders->len == 0
		 ? 0
		 : imap_pool_run(pre->mnt->pool, NULL, status_job_run, job,
				 status_job_free, &error);
	if (rc < 0)
		g_debug("STATUS of every folder at mount: %s",
			error ? error->message : g_strerror(-rc));
	g_mutex_lock(&pre->lock);
	if (rc == 0) {
		g_hash_table_unref(pre->answers);
		pre->answers = g_steal_pointer(&job->answers);
	}
	pre->done = true;
	g_cond_broadcast(&pre->cond);
	g_mutex_unlock(&pre->lock);
	g_debug("STATUS of %u folders at mount: %u answers", asked,
		g_hash_table_size(pre->answers));
	if (rc != -ETIMEDOUT) /* else the pool frees it */
		status_job_free(job);
	return NULL;
}

static void prefetch_one(gpointer data, gpointer user_data);

FsPreload *fs_preload_start(FsMount *mnt)
{
	FsPreload *pre = g_new0(FsPreload, 1);

	pre->mnt = mnt;
	pre->started = g_get_monotonic_time();
	g_mutex_init(&pre->lock);
	g_cond_init(&pre->cond);
	pre->answers =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	pre->thread = g_thread_new("preload", preload_main, pre);
	pre->prefetch = g_thread_pool_new_full(prefetch_one, pre, g_free,
					       PREFETCH_THREADS, FALSE, NULL);
	return pre;
}

void fs_preload_free(FsPreload *pre)
{
	if (!pre)
		return;
	/* Directories still queued are dropped; batches running end. */
	g_mutex_lock(&pre->lock);
	pre->stopping = true;
	g_mutex_unlock(&pre->lock);
	g_thread_pool_free(pre->prefetch, TRUE, TRUE);
	g_thread_join(pre->thread);
	g_hash_table_unref(pre->answers);
	g_mutex_clear(&pre->lock);
	g_cond_clear(&pre->cond);
	g_free(pre);
}

bool fs_preload_counts(FsPreload *pre, const char *raw, FsPreloadCounts *out)
{
	gint64 until;
	const FsPreloadCounts *c;
	bool found = false;

	if (!pre || !raw)
		return false;
	until = pre->started + pre->mnt->timeout_us;
	g_mutex_lock(&pre->lock);
	while (!pre->done && g_cond_wait_until(&pre->cond, &pre->lock, until))
		;
	c = pre->done ? g_hash_table_lookup(pre->answers, raw) : NULL;
	if (c) {
		*out = *c;
		found = true;
	}
	g_mutex_unlock(&pre->lock);
	return found;
}

/* ---- the watcher's resync of every listed folder ---- */

static void collect_listed(FsFolder *f, void *data)
{
	StatusJob *job = data;
	bool listed;

	if (!f->selectable || f->gone || !f->raw)
		return;
	g_mutex_lock(&f->lock);
	listed = f->listing != NULL;
	g_mutex_unlock(&f->lock);
	/* A folder nobody looked at has nothing cached to correct. */
	if (listed)
		g_ptr_array_add(job->folders, f);
}

static int listed_status_run(ImapConn *conn, const ImapMailboxState *unused,
			     void *data, GError **error)
{
	StatusJob *job = data;
	g_autoptr(GPtrArray) names = g_ptr_array_new();

	job->at = g_get_monotonic_time();
	for (guint i = 0; i < job->folders->len; i++)
		g_ptr_array_add(names,
				((FsFolder *)job->folders->pdata[i])->raw);
	return imap_folder_status_many(conn, (char *const *)names->pdata,
				       names->len, status_answer, job, error);
}

void fs_preload_resync_listed(FsMount *mnt, bool (*stop)(void *), void *data)
{
	g_autoptr(GError) error = NULL;
	StatusJob *job = g_new0(StatusJob, 1);
	GHashTable *answers = NULL;
	int rc;

	/* Folders live as long as the tree: borrowed. */
	job->folders = g_ptr_array_new();
	job->answers =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	fs_tree_foreach(mnt->tree, collect_listed, job);
	rc = job->folders->len == 0
		 ? 0
		 : imap_pool_run(mnt->pool, NULL, listed_status_run, job,
				 status_job_free, &error);
	if (rc == -ETIMEDOUT)
		return; /* the pool frees job; the next round tries again */
	if (rc == 0)
		answers = job->answers;
	else
		g_debug("STATUS of the listed folders: %s",
			error ? error->message : g_strerror(-rc));
	for (guint i = 0; i < job->folders->len && !stop(data); i++) {
		FsFolder *f = job->folders->pdata[i];
		const FsPreloadCounts *c =
		    answers ? g_hash_table_lookup(answers, f->raw) : NULL;

		if (c && fs_sync_note_current(f, c))
			continue;
		fs_sync_folder(mnt, f, FS_SYNC_NOW);
	}
	status_job_free(job);
}

/* ---- small subfolders listed ahead ---- */

typedef struct {
	FsMount *mnt;
	GPtrArray *folders; /* FsFolder*, claimed (fs_sync_claim) */
	GArray *targets;    /* ImapBulkTarget, one per folder */
	GPtrArray *msgs;    /* GArray of CacheMessage per folder */
	unsigned fields;    /* IMAP_META_* */
	gint64 at;
} BulkJob;

static void messages_free(gpointer data)
{
	if (data) /* NULL once installed */
		g_array_unref(data);
}

static void bulk_job_free(gpointer data)
{
	BulkJob *job = data;

	g_ptr_array_unref(job->folders);
	g_array_unref(job->targets);
	g_ptr_array_unref(job->msgs);
	g_free(job);
}

static void bulk_meta(void *user_data, size_t i, const ImapMessageMeta *m)
{
	BulkJob *job = user_data;

	fs_sync_add_message(job->mnt, job->msgs->pdata[i], m);
}

static int bulk_job_run(ImapConn *conn, const ImapMailboxState *unused,
			void *data, GError **error)
{
	BulkJob *job = data;

	/* Run again on a fresh connection after a break: start over. */
	for (guint i = 0; i < job->msgs->len; i++)
		g_array_set_size(job->msgs->pdata[i], 0);
	job->at = g_get_monotonic_time();
	return imap_bulk_list(conn, (ImapBulkTarget *)job->targets->data,
			      job->targets->len, job->fields, bulk_meta, job,
			      error);
}

/* Claim dir's small subfolders that have no listing yet (those of the
 * mount's STATUS with at most PREFETCH_MAX_MESSAGES). */
static BulkJob *bulk_job_new(FsPreload *pre, FsFolder *dir)
{
	GPtrArray *children = fs_folder_children(dir);
	BulkJob *job = g_new0(BulkJob, 1);
	guint budget = PREFETCH_BATCH_MESSAGES;

	job->mnt = pre->mnt;
	job->folders = g_ptr_array_new();
	job->targets = g_array_new(FALSE, TRUE, sizeof(ImapBulkTarget));
	job->msgs = g_ptr_array_new_with_free_func(messages_free);
	for (guint i = 0; i < children->len; i++) {
		FsFolder *c = children->pdata[i];
		ImapBulkTarget t = { 0 };
		FsPreloadCounts n;

		if (!c->selectable || c->gone || !c->raw ||
		    !fs_preload_counts(pre, c->raw, &n) ||
		    n.messages > PREFETCH_MAX_MESSAGES || n.messages > budget ||
		    !fs_sync_claim(pre->mnt, c))
			continue;
		budget -= n.messages;
		t.mailbox = c->raw;
		t.fetch = n.messages > 0;
		g_ptr_array_add(job->folders, c);
		g_array_append_val(job->targets, t);
		g_ptr_array_add(job->msgs, fs_sync_messages_new());
	}
	return job;
}

/* A directory whose subfolders to list, and how many levels below them
 * to go on. */
typedef struct {
	FsFolder *dir;
	unsigned depth;
} Ahead;

static void push_ahead(FsPreload *pre, FsFolder *dir, unsigned depth)
{
	Ahead *a = g_new(Ahead, 1);

	a->dir = dir;
	a->depth = depth;
	/* A batch queues the next level from inside the pool, so a push
	 * can race with fs_preload_free(): pushing to a pool being freed is
	 * a GLib critical. */
	g_mutex_lock(&pre->lock);
	if (!pre->stopping)
		g_thread_pool_push(pre->prefetch, g_steal_pointer(&a), NULL);
	g_mutex_unlock(&pre->lock);
	g_free(a);
}

static void prefetch_one(gpointer data, gpointer user_data)
{
	FsPreload *pre = user_data;
	FsMount *mnt = pre->mnt;
	g_autoptr(GError) error = NULL;
	g_autofree Ahead *a = data;
	BulkJob *job = bulk_job_new(pre, a->dir);
	int rc;

	if (job->folders->len == 0) {
		bulk_job_free(job);
		return;
	}
	job->fields =
	    fs_name_format_uses_from(mnt->name_format) ? IMAP_META_FROM : 0;
	rc = imap_pool_run(mnt->pool, NULL, bulk_job_run, job, bulk_job_free,
			   &error);
	if (rc < 0)
		g_debug("listing %u folders ahead: %s", job->folders->len,
			error ? error->message : g_strerror(-rc));
	for (guint i = 0; i < job->folders->len; i++) {
		ImapBulkTarget *t =
		    &g_array_index(job->targets, ImapBulkTarget, i);
		bool ok = rc == 0 && t->status == 0;

		/* After a timeout the job may still run: leave its data. */
		fs_sync_finish_claimed(
		    mnt, job->folders->pdata[i], &t->state,
		    ok ? g_steal_pointer(&job->msgs->pdata[i]) : NULL, job->at);
	}
	/* A tree walk (find, a file manager's tree view) goes on into
	 * these: list their subfolders ahead as well. */
	for (guint i = 0; a->depth > 0 && i < job->folders->len; i++) {
		FsFolder *c = job->folders->pdata[i];

		if (fs_folder_children(c)->len > 0)
			push_ahead(pre, c, a->depth - 1);
	}
	if (rc != -ETIMEDOUT) /* else the pool frees it */
		bulk_job_free(job);
}

void fs_preload_children(FsPreload *pre, FsFolder *dir)
{
	if (pre && pre->prefetch && pre->mnt->list_ahead > 0)
		push_ahead(pre, dir, pre->mnt->list_ahead - 1);
}
