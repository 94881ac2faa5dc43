/*
 * deliver_conn.c - the delivery client's connection: connect (TCP or a Unix
 * socket), write, read whole replies, TLS, each wait a poll() against a
 * deadline (connect_timeout, command_timeout, data_timeout), so that a
 * stalled peer costs a worker at most that long.
 *
 * TLS.  The SSL_CTX is shared (made once) and verifies nothing by itself;
 * when the hop has a pin the presented chain is checked after the handshake
 * and before any envelope is sent (tls_check_peer):
 *   - the pin may name the leaf's own key (PROTOCOL.md §6.1: "the pin of the
 *     certificate the host must present"): the peer proved it holds that
 *     key, which is all a pin can say;
 *   - or a CA of the presented chain (the domain's root, per §2): the chain
 *     leaf -> ... -> that CA must then verify with OpenSSL (signatures,
 *     validity, name constraints, serverAuth), that CA as the only trust
 *     anchor.  The peer must therefore send its chain up to and including
 *     the pinned certificate: a pin is a digest, a signature cannot be
 *     checked against it, so a root the peer does not send cannot be used.
 *   - tls_name, when set, must be a dNSName of the leaf (X509_check_host).
 * Without a pin, TLS is opportunistic ("may") or required but unverified
 * ("encrypt"), as for ordinary MX delivery.  A failed handshake to a peer
 * that does not require TLS is retried once in plain text on a new
 * connection, as Postfix does (deliver.c).  Sessions are resumed per
 * destination (deliver_resume.c); the peer check runs on a resumed handshake
 * too.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "pki/crypto.h"
#include "deliver_conn.h"
#include "deliver_resume.h"

/* ------------------------------------------------------------------ I/O */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_in(int seconds)
{
	return now_ms() + (int64_t)seconds * 1000;
}

void relay_dconn_fail(struct relay_dconn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->code = 0;
	c->polite = 0;
}

/* Wait until fd is ready for events or the deadline passes. */
static int conn_wait(struct relay_dconn *c, short events, int64_t deadline, const char *doing)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = c->fd, .events = events};
		int rc;
		if (left <= 0) {
			relay_dconn_fail(c, "timeout %s %s", doing, c->peer);
			return RELAY_IO_FAIL;
		}
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return RELAY_IO_OK;
		if (rc < 0 && errno != EINTR) {
			relay_dconn_fail(c, "poll: %s", strerror(errno));
			return RELAY_IO_FAIL;
		}
	}
}

/* After an SSL_* call failed: wait for what it wants, or report why it failed. */
static int ssl_retry(struct relay_dconn *c, int ret, int64_t deadline, const char *doing)
{
	int err = SSL_get_error(c->ssl, ret);
	unsigned long code;

	if (err == SSL_ERROR_WANT_READ)
		return conn_wait(c, POLLIN, deadline, doing);
	if (err == SSL_ERROR_WANT_WRITE)
		return conn_wait(c, POLLOUT, deadline, doing);
	if (err == SSL_ERROR_ZERO_RETURN) {
		relay_dconn_fail(c, "connection closed by %s %s", c->peer, doing);
		return RELAY_IO_FAIL;
	}
	code = ERR_get_error();
	if (code != 0)
		relay_dconn_fail(c, "TLS error %s %s: %s", doing, c->peer,
		                 ERR_reason_error_string(code));
	else if (err == SSL_ERROR_SYSCALL && errno != 0)
		relay_dconn_fail(c, "%s %s: %s", doing, c->peer, strerror(errno));
	else
		relay_dconn_fail(c, "connection closed by %s %s", c->peer, doing);
	ERR_clear_error();
	return RELAY_IO_FAIL;
}

int relay_dconn_write(struct relay_dconn *c, const char *buf, size_t len, int seconds)
{
	int64_t deadline = deadline_in(seconds);

	while (len > 0) {
		ssize_t n;
		if (c->ssl != NULL) {
			int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
			ERR_clear_error();
			n = SSL_write(c->ssl, buf, chunk);
			if (n <= 0) {
				if (ssl_retry(c, (int)n, deadline, "writing to") < 0)
					return RELAY_IO_FAIL;
				continue;
			}
		} else {
			n = send(c->fd, buf, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					relay_dconn_fail(c, "writing to %s: %s", c->peer,
					                 strerror(errno));
					return RELAY_IO_FAIL;
				}
				if (conn_wait(c, POLLOUT, deadline, "writing to") < 0)
					return RELAY_IO_FAIL;
				continue;
			}
		}
		buf += n;
		len -= (size_t)n;
		deadline = deadline_in(seconds); /* a timeout means no progress, not a slow peer */
	}
	return RELAY_IO_OK;
}

static int conn_read_more(struct relay_dconn *c, int64_t deadline)
{
	char *at = c->in + c->inlen;
	size_t room = sizeof(c->in) - c->inlen;
	ssize_t n;

	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_read(c->ssl, at, (int)room);
			if (n > 0)
				break;
			if (ssl_retry(c, (int)n, deadline, "reading from") < 0)
				return RELAY_IO_FAIL;
			continue;
		}
		n = recv(c->fd, at, room, 0);
		if (n > 0)
			break;
		if (n == 0) {
			relay_dconn_fail(c, "connection closed by %s", c->peer);
			return RELAY_IO_FAIL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			relay_dconn_fail(c, "reading from %s: %s", c->peer, strerror(errno));
			return RELAY_IO_FAIL;
		}
		if (conn_wait(c, POLLIN, deadline, "reading from") < 0)
			return RELAY_IO_FAIL;
	}
	c->inlen += (size_t)n;
	return RELAY_IO_OK;
}

/* One whole reply, waiting at most seconds for it. */
int relay_dconn_read_reply(struct relay_dconn *c, int seconds, struct relay_smtp_reply *r)
{
	int64_t deadline = deadline_in(seconds);
	struct err e;

	relay_smtp_reply_init(r);
	for (;;) {
		char *lf = memchr(c->in, '\n', c->inlen);
		size_t used;
		int rc;
		if (lf == NULL) {
			if (c->inlen + 1 >= RELAY_REPLY_LINE_MAX) {
				relay_dconn_fail(c, "%s sent a malformed reply: over-long line",
				                 c->peer);
				return RELAY_IO_FAIL;
			}
			if (conn_read_more(c, deadline) < 0)
				return RELAY_IO_FAIL;
			continue;
		}
		used = (size_t)(lf - c->in) + 1;
		err_clear(&e);
		rc = relay_smtp_reply_line(r, c->in, used - 1, &e);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (rc < 0) {
			relay_dconn_fail(c, "%s sent a %s", c->peer, e.msg);
			return RELAY_IO_FAIL;
		}
		if (rc == 1)
			return RELAY_IO_OK;
	}
}

int relay_dconn_read_bytes(struct relay_dconn *c, char *buf, size_t len, int seconds)
{
	int64_t deadline = deadline_in(seconds);
	size_t got = 0;

	while (got < len) {
		size_t n = c->inlen < len - got ? c->inlen : len - got;

		memcpy(buf + got, c->in, n);
		memmove(c->in, c->in + n, c->inlen - n);
		c->inlen -= n;
		got += n;
		if (got < len && conn_read_more(c, deadline) < 0)
			return RELAY_IO_FAIL;
	}
	return RELAY_IO_OK;
}

int relay_dconn_printf(struct relay_dconn *c, int seconds, const char *fmt, ...)
{
	char buf[RELAY_DELIVER_PATH_MAX + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		relay_dconn_fail(c, "command too long for %s", c->peer);
		return RELAY_IO_FAIL;
	}
	return relay_dconn_write(c, buf, (size_t)n, seconds);
}

void relay_dconn_tls_end(struct relay_dconn *c)
{
	if (c->ssl == NULL)
		return;
	/* close_notify, not waiting for the peer's: a session whose connection was never
	 * shut down is marked not resumable by OpenSSL (deliver_resume.c) */
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

void relay_dconn_close(struct relay_dconn *c)
{
	if (c->ssl != NULL) {
		SSL_set_quiet_shutdown(c->ssl, 1);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->inlen = 0;
}

/* ------------------------------------------------------------------ connecting */

static int connect_wait(struct relay_dconn *c, const struct sockaddr *sa, socklen_t salen,
                        int seconds)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (connect(c->fd, sa, salen) == 0)
		return RELAY_IO_OK;
	if (errno != EINPROGRESS && errno != EINTR) {
		relay_dconn_fail(c, "connect to %s: %s", c->peer, strerror(errno));
		return RELAY_IO_FAIL;
	}
	if (conn_wait(c, POLLOUT, deadline_in(seconds), "connecting to") < 0)
		return RELAY_IO_FAIL;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr != 0) {
		relay_dconn_fail(c, "connect to %s: %s", c->peer, strerror(soerr));
		return RELAY_IO_FAIL;
	}
	return RELAY_IO_OK;
}

int relay_dconn_unix(struct relay_dconn *c, const char *path, int seconds)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	snprintf(c->peer, sizeof(c->peer), "%s", path);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		relay_dconn_fail(c, "socket path too long: %s", path);
		return RELAY_IO_FAIL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		relay_dconn_fail(c, "socket: %s", strerror(errno));
		return RELAY_IO_FAIL;
	}
	return connect_wait(c, (struct sockaddr *)&sun, sizeof(sun), seconds);
}

/* Each address of host in turn, connect_timeout each, until one answers. */
int relay_dconn_tcp(struct relay_dconn *c, const char *host, uint16_t port, int seconds)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	char service[8];
	int rc;

	snprintf(service, sizeof(service), "%u", (unsigned)port);
	snprintf(c->peer, sizeof(c->peer), "%s", host);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		relay_dconn_fail(c, "cannot resolve %s: %s", host,
		                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return RELAY_IO_FAIL;
	}
	rc = RELAY_IO_FAIL;
	for (ai = res; ai != NULL && rc != RELAY_IO_OK; ai = ai->ai_next) {
		char addr[NI_MAXHOST] = "?";
		getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
		            NI_NUMERICHOST);
		snprintf(c->peer, sizeof(c->peer), "%.253s[%.40s]", host, addr);
		if (c->fd >= 0)
			close(c->fd);
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		               ai->ai_protocol);
		if (c->fd < 0) {
			relay_dconn_fail(c, "socket: %s", strerror(errno));
			continue;
		}
		rc = connect_wait(c, ai->ai_addr, ai->ai_addrlen, seconds);
	}
	freeaddrinfo(res);
	return rc;
}

/* ------------------------------------------------------------------ TLS */

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static SSL_CTX *tls_ctx;
static const char *client_cert, *client_key; /* ANCHOR-DEFER: set once, before deliveries */

void relay_dconn_client_cert(const char *cert_file, const char *key_file)
{
	client_cert = cert_file;
	client_key = key_file;
}

static void tls_init(void)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL)
		return;
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	/* the peer is checked after the handshake, against the hop (tls_check_peer) */
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	if (client_cert != NULL &&
	    (SSL_CTX_use_certificate_chain_file(tls_ctx, client_cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(tls_ctx, client_key, SSL_FILETYPE_PEM) != 1)) {
		log_err(NULL, "cannot load the TLS client certificate %s: sent without",
		        client_cert);
		ERR_clear_error();
		SSL_CTX_free(tls_ctx);
		tls_ctx = SSL_CTX_new(TLS_client_method());
		if (tls_ctx != NULL)
			SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	}
	relay_resume_attach(tls_ctx);
}

static int cert_has_pin(X509 *cert, const char *pin)
{
	char got[CRYPTO_PIN_MAX];
	struct err e;
	EVP_PKEY *key = X509_get0_pubkey(cert);

	return key != NULL && crypto_key_pin(key, got, &e) == 0 && strcmp(got, pin) == 0;
}

/* leaf -> presented chain -> anchor, anchor the only trusted certificate. */
static int chain_verify(X509 *leaf, STACK_OF(X509) * chain, X509 *anchor, char *why, size_t wl)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, anchor) != 1 ||
	    X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
		snprintf(why, wl, "cannot set up certificate verification");
		goto out;
	}
	/* the anchor may be an intermediate (a pinned issuer), not only a self-signed root */
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(why, wl,
		         "the certificate chain does not verify to the pinned certificate: %s",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* The peer's presented chain against the hop's pin and name (see the top comment). */
static int tls_check_peer(SSL *ssl, const struct relay_hop *hop, char *why, size_t wl)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *anchor = NULL;

	if (leaf == NULL) {
		snprintf(why, wl, "the peer presented no certificate");
		return -1;
	}
	if (hop->tls_name[0] != '\0' &&
	    X509_check_host(leaf, hop->tls_name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) !=
	        1) {
		snprintf(why, wl, "the peer certificate is not for %s", hop->tls_name);
		return -1;
	}
	if (hop->pin[0] == '\0' || cert_has_pin(leaf, hop->pin))
		return 0;
	for (int i = 0; chain != NULL && i < sk_X509_num(chain) && anchor == NULL; i++) {
		X509 *x = sk_X509_value(chain, i);
		if (X509_cmp(x, leaf) != 0 && cert_has_pin(x, hop->pin))
			anchor = x;
	}
	if (anchor == NULL) {
		snprintf(why, wl, "no certificate of the peer's chain matches the pin %s",
		         hop->pin);
		return -1;
	}
	return chain_verify(leaf, chain, anchor, why, wl);
}

int relay_dconn_tls(struct relay_dconn *c, const struct relay_hop *hop, int seconds)
{
	const char *sni = hop->tls_name[0] ? hop->tls_name : hop->host;
	int64_t deadline = deadline_in(seconds);
	char why[300], key[RELAY_RESUME_KEY_MAX];

	pthread_once(&tls_once, tls_init);
	relay_resume_key(hop, key, sizeof(key));
	if (tls_ctx == NULL || (c->ssl = SSL_new(tls_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || relay_resume_prepare(c->ssl, key) < 0) {
		ERR_clear_error();
		relay_dconn_fail(c, "cannot set up TLS");
		return RELAY_IO_FAIL;
	}
	/* SNI only for names: RFC 6066 forbids literal addresses */
	if (!hop->unix_socket && strchr(sni, ':') == NULL &&
	    strspn(sni, "0123456789.") != strlen(sni))
		SSL_set_tlsext_host_name(c->ssl, sni);
	for (;;) {
		int rc;
		ERR_clear_error();
		rc = SSL_connect(c->ssl);
		if (rc == 1)
			break;
		if (ssl_retry(c, rc, deadline, "in the TLS handshake with") < 0) {
			relay_resume_done(c->ssl, key, 0);
			return RELAY_IO_FAIL;
		}
	}
	if (tls_check_peer(c->ssl, hop, why, sizeof(why)) < 0) {
		relay_resume_done(c->ssl, key, 0);
		relay_dconn_fail(c, "%s: %s", c->peer, why);
		return RELAY_IO_FAIL;
	}
	relay_resume_done(c->ssl, key, 1);
	return RELAY_IO_OK;
}
