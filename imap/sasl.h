/* imap/sasl.h: the SASL messages of the OAuth 2.0 mechanisms (pure). */
#pragma once

#include <glib.h>

/* Base64 of the XOAUTH2 initial response
 * "user=USER\1auth=Bearer TOKEN\1\1". Wipe and g_free it. */
char *imap_sasl_xoauth2(const char *user, const char *token);

/* Base64 of the OAUTHBEARER initial response (RFC 7628):
 * "n,a=USER,\1host=HOST\1port=PORT\1auth=Bearer TOKEN\1\1", with ',' and
 * '=' in USER escaped as "=2C" and "=3D". Wipe and g_free it. */
char *imap_sasl_oauthbearer(const char *user, const char *host, unsigned port,
			    const char *token);

/* The "status" of the JSON error a server sends, base64-encoded, in the
 * challenge after a refused token ("invalid_token", "401"). A new string
 * of printable ASCII (at most 64 bytes), or NULL when b64 holds no such
 * JSON object. */
char *imap_sasl_failure_status(const char *b64);
