/* fs/fetch.c: bodies from the cache, or fetched into it through the pool.
 *
 * Locking: acct->fetch_lock guards acct->inflight, a table of the fetches
 * under way keyed by "gen:uid", so that readers of the same uncached
 * message wait for one fetch instead of starting several. The fetch itself
 * runs on a pool thread; large literals stream into a cache temp file via
 * fs_fetch_sink, small ones arrive in memory and are written out here.
 * A body is committed to the cache only when it is complete and non-empty.
 */
#include "fs/fetch.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/sync.h"
#include "imap/ops.h"

/* ---- literal sink: parser -> cache temp file ---- */

static void *sink_begin(void *user_data, uint64_t size)
{
	g_autoptr(GError) error = NULL;
	CacheBodyWriter *w = cache_body_writer_new(user_data, &error);

	if (!w)
		g_warning("cannot cache a message body: %s", error->message);
	return w;
}

static int sink_write(void *user_data, void *sink, const void *buf,
		      size_t len)
{
	return cache_body_writer_write(sink, buf, len);
}

static void sink_discard(void *user_data, void *sink)
{
	cache_body_writer_abort(sink);
}

const ImapLiteralSink fs_fetch_sink = {
	.begin = sink_begin,
	.write = sink_write,
	.discard = sink_discard,
};

/* ---- one fetch on a pool thread ---- */

typedef struct {
	CacheStore *store;
	char *folder;
	uint32_t uidvalidity;
	uint32_t uid;
	bool got;
	uint64_t size;
	int rc;
} BodyJob;

static void body_job_free(gpointer data)
{
	BodyJob *job = data;

	g_free(job->folder);
	g_free(job);
}

static int store_body(void *user_data, uint32_t uid, ImapValue *body)
{
	BodyJob *job = user_data;
	CacheBodyWriter *w = NULL;
	int rc;

	if (uid != job->uid)
		return 0;
	if (job->got)
		return 0; /* a second copy in one answer: keep the first */
	if (body->type == IMAP_VALUE_STREAM) {
		w = body->stream.sink;
		body->stream.sink = NULL;
	} else if (body->type == IMAP_VALUE_STRING && body->len > 0) {
		g_autoptr(GError) error = NULL;

		w = cache_body_writer_new(job->store, &error);
		if (!w) {
			g_warning("cannot cache a message body: %s",
				  error->message);
			return -EIO;
		}
		rc = cache_body_writer_write(w, body->str, body->len);
		if (rc < 0) {
			cache_body_writer_abort(w);
			return rc;
		}
	} else {
		/* NIL or empty: the server has no body to give. Never
		 * cache it as an empty file. */
		g_message("%s UID %u: server returned %s for BODY[]",
			  job->folder, uid,
			  body->type == IMAP_VALUE_NIL ? "NIL" : "no data");
		return -EIO;
	}
	if (!w)
		return -EIO;
	job->size = cache_body_writer_size(w);
	if (job->size == 0) {
		cache_body_writer_abort(w);
		return -EIO;
	}
	rc = cache_body_writer_commit(w, job->folder, job->uidvalidity, uid);
	if (rc < 0)
		return rc;
	job->got = true;
	return 0;
}

static int body_job_run(ImapConn *conn, const ImapMailboxState *st,
			void *data, GError **error)
{
	BodyJob *job = data;
	g_autofree char *set = g_strdup_printf("%u", job->uid);
	int rc;

	if (st->uidvalidity != job->uidvalidity) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "folder %s changed on the server (UIDVALIDITY %u, "
			    "expected %u)",
			    job->folder, st->uidvalidity, job->uidvalidity);
		return -ESTALE;
	}
	rc = imap_fetch_bodies(conn, set, store_body, job, error);
	if (rc == 0 && !job->got) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "server sent no body for UID %u of %s", job->uid,
			    job->folder);
		rc = -EIO;
	}
	return rc;
}

/* ---- de-duplication of concurrent fetches ---- */

typedef struct {
	GCond cond;
	bool done;
	int rc;
	unsigned users;
} Inflight;

static int fetch_into_cache(FsAccount *acct, FsFolder *f,
			    uint32_t uidvalidity, uint32_t uid,
			    uint64_t *size)
{
	g_autoptr(GError) error = NULL;
	BodyJob *job = g_new0(BodyJob, 1);
	int rc;

	job->store = acct->store;
	job->folder = g_strdup(f->raw);
	job->uidvalidity = uidvalidity;
	job->uid = uid;
	rc = imap_pool_run(acct->pool, f->raw, body_job_run, job,
			   body_job_free, &error);
	if (rc == -ETIMEDOUT) {
		g_message("%s UID %u: %s", f->raw, uid, error->message);
		return -EIO;
	}
	if (rc == 0)
		*size = job->size;
	else
		g_message("cannot fetch %s UID %u: %s", f->raw, uid,
			  error ? error->message : g_strerror(-rc));
	body_job_free(job);
	if (rc == -ESTALE) {
		/* Make the next directory access resync the folder. */
		g_mutex_lock(&f->lock);
		f->synced_at = 0;
		g_mutex_unlock(&f->lock);
	}
	if (rc < 0 && rc != -ESTALE && rc != -ENOSPC)
		rc = -EIO;
	return rc;
}

static int fetch_shared(FsAccount *acct, FsFolder *f, uint32_t gen,
			uint32_t uidvalidity, uint32_t uid)
{
	g_autofree char *key = g_strdup_printf("%u:%u", gen, uid);
	Inflight *in;
	uint64_t size = 0;
	int rc;

	g_mutex_lock(&acct->fetch_lock);
	in = g_hash_table_lookup(acct->inflight, key);
	if (in) {
		in->users++;
		while (!in->done)
			g_cond_wait(&in->cond, &acct->fetch_lock);
		rc = in->rc;
		if (--in->users == 0) {
			g_cond_clear(&in->cond);
			g_free(in);
		}
		g_mutex_unlock(&acct->fetch_lock);
		return rc;
	}
	in = g_new0(Inflight, 1);
	g_cond_init(&in->cond);
	in->users = 1;
	g_hash_table_insert(acct->inflight, g_strdup(key), in);
	g_mutex_unlock(&acct->fetch_lock);

	rc = fetch_into_cache(acct, f, uidvalidity, uid, &size);
	if (rc == 0)
		fs_sync_set_exact_size(acct, f, gen, uid, size);

	g_mutex_lock(&acct->fetch_lock);
	g_hash_table_remove(acct->inflight, key);
	in->done = true;
	in->rc = rc;
	g_cond_broadcast(&in->cond);
	if (--in->users == 0) {
		g_cond_clear(&in->cond);
		g_free(in);
	}
	g_mutex_unlock(&acct->fetch_lock);
	return rc;
}

void fs_fetch_uncached_free(gpointer p)
{
	g_free(p);
}

int fs_fetch_open(FsAccount *acct, FsFolder *f, FsListing *l, uint32_t uid,
		  bool first_read)
{
	uint32_t gen = l->gen, uidvalidity = l->index->uidvalidity;

	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = cache_store_open_body(acct->store, f->raw, uidvalidity,
					       uid);
		struct stat st;
		int rc;

		if (fd >= 0) {
			if (fstat(fd, &st) == 0 && st.st_size > 0) {
				fs_sync_set_exact_size(acct, f, gen, uid,
						       (uint64_t)st.st_size);
				return fd;
			}
			close(fd); /* an empty body is never valid */
		} else if (fd != -ENOENT) {
			g_message("cannot open cached %s UID %u: %s", f->raw,
				  uid, g_strerror(-fd));
		}
		if (attempt > 0)
			break;
		rc = fetch_shared(acct, f, gen, uidvalidity, uid);
		if (rc < 0)
			return rc;
	}
	return -EIO;
}
