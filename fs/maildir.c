/* fs/maildir.c: names, inodes and renames of the maildir layout
 * (fs/maildir.h); fs/ops.c serves the directories.
 *
 * The three directories of folder f have the inode FS_LAYOUT_INO_BITS |
 * f->id << 2 | which: folder ids stay below 2^31, so these never meet a
 * folder, message, .search or hard-link inode. Names come from the
 * listing alone (flags are fetched with it), so a listing of cur/ costs
 * what a folder costs in the eml layout. No state of its own: the flag
 * hook only queues kernel invalidations (fs/inval.c's thread sends them).
 */
#include "fs/maildir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache/flags.h"
#include "fs/layout.h"
#include "fs/meta.h"
#include "fs/names.h"

static const char *const dir_names[] = { NULL, "cur", "new", "tmp" };

fuse_ino_t fs_maildir_ino(const FsFolder *f, int which)
{
	return FS_LAYOUT_INO_BITS | (fuse_ino_t)f->id << 2 | (fuse_ino_t)which;
}

int fs_maildir_resolve(FsMount *mnt, fuse_ino_t ino, FsFolder **f, int *which)
{
	uint64_t id;
	uint32_t folder_id, uid;

	if (!fs_layout_owns(ino))
		return -ENOENT;
	id = (ino & ~FS_LAYOUT_INO_BITS) >> 2;
	*which = (int)(ino & 3);
	if (*which == 0 || id >= (1u << 31))
		return -ENOENT;
	if (fs_tree_resolve(mnt->tree,
			    id == 0 ? FUSE_ROOT_ID : (fuse_ino_t)id << 32, f,
			    &folder_id, &uid) != FS_INO_DIR)
		return -ENOENT;
	return 0;
}

int fs_maildir_which(const char *name)
{
	for (int i = 1; i <= 3; i++)
		if (strcmp(name, dir_names[i]) == 0)
			return i;
	return 0;
}

const char *fs_maildir_dir_name(int which)
{
	return dir_names[which];
}

/* The Maildir info flags, in ASCII order as the Maildir spec asks. */
static void info_flags(uint8_t flags, char *out)
{
	if (flags & CACHE_FLAG_DRAFT)
		*out++ = 'D';
	if (flags & CACHE_FLAG_FLAGGED)
		*out++ = 'F';
	if (flags & CACHE_FLAG_ANSWERED)
		*out++ = 'R';
	if (flags & CACHE_FLAG_SEEN)
		*out++ = 'S';
	if (flags & CACHE_FLAG_DELETED)
		*out++ = 'T';
	*out = '\0';
}

const char *fs_maildir_name(const CacheMessage *m, uint32_t uidvalidity,
			    char *buf)
{
	char fl[8];

	info_flags(m->flags, fl);
	snprintf(buf, FS_NAME_MAX + 1, "%u.%u.imapfs:2,%s", m->uid, uidvalidity,
		 fl);
	return buf;
}

bool fs_maildir_parse_uid(const char *name, uint32_t *uid)
{
	uint64_t v = 0;
	const char *p = name;

	while (*p >= '0' && *p <= '9' && v <= UINT32_MAX)
		v = v * 10 + (uint64_t)(*p++ - '0');
	if (p == name || *p != '.' || v == 0 || v > UINT32_MAX)
		return false;
	*uid = (uint32_t)v;
	return true;
}

const char *fs_maildir_child_name(const char *name, char *buf)
{
	if (!fs_maildir_which(name))
		return name;
	snprintf(buf, FS_NAME_MAX + 1, "%s" FS_MAILDIR_CLASH_SUFFIX, name);
	return buf;
}

const char *fs_maildir_child_real(const char *shown, char *buf)
{
	size_t n = strlen(shown), s = strlen(FS_MAILDIR_CLASH_SUFFIX);

	if (n <= s || n > FS_NAME_MAX ||
	    strcmp(shown + n - s, FS_MAILDIR_CLASH_SUFFIX) != 0)
		return NULL;
	memcpy(buf, shown, n - s);
	buf[n - s] = '\0';
	return fs_maildir_which(buf) ? buf : NULL;
}

/* Flags changed: the old name is gone and cur/ lists a new one. */
static void flags_changed(void *user_data, FsFolder *f, uint32_t folder_id,
			  uint32_t uid, uint8_t old_flags,
			  uint16_t old_keywords, uint8_t new_flags,
			  uint16_t new_keywords)
{
	FsMount *mnt = user_data;
	CacheMessage m = { .uid = uid, .flags = old_flags };
	char name[FS_NAME_MAX + 1];
	uint32_t uidvalidity = 0;
	char a[8], b[8];

	(void)old_keywords;
	(void)new_keywords;
	info_flags(old_flags, a);
	info_flags(new_flags, b);
	if (strcmp(a, b) == 0)
		return; /* keywords only: the name stays */
	g_mutex_lock(&f->lock);
	if (f->listing && f->listing->folder_id == folder_id)
		uidvalidity = f->listing->index->uidvalidity;
	g_mutex_unlock(&f->lock);
	if (!uidvalidity)
		return;
	fs_maildir_name(&m, uidvalidity, name);
	fs_inval_entry(mnt->inval, fs_maildir_ino(f, FS_MAILDIR_CUR), name);
	fs_inval_inode(mnt->inval, fs_maildir_ino(f, FS_MAILDIR_CUR));
}

void fs_maildir_init(FsMount *mnt)
{
	fs_meta_add_flags_hook(mnt->meta, flags_changed, mnt);
}
