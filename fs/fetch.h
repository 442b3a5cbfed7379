/* fs/fetch.h: message bodies, from the cache or fetched into it. */
#pragma once

#include <stdint.h>

#include "fs/account.h"
#include "imap/parser.h"

/* The literal sink that streams large bodies straight into cache temp
 * files; its user data is the CacheStore. */
extern const ImapLiteralSink fs_fetch_sink;

/* An fd (O_RDONLY) on the complete body of message uid of folder f as of
 * listing generation gen, fetching it first when it is not cached; two
 * readers of the same uncached message share one fetch. -errno on failure
 * (-EIO: server unreachable or no valid body; -ESTALE: the folder's
 * UIDVALIDITY changed). */
int fs_fetch_open(FsAccount *acct, FsFolder *f, uint32_t gen,
		  uint32_t uidvalidity, uint32_t uid);
