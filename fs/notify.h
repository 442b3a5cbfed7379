/* fs/notify.h: readiness and stop notices to the service manager
 * (sd_notify, for a Type=notify unit). No-ops when imapfs was built
 * without libsystemd or runs without $NOTIFY_SOCKET. */
#pragma once

/* The mount is up: READY=1 and a STATUS line naming it. */
void fs_notify_ready(const char *what, const char *mountpoint);
/* The mount is going away: STOPPING=1. */
void fs_notify_stopping(void);
