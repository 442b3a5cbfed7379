/* imap/url.h: the account URL, imaps://USER@HOST[:PORT] or
 * imap://USER@HOST[:PORT]. Pure: no I/O, no global state. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
	bool implicit_tls; /* imaps:// (port 993) vs imap:// + STARTTLS (143) */
	char *user;        /* percent-decoded, no control characters */
	char *host;    /* lower case; IPv6 without brackets, zone as "%eth0" */
	uint16_t port; /* 1..65535; the scheme's default when not given */
} ImapUrl;

/* Parse text into *url, which owns its strings afterwards (free them with
 * imap_url_clear()). Returns 0, or -EINVAL with *url cleared and error set
 * in G_URI_ERROR (a one-line message for the user, "invalid URL '...': ...",
 * that never contains a password given in the URL). */
int imap_url_parse(const char *text, ImapUrl *url, GError **error);

/* Free the strings of *url and zero it; harmless on a cleared struct. */
void imap_url_clear(ImapUrl *url);

/* scheme://USER@HOST:PORT with USER percent-encoded (so it holds no ',',
 * fuse_opt's separator) and an IPv6 HOST in brackets: the mount's fsname.
 * imap_url_parse() of the result gives *url back. New string (g_free). */
char *imap_url_to_string(const ImapUrl *url);

/* scheme://USER@HOST:PORT with USER and HOST as they are: the key of the
 * account's cache. Changing it orphans every cache. New string (g_free). */
char *imap_url_account_key(const ImapUrl *url);
