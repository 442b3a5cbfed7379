/* imap/search.h: a user's search query as IMAP SEARCH criteria, and the
 * SEARCH and ESEARCH answers as UIDs. Pure functions (no I/O); the
 * commands themselves are sent by imap/search-run.c.
 *
 * A query is SEARCH criteria when its first word is a search key ("FROM
 * alice SINCE 1-Jan-2024", "UNSEEN", "OR FROM a FROM b", "(...)"), checked
 * key by key: every string is re-quoted (or sent as a literal when it is
 * not ASCII, with CHARSET UTF-8 in front), every other argument must match
 * its syntax (a date, a number, a flag keyword, a UID set), so no text of
 * the user's can end the command or start another. Any other query is a
 * full-text search: TEXT "the whole query" (a query that is one quoted
 * string searches for that string). "gmail:" followed by Gmail's own
 * syntax becomes X-GM-RAW on servers that offer X-GM-EXT-1.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"

/* What the server offers that changes the criteria text. */
enum {
	IMAP_SEARCH_LITERAL_PLUS = 1 << 0,  /* LITERAL+: any "{N+}" literal */
	IMAP_SEARCH_LITERAL_MINUS = 1 << 1, /* LITERAL-: "{N+}" up to 4096 */
	IMAP_SEARCH_GMAIL = 1 << 2,         /* X-GM-EXT-1 */
};

/* Longest query accepted, in bytes. */
#define IMAP_SEARCH_QUERY_MAX 4096

/* Translate query (UTF-8, no CR, LF or NUL) into criteria for UID SEARCH
 * or ESEARCH. On success returns 0 and sets *chunks (g_ptr_array_unref)
 * to one string, or to several when synchronising literals are needed:
 * chunks[0] goes after the command name and ends with "{N}", and each
 * later chunk is sent after the server's continuation request. On
 * failure returns -EINVAL and sets *why (g_free) to a one-line reason
 * that a user can act on. */
int imap_search_compile(const char *query, unsigned caps, GPtrArray **chunks,
			char **why);

/* True when query is SEARCH criteria (starts with a search key), false
 * when it is a full-text or Gmail search. */
bool imap_search_is_criteria(const char *query);

/* Where an ESEARCH answer belongs ((TAG "A3" MAILBOX "INBOX"
 * UIDVALIDITY 7)); all unset for a plain SEARCH answer. */
typedef struct {
	char *tag;     /* NULL when absent */
	char *mailbox; /* raw server name; NULL when absent */
	uint32_t uidvalidity;
} ImapSearchSource;

void imap_search_source_clear(ImapSearchSource *src);

/* Append the UIDs of a sequence set such as "1:5,7,9:12" (either order
 * in a range, a trailing comma tolerated) to uids. Returns 0, -EPROTO for a
 * malformed set, or -E2BIG when uids would hold more than max. */
int imap_uid_set_expand(GArray *uids, const char *set, guint max);

/* Read an untagged response: for "* SEARCH 3 5 9" or "* ESEARCH (...) UID
 * ALL 3,5:9" appends the UIDs to uids (unsorted), fills src and returns 1;
 * returns 0 for any other response, -EPROTO for a malformed answer (or
 * an ESEARCH of sequence numbers), -E2BIG past a million UIDs in all. */
int imap_search_parse(const ImapResponse *r, GArray *uids,
		      ImapSearchSource *src);
