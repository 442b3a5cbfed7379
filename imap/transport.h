/* imap/transport.h: the byte stream under one IMAP connection (internal to
 * imap/: only conn.c uses it).
 *
 * An ImapTransport is a member of its ImapConn and shares its thread: no
 * locking, except last_progress, which other threads read atomically.
 * It owns the socket, the SSL_CTX and SSL objects and the receive buffer.
 * Every failure sets an IMAP_ERROR (the first one wins) and marks the
 * transport broken for good; functions return 0 or -errno.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include <openssl/ssl.h>

#include "imap/conn.h"

#define IMAP_TRANSPORT_CHUNK 65536

typedef struct {
	const ImapAccount *account; /* the owning connection's copy */
	int fd;                     /* -1 until connected */
	SSL_CTX *ctx;               /* NULL until TLS starts */
	SSL *ssl;
	char *rbuf; /* received, not yet parsed: rbuf[rpos..rlen) */
	size_t rpos, rlen;
	gint64 last_progress; /* monotonic time of the last byte in */
	bool broken;
	bool tls_up; /* handshake done, no fatal TLS error since */
} ImapTransport;

/* Set up t for account (which must outlive t); nothing is connected. */
void imap_transport_init(ImapTransport *t, const ImapAccount *account);
/* Close TLS and the socket; free the buffer. While TLS is up (even after
 * a BYE or a timeout), one SSL_shutdown() sends close_notify first; the
 * socket is non-blocking, so it never waits for the server. */
void imap_transport_clear(ImapTransport *t);

/* Mark t broken and set *error (unless error is NULL or already set). */
void imap_transport_fail(ImapTransport *t, GError **error, ImapErrorCode code,
			 const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* TCP connect to the account's host and port, trying every address, each
 * within the timeout. -errno of the last attempt (IMAP_ERROR_CONNECT). */
int imap_transport_connect(ImapTransport *t, GError **error);
/* TLS handshake on the connected socket, verifying the certificate and
 * host name unless the account is insecure. -errno (IMAP_ERROR_TLS or
 * IMAP_ERROR_CERT, with a hint for the user where there is one). */
int imap_transport_start_tls(ImapTransport *t, GError **error);
/* Before the greeting of a plain connection (STARTTLS to come): when none
 * comes within a moment, check whether the port expects TLS from the
 * start, so that imap:// on port 993 fails at once with a hint instead of
 * after the timeout. 0, or -EPROTO with error set (IMAP_ERROR_TLS). */
int imap_transport_expect_plain(ImapTransport *t, GError **error);

/* Write all of buf, waiting at most one timeout for each step. */
int imap_transport_write(ImapTransport *t, const char *buf, size_t len,
			 GError **error);
/* Read at least one byte into rbuf. -ECONNRESET when the peer closed,
 * -ETIMEDOUT after a timeout of silence. */
int imap_transport_read(ImapTransport *t, GError **error);
/* Wait up to ms for input: 1 when some may be there, 0 when quiet. */
int imap_transport_wait_input(ImapTransport *t, unsigned ms);
/* Drop every byte received and not yet parsed (after STARTTLS). */
void imap_transport_drop_input(ImapTransport *t);
