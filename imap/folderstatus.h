/* imap/folderstatus.h: STATUS (RFC 3501 6.3.10) of many folders at once,
 * pipelined on one connection: how servers without NOTIFY are watched. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/conn.h"
#include "imap/parser.h"

typedef struct {
	const char *folder; /* raw name as the server wrote it */
	bool has_uidnext, has_messages, has_uidvalidity, has_modseq;
	uint32_t uidnext, messages, uidvalidity;
	uint64_t highestmodseq;
	bool changed; /* no counts: the server reported a change (EXISTS,
			 EXPUNGE) in this folder, the connection's selected
			 one */
} ImapFolderStatus;

typedef void (*ImapFolderStatusFn)(void *user_data, const ImapFolderStatus *st);

/* From an untagged "* STATUS name (ITEM n ...)": false when r is not one
 * (or its name holds a NUL byte). st->folder points into r. */
bool imap_folder_status_parse(const ImapResponse *r, ImapFolderStatus *st);

/* STATUS name (UIDNEXT MESSAGES UIDVALIDITY [HIGHESTMODSEQ where
 * CONDSTORE is offered]) for each of the n raw names, sent together;
 * NOOP instead for the folder selected on conn, whose news fn sees as
 * changed. fn sees each answer. A folder the server refuses (deleted meanwhile)
 * is skipped. 0, or -errno with error set when the connection broke. */
int imap_folder_status_many(ImapConn *conn, char *const *folders, size_t n,
			    ImapFolderStatusFn fn, void *user_data,
			    GError **error);
