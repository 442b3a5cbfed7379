/* libFuzzer target for imap/bodystructure.c.
 *
 * The input is the text after "* 1 FETCH (BODYSTRUCTURE ", completed to a
 * response line and parsed with a list depth far above the converter's own
 * limit. Whatever converts must respect the limits (depth, part count,
 * string lengths), number its sections consistently (a child's section
 * starts with its parent's) and free cleanly; whatever fails must fail
 * with -EPROTO or -E2BIG and leave no tree.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-bodystructure.
 */
#include "tests/fuzz/fuzz-check.h"
#include "imap/bodystructure.h"

#include <errno.h>
#include <string.h>

static size_t check_tree(const ImapBodyPart *p, int depth)
{
	size_t n = 1;

	CHECK(depth <= IMAP_BODY_MAX_DEPTH);
	CHECK(p->type && p->subtype && p->section && p->params);
	CHECK(strlen(p->subtype) <= IMAP_BODY_MAX_STRING);
	if (p->children) {
		CHECK(p->children->len > 0);
		for (guint i = 0; i < p->children->len; i++) {
			const ImapBodyPart *c = p->children->pdata[i];

			CHECK(g_str_has_prefix(c->section, p->section));
			n += check_tree(c, depth + 1);
		}
	}
	if (p->message) {
		CHECK(g_str_has_prefix(p->message->section, p->section));
		n += check_tree(p->message, depth + 1);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ImapParserLimits lim;
	ImapParser *parser;
	ImapResponse *r = NULL;
	ImapBodyPart *b = NULL;
	GString *line = g_string_new("* 1 FETCH (BODYSTRUCTURE ");
	size_t used = 0;
	int rc;

	g_string_append_len(line, (const char *)data, (gssize)size);
	g_string_append(line, ")\r\n");
	imap_parser_limits_default(&lim);
	lim.max_depth = 10000;
	parser = imap_parser_new(&lim, NULL, NULL);
	if (imap_parser_feed(parser, line->str, line->len, &used, &r) == 1) {
		const ImapValue *v =
		    imap_fetch_get(imap_list_get(&r->args, 0), "BODYSTRUCTURE");

		rc = imap_bodystructure_parse(v, &b);
		if (rc == 0) {
			CHECK(b);
			CHECK(check_tree(b, 0) <= IMAP_BODY_MAX_PARTS);
			imap_body_part_free(b);
		} else {
			CHECK(rc == -EPROTO || rc == -E2BIG);
			CHECK(b == NULL);
		}
		imap_response_free(r);
	}
	imap_parser_free(parser);
	g_string_free(line, TRUE);
	return 0;
}
