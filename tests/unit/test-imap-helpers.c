/* Unit tests for the helpers at the end of imap/ops.c that the watcher and
 * the resync use: reading VANISHED sets, writing UID sets. */
#include "imap/ops.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

static ImapResponse *parse(const char *line)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used = 0;
	int rc = imap_parser_feed(p, line, strlen(line), &used, &r);

	g_assert_cmpint(rc, ==, 1);
	imap_parser_free(p);
	return r;
}

static int vanished(const char *line, GArray *uids)
{
	ImapResponse *r = parse(line);
	int rc = imap_parse_vanished(r, uids);

	imap_response_free(r);
	return rc;
}

static void test_vanished(void)
{
	static const uint32_t want[] = { 41, 43, 44, 45, 50 };
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));

	g_assert_cmpint(vanished("* VANISHED (EARLIER) 50,43:45,41\r\n", uids),
			==, 0);
	g_assert_cmpuint(uids->len, ==, G_N_ELEMENTS(want));
	for (guint i = 0; i < uids->len; i++)
		g_assert_cmpuint(g_array_index(uids, uint32_t, i), ==, want[i]);

	g_array_set_size(uids, 0);
	g_assert_cmpint(vanished("* VANISHED 405\r\n", uids), ==, 0);
	g_assert_cmpuint(uids->len, ==, 1);
	g_assert_cmpuint(g_array_index(uids, uint32_t, 0), ==, 405);

	g_assert_cmpint(vanished("* 3 EXPUNGE\r\n", uids), ==, -EINVAL);
	g_assert_cmpint(vanished("* VANISHED\r\n", uids), ==, -EPROTO);
	g_assert_cmpint(vanished("* VANISHED 0:3\r\n", uids), ==, -EPROTO);
	g_assert_cmpint(vanished("* VANISHED 1:4294967295\r\n", uids), ==,
			-E2BIG);
}

static void test_uid_set(void)
{
	static const uint32_t in[] = { 5, 7, 8, 9, 12, 13 };
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	g_autofree char *empty = imap_uid_set(uids);
	g_autofree char *set = NULL;

	g_assert_cmpstr(empty, ==, "");
	g_array_append_vals(uids, in, G_N_ELEMENTS(in));
	set = imap_uid_set(uids);
	g_assert_cmpstr(set, ==, "5,7:9,12:13");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap-helpers/vanished", test_vanished);
	g_test_add_func("/imap-helpers/uid-set", test_uid_set);
	return g_test_run();
}
