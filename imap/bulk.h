/* imap/bulk.h: the listings of many small folders in one pipelined batch
 * per hundred folders on one connection, instead of an EXAMINE and a UID
 * FETCH round trip each. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/conn.h"
#include "imap/ops.h"

typedef struct {
	const char *mailbox;    /* raw server name (in, borrowed) */
	bool fetch;             /* list its messages too (false: known empty) */
	ImapMailboxState state; /* out: what its EXAMINE said */
	int status; /* out: 0 when the listing is whole, else -errno (refused,
		       the server sent no UIDVALIDITY, or mail arrived in a
		       folder not fetched) */
} ImapBulkTarget;

/* Called for each message of target i's listing (only trust them once
 * the call returned with t[i].status 0). */
typedef void (*ImapBulkMetaFn)(void *user_data, size_t i,
			       const ImapMessageMeta *meta);

/* For each of the n targets: EXAMINE (with CONDSTORE where offered) and,
 * when t[i].fetch, imap_fetch_meta_fields() of UIDs 1:*, sent together in
 * batches; servers answer pipelined commands in order, so each answer
 * belongs to the oldest command still waiting. Returns 0 when the
 * connection survived (see each status), else -errno with error set.
 * The connection then has no selected mailbox it knows of. */
int imap_bulk_list(ImapConn *conn, ImapBulkTarget *t, size_t n, unsigned fields,
		   ImapBulkMetaFn fn, void *user_data, GError **error);
