/*
 * test_relay_deliver.c - the relay's SMTP/LMTP client (relay/deliver.c), its
 * reply parser (relay/smtp_reply.c) and the next-hop parser (relay/route.c).
 *
 * Deliveries go to a scripted fake server: a thread on 127.0.0.1 (ephemeral
 * port) or on a Unix socket that answers each command from the case's
 * table, records every command line and the exact DATA bytes it received,
 * and can offer STARTTLS with certificates made here by lib/cert.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "dns/discover.h"
#include "relay.h"
#include "dns/resolve.h"

/* ------------------------------------------------------------------ certificates */

struct pki {
	EVP_PKEY *root_key, *issuer_key, *leaf_key, *other_key;
	X509 *root, *issuer, *leaf;
	char root_pin[CRYPTO_PIN_MAX], issuer_pin[CRYPTO_PIN_MAX], leaf_pin[CRYPTO_PIN_MAX],
	    other_pin[CRYPTO_PIN_MAX];
};

static struct pki pki;

static void pki_make(void)
{
	struct err e;
	char kid[CRYPTO_UUID_LEN];
	struct cert_issue req = {
	    .purpose = CERT_PURPOSE_MTA, .name = "mx.example.com", .key_id = kid, .days = 30};

	err_clear(&e);
	pki.root_key = crypto_key_generate(KEY_ED25519, 0, &e);
	pki.issuer_key = crypto_key_generate(KEY_P256, 0, &e);
	pki.leaf_key = crypto_key_generate(KEY_P256, 0, &e);
	pki.other_key = crypto_key_generate(KEY_ED25519, 0, &e);
	assert_non_null(pki.other_key);
	pki.root = cert_make_root(pki.root_key, "example.com", 3650, &e);
	assert_non_null(pki.root);
	pki.issuer =
	    cert_make_issuer(pki.issuer_key, pki.root, pki.root_key, "example.com", 730, &e);
	assert_non_null(pki.issuer);
	assert_int_equal(crypto_uuid_v4(kid, &e), 0);
	pki.leaf = cert_issue_leaf(&req, pki.leaf_key, pki.issuer, pki.issuer_key, &e);
	if (pki.leaf == NULL)
		fail_msg("cert_issue_leaf: %s", e.msg);
	assert_int_equal(crypto_key_pin(pki.root_key, pki.root_pin, &e), 0);
	assert_int_equal(crypto_key_pin(pki.issuer_key, pki.issuer_pin, &e), 0);
	assert_int_equal(crypto_key_pin(pki.leaf_key, pki.leaf_pin, &e), 0);
	assert_int_equal(crypto_key_pin(pki.other_key, pki.other_pin, &e), 0);
}

static void pki_free(void)
{
	X509_free(pki.root);
	X509_free(pki.issuer);
	X509_free(pki.leaf);
	EVP_PKEY_free(pki.root_key);
	EVP_PKEY_free(pki.issuer_key);
	EVP_PKEY_free(pki.leaf_key);
	EVP_PKEY_free(pki.other_key);
}

/* chain: 0 leaf only, 1 leaf+issuer, 2 leaf+issuer+root */
static SSL_CTX *server_ctx(int chain)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, pki.leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pki.leaf_key), 1);
	if (chain >= 1)
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, pki.issuer), 1);
	if (chain >= 2)
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, pki.root), 1);
	return ctx;
}

/* ------------------------------------------------------------------ the fake server */

struct rcpt_reply {
	const char *addr;
	const char *reply;
};

struct fake_script {
	const char *greeting;           /* NULL: "220 fake ESMTP\r\n"; "" : stall, say nothing */
	const char *ehlo;               /* NULL: a plain ESMTP EHLO reply */
	const char *mail;               /* NULL: "250 2.1.0 Ok" */
	const struct rcpt_reply *rcpts; /* NULL-terminated; others get 250 */
	const char *data;               /* NULL: "354 go" */
	const char *eod; /* NULL: "250 2.0.0 queued"; raw, may hold several replies */
	SSL_CTX *tls;    /* STARTTLS accepted with this context */
	int tls_junk;    /* answer STARTTLS with 220, then junk instead of a handshake */
	int conns;       /* connections to serve (default 1) */
};

struct fake {
	struct fake_script sc;
	int lfd;
	uint16_t port;
	char path[108];
	pthread_t th;
	/* what the client did */
	char log[16384]; /* command lines, '\n'-separated */
	char data[65536];
	size_t datalen;
	int tls_used;
	int served;
	int pipelined; /* a read held MAIL through DATA at once */
	/* per connection */
	int fd;
	SSL *ssl;
	char in[65536];
	size_t inlen;
};

static const char *ehlo_plain = "250-fake.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                                "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

static void fk_write(struct fake *f, const char *s)
{
	size_t len = strlen(s);

	if (f->ssl != NULL)
		SSL_write(f->ssl, s, (int)len);
	else if (send(f->fd, s, len, MSG_NOSIGNAL) < 0)
		return;
}

static int fk_read(struct fake *f)
{
	ssize_t n;
	size_t room = sizeof(f->in) - f->inlen;

	if (room == 0)
		return -1;
	if (f->ssl != NULL)
		n = SSL_read(f->ssl, f->in + f->inlen, (int)room);
	else
		n = recv(f->fd, f->in + f->inlen, room, 0);
	if (n <= 0)
		return -1;
	f->inlen += (size_t)n;
	if (memmem(f->in, f->inlen, "MAIL FROM", 9) && memmem(f->in, f->inlen, "\r\nDATA\r\n", 8))
		f->pipelined = 1;
	return 0;
}

static void fk_consume(struct fake *f, size_t n)
{
	memmove(f->in, f->in + n, f->inlen - n);
	f->inlen -= n;
}

/* One command line (CRLF stripped) into line; -1 when the client went away. */
static int fk_line(struct fake *f, char *line, size_t len)
{
	char *lf;

	while ((lf = memchr(f->in, '\n', f->inlen)) == NULL)
		if (fk_read(f) < 0)
			return -1;
	size_t n = (size_t)(lf - f->in);
	size_t copy = n > 0 && f->in[n - 1] == '\r' ? n - 1 : n;
	if (copy >= len)
		copy = len - 1;
	memcpy(line, f->in, copy);
	line[copy] = '\0';
	fk_consume(f, n + 1);
	return 0;
}

/* DATA bytes up to and including CRLF "." CRLF, recorded byte for byte. */
static int fk_data(struct fake *f)
{
	for (;;) {
		char *end = NULL;
		if (f->inlen >= 3 && memcmp(f->in, ".\r\n", 3) == 0)
			end = f->in;
		else {
			char *p = memmem(f->in, f->inlen, "\r\n.\r\n", 5);
			if (p != NULL)
				end = p + 2;
		}
		if (end != NULL) {
			size_t n = (size_t)(end - f->in) + 3;
			assert_true(f->datalen + n <= sizeof(f->data));
			memcpy(f->data + f->datalen, f->in, n);
			f->datalen += n;
			fk_consume(f, n);
			return 0;
		}
		if (fk_read(f) < 0)
			return -1;
	}
}

/* A BDAT chunk: exactly n octets, recorded byte for byte. */
static int fk_chunk(struct fake *f, size_t n)
{
	while (f->inlen < n)
		if (fk_read(f) < 0)
			return -1;
	assert_true(f->datalen + n <= sizeof(f->data));
	memcpy(f->data + f->datalen, f->in, n);
	f->datalen += n;
	fk_consume(f, n);
	return 0;
}

static void fk_log(struct fake *f, const char *line)
{
	size_t at = strlen(f->log);

	snprintf(f->log + at, sizeof(f->log) - at, "%s\n", line);
}

static const char *rcpt_reply(const struct fake *f, const char *line)
{
	const char *lt = strchr(line, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	for (const struct rcpt_reply *r = f->sc.rcpts; r != NULL && r->addr != NULL; r++)
		if (gt != NULL && strlen(r->addr) == (size_t)(gt - lt - 1) &&
		    strncmp(lt + 1, r->addr, (size_t)(gt - lt - 1)) == 0)
			return r->reply;
	return "250 2.1.5 Ok\r\n";
}

static void fk_session(struct fake *f)
{
	char line[4096];

	if (f->sc.greeting != NULL && f->sc.greeting[0] == '\0') {
		while (fk_read(f) == 0) /* stall until the client gives up */
			;
		return;
	}
	fk_write(f, f->sc.greeting ? f->sc.greeting : "220 fake ESMTP\r\n");
	while (fk_line(f, line, sizeof(line)) == 0) {
		fk_log(f, line);
		if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "LHLO", 4) == 0) {
			if (f->sc.tls != NULL && f->ssl == NULL)
				fk_write(f,
				         "250-fake.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n");
			else
				fk_write(f, f->sc.ehlo ? f->sc.ehlo : ehlo_plain);
		} else if (strncasecmp(line, "HELO", 4) == 0) {
			fk_write(f, "250 fake.example\r\n");
		} else if (strcasecmp(line, "STARTTLS") == 0 && (f->sc.tls || f->sc.tls_junk)) {
			fk_write(f, "220 2.0.0 go ahead\r\n");
			if (f->sc.tls_junk) {
				fk_write(f, "this is not TLS\r\n");
				return;
			}
			f->ssl = SSL_new(f->sc.tls);
			SSL_set_fd(f->ssl, f->fd);
			if (SSL_accept(f->ssl) != 1)
				return;
			f->tls_used = 1;
		} else if (strncasecmp(line, "MAIL", 4) == 0) {
			fk_write(f, f->sc.mail ? f->sc.mail : "250 2.1.0 Ok\r\n");
		} else if (strncasecmp(line, "RCPT", 4) == 0) {
			fk_write(f, rcpt_reply(f, line));
		} else if (strcasecmp(line, "DATA") == 0) {
			const char *d = f->sc.data ? f->sc.data : "354 go\r\n";
			fk_write(f, d);
			if (strncmp(d, "354", 3) != 0)
				continue;
			if (fk_data(f) < 0)
				return;
			fk_write(f, f->sc.eod ? f->sc.eod : "250 2.0.0 queued as FAKE\r\n");
		} else if (strncasecmp(line, "BDAT ", 5) == 0) {
			if (fk_chunk(f, strtoul(line + 5, NULL, 10)) < 0)
				return;
			fk_write(f, strstr(line, " LAST") == NULL ? "250 2.0.0 chunk\r\n"
			            : f->sc.eod                   ? f->sc.eod
			                                          : "250 2.0.0 queued as FAKE\r\n");
		} else if (strcasecmp(line, "QUIT") == 0) {
			fk_write(f, "221 2.0.0 bye\r\n");
			return;
		} else {
			fk_write(f, "502 5.5.2 what\r\n");
		}
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int conns = f->sc.conns > 0 ? f->sc.conns : 1;

	for (int i = 0; i < conns; i++) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		struct timeval tv = {.tv_sec = 5};
		if (poll(&p, 1, 5000) != 1)
			break;
		f->fd = accept(f->lfd, NULL, NULL);
		if (f->fd < 0)
			break;
		setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		f->served++;
		f->inlen = 0;
		fk_session(f);
		if (f->ssl != NULL) {
			SSL_shutdown(f->ssl);
			SSL_free(f->ssl);
			f->ssl = NULL;
		}
		close(f->fd);
	}
	return NULL;
}

/* Every fake lives until the group's teardown, so a test may read it after fake_stop. */
static struct fake *fakes[64];
static size_t nfakes;

static struct fake *fake_start(const struct fake_script *sc, int on_unix)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_true(nfakes < sizeof(fakes) / sizeof(fakes[0]));
	fakes[nfakes++] = f;
	f->sc = *sc;
	if (on_unix) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(f->path, sizeof(f->path), "/tmp/test_relay_deliver.%d.sock",
		         (int)getpid());
		unlink(f->path);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
		f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	} else {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		socklen_t len = sizeof(sin);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		f->lfd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &len), 0);
		f->port = ntohs(sin.sin_port);
	}
	assert_int_equal(listen(f->lfd, 8), 0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
	if (f->path[0])
		unlink(f->path);
}

/* ------------------------------------------------------------------ helpers */

static struct relay_settings settings(int timeout)
{
	struct relay_settings s;

	memset(&s, 0, sizeof(s));
	s.hostname = "relay.test";
	s.connect_timeout = timeout;
	s.command_timeout = timeout;
	s.data_timeout = timeout;
	return s;
}

static struct relay_hop tcp_hop(const struct fake *f, enum relay_next_proto proto)
{
	struct relay_hop h;

	memset(&h, 0, sizeof(h));
	h.proto = proto;
	snprintf(h.host, sizeof(h.host), "127.0.0.1");
	h.port = f->port;
	return h;
}

static const char *body1 = "From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n";

static int deliver(const struct relay_hop *hop, int timeout, const char *const *rcpts, size_t n,
                   const char *body, struct relay_rcpt_result *res, struct err *e)
{
	struct relay_settings s = settings(timeout);

	err_clear(e);
	return relay_deliver(&s, hop, "sender@example.org", rcpts, n, body, strlen(body), res, e);
}

/* ------------------------------------------------------------------ reply parser */

static void test_reply_parse(void **state)
{
	struct relay_smtp_reply r;
	struct err e;
	size_t used;
	char one[512];
	const char *multi =
	    "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n250 next\r\n";

	assert_int_equal(relay_smtp_reply_parse("250 ok\r\n", 8, &r, &used, &e), 1);
	assert_int_equal(r.code, 250);
	assert_int_equal(used, 8);
	assert_string_equal(r.text, "ok");

	assert_int_equal(relay_smtp_reply_parse(multi, strlen(multi), &r, &used, &e), 1);
	assert_int_equal(r.code, 550);
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.enhanced, "5.1.1");
	assert_int_equal(used, strlen(multi) - strlen("250 next\r\n"));
	relay_smtp_reply_oneline(&r, one, sizeof(one));
	assert_string_equal(one, "5.1.1 first second third");

	/* incomplete, bare code, bare LF */
	assert_int_equal(relay_smtp_reply_parse("250-a\r\n250 b", 12, &r, &used, &e), 0);
	assert_int_equal(relay_smtp_reply_parse("221\r\n", 5, &r, &used, &e), 1);
	assert_int_equal(r.code, 221);
	assert_int_equal(relay_smtp_reply_parse("354 go\n", 7, &r, &used, &e), 1);

	/* garbage */
	const char *bad[] = {"HTTP/1.1 400 Bad\r\n",
	                     "25O ok\r\n",
	                     "250ok\r\n",
	                     "199 x\r\n",
	                     "600 x\r\n",
	                     "260 x\r\n",
	                     "250-a\r\n251 b\r\n",
	                     "\r\n",
	                     "2\r\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (relay_smtp_reply_parse(bad[i], strlen(bad[i]), &r, &used, &e) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_string_equal(e.code, "bad_reply");
	}

	/* over-long lines, complete or not, and endless multiline replies */
	char *big = malloc(RELAY_REPLY_LINE_MAX + 16);
	memset(big, 'x', RELAY_REPLY_LINE_MAX + 16);
	big[0] = '2', big[1] = '5', big[2] = '0', big[3] = ' ';
	assert_int_equal(relay_smtp_reply_parse(big, RELAY_REPLY_LINE_MAX + 16, &r, &used, &e), -1);
	big[RELAY_REPLY_LINE_MAX + 14] = '\r', big[RELAY_REPLY_LINE_MAX + 15] = '\n';
	assert_int_equal(relay_smtp_reply_parse(big, RELAY_REPLY_LINE_MAX + 16, &r, &used, &e), -1);
	free(big);
	relay_smtp_reply_init(&r);
	int rc = 0;
	for (int i = 0; i <= RELAY_REPLY_LINES_MAX && rc == 0; i++)
		rc = relay_smtp_reply_line(&r, "250-x", 5, &e);
	assert_int_equal(rc, -1);

	/* non-printable bytes never reach the text */
	const char *ctl = "550 a\x01\x1b[b\xff\r\n";
	assert_int_equal(relay_smtp_reply_parse(ctl, strlen(ctl), &r, &used, &e), 1);
	assert_string_equal(r.text, "a??[b?");
}

static void test_caps_parse(void **state)
{
	struct relay_smtp_reply r;
	struct relay_smtp_caps c;
	struct err e;
	size_t used;
	const char *ehlo = "250-mx.example Hello\r\n250-PIPELINING\r\n250-size 1000\r\n"
	                   "250-STARTTLS\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";

	assert_int_equal(relay_smtp_reply_parse(ehlo, strlen(ehlo), &r, &used, &e), 1);
	relay_smtp_caps_parse(&r, &c);
	assert_true(c.pipelining && c.starttls && c.eightbitmime && c.enhancedstatuscodes &&
	            c.size);
	assert_int_equal(c.size_max, 1000);
	/* the greeting line's words are not keywords */
	assert_int_equal(relay_smtp_reply_parse("250 PIPELINING\r\n", 16, &r, &used, &e), 1);
	relay_smtp_caps_parse(&r, &c);
	assert_false(c.pipelining);
}

/* ------------------------------------------------------------------ next hop parser */

static void test_hop_parse(void **state)
{
	struct relay_hop h;
	struct err e;

	assert_int_equal(relay_hop_parse("lmtp:127.0.0.1:2424", &h, &e), 0);
	assert_int_equal(h.proto, RELAY_PROTO_LMTP);
	assert_string_equal(h.host, "127.0.0.1");
	assert_int_equal(h.port, 2424);
	assert_false(h.unix_socket);

	assert_int_equal(relay_hop_parse("smtp:mail.example.com", &h, &e), 0);
	assert_int_equal(h.proto, RELAY_PROTO_SMTP);
	assert_int_equal(h.port, 25);

	assert_int_equal(relay_hop_parse("[::1]:10025", &h, &e), 0);
	assert_int_equal(h.proto, RELAY_PROTO_SMTP);
	assert_string_equal(h.host, "::1");
	assert_int_equal(h.port, 10025);

	assert_int_equal(relay_hop_parse("lmtp:[2001:db8::5]:24", &h, &e), 0);
	assert_string_equal(h.host, "2001:db8::5");

	assert_int_equal(relay_hop_parse("lmtp:unix:/run/dovecot/lmtp", &h, &e), 0);
	assert_true(h.unix_socket);
	assert_int_equal(h.proto, RELAY_PROTO_LMTP);
	assert_string_equal(h.host, "/run/dovecot/lmtp");
	assert_int_equal(relay_hop_parse("unix:/tmp/s", &h, &e), 0);
	assert_int_equal(h.proto, RELAY_PROTO_LMTP);
	assert_int_equal(relay_hop_parse("smtp:unix:/tmp/s", &h, &e), 0);
	assert_int_equal(h.proto, RELAY_PROTO_SMTP);

	const char *bad[] = {"",
	                     "lmtp:host",
	                     "smtp:host:0",
	                     "smtp:host:65536",
	                     "::1:25",
	                     "[::1",
	                     "[::1]x",
	                     "[127.0.0.1]:25",
	                     "lmtp:unix:",
	                     "lmtp:unix:rel/p",
	                     "smtp:ho st:25",
	                     "smtp:host:2x",
	                     "smtp::25",
	                     "smtp:host:123456",
	                     "lmtp:unix:/a b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (relay_hop_parse(bad[i], &h, &e) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_string_equal(e.code, "bad_next_hop");
	}
}

/* ------------------------------------------------------------------ route errors */

/* No key server or DNS here: a resolver that never answers gives a deferral,
 * a malformed recipient a failure.  Real routes are the integration tests'. */
static void test_route_errors(void **state)
{
	struct discover_config dc = {.resolver = "127.0.0.1:9", .timeout_ms = 200, .no_cache = 1};
	struct relay_settings s = settings(5);
	struct discover_ctx *d;
	struct resolve_ctx *rc;
	struct relay_hop hops[4];
	char final[RELAY_ADDR_MAX] = "";
	size_t n = 99;
	struct err e;

	err_clear(&e);
	d = discover_new(&dc, &e);
	assert_non_null(d);
	rc = resolve_new(d, &e);
	assert_non_null(rc);
	s.outbound_tls = "may";
	s.smtp_port = 25;

	assert_int_equal(relay_route(rc, NULL, &s, "bob@example.com", hops, 4, &n, final, &e), -1);
	assert_int_equal(n, 0);
	assert_true(err_is_temporary(e.kind));

	err_clear(&e);
	assert_int_equal(relay_route(rc, NULL, &s, "bob..x@example.com", hops, 4, &n, final, &e),
	                 -1);
	assert_string_equal(e.code, "bad_address");
	assert_false(err_is_temporary(e.kind));

	err_clear(&e);
	assert_int_equal(relay_route(rc, NULL, &s, "no-domain", hops, 4, &n, final, &e), -1);
	assert_string_equal(e.code, "bad_address");
	assert_false(err_is_temporary(e.kind));

	resolve_free(rc);
	discover_free(d);
}

/* ------------------------------------------------------------------ deliveries */

static void test_plain_smtp(void **state)
{
	struct fake_script sc = {.ehlo =
	                             "250-fake\r\n250 SIZE\r\n"}; /* no PIPELINING, no 8BITMIME */
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_int_equal(res[0].code, 250);
	assert_non_null(
	    strstr(res[0].reply, "127.0.0.1[127.0.0.1] said: 250 2.0.0 queued as FAKE"));
	assert_non_null(strstr(f->log, "EHLO relay.test\nMAIL FROM:<sender@example.org> SIZE=42\n"
	                               "RCPT TO:<bob@example.com>\nDATA\nQUIT\n"));
	assert_int_equal(f->datalen, strlen(body1) + 3);
	assert_memory_equal(f->data, body1, strlen(body1));
	assert_false(f->pipelined);
}

static void test_per_rcpt(void **state)
{
	static const struct rcpt_reply rr[] = {
	    {"nobody@example.com", "550 5.1.1 <nobody@example.com>: no such user\r\n"},
	    {"full@example.com", "450 4.2.2 mailbox full\r\n"},
	    {NULL, NULL}};
	struct fake_script sc = {.rcpts = rr};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"nobody@example.com", "ok@example.com", "full@example.com",
	                       "bad<addr>@example.com"};
	struct relay_rcpt_result res[4];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 4, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_int_equal(res[0].code, 550);
	assert_non_null(strstr(res[0].reply, "said: 550 5.1.1 <nobody@example.com>: no such user"));
	assert_int_equal(res[1].status, QUEUE_DELIVERED);
	assert_int_equal(res[2].status, QUEUE_DEFERRED);
	assert_int_equal(res[2].code, 450);
	/* never sent: a path that would break the command line */
	assert_int_equal(res[3].status, QUEUE_FAILED);
	assert_int_equal(res[3].code, 0);
	assert_null(strstr(f->log, "bad<addr>"));
	/* PIPELINING offered: MAIL, the RCPTs and DATA went in one write */
	assert_true(f->pipelined);
}

static void test_all_rcpts_refused_no_data(void **state)
{
	static const struct rcpt_reply rr[] = {{"x@example.com", "550 5.1.1 no\r\n"}, {NULL, NULL}};
	struct fake_script sc = {.rcpts = rr, .ehlo = "250 fake\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"x@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_null(strstr(f->log, "DATA"));
	assert_int_equal(f->datalen, 0);
}

static void test_mail_refused(void **state)
{
	struct fake_script sc = {.mail = "553-5.7.1 sender\r\n553 5.7.1 refused\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"a@example.com", "b@example.com"};
	struct relay_rcpt_result res[2];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 2, body1, res, &e), 0);
	fake_stop(f);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(res[i].status, QUEUE_FAILED);
		assert_int_equal(res[i].code, 553);
		assert_non_null(strstr(res[i].reply, "553 5.7.1 sender refused"));
	}
	/* pipelined DATA got 354 from this lax fake: an empty message, not the body (RFC 2920) */
	assert_int_equal(f->datalen, 3);
	assert_memory_equal(f->data, ".\r\n", 3);
}

static void test_lmtp_per_rcpt(void **state)
{
	static const struct rcpt_reply rr[] = {{"c@example.com", "550 5.1.1 unknown\r\n"},
	                                       {NULL, NULL}};
	struct fake_script sc = {
	    .rcpts = rr,
	    .ehlo = "250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
	    .eod = "250 2.0.0 <a@example.com> delivered\r\n452-4.2.2 <b@example.com>\r\n"
	           "452 4.2.2 over quota\r\n"};
	struct fake *f = fake_start(&sc, 1);
	struct relay_hop hop;
	const char *rcpts[] = {"a@example.com", "c@example.com", "b@example.com"};
	struct relay_rcpt_result res[3];
	struct err e;

	assert_int_equal(relay_hop_parse("lmtp:unix:/tmp/x", &hop, &e), 0);
	snprintf(hop.host, sizeof(hop.host), "%s", f->path);
	assert_int_equal(deliver(&hop, 5, rcpts, 3, body1, res, &e), 0);
	fake_stop(f);
	assert_non_null(strstr(f->log, "LHLO relay.test\n"));
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_non_null(strstr(res[0].reply, "<a@example.com> delivered"));
	assert_int_equal(res[1].status, QUEUE_FAILED);
	assert_int_equal(res[2].status, QUEUE_DEFERRED);
	assert_int_equal(res[2].code, 452);
	assert_non_null(strstr(res[2].reply, "452 4.2.2 <b@example.com> over quota"));
}

static void test_lmtp_tcp_missing_reply(void **state)
{
	/* two accepted recipients, one reply after the data: the second is left deferred */
	struct fake_script sc = {.ehlo = "250 lmtp\r\n", .eod = "250 2.0.0 one\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_LMTP);
	const char *rcpts[] = {"a@example.com", "b@example.com"};
	struct relay_rcpt_result res[2];
	struct err e;
	time_t t0 = time(NULL);

	assert_int_equal(deliver(&hop, 1, rcpts, 2, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_int_equal(res[1].status, QUEUE_DEFERRED);
	assert_true(time(NULL) - t0 <= 4);
}

static void test_dot_stuffing(void **state)
{
	struct fake_script sc = {0};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;
	const char *body =
	    ".first\r\nSubject: x\r\n\r\n.hello\r\n..two\r\n.\r\nbare\n.lf\rcr\r\nend";
	const char *want =
	    "..first\r\nSubject: x\r\n\r\n..hello\r\n...two\r\n..\r\nbare\r\n..lf\r\n"
	    "cr\r\nend\r\n.\r\n";

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_int_equal(f->datalen, strlen(want));
	assert_memory_equal(f->data, want, strlen(want));
}

/* CHUNKING: one BDAT LAST whose size is the octets sent, CRLF-normalised, no dot-stuffing;
 * no BDAT when no recipient is accepted; the reply after LAST is the final one. */
static void test_bdat(void **state)
{
	static const struct rcpt_reply rr[] = {{"no@example.com", "550 5.1.1 no\r\n"}, {0}};
	struct fake_script sc = {.ehlo = "250-fake\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
	                         .rcpts = rr};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	struct relay_settings s = settings(5);
	const char *rcpts[] = {"bob@example.com", "no@example.com"};
	struct relay_rcpt_result res[2];
	struct err e;
	const char *body = ".first\r\nSubject: x\r\n\r\n..two\r\n.\r\nbare\n.lf\rcr\r\nend";
	const char *want = ".first\r\nSubject: x\r\n\r\n..two\r\n.\r\nbare\r\n.lf\r\ncr\r\nend\r\n";
	char line[64];

	s.smtp_chunking = 1;
	assert_int_equal(
	    relay_deliver(&s, &hop, "a@example.org", rcpts, 2, body, strlen(body), res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_int_equal(res[1].status, QUEUE_FAILED);
	snprintf(line, sizeof(line), "\nBDAT %zu LAST\nQUIT\n", strlen(want));
	assert_non_null(strstr(f->log, line));
	assert_null(strstr(f->log, "DATA\n"));
	assert_int_equal(f->datalen, strlen(want));
	assert_memory_equal(f->data, want, strlen(want));

	/* every recipient refused: no BDAT at all */
	f = fake_start(&sc, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(
	    relay_deliver(&s, &hop, "a@example.org", rcpts + 1, 1, body, strlen(body), res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_null(strstr(f->log, "BDAT"));

	/* the answer after LAST decides */
	sc.eod = "554 5.6.0 no thanks\r\n";
	f = fake_start(&sc, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(
	    relay_deliver(&s, &hop, "a@example.org", rcpts, 1, body, strlen(body), res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_non_null(strstr(res[0].reply, "no thanks"));

	/* smtp_chunking = no: DATA even though CHUNKING is offered */
	sc.eod = NULL;
	s.smtp_chunking = 0;
	f = fake_start(&sc, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(
	    relay_deliver(&s, &hop, "a@example.org", rcpts, 1, body, strlen(body), res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_null(strstr(f->log, "BDAT"));
	assert_non_null(strstr(f->log, "DATA\n"));
}

static void test_empty_body_and_8bit(void **state)
{
	struct fake_script sc = {0};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, "", res, &e), 0);
	fake_stop(f);
	assert_int_equal(f->datalen, 3);
	assert_memory_equal(f->data, ".\r\n", 3);

	f = fake_start(&sc, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(deliver(&hop, 5, rcpts, 1, "Subject: caf\xc3\xa9\r\n\r\n", res, &e), 0);
	fake_stop(f);
	assert_non_null(strstr(f->log, "MAIL FROM:<sender@example.org> SIZE=18 BODY=8BITMIME\n"));
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
}

/* RFC 6531: a UTF-8 envelope goes with SMTPUTF8, or not at all (no downgrade). */
static void test_smtputf8(void **state)
{
	struct fake_script with = {.ehlo = "250-fake\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"};
	struct fake_script without = {0};
	struct fake *f = fake_start(&without, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"j\xc3\xb6rg@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	if (strstr(res[0].reply, "553 5.6.7") == NULL)
		fail_msg("reply: %s", res[0].reply);
	assert_null(strstr(f->log, "MAIL"));

	f = fake_start(&with, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_non_null(strstr(f->log, "MAIL FROM:<sender@example.org> SMTPUTF8\n"));
	assert_non_null(strstr(f->log, "RCPT TO:<j\xc3\xb6rg@example.com>\n"));
}

/* RFC 3461: RET, ENVID, NOTIFY and ORCPT go on to a peer that offers DSN, which then
 * reports (dsn_passed); a peer without DSN gets none of them. */
static void test_dsn_params(void **state)
{
	struct fake_script with = {.ehlo = "250-fake\r\n250 DSN\r\n"};
	struct fake_script without = {0};
	const char *rcpts[] = {"bob@example.com", "carol@example.com"};
	const char *orcpt[] = {"rfc822;Bob+2Bx@example.com", NULL};
	unsigned notify[] = {DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, 0};
	struct relay_dsn_out dsn = {DSN_RET_HDRS, "QQ+2B1", notify, orcpt};
	struct relay_settings s = settings(5);
	struct relay_rcpt_result res[2];
	struct err e = {0};
	struct fake *f = fake_start(&with, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);

	(void)state;
	assert_int_equal(relay_deliver_dsn(&s, &hop, "sender@example.org", rcpts, 2, &dsn, body1,
	                                   strlen(body1), res, &e),
	                 0);
	fake_stop(f);
	assert_non_null(strstr(f->log, "MAIL FROM:<sender@example.org> RET=HDRS ENVID=QQ+2B1\n"));
	assert_non_null(strstr(f->log, "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE "
	                               "ORCPT=rfc822;Bob+2Bx@example.com\n"));
	assert_non_null(strstr(f->log, "RCPT TO:<carol@example.com>\n"));
	assert_true(res[0].dsn_passed && res[1].dsn_passed);

	f = fake_start(&without, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(relay_deliver_dsn(&s, &hop, "sender@example.org", rcpts, 2, &dsn, body1,
	                                   strlen(body1), res, &e),
	                 0);
	fake_stop(f);
	assert_null(strstr(f->log, "RET="));
	assert_null(strstr(f->log, "NOTIFY="));
	assert_null(strstr(f->log, "ORCPT="));
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_false(res[0].dsn_passed);
}

static void test_size_limit(void **state)
{
	struct fake_script sc = {.ehlo = "250-fake\r\n250 SIZE 10\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_non_null(strstr(res[0].reply, "exceeds the limit of 10 bytes"));
	assert_null(strstr(f->log, "MAIL"));
}

static void test_many_rcpts_pipelined(void **state)
{
	struct fake_script sc = {0};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	enum { N = 150 };
	char addrs[N][40];
	const char *rcpts[N];
	struct relay_rcpt_result res[N];
	struct err e;

	for (int i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "user%d@example.com", i);
		rcpts[i] = addrs[i];
	}
	assert_int_equal(deliver(&hop, 5, rcpts, N, body1, res, &e), 0);
	fake_stop(f);
	for (int i = 0; i < N; i++)
		assert_int_equal(res[i].status, QUEUE_DELIVERED);
	assert_non_null(strstr(f->log, "RCPT TO:<user149@example.com>\nDATA\n"));
}

static void test_stall_times_out(void **state)
{
	struct fake_script sc = {.greeting = ""};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;
	time_t t0 = time(NULL);

	assert_int_equal(deliver(&hop, 1, rcpts, 1, body1, res, &e), -1);
	assert_true(time(NULL) - t0 <= 3);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_int_equal(res[0].code, 0);
	assert_non_null(strstr(res[0].reply, "timeout"));
	assert_int_equal(e.kind, ERR_TEMP);
}

static void test_garbage(void **state)
{
	struct fake_script sc = {.greeting = "HTTP/1.1 400 Bad Request\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 2, rcpts, 1, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_non_null(strstr(res[0].reply, "malformed reply"));

	/* garbage in the middle: a RCPT reply that is no reply */
	static const struct rcpt_reply rr[] = {{"bob@example.com", "25O ok\r\n"}, {NULL, NULL}};
	struct fake_script sc2 = {.rcpts = rr};
	f = fake_start(&sc2, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(deliver(&hop, 2, rcpts, 1, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_non_null(strstr(res[0].reply, "malformed reply"));
	assert_int_equal(f->datalen, 0);
}

static void test_greeting_refused_and_no_server(void **state)
{
	struct fake_script sc = {.greeting = "554 5.3.2 go away\r\n"};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 2, rcpts, 1, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_int_equal(res[0].code, 554);
	assert_non_null(strstr(res[0].reply, "go away"));

	/* the listener is gone: connection refused */
	assert_int_equal(deliver(&hop, 2, rcpts, 1, body1, res, &e), -1);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_int_equal(res[0].code, 0);
	assert_non_null(strstr(res[0].reply, "connect to"));
}

/* ------------------------------------------------------------------ TLS */

/* REQUIRETLS (RFC 8689): sent only over TLS to a pinned peer that offers it, with the
 * parameter; otherwise failed with 5.7.30 and nothing of the envelope sent. */
static void requiretls_case(int tls, const char *pin, const char *ehlo, const char *why)
{
	struct fake_script sc = {.tls = tls ? server_ctx(2) : NULL, .ehlo = ehlo};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	hop.requiretls = 1;
	hop.tls_required = tls;
	snprintf(hop.pin, sizeof(hop.pin), "%s", pin);
	snprintf(hop.tls_name, sizeof(hop.tls_name), "mx.example.com");
	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	if (sc.tls != NULL)
		SSL_CTX_free(sc.tls);
	if (why == NULL) {
		if (res[0].status != QUEUE_DELIVERED)
			fail_msg("not delivered: %s", res[0].reply);
		assert_non_null(strstr(f->log, "MAIL FROM:<sender@example.org> REQUIRETLS\n"));
		return;
	}
	assert_int_equal(res[0].status, QUEUE_FAILED);
	assert_non_null(strstr(res[0].reply, "550 5.7.30 REQUIRETLS support required"));
	if (strstr(res[0].reply, why) == NULL)
		fail_msg("%s: %s", why, res[0].reply);
	assert_null(strstr(f->log, "MAIL"));
	assert_int_equal(f->datalen, 0);
}

static void test_requiretls(void **state)
{
	const char *rt = "250-fake.example\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n";

	requiretls_case(1, pki.root_pin, rt, NULL);
	requiretls_case(0, "", rt, "no TLS");
	requiretls_case(1, "", rt, "certificate not verified");
	requiretls_case(1, pki.root_pin, NULL, "REQUIRETLS not offered");
}

static void tls_case(int chain, const char *pin, const char *name, int want_ok)
{
	struct fake_script sc = {.tls = server_ctx(chain)};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;
	int rc;

	hop.tls_required = 1;
	snprintf(hop.pin, sizeof(hop.pin), "%s", pin);
	snprintf(hop.tls_name, sizeof(hop.tls_name), "%s", name);
	rc = deliver(&hop, 5, rcpts, 1, body1, res, &e);
	fake_stop(f);
	SSL_CTX_free(sc.tls);
	if (want_ok) {
		if (rc != 0 || res[0].status != QUEUE_DELIVERED)
			fail_msg("not delivered: %s", res[0].reply);
		assert_true(f->tls_used);
		assert_int_equal(f->datalen, strlen(body1) + 3);
	} else {
		assert_int_equal(rc, -1);
		assert_int_equal(res[0].status, QUEUE_DEFERRED);
		assert_non_null(strstr(res[0].reply, "TLS required"));
		assert_null(strstr(f->log, "MAIL")); /* nothing of the envelope leaked */
	}
}

static void test_tls_pins(void **state)
{
	tls_case(2, pki.root_pin, "mx.example.com", 1);   /* full chain, root pinned */
	tls_case(2, pki.issuer_pin, "mx.example.com", 1); /* pinned issuer */
	tls_case(0, pki.leaf_pin, "mx.example.com", 1);   /* the host's own key pinned */
	tls_case(2, pki.root_pin, "", 1);
	tls_case(2, pki.other_pin, "mx.example.com", 0);   /* pin mismatch */
	tls_case(1, pki.root_pin, "mx.example.com", 0);    /* the root not sent */
	tls_case(2, pki.root_pin, "other.example.com", 0); /* wrong name */
}

static void test_tls_required_not_offered(void **state)
{
	struct fake_script sc = {0};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	hop.tls_required = 1;
	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_non_null(strstr(res[0].reply, "TLS required"));
	assert_non_null(strstr(res[0].reply, "does not offer STARTTLS"));
	assert_null(strstr(f->log, "MAIL"));
	assert_non_null(strstr(f->log, "QUIT\n"));
}

static void test_tls_opportunistic(void **state)
{
	/* offered: used without verification */
	struct fake_script sc = {.tls = server_ctx(0)};
	struct fake *f = fake_start(&sc, 0);
	struct relay_hop hop = tcp_hop(f, RELAY_PROTO_SMTP);
	const char *rcpts[] = {"bob@example.com"};
	struct relay_rcpt_result res[1];
	struct err e;

	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	SSL_CTX_free(sc.tls);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_true(f->tls_used);

	/* a failed handshake: a new connection, in plain text */
	struct fake_script junk = {
	    .tls_junk = 1, .conns = 2, .ehlo = "250-fake\r\n250 STARTTLS\r\n"};
	f = fake_start(&junk, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), 0);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DELIVERED);
	assert_int_equal(f->served, 2);

	/* ... but not when TLS is required */
	junk.conns = 1;
	f = fake_start(&junk, 0);
	hop = tcp_hop(f, RELAY_PROTO_SMTP);
	hop.tls_required = 1;
	assert_int_equal(deliver(&hop, 5, rcpts, 1, body1, res, &e), -1);
	fake_stop(f);
	assert_int_equal(res[0].status, QUEUE_DEFERRED);
	assert_non_null(strstr(res[0].reply, "TLS required"));
}

static int group_setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	pki_make();
	return 0;
}

static int group_teardown(void **state)
{
	for (size_t i = 0; i < nfakes; i++)
		free(fakes[i]);
	pki_free();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_parse),
	    cmocka_unit_test(test_caps_parse),
	    cmocka_unit_test(test_hop_parse),
	    cmocka_unit_test(test_route_errors),
	    cmocka_unit_test(test_plain_smtp),
	    cmocka_unit_test(test_per_rcpt),
	    cmocka_unit_test(test_all_rcpts_refused_no_data),
	    cmocka_unit_test(test_mail_refused),
	    cmocka_unit_test(test_lmtp_per_rcpt),
	    cmocka_unit_test(test_lmtp_tcp_missing_reply),
	    cmocka_unit_test(test_dot_stuffing),
	    cmocka_unit_test(test_bdat),
	    cmocka_unit_test(test_requiretls),
	    cmocka_unit_test(test_empty_body_and_8bit),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_smtputf8),
	    cmocka_unit_test(test_dsn_params),
	    cmocka_unit_test(test_many_rcpts_pipelined),
	    cmocka_unit_test(test_stall_times_out),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_greeting_refused_and_no_server),
	    cmocka_unit_test(test_tls_pins),
	    cmocka_unit_test(test_tls_required_not_offered),
	    cmocka_unit_test(test_tls_opportunistic),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
