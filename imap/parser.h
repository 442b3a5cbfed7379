/* imap/parser.h: resumable parser for IMAP server responses (RFC 3501, 9051).
 *
 * Pure: no I/O, no globals. Fed arbitrary byte slices (splits anywhere: inside
 * "{123}", between CR and LF, inside a literal), it yields one complete
 * response at a time. Literals up to limits.inline_literal_max bytes are kept
 * in memory; larger ones are streamed to the caller's ImapLiteralSink so that
 * a 50 MB message body is never held in memory.
 *
 * Hard limits (line length, literal size, list depth, total items) turn into
 * errors, never into unbounded memory. After an error the parser is dead
 * until imap_parser_reset(): the connection must be dropped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	IMAP_VALUE_ATOM, /* atom or number; brackets kept: "BODY[]<0>", "\\Seen"
			  */
	IMAP_VALUE_STRING, /* quoted string or in-memory literal (may hold NULs)
			    */
	IMAP_VALUE_NIL,
	IMAP_VALUE_LIST,   /* parenthesised list */
	IMAP_VALUE_STREAM, /* literal streamed to the sink */
} ImapValueType;

typedef struct ImapValue ImapValue;
struct ImapValue {
	ImapValueType type;
	bool literal; /* STRING or STREAM that arrived as {N} or ~{N} */
	size_t
	    len; /* ATOM/STRING: bytes (without the added NUL); LIST: items */
	union {
		char *str;        /* ATOM/STRING: len bytes plus a NUL */
		ImapValue *items; /* LIST: array of len values */
		struct {
			void *sink; /* from ImapLiteralSink.begin; the owner may
				       take it and set this to NULL */
			uint64_t size;
		} stream;
	};
};

typedef enum {
	IMAP_RESPONSE_UNTAGGED,     /* "* ..." */
	IMAP_RESPONSE_TAGGED,       /* "A1 OK ..." */
	IMAP_RESPONSE_CONTINUATION, /* "+ ..." */
} ImapResponseKind;

typedef enum {
	IMAP_STATUS_NONE, /* untagged data such as "* 3 EXISTS" */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_PREAUTH,
	IMAP_STATUS_BYE,
} ImapStatus;

typedef struct {
	ImapResponseKind kind;
	char *tag; /* TAGGED only, else NULL */

	/* Status responses (tagged always; untagged OK/NO/BAD/PREAUTH/BYE) */
	ImapStatus status;
	char *code;          /* upper-cased response code ("UIDVALIDITY",
				"CAPABILITY", "READ-ONLY") or NULL */
	ImapValue code_args; /* LIST of the values after the code inside [ ]
				(len 0 when none); "[PERMANENTFLAGS (\\Seen)]"
				gives one LIST item */
	char *text;          /* human-readable rest of line, "" when absent;
				also the text of a CONTINUATION */

	/* Untagged data ("* 23 EXISTS", "* 4 FETCH (...)", "* LIST ...") */
	bool has_number;
	uint64_t number; /* the leading number, when has_number */
	char *name;      /* upper-cased: "EXISTS", "FETCH", "LIST",
			    "CAPABILITY", "SEARCH", "STATUS", ... */
	ImapValue args;  /* LIST of everything after name (len 0 if none) */
} ImapResponse;

/* Literals streamed to the sink in one response, at most. */
#define IMAP_PARSER_MAX_STREAMS 4

typedef struct {
	size_t max_line; /* bytes of one response outside literals; default 1
			    MiB */
	size_t inline_literal_max; /* larger literals go to the sink; default 64
				      KiB */
	uint64_t
	    max_literal;    /* largest literal accepted at all; default 4 GiB */
	unsigned max_depth; /* list nesting; default 32 */
	size_t max_items;   /* values in one response; default 1,000,000 */
} ImapParserLimits;

/* Where large literals go. All callbacks get the parser's user_data. */
typedef struct {
	/* Start a literal of size bytes. Return an opaque sink, or NULL to
	 * refuse (the parse then fails with -ENOSPC). */
	void *(*begin)(void *user_data, uint64_t size);
	/* Append bytes. Return 0 or -errno (the parse then fails with it). */
	int (*write)(void *user_data, void *sink, const void *buf, size_t len);
	/* Release a sink: called by imap_response_free() for each STREAM value
	 * whose sink was not taken, and by reset/free for a half-written one.
	 */
	void (*discard)(void *user_data, void *sink);
} ImapLiteralSink;

typedef struct ImapParser ImapParser;

/* Fills limits with the defaults listed above. */
void imap_parser_limits_default(ImapParserLimits *limits);

/* limits and sink may be NULL (defaults; no sink means literals above the
 * inline limit are an error). */
ImapParser *imap_parser_new(const ImapParserLimits *limits,
			    const ImapLiteralSink *sink, void *user_data);
void imap_parser_free(ImapParser *parser);

/* Forget all buffered state (used after STARTTLS, whose plaintext leftovers
 * must be discarded, and after a reconnect). */
void imap_parser_reset(ImapParser *parser);

/* Consume bytes from buf. Stops as soon as one response is complete.
 * Returns 1 and sets *out (caller frees with imap_response_free) when a
 * response completed, 0 when all of buf was consumed without completing one,
 * or -errno on error (-EPROTO syntax, -E2BIG a limit, or a sink error).
 * *consumed is always set to the bytes used; call again with the rest. */
int imap_parser_feed(ImapParser *parser, const char *buf, size_t len,
		     size_t *consumed, ImapResponse **out);

/* Static description of the last error, for logs; "" when none. */
const char *imap_parser_error(const ImapParser *parser);

void imap_response_free(ImapResponse *resp);

/* ---- helpers for consumers ---- */

/* Case-insensitive match of an ATOM against name. */
bool imap_value_is_atom(const ImapValue *v, const char *name);
/* ATOM made of decimal digits only, fitting in uint64. */
bool imap_value_get_u64(const ImapValue *v, uint64_t *out);
/* ATOM or STRING contents; NULL for NIL or other types. */
const char *imap_value_get_string(const ImapValue *v, size_t *len);
/* In a FETCH attribute list "(UID 5 RFC822.SIZE 10 ...)", the value after
 * the item named name (case-insensitive, exact, so "BODY[]" does not match
 * "BODY[]<0>"); NULL if absent. */
const ImapValue *imap_fetch_get(const ImapValue *list, const char *name);
/* Item i of a LIST, or NULL when out of range or not a list. */
const ImapValue *imap_list_get(const ImapValue *list, size_t i);
