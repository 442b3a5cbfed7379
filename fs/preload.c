/* fs/preload.c: the mount-time STATUS of every folder (see preload.h).
 *
 * One thread sends the STATUS batch through the pool and files the
 * answers; readers wait for them on pre->cond, never longer than the
 * mount's timeout from the start. The job's own data goes to the pool
 * (which frees it, also after a timeout); the answers are copied into
 * pre only when the job finished.
 *
 * Locking: pre->lock guards answers and done. No I/O under it.
 */
#include "fs/preload.h"

#include <errno.h>

#include "fs/sync.h"
#include "imap/folderstatus.h"

/* Accounts with more folders than this are asked about the first ones
 * only; the rest are checked one by one, as without this module. */
#define PRELOAD_MAX_FOLDERS 20000

struct FsPreload {
	FsMount *mnt;
	GThread *thread;
	gint64 started; /* monotonic us */
	GMutex lock;
	GCond cond;
	GHashTable *answers; /* raw name -> FsPreloadCounts */
	bool done;
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
	return pre;
}

void fs_preload_free(FsPreload *pre)
{
	if (!pre)
		return;
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
