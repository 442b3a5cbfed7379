/* fs/parts-lazy.h: the parts layout of a message that is not cached,
 * fetched by section (fs/parts-lazy.c). */
#pragma once

#include <stdint.h>

#include "fs/mount.h"
#include "fs/parts-mime.h"
#include "fs/tree.h"

/* The tree of message uid (size bytes, folder f at uidvalidity) from its
 * BODYSTRUCTURE: attachments are PARTS_LAZY_SECTION items with exact
 * sizes (PARTS_LAZY_DECODE ones without BINARY), message.eml a
 * PARTS_LAZY_WHOLE one. NULL when the message is
 * better read whole (a single part, an unusual
 * structure, a failed fetch): the caller then does. */
PartsItem *fs_parts_lazy_build(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
			       uint32_t uid, uint64_t size, const char *tmpdir);

/* The decoded bytes of item it (PARTS_LAZY_SECTION: BINARY.PEEK;
 * PARTS_LAZY_DECODE: BODY.PEEK decoded here) in an unlinked temp file
 * under tmpdir: the fd with *size set, or -errno. it is only read. */
int fs_parts_lazy_fetch(FsMount *mnt, FsFolder *f, uint32_t uidvalidity,
			uint32_t uid, const PartsItem *it, const char *tmpdir,
			uint64_t *size);
