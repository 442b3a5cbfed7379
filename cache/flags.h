/* cache/flags.h: a message's IMAP flags, compactly: the five system flags
 * as bits of a byte and the keywords ($Label1, $Junk ...) as a 16-bit id of
 * an interned, space-separated keyword string. A million messages then
 * cost three bytes each and no heap string, since most of them share a few
 * keyword sets.
 *
 * The keyword table is process-wide, append-only and guarded by its own
 * mutex; strings it returns live as long as the process. Id 0 is "no
 * keywords". At most CACHE_KEYWORDS_MAX distinct sets are kept: beyond
 * that a set is recorded as CACHE_KEYWORDS_OVERFLOW (shown as nothing)
 * so that a hostile server cannot grow memory without bound. */
#pragma once

#include <glib.h>
#include <stdint.h>

enum {
	CACHE_FLAG_SEEN = 1 << 0,
	CACHE_FLAG_ANSWERED = 1 << 1,
	CACHE_FLAG_FLAGGED = 1 << 2,
	CACHE_FLAG_DRAFT = 1 << 3,
	CACHE_FLAG_DELETED = 1 << 4,
	/* Set once the server told us the flags (an index written before
	 * flags were kept has it clear). */
	CACHE_FLAG_KNOWN = 1 << 7,
};
#define CACHE_FLAGS_ALL                                                        \
	(CACHE_FLAG_SEEN | CACHE_FLAG_ANSWERED | CACHE_FLAG_FLAGGED |          \
	 CACHE_FLAG_DRAFT | CACHE_FLAG_DELETED | CACHE_FLAG_KNOWN)

#define CACHE_KEYWORDS_NONE 0
#define CACHE_KEYWORDS_MAX 16000u
#define CACHE_KEYWORDS_OVERFLOW 65535u
/* Longest keyword string kept (longer ones count as overflow). */
#define CACHE_KEYWORDS_MAX_LEN 1000u

/* The id of the keyword string kw (space-separated, as the server spelled
 * them); NULL or "" give CACHE_KEYWORDS_NONE. Thread-safe. */
uint16_t cache_keywords_intern(const char *kw);
/* The string of id ("" for NONE and unknown ids). Thread-safe; the
 * result lives as long as the process. */
const char *cache_keywords_get(uint16_t id);

/* "\Seen \Flagged $Label1": system flags first, in a fixed order, then the
 * keywords. g_free the result. */
char *cache_flags_to_string(uint8_t flags, uint16_t keywords);
