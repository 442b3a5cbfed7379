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

/* Log the gist of a server response for -d (no literal contents). */
void imap_status_log_response(const ImapResponse *r)
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
void imap_status_log_command(const char *tag, const char *line)
{
	if (imap_status_is_login(line))
		g_debug("C: %s %.*s <credentials redacted>", tag,
			(int)strcspn(line, " "), line);
	else
		g_debug("C: %s %s", tag, line);
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
