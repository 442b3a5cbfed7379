/* imap/limit.h: commands over a whole folder, cut into UID ranges for
 * servers that limit how many messages one command may touch (Yahoo:
 * "NO [LIMIT]", or MESSAGELIMIT=N advertised).
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "imap/conn.h"

/* Runs one command over the UID set it is given ("5:*", "5:104"):
 * 0 or -errno with error set (-EAGAIN for NO [LIMIT]). */
typedef int (*ImapRangeFn)(ImapConn *conn, const char *uid_set, void *data,
			   GError **error);

/* fn over every UID from first on, in the selected mailbox: first as
 * "first:*" unless a limit is known; after NO [LIMIT] (or with
 * MESSAGELIMIT=N) in ranges "a:b" that halve on each further NO [LIMIT].
 * The width that worked is remembered for the next folders. A range may
 * be asked more than once, so fn must tolerate repeated answers. */
int imap_limit_ranges(ImapConn *conn, uint32_t first, ImapRangeFn fn,
		      void *data, GError **error);

/* The starting width of ranges: the advertised limit, the one learnt, or
 * half the folder's messages capped at 1000; pure, for tests. */
unsigned imap_limit_first_width(unsigned advertised, unsigned learnt,
				uint32_t exists);
