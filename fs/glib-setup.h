/* fs/glib-setup.h: what GLib sets up lazily, set up once at start.
 *
 * g_ascii_strtoull() makes its own C locale on first use. A thread that
 * waits there for another thread's set-up can come back with errno EAGAIN
 * from the wait, and g_ascii_string_to_unsigned() takes that errno for a
 * failed parse: "1" is "not an unsigned number". Two threads that opened a
 * folder's cache pack at the same moment hit this, and one of them missed
 * every segment (its bodies were fetched again, or failed offline). The
 * daemon calls this before it starts any thread. */
#pragma once

void fs_glib_setup(void);
