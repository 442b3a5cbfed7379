/* fs/oauth.c: the HTTP side of OAuth 2.0: form POSTs to a token or device
 * endpoint with libcurl, answers read by fs/oauth-parse.c.
 *
 * No state of its own: each request uses a curl handle of its own, so any
 * thread may call in (after fs_oauth_global_init()). Form bodies hold
 * secrets (refresh token, client secret, device code): they are wiped
 * after the request; answers, which hold tokens, too. Only https
 * endpoints are used, or http on loopback (fs_oauth_check_url()); no
 * redirect is followed, and only http and https are allowed at all.
 */
#include "fs/oauth.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#define OAUTH_ERROR (g_quark_from_static_string("imapfs-oauth"))
/* An answer larger than this is not a token answer. */
#define ANSWER_MAX (64 * 1024)

void fs_oauth_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *ptr, size_t size, size_t n, void *data)
{
	GString *body = data;
	size_t len = size * n;

	if (body->len + len > ANSWER_MAX)
		return 0; /* curl fails the transfer */
	g_string_append_len(body, ptr, (gssize)len);
	return len;
}

/* Append "&name=value", value URL-encoded; the encoded copy is wiped. */
static void form_add(GString *form, CURL *curl, const char *name,
		     const char *value)
{
	char *enc;

	if (!value)
		return;
	enc = curl_easy_escape(curl, value, 0);
	if (form->len)
		g_string_append_c(form, '&');
	g_string_append_printf(form, "%s=%s", name, enc ? enc : "");
	if (enc) {
		explicit_bzero(enc, strlen(enc));
		curl_free(enc);
	}
}

static void wipe_string(GString *s)
{
	explicit_bzero(s->str, s->allocated_len);
	g_string_free(s, TRUE);
}

/* POST the form (name, value pairs ending in NULL) to url. Returns the
 * HTTP status with *body set (the caller wipes it), or 0 with error set
 * when no answer came. */
static long post_form(const FsOAuthClient *c, const char *url,
		      const char *const *pairs, GString **body, GError **error)
{
	CURL *curl = curl_easy_init();
	GString *form = g_string_sized_new(1024);
	struct curl_slist *headers = NULL;
	char curl_err[CURL_ERROR_SIZE] = "";
	CURLcode rc;
	long status = 0;

	*body = g_string_sized_new(1024);
	if (!curl) {
		g_set_error(error, OAUTH_ERROR, 0, "cannot start libcurl");
		wipe_string(form);
		return 0;
	}
	for (size_t i = 0; pairs[i]; i += 2)
		form_add(form, curl, pairs[i], pairs[i + 1]);
	headers = curl_slist_append(headers, "Accept: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)MAX(c->timeout_s, 5u));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form->str);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)form->len);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, *body);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "imapfs");
	if (c->cafile)
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->cafile);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		g_set_error(error, OAUTH_ERROR, 0, "%s: %s", url,
			    *curl_err ? curl_err : curl_easy_strerror(rc));
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	wipe_string(form);
	return status;
}

/* POST pairs to url and parse the answer as tokens. */
static FsOAuthStatus token_request(const FsOAuthClient *c, const char *url,
				   const char *const *pairs, FsOAuthTokens *out,
				   GError **error)
{
	GString *body = NULL;
	long status;
	FsOAuthStatus st;

	memset(out, 0, sizeof(*out));
	if (fs_oauth_check_url(url, error) < 0)
		return FS_OAUTH_REFUSED;
	status = post_form(c, url, pairs, &body, error);
	if (status == 0) {
		st = FS_OAUTH_UNREACHABLE;
	} else {
		st = fs_oauth_parse_tokens(body->str, body->len, status, out,
					   error);
		if (st == FS_OAUTH_MALFORMED && status >= 500)
			st = FS_OAUTH_UNREACHABLE;
	}
	wipe_string(body);
	return st;
}

FsOAuthStatus fs_oauth_refresh(const FsOAuthClient *c,
			       const char *refresh_token, FsOAuthTokens *out,
			       GError **error)
{
	const char *pairs[] = { "grant_type",
				"refresh_token",
				"refresh_token",
				refresh_token,
				"client_id",
				c->client_id,
				"client_secret",
				c->client_secret,
				"scope",
				c->scope,
				NULL };

	/* Unset optional values end the list early: put them last and
	 * drop the NULL ones. */
	const char *list[G_N_ELEMENTS(pairs)];
	size_t n = 0;

	for (size_t i = 0; pairs[i]; i += 2)
		if (pairs[i + 1]) {
			list[n++] = pairs[i];
			list[n++] = pairs[i + 1];
		}
	list[n] = NULL;
	return token_request(c, c->token_url, list, out, error);
}

FsOAuthStatus fs_oauth_device_start(const FsOAuthClient *c, FsOAuthDevice *out,
				    GError **error)
{
	const char *pairs[] = { "client_id", c->client_id, "scope", c->scope,
				NULL };
	GString *body = NULL;
	long status;
	FsOAuthStatus st;

	memset(out, 0, sizeof(*out));
	if (!c->device_url) {
		g_set_error(error, OAUTH_ERROR, 0,
			    "no device authorization endpoint: set "
			    "--oauth-device-url or --provider");
		return FS_OAUTH_REFUSED;
	}
	if (fs_oauth_check_url(c->device_url, error) < 0)
		return FS_OAUTH_REFUSED;
	if (!c->scope)
		pairs[2] = NULL;
	status = post_form(c, c->device_url, pairs, &body, error);
	if (status == 0)
		st = FS_OAUTH_UNREACHABLE;
	else
		st = fs_oauth_parse_device(body->str, body->len, status, out,
					   error);
	wipe_string(body);
	return st;
}

FsOAuthStatus fs_oauth_device_poll(const FsOAuthClient *c,
				   const char *device_code, FsOAuthTokens *out,
				   GError **error)
{
	const char *pairs[] = {
		"grant_type",
		"urn:ietf:params:oauth:grant-type:device_code",
		"device_code",
		device_code,
		"client_id",
		c->client_id,
		c->client_secret ? "client_secret" : NULL,
		c->client_secret,
		NULL,
	};

	return token_request(c, c->token_url, pairs, out, error);
}
