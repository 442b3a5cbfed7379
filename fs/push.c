/* fs/push.c: the push queue (see push.h).
 *
 * Callers queue items under push->lock; one thread pops them and, with no
 * lock held, reads the body (from the item, or the cache) and hands it to
 * fuse_lowlevel_notify_store(). The queue is bounded: a reader that outruns
 * the pusher just reads the rest itself.
 */
#include "fs/push.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#define PUSH_MAX_QUEUED 1024
#define PUSH_MAX_QUEUED_BYTES (16u << 20) /* of bodies held in items */
#define PUSH_MAX_BODY (1u << 20) /* larger bodies are read the usual way */
#define PUSH_MAX_DONE 65536      /* inodes remembered as pushed or read */

typedef struct {
	fuse_ino_t ino;
	GBytes *bytes; /* or, from the cache: */
	char *folder;
	uint32_t uidvalidity;
	uint32_t uid;
} Item;

struct FsPush {
	GMutex lock;
	GCond cond;
	GQueue items;
	CacheStore *store;
	struct fuse_session *se;
	GThread *thread;
	bool stopping;
	size_t queued_bytes;
	/* Inodes pushed or read since the set was last cleared: a second push
	 * of one (a listing push and a reader's push ahead, or a reader that
	 * overtook the pusher) would only copy the same bytes again. */
	GHashTable *done;
	uint64_t pushed;
	uint64_t skipped;
};

static void item_free(Item *it)
{
	if (it->bytes)
		g_bytes_unref(it->bytes);
	g_free(it->folder);
	g_free(it);
}

/* The body of a cache item, or NULL. */
static GBytes *read_cached(FsPush *push, const Item *it)
{
	GBytes *bytes = NULL;

	if (cache_store_read_body(push->store, it->folder, it->uidvalidity,
				  it->uid, PUSH_MAX_BODY, &bytes) < 0)
		return NULL;
	if (g_bytes_get_size(bytes) == 0) {
		g_bytes_unref(bytes);
		return NULL;
	}
	return bytes;
}

static void push_one(FsPush *push, Item *it)
{
	GBytes *bytes =
	    it->bytes ? g_bytes_ref(it->bytes) : read_cached(push, it);
	struct fuse_bufvec bv;
	int rc;

	if (!bytes) {
		g_mutex_lock(&push->lock);
		push->skipped++;
		g_mutex_unlock(&push->lock);
		return;
	}
	bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT(g_bytes_get_size(bytes));
	bv.buf[0].mem = (void *)g_bytes_get_data(bytes, NULL);
	rc = fuse_lowlevel_notify_store(push->se, it->ino, 0, &bv, 0);
	/* ENOENT: the kernel no longer knows the inode. Nothing to do. */
	if (rc < 0 && rc != -ENOENT)
		g_debug("push of inode %llu: %s", (unsigned long long)it->ino,
			g_strerror(-rc));
	g_bytes_unref(bytes);
	g_mutex_lock(&push->lock);
	if (rc == 0)
		push->pushed++;
	else
		push->skipped++;
	g_mutex_unlock(&push->lock);
}

/* Under push->lock: remember ino as done; false when it was already. */
static bool mark_done(FsPush *push, fuse_ino_t ino)
{
	gpointer key = GSIZE_TO_POINTER((gsize)ino);

	if (g_hash_table_contains(push->done, key))
		return false;
	if (g_hash_table_size(push->done) >= PUSH_MAX_DONE)
		g_hash_table_remove_all(push->done);
	g_hash_table_add(push->done, key);
	return true;
}

static gpointer push_main(gpointer data)
{
	FsPush *push = data;

	g_mutex_lock(&push->lock);
	for (;;) {
		Item *it;

		while (!push->stopping && g_queue_is_empty(&push->items))
			g_cond_wait(&push->cond, &push->lock);
		if (push->stopping)
			break;
		it = g_queue_pop_head(&push->items);
		if (it->bytes)
			push->queued_bytes -= g_bytes_get_size(it->bytes);
		if (!mark_done(push, it->ino)) {
			item_free(it);
			continue;
		}
		g_mutex_unlock(&push->lock);
		push_one(push, it);
		item_free(it);
		g_mutex_lock(&push->lock);
	}
	g_mutex_unlock(&push->lock);
	return NULL;
}

FsPush *fs_push_new(CacheStore *store)
{
	FsPush *push = g_new0(FsPush, 1);

	g_mutex_init(&push->lock);
	g_cond_init(&push->cond);
	g_queue_init(&push->items);
	push->done = g_hash_table_new(g_direct_hash, g_direct_equal);
	push->store = store;
	return push;
}

void fs_push_start(FsPush *push, struct fuse_session *se)
{
	push->se = se;
	push->thread = g_thread_new("imapfs-push", push_main, push);
}

static void enqueue(FsPush *push, Item *it)
{
	size_t bytes = it->bytes ? g_bytes_get_size(it->bytes) : 0;

	g_mutex_lock(&push->lock);
	if (push->stopping || push->items.length >= PUSH_MAX_QUEUED ||
	    push->queued_bytes + bytes > PUSH_MAX_QUEUED_BYTES) {
		g_mutex_unlock(&push->lock);
		item_free(it);
		return;
	}
	push->queued_bytes += bytes;
	g_queue_push_tail(&push->items, it);
	g_cond_signal(&push->cond);
	g_mutex_unlock(&push->lock);
}

void fs_push_cached(FsPush *push, fuse_ino_t ino, const char *folder,
		    uint32_t uidvalidity, uint32_t uid)
{
	Item *it;

	if (!push)
		return;
	it = g_new0(Item, 1);
	it->ino = ino;
	it->folder = g_strdup(folder);
	it->uidvalidity = uidvalidity;
	it->uid = uid;
	enqueue(push, it);
}

void fs_push_bytes(FsPush *push, fuse_ino_t ino, GBytes *bytes)
{
	Item *it;

	if (!push || !bytes || g_bytes_get_size(bytes) == 0 ||
	    g_bytes_get_size(bytes) > PUSH_MAX_BODY)
		return;
	it = g_new0(Item, 1);
	it->ino = ino;
	it->bytes = g_bytes_ref(bytes);
	enqueue(push, it);
}

void fs_push_note_read(FsPush *push, fuse_ino_t ino)
{
	if (!push)
		return;
	g_mutex_lock(&push->lock);
	mark_done(push, ino);
	g_mutex_unlock(&push->lock);
}

void fs_push_stop(FsPush *push)
{
	g_mutex_lock(&push->lock);
	push->stopping = true;
	g_cond_signal(&push->cond);
	g_mutex_unlock(&push->lock);
	if (push->thread) {
		g_thread_join(g_steal_pointer(&push->thread));
		g_debug("pushed %" G_GUINT64_FORMAT
			" bodies into the page cache, %" G_GUINT64_FORMAT
			" not cached or refused",
			push->pushed, push->skipped);
	}
}

void fs_push_free(FsPush *push)
{
	if (!push)
		return;
	fs_push_stop(push);
	g_queue_clear_full(&push->items, (GDestroyNotify)item_free);
	g_hash_table_unref(push->done);
	g_cond_clear(&push->cond);
	g_mutex_clear(&push->lock);
	g_free(push);
}
