/* fs/parts-mime.h: one message as the parts layout shows it, built with
 * GMime from the message's raw bytes.
 *
 * A PartsItem tree owns its names and fds. Every decoded file is written
 * to an unlinked temp file as it is decoded (never held whole in memory,
 * but text parts, which are converted in memory). Broken mail never fails
 * the build: what cannot be decoded is shown best-effort, and the raw
 * bytes stay in message.eml.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct PartsItem PartsItem;
struct PartsItem {
	char *name; /* a sanitised file name, unique in its directory */
	bool dir;   /* an attached message (message/rfc822) */
	int fd;     /* file: size bytes at offset of fd (owned); -1 for dirs */
	uint64_t offset;
	uint64_t size;
	GPtrArray *children; /* dir: PartsItem*, in display order */
	/* A file not fetched yet (fd -1), fs/parts-lazy.c: */
	int lazy;       /* PARTS_LAZY_* */
	char *section;  /* PARTS_LAZY_SECTION, _DECODE: its MIME section */
	char *encoding; /* PARTS_LAZY_DECODE: its transfer encoding or NULL */
};

enum {
	PARTS_LAZY_NONE = 0,
	PARTS_LAZY_SECTION, /* BINARY.PEEK[section] on first read */
	PARTS_LAZY_WHOLE,   /* the whole message (message.eml) */
	/* BODY.PEEK[section] decoded here (a server without BINARY); size
	 * is not known (0) until it is fetched, on first stat or read */
	PARTS_LAZY_DECODE,
};

/* MIME nesting deeper than this is not walked (the bytes stay in
 * message.eml). */
#define PARTS_MAX_DEPTH 64

/* The tree of the message in size bytes at offset of fd (fd is not
 * taken: message.eml gets a dup of it). Temp files go to tmpdir. NULL
 * only when no temp file can be created (errno set). */
PartsItem *fs_parts_build(int fd, uint64_t offset, uint64_t size,
			  const char *tmpdir);
void fs_parts_item_free(PartsItem *item);

/* For trees built another way (fs/parts-lazy.c), with the same rules: */
/* A new item named name (taken; made unique among used, a set of the
 * names in items) appended to items. */
PartsItem *fs_parts_item_add(GPtrArray *items, GHashTable *used, char *name,
			     bool dir);
/* An unlinked temp file in dir (O_TMPFILE where it works), or -errno. */
int fs_parts_temp_file(const char *dir);

/* HTML to plain text, for text.txt of a message without a text/plain
 * part: tags dropped, <br>, <p>, <div>, <li>, <tr> and headings as line
 * breaks, script and style skipped, the common entities decoded. Pure;
 * g_free the result. */
char *fs_parts_html_to_text(const char *html, size_t len);

/* The file name for a part: name (decoded, may be NULL) sanitised (valid
 * UTF-8, no '/', no control characters, at most 255 bytes), or when
 * empty "part-SECTION.EXT" with EXT from mime_type. Pure; g_free it. */
char *fs_parts_file_name(const char *name, const char *section,
			 const char *mime_type);
