/* fs/meta.h: message metadata for every layout: the current IMAP flags of
 * a message, and a hook that hears of flag changes (a Maildir layout
 * renames its files there).
 *
 * Flags come from the folder's listing (fetched with it, kept current by
 * resyncs: CONDSTORE CHANGEDSINCE where offered, a FLAGS fetch otherwise,
 * and NOTIFY FlagChange or IDLE to trigger them). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fs/mount.h"
#include "fs/tree.h"

typedef struct FsMeta FsMeta;

FsMeta *fs_meta_new(void);
void fs_meta_free(FsMeta *meta);

/* Called after a resync installed a listing in which message uid of f
 * (listing folder_id) has other flags than before: old_* and new_* are
 * CACHE_FLAG_* bits and keyword ids (cache/flags.h). Runs on the thread
 * that resynced (the refresh thread, or a FUSE request that found the
 * listing stale), after the new listing is in place, outside every lock;
 * it may call fs_meta_flags() and queue invalidations, and must not
 * block on the network. */
typedef void (*FsMetaFlagsFn)(void *user_data, FsFolder *f, uint32_t folder_id,
			      uint32_t uid, uint8_t old_flags,
			      uint16_t old_keywords, uint8_t new_flags,
			      uint16_t new_keywords);

/* Register fn before the mount starts (not thread-safe against
 * fs_meta_flags_changed()). */
void fs_meta_add_flags_hook(FsMeta *meta, FsMetaFlagsFn fn, void *user_data);

/* Tell the hooks (fs/sync.c calls it). */
void fs_meta_flags_changed(FsMeta *meta, FsFolder *f, uint32_t folder_id,
			   uint32_t uid, uint8_t old_flags,
			   uint16_t old_keywords, uint8_t new_flags,
			   uint16_t new_keywords);

/* The flags of message uid in f's current listing. Returns 0, -ENOENT
 * when the listing has no such message (or none is loaded), -ENODATA when
 * its flags are not known yet (a listing from an older cache before its
 * first resync). Takes f->lock. */
int fs_meta_flags(FsFolder *f, uint32_t uid, uint8_t *flags,
		  uint16_t *keywords);

/* The same as the server spells them ("\Seen $Label1"). g_free it. */
char *fs_meta_flags_string(FsFolder *f, uint32_t uid);
