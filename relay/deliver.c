/*
 * deliver.c - the relay's SMTP/LMTP client (RFC 5321, RFC 2033, RFC 3207,
 * RFC 2920), blocking, run on worker threads.
 *
 * One call is one session to one hop: connect (TCP or a Unix socket),
 * greeting, EHLO/LHLO, STARTTLS when offered, MAIL, RCPT per recipient,
 * DATA with dot-stuffing, QUIT.  Every wait is a poll() against a deadline
 * (connect_timeout, command_timeout, data_timeout), so a stalled peer costs
 * a worker at most that long.
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
 * connection, as Postfix does.
 *
 * The process must ignore SIGPIPE (OpenSSL writes with write(2)).
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

#include "pki/crypto.h"
#include "relay.h"

#define DELIVER_WINDOW 64       /* commands pipelined before reading their replies */
#define DELIVER_QUIT_TIMEOUT 5  /* seconds to wait for QUIT's reply */
#define DELIVER_OUT_CHUNK 16384 /* body bytes written per write */
#define DELIVER_PATH_MAX 256    /* RFC 5321 §4.5.3.1.3, brackets included */

enum io_rc { IO_OK = 0, IO_FAIL = -1, IO_PLAIN_RETRY = -2 };

struct conn {
	int fd;
	SSL *ssl;
	char peer[300]; /* "host[addr]": the prefix of every reply text */
	char in[RELAY_REPLY_LINE_MAX + 1024];
	size_t inlen;
	char why[400]; /* the last failure, for the results */
	int code;      /* the reply code behind why; 0 when no reply was involved */
	int polite;    /* the failure left the session usable: say QUIT */
};

/* Recipient states during a transaction. */
enum rcpt_state { RS_SKIP = 0, RS_SEND, RS_ACCEPTED, RS_FINAL };

struct tx {
	const struct relay_settings *s;
	const struct relay_hop *hop;
	const char *sender;
	const char *const *rcpts;
	size_t n;
	const char *body;
	size_t len;
	struct relay_rcpt_result *res;
	enum rcpt_state *st;
	struct conn c;
	struct relay_smtp_caps caps;
	int tcmd, tconn, tdata; /* seconds */
	int probe;              /* MAIL and RCPT only: is the recipient taken? */
};

/* ------------------------------------------------------------------ results */

static void result_set(struct relay_rcpt_result *r, int code, enum queue_status status,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void result_set(struct relay_rcpt_result *r, int code, enum queue_status status,
                       const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->reply, sizeof(r->reply), fmt, ap);
	va_end(ap);
}

static enum queue_status status_of(int code)
{
	switch (code / 100) {
	case 2:
		return QUEUE_DELIVERED;
	case 5:
		return QUEUE_FAILED;
	default: /* 4xx, and a 3xx where none belongs: try again later */
		return QUEUE_DEFERRED;
	}
}

static void result_from_reply(struct tx *t, size_t i, const struct relay_smtp_reply *rep)
{
	char line[RELAY_REPLY_TEXT_MAX];

	relay_smtp_reply_oneline(rep, line, sizeof(line));
	result_set(&t->res[i], rep->code, status_of(rep->code), "%s said: %d %s", t->c.peer,
	           rep->code, line);
	t->st[i] = RS_FINAL;
}

/* Every recipient without a final answer: DEFERRED, code (0: never asked), why. */
static void defer_open(struct tx *t, int code, const char *why)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] == RS_SKIP || t->st[i] == RS_FINAL)
			continue;
		result_set(&t->res[i], code, QUEUE_DEFERRED, "%s", why);
		t->st[i] = RS_FINAL;
	}
}

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

static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->code = 0;
	c->polite = 0;
}

/* Wait until fd is ready for events or the deadline passes. */
static int conn_wait(struct conn *c, short events, int64_t deadline, const char *doing)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd p = {.fd = c->fd, .events = events};
		int rc;
		if (left <= 0) {
			conn_fail(c, "timeout %s %s", doing, c->peer);
			return IO_FAIL;
		}
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return IO_OK;
		if (rc < 0 && errno != EINTR) {
			conn_fail(c, "poll: %s", strerror(errno));
			return IO_FAIL;
		}
	}
}

/* After an SSL_* call failed: wait for what it wants, or report why it failed. */
static int ssl_retry(struct conn *c, int ret, int64_t deadline, const char *doing)
{
	int err = SSL_get_error(c->ssl, ret);
	unsigned long code;

	if (err == SSL_ERROR_WANT_READ)
		return conn_wait(c, POLLIN, deadline, doing);
	if (err == SSL_ERROR_WANT_WRITE)
		return conn_wait(c, POLLOUT, deadline, doing);
	if (err == SSL_ERROR_ZERO_RETURN) {
		conn_fail(c, "connection closed by %s %s", c->peer, doing);
		return IO_FAIL;
	}
	code = ERR_get_error();
	if (code != 0)
		conn_fail(c, "TLS error %s %s: %s", doing, c->peer, ERR_reason_error_string(code));
	else if (err == SSL_ERROR_SYSCALL && errno != 0)
		conn_fail(c, "%s %s: %s", doing, c->peer, strerror(errno));
	else
		conn_fail(c, "connection closed by %s %s", c->peer, doing);
	ERR_clear_error();
	return IO_FAIL;
}

static int conn_write(struct conn *c, const char *buf, size_t len, int seconds)
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
					return IO_FAIL;
				continue;
			}
		} else {
			n = send(c->fd, buf, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					conn_fail(c, "writing to %s: %s", c->peer, strerror(errno));
					return IO_FAIL;
				}
				if (conn_wait(c, POLLOUT, deadline, "writing to") < 0)
					return IO_FAIL;
				continue;
			}
		}
		buf += n;
		len -= (size_t)n;
		deadline = deadline_in(seconds); /* a timeout means no progress, not a slow peer */
	}
	return IO_OK;
}

static int conn_read_more(struct conn *c, int64_t deadline)
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
				return IO_FAIL;
			continue;
		}
		n = recv(c->fd, at, room, 0);
		if (n > 0)
			break;
		if (n == 0) {
			conn_fail(c, "connection closed by %s", c->peer);
			return IO_FAIL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_fail(c, "reading from %s: %s", c->peer, strerror(errno));
			return IO_FAIL;
		}
		if (conn_wait(c, POLLIN, deadline, "reading from") < 0)
			return IO_FAIL;
	}
	c->inlen += (size_t)n;
	return IO_OK;
}

/* One whole reply, waiting at most seconds for it. */
static int read_reply(struct conn *c, int seconds, struct relay_smtp_reply *r)
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
				conn_fail(c, "%s sent a malformed reply: over-long line", c->peer);
				return IO_FAIL;
			}
			if (conn_read_more(c, deadline) < 0)
				return IO_FAIL;
			continue;
		}
		used = (size_t)(lf - c->in) + 1;
		err_clear(&e);
		rc = relay_smtp_reply_line(r, c->in, used - 1, &e);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (rc < 0) {
			conn_fail(c, "%s sent a %s", c->peer, e.msg);
			return IO_FAIL;
		}
		if (rc == 1)
			return IO_OK;
	}
}

static int conn_printf(struct conn *c, int seconds, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conn_printf(struct conn *c, int seconds, const char *fmt, ...)
{
	char buf[DELIVER_PATH_MAX + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		conn_fail(c, "command too long for %s", c->peer);
		return IO_FAIL;
	}
	return conn_write(c, buf, (size_t)n, seconds);
}

static void conn_close(struct conn *c)
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

static int connect_wait(struct conn *c, const struct sockaddr *sa, socklen_t salen, int seconds)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (connect(c->fd, sa, salen) == 0)
		return IO_OK;
	if (errno != EINPROGRESS && errno != EINTR) {
		conn_fail(c, "connect to %s: %s", c->peer, strerror(errno));
		return IO_FAIL;
	}
	if (conn_wait(c, POLLOUT, deadline_in(seconds), "connecting to") < 0)
		return IO_FAIL;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr != 0) {
		conn_fail(c, "connect to %s: %s", c->peer, strerror(soerr));
		return IO_FAIL;
	}
	return IO_OK;
}

static int connect_unix(struct conn *c, const char *path, int seconds)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	snprintf(c->peer, sizeof(c->peer), "%s", path);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		conn_fail(c, "socket path too long: %s", path);
		return IO_FAIL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_fail(c, "socket: %s", strerror(errno));
		return IO_FAIL;
	}
	return connect_wait(c, (struct sockaddr *)&sun, sizeof(sun), seconds);
}

/* Each address of host in turn, connect_timeout each, until one answers. */
static int connect_tcp(struct conn *c, const char *host, uint16_t port, int seconds)
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
		conn_fail(c, "cannot resolve %s: %s", host,
		          rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return IO_FAIL;
	}
	rc = IO_FAIL;
	for (ai = res; ai != NULL && rc != IO_OK; ai = ai->ai_next) {
		char addr[NI_MAXHOST] = "?";
		getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
		            NI_NUMERICHOST);
		snprintf(c->peer, sizeof(c->peer), "%.253s[%.40s]", host, addr);
		if (c->fd >= 0)
			close(c->fd);
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		               ai->ai_protocol);
		if (c->fd < 0) {
			conn_fail(c, "socket: %s", strerror(errno));
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

static void tls_init(void)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL)
		return;
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	/* the peer is checked after the handshake, against the hop (tls_check_peer) */
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
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

static int tls_start(struct tx *t)
{
	struct conn *c = &t->c;
	const struct relay_hop *hop = t->hop;
	const char *sni = hop->tls_name[0] ? hop->tls_name : hop->host;
	int64_t deadline = deadline_in(t->tcmd);
	char why[300];

	pthread_once(&tls_once, tls_init);
	if (tls_ctx == NULL || (c->ssl = SSL_new(tls_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		ERR_clear_error();
		conn_fail(c, "cannot set up TLS");
		return IO_FAIL;
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
		if (ssl_retry(c, rc, deadline, "in the TLS handshake with") < 0)
			return IO_FAIL;
	}
	if (tls_check_peer(c->ssl, hop, why, sizeof(why)) < 0) {
		conn_fail(c, "%s: %s", c->peer, why);
		return IO_FAIL;
	}
	return IO_OK;
}

/* ------------------------------------------------------------------ the session */

static int is_lmtp(const struct tx *t)
{
	return t->hop->proto == RELAY_PROTO_LMTP;
}

static const char *helo_name(const struct tx *t)
{
	return t->s->hostname != NULL && t->s->hostname[0] != '\0' ? t->s->hostname : "localhost";
}

/* The reply's text on one line, as "host[addr] said: 550 5.1.1 ..." */
static void reply_why(struct tx *t, const char *what, const struct relay_smtp_reply *rep)
{
	char line[RELAY_REPLY_TEXT_MAX];

	relay_smtp_reply_oneline(rep, line, sizeof(line));
	conn_fail(&t->c, "%s%s said: %d %.300s", what, t->c.peer, rep->code, line);
	t->c.code = rep->code;
	t->c.polite = 1;
}

/* EHLO (LHLO), and HELO when an SMTP peer refuses EHLO; fills t->caps. */
static int hello(struct tx *t, struct relay_smtp_reply *rep)
{
	struct conn *c = &t->c;

	memset(&t->caps, 0, sizeof(t->caps));
	if (conn_printf(c, t->tcmd, "%s %s\r\n", is_lmtp(t) ? "LHLO" : "EHLO", helo_name(t)) < 0 ||
	    read_reply(c, t->tcmd, rep) < 0)
		return IO_FAIL;
	if (rep->code / 100 == 2) {
		relay_smtp_caps_parse(rep, &t->caps);
		return IO_OK;
	}
	if (is_lmtp(t) || rep->code / 100 != 5) {
		reply_why(t, is_lmtp(t) ? "LHLO refused: " : "EHLO refused: ", rep);
		return IO_FAIL;
	}
	if (conn_printf(c, t->tcmd, "HELO %s\r\n", helo_name(t)) < 0 ||
	    read_reply(c, t->tcmd, rep) < 0)
		return IO_FAIL;
	if (rep->code / 100 == 2)
		return IO_OK;
	reply_why(t, "HELO refused: ", rep);
	return IO_FAIL;
}

/*
 * STARTTLS when offered and wanted.  IO_FAIL with c->why when the hop needs
 * TLS and cannot have it, IO_PLAIN_RETRY when the handshake failed and plain
 * text is allowed (the connection is spent: RFC 3207 §4.1).
 */
static int starttls(struct tx *t, int no_tls)
{
	struct conn *c = &t->c;
	const struct relay_hop *hop = t->hop;
	int must = hop->tls_required || hop->pin[0] != '\0';
	struct relay_smtp_reply rep;

	if (no_tls || (hop->unix_socket && !must))
		return IO_OK;
	if (!t->caps.starttls) {
		if (!must)
			return IO_OK;
		conn_fail(c, "TLS required, but %s does not offer STARTTLS", c->peer);
		c->polite = 1;
		return IO_FAIL;
	}
	if (conn_printf(c, t->tcmd, "STARTTLS\r\n") < 0 || read_reply(c, t->tcmd, &rep) < 0)
		return IO_FAIL;
	if (rep.code != 220) {
		if (!must)
			return IO_OK; /* the session goes on in plain text (RFC 3207 §4) */
		reply_why(t, "TLS required, but STARTTLS failed: ", &rep);
		return IO_FAIL;
	}
	if (c->inlen > 0) /* bytes sent before the handshake: response injection (CVE-2011-0411) */
		conn_fail(c, "%s sent data after its STARTTLS reply", c->peer);
	if (c->inlen > 0 || tls_start(t) < 0) {
		char why[sizeof(c->why)];
		if (!must)
			return IO_PLAIN_RETRY;
		snprintf(why, sizeof(why), "TLS required: %.380s", c->why);
		snprintf(c->why, sizeof(c->why), "%s", why);
		return IO_FAIL;
	}
	return hello(t, &rep);
}

/* ------------------------------------------------------------------ the transaction */

static int has_8bit(const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)b[i] >= 0x80)
			return 1;
	return 0;
}

/*
 * The body, dot-stuffed (RFC 5321 §4.5.2), then CRLF "." CRLF.  A bare CR or
 * LF becomes CRLF, so that no peer can see an end of data the relay did not
 * send (SMTP smuggling); a body without a final line ending gets one.
 */
static int send_body(struct tx *t)
{
	char out[DELIVER_OUT_CHUNK + 8];
	size_t o = 0;
	int bol = 1;

	for (size_t i = 0; i < t->len; i++) {
		char ch = t->body[i];
		if (o + 4 > DELIVER_OUT_CHUNK) {
			if (conn_write(&t->c, out, o, t->tdata) < 0)
				return IO_FAIL;
			o = 0;
		}
		if (bol && ch == '.')
			out[o++] = '.';
		if (ch == '\r' || ch == '\n') {
			if (ch == '\r' && i + 1 < t->len && t->body[i + 1] == '\n')
				i++;
			out[o++] = '\r';
			out[o++] = '\n';
			bol = 1;
		} else {
			out[o++] = ch;
			bol = 0;
		}
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	o += 3;
	return conn_write(&t->c, out, o, t->tdata);
}

/* After the body: SMTP gives one reply for all, LMTP one per accepted recipient
 * in RCPT order (RFC 2033 §4.2). */
static int data_replies(struct tx *t)
{
	struct relay_smtp_reply rep;
	int have = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] != RS_ACCEPTED)
			continue;
		if ((is_lmtp(t) || !have) && read_reply(&t->c, t->tdata, &rep) < 0)
			return IO_FAIL;
		have = 1;
		result_from_reply(t, i, &rep);
	}
	return IO_OK;
}

/* DATA's reply: 354 sends the body; anything else is the accepted recipients' fate. */
static int data_phase(struct tx *t, const struct relay_smtp_reply *rep, size_t naccepted)
{
	struct relay_smtp_reply ignored;

	if (rep->code == 354 && naccepted == 0) {
		/* RFC 2920 §3.1: every RCPT failed but DATA went through: send an empty message */
		if (conn_write(&t->c, ".\r\n", 3, t->tcmd) < 0 ||
		    read_reply(&t->c, t->tdata, &ignored) < 0)
			return IO_FAIL;
		return IO_OK;
	}
	if (rep->code == 354)
		return send_body(t) < 0 ? IO_FAIL : data_replies(t);
	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] != RS_ACCEPTED)
			continue;
		result_from_reply(t, i, rep);
		if (t->res[i].status == QUEUE_DELIVERED) /* a 2xx to DATA is no delivery */
			t->res[i].status = QUEUE_DEFERRED;
	}
	return IO_OK;
}

/* The MAIL command, with SIZE and BODY when the peer takes them. */
static int mail_command(struct tx *t, char *buf, size_t len)
{
	char size[40] = "";

	if (t->caps.size)
		snprintf(size, sizeof(size), " SIZE=%zu", t->len);
	return snprintf(buf, len, "MAIL FROM:<%s>%s%s\r\n", t->sender, size,
	                t->caps.eightbitmime && has_8bit(t->body, t->len) ? " BODY=8BITMIME" : "");
}

/* One reply of the window: what it says about the recipients. */
static int window_reply(struct tx *t, size_t j, const size_t *order, size_t k, int *mail_failed,
                        size_t *naccepted)
{
	struct relay_smtp_reply rep;

	if (read_reply(&t->c, t->tcmd, &rep) < 0)
		return IO_FAIL;
	if (j == 0) {
		if (rep.code / 100 == 2)
			return IO_OK;
		*mail_failed = 1;
		for (size_t m = 0; m < k; m++)
			result_from_reply(t, order[m], &rep);
		return IO_OK;
	}
	if (j == k + 1)
		return data_phase(t, &rep, *mail_failed ? 0 : *naccepted);
	if (*mail_failed)
		return IO_OK; /* the recipients already carry MAIL's reply */
	if (rep.code / 100 != 2) {
		result_from_reply(t, order[j - 1], &rep);
		return IO_OK;
	}
	t->st[order[j - 1]] = RS_ACCEPTED;
	(*naccepted)++;
	return IO_OK;
}

/*
 * MAIL, RCPT..., DATA: with PIPELINING in windows of DELIVER_WINDOW commands
 * written at once and their replies read in order (RFC 2920), else one by one.
 * Windows keep a long recipient list from filling both sides' buffers.
 */
static int transaction(struct tx *t)
{
	size_t k = 0, sent = 0, naccepted = 0, total, window, per = DELIVER_PATH_MAX + 64;
	size_t *order = malloc(t->n * sizeof(*order));
	char *buf = malloc(DELIVER_WINDOW * per);
	int mail_failed = 0, rc = IO_OK;

	if (order == NULL || buf == NULL) {
		conn_fail(&t->c, "out of memory");
		rc = IO_FAIL;
		goto out;
	}
	for (size_t i = 0; i < t->n; i++)
		if (t->st[i] == RS_SEND)
			order[k++] = i;
	if (t->caps.size_max > 0 && t->len > t->caps.size_max) {
		for (size_t m = 0; m < k; m++)
			result_set(&t->res[order[m]], 0, QUEUE_FAILED,
			           "%s: message size %zu exceeds the limit of %llu bytes",
			           t->c.peer, t->len, t->caps.size_max);
		goto out;
	}
	total = t->probe ? k + 1 : k + 2; /* a probe sends no DATA */
	window = t->caps.pipelining ? DELIVER_WINDOW : 1;
	while (sent < total && rc == IO_OK && !mail_failed) {
		size_t end = sent + window < total ? sent + window : total, o = 0;
		if (!t->probe && !t->caps.pipelining && sent == total - 1 && naccepted == 0)
			break;
		for (size_t j = sent; j < end; j++) {
			if (j == 0)
				o += (size_t)mail_command(t, buf + o, per);
			else if (j <= k)
				o += (size_t)snprintf(buf + o, per, "RCPT TO:<%s>\r\n",
				                      t->rcpts[order[j - 1]]);
			else
				o += (size_t)snprintf(buf + o, per, "DATA\r\n");
		}
		rc = conn_write(&t->c, buf, o, t->tcmd);
		for (size_t j = sent; j < end && rc == IO_OK; j++)
			rc = window_reply(t, j, order, k, &mail_failed, &naccepted);
		sent = end;
	}
	for (size_t m = 0; t->probe && rc == IO_OK && m < k; m++)
		if (t->st[order[m]] == RS_ACCEPTED)
			result_set(&t->res[order[m]], 250, QUEUE_DELIVERED, "%s: recipient accepted",
			           t->c.peer);
out:
	free(order);
	free(buf);
	return rc;
}

static void quit(struct tx *t)
{
	struct relay_smtp_reply rep;

	if (conn_write(&t->c, "QUIT\r\n", 6, DELIVER_QUIT_TIMEOUT) == IO_OK)
		(void)read_reply(&t->c, DELIVER_QUIT_TIMEOUT, &rep);
}

/* One connection: IO_OK when the transaction ran, IO_FAIL (results deferred) or
 * IO_PLAIN_RETRY. */
static int session(struct tx *t, int no_tls)
{
	struct conn *c = &t->c;
	struct relay_smtp_reply rep;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	rc = t->hop->unix_socket ? connect_unix(c, t->hop->host, t->tconn)
	                         : connect_tcp(c, t->hop->host, t->hop->port, t->tconn);
	if (rc == IO_OK && (rc = read_reply(c, t->tcmd, &rep)) == IO_OK && rep.code / 100 != 2) {
		reply_why(t, "greeting refused: ", &rep);
		rc = IO_FAIL;
	}
	if (rc == IO_OK)
		rc = hello(t, &rep);
	if (rc == IO_OK)
		rc = starttls(t, no_tls);
	if (rc == IO_OK)
		rc = transaction(t);
	if (rc == IO_OK || (rc == IO_FAIL && c->polite))
		quit(t); /* politely, also after a refusal; its outcome changes nothing */
	if (rc == IO_FAIL)
		defer_open(t, c->code, c->why);
	conn_close(c);
	return rc;
}

/* What may go between the angle brackets: printable ASCII without <, > or space. */
static int path_ok(const char *addr, int null_ok)
{
	size_t len = strlen(addr);

	if (len == 0)
		return null_ok;
	if (len + 2 >= DELIVER_PATH_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)addr[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>')
			return 0;
	}
	return 1;
}

static int seconds_or(long long v, int dflt)
{
	return v > 0 && v <= 86400 ? (int)v : dflt;
}

static int deliver_or_probe(const struct relay_settings *s, const struct relay_hop *hop,
                            const char *sender, const char *const *rcpts, size_t n,
                            const char *body, size_t len, int probe,
                            struct relay_rcpt_result *results, struct err *e);

int relay_deliver(const struct relay_settings *s, const struct relay_hop *hop, const char *sender,
                  const char *const *rcpts, size_t n, const char *body, size_t len,
                  struct relay_rcpt_result *results, struct err *e)
{
	return deliver_or_probe(s, hop, sender, rcpts, n, body, len, 0, results, e);
}

int relay_probe_rcpt(const struct relay_settings *s, const struct relay_hop *hop, const char *rcpt,
                     struct relay_rcpt_result *result, struct err *e)
{
	const char *one[1] = {rcpt};

	return deliver_or_probe(s, hop, "", one, 1, "", 0, 1, result, e);
}

static int deliver_or_probe(const struct relay_settings *s, const struct relay_hop *hop,
                            const char *sender, const char *const *rcpts, size_t n,
                            const char *body, size_t len, int probe,
                            struct relay_rcpt_result *results, struct err *e)
{
	struct tx *t;
	size_t valid = 0;
	int rc = IO_OK;

	if (n == 0)
		return 0;
	memset(results, 0, n * sizeof(*results));
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->st = calloc(n, sizeof(*t->st))) == NULL) {
		for (size_t i = 0; i < n; i++)
			result_set(&results[i], 0, QUEUE_DEFERRED, "out of memory");
		free(t);
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	*t = (struct tx){.s = s,
	                 .hop = hop,
	                 .sender = sender ? sender : "",
	                 .rcpts = rcpts,
	                 .n = n,
	                 .body = body,
	                 .len = len,
	                 .res = results,
	                 .st = t->st,
	                 .tconn = seconds_or(s->connect_timeout, 30),
	                 .tcmd = seconds_or(s->command_timeout, 300),
	                 .tdata = seconds_or(s->data_timeout, 600),
	                 .probe = probe};
	for (size_t i = 0; i < n; i++) {
		if (!path_ok(t->sender, 1))
			result_set(&results[i], 0, QUEUE_FAILED,
			           "the sender address <%.300s> cannot be sent", t->sender);
		else if (rcpts[i] == NULL || !path_ok(rcpts[i], 0))
			result_set(&results[i], 0, QUEUE_FAILED,
			           "the recipient address <%.300s> cannot be sent",
			           rcpts[i] ? rcpts[i] : "");
		else {
			t->st[i] = RS_SEND;
			valid++;
		}
	}
	for (int attempt = 0; valid > 0 && attempt < 2; attempt++) {
		rc = session(t, attempt);
		if (rc != IO_PLAIN_RETRY)
			break;
	}
	if (rc != IO_OK)
		err_set(e, ERR_TEMP, "delivery_failed", "%s", t->c.why);
	free(t->st);
	free(t);
	return rc == IO_OK ? 0 : -1;
}
