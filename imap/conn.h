/* imap/conn.h: one IMAP connection: socket, TLS, greeting, STARTTLS, login,
 * and synchronous (optionally pipelined) commands.
 *
 * A connection is used by one thread at a time (the pool hands it out).
 * Every wait for the network is bounded by the account's timeout; a timeout,
 * a protocol error or a BYE marks the connection broken, and a broken
 * connection is never used again.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap/parser.h"

#define IMAP_ERROR (imap_error_quark())
GQuark imap_error_quark(void);

typedef enum {
	IMAP_ERROR_CONNECT,   /* name resolution, TCP connect */
	IMAP_ERROR_TLS,       /* handshake, STARTTLS refused or missing */
	IMAP_ERROR_CERT,      /* certificate or host name verification */
	IMAP_ERROR_AUTH,      /* credentials refused, no usable mechanism */
	IMAP_ERROR_PROTOCOL,  /* syntax, limits, unexpected answers */
	IMAP_ERROR_TIMEOUT,   /* no progress within the timeout */
	IMAP_ERROR_CLOSED,    /* server closed the connection or sent BYE */
	IMAP_ERROR_NO,        /* command answered NO */
	IMAP_ERROR_BAD,       /* command answered BAD */
	IMAP_ERROR_THROTTLED, /* too many connections, [UNAVAILABLE]: later */
	IMAP_ERROR_SUSPENDED, /* the pool did not try: the server is down or
			       * refused the password, as it logged once */
	IMAP_ERROR_DROPPED,   /* logged in, then the server ended the session
			       * at once (a kick, a restart under way) */
} ImapErrorCode;

/* The login mechanism (--auth). */
typedef enum {
	IMAP_AUTH_AUTO =
	    0, /* OAUTHBEARER, XOAUTH2 (with a token), PLAIN, LOGIN */
	IMAP_AUTH_PLAIN,
	IMAP_AUTH_LOGIN,
	IMAP_AUTH_XOAUTH2,
	IMAP_AUTH_OAUTHBEARER,
} ImapAuthMech;

typedef struct {
	const char *host;
	uint16_t port;
	bool implicit_tls; /* else STARTTLS, which must succeed */
	const char *user;
	const char *password;
	const char *cafile;  /* NULL: system trust store */
	bool insecure;       /* skip certificate and host checks */
	unsigned timeout_ms; /* per network wait */
	/* Reads the password source again after the server refused the
	 * password; NULL when it cannot be read again (a prompt). Returns a
	 * secret to wipe and g_free, or NULL with error set. Used by the
	 * pool only, which may call it from any of its threads. */
	char *(*reread_password)(void *data, GError **error);
	void *reread_data;
	/* Extensions never to use, space-separated (--disable-extension);
	 * NULL for none. Known-broken ones are added (imap/quirks.h). */
	const char *disable_extension;
	/* How to log in (--auth); IMAP_AUTH_AUTO picks by what the server
	 * offers. With bearer, password is an OAuth 2.0 access token. */
	ImapAuthMech auth;
	bool bearer;
	/* Called by the pool before each login for the secret to log in with
	 * (a fresh access token, from a cache while it is valid); NULL: the
	 * pool's copy of password. Returns a secret to wipe and g_free, or
	 * NULL with error set (IMAP_ERROR_AUTH: refused, else unreachable).
	 * Called from any pool thread. */
	char *(*login_secret)(void *data, GError **error);
	void *login_secret_data;
} ImapAccount;

typedef struct ImapConn ImapConn;

/* State of the mailbox selected by imap_conn_examine(). */
typedef struct {
	uint32_t uidvalidity;
	uint32_t uidnext; /* 0 when the server did not say */
	uint32_t exists;
	uint64_t highestmodseq; /* 0 without CONDSTORE */
} ImapMailboxState;

/* Note in st what one untagged answer to EXAMINE/SELECT says of the
 * mailbox (EXISTS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ). */
void imap_mailbox_state_note(ImapMailboxState *st, const ImapResponse *r);

/* Connect, verify TLS, log in, read capabilities. NULL with error set
 * (IMAP_ERROR domain; the message is one line naming the cause). */
ImapConn *imap_conn_open(const ImapAccount *account, GError **error);
/* The same; on failure *greeted tells whether the server had greeted
 * (it was reachable: the failure came later, in TLS or the login). */
ImapConn *imap_conn_open_greeted(const ImapAccount *account, bool *greeted,
				 GError **error);
/* Sends LOGOUT when the connection is healthy (bounded wait), then closes. */
void imap_conn_free(ImapConn *conn);

bool imap_conn_is_broken(const ImapConn *conn);
/* From now on every network wait of conn ends after ms of silence (the
 * account's timeout_ms until this is called). */
void imap_conn_set_wait_limit(ImapConn *conn, unsigned ms);
/* Capability as advertised after login, case-insensitive ("IDLE",
 * "AUTH=PLAIN", "QRESYNC"), and not disabled (imap/quirks.h). */
bool imap_conn_has_cap(const ImapConn *conn, const char *cap);

/* Called for every untagged response while a command runs. Return 0, or
 * -errno to fail the command (the connection stays usable: the rest of the
 * answer is still read). The callback may take STREAM values with
 * imap_conn_take_literal(). */
typedef int (*ImapUntaggedFn)(void *user_data, ImapResponse *resp);

/* Send one command line (printf-style, without tag and CRLF; the caller
 * quotes arguments with imap_conn_quote()) and read until its tagged answer.
 * Returns 0 on OK; on NO/BAD the errno of imap_refusal_errno() with error
 * set (IMAP_ERROR_NO/BAD); -errno on a broken connection. Error messages
 * name the command ("LOGIN", "UID FETCH"), never its arguments: the
 * server's own words are in imap_conn_refusal_text(). */
int imap_conn_command(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
		      GError **error, const char *fmt, ...) G_GNUC_PRINTF(5, 6);

/* The same, with a literal sink for the answer: literals over the parser's
 * inline limit that arrive while this command is the oldest one in flight
 * with a sink are streamed through sink (callbacks get sink_data) and
 * reach fn as STREAM values. Without a sink (every other command), such
 * literals are read and dropped: their STREAM values hold no bytes. */
int imap_conn_command_sink(ImapConn *conn, const ImapLiteralSink *sink,
			   void *sink_data, ImapUntaggedFn fn, void *user_data,
			   GError **error, const char *fmt, ...)
    G_GNUC_PRINTF(7, 8);

/* Take the literal of a STREAM value: returns what the command's
 * ImapLiteralSink.begin() gave (now the caller's, to commit or discard
 * itself) and sets the value's sink to NULL; NULL when the value is not a
 * STREAM, was taken already, or was dropped for want of a sink. */
void *imap_conn_take_literal(ImapValue *value);

/* Pipelining: send n command lines at once, then read until all n have
 * completed. statuses[i] gets 0 for OK or imap_refusal_errno() for NO/BAD
 * (the first refusal sets error). Returns 0 when
 * the connection survived (individual statuses may still be errors), or
 * -errno with error set when it broke. */
int imap_conn_pipeline(ImapConn *conn, char **lines, size_t n, int *statuses,
		       ImapUntaggedFn fn, void *user_data, GError **error);

enum {
	IMAP_MODSEQ_CONDSTORE = 1 << 0, /* offered: EXAMINE reports
					 * HIGHESTMODSEQ when asked */
	IMAP_MODSEQ_QRESYNC = 1 << 1,   /* enabled on conn: EXAMINE can
					 * report what vanished */
};
/* The one place that decides whether CONDSTORE and QRESYNC are usable on
 * conn: a mask of IMAP_MODSEQ_*. */
unsigned imap_conn_modseq_caps(const ImapConn *conn);

/* EXAMINE mailbox (raw server name) unless it is already selected. */
int imap_conn_examine(ImapConn *conn, const char *mailbox,
		      ImapMailboxState *state, GError **error);
/* EXAMINE mailbox now (also when selected), with params appended (such as
 * "(QRESYNC (1 42))"); fn (may be NULL) sees every untagged response. */
int imap_conn_examine_with(ImapConn *conn, const char *mailbox,
			   const char *params, ImapUntaggedFn fn,
			   void *user_data, ImapMailboxState *state,
			   GError **error);
/* Raw name of the selected mailbox, or NULL. */
const char *imap_conn_selected(const ImapConn *conn);

/* Quote s as an IMAP quoted string, or as a non-synchronising literal
 * ("{N+}" CRLF bytes) when it holds CR, LF or 8-bit bytes and the server
 * offers LITERAL+. NULL when it cannot be sent at all. g_free the result. */
char *imap_conn_quote(const ImapConn *conn, const char *s);

/* IDLE (RFC 2177). start sends IDLE and waits for the continuation;
 * wait passes untagged responses to fn for up to wait_ms and returns 1
 * when it passed any, 0 when quiet; done sends DONE and reads to the
 * tagged answer. All return -errno when the connection broke; start and
 * done return imap_refusal_errno() when the server refused IDLE. */
int imap_conn_idle_start(ImapConn *conn, GError **error);
int imap_conn_idle_wait(ImapConn *conn, unsigned wait_ms, ImapUntaggedFn fn,
			void *user_data, GError **error);
int imap_conn_idle_done(ImapConn *conn, ImapUntaggedFn fn, void *user_data,
			GError **error);

/* The errno of a tagged NO or BAD to any command but a login, by its
 * response code: -EACCES for refused credentials ([AUTHENTICATIONFAILED],
 * [AUTHORIZATIONFAILED], [EXPIRED]), -EAGAIN for a server that is busy or
 * limits us ([UNAVAILABLE], [LIMIT], [INUSE]), -EIO otherwise. Every path
 * of conn.c maps refusals through the same function (imap/status.h). */
int imap_refusal_errno(const ImapResponse *r);
/* True for a BYE or NO text that says the server limits connections
 * ("too many connections", "maximum number of connections"). */
bool imap_text_is_throttling(const char *code, const char *text);
/* What the server said with its last NO, BAD or BYE on this connection
 * ("" when none): its own words, kept apart from our messages. */
const char *imap_conn_refusal_text(const ImapConn *conn);

/* Whether the last NO, BAD or BYE said the server failed, or cannot now,
 * rather than that the request was wrong (imap_code_is_server_failure()):
 * a NO [SERVERBUG] to EXAMINE says nothing of whether the folder exists. */
bool imap_conn_refused_by_failure(const ImapConn *conn);

/* True for the response codes of a server that failed or is busy:
 * SERVERBUG, UNAVAILABLE, INUSE, LIMIT, CORRUPTION (RFC 5530). code may be
 * NULL. */
bool imap_code_is_server_failure(const char *code);

/* Monotonic time (g_get_monotonic_time) of the last byte received. */
gint64 imap_conn_last_progress(const ImapConn *conn);
