/* fs/xattr.c: the mapping from a file to its extended attributes (see
 * fs/xattr.h).
 *
 * Attributes from the listing cost nothing. Those from the ENVELOPE cost
 * one UID FETCH (ENVELOPE) of that message, never its body, on the first
 * getxattr or listxattr; the decoded strings are kept for the last
 * ENV_CACHE_MAX messages so that getfattr -d (a list, then a get per name)
 * costs one round trip per file.
 *
 * Locking: x->lock guards the envelope cache (entries, lru). No I/O under
 * it; two threads asking for the same message at once may both fetch it
 * (the second result replaces the first).
 */
#include "fs/xattr.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <stddef.h>
#include <string.h>

#include "cache/flags.h"
#include "fs/meta.h"
#include "imap/ops.h"

#define ENV_CACHE_MAX 256

/* An envelope decoded to UTF-8; NULL where the message has no such field. */
typedef struct {
	guint64 key; /* folder_id << 32 | uid */
	char *from, *to, *cc, *subject, *date, *message_id, *in_reply_to;
	char *gm_labels, *gm_msgid, *gm_thrid;
} Env;

struct FsXattr {
	GMutex lock;
	GHashTable *entries; /* &key -> Env* (owned) */
	GQueue lru;          /* Env*, most recent first */
};

typedef enum {
	SRC_UID,
	SRC_UIDVALIDITY,
	SRC_FOLDER,
	SRC_FLAGS,
	SRC_DATE,
	SRC_SIZE,
	SRC_ENV,
} Src;

/* Message attributes, in the order listxattr gives them. */
static const struct {
	const char *name;
	Src src;
	size_t off; /* offset of the Env field for SRC_ENV */
} attrs[] = {
	{ "user.imap.uid", SRC_UID, 0 },
	{ "user.imap.uidvalidity", SRC_UIDVALIDITY, 0 },
	{ "user.imap.folder", SRC_FOLDER, 0 },
	{ "user.imap.flags", SRC_FLAGS, 0 },
	{ "user.imap.internaldate", SRC_DATE, 0 },
	{ "user.imap.size", SRC_SIZE, 0 },
	{ "user.mail.from", SRC_ENV, offsetof(Env, from) },
	{ "user.mail.to", SRC_ENV, offsetof(Env, to) },
	{ "user.mail.cc", SRC_ENV, offsetof(Env, cc) },
	{ "user.mail.subject", SRC_ENV, offsetof(Env, subject) },
	{ "user.mail.date", SRC_ENV, offsetof(Env, date) },
	{ "user.mail.message-id", SRC_ENV, offsetof(Env, message_id) },
	{ "user.mail.in-reply-to", SRC_ENV, offsetof(Env, in_reply_to) },
	{ "user.imap.gmail-labels", SRC_ENV, offsetof(Env, gm_labels) },
	{ "user.imap.gmail-msgid", SRC_ENV, offsetof(Env, gm_msgid) },
	{ "user.imap.gmail-thrid", SRC_ENV, offsetof(Env, gm_thrid) },
	/* Deprecated spellings of the first three. */
	{ "user.imapfs.uid", SRC_UID, 0 },
	{ "user.imapfs.uidvalidity", SRC_UIDVALIDITY, 0 },
	{ "user.imapfs.folder", SRC_FOLDER, 0 },
};

static void env_free(Env *e)
{
	g_free(e->from);
	g_free(e->to);
	g_free(e->cc);
	g_free(e->subject);
	g_free(e->date);
	g_free(e->message_id);
	g_free(e->in_reply_to);
	g_free(e->gm_labels);
	g_free(e->gm_msgid);
	g_free(e->gm_thrid);
	g_free(e);
}

FsXattr *fs_xattr_new(void)
{
	FsXattr *x = g_new0(FsXattr, 1);

	g_mutex_init(&x->lock);
	x->entries = g_hash_table_new(g_int64_hash, g_int64_equal);
	g_queue_init(&x->lru);
	return x;
}

void fs_xattr_free(FsXattr *x)
{
	if (!x)
		return;
	g_hash_table_unref(x->entries);
	g_queue_clear_full(&x->lru, (GDestroyNotify)env_free);
	g_mutex_clear(&x->lock);
	g_free(x);
}

/* ---- decoding (GMime) ---- */

static gpointer gmime_init_once(gpointer unused)
{
	g_mime_init();
	return NULL;
}

static void gmime_ready(void)
{
	static GOnce once = G_ONCE_INIT;

	g_once(&once, gmime_init_once, NULL);
}

static char *decode_text(const char *raw)
{
	if (!raw)
		return NULL;
	gmime_ready();
	return g_mime_utils_header_decode_text(NULL, raw);
}

/* An address list to "Name <a@b>, c@d", names decoded to UTF-8. */
static char *decode_addresses(const char *raw)
{
	InternetAddressList *list;
	char *s;

	if (!raw || !*raw)
		return NULL;
	gmime_ready();
	list = internet_address_list_parse(NULL, raw);
	if (!list || internet_address_list_length(list) == 0) {
		if (list)
			g_object_unref(list);
		return decode_text(raw);
	}
	s = internet_address_list_to_string(list, NULL, FALSE);
	g_object_unref(list);
	return s;
}

static Env *env_from(const ImapEnvelope *e, guint64 key)
{
	Env *env = g_new0(Env, 1);

	env->key = key;
	env->from = decode_addresses(e->from);
	env->to = decode_addresses(e->to);
	env->cc = decode_addresses(e->cc);
	env->subject = decode_text(e->subject);
	env->date = g_strdup(e->date);
	env->message_id = g_strdup(e->message_id);
	env->in_reply_to = g_strdup(e->in_reply_to);
	env->gm_labels = g_strdup(e->gm_labels);
	env->gm_msgid = g_strdup(e->gm_msgid);
	env->gm_thrid = g_strdup(e->gm_thrid);
	return env;
}

/* ---- the envelope cache ---- */

typedef struct {
	uint32_t uid, uidvalidity;
	ImapEnvelope *env;
} EnvJob;

static void env_job_free(gpointer data)
{
	EnvJob *job = data;

	imap_envelope_free(job->env);
	g_free(job);
}

static int env_job_run(ImapConn *conn, const ImapMailboxState *st, void *data,
		       GError **error)
{
	EnvJob *job = data;

	/* The folder was recreated: that message is gone. */
	if (st && st->uidvalidity != job->uidvalidity)
		return -ENOENT;
	return imap_fetch_envelope(conn, job->uid, &job->env, error);
}

/* The cached envelope of key, now the most recent, or NULL. Under
 * x->lock. */
static Env *env_lookup(FsXattr *x, guint64 key)
{
	Env *e = g_hash_table_lookup(x->entries, &key);

	if (e) { /* most recent first */
		g_queue_remove(&x->lru, e);
		g_queue_push_head(&x->lru, e);
	}
	return e;
}

static void env_insert(FsXattr *x, Env *e)
{
	Env *old = g_hash_table_lookup(x->entries, &e->key);

	if (old) {
		g_hash_table_remove(x->entries, &old->key);
		g_queue_remove(&x->lru, old);
		env_free(old);
	}
	g_hash_table_insert(x->entries, &e->key, e);
	g_queue_push_head(&x->lru, e);
	while (x->lru.length > ENV_CACHE_MAX) {
		Env *last = g_queue_pop_tail(&x->lru);

		g_hash_table_remove(x->entries, &last->key);
		env_free(last);
	}
}

/* Make sure the envelope of uid is cached: 0, -ENOENT (no such message)
 * or -EIO. */
static int env_ensure(FsMount *mnt, FsFolder *f, uint32_t folder_id,
		      uint32_t uidvalidity, uint32_t uid)
{
	FsXattr *x = mnt->xattrs;
	guint64 key = (guint64)folder_id << 32 | uid;
	g_autoptr(GError) error = NULL;
	EnvJob *job;
	bool have;
	int rc;

	g_mutex_lock(&x->lock);
	have = env_lookup(x, key) != NULL;
	g_mutex_unlock(&x->lock);
	if (have)
		return 0;
	job = g_new0(EnvJob, 1);
	job->uid = uid;
	job->uidvalidity = uidvalidity;
	rc = imap_pool_run(mnt->pool, f->raw, env_job_run, job, env_job_free,
			   &error);
	if (rc == -ETIMEDOUT)
		return -EIO; /* the pool frees job */
	if (rc == 0 && job->env) {
		Env *e = env_from(job->env, key);

		g_mutex_lock(&x->lock);
		env_insert(x, e);
		g_mutex_unlock(&x->lock);
	} else if (rc == 0 || rc == -ENOENT) {
		rc = -ENOENT;
	} else {
		g_debug("no envelope for %s UID %u: %s", f->raw, uid,
			error ? error->message : g_strerror(-rc));
		rc = -EIO;
	}
	env_job_free(job);
	return rc;
}

/* The field at off of the cached envelope (g_free), or NULL. */
static char *env_field(FsXattr *x, guint64 key, size_t off)
{
	char *v = NULL;
	Env *e;

	g_mutex_lock(&x->lock);
	e = env_lookup(x, key);
	if (e)
		v = g_strdup(*(char **)((char *)e + off));
	g_mutex_unlock(&x->lock);
	return v;
}

/* ---- what the listing knows ---- */

typedef struct {
	FsFolder *f;
	FsInoKind kind;
	uint32_t folder_id, uid, uidvalidity;
	CacheMessage m; /* name not copied */
	bool listed;    /* m is valid */
} Target;

static FsInoKind resolve(FsMount *mnt, fuse_ino_t ino, Target *t)
{
	memset(t, 0, sizeof(*t));
	t->kind =
	    fs_tree_resolve(mnt->tree, ino, &t->f, &t->folder_id, &t->uid);
	if (t->kind != FS_INO_MESSAGE)
		return t->kind;
	g_mutex_lock(&t->f->lock);
	if (t->f->listing && t->f->listing->folder_id == t->folder_id) {
		t->uidvalidity = t->f->listing->index->uidvalidity;
		if (cache_folder_index_find(t->f->listing->index, t->uid, &t->m,
					    NULL)) {
			t->m.name = NULL;
			t->listed = true;
		}
	}
	g_mutex_unlock(&t->f->lock);
	return t->kind;
}

static char *rfc3339(int64_t t)
{
	g_autoptr(GDateTime) d = g_date_time_new_from_unix_utc(t);

	return d ? g_date_time_format(d, "%Y-%m-%dT%H:%M:%SZ") : NULL;
}

/* The value of a listing attribute (g_free), or NULL when it has none. */
static char *local_value(const Target *t, Src src)
{
	switch (src) {
	case SRC_FOLDER:
		return g_strdup(t->f->raw);
	case SRC_UID:
		return g_strdup_printf("%u", t->uid);
	case SRC_UIDVALIDITY:
		return t->uidvalidity ? g_strdup_printf("%u", t->uidvalidity)
				      : NULL;
	case SRC_FLAGS:
		if (!t->listed || !(t->m.flags & CACHE_FLAG_KNOWN))
			return NULL;
		return cache_flags_to_string(t->m.flags, t->m.keywords);
	case SRC_DATE:
		return t->listed ? rfc3339(t->m.internaldate) : NULL;
	case SRC_SIZE:
		return t->listed
			   ? g_strdup_printf("%" G_GUINT64_FORMAT, t->m.size)
			   : NULL;
	case SRC_ENV:
		break;
	}
	return NULL;
}

static void reply_value(fuse_req_t req, const char *value, size_t len,
			size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

/* ---- the operations ---- */

void fs_xattr_get(fuse_req_t req, FsMount *mnt, fuse_ino_t ino,
		  const char *name, size_t size)
{
	g_autofree char *v = NULL;
	Target t;
	size_t i;
	int rc;

	/* security.*, system.posix_acl_*: asked per file by ls -l and
	 * others; answered without looking anything up. */
	for (i = 0; i < G_N_ELEMENTS(attrs); i++)
		if (strcmp(attrs[i].name, name) == 0)
			break;
	if (i == G_N_ELEMENTS(attrs)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	switch (resolve(mnt, ino, &t)) {
	case FS_INO_NONE:
		fuse_reply_err(req, ENOENT);
		return;
	case FS_INO_DIR:
		if (attrs[i].src == SRC_FOLDER && t.f->raw)
			v = g_strdup(t.f->raw);
		break;
	case FS_INO_MESSAGE:
		if (attrs[i].src != SRC_ENV) {
			v = local_value(&t, attrs[i].src);
			break;
		}
		rc = env_ensure(mnt, t.f, t.folder_id, t.uidvalidity, t.uid);
		if (rc == -EIO) {
			fuse_reply_err(req, EIO);
			return;
		}
		if (rc == 0)
			v = env_field(mnt->xattrs,
				      (guint64)t.folder_id << 32 | t.uid,
				      attrs[i].off);
		break;
	}
	if (!v) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	reply_value(req, v, strlen(v), size);
}

void fs_xattr_list(fuse_req_t req, FsMount *mnt, fuse_ino_t ino, size_t size)
{
	g_autoptr(GString) names = g_string_new(NULL);
	guint64 key;
	Target t;
	bool env;

	switch (resolve(mnt, ino, &t)) {
	case FS_INO_NONE:
		fuse_reply_err(req, ENOENT);
		return;
	case FS_INO_DIR:
		if (t.f->raw)
			g_string_append_len(names,
					    "user.imap.folder\0"
					    "user.imapfs.folder",
					    sizeof("user.imap.folder\0"
						   "user.imapfs.folder"));
		reply_value(req, names->str, names->len, size);
		return;
	case FS_INO_MESSAGE:
		break;
	}
	/* Offline, the envelope's names are left out: what the listing
	 * knows is still there. */
	env = env_ensure(mnt, t.f, t.folder_id, t.uidvalidity, t.uid) == 0;
	key = (guint64)t.folder_id << 32 | t.uid;
	for (size_t i = 0; i < G_N_ELEMENTS(attrs); i++) {
		g_autofree char *v = NULL;

		if (attrs[i].src != SRC_ENV)
			v = local_value(&t, attrs[i].src);
		else if (env)
			v = env_field(mnt->xattrs, key, attrs[i].off);
		if (v)
			g_string_append_len(names, attrs[i].name,
					    strlen(attrs[i].name) + 1);
	}
	reply_value(req, names->str, names->len, size);
}
