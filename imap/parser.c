/* imap/parser.c: resumable parser for IMAP server responses.
 *
 * Ownership: the parser owns the response under construction (in a RespBox
 * that also carries a copy of the sink callbacks, so that
 * imap_response_free() can discard unclaimed STREAM sinks after the parser is
 * gone), the stack of open lists, the token buffer and a half-read literal
 * (heap buffer or sink). A completed response belongs to the caller. No
 * locking: one parser per connection, used by one thread at a time.
 *
 * Invariants: bytes are parsed as they arrive and never rescanned. Outside
 * literal data every byte counts against max_line, which therefore bounds the
 * token buffer, the text and the number of values; open lists are bounded by
 * max_depth, values by max_items, and in-memory literal bytes of one response
 * by max_line + inline_literal_max. After an error the state is ST_DEAD and
 * every partial object has already been freed.
 */
#include "imap/parser.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

enum {
	ST_START,        /* first byte of a response */
	ST_UNTAGGED_SP,  /* after "*" */
	ST_TAG,          /* in the tag of a tagged response */
	ST_STATUS_WORD,  /* OK/NO/BAD after the tag */
	ST_WORD,         /* after "* ": a number or the name */
	ST_NAME,         /* the name after "* 23 " */
	ST_STATUS_TEXT0, /* after "OK ": "[" opens a code, else text */
	ST_CODE_NAME,    /* after "[" */
	ST_CODE_SKIP,    /* unparseable code arguments: skip to "]" */
	ST_CODE_END,     /* after "]": one optional SP, then text */
	ST_CONT,         /* after "+": one optional SP, then text */
	ST_TEXT,         /* rest of line, verbatim */
	ST_VALUES,       /* between values */
	ST_ATOM,
	ST_SECTION, /* inside "[...]" of an atom */
	ST_SECTION_QUOTED,
	ST_SECTION_ESC,
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_TILDE,    /* "~": literal8 or an atom */
	ST_LIT_SIZE, /* digits after "{" */
	ST_LIT_EOL,  /* after "}": CRLF must follow */
	ST_LIT_DATA,
	ST_CR, /* after CR: LF must follow */
	ST_DEAD,
};

/* Character classes, one bit each. */
#define C_ASTOP 0x01 /* ends an atom or a word */
#define C_QSTOP 0x02 /* ends a run inside a quoted string */
#define C_TSTOP 0x04 /* ends a run of text */
#define C_SSTOP 0x08 /* ends a run inside an atom's [section] */
#define C_KSTOP 0x10 /* ends a run while skipping a bad response code */

#define C_EOL (C_ASTOP | C_QSTOP | C_TSTOP | C_SSTOP | C_KSTOP)

/* clang-format off */
static const unsigned char char_class[256] = {
	[0] = C_ASTOP | C_QSTOP | C_TSTOP | C_SSTOP,
	[1 ... 9] = C_ASTOP,
	['\n'] = C_EOL,
	[11 ... 12] = C_ASTOP,
	['\r'] = C_EOL,
	[14 ... 31] = C_ASTOP,
	[' '] = C_ASTOP,
	['"'] = C_ASTOP | C_QSTOP | C_SSTOP,
	['('] = C_ASTOP,
	[')'] = C_ASTOP,
	['['] = C_ASTOP | C_SSTOP,
	['\\'] = C_QSTOP,
	[']'] = C_ASTOP | C_SSTOP | C_KSTOP,
	['{'] = C_ASTOP,
	[0x7f] = C_ASTOP,
};
/* clang-format on */

static inline bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Length of the run at s[0..n) with none of the class bits in stop. */
static inline size_t span(const char *s, size_t n, unsigned char stop)
{
	size_t k = 0;

	while (k < n && !(char_class[(unsigned char)s[k]] & stop))
		k++;
	return k;
}

typedef struct {
	ImapResponse pub; /* first: imap_response_free() casts back */
	ImapLiteralSink sink;
	bool has_sink;
	void *user_data;
} RespBox;

/* One open list; the items are copied out at ")" so the scratch array is
 * reused from one response to the next. */
typedef struct {
	ImapValue *items;
	size_t len;
	size_t cap;
} Frame;

struct ImapParser {
	ImapParserLimits limits;
	ImapLiteralSink sink;
	bool has_sink;
	void *user_data;

	int state;
	int cr_ret; /* state to resume at the LF after a CR */
	int err;
	const char *errmsg;

	RespBox *resp;         /* response under construction */
	size_t line_bytes;     /* bytes outside literals, this response */
	size_t items;          /* values, this response */
	uint64_t inline_bytes; /* in-memory literal bytes, this response */
	unsigned streams;      /* literals sent to the sink, this response */
	bool in_code;          /* parsing the arguments of "[CODE ...]" */

	Frame *frames; /* frames[0] is args or code_args */
	size_t nframes;
	unsigned depth; /* index of the innermost open list */

	char *tok; /* current atom, quoted string, word or text */
	size_t tok_len;
	size_t tok_cap;

	unsigned sect_depth; /* "[" nesting inside an atom */
	unsigned lit_digits;
	uint64_t lit_size;
	uint64_t lit_pos;
	char *lit_buf;  /* in-memory literal being filled */
	void *lit_sink; /* streamed literal being written */
};

/* Scratch buffers above these sizes are released between responses. */
#define TOK_KEEP (64 * 1024)
#define FRAME_KEEP 1024

void imap_parser_limits_default(ImapParserLimits *limits)
{
	limits->max_line = 1024 * 1024;
	limits->inline_literal_max = 64 * 1024;
	limits->max_literal = 4ULL * 1024 * 1024 * 1024;
	limits->max_depth = 32;
	limits->max_items = 1000000;
}

/* ---- values and responses ---- */

static void value_clear(ImapValue *v, const ImapLiteralSink *sink,
			bool has_sink, void *user_data)
{
	switch (v->type) {
	case IMAP_VALUE_ATOM:
	case IMAP_VALUE_STRING:
		g_free(v->str);
		break;
	case IMAP_VALUE_LIST:
		for (size_t i = 0; i < v->len; i++)
			value_clear(&v->items[i], sink, has_sink, user_data);
		g_free(v->items);
		break;
	case IMAP_VALUE_STREAM:
		if (v->stream.sink && has_sink && sink->discard)
			sink->discard(user_data, v->stream.sink);
		break;
	case IMAP_VALUE_NIL:
		break;
	}
	v->len = 0;
	v->str = NULL;
}

void imap_response_free(ImapResponse *resp)
{
	RespBox *box = (RespBox *)resp;

	if (!resp)
		return;
	g_free(resp->tag);
	g_free(resp->code);
	g_free(resp->text);
	g_free(resp->name);
	value_clear(&resp->code_args, &box->sink, box->has_sink,
		    box->user_data);
	value_clear(&resp->args, &box->sink, box->has_sink, box->user_data);
	g_free(box);
}

/* ---- parser state ---- */

static void clear_frames(ImapParser *p)
{
	for (size_t d = 0; d < p->nframes; d++) {
		Frame *f = &p->frames[d];

		for (size_t i = 0; i < f->len; i++)
			value_clear(&f->items[i], &p->sink, p->has_sink,
				    p->user_data);
		f->len = 0;
	}
	p->depth = 0;
}

/* Free everything belonging to the response under construction. */
static void drop_partial(ImapParser *p)
{
	clear_frames(p);
	imap_response_free(p->resp ? &p->resp->pub : NULL);
	p->resp = NULL;
	g_clear_pointer(&p->lit_buf, g_free);
	if (p->lit_sink && p->has_sink && p->sink.discard)
		p->sink.discard(p->user_data, p->lit_sink);
	p->lit_sink = NULL;
	p->tok_len = 0;
	p->in_code = false;
	p->line_bytes = 0;
	p->items = 0;
	p->inline_bytes = 0;
	p->streams = 0;
}

/* Give back scratch memory that a huge response made grow. */
static void trim_scratch(ImapParser *p)
{
	if (p->tok_cap > TOK_KEEP) {
		g_clear_pointer(&p->tok, g_free);
		p->tok_cap = 0;
	}
	for (size_t d = 0; d < p->nframes; d++) {
		if (p->frames[d].cap > FRAME_KEEP) {
			g_clear_pointer(&p->frames[d].items, g_free);
			p->frames[d].cap = 0;
		}
	}
}

static int fail(ImapParser *p, int err, const char *msg)
{
	drop_partial(p);
	p->state = ST_DEAD;
	p->err = err;
	p->errmsg = msg;
	return err;
}

/* A syntax error. Inside the arguments of a response code it only costs
 * the arguments: keep the code name and skip to "]" (the caller then
 * re-dispatches the current byte). Elsewhere the parse fails. */
static int syntax(ImapParser *p, const char *msg)
{
	if (!p->in_code)
		return fail(p, -EPROTO, msg);
	clear_frames(p);
	p->tok_len = 0;
	p->in_code = false;
	p->state = ST_CODE_SKIP;
	return 0;
}

static void tok_append(ImapParser *p, const char *s, size_t n)
{
	if (p->tok_len + n + 1 > p->tok_cap) {
		size_t cap = p->tok_cap ? p->tok_cap : 64;

		while (cap < p->tok_len + n + 1)
			cap *= 2;
		p->tok = g_realloc(p->tok, cap);
		p->tok_cap = cap;
	}
	memcpy(p->tok + p->tok_len, s, n);
	p->tok_len += n;
}

static char *tok_dup(ImapParser *p)
{
	char *s = g_malloc(p->tok_len + 1);

	if (p->tok_len)
		memcpy(s, p->tok, p->tok_len);
	s[p->tok_len] = '\0';
	return s;
}

static char *tok_dup_upper(ImapParser *p)
{
	char *s = tok_dup(p);

	for (char *c = s; *c; c++)
		*c = g_ascii_toupper(*c);
	return s;
}

static int count_item(ImapParser *p)
{
	if (++p->items > p->limits.max_items)
		return fail(p, -E2BIG, "too many values in one response");
	return 0;
}

static void add_value(ImapParser *p, const ImapValue *v)
{
	Frame *f = &p->frames[p->depth];

	if (f->len == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->items = g_renew(ImapValue, f->items, f->cap);
	}
	f->items[f->len++] = *v;
}

/* Copy out frame d as a LIST value and empty it. */
static ImapValue take_frame(ImapParser *p, unsigned d)
{
	Frame *f = &p->frames[d];
	ImapValue v = { .type = IMAP_VALUE_LIST, .len = f->len };

	if (f->len)
		v.items = g_memdup2(f->items, f->len * sizeof(ImapValue));
	f->len = 0;
	return v;
}

static void start_values(ImapParser *p)
{
	if (!p->nframes) {
		p->nframes = 4;
		p->frames = g_new0(Frame, p->nframes);
	}
	p->depth = 0;
	p->state = ST_VALUES;
}

static int push_list(ImapParser *p)
{
	if (p->depth + 1 > p->limits.max_depth)
		return fail(p, -E2BIG, "lists nested too deeply");
	if (p->depth + 1 >= p->nframes) {
		size_t n = p->nframes * 2;

		p->frames = g_renew(Frame, p->frames, n);
		memset(p->frames + p->nframes, 0,
		       (n - p->nframes) * sizeof(Frame));
		p->nframes = n;
	}
	p->depth++;
	p->frames[p->depth].len = 0;
	return 0;
}

static void pop_list(ImapParser *p)
{
	ImapValue v = take_frame(p, p->depth);

	p->depth--;
	add_value(p, &v);
}

static void finish_atom(ImapParser *p)
{
	ImapValue v = { .type = IMAP_VALUE_ATOM };

	if (p->tok_len == 3 && g_ascii_strncasecmp(p->tok, "NIL", 3) == 0) {
		v.type = IMAP_VALUE_NIL;
	} else {
		v.len = p->tok_len;
		v.str = tok_dup(p);
	}
	add_value(p, &v);
	p->tok_len = 0;
	p->state = ST_VALUES;
}

static void finish_quoted(ImapParser *p)
{
	ImapValue v = { .type = IMAP_VALUE_STRING, .len = p->tok_len };

	v.str = tok_dup(p);
	add_value(p, &v);
	p->tok_len = 0;
	p->state = ST_VALUES;
}

static void finish_literal(ImapParser *p)
{
	ImapValue v = { .literal = true };

	if (p->lit_buf) {
		v.type = IMAP_VALUE_STRING;
		v.len = p->lit_size;
		v.str = p->lit_buf;
		p->lit_buf = NULL;
	} else {
		v.type = IMAP_VALUE_STREAM;
		v.stream.sink = p->lit_sink;
		v.stream.size = p->lit_size;
		p->lit_sink = NULL;
	}
	add_value(p, &v);
	p->state = ST_VALUES;
}

/* The CRLF after "{N}" arrived: set up the place the N bytes go to. */
static int start_literal(ImapParser *p)
{
	uint64_t size = p->lit_size;

	if (size <= p->limits.inline_literal_max && size < SIZE_MAX) {
		uint64_t budget = p->limits.max_line;

		budget += p->limits.inline_literal_max;
		if (budget < p->limits.max_line)
			budget = UINT64_MAX;
		if (size > budget - p->inline_bytes)
			return fail(p, -E2BIG,
				    "too much literal data in one response");
		p->inline_bytes += size;
		p->lit_buf = g_malloc(size + 1);
		p->lit_buf[size] = '\0';
	} else {
		if (!p->has_sink)
			return fail(
			    p, -E2BIG,
			    "literal above the inline limit and no sink");
		/* Each streamed literal holds a file until the response
		 * is freed; a FETCH needs one, a server that sends
		 * hundreds is hostile. */
		if (++p->streams > IMAP_PARSER_MAX_STREAMS)
			return fail(p, -E2BIG,
				    "too many large literals in one response");
		p->lit_sink = p->sink.begin(p->user_data, size);
		if (!p->lit_sink)
			return fail(p, -ENOSPC, "literal sink refused literal");
	}
	p->lit_pos = 0;
	p->state = ST_LIT_DATA;
	if (size == 0)
		finish_literal(p);
	return 0;
}

static int feed_literal(ImapParser *p, const char *s, size_t n, size_t *used)
{
	uint64_t want = p->lit_size - p->lit_pos;
	size_t k = n < want ? n : (size_t)want;

	if (p->lit_buf) {
		memcpy(p->lit_buf + p->lit_pos, s, k);
	} else {
		int r = p->sink.write(p->user_data, p->lit_sink, s, k);

		if (r < 0)
			return fail(p, r, "literal sink write failed");
	}
	*used = k;
	p->lit_pos += k;
	if (p->lit_pos == p->lit_size)
		finish_literal(p);
	return 0;
}

/* ---- words: tag, status, number, name, code name ---- */

static bool is_number(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static ImapStatus status_of(const char *name)
{
	/* clang-format off */
	static const struct {
		const char *name;
		ImapStatus status;
	} map[] = {
		{"OK", IMAP_STATUS_OK},
		{"NO", IMAP_STATUS_NO},
		{"BAD", IMAP_STATUS_BAD},
		{"BYE", IMAP_STATUS_BYE},
		{"PREAUTH", IMAP_STATUS_PREAUTH},
	};
	/* clang-format on */

	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (strcmp(name, map[i].name) == 0)
			return map[i].status;
	return IMAP_STATUS_NONE;
}

static void enter_text(ImapParser *p, const char *prefix)
{
	p->tok_len = 0;
	if (prefix)
		tok_append(p, prefix, strlen(prefix));
	p->state = ST_TEXT;
}

/* A word ended at SP (eol false) or at the end of the line. Returns 1 when
 * that completes the response. */
static int word_end(ImapParser *p, bool eol)
{
	ImapResponse *r = &p->resp->pub;
	uint64_t num;

	switch (p->state) {
	case ST_TAG:
		if (eol)
			return fail(p, -EPROTO,
				    "tagged response without status");
		r->tag = tok_dup(p);
		p->tok_len = 0;
		p->state = ST_STATUS_WORD;
		return 0;
	case ST_STATUS_WORD: {
		g_autofree char *w = tok_dup_upper(p);

		r->status = status_of(w);
		if (r->status != IMAP_STATUS_OK &&
		    r->status != IMAP_STATUS_NO && r->status != IMAP_STATUS_BAD)
			return fail(p, -EPROTO,
				    "tagged response is not OK, NO or BAD");
		p->tok_len = 0;
		if (eol)
			return 1;
		p->state = ST_STATUS_TEXT0;
		return 0;
	}
	case ST_WORD:
		if (is_number(p->tok, p->tok_len, &num)) {
			if (eol)
				return fail(p, -EPROTO,
					    "untagged number without a name");
			r->has_number = true;
			r->number = num;
			p->tok_len = 0;
			p->state = ST_NAME;
			return 0;
		}
		G_GNUC_FALLTHROUGH;
	case ST_NAME:
		if (p->tok_len == 0)
			return fail(p, -EPROTO,
				    "untagged response without name");
		r->name = tok_dup_upper(p);
		p->tok_len = 0;
		if (p->state == ST_WORD)
			r->status = status_of(r->name);
		if (eol)
			return 1;
		if (r->status != IMAP_STATUS_NONE)
			p->state = ST_STATUS_TEXT0;
		else
			start_values(p);
		return 0;
	default:
		g_assert_not_reached();
	}
}

/* The code name ended at c (not consumed). Returns true when c should be
 * consumed. */
static bool code_name_end(ImapParser *p, unsigned char c)
{
	if (p->tok_len == 0) {
		/* "[]", "[ x", "[(": not a code, just text */
		enter_text(p, "[");
		return false;
	}
	p->resp->pub.code = tok_dup_upper(p);
	p->tok_len = 0;
	if (c == ' ') {
		p->in_code = true;
		start_values(p);
		return true;
	}
	if (c == ']') {
		p->state = ST_CODE_END;
		return true;
	}
	p->state = ST_CODE_SKIP;
	return false;
}

/* A line ended (LF seen) in the current state. Returns 1 when the response
 * is complete, 0 to go on (a literal follows), or -errno. */
static int at_eol(ImapParser *p)
{
	ImapResponse *r = &p->resp->pub;

	switch (p->state) {
	case ST_TAG:
	case ST_STATUS_WORD:
	case ST_WORD:
	case ST_NAME:
		return word_end(p, true);
	case ST_CODE_NAME:
		if (p->tok_len)
			r->code = tok_dup_upper(p);
		else
			r->text = g_strdup("[");
		return 1;
	case ST_TEXT:
		r->text = tok_dup(p);
		return 1;
	case ST_STATUS_TEXT0:
	case ST_CODE_SKIP:
	case ST_CODE_END:
	case ST_CONT:
		return 1;
	case ST_VALUES:
		if (p->in_code) {
			/* "[CODE args" without "]": keep the name only */
			clear_frames(p);
			p->in_code = false;
			return 1;
		}
		if (p->depth > 0)
			return fail(p, -EPROTO,
				    "unterminated list at end of line");
		value_clear(&r->args, NULL, false, NULL);
		r->args = take_frame(p, 0);
		return 1;
	case ST_LIT_EOL:
		return start_literal(p);
	default:
		return fail(p, -EPROTO, "unexpected end of line");
	}
}

/* ---- the byte-level state machine ---- */

/* A CR or LF at s[*i] in a state where a line may end. */
static int line_end(ImapParser *p, unsigned char c, size_t *i)
{
	(*i)++;
	if (c == '\r') {
		p->cr_ret = p->state;
		p->state = ST_CR;
		return 0;
	}
	return at_eol(p);
}

static int st_start(ImapParser *p, unsigned char c, size_t *i)
{
	RespBox *box = g_new0(RespBox, 1);

	box->sink = p->sink;
	box->has_sink = p->has_sink;
	box->user_data = p->user_data;
	box->pub.args.type = IMAP_VALUE_LIST;
	box->pub.code_args.type = IMAP_VALUE_LIST;
	p->resp = box;
	p->tok_len = 0;

	if (c == '*') {
		box->pub.kind = IMAP_RESPONSE_UNTAGGED;
		p->state = ST_UNTAGGED_SP;
		(*i)++;
	} else if (c == '+') {
		box->pub.kind = IMAP_RESPONSE_CONTINUATION;
		p->state = ST_CONT;
		(*i)++;
	} else if (!(char_class[c] & C_ASTOP)) {
		box->pub.kind = IMAP_RESPONSE_TAGGED;
		p->state = ST_TAG;
	} else {
		return fail(p, -EPROTO, "garbage at start of response");
	}
	return 0;
}

static int st_word(ImapParser *p, const char *s, size_t n, size_t *i)
{
	size_t k = span(s + *i, n - *i, C_ASTOP);
	unsigned char c;

	if (k) {
		tok_append(p, s + *i, k);
		*i += k;
		return 0;
	}
	c = s[*i];
	if (c == '\r' || c == '\n')
		return line_end(p, c, i);
	if (p->state == ST_CODE_NAME) {
		if (code_name_end(p, c))
			(*i)++;
		return 0;
	}
	if (c == ' ' && p->tok_len) {
		(*i)++;
		return word_end(p, false);
	}
	return fail(p, -EPROTO, "unexpected character in response header");
}

static int st_values(ImapParser *p, unsigned char c, size_t *i)
{
	int r;

	switch (c) {
	case ' ':
		(*i)++;
		return 0;
	case '\r':
	case '\n':
		return line_end(p, c, i);
	case '(':
		if ((r = count_item(p)) || (r = push_list(p)))
			return r;
		(*i)++;
		return 0;
	case ')':
		if (p->depth == 0)
			return syntax(p, "unbalanced )");
		pop_list(p);
		(*i)++;
		return 0;
	case '"':
		if ((r = count_item(p)))
			return r;
		p->tok_len = 0;
		p->state = ST_QUOTED;
		(*i)++;
		return 0;
	case '{':
		if ((r = count_item(p)))
			return r;
		p->lit_size = 0;
		p->lit_digits = 0;
		p->state = ST_LIT_SIZE;
		(*i)++;
		return 0;
	case '~':
		p->state = ST_TILDE;
		(*i)++;
		return 0;
	case ']':
		if (!p->in_code)
			break;
		if (p->depth > 0)
			return syntax(p, "unbalanced ] in response code");
		value_clear(&p->resp->pub.code_args, NULL, false, NULL);
		p->resp->pub.code_args = take_frame(p, 0);
		p->in_code = false;
		p->state = ST_CODE_END;
		(*i)++;
		return 0;
	default:
		if (is_ctl(c))
			return syntax(p, "control character in response");
		break;
	}
	if ((r = count_item(p)))
		return r;
	p->tok_len = 0;
	p->state = ST_ATOM;
	return 0;
}

static int st_atom(ImapParser *p, const char *s, size_t n, size_t *i)
{
	size_t k = span(s + *i, n - *i, C_ASTOP);
	unsigned char c;

	if (k) {
		tok_append(p, s + *i, k);
		*i += k;
		return 0;
	}
	c = s[*i];
	if (c == '[') {
		tok_append(p, "[", 1);
		p->sect_depth = 1;
		p->state = ST_SECTION;
		(*i)++;
	} else if (c == ']' && !p->in_code) {
		tok_append(p, "]", 1);
		(*i)++;
	} else {
		finish_atom(p);
	}
	return 0;
}

static int st_section(ImapParser *p, const char *s, size_t n, size_t *i)
{
	unsigned char c;
	size_t k;

	switch (p->state) {
	case ST_SECTION:
		k = span(s + *i, n - *i, C_SSTOP);
		break;
	case ST_SECTION_QUOTED:
		k = span(s + *i, n - *i, C_QSTOP);
		break;
	default:
		k = 0;
		break;
	}
	if (k) {
		tok_append(p, s + *i, k);
		*i += k;
		return 0;
	}
	c = s[*i];
	if (c == '\r' || c == '\n' || c == '\0')
		return syntax(p, "unterminated [ in atom");
	tok_append(p, s + *i, 1);
	(*i)++;
	switch (p->state) {
	case ST_SECTION:
		if (c == '[') {
			p->sect_depth++;
		} else if (c == ']') {
			if (--p->sect_depth == 0)
				p->state = ST_ATOM;
		} else if (c == '"') {
			p->state = ST_SECTION_QUOTED;
		}
		break;
	case ST_SECTION_QUOTED:
		if (c == '"')
			p->state = ST_SECTION;
		else if (c == '\\')
			p->state = ST_SECTION_ESC;
		break;
	default:
		p->state = ST_SECTION_QUOTED;
		break;
	}
	return 0;
}

static int st_quoted(ImapParser *p, const char *s, size_t n, size_t *i)
{
	size_t k = span(s + *i, n - *i, C_QSTOP);
	unsigned char c;

	if (k) {
		tok_append(p, s + *i, k);
		*i += k;
		return 0;
	}
	c = s[*i];
	if (c == '"') {
		finish_quoted(p);
	} else if (c == '\\') {
		p->state = ST_QUOTED_ESC;
	} else if (c == '\0') {
		return syntax(p, "NUL in quoted string");
	} else {
		return syntax(p, "unterminated quoted string");
	}
	(*i)++;
	return 0;
}

static int st_quoted_esc(ImapParser *p, unsigned char c, size_t *i)
{
	if (c == '\r' || c == '\n')
		return syntax(p, "unterminated quoted string");
	if (c == '\0')
		return syntax(p, "NUL in quoted string");
	/* Only \" and \\ are valid; keep anything else as written. */
	if (c != '"' && c != '\\')
		tok_append(p, "\\", 1);
	tok_append(p, (const char *)&c, 1);
	p->state = ST_QUOTED;
	(*i)++;
	return 0;
}

static int st_lit_size(ImapParser *p, unsigned char c, size_t *i)
{
	if (c >= '0' && c <= '9') {
		unsigned d = c - '0';

		if (p->lit_size > (UINT64_MAX - d) / 10)
			return fail(p, -E2BIG, "literal size overflows");
		p->lit_size = p->lit_size * 10 + d;
		if (p->lit_size > p->limits.max_literal)
			return fail(p, -E2BIG, "literal larger than the limit");
		p->lit_digits++;
		(*i)++;
		return 0;
	}
	if (c != '}' || p->lit_digits == 0)
		return syntax(p, "bad literal size");
	p->state = ST_LIT_EOL;
	(*i)++;
	return 0;
}

/* Arguments of a response code we do not parse: up to the ']'. */
static int st_code_skip(ImapParser *p, const char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	size_t k = span(s + *i, n - *i, C_KSTOP);

	if (k) {
		*i += k;
		return 0;
	}
	if (c == ']') {
		p->state = ST_CODE_END;
		(*i)++;
		return 0;
	}
	return line_end(p, c, i);
}

static int st_text(ImapParser *p, const char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	size_t k = span(s + *i, n - *i, C_TSTOP);

	if (k) {
		tok_append(p, s + *i, k);
		*i += k;
		return 0;
	}
	if (c == '\0')
		return fail(p, -EPROTO, "NUL in response text");
	return line_end(p, c, i);
}

/* "~": a literal8 "~{N}", or an atom that starts with a tilde. */
static int st_tilde(ImapParser *p, unsigned char c, size_t *i)
{
	int r = count_item(p);

	if (r)
		return r;
	if (c == '{') {
		p->lit_size = 0;
		p->lit_digits = 0;
		p->state = ST_LIT_SIZE;
		(*i)++;
	} else {
		p->tok_len = 0;
		tok_append(p, "~", 1);
		p->state = ST_ATOM;
	}
	return 0;
}

/* One step of the state machine at s[*i]: 0 to go on, else stop. */
static int parse_step(ImapParser *p, const char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];

	switch (p->state) {
	case ST_START:
		return st_start(p, c, i);
	case ST_UNTAGGED_SP:
		if (c != ' ')
			return fail(p, -EPROTO, "expected space after *");
		p->state = ST_WORD;
		(*i)++;
		return 0;
	case ST_TAG:
	case ST_STATUS_WORD:
	case ST_WORD:
	case ST_NAME:
	case ST_CODE_NAME:
		return st_word(p, s, n, i);
	case ST_STATUS_TEXT0:
		if (c != '[') {
			enter_text(p, NULL);
			return 0;
		}
		p->tok_len = 0;
		p->state = ST_CODE_NAME;
		(*i)++;
		return 0;
	case ST_CODE_SKIP:
		return st_code_skip(p, s, n, i);
	case ST_CODE_END:
	case ST_CONT:
		if (c == ' ')
			(*i)++;
		enter_text(p, NULL);
		return 0;
	case ST_TEXT:
		return st_text(p, s, n, i);
	case ST_VALUES:
		return st_values(p, c, i);
	case ST_ATOM:
		return st_atom(p, s, n, i);
	case ST_SECTION:
	case ST_SECTION_QUOTED:
	case ST_SECTION_ESC:
		return st_section(p, s, n, i);
	case ST_QUOTED:
		return st_quoted(p, s, n, i);
	case ST_QUOTED_ESC:
		return st_quoted_esc(p, c, i);
	case ST_TILDE:
		return st_tilde(p, c, i);
	case ST_LIT_SIZE:
		return st_lit_size(p, c, i);
	case ST_LIT_EOL:
		if (c == '\r' || c == '\n')
			return line_end(p, c, i);
		return syntax(p, "literal size not followed by CRLF");
	case ST_CR:
		if (c != '\n')
			return fail(p, -EPROTO, "CR not followed by LF");
		(*i)++;
		p->state = p->cr_ret;
		return at_eol(p);
	default:
		return fail(p, -EPROTO, "parser in a bad state");
	}
}

static int parse_bytes(ImapParser *p, const char *s, size_t n, size_t *used)
{
	size_t i = 0;
	int r = 0;

	while (r == 0 && i < n && p->state != ST_LIT_DATA)
		r = parse_step(p, s, n, &i);
	*used = i;
	return r;
}

/* ---- public API ---- */

ImapParser *imap_parser_new(const ImapParserLimits *limits,
			    const ImapLiteralSink *sink, void *user_data)
{
	ImapParser *p = g_new0(ImapParser, 1);
	ImapParserLimits def;

	imap_parser_limits_default(&def);
	if (limits) {
		p->limits = *limits;
		/* zero would make the parser useless: take it as "default" */
		if (!p->limits.max_line)
			p->limits.max_line = def.max_line;
		if (!p->limits.max_literal)
			p->limits.max_literal = def.max_literal;
		if (!p->limits.max_items)
			p->limits.max_items = def.max_items;
	} else {
		p->limits = def;
	}
	if (sink && sink->begin && sink->write) {
		p->sink = *sink;
		p->has_sink = true;
	}
	p->user_data = user_data;
	p->state = ST_START;
	p->errmsg = "";
	return p;
}

void imap_parser_reset(ImapParser *parser)
{
	drop_partial(parser);
	trim_scratch(parser);
	parser->state = ST_START;
	parser->err = 0;
	parser->errmsg = "";
}

void imap_parser_free(ImapParser *parser)
{
	if (!parser)
		return;
	drop_partial(parser);
	for (size_t d = 0; d < parser->nframes; d++)
		g_free(parser->frames[d].items);
	g_free(parser->frames);
	g_free(parser->tok);
	g_free(parser);
}

int imap_parser_feed(ImapParser *parser, const char *buf, size_t len,
		     size_t *consumed, ImapResponse **out)
{
	ImapParser *p = parser;
	size_t pos = 0;
	int r = 0;

	*out = NULL;
	*consumed = 0;
	if (p->state == ST_DEAD)
		return p->err;

	while (pos < len) {
		size_t used = 0;

		if (p->state == ST_LIT_DATA) {
			r = feed_literal(p, buf + pos, len - pos, &used);
		} else if (p->line_bytes >= p->limits.max_line) {
			r = fail(p, -E2BIG, "response line too long");
		} else {
			size_t room = p->limits.max_line - p->line_bytes;

			r = parse_bytes(p, buf + pos, MIN(len - pos, room),
					&used);
			p->line_bytes += used;
		}
		pos += used;
		if (r)
			break;
	}
	*consumed = pos;
	if (r <= 0)
		return r;

	/* complete */
	if (!p->resp->pub.text)
		p->resp->pub.text = g_strdup("");
	*out = &p->resp->pub;
	p->resp = NULL;
	p->state = ST_START;
	p->depth = 0;
	p->tok_len = 0;
	p->in_code = false;
	p->line_bytes = 0;
	p->items = 0;
	p->inline_bytes = 0;
	p->streams = 0;
	trim_scratch(p);
	return 1;
}

const char *imap_parser_error(const ImapParser *parser)
{
	return parser->errmsg;
}

/* ---- helpers ---- */

bool imap_value_is_atom(const ImapValue *v, const char *name)
{
	return v && v->type == IMAP_VALUE_ATOM && strlen(name) == v->len &&
	       g_ascii_strcasecmp(v->str, name) == 0;
}

bool imap_value_get_u64(const ImapValue *v, uint64_t *out)
{
	return v && v->type == IMAP_VALUE_ATOM &&
	       is_number(v->str, v->len, out);
}

const char *imap_value_get_string(const ImapValue *v, size_t *len)
{
	if (!v || (v->type != IMAP_VALUE_ATOM && v->type != IMAP_VALUE_STRING))
		return NULL;
	if (len)
		*len = v->len;
	return v->str;
}

const ImapValue *imap_fetch_get(const ImapValue *list, const char *name)
{
	if (!list || list->type != IMAP_VALUE_LIST)
		return NULL;
	for (size_t i = 0; i + 1 < list->len; i += 2)
		if (imap_value_is_atom(&list->items[i], name))
			return &list->items[i + 1];
	return NULL;
}

const ImapValue *imap_list_get(const ImapValue *list, size_t i)
{
	if (!list || list->type != IMAP_VALUE_LIST || i >= list->len)
		return NULL;
	return &list->items[i];
}
