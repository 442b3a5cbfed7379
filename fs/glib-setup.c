/* fs/glib-setup.c: see glib-setup.h. */
#include "fs/glib-setup.h"

#include <glib.h>

void fs_glib_setup(void)
{
	guint64 v;

	/* Any call makes the C locale that the ascii parsers share. */
	if (!g_ascii_string_to_unsigned("1", 10, 0, 1, &v, NULL) || v != 1)
		g_warning("GLib cannot parse \"1\": numbers in the cache "
			  "may be misread");
}
