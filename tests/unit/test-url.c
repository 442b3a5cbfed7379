/* tests/unit/test-url.c: imap/url.c, the account URL parser, and the
 * fsname and cache key made back from a parsed URL. */
#include "imap/url.h"

#include <errno.h>
#include <string.h>

#define FORMS "expected imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]"
#define SECRET "s3cret-Pw"

static void assert_same(const ImapUrl *a, const ImapUrl *b)
{
	g_assert_cmpint(a->implicit_tls, ==, b->implicit_tls);
	g_assert_cmpstr(a->user, ==, b->user);
	g_assert_cmpstr(a->host, ==, b->host);
	g_assert_cmpuint(a->port, ==, b->port);
}

static void test_good(void)
{
	static const struct {
		const char *url;
		bool tls;
		const char *user, *host;
		unsigned port;
		const char *string; /* imap_url_to_string() */
		const char *key;    /* imap_url_account_key() */
	} cases[] = {
		{ "imaps://me@mail.example.org", true, "me", "mail.example.org",
		  993, "imaps://me@mail.example.org:993",
		  "imaps://me@mail.example.org:993" },
		{ "IMAP://me@Mail.Example.ORG:1143/", false, "me",
		  "mail.example.org", 1143, "imap://me@mail.example.org:1143",
		  "imap://me@mail.example.org:1143" },
		{ "imap://u@192.0.2.1", false, "u", "192.0.2.1", 143,
		  "imap://u@192.0.2.1:143", "imap://u@192.0.2.1:143" },
		{ "ImApS://u@h:65535", true, "u", "h", 65535,
		  "imaps://u@h:65535", "imaps://u@h:65535" },
		{ "imaps://u@h:1", true, "u", "h", 1, "imaps://u@h:1",
		  "imaps://u@h:1" },
		{ "imaps://u@h:0993", true, "u", "h", 993, "imaps://u@h:993",
		  "imaps://u@h:993" },
		{ "imap://u@h:993", false, "u", "h", 993, "imap://u@h:993",
		  "imap://u@h:993" },
		{ "imaps://me%40example.org@mail.example.org", true,
		  "me@example.org", "mail.example.org", 993,
		  "imaps://me%40example.org@mail.example.org:993",
		  "imaps://me@example.org@mail.example.org:993" },
		/* An unencoded '@' in USER: the last '@' ends USER. */
		{ "imaps://me@example.org@mail.example.org", true,
		  "me@example.org", "mail.example.org", 993,
		  "imaps://me%40example.org@mail.example.org:993",
		  "imaps://me@example.org@mail.example.org:993" },
		/* No raw ',' may reach fsname. */
		{ "imaps://a%2cb%20c@h", true, "a,b c", "h", 993,
		  "imaps://a%2Cb%20c@h:993", "imaps://a,b c@h:993" },
		{ "imaps://DOM\\user@h", true, "DOM\\user", "h", 993,
		  "imaps://DOM%5Cuser@h:993", "imaps://DOM\\user@h:993" },
		{ "imaps://%C3%A9@h", true, "\xc3\xa9", "h", 993,
		  "imaps://%C3%A9@h:993", "imaps://\xc3\xa9@h:993" },
		{ "imaps://u@[::1]:10993", true, "u", "::1", 10993,
		  "imaps://u@[::1]:10993", "imaps://u@::1:10993" },
		{ "imaps://u@[2001:DB8::1]", true, "u", "2001:db8::1", 993,
		  "imaps://u@[2001:db8::1]:993", "imaps://u@2001:db8::1:993" },
		{ "imap://u@[fe80::1%25eth0]/", false, "u", "fe80::1%eth0", 143,
		  "imap://u@[fe80::1%25eth0]:143",
		  "imap://u@fe80::1%eth0:143" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *string = NULL, *key = NULL;
		ImapUrl url, again;

		g_test_message("%s", cases[i].url);
		g_assert_cmpint(imap_url_parse(cases[i].url, &url, &error), ==,
				0);
		g_assert_no_error(error);
		g_assert_cmpint(url.implicit_tls, ==, cases[i].tls);
		g_assert_cmpstr(url.user, ==, cases[i].user);
		g_assert_cmpstr(url.host, ==, cases[i].host);
		g_assert_cmpuint(url.port, ==, cases[i].port);
		string = imap_url_to_string(&url);
		g_assert_cmpstr(string, ==, cases[i].string);
		key = imap_url_account_key(&url);
		g_assert_cmpstr(key, ==, cases[i].key);

		/* The string form parses back to the same fields. */
		g_assert_cmpint(imap_url_parse(string, &again, &error), ==, 0);
		g_assert_no_error(error);
		assert_same(&url, &again);
		imap_url_clear(&again);
		imap_url_clear(&url);
		imap_url_clear(&url); /* a second clear is harmless */
		g_assert_null(url.user);
	}
}

static void test_bad(void)
{
	static const struct {
		const char *url;
		GUriError code;
		const char *why; /* after "invalid URL 'URL': " */
	} cases[] = {
		{ "", G_URI_ERROR_BAD_SCHEME, FORMS },
		{ "x", G_URI_ERROR_BAD_SCHEME, FORMS },
		{ "http://me@h", G_URI_ERROR_BAD_SCHEME, FORMS },
		{ "imapx://me@h", G_URI_ERROR_BAD_SCHEME, FORMS },
		{ "imaps://mail.example.org", G_URI_ERROR_BAD_USER,
		  "missing USER (" FORMS ")" },
		{ "imaps://@mail.example.org", G_URI_ERROR_BAD_USER,
		  "missing USER (" FORMS ")" },
		{ "imaps://me@", G_URI_ERROR_BAD_HOST,
		  "missing HOST (" FORMS ")" },
		{ "imaps://me@:993", G_URI_ERROR_BAD_HOST,
		  "missing HOST (" FORMS ")" },
		{ "imaps://me@h/INBOX", G_URI_ERROR_BAD_PATH,
		  "nothing may follow HOST[:PORT] (" FORMS ")" },
		{ "imaps://me@h:993/INBOX", G_URI_ERROR_BAD_PATH,
		  "nothing may follow HOST[:PORT] (" FORMS ")" },
		{ "imaps://me@h?x=1", G_URI_ERROR_BAD_PATH,
		  "nothing may follow HOST[:PORT] (" FORMS ")" },
		{ "imaps://me@h#f", G_URI_ERROR_BAD_PATH,
		  "nothing may follow HOST[:PORT] (" FORMS ")" },
		{ "imaps://me@h//", G_URI_ERROR_BAD_PATH,
		  "nothing may follow HOST[:PORT] (" FORMS ")" },
		{ "imaps://me@h:0", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:65536", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:99999999999", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:/", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:x1", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:-1", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h:+1", G_URI_ERROR_BAD_PORT,
		  "port must be between 1 and 65535" },
		{ "imaps://me@h h", G_URI_ERROR_BAD_HOST,
		  "bad character in HOST" },
		{ "imaps://me@h\n", G_URI_ERROR_BAD_HOST,
		  "bad character in HOST" },
		{ "imaps://me@h,x", G_URI_ERROR_BAD_HOST,
		  "bad character in HOST" },
		{ "imaps://me@[::1", G_URI_ERROR_BAD_HOST, "bad IPv6 address" },
		{ "imaps://me@[]", G_URI_ERROR_BAD_HOST, "bad IPv6 address" },
		{ "imaps://me@[zz::1]", G_URI_ERROR_BAD_HOST,
		  "bad IPv6 address" },
		{ "imaps://me@[192.0.2.1]", G_URI_ERROR_BAD_HOST,
		  "bad IPv6 address" },
		{ "imaps://me@[fe80::1%25]", G_URI_ERROR_BAD_HOST,
		  "bad IPv6 address" },
		{ "imaps://me@[fe80::1%25e/0]", G_URI_ERROR_BAD_HOST,
		  "bad IPv6 address" },
		{ "imaps://me@[::1]x", G_URI_ERROR_BAD_HOST,
		  "bad character in HOST" },
		{ "imaps://me%4@h", G_URI_ERROR_BAD_USER,
		  "bad percent-encoding in USER" },
		{ "imaps://me%@h", G_URI_ERROR_BAD_USER,
		  "bad percent-encoding in USER" },
		{ "imaps://me%zz@h", G_URI_ERROR_BAD_USER,
		  "bad percent-encoding in USER" },
		{ "imaps://me%0D%0Ax@h", G_URI_ERROR_BAD_USER,
		  "control character in USER" },
		{ "imaps://me%00@h", G_URI_ERROR_BAD_USER,
		  "control character in USER" },
		{ "imaps://me%7f@h", G_URI_ERROR_BAD_USER,
		  "control character in USER" },
		{ "imaps://m\te@h", G_URI_ERROR_BAD_USER,
		  "control character in USER" },
		{ "imaps://me;AUTH=*@h", G_URI_ERROR_BAD_USER,
		  "';AUTH=' is not supported" },
		{ "imaps://me;auth=plain@h", G_URI_ERROR_BAD_USER,
		  "';AUTH=' is not supported" },
		{ "imaps://a b@h", G_URI_ERROR_BAD_USER, FORMS },
		{ "imaps://a/b@h", G_URI_ERROR_BAD_USER, FORMS },
		{ "imaps://a?b@h", G_URI_ERROR_BAD_USER, FORMS },
		{ "imaps://a#b@h", G_URI_ERROR_BAD_USER, FORMS },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		/* Messages are one line: control characters are escaped. */
		g_autofree char *shown = strpbrk(cases[i].url, "\t\n")
					     ? g_strescape(cases[i].url, NULL)
					     : g_strdup(cases[i].url);
		g_autofree char *msg = g_strdup_printf("invalid URL '%s': %s",
						       shown, cases[i].why);
		ImapUrl url;

		g_test_message("%s", cases[i].url);
		memset(&url, 0xa5, sizeof(url));
		g_assert_cmpint(imap_url_parse(cases[i].url, &url, &error), ==,
				-EINVAL);
		g_assert_error(error, G_URI_ERROR, (gint)cases[i].code);
		g_assert_cmpstr(error->message, ==, msg);
		/* Nothing for the caller to free. */
		g_assert_null(url.user);
		g_assert_null(url.host);
	}
}

/* Refused before anything could echo the URL, whatever else is wrong. */
static void test_password(void)
{
	static const char *const urls[] = {
		"imaps://me:" SECRET "@mail.example.org",
		"imap://me:" SECRET "@h:143/",
		"imaps://me:@h",
		"imaps://me:" SECRET "/x@h",
		"me:" SECRET "@mail.example.org",
		"http://me:" SECRET "@h",
		"imaps://me:" SECRET "@[zz]:0/x",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(urls); i++) {
		g_autoptr(GError) error = NULL;
		ImapUrl url;

		g_assert_cmpint(imap_url_parse(urls[i], &url, &error), ==,
				-EINVAL);
		g_assert_error(error, G_URI_ERROR, G_URI_ERROR_BAD_PASSWORD);
		g_assert_cmpstr(error->message, ==,
				"the URL must not contain a password: use "
				"--password-command or --password-file");
		g_assert_null(url.user);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/url/good", test_good);
	g_test_add_func("/url/bad", test_bad);
	g_test_add_func("/url/password", test_password);
	return g_test_run();
}
