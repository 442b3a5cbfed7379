/* tests/unit/test-oauth.c: the pure parts of OAuth 2.0 sign-in: the SASL
 * initial responses and failure challenge of imap/sasl.c; the token and
 * device answers, the endpoint rule and the provider table of
 * fs/oauth-parse.c. */
#include "fs/oauth-parse.h"
#include "imap/sasl.h"

#include <string.h>

#define TOKEN "ya29.a0AfH6SMB-tok_en"

/* Decode b64 and compare with the expected bytes (len of them). */
static void assert_b64(const char *b64, const char *want, size_t len)
{
	gsize got_len = 0;
	g_autofree guchar *got = g_base64_decode(b64, &got_len);

	g_assert_cmpmem(got, got_len, want, len);
}

static void test_xoauth2(void)
{
	static const char want[] =
	    "user=me@example.org\001auth=Bearer " TOKEN "\001\001";
	g_autofree char *b64 = imap_sasl_xoauth2("me@example.org", TOKEN);

	assert_b64(b64, want, sizeof(want) - 1);
	/* The example of Google's XOAUTH2 protocol page. */
	g_autofree char *ex =
	    imap_sasl_xoauth2("someuser@example.com",
			      "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
	g_assert_cmpstr(ex, ==,
			"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5"
			"YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZ"
			"Mjl0Q2cBAQ==");
}

static void test_oauthbearer(void)
{
	static const char want[] =
	    "n,a=user@example.com,\001host=server.example.com\001port=143"
	    "\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
	    "\001\001";
	static const char escaped[] = "n,a=a=3Db=2Cc,\001host=h\001port=993"
				      "\001auth=Bearer t\001\001";
	/* RFC 7628 section 4.1. */
	g_autofree char *b64 =
	    imap_sasl_oauthbearer("user@example.com", "server.example.com", 143,
				  "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	g_autofree char *esc = imap_sasl_oauthbearer("a=b,c", "h", 993, "t");

	assert_b64(b64, want, sizeof(want) - 1);
	assert_b64(esc, escaped, sizeof(escaped) - 1);
}

static void test_failure_status(void)
{
	static const struct {
		const char *json;
		const char *status;
	} cases[] = {
		{ "{\"status\":\"401\",\"schemes\":\"bearer\","
		  "\"scope\":\"https://mail.google.com/\"}",
		  "401" },
		{ "{\"status\":\"invalid_token\",\"scope\":\"x\"}",
		  "invalid_token" },
		{ "{\"status\":401}", "401" },
		{ "{\"schemes\":\"bearer\"}", NULL },
		{ "[\"status\"]", NULL },
		{ "{\"status\":\"a\\u0001b\"}", NULL },
		{ "{\"status\":", NULL },
		{ "not json", NULL },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *b64 = g_base64_encode(
		    (const guchar *)cases[i].json, strlen(cases[i].json));
		g_autofree char *st = imap_sasl_failure_status(b64);

		g_assert_cmpstr(st, ==, cases[i].status);
	}
	g_assert_null(imap_sasl_failure_status(""));
	g_assert_null(imap_sasl_failure_status(NULL));
	g_assert_null(imap_sasl_failure_status("!!!"));
}

static FsOAuthStatus parse_tokens(const char *body, long http,
				  FsOAuthTokens *out, GError **error)
{
	return fs_oauth_parse_tokens(body, strlen(body), http, out, error);
}

static void test_tokens(void)
{
	g_autoptr(GError) error = NULL;
	FsOAuthTokens t;

	g_assert_cmpint(parse_tokens("{\"access_token\":\"" TOKEN "\","
				     "\"token_type\":\"Bearer\","
				     "\"expires_in\":3599}",
				     200, &t, &error),
			==, FS_OAUTH_OK);
	g_assert_cmpstr(t.access_token, ==, TOKEN);
	g_assert_null(t.refresh_token);
	g_assert_cmpuint(t.expires_in, ==, 3599);
	fs_oauth_tokens_clear(&t);
	g_assert_null(t.access_token);

	/* Rotation, a quoted lifetime, a lower-case type. */
	g_assert_cmpint(parse_tokens("{\"access_token\":\"a\",\"token_type\":"
				     "\"bearer\",\"expires_in\":\"60\","
				     "\"refresh_token\":\"r2\"}",
				     200, &t, &error),
			==, FS_OAUTH_OK);
	g_assert_cmpstr(t.refresh_token, ==, "r2");
	g_assert_cmpuint(t.expires_in, ==, 60);
	fs_oauth_tokens_clear(&t);
}

static void test_token_errors(void)
{
	static const struct {
		const char *body;
		long http;
		FsOAuthStatus status;
		const char *message;
	} cases[] = {
		{ "{\"error\":\"invalid_grant\",\"error_description\":"
		  "\"Token has been expired or revoked.\"}",
		  400, FS_OAUTH_REFUSED,
		  "invalid_grant (HTTP 400): Token has been expired or "
		  "revoked." },
		{ "{\"error\":\"authorization_pending\"}", 400,
		  FS_OAUTH_PENDING, "authorization_pending (HTTP 400)" },
		{ "{\"error\":\"slow_down\"}", 400, FS_OAUTH_SLOW_DOWN, NULL },
		{ "{\"error\":\"expired_token\"}", 400, FS_OAUTH_EXPIRED,
		  NULL },
		{ "{\"error\":\"access_denied\"}", 400, FS_OAUTH_DENIED, NULL },
		/* An access token with an error status is no token. */
		{ "{\"access_token\":\"x\"}", 500, FS_OAUTH_MALFORMED, NULL },
		{ "{\"access_token\":\"a b\"}", 200, FS_OAUTH_MALFORMED, NULL },
		{ "{\"access_token\":\"a\",\"token_type\":\"mac\"}", 200,
		  FS_OAUTH_MALFORMED,
		  "the token is of type 'mac', not Bearer" },
		{ "<html>502</html>", 502, FS_OAUTH_MALFORMED,
		  "the server's answer (HTTP 502) is not an OAuth JSON "
		  "object" },
		{ "", 200, FS_OAUTH_MALFORMED, NULL },
		{ "{\"error\":\"x\\n\\u0007y\"}", 400, FS_OAUTH_REFUSED,
		  "x??y (HTTP 400)" },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		FsOAuthTokens t;

		g_assert_cmpint(
		    parse_tokens(cases[i].body, cases[i].http, &t, &error), ==,
		    cases[i].status);
		g_assert_null(t.access_token);
		g_assert_nonnull(error);
		if (cases[i].message)
			g_assert_cmpstr(error->message, ==, cases[i].message);
	}
}

static void test_device(void)
{
	static const char google[] =
	    "{\"device_code\":\"AH-1Ng\",\"user_code\":\"GQVQ-JKEC\","
	    "\"verification_url\":\"https://www.google.com/device\","
	    "\"expires_in\":1800,\"interval\":5}";
	static const char rfc[] =
	    "{\"device_code\":\"d\",\"user_code\":\"WDJB-MJHT\","
	    "\"verification_uri\":\"https://example.com/device\","
	    "\"verification_uri_complete\":"
	    "\"https://example.com/device?user_code=WDJB-MJHT\"}";
	static const char refused[] = "{\"error\":\"invalid_client\"}";
	g_autoptr(GError) error = NULL;
	FsOAuthDevice d;

	g_assert_cmpint(
	    fs_oauth_parse_device(google, strlen(google), 200, &d, &error), ==,
	    FS_OAUTH_OK);
	g_assert_cmpstr(d.device_code, ==, "AH-1Ng");
	g_assert_cmpstr(d.user_code, ==, "GQVQ-JKEC");
	g_assert_cmpstr(d.verification_uri, ==,
			"https://www.google.com/device");
	g_assert_null(d.verification_uri_complete);
	g_assert_cmpuint(d.expires_in, ==, 1800);
	g_assert_cmpuint(d.interval, ==, 5);
	fs_oauth_device_clear(&d);

	/* No interval: 5 s (RFC 8628 section 3.2); no expiry: 30 min. */
	g_assert_cmpint(
	    fs_oauth_parse_device(rfc, strlen(rfc), 200, &d, &error), ==,
	    FS_OAUTH_OK);
	g_assert_cmpuint(d.interval, ==, 5);
	g_assert_cmpuint(d.expires_in, ==, 1800);
	g_assert_cmpstr(d.verification_uri_complete, ==,
			"https://example.com/device?user_code=WDJB-MJHT");
	fs_oauth_device_clear(&d);

	g_assert_cmpint(
	    fs_oauth_parse_device(refused, strlen(refused), 401, &d, &error),
	    ==, FS_OAUTH_REFUSED);
	g_assert_cmpstr(error->message, ==, "invalid_client (HTTP 401)");
	g_assert_null(d.device_code);
}

static void test_check_url(void)
{
	static const char *const good[] = {
		"https://oauth2.googleapis.com/token",
		"HTTPS://login.microsoftonline.com/common/oauth2/v2.0/token",
		"http://127.0.0.1:8080/token",
		"http://127.45.6.7/token",
		"http://localhost:1/t",
		"http://[::1]:99/token",
	};
	static const char *const bad[] = {
		"http://example.org/token",
		"http://128.0.0.1/token",
		"http://[::2]/token",
		"ftp://127.0.0.1/token",
		"file:///etc/passwd",
		"oauth2.googleapis.com/token",
		"http://localhost.example.org/token",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
		g_assert_cmpint(fs_oauth_check_url(good[i], NULL), ==, 0);
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;

		g_assert_cmpint(fs_oauth_check_url(bad[i], &error), <, 0);
		g_assert_nonnull(error);
	}
}

static void test_providers(void)
{
	const FsOAuthProvider *g = fs_oauth_provider("google");
	const FsOAuthProvider *m = fs_oauth_provider("Microsoft");

	g_assert_nonnull(g);
	g_assert_cmpstr(g->token_url, ==,
			"https://oauth2.googleapis.com/token");
	g_assert_cmpstr(g->device_url, ==,
			"https://oauth2.googleapis.com/device/code");
	g_assert_cmpstr(g->scope, ==, "https://mail.google.com/");
	g_assert_nonnull(m);
	g_assert_cmpstr(
	    m->token_url, ==,
	    "https://login.microsoftonline.com/common/oauth2/v2.0/token");
	g_assert_cmpstr(
	    m->device_url, ==,
	    "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode");
	g_assert_cmpstr(m->scope, ==,
			"https://outlook.office.com/IMAP.AccessAsUser.All "
			"offline_access");
	g_assert_null(fs_oauth_provider("yahoo"));
	g_assert_null(fs_oauth_provider(NULL));
	for (const FsOAuthProvider *p = g; p; p = p == g ? m : NULL) {
		g_assert_cmpint(fs_oauth_check_url(p->token_url, NULL), ==, 0);
		g_assert_cmpint(fs_oauth_check_url(p->device_url, NULL), ==, 0);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/sasl/xoauth2", test_xoauth2);
	g_test_add_func("/sasl/oauthbearer", test_oauthbearer);
	g_test_add_func("/sasl/failure-status", test_failure_status);
	g_test_add_func("/oauth/tokens", test_tokens);
	g_test_add_func("/oauth/token-errors", test_token_errors);
	g_test_add_func("/oauth/device", test_device);
	g_test_add_func("/oauth/check-url", test_check_url);
	g_test_add_func("/oauth/providers", test_providers);
	return g_test_run();
}
