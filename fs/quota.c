/* fs/quota.c: downloads stopped by the server (see fs/quota.h).
 *
 * Ownership: one FsQuota per mount, inside FsFetch. Locking: quota->lock
 * guards every field; no other lock is taken under it. Invariant:
 * stopped_at != 0 exactly while downloads are stopped; retry_at is when
 * one read may try again.
 */
#include "fs/quota.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_FIRST_MS (15u * 60 * 1000)
#define BACKOFF_MAX_MS (4u * 3600 * 1000)

struct FsQuota {
	GMutex lock;
	gint64 stopped_at; /* monotonic us, 0: downloads work */
	gint64 retry_at;   /* monotonic us */
	guint64 backoff_ms;
	guint64 first_ms; /* first backoff (tests shorten it) */
};

FsQuota *fs_quota_new(void)
{
	FsQuota *quota = g_new0(FsQuota, 1);
	const char *env = g_getenv("IMAPFS_TEST_QUOTA_RETRY_MS");

	g_mutex_init(&quota->lock);
	quota->first_ms = BACKOFF_FIRST_MS;
	/* Only the test suite shortens the wait. */
	if (env && *env)
		quota->first_ms = MAX(g_ascii_strtoull(env, NULL, 10), 1u);
	return quota;
}

void fs_quota_free(FsQuota *quota)
{
	if (!quota)
		return;
	g_mutex_clear(&quota->lock);
	g_free(quota);
}

bool fs_quota_is_refusal(int rc, const GError *error)
{
	static const char *const words[] = { "bandwidth", "overquota",
					     "download limit",
					     "exceeded command" };
	g_autofree char *lower = NULL;

	if (rc == -EDQUOT)
		return true;
	if (!error || !error->message)
		return false;
	lower = g_ascii_strdown(error->message, -1);
	for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
		if (strstr(lower, words[i]))
			return true;
	return false;
}

void fs_quota_hit(FsQuota *quota, const char *why)
{
	gint64 now = g_get_monotonic_time();
	bool first;

	g_mutex_lock(&quota->lock);
	first = quota->stopped_at == 0;
	if (first) {
		quota->stopped_at = now;
		quota->backoff_ms = quota->first_ms;
	} else {
		quota->backoff_ms = MIN(quota->backoff_ms * 2,
					MAX(BACKOFF_MAX_MS, quota->first_ms));
	}
	quota->retry_at = now + (gint64)quota->backoff_ms * 1000;
	g_mutex_unlock(&quota->lock);
	if (first)
		g_warning(
		    "the server stopped downloads (%s): prefetch is off, "
		    "cached messages stay readable, others fail with EIO; "
		    "trying again in %u s",
		    why, (unsigned)(quota->first_ms / 1000));
}

void fs_quota_ok(FsQuota *quota)
{
	bool was;

	g_mutex_lock(&quota->lock);
	was = quota->stopped_at != 0;
	quota->stopped_at = 0;
	g_mutex_unlock(&quota->lock);
	if (was)
		g_message("the server allows downloads again");
}

bool fs_quota_blocked(FsQuota *quota)
{
	gint64 now = g_get_monotonic_time();
	bool blocked;

	g_mutex_lock(&quota->lock);
	blocked = quota->stopped_at != 0 && now < quota->retry_at;
	/* The one read that tries again: the others wait one more round. */
	if (quota->stopped_at && !blocked)
		quota->retry_at = now + (gint64)quota->backoff_ms * 1000;
	g_mutex_unlock(&quota->lock);
	return blocked;
}

bool fs_quota_stopped(FsQuota *quota)
{
	bool stopped;

	g_mutex_lock(&quota->lock);
	stopped = quota->stopped_at != 0;
	g_mutex_unlock(&quota->lock);
	return stopped;
}
