/* cache/memory.h: bodies kept in memory because the disk cache could not
 * take them (disk full, or a body larger than the whole --cache-size).
 *
 * A small table of anonymous memory files, keyed like the disk cache by
 * (folder, UIDVALIDITY, UID) and bounded in bytes: the least recently
 * used bodies go first. Thread-safe (one lock of its own, never held
 * across disk or network I/O). */
#pragma once

#include <stdint.h>

#include "cache/store.h"

typedef struct CacheMemory CacheMemory;

/* A table holding at most about max_bytes (the newest body is kept even
 * when it alone is larger). */
CacheMemory *cache_memory_new(uint64_t max_bytes);
/* Closes every fd it holds. NULL is allowed. */
void cache_memory_free(CacheMemory *mem);

/* Keep fd (a complete body of size bytes at offset 0, as handed out by
 * cache_body_writer_commit_fd()); the table owns fd from now on and
 * replaces an older copy. Older bodies are dropped beyond the bound. */
void cache_memory_keep_fd(CacheMemory *mem, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, int fd,
			  uint64_t size);
/* The same for len bytes at data, copied into a new memory file.
 * 0, or -errno (-ENOMEM when no memory file can hold them). */
int cache_memory_keep(CacheMemory *mem, const char *folder,
		      uint32_t uidvalidity, uint32_t uid, const void *data,
		      size_t len);
/* A kept body: body->fd is a new fd (the caller closes it), offset 0.
 * Counts as used. 0, -ENOENT when not kept, or another -errno. */
int cache_memory_find(CacheMemory *mem, const char *folder,
		      uint32_t uidvalidity, uint32_t uid, CacheBody *body);
/* Drop every body of folder whose UIDVALIDITY is not keep_uidvalidity
 * (0 drops them all), as cache_store_drop_folder() does on disk. */
void cache_memory_drop_folder(CacheMemory *mem, const char *folder,
			      uint32_t keep_uidvalidity);
