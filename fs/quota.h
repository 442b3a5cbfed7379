/* fs/quota.h: a server that stopped our downloads for a while (Gmail's
 * daily bandwidth cap: NO [OVERQUOTA], or a NO or BYE about bandwidth
 * limits). While stopped, prefetch stays off and uncached reads fail at
 * once with EIO, without asking the server; one read may try again after
 * a long backoff (15 minutes, doubling up to 4 hours). */
#pragma once

#include <glib.h>
#include <stdbool.h>

typedef struct FsQuota FsQuota;

FsQuota *fs_quota_new(void);
void fs_quota_free(FsQuota *quota);

/* Whether a failed download (rc, error may be NULL) is such a refusal. */
bool fs_quota_is_refusal(int rc, const GError *error);
/* Downloads were refused: logs one line on the first refusal, then stays
 * quiet until downloads work again. */
void fs_quota_hit(FsQuota *quota, const char *why);
/* A download worked: logs one line when downloads had been stopped. */
void fs_quota_ok(FsQuota *quota);
/* True while downloads are stopped; at most one caller per backoff gets
 * false after it ends (the one that tries again). */
bool fs_quota_blocked(FsQuota *quota);
/* True while downloads are stopped, without claiming the retry (for
 * prefetch, which never tries). */
bool fs_quota_stopped(FsQuota *quota);
