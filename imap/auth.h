/* imap/auth.h: logging a connection in (internal to imap/). */
#pragma once

#include <glib.h>

#include "imap/conn.h"

/* Log in with the best mechanism the server offers: AUTHENTICATE PLAIN
 * (with SASL-IR when offered), else LOGIN unless LOGINDISABLED. Returns
 * 0; -EACCES with IMAP_ERROR_AUTH when the credentials were refused;
 * -EAGAIN with IMAP_ERROR_THROTTLED when the server is busy;
 * -EPROTONOSUPPORT or -EINVAL with IMAP_ERROR_AUTH when no mechanism can
 * carry them; -errno when the connection broke. The password never
 * appears in a log line or an error. */
int imap_auth_login(ImapConn *conn, GError **error);
