/* fs/log.h: where the daemon's messages go: stderr while in the
 * foreground, syslog once daemonised. Debug messages only with -d. */
#pragma once

#include <stdbool.h>

void fs_log_init(bool debug);
/* Switch to syslog (after fuse_daemonize() closed stderr). */
void fs_log_to_syslog(void);
