/* imap/limit.c: whole-folder commands in UID ranges (see imap/limit.h).
 *
 * State: the range width learnt from the server's refusals, one number
 * for the process (one account per mount), read and written atomically.
 * Commands run on the caller's connection; no lock is held.
 */
#include "imap/limit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "imap/ops.h"

#define START_WIDTH_MAX 1000u

static gint learnt_width; /* 0: no limit met yet */

unsigned imap_limit_first_width(unsigned advertised, unsigned learnt,
				uint32_t exists)
{
	if (advertised && learnt)
		return MIN(advertised, learnt);
	if (advertised || learnt)
		return advertised ? advertised : learnt;
	return CLAMP(exists / 2, 1u, START_WIDTH_MAX);
}

/* MESSAGELIMIT=N among the capabilities, 0 when absent. */
static unsigned advertised_limit(ImapConn *conn)
{
	static const unsigned known[] = {
		100, 250, 500, 1000, 2000, 5000, 10000
	};

	/* imap_conn_has_cap() matches whole atoms: try the usual values. */
	for (size_t i = 0; i < G_N_ELEMENTS(known); i++) {
		char cap[32];

		g_snprintf(cap, sizeof(cap), "MESSAGELIMIT=%u", known[i]);
		if (imap_conn_has_cap(conn, cap))
			return known[i];
	}
	return 0;
}

static int highest_uid_untagged(void *user_data, ImapResponse *r)
{
	uint32_t *hi = user_data;
	uint64_t n;

	if (r->name && strcmp(r->name, "FETCH") == 0 && r->args.len == 1 &&
	    imap_value_get_u64(imap_fetch_get(&r->args.items[0], "UID"), &n) &&
	    n <= UINT32_MAX && n > *hi)
		*hi = (uint32_t)n;
	return 0;
}

/* The highest UID of the selected mailbox (0 when it is empty). */
static int highest_uid(ImapConn *conn, ImapMailboxState *st, uint32_t *hi,
		       GError **error)
{
	*hi = 0;
	if (st->exists == 0)
		return 0;
	return imap_conn_command(conn, highest_uid_untagged, hi, error,
				 "UID FETCH * (UID)");
}

static bool is_limit(int rc, ImapConn *conn)
{
	return rc == -EAGAIN && !imap_conn_is_broken(conn);
}

int imap_limit_ranges(ImapConn *conn, uint32_t first, ImapRangeFn fn,
		      void *data, GError **error)
{
	unsigned adv = advertised_limit(conn);
	unsigned learnt = (unsigned)g_atomic_int_get(&learnt_width);
	ImapMailboxState st = { 0 };
	const char *mailbox = imap_conn_selected(conn);
	uint32_t hi, lo = first;
	unsigned width;
	int rc;

	if (!adv && !learnt) {
		g_autofree char *set = g_strdup_printf("%u:*", first);

		rc = fn(conn, set, data, error);
		if (!is_limit(rc, conn) || !mailbox)
			return rc;
		g_clear_error(error);
	}
	/* Selected already: this costs no round trip. */
	rc = mailbox ? imap_conn_examine(conn, mailbox, &st, error) : -EINVAL;
	if (rc == 0)
		rc = highest_uid(conn, &st, &hi, error);
	if (rc < 0)
		return rc;
	width = imap_limit_first_width(adv, learnt, st.exists);
	while (lo <= hi) {
		uint32_t to = (uint32_t)MIN((uint64_t)lo + width - 1, hi);
		g_autofree char *set = g_strdup_printf("%u:%u", lo, to);

		rc = fn(conn, set, data, error);
		if (is_limit(rc, conn) && width > 1) {
			g_clear_error(error);
			width /= 2;
			continue;
		}
		if (rc < 0)
			return rc;
		if (to == UINT32_MAX)
			break;
		lo = to + 1;
	}
	if (!learnt || width < learnt) {
		g_atomic_int_set(&learnt_width, (gint)width);
		if (!learnt)
			g_message("the server limits the messages one command "
				  "may touch: asking for at most %u at a time",
				  width);
	}
	return 0;
}
