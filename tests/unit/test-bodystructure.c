/* tests/unit/test-bodystructure.c: imap/bodystructure.c on BODYSTRUCTURE
 * values that went through the real response parser: Dovecot's shapes,
 * sections of attached messages, broken and hostile input. */
#include "imap/bodystructure.h"

#include <errno.h>
#include <string.h>

/* Parse "* 1 FETCH (BODYSTRUCTURE <bs>)" and convert it. */
static int parse_bs(const char *bs, ImapBodyPart **out)
{
	ImapParserLimits lim;
	g_autofree char *line =
	    g_strdup_printf("* 1 FETCH (UID 7 BODYSTRUCTURE %s)\r\n", bs);
	ImapParser *p;
	ImapResponse *r = NULL;
	size_t used = 0;
	int rc;

	imap_parser_limits_default(&lim);
	lim.max_depth = 4096; /* let the converter's own limit speak */
	lim.inline_literal_max = 1 << 20;
	p = imap_parser_new(&lim, NULL, NULL);
	g_assert_cmpint(imap_parser_feed(p, line, strlen(line), &used, &r), ==,
			1);
	rc = imap_bodystructure_parse(
	    imap_fetch_get(imap_list_get(&r->args, 0), "BODYSTRUCTURE"), out);
	imap_response_free(r);
	imap_parser_free(p);
	return rc;
}

#define TEXT_PART                                                              \
	"(\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL "            \
	"\"quoted-printable\" 42 2 NIL NIL NIL NIL)"
#define PDF_PART                                                               \
	"(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" "    \
	"4096 NIL (\"attachment\" (\"filename\" \"invoice.pdf\")) NIL NIL)"
#define INNER                                                                  \
	"((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1 "  \
	"NIL NIL NIL NIL)(\"application\" \"octet-stream\" NIL NIL NIL "       \
	"\"base64\" 16 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"in\") NIL "  \
	"NIL NIL)"
#define MESSAGE_PART                                                           \
	"(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 300 (NIL "               \
	"\"=?UTF-8?Q?Inner?=\" NIL NIL NIL NIL NIL NIL NIL NIL) " INNER        \
	" 12 NIL NIL NIL NIL)"

static void test_mixed(void)
{
	ImapBodyPart *b = NULL, *t, *pdf, *msg;

	g_assert_cmpint(parse_bs("(" TEXT_PART PDF_PART MESSAGE_PART
				 " \"mixed\" (\"boundary\" \"b1\") NIL NIL "
				 "NIL)",
				 &b),
			==, 0);
	g_assert_cmpstr(b->type, ==, "multipart");
	g_assert_cmpstr(b->subtype, ==, "mixed");
	g_assert_cmpstr(b->section, ==, "");
	g_assert_cmpstr(imap_body_param(b->params, "BOUNDARY"), ==, "b1");
	g_assert_cmpuint(b->children->len, ==, 3);
	t = b->children->pdata[0];
	pdf = b->children->pdata[1];
	msg = b->children->pdata[2];
	g_assert_cmpstr(t->section, ==, "1");
	g_assert_cmpstr(t->encoding, ==, "quoted-printable");
	g_assert_cmpuint(t->size, ==, 42);
	g_assert_cmpstr(imap_body_param(t->params, "charset"), ==,
			"iso-8859-1");
	g_assert_null(t->disposition);
	g_assert_cmpstr(pdf->section, ==, "2");
	g_assert_cmpstr(pdf->disposition, ==, "attachment");
	g_assert_cmpstr(imap_body_param(pdf->disp_params, "filename"), ==,
			"invoice.pdf");
	g_assert_cmpuint(pdf->size, ==, 4096);
	g_assert_cmpstr(msg->section, ==, "3");
	g_assert_cmpstr(msg->subject, ==, "=?UTF-8?Q?Inner?=");
	g_assert_nonnull(msg->message);
	g_assert_cmpstr(msg->message->section, ==, "3");
	g_assert_cmpuint(msg->message->children->len, ==, 2);
	g_assert_cmpstr(
	    ((ImapBodyPart *)msg->message->children->pdata[1])->section, ==,
	    "3.2");
	imap_body_part_free(b);
}

static void collect(const ImapBodyPart *leaf, void *data)
{
	g_ptr_array_add(data, leaf->section);
}

static void test_single_and_leaves(void)
{
	ImapBodyPart *b = NULL;
	g_autoptr(GPtrArray) sections = g_ptr_array_new();

	/* no extension data at all, as some servers send */
	g_assert_cmpint(parse_bs("(\"TEXT\" \"HTML\" NIL NIL NIL NIL 5 1)", &b),
			==, 0);
	g_assert_cmpstr(b->type, ==, "text");
	g_assert_cmpstr(b->subtype, ==, "html");
	g_assert_cmpstr(b->section, ==, "1");
	g_assert_null(b->encoding);
	imap_body_part_free(b);

	g_assert_cmpint(parse_bs("(" TEXT_PART MESSAGE_PART " \"mixed\")", &b),
			==, 0);
	imap_body_foreach_leaf(b, collect, sections);
	g_assert_cmpuint(sections->len, ==, 4);
	g_assert_cmpstr(sections->pdata[0], ==, "1");
	g_assert_cmpstr(sections->pdata[1], ==, "2");
	g_assert_cmpstr(sections->pdata[2], ==, "2.1");
	g_assert_cmpstr(sections->pdata[3], ==, "2.2");
	imap_body_part_free(b);
}

static void test_broken(void)
{
	static const char *const bad[] = {
		"NIL",
		"()",
		"(\"text\" NIL NIL NIL NIL NIL 5)",         /* no subtype */
		"(\"text\" \"plain\" NIL NIL NIL NIL big)", /* no size */
		"(\"text\" \"plain\" (\"odd\") NIL NIL NIL 5)",
		"((\"text\" \"plain\" NIL NIL NIL NIL 5))", /* no subtype */
		"(\"message\" \"rfc822\" NIL NIL NIL NIL 5 NIL NIL 1)",
	};
	ImapBodyPart *b = NULL;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_assert_cmpint(parse_bs(bad[i], &b), ==, -EPROTO);
		g_assert_null(b);
	}
	/* malformed extension data is ignored */
	g_assert_cmpint(
	    parse_bs("(\"image\" \"png\" NIL NIL NIL \"base64\" 8 NIL 17 "
		     "(1 2))",
		     &b),
	    ==, 0);
	g_assert_null(b->disposition);
	imap_body_part_free(b);
}

static GString *nested(unsigned depth)
{
	GString *s = g_string_new(NULL);

	for (unsigned i = 0; i < depth; i++)
		g_string_append_c(s, '(');
	g_string_append(s, "\"text\" \"plain\" NIL NIL NIL NIL 1 1)");
	for (unsigned i = 1; i < depth; i++)
		g_string_append(s, " \"mixed\")");
	return s;
}

static void test_limits(void)
{
	g_autoptr(GString) ok = nested(IMAP_BODY_MAX_DEPTH);
	g_autoptr(GString) deep = nested(1000);
	g_autoptr(GString) wide = g_string_new("(");
	g_autoptr(GString) longs = g_string_new(NULL);
	ImapBodyPart *b = NULL;

	g_assert_cmpint(parse_bs(ok->str, &b), ==, 0);
	imap_body_part_free(b);
	g_assert_cmpint(parse_bs(deep->str, &b), ==, -E2BIG);
	g_assert_null(b);
	for (unsigned i = 0; i <= IMAP_BODY_MAX_PARTS; i++)
		g_string_append(wide, "(\"a\" \"b\" NIL NIL NIL NIL 1)");
	g_string_append(wide, " \"mixed\")");
	g_assert_cmpint(parse_bs(wide->str, &b), ==, -E2BIG);
	g_string_printf(longs, "(\"text\" \"plain\" (\"name\" {%u}\r\n",
			IMAP_BODY_MAX_STRING + 1);
	for (unsigned i = 0; i <= IMAP_BODY_MAX_STRING; i++)
		g_string_append_c(longs, 'x');
	g_string_append(longs, ") NIL NIL NIL 1 1)");
	g_assert_cmpint(parse_bs(longs->str, &b), ==, -E2BIG);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/bodystructure/mixed", test_mixed);
	g_test_add_func("/bodystructure/single-and-leaves",
			test_single_and_leaves);
	g_test_add_func("/bodystructure/broken", test_broken);
	g_test_add_func("/bodystructure/limits", test_limits);
	return g_test_run();
}
