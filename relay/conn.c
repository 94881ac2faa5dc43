/*
 * conn.c - one SMTP connection's lifetime: references held by the pipelines'
 * workers, moving bytes between its libevent bufferevent and lib/smtp's
 * session engine, STARTTLS with an OpenSSL filter bufferevent, the idle
 * timeout, closing once the last reply is on the wire, the envelope kept per
 * connection and the per-address counts it holds.
 *
 * The session engine does the protocol; this file only does I/O.  A pending
 * decision (SMTP_PENDING) stops reading until relayd_conn_decide() resumes
 * it, so pipelined commands stay in the input buffer, in order.  Listening
 * and accepting are server.c's; what the session's callbacks do is the
 * pipelines' (inbound.c, outbound.c), which this file does not know.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "core/hash.h"
#include "core/log.h"
#include "defer.h"
#include "peers.h"
#include "relayd.h"

#define RELAYD_INPUT_HIGH (256 * 1024) /* stop reading while this much is unfed */

static unsigned long next_conn_id = 1;

void relayd_reply_set(struct smtp_reply *r, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status != NULL ? status : "");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ per-address counts */

static unsigned ip_bucket(const char *ip)
{
	return (unsigned)(hash_str(ip) % RELAYD_IP_BUCKETS);
}

static struct relayd_ipcount *ip_find(struct relayd *d, const char *ip, int create)
{
	unsigned b = ip_bucket(ip);
	struct relayd_ipcount *c;

	for (c = d->ips[b]; c != NULL; c = c->next)
		if (strcmp(c->ip, ip) == 0)
			return c;
	if (!create || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	c->next = d->ips[b];
	d->ips[b] = c;
	return c;
}

void relayd_ip_release(struct relayd *d, const char *ip)
{
	unsigned b = ip_bucket(ip);
	struct relayd_ipcount **pp, *c;

	for (pp = &d->ips[b]; (c = *pp) != NULL; pp = &c->next)
		if (strcmp(c->ip, ip) == 0) {
			if (--c->n == 0) {
				*pp = c->next;
				free(c);
			}
			return;
		}
}

int relayd_ip_claim(struct relayd *d, const char *ip)
{
	struct relayd_ipcount *ipc = ip_find(d, ip, 1);

	if (ipc == NULL || ipc->n >= (unsigned)d->s->max_connections_per_ip)
		return -1;
	ipc->n++;
	return 0;
}

/* ------------------------------------------------------------------ the envelope */

void relayd_txn_reset(struct relayd_conn *c)
{
	size_t i;

	free(c->sender);
	c->sender = NULL;
	for (i = 0; i < c->nrcpt; i++)
		free(c->rcpts[i]);
	free(c->rcpts);
	c->rcpts = NULL;
	relayd_txn_dsn_reset(c);
	c->nrcpt = 0;
	c->requiretls = 0;
	c->partial_view = 0;
}

int relayd_txn_add_rcpt(struct relayd_conn *c, const char *rcpt)
{
	char **n = realloc(c->rcpts, (c->nrcpt + 1) * sizeof(char *));

	if (n == NULL)
		return -1;
	c->rcpts = n;
	if ((c->rcpts[c->nrcpt] = strdup(rcpt)) == NULL)
		return -1;
	if (relayd_txn_dsn_add(c, c->nrcpt + 1) < 0) {
		free(c->rcpts[c->nrcpt]);
		return -1;
	}
	c->nrcpt++;
	return 0;
}

/* ------------------------------------------------------------------ connections */

static void conn_free(struct relayd_conn *c)
{
	struct relayd *d = c->d;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->close_ev != NULL)
		event_free(c->close_ev);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	smtp_session_free(c->smtp);
	relayd_txn_reset(c);
	if (c->side == RELAYD_INBOUND)
		relayd_ip_release(d, c->ip);
	d->nconns--;
	free(c);
}

void relayd_conn_ref(struct relayd_conn *c)
{
	c->refs++;
}

void relayd_conn_unref(struct relayd_conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

/* The client is gone (or must go): stop all I/O; freed when unreferenced. */
static void conn_kill(struct relayd_conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	relayd_conn_unref(c);
}

/* Move the session's pending output to the socket. */
static void conn_flush(struct relayd_conn *c)
{
	size_t n;
	const char *out = smtp_session_output(c->smtp, &n);

	if (n > 0 && c->bev != NULL) {
		bufferevent_write(c->bev, out, n);
		smtp_session_drain(c->smtp, n);
	}
}

static void conn_start_tls(struct relayd_conn *c);
static void conn_close_when_flushed(struct relayd_conn *c);

/* Output not yet handed to the kernel, the TLS filter's and the socket's. */
static size_t conn_unsent(struct relayd_conn *c)
{
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void on_close_check(evutil_socket_t fd, short what, void *arg)
{
	struct relayd_conn *c = arg;

	(void)fd;
	(void)what;
	c->closing_checks++;
	if (c->dead || conn_unsent(c) == 0 || c->closing_checks > 500) {
		event_free(c->close_ev);
		c->close_ev = NULL;
		conn_kill(c);
		relayd_conn_unref(c);
		return;
	}
	conn_close_when_flushed(c);
}

/*
 * The session has said its last word (221, 421, 554): close once it is on the
 * wire.  Freeing a TLS filter drops what its socket has not yet sent, so
 * both layers are watched, every 10 ms, for at most 5 s.
 */
static void conn_close_when_flushed(struct relayd_conn *c)
{
	struct timeval tick = {0, 10000};

	if (c->dead)
		return;
	if (conn_unsent(c) == 0 && c->close_ev == NULL) {
		conn_kill(c);
		return;
	}
	if (c->close_ev == NULL) {
		if ((c->close_ev = evtimer_new(c->d->base, on_close_check, c)) == NULL) {
			conn_kill(c);
			return;
		}
		relayd_conn_ref(c);
	}
	evtimer_add(c->close_ev, &tick);
}

/*
 * The handshake after STARTTLS is done: the session starts afresh (RFC 3207 4.2).  Seen
 * here, before any input is fed, and not only in the CONNECTED event: the TLS filter can
 * hand over the client's first command (sent with its last handshake flight) before that
 * event runs, and a session still waiting for TLS discards input, which left the client
 * waiting for an answer to its EHLO forever.
 */
static void conn_tls_ready(struct relayd_conn *c)
{
	SSL *ssl;

	if (c->tls || (ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL ||
	    !SSL_is_init_finished(ssl))
		return;
	c->tls = 1;
	smtp_session_starttls_done(c->smtp);
	relayd_peer_tls_ready(c, ssl);
	log_debug(NULL, "conn %lu: TLS %s", c->id, SSL_get_version(ssl));
}

/* Feed what has been read to the session, as far as it will take it. */
static void conn_pump(struct relayd_conn *c)
{
	struct evbuffer *in;

	if (c->dead || c->bev == NULL)
		return;
	conn_tls_ready(c);
	in = bufferevent_get_input(c->bev);
	while (evbuffer_get_length(in) > 0 && !smtp_session_pending(c->smtp) &&
	       !smtp_session_closed(c->smtp)) {
		size_t len = evbuffer_get_length(in), used;
		const char *buf = (const char *)evbuffer_pullup(in, -1);

		used = smtp_session_feed(c->smtp, buf, len);
		evbuffer_drain(in, used);
		conn_flush(c);
		if (used == 0)
			break;
	}
	conn_flush(c);
	if (smtp_session_closed(c->smtp)) {
		bufferevent_disable(c->bev, EV_READ);
		conn_close_when_flushed(c);
		return;
	}
	if (smtp_session_pending(c->smtp))
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct relayd_conn *c = arg;

	(void)bev;
	conn_pump(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	(void)arg;
	/* closing is left to conn_close_when_flushed(), which also watches the TLS layer */
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct relayd_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		conn_pump(c); /* the TLS handshake after STARTTLS is done: conn_tls_ready */
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		static const char msg[] = "421 4.4.2 Idle too long, closing connection\r\n";

		log_info(NULL, "conn %lu: %s idle timeout", c->id, c->ip);
		if (c->close_ev != NULL || smtp_session_pending(c->smtp) || c->bev == NULL) {
			/* already saying goodbye, or a worker owes the reply: just go */
			conn_kill(c);
			return;
		}
		/* The timeout disabled the direction that timed out, and freeing the
		 * bufferevent now would drop the reply unsent (a socket bufferevent
		 * has no synchronous flush): queue it, write, and close once it is on
		 * the wire (or after conn_close_when_flushed's limit for a client that
		 * does not read). */
		evbuffer_add(bufferevent_get_output(c->bev), msg, sizeof(msg) - 1);
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE);
		conn_close_when_flushed(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long ssl_err = bufferevent_get_openssl_error(bev);

		if (ssl_err != 0)
			log_info(NULL, "conn %lu: %s TLS error: %s", c->id, c->ip,
			         ERR_reason_error_string(ssl_err));
	}
	conn_kill(c); /* EOF or error */
}

static void conn_set_callbacks(struct relayd_conn *c)
{
	struct timeval idle = {(time_t)c->d->s->idle_timeout, 0};

	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_setwatermark(c->bev, EV_READ, 0, RELAYD_INPUT_HIGH);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/*
 * STARTTLS: the session has queued "220 Ready to start TLS" and discards
 * anything the client pipelined after the command (CVE-2011-0411).  The 220
 * is already in the plain bufferevent's output; the filter is stacked on top
 * so that whatever is written from now on is encrypted after it.
 */
static void conn_start_tls(struct relayd_conn *c)
{
	SSL *ssl = SSL_new(c->d->tls);
	struct bufferevent *tls;

	conn_flush(c);
	evbuffer_drain(bufferevent_get_input(c->bev),
	               evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (ssl == NULL) {
		log_err(NULL, "conn %lu: cannot create a TLS session", c->id);
		conn_kill(c);
		return;
	}
	relayd_peer_tls_prepare(c, ssl);
	tls = bufferevent_openssl_filter_new(c->d->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		SSL_free(ssl);
		log_err(NULL, "conn %lu: cannot start TLS", c->id);
		conn_kill(c);
		return;
	}
	c->bev = tls;
	conn_set_callbacks(c);
}

static void cb_starttls(void *ctx, struct smtp_session *s)
{
	(void)s;
	conn_start_tls(ctx);
}

void relayd_conn_decide(struct relayd_conn *c, const struct smtp_reply *r)
{
	relayd_conn_decide_data(c, r, NULL, 0);
}

void relayd_conn_decide_data(struct relayd_conn *c, const struct smtp_reply *r, const char *data,
                             size_t len)
{
	if (c->dead)
		return;
	smtp_session_decide_data(c->smtp, r, data, len);
	conn_pump(c);
}

/* The listener has accepted fd: a session with that side's callbacks (it stays here so
 * that this file needs neither pipeline). */
struct relayd_conn *relayd_conn_new(struct relayd *d, enum relayd_side side, int fd, const char *ip,
                                    const struct smtp_callbacks *callbacks)
{
	struct relayd_conn *c = calloc(1, sizeof(*c));
	struct smtp_config cfg = {0};
	struct smtp_callbacks cb;
	struct err e = {0};

	if (c == NULL)
		return NULL;
	c->d = d;
	c->side = side;
	c->refs = 1;
	c->id = next_conn_id++;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	cfg.hostname = d->s->hostname;
	cfg.max_size = (uint64_t)d->s->max_message_size;
	cfg.max_rcpts = (unsigned)d->s->max_rcpts;
	cfg.tls_available = d->tls != NULL;
	/* SMTP AUTH on the submission side only; the engine offers it only after STARTTLS */
	cfg.auth_available = side == RELAYD_SUBMISSION && d->users != NULL && d->tls != NULL;
	/* fail closed: with submission_auth = required no MAIL without AUTH, whatever else */
	cfg.auth_required =
	    side == RELAYD_SUBMISSION && strcmp(d->s->submission_auth, "required") == 0;
	cb = *callbacks;
	cb.on_starttls = cb_starttls;
	c->smtp = smtp_session_new(&cfg, &cb, c, &e);
	c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->smtp == NULL || c->bev == NULL) {
		smtp_session_free(c->smtp);
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			evutil_closesocket(fd);
		free(c);
		return NULL;
	}
	d->nconns++;
	c->next = d->conns;
	if (d->conns != NULL)
		d->conns->prev = c;
	d->conns = c;
	conn_set_callbacks(c);
	return c;
}

/* Greet (or refuse) an inbound client once its connect-time check is done. */
void relayd_conn_greet(struct relayd_conn *c, const struct smtp_reply *refusal)
{
	if (c->dead)
		return;
	smtp_session_greet(c->smtp, refusal);
	conn_pump(c);
}

void relayd_conns_close(struct relayd *d)
{
	struct relayd_conn *c, *next;

	for (c = d->conns; c != NULL; c = next) {
		int drops = 0;

		next = c->next;
		if (c->close_ev != NULL) { /* the close timer's reference */
			event_free(c->close_ev);
			c->close_ev = NULL;
			drops++;
		}
		if (!c->dead) { /* the connection's own reference */
			c->dead = 1;
			if (c->bev != NULL) {
				bufferevent_free(c->bev);
				c->bev = NULL;
			}
			drops++;
		}
		/* what is left belongs to workers, whose done() will release it */
		c->refs -= drops;
		if (c->refs == 0)
			conn_free(c);
	}
}
