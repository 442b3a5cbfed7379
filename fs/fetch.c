/* fs/fetch.c: bodies from the cache, or fetched into it through the pool,
 * and prefetch of the messages a sequential reader will want next.
 *
 * Locking: acct->fetch_lock guards acct->inflight (fetches under way, keyed
 * by "gen:uid", so readers of one uncached message share one fetch), the
 * table of bodies held outside the cache when the disk is full, and the
 * per-folder read-pattern state in acct->readers. Fetches run on pool
 * threads; each body FETCH carries a literal sink that streams large
 * literals into temp files next to their final names.
 * A body is committed only when complete and non-empty; each one completes
 * its in-flight entry as soon as it is stored, so a reader waiting for
 * message 5 of a prefetched batch 5..20 goes on at once.
 */
#include "fs/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/sync.h"
#include "imap/ops.h"

#define BATCH_MAX_MESSAGES 32
#define BATCH_MAX_BYTES (4u << 20)
#define PREFETCH_MAX_MESSAGES 256
#define PREFETCH_MAX_BYTES (32u << 20)
#define UNCACHED_MAX_BYTES (64u << 20)
#define HEADS_MAX_BYTES (8u << 20)
#define PUSH_AHEAD_MESSAGES 128
#define PUSH_AHEAD_BYTES (8u << 20)

/* ---- in-flight table and bodies served without caching ---- */

typedef struct {
	GCond cond;
	bool done;
	int rc;
	unsigned users;
	const void *owner; /* the BodyJob fetching it */
} Inflight;

typedef struct {
	int fd;
	uint64_t size;
	gint64 used;
} Uncached;

static char *body_key(uint32_t gen, uint32_t uid)
{
	return g_strdup_printf("%u:%u", gen, uid);
}

static void inflight_release(Inflight *in)
{
	if (--in->users == 0) {
		g_cond_clear(&in->cond);
		g_free(in);
	}
}

/* Under fetch_lock: mark in done with rc, take it out of the table and
 * wake its waiters. */
static void inflight_end(FsAccount *acct, const char *key, Inflight *in, int rc)
{
	g_hash_table_remove(acct->inflight, key); /* frees the key only */
	in->done = true;
	in->rc = rc;
	g_cond_broadcast(&in->cond);
	inflight_release(in);
}

/* Under fetch_lock: owner finished key. An entry that a waiter took over
 * since (see wait_inflight) belongs to someone else and is left alone. */
static void inflight_finish(FsAccount *acct, const char *key, const void *owner,
			    int rc)
{
	Inflight *in = g_hash_table_lookup(acct->inflight, key);

	if (in && in->owner == owner)
		inflight_end(acct, key, in, rc);
}

void fs_fetch_uncached_free(gpointer p)
{
	Uncached *u = p;

	close(u->fd);
	g_free(u);
}

/* Under fetch_lock: keep fd (a complete body that could not be cached)
 * for later reads, evicting the least recently used beyond the bound. */
static void uncached_put(FsAccount *acct, const char *key, int fd,
			 uint64_t size)
{
	Uncached *u = g_new0(Uncached, 1);
	uint64_t total = size;
	GHashTableIter it;
	gpointer k, v;

	u->fd = fd;
	u->size = size;
	u->used = g_get_monotonic_time();
	g_hash_table_replace(acct->uncached, g_strdup(key), u);
	g_hash_table_iter_init(&it, acct->uncached);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (v != u)
			total += ((Uncached *)v)->size;
	while (total > UNCACHED_MAX_BYTES &&
	       g_hash_table_size(acct->uncached) > 1) {
		const char *oldest = NULL;
		Uncached *ou = NULL;

		g_hash_table_iter_init(&it, acct->uncached);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			Uncached *c = v;

			if (c != u && (!ou || c->used < ou->used)) {
				ou = c;
				oldest = k;
			}
		}
		if (!ou)
			break;
		total -= ou->size;
		g_hash_table_remove(acct->uncached, oldest);
	}
}

/* An uncached body (a dup of its fd, which the caller closes): 0, or
 * -ENOENT. */
static int uncached_get(FsAccount *acct, uint32_t gen, uint32_t uid,
			CacheBody *body)
{
	g_autofree char *key = body_key(gen, uid);
	Uncached *u;
	int rc = -ENOENT;

	g_mutex_lock(&acct->fetch_lock);
	u = g_hash_table_lookup(acct->uncached, key);
	if (u) {
		u->used = g_get_monotonic_time();
		body->fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0);
		body->offset = 0;
		body->size = u->size;
		rc = body->fd < 0 ? -errno : 0;
	}
	g_mutex_unlock(&acct->fetch_lock);
	return rc;
}

/* The disk is full: keep a small body in memory, served from there. */
static int uncached_put_bytes(FsAccount *acct, uint32_t gen, uint32_t uid,
			      const char *data, size_t len)
{
	g_autofree char *key = body_key(gen, uid);
	int fd = cache_body_in_memory(data, len);

	if (fd < 0)
		return fd;
	g_mutex_lock(&acct->fetch_lock);
	uncached_put(acct, key, fd, len);
	g_mutex_unlock(&acct->fetch_lock);
	return 0;
}

/* ---- one batch fetch on a pool thread ---- */

typedef struct {
	FsAccount *acct;
	FsFolder *folder;
	uint32_t gen;
	uint32_t uidvalidity;
	GArray *uids; /* uint32_t, ascending */
	GArray *done; /* gboolean per uid: stored (or failed) already */
	bool background;
} BodyJob;

/* ---- literal sink of a body FETCH: parser -> cache temp file ---- */

/* Its user data is the BodyJob: the folder and UIDVALIDITY are known, so
 * the temp file goes next to its final name. */
static void *sink_begin(void *user_data, uint64_t size)
{
	BodyJob *job = user_data;
	g_autoptr(GError) error = NULL;
	CacheBodyWriter *w = cache_body_writer_new_at(
	    job->acct->store, job->folder->raw, job->uidvalidity, &error);

	if (!w)
		g_warning("cannot cache a message body: %s", error->message);
	return w;
}

static int sink_write(void *user_data, void *sink, const void *buf, size_t len)
{
	return cache_body_writer_write(sink, buf, len);
}

static void sink_discard(void *user_data, void *sink)
{
	cache_body_writer_abort(sink);
}

static const ImapLiteralSink body_sink = {
	.begin = sink_begin,
	.write = sink_write,
	.discard = sink_discard,
};

/* One line, not one per message: again only after ten quiet minutes, so
 * a disk that stays nearly full (small bodies still fit now and then)
 * does not flood the log. */
static void log_disk_full_once(FsAccount *acct)
{
	gint64 now = g_get_monotonic_time();
	gint64 last;

	g_mutex_lock(&acct->fetch_lock);
	last = acct->disk_full_logged_at;
	if (last == 0 || now - last > 600 * G_USEC_PER_SEC)
		acct->disk_full_logged_at = now;
	g_mutex_unlock(&acct->fetch_lock);
	if (last != 0 && now - last <= 600 * G_USEC_PER_SEC)
		return;
	g_warning("cannot store messages in the cache (no space left on the "
		  "cache's disk, or a message larger than --cache-size): "
		  "serving them without caching");
}

/* Mark uid finished with rc (0: stored) and wake its readers. */
static void job_finish_uid(BodyJob *job, guint i, int rc)
{
	g_autofree char *key = NULL;

	if (g_array_index(job->done, gboolean, i))
		return;
	g_array_index(job->done, gboolean, i) = TRUE;
	key = body_key(job->gen, g_array_index(job->uids, uint32_t, i));
	g_mutex_lock(&job->acct->fetch_lock);
	inflight_finish(job->acct, key, job, rc);
	g_mutex_unlock(&job->acct->fetch_lock);
}

static void forget_prefetch(FsAccount *acct, FsFolder *f, uint32_t gen);

static void body_job_free(gpointer data)
{
	BodyJob *job = data;
	bool unfinished = false;

	/* Whatever was not stored fails now: its readers fetch it
	 * themselves or report the error. */
	for (guint i = 0; i < job->uids->len; i++) {
		unfinished |= !g_array_index(job->done, gboolean, i);
		job_finish_uid(job, i, -EIO);
	}
	/* A prefetch that failed (the server went away, the pool dropped
	 * it) must not leave the reader's window looking full. */
	if (job->background && unfinished)
		forget_prefetch(job->acct, job->folder, job->gen);
	g_array_unref(job->uids);
	g_array_unref(job->done);
	g_free(job);
}

static int find_uid(const BodyJob *job, uint32_t uid)
{
	guint lo = 0, hi = job->uids->len;

	while (lo < hi) {
		guint mid = (lo + hi) / 2;
		uint32_t v = g_array_index(job->uids, uint32_t, mid);

		if (v == uid)
			return (int)mid;
		if (v < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int store_body(void *user_data, uint32_t uid, ImapValue *body)
{
	BodyJob *job = user_data;
	FsAccount *acct = job->acct;
	const char *folder = job->folder->raw;
	CacheBodyWriter *w = NULL;
	int idx = find_uid(job, uid);
	int uncached_fd = -1;
	uint64_t size;
	int rc;

	if (idx < 0 || g_array_index(job->done, gboolean, idx))
		return 0; /* not asked for, or a second copy */
	if (body->type == IMAP_VALUE_STREAM) {
		w = imap_conn_take_literal(body);
	} else if (body->type == IMAP_VALUE_STRING && body->len > 0) {
		/* Small bodies (the parser keeps literals up to 64 KiB in
		 * memory) go to the folder's pack: no file to create. */
		rc = cache_store_put_body(acct->store, folder, job->uidvalidity,
					  uid, body->str, body->len);
		if (rc < 0) {
			if (rc == -ENOSPC)
				log_disk_full_once(acct);
			else
				g_warning("cannot cache a body of %s: %s",
					  folder, g_strerror(-rc));
			rc = uncached_put_bytes(acct, job->gen, uid, body->str,
						body->len);
		}
		if (rc == 0) {
			fs_sync_set_exact_size(acct, job->folder, job->gen, uid,
					       body->len);
			if (job->background) {
				/* Prefetched for a sequential reader: into
				 * the page cache too, so that it reads the
				 * file without asking us. */
				g_autoptr(GBytes) bytes =
				    g_bytes_new(body->str, body->len);

				fs_push_bytes(
				    acct->push,
				    fs_tree_message_ino(job->gen, uid), bytes);
			}
		}
		job_finish_uid(job, (guint)idx, rc < 0 ? -EIO : 0);
		return 0;
	} else {
		/* NIL or empty: the server has no body to give. Never
		 * cache it as an empty file. */
		g_message("%s UID %u: server returned %s for BODY[]", folder,
			  uid,
			  body->type == IMAP_VALUE_NIL ? "NIL" : "no data");
		job_finish_uid(job, (guint)idx, -EIO);
		return 0;
	}
	if (!w) {
		job_finish_uid(job, (guint)idx, -EIO);
		return 0;
	}
	size = cache_body_writer_size(w);
	if (size == 0) {
		cache_body_writer_abort(w);
		job_finish_uid(job, (guint)idx, -EIO);
		return 0;
	}
	rc = cache_body_writer_commit_fd(w, folder, job->uidvalidity, uid,
					 &uncached_fd);
	if (rc == -ENOSPC && uncached_fd >= 0) {
		g_autofree char *key = body_key(job->gen, uid);

		log_disk_full_once(acct);
		g_mutex_lock(&acct->fetch_lock);
		uncached_put(acct, key, uncached_fd, size);
		g_mutex_unlock(&acct->fetch_lock);
		rc = 0;
	}
	if (rc == 0)
		fs_sync_set_exact_size(acct, job->folder, job->gen, uid, size);
	job_finish_uid(job, (guint)idx, rc);
	return 0;
}

/* "5,7:9,12" from sorted UIDs. */
static char *uid_set(const GArray *uids)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < uids->len;) {
		uint32_t a = g_array_index(uids, uint32_t, i), b = a;
		guint j = i + 1;

		while (j < uids->len &&
		       g_array_index(uids, uint32_t, j) == b + 1)
			b = g_array_index(uids, uint32_t, j++);
		if (s->len)
			g_string_append_c(s, ',');
		if (a == b)
			g_string_append_printf(s, "%u", a);
		else
			g_string_append_printf(s, "%u:%u", a, b);
		i = j;
	}
	return g_string_free(s, FALSE);
}

static int body_job_run(ImapConn *conn, const ImapMailboxState *st, void *data,
			GError **error)
{
	BodyJob *job = data;
	g_autofree char *set = uid_set(job->uids);
	int rc;

	if (st->uidvalidity != job->uidvalidity) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "folder %s changed on the server (UIDVALIDITY %u, "
			    "expected %u)",
			    job->folder->raw, st->uidvalidity,
			    job->uidvalidity);
		return -ESTALE;
	}
	rc = imap_fetch_bodies(conn, set, &body_sink, job, store_body, job,
			       error);
	if (rc < 0)
		return rc;
	for (guint i = 0; i < job->uids->len; i++) {
		if (!g_array_index(job->done, gboolean, i)) {
			/* Tagged OK without the data: an error for that
			 * message, never an empty file. */
			g_message("%s UID %u: server sent no body",
				  job->folder->raw,
				  g_array_index(job->uids, uint32_t, i));
			job_finish_uid(job, i, -EIO);
		}
	}
	return 0;
}

static BodyJob *body_job_new(FsAccount *acct, FsFolder *f, uint32_t gen,
			     uint32_t uidvalidity, bool background)
{
	BodyJob *job = g_new0(BodyJob, 1);

	job->acct = acct;
	job->folder = f;
	job->gen = gen;
	job->uidvalidity = uidvalidity;
	job->background = background;
	job->uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	job->done = g_array_new(FALSE, TRUE, sizeof(gboolean));
	return job;
}

/* Under fetch_lock: register uid as in flight for job. False when someone
 * else is fetching it already. */
static bool claim_uid(FsAccount *acct, BodyJob *job, uint32_t uid)
{
	g_autofree char *key = body_key(job->gen, uid);
	Inflight *in;
	gboolean no = FALSE;

	if (g_hash_table_contains(acct->inflight, key))
		return false;
	in = g_new0(Inflight, 1);
	g_cond_init(&in->cond);
	in->users = 1;
	in->owner = job;
	g_hash_table_insert(acct->inflight, g_steal_pointer(&key), in);
	g_array_append_val(job->uids, uid);
	g_array_append_val(job->done, no);
	return true;
}

/* ---- foreground fetch ---- */

/* Wait for someone else's fetch of key. Returns its result, or 1 when
 * nobody is fetching it. Under fetch_lock. The wait is bounded: a fetch
 * that makes no progress within the timeout is taken over (its entry
 * ends with -ETIMEDOUT, so its other waiters retry too). */
static int wait_inflight(FsAccount *acct, const char *key)
{
	Inflight *in = g_hash_table_lookup(acct->inflight, key);
	gint64 until = g_get_monotonic_time() + acct->timeout_us;
	int rc;

	if (!in)
		return 1;
	in->users++;
	while (!in->done) {
		if (!g_cond_wait_until(&in->cond, &acct->fetch_lock, until) &&
		    !in->done) {
			g_message("a fetch of message %s made no progress "
				  "within the timeout: retrying",
				  key);
			if (g_hash_table_lookup(acct->inflight, key) == in)
				inflight_end(acct, key, in, -ETIMEDOUT);
			break;
		}
	}
	rc = in->rc;
	inflight_release(in);
	return rc;
}

/* Fetch uid ourselves, or wait for the fetch already under way. Returns 0
 * when the body should now be available, -EAGAIN when a fetch we waited
 * for failed (try our own), or -errno for our own failure. */
static int fetch_one(FsAccount *acct, FsFolder *f, uint32_t gen,
		     uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *key = body_key(gen, uid);
	g_autoptr(GError) error = NULL;
	BodyJob *job;
	Inflight *in;
	int rc;

	g_mutex_lock(&acct->fetch_lock);
	rc = wait_inflight(acct, key);
	if (rc != 1) {
		g_mutex_unlock(&acct->fetch_lock);
		return rc == 0 ? 0 : -EAGAIN;
	}
	job = body_job_new(acct, f, gen, uidvalidity, false);
	claim_uid(acct, job, uid);
	/* Our own reference to the entry, to learn the result. */
	in = g_hash_table_lookup(acct->inflight, key);
	in->users++;
	g_mutex_unlock(&acct->fetch_lock);

	rc = imap_pool_run(acct->pool, f->raw, body_job_run, job, body_job_free,
			   &error);
	if (rc != -ETIMEDOUT)
		body_job_free(job); /* finishes the uid if still open */

	g_mutex_lock(&acct->fetch_lock);
	/* After a timeout the pool still owns the job: do not wait for it. */
	if (rc == 0) {
		while (!in->done)
			g_cond_wait(&in->cond, &acct->fetch_lock);
		rc = in->rc;
	}
	inflight_release(in);
	g_mutex_unlock(&acct->fetch_lock);

	/* While the pool fails jobs at once it has said why, once: one line
	 * per read would flood the log of a busy file manager. */
	if (rc < 0 && g_error_matches(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED))
		g_debug("cannot fetch %s UID %u: %s", f->raw, uid,
			error->message);
	else if (rc < 0)
		g_message("cannot fetch %s UID %u: %s", f->raw, uid,
			  error ? error->message : g_strerror(-rc));
	if (rc == -ESTALE) {
		/* Make the next directory access resync the folder. */
		g_mutex_lock(&f->lock);
		f->synced_at = 0;
		g_mutex_unlock(&f->lock);
		return rc;
	}
	return rc < 0 ? -EIO : 0;
}

/* ---- prefetch ---- */

typedef struct {
	uint32_t gen;
	guint last_index; /* listing position of the last first read */
	guint streak;     /* consecutive sequential first reads */
	guint queued_to;  /* prefetch queued up to this position */
	guint pushed_to;  /* pushes queued up to this position */
	bool deep;        /* the streak reads past the heads of messages */
} ReadPattern;

/* Under fetch_lock. */
static ReadPattern *read_pattern(FsAccount *acct, FsFolder *f, uint32_t gen)
{
	ReadPattern *rp = g_hash_table_lookup(acct->readers, f);

	if (!rp) {
		rp = g_new0(ReadPattern, 1);
		g_hash_table_insert(acct->readers, f, rp);
	}
	if (rp->gen != gen)
		*rp = (ReadPattern){ .gen = gen, .last_index = G_MAXUINT };
	return rp;
}

/* Prefetch state must not outlive the failure that ended it: without
 * this, a folder read while the server was down was fetched one message
 * per round trip afterwards, until the reader passed the old mark. */
static void forget_prefetch(FsAccount *acct, FsFolder *f, uint32_t gen)
{
	ReadPattern *rp;

	g_mutex_lock(&acct->fetch_lock);
	rp = g_hash_table_lookup(acct->readers, f);
	if (rp && rp->gen == gen)
		rp->queued_to = 0;
	g_mutex_unlock(&acct->fetch_lock);
}

static bool body_cached(FsAccount *acct, FsFolder *f, uint32_t uidvalidity,
			uint32_t uid)
{
	CacheBody b;

	if (cache_store_find_body(acct->store, f->raw, uidvalidity, uid, &b) ==
	    0) {
		close(b.fd);
		return true;
	}
	return false;
}

/* Under fetch_lock. A reader that starts a folder or goes on in order gets
 * the cached bodies that follow pushed into the page cache (fs/push.h):
 * cheap next to a round trip per file, so from the first read on, and far
 * ahead. The pusher skips what is not cached. */
static void push_ahead(FsAccount *acct, FsFolder *f, FsListing *l,
		       ReadPattern *rp, guint pos)
{
	GArray *msgs = l->index->messages;
	uint64_t budget = PUSH_AHEAD_BYTES;
	guint from, to;

	if (pos != 0 && rp->streak == 0)
		return;
	if (rp->pushed_to > pos + 1 + PUSH_AHEAD_MESSAGES / 2)
		return;
	from = MAX(pos + 1, rp->pushed_to);
	to = MIN(msgs->len, pos + 1 + PUSH_AHEAD_MESSAGES);
	for (guint i = from; i < to; i++) {
		const CacheMessage *m = &g_array_index(msgs, CacheMessage, i);

		if (m->size > budget)
			break;
		budget -= m->size;
		rp->pushed_to = i + 1;
		fs_push_cached(acct->push, fs_tree_message_ino(l->gen, m->uid),
			       f->raw, l->index->uidvalidity, m->uid);
	}
}

/* Called on the first read of the message at position pos of listing l:
 * when reads go through the folder in order, fetch what follows ahead, in
 * batches over several connections; stop when the reads stop. */
static void maybe_prefetch(FsAccount *acct, FsFolder *f, FsListing *l,
			   guint pos)
{
	GArray *msgs = l->index->messages;
	ReadPattern *rp;
	guint window, from, to;
	uint64_t budget = PREFETCH_MAX_BYTES;
	BodyJob *job = NULL;
	uint64_t job_bytes = 0;

	if (acct->cache_limit)
		budget = MIN(budget, acct->cache_limit / 4);

	g_mutex_lock(&acct->fetch_lock);
	rp = read_pattern(acct, f, l->gen);
	/* Sequential: just past the last read, or past what was prefetched
	 * and pushed since (those files are read without asking us). */
	if (rp->last_index != G_MAXUINT && pos > rp->last_index &&
	    pos <= MAX(rp->last_index, MAX(rp->queued_to, rp->pushed_to)) + 2) {
		rp->streak++;
	} else if (pos != rp->last_index) {
		/* A new pass (or a jump): what an earlier pass queued or
		 * pushed says nothing about what lies ahead of this one. */
		rp->streak = 0;
		rp->deep = false;
		rp->queued_to = 0;
		rp->pushed_to = 0;
	}
	rp->last_index = pos;
	push_ahead(acct, f, l, rp, pos);
	if (rp->streak < 2) {
		g_mutex_unlock(&acct->fetch_lock);
		return;
	}
	/* The window doubles with the streak: 8, 16, ... up to the max. */
	window = MIN(PREFETCH_MAX_MESSAGES, 4u << MIN(rp->streak, 6u));
	/* Top up in large steps, not one message per read: only when less
	 * than half the window is still ahead of the reader. */
	if (rp->queued_to > pos + 1 + window / 2) {
		g_mutex_unlock(&acct->fetch_lock);
		return;
	}
	from = MAX(pos + 1, rp->queued_to);
	to = MIN(msgs->len, pos + 1 + window);
	for (guint i = from; i < to; i++) {
		const CacheMessage *m = &g_array_index(msgs, CacheMessage, i);

		if (m->size > budget)
			break;
		/* A reader that only looks at heads (a file manager
		 * sniffing types) must not pull large bodies whole. */
		if (m->size > FS_FETCH_HEAD_BYTES && !rp->deep)
			continue;
		budget -= m->size;
		rp->queued_to = i + 1;
		if (body_cached(acct, f, l->index->uidvalidity, m->uid))
			continue;
		if (!job)
			job = body_job_new(acct, f, l->gen,
					   l->index->uidvalidity, true);
		if (!claim_uid(acct, job, m->uid))
			continue;
		job_bytes += m->size;
		if (job->uids->len >= BATCH_MAX_MESSAGES ||
		    job_bytes >= BATCH_MAX_BYTES) {
			g_mutex_unlock(&acct->fetch_lock);
			imap_pool_submit(acct->pool, f->raw, body_job_run, job,
					 body_job_free);
			g_mutex_lock(&acct->fetch_lock);
			job = NULL;
			job_bytes = 0;
		}
	}
	g_mutex_unlock(&acct->fetch_lock);
	if (job && job->uids->len > 0)
		imap_pool_submit(acct->pool, f->raw, body_job_run, job,
				 body_job_free);
	else if (job)
		body_job_free(job);
}

/* ---- heads of large messages ---- */

typedef struct {
	uint32_t uid;
	GBytes *head;
} HeadJob;

static void head_job_free(gpointer data)
{
	HeadJob *job = data;

	if (job->head)
		g_bytes_unref(job->head);
	g_free(job);
}

static int head_job_run(ImapConn *conn, const ImapMailboxState *st, void *data,
			GError **error)
{
	HeadJob *job = data;

	return imap_fetch_head(conn, job->uid, FS_FETCH_HEAD_BYTES, &job->head,
			       error);
}

void fs_fetch_note_read(FsAccount *acct, FsFolder *f, uint32_t gen, off_t off)
{
	if (off < FS_FETCH_HEAD_BYTES)
		return;
	g_mutex_lock(&acct->fetch_lock);
	read_pattern(acct, f, gen)->deep = true;
	g_mutex_unlock(&acct->fetch_lock);
}

GBytes *fs_fetch_head(FsAccount *acct, FsFolder *f, FsListing *l, uint32_t uid)
{
	g_autofree char *key = body_key(l->gen, uid);
	g_autoptr(GError) error = NULL;
	HeadJob *job;
	GBytes *head;
	int rc;

	g_mutex_lock(&acct->fetch_lock);
	head = g_hash_table_lookup(acct->heads, key);
	if (head)
		g_bytes_ref(head);
	g_mutex_unlock(&acct->fetch_lock);
	if (head)
		return head;

	job = g_new0(HeadJob, 1);
	job->uid = uid;
	rc = imap_pool_run(acct->pool, f->raw, head_job_run, job, head_job_free,
			   &error);
	if (rc == -ETIMEDOUT)
		return NULL; /* the pool frees job */
	head = rc == 0 ? g_steal_pointer(&job->head) : NULL;
	head_job_free(job);
	if (!head) {
		g_debug("no head for %s UID %u: %s", f->raw, uid,
			error ? error->message : g_strerror(-rc));
		return NULL;
	}
	g_mutex_lock(&acct->fetch_lock);
	if (acct->heads_bytes + g_bytes_get_size(head) > HEADS_MAX_BYTES) {
		g_hash_table_remove_all(acct->heads);
		acct->heads_bytes = 0;
	}
	if (!g_hash_table_contains(acct->heads, key)) {
		g_hash_table_insert(acct->heads, g_strdup(key),
				    g_bytes_ref(head));
		acct->heads_bytes += g_bytes_get_size(head);
	}
	g_mutex_unlock(&acct->fetch_lock);
	return head;
}

bool fs_fetch_is_cached(FsAccount *acct, FsFolder *f, FsListing *l,
			uint32_t uid)
{
	CacheBody b;

	if (body_cached(acct, f, l->index->uidvalidity, uid))
		return true;
	if (uncached_get(acct, l->gen, uid, &b) == 0) {
		close(b.fd);
		return true;
	}
	return false;
}

/* ---- entry point ---- */

static int open_cached(FsAccount *acct, FsFolder *f, uint32_t gen,
		       uint32_t uidvalidity, uint32_t uid, CacheBody *body)
{
	int rc =
	    cache_store_find_body(acct->store, f->raw, uidvalidity, uid, body);

	if (rc == 0) {
		if (body->size > 0) {
			fs_sync_set_exact_size(acct, f, gen, uid, body->size);
			return 0;
		}
		close(body->fd); /* an empty body is never valid */
	} else if (rc != -ENOENT) {
		g_message("cannot open cached %s UID %u: %s", f->raw, uid,
			  g_strerror(-rc));
	}
	return uncached_get(acct, gen, uid, body);
}

int fs_fetch_open(FsAccount *acct, FsFolder *f, FsListing *l, uint32_t uid,
		  bool first_read, CacheBody *body)
{
	uint32_t gen = l->gen, uidvalidity = l->index->uidvalidity;
	int rc = 0;

	if (first_read) {
		CacheMessage *m = cache_folder_index_find(l->index, uid);

		if (m)
			maybe_prefetch(
			    acct, f, l,
			    (guint)(m - &g_array_index(l->index->messages,
						       CacheMessage, 0)));
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		if (open_cached(acct, f, gen, uidvalidity, uid, body) == 0)
			return 0;
		rc = fetch_one(acct, f, gen, uidvalidity, uid);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
	}
	return -EIO;
}
