/* imap/ops.h: the IMAP commands imapfs needs, on a logged-in connection.
 * Read-only by construction: LIST, EXAMINE (in conn.h), UID SEARCH and
 * UID FETCH with BODY.PEEK only. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/conn.h"
#include "imap/envelope.h"

enum {
	IMAP_MAILBOX_NOSELECT = 1 << 0,
	IMAP_MAILBOX_NOINFERIORS = 1 << 1,
	IMAP_MAILBOX_NONEXISTENT = 1 << 2,
};

/* name is the raw server name (modified UTF-7), delimiter '\0' for NIL. */
typedef void (*ImapMailboxFn)(void *user_data, const char *name, char delimiter,
			      unsigned flags);

/* LIST "" "*". */
int imap_list_mailboxes(ImapConn *conn, ImapMailboxFn fn, void *user_data,
			GError **error);

/* System flags of a FETCH FLAGS answer, as bits. */
enum {
	IMAP_FLAG_SEEN = 1 << 0,
	IMAP_FLAG_ANSWERED = 1 << 1,
	IMAP_FLAG_FLAGGED = 1 << 2,
	IMAP_FLAG_DRAFT = 1 << 3,
	IMAP_FLAG_DELETED = 1 << 4,
};

typedef struct {
	uint32_t uid;
	uint64_t size;        /* RFC822.SIZE: a hint */
	int64_t internaldate; /* seconds since the epoch */
	const char *subject;  /* unfolded raw Subject value or NULL */
	size_t subject_len;
	uint64_t gid; /* X-GM-MSGID, or EMAILID folded to 64 bits; 0: none */
	/* FLAGS: has_flags says whether the answer carried them; keywords
	 * are the other flags, space-separated as the server spelled them
	 * (NULL for none; \Recent is left out: it is per session). */
	bool has_flags;
	unsigned flags; /* IMAP_FLAG_* */
	const char *keywords;
	const char *content_type; /* unfolded raw Content-Type value or NULL */
	const char *from;         /* with IMAP_META_FROM: raw From or NULL */
	size_t from_len;
} ImapMessageMeta;

/* The attribute list of r when it is a FETCH answer that carries a valid
 * UID (stored in *uid), else NULL. Borrowed from r. */
const ImapValue *imap_fetch_answer(const ImapResponse *r, uint32_t *uid);

typedef void (*ImapMetaFn)(void *user_data, const ImapMessageMeta *meta);

/* Optional header fields of the listing fetch. */
enum {
	IMAP_META_FROM = 1 << 0,
};

/* UID FETCH uid_set (UID RFC822.SIZE INTERNALDATE FLAGS
 * BODY.PEEK[HEADER.FIELDS (SUBJECT CONTENT-TYPE)]) on the selected
 * mailbox, plus the message's id across folders where the server has
 * one (X-GM-MSGID with X-GM-EXT-1, EMAILID with OBJECTID): no extra
 * round trip. */
int imap_fetch_meta(ImapConn *conn, const char *uid_set, ImapMetaFn fn,
		    void *user_data, GError **error);
/* The same with optional fields (IMAP_META_*) added to HEADER.FIELDS. */
int imap_fetch_meta_fields(ImapConn *conn, const char *uid_set, unsigned fields,
			   ImapMetaFn fn, void *user_data, GError **error);

/* The command line of imap_fetch_meta_fields() (g_free), for pipelines. */
char *imap_fetch_meta_line(ImapConn *conn, const char *uid_set,
			   unsigned fields);
/* fn(user_data, meta) when r answers such a command (else nothing);
 * keywords is scratch space. */
void imap_fetch_meta_parse(ImapResponse *r, GString *keywords, ImapMetaFn fn,
			   void *user_data);

/* UID FETCH uid_set (UID FLAGS), with (CHANGEDSINCE modseq) when modseq
 * is not 0 (needs CONDSTORE). fn gets uid and the flag fields of meta
 * only. */
int imap_fetch_flags(ImapConn *conn, const char *uid_set, uint64_t modseq,
		     ImapMetaFn fn, void *user_data, GError **error);

/* The flags of a FLAGS list into *flags (IMAP_FLAG_*) and keywords (the
 * others but \Recent, space-separated; truncated first). False when v is
 * not a list. */
bool imap_parse_flags(const ImapValue *v, unsigned *flags, GString *keywords);

/* All UIDs of the selected mailbox, ascending (UID SEARCH ALL, or ESEARCH
 * when offered, so that the answer stays compact). */
int imap_search_uids(ImapConn *conn, GArray *uids, GError **error);

/* EXAMINE mailbox with QRESYNC (RFC 7162) from a known (uidvalidity,
 * modseq): UIDs expunged since then are appended to vanished (from
 * VANISHED responses). The caller must check that state->uidvalidity is
 * still uidvalidity: otherwise the server ignored the parameters. Needs
 * IMAP_MODSEQ_QRESYNC in imap_conn_modseq_caps(conn). */
int imap_examine_qresync(ImapConn *conn, const char *mailbox,
			 uint32_t uidvalidity, uint64_t modseq,
			 ImapMailboxState *state, GArray *vanished,
			 GError **error);

/* One BODY[] of a FETCH answer, in one of three forms: streamed (what the
 * sink's begin() returned, now owned by the callback, which commits or
 * discards it), inline (data, len > 0, valid during the call), or missing
 * (NIL, or an empty string: the server has no body to give). */
typedef struct {
	void *streamed;
	const char *data;
	size_t len;
	bool nil; /* missing because the server said NIL */
} ImapBody;

/* Called for each BODY[] of the answer. Return 0 or -errno. */
typedef int (*ImapBodyFn)(void *user_data, uint32_t uid, ImapBody *body);

/* UID FETCH uid_set (UID BODY.PEEK[]). Bodies over the parser's inline
 * limit are streamed through sink (its callbacks get sink_data) as they
 * arrive; smaller ones reach fn as STRING values. */
int imap_fetch_bodies(ImapConn *conn, const char *uid_set,
		      const ImapLiteralSink *sink, void *sink_data,
		      ImapBodyFn fn, void *user_data, GError **error);

/* A connection that has had its folder selected since before a message
 * arrived may not see that message yet: Courier answers a UID FETCH of it
 * with OK and no data until the next NOOP, Dovecot with OK, no data and
 * the EXISTS (so only the next FETCH works); Cyrus sees it at once. Call
 * this when a FETCH came back without a message the listing has, then
 * FETCH it again: step 0 sends NOOP, step 1 EXAMINEs the selected folder
 * anew; IMAP_CATCH_UP_STEPS steps in all. Returns 0, -ESTALE when the
 * folder's UIDVALIDITY changed (the UIDs asked for are void), or another
 * -errno, with error set. */
#define IMAP_CATCH_UP_STEPS 2u
int imap_catch_up(ImapConn *conn, unsigned step, GError **error);

/* UID FETCH uid (UID BODY.PEEK[]<0.len>): the first len bytes (fewer when
 * the message is shorter) into *out (g_bytes_unref). -EIO when the answer
 * has no such data. */
int imap_fetch_head(ImapConn *conn, uint32_t uid, uint32_t len, GBytes **out,
		    GError **error);

/* ---- pure helpers, exposed for tests ---- */

/* The id of a message across folders in a FETCH list: X-GM-MSGID as is,
 * EMAILID (RFC 8474) folded to 64 bits by SHA-256; never 0. 0 when the
 * list has neither. */
uint64_t imap_fetch_message_gid(const ImapValue *list);

/* Parse an IMAP date-time "dd-Mon-yyyy hh:mm:ss +zzzz". */
bool imap_parse_internaldate(const char *s, int64_t *out);
/* From a "Subject: ..." header block, the unfolded value (g_free), or NULL
 * when there is no Subject field. */
char *imap_extract_subject(const char *block, size_t len, size_t *out_len);
/* The same for any field name ("From", "Content-Type"). */
char *imap_extract_header(const char *block, size_t len, const char *field,
			  size_t *out_len);

/* ---- helpers for the watcher and for resyncs ---- */

/* Append the UIDs of a VANISHED response ("* VANISHED (EARLIER) 41:43")
 * to uids and sort them. Returns 0, -EINVAL when r is no VANISHED,
 * -EPROTO or -E2BIG for a set that cannot be read. */
int imap_parse_vanished(const ImapResponse *r, GArray *uids);

/* EXAMINE mailbox anew (also when selected) for a resync from a listing
 * with (uidvalidity, modseq), modseq 0 when unknown: with QRESYNC where
 * usable, then *vanished gets the UIDs expunged since (ascending; caller
 * unrefs) unless the UIDVALIDITY changed; else with CONDSTORE where
 * offered, and *vanished is NULL. Returns 0 or -errno with error set. */
int imap_examine_resync(ImapConn *conn, const char *mailbox,
			uint32_t uidvalidity, uint64_t modseq,
			ImapMailboxState *state, GArray **vanished,
			GError **error);

/* imap_fetch_meta() of the UIDs from first on ("first:*"), with only
 * those UIDs passed to fn: a server answers "n:*" with the highest UID
 * even when it is below n. */
int imap_fetch_meta_since(ImapConn *conn, uint32_t first, ImapMetaFn fn,
			  void *user_data, GError **error);
/* The same with optional fields (IMAP_META_*). */
int imap_fetch_meta_fields_since(ImapConn *conn, uint32_t first,
				 unsigned fields, ImapMetaFn fn,
				 void *user_data, GError **error);

/* The sequence set "5,7:9,12" of uids (ascending). g_free the result. */
char *imap_uid_set(const GArray *uids);

/* UID FETCH uid (UID ENVELOPE), plus X-GM-LABELS X-GM-MSGID X-GM-THRID
 * when the server offers X-GM-EXT-1: no body. *out is NULL (and 0
 * returned) when the server sent no ENVELOPE for uid (expunged). */
int imap_fetch_envelope(ImapConn *conn, uint32_t uid, ImapEnvelope **out,
			GError **error);
