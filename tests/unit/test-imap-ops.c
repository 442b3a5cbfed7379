/* Unit tests for the pure helpers of imap/ops.c: INTERNALDATE parsing and
 * Subject extraction from a HEADER.FIELDS answer. */
#include <glib.h>
#include <string.h>

#include "imap/ops.h"

static void test_internaldate(void)
{
	int64_t t = 0;

	g_assert_true(
	    imap_parse_internaldate("17-Jul-1996 02:44:25 -0700", &t));
	g_assert_cmpint(t, ==, 837596665);
	g_assert_true(
	    imap_parse_internaldate(" 1-Jan-1970 00:00:00 +0000", &t));
	g_assert_cmpint(t, ==, 0);
	g_assert_true(
	    imap_parse_internaldate("29-Feb-2024 23:59:59 +0130", &t));
	g_assert_cmpint(t, ==, 1709251199 - 5400);
	g_assert_true(
	    imap_parse_internaldate("01-mar-2000 12:00:00 +0000", &t));
	g_assert_cmpint(t, ==, 951912000);

	g_assert_false(imap_parse_internaldate("", &t));
	g_assert_false(
	    imap_parse_internaldate("17-Jux-1996 02:44:25 -0700", &t));
	g_assert_false(
	    imap_parse_internaldate("17-Jul-1996 24:44:25 -0700", &t));
	g_assert_false(
	    imap_parse_internaldate("17-Jul-1996 02:44:25 0700", &t));
	g_assert_false(
	    imap_parse_internaldate("32-Jul-1996 02:44:25 -0700", &t));
	g_assert_false(
	    imap_parse_internaldate("17-Jul-1996 02:44:25 -0760", &t));
}

static void check_subject(const char *block, const char *want)
{
	size_t len = 0;
	g_autofree char *s = imap_extract_subject(block, strlen(block), &len);

	if (!want) {
		g_assert_null(s);
		return;
	}
	g_assert_nonnull(s);
	g_assert_cmpstr(s, ==, want);
	g_assert_cmpuint(len, ==, strlen(want));
}

static void test_subject(void)
{
	check_subject("Subject: hello\r\n\r\n", "hello");
	check_subject("subject:hello\r\n\r\n", "hello");
	check_subject("SUBJECT:   spaced   \r\n\r\n", "spaced");
	check_subject("Subject: folded\r\n  twice\r\n\tthrice\r\n\r\n",
		      "folded  twice\tthrice");
	check_subject("Subject: lf only\n next\n\n", "lf only next");
	check_subject("Subject:\r\n\r\n", "");
	check_subject("\r\n", NULL);
	check_subject("", NULL);
	check_subject("X-Subject: no\r\n\r\n", NULL);
	check_subject("Subject: no final newline", "no final newline");
	check_subject("Subject: =?utf-8?B?w6Q=?=\r\n\r\n", "=?utf-8?B?w6Q=?=");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap-ops/internaldate", test_internaldate);
	g_test_add_func("/imap-ops/subject", test_subject);
	return g_test_run();
}
