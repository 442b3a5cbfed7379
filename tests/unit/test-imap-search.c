/* Unit tests of imap/search.c (a query as SEARCH criteria; SEARCH and
 * ESEARCH answers) and of imap/search-run.c against a scripted server:
 * MULTISEARCH, synchronising literals, a refused search. */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "imap/conn.h"
#include "imap/search-run.h"
#include "imap/search.h"
#include "tests/unit/scripted-server.h"

/* The criteria for query as one string (chunks joined by "|"), or NULL
 * with *why set when it is refused. */
static char *compile(const char *query, unsigned caps, char **why)
{
	g_autoptr(GPtrArray) chunks = NULL;
	int rc = imap_search_compile(query, caps, &chunks, why);

	if (rc < 0) {
		g_assert_cmpint(rc, ==, -EINVAL);
		g_assert_null(chunks);
		g_assert_nonnull(*why);
		return NULL;
	}
	g_assert_null(*why);
	g_ptr_array_add(chunks, NULL);
	return g_strjoinv("|", (char **)chunks->pdata);
}

static void expect(const char *query, unsigned caps, const char *want)
{
	g_autofree char *why = NULL;
	g_autofree char *got = compile(query, caps, &why);

	g_assert_cmpstr(got, ==, want);
}

static void expect_refused(const char *query, unsigned caps, const char *words)
{
	g_autofree char *why = NULL;
	g_autofree char *got = compile(query, caps, &why);

	g_assert_null(got);
	if (!strstr(why, words))
		g_printerr("%s: %s\n", query, why);
	g_assert_nonnull(strstr(why, words));
}

static void test_criteria(void)
{
	expect("FROM alice SINCE 1-Jan-2024", 0,
	       "FROM \"alice\" SINCE 1-Jan-2024");
	expect("unseen", 0, "UNSEEN");
	expect("LARGER 1000000", 0, "LARGER 1000000");
	expect("HEADER List-Id foo", 0, "HEADER \"List-Id\" \"foo\"");
	expect("OR FROM a (NOT SEEN TO \"b c\")", 0,
	       "OR FROM \"a\" (NOT SEEN TO \"b c\")");
	expect("not keyword $Label1", 0, "NOT KEYWORD $Label1");
	expect("UID 1:5,9:*", 0, "UID 1:5,9:*");
	expect("SUBJECT \"say \\\"hi\\\"\"", 0, "SUBJECT \"say \\\"hi\\\"\"");
	expect("SUBJECT a\\b", 0, "SUBJECT \"a\\\\b\"");
	expect("OLDER 3600", 0, "OLDER 3600");
}

static void test_full_text(void)
{
	expect("invoice 2024-117", 0, "TEXT \"invoice 2024-117\"");
	expect("\"to do list\"", 0, "TEXT \"to do list\"");
	expect("  spaced out  ", 0, "TEXT \"spaced out\"");
	g_assert_true(imap_search_is_criteria("FROM x"));
	g_assert_true(imap_search_is_criteria("(SEEN)"));
	g_assert_false(imap_search_is_criteria("hello world"));
	g_assert_false(imap_search_is_criteria("gmail:from:x"));
}

static void test_non_ascii(void)
{
	expect("SUBJECT Köln", IMAP_SEARCH_LITERAL_PLUS,
	       "CHARSET UTF-8 SUBJECT {5+}\r\nKöln");
	expect("Grüße", IMAP_SEARCH_LITERAL_MINUS,
	       "CHARSET UTF-8 TEXT {7+}\r\nGrüße");
	/* Without LITERAL+: a chunk per synchronising literal. */
	expect("SUBJECT Köln FROM ö", 0,
	       "CHARSET UTF-8 SUBJECT {5}|Köln FROM {2}|ö");
	expect("SUBJECT Köln SEEN", 0, "CHARSET UTF-8 SUBJECT {5}|Köln SEEN");
}

static void test_gmail(void)
{
	expect("gmail:from:alice has:attachment", IMAP_SEARCH_GMAIL,
	       "X-GM-RAW \"from:alice has:attachment\"");
	expect("X-GM-LABELS work", IMAP_SEARCH_GMAIL, "X-GM-LABELS \"work\"");
	expect_refused("gmail:from:alice", 0, "Gmail");
	expect_refused("gmail:  ", IMAP_SEARCH_GMAIL, "empty");
	expect_refused("X-GM-RAW x", 0, "not a search key");
}

/* Nothing the user types may end the command or start another. */
static void test_refused(void)
{
	g_autofree char *big = g_strnfill(IMAP_SEARCH_QUERY_MAX + 1, 'a');
	g_autofree char *deep = NULL;
	GString *d = g_string_new(NULL);

	expect_refused("FROM", 0, "needs an argument");
	expect_refused("FROM alice BOGUS", 0, "not a search key");
	expect_refused("SINCE yesterday", 0, "date");
	expect_refused("SINCE \"1-Jan-2024\"", 0, "quoted");
	expect_refused("LARGER 1k", 0, "number");
	expect_refused("KEYWORD a\\b", 0, "keyword");
	expect_refused("KEYWORD a]b", 0, "keyword");
	expect_refused("UID 1:5)", 0, "not a search key");
	expect_refused("UID 1;DELETE", 0, "UID set");
	expect_refused("(SEEN", 0, "not closed");
	expect_refused("()", 0, "empty parentheses");
	expect_refused("SEEN )", 0, "not a search key");
	expect_refused("FROM \"open", 0, "closing quote");
	expect_refused("FROM a\r\nA1 DELETE INBOX", 0, "line break");
	expect_refused("text\nmore", 0, "line break");
	expect_refused("\xff\xfe", 0, "UTF-8");
	expect_refused(big, 0, "longer");
	expect_refused("", 0, "empty");
	expect_refused("\"\"", 0, "empty");
	for (int i = 0; i < 40; i++)
		g_string_append(d, "NOT ");
	g_string_append(d, "SEEN");
	deep = g_string_free(d, FALSE);
	expect_refused(deep, 0, "deeply");
}

static ImapResponse *parse(const char *line)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used = 0;

	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &used, &r), ==,
			1);
	imap_parser_free(p);
	return r;
}

static int parse_answer(const char *line, GArray *uids, ImapSearchSource *src)
{
	ImapResponse *r = parse(line);
	int rc;

	g_array_set_size(uids, 0);
	imap_search_source_clear(src);
	rc = imap_search_parse(r, uids, src);
	imap_response_free(r);
	return rc;
}

static void test_answers(void)
{
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	ImapSearchSource src = { 0 };

	g_assert_cmpint(parse_answer("* SEARCH 3 5 9\r\n", uids, &src), ==, 1);
	g_assert_cmpuint(uids->len, ==, 3);
	g_assert_cmpuint(g_array_index(uids, uint32_t, 2), ==, 9);
	g_assert_null(src.tag);
	g_assert_cmpint(parse_answer("* SEARCH\r\n", uids, &src), ==, 1);
	g_assert_cmpuint(uids->len, ==, 0);
	g_assert_cmpint(
	    parse_answer("* SEARCH 2 5 (MODSEQ 917162500)\r\n", uids, &src), ==,
	    1);
	g_assert_cmpuint(uids->len, ==, 2);
	g_assert_cmpint(parse_answer("* ESEARCH (TAG \"A7\" MAILBOX \"a b\" "
				     "UIDVALIDITY 42) UID ALL 3,5:7\r\n",
				     uids, &src),
			==, 1);
	g_assert_cmpstr(src.tag, ==, "A7");
	g_assert_cmpstr(src.mailbox, ==, "a b");
	g_assert_cmpuint(src.uidvalidity, ==, 42);
	g_assert_cmpuint(uids->len, ==, 4);
	g_assert_cmpuint(g_array_index(uids, uint32_t, 3), ==, 7);
	g_assert_cmpint(
	    parse_answer("* ESEARCH (TAG \"A8\") UID\r\n", uids, &src), ==, 1);
	g_assert_cmpuint(uids->len, ==, 0);
	g_assert_cmpint(parse_answer("* ESEARCH (TAG \"A8\")\r\n", uids, &src),
			==, 1);
	g_assert_cmpint(
	    parse_answer("* ESEARCH (TAG \"A9\") UID MIN 3 ALL 3\r\n", uids,
			 &src),
	    ==, 1);
	g_assert_cmpuint(uids->len, ==, 1);
	g_assert_cmpint(parse_answer("* 3 EXISTS\r\n", uids, &src), ==, 0);
	g_assert_cmpint(parse_answer("* SEARCH 0\r\n", uids, &src), ==,
			-EPROTO);
	g_assert_cmpint(parse_answer("* SEARCH x\r\n", uids, &src), ==,
			-EPROTO);
	g_assert_cmpint(parse_answer("* ESEARCH ALL 1:3\r\n", uids, &src), ==,
			-EPROTO);
	g_assert_cmpint(
	    parse_answer("* ESEARCH UID ALL 1:4294967295\r\n", uids, &src), ==,
	    -E2BIG);
	g_assert_cmpint(parse_answer("* ESEARCH UID ALL 1,,2\r\n", uids, &src),
			==, -EPROTO);
	imap_search_source_clear(&src);
}

/* ---- against a scripted server ---- */

#define LOGIN(caps)                                                            \
	"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",              \
	    "C:AUTHENTICATE PLAIN AHVzZXIAczNjcmV0LVBX", "S:$T OK in",         \
	    "C:CAPABILITY", "S:* CAPABILITY IMAP4rev1 " caps, "S:$T OK done"

static ImapConn *open_on(const char *const *script, ScriptedServer **srv)
{
	static const char *const *scripts[2];
	g_autoptr(GError) error = NULL;
	ImapAccount a = { .host = "127.0.0.1",
			  .implicit_tls = true,
			  .user = "user",
			  .password = "s3cret-PW",
			  .insecure = true,
			  .timeout_ms = 3000 };
	ImapConn *conn;

	scripts[0] = script;
	*srv = scripted_server_new(scripts);
	a.port = scripted_server_port(*srv);
	conn = imap_conn_open(&a, &error);
	g_assert_no_error(error);
	return conn;
}

static void finish(ImapConn *conn, ScriptedServer *srv)
{
	g_autofree char *failure = NULL;

	imap_conn_free(conn);
	failure = scripted_server_finish(srv);
	g_assert_cmpstr(failure, ==, NULL);
	scripted_server_free(srv);
}

static void targets_init(ImapSearchTarget *t, const char *const *names,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		t[i].mailbox = (char *)names[i];
		t[i].uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	}
}

static void targets_clear(ImapSearchTarget *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g_array_unref(t[i].uids);
}

static void test_run_multisearch(void)
{
	static const char *const script[] = {
		LOGIN("MULTISEARCH ESEARCH"),
		"C:ESEARCH IN (mailboxes (\"INBOX\" \"Work\")) RETURN (ALL) "
		"FROM \"alice\"",
		"S:* ESEARCH (TAG \"$T\" MAILBOX \"Work\" UIDVALIDITY 7) UID "
		"ALL 4,3",
		"S:$T OK done",
		"C:ESEARCH IN (mailboxes (\"INBOX\" \"Work\")) RETURN (ALL) "
		"SINCE 1-Foo-2024",
		"S:$T BAD Invalid search date",
		NULL
	};
	static const char *const names[] = { "INBOX", "Work" };
	g_autoptr(GError) error = NULL;
	ImapSearchTarget t[2] = { 0 };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	targets_init(t, names, 2);
	g_assert_cmpint(imap_search_run(conn, "FROM alice", t, 2, &error), ==,
			0);
	g_assert_no_error(error);
	g_assert_cmpuint(t[0].uids->len, ==, 0);
	g_assert_cmpuint(t[1].uids->len, ==, 2);
	g_assert_cmpuint(g_array_index(t[1].uids, uint32_t, 0), ==, 3);
	g_assert_cmpuint(t[1].uidvalidity, ==, 7);
	g_assert_cmpint(imap_search_run(conn, "SINCE 1-Foo-2024", t, 2, &error),
			==, -EINVAL);
	g_assert_nonnull(strstr(error->message, "Invalid search date"));
	targets_clear(t, 2);
	finish(conn, srv);
}

static void test_run_literal(void)
{
	static const char *const script[] = {
		LOGIN(""),
		"C:EXAMINE \"INBOX\"",
		"S:* OK [UIDVALIDITY 9] ok",
		"S:$T OK [READ-ONLY] done",
		"C:UID SEARCH CHARSET UTF-8 SUBJECT {5}",
		"S:+ go on",
		"L:Köln SEEN",
		"S:* SEARCH 5 2",
		"S:$T OK done",
		NULL
	};
	static const char *const names[] = { "INBOX" };
	g_autoptr(GError) error = NULL;
	ImapSearchTarget t[1] = { 0 };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	targets_init(t, names, 1);
	g_assert_cmpint(
	    imap_search_run(conn, "SUBJECT Köln SEEN", t, 1, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(t[0].uidvalidity, ==, 9);
	g_assert_cmpuint(t[0].uids->len, ==, 2);
	g_assert_cmpuint(g_array_index(t[0].uids, uint32_t, 0), ==, 2);
	targets_clear(t, 1);
	finish(conn, srv);
}

/* Pipelined: the answers go to the folder whose commands they follow, and
 * a folder that cannot be opened fails alone; a refused search fails with
 * the server's words. The login took tags A1 and A2, so the pipelines'
 * are A3 to A8, then A9 and A10. */
static void test_run_pipelined(void)
{
	static const char *const script[] = {
		LOGIN(""), "C:EXAMINE \"A\"", "C:UID SEARCH UNSEEN",
		"C:EXAMINE \"B\"", "C:UID SEARCH UNSEEN", "C:EXAMINE \"C\"",
		"C:UID SEARCH UNSEEN", "S:* OK [UIDVALIDITY 1] a", "S:A3 OK a",
		"S:* SEARCH 1 2", "S:A4 OK a", "S:A5 NO no such folder",
		"S:A6 BAD no folder selected", "S:* OK [UIDVALIDITY 3] c",
		"S:A7 OK c", "S:* SEARCH 7", "S:$T OK c",
		/* refused: asked again alone */
		"C:EXAMINE \"A\"", "C:UID SEARCH SINCE 1-Foo-2024", "S:A9 OK a",
		"S:A10 BAD bad date", "C:EXAMINE \"A\"",
		"S:* OK [UIDVALIDITY 1] a", "S:$T OK a",
		"C:UID SEARCH SINCE 1-Foo-2024", "S:$T BAD Invalid search date",
		NULL
	};
	static const char *const names[] = { "A", "B", "C" };
	g_autoptr(GError) error = NULL;
	ImapSearchTarget t[3] = { 0 };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	targets_init(t, names, 3);
	g_assert_cmpint(imap_search_run(conn, "UNSEEN", t, 3, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_cmpint(t[0].status, ==, 0);
	g_assert_cmpuint(t[0].uids->len, ==, 2);
	g_assert_cmpuint(t[0].uidvalidity, ==, 1);
	g_assert_cmpint(t[1].status, <, 0);
	g_assert_cmpuint(t[1].uids->len, ==, 0);
	g_assert_cmpint(t[2].status, ==, 0);
	g_assert_cmpuint(t[2].uids->len, ==, 1);
	g_assert_cmpuint(t[2].uidvalidity, ==, 3);
	g_assert_null(imap_conn_selected(conn));
	g_assert_cmpint(imap_search_run(conn, "SINCE 1-Foo-2024", t, 1, &error),
			==, -EINVAL);
	g_assert_nonnull(strstr(error->message, "Invalid search date"));
	targets_clear(t, 3);
	finish(conn, srv);
}

/* Gmail: "gmail:" becomes X-GM-RAW, with the selected folder searched
 * at once (no EXAMINE; a NOOP in the same round trip, so that the search
 * sees what arrived since the EXAMINE). Tags: A3 EXAMINE, A4 NOOP. */
static void test_run_gmail(void)
{
	static const char *const script[] = {
		LOGIN("X-GM-EXT-1"),
		"C:EXAMINE \"INBOX\"",
		"S:* OK [UIDVALIDITY 11] ok",
		"S:$T OK [READ-ONLY] done",
		"C:NOOP",
		"C:UID SEARCH X-GM-RAW \"from:alice has:attachment\"",
		"S:* 13 EXISTS",
		"S:A4 OK noop",
		"S:* SEARCH 12 4",
		"S:$T OK done",
		NULL
	};
	static const char *const names[] = { "INBOX" };
	g_autoptr(GError) error = NULL;
	ImapSearchTarget t[1] = { 0 };
	ScriptedServer *srv;
	ImapConn *conn = open_on(script, &srv);

	targets_init(t, names, 1);
	g_assert_cmpint(imap_conn_examine(conn, "INBOX", NULL, &error), ==, 0);
	g_assert_cmpint(imap_search_run(conn, "gmail:from:alice has:attachment",
					t, 1, &error),
			==, 0);
	g_assert_no_error(error);
	g_assert_cmpuint(t[0].uids->len, ==, 2);
	g_assert_cmpuint(g_array_index(t[0].uids, uint32_t, 1), ==, 12);
	g_assert_cmpstr(imap_conn_selected(conn), ==, "INBOX");
	targets_clear(t, 1);
	finish(conn, srv);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/search/criteria", test_criteria);
	g_test_add_func("/search/full-text", test_full_text);
	g_test_add_func("/search/non-ascii", test_non_ascii);
	g_test_add_func("/search/gmail", test_gmail);
	g_test_add_func("/search/refused", test_refused);
	g_test_add_func("/search/answers", test_answers);
	g_test_add_func("/search/run-multisearch", test_run_multisearch);
	g_test_add_func("/search/run-literal", test_run_literal);
	g_test_add_func("/search/run-pipelined", test_run_pipelined);
	g_test_add_func("/search/run-gmail", test_run_gmail);
	return g_test_run();
}
