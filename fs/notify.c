/* fs/notify.c: sd_notify() for a Type=notify systemd unit
 * (doc/imapfs@.service). Built with libsystemd when meson found it
 * (HAVE_LIBSYSTEMD); otherwise every call does nothing and the unit is
 * installed as Type=forking instead. No state of its own. */
#include "fs/notify.h"

#include <glib.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

void fs_notify_ready(const char *what, const char *mountpoint)
{
#ifdef HAVE_LIBSYSTEMD
	int r =
	    sd_notifyf(0, "READY=1\nSTATUS=mounted %s on %s", what, mountpoint);

	if (r < 0)
		g_message("cannot tell the service manager: %s",
			  g_strerror(-r));
#endif
}

void fs_notify_stopping(void)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
}
