/* imap/quirks.h: extensions not to use with a given server, from the
 * user's list (--disable-extension) and from a built-in table of servers
 * known to advertise an extension that does not work.
 *
 * The built-in table (see imap/quirks.c), matched by host name suffix or
 * by a word of the greeting:
 *   iCloud (imap.mail.me.com, greeting "iSCREAM"): QRESYNC advertised but
 *   its VANISHED answers are wrong: resync by UID SEARCH instead.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* The names to disable for a server (upper case, g_strfreev): those of
 * user_list (words separated by spaces, commas, colons or '+'; may be NULL)
 * and the table's entries matching host or greeting (either may be NULL).
 * Logs once per process which built-in entry applied. */
char **imap_quirks_disabled(const char *user_list, const char *host,
			    const char *greeting);

/* Whether cap (upper or lower case, "QRESYNC", "COMPRESS=DEFLATE") is
 * disabled by names: a name disables the capability itself and its
 * "NAME=..." forms; CONDSTORE disabled also disables QRESYNC, which needs
 * it. */
bool imap_quirks_cap_disabled(char *const *names, const char *cap);

/* A provider that counts downloads against a cap (Gmail: gmail_ext, the
 * server offers X-GM-EXT-1, or a host under gmail.com or googlemail.com):
 * prefetch nothing there. */
bool imap_quirks_metered(const char *host, bool gmail_ext);
