/*
 * bounce.c - delivery status notifications (RFC 3464) for recipients that
 * failed for good (or, for DSN's NOTIFY, were delayed or relayed/delivered:
 * relay_report_build): a multipart/report; report-type=delivery-status from
 * MAILER-DAEMON@<hostname> to the message's sender with three parts:
 *
 *   1. text/plain: what happened, one line per failed recipient and its
 *      last reply;
 *   2. message/delivery-status: Original-Envelope-Id (DSN's ENVID),
 *      Reporting-MTA, Arrival-Date, then per recipient Original-Recipient
 *      (DSN's ORCPT), Final-Recipient, Action, Status, Remote-MTA and
 *      Diagnostic-Code;
 *   3. text/rfc822-headers: the original's header section (no body: the
 *      sender has the message, and a bounce should not carry spam back),
 *      unless a failure's sender asked RET=FULL: then message/rfc822.
 *
 * Status is the reply's enhanced status code when it is a permanent one
 * (5.x.x), 4.4.7 for a recipient that outlived the queue (the queue's reply
 * then starts "expired in queue"), else 5.0.0.  The Diagnostic-Code is of
 * type smtp when the reply is an SMTP reply, else X-Anchor-Relay.
 *
 * No bounce is ever made for the null reverse-path (RFC 5321 §4.5.5): the
 * caller checks m->sender before asking (it must also send the bounce itself
 * with the null reverse-path); asked anyway, this returns NULL, ERR_INPUT
 * "null_sender".  Every line ends in CRLF and is at most 998 octets; text from
 * replies and addresses is reduced to printable ASCII.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/crypto.h"
#include "relay.h"

#define BOUNCE_LINE_SOFT 76       /* where folding starts */
#define BOUNCE_LINE_HARD 990      /* a word longer than this is cut */
#define BOUNCE_HEADERS_MAX 102400 /* octets of the original's header section kept */
#define EXPIRED_PREFIX "expired in queue"
#define EXPIRED_LAST "last reply: "

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		b->oom = 1;
	else
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* One line of printable ASCII, malloc'd (others become ' ', 8-bit '?'). */
static char *ascii(const char *in)
{
	char *out = strdup(in != NULL ? in : "");

	for (char *p = out; p != NULL && *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 0x80)
			*p = '?';
		else if (c < 0x20 || c == 0x7f)
			*p = ' ';
	}
	return out;
}

/*
 * prefix then text, folded at spaces so that lines stay near BOUNCE_LINE_SOFT
 * (continuation lines start with a space, as in a header field) and never
 * pass 998 octets; then CRLF.  text is printable ASCII.
 */
static void add_folded(struct buf *b, const char *prefix, const char *text)
{
	size_t col = strlen(prefix);

	buf_str(b, prefix);
	while (*text == ' ')
		text++;
	while (*text) {
		size_t w = strcspn(text, " ");

		if (w > BOUNCE_LINE_HARD)
			w = BOUNCE_LINE_HARD;
		if (col > 1 && col + 1 + w > BOUNCE_LINE_SOFT) {
			buf_str(b, "\r\n ");
			col = 1;
		} else if (col > 0 && b->len > 0 && b->p[b->len - 1] != ' ') {
			buf_str(b, " ");
			col++;
		}
		buf_add(b, text, w);
		col += w;
		text += w;
		while (*text == ' ')
			text++;
	}
	buf_str(b, "\r\n");
}

/* RFC 5322 date-time in UTC, whatever the locale. */
static void rfc5322_date(time_t t, char *out, size_t size)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
	         months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ------------------------------------------------------------------ one recipient */

struct diag {
	int expired;
	const char *smtp; /* the SMTP reply within the text, or NULL */
	char status[16];  /* for the Status field */
	char remote[300]; /* "host[addr]" the reply came from, or "" */
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "c.sss.ddd" at s (RFC 3463): its length, 0 when there is none. */
static size_t enhanced_len(const char *s)
{
	size_t i = 0, n;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	i = 1;
	for (int part = 0; part < 2; part++) {
		if (s[i] != '.')
			return 0;
		i++;
		for (n = 0; is_digit(s[i]) && n < 3; n++)
			i++;
		if (n == 0)
			return 0;
	}
	return is_digit(s[i]) || (s[i] != '\0' && s[i] != ' ' && s[i] != '-') ? 0 : i;
}

/* "550 5.1.1 ..." or "550-5.1.1 ...": 1 when text starts with an SMTP reply code. */
static int is_smtp_reply(const char *t)
{
	return t[0] >= '2' && t[0] <= '5' && is_digit(t[1]) && is_digit(t[2]) &&
	       (t[3] == ' ' || t[3] == '-' || t[3] == '\0');
}

/* The Status class a report of this kind gives (RFC 3464 §2.3.4). */
static char action_class(enum relay_dsn_action a)
{
	return a == RELAY_DSN_FAILED ? '5' : a == RELAY_DSN_DELAYED ? '4' : '2';
}

static const char *const action_names[] = {"failed", "delayed", "delivered", "relayed"};

static void diagnose(const char *reply, enum relay_dsn_action action, struct diag *d)
{
	const char *t = reply, *last, *said;
	size_t n;

	memset(d, 0, sizeof(*d));
	if (strncmp(reply, EXPIRED_PREFIX, strlen(EXPIRED_PREFIX)) == 0) {
		d->expired = 1;
		last = strstr(reply, EXPIRED_LAST);
		t = last != NULL ? last + strlen(EXPIRED_LAST) : "";
	}
	/* deliver.c records "host[addr] said: 550 5.1.1 ..." */
	if (!is_smtp_reply(t) && (said = strstr(t, " said: ")) != NULL) {
		size_t hl = (size_t)(said - t);

		if (hl >= sizeof(d->remote))
			hl = sizeof(d->remote) - 1;
		snprintf(d->remote, sizeof(d->remote), "%.*s", (int)hl, t);
		t = said + 7;
	}
	if (is_smtp_reply(t))
		d->smtp = t;
	if (d->expired) {
		snprintf(d->status, sizeof(d->status), "4.4.7");
		return;
	}
	snprintf(d->status, sizeof(d->status), "%c.0.0", action_class(action));
	if (d->smtp != NULL && d->smtp[3] != '\0' && (n = enhanced_len(d->smtp + 4)) > 0 &&
	    d->smtp[4] == action_class(action))
		snprintf(d->status, sizeof(d->status), "%.*s", (int)n, d->smtp + 4);
}

/* "rfc822;bob@example.net" from the ORCPT as sent (xtext decoded, RFC 3461 §6.3). */
static void add_original_recipient(struct buf *b, const char *orcpt)
{
	const char *semi = orcpt != NULL ? strchr(orcpt, ';') : NULL;
	char addr[DSN_ORCPT_MAX + 1], *prefix = NULL;

	if (semi == NULL || dsn_xtext_decode(semi + 1, strlen(semi + 1), addr, sizeof(addr)) < 0)
		return;
	if (asprintf(&prefix, "Original-Recipient: %.*s;", (int)(semi - orcpt), orcpt) < 0) {
		b->oom = 1;
		return;
	}
	add_folded(b, prefix, addr);
	free(prefix);
}

static void add_recipient_status(struct buf *b, const struct queue_rcpt *r,
                                 enum relay_dsn_action action)
{
	char *addr = ascii(r->addr), *reply = ascii(r->reply);
	struct diag d;

	if (addr == NULL || reply == NULL) {
		b->oom = 1;
		goto out;
	}
	diagnose(reply, action, &d);
	buf_str(b, "\r\n");
	add_original_recipient(b, r->dsn_orcpt);
	add_folded(b, "Final-Recipient: rfc822;", addr);
	buf_printf(b, "Action: %s\r\n", action_names[action]);
	buf_printf(b, "Status: %s\r\n", d.status);
	if (d.remote[0] != '\0') {
		/* "host[addr]": the host name before the bracket */
		char host[256];
		size_t hl = strcspn(d.remote, "[");

		snprintf(host, sizeof(host), "%.*s",
		         (int)(hl < sizeof(host) ? hl : sizeof(host) - 1), d.remote);
		if (host[0] != '\0')
			add_folded(b, "Remote-MTA: dns;", host);
	}
	if (d.smtp != NULL)
		add_folded(b, "Diagnostic-Code: smtp;", d.smtp);
	else if (reply[0] != '\0')
		add_folded(b, "Diagnostic-Code: X-Anchor-Relay;", reply);
out:
	free(addr);
	free(reply);
}

/* ------------------------------------------------------------------ the original's headers */

/* The header section of orig (up to, not including, the empty line), CRLF line ends,
 * long lines folded, at most BOUNCE_HEADERS_MAX octets (cut at a line end). */
static void add_orig_headers(struct buf *b, const char *orig, size_t len)
{
	size_t i = 0, kept = 0;

	while (i < len) {
		const char *nl = memchr(orig + i, '\n', len - i);
		size_t end = nl != NULL ? (size_t)(nl - orig) : len, n = end - i;

		if (n > 0 && orig[end - 1] == '\r')
			n--;
		if (n == 0)
			break; /* the empty line: the body follows */
		if (kept + n + 2 > BOUNCE_HEADERS_MAX)
			break;
		for (size_t off = 0; off < n; off += BOUNCE_LINE_HARD) {
			size_t part = n - off > BOUNCE_LINE_HARD ? BOUNCE_LINE_HARD : n - off;

			if (off > 0)
				buf_str(b, " ");
			for (size_t k = 0; k < part; k++) {
				char c = orig[i + off + k];

				buf_add(b, c == '\r' || c == '\0' ? " " : &c, 1);
			}
			buf_str(b, "\r\n");
		}
		kept += n + 2;
		i = end + 1;
	}
}

static int has_8bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ the DSN */

static int make_boundary(char *out, size_t size, const char *orig, size_t len, struct err *e)
{
	uint8_t rnd[12];
	char hex[25];

	/* random enough never to occur, but checked against the part that is not ours */
	for (int tries = 0; tries < 8; tries++) {
		if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
			return -1;
		crypto_hex(rnd, sizeof(rnd), hex);
		snprintf(out, size, "=_anchor-relay_%s", hex);
		if (memmem(orig, len, out, strlen(out)) == NULL)
			return 0;
	}
	return err_set(e, ERR_INTERNAL, "internal", "no MIME boundary found");
}

static int check_input(const struct queue_msg *m, const size_t *failed, size_t nfailed,
                       struct err *e)
{
	if (m->sender == NULL || m->sender[0] == '\0')
		return err_set(
		    e, ERR_INPUT, "null_sender",
		    "no bounce for a message with the null reverse-path (RFC 5321 4.5.5)");
	if (nfailed == 0)
		return err_set(e, ERR_INPUT, "bad_request", "no failed recipient to report");
	for (size_t i = 0; i < nfailed; i++)
		if (failed[i] >= m->nrcpt)
			return err_set(e, ERR_INPUT, "bad_request",
			               "recipient %zu of a message with %zu recipients", failed[i],
			               m->nrcpt);
	return 0;
}

static const char *const subjects[] = {
    "Undelivered Mail Returned to Sender",
    "Delayed Mail (still being retried)",
    "Successful Mail Delivery Report",
    "Mail Relayed to a Server without Delivery Reports",
};

static void add_top(struct buf *b, const char *host, const char *sender, const char *boundary,
                    const char *id, time_t now, enum relay_dsn_action action)
{
	char date[64];

	rfc5322_date(now, date, sizeof(date));
	buf_printf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	buf_printf(b, "To: <%s>\r\n", sender);
	buf_printf(b, "Subject: %s\r\n", subjects[action]);
	buf_printf(b, "Date: %s\r\n", date);
	buf_printf(b, "Message-ID: <%s.dsn@%s>\r\n", id, host);
	buf_str(b, "Auto-Submitted: auto-replied\r\n");
	buf_str(b, "MIME-Version: 1.0\r\n");
	buf_printf(b,
	           "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	           "\tboundary=\"%s\"\r\n",
	           boundary);
	buf_str(b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
}

static const char *const human_lines[] = {
    "Your message could not be delivered to the recipient(s) below.",
    "Your message could not be delivered yet to the recipient(s) below; delivery\r\n"
    "is still being tried, nothing needs to be done.",
    "Your message was delivered to the recipient(s) below.",
    "Your message was relayed to the recipient(s) below, to a server that does\r\n"
    "not send delivery reports: this is the last report you get for them.",
};

static void add_human(struct buf *b, const char *host, const struct queue_msg *m,
                      const size_t *failed, size_t nfailed, const char *boundary,
                      enum relay_dsn_action action)
{
	buf_printf(b, "--%s\r\n", boundary);
	buf_str(b, "Content-Description: Notification\r\n"
	           "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	buf_printf(b, "This is the mail system at host %s.\r\n\r\n", host);
	buf_printf(b, "%s\r\n", human_lines[action]);
	buf_str(b, "The last reply for each is below; your message or its headers are\r\n"
	           "attached.\r\n\r\n");
	for (size_t i = 0; i < nfailed; i++) {
		const struct queue_rcpt *r = &m->rcpts[failed[i]];
		char *addr = ascii(r->addr), *reply = ascii(r->reply[0] ? r->reply : "no reply");
		char *prefix = NULL;

		if (addr == NULL || reply == NULL || asprintf(&prefix, "<%s>:", addr) < 0) {
			b->oom = 1;
		} else {
			add_folded(b, prefix, reply);
			free(prefix);
		}
		free(addr);
		free(reply);
	}
	buf_str(b, "\r\n");
}

static void add_report(struct buf *b, const char *host, const struct queue_msg *m,
                       const size_t *failed, size_t nfailed, const char *boundary,
                       enum relay_dsn_action action)
{
	char date[64], envid[DSN_ENVID_MAX + 1];

	rfc5322_date((time_t)m->arrival, date, sizeof(date));
	buf_printf(b, "--%s\r\n", boundary);
	buf_str(b, "Content-Description: Delivery report\r\n"
	           "Content-Type: message/delivery-status\r\n\r\n");
	if (m->dsn_envid != NULL &&
	    dsn_xtext_decode(m->dsn_envid, strlen(m->dsn_envid), envid, sizeof(envid)) >= 0)
		buf_printf(b, "Original-Envelope-Id: %s\r\n", envid);
	buf_printf(b, "Reporting-MTA: dns; %s\r\n", host);
	buf_printf(b, "X-Anchor-Queue-ID: %s\r\n", m->id);
	buf_printf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < nfailed; i++)
		add_recipient_status(b, &m->rcpts[failed[i]], action);
	buf_str(b, "\r\n");
}

char *relay_bounce_build(const struct relay_settings *s, const struct queue_msg *m,
                         const char *orig, size_t origlen, const size_t *failed, size_t nfailed,
                         size_t *len, struct err *e)
{
	return relay_report_build(s, m, orig, origlen, failed, nfailed, RELAY_DSN_FAILED, len, e);
}

/* RET=FULL on a failure (RFC 3461 §4.3): the whole message as message/rfc822. */
static void add_full(struct buf *b, const char *orig, size_t origlen)
{
	buf_printf(b,
	           "Content-Description: Undelivered Message\r\n"
	           "Content-Type: message/rfc822\r\n%s\r\n",
	           has_8bit(orig, origlen) ? "Content-Transfer-Encoding: 8bit\r\n" : "");
	buf_add(b, orig, origlen);
	if (origlen == 0 || orig[origlen - 1] != '\n')
		buf_str(b, "\r\n");
}

char *relay_report_build(const struct relay_settings *s, const struct queue_msg *m,
                         const char *orig, size_t origlen, const size_t *failed, size_t nfailed,
                         enum relay_dsn_action action, size_t *len, struct err *e)
{
	const char *host = s->hostname != NULL && s->hostname[0] ? s->hostname : "localhost";
	char boundary[64], id[32], *sender = NULL;
	struct buf b = {0};
	uint8_t rnd[8];
	size_t hstart;

	if (check_input(m, failed, nfailed, e) < 0 ||
	    make_boundary(boundary, sizeof(boundary), orig, origlen, e) < 0 ||
	    crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return NULL;
	crypto_hex(rnd, sizeof(rnd), id);
	if ((sender = ascii(m->sender)) == NULL)
		goto oom;
	add_top(&b, host, sender, boundary, id, time(NULL), action);
	add_human(&b, host, m, failed, nfailed, boundary, action);
	add_report(&b, host, m, failed, nfailed, boundary, action);

	buf_printf(&b, "--%s\r\n", boundary);
	if (action == RELAY_DSN_FAILED && m->dsn_ret == DSN_RET_FULL) {
		add_full(&b, orig, origlen);
		goto close;
	}
	buf_str(&b, "Content-Description: Message Headers\r\n"
	            "Content-Type: text/rfc822-headers\r\n");
	hstart = b.len;
	buf_str(&b, "\r\n");
	add_orig_headers(&b, orig, origlen);
	if (!b.oom && has_8bit(b.p + hstart, b.len - hstart)) {
		/* RFC 6532 headers: say so rather than pretend they are 7bit */
		char *rest = strdup(b.p + hstart);

		if (rest == NULL)
			goto oom;
		b.len = hstart;
		buf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
		buf_str(&b, rest);
		free(rest);
	}
close:
	buf_printf(&b, "\r\n--%s--\r\n", boundary);
	if (b.oom)
		goto oom;
	free(sender);
	*len = b.len;
	return b.p;
oom:
	free(sender);
	free(b.p);
	err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return NULL;
}
