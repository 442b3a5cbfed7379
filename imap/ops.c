/* imap/ops.c: LIST, UID SEARCH and UID FETCH on a logged-in connection.
 *
 * Stateless: each function runs one command and turns the untagged answers
 * into callbacks. Untagged data that belongs to nobody (a FETCH for flags,
 * EXISTS, unknown responses) is ignored here. The exception: a FETCH of
 * one message that comes back without it catches up with the server
 * (imap_catch_up(): NOOP, then a new EXAMINE) and asks again, since the
 * session may have selected the folder before the message arrived.
 */
#include "imap/ops.h"
#include "imap/search.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "imap/limit.h"

/* A hostile server must not make us expand "1:4294967295". */
#define MAX_SEARCH_UIDS (16u * 1024 * 1024)

/* ---- LIST ---- */

typedef struct {
	ImapMailboxFn fn;
	void *user_data;
} ListCtx;

static int list_untagged(void *user_data, ImapResponse *r)
{
	ListCtx *ctx = user_data;
	const ImapValue *attrs, *delim, *name;
	unsigned flags = 0;
	char d = '\0';
	size_t dlen = 0;
	const char *ds;

	if (!r->name || strcmp(r->name, "LIST") != 0 || r->args.len < 3)
		return 0;
	attrs = imap_list_get(&r->args, 0);
	delim = imap_list_get(&r->args, 1);
	name = imap_list_get(&r->args, 2);
	if (attrs->type != IMAP_VALUE_LIST)
		return 0;
	for (size_t i = 0; i < attrs->len; i++) {
		const ImapValue *a = &attrs->items[i];

		if (imap_value_is_atom(a, "\\Noselect"))
			flags |= IMAP_MAILBOX_NOSELECT;
		else if (imap_value_is_atom(a, "\\NonExistent"))
			flags |=
			    IMAP_MAILBOX_NOSELECT | IMAP_MAILBOX_NONEXISTENT;
		else if (imap_value_is_atom(a, "\\Noinferiors"))
			flags |= IMAP_MAILBOX_NOINFERIORS;
	}
	ds = imap_value_get_string(delim, &dlen);
	if (ds && dlen == 1)
		d = ds[0];
	if (name->type != IMAP_VALUE_ATOM && name->type != IMAP_VALUE_STRING)
		return 0;
	/* A name with a NUL byte cannot be sent back to the server. */
	if (memchr(name->str, '\0', name->len))
		return 0;
	ctx->fn(ctx->user_data, name->str, d, flags);
	return 0;
}

int imap_list_mailboxes(ImapConn *conn, ImapMailboxFn fn, void *user_data,
			GError **error)
{
	ListCtx ctx = { fn, user_data };

	return imap_conn_command(conn, list_untagged, &ctx, error,
				 "LIST \"\" \"*\"");
}

/* ---- dates and headers ---- */

/* Up to max decimal digits at *s (at least one); advances *s. */
static bool take_number(const char **s, int max, int *out)
{
	int v = 0, n = 0;

	while (n < max && g_ascii_isdigit((*s)[n])) {
		v = v * 10 + ((*s)[n] - '0');
		n++;
	}
	*s += n;
	*out = v;
	return n > 0;
}

static bool take_char(const char **s, char c)
{
	if (**s != c)
		return false;
	(*s)++;
	return true;
}

/* "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 date-time; the day may be
 * space-padded), parsed by hand: a cold listing parses one per message. */
bool imap_parse_internaldate(const char *s, int64_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int day, year, hh, mm, ss, zone, mon = -1;
	char mname[4] = { 0 }, sign;
	int64_t days;
	int y, m;

	while (*s == ' ')
		s++;
	if (!take_number(&s, 2, &day) || !take_char(&s, '-'))
		return false;
	for (int i = 0; i < 3; i++) {
		if (!g_ascii_isalpha(s[i]))
			return false;
		mname[i] = s[i];
	}
	s += 3;
	if (!take_char(&s, '-') || !take_number(&s, 4, &year) ||
	    !take_char(&s, ' ') || !take_number(&s, 2, &hh) ||
	    !take_char(&s, ':') || !take_number(&s, 2, &mm) ||
	    !take_char(&s, ':') || !take_number(&s, 2, &ss) ||
	    !take_char(&s, ' '))
		return false;
	sign = *s;
	if ((sign != '+' && sign != '-') || (s++, !take_number(&s, 4, &zone)))
		return false;
	for (int i = 0; i < 12; i++)
		if (g_ascii_strncasecmp(months + 3 * i, mname, 3) == 0)
			mon = i;
	if (mon < 0 || day < 1 || day > 31 || year < 1900 || year > 9999 ||
	    hh > 23 || mm > 59 || ss > 60 || (sign != '+' && sign != '-') ||
	    zone < 0 || zone % 100 > 59)
		return false;
	/* Days from civil date (proleptic Gregorian), no timezone tables. */
	y = year - (mon < 2);
	m = mon + 1;
	{
		int64_t era = (y >= 0 ? y : y - 399) / 400;
		int64_t yoe = y - era * 400;
		int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + day - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = era * 146097 + doe - 719468;
	}
	*out =
	    days * 86400 + hh * 3600 + mm * 60 + ss -
	    (sign == '+' ? 1 : -1) * ((zone / 100) * 3600 + (zone % 100) * 60);
	return true;
}

char *imap_extract_subject(const char *block, size_t len, size_t *out_len)
{
	return imap_extract_header(block, len, "Subject", out_len);
}

char *imap_extract_header(const char *block, size_t len, const char *field,
			  size_t *out_len)
{
	const char *end = block + len;
	const char *p = block;
	size_t flen = strlen(field);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;

		if ((size_t)(end - p) > flen &&
		    g_ascii_strncasecmp(p, field, flen) == 0 &&
		    p[flen] == ':') {
			GString *v = g_string_new(NULL);
			const char *q = p + flen + 1;

			for (;;) {
				const char *le = eol ? eol : end;

				if (le > q && le[-1] == '\r')
					le--;
				g_string_append_len(v, q, le - q);
				if (next >= end ||
				    (*next != ' ' && *next != '\t'))
					break;
				/* Unfold: the line break goes, the
				 * whitespace that follows stays. */
				q = next;
				eol = memchr(q, '\n', (size_t)(end - q));
				next = eol ? eol + 1 : end;
			}
			g_strstrip(v->str);
			v->len = strlen(v->str);
			*out_len = v->len;
			return g_string_free(v, FALSE);
		}
		p = next;
	}
	return NULL;
}

/* ---- FETCH metadata ---- */

bool imap_parse_flags(const ImapValue *v, unsigned *flags, GString *keywords)
{
	static const struct {
		const char *name;
		unsigned bit;
	} sys[] = {
		{ "\\Seen", IMAP_FLAG_SEEN },
		{ "\\Answered", IMAP_FLAG_ANSWERED },
		{ "\\Flagged", IMAP_FLAG_FLAGGED },
		{ "\\Draft", IMAP_FLAG_DRAFT },
		{ "\\Deleted", IMAP_FLAG_DELETED },
	};

	*flags = 0;
	g_string_truncate(keywords, 0);
	if (!v || v->type != IMAP_VALUE_LIST)
		return false;
	for (size_t i = 0; i < v->len; i++) {
		const ImapValue *a = &v->items[i];
		bool known = false;

		if (a->type != IMAP_VALUE_ATOM ||
		    imap_value_is_atom(a, "\\Recent"))
			continue;
		for (size_t k = 0; k < G_N_ELEMENTS(sys); k++)
			if (imap_value_is_atom(a, sys[k].name)) {
				*flags |= sys[k].bit;
				known = true;
			}
		if (known)
			continue;
		if (keywords->len)
			g_string_append_c(keywords, ' ');
		g_string_append_len(keywords, a->str, a->len);
	}
	return true;
}

typedef struct {
	ImapMetaFn fn;
	void *user_data;
	GString *keywords;
} MetaCtx;

/* The FLAGS of a FETCH list into m (has_flags stays false without). */
static void meta_flags(MetaCtx *ctx, const ImapValue *list, ImapMessageMeta *m)
{
	if (imap_parse_flags(imap_fetch_get(list, "FLAGS"), &m->flags,
			     ctx->keywords)) {
		m->has_flags = true;
		m->keywords = ctx->keywords->len ? ctx->keywords->str : NULL;
	}
}

static const ImapValue *meta_header_block(const ImapValue *list)
{
	for (size_t i = 0; i + 1 < list->len; i += 2) {
		const ImapValue *key = &list->items[i];

		if (key->type == IMAP_VALUE_ATOM &&
		    g_ascii_strncasecmp(key->str, "BODY[HEADER.FIELDS", 18) ==
			0)
			return &list->items[i + 1];
	}
	return NULL;
}

const ImapValue *imap_fetch_answer(const ImapResponse *r, uint32_t *uid)
{
	const ImapValue *list;
	uint64_t n;

	if (!r->name || strcmp(r->name, "FETCH") != 0 || r->args.len < 1)
		return NULL;
	list = &r->args.items[0];
	if (list->type != IMAP_VALUE_LIST ||
	    !imap_value_get_u64(imap_fetch_get(list, "UID"), &n) || n == 0 ||
	    n > UINT32_MAX)
		return NULL;
	*uid = (uint32_t)n;
	return list;
}

static int meta_untagged(void *user_data, ImapResponse *r)
{
	MetaCtx *ctx = user_data;
	const ImapValue *list, *v;
	ImapMessageMeta m = { 0 };
	g_autofree char *subject = NULL, *ctype = NULL, *from = NULL;
	size_t blen = 0, unused;
	const char *s, *block;

	list = imap_fetch_answer(r, &m.uid);
	if (!list)
		return 0;
	v = imap_fetch_get(list, "RFC822.SIZE");
	if (!imap_value_get_u64(v, &m.size))
		return 0; /* a flags-only FETCH, not our answer */
	s = imap_value_get_string(imap_fetch_get(list, "INTERNALDATE"), NULL);
	if (!s || !imap_parse_internaldate(s, &m.internaldate))
		m.internaldate = 0;
	meta_flags(ctx, list, &m);
	block = imap_value_get_string(meta_header_block(list), &blen);
	if (block) {
		subject =
		    imap_extract_header(block, blen, "Subject", &m.subject_len);
		ctype =
		    imap_extract_header(block, blen, "Content-Type", &unused);
		from = imap_extract_header(block, blen, "From", &m.from_len);
	}
	m.subject = subject;
	m.content_type = ctype;
	m.from = from;
	m.gid = imap_fetch_message_gid(list);
	ctx->fn(ctx->user_data, &m);
	return 0;
}

uint64_t imap_fetch_message_gid(const ImapValue *list)
{
	const ImapValue *v = imap_fetch_get(list, "X-GM-MSGID");
	g_autoptr(GChecksum) sum = NULL;
	guint8 digest[32];
	gsize dlen = sizeof(digest);
	uint64_t n = 0;
	const char *s;
	size_t len = 0;

	if (imap_value_get_u64(v, &n))
		return n;
	v = imap_fetch_get(list, "EMAILID");
	if (v && v->type == IMAP_VALUE_LIST && v->len == 1)
		v = &v->items[0];
	s = imap_value_get_string(v, &len);
	if (!s || len == 0)
		return 0;
	sum = g_checksum_new(G_CHECKSUM_SHA256);
	g_checksum_update(sum, (const guchar *)s, (gssize)len);
	g_checksum_get_digest(sum, digest, &dlen);
	for (int i = 0; i < 8; i++)
		n = n << 8 | digest[i];
	return n ? n : 1;
}

int imap_fetch_meta_fields(ImapConn *conn, const char *uid_set, unsigned fields,
			   ImapMetaFn fn, void *user_data, GError **error)
{
	g_autoptr(GString) keywords = g_string_new(NULL);
	MetaCtx ctx = { fn, user_data, keywords };
	g_autofree char *line = imap_fetch_meta_line(conn, uid_set, fields);

	return imap_conn_command(conn, meta_untagged, &ctx, error, "%s", line);
}

char *imap_fetch_meta_line(ImapConn *conn, const char *uid_set, unsigned fields)
{
	const char *gid = imap_conn_has_cap(conn, "X-GM-EXT-1") ? " X-GM-MSGID"
			  : imap_conn_has_cap(conn, "OBJECTID") ? " EMAILID"
								: "";

	return g_strdup_printf("UID FETCH %s (UID RFC822.SIZE INTERNALDATE%s "
			       "FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT "
			       "CONTENT-TYPE%s)])",
			       uid_set, gid,
			       (fields & IMAP_META_FROM) ? " FROM" : "");
}

void imap_fetch_meta_parse(ImapResponse *r, GString *keywords, ImapMetaFn fn,
			   void *user_data)
{
	MetaCtx ctx = { fn, user_data, keywords };

	g_string_truncate(keywords, 0);
	meta_untagged(&ctx, r);
}

int imap_fetch_meta(ImapConn *conn, const char *uid_set, ImapMetaFn fn,
		    void *user_data, GError **error)
{
	return imap_fetch_meta_fields(conn, uid_set, 0, fn, user_data, error);
}

static int flags_untagged(void *user_data, ImapResponse *r)
{
	MetaCtx *ctx = user_data;
	const ImapValue *list;
	ImapMessageMeta m = { 0 };

	list = imap_fetch_answer(r, &m.uid);
	if (!list)
		return 0;
	meta_flags(ctx, list, &m);
	if (m.has_flags)
		ctx->fn(ctx->user_data, &m);
	return 0;
}

typedef struct {
	uint64_t modseq;
	ImapMetaFn fn;
	void *user_data;
} FlagsCtx;

static int flags_range(ImapConn *conn, const char *uid_set, void *data,
		       GError **error)
{
	FlagsCtx *f = data;
	g_autoptr(GString) keywords = g_string_new(NULL);
	MetaCtx ctx = { f->fn, f->user_data, keywords };

	if (f->modseq)
		return imap_conn_command(
		    conn, flags_untagged, &ctx, error,
		    "UID FETCH %s (UID FLAGS) (CHANGEDSINCE %" G_GUINT64_FORMAT
		    ")",
		    uid_set, f->modseq);
	return imap_conn_command(conn, flags_untagged, &ctx, error,
				 "UID FETCH %s (UID FLAGS)", uid_set);
}

int imap_fetch_flags(ImapConn *conn, const char *uid_set, uint64_t modseq,
		     ImapMetaFn fn, void *user_data, GError **error)
{
	FlagsCtx f = { modseq, fn, user_data };
	int rc = flags_range(conn, uid_set, &f, error);

	/* NO [LIMIT]: the whole folder in UID ranges (imap/limit.h); the
	 * flags of UIDs past uid_set's are the caller's to ignore. */
	if (rc != -EAGAIN || imap_conn_is_broken(conn))
		return rc;
	g_clear_error(error);
	return imap_limit_ranges(conn, 1, flags_range, &f, error);
}

/* ---- SEARCH ---- */

static int search_untagged(void *user_data, ImapResponse *r)
{
	GArray *uids = user_data;

	if (!r->name)
		return 0;
	if (strcmp(r->name, "SEARCH") == 0) {
		for (size_t i = 0; i < r->args.len; i++) {
			uint64_t n;

			if (!imap_value_get_u64(&r->args.items[i], &n) ||
			    n == 0 || n > UINT32_MAX)
				return -EPROTO;
			if (uids->len >= MAX_SEARCH_UIDS)
				return -E2BIG;
			uint32_t v = (uint32_t)n;
			g_array_append_val(uids, v);
		}
	} else if (strcmp(r->name, "ESEARCH") == 0) {
		for (size_t i = 0; i + 1 < r->args.len; i++) {
			const char *set;

			if (!imap_value_is_atom(&r->args.items[i], "ALL"))
				continue;
			set =
			    imap_value_get_string(&r->args.items[i + 1], NULL);
			if (!set)
				return -EPROTO;
			return imap_uid_set_expand(uids, set, MAX_SEARCH_UIDS);
		}
	}
	return 0;
}

static int cmp_u32(gconstpointer a, gconstpointer b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* "1:*" means all of them: UID SEARCH ALL, the form every server knows. */
static int search_range(ImapConn *conn, const char *uid_set, void *data,
			GError **error)
{
	bool all = strcmp(uid_set, "1:*") == 0;

	if (imap_conn_has_cap(conn, "ESEARCH"))
		return imap_conn_command(conn, search_untagged, data, error,
					 "UID SEARCH RETURN (ALL) %s%s",
					 all ? "" : "UID ",
					 all ? "ALL" : uid_set);
	return imap_conn_command(conn, search_untagged, data, error,
				 "UID SEARCH %s%s", all ? "" : "UID ",
				 all ? "ALL" : uid_set);
}

int imap_search_uids(ImapConn *conn, GArray *uids, GError **error)
{
	int rc;

	g_array_set_size(uids, 0);
	rc = imap_limit_ranges(conn, 1, search_range, uids, error);
	if (rc < 0)
		return rc;
	g_array_sort(uids, cmp_u32);
	/* Ranges asked again after a refusal may repeat UIDs. */
	for (guint i = 1, out = 1; i <= uids->len; i++) {
		if (i == uids->len) {
			g_array_set_size(uids, out);
			break;
		}
		if (g_array_index(uids, uint32_t, i) !=
		    g_array_index(uids, uint32_t, out - 1))
			g_array_index(uids, uint32_t, out++) =
			    g_array_index(uids, uint32_t, i);
	}
	return 0;
}

/* ---- QRESYNC ---- */

typedef struct {
	GArray *vanished;
	int rc;
} VanishedCtx;

static int vanished_untagged(void *user_data, ImapResponse *r)
{
	VanishedCtx *ctx = user_data;
	const ImapValue *set;
	size_t i = 0;

	if (!r->name || strcmp(r->name, "VANISHED") != 0 || ctx->rc < 0)
		return 0;
	/* "* VANISHED (EARLIER) 41,43:116" or "* VANISHED 405" */
	if (r->args.len > 0 && r->args.items[0].type == IMAP_VALUE_LIST)
		i = 1;
	set = imap_list_get(&r->args, i);
	if (!set || set->type != IMAP_VALUE_ATOM) {
		ctx->rc = -EPROTO;
		return 0;
	}
	ctx->rc = imap_uid_set_expand(ctx->vanished, set->str, MAX_SEARCH_UIDS);
	return 0;
}

int imap_examine_qresync(ImapConn *conn, const char *mailbox,
			 uint32_t uidvalidity, uint64_t modseq,
			 ImapMailboxState *state, GArray *vanished,
			 GError **error)
{
	g_autofree char *params = g_strdup_printf(
	    "(QRESYNC (%u %" G_GUINT64_FORMAT "))", uidvalidity, modseq);
	VanishedCtx ctx = { vanished, 0 };
	int rc;

	rc = imap_conn_examine_with(conn, mailbox, params, vanished_untagged,
				    &ctx, state, error);
	if (rc == 0 && ctx.rc < 0) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "bad VANISHED answer from the server");
		return ctx.rc;
	}
	if (rc == 0)
		g_array_sort(vanished, cmp_u32);
	return rc;
}

/* ---- FETCH bodies ---- */

typedef struct {
	ImapBodyFn fn;
	void *user_data;
	int rc;
} BodyCtx;

static int body_untagged(void *user_data, ImapResponse *r)
{
	BodyCtx *ctx = user_data;
	const ImapValue *list, *uidv;
	ImapValue *body = NULL;
	uint64_t uid;
	int rc;

	if (!r->name || strcmp(r->name, "FETCH") != 0 || r->args.len < 1)
		return 0;
	list = &r->args.items[0];
	if (list->type != IMAP_VALUE_LIST)
		return 0;
	uidv = imap_fetch_get(list, "UID");
	if (!imap_value_get_u64(uidv, &uid) || uid == 0 || uid > UINT32_MAX)
		return 0;
	for (size_t i = 0; i + 1 < list->len; i += 2)
		if (imap_value_is_atom(&list->items[i], "BODY[]"))
			body = &list->items[i + 1];
	if (!body)
		return 0; /* flags update or a quirk: not a body */
	rc = ctx->fn(
	    ctx->user_data, (uint32_t)uid,
	    &(ImapBody){
		.streamed = imap_conn_take_literal(body),
		.data = body->type == IMAP_VALUE_STRING ? body->str : NULL,
		.len = body->type == IMAP_VALUE_STRING ? body->len : 0,
		.nil = body->type == IMAP_VALUE_NIL,
	    });
	if (rc < 0 && ctx->rc == 0)
		ctx->rc = rc;
	return 0;
}

int imap_fetch_bodies(ImapConn *conn, const char *uid_set,
		      const ImapLiteralSink *sink, void *sink_data,
		      ImapBodyFn fn, void *user_data, GError **error)
{
	BodyCtx ctx = { fn, user_data, 0 };
	int rc;

	rc = imap_conn_command_sink(conn, sink, sink_data, body_untagged, &ctx,
				    error, "UID FETCH %s (UID BODY.PEEK[])",
				    uid_set);
	return rc < 0 ? rc : ctx.rc;
}

/* ---- FETCH a head ---- */

typedef struct {
	uint32_t uid;
	GBytes *head;
} HeadCtx;

static int head_untagged(void *user_data, ImapResponse *r)
{
	HeadCtx *ctx = user_data;
	const ImapValue *list;
	uint32_t uid;

	list = imap_fetch_answer(r, &uid);
	if (!list || uid != ctx->uid)
		return 0;
	for (size_t i = 0; i + 1 < list->len; i += 2) {
		const ImapValue *key = &list->items[i];
		const ImapValue *v = &list->items[i + 1];

		/* "BODY[]<0>": the answer to a partial fetch from 0. */
		if (!imap_value_is_atom(key, "BODY[]<0>"))
			continue;
		if (v->type == IMAP_VALUE_STRING && v->len > 0 && !ctx->head)
			ctx->head = g_bytes_new(v->str, v->len);
	}
	return 0;
}

int imap_fetch_head(ImapConn *conn, uint32_t uid, uint32_t len, GBytes **out,
		    GError **error)
{
	HeadCtx ctx = { uid, NULL };
	int rc;

	for (unsigned step = 0;; step++) {
		rc = imap_conn_command(conn, head_untagged, &ctx, error,
				       "UID FETCH %u (UID BODY.PEEK[]<0.%u>)",
				       uid, len);
		/* No answer: maybe new to this session (imap_catch_up()). */
		if (rc < 0 || ctx.head || step == IMAP_CATCH_UP_STEPS)
			break;
		rc = imap_catch_up(conn, step, error);
		if (rc < 0)
			break;
	}
	if (rc == 0 && (!ctx.head || g_bytes_get_size(ctx.head) > len)) {
		/* Missing, or longer than asked: a mislabelled answer. */
		g_clear_pointer(&ctx.head, g_bytes_unref);
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "server sent no usable partial body for UID %u",
			    uid);
		rc = -EIO;
	}
	*out = ctx.head;
	return rc;
}

/* ---- helpers for the watcher and for resyncs ---- */

int imap_parse_vanished(const ImapResponse *r, GArray *uids)
{
	const ImapValue *set;
	size_t i = 0;
	int rc;

	if (!r->name || strcmp(r->name, "VANISHED") != 0)
		return -EINVAL;
	/* "* VANISHED (EARLIER) 41,43:116" or "* VANISHED 405" */
	if (r->args.len > 0 && r->args.items[0].type == IMAP_VALUE_LIST)
		i = 1;
	set = imap_list_get(&r->args, i);
	if (!set || set->type != IMAP_VALUE_ATOM)
		return -EPROTO;
	rc = imap_uid_set_expand(uids, set->str, MAX_SEARCH_UIDS);
	if (rc == 0)
		g_array_sort(uids, cmp_u32);
	return rc;
}

int imap_examine_resync(ImapConn *conn, const char *mailbox,
			uint32_t uidvalidity, uint64_t modseq,
			ImapMailboxState *state, GArray **vanished,
			GError **error)
{
	unsigned caps = imap_conn_modseq_caps(conn);
	GArray *v;
	int rc;

	*vanished = NULL;
	if (!modseq || !(caps & IMAP_MODSEQ_QRESYNC))
		return imap_conn_examine_with(
		    conn, mailbox,
		    (caps & IMAP_MODSEQ_CONDSTORE) ? "(CONDSTORE)" : NULL, NULL,
		    NULL, state, error);
	v = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	rc = imap_examine_qresync(conn, mailbox, uidvalidity, modseq, state, v,
				  error);
	/* Another UIDVALIDITY: the server ignored the parameters. */
	if (rc == 0 && state->uidvalidity == uidvalidity)
		*vanished = v;
	else
		g_array_unref(v);
	return rc;
}

typedef struct {
	uint32_t first;
	ImapMetaFn fn;
	void *user_data;
	unsigned fields; /* IMAP_META_* */
} SinceCtx;

static void since_meta(void *user_data, const ImapMessageMeta *m)
{
	SinceCtx *ctx = user_data;

	/* "UID n:*" answers the highest UID even when it is below n. */
	if (m->uid >= ctx->first)
		ctx->fn(ctx->user_data, m);
}

static int meta_range(ImapConn *conn, const char *uid_set, void *data,
		      GError **error)
{
	SinceCtx *ctx = data;

	return imap_fetch_meta_fields(conn, uid_set, ctx->fields, since_meta,
				      ctx, error);
}

int imap_fetch_meta_fields_since(ImapConn *conn, uint32_t first,
				 unsigned fields, ImapMetaFn fn,
				 void *user_data, GError **error)
{
	SinceCtx ctx = { first, fn, user_data, fields };

	/* In UID ranges on servers that limit a command's messages. */
	return imap_limit_ranges(conn, first, meta_range, &ctx, error);
}

int imap_fetch_meta_since(ImapConn *conn, uint32_t first, ImapMetaFn fn,
			  void *user_data, GError **error)
{
	return imap_fetch_meta_fields_since(conn, first, 0, fn, user_data,
					    error);
}

char *imap_uid_set(const GArray *uids)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < uids->len;) {
		uint32_t a = g_array_index(uids, uint32_t, i), b = a;
		guint j = i + 1;

		while (j < uids->len &&
		       g_array_index(uids, uint32_t, j) == b + 1)
			b = g_array_index(uids, uint32_t, j++);
		if (s->len)
			g_string_append_c(s, ',');
		if (a == b)
			g_string_append_printf(s, "%u", a);
		else
			g_string_append_printf(s, "%u:%u", a, b);
		i = j;
	}
	return g_string_free(s, FALSE);
}

/* ---- FETCH ENVELOPE ---- */

typedef struct {
	uint32_t uid;
	ImapEnvelope *env;
} EnvelopeCtx;

static int envelope_untagged(void *user_data, ImapResponse *r)
{
	EnvelopeCtx *ctx = user_data;
	const ImapValue *list;
	uint32_t uid;

	list = imap_fetch_answer(r, &uid);
	if (!list || uid != ctx->uid || ctx->env)
		return 0;
	ctx->env = imap_envelope_parse(list);
	return 0;
}

int imap_fetch_envelope(ImapConn *conn, uint32_t uid, ImapEnvelope **out,
			GError **error)
{
	EnvelopeCtx ctx = { uid, NULL };
	bool gmail = imap_conn_has_cap(conn, "X-GM-EXT-1");
	int rc;

	for (unsigned step = 0;; step++) {
		rc = imap_conn_command(conn, envelope_untagged, &ctx, error,
				       "UID FETCH %u (UID ENVELOPE%s)", uid,
				       gmail ? " X-GM-LABELS X-GM-MSGID "
					       "X-GM-THRID"
					     : "");
		/* No answer: maybe new to this session (imap_catch_up()). */
		if (rc < 0 || ctx.env || step == IMAP_CATCH_UP_STEPS)
			break;
		rc = imap_catch_up(conn, step, error);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		imap_envelope_free(ctx.env);
		ctx.env = NULL;
	}
	*out = ctx.env;
	return rc;
}

/* ---- a session behind the server ---- */

int imap_catch_up(ImapConn *conn, unsigned step, GError **error)
{
	g_autofree char *mailbox = g_strdup(imap_conn_selected(conn));
	bool condstore = imap_conn_modseq_caps(conn) & IMAP_MODSEQ_CONDSTORE;
	ImapMailboxState before = { 0 }, now = { 0 };
	int rc;

	if (!mailbox) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "no folder selected to catch up with");
		return -EINVAL;
	}
	/* NOOP is how a client asks for news (RFC 9051 6.1.2): the EXISTS
	 * it brings puts the new messages into the session's view. */
	if (step == 0)
		return imap_conn_command(conn, NULL, NULL, error, "NOOP");
	/* A server that shows new mail only to a new EXAMINE. The UIDs the
	 * caller asks for must still mean the same messages. */
	imap_conn_examine(conn, mailbox, &before, NULL); /* selected: no I/O */
	rc = imap_conn_examine_with(conn, mailbox,
				    condstore ? "(CONDSTORE)" : NULL, NULL,
				    NULL, &now, error);
	if (rc == 0 && now.uidvalidity != before.uidvalidity) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "folder %s changed on the server (UIDVALIDITY %u, "
			    "expected %u)",
			    mailbox, now.uidvalidity, before.uidvalidity);
		rc = -ESTALE;
	}
	return rc;
}
