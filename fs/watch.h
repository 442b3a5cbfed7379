/* fs/watch.h: live updates: IDLE/NOTIFY on a connection of its own, and
 * polling of the folder list and of every listed folder. */
#pragma once

#include "fs/mount.h"
#include "imap/conn.h"

typedef struct FsWatch FsWatch;

/* Starts both threads; the IDLE connection comes from mnt->pool.
 * status_interval: seconds between STATUS polls of recently listed folders
 * when the server has no NOTIFY (0: none). */
FsWatch *fs_watch_new(FsMount *mnt, unsigned poll_interval,
		      unsigned status_interval);
void fs_watch_free(FsWatch *w);
