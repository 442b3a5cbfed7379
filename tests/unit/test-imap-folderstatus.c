/* Unit tests for imap/folderstatus.c: STATUS answers parsed by the real
 * parser, fed byte by byte. */
#include <glib.h>
#include <string.h>

#include "imap/folderstatus.h"

static ImapResponse *parse(const char *line)
{
	g_autoptr(GString) buf = g_string_new(line);
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;

	g_string_append(buf, "\r\n");
	for (size_t i = 0; i < buf->len && !r; i++) {
		size_t used = 0;

		g_assert_cmpint(imap_parser_feed(p, buf->str + i, 1, &used, &r),
				>=, 0);
	}
	imap_parser_free(p);
	g_assert_nonnull(r);
	return r;
}

static void test_parse(void)
{
	ImapResponse *r;
	ImapFolderStatus st;

	r = parse("* STATUS INBOX.Projects (MESSAGES 3 UIDNEXT 4 "
		  "UIDVALIDITY 1796621215 HIGHESTMODSEQ 4)");
	g_assert_true(imap_folder_status_parse(r, &st));
	g_assert_cmpstr(st.folder, ==, "INBOX.Projects");
	g_assert_true(st.has_messages && st.has_uidnext && st.has_uidvalidity &&
		      st.has_modseq);
	g_assert_cmpuint(st.messages, ==, 3);
	g_assert_cmpuint(st.uidnext, ==, 4);
	g_assert_cmpuint(st.uidvalidity, ==, 1796621215u);
	g_assert_cmpuint(st.highestmodseq, ==, 4);
	g_assert_false(st.changed);
	imap_response_free(r);

	r = parse("* STATUS \"INBOX.Q&-A\" (UIDNEXT 2 MESSAGES 1 "
		  "UIDVALIDITY 7)");
	g_assert_true(imap_folder_status_parse(r, &st));
	g_assert_cmpstr(st.folder, ==, "INBOX.Q&-A");
	g_assert_false(st.has_modseq);
	g_assert_cmpuint(st.uidnext, ==, 2);
	imap_response_free(r);

	/* out of range and unknown items are skipped */
	r = parse("* STATUS x (UIDNEXT 4294967296 X-FOO 1 MESSAGES NIL)");
	g_assert_true(imap_folder_status_parse(r, &st));
	g_assert_false(st.has_uidnext || st.has_messages);
	imap_response_free(r);

	r = parse("* STATUS x");
	g_assert_false(imap_folder_status_parse(r, &st));
	imap_response_free(r);
	r = parse("* STATUS x UIDNEXT");
	g_assert_false(imap_folder_status_parse(r, &st));
	imap_response_free(r);
	r = parse("* LIST () \".\" x");
	g_assert_false(imap_folder_status_parse(r, &st));
	imap_response_free(r);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/folderstatus/parse", test_parse);
	return g_test_run();
}
