/* Unit tests for imap/envelope.c: ENVELOPE and Gmail items of FETCH
 * answers fed through the real parser, and imap_parse_flags(). */
#include <glib.h>
#include <string.h>

#include "imap/envelope.h"
#include "imap/ops.h"
#include "imap/parser.h"

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

static void test_full(void)
{
	ImapResponse *r = parse(
	    "* 3 FETCH (UID 7 ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" "
	    "\"=?ISO-8859-1?Q?Gr=FC=DFe?=\" "
	    "((\"Fred Foobear\" NIL \"foobar\" \"Blurdybloop.example\")) "
	    "NIL NIL "
	    "((NIL NIL \"imap\" \"cac.example\") "
	    "(\"A, B\" NIL \"ab\" \"x.example\")) "
	    "((NIL NIL \"team\" NIL)(NIL NIL \"c\" \"d.example\")"
	    "(NIL NIL NIL NIL)) NIL "
	    "\"<parent@x>\" {12}\r\n<B27397@x>  ) "
	    "X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888 "
	    "X-GM-LABELS (\\Inbox \"My label\" Caf&AOk-))\r\n");
	g_autoptr(ImapEnvelope) e = imap_envelope_parse(&r->args.items[0]);

	g_assert_nonnull(e);
	g_assert_cmpstr(e->date, ==, "Mon, 7 Feb 1994 21:52:25 -0800");
	g_assert_cmpstr(e->subject, ==, "=?ISO-8859-1?Q?Gr=FC=DFe?=");
	g_assert_cmpstr(e->from, ==,
			"Fred Foobear <foobar@Blurdybloop.example>");
	g_assert_null(e->sender);
	g_assert_cmpstr(e->to, ==, "imap@cac.example, \"A, B\" <ab@x.example>");
	g_assert_cmpstr(e->cc, ==, "team: c@d.example;");
	g_assert_null(e->bcc);
	g_assert_cmpstr(e->in_reply_to, ==, "<parent@x>");
	g_assert_cmpstr(e->message_id, ==, "<B27397@x>  ");
	g_assert_cmpstr(e->gm_msgid, ==, "1278455344230334865");
	g_assert_cmpstr(e->gm_thrid, ==, "1266894439832287888");
	g_assert_cmpstr(e->gm_labels, ==, "\\Inbox \"My label\" Café");
	imap_response_free(r);
}

static void test_broken(void)
{
	static const char *const lines[] = {
		"* 1 FETCH (UID 1)\r\n",
		"* 1 FETCH (UID 1 ENVELOPE NIL)\r\n",
		"* 1 FETCH (UID 1 ENVELOPE (NIL NIL))\r\n",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
		ImapResponse *r = parse(lines[i]);

		g_assert_null(imap_envelope_parse(&r->args.items[0]));
		imap_response_free(r);
	}
	{
		/* Wrong types inside stay NULL, never a crash. */
		ImapResponse *r = parse(
		    "* 1 FETCH (UID 1 ENVELOPE ((x) NIL (1 2 (3)) \"s\" NIL "
		    "((NIL)) NIL NIL (a) NIL))\r\n");
		g_autoptr(ImapEnvelope) e =
		    imap_envelope_parse(&r->args.items[0]);

		g_assert_nonnull(e);
		g_assert_null(e->date);
		g_assert_cmpstr(e->from, ==, "");
		g_assert_null(e->sender);
		g_assert_null(e->in_reply_to);
		g_assert_null(e->gm_labels);
		imap_response_free(r);
	}
}

/* An address list longer than the limit is cut. */
static void test_limits(void)
{
	GString *line = g_string_new("* 1 FETCH (UID 1 ENVELOPE (NIL NIL (");
	ImapParserLimits lim;
	ImapParser *p;
	ImapResponse *r = NULL;
	size_t used = 0;
	guint commas = 0;

	for (guint i = 0; i < IMAP_ENVELOPE_MAX_ADDRS + 50; i++)
		g_string_append(line, "(NIL NIL \"a\" \"b\")");
	g_string_append(line, ") NIL NIL NIL NIL NIL NIL NIL))\r\n");
	imap_parser_limits_default(&lim);
	lim.max_items = 1u << 20;
	lim.max_line = 1u << 22;
	p = imap_parser_new(&lim, NULL, NULL);
	g_assert_cmpint(imap_parser_feed(p, line->str, line->len, &used, &r),
			==, 1);
	{
		g_autoptr(ImapEnvelope) e =
		    imap_envelope_parse(&r->args.items[0]);

		for (const char *s = e->from; *s; s++)
			commas += *s == ',';
		g_assert_cmpuint(commas, ==, IMAP_ENVELOPE_MAX_ADDRS - 1);
	}
	imap_response_free(r);
	imap_parser_free(p);
	g_string_free(line, TRUE);
}

static void test_flags(void)
{
	ImapResponse *r = parse("* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent "
				"$Label1 \\flagged NonJunk \\Draft))\r\n");
	g_autoptr(GString) kw = g_string_new("junk");
	unsigned flags = 0;

	g_assert_true(imap_parse_flags(
	    imap_fetch_get(&r->args.items[0], "FLAGS"), &flags, kw));
	g_assert_cmpuint(flags, ==,
			 IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED | IMAP_FLAG_DRAFT);
	g_assert_cmpstr(kw->str, ==, "$Label1 NonJunk");
	g_assert_false(imap_parse_flags(
	    imap_fetch_get(&r->args.items[0], "UID"), &flags, kw));
	imap_response_free(r);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/envelope/full", test_full);
	g_test_add_func("/envelope/broken", test_broken);
	g_test_add_func("/envelope/limits", test_limits);
	g_test_add_func("/envelope/flags", test_flags);
	return g_test_run();
}
