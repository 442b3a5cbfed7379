/* imap/status.c: what the server's answers mean and what of our commands
 * may be shown: the one mapping of a tagged NO or BAD to errno, the words
 * of a server that limits connections, and command lines for messages and
 * the debug log with their credentials left out.
 *
 * Pure functions: no state, no I/O but g_debug, no locking.
 */
#include "imap/status.h"

#include <errno.h>
#include <string.h>

/* Longest -d line of a response or command, in bytes (then "..."). */
#define LOG_LINE_MAX 200

static const char *status_word(ImapStatus st)
{
	switch (st) {
	case IMAP_STATUS_OK:
		return "OK";
	case IMAP_STATUS_NO:
		return "NO";
	case IMAP_STATUS_BAD:
		return "BAD";
	case IMAP_STATUS_PREAUTH:
		return "PREAUTH";
	case IMAP_STATUS_BYE:
		return "BYE";
	case IMAP_STATUS_NONE:
		break;
	}
	return NULL;
}

/* A value as the server wrote it, near enough: literals by their size
 * only (message data has no place in the log). Stops once s is long. */
static void append_value(GString *s, const ImapValue *v)
{
	if (s->len > LOG_LINE_MAX)
		return;
	switch (v->type) {
	case IMAP_VALUE_ATOM:
		g_string_append_len(s, v->str, (gssize)v->len);
		break;
	case IMAP_VALUE_STRING:
		if (v->literal) {
			g_string_append_printf(s, "{%zu}", v->len);
			break;
		}
		g_string_append_c(s, '"');
		for (size_t i = 0; i < v->len && s->len <= LOG_LINE_MAX; i++) {
			char c = v->str[i];

			if (c == '"' || c == '\\')
				g_string_append_c(s, '\\');
			g_string_append_c(s, g_ascii_isprint(c) ? c : '?');
		}
		g_string_append_c(s, '"');
		break;
	case IMAP_VALUE_NIL:
		g_string_append(s, "NIL");
		break;
	case IMAP_VALUE_LIST:
		g_string_append_c(s, '(');
		for (size_t i = 0; i < v->len && s->len <= LOG_LINE_MAX; i++) {
			if (i)
				g_string_append_c(s, ' ');
			append_value(s, &v->items[i]);
		}
		g_string_append_c(s, ')');
		break;
	case IMAP_VALUE_STREAM:
		g_string_append_printf(s, "{%" G_GUINT64_FORMAT "}",
				       v->stream.size);
		break;
	}
}

char *imap_status_format_response(const ImapResponse *r)
{
	GString *s = g_string_new(NULL);
	const char *word = status_word(r->status);

	if (r->kind == IMAP_RESPONSE_CONTINUATION) {
		g_string_append(s, "+");
	} else {
		g_string_append(s, r->tag ? r->tag : "*");
		if (r->has_number)
			g_string_append_printf(s, " %" G_GUINT64_FORMAT,
					       r->number);
		if (word)
			g_string_append_printf(s, " %s", word);
		else if (r->name)
			g_string_append_printf(s, " %s", r->name);
	}
	if (r->code) {
		g_string_append_printf(s, " [%s", r->code);
		for (size_t i = 0; i < r->code_args.len; i++) {
			g_string_append_c(s, ' ');
			append_value(s, &r->code_args.items[i]);
		}
		g_string_append_c(s, ']');
	}
	for (size_t i = 0; !word && i < r->args.len; i++) {
		g_string_append_c(s, ' ');
		append_value(s, &r->args.items[i]);
	}
	if (r->text && *r->text)
		g_string_append_printf(s, " %s", r->text);
	if (s->len > LOG_LINE_MAX) {
		g_string_truncate(s, LOG_LINE_MAX);
		g_string_append(s, "...");
	}
	return g_string_free(s, FALSE);
}

/* Log the gist of a server response for -d (no literal contents). */
void imap_status_log_response(unsigned conn_id, const ImapResponse *r)
{
	g_autofree char *line = NULL;

	if (g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN))
		return;
	line = imap_status_format_response(r);
	g_debug("[c%u] S: %s", conn_id, line);
}

/* Log a command for -d; credentials never reach the log. */
void imap_status_log_command(unsigned conn_id, const char *tag,
			     const char *line)
{
	if (imap_status_is_login(line)) {
		g_autofree char *name = imap_status_command_name(line);

		g_debug("[c%u] C: %s %s <credentials redacted>", conn_id, tag,
			name);
	} else {
		g_debug("[c%u] C: %s %.*s%s", conn_id, tag, LOG_LINE_MAX, line,
			strlen(line) > LOG_LINE_MAX ? "..." : "");
	}
}

/* The name of the command in line, for messages: its first word, and the
 * second after UID or AUTHENTICATE ("UID FETCH", "AUTHENTICATE PLAIN").
 * Arguments (credentials, mailbox names) never reach a message. */
char *imap_status_command_name(const char *line)
{
	size_t n = strcspn(line, " ");

	if ((n == 3 && g_ascii_strncasecmp(line, "UID", 3) == 0) ||
	    (n == 12 && g_ascii_strncasecmp(line, "AUTHENTICATE", 12) == 0)) {
		if (line[n] == ' ')
			n += 1 + strcspn(line + n + 1, " ");
	}
	return g_strndup(line, n);
}

/* LOGIN and AUTHENTICATE carry credentials: never logged, and a refusal
 * of them means the credentials (or a busy server), not a failed command. */
bool imap_status_is_login(const char *line)
{
	return g_str_has_prefix(line, "LOGIN ") ||
	       g_str_has_prefix(line, "AUTHENTICATE ");
}

/* The one mapping of a tagged NO or BAD to errno, by its response code:
 * -EACCES for refused credentials, -EAGAIN for a server that is busy or
 * limits us, -EIO otherwise. A refused login is -EACCES unless the server
 * says it is busy (by code or in words): then -EAGAIN. */
int imap_status_errno(const ImapResponse *r, bool login)
{
	static const char *const denied[] = { "AUTHENTICATIONFAILED",
					      "AUTHORIZATIONFAILED",
					      "EXPIRED" };
	static const char *const busy[] = { "UNAVAILABLE", "LIMIT", "INUSE" };
	int rc = -EIO;

	for (size_t i = 0; r->code && i < G_N_ELEMENTS(denied); i++)
		if (strcmp(r->code, denied[i]) == 0)
			rc = -EACCES;
	for (size_t i = 0; r->code && i < G_N_ELEMENTS(busy); i++)
		if (strcmp(r->code, busy[i]) == 0)
			rc = -EAGAIN;
	/* A download cap (Gmail's daily bandwidth limit). */
	if (r->code && strcmp(r->code, "OVERQUOTA") == 0)
		rc = -EDQUOT;
	if (!login)
		return rc;
	return rc == -EAGAIN || rc == -EDQUOT ||
		       imap_text_is_throttling(NULL, r->text)
		   ? -EAGAIN
		   : -EACCES;
}

int imap_refusal_errno(const ImapResponse *r)
{
	return imap_status_errno(r, false);
}

bool imap_code_is_server_failure(const char *code)
{
	static const char *const codes[] = { "SERVERBUG", "UNAVAILABLE",
					     "INUSE", "LIMIT", "CORRUPTION" };

	for (size_t i = 0; code && i < G_N_ELEMENTS(codes); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

bool imap_text_is_throttling(const char *code, const char *text)
{
	static const char *const words[] = {
		"too many connections",
		"maximum number of connections",
		"connection limit",
		"too many simultaneous",
		"try again later",
		/* Microsoft 365 to logins that come too fast. */
		"authenticated but not connected",
		"throttl",
		"rate limit",
		/* Gmail over its download cap refuses logins too. */
		"bandwidth limits",
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
