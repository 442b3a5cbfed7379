/* Unit tests for fs/merge.c: how a cached listing and a resync's answers
 * (a fresh listing, new messages, QRESYNC's VANISHED, a UID SEARCH after
 * EXPUNGEs) make the new listing, and what the kernel must forget. */
#include "fs/merge.h"

#include <glib.h>
#include <string.h>

/* Messages named "u<UID>", sizes 100 * UID, from a 0-terminated list. */
static GArray *msgs_of(const uint32_t *uids)
{
	GArray *a = fs_merge_messages_new(0);

	for (; *uids; uids++) {
		CacheMessage m = { .uid = *uids, .size = 100 * *uids };

		m.name = g_strdup_printf("u%u", *uids);
		g_array_append_val(a, m);
	}
	return a;
}

static CacheMessage find_in(const CacheFolderIndex *idx, uint32_t uid)
{
	CacheMessage m = { 0 };

	g_assert_true(cache_folder_index_find(idx, uid, &m, NULL));
	return m;
}

static GArray *uids_of(const uint32_t *uids)
{
	GArray *a = g_array_new(FALSE, FALSE, sizeof(uint32_t));

	for (; *uids; uids++)
		g_array_append_val(a, *uids);
	return a;
}

static CacheFolderIndex *listing_of(uint32_t uidvalidity, uint32_t uidnext,
				    const uint32_t *uids)
{
	ImapMailboxState st = { uidvalidity, uidnext, 0, 7 };
	GArray *msgs = msgs_of(uids);

	st.exists = msgs->len;
	return fs_merge_fresh(&st, msgs, NULL, NULL);
}

/* The listing holds exactly uids (0-terminated), each with its own name
 * and size. */
static void assert_uids(const CacheFolderIndex *idx, const uint32_t *uids)
{
	guint n = 0;

	for (; uids[n]; n++) {
		CacheMessage m;
		g_autofree char *name = g_strdup_printf("u%u", uids[n]);

		g_assert_cmpuint(n, <, cache_folder_index_count(idx));
		cache_folder_index_get(idx, n, &m);
		g_assert_cmpuint(m.uid, ==, uids[n]);
		g_assert_cmpstr(m.name, ==, name);
		g_assert_cmpuint(m.size, ==, 100 * uids[n]);
	}
	g_assert_cmpuint(cache_folder_index_count(idx), ==, n);
}

static void test_fresh(void)
{
	static const uint32_t in[] = { 9, 3, 5, 3, 1, 9, 0 };
	static const uint32_t want[] = { 1, 3, 5, 9, 0 };
	ImapMailboxState st = { 42, 0, 4, 1234 };
	CacheFolderIndex *idx = fs_merge_fresh(&st, msgs_of(in), NULL, NULL);

	/* Sorted, duplicates dropped, the state copied. */
	assert_uids(idx, want);
	g_assert_cmpuint(idx->uidvalidity, ==, 42);
	g_assert_cmpuint(idx->exists, ==, 4);
	g_assert_cmpuint(idx->highestmodseq, ==, 1234);
	/* No UIDNEXT from the server: one past the last UID. */
	g_assert_cmpuint(idx->uidnext, ==, 10);
	g_assert_cmpuint(fs_merge_last_uid(idx), ==, 9);
	cache_folder_index_free(idx);

	st.uidnext = 20;
	st.exists = 0;
	idx = fs_merge_fresh(&st, fs_merge_messages_new(0), NULL, NULL);
	g_assert_cmpuint(cache_folder_index_count(idx), ==, 0);
	g_assert_cmpuint(idx->uidnext, ==, 20);
	g_assert_cmpuint(fs_merge_last_uid(idx), ==, 0);
	cache_folder_index_free(idx);
}

static void test_unchanged(void)
{
	static const uint32_t old_uids[] = { 1, 2, 4, 0 };
	CacheFolderIndex *old = listing_of(5, 5, old_uids);
	ImapMailboxState st = { 5, 5, 3, 0 };

	g_assert_true(fs_merge_unchanged(old, &st));
	st.uidnext = 0; /* the server did not say: cannot tell */
	g_assert_false(fs_merge_unchanged(old, &st));
	st.uidnext = 6;
	g_assert_false(fs_merge_unchanged(old, &st));
	st.uidnext = 5;
	st.exists = 2;
	g_assert_false(fs_merge_unchanged(old, &st));
	/* The cached count says 3 but the listing holds fewer. */
	old->exists = 2;
	g_assert_false(fs_merge_unchanged(old, &st));
	cache_folder_index_free(old);
}

static void test_new_messages(void)
{
	static const uint32_t old_uids[] = { 1, 2, 4, 0 };
	static const uint32_t new_uids[] = { 7, 5, 7, 0 };
	static const uint32_t want[] = { 1, 2, 4, 5, 7, 0 };
	CacheFolderIndex *old = listing_of(5, 5, old_uids);
	ImapMailboxState st = { 5, 8, 5, 9 };
	g_autoptr(GArray) fresh = msgs_of(new_uids);
	CacheFolderIndex *idx =
	    fs_merge_delta(old, &st, fresh, NULL, NULL, NULL, NULL);

	g_assert_nonnull(idx);
	assert_uids(idx, want);
	g_assert_cmpuint(fresh->len, ==, 0);
	g_assert_cmpuint(idx->uidnext, ==, 8);
	g_assert_cmpuint(idx->exists, ==, 5);
	g_assert_cmpuint(idx->highestmodseq, ==, 9);
	/* The old listing is read only. */
	assert_uids(old, old_uids);
	g_assert_false(fs_merge_same_uids(old, idx));
	cache_folder_index_free(idx);
	cache_folder_index_free(old);
}

static void test_vanished(void)
{
	static const uint32_t old_uids[] = { 1, 2, 4, 6, 0 };
	static const uint32_t gone[] = { 2, 3, 6, 0 }; /* 3: never listed */
	static const uint32_t new_uids[] = { 8, 0 };
	static const uint32_t want[] = { 1, 4, 8, 0 };
	CacheFolderIndex *old = listing_of(5, 7, old_uids);
	ImapMailboxState st = { 5, 9, 3, 0 };
	g_autoptr(GArray) fresh = msgs_of(new_uids);
	g_autoptr(GArray) vanished = uids_of(gone);
	CacheFolderIndex *idx =
	    fs_merge_delta(old, &st, fresh, vanished, NULL, NULL, NULL);

	g_assert_nonnull(idx);
	assert_uids(idx, want);
	cache_folder_index_free(idx);
	cache_folder_index_free(old);
}

/* EXPUNGEs without VANISHED: the count does not add up, so the caller
 * asks which UIDs remain and merges again. */
static void test_expunged_needs_search(void)
{
	static const uint32_t old_uids[] = { 1, 2, 4, 6, 0 };
	static const uint32_t new_uids[] = { 9, 8, 0 };
	static const uint32_t left[] = { 2, 6, 8, 9, 0 };
	static const uint32_t want[] = { 2, 6, 8, 9, 0 };
	CacheFolderIndex *old = listing_of(5, 7, old_uids);
	ImapMailboxState st = { 5, 10, 4, 0 };
	g_autoptr(GArray) fresh = msgs_of(new_uids);
	g_autoptr(GArray) remaining = uids_of(left);
	CacheFolderIndex *idx =
	    fs_merge_delta(old, &st, fresh, NULL, NULL, NULL, NULL);

	g_assert_null(idx);
	g_assert_cmpuint(fresh->len, ==, 2); /* kept for the second try */
	idx = fs_merge_delta(old, &st, fresh, NULL, remaining, NULL, NULL);
	g_assert_nonnull(idx);
	assert_uids(idx, want);
	g_assert_cmpuint(fresh->len, ==, 0);
	cache_folder_index_free(idx);
	cache_folder_index_free(old);
}

/* A QRESYNC answer that does not add up (a VANISHED too short) falls back
 * to the search as well; with remaining, vanished is not used. */
static void test_vanished_short(void)
{
	static const uint32_t old_uids[] = { 1, 2, 3, 0 };
	static const uint32_t gone[] = { 1, 0 };
	static const uint32_t left[] = { 3, 0 };
	CacheFolderIndex *old = listing_of(5, 4, old_uids);
	ImapMailboxState st = { 5, 4, 1, 0 };
	g_autoptr(GArray) fresh = fs_merge_messages_new(0);
	g_autoptr(GArray) vanished = uids_of(gone);
	g_autoptr(GArray) remaining = uids_of(left);
	CacheFolderIndex *idx =
	    fs_merge_delta(old, &st, fresh, vanished, NULL, NULL, NULL);

	g_assert_null(idx);
	idx = fs_merge_delta(old, &st, fresh, vanished, remaining, NULL, NULL);
	assert_uids(idx, left);
	cache_folder_index_free(idx);
	cache_folder_index_free(old);
}

static void test_same_uids(void)
{
	static const uint32_t a_uids[] = { 1, 2, 3, 0 };
	static const uint32_t b_uids[] = { 1, 2, 4, 0 };
	CacheFolderIndex *a = listing_of(5, 4, a_uids);
	CacheFolderIndex *a2 = listing_of(5, 9, a_uids);
	CacheFolderIndex *b = listing_of(5, 5, b_uids);
	CacheFolderIndex *c = listing_of(6, 4, a_uids);

	g_assert_true(fs_merge_same_uids(a, a2));
	g_assert_false(fs_merge_same_uids(a, b));
	g_assert_false(fs_merge_same_uids(a, c));
	cache_folder_index_free(a);
	cache_folder_index_free(a2);
	cache_folder_index_free(b);
	cache_folder_index_free(c);
}

static void collect_gone(void *user_data, const CacheMessage *m)
{
	g_array_append_val((GArray *)user_data, m->uid);
}

static void test_gone(void)
{
	static const uint32_t old_uids[] = { 1, 2, 4, 6, 0 };
	static const uint32_t now_uids[] = { 2, 3, 6, 7, 0 };
	CacheFolderIndex *old = listing_of(5, 7, old_uids);
	CacheFolderIndex *now = listing_of(5, 8, now_uids);
	CacheFolderIndex *other = listing_of(6, 8, old_uids);
	g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(uint32_t));

	fs_merge_foreach_gone(old, now, collect_gone, got);
	g_assert_cmpuint(got->len, ==, 2);
	g_assert_cmpuint(g_array_index(got, uint32_t, 0), ==, 1);
	g_assert_cmpuint(g_array_index(got, uint32_t, 1), ==, 4);
	/* Another UIDVALIDITY: every old name goes. */
	g_array_set_size(got, 0);
	fs_merge_foreach_gone(old, other, collect_gone, got);
	g_assert_cmpuint(got->len, ==, 4);
	cache_folder_index_free(old);
	cache_folder_index_free(now);
	cache_folder_index_free(other);
}

/* Random deltas: the result is always old - vanished + fresh, sorted and
 * unique, whenever the count adds up. */
static void test_random(void)
{
	GRand *rand = g_rand_new_with_seed(10);

	for (int round = 0; round < 200; round++) {
		g_autoptr(GArray) old_msgs = fs_merge_messages_new(0);
		g_autoptr(GArray) fresh = fs_merge_messages_new(0);
		g_autoptr(GArray) gone = g_array_new(FALSE, FALSE, 4);
		g_autoptr(GArray) want = g_array_new(FALSE, FALSE, 4);
		ImapMailboxState st = { 1, 0, 0, 0 };
		CacheFolderIndex *old, *idx;
		uint32_t uid = 0;

		for (int i = g_rand_int_range(rand, 0, 30); i > 0; i--) {
			CacheMessage m = { .uid = uid +=
					   g_rand_int_range(rand, 1, 4) };

			m.name = g_strdup_printf("%u", m.uid);
			g_array_append_val(old_msgs, m);
			if (g_rand_boolean(rand))
				g_array_append_val(gone, m.uid);
			else
				g_array_append_val(want, m.uid);
		}
		st.exists = old_msgs->len;
		old =
		    fs_merge_fresh(&st, g_steal_pointer(&old_msgs), NULL, NULL);
		for (int i = g_rand_int_range(rand, 0, 5); i > 0; i--) {
			CacheMessage m = { .uid = uid +=
					   g_rand_int_range(rand, 1, 4) };

			m.name = g_strdup_printf("%u", m.uid);
			g_array_append_val(fresh, m);
			g_array_append_val(want, m.uid);
		}
		st.exists = want->len;
		idx = fs_merge_delta(old, &st, fresh, gone, NULL, NULL, NULL);
		g_assert_nonnull(idx);
		g_assert_cmpuint(cache_folder_index_count(idx), ==, want->len);
		for (guint i = 0; i < want->len; i++)
			g_assert_cmpuint(cache_folder_index_uid_at(idx, i), ==,
					 g_array_index(want, uint32_t, i));
		cache_folder_index_free(idx);
		cache_folder_index_free(old);
	}
	g_rand_free(rand);
}

static void collect_flag_change(void *user_data, const CacheMessage *old,
				const CacheMessage *now)
{
	g_assert_cmpuint(old->uid, ==, now->uid);
	g_array_append_val((GArray *)user_data, now->uid);
}

/* Flag updates (any order, some for UIDs not listed) land on their
 * messages; the changes are reported message by message. */
static void test_flags(void)
{
	static const uint32_t uids[] = { 2, 5, 9, 12, 0 };
	CacheFolderIndex *old = listing_of(7, 13, uids);
	CacheFolderIndex *now = cache_folder_index_copy(old);
	g_autoptr(GArray) up = g_array_new(FALSE, FALSE, sizeof(FsMergeFlags));
	g_autoptr(GArray) seen = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	FsMergeFlags f[] = {
		{ 12, 0x81, 3 }, /* changed */
		{ 3, 0x81, 0 },  /* not listed */
		{ 2, 0x00, 0 },  /* same as before */
		{ 9, 0x85, 0 },  /* changed */
		{ 99, 0x81, 0 }, /* not listed */
	};

	g_array_append_vals(up, f, G_N_ELEMENTS(f));
	g_assert_cmpuint(fs_merge_flags(now, up), ==, 2);
	g_assert_cmpuint(find_in(now, 12).flags, ==, 0x81);
	g_assert_cmpuint(find_in(now, 12).keywords, ==, 3);
	g_assert_cmpuint(find_in(now, 9).flags, ==, 0x85);
	g_assert_cmpuint(find_in(now, 5).flags, ==, 0);
	g_assert_false(cache_folder_index_find(now, 3, NULL, NULL));
	fs_merge_foreach_flag_change(old, now, collect_flag_change, seen);
	g_assert_cmpuint(seen->len, ==, 2);
	g_assert_cmpuint(g_array_index(seen, uint32_t, 0), ==, 9);
	g_assert_cmpuint(g_array_index(seen, uint32_t, 1), ==, 12);
	/* Another UIDVALIDITY: nothing to compare. */
	g_array_set_size(seen, 0);
	now->uidvalidity = 8;
	fs_merge_foreach_flag_change(old, now, collect_flag_change, seen);
	g_assert_cmpuint(seen->len, ==, 0);
	cache_folder_index_free(old);
	cache_folder_index_free(now);
}

/* Messages the server sent out of UID order are merged into what was
 * streamed: sorted, and on a UID in both the later answer wins. */
static void test_add(void)
{
	static const uint32_t base_uids[] = { 1, 3, 5, 0 };
	static const uint32_t late[] = { 4, 2, 3, 4, 0 };
	static const uint32_t want[] = { 1, 2, 3, 4, 5, 0 };
	ImapMailboxState st = { 42, 6, 5, 9 };
	CacheFolderIndex *base = listing_of(42, 6, base_uids);
	GArray *msgs = msgs_of(late);
	CacheFolderIndex *idx;
	CacheMessage m;

	g_array_index(msgs, CacheMessage, 2).size = 7;
	idx = fs_merge_add(base, &st, msgs, NULL, NULL);
	g_assert_nonnull(idx);
	g_assert_cmpuint(cache_folder_index_count(idx), ==, 5);
	for (guint i = 0; want[i]; i++)
		g_assert_cmpuint(cache_folder_index_uid_at(idx, i), ==,
				 want[i]);
	g_assert_true(cache_folder_index_find(idx, 3, &m, NULL));
	g_assert_cmpuint(m.size, ==, 7);
	g_assert_cmpuint(idx->uidnext, ==, 6);
	g_assert_cmpuint(idx->highestmodseq, ==, 9);
	cache_folder_index_free(idx);
	cache_folder_index_free(base);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/merge/fresh", test_fresh);
	g_test_add_func("/merge/unchanged", test_unchanged);
	g_test_add_func("/merge/new-messages", test_new_messages);
	g_test_add_func("/merge/add", test_add);
	g_test_add_func("/merge/vanished", test_vanished);
	g_test_add_func("/merge/expunged-needs-search",
			test_expunged_needs_search);
	g_test_add_func("/merge/vanished-short", test_vanished_short);
	g_test_add_func("/merge/same-uids", test_same_uids);
	g_test_add_func("/merge/gone", test_gone);
	g_test_add_func("/merge/random", test_random);
	g_test_add_func("/merge/flags", test_flags);
	return g_test_run();
}
