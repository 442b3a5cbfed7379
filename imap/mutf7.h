/* imap/mutf7.h: modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).
 * Pure functions; results are newly allocated (g_free). */
#pragma once

#include <stddef.h>

/* Decode a server mailbox name to UTF-8. Returns NULL when the input is not
 * valid modified UTF-7 (bad base64, unterminated shift, encoded printable
 * ASCII, bad UTF-16 surrogates, non-minimal "&-" misuse, 8-bit bytes).
 * Strict: raw control bytes, non-zero pad bits, two shifts back to back
 * ("&AOQ-&APY-") and U+0000 are rejected too, so that whenever decoding
 * succeeds, imap_mutf7_encode() gives the input back byte for byte. */
char *imap_mutf7_decode(const char *in, size_t len);

/* Encode UTF-8 to modified UTF-7. Returns NULL on invalid UTF-8. */
char *imap_mutf7_encode(const char *utf8, size_t len);
