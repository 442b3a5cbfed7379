/* fs/watch.h: live updates: IDLE/NOTIFY on a connection of its own, and
 * polling of the folder list and of every listed folder. */
#pragma once

#include "fs/account.h"
#include "imap/conn.h"

typedef struct FsWatch FsWatch;

/* Starts both threads. account is copied; its strings must outlive w. */
FsWatch *fs_watch_new(FsAccount *acct, const ImapAccount *account,
		      unsigned poll_interval);
void fs_watch_free(FsWatch *w);

