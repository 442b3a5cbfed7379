/* fs/stop.h: SIGTERM and SIGINT end the mount in an order that cannot
 * hang.
 *
 * libfuse's own handlers end the session loop at once: its workers are
 * cancelled while the kernel may still hold READ requests, with their
 * pages locked, that nobody will answer any more. A thread that pushes
 * into the page cache or invalidates it (FUSE notifications) then waits
 * in the kernel for such a page forever, and no signal ends that wait.
 * Here a signal only wakes a thread of our own, which first runs the
 * caller's quiesce function (stop the threads that notify the kernel)
 * while the workers still answer requests, and only then ends the loop.
 */
#pragma once

#include <fuse_lowlevel.h>
#include <stdbool.h>

typedef struct FsStop FsStop;

/* Called once, on the stop thread, before the session loop is ended. */
typedef void (*FsStopQuiesceFn)(void *data);

/* Catch SIGTERM and SIGINT for session se: from here on they are noted,
 * and acted on once fs_stop_start() has run. Call before the mount, once.
 * Returns NULL with errno set when a handler could not be installed. */
FsStop *fs_stop_new(struct fuse_session *se, FsStopQuiesceFn quiesce,
		    void *data);
/* Start the stop thread; call after fuse_daemonize() (fork() keeps only
 * the calling thread) from the thread that will run the session loop. A
 * signal that came before is acted on now. */
void fs_stop_start(FsStop *stop);
/* Once the session loop has returned (or it never ran): join the stop
 * thread and free. The handlers stay, and from then on only note a
 * signal. NULL is allowed. */
void fs_stop_free(FsStop *stop);
