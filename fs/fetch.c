/* fs/fetch.c: bodies from the cache, or fetched into it through the pool,
 * and prefetch of the messages a sequential reader will want next.
 *
 * Ownership: an FsFetch (one per mount, mnt->fetch) owns the tables of
 * fetches under way, of read patterns, of heads of large bodies, and the
 * memory table of bodies kept off a full disk (cache/memory.h).
 *
 * Locking: fetch->lock guards fetch->inflight (fetches under way, keyed by
 * "folder_id:uid", so readers of one uncached message share one fetch), the
 * per-folder read-pattern state in fetch->readers and the heads table.
 * It is held for decisions only: cache lookups (opens, pack scans) run
 * outside it. The memory table has a lock of its own. Fetches run on pool
 * threads; each body FETCH carries a literal sink that streams large
 * literals into temp files next to their final names. A body is committed
 * only when complete and non-empty; each one completes its in-flight
 * entry as soon as it is stored, so a reader waiting for message 5 of a
 * prefetched batch 5..20 goes on at once. Bodies missing from an answer
 * are asked for again after catching up with the server (imap_catch_up():
 * a pool connection may have selected the folder before they arrived);
 * only what is still missing then fails with EIO.
 */
#include "fs/fetch.h"

#include <errno.h>
#include <unistd.h>

#include "cache/memory.h"
#include "fs/quota.h"
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
/* A walk that begins at a folder's first message (fs_fetch_note_listed())
 * starts with the window of this streak. */
#define WALK_START_STREAK 2
/* A walk into a folder this soon after a reader read past the heads of
 * messages (grep -r going on to the next folder) fetches large bodies
 * from the start. */
#define DEEP_WALK_US (10 * G_USEC_PER_SEC)

struct FsFetch {
	GMutex lock;
	GHashTable
	    *inflight; /* "folder_id:uid" -> Inflight*, bodies being fetched */
	GHashTable *readers; /* FsFolder* -> ReadPattern*, for prefetch */
	GHashTable
	    *heads; /* "folder_id:uid" -> GBytes, heads of large bodies */
	gsize heads_bytes;
	gint64 disk_full_logged_at; /* 0: never */
	CacheMemory *memory;        /* bodies kept off a full disk */
	FsQuota *quota;             /* downloads stopped by the server */
	FsPrefetch prefetch;        /* fs_fetch_set_prefetch() */
	gint64 deep_at;    /* last read past the heads of a message; 0: never */
	GThreadPool *prep; /* PrepJob*: packs made ahead of a walk's bodies */
};

/* A folder's pack to create before the first body of a walk arrives. */
typedef struct {
	CacheStore *store; /* outlives the fetch state (fs/main.c) */
	char *folder;
	uint32_t uidvalidity;
} PrepJob;

static void prep_run(gpointer data, gpointer user_data)
{
	PrepJob *job = data;
	int rc =
	    cache_store_prepare_pack(job->store, job->folder, job->uidvalidity);

	if (rc < 0)
		g_debug("cannot prepare the cache of %s: %s (the first body "
			"will)",
			job->folder, g_strerror(-rc));
	g_free(job->folder);
	g_free(job);
}

FsFetch *fs_fetch_new(void)
{
	FsFetch *fetch = g_new0(FsFetch, 1);

	g_mutex_init(&fetch->lock);
	fetch->inflight =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	fetch->readers =
	    g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	fetch->heads = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					     (GDestroyNotify)g_bytes_unref);
	fetch->memory = cache_memory_new(UNCACHED_MAX_BYTES);
	fetch->quota = fs_quota_new();
	fetch->prefetch = FS_PREFETCH_AHEAD;
	fetch->prep = g_thread_pool_new(prep_run, NULL, 1, FALSE, NULL);
	return fetch;
}

void fs_fetch_free(FsFetch *fetch)
{
	if (!fetch)
		return;
	g_thread_pool_free(fetch->prep, FALSE, TRUE);
	g_hash_table_unref(fetch->inflight);
	g_hash_table_unref(fetch->readers);
	g_hash_table_unref(fetch->heads);
	cache_memory_free(fetch->memory);
	fs_quota_free(fetch->quota);
	g_mutex_clear(&fetch->lock);
	g_free(fetch);
}

/* ---- in-flight table ---- */

typedef struct {
	GCond cond;
	bool done;
	int rc;
	unsigned users;
	const void *owner; /* the BodyJob fetching it */
} Inflight;

static char *body_key(uint32_t folder_id, uint32_t uid)
{
	return g_strdup_printf("%u:%u", folder_id, uid);
}

static void inflight_release(Inflight *in)
{
	if (--in->users == 0) {
		g_cond_clear(&in->cond);
		g_free(in);
	}
}

/* Under fetch->lock: mark in done with rc, take it out of the table and
 * wake its waiters. */
static void inflight_end(FsFetch *fetch, const char *key, Inflight *in, int rc)
{
	g_hash_table_remove(fetch->inflight, key); /* frees the key only */
	in->done = true;
	in->rc = rc;
	g_cond_broadcast(&in->cond);
	inflight_release(in);
}

/* Under fetch->lock: owner finished key. An entry that a waiter took over
 * since (see wait_inflight) belongs to someone else and is left alone. */
static void inflight_finish(FsFetch *fetch, const char *key, const void *owner,
			    int rc)
{
	Inflight *in = g_hash_table_lookup(fetch->inflight, key);

	if (in && in->owner == owner)
		inflight_end(fetch, key, in, rc);
}

/* ---- one batch fetch on a pool thread ---- */

typedef struct {
	FsMount *mnt;
	FsFolder *folder;
	uint32_t folder_id;
	uint32_t uidvalidity;
	GArray *uids; /* uint32_t, ascending */
	GArray *done; /* gboolean per uid: stored (or failed) already */
	bool background;
	uint32_t reader_uid; /* being read now: not pushed (0: none) */
} BodyJob;

/* ---- literal sink of a body FETCH: parser -> cache temp file ---- */

/* Its user data is the BodyJob: the folder and UIDVALIDITY are known, so
 * the temp file goes next to its final name. */
static void *sink_begin(void *user_data, uint64_t size)
{
	BodyJob *job = user_data;
	g_autoptr(GError) error = NULL;
	CacheBodyWriter *w = cache_body_writer_new_at(
	    job->mnt->store, job->folder->raw, job->uidvalidity, &error);

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
static void log_disk_full_once(FsMount *mnt)
{
	FsFetch *fetch = mnt->fetch;
	gint64 now = g_get_monotonic_time();
	gint64 last;

	g_mutex_lock(&fetch->lock);
	last = fetch->disk_full_logged_at;
	if (last == 0 || now - last > 600 * G_USEC_PER_SEC)
		fetch->disk_full_logged_at = now;
	g_mutex_unlock(&fetch->lock);
	if (last != 0 && now - last <= 600 * G_USEC_PER_SEC)
		return;
	g_warning("cannot store messages in the cache (no space left on the "
		  "cache's disk, or a message larger than --cache-size): "
		  "serving them without caching");
}

/* Mark uid finished with rc (0: stored) and wake its readers. */
static void job_finish_uid(BodyJob *job, guint i, int rc)
{
	FsFetch *fetch = job->mnt->fetch;
	g_autofree char *key = NULL;

	if (g_array_index(job->done, gboolean, i))
		return;
	g_array_index(job->done, gboolean, i) = TRUE;
	key = body_key(job->folder_id, g_array_index(job->uids, uint32_t, i));
	g_mutex_lock(&fetch->lock);
	inflight_finish(fetch, key, job, rc);
	g_mutex_unlock(&fetch->lock);
}

static void forget_prefetch(FsMount *mnt, FsFolder *f, uint32_t folder_id);

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
		forget_prefetch(job->mnt, job->folder, job->folder_id);
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

/* The inode the kernel knows uid of the job by (one for all the folders
 * of a message with a global id). */
static fuse_ino_t body_ino(BodyJob *job, uint32_t uid)
{
	FsListing *l = fs_folder_get_listing(job->folder);
	CacheMessage m;
	bool found = l && l->folder_id == job->folder_id &&
		     cache_folder_index_find(l->index, uid, &m, NULL);
	fuse_ino_t ino = found && m.gid
			     ? fs_links_ino(m.gid)
			     : fs_tree_message_ino(job->folder_id, uid);

	fs_listing_unref(l);
	return ino;
}

/* A body that arrived in memory (the parser keeps literals up to 64 KiB
 * there): into the folder's pack, no file to create; into the memory
 * table when the disk cannot take it. 0 or -EIO. */
static int store_small(BodyJob *job, uint32_t uid, const char *data, size_t len)
{
	FsMount *mnt = job->mnt;
	const char *folder = job->folder->raw;
	int rc = cache_store_put_body(mnt->store, folder, job->uidvalidity, uid,
				      data, len);

	if (rc < 0) {
		if (rc == -ENOSPC)
			log_disk_full_once(mnt);
		else
			g_warning("cannot cache a body of %s: %s", folder,
				  g_strerror(-rc));
		rc = cache_memory_keep(mnt->fetch->memory, folder,
				       job->uidvalidity, uid, data, len);
	}
	if (rc < 0)
		return -EIO;
	fs_sync_set_exact_size(mnt, job->folder, job->folder_id, uid, len);
	if (job->background && uid != job->reader_uid) {
		/* Prefetched for a sequential reader: into the page cache
		 * too, so that it reads the file without asking us. */
		g_autoptr(GBytes) bytes = g_bytes_new(data, len);

		fs_push_bytes(mnt->push, body_ino(job, uid), bytes);
	}
	return 0;
}

/* A body that the sink streamed into the temp file of w (NULL when the
 * sink refused it): committed under its name, or kept in the memory table
 * when the disk cannot take it. 0 or -errno. */
static int store_streamed(BodyJob *job, uint32_t uid, CacheBodyWriter *w)
{
	FsMount *mnt = job->mnt;
	int uncached_fd = -1;
	uint64_t size;
	int rc;

	if (!w)
		return -EIO;
	size = cache_body_writer_size(w);
	if (size == 0) {
		cache_body_writer_abort(w);
		return -EIO;
	}
	rc = cache_body_writer_commit_fd(w, job->folder->raw, job->uidvalidity,
					 uid, &uncached_fd);
	if (rc == -ENOSPC && uncached_fd >= 0) {
		log_disk_full_once(mnt);
		cache_memory_keep_fd(mnt->fetch->memory, job->folder->raw,
				     job->uidvalidity, uid, uncached_fd, size);
		rc = 0;
	}
	if (rc == 0)
		fs_sync_set_exact_size(mnt, job->folder, job->folder_id, uid,
				       size);
	return rc;
}

static int store_body(void *user_data, uint32_t uid, ImapBody *body)
{
	BodyJob *job = user_data;
	int idx = find_uid(job, uid);
	int rc;

	if (idx < 0 || g_array_index(job->done, gboolean, idx)) {
		/* Not asked for, or a second copy. */
		cache_body_writer_abort(body->streamed);
		return 0;
	}
	if (body->streamed) {
		rc = store_streamed(job, uid, body->streamed);
	} else if (body->len > 0) {
		rc = store_small(job, uid, body->data, body->len);
	} else {
		/* NIL or empty: the server has no body to give. Never
		 * cache it as an empty file. */
		g_message("%s UID %u: server returned %s for BODY[]",
			  job->folder->raw, uid, body->nil ? "NIL" : "no data");
		rc = -EIO;
	}
	job_finish_uid(job, (guint)idx, rc);
	return 0;
}

/* UID FETCH set into the cache through store_body(); a refusal that
 * means "no more downloads today" stops the others too. */
static int fetch_set(ImapConn *conn, BodyJob *job, const char *set,
		     GError **error)
{
	int rc = imap_fetch_bodies(conn, set, &body_sink, job, store_body, job,
				   error);

	if (rc < 0 && fs_quota_is_refusal(rc, error ? *error : NULL))
		fs_quota_hit(job->mnt->fetch->quota,
			     error && *error ? (*error)->message : "quota");
	if (rc == 0)
		fs_quota_ok(job->mnt->fetch->quota);
	return rc;
}

/* The job's UIDs that no answer stored yet (NULL when none). */
static GArray *missing_uids(BodyJob *job)
{
	GArray *missing = NULL;

	for (guint i = 0; i < job->uids->len; i++) {
		if (g_array_index(job->done, gboolean, i))
			continue;
		if (!missing)
			missing = g_array_new(FALSE, FALSE, sizeof(uint32_t));
		g_array_append_val(missing,
				   g_array_index(job->uids, uint32_t, i));
	}
	return missing;
}

/* Tagged OK without some of the bodies: this connection's view of the
 * folder may predate them (it was selected before they arrived, and the
 * listing learnt of them on another connection). Catch up with the server
 * (imap_catch_up() step) and fetch those again. */
static int refetch_missing(ImapConn *conn, BodyJob *job, unsigned step,
			   GError **error)
{
	g_autoptr(GArray) missing = missing_uids(job);
	g_autofree char *set = NULL;
	int rc;

	if (!missing)
		return 0;
	set = imap_uid_set(missing);
	g_debug("%s UIDs %s: no body in the answer; catching up with the "
		"server (step %u) and asking again",
		job->folder->raw, set, step + 1);
	rc = imap_catch_up(conn, step, error);
	return rc < 0 ? rc : fetch_set(conn, job, set, error);
}

static int body_job_run(ImapConn *conn, const ImapMailboxState *st, void *data,
			GError **error)
{
	BodyJob *job = data;
	g_autofree char *set = imap_uid_set(job->uids);
	int rc;

	if (st->uidvalidity != job->uidvalidity) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "folder %s changed on the server (UIDVALIDITY %u, "
			    "expected %u)",
			    job->folder->raw, st->uidvalidity,
			    job->uidvalidity);
		return -ESTALE;
	}
	rc = fetch_set(conn, job, set, error);
	for (unsigned step = 0; rc == 0 && step < IMAP_CATCH_UP_STEPS; step++)
		rc = refetch_missing(conn, job, step, error);
	if (rc < 0)
		return rc;
	for (guint i = 0; i < job->uids->len; i++) {
		if (!g_array_index(job->done, gboolean, i)) {
			/* Tagged OK without the data, also after catching
			 * up: an error for that message (expunged since,
			 * most likely), never an empty file. */
			g_message("%s UID %u: server sent no body",
				  job->folder->raw,
				  g_array_index(job->uids, uint32_t, i));
			job_finish_uid(job, i, -EIO);
		}
	}
	return 0;
}

static BodyJob *body_job_new(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			     uint32_t uidvalidity, bool background)
{
	BodyJob *job = g_new0(BodyJob, 1);

	job->mnt = mnt;
	job->folder = f;
	job->folder_id = folder_id;
	job->uidvalidity = uidvalidity;
	job->background = background;
	job->uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	job->done = g_array_new(FALSE, TRUE, sizeof(gboolean));
	return job;
}

/* Under fetch->lock: register uid as in flight for job. False when
 * someone else is fetching it already. */
static bool claim_uid(FsFetch *fetch, BodyJob *job, uint32_t uid)
{
	g_autofree char *key = body_key(job->folder_id, uid);
	Inflight *in;
	gboolean no = FALSE;

	if (g_hash_table_contains(fetch->inflight, key))
		return false;
	in = g_new0(Inflight, 1);
	g_cond_init(&in->cond);
	in->users = 1;
	in->owner = job;
	g_hash_table_insert(fetch->inflight, g_steal_pointer(&key), in);
	g_array_append_val(job->uids, uid);
	g_array_append_val(job->done, no);
	return true;
}

/* ---- foreground fetch ---- */

/* Wait for someone else's fetch of key. Returns its result, or 1 when
 * nobody is fetching it. Under fetch->lock. The wait is bounded: a fetch
 * that makes no progress within the timeout is taken over (its entry
 * ends with -ETIMEDOUT, so its other waiters retry too). */
static int wait_inflight(FsMount *mnt, const char *key)
{
	FsFetch *fetch = mnt->fetch;
	Inflight *in = g_hash_table_lookup(fetch->inflight, key);
	gint64 until = g_get_monotonic_time() + mnt->timeout_us;
	int rc;

	if (!in)
		return 1;
	in->users++;
	while (!in->done) {
		if (!g_cond_wait_until(&in->cond, &fetch->lock, until) &&
		    !in->done) {
			g_message("a fetch of message %s made no progress "
				  "within the timeout: retrying",
				  key);
			if (g_hash_table_lookup(fetch->inflight, key) == in)
				inflight_end(fetch, key, in, -ETIMEDOUT);
			break;
		}
	}
	rc = in->rc;
	inflight_release(in);
	return rc;
}

/* Run job (one uid, claimed, whose entry is in) on the pool and wait for
 * its result; drops our reference to in. 0 or -errno, error says why. */
static int run_own_fetch(FsMount *mnt, FsFolder *f, BodyJob *job, Inflight *in,
			 GError **error)
{
	FsFetch *fetch = mnt->fetch;
	int rc;

	rc = imap_pool_run(mnt->pool, f->raw, body_job_run, job, body_job_free,
			   error);
	if (rc != -ETIMEDOUT)
		body_job_free(job); /* finishes the uid if still open */

	g_mutex_lock(&fetch->lock);
	/* After a timeout the pool still owns the job: do not wait for it. */
	if (rc == 0) {
		while (!in->done)
			g_cond_wait(&in->cond, &fetch->lock);
		rc = in->rc;
	}
	inflight_release(in);
	g_mutex_unlock(&fetch->lock);
	return rc;
}

/* Fetch uid ourselves, or wait for the fetch already under way. Returns 0
 * when the body should now be available, -EAGAIN when a fetch we waited
 * for failed (try our own), or -errno for our own failure. */
static int fetch_one(FsMount *mnt, FsFolder *f, uint32_t folder_id,
		     uint32_t uidvalidity, uint32_t uid)
{
	FsFetch *fetch = mnt->fetch;
	g_autofree char *key = body_key(folder_id, uid);
	g_autoptr(GError) error = NULL;
	BodyJob *job;
	Inflight *in;
	int rc;

	g_mutex_lock(&fetch->lock);
	rc = wait_inflight(mnt, key);
	if (rc != 1) {
		g_mutex_unlock(&fetch->lock);
		return rc == 0 ? 0 : -EAGAIN;
	}
	job = body_job_new(mnt, f, folder_id, uidvalidity, false);
	claim_uid(fetch, job, uid);
	/* Our own reference to the entry, to learn the result. */
	in = g_hash_table_lookup(fetch->inflight, key);
	in->users++;
	g_mutex_unlock(&fetch->lock);

	rc = run_own_fetch(mnt, f, job, in, &error);

	/* While the pool fails jobs at once it has said why, once: one line
	 * per read would flood the log of a busy file manager. */
	if (rc < 0 &&
	    (g_error_matches(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED) ||
	     fs_quota_stopped(fetch->quota)))
		g_debug("cannot fetch %s UID %u: %s", f->raw, uid,
			error ? error->message : g_strerror(-rc));
	else if (rc < 0)
		g_message("cannot fetch %s UID %u: %s", f->raw, uid,
			  error ? error->message : g_strerror(-rc));
	if (rc == -ESTALE) {
		/* Make the next directory access resync the folder. */
		fs_sync_mark_stale(f);
		return rc;
	}
	return rc < 0 ? -EIO : 0;
}

/* ---- prefetch ---- */

typedef struct {
	uint32_t folder_id;
	guint last_index; /* listing position of the last first read */
	guint streak;     /* consecutive sequential first reads */
	guint queued_to;  /* prefetch queued up to this position */
	guint pushed_to;  /* pushes queued up to this position */
	bool deep;        /* the streak reads past the heads of messages */
	bool listed;      /* opened as a directory since the last first read */
	uint64_t entries_push_budget; /* left to fs_fetch_note_entries() */
} ReadPattern;

/* Under fetch->lock. */
static ReadPattern *read_pattern(FsFetch *fetch, FsFolder *f,
				 uint32_t folder_id)
{
	ReadPattern *rp = g_hash_table_lookup(fetch->readers, f);

	if (!rp) {
		rp = g_new0(ReadPattern, 1);
		g_hash_table_insert(fetch->readers, f, rp);
	}
	if (rp->folder_id != folder_id)
		*rp = (ReadPattern){ .folder_id = folder_id,
				     .last_index = G_MAXUINT };
	return rp;
}

/* Prefetch state must not outlive the failure that ended it: without
 * this, a folder read while the server was down was fetched one message
 * per round trip afterwards, until the reader passed the old mark. */
static void forget_prefetch(FsMount *mnt, FsFolder *f, uint32_t folder_id)
{
	FsFetch *fetch = mnt->fetch;
	ReadPattern *rp;

	g_mutex_lock(&fetch->lock);
	rp = g_hash_table_lookup(fetch->readers, f);
	if (rp && rp->folder_id == folder_id)
		rp->queued_to = 0;
	g_mutex_unlock(&fetch->lock);
}

static bool body_cached(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
			uint32_t uid)
{
	return cache_store_has_body(mnt->store, f->raw, uidvalidity, uid);
}

/* Push the cached bodies of messages [from, to) of l, within *budget bytes
 * (taken from it), to the front of the push queue (fs/push.h); the pusher
 * skips what is not cached. Returns the position it got to. */
static guint push_run(FsMount *mnt, FsFolder *f, FsListing *l, guint from,
		      guint to, uint64_t *budget)
{
	FsPushMessage msgs[PUSH_AHEAD_MESSAGES];
	guint n = 0, i;

	to = MIN(to, cache_folder_index_count(l->index));
	for (i = from; i < to && n < G_N_ELEMENTS(msgs); i++) {
		CacheMessage m;

		cache_folder_index_get(l->index, i, &m);
		if (m.size > *budget)
			break;
		*budget -= m.size;
		msgs[n].ino = m.gid ? fs_links_ino(m.gid)
				    : fs_tree_message_ino(l->folder_id, m.uid);
		msgs[n++].uid = m.uid;
	}
	fs_push_cached_run(mnt->push, l->folder_id, f->raw,
			   l->index->uidvalidity, msgs, n);
	return i;
}

/* Under fetch->lock. A reader that starts a folder or goes on in order
 * gets the cached bodies that follow pushed into the page cache
 * (fs/push.h): cheap next to a round trip per file, so from the first read
 * on, and far ahead. */
static void push_ahead(FsMount *mnt, FsFolder *f, FsListing *l, ReadPattern *rp,
		       guint pos)
{
	uint64_t budget = PUSH_AHEAD_BYTES;
	guint from;

	if (pos != 0 && rp->streak == 0)
		return;
	if (rp->pushed_to > pos + 1 + PUSH_AHEAD_MESSAGES / 2)
		return;
	from = MAX(pos + 1, rp->pushed_to);
	rp->pushed_to =
	    push_run(mnt, f, l, from, pos + 1 + PUSH_AHEAD_MESSAGES, &budget);
}

/* Under fetch->lock: count the first read at pos into rp's streak, or
 * start a new pass. True when the read starts a walk through a folder
 * just listed: prefetch takes the message at pos too. */
static bool note_first_read(FsFetch *fetch, ReadPattern *rp, guint pos)
{
	bool listed = rp->listed;

	rp->listed = false;
	if (listed && pos == 0) {
		/* Listed, then its first message read (grep -r, find
		 * -exec, a mail indexer): no need to wait for a streak. */
		gint64 now = g_get_monotonic_time();

		rp->streak = WALK_START_STREAK;
		rp->deep =
		    fetch->deep_at && now - fetch->deep_at < DEEP_WALK_US;
		rp->queued_to = 0;
		rp->pushed_to = 0;
		rp->last_index = pos;
		return true;
	}
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
	return false;
}

/* A message picked for prefetch. */
typedef struct {
	uint32_t uid;
	uint64_t size;
	uint64_t gid;
} Pick;

/* Under fetch->lock: the messages of the window ahead of pos (from pos
 * itself when with_pos) that a streak of rp's length wants fetched,
 * within budget bytes; advances rp->queued_to past them. NULL when the
 * window is still full enough. */
static GArray *pick_window(FsListing *l, ReadPattern *rp, guint pos,
			   bool with_pos, uint64_t budget)
{
	guint n = cache_folder_index_count(l->index);
	GArray *picks;
	guint window, from, to;

	/* The window doubles with the streak: 8, 16, ... up to the max. */
	window = MIN(PREFETCH_MAX_MESSAGES, 4u << MIN(rp->streak, 6u));
	/* Top up in large steps, not one message per read: only when less
	 * than half the window is still ahead of the reader. */
	if (rp->queued_to > pos + 1 + window / 2)
		return NULL;
	picks = g_array_new(FALSE, FALSE, sizeof(Pick));
	from = MAX(with_pos ? pos : pos + 1, rp->queued_to);
	to = MIN(n, pos + 1 + window);
	for (guint i = from; i < to; i++) {
		CacheMessage mm, *m = &mm;
		Pick p;

		cache_folder_index_get(l->index, i, &mm);
		p = (Pick){ m->uid, m->size, m->gid };

		if (m->size > budget)
			break;
		/* A reader that only looks at heads (a file manager
		 * sniffing types) must not pull large bodies whole. */
		if (m->size > FS_FETCH_HEAD_BYTES && !rp->deep)
			continue;
		budget -= m->size;
		rp->queued_to = i + 1;
		g_array_append_val(picks, p);
	}
	return picks;
}

/* Without the lock (these open files and scan packs): drop the picks
 * that are cached already. */
static void drop_cached(FsMount *mnt, FsFolder *f, const FsListing *l,
			GArray *picks)
{
	uint32_t uidvalidity = l->index->uidvalidity, folder_id = l->folder_id;
	guint kept = 0;

	for (guint i = 0; i < picks->len; i++) {
		Pick p = g_array_index(picks, Pick, i);

		/* A message also in other folders is fetched and cached
		 * through its home only (fs/links.h): never twice. */
		if (p.gid && !fs_links_is_home(fs_tree_links(mnt->tree), p.gid,
					       folder_id, p.uid))
			continue;
		if (!body_cached(mnt, f, uidvalidity, p.uid))
			g_array_index(picks, Pick, kept++) = p;
	}
	g_array_set_size(picks, kept);
}

/* Claim the picks nobody fetches yet and queue them in batches, over
 * several connections. reader_uid (0: none) is the message being read:
 * its reader waits for the batch instead of a fetch of its own. */
static void submit_picks(FsMount *mnt, FsFolder *f, FsListing *l,
			 const GArray *picks, uint32_t reader_uid)
{
	FsFetch *fetch = mnt->fetch;
	BodyJob *job = NULL;
	uint64_t job_bytes = 0;

	g_mutex_lock(&fetch->lock);
	for (guint i = 0; i < picks->len; i++) {
		const Pick *p = &g_array_index(picks, Pick, i);

		if (!job) {
			job = body_job_new(mnt, f, l->folder_id,
					   l->index->uidvalidity, true);
			job->reader_uid = reader_uid;
		}
		if (!claim_uid(fetch, job, p->uid))
			continue;
		job_bytes += p->size;
		if (job->uids->len >= BATCH_MAX_MESSAGES ||
		    job_bytes >= BATCH_MAX_BYTES) {
			g_mutex_unlock(&fetch->lock);
			imap_pool_submit(mnt->pool, f->raw, body_job_run, job,
					 body_job_free);
			g_mutex_lock(&fetch->lock);
			job = NULL;
			job_bytes = 0;
		}
	}
	g_mutex_unlock(&fetch->lock);
	if (job && job->uids->len > 0)
		imap_pool_submit(mnt->pool, f->raw, body_job_run, job,
				 body_job_free);
	else if (job)
		body_job_free(job);
}

/* Called on the first read of the message at position pos of listing l:
 * when reads go through the folder in order, fetch what follows ahead, in
 * batches over several connections; stop when the reads stop. */
static void maybe_prefetch(FsMount *mnt, FsFolder *f, FsListing *l, guint pos,
			   uint32_t uid)
{
	FsFetch *fetch = mnt->fetch;
	g_autoptr(GArray) picks = NULL;
	uint64_t budget = PREFETCH_MAX_BYTES;
	ReadPattern *rp;
	bool walk;

	if (mnt->cache_limit)
		budget = MIN(budget, mnt->cache_limit / 4);
	/* Off, or the server stopped downloads: fetch only what is read. */
	if (fetch->prefetch == FS_PREFETCH_OFF ||
	    fs_quota_stopped(fetch->quota))
		budget = 0;

	g_mutex_lock(&fetch->lock);
	rp = read_pattern(fetch, f, l->folder_id);
	walk = note_first_read(fetch, rp, pos);
	push_ahead(mnt, f, l, rp, pos);
	if (rp->streak >= 2 && budget > 0)
		picks = pick_window(l, rp, pos, walk, budget);
	g_mutex_unlock(&fetch->lock);
	if (!picks)
		return;
	drop_cached(mnt, f, l, picks);
	if (walk && picks->len > 0) {
		/* The first body would otherwise wait for the pack's
		 * directories and file to be created. */
		PrepJob *job = g_new0(PrepJob, 1);

		job->store = mnt->store;
		job->folder = g_strdup(f->raw);
		job->uidvalidity = l->index->uidvalidity;
		g_thread_pool_push(mnt->fetch->prep, job, NULL);
	}
	submit_picks(mnt, f, l, picks, walk ? uid : 0);
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

void fs_fetch_note_read(FsMount *mnt, FsFolder *f, uint32_t folder_id,
			off_t off)
{
	FsFetch *fetch = mnt->fetch;

	if (off < FS_FETCH_HEAD_BYTES)
		return;
	g_mutex_lock(&fetch->lock);
	read_pattern(fetch, f, folder_id)->deep = true;
	fetch->deep_at = g_get_monotonic_time();
	g_mutex_unlock(&fetch->lock);
}

void fs_fetch_note_entries(FsMount *mnt, FsFolder *f, FsListing *l, guint from,
			   guint to)
{
	FsFetch *fetch = mnt->fetch;
	ReadPattern *rp;

	if (from >= PUSH_AHEAD_MESSAGES || from >= to)
		return;
	g_mutex_lock(&fetch->lock);
	rp = read_pattern(fetch, f, l->folder_id);
	if (from == 0)
		rp->entries_push_budget = PUSH_AHEAD_BYTES;
	push_run(mnt, f, l, from, MIN(to, PUSH_AHEAD_MESSAGES),
		 &rp->entries_push_budget);
	g_mutex_unlock(&fetch->lock);
}

void fs_fetch_note_listed(FsMount *mnt, FsFolder *f, uint32_t folder_id)
{
	FsFetch *fetch = mnt->fetch;

	g_mutex_lock(&fetch->lock);
	read_pattern(fetch, f, folder_id)->listed = true;
	g_mutex_unlock(&fetch->lock);
}

/* The head of key from the table (a new reference), or NULL. */
static GBytes *lookup_head(FsFetch *fetch, const char *key)
{
	GBytes *head;

	g_mutex_lock(&fetch->lock);
	head = g_hash_table_lookup(fetch->heads, key);
	if (head)
		g_bytes_ref(head);
	g_mutex_unlock(&fetch->lock);
	return head;
}

/* Keep head under key; the table is emptied when it would outgrow its
 * bound. */
static void remember_head(FsFetch *fetch, const char *key, GBytes *head)
{
	g_mutex_lock(&fetch->lock);
	if (fetch->heads_bytes + g_bytes_get_size(head) > HEADS_MAX_BYTES) {
		g_hash_table_remove_all(fetch->heads);
		fetch->heads_bytes = 0;
	}
	if (!g_hash_table_contains(fetch->heads, key)) {
		g_hash_table_insert(fetch->heads, g_strdup(key),
				    g_bytes_ref(head));
		fetch->heads_bytes += g_bytes_get_size(head);
	}
	g_mutex_unlock(&fetch->lock);
}

GBytes *fs_fetch_head(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid)
{
	g_autofree char *key = body_key(l->folder_id, uid);
	g_autoptr(GError) error = NULL;
	HeadJob *job;
	GBytes *head = lookup_head(mnt->fetch, key);
	int rc;

	if (head)
		return head;
	job = g_new0(HeadJob, 1);
	job->uid = uid;
	rc = imap_pool_run(mnt->pool, f->raw, head_job_run, job, head_job_free,
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
	remember_head(mnt->fetch, key, head);
	return head;
}

bool fs_fetch_is_cached(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid)
{
	uint32_t uidvalidity = l->index->uidvalidity;
	CacheBody b;

	if (body_cached(mnt, f, uidvalidity, uid))
		return true;
	if (cache_memory_find(mnt->fetch->memory, f->raw, uidvalidity, uid,
			      &b) == 0) {
		close(b.fd);
		return true;
	}
	return false;
}

/* ---- entry point ---- */

static int open_cached(FsMount *mnt, FsFolder *f, uint32_t folder_id,
		       uint32_t uidvalidity, uint32_t uid, CacheBody *body)
{
	int rc =
	    cache_store_find_body(mnt->store, f->raw, uidvalidity, uid, body);

	if (rc == 0) {
		if (body->size > 0) {
			fs_sync_set_exact_size(mnt, f, folder_id, uid,
					       body->size);
			return 0;
		}
		close(body->fd); /* an empty body is never valid */
	} else if (rc != -ENOENT) {
		g_message("cannot open cached %s UID %u: %s", f->raw, uid,
			  g_strerror(-rc));
	}
	return cache_memory_find(mnt->fetch->memory, f->raw, uidvalidity, uid,
				 body);
}

int fs_fetch_open(FsMount *mnt, FsFolder *f, FsListing *l, uint32_t uid,
		  bool first_read, CacheBody *body)
{
	uint32_t folder_id = l->folder_id, uidvalidity = l->index->uidvalidity;
	int rc = 0;

	if (first_read) {
		guint pos;

		if (cache_folder_index_find(l->index, uid, NULL, &pos))
			maybe_prefetch(mnt, f, l, pos, uid);
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		if (open_cached(mnt, f, folder_id, uidvalidity, uid, body) == 0)
			return 0;
		/* Downloads stopped: EIO at once, the server is not asked. */
		if (attempt == 0 && fs_quota_blocked(mnt->fetch->quota))
			return -EIO;
		rc = fetch_one(mnt, f, folder_id, uidvalidity, uid);
		if (rc < 0 && rc != -EAGAIN)
			return rc;
	}
	return -EIO;
}

void fs_fetch_set_prefetch(FsFetch *fetch, FsPrefetch mode)
{
	fetch->prefetch = mode;
}

void fs_fetch_forget_folder(FsMount *mnt, const char *folder,
			    uint32_t keep_uidvalidity)
{
	cache_memory_drop_folder(mnt->fetch->memory, folder, keep_uidvalidity);
}
