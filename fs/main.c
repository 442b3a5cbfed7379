/* fs/main.c: start-up and shutdown of the imapfs daemon.
 *
 * Order matters: everything that can fail for a reason the user must see
 * (options, password, cache, connection, login, folder list) happens
 * before the mount, in the foreground, so a failure prints one line and
 * leaves no mount behind (and no cache of an account that never mounted).
 * A server that cannot be reached at all is the exception when an earlier
 * mount left the folder list: the mount starts offline from the cache
 * (mount_offline()), and the pool goes online by itself. Threads (pool,
 * invalidation) are started only after fuse_daemonize(), because fork() keeps
 * only the calling thread.
 *
 * Shutdown runs in one order, and each step joins its threads before the
 * next begins, so nothing runs when main() returns:
 *  0. on SIGTERM or SIGINT, fs/stop.c first stops the invalidation and
 *     push threads while the workers still answer requests, and only
 *     then ends the loop (a notification waits for any page that a
 *     request in flight holds locked);
 *  1. the FUSE loop returns once its workers are joined; the directory
 *     handles the kernel never released are freed;
 *  2. the watcher's IDLE and refresh threads stop;
 *  3. the background pools finish queued listing saves (checks are
 *     dropped);
 *  4. unmount; then the invalidation and push threads stop, if step 0
 *     did not stop them already;
 *  5. the session is destroyed (op_destroy saves dirty listings when no
 *     DESTROY came, after a signal);
 *  6. listings still dirty are saved; the IMAP pool stops: queued jobs
 *     fail with ESHUTDOWN, running ones end (bounded by the timeout),
 *     its threads are joined, and prefetch jobs free their data, which
 *     may still touch the tree, the cache and the push queue (which
 *     drops what comes after its stop);
 *  7. the tree, the tables and the cache are freed.
 * tests/integration/test_shutdown.py stops mounts at every stage of work.
 */
#include <errno.h>
#include <signal.h>
#include <fuse_lowlevel.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cache/store.h"
#include "fs/mount.h"
#include "fs/fetch.h"
#include "fs/glib-setup.h"
#include "fs/layout.h"
#include "fs/maildir.h"
#include "fs/log.h"
#include "fs/notify.h"
#include "fs/mountcheck.h"
#include "fs/meta.h"
#include "fs/name-format.h"
#include "fs/ops.h"
#include "fs/options.h"
#include "fs/password.h"
#include "fs/search.h"
#include "fs/stop.h"
#include "fs/sync.h"
#include "fs/token.h"
#include "fs/watch.h"
#include "fs/xattr.h"
#include "imap/namespace.h"
#include "imap/ops.h"
#include "imap/pool.h"
#include "imap/quirks.h"
#include "imap/url.h"

#define REFRESH_SECONDS 30

/* Everything main() sets up and tears down, NULL or zero until it exists. */
struct daemon {
	FsOptions opts;
	char *password;
	ImapAccount account; /* borrows from opts, password and mnt.store */
	ImapConn *conn;      /* the first connection, until the pool has it */
	FsMount mnt;
	struct fuse_session *se;
	char *offline; /* mounted offline: why, until the pool knows */
	FsStop *stop;  /* SIGTERM and SIGINT, until the loop has ended */
	bool mounted;  /* else the cache this run created is removed */
	FsWatch *watch;
	FsToken *token; /* OAuth access tokens, or NULL: a password */
};

/* Prints "imapfs: " and the message on stderr; the caller unwinds. */
static void report_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void report_error(const char *fmt, ...)
{
	va_list ap;

	fputs("imapfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Every pack segment of the cache keeps an fd open while mounted: take
 * all the fds the system allows (only poll() is used, never select()). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			g_debug("cannot raise the open file limit: %s",
				g_strerror(errno));
	}
}

static char *reread_password(void *data, GError **error)
{
	return fs_password_reread(data, error);
}

/* SIGHUP: log in again now if a refused password suspended logins.
 * libfuse's handler would end the mount instead. */
static ImapPool *volatile hup_pool;

static void on_sighup(int sig)
{
	imap_pool_retry_login(hup_pool);
}

static int catch_sighup(void)
{
	struct sigaction sa = { 0 };

	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	return sigaction(SIGHUP, &sa, NULL);
}

static char *token_get(void *data, GError **error)
{
	return fs_token_get(data, error);
}

static char *token_refetch(void *data, GError **error)
{
	return fs_token_refetch(data, error);
}

/* With OAuth, the first access token stands in for the password. */
static int read_token(struct daemon *d)
{
	g_autoptr(GError) error = NULL;

	d->token = fs_token_new(&d->opts, &error);
	if (d->token)
		d->password = fs_token_get(d->token, &error);
	if (!d->password) {
		report_error("%s", error->message);
		return -1;
	}
	return 0;
}

static int read_password(struct daemon *d)
{
	g_autoptr(GError) error = NULL;

	if (d->opts.offline)
		return 0; /* never logs in */
	if (fs_token_configured(&d->opts))
		return read_token(d);
	if (d->opts.auth == IMAP_AUTH_XOAUTH2 ||
	    d->opts.auth == IMAP_AUTH_OAUTHBEARER) {
		report_error("--auth=xoauth2 and oauthbearer need an access "
			     "token: give --token-command, --provider or "
			     "--oauth-token-url");
		return -1;
	}
	d->password = fs_password_get(&d->opts, &error);
	if (!d->password) {
		report_error("%s", error->message);
		return -1;
	}
	return 0;
}

/* The mount point is free and empty (unless -o nonempty). */
static int check_mountpoint(struct daemon *d)
{
	g_autoptr(GError) error = NULL;

	if (fs_mountcheck_mountpoint(d->opts.mountpoint, d->opts.nonempty,
				     &error) < 0) {
		report_error("%s", error->message);
		return -1;
	}
	return 0;
}

/* The cache is locked: by a mount of this account, which the user must
 * hear of at once, or by a daemon still exiting, worth waiting for. */
static bool mounted_elsewhere(struct daemon *d)
{
	/* Its fsname: the account's name, or the URL (fs/options.c). */
	g_autofree char *url = imap_url_to_string(&d->opts.server);
	const char *name = d->opts.account ? d->opts.account : url;
	g_autofree char *where = fs_mountcheck_find_account(name);

	if (!where && d->opts.account) {
		name = url;
		where = fs_mountcheck_find_account(url);
	}
	if (!where)
		return false;
	report_error("%s is already mounted on %s; unmount it first with "
		     "fusermount3 -u %s",
		     name, where, where);
	return true;
}

static int open_cache(struct daemon *d)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *key = imap_url_account_key(&d->opts.server);
	FsMount *mnt = &d->mnt;
	int rc;

	/* A daemon that was just unmounted may still be exiting and hold
	 * the cache: give it a few seconds. */
	for (int tries = 0;; tries++) {
		raise_fd_limit();
		mnt->store = cache_store_open(d->opts.cache_dir, key, &error);
		if (mnt->store || tries >= 50 ||
		    !g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN))
			break;
		if (tries == 0 && mounted_elsewhere(d))
			return -1;
		g_clear_error(&error);
		g_usleep(100 * 1000);
	}
	if (!mnt->store) {
		report_error("%s", error->message);
		return -1;
	}
	mnt->cache_limit = d->opts.cache_size;
	mnt->xattr = d->opts.xattr;
	rc = cache_store_set_limit(mnt->store, d->opts.cache_size);
	if (rc < 0) {
		report_error("cannot apply --cache-size to %s: %s",
			     cache_store_dir(mnt->store), g_strerror(-rc));
		return -1;
	}
	return 0;
}

/* May the mount go on offline after this failure to connect? Only when
 * the server could not be reached: a TLS, certificate or login failure
 * stays fatal (mounting would hide a mistake the user must fix), also
 * when it is a timeout after the greeting (a server slow to refuse). */
static bool is_unreachable(const GError *error, bool greeted)
{
	if (greeted)
		return false;
	return g_error_matches(error, IMAP_ERROR, IMAP_ERROR_CONNECT) ||
	       g_error_matches(error, IMAP_ERROR, IMAP_ERROR_TIMEOUT) ||
	       g_error_matches(error, IMAP_ERROR, IMAP_ERROR_CLOSED);
}

/* The namespace is kept beside the folder list, so that an offline mount
 * shows the same layout: "<prefix>\n<delimiter>" in the cache dir. */
static void namespace_save(struct daemon *d, const ImapNamespace *ns)
{
	g_autofree char *path =
	    g_build_filename(cache_store_dir(d->mnt.store), "namespace", NULL);
	g_autofree char *text = g_strdup_printf(
	    "%s\n%c", ns->prefix ? ns->prefix : "", ns->delimiter);

	/* 0600 like every file of the cache. */
	if (!g_file_set_contents_full(
		path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, NULL))
		g_message("cannot save the namespace in the cache");
}

static void namespace_load(struct daemon *d, ImapNamespace *ns)
{
	g_autofree char *path =
	    g_build_filename(cache_store_dir(d->mnt.store), "namespace", NULL);
	g_autofree char *text = NULL;
	char *nl;

	if (d->opts.namespace_server ||
	    !g_file_get_contents(path, &text, NULL, NULL))
		return;
	nl = strchr(text, '\n');
	if (!nl || strlen(nl + 1) != 1)
		return;
	imap_namespace_clear(ns);
	ns->prefix = g_strndup(text, (gsize)(nl - text));
	ns->delimiter = nl[1];
}

/* The folder tree from the list an earlier mount saved. why: what kept
 * the server away, or NULL for --offline. */
static int mount_offline(struct daemon *d, const char *why)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) folders = cache_store_load_folders(d->mnt.store);
	g_auto(ImapNamespace) ns = { 0 };

	if (!folders) {
		if (why)
			report_error("%s", why);
		else
			report_error(
			    "--offline: nothing is cached for %s under "
			    "%s; mount it once with the server "
			    "reachable",
			    d->opts.url, d->opts.cache_dir);
		return -1;
	}
	namespace_load(d, &ns);
	d->mnt.tree = fs_tree_new_ns(d->mnt.store, folders, &ns, &error);
	if (!d->mnt.tree) {
		report_error("%s", error->message);
		return -1;
	}
	d->offline = g_strdup(why ? why : "--offline");
	if (why)
		g_message("%s: mounting offline from the cache; going online "
			  "when the server answers",
			  why);
	return 0;
}

/* The personal namespace whose folders the tree shows at the top
 * (--namespace=top), or none (--namespace=server). */
static int personal_namespace(struct daemon *d, ImapNamespace *ns)
{
	g_autoptr(GError) error = NULL;

	if (d->opts.namespace_server)
		return 0;
	if (imap_namespace_get(d->conn, ns, &error) < 0) {
		if (imap_conn_is_broken(d->conn)) {
			report_error("%s", error->message);
			return -1;
		}
		/* A server that refuses NAMESPACE: keep its names. */
		g_message("NAMESPACE failed (%s): folders are shown as the "
			  "server names them",
			  error->message);
		imap_namespace_clear(ns);
	}
	namespace_save(d, ns);
	return 0;
}

/* Logs in and reads the folder list: the last failures the user sees. */
static int connect_server(struct daemon *d)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) folders = NULL;
	g_auto(ImapNamespace) ns = { 0 };
	ImapAccount *account = &d->account;
	bool greeted = false;

	account->host = d->opts.server.host;
	account->port = d->opts.server.port;
	account->implicit_tls = d->opts.server.implicit_tls;
	account->user = d->opts.server.user;
	account->password = d->password;
	account->cafile = d->opts.cafile;
	account->insecure = d->opts.insecure;
	account->timeout_ms = d->opts.timeout * 1000;
	account->disable_extension = d->opts.disable_extension;
	if (fs_password_can_reread(&d->opts)) {
		account->reread_password = reread_password;
		account->reread_data = &d->opts;
	}
	account->auth = (ImapAuthMech)d->opts.auth;
	if (d->token) {
		account->bearer = true;
		account->login_secret = token_get;
		account->reread_password = token_refetch;
		account->login_secret_data = account->reread_data = d->token;
	}
	if (d->opts.insecure)
		g_warning(
		    "--insecure: the server's certificate is not checked");

	if (d->opts.offline)
		return mount_offline(d, NULL);
	d->conn = imap_conn_open_greeted(account, &greeted, &error);
	if (!d->conn && is_unreachable(error, greeted))
		return mount_offline(d, error->message);
	if (!d->conn) {
		report_error("%s", error->message);
		return -1;
	}
	if (personal_namespace(d, &ns) < 0)
		return -1;
	folders = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	if (imap_list_mailboxes(d->conn, fs_tree_collect_folder, folders,
				&error) < 0) {
		report_error("cannot list folders: %s", error->message);
		return -1;
	}
	if (cache_store_save_folders(d->mnt.store, folders) < 0)
		g_message("cannot save the folder list in the cache");
	d->mnt.tree = fs_tree_new_ns(d->mnt.store, folders, &ns, &error);
	if (!d->mnt.tree) {
		report_error("%s", error->message);
		return -1;
	}
	return 0;
}

/* On a stop signal, while the FUSE workers still answer requests: stop
 * the threads that notify the kernel, which may be waiting for a page
 * that a request in flight holds locked. Once the loop has ended, nobody
 * would answer that request and the wait would never end. */
static void quiesce(void *data)
{
	FsMount *mnt = data;

	fs_inval_stop(mnt->inval);
	fs_push_stop(mnt->push);
}

/* The rest of the account, then the FUSE session and its signals. */
static int new_session(struct daemon *d)
{
	FsMount *mnt = &d->mnt;

	mnt->uid = d->opts.uid;
	mnt->gid = d->opts.gid;
	/* Mail is private: owner only unless -o umask= says otherwise. The
	 * mount is read-only whatever the modes say. */
	mnt->file_mode = 0666 & ~d->opts.umask;
	mnt->dir_mode = 0777 & ~d->opts.umask;
	mnt->refresh_us = (gint64)REFRESH_SECONDS * G_USEC_PER_SEC;
	mnt->timeout_us = (gint64)d->opts.timeout * G_USEC_PER_SEC;
	mnt->list_ahead = d->opts.list_ahead;
	mnt->fetch = fs_fetch_new();
	mnt->meta = fs_meta_new();
	mnt->xattrs = fs_xattr_new();
	/* Checked by the option parser already. */
	mnt->name_format = fs_name_format_parse(d->opts.name_format, NULL);
	mnt->layout = fs_layout_get(d->opts.layout);
	if (mnt->layout->maildir)
		fs_maildir_init(mnt);
	mnt->inval = fs_inval_new();
	mnt->push = fs_push_new(mnt->store);
	mnt->search = fs_search_new(mnt);

	d->se =
	    fuse_session_new(&d->opts.fuse_args, &fs_ops, sizeof(fs_ops), mnt);
	if (!d->se) {
		report_error(
		    "cannot start the FUSE session (see the message above)");
		return -1;
	}
	mnt->se = d->se;
	d->stop = fs_stop_new(d->se, quiesce, mnt);
	if (!d->stop || catch_sighup() != 0) {
		report_error("cannot install signal handlers: %s",
			     g_strerror(errno));
		return -1;
	}
	return 0;
}

/* --prefetch, with auto decided by the server (its first connection). */
static void choose_prefetch(struct daemon *d)
{
	bool metered = imap_quirks_metered(
	    d->account.host,
	    d->conn && imap_conn_has_cap(d->conn, "X-GM-EXT-1"));
	int mode = d->opts.prefetch;

	if (mode == FS_OPT_PREFETCH_AUTO && metered)
		g_message("this server caps downloads: prefetch is off "
			  "(--prefetch=ahead turns it on)");
	if (mode == FS_OPT_PREFETCH_AUTO)
		mode = metered ? FS_OPT_PREFETCH_OFF : FS_OPT_PREFETCH_AHEAD;
	fs_fetch_set_prefetch(d->mnt.fetch, mode == FS_OPT_PREFETCH_OFF
						? FS_PREFETCH_OFF
						: FS_PREFETCH_AHEAD);
}

/* After fuse_daemonize(): fork() keeps only the calling thread. */
static void start_threads(struct daemon *d)
{
	FsMount *mnt = &d->mnt;

	choose_prefetch(d);
	if (!d->opts.foreground)
		fs_log_to_syslog();
	cache_store_note_owner(mnt->store); /* our pid after the fork */
	mnt->pool = imap_pool_new(&d->account, d->opts.connections,
				  g_steal_pointer(&d->conn));
	hup_pool = mnt->pool;
	if (d->opts.offline)
		imap_pool_stay_offline(mnt->pool);
	else if (d->offline)
		imap_pool_start_down(mnt->pool, d->offline);
	g_clear_pointer(&d->offline, g_free);
	fs_inval_start(mnt->inval, d->se);
	fs_push_start(mnt->push, d->se);
	fs_stop_start(d->stop);
	fs_sync_start_background(mnt);
	d->watch =
	    fs_watch_new(mnt, d->opts.poll_interval, d->opts.status_interval);
	mnt->watch = d->watch;
	g_message("mounted %s on %s", d->opts.url, d->opts.mountpoint);
	fs_notify_ready(d->opts.account ? d->opts.account : d->opts.url,
			d->opts.mountpoint);
}

/* Step 1 of the shutdown: returns main()'s exit status. */
static int run_session(struct daemon *d)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int rc;

	fuse_loop_cfg_set_max_threads(loop, 32);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	rc = fuse_session_loop_mt(d->se, loop);
	fuse_loop_cfg_destroy(loop);
	fs_stop_free(g_steal_pointer(&d->stop));
	/* The loop has joined its workers: no handler runs from here on. */
	fs_ops_release_dirs(&d->mnt);
	/* A stop signal is a clean exit like an unmount. */
	if (rc < 0)
		g_warning("FUSE session ended with an error: %s",
			  g_strerror(-rc));
	return rc < 0 ? 1 : 0;
}

/* Steps 2 and 3: the threads that start work of their own. */
static void stop_background(struct daemon *d)
{
	d->mnt.watch = NULL;
	fs_watch_free(g_steal_pointer(&d->watch));
	fs_sync_stop_background(&d->mnt);
}

/* Step 4. */
static void unmount_session(struct daemon *d)
{
	/* After a stop signal the threads that notify the kernel are
	 * stopped already (step 0). After an unmount the kernel has ended
	 * every request, so a notification in progress returns. Closing
	 * the session's fd does not end a notification that waits for a
	 * page: the write holds the fd. The session itself lives on until
	 * fuse_session_destroy(). */
	fuse_session_unmount(d->se);
	fs_inval_free(g_steal_pointer(&d->mnt.inval));
	fs_push_stop(d->mnt.push);
}

/* Steps 5 to 7, for whatever was set up. */
static void free_daemon(struct daemon *d)
{
	FsMount *mnt = &d->mnt;

	if (d->se)
		fuse_session_destroy(d->se);
	if (mnt->tree)
		fs_sync_save_dirty(mnt);
	hup_pool = NULL;
	imap_pool_free(mnt->pool);
	fs_push_free(mnt->push);
	imap_conn_free(d->conn);
	fs_inval_free(mnt->inval);
	fs_search_free(mnt->search);
	fs_tree_free(mnt->tree);
	fs_fetch_free(mnt->fetch);
	fs_meta_free(mnt->meta);
	fs_xattr_free(mnt->xattrs);
	fs_name_format_free(mnt->name_format);
	if (mnt->layout && mnt->layout->free)
		mnt->layout->free(mnt);
	if (d->mounted)
		cache_store_free(mnt->store);
	else
		cache_store_free_new(mnt->store);
	fs_password_free(d->password);
	fs_token_free(d->token);
	g_free(d->offline);
	fs_options_clear(&d->opts);
}

int main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	struct daemon d = { 0 };
	int ret = 1;
	int rc;

	fs_glib_setup(); /* before any thread: see fs/glib-setup.h */
	/* A server that went away is an error return, not a signal: also
	 * before the mount, where the first connection is opened. */
	signal(SIGPIPE, SIG_IGN);
	rc = fs_options_parse(argc, argv, &d.opts, &error);
	if (rc == FS_OPTIONS_EXIT_OK)
		return 0;
	if (rc < 0) {
		report_error("%s", error->message);
		return 1;
	}
	fs_log_init(d.opts.debug);
	if (d.opts.authorize) {
		ret = fs_token_authorize(&d.opts, &error) < 0 ? 1 : 0;
		if (ret)
			report_error("%s", error->message);
		fs_options_clear(&d.opts);
		return ret;
	}

	/* Whatever fails here fails in the foreground, before the mount. */
	if (check_mountpoint(&d) < 0 || read_password(&d) < 0 ||
	    open_cache(&d) < 0 || connect_server(&d) < 0 || new_session(&d) < 0)
		goto out;
	if (fuse_session_mount(d.se, d.opts.mountpoint) != 0) {
		report_error("cannot mount on %s (see the message above)",
			     d.opts.mountpoint);
		goto out_signals;
	}
	d.mounted = true;
	if (fuse_daemonize(d.opts.foreground) != 0) {
		report_error("cannot go to the background");
		goto out_unmount;
	}
	start_threads(&d);
	ret = run_session(&d);
	fs_notify_stopping();
	stop_background(&d);
out_unmount:
	unmount_session(&d);
out_signals:
	fs_stop_free(g_steal_pointer(&d.stop));
out:
	free_daemon(&d);
	return ret;
}
