/* libFuzzer target for imap/parser.c.
 *
 * The input is a server transcript. It is parsed under three settings
 * (default limits, small limits, small limits without a sink), each time
 * once whole and once in splits derived from the input; both runs must give
 * the same transcript of responses and errors (after an error the parser is
 * reset and parsing resumes one byte further). Every response is freed and
 * every sink must be released.
 *
 * The ENVELOPE reader (imap/envelope.c) runs on every list that comes out.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-parser.
 */
#include "imap/envelope.h"
#include "imap/parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	uint64_t size;
	uint64_t got;
} CountSink;

static long sinks_live;

static void *cs_begin(void *user_data, uint64_t size)
{
	CountSink *s = g_new0(CountSink, 1);

	s->size = size;
	sinks_live++;
	return s;
}

static int cs_write(void *user_data, void *sink, const void *buf, size_t len)
{
	CountSink *s = sink;

	s->got += len;
	if (s->got > s->size)
		abort();
	return 0;
}

static void cs_discard(void *user_data, void *sink)
{
	sinks_live--;
	g_free(sink);
}

static const ImapLiteralSink count_sink = {
	.begin = cs_begin,
	.write = cs_write,
	.discard = cs_discard,
};

static void dump_value(GString *g, const ImapValue *v)
{
	const CountSink *s;

	switch (v->type) {
	case IMAP_VALUE_ATOM:
		if (!v->str || strlen(v->str) != v->len)
			abort();
		g_string_append_printf(g, "a%zu:", v->len);
		g_string_append_len(g, v->str, v->len);
		break;
	case IMAP_VALUE_STRING:
		if (!v->str || v->str[v->len] != '\0')
			abort();
		g_string_append_printf(g, "s%d%zu:", v->literal, v->len);
		g_string_append_len(g, v->str, v->len);
		break;
	case IMAP_VALUE_NIL:
		g_string_append(g, "N");
		break;
	case IMAP_VALUE_LIST:
		g_string_append_printf(g, "(%zu", v->len);
		for (size_t i = 0; i < v->len; i++) {
			g_string_append_c(g, ' ');
			dump_value(g, &v->items[i]);
		}
		g_string_append_c(g, ')');
		break;
	case IMAP_VALUE_STREAM:
		s = v->stream.sink;
		if (!s || s->got != s->size || s->size != v->stream.size ||
		    !v->literal)
			abort();
		g_string_append_printf(g, "S%" G_GUINT64_FORMAT,
				       v->stream.size);
		break;
	default:
		abort();
	}
}

static void dump_response(GString *g, const ImapResponse *r)
{
	if (!r->text || r->args.type != IMAP_VALUE_LIST ||
	    r->code_args.type != IMAP_VALUE_LIST)
		abort();
	g_string_append_printf(
	    g, "k%d t%s s%d c%s n%d:%" G_GUINT64_FORMAT " %s ", r->kind,
	    r->tag ? r->tag : "-", r->status, r->code ? r->code : "-",
	    r->has_number, r->number, r->name ? r->name : "-");
	dump_value(g, &r->code_args);
	g_string_append_c(g, ' ');
	dump_value(g, &r->args);
	g_string_append_printf(g, " [%s]\n", r->text);
	/* exercise the helpers on whatever came out */
	for (size_t i = 0; i < r->args.len; i++) {
		const ImapValue *v = imap_list_get(&r->args, i);
		uint64_t n;
		size_t len;

		(void)imap_value_get_u64(v, &n);
		(void)imap_value_get_string(v, &len);
		(void)imap_fetch_get(v, "UID");
		(void)imap_value_is_atom(v, "NIL");
		/* ENVELOPE and Gmail items of a FETCH (imap/envelope.c) */
		imap_envelope_free(imap_envelope_parse(v));
	}
}

static uint32_t next_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

/* seed 0: feed whole; otherwise in pseudo-random chunks. */
static char *run(const uint8_t *data, size_t size, const ImapParserLimits *lim,
		 bool with_sink, uint32_t seed)
{
	ImapParser *p =
	    imap_parser_new(lim, with_sink ? &count_sink : NULL, NULL);
	GString *out = g_string_new(NULL);
	const char *in = (const char *)data;
	size_t pos = 0;

	while (pos < size) {
		size_t end = size;

		if (seed) {
			uint32_t r = next_rand(&seed);
			size_t n = (r & 3) == 0 ? 1 + (r >> 8) % 256
						: 1 + (r >> 8) % 8;

			end = pos + MIN(n, size - pos);
		}
		while (pos < end) {
			ImapResponse *resp = NULL;
			size_t used = 0;
			int rc = imap_parser_feed(p, in + pos, end - pos, &used,
						  &resp);

			if (used > end - pos)
				abort();
			pos += used;
			if (rc < 0) {
				if (resp || !*imap_parser_error(p))
					abort();
				g_string_append_printf(out, "E%d@%zu\n", rc,
						       pos);
				imap_parser_reset(p);
				pos++;
				break;
			}
			if (rc == 1) {
				dump_response(out, resp);
				imap_response_free(resp);
			} else if (pos != end || resp) {
				abort();
			}
		}
	}
	imap_parser_free(p);
	if (sinks_live)
		abort();
	return g_string_free(out, FALSE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ImapParserLimits def, small;
	uint32_t hash = 2166136261u;

	imap_parser_limits_default(&def);
	def.inline_literal_max = 64;
	small = def;
	small.max_line = 256;
	small.inline_literal_max = 16;
	small.max_literal = 4096;
	small.max_depth = 4;
	small.max_items = 64;

	for (size_t i = 0; i < size; i++)
		hash = (hash ^ data[i]) * 16777619u;

	for (int cfg = 0; cfg < 3; cfg++) {
		const ImapParserLimits *lim = cfg ? &small : &def;
		bool with_sink = cfg != 2;
		g_autofree char *whole = run(data, size, lim, with_sink, 0);
		g_autofree char *split =
		    run(data, size, lim, with_sink, (hash ^ (uint32_t)cfg) | 1);

		if (strcmp(whole, split) != 0) {
			fprintf(stderr,
				"split mismatch (cfg %d):\n%s\n--\n%s\n", cfg,
				whole, split);
			abort();
		}
	}
	return 0;
}
