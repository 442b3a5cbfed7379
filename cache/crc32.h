/* cache/crc32.h: the two CRCs of the cache's formats. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, reflected), as zlib computes it: folder indexes and
 * folder lists. Thread-safe (tables are built once). */
uint32_t cache_crc32(const void *p, size_t len);
/* The CRC-32 of what crc covered followed by p (crc 0: nothing yet). */
uint32_t cache_crc32_update(uint32_t crc, const void *p, size_t len);

/* CRC-32C (Castagnoli, reflected), as iSCSI and ext4 compute it: pack
 * records, checked on every first read of a body, so it uses the CPU's
 * crc32 instruction where there is one (x86-64 with SSE 4.2). */
uint32_t cache_crc32c(const void *p, size_t len);
