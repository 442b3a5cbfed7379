/* Unit tests of what a new user meets first: the -d line of a server
 * response (imap/status.c) and the mount table parser (fs/mountcheck.c). */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "fs/mountcheck.h"
#include "imap/parser.h"
#include "imap/status.h"

static char *format(const char *line)
{
	ImapParserLimits lim;
	ImapParser *p;
	ImapResponse *r = NULL;
	size_t used = 0;
	char *out;

	imap_parser_limits_default(&lim);
	p = imap_parser_new(&lim, NULL, NULL);
	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &used, &r), ==,
			1);
	out = imap_status_format_response(r);
	imap_response_free(r);
	imap_parser_free(p);
	return out;
}

static void check(const char *line, const char *want)
{
	g_autofree char *got = format(line);

	g_assert_cmpstr(got, ==, want);
}

static void test_format(void)
{
	check("A2 OK Completed\r\n", "A2 OK Completed");
	check("A3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
	      "A3 NO [AUTHENTICATIONFAILED] Authentication failed.");
	check("A4 BAD Error in IMAP command\r\n",
	      "A4 BAD Error in IMAP command");
	check("* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n",
	      "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");
	check("* 23 EXISTS\r\n", "* 23 EXISTS");
	check("* OK [UIDVALIDITY 1700000000] UIDs valid\r\n",
	      "* OK [UIDVALIDITY 1700000000] UIDs valid");
	check("* BYE Logging out\r\n", "* BYE Logging out");
	/* Literals by their size only: message data stays out of the log. */
	check("* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n",
	      "* 1 FETCH (UID 7 BODY[] {5})");
	check("+ ready\r\n", "+ ready");
}

static void test_truncated(void)
{
	g_autoptr(GString) line = g_string_new("* SEARCH");
	g_autofree char *got = NULL;

	for (int i = 1; i <= 500; i++)
		g_string_append_printf(line, " %d", i);
	g_string_append(line, "\r\n");
	got = format(line->str);
	g_assert_true(g_str_has_prefix(got, "* SEARCH 1 2 3 "));
	g_assert_true(g_str_has_suffix(got, "..."));
	g_assert_cmpuint(strlen(got), <=, 203);
}

static void test_mountinfo(void)
{
	static const char text[] =
	    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	    "80 22 0:50 / /home/me/my\\040mail rw,nosuid,nodev,relatime "
	    "shared:40 - fuse.imapfs imaps://me@mail.example.org:993 "
	    "ro,user_id=1000,group_id=1000\n"
	    "garbage\n"
	    "81 22 0:51 / /mnt/x rw - fuse.sshfs me@host: rw\n";
	g_autoptr(GPtrArray) m = fs_mountcheck_parse(text);
	FsMountEntry *e;

	g_assert_cmpuint(m->len, ==, 3);
	e = g_ptr_array_index(m, 1);
	g_assert_cmpstr(e->mountpoint, ==, "/home/me/my mail");
	g_assert_cmpstr(e->fstype, ==, "fuse.imapfs");
	g_assert_cmpstr(e->source, ==, "imaps://me@mail.example.org:993");
	e = g_ptr_array_index(m, 2);
	g_assert_cmpstr(e->fstype, ==, "fuse.sshfs");
	g_assert_cmpstr(e->source, ==, "me@host:");
}

static void test_mountpoint(void)
{
	g_autofree char *dir = g_dir_make_tmp("imapfs-mc-XXXXXX", NULL);
	g_autofree char *file = g_build_filename(dir, "x", NULL);
	GError *error = NULL;

	g_assert_cmpint(fs_mountcheck_mountpoint(dir, false, &error), ==, 0);
	g_assert_no_error(error);
	g_assert_true(g_file_set_contents(file, "", 0, NULL));
	g_assert_cmpint(fs_mountcheck_mountpoint(dir, false, &error), ==, -1);
	g_assert_nonnull(strstr(error->message, "is not empty"));
	g_assert_nonnull(strstr(error->message, "-o nonempty"));
	g_clear_error(&error);
	g_assert_cmpint(fs_mountcheck_mountpoint(dir, true, &error), ==, 0);
	g_assert_null(fs_mountcheck_find_account("imaps://nobody@invalid:1"));
	g_unlink(file);
	g_rmdir(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/first-minutes/log-format", test_format);
	g_test_add_func("/first-minutes/log-truncated", test_truncated);
	g_test_add_func("/first-minutes/mountinfo", test_mountinfo);
	g_test_add_func("/first-minutes/mountpoint", test_mountpoint);
	return g_test_run();
}
