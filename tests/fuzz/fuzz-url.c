/* libFuzzer target for imap/url.c.
 *
 * The input, up to its first NUL, is a URL. Whatever parses must have a
 * user without control characters, a lower-case host, a port, and a string
 * form that holds no ',' and parses back to the same fields; whatever fails
 * must leave the struct cleared and a one-line message that never holds a
 * password the URL carried.
 *
 * Built by meson with -Dfuzzing=true (CC=clang); tests/fuzz/run.sh does it
 * and runs it on tests/fuzz/corpus-url.
 */
#include "tests/fuzz/fuzz-check.h"
#include "imap/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The parser's rule, restated: a ':' in what stands before the last '@'
 * after the scheme is a password. */
static bool carries_password(const char *text)
{
	const char *rest = strstr(text, "://");
	const char *at;

	rest = rest ? rest + 3 : text;
	at = strrchr(rest, '@');
	return at && memchr(rest, ':', (size_t)(at - rest));
}

static void check_good(const ImapUrl *url)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *string = imap_url_to_string(url);
	g_autofree char *key = imap_url_account_key(url);
	ImapUrl again;

	CHECK(url->user && *url->user && !has_control(url->user));
	CHECK(url->host && *url->host && !has_control(url->host));
	for (const char *h = url->host; *h; h++)
		CHECK(!g_ascii_isupper(*h) || strchr(url->host, '%'));
	CHECK(url->port >= 1);
	CHECK(key && g_str_has_prefix(key, url->implicit_tls ? "imaps://"
							     : "imap://"));
	CHECK(string && !strchr(string, ',') && !has_control(string));
	CHECK(imap_url_parse(string, &again, &error) == 0);
	CHECK(error == NULL);
	CHECK(again.implicit_tls == url->implicit_tls);
	CHECK(strcmp(again.user, url->user) == 0);
	CHECK(strcmp(again.host, url->host) == 0);
	CHECK(again.port == url->port);
	imap_url_clear(&again);
}

static void check_bad(const char *text, const ImapUrl *url, const GError *error)
{
	CHECK(error && error->domain == G_URI_ERROR);
	CHECK(error->message && *error->message);
	CHECK(!has_control(error->message));
	CHECK(url->user == NULL && url->host == NULL && url->port == 0);
	if (carries_password(text)) {
		CHECK(error->code == G_URI_ERROR_BAD_PASSWORD);
		CHECK(strstr(error->message, "must not contain a password"));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;
	/* An exact-size copy, so that any overread is caught by ASan. */
	g_autofree char *text = g_strndup((const char *)data, size);
	ImapUrl url;
	int r = imap_url_parse(text, &url, &error);

	if (r == 0) {
		CHECK(error == NULL);
		check_good(&url);
		imap_url_clear(&url);
	} else {
		CHECK(r == -EINVAL);
		check_bad(text, &url, error);
	}
	return 0;
}
