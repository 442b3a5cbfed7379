/* imap/auth.c: logging a connection in: the choice of mechanism, the
 * SASL PLAIN initial response, LOGIN as the fallback, and the message for
 * a refusal.
 *
 * Ownership: works on a connection the caller owns, through the command
 * pipeline of conn.c (which answers the server's "+" with plain_continue()
 * when SASL-IR is not offered). No state of its own, no locking.
 *
 * Invariants: the password only ever travels inside a command line or a
 * continuation answer, both wiped after use; it is never logged (conn.c
 * redacts LOGIN and AUTHENTICATE) and never put in an error: a refusal is
 * explained in the server's own words.
 */
#include "imap/auth.h"

#include <errno.h>
#include <string.h>

#include "imap/conn-private.h"

/* Base64 of "\0user\0password" (RFC 4616). Wipe and g_free it. */
static char *plain_response(const ImapAccount *a)
{
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
	return b64;
}

/* Without SASL-IR, the server asks with "+" for the initial response. */
static char *plain_continue(void *data, const ImapResponse *r)
{
	(void)r;
	return g_strdup(data);
}

static int auth_plain(ImapConn *conn, GError **error)
{
	char *b64 = plain_response(imap_conn_account(conn));
	int rc;

	if (imap_conn_has_cap(conn, "SASL-IR")) {
		g_autofree char *line =
		    g_strdup_printf("AUTHENTICATE PLAIN %s", b64);

		rc = imap_conn_run(conn, line, NULL, NULL, error);
		explicit_bzero(line, strlen(line));
	} else {
		rc = imap_conn_run(conn, "AUTHENTICATE PLAIN", plain_continue,
				   b64, error);
	}
	explicit_bzero(b64, strlen(b64));
	g_free(b64);
	return rc;
}

static int auth_login(ImapConn *conn, GError **error)
{
	const ImapAccount *a = imap_conn_account(conn);
	g_autofree char *qu = imap_conn_quote(conn, a->user);
	g_autofree char *qp = imap_conn_quote(conn, a->password);
	g_autofree char *line = NULL;
	int rc;

	if (!qu || !qp) {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers only LOGIN, which cannot send this "
			    "user name or password",
			    a->host);
		if (qp)
			explicit_bzero(qp, strlen(qp));
		return -EINVAL;
	}
	line = g_strdup_printf("LOGIN %s %s", qu, qp);
	rc = imap_conn_run(conn, line, NULL, NULL, error);
	explicit_bzero(line, strlen(line));
	explicit_bzero(qp, strlen(qp));
	return rc;
}

/* Replace the pipeline's "LOGIN refused by ..." with a message built from
 * the server's own words (rc is -EAGAIN for a busy server, else -EACCES:
 * conn.c maps a refused login so). */
static void explain_refusal(ImapConn *conn, int rc, GError **error)
{
	const ImapAccount *a = imap_conn_account(conn);
	const char *why = imap_conn_refusal_text(conn);

	if (!*why)
		why = "(no reason given)";
	g_clear_error(error);
	if (rc == -EAGAIN)
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_THROTTLED,
			    "%s is busy and refused the login for now: %s",
			    a->host, why);
	else
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "authentication failed for %s at %s: %s", a->user,
			    a->host, why);
}

int imap_auth_login(ImapConn *conn, GError **error)
{
	int rc;

	if (imap_conn_has_cap(conn, "AUTH=PLAIN")) {
		rc = auth_plain(conn, error);
	} else if (!imap_conn_has_cap(conn, "LOGINDISABLED")) {
		rc = auth_login(conn, error);
	} else {
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers no login mechanism imapfs supports "
			    "(PLAIN or LOGIN)",
			    imap_conn_account(conn)->host);
		return -EPROTONOSUPPORT;
	}
	if (rc < 0 && error && *error &&
	    ((*error)->code == IMAP_ERROR_NO ||
	     (*error)->code == IMAP_ERROR_BAD))
		explain_refusal(conn, rc, error);
	return rc;
}
