/* imap/fetch-parts.h: the FETCHes of the parts layout: a message's
 * structure, and one section of it, on a connection with the folder
 * EXAMINEd. Read-only: BODY.PEEK and BINARY.PEEK only. */
#pragma once

#include <stdint.h>

#include "imap/bodystructure.h"
#include "imap/conn.h"
#include "imap/ops.h"

/* UID FETCH uid (UID BODYSTRUCTURE), then, where the server offers
 * BINARY (RFC 3516), one UID FETCH of BINARY.SIZE[...] for every leaf
 * that is neither a multipart nor an attached message, so that their
 * decoded sizes are known before they are read. 0 with *out, -ENOTSUP
 * without BINARY (*out still set), -EIO (no usable answer), or the
 * command's -errno. */
int imap_fetch_structure(ImapConn *conn, uint32_t uid, ImapBodyPart **out,
			 GError **error);

/* UID FETCH uid (UID BINARY.PEEK[section]) when binary, else
 * BODY.PEEK[section] (section may be "1.2", "HEADER", "1.MIME"). The
 * answer reaches fn once, as in imap_fetch_bodies(): streamed through
 * sink when over the parser's inline limit. -EIO when the answer has no
 * such data. */
int imap_fetch_section(ImapConn *conn, uint32_t uid, const char *section,
		       bool binary, const ImapLiteralSink *sink,
		       void *sink_data, ImapBodyFn fn, void *user_data,
		       GError **error);
