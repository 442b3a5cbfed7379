/* fs/mountcheck.h: checks of the mount point and of the mounts in place,
 * made before anything else so that a mistake is named at once. */
#pragma once

#include <glib.h>
#include <stdbool.h>

/* One line of /proc/self/mountinfo. */
typedef struct {
	char *mountpoint;
	char *fstype; /* "fuse.imapfs" */
	char *source; /* our fsname: the account URL */
} FsMountEntry;

void fs_mount_entry_free(FsMountEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FsMountEntry, fs_mount_entry_free)

/* Parse the text of a mountinfo file (pure): FsMountEntry* in order, with
 * the octal escapes (\040) undone; malformed lines are skipped. */
GPtrArray *fs_mountcheck_parse(const char *text);

/* Where an imapfs mount of fsname is mounted now, or NULL (g_free). */
char *fs_mountcheck_find_account(const char *fsname);

/* Before mounting on mountpoint (absolute, resolved): refuses, with a
 * message that says what to do, a mount point that is an imapfs mount
 * already, and a non-empty one unless nonempty. 0 or -1 with error set. */
int fs_mountcheck_mountpoint(const char *mountpoint, bool nonempty,
			     GError **error);
