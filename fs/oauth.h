/* fs/oauth.h: requests to an OAuth 2.0 authorization server over HTTPS
 * (libcurl): refresh-token exchange (RFC 6749 section 6) and the device
 * authorization grant (RFC 8628). */
#pragma once

#include <glib.h>

#include "fs/oauth-parse.h"

/* The client and the server's endpoints; the strings are borrowed. */
typedef struct {
	const char *token_url;
	const char *device_url; /* NULL: no device grant */
	const char *client_id;
	const char *client_secret; /* NULL: a public client */
	const char *scope;         /* NULL: none sent */
	const char *cafile;        /* NULL: the system's trust store */
	unsigned timeout_s;
} FsOAuthClient;

/* Once, before any thread starts. */
void fs_oauth_global_init(void);

/* Exchange a refresh token for an access token. FS_OAUTH_OK fills out;
 * else error says why (FS_OAUTH_UNREACHABLE: no answer or HTTP 5xx). */
FsOAuthStatus fs_oauth_refresh(const FsOAuthClient *c,
			       const char *refresh_token, FsOAuthTokens *out,
			       GError **error);

/* Start a device authorization grant: FS_OAUTH_OK fills out. */
FsOAuthStatus fs_oauth_device_start(const FsOAuthClient *c, FsOAuthDevice *out,
				    GError **error);

/* Poll once for the grant's tokens: FS_OAUTH_OK fills out;
 * FS_OAUTH_PENDING and FS_OAUTH_SLOW_DOWN ask to poll again. */
FsOAuthStatus fs_oauth_device_poll(const FsOAuthClient *c,
				   const char *device_code, FsOAuthTokens *out,
				   GError **error);
