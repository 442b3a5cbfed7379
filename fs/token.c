/* fs/token.c: where the account's OAuth 2.0 access tokens come from:
 * --token-command, or a refresh token that imapfs exchanges itself at the
 * token endpoint (fs/oauth.c), kept in a 0600 file under
 * $XDG_DATA_HOME/imapfs/oauth/ or printed by --oauth-refresh-token-command;
 * and --authorize, the device authorization grant that fills that file.
 *
 * Ownership and locking: an FsToken borrows the options and owns the
 * client secret and the access token in memory. Its lock serialises the
 * exchanges, so that the pool's threads logging in at once cost one
 * request; it is held across the HTTP request (bounded by --timeout).
 *
 * Invariants: a token, refresh token or client secret is never logged,
 * never in an error, and wiped before it is freed; the refresh token
 * file is replaced whole (temp file, fsync, rename), never rewritten in
 * place, and is 0600 in a 0700 directory.
 */
#include "fs/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/oauth.h"
#include "fs/password.h"
#include "imap/conn.h"

/* An access token whose lifetime the server did not say is used this
 * long before a new one is asked for. */
#define DEFAULT_LIFETIME_S 600

struct FsToken {
	const FsOptions *opts;
	FsOAuthClient client;
	char *client_secret; /* owned: from the command or the options */
	char *refresh_path;  /* NULL with --oauth-refresh-token-command */
	GMutex lock;
	char *access;       /* under lock: the token in memory, or NULL */
	gint64 valid_until; /* under lock: monotonic us */
};

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		g_free(s);
	}
}

bool fs_token_configured(const FsOptions *opts)
{
	bool source = opts->token_command || opts->oauth_token_url ||
		      opts->provider || opts->oauth_client_id;

	return source && (opts->auth == IMAP_AUTH_AUTO ||
			  opts->auth == IMAP_AUTH_XOAUTH2 ||
			  opts->auth == IMAP_AUTH_OAUTHBEARER);
}

/* $XDG_DATA_HOME/imapfs/oauth/USER@HOST, the file of the account's refresh
 * token (one per user and server: imap:// and imaps:// share it). */
static char *refresh_token_path(const FsOptions *opts)
{
	const char *xdg = g_getenv("XDG_DATA_HOME");
	g_autofree char *base = NULL;
	g_autofree char *account =
	    g_strdup_printf("%s@%s", opts->server.user, opts->server.host);
	g_autofree char *name = g_uri_escape_string(account, "@", FALSE);

	if (xdg && g_path_is_absolute(xdg))
		base = g_build_filename(xdg, "imapfs", "oauth", NULL);
	else
		base = g_build_filename(g_get_home_dir(), ".local", "share",
					"imapfs", "oauth", NULL);
	return g_build_filename(base, name, NULL);
}

/* Fill the client from the options and the provider's table. */
static int setup_client(FsToken *t, GError **error)
{
	const FsOptions *o = t->opts;
	const FsOAuthProvider *p = fs_oauth_provider(o->provider);
	FsOAuthClient *c = &t->client;

	c->token_url =
	    o->oauth_token_url ? o->oauth_token_url : (p ? p->token_url : NULL);
	c->device_url = o->oauth_device_url ? o->oauth_device_url
					    : (p ? p->device_url : NULL);
	c->scope = o->oauth_scope ? o->oauth_scope : (p ? p->scope : NULL);
	c->client_id = o->oauth_client_id;
	c->cafile = o->cafile;
	c->timeout_s = MAX(o->timeout, 10u);
	if (!c->client_id || !c->token_url) {
		fs_options_error(error, "OAuth needs %s, or --token-command",
				 !c->client_id
				     ? "--oauth-client-id (your OAuth "
				       "application's id: see imapfs(1))"
				     : "--oauth-token-url or --provider");
		return -1;
	}
	if (fs_oauth_check_url(c->token_url, error) < 0 ||
	    (c->device_url && fs_oauth_check_url(c->device_url, error) < 0))
		return -1;
	if (o->oauth_client_secret_command) {
		t->client_secret =
		    fs_password_run_command(o->oauth_client_secret_command,
					    "client secret command", error);
		if (!t->client_secret)
			return -1;
	} else if (o->oauth_client_secret) {
		t->client_secret = g_strdup(o->oauth_client_secret);
	}
	c->client_secret = t->client_secret;
	if (!o->oauth_refresh_token_command)
		t->refresh_path = refresh_token_path(o);
	return 0;
}

FsToken *fs_token_new(const FsOptions *opts, GError **error)
{
	FsToken *t = g_new0(FsToken, 1);

	t->opts = opts;
	g_mutex_init(&t->lock);
	fs_oauth_global_init();
	if (!opts->token_command && setup_client(t, error) < 0) {
		fs_token_free(t);
		return NULL;
	}
	return t;
}

void fs_token_free(FsToken *t)
{
	if (!t)
		return;
	wipe_free(t->access);
	wipe_free(t->client_secret);
	g_free(t->refresh_path);
	g_mutex_clear(&t->lock);
	g_free(t);
}

/* The refresh token from its file, or NULL with error set. */
static char *read_refresh_file(const char *path, GError **error)
{
	g_autofree char *data = NULL;
	gsize len = 0;
	struct stat st;
	char *tok;

	if (!g_file_get_contents(path, &data, &len, NULL)) {
		fs_options_error(error,
				 "no OAuth refresh token in %s: run imapfs "
				 "--authorize first",
				 path);
		return NULL;
	}
	if (stat(path, &st) == 0 && (st.st_mode & 077))
		g_warning("%s is accessible by other users: chmod 600 it",
			  path);
	tok = g_strdup(g_strstrip(data));
	explicit_bzero(data, len);
	if (!*tok) {
		g_free(tok);
		fs_options_error(error, "%s is empty: run imapfs --authorize",
				 path);
		return NULL;
	}
	return tok;
}

/* Replace the refresh token file: temp file, fsync, rename, all 0600. */
static int store_refresh_token(const char *path, const char *token,
			       GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *tmp = g_strconcat(path, ".XXXXXX", NULL);
	size_t len = strlen(token);
	int fd, e = 0;

	if (g_mkdir_with_parents(dir, 0700) < 0) {
		e = errno;
		goto fail;
	}
	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0)
		e = errno ? errno : EIO;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e)
		unlink(tmp);
	if (!e)
		return 0;
fail:
	g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
		    "cannot save the OAuth refresh token in %s: %s", path,
		    g_strerror(e));
	return -1;
}

/* Keep a rotated refresh token (the old one may stop working now). */
static void keep_rotated(FsToken *t, const char *old, const char *rotated)
{
	g_autoptr(GError) error = NULL;

	if (!rotated || strcmp(old, rotated) == 0)
		return;
	if (!t->refresh_path) {
		g_warning("the authorization server sent a new refresh token, "
			  "but --oauth-refresh-token-command cannot store it: "
			  "the old one may stop working");
		return;
	}
	if (store_refresh_token(t->refresh_path, rotated, &error) < 0)
		g_warning("%s", error->message);
	else
		g_debug("stored the rotated refresh token in %s",
			t->refresh_path);
}

/* A new access token from the refresh token (t->lock held). */
static char *exchange(FsToken *t, gint64 *lifetime_s, GError **error)
{
	g_autoptr(GError) err = NULL;
	FsOAuthTokens tok = { 0 };
	FsOAuthStatus st;
	char *refresh, *access = NULL;

	refresh =
	    t->refresh_path
		? read_refresh_file(t->refresh_path, &err)
		: fs_password_run_command(t->opts->oauth_refresh_token_command,
					  "refresh token command", &err);
	if (!refresh) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH, "%s",
			    err->message);
		return NULL;
	}
	st = fs_oauth_refresh(&t->client, refresh, &tok, &err);
	if (st == FS_OAUTH_OK) {
		keep_rotated(t, refresh, tok.refresh_token);
		access = g_steal_pointer(&tok.access_token);
		*lifetime_s = tok.expires_in;
	} else if (st == FS_OAUTH_UNREACHABLE) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "cannot reach the OAuth token endpoint: %s",
			    err->message);
	} else {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "the OAuth token endpoint refused the refresh "
			    "token: %s (run imapfs --authorize again)",
			    err->message);
	}
	fs_oauth_tokens_clear(&tok);
	wipe_free(refresh);
	return access;
}

/* A new access token (t->lock held), remembered until it expires. */
static char *fetch_locked(FsToken *t, GError **error)
{
	g_autoptr(GError) err = NULL;
	gint64 life = 0, margin;
	char *access;

	wipe_free(g_steal_pointer(&t->access));
	if (t->opts->token_command) {
		/* The command keeps its own cache: ask it every time. */
		access = fs_password_run_command(t->opts->token_command,
						 "token command", &err);
		if (!access)
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH, "%s",
				    err->message);
		return access;
	}
	access = exchange(t, &life, error);
	if (!access)
		return NULL;
	if (life <= 0)
		life = DEFAULT_LIFETIME_S;
	/* Renew a minute early (a quarter early for short lives), so that a
	 * login never carries a token about to expire. */
	margin = life >= 240 ? 60 : life / 4;
	t->valid_until =
	    g_get_monotonic_time() + (life - margin) * G_USEC_PER_SEC;
	t->access = g_strdup(access);
	g_debug("new OAuth access token, valid for %" G_GINT64_FORMAT " s",
		life);
	return access;
}

char *fs_token_get(FsToken *t, GError **error)
{
	char *access;

	g_mutex_lock(&t->lock);
	if (t->access && g_get_monotonic_time() < t->valid_until)
		access = g_strdup(t->access);
	else
		access = fetch_locked(t, error);
	g_mutex_unlock(&t->lock);
	return access;
}

char *fs_token_refetch(FsToken *t, GError **error)
{
	char *access;

	g_mutex_lock(&t->lock);
	access = fetch_locked(t, error);
	g_mutex_unlock(&t->lock);
	return access;
}

/* Poll the token endpoint until the user has signed in (RFC 8628 section
 * 3.4-3.5). 0 with tok filled, or -1 with error set. */
static int poll_grant(FsToken *t, const FsOAuthDevice *dev, FsOAuthTokens *tok,
		      GError **error)
{
	gint64 deadline =
	    g_get_monotonic_time() + (gint64)dev->expires_in * G_USEC_PER_SEC;
	unsigned interval = dev->interval;

	for (;;) {
		g_autoptr(GError) err = NULL;
		FsOAuthStatus st;

		g_usleep((gulong)interval * G_USEC_PER_SEC);
		if (g_get_monotonic_time() >= deadline) {
			fs_options_error(error, "the code expired before the "
						"sign-in: run --authorize "
						"again");
			return -1;
		}
		st = fs_oauth_device_poll(&t->client, dev->device_code, tok,
					  &err);
		switch (st) {
		case FS_OAUTH_OK:
			return 0;
		case FS_OAUTH_PENDING:
			continue;
		case FS_OAUTH_SLOW_DOWN:
			interval += 5; /* RFC 8628 section 3.5 */
			continue;
		case FS_OAUTH_UNREACHABLE:
			g_printerr("imapfs: %s; trying again\n", err->message);
			continue;
		case FS_OAUTH_EXPIRED:
			fs_options_error(error, "the code expired before the "
						"sign-in: run --authorize "
						"again");
			return -1;
		case FS_OAUTH_DENIED:
			fs_options_error(error, "the sign-in was refused "
						"(access_denied)");
			return -1;
		case FS_OAUTH_REFUSED:
		case FS_OAUTH_MALFORMED:
			fs_options_error(error,
					 "the token endpoint refused the "
					 "device grant: %s",
					 err->message);
			return -1;
		}
	}
}

int fs_token_authorize(const FsOptions *opts, GError **error)
{
	g_autoptr(GError) err = NULL;
	FsOAuthDevice dev = { 0 };
	FsOAuthTokens tok = { 0 };
	FsToken *t;
	int rc = -1;

	if (opts->token_command || opts->oauth_refresh_token_command) {
		fs_options_error(error, "--authorize saves a refresh token for "
					"imapfs itself: drop --token-command "
					"and --oauth-refresh-token-command");
		return -1;
	}
	t = fs_token_new(opts, error);
	if (!t)
		return -1;
	if (fs_oauth_device_start(&t->client, &dev, &err) != FS_OAUTH_OK) {
		/* Google's device grant does not cover the Gmail scope. */
		bool google = opts->provider &&
			      g_ascii_strcasecmp(opts->provider, "google") == 0;

		fs_options_error(
		    error, "device authorization failed: %s%s", err->message,
		    google ? " (Google grants the Gmail scope only "
			     "to a browser sign-in: use a helper "
			     "as --token-command, see imapfs(1))"
			   : "");
		goto out;
	}
	printf("To let imapfs read the mail of %s at %s, open\n\n    %s\n\n"
	       "and enter the code\n\n    %s\n\n",
	       opts->server.user, opts->server.host, dev.verification_uri,
	       dev.user_code);
	if (dev.verification_uri_complete)
		printf("(or open %s)\n", dev.verification_uri_complete);
	printf("Waiting for the sign-in (%u minutes at most)...\n",
	       MAX(dev.expires_in / 60, 1u));
	fflush(stdout);
	if (poll_grant(t, &dev, &tok, error) < 0)
		goto out;
	if (!tok.refresh_token) {
		fs_options_error(error, "the token endpoint sent no refresh "
					"token (does the scope ask for offline "
					"access?)");
		goto out;
	}
	if (store_refresh_token(t->refresh_path, tok.refresh_token, error) < 0)
		goto out;
	printf("Signed in. The refresh token is in %s;\nmount with the same "
	       "options and a mount point.\n",
	       t->refresh_path);
	rc = 0;
out:
	fs_oauth_tokens_clear(&tok);
	fs_oauth_device_clear(&dev);
	fs_token_free(t);
	return rc;
}
