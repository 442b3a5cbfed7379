/* fs/mountcheck.c: is the mount point free, and is the account mounted
 * already? Read from /proc/self/mountinfo (the kernel's table, which also
 * holds mounts that the user's mtab does not) and the mount point itself.
 *
 * No state, no locking; fs_mountcheck_parse() is pure. libfuse 3 dropped
 * the "nonempty" option and mounts over a non-empty directory silently, so
 * the check is made here, and "nonempty" never reaches FUSE (options.c).
 */
#include "fs/mountcheck.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "fs/options.h"

#define FSTYPE "fuse.imapfs"

void fs_mount_entry_free(FsMountEntry *e)
{
	if (!e)
		return;
	g_free(e->mountpoint);
	g_free(e->fstype);
	g_free(e->source);
	g_free(e);
}

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static char *unescape(const char *s)
{
	GString *out = g_string_sized_new(strlen(s));

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			g_string_append_c(out, (char)((s[1] - '0') * 64 +
						      (s[2] - '0') * 8 +
						      (s[3] - '0')));
			s += 4;
		} else {
			g_string_append_c(out, *s++);
		}
	}
	return g_string_free(out, FALSE);
}

/* "36 35 98:0 /root /mnt opts [optional...] - fstype source superopts" */
static FsMountEntry *parse_line(const char *line)
{
	g_auto(GStrv) f = g_strsplit(line, " ", -1);
	guint n = g_strv_length(f);
	guint dash;
	FsMountEntry *e;

	if (n < 10)
		return NULL;
	for (dash = 6; dash < n && strcmp(f[dash], "-") != 0; dash++)
		;
	if (dash + 2 >= n)
		return NULL;
	e = g_new0(FsMountEntry, 1);
	e->mountpoint = unescape(f[4]);
	e->fstype = unescape(f[dash + 1]);
	e->source = unescape(f[dash + 2]);
	return e;
}

GPtrArray *fs_mountcheck_parse(const char *text)
{
	GPtrArray *out =
	    g_ptr_array_new_with_free_func((GDestroyNotify)fs_mount_entry_free);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	for (guint i = 0; lines[i]; i++) {
		FsMountEntry *e = parse_line(lines[i]);

		if (e)
			g_ptr_array_add(out, e);
	}
	return out;
}

static GPtrArray *read_mounts(void)
{
	g_autofree char *text = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return g_ptr_array_new();
	return fs_mountcheck_parse(text);
}

char *fs_mountcheck_find_account(const char *fsname)
{
	g_autoptr(GPtrArray) mounts = read_mounts();

	for (guint i = 0; i < mounts->len; i++) {
		FsMountEntry *e = g_ptr_array_index(mounts, i);

		if (strcmp(e->fstype, FSTYPE) == 0 &&
		    strcmp(e->source, fsname) == 0)
			return g_strdup(e->mountpoint);
	}
	return NULL;
}

static bool is_imapfs_mount(const char *mountpoint)
{
	g_autoptr(GPtrArray) mounts = read_mounts();

	for (guint i = 0; i < mounts->len; i++) {
		FsMountEntry *e = g_ptr_array_index(mounts, i);

		if (strcmp(e->fstype, FSTYPE) == 0 &&
		    strcmp(e->mountpoint, mountpoint) == 0)
			return true;
	}
	return false;
}

/* 1 when dir holds anything, 0 when empty, -errno. */
static int has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (de = readdir(d)))
		found = strcmp(de->d_name, ".") != 0 &&
			strcmp(de->d_name, "..") != 0;
	closedir(d);
	return found;
}

int fs_mountcheck_mountpoint(const char *mountpoint, bool nonempty,
			     GError **error)
{
	int r;

	if (is_imapfs_mount(mountpoint)) {
		fs_options_error(error,
				 "%s is already mounted by imapfs; unmount it "
				 "with fusermount3 -u %s",
				 mountpoint, mountpoint);
		return -1;
	}
	if (nonempty)
		return 0;
	r = has_entries(mountpoint);
	if (r < 0) {
		fs_options_error(error, "mountpoint %s: %s", mountpoint,
				 g_strerror(-r));
		return -1;
	}
	if (r > 0) {
		fs_options_error(error,
				 "mountpoint %s is not empty and the mount "
				 "would hide its files: use an empty "
				 "directory, or -o nonempty to mount over them",
				 mountpoint);
		return -1;
	}
	return 0;
}
