/* cache/index-private.h: the index format's constants and the image struct,
 * shared by cache/index.c (format, accessors) and cache/index-build.c
 * (builder, files). Not for use outside cache/index*.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cache/index.h"

#define INDEX_MAGIC "IMFSIDX1"
#define INDEX_MAGIC_LEN 8
#define INDEX_VERSION 3u
#define INDEX_HEADER_LEN 48
#define INDEX_RECORD_LEN 40
#define INDEX_CRC_LEN 4
#define INDEX_MSG_SIZE_EXACT 0x01u

/* Header offsets. */
#define HDR_VERSION 8
#define HDR_UIDVALIDITY 12
#define HDR_UIDNEXT 16
#define HDR_EXISTS 20
#define HDR_MODSEQ 24
#define HDR_COUNT 32
#define HDR_NAME_TAG 36
#define HDR_NAMES_LEN 40
#define HDR_KWCOUNT 44

/* Record offsets. */
#define REC_UID 0
#define REC_FLAGS 4
#define REC_IMAP_FLAGS 5
#define REC_KEYWORD 6
#define REC_SIZE 8
#define REC_DATE 16
#define REC_GID 24
#define REC_NAME_OFF 32
#define REC_NAME_LEN 36

struct CacheIndexImage {
	gint ref;
	const uint8_t *base; /* the whole encoded index */
	size_t len;
	bool mapped; /* munmap base, else g_free it */
	guint count;
	const uint8_t *recs;
	const char *names;
	uint32_t names_len;
	uint16_t *kw; /* local keyword number -> interned id; [0] = none */
	guint kwcount;
	void *names_map; /* a builder's snapshot: names mapped apart */
	size_t names_map_len;
};

static inline uint32_t index_load_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t index_load_u64(const uint8_t *p)
{
	return (uint64_t)index_load_u32(p) | (uint64_t)index_load_u32(p + 4)
						 << 32;
}

static inline void index_store_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void index_store_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Check an encoded index of len bytes at base (the checksum only when
 * verify_crc: a builder's own file is trusted) and describe it; the image
 * takes base (mapped: munmap'd at the end, else g_free'd) only on
 * success. */
CacheIndexImage *index_image_open(const uint8_t *base, size_t len, bool mapped,
				  bool verify_crc, GError **error);
/* An index around img (taken), header fields from img. */
CacheFolderIndex *index_from_image(CacheIndexImage *img);
