/* fs/names.h: the file and directory names the mount shows. Pure functions.
 *
 * Message files are "<UID> <subject>.eml": the decimal UID, a space, the
 * subject decoded (RFC 2047 encoded words, any charset GLib can convert) and
 * sanitised, then ".eml". Folder components are the decoded server names,
 * escaped where they are not safe as file names. All results are valid UTF-8,
 * contain no '/', NUL or control characters, and are at most 255 bytes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_NAME_MAX 255

/* File name for message uid. subject is the raw Subject header value (may be
 * NULL, folded, RFC 2047 encoded, or raw 8-bit in an unknown charset). The
 * result depends only on (uid, subject), so it is stable. g_free it. */
char *fs_name_for_message(uint32_t uid, const char *subject, size_t len);

/* The subject part of a message file name: subject decoded and sanitised,
 * "" when nothing is left. charset (may be NULL) is the message's declared
 * charset (its Content-Type charset), tried first for raw 8-bit bytes
 * outside encoded words; then UTF-8, then windows-1252. g_free it. */
char *fs_name_subject_part(const char *subject, size_t len,
			   const char *charset);
/* Any UTF-8 text (invalid bytes read as windows-1252) sanitised like a
 * subject. g_free it. */
char *fs_name_text_part(const char *text);

/* Parse the UID that begins a message file name: one or more decimal digits
 * (no leading zero, fitting in 32 bits, not 0) followed by a non-digit.
 * Returns true and sets *uid on success. Cheap: used by lookup to reject
 * names such as ".hidden" or "desktop.ini" without touching the server. */
bool fs_name_parse_uid(const char *name, uint32_t *uid);

/* Display name for one component of a server folder name, given as raw
 * server bytes (modified UTF-7). Decodes to UTF-8; when decoding fails the
 * raw bytes are used. Escapes '%' as "%25", and '/', control bytes (0x00-0x1f,
 * 0x7f), the UTF-8 bytes of C1 controls (U+0080-U+009F) and bytes of invalid
 * UTF-8 as "%XX" (upper-case hex). "." and ".."
 * become "%2E" and "%2E%2E"; an empty component becomes "%" (which no escaped
 * name can be). Over 255 bytes: cut at a character boundary and suffixed
 * "~" + 8 hex digits of a hash of the raw name. g_free the result. */
char *fs_name_for_folder(const char *raw, size_t len);

/* Disambiguate a name that collides with a sibling after decoding: returns
 * name + "~" + 8 hex digits of a hash of raw (cut so it stays <= 255). */
char *fs_name_disambiguate(const char *name, const char *raw, size_t raw_len);
