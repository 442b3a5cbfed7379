/* imap/search-run.h: running a user's search (imap/search.h) on one
 * logged-in connection, over one mailbox or many. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "imap/conn.h"

typedef struct {
	char *mailbox;        /* in: raw server name */
	GArray *uids;         /* out: uint32_t, ascending, no duplicates */
	uint32_t uidvalidity; /* out: as the server said, 0 if it did not */
	int status;           /* out: 0, or -errno for this mailbox alone
				 (it could not be opened) */
} ImapSearchTarget;

/* Search the n targets for query, in one round trip where the server
 * allows: ESEARCH IN (mailboxes ...) when it offers MULTISEARCH (RFC 7377),
 * else EXAMINE and UID SEARCH for each mailbox, pipelined (one after the
 * other only when the query needs synchronising literals). Returns 0 when
 * the server answered (see each target's status); -EINVAL when the query
 * cannot be sent or the server refused it, with error holding the reason
 * (the server's own words when it refused); another -errno with error set
 * when the connection failed. The connection's selected mailbox may
 * change. */
int imap_search_run(ImapConn *conn, const char *query,
		    ImapSearchTarget *targets, size_t n, GError **error);
