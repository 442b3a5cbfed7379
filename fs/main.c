/* fs/main.c: start-up and shutdown of the imapfs daemon.
 *
 * Order matters: everything that can fail for a reason the user must see
 * (options, password, cache, connection, login, folder list) happens
 * before the mount, in the foreground, so a failure prints one line and
 * leaves no mount behind. Threads (pool, invalidation) are started only
 * after fuse_daemonize(), because fork() keeps only the calling thread.
 *
 * Shutdown runs in one order, and each step joins its threads before the
 * next begins, so nothing runs when main() returns:
 *  1. the FUSE loop returns once its workers are joined; the directory
 *     handles the kernel never released are freed;
 *  2. the watcher's IDLE and refresh threads stop;
 *  3. the background pools finish queued listing saves (checks are
 *     dropped);
 *  4. unmount, which closes the session's fd and so ends the requests
 *     the kernel still had in flight; then the invalidation and push
 *     threads stop (before, they could wait forever for a page such a
 *     request held locked);
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
#include "fs/account.h"
#include "fs/fetch.h"
#include "fs/log.h"
#include "fs/ops.h"
#include "fs/options.h"
#include "fs/password.h"
#include "fs/sync.h"
#include "fs/watch.h"
#include "imap/ops.h"
#include "imap/pool.h"
#include "imap/url.h"

#define REFRESH_SECONDS 30

static void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void die(const char *fmt, ...)
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

int main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	FsOptions opts = { 0 };
	FsAccount acct = { 0 };
	char *password = NULL;
	g_autofree char *key = NULL;
	g_autoptr(GPtrArray) folders = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	ImapAccount account = { 0 };
	ImapConn *conn = NULL;
	FsWatch *watch = NULL;
	int ret = 1;
	int rc;

	rc = fs_options_parse(argc, argv, &opts, &error);
	if (rc == FS_OPTIONS_EXIT_OK)
		return 0;
	if (rc < 0) {
		die("%s", error->message);
		return 1;
	}
	fs_log_init(opts.debug);

	password = fs_password_get(&opts, &error);
	if (!password) {
		die("%s", error->message);
		goto out;
	}

	key = imap_url_account_key(&opts.server);
	/* A daemon that was just unmounted may still be exiting and hold
	 * the cache: give it a few seconds. */
	for (int tries = 0;; tries++) {
		raise_fd_limit();
		acct.store = cache_store_open(opts.cache_dir, key, &error);
		if (acct.store || tries >= 50 ||
		    !g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_AGAIN))
			break;
		g_clear_error(&error);
		g_usleep(100 * 1000);
	}
	if (!acct.store) {
		die("%s", error->message);
		goto out;
	}
	acct.cache_limit = opts.cache_size;
	acct.xattr = opts.xattr;
	rc = cache_store_set_limit(acct.store, opts.cache_size);
	if (rc < 0) {
		die("cannot apply --cache-size to %s: %s",
		    cache_store_dir(acct.store), g_strerror(-rc));
		goto out;
	}

	account.host = opts.server.host;
	account.port = opts.server.port;
	account.implicit_tls = opts.server.implicit_tls;
	account.user = opts.server.user;
	account.password = password;
	account.cafile = opts.cafile;
	account.insecure = opts.insecure;
	account.timeout_ms = opts.timeout * 1000;
	account.sink = &fs_fetch_sink;
	account.sink_data = acct.store;
	if (fs_password_can_reread(&opts)) {
		account.reread_password = reread_password;
		account.reread_data = &opts;
	}
	if (opts.insecure)
		g_warning(
		    "--insecure: the server's certificate is not checked");

	conn = imap_conn_open(&account, &error);
	if (!conn) {
		die("%s", error->message);
		goto out;
	}
	folders = g_ptr_array_new_with_free_func(
	    (GDestroyNotify)cache_folder_entry_free);
	if (imap_list_mailboxes(conn, fs_tree_collect_folder, folders, &error) <
	    0) {
		die("cannot list folders: %s", error->message);
		goto out;
	}
	if (cache_store_save_folders(acct.store, folders) < 0)
		g_message("cannot save the folder list in the cache");
	acct.tree = fs_tree_new(acct.store, folders, &error);
	if (!acct.tree) {
		die("%s", error->message);
		goto out;
	}
	acct.uid = opts.uid;
	acct.gid = opts.gid;
	/* Mail is private: owner only unless -o umask= says otherwise. The
	 * mount is read-only whatever the modes say. */
	acct.file_mode = 0666 & ~opts.umask;
	acct.dir_mode = 0777 & ~opts.umask;
	acct.refresh_us = (gint64)REFRESH_SECONDS * G_USEC_PER_SEC;
	acct.timeout_us = (gint64)opts.timeout * G_USEC_PER_SEC;
	g_mutex_init(&acct.fetch_lock);
	acct.inflight =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	acct.uncached = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					      fs_fetch_uncached_free);
	acct.readers =
	    g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	acct.heads = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					   (GDestroyNotify)g_bytes_unref);
	acct.inval = fs_inval_new();
	acct.push = fs_push_new(acct.store);

	se = fuse_session_new(&opts.fuse_args, &fs_ops, sizeof(fs_ops), &acct);
	if (!se) {
		die("cannot start the FUSE session (see the message above)");
		goto out;
	}
	acct.se = se;
	if (fuse_set_signal_handlers(se) != 0 || catch_sighup() != 0) {
		die("cannot install signal handlers");
		goto out;
	}
	if (fuse_session_mount(se, opts.mountpoint) != 0) {
		die("cannot mount on %s (see the message above)",
		    opts.mountpoint);
		goto out_signals;
	}
	if (fuse_daemonize(opts.foreground) != 0) {
		die("cannot go to the background");
		goto out_unmount;
	}
	if (!opts.foreground)
		fs_log_to_syslog();

	acct.pool =
	    imap_pool_new(&account, opts.connections, g_steal_pointer(&conn));
	hup_pool = acct.pool;
	fs_inval_start(acct.inval, se);
	fs_push_start(acct.push, se);
	fs_sync_start_background(&acct);
	watch = fs_watch_new(&acct, opts.poll_interval);
	acct.watch = watch;
	g_message("mounted %s on %s", opts.url, opts.mountpoint);

	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(loop, 32);
	fuse_loop_cfg_set_idle_threads(loop, 8);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	/* The loop has joined its workers: no handler runs from here on. */
	fs_ops_release_dirs(&acct);
	/* A positive result is the signal (SIGINT, SIGTERM) that asked us
	 * to stop: a clean exit like an unmount. */
	ret = rc < 0 ? 1 : 0;
	if (rc < 0)
		g_warning("FUSE session ended with an error: %s",
			  g_strerror(-rc));

	acct.watch = NULL;
	fs_watch_free(g_steal_pointer(&watch));
	fs_sync_stop_background(&acct);
out_unmount:
	/* This closes the session's fd, which ends the requests the kernel
	 * still has in flight (no worker answers them any more). Only then
	 * stop the threads that notify the kernel: a store or an
	 * invalidation waits for a page that such a request holds locked,
	 * and joining them before hung the shutdown. The session itself
	 * lives on until fuse_session_destroy(). */
	fuse_session_unmount(se);
	fs_inval_free(g_steal_pointer(&acct.inval));
	fs_push_stop(acct.push);
out_signals:
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	if (acct.tree)
		fs_sync_save_dirty(&acct);
	hup_pool = NULL;
	imap_pool_free(acct.pool);
	fs_push_free(acct.push);
	imap_conn_free(conn);
	fs_inval_free(acct.inval);
	fs_tree_free(acct.tree);
	if (acct.inflight) {
		g_hash_table_unref(acct.inflight);
		g_hash_table_unref(acct.uncached);
		g_hash_table_unref(acct.readers);
		g_hash_table_unref(acct.heads);
		g_mutex_clear(&acct.fetch_lock);
	}
	cache_store_free(acct.store);
	fs_password_free(password);
	fs_options_clear(&opts);
	return ret;
}
