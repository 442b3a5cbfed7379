/* tests/unit/test-util.h: small helpers shared by the unit tests. */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>

/* Remove path and everything below it; best effort, for test clean-up. */
static inline void test_remove_tree(const char *path)
{
	GDir *dir = g_dir_open(path, 0, NULL);
	const char *name;

	if (dir) {
		while ((name = g_dir_read_name(dir))) {
			g_autofree char *sub =
			    g_build_filename(path, name, NULL);

			test_remove_tree(sub);
		}
		g_dir_close(dir);
	}
	g_remove(path);
}
