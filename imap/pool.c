/* imap/pool.c: connection pool with one thread per connection.
 *
 * Locking: one mutex (pool->lock) guards the queues, the workers' idle and
 * selected fields, the down state and job completion. Network I/O never
 * happens under it. Each worker owns its connection; worker->conn is only
 * replaced by the worker itself, under the lock, so a waiting caller may
 * read the connection's progress clock under the lock.
 *
 * Jobs are reference counted: the queue/worker holds one reference and a
 * waiting caller another, so a caller that gives up (timeout) can leave
 * while the worker finishes; whoever drops the last reference frees it.
 */
#include "imap/pool.h"

#include <errno.h>
#include <string.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define KEEPALIVE_US (G_USEC_PER_SEC * 240)

typedef struct {
	gint refs;
	char *folder;
	ImapJobFn fn;
	void *data;
	GDestroyNotify free_data;
	bool background;
	bool done;
	bool abandoned;
	int rc;
	GError *error;
	gint64 queued_at;
} Job;

typedef struct Worker Worker;

struct ImapPool {
	ImapAccount account;
	GMutex lock;
	GCond done_cond;
	GQueue fg;            /* Job*, waited for */
	GQueue bg;            /* Job*, prefetch */
	Worker **workers;
	unsigned n_workers;
	bool stopping;
	bool down;
	gint64 down_until;    /* monotonic us */
	unsigned backoff_ms;
	char *down_reason;
};

struct Worker {
	ImapPool *pool;
	GThread *thread;
	GCond cond;
	ImapConn *conn;
	char *selected;       /* copy of the conn's selection, for matching */
	bool idle;
	bool woken;
};

static void job_unref(Job *job)
{
	if (!g_atomic_int_dec_and_test(&job->refs))
		return;
	if (job->free_data)
		job->free_data(job->data);
	g_clear_error(&job->error);
	g_free(job->folder);
	g_free(job);
}

static bool same_folder(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Take the next job for w: one for its selected folder first, then the
 * oldest. Background jobs only when nothing is waited for. */
static Job *take_job(ImapPool *pool, Worker *w)
{
	GQueue *queues[] = {&pool->fg, &pool->bg};

	for (unsigned q = 0; q < 2; q++) {
		for (GList *l = queues[q]->head; l; l = l->next) {
			Job *job = l->data;

			if (same_folder(job->folder, w->selected)) {
				g_queue_delete_link(queues[q], l);
				return job;
			}
		}
		if (!g_queue_is_empty(queues[q]))
			return g_queue_pop_head(queues[q]);
	}
	return NULL;
}

/* Wake the idle worker best placed to run a job for folder. */
static void wake_worker(ImapPool *pool, const char *folder)
{
	Worker *best = NULL;
	int best_score = -1;

	for (unsigned i = 0; i < pool->n_workers; i++) {
		Worker *w = pool->workers[i];
		int score;

		if (!w->idle || w->woken)
			continue;
		score = same_folder(folder, w->selected) ? 2 : w->conn ? 1 : 0;
		if (score > best_score) {
			best = w;
			best_score = score;
		}
	}
	if (best) {
		best->woken = true;
		g_cond_signal(&best->cond);
	}
}

static void complete_job(ImapPool *pool, Job *job, int rc, GError *error)
{
	job->done = true;
	job->rc = rc;
	job->error = error;
	if (!job->background)
		g_cond_broadcast(&pool->done_cond);
}

/* Fail every waited-for job still queued: the server is unreachable. */
static void fail_queued(ImapPool *pool, const char *reason)
{
	Job *job;

	while ((job = g_queue_pop_head(&pool->fg))) {
		complete_job(pool, job,
			     -EIO,
			     g_error_new(IMAP_ERROR, IMAP_ERROR_CONNECT, "%s",
					 reason));
		job_unref(job);
	}
	while ((job = g_queue_pop_head(&pool->bg))) {
		complete_job(pool, job, -EIO, NULL);
		job_unref(job);
	}
}

static void set_worker_conn(Worker *w, ImapConn *conn)
{
	g_mutex_lock(&w->pool->lock);
	w->conn = conn;
	g_clear_pointer(&w->selected, g_free);
	g_mutex_unlock(&w->pool->lock);
}

/* Under the lock: the server cannot be reached (a connection failed, or
 * one made no progress within the timeout). Until the backoff has passed,
 * jobs fail at once instead of each waiting for the timeout again. */
static void mark_down(ImapPool *pool, const char *reason)
{
	pool->backoff_ms = pool->backoff_ms
				   ? MIN(pool->backoff_ms * 2, BACKOFF_MAX_MS)
				   : BACKOFF_MIN_MS;
	pool->down = true;
	pool->down_until =
		g_get_monotonic_time() + (gint64)pool->backoff_ms * 1000;
	g_free(pool->down_reason);
	pool->down_reason = g_strdup(reason);
	g_warning("server unreachable, retrying in %.1f s: %s",
		  pool->backoff_ms / 1000.0, pool->down_reason);
	fail_queued(pool, pool->down_reason);
}

/* Make sure w has a healthy connection. Called without the lock. */
static int ensure_conn(Worker *w, GError **error)
{
	ImapPool *pool = w->pool;
	ImapConn *old = w->conn;
	ImapConn *conn;
	gint64 now;

	if (old && !imap_conn_is_broken(old))
		return 0;
	if (old) {
		set_worker_conn(w, NULL);
		imap_conn_free(old);
	}
	g_mutex_lock(&pool->lock);
	now = g_get_monotonic_time();
	if (pool->down && now < pool->down_until) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CONNECT, "%s",
			    pool->down_reason);
		g_mutex_unlock(&pool->lock);
		return -EIO;
	}
	g_mutex_unlock(&pool->lock);

	conn = imap_conn_open(&pool->account, error);

	g_mutex_lock(&pool->lock);
	if (!conn) {
		mark_down(pool, error && *error ? (*error)->message
						: "server unreachable");
		g_mutex_unlock(&pool->lock);
		return -EIO;
	}
	if (pool->down)
		g_message("connection to %s restored", pool->account.host);
	pool->down = false;
	pool->backoff_ms = 0;
	w->conn = conn;
	g_mutex_unlock(&pool->lock);
	return 0;
}

static int run_job(Worker *w, Job *job, GError **error)
{
	for (int attempt = 0;; attempt++) {
		ImapMailboxState state = {0};
		int rc;

		g_clear_error(error);
		rc = ensure_conn(w, error);
		if (rc < 0)
			return rc;
		if (job->folder) {
			rc = imap_conn_examine(w->conn, job->folder, &state,
					       error);
			g_mutex_lock(&w->pool->lock);
			g_free(w->selected);
			w->selected = g_strdup(imap_conn_selected(w->conn));
			g_mutex_unlock(&w->pool->lock);
			if (rc < 0 && !imap_conn_is_broken(w->conn))
				return -ENOENT; /* folder gone or refused */
		}
		if (rc == 0)
			rc = job->fn(w->conn, job->folder ? &state : NULL,
				     job->data, error);
		/* The job may have selected another folder itself. */
		g_mutex_lock(&w->pool->lock);
		g_free(w->selected);
		w->selected = g_strdup(imap_conn_selected(w->conn));
		g_mutex_unlock(&w->pool->lock);
		/* A connection that the server closed under an idempotent
		 * job (its idle timeout, a restart): retry once. Not after a
		 * timeout: the caller's time is spent already. */
		if (rc < 0 && imap_conn_is_broken(w->conn) && attempt == 0 &&
		    !(error && *error &&
		      g_error_matches(*error, IMAP_ERROR, IMAP_ERROR_TIMEOUT))) {
			g_debug("connection broke, retrying: %s",
				error && *error ? (*error)->message : "");
			continue;
		}
		return rc;
	}
}

static void keepalive(Worker *w)
{
	if (w->conn && !imap_conn_is_broken(w->conn))
		imap_conn_command(w->conn, NULL, NULL, NULL, "NOOP");
}

static gpointer worker_main(gpointer data)
{
	Worker *w = data;
	ImapPool *pool = w->pool;

	g_mutex_lock(&pool->lock);
	while (!pool->stopping) {
		Job *job = take_job(pool, w);
		GError *error = NULL;
		int rc;

		if (!job) {
			gint64 until = g_get_monotonic_time() + KEEPALIVE_US;
			bool timed_out;

			w->idle = true;
			w->woken = false;
			timed_out = !g_cond_wait_until(&w->cond, &pool->lock,
						       until);
			w->idle = false;
			if (timed_out && !pool->stopping && w->conn) {
				g_mutex_unlock(&pool->lock);
				keepalive(w);
				g_mutex_lock(&pool->lock);
			}
			continue;
		}
		if (job->abandoned) {
			job_unref(job);
			continue;
		}
		g_mutex_unlock(&pool->lock);

		rc = run_job(w, job, &error);
		if (rc < 0 && error &&
		    g_error_matches(error, IMAP_ERROR, IMAP_ERROR_TIMEOUT)) {
			g_mutex_lock(&pool->lock);
			mark_down(pool, error->message);
			g_mutex_unlock(&pool->lock);
		}
		if (w->conn && imap_conn_is_broken(w->conn)) {
			/* Free it now: its parser may hold a half-written
			 * temp file of a body. */
			ImapConn *dead = w->conn;

			set_worker_conn(w, NULL);
			imap_conn_free(dead);
		}

		g_mutex_lock(&pool->lock);
		complete_job(pool, job, rc, error);
		job_unref(job);
	}
	g_mutex_unlock(&pool->lock);

	if (w->conn)
		imap_conn_free(w->conn);
	w->conn = NULL;
	return NULL;
}

ImapPool *imap_pool_new(const ImapAccount *account, unsigned size,
			ImapConn *first_conn)
{
	ImapPool *pool = g_new0(ImapPool, 1);

	pool->account = *account;
	g_mutex_init(&pool->lock);
	g_cond_init(&pool->done_cond);
	g_queue_init(&pool->fg);
	g_queue_init(&pool->bg);
	pool->n_workers = MAX(size, 1u);
	pool->workers = g_new0(Worker *, pool->n_workers);
	for (unsigned i = 0; i < pool->n_workers; i++) {
		Worker *w = g_new0(Worker, 1);

		w->pool = pool;
		g_cond_init(&w->cond);
		if (i == 0)
			w->conn = first_conn;
		pool->workers[i] = w;
	}
	for (unsigned i = 0; i < pool->n_workers; i++) {
		g_autofree char *name = g_strdup_printf("imap-%u", i);

		pool->workers[i]->thread =
			g_thread_new(name, worker_main, pool->workers[i]);
	}
	return pool;
}

void imap_pool_free(ImapPool *pool)
{
	Job *job;

	if (!pool)
		return;
	g_mutex_lock(&pool->lock);
	pool->stopping = true;
	while ((job = g_queue_pop_head(&pool->fg))) {
		complete_job(pool, job, -ESHUTDOWN, NULL);
		job_unref(job);
	}
	while ((job = g_queue_pop_head(&pool->bg)))
		job_unref(job);

	for (unsigned i = 0; i < pool->n_workers; i++)
		g_cond_signal(&pool->workers[i]->cond);
	g_mutex_unlock(&pool->lock);

	for (unsigned i = 0; i < pool->n_workers; i++) {
		Worker *w = pool->workers[i];

		g_thread_join(w->thread);
		g_cond_clear(&w->cond);
		g_free(w->selected);
		g_free(w);
	}
	g_free(pool->workers);
	g_free(pool->down_reason);
	g_cond_clear(&pool->done_cond);
	g_mutex_clear(&pool->lock);
	g_free(pool);
}

/* Latest moment any busy connection received bytes. Under the lock. */
static gint64 pool_progress(ImapPool *pool)
{
	gint64 best = 0;

	for (unsigned i = 0; i < pool->n_workers; i++) {
		Worker *w = pool->workers[i];

		if (!w->idle && w->conn)
			best = MAX(best, imap_conn_last_progress(w->conn));
	}
	return best;
}

static Job *job_new(const char *folder, ImapJobFn fn, void *data,
		    GDestroyNotify free_data, bool background)
{
	Job *job = g_new0(Job, 1);

	job->refs = 1;
	job->folder = g_strdup(folder);
	job->fn = fn;
	job->data = data;
	job->free_data = free_data;
	job->background = background;
	job->queued_at = g_get_monotonic_time();
	return job;
}

/* Under the lock: is the server known to be unreachable right now? */
static bool fail_fast(ImapPool *pool)
{
	return pool->down && g_get_monotonic_time() < pool->down_until;
}

int imap_pool_run(ImapPool *pool, const char *folder, ImapJobFn fn,
		  void *data, GDestroyNotify free_data, GError **error)
{
	gint64 timeout_us = (gint64)pool->account.timeout_ms * 1000;
	Job *job;
	int rc;

	g_mutex_lock(&pool->lock);
	if (pool->stopping || fail_fast(pool)) {
		bool stopping = pool->stopping;

		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CONNECT, "%s",
			    stopping ? "shutting down" : pool->down_reason);
		g_mutex_unlock(&pool->lock);
		return stopping ? -ESHUTDOWN : -EIO;
	}
	job = job_new(folder, fn, data, free_data, false);
	g_atomic_int_inc(&job->refs); /* one for the queue, one for us */
	g_queue_push_tail(&pool->fg, job);
	wake_worker(pool, folder);

	while (!job->done) {
		gint64 last = MAX(job->queued_at, pool_progress(pool));
		gint64 deadline = last + timeout_us;

		if (g_get_monotonic_time() >= deadline) {
			job->abandoned = true;
			g_queue_remove(&pool->fg, job) ? job_unref(job)
						       : (void)0;
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_TIMEOUT,
				    "%s made no progress within %u s",
				    pool->account.host,
				    pool->account.timeout_ms / 1000);
			if (!fail_fast(pool))
				mark_down(pool, "the server made no progress "
						"within the timeout");
			g_mutex_unlock(&pool->lock);
			job_unref(job);
			return -ETIMEDOUT;
		}
		g_cond_wait_until(&pool->done_cond, &pool->lock, deadline);
	}
	rc = job->rc;
	if (job->error)
		g_propagate_error(error, g_steal_pointer(&job->error));
	job->free_data = NULL; /* data is the caller's again */
	g_mutex_unlock(&pool->lock);
	job_unref(job);
	return rc;
}

void imap_pool_submit(ImapPool *pool, const char *folder, ImapJobFn fn,
		      void *data, GDestroyNotify free_data)
{
	Job *job;

	g_mutex_lock(&pool->lock);
	if (pool->stopping || fail_fast(pool)) {
		g_mutex_unlock(&pool->lock);
		if (free_data)
			free_data(data);
		return;
	}
	job = job_new(folder, fn, data, free_data, true);
	g_queue_push_tail(&pool->bg, job);
	wake_worker(pool, folder);
	g_mutex_unlock(&pool->lock);
}
