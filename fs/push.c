/* fs/push.c: the push queue (see push.h).
 *
 * Callers queue items under push->lock. Two threads work through them, with
 * no lock held while they work: one reads the bodies of cached items from
 * the cache into a short queue of bodies ready, the other hands those to
 * fuse_lowlevel_notify_store(). Reading and checking a body costs about as
 * much as pushing it, so on two threads the pushes keep ahead of a tree
 * walk that one thread could not. The queues are bounded: a reader that
 * outruns the pushes just reads the rest itself.
 *
 * Runs of cached bodies go to the front of the queue, not the back: a tree
 * walk (grep -r) lists a folder, goes down into its subfolders first, and
 * comes back to its messages last, so the folder listed or read most
 * recently is the one read next. A run of the folder already at the front
 * goes after that folder's queued items, keeping its order. What falls off
 * the back is pushed again by the reader who gets there (fs/fetch.c).
 */
#include "fs/push.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#define PUSH_MAX_QUEUED 1024
#define PUSH_MAX_QUEUED_BYTES (16u << 20) /* of bodies held in items */
#define PUSH_MAX_BODY (1u << 20) /* larger bodies are read the usual way */
#define PUSH_MAX_DONE 65536      /* inodes remembered as pushed or read */
/* Bodies read ahead of the pushes: enough to keep the pusher busy, few
 * enough that a folder listed next is not kept waiting behind them. */
#define PUSH_READY_MAX 32
#define PUSH_READY_MAX_BYTES (2u << 20)

typedef struct {
	fuse_ino_t ino;
	GBytes *bytes; /* or, from the cache: */
	char *folder;  /* a GRefString, shared by a run */
	uint32_t uidvalidity;
	uint32_t uid;
	uint32_t run; /* the run's folder (fs_push_cached_run()); 0: none */
} Item;

struct FsPush {
	GMutex lock;
	GCond cond;       /* items to read, or room in ready */
	GCond ready_cond; /* bodies ready to push */
	GQueue items;
	GQueue ready; /* Items with their bytes, in order */
	size_t ready_bytes;
	CacheStore *store;
	struct fuse_session *se;
	GThread *thread;
	GThread *reader;
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
	if (it->folder)
		g_ref_string_release(it->folder);
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

/* Hand its body (read already) to the kernel. */
static void push_one(FsPush *push, Item *it)
{
	GBytes *bytes = it->bytes;
	struct fuse_bufvec bv;
	int rc;

	bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT(g_bytes_get_size(bytes));
	bv.buf[0].mem = (void *)g_bytes_get_data(bytes, NULL);
	/* One write of the body at hand; splicing it would take a vmsplice
	 * and a splice for the same copy. */
	rc = fuse_lowlevel_notify_store(push->se, it->ino, 0, &bv,
					FUSE_BUF_NO_SPLICE);
	/* ENOENT: the kernel no longer knows the inode. Nothing to do. */
	if (rc < 0 && rc != -ENOENT)
		g_debug("push of inode %llu: %s", (unsigned long long)it->ino,
			g_strerror(-rc));
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

/* The reading thread: the next item, its body read from the cache when it
 * has none, goes to push->ready. */
static gpointer read_main(gpointer data)
{
	FsPush *push = data;

	g_mutex_lock(&push->lock);
	for (;;) {
		Item *it;

		while (!push->stopping &&
		       (g_queue_is_empty(&push->items) ||
			push->ready.length >= PUSH_READY_MAX ||
			push->ready_bytes >= PUSH_READY_MAX_BYTES))
			g_cond_wait(&push->cond, &push->lock);
		if (push->stopping)
			break;
		it = g_queue_pop_head(&push->items);
		if (it->bytes)
			push->queued_bytes -= g_bytes_get_size(it->bytes);
		if (g_hash_table_contains(push->done,
					  GSIZE_TO_POINTER((gsize)it->ino))) {
			item_free(it); /* read meanwhile, or pushed */
			continue;
		}
		if (!it->bytes) {
			g_mutex_unlock(&push->lock);
			it->bytes = read_cached(push, it);
			g_mutex_lock(&push->lock);
			if (!it->bytes) {
				push->skipped++;
				item_free(it);
				continue;
			}
		}
		push->ready_bytes += g_bytes_get_size(it->bytes);
		g_queue_push_tail(&push->ready, it);
		g_cond_signal(&push->ready_cond);
	}
	g_mutex_unlock(&push->lock);
	return NULL;
}

/* The pushing thread: bodies ready go to the kernel, in order. */
static gpointer push_main(gpointer data)
{
	FsPush *push = data;

	g_mutex_lock(&push->lock);
	for (;;) {
		Item *it;

		while (!push->stopping && g_queue_is_empty(&push->ready))
			g_cond_wait(&push->ready_cond, &push->lock);
		if (push->stopping)
			break;
		it = g_queue_pop_head(&push->ready);
		push->ready_bytes -= g_bytes_get_size(it->bytes);
		g_cond_signal(&push->cond); /* room in ready */
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
	g_cond_init(&push->ready_cond);
	g_queue_init(&push->items);
	g_queue_init(&push->ready);
	push->done = g_hash_table_new(g_direct_hash, g_direct_equal);
	push->store = store;
	return push;
}

void fs_push_start(FsPush *push, struct fuse_session *se)
{
	push->se = se;
	push->thread = g_thread_new("imapfs-push", push_main, push);
	push->reader = g_thread_new("imapfs-push-rd", read_main, push);
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

/* Under push->lock: make room for one more item after keep (NULL: at the
 * front) by dropping the one at the back, the least urgent. False when
 * the back is keep itself, or a body at hand: those are never dropped for
 * cached ones. */
static bool room_at_front(FsPush *push, GList *keep)
{
	Item *last;

	if (push->items.length < PUSH_MAX_QUEUED)
		return true;
	last = g_queue_peek_tail(&push->items);
	if (last->bytes || push->items.tail == keep)
		return false;
	item_free(g_queue_pop_tail(&push->items));
	return true;
}

void fs_push_cached_run(FsPush *push, uint32_t run, const char *folder,
			uint32_t uidvalidity, const FsPushMessage *msgs,
			guint n)
{
	char *name;
	GList *after = NULL;

	if (!push || n == 0)
		return;
	name = g_ref_string_new(folder);
	g_mutex_lock(&push->lock);
	/* After the items of this run's folder already at the front. */
	for (GList *l = push->items.head;
	     l && ((Item *)l->data)->run == run && run != 0; l = l->next)
		after = l;
	for (guint i = 0; i < n && !push->stopping; i++) {
		Item *it;

		if (g_hash_table_contains(push->done,
					  GSIZE_TO_POINTER((gsize)msgs[i].ino)))
			continue;
		if (!room_at_front(push, after))
			break;
		it = g_new0(Item, 1);
		it->ino = msgs[i].ino;
		it->folder = g_ref_string_acquire(name);
		it->uidvalidity = uidvalidity;
		it->uid = msgs[i].uid;
		it->run = run;
		if (after) {
			g_queue_insert_after(&push->items, after, it);
			after = after->next;
		} else {
			g_queue_push_head(&push->items, it);
			after = push->items.head;
		}
	}
	g_cond_signal(&push->cond);
	g_mutex_unlock(&push->lock);
	g_ref_string_release(name);
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
	g_cond_broadcast(&push->cond);
	g_cond_broadcast(&push->ready_cond);
	g_mutex_unlock(&push->lock);
	if (push->reader)
		g_thread_join(g_steal_pointer(&push->reader));
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
	g_queue_clear_full(&push->ready, (GDestroyNotify)item_free);
	g_hash_table_unref(push->done);
	g_cond_clear(&push->cond);
	g_cond_clear(&push->ready_cond);
	g_mutex_clear(&push->lock);
	g_free(push);
}
