/* imap/conn.c: one IMAP connection: greeting, STARTTLS, the command
 * pipeline (tags, tagged answers, untagged data, continuation requests),
 * IDLE and EXAMINE. The bytes travel through imap/transport.c; the login
 * is chosen in imap/auth.c.
 *
 * Ownership: an ImapConn owns its transport (socket, TLS, receive buffer),
 * its parser and its capability list. It is used by one thread at a time,
 * so there is no locking here.
 *
 * Invariants: nothing but STARTTLS is sent before TLS is up; bytes that
 * arrived before the TLS handshake are dropped; credentials are never
 * logged nor put in an error; every wait is bounded by account.timeout_ms,
 * and a failed wait marks the connection broken for good. A tagged NO or
 * BAD becomes an errno in imap_status_errno() only.
 */
#include "imap/conn.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "imap/auth.h"
#include "imap/conn-private.h"
#include "imap/quirks.h"
#include "imap/status.h"
#include "imap/transport.h"

struct ImapConn {
	ImapAccount account;
	ImapTransport t; /* t.broken: the connection is never used again */
	ImapParser *parser;

	unsigned next_tag;
	GPtrArray *caps; /* upper-cased capability atoms */
	char *selected;  /* raw name of the EXAMINEd mailbox */
	ImapMailboxState state;
	char *idle_tag;      /* tag of the IDLE command in progress */
	bool qresync;        /* ENABLE QRESYNC succeeded */
	char *refusal;       /* text of the last NO, BAD or BYE */
	char *refusal_code;  /* its response code ("SERVERBUG"), or NULL */
	char **disabled;     /* capabilities not to use (imap/quirks.h) */
	struct Batch *batch; /* the commands being answered, NULL between */
	bool bye;            /* the server ended the session (not a limit) */
	unsigned id;         /* [cN] in the debug log */
	bool greeted;        /* the server's greeting came */
};

G_DEFINE_QUARK(imap - error - quark, imap_error)

static gint last_conn_id; /* atomic: numbers connections for the log */

/* ---- responses ---- */

static void update_caps(ImapConn *conn, const ImapValue *list, size_t first)
{
	g_ptr_array_set_size(conn->caps, 0);
	for (size_t i = first; i < list->len; i++) {
		const ImapValue *v = &list->items[i];

		if (v->type == IMAP_VALUE_ATOM)
			g_ptr_array_add(conn->caps, g_ascii_strup(v->str, -1));
	}
}

/* The next response complete in the receive buffer: 1 with *out set, 0
 * when more bytes are needed, or -errno (the connection is broken). */
static int parse_buffered(ImapConn *conn, ImapResponse **out, GError **error)
{
	ImapTransport *t = &conn->t;
	size_t used = 0;
	int rc;

	if (t->rpos == t->rlen)
		return 0;
	rc = imap_parser_feed(conn->parser, t->rbuf + t->rpos,
			      t->rlen - t->rpos, &used, out);
	t->rpos += used;
	if (rc < 0) {
		imap_transport_fail(
		    t, error, IMAP_ERROR_PROTOCOL, "bad response from %s: %s",
		    conn->account.host, imap_parser_error(conn->parser));
		return rc;
	}
	if (rc == 1)
		imap_status_log_response(conn->id, *out);
	return rc;
}

/* Next complete response. Untagged CAPABILITY and status codes that matter
 * to the connection are noted here as well. */
static int next_response(ImapConn *conn, ImapResponse **out, GError **error)
{
	for (;;) {
		int rc = parse_buffered(conn, out, error);

		if (rc < 0)
			return rc;
		if (rc == 1) {
			ImapResponse *r = *out;

			if (r->name && strcmp(r->name, "CAPABILITY") == 0)
				update_caps(conn, &r->args, 0);
			if (r->code && strcmp(r->code, "CAPABILITY") == 0)
				update_caps(conn, &r->code_args, 0);
			return 0;
		}
		rc = imap_transport_read(&conn->t, error);
		if (rc < 0)
			return rc;
	}
}

static int send_line(ImapConn *conn, const char *tag, const char *line,
		     GError **error)
{
	g_autofree char *full = g_strdup_printf("%s %s\r\n", tag, line);

	imap_status_log_command(conn->id, tag, line);
	return imap_transport_write(&conn->t, full, strlen(full), error);
}

static char *new_tag(ImapConn *conn)
{
	return g_strdup_printf("A%u", ++conn->next_tag);
}

static void note_refusal(ImapConn *conn, const ImapResponse *r)
{
	g_free(conn->refusal);
	conn->refusal = g_strdup(r->text && *r->text ? r->text : "");
	g_free(conn->refusal_code);
	conn->refusal_code = g_strdup(r->code);
}

const char *imap_conn_refusal_text(const ImapConn *conn)
{
	return conn->refusal ? conn->refusal : "";
}

bool imap_conn_refused_by_failure(const ImapConn *conn)
{
	return imap_code_is_server_failure(conn->refusal_code);
}

/* A tagged NO or BAD to the command in line: note the server's words,
 * set error (naming the command, never its arguments) and return the
 * errno of imap_status_errno(). */
static int refuse(ImapConn *conn, const ImapResponse *r, const char *line,
		  GError **error)
{
	g_autofree char *what = imap_status_command_name(line);

	note_refusal(conn, r);
	if (error != NULL && *error == NULL)
		*error = g_error_new(
		    IMAP_ERROR,
		    r->status == IMAP_STATUS_NO ? IMAP_ERROR_NO
						: IMAP_ERROR_BAD,
		    "%s refused by %s: %s", what, conn->account.host,
		    r->text && *r->text ? r->text : "(no reason given)");
	return imap_status_errno(r, imap_status_is_login(line));
}

/* An untagged BYE: the server is closing the connection. */
static int closed_by_bye(ImapConn *conn, const ImapResponse *r, GError **error)
{
	note_refusal(conn, r);
	conn->bye = !imap_text_is_throttling(r->code, r->text);
	imap_transport_fail(
	    &conn->t, error,
	    imap_text_is_throttling(r->code, r->text) ? IMAP_ERROR_THROTTLED
						      : IMAP_ERROR_CLOSED,
	    "%s closed the connection: %s", conn->account.host, r->text);
	return -ECONNRESET;
}

/* ---- the command pipeline ---- */

/* Commands sent together and read until all have their tagged answer. */
typedef struct Batch {
	char **lines;
	size_t n;
	int *statuses; /* 1 while in flight, then 0 or -errno */
	GPtrArray *tags;
	size_t pending;
	ImapUntaggedFn fn;
	void *user_data;
	int fn_rc;           /* first failure of fn */
	ImapContinueFn cont; /* answers "+" requests; NULL: none expected */
	void *cont_data;
	const ImapLiteralSink *sink; /* large literals of the answer; NULL:
				      * they are read and dropped */
	void *sink_data;
} Batch;

/* ---- large literals: each to the sink of the commands it answers ---- */

/* What the parser holds for a large literal: the sink it went to (NULL:
 * dropped) and what that sink's begin() returned. */
typedef struct {
	const ImapLiteralSink *sink;
	void *sink_data;
	void *inner;
} Literal;

/* A literal arriving now belongs to the batch in flight: untagged data
 * comes before its command's tagged answer, and a batch with a sink holds
 * one command. */
static void *literal_begin(void *user_data, uint64_t size)
{
	const ImapConn *conn = user_data;
	const Batch *b = conn->batch;
	Literal *lit = g_new0(Literal, 1);

	if (!b || !b->sink || b->pending == 0)
		return lit; /* nobody wants the bytes */
	lit->inner = b->sink->begin(b->sink_data, size);
	if (!lit->inner) {
		g_free(lit);
		return NULL;
	}
	lit->sink = b->sink;
	lit->sink_data = b->sink_data;
	return lit;
}

static int literal_write(void *user_data, void *sink, const void *buf,
			 size_t len)
{
	Literal *lit = sink;

	if (!lit->sink)
		return 0;
	return lit->sink->write(lit->sink_data, lit->inner, buf, len);
}

static void literal_discard(void *user_data, void *sink)
{
	Literal *lit = sink;

	if (lit->sink && lit->sink->discard)
		lit->sink->discard(lit->sink_data, lit->inner);
	g_free(lit);
}

/* The parser's sink on every connection: it hands each large literal to
 * the sink of the command being answered. */
static const ImapLiteralSink literal_trampoline = {
	.begin = literal_begin,
	.write = literal_write,
	.discard = literal_discard,
};

void *imap_conn_take_literal(ImapValue *value)
{
	Literal *lit;
	void *inner;

	if (!value || value->type != IMAP_VALUE_STREAM || !value->stream.sink)
		return NULL;
	lit = value->stream.sink;
	value->stream.sink = NULL;
	inner = lit->inner;
	g_free(lit);
	return inner;
}

static int batch_send(ImapConn *conn, Batch *b, GError **error)
{
	g_autoptr(GString) out = g_string_new(NULL);
	int rc;

	for (size_t i = 0; i < b->n; i++) {
		char *tag = new_tag(conn);

		g_ptr_array_add(b->tags, tag);
		g_string_append_printf(out, "%s %s\r\n", tag, b->lines[i]);
		imap_status_log_command(conn->id, tag, b->lines[i]);
	}
	rc = imap_transport_write(&conn->t, out->str, out->len, error);
	explicit_bzero(out->str, out->len); /* may hold credentials */
	return rc;
}

static void batch_tagged(ImapConn *conn, Batch *b, const ImapResponse *r,
			 GError **error)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->statuses[i] != 1 ||
		    strcmp(b->tags->pdata[i], r->tag) != 0)
			continue;
		if (r->status == IMAP_STATUS_OK)
			b->statuses[i] = 0;
		else
			b->statuses[i] = refuse(conn, r, b->lines[i], error);
		b->pending--;
		return;
	}
}

/* A continuation request: the handler's answer goes out as one line. We
 * send no synchronising literals, so without a handler it is a protocol
 * error. */
static int batch_continue(ImapConn *conn, Batch *b, const ImapResponse *r,
			  GError **error)
{
	g_autofree char *reply = b->cont ? b->cont(b->cont_data, r) : NULL;
	g_autofree char *line = NULL;
	int rc;

	if (!reply) {
		imap_transport_fail(&conn->t, error, IMAP_ERROR_PROTOCOL,
				    "unexpected continuation request from %s",
				    conn->account.host);
		return -EPROTO;
	}
	line = g_strdup_printf("%s\r\n", reply);
	rc = imap_transport_write(&conn->t, line, strlen(line), error);
	/* The answer may hold credentials. */
	explicit_bzero(reply, strlen(reply));
	explicit_bzero(line, strlen(line));
	return rc;
}

/* Send b's commands and read until each has its tagged answer. 0 when the
 * connection survived, else -errno with error set. */
static int batch_run(ImapConn *conn, Batch *b, GError **error)
{
	int rc = batch_send(conn, b, error);

	while (rc == 0 && b->pending > 0) {
		ImapResponse *r = NULL;

		rc = next_response(conn, &r, error);
		if (rc < 0)
			return rc;
		if (r->kind == IMAP_RESPONSE_TAGGED)
			batch_tagged(conn, b, r, error);
		else if (r->kind == IMAP_RESPONSE_CONTINUATION)
			rc = batch_continue(conn, b, r, error);
		else if (r->status == IMAP_STATUS_BYE)
			rc = closed_by_bye(conn, r, error);
		else if (b->fn && b->fn_rc == 0)
			b->fn_rc = b->fn(b->user_data, r);
		imap_response_free(r);
	}
	if (rc == 0 && b->fn_rc < 0) {
		for (size_t i = 0; i < b->n; i++)
			if (b->statuses[i] == 0)
				b->statuses[i] = b->fn_rc;
	}
	return rc;
}

/* Run b (its lines, statuses, fn and handlers set), published on conn for
 * the literal trampoline while it runs. */
static int run_batch(ImapConn *conn, Batch *b, GError **error)
{
	g_autoptr(GPtrArray) tags = g_ptr_array_new_with_free_func(g_free);
	int rc;

	for (size_t i = 0; i < b->n; i++)
		b->statuses[i] = 1; /* unanswered, also when nothing is sent */
	if (conn->t.broken) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CLOSED,
			    "connection to %s is closed", conn->account.host);
		return -EIO;
	}
	b->tags = tags;
	b->pending = b->n;
	conn->batch = b;
	rc = batch_run(conn, b, error);
	conn->batch = NULL;
	return rc;
}

int imap_conn_pipeline(ImapConn *conn, char **lines, size_t n, int *statuses,
		       ImapUntaggedFn fn, void *user_data, GError **error)
{
	Batch b = { .lines = lines,
		    .n = n,
		    .statuses = statuses,
		    .fn = fn,
		    .user_data = user_data };

	return run_batch(conn, &b, error);
}

/* Run b, which holds one command, its line wiped afterwards (it may hold
 * credentials). */
static int run_one(ImapConn *conn, Batch *b, GError **error)
{
	char *line = b->lines[0];
	int status = 0;
	int rc;

	b->n = 1;
	b->statuses = &status;
	rc = run_batch(conn, b, error);
	if (rc == 0 && status < 0 && error && *error == NULL) {
		g_autofree char *what = imap_status_command_name(line);

		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s failed: %s", what, g_strerror(-status));
	}
	explicit_bzero(line, strlen(line));
	return rc < 0 ? rc : status;
}

int imap_conn_command(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
		      GError **error, const char *fmt, ...)
{
	g_autofree char *line = NULL;
	Batch b = { .lines = &line, .fn = fn, .user_data = user_data };
	va_list ap;

	va_start(ap, fmt);
	line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return run_one(conn, &b, error);
}

int imap_conn_command_sink(ImapConn *conn, const ImapLiteralSink *sink,
			   void *sink_data, ImapUntaggedFn fn, void *user_data,
			   GError **error, const char *fmt, ...)
{
	g_autofree char *line = NULL;
	Batch b = { .lines = &line,
		    .fn = fn,
		    .user_data = user_data,
		    .sink = sink,
		    .sink_data = sink_data };
	va_list ap;

	va_start(ap, fmt);
	line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return run_one(conn, &b, error);
}

int imap_conn_run(ImapConn *conn, const char *line, ImapContinueFn cont,
		  void *cont_data, GError **error)
{
	g_autofree char *copy = g_strdup(line);
	Batch b = { .lines = &copy, .cont = cont, .cont_data = cont_data };

	return run_one(conn, &b, error);
}

const ImapAccount *imap_conn_account(const ImapConn *conn)
{
	return &conn->account;
}

bool imap_conn_has_cap(const ImapConn *conn, const char *cap)
{
	if (imap_quirks_cap_disabled(conn->disabled, cap))
		return false;
	for (guint i = 0; i < conn->caps->len; i++)
		if (g_ascii_strcasecmp(conn->caps->pdata[i], cap) == 0)
			return true;
	return false;
}

void imap_conn_set_wait_limit(ImapConn *conn, unsigned ms)
{
	conn->account.timeout_ms = MAX(ms, 1u);
}

bool imap_conn_is_broken(const ImapConn *conn)
{
	return conn->t.broken;
}

gint64 imap_conn_last_progress(const ImapConn *conn)
{
	return __atomic_load_n(&conn->t.last_progress, __ATOMIC_RELAXED);
}

char *imap_conn_quote(const ImapConn *conn, const char *s)
{
	bool needs_literal = false;
	GString *out;

	for (const char *p = s; *p; p++)
		if (*p == '\r' || *p == '\n' || (unsigned char)*p >= 0x80)
			needs_literal = true;
	if (needs_literal) {
		if (!imap_conn_has_cap(conn, "LITERAL+"))
			return NULL;
		return g_strdup_printf("{%zu+}\r\n%s", strlen(s), s);
	}
	out = g_string_sized_new(strlen(s) + 2);
	g_string_append_c(out, '"');
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *p);
	}
	g_string_append_c(out, '"');
	return g_string_free(out, FALSE);
}

/* ---- IDLE ---- */

int imap_conn_idle_start(ImapConn *conn, GError **error)
{
	ImapResponse *r = NULL;
	int rc;

	g_free(conn->idle_tag);
	conn->idle_tag = new_tag(conn);
	rc = send_line(conn, conn->idle_tag, "IDLE", error);
	while (rc == 0) {
		rc = next_response(conn, &r, error);
		if (rc < 0)
			break;
		if (r->kind == IMAP_RESPONSE_CONTINUATION) {
			imap_response_free(r);
			return 0;
		}
		if (r->kind == IMAP_RESPONSE_TAGGED &&
		    strcmp(r->tag, conn->idle_tag) == 0) {
			rc = refuse(conn, r, "IDLE", error);
			imap_response_free(r);
			g_clear_pointer(&conn->idle_tag, g_free);
			return rc;
		}
		imap_response_free(r); /* untagged data before "+" */
	}
	return rc;
}

/* Hand every complete response already buffered to fn: 1 when there was
 * any, 0 when none, -errno when the connection broke. */
static int idle_drain(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
		      GError **error)
{
	int got = 0;

	for (;;) {
		ImapResponse *r = NULL;
		int rc = parse_buffered(conn, &r, error);

		if (rc <= 0)
			return rc < 0 ? rc : got;
		if (r->kind == IMAP_RESPONSE_UNTAGGED &&
		    r->status == IMAP_STATUS_BYE) {
			rc = closed_by_bye(conn, r, error);
			imap_response_free(r);
			return rc;
		}
		if (r->kind == IMAP_RESPONSE_UNTAGGED && fn)
			fn(user_data, r);
		imap_response_free(r);
		got = 1;
	}
}

int imap_conn_idle_wait(ImapConn *conn, unsigned wait_ms, ImapUntaggedFn fn,
			void *user_data, GError **error)
{
	for (;;) {
		int rc = idle_drain(conn, fn, user_data, error);

		if (rc != 0)
			return rc;
		if (imap_transport_wait_input(&conn->t, wait_ms) == 0)
			return 0;
		rc = imap_transport_read(&conn->t, error);
		if (rc < 0)
			return rc;
	}
}

int imap_conn_idle_done(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
			GError **error)
{
	int rc;

	if (!conn->idle_tag)
		return 0;
	g_debug("[c%u] C: DONE", conn->id);
	rc = imap_transport_write(&conn->t, "DONE\r\n", 6, error);
	while (rc == 0) {
		ImapResponse *r = NULL;

		rc = next_response(conn, &r, error);
		if (rc < 0)
			break;
		if (r->kind == IMAP_RESPONSE_TAGGED &&
		    strcmp(r->tag, conn->idle_tag) == 0) {
			if (r->status != IMAP_STATUS_OK)
				rc = refuse(conn, r, "IDLE", error);
			imap_response_free(r);
			break;
		}
		if (r->kind == IMAP_RESPONSE_UNTAGGED && fn)
			fn(user_data, r);
		imap_response_free(r);
	}
	g_clear_pointer(&conn->idle_tag, g_free);
	return rc;
}

/* ---- EXAMINE ---- */

void imap_mailbox_state_note(ImapMailboxState *st, const ImapResponse *r)
{
	uint64_t v;

	if (r->name && r->has_number && strcmp(r->name, "EXISTS") == 0)
		st->exists = (uint32_t)MIN(r->number, UINT32_MAX);
	if (r->code && r->code_args.len > 0 &&
	    imap_value_get_u64(&r->code_args.items[0], &v)) {
		if (strcmp(r->code, "UIDVALIDITY") == 0 && v <= UINT32_MAX)
			st->uidvalidity = (uint32_t)v;
		else if (strcmp(r->code, "UIDNEXT") == 0 && v <= UINT32_MAX)
			st->uidnext = (uint32_t)v;
		else if (strcmp(r->code, "HIGHESTMODSEQ") == 0)
			st->highestmodseq = v;
	}
}

typedef struct {
	ImapMailboxState st;
	ImapUntaggedFn extra;
	void *extra_data;
} ExamineCtx;

static int examine_ctx_untagged(void *user_data, ImapResponse *r)
{
	ExamineCtx *ctx = user_data;

	imap_mailbox_state_note(&ctx->st, r);
	return ctx->extra ? ctx->extra(ctx->extra_data, r) : 0;
}

int imap_conn_examine_with(ImapConn *conn, const char *mailbox,
			   const char *params, ImapUntaggedFn fn,
			   void *user_data, ImapMailboxState *state,
			   GError **error)
{
	g_autofree char *quoted = NULL;
	ExamineCtx ctx = { { 0 }, fn, user_data };
	int rc;

	g_clear_pointer(&conn->selected, g_free);
	quoted = imap_conn_quote(conn, mailbox);
	if (!quoted) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "folder name cannot be sent to this server");
		return -EINVAL;
	}
	rc = imap_conn_command(conn, examine_ctx_untagged, &ctx, error,
			       "EXAMINE %s%s%s", quoted, params ? " " : "",
			       params ? params : "");
	if (rc < 0)
		return rc;
	if (ctx.st.uidvalidity == 0) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s sent no UIDVALIDITY for a folder",
			    conn->account.host);
		return -EPROTO;
	}
	conn->selected = g_strdup(mailbox);
	conn->state = ctx.st;
	if (state)
		*state = ctx.st;
	return 0;
}

int imap_conn_examine(ImapConn *conn, const char *mailbox,
		      ImapMailboxState *state, GError **error)
{
	bool condstore = imap_conn_modseq_caps(conn) & IMAP_MODSEQ_CONDSTORE;

	if (conn->selected && strcmp(conn->selected, mailbox) == 0) {
		if (state)
			*state = conn->state;
		return 0;
	}
	return imap_conn_examine_with(conn, mailbox,
				      condstore ? "(CONDSTORE)" : NULL, NULL,
				      NULL, state, error);
}

unsigned imap_conn_modseq_caps(const ImapConn *conn)
{
	unsigned caps = 0;

	if (imap_conn_has_cap(conn, "CONDSTORE"))
		caps |= IMAP_MODSEQ_CONDSTORE;
	if (conn->qresync)
		caps |= IMAP_MODSEQ_QRESYNC;
	return caps;
}

static int enabled_untagged(void *user_data, ImapResponse *r)
{
	bool *on = user_data;

	if (r->name && strcmp(r->name, "ENABLED") == 0)
		for (size_t i = 0; i < r->args.len; i++)
			if (imap_value_is_atom(&r->args.items[i], "QRESYNC"))
				*on = true;
	return 0;
}

const char *imap_conn_selected(const ImapConn *conn)
{
	return conn->selected;
}

/* ---- connection set-up ---- */

static int read_greeting(ImapConn *conn, bool *preauth, GError **error)
{
	ImapResponse *r = NULL;
	int rc = next_response(conn, &r, error);

	if (rc < 0)
		return rc;
	*preauth = false;
	if (r->kind != IMAP_RESPONSE_UNTAGGED ||
	    (r->status != IMAP_STATUS_OK && r->status != IMAP_STATUS_PREAUTH)) {
		note_refusal(conn, r);
		imap_transport_fail(&conn->t, error,
				    imap_text_is_throttling(r->code, r->text)
					? IMAP_ERROR_THROTTLED
					: IMAP_ERROR_CLOSED,
				    "%s:%u refused the connection: %s",
				    conn->account.host, conn->account.port,
				    r->text && *r->text ? r->text
							: "no IMAP greeting");
		imap_response_free(r);
		return -ECONNREFUSED;
	}
	*preauth = r->status == IMAP_STATUS_PREAUTH;
	/* Servers known by their greeting to break an extension. */
	g_strfreev(conn->disabled);
	conn->disabled = imap_quirks_disabled(conn->account.disable_extension,
					      conn->account.host, r->text);
	imap_response_free(r);
	return 0;
}

static int starttls(ImapConn *conn, GError **error)
{
	int rc;

	if (!imap_conn_has_cap(conn, "STARTTLS")) {
		imap_transport_fail(
		    &conn->t, error, IMAP_ERROR_TLS,
		    "%s does not offer STARTTLS; refusing to log in "
		    "without TLS (use imaps:// if it has implicit TLS)",
		    conn->account.host);
		return -EPROTO;
	}
	rc = imap_conn_command(conn, NULL, NULL, error, "STARTTLS");
	if (rc < 0) {
		conn->t.broken = true;
		if (error && *error)
			(*error)->code = IMAP_ERROR_TLS;
		return rc;
	}
	/* Anything the server sent after its OK was injected before the
	 * handshake: drop it, and all state learnt in clear. */
	imap_transport_drop_input(&conn->t);
	imap_parser_reset(conn->parser);
	g_ptr_array_set_size(conn->caps, 0);
	return imap_transport_start_tls(&conn->t, error);
}

static int send_id(ImapConn *conn)
{
	/* Some servers refuse SELECT before ID; it tells nothing private. */
	return imap_conn_command(conn, NULL, NULL, NULL,
				 "ID (\"name\" \"imapfs\" \"version\" \"%s\")",
				 IMAPFS_VERSION);
}

/* Without implicit TLS: STARTTLS, which must succeed before anything else
 * is said. */
static int upgrade_to_tls(ImapConn *conn, bool preauth, GError **error)
{
	int rc = 0;

	if (preauth) {
		imap_transport_fail(&conn->t, error, IMAP_ERROR_TLS,
				    "%s sent PREAUTH before STARTTLS; refusing "
				    "an unencrypted session",
				    conn->account.host);
		return -EPROTO;
	}
	if (conn->caps->len == 0)
		rc = imap_conn_command(conn, NULL, NULL, error, "CAPABILITY");
	if (rc == 0)
		rc = starttls(conn, error);
	return rc;
}

/* Socket, TLS, greeting, STARTTLS and login: a session ready for commands
 * (its capabilities not yet read again). */
static int open_session(ImapConn *conn, GError **error)
{
	bool preauth = false;
	int rc;

	rc = imap_transport_connect(&conn->t, error);
	if (rc == 0 && conn->account.implicit_tls)
		rc = imap_transport_start_tls(&conn->t, error);
	else if (rc == 0)
		rc = imap_transport_expect_plain(&conn->t, error);
	if (rc == 0)
		rc = read_greeting(conn, &preauth, error);
	conn->greeted = rc == 0;
	if (rc == 0 && !conn->account.implicit_tls)
		rc = upgrade_to_tls(conn, preauth, error);
	if (rc == 0 && !preauth) {
		if (conn->caps->len == 0)
			rc = imap_conn_command(conn, NULL, NULL, error,
					       "CAPABILITY");
		if (rc == 0)
			rc = imap_auth_login(conn, error);
	}
	return rc;
}

ImapConn *imap_conn_open(const ImapAccount *account, GError **error)
{
	return imap_conn_open_greeted(account, NULL, error);
}

ImapConn *imap_conn_open_greeted(const ImapAccount *account, bool *greeted,
				 GError **error)
{
	ImapConn *conn = g_new0(ImapConn, 1);
	ImapParserLimits limits;
	bool logged_in;
	int rc;

	conn->id = (unsigned)g_atomic_int_add(&last_conn_id, 1) + 1;
	conn->account = *account;
	imap_transport_init(&conn->t, &conn->account);
	conn->caps = g_ptr_array_new_with_free_func(g_free);
	conn->disabled = imap_quirks_disabled(account->disable_extension,
					      account->host, NULL);
	imap_parser_limits_default(&limits);
	conn->parser = imap_parser_new(&limits, &literal_trampoline, conn);

	rc = open_session(conn, error);
	logged_in = rc == 0;
	/* Capabilities may change after login; some servers send them in
	 * the OK, others only on request. */
	if (rc == 0)
		rc = imap_conn_command(conn, NULL, NULL, error, "CAPABILITY");
	if (rc == 0 && imap_conn_has_cap(conn, "ID"))
		send_id(conn);
	/* Resync by QRESYNC where offered: one EXAMINE tells what vanished. */
	if (rc == 0 && imap_conn_has_cap(conn, "QRESYNC"))
		imap_conn_command(conn, enabled_untagged, &conn->qresync, NULL,
				  "ENABLE QRESYNC");
	if (logged_in && conn->bye) {
		/* Logged in, then ended by a BYE (a kick, a restart under
		 * way): the pool tries once more rather than call the server
		 * down. */
		g_clear_error(error);
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_DROPPED,
			    "%s closed the session right after the login",
			    account->host);
		rc = -EIO;
	}
	if (rc < 0) {
		if (error && *error == NULL)
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
				    "cannot open a session with %s: %s",
				    account->host, g_strerror(-rc));
		conn->t.broken = true;
		if (greeted)
			*greeted = conn->greeted;
		imap_conn_free(conn);
		return NULL;
	}
	return conn;
}

void imap_conn_free(ImapConn *conn)
{
	if (!conn)
		return;
	if (!conn->t.broken && conn->t.fd >= 0) {
		/* Best effort, bounded: at most one timeout. */
		unsigned saved = conn->account.timeout_ms;

		conn->account.timeout_ms = MIN(saved, 2000u);
		imap_conn_command(conn, NULL, NULL, NULL, "LOGOUT");
		conn->account.timeout_ms = saved;
	}
	imap_transport_clear(&conn->t);
	imap_parser_free(conn->parser);
	g_ptr_array_unref(conn->caps);
	g_strfreev(conn->disabled);
	g_free(conn->selected);
	g_free(conn->idle_tag);
	g_free(conn->refusal);
	g_free(conn->refusal_code);
	g_free(conn);
}

/* ---- helpers for imap/search-run.c ---- */

typedef struct {
	char **chunks;
	size_t n;
	size_t next;
} Chunks;

static char *next_chunk(void *data, const ImapResponse *r)
{
	Chunks *c = data;

	return c->next < c->n ? g_strdup(c->chunks[c->next++]) : NULL;
}

int imap_conn_command_chunks(ImapConn *conn, char **chunks, size_t n,
			     ImapUntaggedFn fn, void *user_data, GError **error)
{
	g_autofree char *line = g_strdup(chunks[0]);
	Chunks c = { chunks, n, 1 };
	Batch b = { .lines = &line,
		    .fn = fn,
		    .user_data = user_data,
		    .cont = next_chunk,
		    .cont_data = &c };

	return run_one(conn, &b, error);
}

int imap_conn_batch_index(const ImapConn *conn, const char *tag)
{
	const Batch *b = conn->batch;

	if (!b || !b->tags)
		return -1;
	for (size_t i = 0; i < b->n && i < b->tags->len; i++) {
		if (tag ? strcmp(b->tags->pdata[i], tag) == 0
			: b->statuses[i] == 1)
			return (int)i;
	}
	return -1;
}

void imap_conn_forget_selected(ImapConn *conn)
{
	g_clear_pointer(&conn->selected, g_free);
}
