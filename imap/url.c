/* imap/url.c: the account URL parser, imaps://USER@HOST[:PORT] or
 * imap://USER@HOST[:PORT], and the two strings made back from it.
 *
 * Pure and stateless: no I/O, nothing global, every result is owned by the
 * caller. Parsing is strict so that a URL either names one account or is
 * refused with a message: a password, ';AUTH=', a path, a query or a bad
 * percent-encoding are refused rather than ignored. A password in the URL is
 * refused before anything could echo the URL into a message, and messages
 * show control characters escaped so that they stay on one line.
 * Invariant: whenever parsing succeeds, imap_url_to_string() of the result
 * parses back to the same fields (tests/fuzz/fuzz-url.c checks it).
 */
#include "imap/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define URL_FORMS "expected imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]"

static void url_error(GError **error, GUriError code, const char *shown,
		      const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* "invalid URL 'shown': " and the reason. */
static void url_error(GError **error, GUriError code, const char *shown,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_autofree char *why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, G_URI_ERROR, code, "invalid URL '%s': %s", shown,
		    why);
}

/* The URL as shown in a message: on one line. */
static char *url_for_message(const char *url)
{
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return g_strescape(url, NULL);
	return g_strdup(url);
}

/* Strict decimal port: digits only, no sign, 1..65535. */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
	unsigned long v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > 65535)
			return false;
	}
	if (v < 1)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* Percent-decode USER. Control characters would let a user name break an
 * IMAP command line, so they are refused. */
static char *decode_user(const char *raw, size_t len, const char *shown,
			 GError **error)
{
	g_autoptr(GString) out = g_string_sized_new(len);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];

		if (c == '%') {
			int hi = -1, lo = -1;

			if (i + 2 < len) {
				hi = g_ascii_xdigit_value(raw[i + 1]);
				lo = g_ascii_xdigit_value(raw[i + 2]);
			}
			if (hi < 0 || lo < 0) {
				url_error(error, G_URI_ERROR_BAD_USER, shown,
					  "bad percent-encoding in USER");
				return NULL;
			}
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '/' || c == '?' || c == '#' || c == ' ') {
			url_error(error, G_URI_ERROR_BAD_USER, shown, "%s",
				  URL_FORMS);
			return NULL;
		}
		if (c < 0x20 || c == 0x7f) {
			url_error(error, G_URI_ERROR_BAD_USER, shown,
				  "control character in USER");
			return NULL;
		}
		g_string_append_c(out, (char)c);
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

/* An IPv6 literal, optionally with a zone ("fe80::1%25eth0"). Returns the
 * host without brackets and with the zone decoded, or NULL. */
static char *parse_ipv6(const char *s, size_t len)
{
	g_autofree char *lit = g_strndup(s, len);
	char *zone = strstr(lit, "%25");
	struct in6_addr addr;

	if (zone) {
		*zone = '\0';
		zone += 3;
		if (!*zone)
			return NULL;
		for (const char *z = zone; *z; z++)
			if (!g_ascii_isalnum(*z) && !strchr("-._~", *z))
				return NULL;
	}
	if (inet_pton(AF_INET6, lit, &addr) != 1)
		return NULL;
	g_autofree char *lower = g_ascii_strdown(lit, -1);

	return zone ? g_strconcat(lower, "%", zone, NULL) : g_strdup(lower);
}

static bool host_char_ok(unsigned char c)
{
	return g_ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
	       c >= 0x80;
}

/* Sets implicit_tls and the default port; returns the text after the
 * scheme, or NULL. */
static const char *parse_scheme(const char *text, ImapUrl *url)
{
	if (g_ascii_strncasecmp(text, "imaps://", 8) == 0) {
		url->implicit_tls = true;
		url->port = 993;
		return text + 8;
	}
	if (g_ascii_strncasecmp(text, "imap://", 7) == 0) {
		url->implicit_tls = false;
		url->port = 143;
		return text + 7;
	}
	return NULL;
}

/* USER, from rest up to at (the last '@'). */
static int parse_user(const char *rest, const char *at, ImapUrl *url,
		      const char *shown, GError **error)
{
	if (!at || at == rest) {
		url_error(error, G_URI_ERROR_BAD_USER, shown,
			  "missing USER (%s)", URL_FORMS);
		return -EINVAL;
	}
	for (const char *p = rest; p + 6 <= at; p++) {
		if (g_ascii_strncasecmp(p, ";auth=", 6) == 0) {
			url_error(error, G_URI_ERROR_BAD_USER, shown,
				  "';AUTH=' is not supported");
			return -EINVAL;
		}
	}
	url->user = decode_user(rest, (size_t)(at - rest), shown, error);
	return url->user ? 0 : -EINVAL;
}

/* HOST, a name or a bracketed IPv6 literal; *end is set after it. */
static int parse_host(const char *host, ImapUrl *url, const char **end,
		      const char *shown, GError **error)
{
	const char *p;

	if (*host == '[') {
		const char *close = strchr(host, ']');

		if (close)
			url->host =
			    parse_ipv6(host + 1, (size_t)(close - host - 1));
		if (!url->host) {
			url_error(error, G_URI_ERROR_BAD_HOST, shown,
				  "bad IPv6 address");
			return -EINVAL;
		}
		*end = close + 1;
		return 0;
	}
	for (p = host; host_char_ok((unsigned char)*p); p++)
		;
	if (p == host) {
		url_error(error, G_URI_ERROR_BAD_HOST, shown,
			  "missing HOST (%s)", URL_FORMS);
		return -EINVAL;
	}
	url->host = g_ascii_strdown(host, p - host);
	*end = p;
	return 0;
}

/* What follows HOST: an optional ":PORT", then at most one '/'. */
static int parse_tail(const char *p, ImapUrl *url, const char *shown,
		      GError **error)
{
	if (*p == ':') {
		size_t len = strcspn(p + 1, "/?#");

		if (!parse_port(p + 1, len, &url->port)) {
			url_error(error, G_URI_ERROR_BAD_PORT, shown,
				  "port must be between 1 and 65535");
			return -EINVAL;
		}
		p += 1 + len;
	}
	if (*p && !strchr("/?#", *p)) {
		url_error(error, G_URI_ERROR_BAD_HOST, shown,
			  "bad character in HOST");
		return -EINVAL;
	}
	if (*p == '/')
		p++;
	if (*p) {
		url_error(error, G_URI_ERROR_BAD_PATH, shown,
			  "nothing may follow HOST[:PORT] (%s)", URL_FORMS);
		return -EINVAL;
	}
	return 0;
}

int imap_url_parse(const char *text, ImapUrl *url, GError **error)
{
	g_autofree char *shown = url_for_message(text);
	const char *rest = strstr(text, "://");
	const char *at, *end = NULL;

	memset(url, 0, sizeof(*url));
	/* Refuse a password before anything that could echo the URL. */
	rest = rest ? rest + 3 : text;
	at = strrchr(rest, '@');
	if (at && memchr(rest, ':', (size_t)(at - rest))) {
		g_set_error_literal(error, G_URI_ERROR,
				    G_URI_ERROR_BAD_PASSWORD,
				    "the URL must not contain a password: use "
				    "--password-command or --password-file");
		return -EINVAL;
	}
	rest = parse_scheme(text, url);
	if (!rest) {
		url_error(error, G_URI_ERROR_BAD_SCHEME, shown, "%s",
			  URL_FORMS);
		return -EINVAL;
	}
	if (parse_user(rest, at, url, shown, error) < 0 ||
	    parse_host(at + 1, url, &end, shown, error) < 0 ||
	    parse_tail(end, url, shown, error) < 0) {
		imap_url_clear(url);
		return -EINVAL;
	}
	return 0;
}

void imap_url_clear(ImapUrl *url)
{
	g_free(url->user);
	g_free(url->host);
	memset(url, 0, sizeof(*url));
}

char *imap_url_to_string(const ImapUrl *url)
{
	g_autofree char *user =
	    g_uri_escape_string(url->user, "!$&'()*+=", FALSE);
	g_autofree char *host = NULL;

	if (strchr(url->host, ':')) {
		g_auto(GStrv) parts = g_strsplit(url->host, "%", 2);

		host = parts[1]
			   ? g_strdup_printf("[%s%%25%s]", parts[0], parts[1])
			   : g_strdup_printf("[%s]", parts[0]);
	} else {
		host = g_strdup(url->host);
	}
	return g_strdup_printf("%s://%s@%s:%u",
			       url->implicit_tls ? "imaps" : "imap", user, host,
			       url->port);
}

char *imap_url_account_key(const ImapUrl *url)
{
	return g_strdup_printf("%s://%s@%s:%u",
			       url->implicit_tls ? "imaps" : "imap", url->user,
			       url->host, url->port);
}
