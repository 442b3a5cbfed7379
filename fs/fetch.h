/* fs/fetch.h: message bodies, from the cache or fetched into it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fs/account.h"
#include "imap/parser.h"

/* The literal sink that streams large bodies straight into cache temp
 * files; its user data is the CacheStore. */
extern const ImapLiteralSink fs_fetch_sink;

/* An fd (O_RDONLY) on the complete body of message uid in listing l of
 * folder f, fetching it first when it is not cached; readers of the same
 * uncached message share one fetch. first_read (a read at offset 0) feeds
 * the sequential-read detector that starts prefetch. -errno on failure
 * (-EIO: server unreachable or no valid body; -ESTALE: the folder's
 * UIDVALIDITY changed). */
int fs_fetch_open(FsAccount *acct, FsFolder *f, FsListing *l, uint32_t uid,
		  bool first_read);

/* Destroy function for FsAccount.uncached values. */
void fs_fetch_uncached_free(gpointer p);
