/* imap/transport.c: the byte stream under one IMAP connection: TCP connect,
 * TLS set-up and certificate verification, and reads and writes that never
 * wait longer than the account's timeout.
 *
 * Ownership: the ImapTransport (a member of its ImapConn) owns the socket,
 * the SSL_CTX (built per connection from the account), the SSL object and
 * the receive buffer. One thread at a time, so no locking; last_progress
 * is written and read atomically because the pool watches it.
 *
 * A URL whose TLS mode does not fit the port fails at once with the URL
 * to use instead: imaps:// meets a greeting in clear during the handshake;
 * imap:// that gets no greeting within a moment probes the port with a
 * TLS ClientHello on a second connection (fail_tls_mismatch()).
 *
 * Invariants: the certificate and the host name are checked unless the
 * account is insecure; a failed wait or a failed read or write marks the
 * transport broken, and a broken transport is never used again.
 */
#include "imap/transport.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "imap/url.h"

void imap_transport_fail(ImapTransport *t, GError **error, ImapErrorCode code,
			 const char *fmt, ...)
{
	va_list ap;

	t->broken = true;
	if (error == NULL || *error != NULL)
		return;
	va_start(ap, fmt);
	*error = g_error_new_valist(IMAP_ERROR, code, fmt, ap);
	va_end(ap);
}

void imap_transport_init(ImapTransport *t, const ImapAccount *account)
{
	*t = (ImapTransport){ .account = account, .fd = -1 };
	t->rbuf = g_malloc(IMAP_TRANSPORT_CHUNK);
}

void imap_transport_clear(ImapTransport *t)
{
	if (t->ssl) {
		/* close_notify, so that the server sees a clean end (after
		 * LOGOUT the transport is already marked broken by the BYE).
		 * No second call to wait for the server's answer. */
		if (t->tls_up && t->fd >= 0) {
			ERR_clear_error();
			SSL_shutdown(t->ssl);
			ERR_clear_error();
		}
		SSL_free(t->ssl);
	}
	if (t->ctx)
		SSL_CTX_free(t->ctx);
	if (t->fd >= 0)
		close(t->fd);
	g_free(t->rbuf);
	*t = (ImapTransport){ .fd = -1, .broken = true };
}

static void note_progress(ImapTransport *t)
{
	/* Read by waiting callers in other threads (pool.c). */
	__atomic_store_n(&t->last_progress, g_get_monotonic_time(),
			 __ATOMIC_RELAXED);
}

/* The first OpenSSL error as text, for messages. */
static const char *ssl_error_text(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static int wait_fd(ImapTransport *t, short events, GError **error)
{
	struct pollfd pfd = { .fd = t->fd, .events = events };
	int rc;

	do
		rc = poll(&pfd, 1, (int)t->account->timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		imap_transport_fail(t, error, IMAP_ERROR_TIMEOUT,
				    "%s:%u did not answer within %.1f s",
				    t->account->host, t->account->port,
				    t->account->timeout_ms / 1000.0);
		return -ETIMEDOUT;
	}
	if (rc < 0) {
		int e = errno;
		imap_transport_fail(t, error, IMAP_ERROR_CLOSED, "poll: %s",
				    g_strerror(e));
		return -e;
	}
	return 0;
}

/* ---- reads and writes ---- */

/* After a TLS call returned r <= 0: wait for the socket when OpenSSL asks
 * for it (0: try again), else fail the connection (-errno). */
static int ssl_wait_or_fail(ImapTransport *t, int r, const char *what,
			    GError **error)
{
	int err = SSL_get_error(t->ssl, r);

	if (err == SSL_ERROR_WANT_READ)
		return wait_fd(t, POLLIN, error);
	if (err == SSL_ERROR_WANT_WRITE)
		return wait_fd(t, POLLOUT, error);
	/* OpenSSL forbids SSL_shutdown() after these. */
	if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL)
		t->tls_up = false;
	if (err == SSL_ERROR_ZERO_RETURN ||
	    (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		imap_transport_fail(t, error, IMAP_ERROR_CLOSED,
				    "%s closed the connection",
				    t->account->host);
		return -ECONNRESET;
	}
	imap_transport_fail(t, error, IMAP_ERROR_CLOSED, "TLS %s failed: %s",
			    what, ssl_error_text());
	return -EIO;
}

/* After a plain send/recv failed with errno e: 0 to try again (after
 * waiting for events when it would block), or -errno. */
static int sock_wait_or_fail(ImapTransport *t, int e, short events,
			     const char *what, GError **error)
{
	if (e == EINTR)
		return 0;
	if (e == EAGAIN || e == EWOULDBLOCK)
		return wait_fd(t, events, error);
	imap_transport_fail(t, error, IMAP_ERROR_CLOSED, "%s: %s", what,
			    g_strerror(e));
	return -e;
}

int imap_transport_write(ImapTransport *t, const char *buf, size_t len,
			 GError **error)
{
	while (len > 0) {
		size_t n = 0;
		int rc;

		if (t->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write_ex(t->ssl, buf, len, &n);
			if (r <= 0) {
				rc = ssl_wait_or_fail(t, r, "write", error);
				if (rc < 0)
					return rc;
				continue;
			}
		} else {
			ssize_t k = send(t->fd, buf, len, MSG_NOSIGNAL);

			if (k < 0) {
				rc = sock_wait_or_fail(t, errno, POLLOUT,
						       "send", error);
				if (rc < 0)
					return rc;
				continue;
			}
			n = (size_t)k;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

/* Acknowledge at once what arrives. A server that does not set
 * TCP_NODELAY (Cyrus, Courier) holds back the short tail of an answer
 * until its earlier segments are acknowledged, and Linux delays an ACK by
 * up to 40 ms: one stall per command. The kernel clears the flag as it
 * goes, so it is set again before each read. */
static void quick_ack(ImapTransport *t)
{
	int one = 1;

	setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

/* Read at least one byte into rbuf. */
int imap_transport_read(ImapTransport *t, GError **error)
{
	if (t->rpos == t->rlen)
		t->rpos = t->rlen = 0;
	if (t->rpos > 0 && t->rlen == IMAP_TRANSPORT_CHUNK) {
		memmove(t->rbuf, t->rbuf + t->rpos, t->rlen - t->rpos);
		t->rlen -= t->rpos;
		t->rpos = 0;
	}
	for (;;) {
		size_t room = IMAP_TRANSPORT_CHUNK - t->rlen;
		size_t n = 0;
		int rc;

		quick_ack(t);
		if (t->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_read_ex(t->ssl, t->rbuf + t->rlen, room, &n);
			if (r <= 0) {
				rc = ssl_wait_or_fail(t, r, "read", error);
				if (rc < 0)
					return rc;
				continue;
			}
		} else {
			ssize_t k = recv(t->fd, t->rbuf + t->rlen, room, 0);

			if (k == 0) {
				imap_transport_fail(t, error, IMAP_ERROR_CLOSED,
						    "%s closed the connection",
						    t->account->host);
				return -ECONNRESET;
			}
			if (k < 0) {
				rc = sock_wait_or_fail(t, errno, POLLIN, "recv",
						       error);
				if (rc < 0)
					return rc;
				continue;
			}
			n = (size_t)k;
		}
		t->rlen += n;
		note_progress(t);
		return 0;
	}
}

/* ---- set-up ---- */

/* Connect to one address within the timeout: the socket, or -errno. */
static int connect_one(ImapTransport *t, const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int soerr = 0;
	socklen_t slen = sizeof(soerr);
	int one = 1;
	int rc;

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	do
		rc = poll(&pfd, 1, (int)t->account->timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc == 0) {
		close(fd);
		return -ETIMEDOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
		soerr = errno;
	if (soerr != 0) {
		close(fd);
		return -soerr;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return fd;
}

int imap_transport_connect(ImapTransport *t, GError **error)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_family = AF_UNSPEC,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char port[8];
	int last_errno = ECONNREFUSED;
	int rc;

	g_snprintf(port, sizeof(port), "%u", t->account->port);
	rc = getaddrinfo(t->account->host, port, &hints, &res);
	if (rc != 0) {
		imap_transport_fail(t, error, IMAP_ERROR_CONNECT,
				    "cannot resolve %s: %s", t->account->host,
				    gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = connect_one(t, ai);

		if (fd >= 0) {
			t->fd = fd;
			freeaddrinfo(res);
			return 0;
		}
		last_errno = -fd;
	}
	freeaddrinfo(res);
	imap_transport_fail(t, error, IMAP_ERROR_CONNECT,
			    "cannot connect to %s:%u: %s", t->account->host,
			    t->account->port, g_strerror(last_errno));
	return -last_errno;
}

static bool host_is_ip(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

/* What the user can do about a verification failure, if anything. */
static const char *cert_hint(long vr)
{
	switch (vr) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return " (use --cafile to trust a private CA)";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return " (the certificate names another host: check the "
		       "host in the URL)";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return " (check the server's certificate dates and this "
		       "machine's clock)";
	default:
		return "";
	}
}

/* The SSL_CTX: TLS 1.2 or later, the account's trust anchors. */
static int tls_new_ctx(ImapTransport *t, GError **error)
{
	const ImapAccount *a = t->account;

	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		imap_transport_fail(t, error, IMAP_ERROR_TLS, "TLS set-up: %s",
				    ssl_error_text());
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!a->insecure) {
		if (a->cafile) {
			if (SSL_CTX_load_verify_locations(t->ctx, a->cafile,
							  NULL) != 1) {
				imap_transport_fail(
				    t, error, IMAP_ERROR_CERT,
				    "cannot load CA file %s: %s", a->cafile,
				    ssl_error_text());
				return -EINVAL;
			}
		} else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
			imap_transport_fail(
			    t, error, IMAP_ERROR_CERT,
			    "cannot load the system CA certificates: %s",
			    ssl_error_text());
			return -EINVAL;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	}
	return 0;
}

/* The SSL object on the socket: SNI, and the host name or IP address the
 * certificate must name. */
static int tls_new_ssl(ImapTransport *t, GError **error)
{
	const ImapAccount *a = t->account;
	int rc;

	t->ssl = SSL_new(t->ctx);
	if (!t->ssl || SSL_set_fd(t->ssl, t->fd) != 1) {
		imap_transport_fail(t, error, IMAP_ERROR_TLS, "TLS set-up: %s",
				    ssl_error_text());
		return -ENOMEM;
	}
	if (!host_is_ip(a->host))
		SSL_set_tlsext_host_name(t->ssl, a->host);
	if (!a->insecure) {
		X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);

		X509_VERIFY_PARAM_set_hostflags(
		    param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (host_is_ip(a->host))
			rc = X509_VERIFY_PARAM_set1_ip_asc(param, a->host);
		else
			rc = SSL_set1_host(t->ssl, a->host);
		if (rc != 1) {
			imap_transport_fail(t, error, IMAP_ERROR_TLS,
					    "TLS set-up for host %s failed",
					    a->host);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- a TLS mode that does not match the port ---- */

/* How long a plain connection waits for the greeting before it asks
 * whether the port expects TLS from the start. */
#define GREETING_PROBE_MS 1500

/* Did the handshake fail because the server answered in clear? (An
 * IMAP greeting read as a TLS record.) Peeks at OpenSSL's error queue. */
static bool answered_in_clear(void)
{
	int reason = ERR_GET_REASON(ERR_peek_error());

	return reason == SSL_R_WRONG_VERSION_NUMBER ||
	       reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
	       reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_HTTP_REQUEST;
}

/* The two hints, kept together: what the user typed, and the URL to
 * type instead (the other scheme, same user, host and port). */
static void fail_tls_mismatch(ImapTransport *t, GError **error, bool implicit)
{
	const ImapAccount *a = t->account;
	ImapUrl other = { .implicit_tls = !implicit,
			  .user = (char *)(a->user ? a->user : ""),
			  .host = (char *)a->host,
			  .port = a->port };
	g_autofree char *url = imap_url_to_string(&other);

	ERR_clear_error();
	if (implicit)
		imap_transport_fail(
		    t, error, IMAP_ERROR_TLS,
		    "TLS handshake with %s:%u failed: the server "
		    "does not speak TLS on this port; try %s "
		    "(STARTTLS) or port 993",
		    a->host, a->port, url);
	else
		imap_transport_fail(t, error, IMAP_ERROR_TLS,
				    "%s:%u expects TLS from the start (as port "
				    "993 does): use %s",
				    a->host, a->port, url);
}

/* A second connection sends a TLS ClientHello: does a TLS record (0x16
 * handshake, 0x15 alert) come back? A plain IMAP server greets instead. */
static bool port_speaks_tls(const ImapAccount *account)
{
	ImapAccount a = *account;
	ImapTransport p;
	unsigned char b = 0;
	bool tls = false;

	a.insecure = true; /* nothing is sent but the ClientHello */
	a.timeout_ms = GREETING_PROBE_MS;
	imap_transport_init(&p, &a);
	if (imap_transport_connect(&p, NULL) == 0 &&
	    tls_new_ctx(&p, NULL) == 0 && tls_new_ssl(&p, NULL) == 0) {
		ERR_clear_error();
		SSL_connect(p.ssl); /* non-blocking: sends, then wants input */
		ERR_clear_error();
		if (imap_transport_wait_input(&p, GREETING_PROBE_MS) &&
		    recv(p.fd, &b, 1, MSG_PEEK) == 1)
			tls = b == 0x16 || b == 0x15;
	}
	p.broken = true; /* no close_notify */
	imap_transport_clear(&p);
	return tls;
}

int imap_transport_expect_plain(ImapTransport *t, GError **error)
{
	unsigned char b = 0;

	if (t->account->timeout_ms <= GREETING_PROBE_MS ||
	    imap_transport_wait_input(t, GREETING_PROBE_MS)) {
		if (recv(t->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1 &&
		    (b == 0x16 || b == 0x15)) {
			fail_tls_mismatch(t, error, false);
			return -EPROTO;
		}
		return 0;
	}
	if (port_speaks_tls(t->account)) {
		fail_tls_mismatch(t, error, false);
		return -EPROTO;
	}
	return 0;
}

static int tls_handshake(ImapTransport *t, GError **error)
{
	const ImapAccount *a = t->account;
	int rc;

	for (;;) {
		int r, err;

		ERR_clear_error();
		r = SSL_connect(t->ssl);
		if (r == 1)
			break;
		err = SSL_get_error(t->ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			rc = wait_fd(t, POLLIN, error);
		else if (err == SSL_ERROR_WANT_WRITE)
			rc = wait_fd(t, POLLOUT, error);
		else {
			long vr = SSL_get_verify_result(t->ssl);

			if (vr == X509_V_OK && a->implicit_tls &&
			    answered_in_clear())
				fail_tls_mismatch(t, error, true);
			else if (vr != X509_V_OK)
				imap_transport_fail(
				    t, error, IMAP_ERROR_CERT,
				    "certificate of %s not trusted: %s%s",
				    a->host, X509_verify_cert_error_string(vr),
				    cert_hint(vr));
			else
				imap_transport_fail(
				    t, error, IMAP_ERROR_TLS,
				    "TLS handshake with %s:%u failed: %s",
				    a->host, a->port, ssl_error_text());
			return -EIO;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int imap_transport_start_tls(ImapTransport *t, GError **error)
{
	int rc = tls_new_ctx(t, error);

	if (rc == 0)
		rc = tls_new_ssl(t, error);
	if (rc == 0)
		rc = tls_handshake(t, error);
	if (rc == 0) {
		t->tls_up = true;
		note_progress(t);
	}
	return rc;
}

int imap_transport_wait_input(ImapTransport *t, unsigned ms)
{
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	int rc;

	if (t->ssl && SSL_pending(t->ssl) > 0)
		return 1;
	do
		rc = poll(&pfd, 1, (int)ms);
	while (rc < 0 && errno == EINTR);
	return rc == 0 ? 0 : 1;
}

void imap_transport_drop_input(ImapTransport *t)
{
	t->rpos = t->rlen = 0;
}
