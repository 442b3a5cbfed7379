/* Unit tests of imap/pool.c against a scripted server on a loopback
 * socket: after the server cuts a connection, the next job runs on a
 * fresh one. */
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
	g_test_add_func("/imap-pool/start-down-and-offline",
			test_start_down_and_offline);
	return g_test_run();
}
