/* cache/index.h: per-folder message metadata and its on-disk format.
 * Pure: encode/decode do no I/O, so they are unit-tested byte by byte. The
 * decoder checks magic, version, lengths, a checksum and UID order, and never
 * trusts a length it has not checked against the buffer. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
	uint32_t uid;
	bool
	    size_exact; /* size is the BODY[] literal length, not RFC822.SIZE */
	uint8_t flags;  /* CACHE_FLAG_* (cache/flags.h) */
	uint16_t keywords; /* interned keyword set (cache/flags.h) */
	uint64_t size;
	int64_t internaldate; /* seconds since the epoch, UTC */
	char *name;           /* file name shown in the mount (owned) */
	uint64_t gid;         /* the server's id of this message in every folder
				 (X-GM-MSGID, EMAILID folded to 64 bits); 0: none */
} CacheMessage;

typedef struct {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t exists;
	uint64_t highestmodseq; /* 0 when the server has no CONDSTORE */
	uint32_t name_tag;      /* which name format made the names; 0 for
				   the default (see fs/name-format.h) */
	GArray *messages;       /* CacheMessage, sorted by uid ascending */
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

CacheFolderIndex *cache_folder_index_new(void);
void cache_folder_index_free(CacheFolderIndex *index);
/* Deep copy. */
CacheFolderIndex *cache_folder_index_copy(const CacheFolderIndex *index);
/* Message with that uid (binary search) or NULL. */
CacheMessage *cache_folder_index_find(const CacheFolderIndex *index,
				      uint32_t uid);

GBytes *cache_folder_index_encode(const CacheFolderIndex *index);
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
