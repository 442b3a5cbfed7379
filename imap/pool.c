/* imap/pool.c: connection pool with one thread per connection.
 *
 * Locking: one mutex (pool->lock) guards the queues, the workers' idle and
 * selected fields, the down, throttle and login states and job completion.
 * Network I/O never happens under it. Each worker owns its connection;
 * worker->conn is only replaced by the worker itself, under the lock, so a
 * waiting caller may read the connection's progress clock under the lock.
 * pool->open_lock serialises logins, so that a refused password costs one
 * failed login, not one per connection; it is never taken under the lock.
 *
 * Jobs are reference counted: the queue/worker holds one reference and a
 * waiting caller another, so a caller that gives up (timeout) can leave
 * while the worker finishes; whoever drops the last reference frees it.
 *
 * Failure policy. A connection that stays silent for half the timeout
 * under a command is stalled: the worker drops it and runs the job once
 * more on a fresh connection, within what is left of the timeout. The
 * server is down only when a fresh connection cannot be made: then jobs
 * fail at once until a backoff has passed. A refused password suspends
 * logins (see login_suspended()); a server that limits connections
 * shrinks the pool for a while. A pool may start down (a mount made
 * offline) and then behaves as after a failed connection; an offline one
 * (--offline) never connects.
 */
#include "imap/pool.h"

#include <errno.h>
#include <string.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define KEEPALIVE_US (G_USEC_PER_SEC * 240)
/* After a refused password: read the source again at most this often,
 * and try the same secret again only after the long pause. */
#define LOGIN_RECHECK_US (G_USEC_PER_SEC * 60)
#define LOGIN_PAUSE_US (G_USEC_PER_SEC * 15 * 60)
/* A pool shrunk by a server's connection limit grows back after this. */
#define THROTTLE_HOLD_US (G_USEC_PER_SEC * 10 * 60)

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
	struct Worker *runner; /* while running, under the lock */
	gint64 started_at;     /* when a worker took it first */
} Job;

typedef struct Worker Worker;

struct ImapPool {
	ImapAccount account;
	GMutex lock;
	GCond done_cond;
	GQueue fg; /* Job*, waited for */
	GQueue bg; /* Job*, prefetch */
	Worker **workers;
	unsigned n_workers;
	bool stopping;
	bool down;
	gint64 down_until; /* monotonic us */
	unsigned backoff_ms;
	char *down_reason;
	unsigned stall_ms; /* silence under a command that drops a conn */

	GMutex open_lock;     /* one login at a time */
	char *password;       /* the secret logins use now */
	bool login_suspended; /* the server refused it: see login_suspended() */
	char *login_reason;   /* the message jobs fail with meanwhile */
	gint64 refused_at;    /* when the suspension began */
	gint64 rechecked_at;  /* when the source was last read again */
	gint relogin_wanted;  /* atomic: SIGHUP asked to try again */

	bool offline; /* --offline: never connect, every job fails */

	unsigned conn_limit; /* workers that may hold a connection */
	gint64 throttled_at; /* 0: not shrunk */
};

struct Worker {
	ImapPool *pool;
	GThread *thread;
	GCond cond;
	ImapConn *conn;
	char *selected; /* copy of the conn's selection, for matching */
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
	GQueue *queues[] = { &pool->fg, &pool->bg };

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
		complete_job(pool, job, -EIO,
			     g_error_new(IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
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

/* Under the lock: a fresh connection could not be made. Until the
 * backoff has passed, jobs fail at once instead of each waiting for the
 * timeout again. */
static void grow_backoff(ImapPool *pool)
{
	pool->backoff_ms = pool->backoff_ms
			       ? MIN(pool->backoff_ms * 2, BACKOFF_MAX_MS)
			       : BACKOFF_MIN_MS;
}

static void mark_down(ImapPool *pool, const char *reason)
{
	grow_backoff(pool);
	pool->down = true;
	pool->down_until =
	    g_get_monotonic_time() + (gint64)pool->backoff_ms * 1000;
	g_free(pool->down_reason);
	pool->down_reason = g_strdup(reason);
	g_warning("server unreachable, retrying in %.1f s: %s",
		  pool->backoff_ms / 1000.0, pool->down_reason);
	fail_queued(pool, pool->down_reason);
}

static unsigned live_conns(ImapPool *pool)
{
	unsigned n = 0;

	for (unsigned i = 0; i < pool->n_workers; i++)
		n += pool->workers[i]->conn != NULL;
	return n;
}

/* Under the lock: the server refused a connection for now ("too many
 * connections", [UNAVAILABLE]). Not a password problem and not an
 * outage of the network: keep the connections we have, open no more for
 * a while, and back off before the next attempt. */
static void mark_throttled(ImapPool *pool, const char *reason)
{
	unsigned live = live_conns(pool);

	if (!pool->throttled_at || live < pool->conn_limit)
		g_warning("%s limits connections: using %u of %u for now (%s)",
			  pool->account.host, MAX(live, 1u), pool->n_workers,
			  reason);
	pool->conn_limit = MAX(live, 1u);
	pool->throttled_at = g_get_monotonic_time();
	if (live == 0)
		mark_down(pool, reason);
	else
		grow_backoff(pool);
}

/* Under the lock: may this worker open a connection now? */
static bool may_connect(ImapPool *pool, Worker *w)
{
	if (w->conn)
		return true;
	if (pool->throttled_at &&
	    g_get_monotonic_time() - pool->throttled_at > THROTTLE_HOLD_US) {
		pool->throttled_at = 0;
		pool->conn_limit = pool->n_workers;
	}
	return live_conns(pool) < pool->conn_limit;
}

/* Under the lock. Logins are suspended after the server refused the
 * password twice (the second time after reading the password source
 * again): a provider locks an account that keeps failing. They resume
 * when the source yields another secret (read again at most once a
 * minute, when a job needs the server), on imap_pool_retry_login()
 * (SIGHUP), or after a long pause. Returns true when a job must fail at
 * once; false when a login may be tried (*recheck: read the source
 * first, with the lock dropped). */
static bool login_suspended(ImapPool *pool, bool *recheck)
{
	gint64 now = g_get_monotonic_time();

	*recheck = false;
	if (!pool->login_suspended)
		return false;
	if (g_atomic_int_get(&pool->relogin_wanted) ||
	    now - pool->refused_at >= LOGIN_PAUSE_US) {
		*recheck = true;
		return false;
	}
	if (pool->account.reread_password &&
	    now - pool->rechecked_at >= LOGIN_RECHECK_US) {
		*recheck = true;
		return false;
	}
	return true;
}

/* Without the lock: a fresh secret from the password source, or NULL. */
static char *reread_password(ImapPool *pool)
{
	g_autoptr(GError) error = NULL;
	char *pw;

	if (!pool->account.reread_password)
		return NULL;
	pw = pool->account.reread_password(pool->account.reread_data, &error);
	if (!pw)
		g_warning("cannot read the password again: %s",
			  error ? error->message : "no password");
	return pw;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		g_free(s);
	}
}

/* Under the lock: take pw (may be NULL) as the secret to log in with.
 * Returns true when it differs from the one used so far. */
static bool set_password(ImapPool *pool, char *pw)
{
	bool changed;

	if (!pw)
		return false;
	changed = g_strcmp0(pw, pool->password) != 0;
	free_secret(pool->password);
	pool->password = pw;
	return changed;
}

static void suspend_logins(ImapPool *pool, const char *why)
{
	bool first = !pool->login_suspended;
	gint64 now = g_get_monotonic_time();

	if (!first)
		g_message("%s; still not logging in", why);
	pool->login_suspended = true;
	pool->refused_at = now;
	pool->rechecked_at = now;
	g_free(pool->login_reason);
	pool->login_reason = g_strdup_printf(
	    "not logging in to %s: the server refused the password",
	    pool->account.host);
	if (first)
		g_warning("%s; imapfs will not log in again until the "
			  "%s changes%s, on SIGHUP (pkill -HUP imapfs), or "
			  "in 15 minutes; cached messages stay readable",
			  why,
			  pool->account.bearer ? "access token" : "password",
			  pool->account.reread_password
			      ? (pool->account.bearer
				     ? " (a new one is asked for every minute)"
				     : " (the password source is read again "
				       "every minute)")
			      : "");
	fail_queued(pool, pool->login_reason);
}

/* One login with the current secret, bounded by budget_ms for each
 * network wait. Under open_lock, without the lock. */
static ImapConn *open_once(ImapPool *pool, unsigned budget_ms, GError **error)
{
	ImapAccount account = pool->account;
	char *pw;
	ImapConn *conn;

	if (pool->account.login_secret) {
		/* A fresh access token for every login; the last one is
		 * what a token read again is compared with. */
		pw = pool->account.login_secret(pool->account.login_secret_data,
						error);
		if (!pw)
			return NULL;
		g_mutex_lock(&pool->lock);
		set_password(pool, g_strdup(pw));
		g_mutex_unlock(&pool->lock);
	} else {
		g_mutex_lock(&pool->lock);
		pw = g_strdup(pool->password);
		g_mutex_unlock(&pool->lock);
	}
	account.password = pw;
	account.timeout_ms = MAX(budget_ms, 1u);
	conn = imap_conn_open(&account, error);
	free_secret(pw);
	if (conn)
		imap_conn_set_wait_limit(conn, pool->stall_ms);
	return conn;
}

/* The password source is due to be read again (pool->lock held, dropped
 * while reading). false with error and *rc_out set when it holds the same
 * secret and nothing forces a login to test it. */
static bool recheck_password(ImapPool *pool, int *rc_out, GError **error)
{
	bool forced =
	    g_atomic_int_get(&pool->relogin_wanted) ||
	    g_get_monotonic_time() - pool->refused_at >= LOGIN_PAUSE_US;
	char *pw;
	bool changed;

	g_atomic_int_set(&pool->relogin_wanted, 0);
	g_mutex_unlock(&pool->lock);
	pw = reread_password(pool);
	g_mutex_lock(&pool->lock);
	pool->rechecked_at = g_get_monotonic_time();
	changed = set_password(pool, pw);
	if (!changed && !forced) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
			    pool->login_reason);
		*rc_out = -EACCES;
		return false;
	}
	if (forced)
		pool->refused_at = g_get_monotonic_time();
	return true;
}

/* May a login be tried now? pool->lock held. false with error and
 * *rc_out set when not; *probing becomes true when the login is to test a
 * password the server refused before. */
static bool login_allowed(ImapPool *pool, bool *probing, int *rc_out,
			  GError **error)
{
	bool recheck;

	if (login_suspended(pool, &recheck)) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
			    pool->login_reason);
		*rc_out = -EACCES;
		return false;
	}
	if (recheck) {
		if (!recheck_password(pool, rc_out, error))
			return false;
		/* One login to test it; no second chance. */
		*probing = true;
	}
	if (pool->down && g_get_monotonic_time() < pool->down_until) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
			    pool->down_reason);
		*rc_out = -EIO;
		return false;
	}
	return true;
}

/* A login succeeded (pool->lock held): the server is up, the password
 * good. */
static void note_login_ok(ImapPool *pool)
{
	if (pool->down)
		g_message("connection to %s restored", pool->account.host);
	if (pool->login_suspended)
		g_message("%s accepted the password again; logging in as usual",
			  pool->account.host);
	pool->down = false;
	pool->backoff_ms = 0;
	pool->login_suspended = false;
}

/* A login failed with *error (pool->lock held, dropped while reading the
 * password source). true to try once more with a password read again;
 * else false with *rc_out set: -EAGAIN throttled, -EIO down, -EACCES
 * refused (logins are then suspended). */
static bool retry_after_failure(ImapPool *pool, int tries, bool probing,
				int *rc_out, GError **error)
{
	if (g_error_matches(*error, IMAP_ERROR, IMAP_ERROR_THROTTLED)) {
		mark_throttled(pool, (*error)->message);
		*rc_out = -EAGAIN;
		return false;
	}
	/* A session the server ended as it began (see imap_conn_open()):
	 * once more at once; an outage only if that fails too. */
	if (tries == 0 && !probing && !pool->stopping &&
	    g_error_matches(*error, IMAP_ERROR, IMAP_ERROR_DROPPED)) {
		g_message("%s; logging in again", (*error)->message);
		return true;
	}
	/* Servers answer late after a refused login (Dovecot's penalty grows
	 * to 15 s): a timeout while testing a secret right after a refusal
	 * is one more refusal, not an outage to retry with backoff. */
	if (!g_error_matches(*error, IMAP_ERROR, IMAP_ERROR_AUTH) &&
	    !((tries > 0 || probing) &&
	      g_error_matches(*error, IMAP_ERROR, IMAP_ERROR_TIMEOUT))) {
		mark_down(pool, (*error)->message);
		*rc_out = -EIO;
		return false;
	}
	/* The password was refused. Once, read the source again: it may hold
	 * a new secret by now. The same secret again would only be refused
	 * again, and cost the account a failure. */
	if (tries == 0 && !probing && !pool->login_suspended) {
		char *pw;

		g_mutex_unlock(&pool->lock);
		pw = reread_password(pool);
		g_mutex_lock(&pool->lock);
		if (set_password(pool, pw)) {
			g_message("%s; trying %s", (*error)->message,
				  pool->account.login_secret
				      ? "a new access token"
				      : "the password read again");
			return true;
		}
	}
	suspend_logins(pool, (*error)->message);
	*rc_out = -EACCES;
	return false;
}

/* A connection for w or for a caller of imap_pool_connect(), by the
 * pool's rules: one login at a time, none while the server is known to
 * be down or logins are suspended. Returns NULL with error set (-errno in
 * *rc_out: -EIO down or unreachable, -EACCES password refused, -EAGAIN
 * throttled). */
static ImapConn *connect_by_rules(ImapPool *pool, unsigned budget_ms,
				  int *rc_out, GError **error)
{
	ImapConn *conn = NULL;
	bool probing = false;

	g_mutex_lock(&pool->open_lock);
	for (int tries = 0;; tries++) {
		g_mutex_lock(&pool->lock);
		if (!login_allowed(pool, &probing, rc_out, error))
			break;
		g_mutex_unlock(&pool->lock);

		g_clear_error(error);
		conn = open_once(pool, budget_ms, error);

		g_mutex_lock(&pool->lock);
		if (conn) {
			note_login_ok(pool);
			*rc_out = 0;
			break;
		}
		if (!retry_after_failure(pool, tries, probing, rc_out, error))
			break;
		g_mutex_unlock(&pool->lock);
	}
	g_mutex_unlock(&pool->lock);
	g_mutex_unlock(&pool->open_lock);
	return conn;
}

/* Make sure w has a healthy connection, opening one within budget_ms.
 * Called without the lock. */
static int ensure_conn(Worker *w, unsigned budget_ms, GError **error)
{
	ImapPool *pool = w->pool;
	ImapConn *old = w->conn;
	ImapConn *conn;
	int rc = 0;

	if (old && !imap_conn_is_broken(old))
		return 0;
	if (old) {
		set_worker_conn(w, NULL);
		imap_conn_free(old);
	}
	conn = connect_by_rules(pool, budget_ms, &rc, error);
	if (!conn)
		return rc < 0 ? rc : -EIO;
	set_worker_conn(w, conn);
	return 0;
}

static bool job_abandoned(ImapPool *pool, Job *job)
{
	bool gone;

	g_mutex_lock(&pool->lock);
	gone = job->abandoned;
	g_mutex_unlock(&pool->lock);
	return gone;
}

/* The job's time budget in ms from now: one timeout from its start. */
static unsigned job_budget_ms(ImapPool *pool, Job *job)
{
	gint64 left = job->started_at +
		      (gint64)pool->account.timeout_ms * 1000 -
		      g_get_monotonic_time();

	return (unsigned)CLAMP(left / 1000, 200, (gint64)G_MAXINT);
}

static int run_job(Worker *w, Job *job, GError **error)
{
	for (int attempt = 0;; attempt++) {
		ImapMailboxState state = { 0 };
		int rc;

		g_clear_error(error);
		rc = ensure_conn(w,
				 attempt == 0 ? w->pool->account.timeout_ms
					      : job_budget_ms(w->pool, job),
				 error);
		if (rc < 0)
			return rc;
		if (job->folder) {
			rc = imap_conn_examine(w->conn, job->folder, &state,
					       error);
			g_mutex_lock(&w->pool->lock);
			g_free(w->selected);
			w->selected = g_strdup(imap_conn_selected(w->conn));
			g_mutex_unlock(&w->pool->lock);
			/* Folder gone or refused; a server failure
			 * ([SERVERBUG]) says nothing of the folder. */
			if (rc < 0 && !imap_conn_is_broken(w->conn))
				return imap_conn_refused_by_failure(w->conn)
					   ? -EIO
					   : -ENOENT;
		}
		if (rc == 0)
			rc = job->fn(w->conn, job->folder ? &state : NULL,
				     job->data, error);
		/* The job may have selected another folder itself. */
		g_mutex_lock(&w->pool->lock);
		g_free(w->selected);
		w->selected = g_strdup(imap_conn_selected(w->conn));
		g_mutex_unlock(&w->pool->lock);
		/* The connection broke under the job (closed by the server,
		 * cut, or silent for stall_ms: stalled). Drop it and run the
		 * job once more on a fresh one: jobs are idempotent, and the
		 * other connections, or a new one, usually still work. */
		if (rc < 0 && imap_conn_is_broken(w->conn) && attempt == 0 &&
		    !job_abandoned(w->pool, job)) {
			ImapConn *dead = w->conn;

			g_message("%s; trying again on a new connection",
				  error && *error ? (*error)->message
						  : "connection lost");
			set_worker_conn(w, NULL);
			imap_conn_free(dead);
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

/* Under the lock: w has no connection, and there is work while others
 * have one. A login takes several round trips (tens of ms over TLS);
 * a busy connection usually frees up sooner. So w logs in first and
 * leaves the queued jobs to whoever is free first, instead of holding
 * one while it connects. */
static bool connect_first(ImapPool *pool, Worker *w)
{
	return !w->conn && !pool->down && !pool->login_suspended &&
	       live_conns(pool) > 0 && may_connect(pool, w) &&
	       (!g_queue_is_empty(&pool->fg) || !g_queue_is_empty(&pool->bg));
}

static gpointer worker_main(gpointer data)
{
	Worker *w = data;
	ImapPool *pool = w->pool;

	g_mutex_lock(&pool->lock);
	while (!pool->stopping) {
		/* Over a server's connection limit, leave the jobs to the
		 * workers that have a connection. */
		Job *job = NULL;
		GError *error = NULL;
		int rc;

		if (connect_first(pool, w)) {
			g_mutex_unlock(&pool->lock);
			/* A failure is counted by the pool's rules; the
			 * jobs stay with the connections that work. */
			rc = ensure_conn(w, pool->account.timeout_ms, &error);
			g_clear_error(&error);
			g_mutex_lock(&pool->lock);
			if (rc == 0)
				continue;
		} else if (may_connect(pool, w)) {
			job = take_job(pool, w);
		}
		if (!job) {
			gint64 until = g_get_monotonic_time() + KEEPALIVE_US;
			bool timed_out;

			w->idle = true;
			w->woken = false;
			timed_out =
			    !g_cond_wait_until(&w->cond, &pool->lock, until);
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
		job->runner = w;
		job->started_at = g_get_monotonic_time();
		g_mutex_unlock(&pool->lock);

		rc = run_job(w, job, &error);
		if (w->conn && imap_conn_is_broken(w->conn)) {
			/* Free it now: its parser may hold a half-written
			 * temp file of a body. */
			ImapConn *dead = w->conn;

			set_worker_conn(w, NULL);
			imap_conn_free(dead);
		}

		g_mutex_lock(&pool->lock);
		job->runner = NULL;
		/* Refused a connection by the server's limit: the job is
		 * not lost, a worker that has a connection takes it. */
		if (rc == -EAGAIN && !w->conn && live_conns(pool) > 0 &&
		    !job->abandoned && !pool->stopping) {
			g_clear_error(&error);
			g_queue_push_head(
			    job->background ? &pool->bg : &pool->fg, job);
			/* An idle one would otherwise sleep until its
			 * keepalive while the reader waits. */
			wake_worker(pool, job->folder);
			continue;
		}
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
	pool->password = g_strdup(account->password);
	pool->account.password = NULL; /* logins copy pool->password */
	/* Half the timeout: a stalled connection is replaced within the
	 * other half, so a caller still waits at most one timeout. */
	pool->stall_ms = MAX(account->timeout_ms / 2, 200u);
	pool->conn_limit = MAX(size, 1u);
	g_mutex_init(&pool->open_lock);
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
		if (i == 0 && first_conn) {
			w->conn = first_conn;
			imap_conn_set_wait_limit(first_conn, pool->stall_ms);
		}
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
	g_free(pool->login_reason);
	free_secret(pool->password);
	g_cond_clear(&pool->done_cond);
	g_mutex_clear(&pool->lock);
	g_mutex_clear(&pool->open_lock);
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

/* Under the lock: must a job fail at once, without waiting for the
 * server? Returns 0, or -errno with error set: -ESHUTDOWN, -EIO (the
 * server is known to be down), -EACCES (logins are suspended). */
static int fail_fast(ImapPool *pool, GError **error)
{
	bool recheck;

	if (pool->stopping) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "shutting down");
		return -ESHUTDOWN;
	}
	if (pool->offline) {
		g_set_error(
		    error, IMAP_ERROR, IMAP_ERROR_SUSPENDED,
		    "offline (--offline): only cached mail can be read");
		return -EIO;
	}
	if (login_suspended(pool, &recheck)) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
			    pool->login_reason);
		return -EACCES;
	}
	if (pool->down && g_get_monotonic_time() < pool->down_until) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED, "%s",
			    pool->down_reason);
		return -EIO;
	}
	return 0;
}

/* Under the lock: the moment after which a caller stops waiting for job.
 * Queued, it waits while any connection makes progress (a busy pool is
 * not a dead one); running, while its own connection does. The worker's
 * own limits (stall_ms, then the rest of the timeout for a fresh
 * connection) end a stalled job first, so this is the last resort. */
static gint64 job_deadline(ImapPool *pool, Job *job)
{
	gint64 timeout_us = (gint64)pool->account.timeout_ms * 1000;
	gint64 last;

	if (!job->runner)
		return MAX(job->queued_at, pool_progress(pool)) + timeout_us;
	last = job->started_at;
	if (job->runner->conn)
		last = MAX(last, imap_conn_last_progress(job->runner->conn));
	return last + timeout_us + G_USEC_PER_SEC / 2;
}

int imap_pool_run(ImapPool *pool, const char *folder, ImapJobFn fn, void *data,
		  GDestroyNotify free_data, GError **error)
{
	Job *job;
	int rc;

	g_mutex_lock(&pool->lock);
	rc = fail_fast(pool, error);
	if (rc < 0) {
		g_mutex_unlock(&pool->lock);
		return rc;
	}
	job = job_new(folder, fn, data, free_data, false);
	g_atomic_int_inc(&job->refs); /* one for the queue, one for us */
	g_queue_push_tail(&pool->fg, job);
	wake_worker(pool, folder);

	while (!job->done) {
		gint64 deadline = job_deadline(pool, job);

		if (g_get_monotonic_time() >= deadline) {
			job->abandoned = true;
			g_queue_remove(&pool->fg, job) ? job_unref(job)
						       : (void)0;
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_TIMEOUT,
				    "%s made no progress within %u s",
				    pool->account.host,
				    pool->account.timeout_ms / 1000);
			g_mutex_unlock(&pool->lock);
			job_unref(job);
			return -ETIMEDOUT;
		}
		g_cond_wait_until(&pool->done_cond, &pool->lock, deadline);
	}
	rc = job->rc;
	/* -ETIMEDOUT tells the caller that the pool kept data: a job that
	 * ended by a timeout of its own hands data back like any failure
	 * (it leaked, when the caller took it for the pool's). */
	if (rc == -ETIMEDOUT)
		rc = -EIO;
	if (job->error)
		g_propagate_error(error, g_steal_pointer(&job->error));
	job->free_data = NULL; /* data is the caller's again */
	g_mutex_unlock(&pool->lock);
	job_unref(job);
	return rc;
}

ImapConn *imap_pool_connect(ImapPool *pool, GError **error)
{
	ImapConn *conn;
	int rc;

	g_mutex_lock(&pool->lock);
	rc = fail_fast(pool, error);
	g_mutex_unlock(&pool->lock);
	if (rc < 0)
		return NULL;
	conn = connect_by_rules(pool, pool->account.timeout_ms, &rc, error);
	if (conn)
		imap_conn_set_wait_limit(conn, pool->account.timeout_ms);
	return conn;
}

void imap_pool_retry_login(ImapPool *pool)
{
	if (pool)
		g_atomic_int_set(&pool->relogin_wanted, 1);
}

void imap_pool_submit(ImapPool *pool, const char *folder, ImapJobFn fn,
		      void *data, GDestroyNotify free_data)
{
	Job *job;

	g_mutex_lock(&pool->lock);
	if (fail_fast(pool, NULL) < 0) {
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

void imap_pool_start_down(ImapPool *pool, const char *reason)
{
	g_mutex_lock(&pool->lock);
	grow_backoff(pool);
	pool->down = true;
	pool->down_until =
	    g_get_monotonic_time() + (gint64)pool->backoff_ms * 1000;
	g_free(pool->down_reason);
	pool->down_reason = g_strdup(reason);
	g_mutex_unlock(&pool->lock);
}

void imap_pool_stay_offline(ImapPool *pool)
{
	g_mutex_lock(&pool->lock);
	pool->offline = true;
	g_mutex_unlock(&pool->lock);
}
