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

/* Write content to dir/name with mode; the path (g_free it). Fails the
 * test when it cannot. */
static inline char *test_write_file(const char *dir, const char *name,
				    const char *content, int mode)
{
	char *path = g_build_filename(dir, name, NULL);
	GError *error = NULL;

	g_assert_true(g_file_set_contents(path, content, -1, &error));
	g_assert_no_error(error);
	g_assert_cmpint(g_chmod(path, mode), ==, 0);
	return path;
}
