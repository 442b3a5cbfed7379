/* fs/stop.c: the stop signals (see stop.h).
 *
 * The handler only writes the signal number to a pipe (write() is
 * async-signal-safe); the stop thread reads it, runs the quiesce function
 * and ends the session loop. The loop's main thread sleeps in sem_wait(),
 * which only a signal interrupts, so the stop thread sends it one more
 * SIGTERM once fuse_session_exit() is set: the handler sees the stop in
 * progress and does nothing else.
 *
 * Ownership: one FsStop per process (signal handlers are process-wide),
 * reached by the handler through the file-scope pipe, set before the
 * handlers are installed. fs_stop_free() is meant for right after the
 * loop: it joins the thread (so no quiesce runs during the teardown) and
 * leaves the handlers in place, which from then on only note the signal,
 * so a second SIGTERM cannot cut the teardown short.
 */
#define _GNU_SOURCE
#include "fs/stop.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

struct FsStop {
	struct fuse_session *se;
	FsStopQuiesceFn quiesce;
	void *data;
	pthread_t loop_thread; /* runs the session loop */
	GThread *thread;
	int pipe[2];
};

/* The write end of the pipe, for the handler; -1 when none. */
static volatile int stop_fd = -1;
static volatile sig_atomic_t stop_signo;

static void on_stop_signal(int signo)
{
	int saved = errno;
	char c = (char)signo;

	if (stop_signo == 0) {
		stop_signo = signo;
		if (stop_fd >= 0 && write(stop_fd, &c, 1) < 0) {
			/* Nothing to do in a handler: the pipe is never
			 * full, as it gets one byte in all. */
		}
	}
	errno = saved;
}

static gpointer stop_thread(gpointer p)
{
	FsStop *stop = p;
	char c = 0;
	ssize_t n;

	do
		n = read(stop->pipe[0], &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1 || c == 0)
		return NULL; /* fs_stop_free(): no signal came */
	g_message("signal %d: stopping", c);
	if (stop->quiesce)
		stop->quiesce(stop->data);
	fuse_session_exit(stop->se);
	/* Interrupt the loop's sem_wait(); the handler ignores it. */
	pthread_kill(stop->loop_thread, SIGTERM);
	return NULL;
}

static int set_handler(int signo, void (*fn)(int))
{
	struct sigaction sa = { .sa_handler = fn };

	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the loop's sem_wait() must return EINTR. */
	return sigaction(signo, &sa, NULL);
}

FsStop *fs_stop_new(struct fuse_session *se, FsStopQuiesceFn quiesce,
		    void *data)
{
	FsStop *stop = g_new0(FsStop, 1);

	stop->se = se;
	stop->quiesce = quiesce;
	stop->data = data;
	if (pipe2(stop->pipe, O_CLOEXEC) < 0) {
		int saved = errno;

		g_free(stop);
		errno = saved;
		return NULL;
	}
	stop_signo = 0;
	stop_fd = stop->pipe[1];
	if (set_handler(SIGTERM, on_stop_signal) < 0 ||
	    set_handler(SIGINT, on_stop_signal) < 0) {
		int saved = errno;

		fs_stop_free(stop);
		errno = saved;
		return NULL;
	}
	return stop;
}

void fs_stop_start(FsStop *stop)
{
	stop->loop_thread = pthread_self();
	stop->thread = g_thread_new("imapfs-stop", stop_thread, stop);
}

void fs_stop_free(FsStop *stop)
{
	char c = 0;

	if (!stop)
		return;
	/* Wake the thread if no signal did (a 0 byte means "just end"); it
	 * reads one byte only, whichever came first. */
	if (stop->thread) {
		if (write(stop->pipe[1], &c, 1) < 0)
			g_warning("cannot wake the stop thread: %s",
				  g_strerror(errno));
		g_thread_join(stop->thread);
	}
	stop_fd = -1;
	close(stop->pipe[0]);
	close(stop->pipe[1]);
	g_free(stop);
}
