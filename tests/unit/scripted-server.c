/* tests/unit/scripted-server.c: a scripted IMAP server over TLS on a
 * loopback socket, one thread, one connection at a time (see the header).
 *
 * Ownership: the thread owns the listening and the accepted sockets and
 * the SSL objects; the mutex guards accepted and failure only.
 */
#include "tests/unit/scripted-server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define WAIT_MS 5000

struct ScriptedServer {
	const char *const *const *scripts;
	int lfd;
	uint16_t port;
	SSL_CTX *ctx;
	GThread *thread;
	GMutex lock;
	unsigned accepted;
	char *failure;
	bool done;
};

/* One accepted connection. */
typedef struct {
	ScriptedServer *srv;
	SSL *ssl;
	int fd;
	GString *in; /* received, not yet consumed */
	char tag[64];
} Peer;

static void record(ScriptedServer *srv, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void record(ScriptedServer *srv, const char *fmt, ...)
{
	va_list ap;

	g_mutex_lock(&srv->lock);
	if (!srv->failure) {
		va_start(ap, fmt);
		srv->failure = g_strdup_vprintf(fmt, ap);
		va_end(ap);
	}
	g_mutex_unlock(&srv->lock);
}

/* A self-signed P-256 certificate for "localhost", made afresh. */
static SSL_CTX *make_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	g_assert_nonnull(ctx);
	g_assert_nonnull(key);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	g_assert_cmpint(X509_sign(x, key, EVP_sha256()), >, 0);
	g_assert_cmpint(SSL_CTX_use_certificate(ctx, x), ==, 1);
	g_assert_cmpint(SSL_CTX_use_PrivateKey(ctx, key), ==, 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static bool peer_send(Peer *p, const char *s, size_t len)
{
	size_t n = 0;

	return len == 0 || (SSL_write_ex(p->ssl, s, len, &n) == 1 && n == len);
}

/* Send text with "$T" replaced by the last tag, then CRLF if crlf. */
static bool peer_say(Peer *p, const char *text, bool crlf)
{
	g_autoptr(GString) out = g_string_new(text);

	g_string_replace(out, "$T", p->tag, 0);
	if (crlf)
		g_string_append(out, "\r\n");
	return peer_send(p, out->str, out->len);
}

/* Send n bytes of filler (a literal's body), in chunks. */
static bool peer_fill(Peer *p, uint64_t n)
{
	char buf[4096];

	memset(buf, 'x', sizeof(buf));
	while (n > 0) {
		size_t len = MIN(n, sizeof(buf));

		if (!peer_send(p, buf, len))
			return false;
		n -= len;
	}
	return true;
}

/* The next line from the client without CRLF, or NULL at EOF, on error
 * or after WAIT_MS of silence (SO_RCVTIMEO). g_free it. */
static char *peer_line(Peer *p)
{
	for (;;) {
		char buf[4096];
		char *eol = strstr(p->in->str, "\r\n");
		size_t n = 0;

		if (eol) {
			char *line = g_strndup(p->in->str, eol - p->in->str);

			g_string_erase(p->in, 0, eol - p->in->str + 2);
			return line;
		}
		if (SSL_read_ex(p->ssl, buf, sizeof(buf), &n) != 1)
			return NULL;
		g_string_append_len(p->in, buf, n);
	}
}

static bool expect(Peer *p, const char *want, bool tagged)
{
	g_autofree char *line = peer_line(p);
	const char *rest = line;
	size_t wlen = strlen(want);

	if (!line) {
		record(p->srv, "expected \"%s\", got nothing", want);
		return false;
	}
	if (tagged) {
		size_t t = strcspn(line, " ");

		g_strlcpy(p->tag, line, MIN(t + 1, sizeof(p->tag)));
		rest = line[t] ? line + t + 1 : line + t;
	}
	if (wlen > 0 && want[wlen - 1] == '*' ? strncmp(rest, want, wlen - 1)
					      : strcmp(rest, want)) {
		record(p->srv, "expected \"%s\", got \"%s\"", want, rest);
		return false;
	}
	return true;
}

/* After the script: answer LOGOUT, then wait for the client to close. */
static void drain(Peer *p)
{
	for (;;) {
		g_autofree char *line = peer_line(p);
		size_t t;

		if (!line)
			return;
		t = strcspn(line, " ");
		if (strcmp(line + t, " LOGOUT") == 0) {
			g_strlcpy(p->tag, line, MIN(t + 1, sizeof(p->tag)));
			peer_say(p, "* BYE bye\r\n$T OK LOGOUT done", true);
		} else {
			record(p->srv, "unexpected \"%s\" after the script",
			       line);
		}
	}
}

static void run_script(Peer *p, const char *const *script)
{
	for (; *script; script++) {
		const char *s = *script;
		bool ok = true;

		if (g_str_has_prefix(s, "S:"))
			ok = peer_say(p, s + 2, true);
		else if (g_str_has_prefix(s, "R:"))
			ok = peer_say(p, s + 2, false);
		else if (g_str_has_prefix(s, "FILL:"))
			ok = peer_fill(p, g_ascii_strtoull(s + 5, NULL, 10));
		else if (g_str_has_prefix(s, "C:"))
			ok = expect(p, s + 2, true);
		else if (g_str_has_prefix(s, "L:"))
			ok = expect(p, s + 2, false);
		else if (strcmp(s, "CUT") == 0)
			return;
		else if (strcmp(s, "STALL") == 0)
			while (peer_line(p))
				;
		else
			record(p->srv, "bad script step \"%s\"", s);
		if (!ok)
			return;
	}
	drain(p);
}

static int accept_one(ScriptedServer *srv)
{
	struct pollfd pfd = { .fd = srv->lfd, .events = POLLIN };
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	int fd;

	if (poll(&pfd, 1, WAIT_MS) != 1)
		return -1;
	fd = accept(srv->lfd, NULL, NULL);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static gpointer server_main(gpointer data)
{
	ScriptedServer *srv = data;

	for (const char *const *const *s = srv->scripts; *s; s++) {
		Peer p = { .srv = srv, .in = g_string_new(NULL) };

		p.fd = accept_one(srv);
		if (p.fd < 0) {
			record(srv, "no connection %u from the client",
			       (unsigned)(s - srv->scripts) + 1);
			g_string_free(p.in, TRUE);
			break;
		}
		g_mutex_lock(&srv->lock);
		srv->accepted++;
		g_mutex_unlock(&srv->lock);
		p.ssl = SSL_new(srv->ctx);
		SSL_set_fd(p.ssl, p.fd);
		if (SSL_accept(p.ssl) == 1)
			run_script(&p, *s);
		else
			record(srv, "TLS handshake failed");
		SSL_free(p.ssl); /* no close_notify: a cut looks like one */
		close(p.fd);
		g_string_free(p.in, TRUE);
	}
	g_mutex_lock(&srv->lock);
	srv->done = true;
	g_mutex_unlock(&srv->lock);
	return NULL;
}

ScriptedServer *scripted_server_new(const char *const *const *scripts)
{
	ScriptedServer *srv = g_new0(ScriptedServer, 1);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);

	g_mutex_init(&srv->lock);
	srv->scripts = scripts;
	srv->ctx = make_ctx();
	srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(srv->lfd, >=, 0);
	g_assert_cmpint(bind(srv->lfd, (struct sockaddr *)&sa, sizeof(sa)), ==,
			0);
	g_assert_cmpint(listen(srv->lfd, 8), ==, 0);
	getsockname(srv->lfd, (struct sockaddr *)&sa, &slen);
	srv->port = ntohs(sa.sin_port);
	srv->thread = g_thread_new("scripted-server", server_main, srv);
	return srv;
}

uint16_t scripted_server_port(const ScriptedServer *srv)
{
	return srv->port;
}

unsigned scripted_server_accepted(ScriptedServer *srv)
{
	unsigned n;

	g_mutex_lock(&srv->lock);
	n = srv->accepted;
	g_mutex_unlock(&srv->lock);
	return n;
}

char *scripted_server_finish(ScriptedServer *srv)
{
	char *failure;

	if (srv->thread)
		g_thread_join(srv->thread);
	srv->thread = NULL;
	g_mutex_lock(&srv->lock);
	failure = g_strdup(srv->failure);
	g_mutex_unlock(&srv->lock);
	return failure;
}

void scripted_server_free(ScriptedServer *srv)
{
	g_free(scripted_server_finish(srv));
	close(srv->lfd);
	SSL_CTX_free(srv->ctx);
	g_free(srv->failure);
	g_mutex_clear(&srv->lock);
	g_free(srv);
}
