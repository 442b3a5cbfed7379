/* cache/index.h: per-folder message metadata and its on-disk format.
 *
 * A folder index is an immutable image of fixed-size records sorted by UID
 * with the file names after them (see cache/index.c for the layout), plus
 * a small overlay of records changed in place since (exact sizes after a
 * fetch, flag changes). An image lives in a read-only file mapping when it
 * came from disk or from a builder that spills to a directory, so a folder
 * of a million messages costs page cache, not heap. Images are refcounted:
 * copies share them, and a mapping stays until its last copy goes.
 *
 * The decoder checks magic, version, lengths, a checksum and UID order, and
 * never trusts a length it has not checked against the buffer.
 * Thread safety: an index may be read from several threads while one
 * thread changes its overlay (the overlay has its own lock); header fields
 * and replacing the image are the owner's business. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
	uint32_t uid;
	bool
	    size_exact; /* size is the BODY[] literal length, not RFC822.SIZE */
	uint8_t flags;  /* CACHE_FLAG_* (cache/flags.h) */
	uint16_t keywords; /* interned keyword set (cache/flags.h) */
	uint64_t size;
	int64_t internaldate; /* seconds since the epoch, UTC */
	const char *name;     /* file name shown in the mount; from an index
				 it points into the index, valid while the
				 index is */
	uint64_t gid;         /* the server's id of this message in every folder
				 (X-GM-MSGID, EMAILID folded to 64 bits); 0: none */
} CacheMessage;

typedef struct CacheIndexImage CacheIndexImage;

typedef struct {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t exists;
	uint64_t highestmodseq; /* 0 when the server has no CONDSTORE */
	uint32_t name_tag;      /* which name format made the names; 0 for
				   the default (see fs/name-format.h) */
	/* private */
	CacheIndexImage *image; /* NULL when empty; shared, immutable */
	GHashTable *overlay;    /* uid -> changed record; under lock */
	guint overlay_len;      /* atomic: 0 lets readers skip the lock */
	guint generation;       /* in-place changes so far; under lock */
	GMutex lock;
} CacheFolderIndex;

enum {
	CACHE_FOLDER_NOSELECT = 1 << 0,
	CACHE_FOLDER_NOINFERIORS = 1 << 1,
	CACHE_FOLDER_NONEXISTENT = 1 << 2,
};

typedef struct {
	char *name;     /* raw server name (modified UTF-7), owned */
	char delimiter; /* '\0' when the server said NIL */
	uint32_t flags; /* CACHE_FOLDER_* */
} CacheFolderEntry;

/* An empty index. */
CacheFolderIndex *cache_folder_index_new(void);
void cache_folder_index_free(CacheFolderIndex *index);
/* A copy: shares the image, copies header and overlay. Cheap. */
CacheFolderIndex *cache_folder_index_copy(const CacheFolderIndex *index);

/* Number of messages. */
guint cache_folder_index_count(const CacheFolderIndex *index);
/* UID of message i (i < count). */
uint32_t cache_folder_index_uid_at(const CacheFolderIndex *index, guint i);
/* Message i (i < count) into *out; out->name points into the index. */
void cache_folder_index_get(const CacheFolderIndex *index, guint i,
			    CacheMessage *out);
/* The message with that uid (binary search) into *out (may be NULL),
 * and its position into *pos (may be NULL); false when absent. */
bool cache_folder_index_find(const CacheFolderIndex *index, uint32_t uid,
			     CacheMessage *out, guint *pos);
/* How many records were changed in place (the overlay's size), and a
 * number that changes with every in-place update (a copy has its
 * original's). */
guint cache_folder_index_changed(const CacheFolderIndex *index);
guint cache_folder_index_generation(const CacheFolderIndex *index);
/* In-place updates (the overlay); false when uid is not listed. */
bool cache_folder_index_set_size(CacheFolderIndex *index, uint32_t uid,
				 uint64_t size, bool exact);
bool cache_folder_index_set_flags(CacheFolderIndex *index, uint32_t uid,
				  uint8_t flags, uint16_t keywords);

/* Writes an index message by message: records must come in ascending UID
 * order. With a directory the records and names go to temp files there and
 * the result is a file mapping (heap use stays small whatever the count);
 * without one everything stays in the heap. Not thread-safe. */
typedef struct CacheIndexBuilder CacheIndexBuilder;
CacheIndexBuilder *cache_index_builder_new(const char *spill_dir);
void cache_index_builder_free(CacheIndexBuilder *b);
/* UID of the last message added, 0 when none. */
uint32_t cache_index_builder_last_uid(const CacheIndexBuilder *b);
guint cache_index_builder_count(const CacheIndexBuilder *b);
/* Append m; refused (false) when m->uid is not above the last UID, or
 * the name is too long or holds a NUL... or a write failed (the finish
 * then fails). */
bool cache_index_builder_add(CacheIndexBuilder *b, const CacheMessage *m);
/* The index (header fields from hdr: uidvalidity, uidnext, exists,
 * highestmodseq, name_tag), or NULL with error set. Frees b. */
CacheFolderIndex *cache_index_builder_finish(CacheIndexBuilder *b,
					     const CacheFolderIndex *hdr,
					     GError **error);
/* What a spilling builder holds so far, as an index (header fields from
 * hdr) that stays valid while b goes on: the files written so far are
 * mapped, nothing is copied. NULL for a builder that does not spill, or
 * on failure. */
CacheFolderIndex *cache_index_builder_snapshot(CacheIndexBuilder *b,
					       const CacheFolderIndex *hdr);
/* Write index (with its overlay) as an encoded file to the open fd
 * (empty, at offset 0), spilling names to a temp file in spill_dir;
 * 0 or -errno. */
int cache_folder_index_write_fd(const CacheFolderIndex *index, int fd,
				const char *spill_dir);
/* Map the encoded index in the open file fd (the file must not change
 * while mapped; the fd may be closed afterwards): checked like
 * cache_folder_index_decode(). */
CacheFolderIndex *cache_folder_index_map_fd(int fd, GError **error);

GBytes *cache_folder_index_encode(const CacheFolderIndex *index);
/* Checks data and copies it. */
CacheFolderIndex *cache_folder_index_decode(const void *data, size_t len,
					    GError **error);
/* The UIDVALIDITY of an encoded index from its first
 * CACHE_FOLDER_INDEX_PEEK_LEN bytes (magic and version checked, nothing
 * else: the checksum needs the whole buffer). False when those bytes are
 * not the start of an index of this version. */
#define CACHE_FOLDER_INDEX_PEEK_LEN 16
bool cache_folder_index_peek(const void *data, size_t len,
			     uint32_t *uidvalidity);

CacheFolderEntry *cache_folder_entry_new(const char *name, char delimiter,
					 uint32_t flags);
void cache_folder_entry_free(CacheFolderEntry *entry);
GBytes *cache_folder_list_encode(GPtrArray *folders);
/* Returns a GPtrArray of CacheFolderEntry* that frees its elements. */
GPtrArray *cache_folder_list_decode(const void *data, size_t len,
				    GError **error);
