/* imap/bodystructure.h: a FETCH BODYSTRUCTURE value (RFC 3501 7.4.2,
 * RFC 9051) as a tree of parts. Pure: no I/O, unit-tested and fuzzed.
 *
 * Hard limits, like every other response: nesting deeper than
 * IMAP_BODY_MAX_DEPTH, more than IMAP_BODY_MAX_PARTS parts or a string
 * longer than IMAP_BODY_MAX_STRING bytes make the whole value -E2BIG;
 * anything that is not a BODYSTRUCTURE is -EPROTO. Optional extension
 * data may be missing or malformed without failing the parse (servers
 * differ), the required fields may not.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"

#define IMAP_BODY_MAX_DEPTH 64
#define IMAP_BODY_MAX_PARTS 10000
#define IMAP_BODY_MAX_STRING 65536

typedef struct ImapBodyPart ImapBodyPart;
struct ImapBodyPart {
	char *type;        /* lower-case: "text", "multipart", "message", ... */
	char *subtype;     /* lower-case */
	char *section;     /* "1.2"; "" for a top-level multipart */
	GPtrArray *params; /* Content-Type parameters: name, value, name,
			      value... (names lower-case, values raw) */
	char *encoding;    /* lower-case Content-Transfer-Encoding, or NULL */
	uint64_t size;     /* octets of the encoded body */
	uint64_t binary_size;   /* decoded octets (BINARY.SIZE, RFC 3516) */
	bool has_binary_size;   /* set by imap_fetch_structure() */
	char *disposition;      /* lower-case "attachment", "inline", or NULL */
	GPtrArray *disp_params; /* like params */
	char *subject;          /* message/rfc822: the envelope's raw Subject */
	ImapBodyPart *message; /* message/rfc822: the attached message's body */
	GPtrArray *children;   /* multipart: ImapBodyPart* (owned) */
};

/* Parse v (the value after "BODYSTRUCTURE"). 0 with *out set (free with
 * imap_body_part_free()), -EPROTO or -E2BIG. */
int imap_bodystructure_parse(const ImapValue *v, ImapBodyPart **out);
void imap_body_part_free(ImapBodyPart *part);

/* The value of parameter name (case-insensitive) in a params array, or
 * NULL. */
const char *imap_body_param(const GPtrArray *params, const char *name);

/* Visit every leaf part (not multipart; message/rfc822 counts as a leaf
 * and its inner parts are visited too), in section order. */
void imap_body_foreach_leaf(const ImapBodyPart *part,
			    void (*fn)(const ImapBodyPart *leaf, void *data),
			    void *data);
