/* cache/pack.h: the small bodies of one folder and UIDVALIDITY, appended
 * to a few pack files instead of one file each.
 *
 * Creating a file costs an inode, and on some filesystems that is slow: on
 * ext4 without a journal, after many deletions, each new inode took close
 * to a millisecond here, so a first grep over thousands of small messages
 * spent most of its time creating files. Appending to a pack costs a write.
 *
 * A pack is a directory's segments "pack-<N>" (N = 1, 2, ...), each at most
 * the pack's segment size, holding records:
 *   u32 magic "IMB1"  u32 uid  u32 len  u32 crc32c(body)
 *   u32 crc32c(the 16 bytes before)  len bytes of body
 * (little-endian). Records are appended whole by one writer at a time, so a
 * crash can only tear the last record of a segment; opening cuts a torn
 * tail off. A body's CRC is checked on its first lookup after opening, so a
 * damaged record is fetched again rather than served. A UID stored twice
 * keeps its last copy. Segments are the unit of eviction (cache/store.c).
 *
 * Thread-safe; a pack is reference-counted.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct CachePack CachePack;

#define CACHE_PACK_SEGMENT_MAX (16u << 20)
#define CACHE_PACK_BODY_MAX (1u << 20) /* larger bodies get their own file */
#define CACHE_PACK_RECORD_HEADER 20u
#define CACHE_PACK_PREFIX "pack-"

/* The pack in dir, which need not exist yet (the first put creates it).
 * Scans the segments there, cutting torn tails off. segment_max bounds a
 * segment's size (at least one record always fits). */
CachePack *cache_pack_open(const char *dir, uint64_t segment_max);
CachePack *cache_pack_ref(CachePack *pack);
void cache_pack_unref(CachePack *pack);

/* Append the body of uid (1..CACHE_PACK_BODY_MAX bytes). 0 with *segment
 * and *segment_size (the segment written and its size now), or -errno:
 * -ENOSPC or -EDQUOT when the disk is full (nothing of the record stays),
 * -ESTALE once the pack is retired. */
int cache_pack_put(CachePack *pack, uint32_t uid, const void *data, size_t len,
		   uint32_t *segment, uint64_t *segment_size);

/* Make sure the pack has a segment to append to (its directories and
 * file created), so that the first put does not wait for that. 0 or
 * -errno. */
int cache_pack_prepare(CachePack *pack);

/* Where the body of uid is: len bytes at *offset of *fd, a new fd on its
 * segment that the caller closes; *segment names that segment. -ENOENT
 * when uid is not in the pack, or its record failed its CRC check (it is
 * forgotten then). */
int cache_pack_find(CachePack *pack, uint32_t uid, int *fd, uint64_t *offset,
		    uint32_t *len, uint32_t *segment);

/* Is uid in the pack? Its bytes are neither read nor checked: a damaged
 * record is found out by the reader that wants them. */
bool cache_pack_has(CachePack *pack, uint32_t uid);

/* The body of uid, read and checked in one go (for a caller that wants
 * the bytes, not an fd). 0 with *out, or -ENOENT as for cache_pack_find(),
 * or -EFBIG when it is longer than max. */
int cache_pack_read(CachePack *pack, uint32_t uid, size_t max, GBytes **out,
		    uint32_t *segment);

/* Remove segment's file and forget its records (eviction). Readers holding
 * an fd on it keep reading it. */
void cache_pack_drop_segment(CachePack *pack, uint32_t segment);

/* The pack's directory was removed (cache_store_drop_folder()): forget
 * every record, close the segments, and refuse appends from now on
 * (-ESTALE), so that a holder of a reference taken before the removal
 * never creates a segment next to those of the pack that replaces it. */
void cache_pack_retire(CachePack *pack);

/* Records currently known (for tests and messages). */
unsigned cache_pack_count(CachePack *pack);

/* "pack-<N>" -> N (1..2^31-1); false for other names. */
bool cache_pack_parse_name(const char *name, uint32_t *segment);
