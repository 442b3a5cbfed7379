/* fs/oauth-parse.h: the pure parts of OAuth 2.0: the answers of token and
 * device authorization endpoints (RFC 6749 section 5, RFC 8628 section
 * 3.2), the address rule for endpoints, and the well-known providers. */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* A token endpoint's answer. Strings are new; fs_oauth_tokens_clear()
 * wipes and frees them. */
typedef struct {
	char *access_token;
	char *refresh_token; /* NULL: the server did not rotate it */
	unsigned expires_in; /* seconds; 0 when not given */
} FsOAuthTokens;

void fs_oauth_tokens_clear(FsOAuthTokens *t);

/* A device authorization endpoint's answer (RFC 8628). */
typedef struct {
	char *device_code; /* a secret of the grant: never shown */
	char *user_code;
	char *verification_uri;
	char *verification_uri_complete; /* NULL when not given */
	unsigned expires_in;             /* seconds */
	unsigned interval;               /* seconds between polls, >= 1 */
} FsOAuthDevice;

void fs_oauth_device_clear(FsOAuthDevice *d);

/* What an OAuth error answer says, in the order a grant reacts to it. */
typedef enum {
	FS_OAUTH_OK = 0,
	FS_OAUTH_PENDING,     /* authorization_pending: poll again */
	FS_OAUTH_SLOW_DOWN,   /* slow_down: poll again, 5 s slower */
	FS_OAUTH_EXPIRED,     /* expired_token: the device code expired */
	FS_OAUTH_DENIED,      /* access_denied: the user said no */
	FS_OAUTH_REFUSED,     /* any other error: invalid_grant, ... */
	FS_OAUTH_MALFORMED,   /* not an OAuth answer at all */
	FS_OAUTH_UNREACHABLE, /* no answer, or a server error (HTTP 5xx) */
} FsOAuthStatus;

/* Parse a token endpoint's answer (body of len bytes, HTTP status
 * http_status). FS_OAUTH_OK fills out; otherwise error says what the
 * server said (its error code and description, which never hold a
 * token). */
FsOAuthStatus fs_oauth_parse_tokens(const char *body, size_t len,
				    long http_status, FsOAuthTokens *out,
				    GError **error);

/* Parse a device authorization answer: FS_OAUTH_OK fills out. */
FsOAuthStatus fs_oauth_parse_device(const char *body, size_t len,
				    long http_status, FsOAuthDevice *out,
				    GError **error);

/* 0 when url may serve tokens: https, or http to a loopback address
 * (127.0.0.0/8, ::1, localhost). Else -EPERM with error set. */
int fs_oauth_check_url(const char *url, GError **error);

/* A provider's well-known endpoints and scope. */
typedef struct {
	const char *name;
	const char *token_url;
	const char *device_url;
	const char *scope;
} FsOAuthProvider;

/* The provider called name ("google", "microsoft"), or NULL. */
const FsOAuthProvider *fs_oauth_provider(const char *name);
