/* Unit tests of imap/conn.c (and transport.c, auth.c) against a scripted
 * server on a loopback socket: login mechanisms, refusals and their errno,
 * a connection cut in the middle of a literal, a stalled server. */
#include <errno.h>
#include <glib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "imap/conn.h"
#include "tests/unit/scripted-server.h"

#define PLAIN_IR "AHVzZXIAczNjcmV0LVBX" /* "\0user\0s3cret-PW" */

/* After login, imap_conn_open() always asks for the capabilities again. */
#define CAPS_AGAIN "C:CAPABILITY", "S:* CAPABILITY IMAP4rev1", "S:$T OK done"
#define LOGIN_SASL_IR                                                          \
	"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",              \
	    "C:AUTHENTICATE PLAIN " PLAIN_IR, "S:$T OK logged in", CAPS_AGAIN

static ImapAccount account_for(ScriptedServer *srv)
{
	ImapAccount a = { .host = "127.0.0.1",
			  .port = scripted_server_port(srv),
			  .implicit_tls = true,
			  .user = "user",
			  .password = "s3cret-PW",
			  .insecure = true,
			  .timeout_ms = 3000 };
	return a;
}

static void assert_script_done(ScriptedServer *srv)
{
	g_autofree char *failure = scripted_server_finish(srv);

	g_assert_cmpstr(failure, ==, NULL);
	scripted_server_free(srv);
}

/* Open a connection on a one-connection script; the server must follow. */
static ImapConn *open_on(const char *const *script, ScriptedServer **srv)
{
	static const char *const *scripts[2];
	ImapAccount a;
	g_autoptr(GError) error = NULL;
	ImapConn *conn;

	scripts[0] = script;
	scripts[1] = NULL;
	*srv = scripted_server_new(scripts);
	a = account_for(*srv);
	conn = imap_conn_open(&a, &error);
	g_assert_no_error(error);
	g_assert_nonnull(conn);
	return conn;
}

static void test_login_sasl_ir(void)
{
	static const char *const script[] = { LOGIN_SASL_IR, "C:NOOP",
					      "S:$T OK noop", NULL };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	g_assert_true(imap_conn_has_cap(conn, "imap4rev1"));
	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, NULL, "NOOP"), ==,
			0);
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* Without SASL-IR the initial response answers the server's "+". */
static void test_login_continuation(void)
{
	static const char *const script[] = {
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready",
		"C:AUTHENTICATE PLAIN",
		"S:+ ",
		"L:" PLAIN_IR,
		"S:$T OK logged in",
		CAPS_AGAIN,
		NULL
	};
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	imap_conn_free(conn);
	assert_script_done(srv);
}

static void test_login_command(void)
{
	static const char *const script[] = { "S:* OK [CAPABILITY IMAP4rev1] "
					      "ready",
					      "C:LOGIN \"user\" \"s3cret-PW\"",
					      "S:$T OK logged in", CAPS_AGAIN,
					      NULL };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	imap_conn_free(conn);
	assert_script_done(srv);
}

/* A login that fails: NULL, error in domain IMAP_ERROR with code. */
static void expect_login_failure(const char *const *script, int code,
				 const char *words)
{
	static const char *const *scripts[2];
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapAccount a;

	scripts[0] = script;
	srv = scripted_server_new(scripts);
	a = account_for(srv);
	g_assert_null(imap_conn_open(&a, &error));
	g_assert_error(error, IMAP_ERROR, code);
	g_assert_nonnull(strstr(error->message, words));
	g_assert_null(strstr(error->message, "s3cret"));
	g_assert_null(strstr(error->message, PLAIN_IR));
	assert_script_done(srv);
}

static void test_login_refused(void)
{
	static const char *const refused[] = {
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",
		"C:AUTHENTICATE PLAIN *",
		"S:$T NO [AUTHENTICATIONFAILED] Invalid credentials", NULL
	};
	static const char *const busy[] = {
		"S:* OK [CAPABILITY IMAP4rev1] ready", "C:LOGIN *",
		"S:$T NO Too many connections, try again later", NULL
	};
	static const char *const disabled[] = {
		"S:* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=XOAUTH2] hi",
		NULL
	};

	expect_login_failure(refused, IMAP_ERROR_AUTH, "Invalid credentials");
	expect_login_failure(busy, IMAP_ERROR_THROTTLED, "try again later");
	expect_login_failure(disabled, IMAP_ERROR_AUTH, "no login mechanism");
}

#define XOAUTH2_IR "dXNlcj11c2VyAWF1dGg9QmVhcmVyIHRvay0xMjMBAQ=="
#define BEARER_FAIL                                                            \
	"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciJ9"

/* Open with an access token (ImapAccount.bearer) and mechanism auth on a
 * one-connection script. NULL and error set on failure. */
static ImapConn *open_bearer(const char *const *script, ImapAuthMech auth,
			     ScriptedServer **srv, GError **error)
{
	static const char *const *scripts[2];
	ImapAccount a;

	scripts[0] = script;
	scripts[1] = NULL;
	*srv = scripted_server_new(scripts);
	a = account_for(*srv);
	a.password = "tok-123";
	a.bearer = true;
	a.auth = auth;
	return imap_conn_open(&a, error);
}

/* XOAUTH2 without SASL-IR: the initial response answers the "+";
 * OAUTHBEARER is preferred by auto when offered. */
static void test_login_bearer(void)
{
	static const char *const xoauth2[] = {
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2] ready",
		"C:AUTHENTICATE XOAUTH2",
		"S:+ ",
		"L:" XOAUTH2_IR,
		"S:$T OK logged in",
		CAPS_AGAIN,
		NULL
	};
	static const char *const both[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 "
		"AUTH=OAUTHBEARER] ready",
		"C:AUTHENTICATE OAUTHBEARER "
		"bixhPXVzZXIsAWhvc3Q9MTI3LjAuMC4xAXBvcnQ9*",
		"S:$T OK logged in", CAPS_AGAIN, NULL
	};
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapConn *conn;

	conn = open_bearer(xoauth2, IMAP_AUTH_AUTO, &srv, &error);
	g_assert_no_error(error);
	imap_conn_free(conn);
	assert_script_done(srv);
	conn = open_bearer(both, IMAP_AUTH_AUTO, &srv, &error);
	g_assert_no_error(error);
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* A refused token: the server's JSON challenge is acknowledged (an empty
 * line for XOAUTH2, "\1" for OAUTHBEARER) and the NO is an auth error
 * that names neither the token nor the response. */
static void test_login_bearer_refused(void)
{
	static const char *const xoauth2[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 "
		"AUTH=OAUTHBEARER] ready",
		"C:AUTHENTICATE XOAUTH2 " XOAUTH2_IR,
		"S:+ " BEARER_FAIL,
		"L:",
		"S:$T NO [AUTHENTICATIONFAILED] Authentication failed.",
		NULL
	};
	static const char *const oauthbearer[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready",
		"C:AUTHENTICATE OAUTHBEARER *",
		"S:+ " BEARER_FAIL,
		"L:AQ==",
		"S:$T NO [AUTHENTICATIONFAILED] Authentication failed.",
		NULL
	};
	static const char *const plain_only[] = {
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready", NULL
	};
	const char *const *scripts[] = { xoauth2, oauthbearer, plain_only };
	const ImapAuthMech mechs[] = { IMAP_AUTH_XOAUTH2, IMAP_AUTH_AUTO,
				       IMAP_AUTH_AUTO };
	const char *words[] = { "access token was refused",
				"access token was refused",
				"neither OAUTHBEARER nor XOAUTH2" };

	for (size_t i = 0; i < G_N_ELEMENTS(scripts); i++) {
		g_autoptr(GError) error = NULL;
		ScriptedServer *srv;

		g_assert_null(open_bearer(scripts[i], mechs[i], &srv, &error));
		g_assert_error(error, IMAP_ERROR, IMAP_ERROR_AUTH);
		g_assert_nonnull(strstr(error->message, words[i]));
		g_assert_null(strstr(error->message, "tok-123"));
		g_assert_null(strstr(error->message, XOAUTH2_IR));
		assert_script_done(srv);
	}
}

/* Tagged NO and BAD map to errno; the connection stays usable. */
static void test_refusals(void)
{
	static const char *const script[] = {
		LOGIN_SASL_IR,
		"C:NOOP",
		"S:$T NO [UNAVAILABLE] busy",
		"C:NOOP",
		"S:$T NO [AUTHORIZATIONFAILED] not you",
		"C:NOOP",
		"S:$T BAD what",
		"C:NOOP",
		"C:CHECK",
		"S:A6 NO [LIMIT] slow down",
		"S:A7 OK checked",
		NULL
	};
	char noop[] = "NOOP", check[] = "CHECK";
	char *lines[] = { noop, check };
	int statuses[2];
	GError *error = NULL;
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-EAGAIN);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_NO);
	g_clear_error(&error);
	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-EACCES);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_NO);
	g_clear_error(&error);
	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-EIO);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_BAD);
	g_assert_cmpstr(imap_conn_refusal_text(conn), ==, "what");
	g_clear_error(&error);
	g_assert_cmpint(
	    imap_conn_pipeline(conn, lines, 2, statuses, NULL, NULL, &error),
	    ==, 0);
	g_assert_cmpint(statuses[0], ==, -EAGAIN);
	g_assert_cmpint(statuses[1], ==, 0);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_NO);
	g_clear_error(&error);
	g_assert_false(imap_conn_is_broken(conn));
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* A sink that counts its calls. */
typedef struct {
	int begun, written, discarded;
} SinkCount;

static SinkCount sink_count;

static void *count_begin(void *user_data, uint64_t size)
{
	(void)user_data;
	(void)size;
	sink_count.begun++;
	return &sink_count;
}

static int count_write(void *user_data, void *sink, const void *buf, size_t len)
{
	(void)user_data;
	(void)sink;
	(void)buf;
	sink_count.written += (int)len;
	return 0;
}

static void count_discard(void *user_data, void *sink)
{
	(void)user_data;
	(void)sink;
	sink_count.discarded++;
}

static const ImapLiteralSink counting_sink = { count_begin, count_write,
					       count_discard };

static int count_untagged(void *user_data, ImapResponse *r)
{
	(void)r;
	(*(int *)user_data)++;
	return 0;
}

/* The server goes away after 10 of 100000 literal bytes: the command
 * fails once, nothing reaches the untagged callback, and the half-written
 * sink is discarded exactly once. */
static void test_cut_mid_literal(void)
{
	static const char *const script[] = {
		LOGIN_SASL_IR, "C:UID FETCH 1 BODY[]",
		"R:* 1 FETCH (UID 1 BODY[] {100000}\r\n0123456789", "CUT", NULL
	};
	static const char *const *scripts[] = { script, NULL };
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv = scripted_server_new(scripts);
	ImapAccount a = account_for(srv);
	ImapConn *conn;
	int calls = 0;
	int rc;

	memset(&sink_count, 0, sizeof(sink_count));
	conn = imap_conn_open(&a, &error);
	g_assert_no_error(error);
	rc = imap_conn_command_sink(conn, &counting_sink, NULL, count_untagged,
				    &calls, &error, "UID FETCH 1 BODY[]");
	g_assert_cmpint(rc, <, 0);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_CLOSED);
	g_assert_cmpint(calls, ==, 0);
	g_assert_true(imap_conn_is_broken(conn));
	g_assert_cmpint(sink_count.begun, ==, 1);
	g_assert_cmpint(sink_count.written, <=, 10);
	/* A broken connection refuses further commands at once. */
	g_clear_error(&error);
	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-EIO);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_CLOSED);
	imap_conn_free(conn);
	g_assert_cmpint(sink_count.discarded, ==, 1);
	assert_script_done(srv);
}

/* Large literals go to the sink of the command they answer: a command
 * without one reads and drops them, and the next command's sink gets its
 * own literal whole. */
static void test_sink_per_command(void)
{
	static const char *const script[] = {
		LOGIN_SASL_IR,
		"C:UID FETCH 1 BODY[]",
		"R:* 1 FETCH (UID 1 BODY[] {70000}\r\n",
		"FILL:70000",
		"S:)",
		"S:$T OK fetched",
		"C:UID FETCH 2 BODY[]",
		"R:* 2 FETCH (UID 2 BODY[] {80000}\r\n",
		"FILL:80000",
		"S:)",
		"S:$T OK fetched",
		NULL
	};
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);
	int calls = 0;

	memset(&sink_count, 0, sizeof(sink_count));
	g_assert_cmpint(imap_conn_command(conn, count_untagged, &calls, &error,
					  "UID FETCH 1 BODY[]"),
			==, 0);
	g_assert_no_error(error);
	g_assert_cmpint(calls, ==, 1);
	g_assert_cmpint(sink_count.begun, ==, 0);
	g_assert_cmpint(imap_conn_command_sink(conn, &counting_sink, NULL,
					       count_untagged, &calls, &error,
					       "UID FETCH 2 BODY[]"),
			==, 0);
	g_assert_no_error(error);
	g_assert_cmpint(calls, ==, 2);
	g_assert_cmpint(sink_count.begun, ==, 1);
	g_assert_cmpint(sink_count.written, ==, 80000);
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* A server that reads the command and says nothing: the wait limit fires
 * and the connection is broken. */
static void test_stall(void)
{
	static const char *const script[] = { LOGIN_SASL_IR, "C:NOOP", "STALL",
					      NULL };
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);
	gint64 start;

	imap_conn_set_wait_limit(conn, 300);
	start = g_get_monotonic_time();
	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-ETIMEDOUT);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_TIMEOUT);
	g_assert_cmpint(g_get_monotonic_time() - start, <, 2 * G_USEC_PER_SEC);
	g_assert_true(imap_conn_is_broken(conn));
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* BYE in the middle of a command: -ECONNRESET, throttled by its words. */
static void test_bye(void)
{
	static const char *const script[] = { LOGIN_SASL_IR, "C:NOOP",
					      "S:* BYE Too many connections",
					      "CUT", NULL };
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	g_assert_cmpint(imap_conn_command(conn, NULL, NULL, &error, "NOOP"), ==,
			-ECONNRESET);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_THROTTLED);
	g_assert_cmpstr(imap_conn_refusal_text(conn), ==,
			"Too many connections");
	imap_conn_free(conn);
	assert_script_done(srv);
}

/* IDLE: the continuation, untagged data while idling, DONE; a refused
 * IDLE maps to errno like any refusal. */
static void test_idle(void)
{
	static const char *const script[] = {
		LOGIN_SASL_IR, "C:IDLE",
		"S:+ idling",  "S:* 3 EXISTS",
		"L:DONE",      "S:$T OK done",
		"C:IDLE",      "S:$T NO [UNAVAILABLE] not now",
		NULL
	};
	g_autoptr(GError) error = NULL;
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);
	int calls = 0;

	g_assert_cmpint(imap_conn_idle_start(conn, &error), ==, 0);
	g_assert_cmpint(
	    imap_conn_idle_wait(conn, 2000, count_untagged, &calls, &error), ==,
	    1);
	g_assert_cmpint(calls, ==, 1);
	g_assert_cmpint(imap_conn_idle_done(conn, NULL, NULL, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpint(imap_conn_idle_start(conn, &error), ==, -EAGAIN);
	g_assert_error(error, IMAP_ERROR, IMAP_ERROR_NO);
	g_assert_false(imap_conn_is_broken(conn));
	imap_conn_free(conn);
	assert_script_done(srv);
}

int main(int argc, char **argv)
{
	alarm(60); /* never hang: SIGALRM ends the test as a failure */
	/* As in the daemon (libfuse's handlers): a write to a cut
	 * connection fails with EPIPE instead of killing us. */
	signal(SIGPIPE, SIG_IGN);
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap-conn/login-sasl-ir", test_login_sasl_ir);
	g_test_add_func("/imap-conn/login-continuation",
			test_login_continuation);
	g_test_add_func("/imap-conn/login-command", test_login_command);
	g_test_add_func("/imap-conn/login-refused", test_login_refused);
	g_test_add_func("/imap-conn/login-bearer", test_login_bearer);
	g_test_add_func("/imap-conn/login-bearer-refused",
			test_login_bearer_refused);
	g_test_add_func("/imap-conn/refusals", test_refusals);
	g_test_add_func("/imap-conn/cut-mid-literal", test_cut_mid_literal);
	g_test_add_func("/imap-conn/sink-per-command", test_sink_per_command);
	g_test_add_func("/imap-conn/stall", test_stall);
	g_test_add_func("/imap-conn/bye", test_bye);
	g_test_add_func("/imap-conn/idle", test_idle);
	return g_test_run();
}
