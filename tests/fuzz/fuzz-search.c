/* libFuzzer target for imap/search.c.
 *
 * The first byte picks the server's capabilities; the rest, up to its
 * first NUL, is a user's query. Whatever compiles must be safe to send: no
 * CR, LF or NUL outside a literal, every "{N+}" followed by CRLF and N
 * bytes, every chunk but the last ending in "{N}" with N the length of
 * the literal at the start of the next; whatever fails has a one-line
 * reason. The same bytes are also read as a server's SEARCH answer.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-search.
 */
#include "tests/fuzz/fuzz-check.h"
#include "imap/parser.h"
#include "imap/search.h"

#include <errno.h>
#include <stdbool.h>
#include <glib.h>
#include <string.h>

/* One chunk of criteria, whose first lit_first bytes are the rest of a
 * synchronising literal: outside literals, no CR or LF; quoted strings
 * end; "{N+}" is followed by CRLF and N bytes. */
static void check_chunk(const char *s, size_t lit_first)
{
	size_t len = strlen(s), i = lit_first;
	bool quoted = false;

	CHECK(lit_first <= len);
	while (i < len) {
		char *end;
		unsigned long n;

		CHECK(s[i] != '\r' && s[i] != '\n');
		if (quoted) {
			if (s[i] == '\\') {
				CHECK(s[i + 1] == '"' || s[i + 1] == '\\');
				i++;
			} else if (s[i] == '"') {
				quoted = false;
			}
			i++;
			continue;
		}
		if (s[i] == '"')
			quoted = true;
		if (s[i] != '{') {
			i++;
			continue;
		}
		n = strtoul(s + i + 1, &end, 10);
		if (end[0] == '+') {
			CHECK(end[1] == '}' && end[2] == '\r' &&
			      end[3] == '\n');
			i = (size_t)(end + 4 - s) + n;
			CHECK(i <= len);
			continue;
		}
		CHECK(end[0] == '}' && end[1] == '\0'); /* "{N}" ends a chunk */
		i = len;
	}
	CHECK(!quoted);
}

static void check_compile(const char *query, unsigned caps)
{
	GPtrArray *chunks = NULL;
	char *why = NULL;
	int rc = imap_search_compile(query, caps, &chunks, &why);

	if (rc < 0) {
		CHECK(rc == -EINVAL && !chunks && why && *why);
		CHECK(!strchr(why, '\n') && !strchr(why, '\r'));
		g_free(why);
		return;
	}
	CHECK(rc == 0 && chunks && chunks->len >= 1 && !why);
	for (guint i = 0; i < chunks->len; i++) {
		const char *c = chunks->pdata[i];
		size_t lit = 0;

		if (i > 0) {
			const char *prev = chunks->pdata[i - 1];
			const char *open = strrchr(prev, '{');

			CHECK(open && g_str_has_suffix(prev, "}"));
			lit = strtoul(open + 1, NULL, 10);
		}
		check_chunk(c, lit);
	}
	g_ptr_array_unref(chunks);
	(void)imap_search_is_criteria(query);
}

static void check_answer(const uint8_t *data, size_t size)
{
	ImapParser *p = imap_parser_new(NULL, NULL, NULL);
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	ImapSearchSource src = { 0 };
	ImapResponse *r = NULL;
	size_t used = 0;

	if (imap_parser_feed(p, (const char *)data, size, &used, &r) == 1) {
		int rc = imap_search_parse(r, uids, &src);

		CHECK(rc == 1 || rc == 0 || rc == -EPROTO || rc == -E2BIG);
		for (guint i = 0; rc == 1 && i < uids->len; i++)
			CHECK(g_array_index(uids, uint32_t, i) != 0);
		imap_response_free(r);
	}
	imap_search_source_clear(&src);
	imap_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *query = NULL;

	if (size == 0)
		return 0;
	query = g_strndup((const char *)data + 1, size - 1);
	check_compile(query, data[0] & 7);
	check_answer(data + 1, size - 1);
	return 0;
}
