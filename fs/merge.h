/* fs/merge.h: how a folder's cached listing and what the server says now
 * make its new listing. Pure (no I/O, no locks): fs/sync.c does the
 * talking, this does the arithmetic, and tests/unit checks it.
 *
 * Message arrays are GArrays of CacheMessage that own their names (made
 * by fs_merge_messages_new()); listings are CacheFolderIndex, messages in
 * ascending UID order. New listings are written by a CacheIndexBuilder
 * that spills to spill_dir (NULL: kept in the heap), so a merge streams
 * through the old listing instead of copying it.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/index.h"
#include "imap/conn.h"

/* An empty message array whose elements free their names. */
GArray *fs_merge_messages_new(guint reserve);

/* Sort by UID and drop duplicates (a server may answer a UID twice). */
void fs_merge_sort_unique(GArray *msgs);

/* The highest UID in old, 0 when it is empty. */
uint32_t fs_merge_last_uid(const CacheFolderIndex *old);

/* True when st says nothing arrived and nothing left since old (same
 * UIDVALIDITY assumed): UIDNEXT and EXISTS did not move. */
bool fs_merge_unchanged(const CacheFolderIndex *old,
			const ImapMailboxState *st);

/* True when a and b list the same UIDs under the same UIDVALIDITY. */
bool fs_merge_same_uids(const CacheFolderIndex *a, const CacheFolderIndex *b);

/* A listing of all of a folder's messages, as fetched (any order,
 * duplicates allowed), in the state st. Takes msgs. NULL with error set
 * when the listing cannot be written. */
CacheFolderIndex *fs_merge_fresh(const ImapMailboxState *st, GArray *msgs,
				 const char *spill_dir, GError **error);

/* base (all of a folder's messages in the state st) plus msgs (any order,
 * duplicates allowed; on a UID in both, msgs wins). Takes msgs. NULL with
 * error set when the listing cannot be written. */
CacheFolderIndex *fs_merge_add(const CacheFolderIndex *base,
			       const ImapMailboxState *st, GArray *msgs,
			       const char *spill_dir, GError **error);

/* old brought up to st (same UIDVALIDITY): its messages but for those in
 * vanished (QRESYNC's VANISHED, ascending; may be NULL), plus fresh (the
 * messages above old's last UID, any order). With remaining (all UIDs
 * that exist now, ascending, from a UID SEARCH) the old messages kept are
 * exactly those, and vanished is not used. Sorts fresh and drops its
 * duplicates; returns the new listing and empties fresh (its names move
 * into it); or NULL, with fresh kept, when remaining is NULL and the
 * count does not come to st->exists: some messages went away that
 * vanished did not name; ask which remain. NULL with error set when the
 * listing cannot be written. */
CacheFolderIndex *fs_merge_delta(const CacheFolderIndex *old,
				 const ImapMailboxState *st, GArray *fresh,
				 const GArray *vanished,
				 const GArray *remaining, const char *spill_dir,
				 GError **error);

/* Call fn for each message of old that now does not list (all of them
 * when the UIDVALIDITY differs). */
typedef void (*FsMergeGoneFn)(void *user_data, const CacheMessage *m);
void fs_merge_foreach_gone(const CacheFolderIndex *old,
			   const CacheFolderIndex *now, FsMergeGoneFn fn,
			   void *user_data);

/* One message's flags as a resync found them (see fs_merge_flags()). */
typedef struct {
	uint32_t uid;
	uint8_t flags;     /* CACHE_FLAG_*, CACHE_FLAG_KNOWN set */
	uint16_t keywords; /* cache_keywords_intern() id */
} FsMergeFlags;

/* Set the flags of the messages of idx named in updates (any order;
 * sorted here; in the overlay of idx). Returns how many messages
 * changed. */
guint fs_merge_flags(CacheFolderIndex *idx, GArray *updates);

/* Call fn for each message whose flags differ between old and now (same
 * UIDVALIDITY; messages only in one of them are not reported). */
typedef void (*FsMergeFlagsFn)(void *user_data, const CacheMessage *old,
			       const CacheMessage *now);
void fs_merge_foreach_flag_change(const CacheFolderIndex *old,
				  const CacheFolderIndex *now,
				  FsMergeFlagsFn fn, void *user_data);
