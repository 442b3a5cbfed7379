/* Unit tests for imap/namespace.c: NAMESPACE responses (RFC 2342) parsed
 * by the real parser, fed byte by byte, and the prefix stripping that
 * puts personal folders at the top. */
#include <glib.h>
#include <string.h>

#include "imap/namespace.h"

/* Parse one response line, feeding one byte at a time. */
static ImapResponse *parse(const char *line)
{
	g_autoptr(GString) buf = g_string_new(line);
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;

	g_string_append(buf, "\r\n");
	for (size_t i = 0; i < buf->len && !r; i++) {
		size_t used = 0;
		int rc = imap_parser_feed(p, buf->str + i, 1, &used, &r);

		g_assert_cmpint(rc, >=, 0);
	}
	imap_parser_free(p);
	g_assert_nonnull(r);
	return r;
}

static void check(const char *line, bool ok, const char *prefix, char delim)
{
	ImapResponse *r = parse(line);
	ImapNamespace ns = { 0 };

	g_assert_cmpint(imap_namespace_parse(r, &ns), ==, ok);
	if (ok) {
		g_assert_cmpstr(ns.prefix, ==, prefix);
		g_assert_cmpint(ns.delimiter, ==, delim);
	} else {
		g_assert_null(ns.prefix);
	}
	imap_namespace_clear(&ns);
	imap_response_free(r);
}

static void test_parse(void)
{
	/* Cyrus (Debian's configuration) and Courier */
	check("* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) "
	      "((\"\" \".\"))",
	      true, "INBOX.", '.');
	check("* NAMESPACE ((\"INBOX.\" \".\")) NIL "
	      "((\"#shared.\" \".\")(\"shared.\" \".\"))",
	      true, "INBOX.", '.');
	/* Dovecot: empty prefix */
	check("* NAMESPACE ((\"\" \"/\")) NIL NIL", true, "", '/');
	/* no personal namespace; NIL delimiter; an extension */
	check("* NAMESPACE NIL NIL NIL", true, "", '\0');
	check("* NAMESPACE ((\"\" NIL)) NIL NIL", true, "", '\0');
	check("* NAMESPACE ((\"Mail/\" \"/\" \"X-PARAM\" (\"a\"))) NIL NIL",
	      true, "Mail/", '/');
	/* a literal prefix */
	check("* NAMESPACE (({6}\r\nINBOX. \".\")) NIL NIL", true, "INBOX.",
	      '.');
	/* malformed: ignored */
	check("* NAMESPACE", false, NULL, 0);
	check("* NAMESPACE INBOX NIL NIL", false, NULL, 0);
	check("* NAMESPACE ((\"INBOX.\")) NIL NIL", false, NULL, 0);
	check("* NAMESPACE ((\"INBOX.\" \"..\")) NIL NIL", false, NULL, 0);
	check("* NAMESPACE ((\"INBOX.\" \"\")) NIL NIL", false, NULL, 0);
	check("* NAMESPACE (NIL) NIL NIL", false, NULL, 0);
	check("* NAMESPACE ((NIL \".\")) NIL NIL", false, NULL, 0);
	check("* NAMESPACE ((\"IN\\\"BOX\" ())) NIL NIL", false, NULL, 0);
	check("* LIST (\\HasNoChildren) \".\" INBOX", false, NULL, 0);
	check("A1 OK NAMESPACE done", false, NULL, 0);
}

static void test_nul_prefix(void)
{
	/* A literal prefix holding a NUL byte cannot be a folder name. */
	static const char line[] =
	    "* NAMESPACE (({3}\r\na\0. \".\")) NIL NIL\r\n";
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapNamespace ns = { 0 };
	ImapResponse *r = NULL;
	size_t used = 0, off = 0;

	while (!r && off < sizeof(line) - 1) {
		g_assert_cmpint(imap_parser_feed(p, line + off,
						 sizeof(line) - 1 - off, &used,
						 &r),
				>=, 0);
		off += used;
	}
	imap_parser_free(p);
	g_assert_nonnull(r);
	g_assert_false(imap_namespace_parse(r, &ns));
	imap_response_free(r);
}

static void test_strip(void)
{
	ImapNamespace ns = { .prefix = (char *)"INBOX.", .delimiter = '.' };
	ImapNamespace empty = { .prefix = (char *)"", .delimiter = '/' };
	ImapNamespace nodelim = { .prefix = (char *)"Mail", .delimiter = '/' };

	g_assert_cmpstr(imap_namespace_strip(&ns, "INBOX.Sent", '.'), ==,
			"Sent");
	g_assert_cmpstr(imap_namespace_strip(&ns, "INBOX.A.B", '.'), ==, "A.B");
	g_assert_null(imap_namespace_strip(&ns, "INBOX", '.'));
	g_assert_null(imap_namespace_strip(&ns, "INBOX.", '.'));
	g_assert_null(imap_namespace_strip(&ns, "user.bob", '.'));
	g_assert_null(imap_namespace_strip(&ns, "INBOX.Sent", '/'));
	g_assert_null(imap_namespace_strip(&empty, "Sent", '/'));
	g_assert_null(imap_namespace_strip(&nodelim, "Mailbox", '/'));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/namespace/parse", test_parse);
	g_test_add_func("/namespace/nul-prefix", test_nul_prefix);
	g_test_add_func("/namespace/strip", test_strip);
	return g_test_run();
}
