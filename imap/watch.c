/* imap/watch.c: the watcher's protocol: arming NOTIFY or EXAMINE INBOX,
 * keeping IDLE up, and turning untagged STATUS, LIST, EXISTS, EXPUNGE,
 * VANISHED and FETCH (flags) responses into typed events.
 *
 * Ownership: an ImapWatch owns its connection. No locking: one thread
 * drives a watch. Invariant: idling is true exactly while an IDLE this
 * watch started awaits its DONE on a connection that did not break.
 */
#include "imap/watch.h"

#include <errno.h>
#include <string.h>

#include "imap/mutf7.h"
#include "imap/ops.h"

/* Servers drop IDLE after 30 minutes: re-arm before. */
#define IDLE_RESTART_US (G_USEC_PER_SEC * 25 * 60)

struct ImapWatch {
	ImapConn *conn;
	ImapWatchFn fn;
	void *user_data;
	bool idling;
	bool idled;
	gint64 restart_at; /* monotonic us when the current IDLE ends */
};

/* "* STATUS name (MESSAGES 3 UIDNEXT 9 UNSEEN 1)" */
static void status_counts(const ImapValue *list, ImapWatchEvent *ev)
{
	for (size_t i = 0; list && i + 1 < list->len; i += 2) {
		const ImapValue *key = imap_list_get(list, i);
		uint64_t n;

		if (!imap_value_get_u64(imap_list_get(list, i + 1), &n) ||
		    n > UINT32_MAX)
			continue;
		if (imap_value_is_atom(key, "MESSAGES")) {
			ev->has_messages = true;
			ev->messages = (uint32_t)n;
		} else if (imap_value_is_atom(key, "UIDNEXT")) {
			ev->has_uidnext = true;
			ev->uidnext = (uint32_t)n;
		} else if (imap_value_is_atom(key, "UNSEEN")) {
			ev->has_unseen = true;
			ev->unseen = (uint32_t)n;
		}
	}
}

static void status_event(ImapWatch *w, ImapResponse *r)
{
	ImapWatchEvent ev = { .kind = IMAP_WATCH_FOLDER_CHANGED };
	g_autofree char *encoded = NULL;
	const char *name = imap_value_get_string(&r->args.items[0], NULL);

	if (!name)
		return;
	if (g_utf8_validate(name, -1, NULL))
		encoded = imap_mutf7_encode(name, strlen(name));
	ev.folder = name;
	if (encoded && strcmp(encoded, name) != 0)
		ev.folder_alt = encoded;
	status_counts(imap_list_get(&r->args, 1), &ev);
	w->fn(w->user_data, &ev);
}

static void expunge_event(ImapWatch *w, ImapResponse *r)
{
	ImapWatchEvent ev = { .kind = IMAP_WATCH_EXPUNGED,
			      .folder = IMAP_WATCH_MAILBOX };
	g_autoptr(GArray) uids = NULL;

	if (strcmp(r->name, "VANISHED") == 0) {
		uids = g_array_new(FALSE, FALSE, sizeof(uint32_t));
		if (imap_parse_vanished(r, uids) < 0)
			g_clear_pointer(&uids, g_array_unref);
	}
	ev.uids = uids;
	w->fn(w->user_data, &ev);
}

static int watch_untagged(void *user_data, ImapResponse *r)
{
	ImapWatch *w = user_data;

	if (!r->name)
		return 0;
	if (strcmp(r->name, "STATUS") == 0 && r->args.len >= 1) {
		status_event(w, r);
	} else if (strcmp(r->name, "LIST") == 0) {
		ImapWatchEvent ev = { .kind = IMAP_WATCH_FOLDERS_CHANGED };

		w->fn(w->user_data, &ev);
	} else if (strcmp(r->name, "EXISTS") == 0) {
		ImapWatchEvent ev = { .kind = IMAP_WATCH_NEW_MESSAGES,
				      .folder = IMAP_WATCH_MAILBOX };

		if (r->has_number && r->number <= UINT32_MAX)
			ev.exists = (uint32_t)r->number;
		w->fn(w->user_data, &ev);
	} else if (strcmp(r->name, "EXPUNGE") == 0 ||
		   strcmp(r->name, "VANISHED") == 0) {
		expunge_event(w, r);
	} else if (strcmp(r->name, "FETCH") == 0) {
		/* FLAGS of a message in the folder IDLE watches: another
		 * client changed them. */
		ImapWatchEvent ev = { .kind = IMAP_WATCH_FOLDER_CHANGED,
				      .folder = IMAP_WATCH_MAILBOX };

		w->fn(w->user_data, &ev);
	}
	return 0;
}

int imap_watch_start(ImapConn *conn, ImapWatchFn fn, void *user_data,
		     ImapWatch **out, GError **error)
{
	ImapWatch *w;
	int rc;

	*out = NULL;
	if (!imap_conn_has_cap(conn, "IDLE")) {
		imap_conn_free(conn);
		return -ENOTSUP;
	}
	w = g_new0(ImapWatch, 1);
	w->conn = conn;
	w->fn = fn;
	w->user_data = user_data;
	if (imap_conn_has_cap(conn, "NOTIFY"))
		rc = imap_conn_command(conn, watch_untagged, w, error,
				       "NOTIFY SET (personal (MessageNew "
				       "MessageExpunge FlagChange "
				       "MailboxName))");
	else
		rc = imap_conn_examine(conn, IMAP_WATCH_MAILBOX, NULL, error);
	if (rc < 0) {
		imap_watch_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int imap_watch_wait(ImapWatch *w, unsigned wait_ms, GError **error)
{
	int rc;

	if (!w->idling) {
		rc = imap_conn_idle_start(w->conn, error);
		if (rc < 0)
			return rc;
		w->idling = w->idled = true;
		w->restart_at = g_get_monotonic_time() + IDLE_RESTART_US;
	}
	rc = imap_conn_idle_wait(w->conn, wait_ms, watch_untagged, w, error);
	if (rc < 0) {
		w->idling = false; /* the connection is gone */
		return rc;
	}
	if (g_get_monotonic_time() >= w->restart_at)
		return imap_watch_stop(w, error);
	return 0;
}

bool imap_watch_has_idled(const ImapWatch *w)
{
	return w->idled;
}

int imap_watch_stop(ImapWatch *w, GError **error)
{
	if (!w->idling)
		return 0;
	w->idling = false;
	return imap_conn_idle_done(w->conn, watch_untagged, w, error);
}

void imap_watch_free(ImapWatch *w)
{
	if (!w)
		return;
	imap_watch_stop(w, NULL);
	imap_conn_free(w->conn);
	g_free(w);
}
