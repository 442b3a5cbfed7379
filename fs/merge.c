/* fs/merge.c: listing arithmetic for resyncs (see fs/merge.h).
 *
 * Pure and stateless: no locks, no I/O. Inputs are read only except the
 * arrays a function is documented to take or empty.
 */
#include "fs/merge.h"

static void message_clear(gpointer p)
{
	g_free(((CacheMessage *)p)->name);
}

GArray *fs_merge_messages_new(guint reserve)
{
	GArray *a =
	    g_array_sized_new(FALSE, TRUE, sizeof(CacheMessage), reserve);

	g_array_set_clear_func(a, message_clear);
	return a;
}

static int cmp_uid(gconstpointer a, gconstpointer b)
{
	uint32_t x = ((const CacheMessage *)a)->uid;
	uint32_t y = ((const CacheMessage *)b)->uid;

	return x < y ? -1 : x > y;
}

void fs_merge_sort_unique(GArray *msgs)
{
	guint out = 0;

	g_array_sort(msgs, cmp_uid);
	for (guint i = 0; i < msgs->len; i++) {
		CacheMessage *m = &g_array_index(msgs, CacheMessage, i);

		if (out > 0 &&
		    g_array_index(msgs, CacheMessage, out - 1).uid == m->uid) {
			g_clear_pointer(&m->name, g_free);
			continue;
		}
		if (out != i) {
			g_array_index(msgs, CacheMessage, out) = *m;
			m->name = NULL; /* moved */
		}
		out++;
	}
	/* Shrinking clears the slots left over: their names are NULL. */
	g_array_set_size(msgs, out);
}

uint32_t fs_merge_last_uid(const CacheFolderIndex *old)
{
	const GArray *a = old->messages;

	return a->len ? g_array_index(a, CacheMessage, a->len - 1).uid : 0;
}

bool fs_merge_unchanged(const CacheFolderIndex *old, const ImapMailboxState *st)
{
	return st->uidnext != 0 && st->uidnext == old->uidnext &&
	       st->exists == old->exists && st->exists == old->messages->len;
}

bool fs_merge_same_uids(const CacheFolderIndex *a, const CacheFolderIndex *b)
{
	if (a->uidvalidity != b->uidvalidity ||
	    a->messages->len != b->messages->len)
		return false;
	for (guint i = 0; i < a->messages->len; i++)
		if (g_array_index(a->messages, CacheMessage, i).uid !=
		    g_array_index(b->messages, CacheMessage, i).uid)
			return false;
	return true;
}

/* Takes msgs (sorted, unique). */
static CacheFolderIndex *index_from(const ImapMailboxState *st, GArray *msgs)
{
	CacheFolderIndex *idx = cache_folder_index_new();
	uint32_t last =
	    msgs->len ? g_array_index(msgs, CacheMessage, msgs->len - 1).uid
		      : 0;

	g_array_unref(idx->messages);
	idx->messages = msgs;
	idx->uidvalidity = st->uidvalidity;
	idx->exists = st->exists;
	idx->highestmodseq = st->highestmodseq;
	idx->uidnext = st->uidnext ? st->uidnext : last + 1;
	return idx;
}

CacheFolderIndex *fs_merge_fresh(const ImapMailboxState *st, GArray *msgs)
{
	fs_merge_sort_unique(msgs);
	return index_from(st, msgs);
}

static void append_copy(GArray *out, const CacheMessage *m)
{
	CacheMessage copy = *m;

	copy.name = g_strdup(m->name);
	g_array_append_val(out, copy);
}

static bool in_sorted(const GArray *uids, guint *j, uint32_t uid)
{
	while (*j < uids->len && g_array_index(uids, uint32_t, *j) < uid)
		(*j)++;
	return *j < uids->len && g_array_index(uids, uint32_t, *j) == uid;
}

/* Copy the messages of old that are in keep, or when keep is NULL those
 * that are not in drop (may be NULL), into out. */
static void copy_old(GArray *out, const CacheFolderIndex *old,
		     const GArray *keep, const GArray *drop)
{
	guint j = 0;

	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);

		if (keep ? in_sorted(keep, &j, m->uid)
			 : !(drop && in_sorted(drop, &j, m->uid)))
			append_copy(out, m);
	}
}

CacheFolderIndex *fs_merge_delta(const CacheFolderIndex *old,
				 const ImapMailboxState *st, GArray *fresh,
				 const GArray *vanished,
				 const GArray *remaining)
{
	GArray *msgs;

	fs_merge_sort_unique(fresh);
	msgs = fs_merge_messages_new(old->messages->len + fresh->len);
	copy_old(msgs, old, remaining, vanished);
	if (!remaining && msgs->len + fresh->len != st->exists) {
		g_array_unref(msgs);
		return NULL;
	}
	for (guint i = 0; i < fresh->len; i++) {
		CacheMessage *m = &g_array_index(fresh, CacheMessage, i);
		CacheMessage moved = *m;

		m->name = NULL; /* now owned by msgs */
		g_array_append_val(msgs, moved);
	}
	g_array_set_size(fresh, 0);
	return index_from(st, msgs);
}

void fs_merge_foreach_gone(const CacheFolderIndex *old,
			   const CacheFolderIndex *now, FsMergeGoneFn fn,
			   void *user_data)
{
	bool all = old->uidvalidity != now->uidvalidity;
	guint j = 0;

	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);
		const CacheMessage *n;

		if (!all) {
			while (
			    j < now->messages->len &&
			    g_array_index(now->messages, CacheMessage, j).uid <
				m->uid)
				j++;
			n = j < now->messages->len
				? &g_array_index(now->messages, CacheMessage, j)
				: NULL;
			if (n && n->uid == m->uid)
				continue;
		}
		fn(user_data, m);
	}
}

static int cmp_flags_uid(gconstpointer a, gconstpointer b)
{
	uint32_t x = ((const FsMergeFlags *)a)->uid;
	uint32_t y = ((const FsMergeFlags *)b)->uid;

	return x < y ? -1 : x > y;
}

guint fs_merge_flags(CacheFolderIndex *idx, GArray *updates)
{
	guint changed = 0, j = 0;

	g_array_sort(updates, cmp_flags_uid);
	for (guint i = 0; i < updates->len; i++) {
		const FsMergeFlags *u =
		    &g_array_index(updates, FsMergeFlags, i);
		CacheMessage *m = NULL;

		/* Both ascending: one walk, no search per update. */
		while (j < idx->messages->len &&
		       g_array_index(idx->messages, CacheMessage, j).uid <
			   u->uid)
			j++;
		if (j < idx->messages->len &&
		    g_array_index(idx->messages, CacheMessage, j).uid == u->uid)
			m = &g_array_index(idx->messages, CacheMessage, j);
		if (!m || (m->flags == u->flags && m->keywords == u->keywords))
			continue;
		m->flags = u->flags;
		m->keywords = u->keywords;
		changed++;
	}
	return changed;
}

void fs_merge_foreach_flag_change(const CacheFolderIndex *old,
				  const CacheFolderIndex *now,
				  FsMergeFlagsFn fn, void *user_data)
{
	guint j = 0;

	if (old->uidvalidity != now->uidvalidity)
		return;
	for (guint i = 0; i < old->messages->len; i++) {
		const CacheMessage *m =
		    &g_array_index(old->messages, CacheMessage, i);
		const CacheMessage *n;

		while (j < now->messages->len &&
		       g_array_index(now->messages, CacheMessage, j).uid <
			   m->uid)
			j++;
		if (j >= now->messages->len)
			return;
		n = &g_array_index(now->messages, CacheMessage, j);
		if (n->uid == m->uid &&
		    (n->flags != m->flags || n->keywords != m->keywords))
			fn(user_data, m, n);
	}
}
