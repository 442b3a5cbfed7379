/* Unit tests for what imapfs does about providers: message ids across
 * folders in a FETCH answer (imap/ops.c), the hard-link table
 * (fs/links.c) and the per-server switches of extensions (imap/quirks.c). */
#include <glib.h>
#include <string.h>

#include <errno.h>

#include "fs/links.h"
#include "fs/quota.h"
#include "imap/conn.h"
#include "imap/status.h"
#include "imap/limit.h"
#include "imap/ops.h"
#include "imap/quirks.h"

static uint64_t gid_of(const char *line)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used = 0;
	uint64_t gid;

	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &used, &r), ==,
			1);
	gid = imap_fetch_message_gid(&r->args.items[0]);
	imap_response_free(r);
	imap_parser_free(p);
	return gid;
}

static void test_gid(void)
{
	uint64_t a, b;

	g_assert_cmpuint(
	    gid_of("* 1 FETCH (UID 5 X-GM-MSGID 1278455344230334865"
		   " RFC822.SIZE 10)\r\n"),
	    ==, 1278455344230334865ull);
	g_assert_cmpuint(gid_of("* 1 FETCH (UID 5 RFC822.SIZE 10)\r\n"), ==, 0);
	a = gid_of("* 1 FETCH (UID 5 EMAILID (M6d99ac3275bb4e))\r\n");
	b = gid_of("* 9 FETCH (EMAILID (M6d99ac3275bb4e) UID 77)\r\n");
	g_assert_cmpuint(a, !=, 0);
	g_assert_cmpuint(a, ==, b);
	g_assert_cmpuint(gid_of("* 1 FETCH (UID 5 EMAILID (Mother))\r\n"), !=,
			 a);
	g_assert_cmpuint(gid_of("* 1 FETCH (UID 5 EMAILID NIL)\r\n"), ==, 0);
	g_assert_cmpuint(gid_of("* 1 FETCH (UID 5 EMAILID ())\r\n"), ==, 0);
}

static CacheFolderIndex *index_of(const uint32_t *uids, const uint64_t *gids,
				  guint n)
{
	CacheIndexBuilder *b = cache_index_builder_new(NULL);
	CacheFolderIndex hdr = { 0 };

	for (guint i = 0; i < n; i++) {
		CacheMessage m = { .uid = uids[i], .gid = gids[i] };

		g_assert_true(cache_index_builder_add(b, &m));
	}
	return cache_index_builder_finish(b, &hdr, NULL);
}

static void test_links(void)
{
	static const uint32_t u1[] = { 1, 2, 3 }, u2[] = { 100, 101 };
	static const uint64_t g1[] = { 7, 0, 9 }, g2[] = { 9, 7 };
	FsLinks *links = fs_links_new();
	CacheFolderIndex *inbox = index_of(u1, g1, 3);
	CacheFolderIndex *label = index_of(u2, g2, 2);
	CacheFolderIndex *shrunk = index_of(u2, g2, 1);
	g_autoptr(GArray) changed =
	    g_array_new(FALSE, FALSE, sizeof(fuse_ino_t));
	uint32_t fid = 0, uid = 0;

	g_assert_true(fs_links_is_link_ino(fs_links_ino(7)));
	g_assert_cmpuint(fs_links_ino(7), !=, fs_links_ino(9));
	g_assert_cmpuint(fs_links_ino(3ull << 62), ==, fs_links_ino(1));
	g_assert_cmpuint(fs_links_ino(7) >> 62, ==, 3); /* not fs/search.c's */
	fs_links_replace(links, 0, NULL, 10, inbox, changed);
	g_assert_cmpuint(changed->len, ==, 0);
	g_assert_cmpuint(fs_links_count(links, 7), ==, 1);
	fs_links_replace(links, 0, NULL, 20, label, changed);
	g_assert_cmpuint(changed->len, ==, 2); /* 9 and 7 gained a folder */
	g_assert_cmpuint(fs_links_count(links, 7), ==, 2);
	g_assert_cmpuint(fs_links_count(links, 9), ==, 2);
	/* Reads go to the first folder that had it, never the second. */
	g_assert_true(fs_links_resolve(links, fs_links_ino(9), &fid, &uid));
	g_assert_cmpuint(fid, ==, 10);
	g_assert_cmpuint(uid, ==, 3);
	g_assert_true(fs_links_is_home(links, 9, 10, 3));
	g_assert_false(fs_links_is_home(links, 9, 20, 100));
	/* A resync that changed nothing changes no count. */
	fs_links_replace(links, 10, inbox, 10, inbox, changed);
	g_assert_cmpuint(changed->len, ==, 2);
	g_assert_cmpuint(fs_links_count(links, 9), ==, 2);
	/* The home folder loses its messages: the label serves 9 now. */
	fs_links_replace(links, 10, inbox, 10, NULL, NULL);
	g_assert_cmpuint(fs_links_count(links, 9), ==, 1);
	g_assert_true(fs_links_resolve(links, fs_links_ino(9), &fid, &uid));
	g_assert_cmpuint(fid, ==, 20);
	g_assert_cmpuint(uid, ==, 100);
	fs_links_replace(links, 20, label, 20, shrunk, NULL);
	g_assert_false(fs_links_resolve(links, fs_links_ino(7), &fid, &uid));
	g_assert_true(fs_links_resolve(links, fs_links_ino(9), &fid, &uid));
	fs_links_replace(links, 20, shrunk, 20, NULL, NULL);
	g_assert_false(fs_links_resolve(links, fs_links_ino(9), &fid, &uid));
	cache_folder_index_free(inbox);
	cache_folder_index_free(label);
	cache_folder_index_free(shrunk);
	fs_links_free(links);
}

static void test_quirks(void)
{
	g_auto(GStrv) none =
	    imap_quirks_disabled(NULL, "imap.example.org", "Dovecot ready.");
	g_auto(GStrv) user =
	    imap_quirks_disabled("qresync, compress:x-gm-ext-1", NULL, NULL);
	g_auto(GStrv) icloud =
	    imap_quirks_disabled(NULL, "imap.mail.me.com", NULL);
	g_auto(GStrv) greeting = imap_quirks_disabled(
	    NULL, "127.0.0.1", "iSCREAM ready to rumble (1S:1127)");
	g_auto(GStrv) not_icloud =
	    imap_quirks_disabled(NULL, "evilmail.me.com.example", NULL);
	g_auto(GStrv) cond = imap_quirks_disabled("CONDSTORE", NULL, NULL);

	g_assert_cmpuint(g_strv_length(none), ==, 0);
	g_assert_false(imap_quirks_cap_disabled(none, "QRESYNC"));
	g_assert_true(imap_quirks_cap_disabled(user, "QRESYNC"));
	g_assert_true(imap_quirks_cap_disabled(user, "qresync"));
	g_assert_true(imap_quirks_cap_disabled(user, "COMPRESS=DEFLATE"));
	g_assert_true(imap_quirks_cap_disabled(user, "X-GM-EXT-1"));
	g_assert_false(imap_quirks_cap_disabled(user, "COMPRESSION"));
	g_assert_false(imap_quirks_cap_disabled(user, "CONDSTORE"));
	g_assert_true(imap_quirks_cap_disabled(icloud, "QRESYNC"));
	g_assert_false(imap_quirks_cap_disabled(icloud, "CONDSTORE"));
	g_assert_true(imap_quirks_cap_disabled(greeting, "QRESYNC"));
	g_assert_false(imap_quirks_cap_disabled(not_icloud, "QRESYNC"));
	g_assert_true(imap_quirks_cap_disabled(cond, "QRESYNC"));
	g_assert_false(imap_quirks_cap_disabled(NULL, "QRESYNC"));
	g_assert_true(imap_quirks_metered("imap.gmail.com", false));
	g_assert_true(imap_quirks_metered("imap.googlemail.com", false));
	g_assert_true(imap_quirks_metered("localhost", true));
	g_assert_false(imap_quirks_metered("imap.notgmail.com", false));
	g_assert_false(imap_quirks_metered("outlook.office365.com", false));
}

static void test_limit_width(void)
{
	g_assert_cmpuint(imap_limit_first_width(0, 0, 250), ==, 125);
	g_assert_cmpuint(imap_limit_first_width(0, 0, 50000), ==, 1000);
	g_assert_cmpuint(imap_limit_first_width(0, 0, 1), ==, 1);
	g_assert_cmpuint(imap_limit_first_width(0, 0, 0), ==, 1);
	g_assert_cmpuint(imap_limit_first_width(1000, 0, 50000), ==, 1000);
	g_assert_cmpuint(imap_limit_first_width(0, 62, 50000), ==, 62);
	g_assert_cmpuint(imap_limit_first_width(1000, 62, 9), ==, 62);
}

static int status_errno(const char *line, bool login)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used = 0;
	int rc;

	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &used, &r), ==,
			1);
	rc = imap_status_errno(r, login);
	imap_response_free(r);
	imap_parser_free(p);
	return rc;
}

/* Providers' refusals: throttling and download caps are not a wrong
 * password. */
static void test_refusals(void)
{
	g_assert_cmpint(status_errno("A1 NO User is authenticated but not "
				     "connected.\r\n",
				     true),
			==, -EAGAIN);
	g_assert_cmpint(status_errno("A1 NO [ALERT] Too many simultaneous "
				     "connections. (Failure)\r\n",
				     true),
			==, -EAGAIN);
	g_assert_cmpint(status_errno("A1 NO [ALERT] Account exceeded command "
				     "or bandwidth limits. (Failure)\r\n",
				     true),
			==, -EAGAIN);
	g_assert_cmpint(status_errno("A1 NO [OVERQUOTA] over\r\n", true), ==,
			-EAGAIN);
	g_assert_cmpint(status_errno("A1 NO [AUTHENTICATIONFAILED] Invalid "
				     "credentials (Failure)\r\n",
				     true),
			==, -EACCES);
	g_assert_cmpint(status_errno("A1 NO [OVERQUOTA] over\r\n", false), ==,
			-EDQUOT);
	g_assert_cmpint(status_errno("A1 NO [LIMIT] too many\r\n", false), ==,
			-EAGAIN);
	g_assert_true(imap_text_is_throttling(
	    NULL, "User is authenticated but not connected."));
	g_assert_false(imap_text_is_throttling(NULL, "Invalid credentials"));
}

static void test_quota(void)
{
	FsQuota *q;
	g_autoptr(GError) bye = g_error_new_literal(
	    IMAP_ERROR, IMAP_ERROR_CLOSED,
	    "imap.gmail.com closed the connection: Account exceeded command "
	    "or bandwidth limits. (Failure)");
	g_autoptr(GError) other =
	    g_error_new_literal(IMAP_ERROR, IMAP_ERROR_CLOSED, "reset");

	g_assert_true(fs_quota_is_refusal(-EDQUOT, NULL));
	g_assert_true(fs_quota_is_refusal(-EIO, bye));
	g_assert_false(fs_quota_is_refusal(-EIO, other));
	g_assert_false(fs_quota_is_refusal(-EIO, NULL));
	/* Long enough that no check below can see it end; the retry after
	 * it is checked by the quirks suite (test_providers.py). */
	g_setenv("IMAPFS_TEST_QUOTA_RETRY_MS", "600000", TRUE);
	q = fs_quota_new();
	g_assert_false(fs_quota_blocked(q));
	g_assert_false(fs_quota_stopped(q));
	g_test_expect_message("imapfs", G_LOG_LEVEL_WARNING,
			      "*stopped downloads*");
	fs_quota_hit(q, "test");
	g_test_assert_expected_messages();
	fs_quota_hit(q, "again: no second line");
	g_assert_true(fs_quota_stopped(q));
	g_assert_true(fs_quota_blocked(q));
	g_assert_true(fs_quota_blocked(q));
	fs_quota_ok(q);
	g_assert_false(fs_quota_stopped(q));
	g_assert_false(fs_quota_blocked(q));
	fs_quota_free(q);
	g_unsetenv("IMAPFS_TEST_QUOTA_RETRY_MS");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/providers/gid", test_gid);
	g_test_add_func("/providers/links", test_links);
	g_test_add_func("/providers/quirks", test_quirks);
	g_test_add_func("/providers/limit-width", test_limit_width);
	g_test_add_func("/providers/refusals", test_refusals);
	g_test_add_func("/providers/quota", test_quota);
	return g_test_run();
}
