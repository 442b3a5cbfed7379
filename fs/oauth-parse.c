/* fs/oauth-parse.c: what the answers of OAuth 2.0 endpoints mean, read
 * with json-glib; which endpoint addresses are acceptable; the table of
 * well-known providers.
 *
 * Pure functions: no I/O, no state, no locking. Tokens taken from an
 * answer are new strings the caller wipes (fs_oauth_tokens_clear()); no
 * message ever quotes an answer's tokens, only its error code and
 * description, cut to printable ASCII.
 */
#include "fs/oauth-parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-glib/json-glib.h>
#include <string.h>

#define OAUTH_ERROR (g_quark_from_static_string("imapfs-oauth"))

static const FsOAuthProvider providers[] = {
	{ "google", "https://oauth2.googleapis.com/token",
	  "https://oauth2.googleapis.com/device/code",
	  "https://mail.google.com/" },
	{ "microsoft",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
	  "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
	  "https://outlook.office.com/IMAP.AccessAsUser.All offline_access" },
};

const FsOAuthProvider *fs_oauth_provider(const char *name)
{
	for (size_t i = 0; name && i < G_N_ELEMENTS(providers); i++)
		if (g_ascii_strcasecmp(name, providers[i].name) == 0)
			return &providers[i];
	return NULL;
}

static void wipe_free(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		g_clear_pointer(s, g_free);
	}
}

void fs_oauth_tokens_clear(FsOAuthTokens *t)
{
	wipe_free(&t->access_token);
	wipe_free(&t->refresh_token);
	t->expires_in = 0;
}

void fs_oauth_device_clear(FsOAuthDevice *d)
{
	wipe_free(&d->device_code);
	g_clear_pointer(&d->user_code, g_free);
	g_clear_pointer(&d->verification_uri, g_free);
	g_clear_pointer(&d->verification_uri_complete, g_free);
	d->expires_in = d->interval = 0;
}

/* A string member, or NULL (also when it is not a non-empty string). */
static const char *member_string(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);
	const char *s;

	if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
	    json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	s = json_node_get_string(n);
	return s && *s ? s : NULL;
}

/* An unsigned member given as a number or a numeric string (some servers
 * quote expires_in); 0 when absent or not a number. */
static unsigned member_uint(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);
	gint64 v = 0;

	if (!n || !JSON_NODE_HOLDS_VALUE(n))
		return 0;
	if (json_node_get_value_type(n) == G_TYPE_INT64)
		v = json_node_get_int(n);
	else if (json_node_get_value_type(n) == G_TYPE_DOUBLE)
		v = (gint64)json_node_get_double(n);
	else if (json_node_get_value_type(n) == G_TYPE_STRING)
		v = g_ascii_strtoll(json_node_get_string(n), NULL, 10);
	return (unsigned)CLAMP(v, 0, G_MAXINT32);
}

/* Printable ASCII, at most 200 bytes, for a message. */
static char *printable(const char *s)
{
	GString *out = g_string_new(NULL);

	for (const char *p = s ? s : ""; *p && out->len < 200; p++)
		g_string_append_c(out, g_ascii_isprint(*p) ? *p : '?');
	return g_string_free(out, FALSE);
}

/* The answer's JSON object (a new reference), or NULL with error set. */
static JsonObject *parse_object(const char *body, size_t len, long status,
				GError **error)
{
	g_autoptr(JsonParser) parser = json_parser_new();
	JsonNode *root;

	if (len > 0 && len < 1024 * 1024 && !memchr(body, '\0', len) &&
	    json_parser_load_from_data(parser, body, (gssize)len, NULL)) {
		root = json_parser_get_root(parser);
		if (root && JSON_NODE_HOLDS_OBJECT(root))
			return json_object_ref(json_node_get_object(root));
	}
	g_set_error(error, OAUTH_ERROR, 0,
		    "the server's answer (HTTP %ld) is not an OAuth JSON "
		    "object",
		    status);
	return NULL;
}

/* The "error" of an answer: its status, and error set to its words. */
static FsOAuthStatus error_status(JsonObject *o, long http_status,
				  GError **error)
{
	static const struct {
		const char *code;
		FsOAuthStatus status;
	} codes[] = {
		{ "authorization_pending", FS_OAUTH_PENDING },
		{ "slow_down", FS_OAUTH_SLOW_DOWN },
		{ "expired_token", FS_OAUTH_EXPIRED },
		{ "access_denied", FS_OAUTH_DENIED },
	};
	const char *code = member_string(o, "error");
	g_autofree char *c = printable(code ? code : "no error code");
	g_autofree char *d = printable(member_string(o, "error_description"));
	FsOAuthStatus st = code ? FS_OAUTH_REFUSED : FS_OAUTH_MALFORMED;

	for (size_t i = 0; code && i < G_N_ELEMENTS(codes); i++)
		if (strcmp(code, codes[i].code) == 0)
			st = codes[i].status;
	g_set_error(error, OAUTH_ERROR, (int)st, "%s (HTTP %ld)%s%s", c,
		    http_status, *d ? ": " : "", d);
	return st;
}

FsOAuthStatus fs_oauth_parse_tokens(const char *body, size_t len,
				    long http_status, FsOAuthTokens *out,
				    GError **error)
{
	g_autoptr(JsonObject) o = parse_object(body, len, http_status, error);
	const char *access, *refresh, *type;

	memset(out, 0, sizeof(*out));
	if (!o)
		return FS_OAUTH_MALFORMED;
	access = member_string(o, "access_token");
	if (http_status / 100 != 2 || !access)
		return error_status(o, http_status, error);
	type = member_string(o, "token_type");
	if (type && g_ascii_strcasecmp(type, "bearer") != 0) {
		g_autofree char *t = printable(type);

		g_set_error(error, OAUTH_ERROR, FS_OAUTH_MALFORMED,
			    "the token is of type '%s', not Bearer", t);
		return FS_OAUTH_MALFORMED;
	}
	if (strpbrk(access, "\r\n\001 ")) {
		g_set_error(error, OAUTH_ERROR, FS_OAUTH_MALFORMED,
			    "the access token holds a space or control "
			    "character");
		return FS_OAUTH_MALFORMED;
	}
	out->access_token = g_strdup(access);
	refresh = member_string(o, "refresh_token");
	if (refresh && !strpbrk(refresh, "\r\n"))
		out->refresh_token = g_strdup(refresh);
	out->expires_in = member_uint(o, "expires_in");
	return FS_OAUTH_OK;
}

FsOAuthStatus fs_oauth_parse_device(const char *body, size_t len,
				    long http_status, FsOAuthDevice *out,
				    GError **error)
{
	g_autoptr(JsonObject) o = parse_object(body, len, http_status, error);
	const char *dc, *uc, *uri;

	memset(out, 0, sizeof(*out));
	if (!o)
		return FS_OAUTH_MALFORMED;
	dc = member_string(o, "device_code");
	uc = member_string(o, "user_code");
	/* Google says verification_url, RFC 8628 verification_uri. */
	uri = member_string(o, "verification_uri");
	if (!uri)
		uri = member_string(o, "verification_url");
	if (http_status / 100 != 2 || !dc || !uc || !uri)
		return error_status(o, http_status, error);
	out->device_code = g_strdup(dc);
	out->user_code = printable(uc);
	out->verification_uri = printable(uri);
	if (member_string(o, "verification_uri_complete"))
		out->verification_uri_complete =
		    printable(member_string(o, "verification_uri_complete"));
	out->expires_in = member_uint(o, "expires_in");
	if (out->expires_in == 0)
		out->expires_in = 1800;
	out->interval = CLAMP(member_uint(o, "interval"), 1, 60);
	if (!json_object_has_member(o, "interval"))
		out->interval = 5; /* RFC 8628 section 3.2 */
	return FS_OAUTH_OK;
}

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (g_ascii_strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

int fs_oauth_check_url(const char *url, GError **error)
{
	g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
	const char *scheme = uri ? g_uri_get_scheme(uri) : NULL;
	const char *host = uri ? g_uri_get_host(uri) : NULL;

	if (!scheme || !host || !*host) {
		g_set_error(error, OAUTH_ERROR, 0,
			    "%s is not an http or https address", url);
		return -EINVAL;
	}
	if (g_ascii_strcasecmp(scheme, "https") == 0)
		return 0;
	if (g_ascii_strcasecmp(scheme, "http") == 0 && is_loopback(host))
		return 0;
	g_set_error(error, OAUTH_ERROR, 0,
		    "refusing the OAuth endpoint %s: tokens travel only over "
		    "https (plain http only to this machine's loopback)",
		    url);
	return -EPERM;
}
