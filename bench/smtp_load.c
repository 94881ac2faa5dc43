/*
 * smtp_load.c - the SMTP load generator of bench/relay_tls.sh: CONNS connections at once,
 * each doing EHLO, STARTTLS (TLS 1.3), EHLO, then up to PERCONN messages (MAIL, RCPT,
 * DATA with one pre-built, dot-stuffed message), QUIT; a finished connection is replaced
 * by a new one until COUNT messages have been sent or have failed.
 *
 * One thread, one libevent loop, OpenSSL bufferevents.  Why an event loop and not a thread
 * per connection: the generator shares CPU 1 with the sink, and what it must not do is
 * cost more per message than the server it measures; with one loop a round trip costs one
 * epoll_wait shared by every ready connection instead of a wake-up and a context switch
 * per connection, and the libevent OpenSSL bufferevent already does the want-read /
 * want-write dance of non-blocking SSL_read/SSL_write that plain non-blocking OpenSSL
 * would have to spell out by hand.  The relay is built on the same two libraries.
 *
 * A message's latency runs from the moment its connection began working on it (for the
 * first message of a connection: from connect(), so the handshake is in it, as a client
 * sees it) to the 250 after its final dot.  A failure (an unexpected reply, a timeout, a
 * closed connection) counts the message in flight as failed and gives the connection's
 * other messages back to be sent on a new connection; every connection uses up at least
 * one message, so the run ends whatever the server does.
 *
 * Prints one line of key=value pairs: sent (messages answered 250 after the dot), failed,
 * conns, resumed (TLS sessions resumed), seconds, msgs_per_s, p50_ms, p99_ms.
 * Exit status 0 when nothing failed, 1 otherwise, 2 on a usage error.
 *
 * Usage: smtp_load [-c CONNS] [-m PERCONN] [-n COUNT] [-f FROM] [-t RCPT] [-e EHLO-NAME]
 *                  [-T TIMEOUT_S] [-r] [-p] HOST PORT MESSAGE_FILE
 *   -r  offer the previous connection's TLS session on the next one (resumption)
 *   -p  plain SMTP, no STARTTLS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum stage {
	ST_GREET,
	ST_EHLO1,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_EHLO2,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY,
	ST_QUIT
};

static const int expect_code[] = {
    [ST_GREET] = 220, [ST_EHLO1] = 250, [ST_STARTTLS] = 220, [ST_HANDSHAKE] = 0, [ST_EHLO2] = 250,
    [ST_MAIL] = 250,  [ST_RCPT] = 250,  [ST_DATA] = 354,     [ST_BODY] = 250,    [ST_QUIT] = 221};
static const char *const stage_name[] = {
    "greeting", "EHLO", "STARTTLS", "TLS handshake", "EHLO after STARTTLS",
    "MAIL",     "RCPT", "DATA",     "end of data",   "QUIT"};

struct opts {
	int conns, perconn, count, timeout_s, resume, plain;
	const char *from, *rcpt, *ehlo;
	struct sockaddr_in addr;
};

struct conn;

struct slot { /* one of the CONNS concurrent places; keeps its TLS session */
	struct run *run;
	SSL_SESSION *sess;
	struct conn *c;
};

struct run {
	struct opts o;
	struct event_base *base;
	SSL_CTX *ctx;
	unsigned char *body; /* the dot-stuffed message with its final ".\r\n" */
	size_t body_len;
	int unclaimed; /* messages no connection has taken yet */
	int sent, failed, conns, resumed, active;
	double *lat; /* seconds, one per sent message */
	const char *first_error;
	char first_error_buf[256];
};

struct conn {
	struct slot *slot;
	struct bufferevent *bev;
	SSL *ssl;
	enum stage st;
	int left;       /* messages this connection still has to send */
	double t_start; /* when the message in flight began */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void slot_start(struct slot *s);

__attribute__((format(printf, 3, 4))) static void conn_send(struct conn *c, enum stage next,
                                                            const char *fmt, ...)
{
	va_list ap;

	c->st = next;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
}

/* The connection is over, well or badly: free it and start the slot's next one. */
static void conn_end(struct conn *c, const char *why)
{
	struct slot *s = c->slot;
	struct run *r = s->run;

	if (why != NULL) {
		if (r->first_error == NULL) {
			snprintf(r->first_error_buf, sizeof(r->first_error_buf), "%s (at %s)", why,
			         stage_name[c->st]);
			r->first_error = r->first_error_buf;
		}
		if (c->left > 0) {   /* else all were sent and only QUIT went wrong */
			r->failed++; /* the message in flight, or the next one */
			r->unclaimed += c->left - 1;
		}
	}
	if (c->bev != NULL)
		bufferevent_free(c->bev); /* frees the SSL and closes the socket too */
	else if (c->ssl != NULL)
		SSL_free(c->ssl);
	free(c);
	s->c = NULL;
	r->active--;
	slot_start(s);
}

static void begin_message(struct conn *c)
{
	if (c->st == ST_BODY)
		c->t_start = now_s(); /* the first message's clock started at connect() */
	conn_send(c, ST_MAIL, "MAIL FROM:<%s>\r\n", c->slot->run->o.from);
}

static void message_done(struct conn *c)
{
	struct run *r = c->slot->run;

	r->lat[r->sent++] = now_s() - c->t_start;
	c->left--;
	if (c->left > 0) {
		begin_message(c);
		return;
	}
	if (c->ssl != NULL && r->o.resume) {
		SSL_SESSION_free(c->slot->sess);
		c->slot->sess = SSL_get1_session(c->ssl);
	}
	conn_send(c, ST_QUIT, "QUIT\r\n");
}

static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_read(struct bufferevent *bev, void *arg);

/* After the 220 to STARTTLS: the same socket, now under a TLS bufferevent. */
static int start_tls(struct conn *c)
{
	struct run *r = c->slot->run;
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	c->ssl = SSL_new(r->ctx);
	if (c->ssl == NULL)
		return -1;
	if (c->slot->sess != NULL)
		SSL_set_session(c->ssl, c->slot->sess);
	bufferevent_setfd(c->bev, -1); /* so that freeing it leaves the socket open */
	bufferevent_free(c->bev);
	c->bev = bufferevent_openssl_socket_new(r->base, fd, c->ssl, BUFFEREVENT_SSL_CONNECTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		return -1;
	}
	c->st = ST_HANDSHAKE;
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &(struct timeval){r->o.timeout_s, 0}, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

/* The final line of a reply, with the code it was expected to have: what to do next. */
static const char *on_reply(struct conn *c, int code)
{
	struct run *r = c->slot->run;

	if (code != expect_code[c->st])
		return "unexpected reply";
	switch (c->st) {
	case ST_GREET:
		conn_send(c, ST_EHLO1, "EHLO %s\r\n", r->o.ehlo);
		break;
	case ST_EHLO1:
		if (r->o.plain)
			begin_message(c);
		else
			conn_send(c, ST_STARTTLS, "STARTTLS\r\n");
		break;
	case ST_STARTTLS:
		return start_tls(c) == 0 ? NULL : "cannot start TLS";
	case ST_EHLO2:
		begin_message(c);
		break;
	case ST_MAIL:
		conn_send(c, ST_RCPT, "RCPT TO:<%s>\r\n", r->o.rcpt);
		break;
	case ST_RCPT:
		conn_send(c, ST_DATA, "DATA\r\n");
		break;
	case ST_DATA:
		c->st = ST_BODY;
		evbuffer_add_reference(bufferevent_get_output(c->bev), r->body, r->body_len, NULL,
		                       NULL);
		break;
	case ST_BODY:
		message_done(c);
		break;
	case ST_QUIT:
		if (c->ssl != NULL) /* a clean end: the session stays resumable when freed */
			SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		conn_end(c, NULL);
		return "";
	case ST_HANDSHAKE:
		return "reply before the TLS handshake ended";
	}
	return NULL;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		const char *why = NULL;

		if (n < 3) {
			why = "short reply line";
		} else if (n == 3 || line[3] != '-') {
			why = on_reply(c, (int)strtol(line, NULL, 10));
		}
		free(line);
		if (why != NULL) {
			if (*why != '\0')
				conn_end(c, why);
			return; /* c is gone */
		}
		if (c->st == ST_HANDSHAKE)
			return; /* the plain bufferevent was freed: nothing more to read from it */
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->st != ST_HANDSHAKE)
			return; /* the TCP connection: wait for the greeting */
		if (SSL_session_reused(c->ssl))
			c->slot->run->resumed++;
		conn_send(c, ST_EHLO2, "EHLO %s\r\n", c->slot->run->o.ehlo);
		return;
	}
	conn_end(c, what & BEV_EVENT_TIMEOUT ? "timeout"
	            : what & BEV_EVENT_EOF   ? "connection closed"
	                                     : "connection error");
}

/* The slot's next connection, when messages are left. */
static void slot_start(struct slot *s)
{
	struct run *r = s->run;
	struct conn *c;
	int one = 1;

	if (r->unclaimed <= 0) {
		if (r->active == 0)
			event_base_loopbreak(r->base);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		r->failed += r->unclaimed;
		r->unclaimed = 0;
		return;
	}
	c->slot = s;
	s->c = c;
	c->left = r->unclaimed < r->o.perconn ? r->unclaimed : r->o.perconn;
	r->unclaimed -= c->left;
	r->active++;
	r->conns++;
	c->t_start = now_s();
	c->st = ST_GREET;
	c->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		conn_end(c, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &(struct timeval){r->o.timeout_s, 0}, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&r->o.addr, sizeof(r->o.addr)) <
	    0) {
		conn_end(c, "connect failed");
		return;
	}
	setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* The message file as it goes on the wire after DATA: CRLF line ends, dot-stuffed, then
 * ".\r\n".  A bare LF in the file counts as a line end. */
static int load_body(struct run *r, const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 8192, len = 0;
	int ch, bol = 1;
	unsigned char *b = malloc(cap);

	if (f == NULL || b == NULL) {
		fprintf(stderr, "smtp_load: %s: %s\n", path, strerror(errno));
		free(b);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	while ((ch = getc(f)) != EOF) {
		unsigned char *nb;

		if (len + 8 > cap) { /* room for this character and the end written below */
			nb = realloc(b, cap * 2);
			if (nb == NULL) {
				fprintf(stderr, "smtp_load: %s: out of memory\n", path);
				free(b);
				fclose(f);
				return -1;
			}
			b = nb;
			cap *= 2;
		}
		if (bol && ch == '.')
			b[len++] = '.';
		if (ch == '\r')
			continue;
		if (ch == '\n')
			b[len++] = '\r';
		b[len++] = (unsigned char)ch;
		bol = ch == '\n';
	}
	fclose(f);
	if (!bol) {
		b[len++] = '\r';
		b[len++] = '\n';
	}
	b[len++] = '.';
	b[len++] = '\r';
	b[len++] = '\n';
	r->body = b;
	r->body_len = len;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(const double *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);

	return n > 0 ? v[i] * 1e3 : 0.0;
}

static int usage(void)
{
	fprintf(stderr, "usage: smtp_load [-c CONNS] [-m PERCONN] [-n COUNT] [-f FROM] [-t RCPT] "
	                "[-e EHLO-NAME] [-T TIMEOUT_S] [-r] [-p] HOST PORT MESSAGE_FILE\n");
	return 2;
}

/* A decimal number of at most 9 digits, or -1. */
static int number(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return end != s && *end == '\0' && v >= 0 && v < 1000000000 ? (int)v : -1;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	int ch, port;

	*o = (struct opts){.conns = 20,
	                   .perconn = 1,
	                   .count = 1000,
	                   .timeout_s = 10,
	                   .from = "bench@x.test",
	                   .rcpt = "rcpt@far.test",
	                   .ehlo = "client.test"};
	while ((ch = getopt(argc, argv, "c:m:n:f:t:e:T:rp")) != -1) {
		switch (ch) {
		case 'c':
			o->conns = number(optarg);
			break;
		case 'm':
			o->perconn = number(optarg);
			break;
		case 'n':
			o->count = number(optarg);
			break;
		case 'f':
			o->from = optarg;
			break;
		case 't':
			o->rcpt = optarg;
			break;
		case 'e':
			o->ehlo = optarg;
			break;
		case 'T':
			o->timeout_s = number(optarg);
			break;
		case 'r':
			o->resume = 1;
			break;
		case 'p':
			o->plain = 1;
			break;
		default:
			return -1;
		}
	}
	if (argc - optind != 3 || o->conns < 1 || o->perconn < 1 || o->count < 1 ||
	    o->timeout_s < 1)
		return -1;
	o->addr.sin_family = AF_INET;
	port = number(argv[optind + 1]);
	if (port < 1 || port > 65535)
		return -1;
	o->addr.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, argv[optind], &o->addr.sin_addr) != 1)
		return -1;
	return 0;
}

static SSL_CTX *client_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	/* the bench measures throughput, not trust: the servers' certificates are not checked */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
}

static void report(struct run *r, double secs)
{
	qsort(r->lat, (size_t)r->sent, sizeof(double), cmp_double);
	printf("sent=%d failed=%d conns=%d resumed=%d seconds=%.3f msgs_per_s=%.1f p50_ms=%.2f "
	       "p99_ms=%.2f\n",
	       r->sent, r->failed, r->conns, r->resumed, secs, secs > 0 ? r->sent / secs : 0.0,
	       pct(r->lat, r->sent, 0.50), pct(r->lat, r->sent, 0.99));
	if (r->first_error != NULL)
		fprintf(stderr, "smtp_load: %d failed, first: %s\n", r->failed, r->first_error);
}

int main(int argc, char **argv)
{
	struct run r = {0};
	struct slot *slots;
	double t0;
	int i;

	if (parse_opts(&r.o, argc, argv) != 0)
		return usage();
	signal(SIGPIPE, SIG_IGN); /* a server that hangs up is a failed message, not our end */
	if (load_body(&r, argv[optind + 2]) != 0)
		return 2;
	r.base = event_base_new();
	r.ctx = r.o.plain ? NULL : client_ctx();
	r.lat = calloc((size_t)r.o.count, sizeof(double));
	slots = calloc((size_t)r.o.conns, sizeof(*slots));
	if (r.base == NULL || (!r.o.plain && r.ctx == NULL) || r.lat == NULL || slots == NULL) {
		fprintf(stderr, "smtp_load: out of memory\n");
		r.failed = -1;
		goto out;
	}
	r.unclaimed = r.o.count;
	t0 = now_s();
	for (i = 0; i < r.o.conns; i++) {
		slots[i].run = &r;
		slot_start(&slots[i]);
	}
	if (r.active > 0)
		event_base_dispatch(r.base);
	report(&r, now_s() - t0);
	for (i = 0; i < r.o.conns; i++)
		SSL_SESSION_free(slots[i].sess);
out:
	SSL_CTX_free(r.ctx);
	if (r.base != NULL)
		event_base_free(r.base);
	free(slots);
	free(r.lat);
	free(r.body);
	return r.failed == 0 ? 0 : r.failed > 0 ? 1 : 2;
}
