/* imap/search.c: a user's query as SEARCH criteria, and SEARCH/ESEARCH
 * answers as UIDs (pure; see search.h).
 *
 * The query is split into tokens (words, quoted strings, parentheses) and
 * checked against the argument syntax of each search key. Nothing the user
 * typed reaches the output unchecked: strings are written back quoted by
 * us (or as literals of the exact length), other arguments must consist
 * of characters that cannot end a command. Limits: IMAP_SEARCH_QUERY_MAX
 * bytes, MAX_DEPTH nested keys, MAX_SEARCH_UIDS UIDs in an answer.
 */
#include "imap/search.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_SEARCH_UIDS (1024u * 1024)
#define LITERAL_MINUS_MAX 4096

/* Argument patterns: one letter per argument. */
typedef struct {
	const char *name;
	const char *args; /* s string, d date, n number, k keyword, u UID
			     set, K key (NOT, OR), "" none */
	bool gmail;       /* only with X-GM-EXT-1 */
} SearchKey;

static const SearchKey keys[] = {
	{ "ALL", "", false },         { "ANSWERED", "", false },
	{ "BCC", "s", false },        { "BEFORE", "d", false },
	{ "BODY", "s", false },       { "CC", "s", false },
	{ "DELETED", "", false },     { "DRAFT", "", false },
	{ "FLAGGED", "", false },     { "FROM", "s", false },
	{ "HEADER", "ss", false },    { "KEYWORD", "k", false },
	{ "LARGER", "n", false },     { "MODSEQ", "n", false },
	{ "NEW", "", false },         { "NOT", "K", false },
	{ "OLD", "", false },         { "OLDER", "n", false },
	{ "ON", "d", false },         { "OR", "KK", false },
	{ "RECENT", "", false },      { "SEEN", "", false },
	{ "SENTBEFORE", "d", false }, { "SENTON", "d", false },
	{ "SENTSINCE", "d", false },  { "SINCE", "d", false },
	{ "SMALLER", "n", false },    { "SUBJECT", "s", false },
	{ "TEXT", "s", false },       { "TO", "s", false },
	{ "UID", "u", false },        { "UNANSWERED", "", false },
	{ "UNDELETED", "", false },   { "UNDRAFT", "", false },
	{ "UNFLAGGED", "", false },   { "UNKEYWORD", "k", false },
	{ "UNSEEN", "", false },      { "YOUNGER", "n", false },
	{ "X-GM-RAW", "s", true },    { "X-GM-MSGID", "n", true },
	{ "X-GM-THRID", "n", true },  { "X-GM-LABELS", "s", true },
};

typedef enum { TOK_WORD, TOK_STRING, TOK_OPEN, TOK_CLOSE } TokKind;

typedef struct {
	TokKind kind;
	char *text; /* WORD and STRING (unescaped) */
} Token;

typedef struct {
	GArray *toks; /* Token */
	guint pos;
	unsigned caps;
	GString *cur;      /* the chunk being written */
	GPtrArray *chunks; /* finished chunks */
	bool non_ascii;
	char *why;
} Compiler;

static void token_clear(gpointer p)
{
	g_free(((Token *)p)->text);
}

static const SearchKey *find_key(const char *word)
{
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
		if (g_ascii_strcasecmp(keys[i].name, word) == 0)
			return &keys[i];
	return NULL;
}

static int fail(Compiler *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int fail(Compiler *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->why) {
		va_start(ap, fmt);
		c->why = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A quoted token starting at *p (the opening quote); advances *p. */
static int read_quoted(Compiler *c, const char **p, GString *out)
{
	const char *s = *p + 1;

	for (; *s && *s != '"'; s++) {
		if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
			s++;
		g_string_append_c(out, *s);
	}
	if (*s != '"')
		return fail(c, "a quoted string has no closing quote");
	*p = s + 1;
	return 0;
}

static int tokenize(Compiler *c, const char *q)
{
	const char *p = q;

	while (*p) {
		Token t = { TOK_WORD, NULL };

		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		if (*p == '(' || *p == ')') {
			t.kind = *p == '(' ? TOK_OPEN : TOK_CLOSE;
			p++;
		} else if (*p == '"') {
			GString *s = g_string_new(NULL);

			t.kind = TOK_STRING;
			if (read_quoted(c, &p, s) < 0) {
				g_string_free(s, TRUE);
				return -EINVAL;
			}
			t.text = g_string_free(s, FALSE);
		} else {
			size_t n = strcspn(p, " \t()\"");

			t.text = g_strndup(p, n);
			p += n;
		}
		g_array_append_val(c->toks, t);
	}
	return 0;
}

static const Token *peek(Compiler *c)
{
	return c->pos < c->toks->len ? &g_array_index(c->toks, Token, c->pos)
				     : NULL;
}

static const Token *next(Compiler *c)
{
	const Token *t = peek(c);

	if (t)
		c->pos++;
	return t;
}

/* A string argument: quoted when it is plain ASCII, else a literal. */
static void emit_string(Compiler *c, const char *s)
{
	size_t len = strlen(s);
	bool plain = true;

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80)
			plain = false;
	if (plain) {
		g_string_append_c(c->cur, '"');
		for (const char *p = s; *p; p++) {
			if (*p == '"' || *p == '\\')
				g_string_append_c(c->cur, '\\');
			g_string_append_c(c->cur, *p);
		}
		g_string_append_c(c->cur, '"');
		return;
	}
	c->non_ascii = true;
	if ((c->caps & IMAP_SEARCH_LITERAL_PLUS) ||
	    ((c->caps & IMAP_SEARCH_LITERAL_MINUS) &&
	     len <= LITERAL_MINUS_MAX)) {
		g_string_append_printf(c->cur, "{%zu+}\r\n%s", len, s);
		return;
	}
	/* A synchronising literal: the rest waits for the server's "+". */
	g_string_append_printf(c->cur, "{%zu}", len);
	g_ptr_array_add(c->chunks, g_string_free(c->cur, FALSE));
	c->cur = g_string_new(s);
}

static bool all_chars(const char *s, const char *allowed)
{
	return *s && strspn(s, allowed) == strlen(s);
}

/* "1-Jan-2024" or "01-Jan-2024": the server checks the month and day. */
static bool is_date(const char *s)
{
	size_t d = strspn(s, "0123456789");

	if (d < 1 || d > 2 || s[d] != '-')
		return false;
	s += d + 1;
	for (int i = 0; i < 3; i++)
		if (!g_ascii_isalpha(s[i]))
			return false;
	s += 3;
	return *s == '-' && strlen(s + 1) == 4 &&
	       all_chars(s + 1, "0123456789");
}

/* A flag keyword: atom characters only (no specials, no backslash). */
static bool is_keyword(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("(){%*\"\\]", *p))
			return false;
	return *s != '\0';
}

static int compile_key(Compiler *c, unsigned depth);

static int compile_arg(Compiler *c, const SearchKey *k, char kind,
		       unsigned depth)
{
	const Token *t;

	if (kind == 'K')
		return compile_key(c, depth + 1);
	t = next(c);
	if (!t || t->kind == TOK_OPEN || t->kind == TOK_CLOSE)
		return fail(c, "%s needs an argument", k->name);
	if (kind == 's') {
		emit_string(c, t->text);
		return 0;
	}
	if (t->kind != TOK_WORD)
		return fail(c, "%s takes no quoted argument", k->name);
	switch (kind) {
	case 'd':
		if (!is_date(t->text))
			return fail(c, "%s needs a date such as 1-Jan-2024",
				    k->name);
		break;
	case 'n':
		if (!all_chars(t->text, "0123456789") || strlen(t->text) > 20)
			return fail(c, "%s needs a number", k->name);
		break;
	case 'k':
		if (!is_keyword(t->text))
			return fail(c, "%s needs a flag keyword", k->name);
		break;
	case 'u':
		if (!all_chars(t->text, "0123456789:,*"))
			return fail(c, "%s needs a UID set such as 1:100",
				    k->name);
		break;
	default:
		break;
	}
	g_string_append(c->cur, t->text);
	return 0;
}

static int compile_group(Compiler *c, unsigned depth)
{
	const Token *t;
	bool first = true;

	g_string_append_c(c->cur, '(');
	while ((t = peek(c)) && t->kind != TOK_CLOSE) {
		if (!first)
			g_string_append_c(c->cur, ' ');
		if (compile_key(c, depth + 1) < 0)
			return -EINVAL;
		first = false;
	}
	if (!next(c))
		return fail(c, "a parenthesis is not closed");
	if (first)
		return fail(c, "empty parentheses");
	g_string_append_c(c->cur, ')');
	return 0;
}

static int compile_key(Compiler *c, unsigned depth)
{
	const Token *t = next(c);
	const SearchKey *k;

	if (depth > MAX_DEPTH)
		return fail(c, "the query nests too deeply");
	if (!t)
		return fail(c, "the query ends where a search key should be");
	if (t->kind == TOK_OPEN)
		return compile_group(c, depth);
	k = t->kind == TOK_WORD ? find_key(t->text) : NULL;
	if (!k || (k->gmail && !(c->caps & IMAP_SEARCH_GMAIL)))
		return fail(c, "\"%s\" is not a search key",
			    t->text ? t->text : ")");
	g_string_append(c->cur, k->name);
	for (const char *a = k->args; *a; a++) {
		g_string_append_c(c->cur, ' ');
		if (compile_arg(c, k, *a, depth) < 0)
			return -EINVAL;
	}
	return 0;
}

static int compile_criteria(Compiler *c)
{
	while (peek(c)) {
		if (c->pos > 0)
			g_string_append_c(c->cur, ' ');
		if (compile_key(c, 0) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Full text: the whole query, or the one quoted string it is. */
static int compile_text(Compiler *c, const char *query)
{
	const Token *t = peek(c);
	g_autofree char *text = NULL;

	if (c->toks->len == 1 && t->kind == TOK_STRING)
		text = g_strdup(t->text);
	else
		text = g_strstrip(g_strdup(query));
	if (!*text)
		return fail(c, "the query is empty");
	g_string_append(c->cur, "TEXT ");
	emit_string(c, text);
	return 0;
}

static int compile_gmail(Compiler *c, const char *rest)
{
	g_autofree char *text = g_strstrip(g_strdup(rest));

	if (!(c->caps & IMAP_SEARCH_GMAIL))
		return fail(c, "gmail: searches need a Gmail server");
	if (!*text)
		return fail(c, "the query after gmail: is empty");
	g_string_append(c->cur, "X-GM-RAW ");
	emit_string(c, text);
	return 0;
}

static bool is_gmail(const char *query)
{
	return g_ascii_strncasecmp(query, "gmail:", 6) == 0;
}

static bool first_is_key(const Compiler *c)
{
	const Token *t;

	if (c->toks->len == 0)
		return false;
	t = &g_array_index(c->toks, Token, 0);
	return t->kind == TOK_OPEN ||
	       (t->kind == TOK_WORD && find_key(t->text));
}

static int check_query(Compiler *c, const char *query)
{
	if (strlen(query) > IMAP_SEARCH_QUERY_MAX)
		return fail(c, "the query is longer than %d bytes",
			    IMAP_SEARCH_QUERY_MAX);
	if (strpbrk(query, "\r\n"))
		return fail(c, "the query holds a line break");
	if (!g_utf8_validate(query, -1, NULL))
		return fail(c, "the query is not valid UTF-8");
	return 0;
}

int imap_search_compile(const char *query, unsigned caps, GPtrArray **chunks,
			char **why)
{
	Compiler c = { 0 };
	int rc;

	c.toks = g_array_new(FALSE, TRUE, sizeof(Token));
	g_array_set_clear_func(c.toks, token_clear);
	c.caps = caps;
	c.cur = g_string_new(NULL);
	c.chunks = g_ptr_array_new_with_free_func(g_free);
	rc = check_query(&c, query);
	if (rc == 0 && is_gmail(query))
		rc = compile_gmail(&c, query + 6);
	else if (rc == 0 && (rc = tokenize(&c, query)) == 0)
		rc = first_is_key(&c) ? compile_criteria(&c)
				      : compile_text(&c, query);
	g_array_unref(c.toks);
	if (rc < 0) {
		g_string_free(c.cur, TRUE);
		g_ptr_array_unref(c.chunks);
		*chunks = NULL;
		*why = g_steal_pointer(&c.why);
		return rc;
	}
	g_ptr_array_add(c.chunks, g_string_free(c.cur, FALSE));
	if (c.non_ascii) {
		char *first =
		    g_strconcat("CHARSET UTF-8 ", c.chunks->pdata[0], NULL);

		g_free(c.chunks->pdata[0]);
		c.chunks->pdata[0] = first;
	}
	*chunks = c.chunks;
	*why = NULL;
	return 0;
}

bool imap_search_is_criteria(const char *query)
{
	Compiler c = { 0 };
	bool yes;

	c.toks = g_array_new(FALSE, TRUE, sizeof(Token));
	g_array_set_clear_func(c.toks, token_clear);
	yes = !is_gmail(query) && tokenize(&c, query) == 0 && first_is_key(&c);
	g_array_unref(c.toks);
	g_free(c.why);
	return yes;
}

/* ---- answers ---- */

void imap_search_source_clear(ImapSearchSource *src)
{
	g_clear_pointer(&src->tag, g_free);
	g_clear_pointer(&src->mailbox, g_free);
	src->uidvalidity = 0;
}

static int append_uid(GArray *uids, uint64_t n)
{
	uint32_t v = (uint32_t)n;

	if (n == 0 || n > UINT32_MAX)
		return -EPROTO;
	if (uids->len >= MAX_SEARCH_UIDS)
		return -E2BIG;
	g_array_append_val(uids, v);
	return 0;
}

int imap_uid_set_expand(GArray *uids, const char *set, guint max)
{
	const char *p = set;

	while (*p) {
		char *end;
		guint64 a = g_ascii_strtoull(p, &end, 10), b;

		if (end == p || a == 0 || a > UINT32_MAX)
			return -EPROTO;
		b = a;
		p = end;
		if (*p == ':') {
			b = g_ascii_strtoull(p + 1, &end, 10);
			if (end == p + 1 || b == 0 || b > UINT32_MAX)
				return -EPROTO;
			p = end;
		}
		if (b < a) {
			guint64 t = a;

			a = b;
			b = t;
		}
		/* Counted before it is expanded: "1:4294967295" is refused
		 * without a loop. */
		if (uids->len + (b - a + 1) > max)
			return -E2BIG;
		for (guint64 u = a; u <= b; u++) {
			uint32_t v = (uint32_t)u;

			g_array_append_val(uids, v);
		}
		if (*p == ',')
			p++;
		else if (*p)
			return -EPROTO;
	}
	return 0;
}

static void read_correlator(const ImapValue *list, ImapSearchSource *src)
{
	for (size_t i = 0; i + 1 < list->len; i += 2) {
		const ImapValue *k = &list->items[i], *v = &list->items[i + 1];
		const char *s = imap_value_get_string(v, NULL);
		uint64_t n;

		if (imap_value_is_atom(k, "TAG") && s && !src->tag)
			src->tag = g_strdup(s);
		else if (imap_value_is_atom(k, "MAILBOX") && s && !src->mailbox)
			src->mailbox = g_strdup(s);
		else if (imap_value_is_atom(k, "UIDVALIDITY") &&
			 imap_value_get_u64(v, &n) && n <= UINT32_MAX)
			src->uidvalidity = (uint32_t)n;
	}
}

static int parse_esearch(const ImapResponse *r, GArray *uids,
			 ImapSearchSource *src)
{
	size_t i = 0;

	if (r->args.len > 0 && r->args.items[0].type == IMAP_VALUE_LIST)
		read_correlator(&r->args.items[i++], src);
	if (i >= r->args.len || !imap_value_is_atom(&r->args.items[i], "UID"))
		return r->args.len == i ? 1 : -EPROTO; /* no result data */
	for (i++; i + 1 < r->args.len; i += 2) {
		const char *set;
		int rc;

		if (!imap_value_is_atom(&r->args.items[i], "ALL"))
			continue; /* MIN, MAX, COUNT, MODSEQ */
		set = imap_value_get_string(&r->args.items[i + 1], NULL);
		if (!set)
			return -EPROTO;
		rc = imap_uid_set_expand(uids, set, MAX_SEARCH_UIDS);
		if (rc < 0)
			return rc;
	}
	return 1;
}

int imap_search_parse(const ImapResponse *r, GArray *uids,
		      ImapSearchSource *src)
{
	if (r->kind != IMAP_RESPONSE_UNTAGGED || !r->name)
		return 0;
	if (strcmp(r->name, "ESEARCH") == 0)
		return parse_esearch(r, uids, src);
	if (strcmp(r->name, "SEARCH") != 0)
		return 0;
	for (size_t i = 0; i < r->args.len; i++) {
		const ImapValue *v = &r->args.items[i];
		uint64_t n;
		int rc;

		if (v->type == IMAP_VALUE_LIST)
			continue; /* "(MODSEQ 917162500)" */
		if (!imap_value_get_u64(v, &n))
			return -EPROTO;
		rc = append_uid(uids, n);
		if (rc < 0)
			return rc;
	}
	return 1;
}
