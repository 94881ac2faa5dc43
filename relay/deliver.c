/*
 * deliver.c - the relay's SMTP/LMTP client (RFC 5321, RFC 2033, RFC 3207,
 * RFC 2920), blocking, run on worker threads.
 *
 * One call is one session to one hop: connect (TCP or a Unix socket),
 * greeting, EHLO/LHLO, STARTTLS when offered, MAIL, RCPT per recipient,
 * the body (BDAT when the peer offers CHUNKING, RFC 3030, else DATA with
 * dot-stuffing), QUIT.  Every wait is a poll() against a deadline
 * (connect_timeout, command_timeout, data_timeout), so a stalled peer costs
 * a worker at most that long.
 *
 * TLS is deliver_conn.c's: when the hop has a pin, the presented chain is
 * checked after the handshake and before any envelope is sent.  A failed
 * handshake to a peer that does not require TLS is retried once in plain
 * text on a new connection, as Postfix does.
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

#include "core/utf8.h"
#include "pki/crypto.h"
#include "deliver_cache.h"
#include "pki/name.h"
#include "deliver_conn.h"
#include "defer_offer.h"
#include "partial.h"
#include "peers.h"
#include "relay.h"

#define DELIVER_WINDOW 64       /* commands pipelined before reading their replies */
#define DELIVER_QUIT_TIMEOUT 5  /* seconds to wait for QUIT's reply */
#define DELIVER_OUT_CHUNK 16384 /* body bytes written per write */

/* Recipient states during a transaction. */
enum rcpt_state { RS_SKIP = 0, RS_SEND, RS_ACCEPTED, RS_FINAL };

struct tx {
	const struct relay_settings *s;
	const struct relay_hop *hop;
	const char *sender;
	const char *const *rcpts;
	size_t n;
	const struct relay_dsn_out *dsn; /* NULL: none */
	const char *body;
	size_t len;
	struct relay_rcpt_result *res;
	enum rcpt_state *st;
	struct relay_dconn c;
	struct relay_smtp_caps caps;
	int tcmd, tconn, tdata; /* seconds */
	int probe;              /* MAIL and RCPT only: is the recipient taken? */
	int keep;               /* sessions are kept for the next message (deliver_cache.c) */
	int reused;             /* this session was kept from an earlier message */
	unsigned sent;          /* messages the session carried before this one */
	char anchored[RELAY_PEER_NAME_MAX]; /* the server's anchored_peers name (peers.c), or "" */
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
	t->res[i].dsn_passed = t->caps.dsn && t->dsn != NULL; /* the hop reports from here on */
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
	relay_dconn_fail(&t->c, "%s%s said: %d %.300s", what, t->c.peer, rep->code, line);
	t->c.code = rep->code;
	t->c.polite = 1;
}

/* EHLO (LHLO), and HELO when an SMTP peer refuses EHLO; fills t->caps. */
static int hello(struct tx *t, struct relay_smtp_reply *rep)
{
	struct relay_dconn *c = &t->c;

	memset(&t->caps, 0, sizeof(t->caps));
	if (relay_dconn_printf(c, t->tcmd, "%s %s\r\n", is_lmtp(t) ? "LHLO" : "EHLO",
	                       helo_name(t)) < 0 ||
	    relay_dconn_read_reply(c, t->tcmd, rep) < 0)
		return RELAY_IO_FAIL;
	if (rep->code / 100 == 2) {
		relay_smtp_caps_parse(rep, &t->caps);
		return RELAY_IO_OK;
	}
	if (is_lmtp(t) || rep->code / 100 != 5) {
		reply_why(t, is_lmtp(t) ? "LHLO refused: " : "EHLO refused: ", rep);
		return RELAY_IO_FAIL;
	}
	if (relay_dconn_printf(c, t->tcmd, "HELO %s\r\n", helo_name(t)) < 0 ||
	    relay_dconn_read_reply(c, t->tcmd, rep) < 0)
		return RELAY_IO_FAIL;
	if (rep->code / 100 == 2)
		return RELAY_IO_OK;
	reply_why(t, "HELO refused: ", rep);
	return RELAY_IO_FAIL;
}

/*
 * STARTTLS when offered and wanted.  RELAY_IO_FAIL with c->why when the hop needs
 * TLS and cannot have it, RELAY_IO_PLAIN_RETRY when the handshake failed and plain
 * text is allowed (the connection is spent: RFC 3207 §4.1).
 */
static int starttls(struct tx *t, int no_tls)
{
	struct relay_dconn *c = &t->c;
	const struct relay_hop *hop = t->hop;
	int must = hop->tls_required || hop->pin[0] != '\0';
	struct relay_smtp_reply rep;

	if (no_tls || (hop->unix_socket && !must))
		return RELAY_IO_OK;
	if (!t->caps.starttls) {
		if (!must)
			return RELAY_IO_OK;
		relay_dconn_fail(c, "TLS required, but %s does not offer STARTTLS", c->peer);
		c->polite = 1;
		return RELAY_IO_FAIL;
	}
	if (relay_dconn_printf(c, t->tcmd, "STARTTLS\r\n") < 0 ||
	    relay_dconn_read_reply(c, t->tcmd, &rep) < 0)
		return RELAY_IO_FAIL;
	if (rep.code != 220) {
		if (!must)
			return RELAY_IO_OK; /* the session goes on in plain text (RFC 3207 §4) */
		reply_why(t, "TLS required, but STARTTLS failed: ", &rep);
		return RELAY_IO_FAIL;
	}
	if (c->inlen > 0) /* bytes sent before the handshake: response injection (CVE-2011-0411) */
		relay_dconn_fail(c, "%s sent data after its STARTTLS reply", c->peer);
	if (c->inlen > 0 || relay_dconn_tls(&t->c, t->hop, t->tcmd) < 0) {
		char why[sizeof(c->why)];
		if (!must)
			return RELAY_IO_PLAIN_RETRY;
		snprintf(why, sizeof(why), "TLS required: %.380s", c->why);
		snprintf(c->why, sizeof(c->why), "%s", why);
		return RELAY_IO_FAIL;
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
 * Whether the message needs SMTPUTF8 (RFC 6531): a UTF-8 address in its envelope.  The
 * queue does not record whether a message came with SMTPUTF8, so 8-bit header fields
 * alone go on as today (8BITMIME) and legacy mail with raw 8-bit headers keeps flowing.
 */
static int needs_smtputf8(const struct tx *t)
{
	if (!name_is_ascii(t->sender))
		return 1;
	for (size_t i = 0; i < t->n; i++)
		if (t->st[i] == RS_SEND && !name_is_ascii(t->rcpts[i]))
			return 1;
	return 0;
}

/*
 * A message that needs SMTPUTF8 never goes to a peer without it: no downgrade, its
 * recipients fail with RFC 6531's 553 5.6.7 (§3.5; the sender gets the usual
 * notification).  Returns 1 when the recipients were failed.
 */
static int refuse_downgrade(struct tx *t, const size_t *order, size_t k)
{
	if (!needs_smtputf8(t) || t->caps.smtputf8)
		return 0;
	for (size_t m = 0; m < k; m++)
		result_set(
		    &t->res[order[m]], 0, QUEUE_FAILED,
		    "%s: 553 5.6.7 the envelope has a UTF-8 address and the peer does not offer "
		    "SMTPUTF8; not downgraded (RFC 6531)",
		    t->c.peer);
	return 1;
}

/*
 * The body as it goes on the wire: a bare CR or LF becomes CRLF, so that no
 * peer can see an end of data the relay did not send (SMTP smuggling), and a
 * body without a final line ending gets one; dot-stuffed (RFC 5321 §4.5.2)
 * for DATA, as is for BDAT.  emit 0 only counts the octets (BDAT's size).
 * Returns the count, or -1 when a write failed.
 */
static long long body_wire(struct tx *t, int stuff, int emit)
{
	char out[DELIVER_OUT_CHUNK + 8];
	size_t o = 0;
	long long total = 0;
	int bol = 1;

	for (size_t i = 0; i <= t->len; i++) {
		char ch = i < t->len ? t->body[i] : '\n'; /* the final line ending, if missing */

		if (i == t->len && bol)
			break;
		if (o + 4 > DELIVER_OUT_CHUNK) {
			if (emit && relay_dconn_write(&t->c, out, o, t->tdata) < 0)
				return -1;
			total += (long long)o;
			o = 0;
		}
		if (stuff && bol && ch == '.')
			out[o++] = '.';
		bol = ch == '\r' || ch == '\n';
		if (!bol) {
			out[o++] = ch;
			continue;
		}
		if (ch == '\r' && i + 1 < t->len && t->body[i + 1] == '\n')
			i++;
		out[o++] = '\r';
		out[o++] = '\n';
	}
	if (emit && o > 0 && relay_dconn_write(&t->c, out, o, t->tdata) < 0)
		return -1;
	return total + (long long)o;
}

/* DATA's body and its terminator. */
static int send_body(struct tx *t)
{
	if (body_wire(t, 1, 1) < 0)
		return RELAY_IO_FAIL;
	return relay_dconn_write(&t->c, ".\r\n", 3, t->tdata);
}

static int data_replies(struct tx *t);

/* CHUNKING (RFC 3030): the body as one BDAT LAST chunk, sent once a recipient is accepted;
 * the reply after it is the final one, as after DATA's terminator. */
static int send_bdat(struct tx *t)
{
	char cmd[48];
	long long n = body_wire(t, 0, 0);
	int o = snprintf(cmd, sizeof(cmd), "BDAT %lld LAST\r\n", n);

	if (relay_dconn_write(&t->c, cmd, (size_t)o, t->tcmd) < 0 || body_wire(t, 0, 1) < 0)
		return RELAY_IO_FAIL;
	return data_replies(t);
}

/* ANCHOR-PARTIAL (partial_out.c): the view the receiver asks for, else the whole message. */
static int send_partial(struct tx *t)
{
	char cmd[48], *view = NULL;
	size_t vlen = 0;
	int o, rc;

	if (relay_partial_offer(t->s, &t->c, t->anchored, t->body, t->len, t->tcmd, &view, &vlen))
		return RELAY_IO_FAIL; /* kept for the server's key only: t->anchored, a peer's */
	if (view == NULL)
		return send_bdat(t);
	o = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", vlen);
	rc = relay_dconn_write(&t->c, cmd, (size_t)o, t->tcmd) < 0 ||
	             relay_dconn_write(&t->c, view, vlen, t->tdata) < 0
	         ? RELAY_IO_FAIL
	         : data_replies(t);
	free(view);
	return rc;
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
		if ((is_lmtp(t) || !have) && relay_dconn_read_reply(&t->c, t->tdata, &rep) < 0)
			return RELAY_IO_FAIL;
		have = 1;
		result_from_reply(t, i, &rep);
		/* ANCHOR-DEFER: held for a decision, the token kept; only a listed peer's */
		if (!is_lmtp(t) && t->anchored[0] != '\0')
			relay_defer_offer_result(t->hop, &rep, t->rcpts[i], &t->res[i]);
	}
	return RELAY_IO_OK;
}

/* DATA's reply: 354 sends the body; anything else is the accepted recipients' fate. */
static int data_phase(struct tx *t, const struct relay_smtp_reply *rep, size_t naccepted)
{
	struct relay_smtp_reply ignored;

	if (rep->code == 354 && naccepted == 0) {
		/* RFC 2920 §3.1: every RCPT failed but DATA went through: send an empty message */
		if (relay_dconn_write(&t->c, ".\r\n", 3, t->tcmd) < 0 ||
		    relay_dconn_read_reply(&t->c, t->tdata, &ignored) < 0)
			return RELAY_IO_FAIL;
		return RELAY_IO_OK;
	}
	if (rep->code == 354)
		return send_body(t) < 0 ? RELAY_IO_FAIL : data_replies(t);
	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] != RS_ACCEPTED)
			continue;
		result_from_reply(t, i, rep);
		if (t->res[i].status == QUEUE_DELIVERED) /* a 2xx to DATA is no delivery */
			t->res[i].status = QUEUE_DEFERRED;
	}
	return RELAY_IO_OK;
}

/* The MAIL command, with SIZE, BODY, REQUIRETLS, SMTPUTF8 and DSN's RET and ENVID when the
 * peer takes them. */
static int mail_command(struct tx *t, char *buf, size_t len)
{
	char size[40] = "", dsn[DSN_ENVID_MAX + 32] = "";

	if (t->caps.size)
		snprintf(size, sizeof(size), " SIZE=%zu", t->len);
	if (t->caps.dsn && t->dsn != NULL)
		snprintf(dsn, sizeof(dsn), "%s%s%s%s", t->dsn->ret ? " RET=" : "",
		         dsn_ret_name(t->dsn->ret), t->dsn->envid ? " ENVID=" : "",
		         t->dsn->envid ? t->dsn->envid : "");
	return snprintf(buf, len, "MAIL FROM:<%s>%s%s%s%s%s\r\n", t->sender, size,
	                t->caps.eightbitmime && has_8bit(t->body, t->len) ? " BODY=8BITMIME" : "",
	                t->hop->requiretls ? " REQUIRETLS" : "",
	                t->caps.smtputf8 && needs_smtputf8(t) ? " SMTPUTF8" : "", dsn);
}

/* RCPT, with DSN's NOTIFY and ORCPT when the peer takes them (RFC 3461 §4). */
static int rcpt_command(struct tx *t, size_t i, char *buf, size_t len)
{
	char notify[64] = "";
	const char *orcpt = NULL;

	if (t->caps.dsn && t->dsn != NULL) {
		if (t->dsn->notify != NULL && t->dsn->notify[i] != 0)
			dsn_notify_format(t->dsn->notify[i], notify, sizeof(notify));
		orcpt = t->dsn->orcpt != NULL ? t->dsn->orcpt[i] : NULL;
	}
	return snprintf(buf, len, "RCPT TO:<%s>%s%s%s%s\r\n", t->rcpts[i],
	                notify[0] ? " NOTIFY=" : "", notify, orcpt ? " ORCPT=" : "",
	                orcpt ? orcpt : "");
}

/* One reply of the window: what it says about the recipients. */
static int window_reply(struct tx *t, size_t j, const size_t *order, size_t k, int *mail_failed,
                        size_t *naccepted)
{
	struct relay_smtp_reply rep;

	if (relay_dconn_read_reply(&t->c, t->tcmd, &rep) < 0)
		return RELAY_IO_FAIL;
	if (j == 0) {
		if (rep.code / 100 == 2)
			return RELAY_IO_OK;
		*mail_failed = 1;
		for (size_t m = 0; m < k; m++)
			result_from_reply(t, order[m], &rep);
		return RELAY_IO_OK;
	}
	if (j == k + 1)
		return data_phase(t, &rep, *mail_failed ? 0 : *naccepted);
	if (*mail_failed)
		return RELAY_IO_OK; /* the recipients already carry MAIL's reply */
	if (rep.code / 100 != 2) {
		result_from_reply(t, order[j - 1], &rep);
		return RELAY_IO_OK;
	}
	t->st[order[j - 1]] = RS_ACCEPTED;
	(*naccepted)++;
	return RELAY_IO_OK;
}

/*
 * MAIL, RCPT..., DATA: with PIPELINING in windows of DELIVER_WINDOW commands
 * written at once and their replies read in order (RFC 2920), else one by one.
 * Windows keep a long recipient list from filling both sides' buffers.
 */
static int transaction(struct tx *t)
{
	size_t k = 0, sent = 0, naccepted = 0, total, window,
	       per = RELAY_DELIVER_PATH_MAX + DSN_ORCPT_MAX + DSN_ENVID_MAX + 64;
	size_t *order = malloc(t->n * sizeof(*order));
	char *buf = malloc(DELIVER_WINDOW * per);
	int mail_failed = 0, rc = RELAY_IO_OK,
	    bdat = t->caps.chunking && t->s->smtp_chunking && !t->probe;
	/* a view between anchored relays (a listed server key) goes as a BDAT chunk (§12.12) */
	int partial = relay_peer_of_ssl(t->s, t->c.ssl, t->anchored, sizeof(t->anchored)) &&
	              t->caps.anchor_partial && t->caps.chunking && !t->probe && !is_lmtp(t) &&
	              t->s->partial_keep_time > 0;
	bdat = bdat || partial;

	if (order == NULL || buf == NULL) {
		relay_dconn_fail(&t->c, "out of memory");
		rc = RELAY_IO_FAIL;
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
	if (refuse_downgrade(t, order, k))
		goto out;
	/* a probe sends no DATA; BDAT goes after the RCPT replies (send_bdat) */
	total = t->probe || bdat ? k + 1 : k + 2;
	window = t->caps.pipelining ? DELIVER_WINDOW : 1;
	while (sent < total && rc == RELAY_IO_OK && !mail_failed) {
		size_t end = sent + window < total ? sent + window : total, o = 0;
		if (!t->probe && !bdat && !t->caps.pipelining && sent == total - 1 &&
		    naccepted == 0)
			break;
		for (size_t j = sent; j < end; j++) {
			if (j == 0)
				o += (size_t)mail_command(t, buf + o, per);
			else if (j <= k)
				o += (size_t)rcpt_command(t, order[j - 1], buf + o, per);
			else
				o += (size_t)snprintf(buf + o, per, "DATA\r\n");
		}
		rc = relay_dconn_write(&t->c, buf, o, t->tcmd);
		for (size_t j = sent; j < end && rc == RELAY_IO_OK; j++)
			rc = window_reply(t, j, order, k, &mail_failed, &naccepted);
		sent = end;
	}
	if (bdat && rc == RELAY_IO_OK && !mail_failed && naccepted > 0)
		rc = partial ? send_partial(t) : send_bdat(t);
	for (size_t m = 0; t->probe && rc == RELAY_IO_OK && m < k; m++)
		if (t->st[order[m]] == RS_ACCEPTED)
			result_set(&t->res[order[m]], 250, QUEUE_DELIVERED,
			           "%s: recipient accepted", t->c.peer);
out:
	free(order);
	free(buf);
	return rc;
}

/*
 * REQUIRETLS (RFC 8689 §4.2.1): a message that carries it goes only over TLS
 * to a peer whose certificate was verified (here: the hop's pin, the only
 * verification this client does; MX hosts of legacy domains are not verified)
 * and that offers REQUIRETLS, which then gets the parameter on.  Anything
 * else returns the message: never a retry that might go in clear.
 */
static int requiretls_ok(const struct tx *t)
{
	return !t->hop->requiretls ||
	       (t->c.ssl != NULL && t->hop->pin[0] != '\0' && t->caps.requiretls);
}

static void requiretls_return(struct tx *t)
{
	const char *why = t->c.ssl == NULL         ? "no TLS"
	                  : t->hop->pin[0] == '\0' ? "certificate not verified"
	                                           : "REQUIRETLS not offered";

	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] != RS_SEND)
			continue;
		/* an SMTP reply of our own, so that the bounce's Status is 5.7.30 */
		result_set(&t->res[i], 550, QUEUE_FAILED,
		           "550 5.7.30 REQUIRETLS support required (%s: %s)", t->c.peer, why);
		t->st[i] = RS_FINAL;
	}
}

/* QUIT, whose outcome changes nothing: in particular a peer that refused us (a 554
 * greeting) and hung up must leave its reply, not "Connection reset by peer", as the
 * reason every recipient's result and the log give. */
static void quit(struct tx *t)
{
	struct relay_smtp_reply rep;
	char why[sizeof(t->c.why)];
	int code = t->c.code, polite = t->c.polite;

	memcpy(why, t->c.why, sizeof(why));
	if (relay_dconn_write(&t->c, "QUIT\r\n", 6, DELIVER_QUIT_TIMEOUT) == RELAY_IO_OK &&
	    relay_dconn_read_reply(&t->c, DELIVER_QUIT_TIMEOUT, &rep) == RELAY_IO_OK)
		relay_dconn_tls_end(&t->c);
	memcpy(t->c.why, why, sizeof(why));
	t->c.code = code;
	t->c.polite = polite;
}

/* A kept session for the hop (deliver_cache.c) when cached is set and one is idle, else a
 * new one: connect, greeting, EHLO, STARTTLS. */
static int open_session(struct tx *t, int no_tls, int cached, const char *key)
{
	struct relay_dconn *c = &t->c;
	struct relay_smtp_reply rep;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	t->sent = 0;
	t->reused = cached && t->keep && relay_dcache_take(key, c, &t->caps, &t->sent);
	if (t->reused)
		return RELAY_IO_OK;
	rc = t->hop->unix_socket ? relay_dconn_unix(c, t->hop->host, t->tconn)
	                         : relay_dconn_tcp(c, t->hop->host, t->hop->port, t->tconn);
	if (rc == RELAY_IO_OK && (rc = relay_dconn_read_reply(c, t->tcmd, &rep)) == RELAY_IO_OK &&
	    rep.code / 100 != 2) {
		reply_why(t, "greeting refused: ", &rep);
		rc = RELAY_IO_FAIL;
	}
	if (rc == RELAY_IO_OK)
		rc = hello(t, &rep);
	if (rc == RELAY_IO_OK)
		rc = starttls(t, no_tls);
	return rc;
}

/* After a transaction: RSET, and on its 250 the session waits in the cache for the next
 * message to the hop (at most connection_reuse_limit messages); else QUIT. */
static void keep_or_quit(struct tx *t, const char *key)
{
	struct relay_smtp_reply rep;

	if (t->keep && t->sent + 1 < (unsigned)t->s->connection_reuse_limit &&
	    relay_dconn_write(&t->c, "RSET\r\n", 6, DELIVER_QUIT_TIMEOUT) == RELAY_IO_OK &&
	    relay_dconn_read_reply(&t->c, DELIVER_QUIT_TIMEOUT, &rep) == RELAY_IO_OK &&
	    rep.code == 250 && t->c.inlen == 0 &&
	    relay_dcache_put(key, &t->c, &t->caps, t->sent + 1, (int)t->s->connection_idle_time) ==
	        0)
		return;
	quit(t);
}

/* One connection: RELAY_IO_OK when the transaction ran, RELAY_IO_FAIL (results deferred) or
 * RELAY_IO_PLAIN_RETRY. */
static int session_once(struct tx *t, int no_tls, int cached, const char *key)
{
	struct relay_dconn *c = &t->c;
	int rc = open_session(t, no_tls, cached, key);

	if (rc == RELAY_IO_OK && !requiretls_ok(t))
		requiretls_return(t);
	else if (rc == RELAY_IO_OK)
		rc = transaction(t);
	if (rc == RELAY_IO_OK)
		keep_or_quit(t, key);
	else if (rc == RELAY_IO_FAIL && c->polite)
		quit(t); /* politely, also after a refusal; its outcome changes nothing */
	if (rc == RELAY_IO_FAIL)
		defer_open(t, c->code, c->why);
	relay_dconn_close(c);
	return rc;
}

/* After a kept session broke down or said 421 (RFC 5321 §3.8: closing; a peer's own idle
 * timeout), the recipients open again for a new session, unless one already has the
 * message (an LMTP 250 before the failure): 0, else -1. */
static int reopen(struct tx *t, int rc)
{
	int closing = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->st[i] != RS_SKIP && t->res[i].status == QUEUE_DELIVERED)
			return -1;
		closing |= t->st[i] != RS_SKIP && t->res[i].code == 421;
	}
	if (rc != RELAY_IO_FAIL && !closing)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (t->st[i] != RS_SKIP)
			t->st[i] = RS_SEND;
	return 0;
}

/* A kept session the peer closed (or refused, 421) between two messages must not fail
 * the message: it goes again, once, on a new session. */
static int session(struct tx *t, int no_tls)
{
	char key[RELAY_DCACHE_KEY_MAX];
	int rc;

	relay_dcache_key(t->hop, key, sizeof(key));
	if (no_tls) /* a plain-text retry after a failed handshake is not kept */
		t->keep = 0;
	rc = session_once(t, no_tls, 1, key);
	if (t->reused && reopen(t, rc) == 0)
		rc = session_once(t, no_tls, 0, key);
	return rc;
}

/* What may go between the angle brackets: printable ASCII without <, > or space. */
static int path_ok(const char *addr, int null_ok)
{
	size_t len = strlen(addr);

	if (len == 0)
		return null_ok;
	if (len + 2 >= RELAY_DELIVER_PATH_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)addr[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			return 0;
	}
	/* UTF-8 (RFC 6531) goes only with SMTPUTF8 (refuse_downgrade), and only well formed */
	return utf8_valid((const unsigned char *)addr, len);
}

static int seconds_or(long long v, int dflt)
{
	return v > 0 && v <= 86400 ? (int)v : dflt;
}

static int deliver_or_probe(const struct relay_settings *s, const struct relay_hop *hop,
                            const char *sender, const char *const *rcpts, size_t n,
                            const struct relay_dsn_out *dsn, const char *body, size_t len,
                            int probe, struct relay_rcpt_result *results, struct err *e);

int relay_deliver(const struct relay_settings *s, const struct relay_hop *hop, const char *sender,
                  const char *const *rcpts, size_t n, const char *body, size_t len,
                  struct relay_rcpt_result *results, struct err *e)
{
	return deliver_or_probe(s, hop, sender, rcpts, n, NULL, body, len, 0, results, e);
}

int relay_deliver_dsn(const struct relay_settings *s, const struct relay_hop *hop,
                      const char *sender, const char *const *rcpts, size_t n,
                      const struct relay_dsn_out *dsn, const char *body, size_t len,
                      struct relay_rcpt_result *results, struct err *e)
{
	return deliver_or_probe(s, hop, sender, rcpts, n, dsn, body, len, 0, results, e);
}

int relay_probe_rcpt(const struct relay_settings *s, const struct relay_hop *hop, const char *rcpt,
                     struct relay_rcpt_result *result, struct err *e)
{
	const char *one[1] = {rcpt};

	return deliver_or_probe(s, hop, "", one, 1, NULL, "", 0, 1, result, e);
}

static int deliver_or_probe(const struct relay_settings *s, const struct relay_hop *hop,
                            const char *sender, const char *const *rcpts, size_t n,
                            const struct relay_dsn_out *dsn, const char *body, size_t len,
                            int probe, struct relay_rcpt_result *results, struct err *e)
{
	struct tx *t;
	size_t valid = 0;
	int rc = RELAY_IO_OK;

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
	                 .dsn = dsn,
	                 .body = body,
	                 .len = len,
	                 .res = results,
	                 .st = t->st,
	                 .tconn = seconds_or(s->connect_timeout, 30),
	                 .tcmd = seconds_or(s->command_timeout, 300),
	                 .tdata = seconds_or(s->data_timeout, 600),
	                 .probe = probe,
	                 .keep = !probe && s->connection_idle_time > 0};
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
		if (rc != RELAY_IO_PLAIN_RETRY)
			break;
	}
	if (rc != RELAY_IO_OK)
		err_set(e, ERR_TEMP, "delivery_failed", "%s", t->c.why);
	free(t->st);
	free(t);
	return rc == RELAY_IO_OK ? 0 : -1;
}

int relay_deliver_command(const struct relay_settings *s, const struct relay_hop *hop,
                          const char *line, struct relay_smtp_reply *rep, struct err *e)
{
	struct tx t = {.s = s, .hop = hop};
	int rc;

	t.tconn = seconds_or(s->connect_timeout, 30);
	t.tcmd = seconds_or(s->command_timeout, 300);
	rc = open_session(&t, 0, 0, "");
	if (rc == RELAY_IO_OK && relay_peer_require(s, &t.c) < 0) /* a token goes to a peer only */
		rc = RELAY_IO_FAIL;
	if (rc == RELAY_IO_OK && (relay_dconn_printf(&t.c, t.tcmd, "%s\r\n", line) < 0 ||
	                          relay_dconn_read_reply(&t.c, t.tcmd, rep) < 0))
		rc = RELAY_IO_FAIL;
	if (rc == RELAY_IO_OK || t.c.polite)
		quit(&t);
	relay_dconn_close(&t.c);
	return rc == RELAY_IO_OK ? 0 : err_set(e, ERR_TEMP, "delivery_failed", "%s", t.c.why);
}
