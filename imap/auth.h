/* imap/auth.h: logging a connection in (internal to imap/). */
#pragma once

#include <glib.h>

#include "imap/conn.h"

/* Log in with the account's mechanism (ImapAccount.auth), or with
 * IMAP_AUTH_AUTO the best one the server offers: with a bearer token
 * OAUTHBEARER, else XOAUTH2; with a password AUTHENTICATE PLAIN, else
 * LOGIN unless LOGINDISABLED. SASL-IR is used when offered. Returns
 * 0; -EACCES with IMAP_ERROR_AUTH when the credentials were refused;
 * -EAGAIN with IMAP_ERROR_THROTTLED when the server is busy;
 * -EPROTONOSUPPORT or -EINVAL with IMAP_ERROR_AUTH when no mechanism can
 * carry them; -errno when the connection broke. The password never
 * appears in a log line or an error. */
int imap_auth_login(ImapConn *conn, GError **error);
