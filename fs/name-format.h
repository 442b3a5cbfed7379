/* fs/name-format.h: --name-format, the fields a message file name carries.
 *
 * A format is "{uid}" followed by any of {date}, {from}, {subject}, each
 * after a separator of literal text ("{uid} {date} {from} - {subject}").
 * {uid} comes first so that names stay unique and a lookup parses the UID
 * without asking the server; a separator may not start with a digit for
 * the same reason. A field that comes out empty takes its separator with
 * it, so the default "{uid} {subject}" gives exactly fs_name_for_message().
 * Pure; a parsed format is immutable and may be shared between threads. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_NAME_FORMAT_DEFAULT "{uid} {subject}"

typedef struct FsNameFormat FsNameFormat;

/* NULL with error set (G_OPTION_ERROR_BAD_VALUE, saying what to write)
 * when spec is not a valid format; NULL spec means the default. */
FsNameFormat *fs_name_format_parse(const char *spec, GError **error);
void fs_name_format_free(FsNameFormat *fmt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FsNameFormat, fs_name_format_free)

/* Whether the format shows {from} (the listing must then fetch From). */
bool fs_name_format_uses_from(const FsNameFormat *fmt);

/* What the listing knows of a message. Raw header values, as fetched. */
typedef struct {
	uint32_t uid;
	const char *subject; /* may be NULL */
	size_t subject_len;
	const char *content_type; /* for the declared charset; may be NULL */
	const char *from;         /* may be NULL */
	int64_t internaldate;     /* seconds since the epoch */
} FsNameFields;

/* The file name of the message. fmt NULL: fs_name_for_message(), which
 * ignores the declared charset. g_free it. */
char *fs_name_format_message(const FsNameFormat *fmt, const FsNameFields *m);

/* The charset parameter of a Content-Type value, or NULL. g_free it. */
char *fs_name_declared_charset(const char *content_type);

/* A number that differs between formats (0 for the default), kept with a
 * persisted listing: a listing made under another format is not reused. */
uint32_t fs_name_format_tag(const FsNameFormat *fmt);
