/* fs/search.c: server-side search as directories (see search.h).
 *
 * Ownership: FsSearch owns every node (the .search directories and the
 * queries made in them) for the life of the mount, so an inode number the
 * kernel holds always names the same thing; nodes are never freed before
 * fs_search_free(). A query node owns its slots (one per message it ever
 * matched: a link's inode number and target, fixed once made) and its
 * current results, a reference-counted snapshot that open directory
 * handles share.
 *
 * Locking: s->lock guards the node table, the .search children, every
 * node's results pointer and slots, the change counters and the open
 * handles; it is never held across a server round trip or a sync. A
 * node's run_lock makes concurrent users of one query wait for one search
 * instead of each sending their own; it is taken before s->lock.
 *
 * Invariants: a result is fresh while it is younger than RESULT_TTL_US and
 * no folder it covers changed since it was made (the change counters are
 * sampled once the results are complete).
 */
#include "fs/search.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/layout.h"
#include "fs/maildir.h"
#include "fs/names.h"
#include "fs/ops.h"
#include "fs/sync.h"
#include "imap/pool.h"
#include "imap/search-run.h"

#define DOT_NAME ".search"
#define INO_BIT ((fuse_ino_t)1 << 63)
#define MAX_NODES 100000u
#define RESULT_TTL_US (5 * G_USEC_PER_SEC)
#define QUERY_TIMEOUT 1.0         /* entries and attributes of queries, links */
#define DOT_TIMEOUT 10.0          /* of the .search directories */
#define LINK_ATTR_TIMEOUT 86400.0 /* a link's target never changes */
#define SYNC_THREADS 4            /* listings made at once for one search */

typedef struct {
	char *target; /* relative path to the message file */
	int64_t mtime;
} Slot;

typedef struct {
	char *name;
	uint32_t slot; /* index in the node's slots */
} Entry;

typedef struct {
	gint refs;
	gint64 made_us;      /* monotonic time of the search */
	guint64 gen;         /* change counter of the scope, sampled after */
	GArray *entries;     /* Entry, in folder order, then by UID */
	GHashTable *by_name; /* name -> Entry* (entries never grows later) */
} Results;

typedef struct Node Node;
struct Node {
	uint32_t id; /* 1.. ; inode number (INO_BIT | id << 32) */
	bool dot;    /* a .search directory, else a query */
	FsFolder *scope;
	Node *parent; /* a query's .search */
	char *name;   /* a query's name, as looked up */
	char *query;  /* a query's text, %XX decoded */
	/* .search: under s->lock */
	GPtrArray *queries;
	GHashTable *by_name;
	/* query */
	GMutex run_lock;
	Results *results;    /* under s->lock; NULL until searched */
	GArray *slots;       /* Slot; under s->lock; only grows */
	GHashTable *slot_of; /* folder_id << 32 | uid -> slot + 1 */
	int64_t made_wall;   /* mtime of the directory */
};

typedef struct {
	Node *node;
	Results *results;   /* query: the snapshot listed */
	GPtrArray *queries; /* .search: Node*, snapshot */
} Handle;

struct FsSearch {
	FsMount *mnt;
	GMutex lock;
	GPtrArray *nodes;    /* Node*, index id - 1 */
	GHashTable *dots;    /* FsFolder* -> Node* */
	GHashTable *changes; /* FsFolder* -> count of changes */
	guint64 all_changes; /* changes to any folder */
	GHashTable *handles; /* Handle*, open */
};

/* ---- nodes, results, slots ---- */

static void results_unref(Results *r)
{
	if (!r || !g_atomic_int_dec_and_test(&r->refs))
		return;
	for (guint i = 0; i < r->entries->len; i++)
		g_free(g_array_index(r->entries, Entry, i).name);
	g_array_unref(r->entries);
	g_hash_table_unref(r->by_name);
	g_free(r);
}

static Results *results_ref(Results *r)
{
	if (r)
		g_atomic_int_inc(&r->refs);
	return r;
}

static Node *node_new(bool dot, FsFolder *scope)
{
	Node *n = g_new0(Node, 1);

	n->dot = dot;
	n->scope = scope;
	if (dot) {
		n->queries = g_ptr_array_new();
		n->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	} else {
		g_mutex_init(&n->run_lock);
		n->slots = g_array_new(FALSE, FALSE, sizeof(Slot));
		n->slot_of = g_hash_table_new(g_direct_hash, g_direct_equal);
	}
	return n;
}

static void node_free(Node *n)
{
	if (n->dot) {
		g_ptr_array_unref(n->queries);
		g_hash_table_unref(n->by_name);
	} else {
		results_unref(n->results);
		for (guint i = 0; i < n->slots->len; i++)
			g_free(g_array_index(n->slots, Slot, i).target);
		g_array_unref(n->slots);
		g_hash_table_unref(n->slot_of);
		g_mutex_clear(&n->run_lock);
	}
	g_free(n->name);
	g_free(n->query);
	g_free(n);
}

/* Give n an id. Under s->lock. -ENOSPC past MAX_NODES. */
static int publish(FsSearch *s, Node *n)
{
	if (s->nodes->len >= MAX_NODES)
		return -ENOSPC;
	g_ptr_array_add(s->nodes, n);
	n->id = s->nodes->len;
	return 0;
}

static fuse_ino_t node_ino(const Node *n)
{
	return INO_BIT | (fuse_ino_t)n->id << 32;
}

bool fs_search_owns(fuse_ino_t ino)
{
	/* Top bits 11 are messages in several folders (fs/links.h) and the
	 * layout's own inodes (fs/layout.h). */
	return (ino >> 62) == 2;
}

/* The node and slot (0: the directory) ino names, or NULL. */
static Node *resolve(FsSearch *s, fuse_ino_t ino, uint32_t *slot)
{
	uint32_t id = (uint32_t)((ino & ~INO_BIT) >> 32);
	Node *n = NULL;

	*slot = (uint32_t)ino;
	g_mutex_lock(&s->lock);
	if (fs_search_owns(ino) && id >= 1 && id <= s->nodes->len)
		n = s->nodes->pdata[id - 1];
	if (n && *slot && (n->dot || *slot > n->slots->len))
		n = NULL;
	g_mutex_unlock(&s->lock);
	return n;
}

static guint64 changes_of(FsSearch *s, FsFolder *scope)
{
	if (!scope->parent)
		return s->all_changes;
	return (guint64)GPOINTER_TO_SIZE(
	    g_hash_table_lookup(s->changes, scope));
}

void fs_search_folder_changed(FsSearch *s, FsFolder *f)
{
	guint64 n;

	if (!s)
		return;
	g_mutex_lock(&s->lock);
	n = (guint64)GPOINTER_TO_SIZE(g_hash_table_lookup(s->changes, f));
	g_hash_table_insert(s->changes, f, GSIZE_TO_POINTER(n + 1));
	s->all_changes++;
	g_mutex_unlock(&s->lock);
}

static bool fresh(FsSearch *s, Node *n)
{
	Results *r = n->results;

	return r && g_get_monotonic_time() - r->made_us < RESULT_TTL_US &&
	       changes_of(s, n->scope) == r->gen;
}

/* The slot of (folder_id, uid) in n, made on first use. Under s->lock. */
static uint32_t slot_for(Node *n, uint32_t folder_id, uint32_t uid,
			 const char *target, int64_t mtime)
{
	gpointer key = (gpointer)(uintptr_t)((guint64)folder_id << 32 | uid);
	guint have = GPOINTER_TO_UINT(g_hash_table_lookup(n->slot_of, key));
	Slot slot = { g_strdup(target), mtime };

	if (have) {
		g_free(slot.target);
		return have - 1;
	}
	g_array_append_val(n->slots, slot);
	g_hash_table_insert(n->slot_of, key, GUINT_TO_POINTER(n->slots->len));
	return n->slots->len - 1;
}

/* ---- attributes ---- */

/* Under s->lock. */
static void dir_attr(FsSearch *s, Node *n, struct stat *st)
{
	FsMount *mnt = s->mnt;

	memset(st, 0, sizeof(*st));
	st->st_ino = node_ino(n);
	st->st_mode = S_IFDIR | mnt->dir_mode;
	st->st_nlink = 2 + (n->dot ? n->queries->len : 0);
	st->st_uid = mnt->uid;
	st->st_gid = mnt->gid;
	st->st_size = 4096;
	st->st_blksize = 4096;
	st->st_mtime = st->st_ctime = st->st_atime = n->made_wall;
}

/* Under s->lock. */
static void link_attr(FsSearch *s, Node *n, uint32_t slot, struct stat *st)
{
	const Slot *sl = &g_array_index(n->slots, Slot, slot);

	memset(st, 0, sizeof(*st));
	st->st_ino = node_ino(n) | (slot + 1);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_uid = s->mnt->uid;
	st->st_gid = s->mnt->gid;
	st->st_size = (off_t)strlen(sl->target);
	st->st_blksize = 4096;
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)sl->mtime;
}

static void reply_dir(fuse_req_t req, FsSearch *s, Node *n, double timeout)
{
	struct fuse_entry_param e = { 0 };

	e.ino = node_ino(n);
	e.entry_timeout = e.attr_timeout = timeout;
	g_mutex_lock(&s->lock);
	dir_attr(s, n, &e.attr);
	g_mutex_unlock(&s->lock);
	fuse_reply_entry(req, &e);
}

/* ---- running a search ---- */

typedef struct {
	char *query;
	ImapSearchTarget *targets;
	size_t n;
} SearchJob;

static void search_job_free(gpointer data)
{
	SearchJob *job = data;

	for (size_t i = 0; i < job->n; i++) {
		g_free(job->targets[i].mailbox);
		g_array_unref(job->targets[i].uids);
	}
	g_free(job->targets);
	g_free(job->query);
	g_free(job);
}

static int search_job_run(ImapConn *conn, const ImapMailboxState *unused,
			  void *data, GError **error)
{
	SearchJob *job = data;

	return imap_search_run(conn, job->query, job->targets, job->n, error);
}

static void add_folder(FsFolder *f, void *data)
{
	GPtrArray *folders = data;

	if (f->selectable && !f->gone && f->raw)
		g_ptr_array_add(folders, f);
}

/* The relative path from a query directory in scope to f. */
static char *target_prefix(FsSearch *s, FsFolder *scope, FsFolder *f)
{
	GString *path = g_string_new(NULL);
	char buf[FS_NAME_MAX + 1];

	if (!scope->parent) {
		for (FsFolder *p = f; p && p->parent; p = p->parent) {
			g_string_prepend_c(path, '/');
			g_string_prepend(
			    path, s->mnt->layout->maildir
				      ? fs_maildir_child_name(p->name, buf)
				      : p->name);
		}
	}
	g_string_prepend(path, "../../");
	return g_string_free(path, FALSE);
}

/* One match before naming: where it is and what it is called. */
typedef struct {
	FsFolder *folder;
	char *name;
	uint32_t slot;
} Match;

static bool listing_has(FsListing *l, const ImapSearchTarget *t)
{
	if (!l || (t->uidvalidity && l->index->uidvalidity != t->uidvalidity))
		return false;
	for (guint i = 0; i < t->uids->len; i++)
		if (!cache_folder_index_find(
			l->index, g_array_index(t->uids, uint32_t, i), NULL,
			NULL))
			return false;
	return true;
}

/* Make f's listing hold the matches of t: a folder never listed is
 * listed, one that lacks a match (new mail) is brought up to date. */
static void make_current(FsSearch *s, FsFolder *f, const ImapSearchTarget *t)
{
	FsListing *l = fs_folder_get_listing(f);
	bool have = l != NULL, ok = listing_has(l, t);

	fs_listing_unref(l);
	if (!ok)
		fs_sync_folder(s->mnt, f,
			       have ? FS_SYNC_NOW : FS_SYNC_IF_MISSING);
}

typedef struct {
	FsSearch *s;
	FsFolder *f;
	const ImapSearchTarget *t;
} Listing;

static void list_one(gpointer data, gpointer unused)
{
	Listing *job = data;

	make_current(job->s, job->f, job->t);
	g_free(job);
}

/* make_current() for every folder with matches, SYNC_THREADS at once:
 * an account-wide search in a fresh mount may need many listings. */
static void make_all_current(FsSearch *s, GPtrArray *folders,
			     const SearchJob *job)
{
	GThreadPool *tp = NULL;

	for (size_t i = 0; i < job->n; i++) {
		const ImapSearchTarget *t = &job->targets[i];
		Listing *one;

		if (t->status < 0 || t->uids->len == 0)
			continue;
		if (job->n == 1) {
			make_current(s, folders->pdata[i], t);
			break;
		}
		if (!tp)
			tp = g_thread_pool_new(list_one, NULL, SYNC_THREADS,
					       FALSE, NULL);
		one = g_new0(Listing, 1);
		*one = (Listing){ s, folders->pdata[i], t };
		g_thread_pool_push(tp, one, NULL);
	}
	if (tp)
		g_thread_pool_free(tp, FALSE, TRUE);
}

/* The matches of target t in folder f, as slots of n. */
static void collect(FsSearch *s, Node *n, FsFolder *f,
		    const ImapSearchTarget *t, GArray *matches)
{
	g_autofree char *prefix = target_prefix(s, n->scope, f);
	FsListing *l = fs_folder_get_listing(f);

	if (!l)
		return;
	for (guint i = 0; i < t->uids->len; i++) {
		uint32_t uid = g_array_index(t->uids, uint32_t, i);
		CacheMessage mm;
		const CacheMessage *m =
		    cache_folder_index_find(l->index, uid, &mm, NULL) ? &mm
								      : NULL;
		g_autofree char *target = NULL;
		char buf[FS_NAME_MAX + 1];
		Match match = { f, NULL, 0 };

		if (!m)
			continue; /* expunged meanwhile */
		/* the entry the layout shows (a directory in parts) */
		target = g_strconcat(prefix, s->mnt->layout->entry_name(m, buf),
				     NULL);
		if (s->mnt->layout->maildir) {
			g_free(target);
			target = g_strconcat(
			    prefix, "cur/",
			    fs_maildir_name(m, l->index->uidvalidity, buf),
			    NULL);
		}
		match.name = g_strdup(m->name);
		g_mutex_lock(&s->lock);
		match.slot =
		    slot_for(n, l->folder_id, uid, target, m->internaldate);
		g_mutex_unlock(&s->lock);
		g_array_append_val(matches, match);
	}
	fs_listing_unref(l);
}

/* A second match of the same name from another folder: "NAME~HASH.eml",
 * HASH from the folder's server name, cut to stay within 255 bytes. */
static char *other_name(const Match *m)
{
	g_autofree char *base = g_strdup(m->name);
	size_t len = strlen(base);

	if (g_str_has_suffix(base, ".eml"))
		base[len -= 4] = '\0';
	while (len > 255 - 13) {
		char *prev = g_utf8_find_prev_char(base, base + len);

		len = prev ? (size_t)(prev - base) : 0;
		base[len] = '\0';
	}
	return g_strdup_printf("%s~%08x.eml", base, g_str_hash(m->folder->raw));
}

static Results *results_new(GArray *matches)
{
	Results *r = g_new0(Results, 1);

	r->refs = 1;
	r->made_us = g_get_monotonic_time();
	r->entries =
	    g_array_sized_new(FALSE, FALSE, sizeof(Entry), matches->len);
	r->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < matches->len; i++) {
		Match *m = &g_array_index(matches, Match, i);
		Entry e = { g_steal_pointer(&m->name), m->slot };

		if (g_hash_table_contains(r->by_name, e.name)) {
			char *other = other_name(&(Match){ m->folder, e.name });

			g_free(e.name);
			e.name = other;
		}
		if (g_hash_table_contains(r->by_name, e.name)) {
			g_free(e.name); /* the same message twice */
			continue;
		}
		g_array_append_val(r->entries, e);
		g_hash_table_insert(r->by_name, e.name, GUINT_TO_POINTER(1));
	}
	/* Pointers into entries only now that it is complete. */
	for (guint i = 0; i < r->entries->len; i++) {
		Entry *e = &g_array_index(r->entries, Entry, i);

		g_hash_table_insert(r->by_name, e->name, e);
	}
	return r;
}

static SearchJob *job_for(Node *n, GPtrArray *folders)
{
	SearchJob *job = g_new0(SearchJob, 1);

	job->query = g_strdup(n->query);
	job->n = folders->len;
	job->targets = g_new0(ImapSearchTarget, folders->len);
	for (guint i = 0; i < folders->len; i++) {
		job->targets[i].mailbox =
		    g_strdup(((FsFolder *)folders->pdata[i])->raw);
		job->targets[i].uids =
		    g_array_new(FALSE, FALSE, sizeof(uint32_t));
	}
	return job;
}

static int search_failed(const Node *n, int rc, const GError *error)
{
	const char *why = error ? error->message : g_strerror(-rc);

	if (rc == -EINVAL) {
		/* The one line a user needs: the query and the answer. */
		g_message("search \"%s\" failed: %s", n->query, why);
		return -EINVAL;
	}
	g_debug("search \"%s\" failed: %s", n->query, why);
	return -EIO;
}

/* Search n's scope on the server and install the results. 0 or -errno
 * (-EINVAL: the query is bad or the server refused it). */
static int run_search(FsSearch *s, Node *n)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) folders = g_ptr_array_new();
	g_autoptr(GArray) matches = g_array_new(FALSE, FALSE, sizeof(Match));
	SearchJob *job;
	Results *r, *old;
	int rc;

	if (n->scope->parent)
		add_folder(n->scope, folders);
	else
		fs_tree_foreach(s->mnt->tree, add_folder, folders);
	job = job_for(n, folders);
	g_debug("search \"%s\" in %u folders", n->query, folders->len);
	/* One folder: named, so that the pool picks a connection that has
	 * it selected (the one that listed it) and the search is one round
	 * trip; many: the job EXAMINEs each itself, pipelined. */
	rc = imap_pool_run(s->mnt->pool,
			   n->scope->parent && folders->len == 1 ? n->scope->raw
								 : NULL,
			   search_job_run, job, search_job_free, &error);
	if (rc == -ETIMEDOUT)
		job = NULL; /* the pool frees it */
	if (rc < 0) {
		if (job)
			search_job_free(job);
		return search_failed(n, rc, error);
	}
	make_all_current(s, folders, job);
	for (size_t i = 0; i < job->n; i++)
		if (job->targets[i].status == 0 && job->targets[i].uids->len)
			collect(s, n, folders->pdata[i], &job->targets[i],
				matches);
	search_job_free(job);
	r = results_new(matches);
	for (guint i = 0; i < matches->len; i++)
		g_free(g_array_index(matches, Match, i).name);
	g_mutex_lock(&s->lock);
	r->gen = changes_of(s, n->scope);
	old = n->results;
	n->results = r;
	n->made_wall = g_get_real_time() / G_USEC_PER_SEC;
	g_mutex_unlock(&s->lock);
	results_unref(old);
	return 0;
}

/* Make n's results fresh: search again when they are not. */
static int refresh(FsSearch *s, Node *n)
{
	bool ok;
	int rc = 0;

	g_mutex_lock(&n->run_lock);
	g_mutex_lock(&s->lock);
	ok = fresh(s, n);
	g_mutex_unlock(&s->lock);
	if (!ok)
		rc = run_search(s, n);
	/* Offline: the last results, like the rest of the mount. */
	if (rc == -EIO && n->results)
		rc = 0;
	g_mutex_unlock(&n->run_lock);
	return rc;
}

/* ---- lookups ---- */

/* name with "%XX" decoded (a '%' without two hex digits stays), or NULL
 * for "%00". */
static char *decode_query(const char *name)
{
	GString *out = g_string_new(NULL);

	for (const char *p = name; *p; p++) {
		int hi, lo;

		if (*p == '%' && (hi = g_ascii_xdigit_value(p[1])) >= 0 &&
		    (lo = g_ascii_xdigit_value(p[2])) >= 0) {
			if (hi == 0 && lo == 0) {
				g_string_free(out, TRUE);
				return NULL;
			}
			g_string_append_c(out, (char)(hi << 4 | lo));
			p += 2;
			continue;
		}
		g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}

bool fs_search_lookup_dot(fuse_req_t req, FsSearch *s, FsFolder *f,
			  const char *name)
{
	Node *n;
	int rc = 0;

	if (!s || strcmp(name, DOT_NAME) != 0 || (f->parent && !f->selectable))
		return false;
	g_mutex_lock(&s->lock);
	n = g_hash_table_lookup(s->dots, f);
	if (!n) {
		n = node_new(true, f);
		n->made_wall = g_get_real_time() / G_USEC_PER_SEC;
		rc = publish(s, n);
		if (rc == 0)
			g_hash_table_insert(s->dots, f, n);
	}
	g_mutex_unlock(&s->lock);
	if (rc < 0) {
		node_free(n);
		fuse_reply_err(req, -rc);
		return true;
	}
	reply_dir(req, s, n, DOT_TIMEOUT);
	return true;
}

/* A query named name in the .search directory dot: made and searched on
 * first use, searched again when its results are stale. */
static void lookup_query(fuse_req_t req, FsSearch *s, Node *dot,
			 const char *name)
{
	Node *q, *had;
	char *query;
	int rc;

	if (name[0] == '.') {
		/* Probes for dot files (".hidden", ".git") start nothing. */
		fuse_reply_err(req, ENOENT);
		return;
	}
	g_mutex_lock(&s->lock);
	q = g_hash_table_lookup(dot->by_name, name);
	g_mutex_unlock(&s->lock);
	if (q) {
		rc = refresh(s, q);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			reply_dir(req, s, q, QUERY_TIMEOUT);
		return;
	}
	query = decode_query(name);
	if (!query) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	q = node_new(false, dot->scope);
	q->parent = dot;
	q->name = g_strdup(name);
	q->query = query;
	rc = run_search(s, q);
	g_mutex_lock(&s->lock);
	had = g_hash_table_lookup(dot->by_name, name);
	if (rc == 0 && !had && (rc = publish(s, q)) == 0) {
		g_ptr_array_add(dot->queries, q);
		g_hash_table_insert(dot->by_name, q->name, q);
	}
	g_mutex_unlock(&s->lock);
	if (rc < 0 || had)
		node_free(q); /* failed, or another lookup made it first */
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		reply_dir(req, s, had ? had : q, QUERY_TIMEOUT);
}

/* A link in query q, from its current results. */
static void lookup_link(fuse_req_t req, FsSearch *s, Node *q, const char *name)
{
	struct fuse_entry_param e = { 0 };
	const Entry *entry = NULL;

	g_mutex_lock(&s->lock);
	if (q->results)
		entry = g_hash_table_lookup(q->results->by_name, name);
	if (entry) {
		e.ino = node_ino(q) | (entry->slot + 1);
		e.entry_timeout = QUERY_TIMEOUT;
		e.attr_timeout = LINK_ATTR_TIMEOUT;
		link_attr(s, q, entry->slot, &e.attr);
	}
	g_mutex_unlock(&s->lock);
	if (entry)
		fuse_reply_entry(req, &e);
	else
		fuse_reply_err(req, ENOENT);
}

void fs_search_lookup(fuse_req_t req, FsSearch *s, fuse_ino_t parent,
		      const char *name)
{
	uint32_t slot;
	Node *n = resolve(s, parent, &slot);

	if (!n || slot)
		fuse_reply_err(req, n ? ENOTDIR : ENOENT);
	else if (n->dot)
		lookup_query(req, s, n, name);
	else
		lookup_link(req, s, n, name);
}

void fs_search_getattr(fuse_req_t req, FsSearch *s, fuse_ino_t ino)
{
	uint32_t slot;
	Node *n = resolve(s, ino, &slot);
	struct stat st;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	g_mutex_lock(&s->lock);
	if (slot)
		link_attr(s, n, slot - 1, &st);
	else
		dir_attr(s, n, &st);
	g_mutex_unlock(&s->lock);
	fuse_reply_attr(req, &st,
			slot     ? LINK_ATTR_TIMEOUT
			: n->dot ? DOT_TIMEOUT
				 : QUERY_TIMEOUT);
}

void fs_search_readlink(fuse_req_t req, FsSearch *s, fuse_ino_t ino)
{
	uint32_t slot;
	Node *n = resolve(s, ino, &slot);
	g_autofree char *target = NULL;

	if (!n || !slot) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	g_mutex_lock(&s->lock);
	target = g_strdup(g_array_index(n->slots, Slot, slot - 1).target);
	g_mutex_unlock(&s->lock);
	fuse_reply_readlink(req, target);
}

/* ---- directories ---- */

static void handle_free(gpointer data)
{
	Handle *h = data;

	results_unref(h->results);
	if (h->queries)
		g_ptr_array_unref(h->queries);
	g_free(h);
}

void fs_search_opendir(fuse_req_t req, FsSearch *s, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	uint32_t slot;
	Node *n = resolve(s, ino, &slot);
	Handle *h;
	int rc;

	if (!n || slot) {
		fuse_reply_err(req, n ? ENOTDIR : ENOENT);
		return;
	}
	/* Opening a query directory is what ls does: search again when the
	 * results are stale, before listing. */
	if (!n->dot && (rc = refresh(s, n)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	h = g_new0(Handle, 1);
	h->node = n;
	g_mutex_lock(&s->lock);
	if (n->dot)
		h->queries = g_ptr_array_copy(n->queries, NULL, NULL);
	else
		h->results = results_ref(n->results);
	g_hash_table_add(s->handles, h);
	g_mutex_unlock(&s->lock);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		fs_search_releasedir(NULL, s, fi);
}

void fs_search_releasedir(fuse_req_t req, FsSearch *s,
			  struct fuse_file_info *fi)
{
	Handle *h = (Handle *)(uintptr_t)fi->fh;

	if (h) {
		g_mutex_lock(&s->lock);
		g_hash_table_remove(s->handles, h);
		g_mutex_unlock(&s->lock);
	}
	if (req)
		fuse_reply_err(req, 0);
}

/* Entry i of h's directory into name and e. False past the end. Under
 * s->lock. */
static bool dir_item(FsSearch *s, Handle *h, size_t i, const char **name,
		     struct fuse_entry_param *e)
{
	Node *n = h->node;

	memset(e, 0, sizeof(*e));
	if (i < 2) {
		*name = i == 0 ? "." : "..";
		e->attr.st_mode = S_IFDIR;
		e->attr.st_ino = i == 0   ? node_ino(n)
				 : n->dot ? fs_tree_dir_ino(n->scope)
					  : node_ino(n->parent);
		return true;
	}
	i -= 2;
	if (n->dot) {
		Node *q;

		if (i >= h->queries->len)
			return false;
		q = h->queries->pdata[i];
		*name = q->name;
		e->ino = node_ino(q);
		e->entry_timeout = e->attr_timeout = QUERY_TIMEOUT;
		dir_attr(s, q, &e->attr);
		return true;
	}
	if (!h->results || i >= h->results->entries->len)
		return false;
	{
		const Entry *en = &g_array_index(h->results->entries, Entry, i);

		*name = en->name;
		e->ino = node_ino(n) | (en->slot + 1);
		e->entry_timeout = QUERY_TIMEOUT;
		e->attr_timeout = LINK_ATTR_TIMEOUT;
		link_attr(s, n, en->slot, &e->attr);
	}
	return true;
}

void fs_search_readdir(fuse_req_t req, FsSearch *s, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	Handle *h = (Handle *)(uintptr_t)fi->fh;
	g_autofree char *buf = g_malloc(size);
	struct fuse_entry_param e;
	const char *name;
	size_t used = 0;

	g_mutex_lock(&s->lock);
	for (size_t i = (size_t)off; dir_item(s, h, i, &name, &e); i++) {
		if (!fs_ops_add_entry(req, buf, size, &used, name, &e,
				      (off_t)(i + 1), plus))
			break;
	}
	g_mutex_unlock(&s->lock);
	fuse_reply_buf(req, buf, used);
}

/* ---- life ---- */

FsSearch *fs_search_new(FsMount *mnt)
{
	FsSearch *s = g_new0(FsSearch, 1);

	s->mnt = mnt;
	g_mutex_init(&s->lock);
	s->nodes = g_ptr_array_new_with_free_func((GDestroyNotify)node_free);
	s->dots = g_hash_table_new(g_direct_hash, g_direct_equal);
	s->changes = g_hash_table_new(g_direct_hash, g_direct_equal);
	s->handles = g_hash_table_new_full(g_direct_hash, g_direct_equal,
					   handle_free, NULL);
	return s;
}

void fs_search_free(FsSearch *s)
{
	if (!s)
		return;
	g_hash_table_unref(s->handles);
	g_hash_table_unref(s->dots);
	g_hash_table_unref(s->changes);
	g_ptr_array_unref(s->nodes);
	g_mutex_clear(&s->lock);
	g_free(s);
}
