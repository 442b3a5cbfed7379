/* fs/merge.c: listing arithmetic for resyncs (see fs/merge.h).
 *
 * Pure and stateless: no locks, no I/O of its own (new listings are
 * written through a CacheIndexBuilder). Inputs are read only except the
 * arrays a function is documented to take or empty.
 */
#include "fs/merge.h"

static void message_clear(gpointer p)
{
	g_free((char *)((CacheMessage *)p)->name);
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
			g_clear_pointer((char **)&m->name, g_free);
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
	guint n = cache_folder_index_count(old);

	return n ? cache_folder_index_uid_at(old, n - 1) : 0;
}

bool fs_merge_unchanged(const CacheFolderIndex *old, const ImapMailboxState *st)
{
	return st->uidnext != 0 && st->uidnext == old->uidnext &&
	       st->exists == old->exists &&
	       st->exists == cache_folder_index_count(old);
}

bool fs_merge_same_uids(const CacheFolderIndex *a, const CacheFolderIndex *b)
{
	guint n = cache_folder_index_count(a);

	if (a->uidvalidity != b->uidvalidity ||
	    n != cache_folder_index_count(b))
		return false;
	if (a->image == b->image)
		return true;
	for (guint i = 0; i < n; i++)
		if (cache_folder_index_uid_at(a, i) !=
		    cache_folder_index_uid_at(b, i))
			return false;
	return true;
}

static bool in_sorted(const GArray *uids, guint *j, uint32_t uid)
{
	while (*j < uids->len && g_array_index(uids, uint32_t, *j) < uid)
		(*j)++;
	return *j < uids->len && g_array_index(uids, uint32_t, *j) == uid;
}

/* Which messages of old a merge keeps: those in keep, or when keep is
 * NULL those not in drop (may be NULL). */
typedef struct {
	const CacheFolderIndex *old;
	const GArray *keep, *drop;
	guint j;
} OldFilter;

static bool old_kept(OldFilter *f, uint32_t uid)
{
	return f->keep ? in_sorted(f->keep, &f->j, uid)
		       : !(f->drop && in_sorted(f->drop, &f->j, uid));
}

static guint count_kept(const CacheFolderIndex *old, const GArray *keep,
			const GArray *drop)
{
	OldFilter f = { old, keep, drop, 0 };
	guint n = cache_folder_index_count(old), kept = 0;

	for (guint i = 0; i < n; i++)
		kept += old_kept(&f, cache_folder_index_uid_at(old, i));
	return kept;
}

/* The new listing in the state st: old's kept messages and fresh (sorted,
 * unique; wins on a UID in both), in one pass; empties fresh. */
static CacheFolderIndex *merge_into(OldFilter *f, const ImapMailboxState *st,
				    GArray *fresh, const char *spill_dir,
				    GError **error)
{
	CacheIndexBuilder *b = cache_index_builder_new(spill_dir);
	CacheFolderIndex hdr = { 0 };
	guint n = f->old ? cache_folder_index_count(f->old) : 0;
	guint i = 0, k = 0;

	while (i < n || k < fresh->len) {
		const CacheMessage *nw =
		    k < fresh->len ? &g_array_index(fresh, CacheMessage, k)
				   : NULL;
		CacheMessage m;

		if (i < n) {
			uint32_t u = cache_folder_index_uid_at(f->old, i);

			if (!nw || u < nw->uid) {
				i++;
				if (!old_kept(f, u))
					continue;
				cache_folder_index_get(f->old, i - 1, &m);
				cache_index_builder_add(b, &m);
				continue;
			}
			if (u == nw->uid)
				i++;
		}
		cache_index_builder_add(b, nw);
		k++;
	}
	g_array_set_size(fresh, 0);
	hdr.uidvalidity = st->uidvalidity;
	hdr.exists = st->exists;
	hdr.highestmodseq = st->highestmodseq;
	hdr.uidnext =
	    st->uidnext ? st->uidnext : cache_index_builder_last_uid(b) + 1;
	return cache_index_builder_finish(b, &hdr, error);
}

CacheFolderIndex *fs_merge_fresh(const ImapMailboxState *st, GArray *msgs,
				 const char *spill_dir, GError **error)
{
	return fs_merge_add(NULL, st, msgs, spill_dir, error);
}

CacheFolderIndex *fs_merge_add(const CacheFolderIndex *base,
			       const ImapMailboxState *st, GArray *msgs,
			       const char *spill_dir, GError **error)
{
	OldFilter f = { base, NULL, NULL, 0 };
	CacheFolderIndex *idx;

	fs_merge_sort_unique(msgs);
	idx = merge_into(&f, st, msgs, spill_dir, error);
	g_array_unref(msgs);
	return idx;
}

CacheFolderIndex *fs_merge_delta(const CacheFolderIndex *old,
				 const ImapMailboxState *st, GArray *fresh,
				 const GArray *vanished,
				 const GArray *remaining, const char *spill_dir,
				 GError **error)
{
	OldFilter f = { old, remaining, remaining ? NULL : vanished, 0 };
	uint32_t last = fs_merge_last_uid(old);
	guint above = 0;

	fs_merge_sort_unique(fresh);
	/* fresh holds the messages above old's last UID. */
	for (guint i = 0; i < fresh->len; i++)
		above += g_array_index(fresh, CacheMessage, i).uid > last;
	if (above != fresh->len) {
		guint out = 0;

		for (guint i = 0; i < fresh->len; i++) {
			CacheMessage *m =
			    &g_array_index(fresh, CacheMessage, i);

			if (m->uid <= last) {
				g_clear_pointer((char **)&m->name, g_free);
				continue;
			}
			g_array_index(fresh, CacheMessage, out++) = *m;
			m->name = NULL;
		}
		g_array_set_size(fresh, out);
	}
	if (!remaining &&
	    count_kept(old, NULL, vanished) + fresh->len != st->exists)
		return NULL;
	return merge_into(&f, st, fresh, spill_dir, error);
}

void fs_merge_foreach_gone(const CacheFolderIndex *old,
			   const CacheFolderIndex *now, FsMergeGoneFn fn,
			   void *user_data)
{
	bool all = old->uidvalidity != now->uidvalidity;
	guint n = cache_folder_index_count(old);
	guint nn = cache_folder_index_count(now);
	guint j = 0;

	for (guint i = 0; i < n; i++) {
		uint32_t uid = cache_folder_index_uid_at(old, i);
		CacheMessage m;

		if (!all) {
			while (j < nn &&
			       cache_folder_index_uid_at(now, j) < uid)
				j++;
			if (j < nn && cache_folder_index_uid_at(now, j) == uid)
				continue;
		}
		cache_folder_index_get(old, i, &m);
		fn(user_data, &m);
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
	guint changed = 0;

	g_array_sort(updates, cmp_flags_uid);
	for (guint i = 0; i < updates->len; i++) {
		const FsMergeFlags *u =
		    &g_array_index(updates, FsMergeFlags, i);
		CacheMessage m;

		if (!cache_folder_index_find(idx, u->uid, &m, NULL) ||
		    (m.flags == u->flags && m.keywords == u->keywords))
			continue;
		cache_folder_index_set_flags(idx, u->uid, u->flags,
					     u->keywords);
		changed++;
	}
	return changed;
}

void fs_merge_foreach_flag_change(const CacheFolderIndex *old,
				  const CacheFolderIndex *now,
				  FsMergeFlagsFn fn, void *user_data)
{
	guint n = cache_folder_index_count(old);
	guint nn = cache_folder_index_count(now);
	guint j = 0;

	if (old->uidvalidity != now->uidvalidity)
		return;
	if (old->image == now->image &&
	    !g_atomic_int_get(&((CacheFolderIndex *)old)->overlay_len) &&
	    !g_atomic_int_get(&((CacheFolderIndex *)now)->overlay_len))
		return; /* same records, none changed in place */
	for (guint i = 0; i < n; i++) {
		uint32_t uid = cache_folder_index_uid_at(old, i);
		CacheMessage m, o;

		while (j < nn && cache_folder_index_uid_at(now, j) < uid)
			j++;
		if (j >= nn)
			return;
		if (cache_folder_index_uid_at(now, j) != uid)
			continue;
		cache_folder_index_get(old, i, &m);
		cache_folder_index_get(now, j, &o);
		if (o.flags != m.flags || o.keywords != m.keywords)
			fn(user_data, &m, &o);
	}
}
