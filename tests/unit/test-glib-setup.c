/* tests/unit/test-glib-setup.c: after fs_glib_setup(), threads that parse
 * numbers with GLib for the first time at the same moment all succeed.
 *
 * The race is in the first use of GLib's parsers in a process, and
 * g_test_init() already uses them, so each trial is a fresh process: this
 * program run again with --race (or --race-setup, which calls
 * fs_glib_setup() first) lets THREADS threads parse "1" at once and exits
 * 1 when any of them failed. */
#include <glib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>

#include "fs/glib-setup.h"

#define TRIALS 200
#define THREADS 8

typedef struct {
	GMutex lock;
	GCond cond;
	bool go;
} Start;

static gpointer parse_one(gpointer data)
{
	Start *start = data;
	guint64 v = 0;

	g_mutex_lock(&start->lock);
	while (!start->go)
		g_cond_wait(&start->cond, &start->lock);
	g_mutex_unlock(&start->lock);
	return GINT_TO_POINTER(
	    g_ascii_string_to_unsigned("1", 10, 1, 100, &v, NULL) && v == 1);
}

/* In a fresh process: 0 when every thread parsed "1", 1 when one failed. */
static int race(bool setup)
{
	GThread *threads[THREADS];
	Start start = { 0 };
	int failed = 0;

	if (setup)
		fs_glib_setup();
	g_mutex_init(&start.lock);
	g_cond_init(&start.cond);
	for (int i = 0; i < THREADS; i++)
		threads[i] = g_thread_new("parse", parse_one, &start);
	g_usleep(1000); /* all of them waiting */
	g_mutex_lock(&start.lock);
	start.go = true;
	g_cond_broadcast(&start.cond);
	g_mutex_unlock(&start.lock);
	for (int i = 0; i < THREADS; i++)
		if (!g_thread_join(threads[i]))
			failed = 1;
	return failed;
}

/* How many of TRIALS children saw a failed parse. */
static int trials_failed(bool setup)
{
	int failed = 0;

	for (int i = 0; i < TRIALS; i++) {
		const char *argv[] = { "/proc/self/exe",
				       setup ? "--race-setup" : "--race",
				       NULL };
		g_autoptr(GError) error = NULL;
		int status = 0;

		g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL,
					   G_SPAWN_DEFAULT, NULL, NULL, NULL,
					   NULL, &status, &error));
		g_assert_no_error(error);
		g_assert_true(WIFEXITED(status));
		failed += WEXITSTATUS(status) != 0;
	}
	return failed;
}

static void test_parallel_first_parse(void)
{
	/* Without the set-up GLib 2.74 fails now and then (11 to 14 trials
	 * in 100 on a 2-core machine): shown, not asserted, as that is
	 * GLib's behaviour, not ours. */
	g_test_message("without fs_glib_setup(): %d of %d trials saw \"1\" "
		       "refused",
		       trials_failed(false), TRIALS);
	g_assert_cmpint(trials_failed(true), ==, 0);
}

int main(int argc, char **argv)
{
	/* A trial: before anything else touches GLib's parsers. */
	if (argc == 2 && strcmp(argv[1], "--race") == 0)
		return race(false);
	if (argc == 2 && strcmp(argv[1], "--race-setup") == 0)
		return race(true);
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/glib-setup/parallel-first-parse",
			test_parallel_first_parse);
	return g_test_run();
}
