/* imap/watch.h: hearing of changes on the server, on a connection of its
 * own: NOTIFY (RFC 5465) for every folder where the server offers it, else
 * IDLE (RFC 2177) on INBOX. The protocol stays in here; the caller sees
 * typed events.
 *
 * An ImapWatch owns its connection and is driven by one thread at a time.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "imap/conn.h"

/* The folder the watcher EXAMINEs without NOTIFY, and the one EXISTS,
 * EXPUNGE and VANISHED speak of. */
#define IMAP_WATCH_MAILBOX "INBOX"

typedef enum {
	IMAP_WATCH_FOLDER_CHANGED,  /* a STATUS for folder (NOTIFY) */
	IMAP_WATCH_FOLDERS_CHANGED, /* the folder list changed (LIST) */
	IMAP_WATCH_NEW_MESSAGES,    /* EXISTS in folder */
	IMAP_WATCH_EXPUNGED,        /* EXPUNGE or VANISHED in folder */
} ImapWatchEventKind;

typedef struct {
	ImapWatchEventKind kind;
	/* Raw server name; NULL for FOLDERS_CHANGED. Some servers (Dovecot
	 * 2.3 with NOTIFY) name folders in UTF-8 in STATUS, though LIST gave
	 * modified UTF-7: then folder_alt is the modified UTF-7 spelling,
	 * else NULL. Both valid during the callback only. */
	const char *folder;
	const char *folder_alt;
	/* FOLDER_CHANGED: the counts the STATUS carried (has_* says which). */
	bool has_messages, has_uidnext, has_unseen;
	uint32_t messages, uidnext, unseen;
	/* NEW_MESSAGES: the new message count. */
	uint32_t exists;
	/* EXPUNGED: the UIDs (ascending) for VANISHED, NULL for EXPUNGE
	 * (which names a message number only) or an unreadable set. */
	const GArray *uids;
} ImapWatchEvent;

/* Called on the driving thread for each event. */
typedef void (*ImapWatchFn)(void *user_data, const ImapWatchEvent *ev);

typedef struct ImapWatch ImapWatch;

/* Take conn and arm it: NOTIFY SET when offered, else EXAMINE INBOX.
 * Returns 0 with *out set; -ENOTSUP when the server has no IDLE (conn
 * closed, error not set); another -errno with error set when arming failed
 * (conn closed). Events during arming already go to fn. */
int imap_watch_start(ImapConn *conn, ImapWatchFn fn, void *user_data,
		     ImapWatch **out, GError **error);
/* Listen for up to wait_ms, passing events to fn. Enters IDLE when not in
 * it, and leaves it when servers would drop it (after 25 minutes), so
 * that the next call enters it anew. Returns 0, or -errno with error set
 * when the connection was lost (the watch is then only good to stop). */
int imap_watch_wait(ImapWatch *w, unsigned wait_ms, GError **error);
/* True once an IDLE was entered on this watch. */
bool imap_watch_has_idled(const ImapWatch *w);
/* Leave IDLE when in it. Returns 0 or -errno with error set. */
int imap_watch_stop(ImapWatch *w, GError **error);
/* Stops without reporting, logs out and closes the connection. */
void imap_watch_free(ImapWatch *w);
