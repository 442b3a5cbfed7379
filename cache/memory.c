/* cache/memory.c: the table of bodies kept off a full disk.
 *
 * Ownership: the table owns one memory-file fd per body and closes it when
 * the body is dropped; readers get fds of their own (dups), so a body
 * dropped while read stays readable through them.
 *
 * Locking: mem->lock guards the table and the byte total; it is held only
 * for table work and fd dups, never for the copy into a memory file.
 *
 * Invariants: total is the sum of the sizes in the table; after a keep the
 * total is at most max_bytes unless the newest body alone is larger.
 */
#include "cache/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	char *folder;
	uint32_t uidvalidity;
	int fd;
	uint64_t size;
	gint64 used; /* monotonic us of the last keep or find */
} Kept;

struct CacheMemory {
	GMutex lock;
	GHashTable *bodies; /* "uidvalidity:uid:folder" -> Kept* */
	uint64_t total;
	uint64_t max_bytes;
};

static char *body_key(const char *folder, uint32_t uidvalidity, uint32_t uid)
{
	return g_strdup_printf("%u:%u:%s", uidvalidity, uid, folder);
}

static void kept_free(gpointer p)
{
	Kept *k = p;

	close(k->fd);
	g_free(k->folder);
	g_free(k);
}

CacheMemory *cache_memory_new(uint64_t max_bytes)
{
	CacheMemory *mem = g_new0(CacheMemory, 1);

	g_mutex_init(&mem->lock);
	mem->bodies =
	    g_hash_table_new_full(g_str_hash, g_str_equal, g_free, kept_free);
	mem->max_bytes = max_bytes;
	return mem;
}

void cache_memory_free(CacheMemory *mem)
{
	if (!mem)
		return;
	g_hash_table_unref(mem->bodies);
	g_mutex_clear(&mem->lock);
	g_free(mem);
}

/* Under lock: remove the body at key, keeping total right. */
static void remove_kept(CacheMemory *mem, const char *key)
{
	Kept *k = g_hash_table_lookup(mem->bodies, key);

	if (!k)
		return;
	mem->total -= k->size;
	g_hash_table_remove(mem->bodies, key);
}

/* Under lock: drop the least recently used bodies other than newest
 * until the total fits the bound. */
static void evict(CacheMemory *mem, const Kept *newest)
{
	while (mem->total > mem->max_bytes &&
	       g_hash_table_size(mem->bodies) > 1) {
		const char *oldest = NULL;
		const Kept *ok = NULL;
		GHashTableIter it;
		gpointer key, value;

		g_hash_table_iter_init(&it, mem->bodies);
		while (g_hash_table_iter_next(&it, &key, &value)) {
			const Kept *k = value;

			if (k != newest && (!ok || k->used < ok->used)) {
				ok = k;
				oldest = key;
			}
		}
		if (!ok)
			break;
		remove_kept(mem, oldest);
	}
}

void cache_memory_keep_fd(CacheMemory *mem, const char *folder,
			  uint32_t uidvalidity, uint32_t uid, int fd,
			  uint64_t size)
{
	g_autofree char *key = body_key(folder, uidvalidity, uid);
	Kept *k = g_new0(Kept, 1);

	k->folder = g_strdup(folder);
	k->uidvalidity = uidvalidity;
	k->fd = fd;
	k->size = size;
	k->used = g_get_monotonic_time();
	g_mutex_lock(&mem->lock);
	remove_kept(mem, key);
	g_hash_table_insert(mem->bodies, g_steal_pointer(&key), k);
	mem->total += size;
	evict(mem, k);
	g_mutex_unlock(&mem->lock);
}

int cache_memory_keep(CacheMemory *mem, const char *folder,
		      uint32_t uidvalidity, uint32_t uid, const void *data,
		      size_t len)
{
	int fd = cache_memfile_from_bytes(data, len);

	if (fd < 0)
		return fd;
	cache_memory_keep_fd(mem, folder, uidvalidity, uid, fd, len);
	return 0;
}

int cache_memory_find(CacheMemory *mem, const char *folder,
		      uint32_t uidvalidity, uint32_t uid, CacheBody *body)
{
	g_autofree char *key = body_key(folder, uidvalidity, uid);
	Kept *k;
	int rc = -ENOENT;

	g_mutex_lock(&mem->lock);
	k = g_hash_table_lookup(mem->bodies, key);
	if (k) {
		k->used = g_get_monotonic_time();
		body->fd = fcntl(k->fd, F_DUPFD_CLOEXEC, 0);
		body->offset = 0;
		body->size = k->size;
		rc = body->fd < 0 ? -errno : 0;
	}
	g_mutex_unlock(&mem->lock);
	return rc;
}

void cache_memory_drop_folder(CacheMemory *mem, const char *folder,
			      uint32_t keep_uidvalidity)
{
	GHashTableIter it;
	gpointer value;

	g_mutex_lock(&mem->lock);
	g_hash_table_iter_init(&it, mem->bodies);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		Kept *k = value;

		if (strcmp(k->folder, folder) != 0 ||
		    (keep_uidvalidity != 0 &&
		     k->uidvalidity == keep_uidvalidity))
			continue;
		mem->total -= k->size;
		g_hash_table_iter_remove(&it);
	}
	g_mutex_unlock(&mem->lock);
}
