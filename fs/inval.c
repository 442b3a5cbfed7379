/* fs/inval.c: the invalidation queue.
 *
 * Handlers push items under inval->lock; one thread pops them and calls
 * fuse_lowlevel_notify_* with no lock held. Items queued before the
 * session starts wait for fs_inval_start(); ENOENT answers (the kernel had
 * nothing cached) are normal and not logged.
 */
#include "fs/inval.h"

#include <errno.h>
#include <glib.h>
#include <stdbool.h>
#include <string.h>

typedef struct {
	fuse_ino_t ino; /* inode, or the parent for an entry */
	char *name;     /* NULL for an inode invalidation */
	gint64 due;     /* monotonic us; not sent before */
} Item;

struct FsInval {
	GMutex lock;
	GCond cond;
	GQueue items;
	struct fuse_session *se;
	GThread *thread;
	bool stopping;
};

static void item_free(Item *it)
{
	g_free(it->name);
	g_free(it);
}

static gpointer inval_main(gpointer data)
{
	FsInval *inval = data;

	g_mutex_lock(&inval->lock);
	for (;;) {
		Item *it;
		int rc;

		while (!inval->stopping && g_queue_is_empty(&inval->items))
			g_cond_wait(&inval->cond, &inval->lock);
		if (inval->stopping)
			break;
		it = g_queue_peek_head(&inval->items);
		if (it->due > g_get_monotonic_time()) {
			g_cond_wait_until(&inval->cond, &inval->lock, it->due);
			continue;
		}
		it = g_queue_pop_head(&inval->items);
		g_mutex_unlock(&inval->lock);
		if (it->name)
			rc = fuse_lowlevel_notify_inval_entry(
			    inval->se, it->ino, it->name, strlen(it->name));
		else
			/* Attributes and, for a directory, its cached
			 * listing; message bodies never change. */
			rc = fuse_lowlevel_notify_inval_inode(inval->se,
							      it->ino, 0, 0);
		if (rc < 0 && rc != -ENOENT)
			g_debug("invalidation of inode %llu failed: %s",
				(unsigned long long)it->ino, g_strerror(-rc));
		item_free(it);
		g_mutex_lock(&inval->lock);
	}
	g_mutex_unlock(&inval->lock);
	return NULL;
}

FsInval *fs_inval_new(void)
{
	FsInval *inval = g_new0(FsInval, 1);

	g_mutex_init(&inval->lock);
	g_cond_init(&inval->cond);
	g_queue_init(&inval->items);
	return inval;
}

void fs_inval_start(FsInval *inval, struct fuse_session *se)
{
	inval->se = se;
	inval->thread = g_thread_new("inval", inval_main, inval);
}

static void push(FsInval *inval, fuse_ino_t ino, const char *name,
		 unsigned delay_ms)
{
	Item *it = g_new0(Item, 1);

	it->ino = ino;
	it->name = g_strdup(name);
	it->due = g_get_monotonic_time() + (gint64)delay_ms * 1000;
	g_mutex_lock(&inval->lock);
	if (inval->stopping) {
		g_mutex_unlock(&inval->lock);
		item_free(it);
		return;
	}
	g_queue_push_tail(&inval->items, it);
	g_cond_signal(&inval->cond);
	g_mutex_unlock(&inval->lock);
}

void fs_inval_inode(FsInval *inval, fuse_ino_t ino)
{
	push(inval, ino, NULL, 0);
}

void fs_inval_inode_later(FsInval *inval, fuse_ino_t ino, unsigned delay_ms)
{
	push(inval, ino, NULL, delay_ms);
}

void fs_inval_entry(FsInval *inval, fuse_ino_t parent, const char *name)
{
	push(inval, parent, name, 0);
}

void fs_inval_stop(FsInval *inval)
{
	g_mutex_lock(&inval->lock);
	inval->stopping = true;
	g_cond_signal(&inval->cond);
	g_mutex_unlock(&inval->lock);
	if (inval->thread)
		g_thread_join(g_steal_pointer(&inval->thread));
}

void fs_inval_free(FsInval *inval)
{
	if (!inval)
		return;
	fs_inval_stop(inval);
	g_queue_clear_full(&inval->items, (GDestroyNotify)item_free);
	g_mutex_clear(&inval->lock);
	g_cond_clear(&inval->cond);
	g_free(inval);
}
