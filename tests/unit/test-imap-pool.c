/* Unit tests of imap/pool.c against a scripted server on a loopback
 * socket: after the server cuts a connection, the next job runs on a
 * fresh one; an access token the server refuses is fetched anew once,
 * then logins stop. */
#include <errno.h>
#include <glib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "imap/pool.h"
#include "tests/unit/scripted-server.h"

#define LOGIN_SASL_IR                                                          \
	"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",              \
	    "C:AUTHENTICATE PLAIN *", "S:$T OK logged in", "C:CAPABILITY",     \
	    "S:* CAPABILITY IMAP4rev1", "S:$T OK done"

static ScriptedServer *server;

/* A job: NOOP, and note on which of the server's connections it ran. */
static int noop_job(ImapConn *conn, const ImapMailboxState *state, void *data,
		    GError **error)
{
	unsigned *ran_on = data;
	int rc;

	(void)state;
	rc = imap_conn_command(conn, NULL, NULL, error, "NOOP");
	if (rc == 0)
		*ran_on = scripted_server_accepted(server);
	return rc;
}

static void test_reconnect_after_cut(void)
{
	static const char *const first[] = { LOGIN_SASL_IR, "C:NOOP",
					     "S:$T OK noop", "CUT", NULL };
	static const char *const second[] = { LOGIN_SASL_IR, "C:NOOP",
					      "S:$T OK noop", NULL };
	static const char *const *scripts[] = { first, second, NULL };
	g_autoptr(GError) error = NULL;
	g_autofree char *failure = NULL;
	unsigned ran_on = 0;
	ImapAccount a = { .host = "127.0.0.1",
			  .implicit_tls = true,
			  .user = "user",
			  .password = "s3cret-PW",
			  .insecure = true,
			  .timeout_ms = 3000 };
	ImapPool *pool;

	server = scripted_server_new(scripts);
	a.port = scripted_server_port(server);
	pool = imap_pool_new(&a, 1, NULL);
	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(ran_on, ==, 1);
	/* The server has cut the first connection by now, or will while the
	 * next job runs on it: either way that job ends on a fresh one. */
	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(ran_on, ==, 2);
	imap_pool_free(pool);
	failure = scripted_server_finish(server);
	g_assert_cmpstr(failure, ==, NULL);
	scripted_server_free(server);
}

#define TOK1_IR "dXNlcj11c2VyAWF1dGg9QmVhcmVyIHRvay0xAQE="
#define TOK2_IR "dXNlcj11c2VyAWF1dGg9QmVhcmVyIHRvay0yAQE="
#define XOAUTH2_HELLO "S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi"
#define REFUSED "S:$T NO [AUTHENTICATIONFAILED] Authentication failed."
#define LOGGED_IN                                                              \
	"S:$T OK logged in", "C:CAPABILITY", "S:* CAPABILITY IMAP4rev1",       \
	    "S:$T OK done"

/* A token source: the cached token until refetched (reread_password). */
typedef struct {
	int gets, refetches;
	char token[16];
} Tokens;

static char *token_get(void *data, GError **error)
{
	Tokens *t = data;

	(void)error;
	t->gets++;
	return g_strdup(t->token);
}

static char *token_refetch(void *data, GError **error)
{
	Tokens *t = data;

	(void)error;
	t->refetches++;
	g_snprintf(t->token, sizeof(t->token), "tok-%d", t->refetches + 1);
	return g_strdup(t->token);
}

static ImapPool *token_pool(const char *const *const *scripts, Tokens *t)
{
	ImapAccount a = { .host = "127.0.0.1",
			  .implicit_tls = true,
			  .user = "user",
			  .password = "tok-1",
			  .insecure = true,
			  .timeout_ms = 3000,
			  .bearer = true,
			  .auth = IMAP_AUTH_XOAUTH2 };

	g_strlcpy(t->token, "tok-1", sizeof(t->token));
	a.login_secret = token_get;
	a.reread_password = token_refetch;
	a.login_secret_data = a.reread_data = t;
	server = scripted_server_new(scripts);
	a.port = scripted_server_port(server);
	return imap_pool_new(&a, 1, NULL);
}

static void finish_server(void)
{
	g_autofree char *failure = scripted_server_finish(server);

	g_assert_cmpstr(failure, ==, NULL);
	scripted_server_free(server);
}

static void test_token_refetched(void)
{
	static const char *const first[] = { XOAUTH2_HELLO,
					     "C:AUTHENTICATE XOAUTH2 " TOK1_IR,
					     REFUSED, NULL };
	static const char *const second[] = {
		XOAUTH2_HELLO,  "C:AUTHENTICATE XOAUTH2 " TOK2_IR,
		LOGGED_IN,      "C:NOOP",
		"S:$T OK noop", NULL
	};
	static const char *const *scripts[] = { first, second, NULL };
	g_autoptr(GError) error = NULL;
	unsigned ran_on = 0;
	Tokens t = { 0 };
	ImapPool *pool = token_pool(scripts, &t);

	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(ran_on, ==, 2);
	/* Each login asked for a token; the refused one was fetched anew
	 * once. */
	g_assert_cmpint(t.gets, ==, 2);
	g_assert_cmpint(t.refetches, ==, 1);
	imap_pool_free(pool);
	finish_server();
}

static void test_token_refused_twice(void)
{
	static const char *const first[] = { XOAUTH2_HELLO,
					     "C:AUTHENTICATE XOAUTH2 " TOK1_IR,
					     REFUSED, NULL };
	static const char *const second[] = { XOAUTH2_HELLO,
					      "C:AUTHENTICATE XOAUTH2 " TOK2_IR,
					      REFUSED, NULL };
	static const char *const *scripts[] = { first, second, NULL };
	unsigned ran_on = 0;
	Tokens t = { 0 };
	ImapPool *pool = token_pool(scripts, &t);

	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE,
			      "*access token was refused*; trying a new access "
			      "token");
	g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
			      "*will not log in again until the access token "
			      "changes*");
	for (int i = 0; i < 3; i++) {
		g_autoptr(GError) error = NULL;

		g_assert_cmpint(
		    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error),
		    ==, -EACCES);
		g_assert_nonnull(error);
		g_assert_null(strstr(error->message, "tok-"));
	}
	g_test_assert_expected_messages();
	/* Two refusals, then no login: no storm of failed logins. */
	g_assert_cmpuint(scripted_server_accepted(server), ==, 2);
	g_assert_cmpint(t.refetches, ==, 1);
	imap_pool_free(pool);
	finish_server();
}

/* Mounted offline: jobs fail at once without a connection until the
 * backoff has passed, then the pool connects by itself; --offline never
 * connects at all. */
static void test_start_down_and_offline(void)
{
	static const char *const one[] = { LOGIN_SASL_IR, "C:NOOP",
					   "S:$T OK noop", NULL };
	static const char *const *scripts[] = { one, NULL };
	g_autoptr(GError) error = NULL;
	g_autofree char *failure = NULL;
	unsigned ran_on = 0;
	ImapAccount a = { .host = "127.0.0.1",
			  .implicit_tls = true,
			  .user = "user",
			  .password = "s3cret-PW",
			  .insecure = true,
			  .timeout_ms = 3000 };
	ImapPool *pool;

	server = scripted_server_new(scripts);
	a.port = scripted_server_port(server);
	pool = imap_pool_new(&a, 1, NULL);
	imap_pool_start_down(pool, "cannot connect: test");
	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==,
	    -EIO);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_SUSPENDED);
	g_clear_error(&error);
	g_assert_cmpuint(scripted_server_accepted(server), ==, 0);
	g_usleep(700 * 1000); /* the first backoff is 0.5 s */
	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(ran_on, ==, 1);
	imap_pool_free(pool);

	/* --offline: the one script left unused would fail finish(), so
	 * count connections instead. */
	pool = imap_pool_new(&a, 1, NULL);
	imap_pool_stay_offline(pool);
	g_assert_cmpint(
	    imap_pool_run(pool, NULL, noop_job, &ran_on, NULL, &error), ==,
	    -EIO);
	g_assert_nonnull(strstr(error->message, "--offline"));
	g_clear_error(&error);
	g_assert_null(imap_pool_connect(pool, &error));
	g_clear_error(&error);
	imap_pool_free(pool);
	g_assert_cmpuint(scripted_server_accepted(server), ==, 1);
	failure = scripted_server_finish(server);
	g_assert_cmpstr(failure, ==, NULL);
	scripted_server_free(server);
}

int main(int argc, char **argv)
{
	alarm(60); /* never hang: SIGALRM ends the test as a failure */
	/* As in the daemon (libfuse's handlers): a write to a cut
	 * connection fails with EPIPE instead of killing us. */
	signal(SIGPIPE, SIG_IGN);
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap-pool/reconnect-after-cut",
			test_reconnect_after_cut);
	g_test_add_func("/imap-pool/token-refetched", test_token_refetched);
	g_test_add_func("/imap-pool/token-refused-twice",
			test_token_refused_twice);
	g_test_add_func("/imap-pool/start-down-and-offline",
			test_start_down_and_offline);
	return g_test_run();
}
