/* imap/conn.c: one IMAP connection.
 *
 * Ownership: an ImapConn owns its socket, its SSL object, its parser and
 * its receive buffer. It is used by one thread at a time, so there is no
 * locking here. The SSL_CTX is built per connection from the account.
 *
 * Invariants: nothing but STARTTLS is sent before TLS is up; bytes that
 * arrived before the TLS handshake are dropped; credentials are never
 * logged; every wait is bounded by account->timeout_ms, and a failed wait
 * marks the connection broken.
 */
#include "imap/conn.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define RECV_CHUNK 65536

/* One command sent and not yet answered: its tag, and the sink that large
 * literals of its answer go to (NULL: they are dropped). */
typedef struct {
	char *tag;
	const char *line;
	const ImapLiteralSink *sink;
	void *sink_data;
	int status; /* 1 while in flight, then 0 or a refusal's -errno */
} Command;

struct ImapConn {
	ImapAccount account;
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	ImapParser *parser;

	char *rbuf; /* received, not yet parsed: rbuf[rpos..rlen) */
	size_t rpos, rlen;

	unsigned next_tag;
	GPtrArray *caps; /* upper-cased capability atoms */
	char *selected;  /* raw name of the EXAMINEd mailbox */
	ImapMailboxState state;
	bool broken;
	gint64 last_progress;
	char *idle_tag; /* tag of the IDLE command in progress */
	bool qresync;   /* ENABLE QRESYNC succeeded */
	char *refusal;  /* text of the last NO, BAD or BYE */
	Command *cmds;  /* the commands being answered, NULL between them */
	size_t ncmds;
};

G_DEFINE_QUARK(imap - error - quark, imap_error)

static void conn_fail(ImapConn *conn, GError **error, ImapErrorCode code,
		      const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void conn_fail(ImapConn *conn, GError **error, ImapErrorCode code,
		      const char *fmt, ...)
{
	va_list ap;

	conn->broken = true;
	if (error == NULL || *error != NULL)
		return;
	va_start(ap, fmt);
	*error = g_error_new_valist(IMAP_ERROR, code, fmt, ap);
	va_end(ap);
}

/* The first OpenSSL error as text, for messages. */
static const char *ssl_error_text(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static int wait_fd(ImapConn *conn, short events, GError **error)
{
	struct pollfd pfd = { .fd = conn->fd, .events = events };
	int rc;

	do
		rc = poll(&pfd, 1, (int)conn->account.timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		conn_fail(conn, error, IMAP_ERROR_TIMEOUT,
			  "%s:%u did not answer within %.1f s",
			  conn->account.host, conn->account.port,
			  conn->account.timeout_ms / 1000.0);
		return -ETIMEDOUT;
	}
	if (rc < 0) {
		int e = errno;
		conn_fail(conn, error, IMAP_ERROR_CLOSED, "poll: %s",
			  g_strerror(e));
		return -e;
	}
	return 0;
}

/* ---- raw transport ---- */

/* After a TLS call returned r <= 0: wait for the socket when OpenSSL asks
 * for it (0: try again), else fail the connection (-errno). */
static int ssl_wait_or_fail(ImapConn *conn, int r, const char *what,
			    GError **error)
{
	int err = SSL_get_error(conn->ssl, r);

	if (err == SSL_ERROR_WANT_READ)
		return wait_fd(conn, POLLIN, error);
	if (err == SSL_ERROR_WANT_WRITE)
		return wait_fd(conn, POLLOUT, error);
	if (err == SSL_ERROR_ZERO_RETURN ||
	    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		conn_fail(conn, error, IMAP_ERROR_CLOSED,
			  "%s closed the connection", conn->account.host);
		return -ECONNRESET;
	}
	conn_fail(conn, error, IMAP_ERROR_CLOSED, "TLS %s failed: %s", what,
		  ssl_error_text());
	return -EIO;
}

/* After a plain send/recv failed with errno e: 0 to try again (after
 * waiting for events when it would block), or -errno. */
static int sock_wait_or_fail(ImapConn *conn, int e, short events,
			     const char *what, GError **error)
{
	if (e == EINTR)
		return 0;
	if (e == EAGAIN || e == EWOULDBLOCK)
		return wait_fd(conn, events, error);
	conn_fail(conn, error, IMAP_ERROR_CLOSED, "%s: %s", what,
		  g_strerror(e));
	return -e;
}

static int transport_write(ImapConn *conn, const char *buf, size_t len,
			   GError **error)
{
	while (len > 0) {
		size_t n = 0;
		int rc;

		if (conn->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write_ex(conn->ssl, buf, len, &n);
			if (r <= 0) {
				rc = ssl_wait_or_fail(conn, r, "write", error);
				if (rc < 0)
					return rc;
				continue;
			}
		} else {
			ssize_t k = send(conn->fd, buf, len, MSG_NOSIGNAL);

			if (k < 0) {
				rc = sock_wait_or_fail(conn, errno, POLLOUT,
						       "send", error);
				if (rc < 0)
					return rc;
				continue;
			}
			n = (size_t)k;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* Read at least one byte into rbuf. */
static int transport_read(ImapConn *conn, GError **error)
{
	if (conn->rpos == conn->rlen)
		conn->rpos = conn->rlen = 0;
	if (conn->rpos > 0 && conn->rlen == RECV_CHUNK) {
		memmove(conn->rbuf, conn->rbuf + conn->rpos,
			conn->rlen - conn->rpos);
		conn->rlen -= conn->rpos;
		conn->rpos = 0;
	}
	for (;;) {
		size_t room = RECV_CHUNK - conn->rlen;
		size_t n = 0;
		int rc;

		if (conn->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_read_ex(conn->ssl, conn->rbuf + conn->rlen,
					room, &n);
			if (r <= 0) {
				rc = ssl_wait_or_fail(conn, r, "read", error);
				if (rc < 0)
					return rc;
				continue;
			}
		} else {
			ssize_t k =
			    recv(conn->fd, conn->rbuf + conn->rlen, room, 0);

			if (k == 0) {
				conn_fail(conn, error, IMAP_ERROR_CLOSED,
					  "%s closed the connection",
					  conn->account.host);
				return -ECONNRESET;
			}
			if (k < 0) {
				rc = sock_wait_or_fail(conn, errno, POLLIN,
						       "recv", error);
				if (rc < 0)
					return rc;
				continue;
			}
			n = (size_t)k;
		}
		conn->rlen += n;
		/* Read by waiting callers in other threads (pool.c). */
		__atomic_store_n(&conn->last_progress, g_get_monotonic_time(),
				 __ATOMIC_RELAXED);
		return 0;
	}
}

/* ---- large literals: each to the sink of its command ---- */

/* What the parser holds for a large literal: the sink it went to (NULL:
 * dropped) and what that sink's begin() returned. */
typedef struct {
	const ImapLiteralSink *sink;
	void *sink_data;
	void *inner;
} Literal;

/* The command a literal arriving now answers: the oldest in flight that
 * has a sink (untagged data comes before its command's tagged answer). */
static const Command *literal_owner(const ImapConn *conn)
{
	for (size_t i = 0; i < conn->ncmds; i++)
		if (conn->cmds[i].status == 1 && conn->cmds[i].sink)
			return &conn->cmds[i];
	return NULL;
}

static void *literal_begin(void *user_data, uint64_t size)
{
	const Command *cmd = literal_owner(user_data);
	Literal *lit = g_new0(Literal, 1);

	if (!cmd)
		return lit; /* nobody wants the bytes */
	lit->inner = cmd->sink->begin(cmd->sink_data, size);
	if (!lit->inner) {
		g_free(lit);
		return NULL;
	}
	lit->sink = cmd->sink;
	lit->sink_data = cmd->sink_data;
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

/* Log the gist of a server response for -d (no literal contents). */
static void log_response(const ImapResponse *r)
{
	if (g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
		return;
	if (r->has_number)
		g_debug("S: * %" G_GUINT64_FORMAT " %s", r->number,
			r->name ? r->name : "");
	else
		g_debug("S: %s %s%s%s%s %s", r->tag ? r->tag : "*",
			r->name ? r->name : "", r->code ? "[" : "",
			r->code ? r->code : "", r->code ? "]" : "",
			r->text ? r->text : "");
}

/* Log a command for -d; credentials never reach the log. */
static void log_command(const char *tag, const char *line)
{
	if (g_str_has_prefix(line, "LOGIN ") ||
	    g_str_has_prefix(line, "AUTHENTICATE "))
		g_debug("C: %s %.*s <credentials redacted>", tag,
			(int)strcspn(line, " "), line);
	else
		g_debug("C: %s %s", tag, line);
}

/* Next complete response. Untagged CAPABILITY and status codes that matter
 * to the connection are noted here as well. */
static int next_response(ImapConn *conn, ImapResponse **out, GError **error)
{
	for (;;) {
		size_t used = 0;
		int rc;

		if (conn->rpos < conn->rlen) {
			rc = imap_parser_feed(
			    conn->parser, conn->rbuf + conn->rpos,
			    conn->rlen - conn->rpos, &used, out);
			conn->rpos += used;
			if (rc < 0) {
				conn_fail(conn, error, IMAP_ERROR_PROTOCOL,
					  "bad response from %s: %s",
					  conn->account.host,
					  imap_parser_error(conn->parser));
				return rc;
			}
			if (rc == 1) {
				ImapResponse *r = *out;

				log_response(r);
				if (r->name &&
				    strcmp(r->name, "CAPABILITY") == 0)
					update_caps(conn, &r->args, 0);
				if (r->code &&
				    strcmp(r->code, "CAPABILITY") == 0)
					update_caps(conn, &r->code_args, 0);
				return 0;
			}
		}
		rc = transport_read(conn, error);
		if (rc < 0)
			return rc;
	}
}

static int send_line(ImapConn *conn, const char *tag, const char *line,
		     GError **error)
{
	g_autofree char *full = g_strdup_printf("%s %s\r\n", tag, line);

	log_command(tag, line);
	return transport_write(conn, full, strlen(full), error);
}

static char *new_tag(ImapConn *conn)
{
	return g_strdup_printf("A%u", ++conn->next_tag);
}

/* The name of the command in line, for messages: its first word, and the
 * second after UID or AUTHENTICATE ("UID FETCH", "AUTHENTICATE PLAIN").
 * Arguments (credentials, mailbox names) never reach a message. */
static char *command_name(const char *line)
{
	size_t n = strcspn(line, " ");

	if ((n == 3 && g_ascii_strncasecmp(line, "UID", 3) == 0) ||
	    (n == 12 && g_ascii_strncasecmp(line, "AUTHENTICATE", 12) == 0)) {
		if (line[n] == ' ')
			n += 1 + strcspn(line + n + 1, " ");
	}
	return g_strndup(line, n);
}

static void note_refusal(ImapConn *conn, const ImapResponse *r)
{
	g_free(conn->refusal);
	conn->refusal = g_strdup(r->text && *r->text ? r->text : "");
}

const char *imap_conn_refusal_text(const ImapConn *conn)
{
	return conn->refusal ? conn->refusal : "";
}

int imap_refusal_errno(const ImapResponse *r)
{
	static const char *const denied[] = { "AUTHENTICATIONFAILED",
					      "AUTHORIZATIONFAILED",
					      "EXPIRED" };
	static const char *const busy[] = { "UNAVAILABLE", "LIMIT", "INUSE" };

	for (size_t i = 0; r->code && i < G_N_ELEMENTS(denied); i++)
		if (strcmp(r->code, denied[i]) == 0)
			return -EACCES;
	for (size_t i = 0; r->code && i < G_N_ELEMENTS(busy); i++)
		if (strcmp(r->code, busy[i]) == 0)
			return -EAGAIN;
	return -EIO;
}

bool imap_text_is_throttling(const char *code, const char *text)
{
	static const char *const words[] = {
		"too many connections", "maximum number of connections",
		"connection limit",     "too many simultaneous",
		"try again later",
	};
	g_autofree char *lower = NULL;

	if (code && (strcmp(code, "UNAVAILABLE") == 0 ||
		     strcmp(code, "LIMIT") == 0 || strcmp(code, "INUSE") == 0))
		return true;
	if (!text)
		return false;
	lower = g_ascii_strdown(text, -1);
	for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
		if (strstr(lower, words[i]))
			return true;
	return false;
}

static void fail_with_status(ImapConn *conn, const ImapResponse *r,
			     const char *line, GError **error)
{
	g_autofree char *what = command_name(line);

	note_refusal(conn, r);
	if (error == NULL || *error != NULL)
		return;
	*error = g_error_new(
	    IMAP_ERROR,
	    r->status == IMAP_STATUS_NO ? IMAP_ERROR_NO : IMAP_ERROR_BAD,
	    "%s refused by %s: %s", what, conn->account.host,
	    r->text && *r->text ? r->text : "(no reason given)");
}

/* Send cmds[0..n) at once and read until all are answered; literals go
 * to the sinks of cmds while they are in flight. */
static int run_commands(ImapConn *conn, Command *cmds, size_t n,
			ImapUntaggedFn fn, void *user_data, GError **error)
{
	g_autoptr(GString) batch = g_string_new(NULL);
	size_t pending = n;
	int fn_rc = 0;
	int rc;

	if (conn->broken) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_CLOSED,
			    "connection to %s is closed", conn->account.host);
		return -EIO;
	}
	for (size_t i = 0; i < n; i++) {
		cmds[i].tag = new_tag(conn);
		g_string_append_printf(batch, "%s %s\r\n", cmds[i].tag,
				       cmds[i].line);
		log_command(cmds[i].tag, cmds[i].line);
		cmds[i].status = 1;
	}
	rc = transport_write(conn, batch->str, batch->len, error);
	explicit_bzero(batch->str, batch->len); /* may hold credentials */
	if (rc < 0)
		return rc;

	while (pending > 0) {
		ImapResponse *r = NULL;

		rc = next_response(conn, &r, error);
		if (rc < 0)
			return rc;
		if (r->kind == IMAP_RESPONSE_TAGGED) {
			for (size_t i = 0; i < n; i++) {
				if (cmds[i].status != 1 ||
				    strcmp(cmds[i].tag, r->tag) != 0)
					continue;
				if (r->status == IMAP_STATUS_OK) {
					cmds[i].status = 0;
				} else {
					cmds[i].status = imap_refusal_errno(r);
					fail_with_status(conn, r, cmds[i].line,
							 error);
				}
				pending--;
				break;
			}
		} else if (r->kind == IMAP_RESPONSE_UNTAGGED) {
			if (r->status == IMAP_STATUS_BYE) {
				note_refusal(conn, r);
				conn_fail(
				    conn, error,
				    imap_text_is_throttling(r->code, r->text)
					? IMAP_ERROR_THROTTLED
					: IMAP_ERROR_CLOSED,
				    "%s closed the connection: %s",
				    conn->account.host, r->text);
				imap_response_free(r);
				return -ECONNRESET;
			}
			if (fn && fn_rc == 0)
				fn_rc = fn(user_data, r);
		} else {
			/* We send no synchronising literals, so a
			 * continuation request here is a protocol error. */
			conn_fail(conn, error, IMAP_ERROR_PROTOCOL,
				  "unexpected continuation request from %s",
				  conn->account.host);
			imap_response_free(r);
			return -EPROTO;
		}
		imap_response_free(r);
	}
	if (fn_rc < 0) {
		for (size_t i = 0; i < n; i++)
			if (cmds[i].status == 0)
				cmds[i].status = fn_rc;
	}
	return 0;
}

/* run_commands() with cmds published for the literal sink. */
static int run_published(ImapConn *conn, Command *cmds, size_t n,
			 ImapUntaggedFn fn, void *user_data, GError **error)
{
	int rc;

	conn->cmds = cmds;
	conn->ncmds = n;
	rc = run_commands(conn, cmds, n, fn, user_data, error);
	conn->cmds = NULL;
	conn->ncmds = 0;
	for (size_t i = 0; i < n; i++)
		g_clear_pointer(&cmds[i].tag, g_free);
	return rc;
}

int imap_conn_pipeline(ImapConn *conn, char **lines, size_t n, int *statuses,
		       ImapUntaggedFn fn, void *user_data, GError **error)
{
	g_autofree Command *cmds = g_new0(Command, MAX(n, 1));
	int rc;

	for (size_t i = 0; i < n; i++) {
		cmds[i].line = lines[i];
		cmds[i].status = 1; /* unanswered, also when nothing is sent */
	}
	rc = run_published(conn, cmds, n, fn, user_data, error);
	for (size_t i = 0; i < n; i++)
		statuses[i] = cmds[i].status;
	return rc;
}

static int command_v(ImapConn *conn, const ImapLiteralSink *sink,
		     void *sink_data, ImapUntaggedFn fn, void *user_data,
		     GError **error, const char *fmt, va_list ap)
    G_GNUC_PRINTF(7, 0);

static int command_v(ImapConn *conn, const ImapLiteralSink *sink,
		     void *sink_data, ImapUntaggedFn fn, void *user_data,
		     GError **error, const char *fmt, va_list ap)
{
	g_autofree char *line = g_strdup_vprintf(fmt, ap);
	Command cmd = { .line = line, .sink = sink, .sink_data = sink_data };
	int rc;

	rc = run_published(conn, &cmd, 1, fn, user_data, error);
	if (rc < 0)
		return rc;
	if (cmd.status < 0 && error && *error == NULL) {
		g_autofree char *what = command_name(line);

		g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s failed: %s", what, g_strerror(-cmd.status));
	}
	explicit_bzero(line, strlen(line)); /* may hold credentials */
	return cmd.status;
}

int imap_conn_command(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
		      GError **error, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = command_v(conn, NULL, NULL, fn, user_data, error, fmt, ap);
	va_end(ap);
	return rc;
}

int imap_conn_command_sink(ImapConn *conn, const ImapLiteralSink *sink,
			   void *sink_data, ImapUntaggedFn fn, void *user_data,
			   GError **error, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = command_v(conn, sink, sink_data, fn, user_data, error, fmt, ap);
	va_end(ap);
	return rc;
}

bool imap_conn_has_cap(const ImapConn *conn, const char *cap)
{
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
	return conn->broken;
}

gint64 imap_conn_last_progress(const ImapConn *conn)
{
	return __atomic_load_n(&conn->last_progress, __ATOMIC_RELAXED);
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
			fail_with_status(conn, r, "IDLE", error);
			imap_response_free(r);
			g_clear_pointer(&conn->idle_tag, g_free);
			return -EIO;
		}
		imap_response_free(r); /* untagged data before "+" */
	}
	return rc;
}

int imap_conn_idle_wait(ImapConn *conn, unsigned wait_ms, ImapUntaggedFn fn,
			void *user_data, GError **error)
{
	int got = 0;

	for (;;) {
		struct pollfd pfd = { .fd = conn->fd, .events = POLLIN };
		int rc;

		/* Hand out every complete response already buffered. */
		while (conn->rpos < conn->rlen) {
			ImapResponse *r = NULL;
			size_t used = 0;

			rc = imap_parser_feed(
			    conn->parser, conn->rbuf + conn->rpos,
			    conn->rlen - conn->rpos, &used, &r);
			conn->rpos += used;
			if (rc < 0) {
				conn_fail(conn, error, IMAP_ERROR_PROTOCOL,
					  "bad response from %s: %s",
					  conn->account.host,
					  imap_parser_error(conn->parser));
				return rc;
			}
			if (rc == 0)
				break;
			log_response(r);
			if (r->kind == IMAP_RESPONSE_UNTAGGED &&
			    r->status == IMAP_STATUS_BYE) {
				conn_fail(conn, error, IMAP_ERROR_CLOSED,
					  "%s closed the connection: %s",
					  conn->account.host, r->text);
				imap_response_free(r);
				return -ECONNRESET;
			}
			if (r->kind == IMAP_RESPONSE_UNTAGGED && fn)
				fn(user_data, r);
			imap_response_free(r);
			got = 1;
		}
		if (got)
			return 1;
		if (!(conn->ssl && SSL_pending(conn->ssl) > 0)) {
			do
				rc = poll(&pfd, 1, (int)wait_ms);
			while (rc < 0 && errno == EINTR);
			if (rc == 0)
				return 0;
		}
		rc = transport_read(conn, error);
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
	g_debug("C: DONE");
	rc = transport_write(conn, "DONE\r\n", 6, error);
	while (rc == 0) {
		ImapResponse *r = NULL;

		rc = next_response(conn, &r, error);
		if (rc < 0)
			break;
		if (r->kind == IMAP_RESPONSE_TAGGED &&
		    strcmp(r->tag, conn->idle_tag) == 0) {
			if (r->status != IMAP_STATUS_OK) {
				fail_with_status(conn, r, "IDLE", error);
				rc = -EIO;
			}
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

static int examine_untagged(void *user_data, ImapResponse *r)
{
	ImapMailboxState *st = user_data;
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
	return 0;
}

typedef struct {
	ImapMailboxState st;
	ImapUntaggedFn extra;
	void *extra_data;
} ExamineCtx;

static int examine_ctx_untagged(void *user_data, ImapResponse *r)
{
	ExamineCtx *ctx = user_data;

	examine_untagged(&ctx->st, r);
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
	if (conn->selected && strcmp(conn->selected, mailbox) == 0) {
		if (state)
			*state = conn->state;
		return 0;
	}
	return imap_conn_examine_with(
	    conn, mailbox,
	    imap_conn_has_cap(conn, "CONDSTORE") ? "(CONDSTORE)" : NULL, NULL,
	    NULL, state, error);
}

bool imap_conn_qresync(const ImapConn *conn)
{
	return conn->qresync;
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

static int tcp_connect(ImapConn *conn, GError **error)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_family = AF_UNSPEC,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char port[8];
	int last_errno = ECONNREFUSED;
	int rc;

	g_snprintf(port, sizeof(port), "%u", conn->account.port);
	rc = getaddrinfo(conn->account.host, port, &hints, &res);
	if (rc != 0) {
		conn_fail(conn, error, IMAP_ERROR_CONNECT,
			  "cannot resolve %s: %s", conn->account.host,
			  gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family,
				ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				ai->ai_protocol);
		struct pollfd pfd;
		int soerr = 0;
		socklen_t slen = sizeof(soerr);
		int one = 1;

		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
		    errno != EINPROGRESS) {
			last_errno = errno;
			close(fd);
			continue;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		do
			rc = poll(&pfd, 1, (int)conn->account.timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			last_errno = ETIMEDOUT;
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
			soerr = errno;
		if (soerr != 0) {
			last_errno = soerr;
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		conn->fd = fd;
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	conn_fail(conn, error, IMAP_ERROR_CONNECT,
		  "cannot connect to %s:%u: %s", conn->account.host,
		  conn->account.port, g_strerror(last_errno));
	return -last_errno;
}

static bool host_is_ip(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

/* What the user can do about a verification failure, if anything. */
static const char *cert_hint(long vr)
{
	switch (vr) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return " (use --cafile to trust a private CA)";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return " (the certificate names another host: check the "
		       "host in the URL)";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return " (check the server's certificate dates and this "
		       "machine's clock)";
	default:
		return "";
	}
}

static int tls_start(ImapConn *conn, GError **error)
{
	const ImapAccount *a = &conn->account;
	int rc;

	conn->ctx = SSL_CTX_new(TLS_client_method());
	if (!conn->ctx) {
		conn_fail(conn, error, IMAP_ERROR_TLS, "TLS set-up: %s",
			  ssl_error_text());
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(conn->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(conn->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!a->insecure) {
		if (a->cafile) {
			if (SSL_CTX_load_verify_locations(conn->ctx, a->cafile,
							  NULL) != 1) {
				conn_fail(conn, error, IMAP_ERROR_CERT,
					  "cannot load CA file %s: %s",
					  a->cafile, ssl_error_text());
				return -EINVAL;
			}
		} else if (SSL_CTX_set_default_verify_paths(conn->ctx) != 1) {
			conn_fail(conn, error, IMAP_ERROR_CERT,
				  "cannot load the system CA certificates: %s",
				  ssl_error_text());
			return -EINVAL;
		}
		SSL_CTX_set_verify(conn->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(conn->ctx, SSL_VERIFY_NONE, NULL);
	}

	conn->ssl = SSL_new(conn->ctx);
	if (!conn->ssl || SSL_set_fd(conn->ssl, conn->fd) != 1) {
		conn_fail(conn, error, IMAP_ERROR_TLS, "TLS set-up: %s",
			  ssl_error_text());
		return -ENOMEM;
	}
	if (!host_is_ip(a->host))
		SSL_set_tlsext_host_name(conn->ssl, a->host);
	if (!a->insecure) {
		X509_VERIFY_PARAM *param = SSL_get0_param(conn->ssl);

		X509_VERIFY_PARAM_set_hostflags(
		    param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (host_is_ip(a->host))
			rc = X509_VERIFY_PARAM_set1_ip_asc(param, a->host);
		else
			rc = SSL_set1_host(conn->ssl, a->host);
		if (rc != 1) {
			conn_fail(conn, error, IMAP_ERROR_TLS,
				  "TLS set-up for host %s failed", a->host);
			return -EINVAL;
		}
	}

	for (;;) {
		int r, err;

		ERR_clear_error();
		r = SSL_connect(conn->ssl);
		if (r == 1)
			break;
		err = SSL_get_error(conn->ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			rc = wait_fd(conn, POLLIN, error);
		else if (err == SSL_ERROR_WANT_WRITE)
			rc = wait_fd(conn, POLLOUT, error);
		else {
			long vr = SSL_get_verify_result(conn->ssl);

			if (vr != X509_V_OK)
				conn_fail(conn, error, IMAP_ERROR_CERT,
					  "certificate of %s not trusted: %s%s",
					  a->host,
					  X509_verify_cert_error_string(vr),
					  cert_hint(vr));
			else
				conn_fail(conn, error, IMAP_ERROR_TLS,
					  "TLS handshake with %s:%u failed: %s",
					  a->host, a->port, ssl_error_text());
			return -EIO;
		}
		if (rc < 0)
			return rc;
	}
	__atomic_store_n(&conn->last_progress, g_get_monotonic_time(),
			 __ATOMIC_RELAXED);
	return 0;
}

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
		conn_fail(conn, error,
			  imap_text_is_throttling(r->code, r->text)
			      ? IMAP_ERROR_THROTTLED
			      : IMAP_ERROR_CLOSED,
			  "%s:%u refused the connection: %s",
			  conn->account.host, conn->account.port,
			  r->text && *r->text ? r->text : "no IMAP greeting");
		imap_response_free(r);
		return -ECONNREFUSED;
	}
	*preauth = r->status == IMAP_STATUS_PREAUTH;
	imap_response_free(r);
	return 0;
}

static int starttls(ImapConn *conn, GError **error)
{
	int rc;

	if (!imap_conn_has_cap(conn, "STARTTLS")) {
		conn_fail(conn, error, IMAP_ERROR_TLS,
			  "%s does not offer STARTTLS; refusing to log in "
			  "without TLS (use imaps:// if it has implicit TLS)",
			  conn->account.host);
		return -EPROTO;
	}
	rc = imap_conn_command(conn, NULL, NULL, error, "STARTTLS");
	if (rc < 0) {
		conn->broken = true;
		if (error && *error)
			(*error)->code = IMAP_ERROR_TLS;
		return rc;
	}
	/* Anything the server sent after its OK was injected before the
	 * handshake: drop it, and all state learnt in clear. */
	conn->rpos = conn->rlen = 0;
	imap_parser_reset(conn->parser);
	g_ptr_array_set_size(conn->caps, 0);
	return tls_start(conn, error);
}

static int authenticate(ImapConn *conn, GError **error)
{
	const ImapAccount *a = &conn->account;
	int rc;

	if (imap_conn_has_cap(conn, "AUTH=PLAIN")) {
		size_t ulen = strlen(a->user), plen = strlen(a->password);
		size_t rawlen = ulen + plen + 2;
		g_autofree char *raw = g_malloc(rawlen);
		char *b64;

		raw[0] = '\0';
		memcpy(raw + 1, a->user, ulen);
		raw[1 + ulen] = '\0';
		memcpy(raw + 2 + ulen, a->password, plen);
		b64 = g_base64_encode((const guchar *)raw, rawlen);
		explicit_bzero(raw, rawlen);
		if (imap_conn_has_cap(conn, "SASL-IR")) {
			rc = imap_conn_command(conn, NULL, NULL, error,
					       "AUTHENTICATE PLAIN %s", b64);
		} else {
			/* Without SASL-IR: wait for the "+" before sending the
			 * initial response. */
			g_autofree char *tag = new_tag(conn);
			ImapResponse *r = NULL;

			rc = send_line(conn, tag, "AUTHENTICATE PLAIN", error);
			while (rc == 0) {
				rc = next_response(conn, &r, error);
				if (rc < 0)
					break;
				if (r->kind == IMAP_RESPONSE_CONTINUATION) {
					g_autofree char *l =
					    g_strdup_printf("%s\r\n", b64);
					imap_response_free(r);
					rc = transport_write(conn, l, strlen(l),
							     error);
					explicit_bzero(l, strlen(l));
					continue;
				}
				if (r->kind == IMAP_RESPONSE_TAGGED &&
				    strcmp(r->tag, tag) == 0) {
					if (r->status != IMAP_STATUS_OK) {
						fail_with_status(
						    conn, r,
						    "AUTHENTICATE PLAIN",
						    error);
						rc = imap_refusal_errno(r);
					}
					imap_response_free(r);
					break;
				}
				imap_response_free(r);
			}
		}
		explicit_bzero(b64, strlen(b64));
		g_free(b64);
	} else if (!imap_conn_has_cap(conn, "LOGINDISABLED")) {
		g_autofree char *qu = imap_conn_quote(conn, a->user);
		g_autofree char *qp = imap_conn_quote(conn, a->password);

		if (!qu || !qp) {
			g_set_error(
			    error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers only LOGIN, which cannot send this "
			    "user name or password",
			    a->host);
			rc = -EINVAL;
		} else {
			rc = imap_conn_command(conn, NULL, NULL, error,
					       "LOGIN %s %s", qu, qp);
			explicit_bzero(qp, strlen(qp));
		}
	} else {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers no login mechanism imapfs supports "
			    "(PLAIN or LOGIN)",
			    a->host);
		return -EPROTONOSUPPORT;
	}
	if (rc < 0 && error && *error &&
	    ((*error)->code == IMAP_ERROR_NO ||
	     (*error)->code == IMAP_ERROR_BAD)) {
		/* Built from the server's own words, not from our message
		 * (whose command line held the credentials once). */
		const char *why = imap_conn_refusal_text(conn);
		bool busy = rc == -EAGAIN || imap_text_is_throttling(NULL, why);

		g_clear_error(error);
		if (busy)
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_THROTTLED,
				    "%s is busy and refused the login for "
				    "now: %s",
				    a->host, *why ? why : "(no reason given)");
		else
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
				    "authentication failed for %s at %s: %s",
				    a->user, a->host,
				    *why ? why : "(no reason given)");
		rc = busy ? -EAGAIN : -EACCES;
	}
	return rc;
}

static int send_id(ImapConn *conn)
{
	/* Some servers refuse SELECT before ID; it tells nothing private. */
	return imap_conn_command(conn, NULL, NULL, NULL,
				 "ID (\"name\" \"imapfs\" \"version\" \"%s\")",
				 IMAPFS_VERSION);
}

ImapConn *imap_conn_open(const ImapAccount *account, GError **error)
{
	ImapConn *conn = g_new0(ImapConn, 1);
	ImapParserLimits limits;
	bool preauth = false;
	int rc;

	conn->account = *account;
	conn->fd = -1;
	conn->rbuf = g_malloc(RECV_CHUNK);
	conn->caps = g_ptr_array_new_with_free_func(g_free);
	imap_parser_limits_default(&limits);
	conn->parser = imap_parser_new(&limits, &literal_trampoline, conn);

	rc = tcp_connect(conn, error);
	if (rc == 0 && account->implicit_tls)
		rc = tls_start(conn, error);
	if (rc == 0)
		rc = read_greeting(conn, &preauth, error);
	if (rc == 0 && !account->implicit_tls) {
		if (preauth) {
			conn_fail(
			    conn, error, IMAP_ERROR_TLS,
			    "%s sent PREAUTH before STARTTLS; refusing an "
			    "unencrypted session",
			    account->host);
			rc = -EPROTO;
		}
		if (rc == 0 && conn->caps->len == 0)
			rc = imap_conn_command(conn, NULL, NULL, error,
					       "CAPABILITY");
		if (rc == 0)
			rc = starttls(conn, error);
	}
	if (rc == 0 && !preauth) {
		if (conn->caps->len == 0)
			rc = imap_conn_command(conn, NULL, NULL, error,
					       "CAPABILITY");
		if (rc == 0)
			rc = authenticate(conn, error);
	}
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
	if (rc == 0 && conn->broken)
		rc = -EIO;
	if (rc < 0) {
		if (error && *error == NULL)
			g_set_error(error, IMAP_ERROR, IMAP_ERROR_PROTOCOL,
				    "cannot open a session with %s: %s",
				    account->host, g_strerror(-rc));
		conn->broken = true;
		imap_conn_free(conn);
		return NULL;
	}
	return conn;
}

void imap_conn_free(ImapConn *conn)
{
	if (!conn)
		return;
	if (!conn->broken && conn->fd >= 0) {
		/* Best effort, bounded: at most one timeout. */
		unsigned saved = conn->account.timeout_ms;

		conn->account.timeout_ms = MIN(saved, 2000u);
		imap_conn_command(conn, NULL, NULL, NULL, "LOGOUT");
		conn->account.timeout_ms = saved;
	}
	if (conn->ssl) {
		if (!conn->broken)
			SSL_shutdown(conn->ssl);
		SSL_free(conn->ssl);
	}
	if (conn->ctx)
		SSL_CTX_free(conn->ctx);
	if (conn->fd >= 0)
		close(conn->fd);
	imap_parser_free(conn->parser);
	g_ptr_array_unref(conn->caps);
	g_free(conn->selected);
	g_free(conn->idle_tag);
	g_free(conn->refusal);
	g_free(conn->rbuf);
	g_free(conn);
}
