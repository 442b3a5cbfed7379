/* imap/auth.c: logging a connection in: the choice of mechanism (--auth),
 * the SASL PLAIN initial response, LOGIN as the fallback, XOAUTH2 and
 * OAUTHBEARER with an access token, and the message for a refusal.
 *
 * Ownership: works on a connection the caller owns, through the command
 * pipeline of conn.c (which answers the server's "+" with plain_continue()
 * when SASL-IR is not offered). No state of its own, no locking.
 *
 * Invariants: the password or access token only ever travels inside a
 * command line or a continuation answer, both wiped after use; it is never
 * logged (conn.c redacts LOGIN and AUTHENTICATE) and never put in an error: a
 * refusal is explained in the server's own words.
 */
#include "imap/auth.h"

#include <errno.h>
#include <string.h>

#include "imap/conn-private.h"
#include "imap/sasl.h"

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

/* A bearer login in progress: the initial response (sent on the first
 * "+" when SASL-IR is not offered) and what the server said after it. */
typedef struct {
	char *ir;
	bool ir_sent;
	bool oauthbearer;
	char *status; /* the failure challenge's JSON status, or NULL */
	bool failed;
} BearerState;

/* The first "+" asks for the initial response; a "+" after it carries
 * the server's JSON error, which the client acknowledges so that the
 * server can answer NO: an empty line for XOAUTH2, "\1" for OAUTHBEARER
 * (RFC 7628 section 3.2.3). */
static char *bearer_continue(void *data, const ImapResponse *r)
{
	BearerState *st = data;

	if (!st->ir_sent) {
		st->ir_sent = true;
		return g_strdup(st->ir);
	}
	st->failed = true;
	g_free(st->status);
	st->status = imap_sasl_failure_status(r->text);
	return g_strdup(st->oauthbearer ? "AQ==" : "");
}

static int auth_bearer(ImapConn *conn, bool oauthbearer, GError **error)
{
	const ImapAccount *a = imap_conn_account(conn);
	const char *mech = oauthbearer ? "OAUTHBEARER" : "XOAUTH2";
	BearerState st = { .oauthbearer = oauthbearer };
	int rc;

	st.ir = oauthbearer ? imap_sasl_oauthbearer(a->user, a->host, a->port,
						    a->password)
			    : imap_sasl_xoauth2(a->user, a->password);
	if (imap_conn_has_cap(conn, "SASL-IR")) {
		g_autofree char *line =
		    g_strdup_printf("AUTHENTICATE %s %s", mech, st.ir);

		st.ir_sent = true;
		rc = imap_conn_run(conn, line, bearer_continue, &st, error);
		explicit_bzero(line, strlen(line));
	} else {
		g_autofree char *line =
		    g_strdup_printf("AUTHENTICATE %s", mech);

		rc = imap_conn_run(conn, line, bearer_continue, &st, error);
	}
	if (rc < 0 && st.failed)
		g_debug("%s refused the access token (%s, status %s)", a->host,
			mech, st.status ? st.status : "not given");
	explicit_bzero(st.ir, strlen(st.ir));
	g_free(st.ir);
	g_free(st.status);
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
			    "authentication failed for %s at %s%s: %s", a->user,
			    a->host,
			    a->bearer ? " (the access token was refused)" : "",
			    why);
}

/* The mechanism to use by --auth and the server's capabilities, or
 * IMAP_AUTH_AUTO with error set when none fits. */
static ImapAuthMech choose_mech(ImapConn *conn, GError **error)
{
	const ImapAccount *a = imap_conn_account(conn);
	bool obearer = imap_conn_has_cap(conn, "AUTH=OAUTHBEARER");
	bool xoauth2 = imap_conn_has_cap(conn, "AUTH=XOAUTH2");

	if (a->auth != IMAP_AUTH_AUTO)
		return a->auth;
	if (a->bearer && (obearer || xoauth2))
		return obearer ? IMAP_AUTH_OAUTHBEARER : IMAP_AUTH_XOAUTH2;
	if (a->bearer)
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers neither OAUTHBEARER nor XOAUTH2: "
			    "sign in with a password instead of an OAuth "
			    "token",
			    a->host);
	else if (imap_conn_has_cap(conn, "AUTH=PLAIN"))
		return IMAP_AUTH_PLAIN;
	else if (!imap_conn_has_cap(conn, "LOGINDISABLED"))
		return IMAP_AUTH_LOGIN;
	else
		g_set_error(error, IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers no login mechanism imapfs supports "
			    "(PLAIN or LOGIN)",
			    a->host);
	return IMAP_AUTH_AUTO;
}

int imap_auth_login(ImapConn *conn, GError **error)
{
	ImapAuthMech mech = choose_mech(conn, error);
	int rc = -EPROTONOSUPPORT;

	switch (mech) {
	case IMAP_AUTH_AUTO:
		return -EPROTONOSUPPORT;
	case IMAP_AUTH_PLAIN:
		rc = auth_plain(conn, error);
		break;
	case IMAP_AUTH_LOGIN:
		rc = auth_login(conn, error);
		break;
	case IMAP_AUTH_XOAUTH2:
	case IMAP_AUTH_OAUTHBEARER:
		rc = auth_bearer(conn, mech == IMAP_AUTH_OAUTHBEARER, error);
		break;
	}
	if (rc < 0 && error && *error &&
	    ((*error)->code == IMAP_ERROR_NO ||
	     (*error)->code == IMAP_ERROR_BAD))
		explain_refusal(conn, rc, error);
	return rc;
}
