/*
 * defer_smtp.c - ANCHOR-DEFER in the inbound SMTP sessions (defer.h, PROTOCOL.md §12.10).
 * A client is a peer only by its TLS client certificate: its key's pin must be one of
 * anchored_peers (peers.c sets c->peer).  Nobody else sees the keyword or may use the
 * commands, so a legacy client's session is exactly what it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "defer.h"

/* The policy: a recipient (or its @domain) in defer_recipients, or its tier in defer_tiers. */
static int wants(const struct relay_settings *s, const char *rcpt, const char *tier)
{
	const char *at = strrchr(rcpt, '@');

	if (s->defer_tiers != NULL && relay_list_has(s->defer_tiers, tier))
		return 1;
	if (s->defer_recipients == NULL)
		return 0;
	return relay_list_has(s->defer_recipients, rcpt) ||
	       (at != NULL && relay_list_has(s->defer_recipients, at));
}

int relayd_defer_try(struct relayd_conn *c, const char *rcpt, const char *deliver_to,
                     const char *tier, const char *head, const char *body, size_t len, char **lines,
                     struct err *e)
{
	struct defer_offer o;
	char line[DEFER_RCPT_MAX + 2 * DEFER_TOKEN_MAX];
	char *more;

	if (c->peer[0] == '\0' || c->d->defer == NULL || !wants(c->d->s, rcpt, tier))
		return 0;
	if (relay_defer_hold(c->d->defer, c->peer, c->sender, deliver_to, head, body, len, &o, e) <
	    0)
		return -1;
	snprintf(o.rcpt, sizeof(o.rcpt), "%s", rcpt);
	if (defer_offer_format(&o, line, sizeof(line)) < 0 ||
	    asprintf(&more, "%s250-2.1.5 %s\r\n", *lines != NULL ? *lines : "", line) < 0)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	free(*lines);
	*lines = more;
	log_info(NULL, "conn %lu: from=<%s> to=<%s> held for decision (peer %s, tier %s)", c->id,
	         c->sender, rcpt, c->peer, tier);
	return 1;
}

static void __attribute__((format(printf, 4, 5)))
reply_set(struct smtp_reply *r, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* The reply to a refused query: each case its own code (PROTOCOL.md §12.10). */
static void refusal(const struct err *e, struct smtp_reply *r)
{
	if (strcmp(e->code, "bad_token") == 0)
		reply_set(r, 554, "5.7.1", "Unknown or invalid defer token");
	else if (strcmp(e->code, "other_peer") == 0)
		reply_set(r, 554, "5.7.1", "Defer token was issued to another peer");
	else if (strcmp(e->code, "withdrawn") == 0)
		reply_set(r, 554, "5.7.1", "Defer token already withdrawn");
	else if (strcmp(e->code, "decided") == 0)
		reply_set(r, 550, "5.5.1", "%s", e->msg);
	else
		reply_set(r, 451, "4.3.0", "Cannot answer now, try again later");
}

int relayd_defer_on_command(void *ctx, struct smtp_session *s, const char *line, size_t len,
                            struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	enum defer_op op;
	char token[DEFER_TOKEN_MAX], text[DEFER_REASON_MAX + 40];
	struct defer_status st;
	struct err e = {0};
	int rc;

	(void)s;
	if (c->peer[0] == '\0' || c->d->defer == NULL)
		return 0;
	rc = defer_parse_command(line, len, &op, token, &e);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		reply_set(r, 501, "5.5.4", "%s", e.msg);
		return 1;
	}
	if (relay_defer_query(c->d->defer, c->peer, op, token, &st, &e) < 0) {
		log_info(NULL, "conn %lu: %s from peer %s refused: %s", c->id,
		         op == DEFER_OP_STATUS ? "DEFER-STATUS" : "DEFER-WITHDRAW", c->peer, e.msg);
		refusal(&e, r);
		return 1;
	}
	if (defer_status_format(&st, text, sizeof(text)) < 0)
		snprintf(text, sizeof(text), "%s", defer_state_name(st.state));
	reply_set(r, 250, "2.0.0", "%s", text);
	return 1;
}
