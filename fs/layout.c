/* fs/layout.c: the table of layouts and the eml layout's two hooks. No
 * state: each layout keeps its per-mount state behind FsMount.layout_data. */
#include "fs/layout.h"

#include <string.h>

static const char *eml_entry_name(const CacheMessage *m, char *buf)
{
	return m->name;
}

static bool eml_entry_matches(const CacheMessage *m, const char *name)
{
	return strcmp(m->name, name) == 0;
}

const FsLayout fs_layout_eml = {
	.name = "eml",
	.entry_name = eml_entry_name,
	.entry_matches = eml_entry_matches,
};

const FsLayout fs_layout_maildir = {
	.name = "maildir",
	.maildir = true,
	.entry_name = eml_entry_name,
	.entry_matches = eml_entry_matches,
};

const FsLayout *fs_layout_get(FsLayoutKind kind)
{
	switch (kind) {
	case FS_LAYOUT_PARTS:
		return &fs_layout_parts;
	case FS_LAYOUT_MAILDIR:
		return &fs_layout_maildir;
	case FS_LAYOUT_EML:
		break;
	}
	return &fs_layout_eml;
}
