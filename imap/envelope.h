/* imap/envelope.h: the ENVELOPE of a FETCH answer (RFC 3501 7.4.2), and the
 * Gmail items X-GM-LABELS, X-GM-MSGID and X-GM-THRID, as plain strings.
 * Pure: no I/O; unit-tested.
 *
 * Strings are the server's raw bytes (RFC 2047 encoded words are left for
 * the caller to decode); address lists are rendered as an RFC 5322 header
 * value ("Name <a@b>, c@d, group: e@f;") so that a MIME library can parse
 * and decode them. Each string is at most IMAP_ENVELOPE_MAX_LEN bytes and a
 * list at most IMAP_ENVELOPE_MAX_ADDRS addresses: the rest is dropped. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"

#define IMAP_ENVELOPE_MAX_LEN (64u * 1024)
#define IMAP_ENVELOPE_MAX_ADDRS 1000u

typedef struct {
	/* NULL where the server said NIL (or sent something unreadable). */
	char *date, *subject, *from, *sender, *reply_to, *to, *cc, *bcc;
	char *in_reply_to, *message_id;
	/* Gmail (X-GM-EXT-1): NULL when absent. Labels space-separated, each
	 * as the server sent it (quoted when it has spaces), mUTF-7 decoded. */
	char *gm_labels;
	char *gm_msgid, *gm_thrid; /* decimal */
} ImapEnvelope;

void imap_envelope_free(ImapEnvelope *env);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapEnvelope, imap_envelope_free)

/* From the attribute list of a FETCH answer: NULL when it has no ENVELOPE
 * list of ten items. g_free with imap_envelope_free(). */
ImapEnvelope *imap_envelope_parse(const ImapValue *fetch_list);
