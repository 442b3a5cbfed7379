/* Unit tests for imap/parser.c: every sample is parsed whole, one byte at a
 * time and in several hundred seeded random splits, and each run must give
 * exactly the same transcript (responses, streamed literal contents, error
 * and its offset). */
#include "imap/parser.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#define N_SEEDS 300

/* ---- a literal sink that records what it receives ---- */

typedef struct {
	GString *data;
	uint64_t size;
} TestSink;

typedef struct {
	int begins;
	int live; /* begun and not yet discarded or taken */
	int discards;
	bool refuse;     /* begin returns NULL */
	int write_error; /* write returns this when non-zero */
} TestCtx;

static void *ts_begin(void *user_data, uint64_t size)
{
	TestCtx *ctx = user_data;
	TestSink *s;

	if (ctx->refuse)
		return NULL;
	s = g_new0(TestSink, 1);
	s->data = g_string_new(NULL);
	s->size = size;
	ctx->begins++;
	ctx->live++;
	return s;
}

static int ts_write(void *user_data, void *sink, const void *buf, size_t len)
{
	TestCtx *ctx = user_data;
	TestSink *s = sink;

	if (ctx->write_error)
		return ctx->write_error;
	g_assert_cmpuint(s->data->len + len, <=, s->size);
	g_string_append_len(s->data, buf, len);
	return 0;
}

static void ts_free(TestSink *s)
{
	g_string_free(s->data, TRUE);
	g_free(s);
}

static void ts_discard(void *user_data, void *sink)
{
	TestCtx *ctx = user_data;

	ctx->live--;
	ctx->discards++;
	ts_free(sink);
}

static const ImapLiteralSink test_sink = {
	.begin = ts_begin,
	.write = ts_write,
	.discard = ts_discard,
};

/* ---- canonical dump of a response ---- */

static void dump_bytes(GString *g, const char *s, size_t len)
{
	g_string_append_c(g, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			g_string_append_printf(g, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			g_string_append_printf(g, "\\x%02x", c);
		else
			g_string_append_c(g, c);
	}
	g_string_append_c(g, '"');
}

static void dump_value(GString *g, const ImapValue *v)
{
	TestSink *s;

	switch (v->type) {
	case IMAP_VALUE_ATOM:
		g_assert_false(v->literal);
		g_assert_nonnull(v->str);
		g_assert_cmpuint(strlen(v->str), ==, v->len);
		g_assert_cmpuint(v->len, >, 0);
		g_string_append(g, v->str);
		break;
	case IMAP_VALUE_STRING:
		g_assert_nonnull(v->str);
		g_assert_cmpint(v->str[v->len], ==, '\0');
		if (v->literal)
			g_string_append_printf(g, "{%zu}", v->len);
		dump_bytes(g, v->str, v->len);
		break;
	case IMAP_VALUE_NIL:
		g_assert_false(v->literal);
		g_string_append(g, "NIL");
		break;
	case IMAP_VALUE_LIST:
		g_assert_false(v->literal);
		g_assert_true(v->len == 0 || v->items);
		g_string_append_c(g, '(');
		for (size_t i = 0; i < v->len; i++) {
			if (i)
				g_string_append_c(g, ' ');
			dump_value(g, &v->items[i]);
		}
		g_string_append_c(g, ')');
		break;
	case IMAP_VALUE_STREAM:
		g_assert_true(v->literal);
		s = v->stream.sink;
		g_assert_nonnull(s);
		g_assert_cmpuint(s->size, ==, v->stream.size);
		g_assert_cmpuint(s->data->len, ==, v->stream.size);
		g_string_append_printf(g, "<%" G_GUINT64_FORMAT ":",
				       v->stream.size);
		dump_bytes(g, s->data->str, s->data->len);
		g_string_append_c(g, '>');
		break;
	default:
		g_assert_not_reached();
	}
}

static const char *status_name(ImapStatus st)
{
	static const char *names[] = { "NONE", "OK",      "NO",
				       "BAD",  "PREAUTH", "BYE" };

	g_assert_cmpuint(st, <, G_N_ELEMENTS(names));
	return names[st];
}

static void dump_response(GString *g, const ImapResponse *r)
{
	g_assert_cmpint(r->args.type, ==, IMAP_VALUE_LIST);
	g_assert_cmpint(r->code_args.type, ==, IMAP_VALUE_LIST);
	g_assert_nonnull(r->text);
	switch (r->kind) {
	case IMAP_RESPONSE_UNTAGGED:
		g_assert_null(r->tag);
		g_assert_nonnull(r->name);
		g_string_append(g, "*");
		break;
	case IMAP_RESPONSE_TAGGED:
		g_assert_nonnull(r->tag);
		g_assert_null(r->name);
		g_assert_cmpint(r->status, !=, IMAP_STATUS_NONE);
		g_string_append_printf(g, "T:%s", r->tag);
		break;
	case IMAP_RESPONSE_CONTINUATION:
		g_assert_null(r->tag);
		g_assert_null(r->name);
		g_assert_cmpint(r->status, ==, IMAP_STATUS_NONE);
		g_string_append(g, "+");
		break;
	}
	if (r->status != IMAP_STATUS_NONE)
		g_assert_cmpuint(r->args.len, ==, 0);
	if (!r->code)
		g_assert_cmpuint(r->code_args.len, ==, 0);
	if (r->has_number)
		g_string_append_printf(g, " n=%" G_GUINT64_FORMAT, r->number);
	if (r->name)
		g_string_append_printf(g, " name=%s", r->name);
	if (r->status != IMAP_STATUS_NONE)
		g_string_append_printf(g, " st=%s", status_name(r->status));
	if (r->code)
		g_string_append_printf(g, " code=%s", r->code);
	if (r->code_args.len) {
		g_string_append(g, " cargs=");
		dump_value(g, &r->code_args);
	}
	if (r->args.len) {
		g_string_append(g, " args=");
		dump_value(g, &r->args);
	}
	if (r->text[0]) {
		g_string_append(g, " text=");
		dump_bytes(g, r->text, strlen(r->text));
	}
}

static const char *errno_name(int err)
{
	switch (-err) {
	case EPROTO:
		return "EPROTO";
	case E2BIG:
		return "E2BIG";
	case ENOSPC:
		return "ENOSPC";
	case EIO:
		return "EIO";
	default:
		return "E?";
	}
}

/* ---- feeding in different splits ---- */

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

static size_t pick_chunk(GRand *rnd, size_t left)
{
	size_t n;

	switch (g_rand_int_range(rnd, 0, 4)) {
	case 0:
		n = 1;
		break;
	case 1:
		n = g_rand_int_range(rnd, 1, 4);
		break;
	case 2:
		n = g_rand_int_range(rnd, 1, 17);
		break;
	default:
		n = g_rand_int_range(rnd, 1, 200);
		break;
	}
	return MIN(n, left);
}

/* Transcript: one dumped response per line, then "ERR name@offset" on
 * error or "PARTIAL" when the input ends inside a response. */
static char *run_split(const char *in, size_t len, int mode, guint32 seed,
		       const ImapParserLimits *lim, TestCtx *ctx)
{
	ImapParser *p = imap_parser_new(lim, &test_sink, ctx);
	GString *out = g_string_new(NULL);
	GRand *rnd = g_rand_new_with_seed(seed);
	size_t pos = 0, since = 0;
	int err = 0;

	while (pos < len && !err) {
		size_t end = pos;

		if (mode == SPLIT_WHOLE)
			end = len;
		else if (mode == SPLIT_BYTES)
			end = pos + 1;
		else
			end = pos + pick_chunk(rnd, len - pos);
		while (pos < end) {
			ImapResponse *r = NULL;
			size_t used = 12345;
			int rc =
			    imap_parser_feed(p, in + pos, end - pos, &used, &r);

			g_assert_cmpuint(used, <=, end - pos);
			pos += used;
			since += used;
			if (rc < 0) {
				g_assert_null(r);
				err = rc;
				g_string_append_printf(out, "ERR %s@%zu",
						       errno_name(rc), pos);
				g_assert_cmpstr(imap_parser_error(p), !=, "");
				break;
			}
			if (rc == 1) {
				g_assert_nonnull(r);
				g_assert_cmpstr(imap_parser_error(p), ==, "");
				dump_response(out, r);
				g_string_append_c(out, '\n');
				imap_response_free(r);
				since = 0;
				continue;
			}
			g_assert_cmpint(rc, ==, 0);
			g_assert_null(r);
			g_assert_cmpuint(pos, ==, end);
		}
	}
	if (err) {
		/* dead until reset */
		ImapResponse *r = NULL;
		size_t used = 1;

		g_assert_cmpint(imap_parser_feed(p, "* OK\r\n", 6, &used, &r),
				==, err);
		g_assert_cmpuint(used, ==, 0);
		g_assert_null(r);
	} else if (since) {
		g_string_append(out, "PARTIAL");
	}
	imap_parser_free(p);
	g_rand_free(rnd);
	g_assert_cmpint(ctx->live, ==, 0);
	return g_string_free(out, FALSE);
}

/* All splits must agree with each other and with expected. */
static void check_lim(const char *in, size_t len, const ImapParserLimits *lim,
		      const char *expected)
{
	TestCtx ctx = { 0 };
	g_autofree char *whole = run_split(in, len, SPLIT_WHOLE, 0, lim, &ctx);
	g_autofree char *bytes = NULL;

	g_assert_cmpstr(whole, ==, expected);
	bytes = run_split(in, len, SPLIT_BYTES, 0, lim, &ctx);
	g_assert_cmpstr(bytes, ==, expected);
	for (guint32 seed = 1; seed <= N_SEEDS; seed++) {
		g_autofree char *t =
		    run_split(in, len, SPLIT_RANDOM, seed, lim, &ctx);

		if (g_strcmp0(t, expected) != 0)
			g_test_message("seed %u differs", seed);
		g_assert_cmpstr(t, ==, expected);
	}
	g_assert_cmpint(ctx.live, ==, 0);
}

static void check(const char *in, size_t len, const char *expected)
{
	check_lim(in, len, NULL, expected);
}

#define CHECK(in, expected) check(in, sizeof(in) - 1, expected)

/* ---- samples ---- */

typedef struct {
	const char *name;
	const char *in;
	size_t len;
	const char *expected;
} Sample;

#define S(name, in, exp)                                                       \
	{                                                                      \
		name, in, sizeof(in) - 1, exp                                  \
	}

/* clang-format off */
static const Sample samples[] = {
	S("greeting",
	  "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	  "LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n",
	  "* name=OK st=OK code=CAPABILITY cargs=(IMAP4rev1 SASL-IR "
	  "LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN) "
	  "text=\"Dovecot ready.\"\n"),
	S("exists", "* 23 EXISTS\r\n", "* n=23 name=EXISTS\n"),
	S("lowercase", "* 3 recent\r\na1 ok done\r\n",
	  "* n=3 name=RECENT\nT:a1 st=OK text=\"done\"\n"),
	S("bare-lf", "* 2 EXPUNGE\nA1 OK x\n",
	  "* n=2 name=EXPUNGE\nT:A1 st=OK text=\"x\"\n"),
	S("tagged-code", "A12 OK [READ-WRITE] SELECT completed.\r\n",
	  "T:A12 st=OK code=READ-WRITE text=\"SELECT completed.\"\n"),
	S("tagged-no-text", "A1 OK\r\nA2 NO \r\nA3 BAD [X]\r\n",
	  "T:A1 st=OK\nT:A2 st=NO\nT:A3 st=BAD code=X\n"),
	S("continuation-empty", "+\r\n+ \r\n", "+\n+\n"),
	S("continuation-text", "+ idling\r\n+ YGgGCSqGSIb3EgECAgIAb1kw==\r\n",
	  "+ text=\"idling\"\n+ text=\"YGgGCSqGSIb3EgECAgIAb1kw==\"\n"),
	S("continuation-verbatim", "+ [ALERT] x\r\n+go\r\n",
	  "+ text=\"[ALERT] x\"\n+ text=\"go\"\n"),
	S("capability", "* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI\r\n",
	  "* name=CAPABILITY args=(IMAP4rev1 STARTTLS AUTH=GSSAPI)\n"),
	S("list",
	  "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
	  "* LIST (\\Noselect \\HasChildren) \".\" \"&AMQ-rger\"\r\n"
	  "* LIST () NIL \"\"\r\n"
	  "* LIST (\\Noselect) \"/\" ~/Mail/foo\r\n",
	  "* name=LIST args=((\\HasNoChildren) \"/\" INBOX)\n"
	  "* name=LIST args=((\\Noselect \\HasChildren) \".\" \"&AMQ-rger\")\n"
	  "* name=LIST args=(() NIL \"\")\n"
	  "* name=LIST args=((\\Noselect) \"/\" ~/Mail/foo)\n"),
	S("list-literal", "* LIST () \"/\" {7}\r\nfoo bar\r\n",
	  "* name=LIST args=(() \"/\" {7}\"foo bar\")\n"),
	S("examine",
	  "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	  "* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n"
	  "* 172 EXISTS\r\n"
	  "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
	  "* OK [UIDNEXT 4392] Predicted next UID\r\n"
	  "* OK [HIGHESTMODSEQ 715194045007]\r\n"
	  "A2 OK [READ-ONLY] EXAMINE completed\r\n",
	  "* name=FLAGS args=((\\Answered \\Flagged \\Deleted \\Seen "
	  "\\Draft))\n"
	  "* name=OK st=OK code=PERMANENTFLAGS cargs=(()) "
	  "text=\"Read-only mailbox.\"\n"
	  "* n=172 name=EXISTS\n"
	  "* name=OK st=OK code=UIDVALIDITY cargs=(3857529045) "
	  "text=\"UIDs valid\"\n"
	  "* name=OK st=OK code=UIDNEXT cargs=(4392) "
	  "text=\"Predicted next UID\"\n"
	  "* name=OK st=OK code=HIGHESTMODSEQ cargs=(715194045007)\n"
	  "T:A2 st=OK code=READ-ONLY text=\"EXAMINE completed\"\n"),
	S("permanentflags",
	  "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] L\r\n",
	  "* name=OK st=OK code=PERMANENTFLAGS cargs=((\\Deleted \\Seen \\*)) "
	  "text=\"L\"\n"),
	S("copyuid", "A3 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
	  "T:A3 st=OK code=COPYUID cargs=(38505 304,319:320 3956:3958) "
	  "text=\"Done\"\n"),
	S("badcharset", "A4 NO [BADCHARSET (UTF-8)] bad\r\n",
	  "T:A4 st=NO code=BADCHARSET cargs=((UTF-8)) text=\"bad\"\n"),
	S("code-lowercase", "* ok [uidvalidity 1] x\r\n",
	  "* name=OK st=OK code=UIDVALIDITY cargs=(1) text=\"x\"\n"),
	S("code-unknown", "* OK [XYZZY a \"b]\" (c NIL)] hi\r\n",
	  "* name=OK st=OK code=XYZZY cargs=(a \"b]\" (c NIL)) text=\"hi\"\n"),
	S("code-literal", "* NO [BADCHARSET ({5}\r\nUTF-8)] no\r\n",
	  "* name=NO st=NO code=BADCHARSET cargs=(({5}\"UTF-8\")) "
	  "text=\"no\"\n"),
	S("code-unparseable",
	  "* OK [FOO a)b] text\r\n"
	  "* OK [FOO (a] text2\r\n"
	  "* OK [FOO \"a] text3\r\n"
	  "* OK [FOO {x}] text4\r\n"
	  "* OK [FOO(bar)] text5\r\n"
	  "* OK [FOO {3}x] text6\r\n"
	  "* OK [FOO BODY[x] y\r\n",
	  "* name=OK st=OK code=FOO text=\"text\"\n"
	  "* name=OK st=OK code=FOO text=\"text2\"\n"
	  "* name=OK st=OK code=FOO\n"
	  "* name=OK st=OK code=FOO text=\"text4\"\n"
	  "* name=OK st=OK code=FOO text=\"text5\"\n"
	  "* name=OK st=OK code=FOO text=\"text6\"\n"
	  "* name=OK st=OK code=FOO\n"),
	S("code-unterminated", "* OK [ALERT\r\n* NO [ALERT a b\r\n",
	  "* name=OK st=OK code=ALERT\n* name=NO st=NO code=ALERT\n"),
	S("code-empty", "* OK [] x\r\n* OK [\r\n* OK [ y]\r\n",
	  "* name=OK st=OK text=\"[] x\"\n* name=OK st=OK text=\"[\"\n"
	  "* name=OK st=OK text=\"[ y]\"\n"),
	S("code-no-space", "* OK [ALERT]Hello\r\n",
	  "* name=OK st=OK code=ALERT text=\"Hello\"\n"),
	S("text-verbatim",
	  "A5 BAD Error in IMAP command: Unknown \"x\" {5} (y) [z] \\ \t\r\n"
	  "* NO [ALERT] text with [brackets] \"quotes\" {braces} (parens)\r\n",
	  "T:A5 st=BAD text=\"Error in IMAP command: Unknown \\\"x\\\" {5} (y) "
	  "[z] \\\\ \\x09\"\n"
	  "* name=NO st=NO code=ALERT text=\"text with [brackets] "
	  "\\\"quotes\\\" {braces} (parens)\"\n"),
	S("text-8bit", "* OK Gr\xc3\xbc\xc3\x9f" "e\r\n",
	  "* name=OK st=OK text=\"Gr\\xc3\\xbc\\xc3\\x9fe\"\n"),
	S("bye", "* BYE Autologout; idle for too long\r\n",
	  "* name=BYE st=BYE text=\"Autologout; idle for too long\"\n"),
	S("preauth", "* PREAUTH [CAPABILITY IMAP4rev1] Logged in as x\r\n",
	  "* name=PREAUTH st=PREAUTH code=CAPABILITY cargs=(IMAP4rev1) "
	  "text=\"Logged in as x\"\n"),
	S("status-with-number", "* 5 OK odd\r\n",
	  "* n=5 name=OK args=(odd)\n"),
	S("fetch-literal",
	  "* 12 FETCH (UID 42 BODY[HEADER.FIELDS (SUBJECT)] {21}\r\n"
	  "Subject: hi there\r\n\r\n FLAGS (\\Seen))\r\n",
	  "* n=12 name=FETCH args=((UID 42 BODY[HEADER.FIELDS (SUBJECT)] "
	  "{21}\"Subject: hi there\\x0d\\x0a\\x0d\\x0a\" FLAGS (\\Seen)))\n"),
	S("fetch-partial", "* 1 FETCH (BODY[]<0> {3}\r\nabc UID 9)\r\n",
	  "* n=1 name=FETCH args=((BODY[]<0> {3}\"abc\" UID 9))\n"),
	S("fetch-section-quoted",
	  "* 1 FETCH (BODY[HEADER.FIELDS (\"Sub]ject\" \"a\\\"b\")]<0.10> "
	  "NIL)\r\n",
	  "* n=1 name=FETCH args=((BODY[HEADER.FIELDS (\"Sub]ject\" "
	  "\"a\\\"b\")]<0.10> NIL))\n"),
	S("fetch-nested-section", "* 1 FETCH (X[a[b]c] 1)\r\n",
	  "* n=1 name=FETCH args=((X[a[b]c] 1))\n"),
	S("fetch-literal-crlf-split",
	  "* 1 FETCH (BODY[] {4}\r\n\r\n\r\n)\r\n",
	  "* n=1 name=FETCH args=((BODY[] {4}\"\\x0d\\x0a\\x0d\\x0a\"))\n"),
	S("literal8", "* 1 FETCH (BINARY[] ~{3}\r\nA\0B)\r\n",
	  "* n=1 name=FETCH args=((BINARY[] {3}\"A\\x00B\"))\n"),
	S("nil-empty",
	  "* 1 FETCH (ENVELOPE (NIL \"\" \"NIL\" nil {0}\r\n Nil))\r\n",
	  "* n=1 name=FETCH args=((ENVELOPE (NIL \"\" \"NIL\" NIL {0}\"\" "
	  "NIL)))\n"),
	S("nil-like-atoms", "* X NILS NI \\NIL NIL[]\r\n",
	  "* name=X args=(NILS NI \\NIL NIL[])\n"),
	S("quoted-escapes",
	  "* LIST () \"\\\\\" \"a \\\"quoted\\\" name\" \"\\x\"\r\n",
	  "* name=LIST args=(() \"\\\\\" \"a \\\"quoted\\\" name\" "
	  "\"\\\\x\")\n"),
	S("bodystructure",
	  "* 1 FETCH (BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" (\"CHARSET\" "
	  "\"US-ASCII\") NIL NIL \"7BIT\" 1152 23)(\"TEXT\" \"PLAIN\" "
	  "(\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") NIL NIL "
	  "\"BASE64\" 4554 73) \"MIXED\"))\r\n",
	  "* n=1 name=FETCH args=((BODYSTRUCTURE ((\"TEXT\" \"PLAIN\" "
	  "(\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 1152 23) (\"TEXT\" "
	  "\"PLAIN\" (\"CHARSET\" \"US-ASCII\" \"NAME\" \"cc.diff\") NIL NIL "
	  "\"BASE64\" 4554 73) \"MIXED\")))\n"),
	S("nested-lists", "* X (((a) (b (c))) ()) ((()))\r\n",
	  "* name=X args=((((a) (b (c))) ()) ((())))\n"),
	S("esearch",
	  "* ESEARCH (TAG \"A282\") UID MIN 2 COUNT 3 ALL 1:3,5,10:20\r\n",
	  "* name=ESEARCH args=((TAG \"A282\") UID MIN 2 COUNT 3 ALL "
	  "1:3,5,10:20)\n"),
	S("search", "* SEARCH\r\n* SEARCH 2 84 882\r\n* SEARCH \r\n",
	  "* name=SEARCH\n* name=SEARCH args=(2 84 882)\n* name=SEARCH\n"),
	S("status", "* STATUS \"Sent Items\" (MESSAGES 3 UIDNEXT 4)\r\n",
	  "* name=STATUS args=(\"Sent Items\" (MESSAGES 3 UIDNEXT 4))\n"),
	S("namespace", "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
	  "* name=NAMESPACE args=(((\"\" \"/\")) NIL NIL)\n"),
	S("unknown-untagged", "* XSTRANGE 1 (a b) \"c\" ]x[y]\r\n",
	  "* name=XSTRANGE args=(1 (a b) \"c\" ]x[y])\n"),
	S("vanished", "* VANISHED (EARLIER) 300:310,405,411\r\n",
	  "* name=VANISHED args=((EARLIER) 300:310,405,411)\n"),
	S("no-spaces", "* X (a)(b)\"c\"d{1}\r\ne\r\n",
	  "* name=X args=((a) (b) \"c\" d {1}\"e\")\n"),
	S("atom-brace", "* X (a{1}\r\nb)\r\n",
	  "* name=X args=((a {1}\"b\"))\n"),
	S("tilde-atom", "* X ~ ~a\r\n", "* name=X args=(~ ~a)\n"),
	S("number-max", "* 18446744073709551615 EXISTS\r\n",
	  "* n=18446744073709551615 name=EXISTS\n"),
	S("number-overflow", "* 18446744073709551616 EXISTS\r\n",
	  "* name=18446744073709551616 args=(EXISTS)\n"),
	S("several-spaces", "* X  a   (b  c )\r\n",
	  "* name=X args=(a (b c))\n"),
	S("partial-end", "* 1 FETCH (BODY[] {10}\r\nabc", "PARTIAL"),
};
/* clang-format on */

static void test_sample(gconstpointer data)
{
	const Sample *s = data;

	check(s->in, s->len, s->expected);
}

/* All samples back to back: boundaries fall anywhere between responses. */
static void test_concatenated(void)
{
	GString *in = g_string_new(NULL);
	GString *exp = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
		if (strcmp(samples[i].expected, "PARTIAL") == 0)
			continue;
		g_string_append_len(in, samples[i].in, samples[i].len);
		g_string_append(exp, samples[i].expected);
	}
	check(in->str, in->len, exp->str);
	g_string_free(in, TRUE);
	g_string_free(exp, TRUE);
}

/* ---- literals and the sink ---- */

static ImapParserLimits small_inline(size_t inline_max)
{
	ImapParserLimits lim;

	imap_parser_limits_default(&lim);
	lim.inline_literal_max = inline_max;
	return lim;
}

static void test_stream(void)
{
	ImapParserLimits lim = small_inline(4);
	static const char in[] =
	    "* 1 FETCH (UID 7 BODY[] {11}\r\nhello world X {4}\r\nabcd "
	    "Y {5}\r\nab\r\nc)\r\n";

	check_lim(in, sizeof(in) - 1, &lim,
		  "* n=1 name=FETCH args=((UID 7 BODY[] <11:\"hello world\"> "
		  "X {4}\"abcd\" Y <5:\"ab\\x0d\\x0ac\">))\n");
}

static void test_stream_take(void)
{
	ImapParserLimits lim = small_inline(2);
	TestCtx ctx = { 0 };
	ImapParser *p = imap_parser_new(&lim, &test_sink, &ctx);
	static const char in[] =
	    "* 1 FETCH (BODY[] {3}\r\nabc X {3}\r\ndef)\r\n";
	ImapResponse *r = NULL;
	const ImapValue *body, *x;
	TestSink *taken;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			1);
	g_assert_cmpuint(used, ==, sizeof(in) - 1);
	g_assert_cmpint(ctx.begins, ==, 2);
	body = imap_fetch_get(imap_list_get(&r->args, 0), "BODY[]");
	x = imap_fetch_get(imap_list_get(&r->args, 0), "x");
	g_assert_nonnull(body);
	g_assert_nonnull(x);
	g_assert_cmpint(body->type, ==, IMAP_VALUE_STREAM);
	g_assert_true(body->literal);
	g_assert_cmpuint(body->stream.size, ==, 3);
	taken = body->stream.sink;
	((ImapValue *)body)->stream.sink = NULL; /* the owner takes it */
	imap_response_free(r);
	/* only the untaken one was discarded */
	g_assert_cmpint(ctx.discards, ==, 1);
	g_assert_cmpstr(taken->data->str, ==, "abc");
	ts_free(taken);
	imap_parser_free(p);
}

static void test_inline_boundary(void)
{
	ImapParserLimits lim = small_inline(3);
	static const char in[] = "* X {3}\r\nabc {4}\r\nabcd {0}\r\n\r\n";

	check_lim(in, sizeof(in) - 1, &lim,
		  "* name=X args=({3}\"abc\" <4:\"abcd\"> {0}\"\")\n");
}

static void test_empty_literal(void)
{
	ImapParserLimits lim = small_inline(0);
	TestCtx ctx = { 0 };
	ImapParser *p = imap_parser_new(&lim, NULL, &ctx);
	static const char in[] = "* X {0}\r\n\r\n";
	ImapResponse *r = NULL;
	const ImapValue *v;
	size_t used;

	/* {0} is a STRING even with no sink and no inline room */
	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			1);
	v = imap_list_get(&r->args, 0);
	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, IMAP_VALUE_STRING);
	g_assert_true(v->literal);
	g_assert_cmpuint(v->len, ==, 0);
	g_assert_cmpstr(v->str, ==, "");
	imap_response_free(r);
	imap_parser_free(p);
}

static void test_no_sink(void)
{
	ImapParserLimits lim = small_inline(4);
	ImapParser *p = imap_parser_new(&lim, NULL, NULL);
	static const char in[] = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			-E2BIG);
	g_assert_null(r);
	g_assert_cmpuint(used, ==, 23); /* through the CRLF after {5} */
	g_assert_cmpstr(imap_parser_error(p), !=, "");
	imap_parser_free(p);
}

static void test_sink_refuses(void)
{
	ImapParserLimits lim = small_inline(4);
	TestCtx ctx = { .refuse = true };
	ImapParser *p = imap_parser_new(&lim, &test_sink, &ctx);
	static const char in[] = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			-ENOSPC);
	g_assert_null(r);
	imap_parser_free(p);
	g_assert_cmpint(ctx.begins, ==, 0);
}

static void test_sink_write_error(void)
{
	ImapParserLimits lim = small_inline(4);
	TestCtx ctx = { .write_error = -EIO };
	ImapParser *p = imap_parser_new(&lim, &test_sink, &ctx);
	static const char in[] = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			-EIO);
	g_assert_null(r);
	/* the half-written sink is released exactly once */
	g_assert_cmpint(ctx.begins, ==, 1);
	imap_parser_reset(p);
	imap_parser_free(p);
	g_assert_cmpint(ctx.discards, ==, 1);
	g_assert_cmpint(ctx.live, ==, 0);
}

/* An earlier STREAM in a response that then fails is discarded too. */
static void test_stream_then_error(void)
{
	ImapParserLimits lim = small_inline(1);
	static const char in[] = "* 1 FETCH (A {3}\r\nabc B {2}\r\nde ))\r\n";

	check_lim(in, sizeof(in) - 1, &lim, "ERR EPROTO@33");
}

static void test_reset_discards(void)
{
	ImapParserLimits lim = small_inline(4);
	TestCtx ctx = { 0 };
	ImapParser *p = imap_parser_new(&lim, &test_sink, &ctx);
	static const char in[] = "* 1 FETCH (A {5}\r\nhello B {100}\r\nabc";
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			0);
	g_assert_cmpuint(used, ==, sizeof(in) - 1);
	g_assert_cmpint(ctx.begins, ==, 2);
	imap_parser_reset(p);
	g_assert_cmpint(ctx.discards, ==, 2);
	g_assert_cmpint(ctx.live, ==, 0);

	/* free in the middle of a literal discards as well */
	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			0);
	imap_parser_free(p);
	g_assert_cmpint(ctx.discards, ==, 4);
	g_assert_cmpint(ctx.live, ==, 0);
}

/* ---- stopping at the end of a response; reset ---- */

static void test_consumed_stops(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	static const char in[] = "* 1 EXISTS\r\n* 2 EXPUNGE\r\nA1 OK";
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			1);
	g_assert_cmpuint(used, ==, 12);
	g_assert_cmpstr(r->name, ==, "EXISTS");
	imap_response_free(r);
	g_assert_cmpint(
	    imap_parser_feed(p, in + 12, sizeof(in) - 1 - 12, &used, &r), ==,
	    1);
	g_assert_cmpuint(used, ==, 13);
	g_assert_cmpstr(r->name, ==, "EXPUNGE");
	g_assert_cmpuint(r->number, ==, 2);
	imap_response_free(r);
	g_assert_cmpint(
	    imap_parser_feed(p, in + 25, sizeof(in) - 1 - 25, &used, &r), ==,
	    0);
	g_assert_cmpuint(used, ==, 5);
	g_assert_null(r);
	g_assert_cmpint(imap_parser_feed(p, "\r\n", 2, &used, &r), ==, 1);
	g_assert_cmpuint(used, ==, 2);
	g_assert_cmpstr(r->tag, ==, "A1");
	imap_response_free(r);
	g_assert_cmpint(imap_parser_feed(p, "", 0, &used, &r), ==, 0);
	g_assert_cmpuint(used, ==, 0);
	imap_parser_free(p);
}

static void test_reset_starttls(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	static const char in[] =
	    "A1 OK Begin TLS negotiation now\r\n* OK [CAPABILITY IMAP";
	ImapResponse *r = NULL;
	size_t used, off;

	g_assert_cmpint(imap_parser_feed(p, in, sizeof(in) - 1, &used, &r), ==,
			1);
	g_assert_cmpint(r->status, ==, IMAP_STATUS_OK);
	imap_response_free(r);
	off = used;
	/* leftovers injected before the handshake */
	g_assert_cmpint(
	    imap_parser_feed(p, in + off, sizeof(in) - 1 - off, &used, &r), ==,
	    0);
	g_assert_cmpuint(off + used, ==, sizeof(in) - 1);
	imap_parser_reset(p);
	g_assert_cmpint(imap_parser_feed(p, "* OK fresh\r\n", 12, &used, &r),
			==, 1);
	g_assert_cmpstr(r->name, ==, "OK");
	g_assert_null(r->code);
	g_assert_cmpstr(r->text, ==, "fresh");
	imap_response_free(r);

	/* reset also revives a dead parser */
	g_assert_cmpint(imap_parser_feed(p, ")\r\n", 3, &used, &r), ==,
			-EPROTO);
	g_assert_cmpint(imap_parser_feed(p, "* OK\r\n", 6, &used, &r), ==,
			-EPROTO);
	imap_parser_reset(p);
	g_assert_cmpstr(imap_parser_error(p), ==, "");
	g_assert_cmpint(imap_parser_feed(p, "* OK\r\n", 6, &used, &r), ==, 1);
	imap_response_free(r);
	imap_parser_free(p);
}

/* ---- limits ---- */

static void test_line_no_end(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	const size_t chunk = 65536;
	char *buf = g_malloc(chunk);
	size_t total = 0, used;
	ImapResponse *r = NULL;
	int rc = 0;

	memset(buf, 'a', chunk);
	memcpy(buf, "* X ", 4);
	for (int i = 0; i < 64 && rc == 0; i++) {
		rc = imap_parser_feed(p, buf, chunk, &used, &r);
		total += used;
		memset(buf, 'a', 4);
	}
	/* fails at the first byte beyond 1 MiB: never buffered more */
	g_assert_cmpint(rc, ==, -E2BIG);
	g_assert_cmpuint(total, ==, 1024 * 1024);
	g_assert_null(r);
	imap_parser_free(p);
	g_free(buf);
}

static void test_line_limit_exact(void)
{
	ImapParserLimits lim;

	imap_parser_limits_default(&lim);
	lim.max_line = 12;
	/* 12 bytes with CRLF pass; 13 do not */
	check_lim("* X abcdef\r\n", 12, &lim, "* name=X args=(abcdef)\n");
	check_lim("* X abcdefg\r\n", 13, &lim, "ERR E2BIG@12");
	/* in a quoted string, in text, in a tag; literal data is free */
	check_lim("* X \"abcdefghij\"\r\n", 18, &lim, "ERR E2BIG@12");
	check_lim("* OK abcdefghij\r\n", 17, &lim, "ERR E2BIG@12");
	check_lim("ABCDEFGHIJKLM OK\r\n", 18, &lim, "ERR E2BIG@12");
	check_lim("* X {20}\r\nabcdefghijklmnopqrst\r\n", 32, &lim,
		  "* name=X args=({20}\"abcdefghijklmnopqrst\")\n");
	/* the limit is per response */
	check_lim("* X abcdef\r\n* Y abcdef\r\n", 24, &lim,
		  "* name=X args=(abcdef)\n* name=Y args=(abcdef)\n");
}

static void test_literal_huge(void)
{
	TestCtx ctx = { 0 };
	ImapParserLimits lim;

	/* 2^63: over the 4 GiB default at the tenth digit, before "}" */
	check("* 1 FETCH (BODY[] {9223372036854775808}\r\n", 41,
	      "ERR E2BIG@28");
	/* digits that overflow uint64 even with no size limit */
	imap_parser_limits_default(&lim);
	lim.max_literal = UINT64_MAX;
	check_lim("* X {18446744073709551615}\r\n", 28, &lim, "PARTIAL");
	check_lim("* X {18446744073709551616}\r\n", 28, &lim, "ERR E2BIG@24");
	check_lim("* X {99999999999999999999999}\r\n", 31, &lim,
		  "ERR E2BIG@24");
	/* exactly max_literal is fine, one more is not */
	lim.max_literal = 100;
	check_lim("* X {100}\r\n", 11, &lim, "PARTIAL");
	check_lim("* X {101}\r\n", 11, &lim, "ERR E2BIG@7");
	/* nothing was begun for the refused sizes */
	ImapParser *p = imap_parser_new(NULL, &test_sink, &ctx);
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(
	    imap_parser_feed(p, "* X {4294967297}\r\n", 18, &used, &r), ==,
	    -E2BIG);
	g_assert_cmpint(ctx.begins, ==, 0);
	imap_parser_free(p);
}

static void test_depth(void)
{
	GString *in = g_string_new("* X ");
	GString *exp = g_string_new("* name=X args=(");

	for (int i = 0; i < 32; i++) {
		g_string_append_c(in, '(');
		g_string_append_c(exp, '(');
	}
	for (int i = 0; i < 32; i++) {
		g_string_append_c(in, ')');
		g_string_append_c(exp, ')');
	}
	g_string_append(in, "\r\n");
	g_string_append(exp, ")\n");
	check(in->str, in->len, exp->str);

	/* 33 levels exceed the default of 32 */
	g_string_assign(in, "* X ");
	for (int i = 0; i < 33; i++)
		g_string_append_c(in, '(');
	check(in->str, in->len, "ERR E2BIG@36");

	/* 10,000 of them fail at the same byte, without growing */
	g_string_assign(in, "* X ");
	for (int i = 0; i < 10000; i++)
		g_string_append_c(in, '(');
	g_string_append(in, "\r\n");
	check(in->str, in->len, "ERR E2BIG@36");

	/* a code's arguments count from the "[" */
	g_string_assign(in, "* OK [X ");
	for (int i = 0; i < 33; i++)
		g_string_append_c(in, '(');
	check(in->str, in->len, "ERR E2BIG@40");
	g_string_free(in, TRUE);
	g_string_free(exp, TRUE);
}

static void test_items(void)
{
	ImapParserLimits lim;

	imap_parser_limits_default(&lim);
	lim.max_items = 5;
	check_lim("* SEARCH 1 2 3 4 5\r\n", 20, &lim,
		  "* name=SEARCH args=(1 2 3 4 5)\n");
	check_lim("* SEARCH 1 2 3 4 5 6\r\n", 22, &lim, "ERR E2BIG@19");
	/* lists and their items all count */
	check_lim("* X ((a) b)\r\n", 13, &lim, "* name=X args=(((a) b))\n");
	check_lim("* X ((a) (b) c)\r\n", 17, &lim, "ERR E2BIG@13");
	check_lim("* X a \"b\" {1}\r\nc NIL ~{1}\r\nd e\r\n", 32, &lim,
		  "ERR E2BIG@29");
	check_lim("* OK [X 1 2 3 4 5 6] t\r\n", 24, &lim, "ERR E2BIG@18");
	/* a range is one value, never expanded */
	check_lim("* SEARCH 1:4294967295\r\n", 23, &lim,
		  "* name=SEARCH args=(1:4294967295)\n");
	/* the count is per response */
	check_lim("* SEARCH 1 2 3 4 5\r\n* SEARCH 1 2 3 4 5\r\n", 40, &lim,
		  "* name=SEARCH args=(1 2 3 4 5)\n"
		  "* name=SEARCH args=(1 2 3 4 5)\n");
}

static void test_inline_budget(void)
{
	ImapParserLimits lim;
	GString *in = g_string_new("* X");

	/* in-memory literal bytes per response: max_line + inline max */
	imap_parser_limits_default(&lim);
	lim.max_line = 64;
	lim.inline_literal_max = 16;
	for (int i = 0; i < 6; i++)
		g_string_append(in, " {16}\r\n0123456789abcdef");
	g_string_append(in, "\r\n");
	check_lim(in->str, in->len, &lim, "ERR E2BIG@125");
	g_string_free(in, TRUE);
}

/* ---- garbage ---- */

static void test_garbage(void)
{
	/* clang-format off */
	static const struct {
		const char *in;
		size_t len;
	} bad[] = {
#define G(s) {s, sizeof(s) - 1}
		G("\r\n"),
		G(" * OK\r\n"),
		G("*OK\r\n"),
		G("*\r\n"),
		G("* \r\n"),
		G("*  X\r\n"),
		G("* 12\r\n"),
		G("* 12 \r\n"),
		G("A1\r\n"),
		G("A1 \r\n"),
		G("A1 FOO bar\r\n"),
		G("A1 PREAUTH x\r\n"),
		G("A1 BYE x\r\n"),
		G("A1 OK[X] y\r\n"),
		G("(a)\r\n"),
		G(")\r\n"),
		G("{5}\r\nabcde\r\n"),
		G("* X (a b\r\n"),
		G("* X a)\r\n"),
		G("* X \"abc\r\n"),
		G("* X \"abc\\\r\n"),
		G("* X \"a\0b\"\r\n"),
		G("* X {abc}\r\n"),
		G("* X {}\r\n"),
		G("* X {5\r\n"),
		G("* X {5+}\r\nabcde\r\n"),
		G("* X {5}abcde\r\n"),
		G("* X {3}\r\nabc\x01\r\n"),
		G("* X a\x01" "b\r\n"),
		G("* X a\tb\r\n"),
		G("* X BODY[abc\r\n"),
		G("* X BODY[\"a]\r\n"),
		G("* OK te\0xt\r\n"),
		G("* OK foo\rbar\r\n"),
		G("* X a\rb\r\n"),
		G("* (X) a\r\n"),
		G("* \"X\" a\r\n"),
		G("\x01\x02\x03\r\n"),
		G("* X ~{x}\r\n"),
#undef G
	};
	/* clang-format on */

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		TestCtx ctx = { 0 };
		g_autofree char *whole = run_split(bad[i].in, bad[i].len,
						   SPLIT_WHOLE, 0, NULL, &ctx);
		g_autofree char *bytes = run_split(bad[i].in, bad[i].len,
						   SPLIT_BYTES, 0, NULL, &ctx);

		g_test_message("garbage %zu: %s", i, whole);
		g_assert_true(g_str_has_prefix(whole, "ERR EPROTO@"));
		g_assert_cmpstr(bytes, ==, whole);
	}
}

static void test_error_messages(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpstr(imap_parser_error(p), ==, "");
	g_assert_cmpint(imap_parser_feed(p, "* X \"ab\r\n", 9, &used, &r), ==,
			-EPROTO);
	g_assert_cmpstr(imap_parser_error(p), ==, "unterminated quoted string");
	imap_parser_reset(p);
	g_assert_cmpint(imap_parser_feed(p, "* X (a\r\n", 8, &used, &r), ==,
			-EPROTO);
	g_assert_cmpstr(imap_parser_error(p), ==,
			"unterminated list at end of line");
	imap_parser_reset(p);
	g_assert_cmpint(
	    imap_parser_feed(p, "* X {99999999999}\r\n", 19, &used, &r), ==,
	    -E2BIG);
	g_assert_cmpstr(imap_parser_error(p), ==,
			"literal larger than the limit");
	imap_parser_free(p);
}

/* ---- helpers ---- */

static ImapResponse *parse_one(const char *in)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	size_t used;

	g_assert_cmpint(imap_parser_feed(p, in, strlen(in), &used, &r), ==, 1);
	g_assert_cmpuint(used, ==, strlen(in));
	imap_parser_free(p);
	return r;
}

static void test_helpers(void)
{
	ImapResponse *r = parse_one(
	    "* 7 FETCH (UID 42 RFC822.SIZE 18446744073709551615 "
	    "X 18446744073709551616 FLAGS (\\Seen) BODY[]<0> \"partial\" "
	    "BODY[] {4}\r\nbody ENVELOPE NIL S \"12\" E \"\" Q 0012 "
	    "N -1)\r\n");
	const ImapValue *list = imap_list_get(&r->args, 0);
	const ImapValue *v;
	uint64_t n = 0;
	size_t len = 99;

	g_assert_nonnull(list);
	g_assert_null(imap_list_get(&r->args, 1));
	g_assert_null(imap_list_get(NULL, 0));
	g_assert_null(imap_list_get(imap_list_get(list, 0), 0));

	g_assert_true(imap_value_is_atom(imap_list_get(list, 0), "uid"));
	g_assert_true(imap_value_is_atom(imap_list_get(list, 0), "UID"));
	g_assert_false(imap_value_is_atom(imap_list_get(list, 0), "UI"));
	g_assert_false(imap_value_is_atom(imap_list_get(list, 0), "UIDX"));
	g_assert_false(imap_value_is_atom(NULL, "UID"));

	g_assert_true(imap_value_get_u64(imap_fetch_get(list, "uid"), &n));
	g_assert_cmpuint(n, ==, 42);
	g_assert_true(
	    imap_value_get_u64(imap_fetch_get(list, "RFC822.SIZE"), &n));
	g_assert_cmpuint(n, ==, UINT64_MAX);
	g_assert_false(imap_value_get_u64(imap_fetch_get(list, "X"), &n));
	g_assert_false(imap_value_get_u64(imap_fetch_get(list, "S"), &n));
	g_assert_false(imap_value_get_u64(imap_fetch_get(list, "N"), &n));
	g_assert_false(imap_value_get_u64(imap_fetch_get(list, "FLAGS"), &n));
	g_assert_false(imap_value_get_u64(NULL, &n));
	g_assert_true(imap_value_get_u64(imap_fetch_get(list, "Q"), &n));
	g_assert_cmpuint(n, ==, 12);

	v = imap_fetch_get(list, "BODY[]");
	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, IMAP_VALUE_STRING);
	g_assert_cmpstr(imap_value_get_string(v, &len), ==, "body");
	g_assert_cmpuint(len, ==, 4);
	v = imap_fetch_get(list, "body[]<0>");
	g_assert_cmpstr(imap_value_get_string(v, NULL), ==, "partial");
	g_assert_false(v->literal);
	g_assert_null(imap_fetch_get(list, "BODY[]<1>"));
	g_assert_null(imap_fetch_get(list, "BODY"));
	g_assert_null(imap_fetch_get(list, "N-1"));
	g_assert_null(imap_fetch_get(list, "-1")); /* values are not keys */
	g_assert_null(imap_fetch_get(&r->args.items[0].items[0], "UID"));
	g_assert_null(imap_fetch_get(NULL, "UID"));

	v = imap_fetch_get(list, "ENVELOPE");
	g_assert_cmpint(v->type, ==, IMAP_VALUE_NIL);
	g_assert_null(imap_value_get_string(v, &len));
	v = imap_fetch_get(list, "E");
	g_assert_cmpstr(imap_value_get_string(v, &len), ==, "");
	g_assert_cmpuint(len, ==, 0);
	g_assert_cmpstr(imap_value_get_string(imap_list_get(list, 0), &len), ==,
			"UID");
	g_assert_cmpuint(len, ==, 3);
	g_assert_null(
	    imap_value_get_string(imap_fetch_get(list, "FLAGS"), NULL));
	g_assert_null(imap_value_get_string(NULL, NULL));
	imap_response_free(r);
	imap_response_free(NULL);
}

static void test_response_fields(void)
{
	ImapResponse *r;

	r = parse_one("* 23 EXISTS\r\n");
	g_assert_cmpint(r->kind, ==, IMAP_RESPONSE_UNTAGGED);
	g_assert_cmpint(r->status, ==, IMAP_STATUS_NONE);
	g_assert_true(r->has_number);
	g_assert_cmpuint(r->number, ==, 23);
	g_assert_cmpstr(r->name, ==, "EXISTS");
	g_assert_cmpstr(r->text, ==, "");
	g_assert_null(r->code);
	g_assert_cmpuint(r->args.len, ==, 0);
	imap_response_free(r);

	r = parse_one("A7 no [ALERT] Mailbox full\r\n");
	g_assert_cmpint(r->kind, ==, IMAP_RESPONSE_TAGGED);
	g_assert_cmpstr(r->tag, ==, "A7");
	g_assert_cmpint(r->status, ==, IMAP_STATUS_NO);
	g_assert_cmpstr(r->code, ==, "ALERT");
	g_assert_cmpint(r->code_args.type, ==, IMAP_VALUE_LIST);
	g_assert_cmpuint(r->code_args.len, ==, 0);
	g_assert_cmpstr(r->text, ==, "Mailbox full");
	g_assert_false(r->has_number);
	imap_response_free(r);

	r = parse_one("+\r\n");
	g_assert_cmpint(r->kind, ==, IMAP_RESPONSE_CONTINUATION);
	g_assert_cmpstr(r->text, ==, "");
	imap_response_free(r);
}

/* ---- volume: 100,000 FETCH responses ---- */

static void test_many_fetches(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	GString *in = g_string_new(NULL);
	const unsigned count = 100000;
	unsigned seen = 0;
	size_t pos = 0;

	for (unsigned i = 1; i <= count; i++) {
		char subj[64];
		int n = g_snprintf(subj, sizeof(subj),
				   "Subject: message %u\r\n\r\n", i);

		g_string_append_printf(
		    in,
		    "* %u FETCH (UID %u RFC822.SIZE %u FLAGS (\\Seen) "
		    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
		    "BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n%s)\r\n",
		    i, i + 1000, i * 3, n, subj);
	}
	while (pos < in->len) {
		size_t end = MIN(pos + 4096, in->len);

		while (pos < end) {
			ImapResponse *r = NULL;
			size_t used;
			int rc = imap_parser_feed(p, in->str + pos, end - pos,
						  &used, &r);
			const ImapValue *list;
			uint64_t uid = 0;

			g_assert_cmpint(rc, >=, 0);
			pos += used;
			if (rc == 0)
				continue;
			seen++;
			g_assert_cmpuint(r->number, ==, seen);
			list = imap_list_get(&r->args, 0);
			g_assert_true(imap_value_get_u64(
			    imap_fetch_get(list, "UID"), &uid));
			g_assert_cmpuint(uid, ==, seen + 1000);
			g_assert_nonnull(imap_fetch_get(
			    list, "BODY[HEADER.FIELDS (SUBJECT)]"));
			imap_response_free(r);
		}
	}
	g_assert_cmpuint(seen, ==, count);
	g_string_free(in, TRUE);
	imap_parser_free(p);
}

/* A 1 MiB line fed one byte at a time must stay linear. */
static void test_long_line_bytewise(void)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	ImapResponse *r = NULL;
	const size_t n = 1024 * 1024 - 32;
	size_t used;
	char c = 'x';

	g_assert_cmpint(imap_parser_feed(p, "* X ", 4, &used, &r), ==, 0);
	for (size_t i = 0; i < n; i++)
		g_assert_cmpint(imap_parser_feed(p, &c, 1, &used, &r), ==, 0);
	g_assert_cmpint(imap_parser_feed(p, " \"q\"\r\n", 6, &used, &r), ==, 1);
	g_assert_cmpuint(r->args.len, ==, 2);
	g_assert_cmpuint(r->args.items[0].len, ==, n);
	imap_response_free(r);
	imap_parser_free(p);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(samples); i++) {
		g_autofree char *path =
		    g_strdup_printf("/parser/sample/%s", samples[i].name);

		g_test_add_data_func(path, &samples[i], test_sample);
	}
	g_test_add_func("/parser/concatenated", test_concatenated);
	g_test_add_func("/parser/literal/stream", test_stream);
	g_test_add_func("/parser/literal/stream-take", test_stream_take);
	g_test_add_func("/parser/literal/inline-boundary",
			test_inline_boundary);
	g_test_add_func("/parser/literal/empty", test_empty_literal);
	g_test_add_func("/parser/literal/no-sink", test_no_sink);
	g_test_add_func("/parser/literal/sink-refuses", test_sink_refuses);
	g_test_add_func("/parser/literal/sink-write-error",
			test_sink_write_error);
	g_test_add_func("/parser/literal/stream-then-error",
			test_stream_then_error);
	g_test_add_func("/parser/literal/reset-discards", test_reset_discards);
	g_test_add_func("/parser/consumed-stops", test_consumed_stops);
	g_test_add_func("/parser/reset-starttls", test_reset_starttls);
	g_test_add_func("/parser/limits/line-no-end", test_line_no_end);
	g_test_add_func("/parser/limits/line-exact", test_line_limit_exact);
	g_test_add_func("/parser/limits/literal-huge", test_literal_huge);
	g_test_add_func("/parser/limits/depth", test_depth);
	g_test_add_func("/parser/limits/items", test_items);
	g_test_add_func("/parser/limits/inline-budget", test_inline_budget);
	g_test_add_func("/parser/garbage", test_garbage);
	g_test_add_func("/parser/error-messages", test_error_messages);
	g_test_add_func("/parser/helpers", test_helpers);
	g_test_add_func("/parser/response-fields", test_response_fields);
	g_test_add_func("/parser/many-fetches", test_many_fetches);
	g_test_add_func("/parser/long-line-bytewise", test_long_line_bytewise);
	return g_test_run();
}
