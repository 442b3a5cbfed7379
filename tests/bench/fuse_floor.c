/* tests/bench/fuse_floor.c: the least a FUSE file system can do to serve a
 * local directory tree, as a baseline for the benchmark (bench.py).
 *
 * It mirrors SRC read-only at MOUNTPOINT with the kernel settings imapfs
 * uses (fs/kernel-settings.h): readdirplus always, no open or flush trips,
 * kept page cache, the same entry and attribute timeouts, the same
 * multi-threaded loop. Unlike imapfs it knows the whole tree before the
 * mount, keeps every file open, and answers a read with one pread: what is
 * left is the cost of FUSE itself. A grep -r through a fresh mount of it
 * is the floor of a file system that answers reads.
 *
 * With --push it also pushes files into the page cache ahead of the
 * reader the way imapfs pushes cached bodies (fs/push.c, fs/fetch.c), with
 * nothing else to do: a readdirplus hands the files of the entries it
 * handed out before to one pusher thread, which reads each from its open
 * fd and hands it to fuse_lowlevel_notify_store(); the directory listed
 * last goes first, and a file read already is not pushed. A grep -r
 * through a fresh mount of that is the floor of imapfs's warm grep -r on
 * a fresh mount, which must also find each body in its cache and check
 * it.
 *
 * With --maildir, each Maildir folder of SRC shows the way imapfs shows a
 * folder: its subfolders, then its messages (the files of its cur/ and
 * new/) side by side, without tmp/ and dot files: the same tree to walk.
 *
 * Usage: fuse_floor [--push] [--maildir] SRC MOUNTPOINT
 *        (foreground; unmount to stop)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/kernel-settings.h"

#define MAX_READ (128u << 10)
#define PUSH_MAX_BODY (1 << 20) /* fs/push.c: larger files are read */

typedef struct {
	char *name;
	struct stat st;
	int fd;              /* files: open from the start */
	bool done;           /* --push: pushed or read (under push_lock) */
	GPtrArray *children; /* dirs: of guint ino, in readdir order */
	GHashTable *by_name; /* dirs: name -> ino */
	guint noted_to;      /* dirs, --push: entries handed to the pusher */
} Node;

static GPtrArray *nodes; /* ino - 1 -> Node */
static bool no_open;
static struct fuse_session *session;
/* --push: the files to push, front first, and the pusher. */
static bool push_mode;
static bool maildir_mode;
static GQueue push_queue = G_QUEUE_INIT;
static GMutex push_lock;
static GCond push_cond;
static bool push_stopping;
static GThread *pusher;
/* What the pushes took, and the reads that still reached us. */
static guint64 pushed_files, pushed_bytes, push_us, reads;

static Node *node(fuse_ino_t ino)
{
	if (ino < 1 || ino > nodes->len)
		return NULL;
	return g_ptr_array_index(nodes, ino - 1);
}

static guint add_node(const char *path, const char *name)
{
	Node *n = g_new0(Node, 1);

	if (lstat(path, &n->st) < 0) {
		fprintf(stderr, "fuse_floor: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	n->name = g_strdup(name);
	n->fd = -1;
	g_ptr_array_add(nodes, n);
	n->st.st_ino = nodes->len;
	if (S_ISREG(n->st.st_mode)) {
		n->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (n->fd < 0) {
			fprintf(stderr, "fuse_floor: %s: %s\n", path,
				strerror(errno));
			exit(1);
		}
	}
	return nodes->len;
}

static void add_child(Node *dir, guint child)
{
	g_ptr_array_add(dir->children, GUINT_TO_POINTER(child));
	g_hash_table_insert(dir->by_name, node(child)->name,
			    GUINT_TO_POINTER(child));
}

/* The names in path, sorted (for a stable tree), without . and .. */
static GPtrArray *names_in(const char *path)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d) {
		fprintf(stderr, "fuse_floor: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			g_ptr_array_add(names, g_strdup(de->d_name));
	closedir(d);
	g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
	return names;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --maildir: the files of path's cur/ and new/, as files of dir. */
static void add_maildir_files(const char *path, Node *dir)
{
	static const char *const subdirs[] = { "cur", "new" };

	for (size_t k = 0; k < G_N_ELEMENTS(subdirs); k++) {
		g_autofree char *sd = g_build_filename(path, subdirs[k], NULL);
		g_autoptr(GPtrArray) names = NULL;

		if (!is_dir(sd))
			continue;
		names = names_in(sd);
		for (guint i = 0; i < names->len; i++) {
			g_autofree char *f =
			    g_build_filename(sd, names->pdata[i], NULL);

			/* A folder named cur or new has its Maildir there. */
			if (!is_dir(f))
				add_child(dir, add_node(f, names->pdata[i]));
		}
	}
}

/* Is name in path a Maildir's own cur/ new/ or tmp/, and not a folder of
 * that name (whose Maildir is there too: it has a cur/ of its own)? */
static bool is_maildir_part(const char *path, const char *name)
{
	g_autofree char *nested = NULL;

	if (strcmp(name, "cur") != 0 && strcmp(name, "new") != 0 &&
	    strcmp(name, "tmp") != 0)
		return false;
	nested = g_build_filename(path, name, "cur", NULL);
	return !is_dir(nested);
}

/* The tree below path. With --maildir, a Maildir folder shows as imapfs
 * shows a folder: its subfolders, then its messages (the files of its
 * cur/ and new/); tmp/ and dot files are left out. */
static void scan(const char *path, guint ino)
{
	Node *dir = node(ino);
	g_autoptr(GPtrArray) names = names_in(path);

	dir->children = g_ptr_array_new();
	dir->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	for (guint i = 0; i < names->len; i++) {
		const char *name = names->pdata[i];
		g_autofree char *sub = g_build_filename(path, name, NULL);
		guint child;

		if (maildir_mode &&
		    (name[0] == '.' || is_maildir_part(path, name)))
			continue;
		if (maildir_mode && !is_dir(sub))
			continue;
		child = add_node(sub, name);
		add_child(dir, child);
		if (S_ISDIR(node(child)->st.st_mode))
			scan(sub, child);
	}
	if (maildir_mode)
		add_maildir_files(path, dir);
}

static void fill_entry(guint ino, struct fuse_entry_param *e)
{
	Node *n = node(ino);
	double t = S_ISDIR(n->st.st_mode) ? FS_DIR_TIMEOUT : FS_MESSAGE_TIMEOUT;

	memset(e, 0, sizeof *e);
	e->ino = ino;
	e->attr = n->st;
	e->attr_timeout = t;
	e->entry_timeout = t;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	no_open = fs_kernel_settings_apply(conn);
}

static gpointer push_main(gpointer data)
{
	static char buf[PUSH_MAX_BODY];

	(void)data;
	g_mutex_lock(&push_lock);
	for (;;) {
		guint ino;
		Node *n;
		struct fuse_bufvec bv;
		gint64 t;
		ssize_t got;
		int rc;

		while (!push_stopping && g_queue_is_empty(&push_queue))
			g_cond_wait(&push_cond, &push_lock);
		if (push_stopping)
			break;
		ino = GPOINTER_TO_UINT(g_queue_pop_head(&push_queue));
		n = node(ino);
		if (n->done)
			continue;
		n->done = true;
		g_mutex_unlock(&push_lock);
		bv =
		    (struct fuse_bufvec)FUSE_BUFVEC_INIT((size_t)n->st.st_size);
		got = pread(n->fd, buf, (size_t)n->st.st_size, 0);
		if (got != n->st.st_size) {
			g_mutex_lock(&push_lock);
			continue;
		}
		bv.buf[0].mem = buf;
		t = g_get_monotonic_time();
		rc = fuse_lowlevel_notify_store(session, ino, 0, &bv,
						FUSE_BUF_NO_SPLICE);
		t = g_get_monotonic_time() - t;
		g_mutex_lock(&push_lock);
		if (rc == 0) {
			pushed_files++;
			pushed_bytes += (guint64)n->st.st_size;
			push_us += (guint64)t;
		}
	}
	g_mutex_unlock(&push_lock);
	return NULL;
}

/* Entries [from, to) of dir went out and the kernel took them in: push
 * their files, before older work. */
static void push_entries(Node *dir, guint from, guint to)
{
	GList *after = NULL;

	g_mutex_lock(&push_lock);
	for (guint i = from; i < to && i < dir->children->len; i++) {
		guint ino = GPOINTER_TO_UINT(dir->children->pdata[i]);
		Node *n = node(ino);

		if (n->fd < 0 || n->done || n->st.st_size == 0 ||
		    n->st.st_size > PUSH_MAX_BODY)
			continue;
		if (after) {
			g_queue_insert_after(&push_queue, after,
					     GUINT_TO_POINTER(ino));
			after = after->next;
		} else {
			g_queue_push_head(&push_queue, GUINT_TO_POINTER(ino));
			after = push_queue.head;
		}
	}
	g_cond_signal(&push_cond);
	g_mutex_unlock(&push_lock);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	Node *dir = node(parent);
	struct fuse_entry_param e;
	gpointer child;

	if (!dir || !dir->by_name ||
	    !g_hash_table_lookup_extended(dir->by_name, name, NULL, &child)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_entry(GPOINTER_TO_UINT(child), &e);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	Node *n = node(ino);

	(void)fi;
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &n->st,
			S_ISDIR(n->st.st_mode) ? FS_DIR_TIMEOUT
					       : FS_MESSAGE_TIMEOUT);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, bool plus)
{
	Node *dir = node(ino);
	char *buf, *p;
	size_t left = size;

	if (!dir || !dir->children) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* The kernel asks for more once it took in what came before. */
	if (push_mode && plus && off > 0)
		push_entries(dir, dir->noted_to, (guint)off);
	if (plus && (guint)off > dir->noted_to)
		dir->noted_to = (guint)off;
	buf = p = g_malloc(size);
	for (guint i = (guint)off; i < dir->children->len; i++) {
		guint child = GPOINTER_TO_UINT(dir->children->pdata[i]);
		Node *c = node(child);
		size_t len;

		if (plus) {
			struct fuse_entry_param e;

			fill_entry(child, &e);
			len = fuse_add_direntry_plus(req, p, left, c->name, &e,
						     i + 1);
		} else {
			len = fuse_add_direntry(req, p, left, c->name, &c->st,
						i + 1);
		}
		if (len > left)
			break;
		p += len;
		left -= len;
	}
	fuse_reply_buf(req, buf, size - left);
	g_free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	readdir_common(req, ino, size, off, true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	static __thread char buf[MAX_READ];
	Node *n = node(ino);
	ssize_t got;

	(void)fi;
	if (!n || n->fd < 0) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
	if (push_mode && off == 0) {
		g_mutex_lock(&push_lock);
		n->done = true;
		g_mutex_unlock(&push_lock);
	}
	if (size > sizeof buf)
		size = sizeof buf;
	got = pread(n->fd, buf, size, off);
	if (got < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)got);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.flush = op_flush,
	.read = op_read,
};

int main(int argc, char **argv)
{
	static char opt_o[] = "-o", opt_ro[] = "ro,fsname=fuse_floor";
	char *fargv[] = { argv[0], opt_o, opt_ro, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *loop;
	struct fuse_session *se;
	struct rlimit rl;
	const char *src = NULL, *mountpoint = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--push") == 0)
			push_mode = true;
		else if (strcmp(argv[i], "--maildir") == 0)
			maildir_mode = true;
		else if (!src)
			src = argv[i];
		else if (!mountpoint)
			mountpoint = argv[i];
		else
			src = mountpoint = NULL, i = argc;
	}
	if (!src || !mountpoint) {
		fprintf(stderr,
			"usage: %s [--push] [--maildir] SRC MOUNTPOINT\n",
			argv[0]);
		return 2;
	}
	/* One open file per message. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	nodes = g_ptr_array_new();
	scan(src, add_node(src, ""));
	se = fuse_session_new(&args, &ops, sizeof ops, NULL);
	if (!se || fuse_session_mount(se, mountpoint) != 0)
		return 1;
	fuse_set_signal_handlers(se);
	session = se;
	if (push_mode)
		pusher = g_thread_new("push", push_main, NULL);
	/* The loop imapfs runs (fs/main.c). */
	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(loop, 32);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	if (pusher) {
		g_mutex_lock(&push_lock);
		push_stopping = true;
		g_cond_broadcast(&push_cond);
		g_mutex_unlock(&push_lock);
		g_thread_join(pusher);
		fprintf(stderr,
			"fuse_floor: pushed %" G_GUINT64_FORMAT
			" files (%" G_GUINT64_FORMAT
			" bytes) in %" G_GUINT64_FORMAT
			" us of notify_store; %" G_GUINT64_FORMAT " reads\n",
			pushed_files, pushed_bytes, push_us, reads);
	}
	fuse_remove_signal_handlers(se);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	return rc < 0 ? 1 : 0;
}
