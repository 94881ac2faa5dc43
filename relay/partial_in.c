/*
 * partial_in.c - receiver-chosen transfer, the receiver's side (PROTOCOL.md §12.12): which
 * view to ask an anchored peer for after the envelope, and the view's arrival: checked,
 * recorded for the later fetch and queued for the recipients with an Anchor-Partial field
 * that says how to get the rest.
 *
 * The choice is made at the envelope, before any of the message is seen: the unknown
 * tier (partial_tiers = unknown) is mail whose envelope sender none of the recipients'
 * lists trusts or subscribes to.  The view's own signatures are then verified on what
 * they cover but the body (relay_auth.headers_only), the enforce rule applied to the
 * views that carry the signed fields (headers, text), and the whole message, once
 * fetched, goes through every check a message gets (partial_fetch.c).
 *
 * A view comes only from an anchored peer (peers.c: its client certificate's key), whose
 * name the record keeps: the fetch talks to whatever address the view gives, but only to
 * a server that proves it holds that same peer's key.
 *
 * A record (state_dir/partial/in/ID) keeps what the fetch needs: "key=value" lines
 * peer, sender, rcpt (one per recipient), token, fetch, sha256, size, view, smtputf8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "mail/header.h"
#include "partial.h"
#include "pki/crypto.h"
#include "relayd.h"

/* ---- PARTIAL ---- */

/* The view for this envelope: full unless every recipient would see it as unknown. */
static enum mail_view choose_view(const struct relayd_conn *c)
{
	const struct relay_settings *s = c->d->s;
	const char *dom = relay_addr_domain(c->sender);
	enum mail_view v;

	if (*s->partial_tiers == '\0' ||
	    mail_view_parse(s->partial_view, strlen(s->partial_view), &v) < 0)
		return MAIL_VIEW_FULL;
	for (size_t i = 0; i < c->nrcpt; i++) {
		enum relay_list_hit hit =
		    relay_lists_check(c->d->lists, c->rcpts[i], c->sender, dom);

		if (hit == RELAY_LIST_TRUST || hit == RELAY_LIST_SUBSCRIBED)
			return MAIL_VIEW_FULL;
	}
	return v;
}

int relayd_partial_on_ext(void *ctx, struct smtp_session *s, const char *line, size_t len,
                          int phase, struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	enum mail_view v;

	(void)s;
	if (len >= 5 && strncasecmp(line, "FETCH", 5) == 0)
		return relayd_partial_fetch_cmd(c, line, len, phase, r);
	if (len != 7) {
		relayd_reply_set(r, 501, "5.5.4", "Syntax: PARTIAL");
		return SMTP_DECIDED;
	}
	if (phase != SMTP_EXT_RCPT) {
		relayd_reply_set(r, 503, "5.5.1", "PARTIAL comes after the recipients");
		return SMTP_DECIDED;
	}
	v = choose_view(c);
	c->partial_view = v == MAIL_VIEW_FULL ? 0 : (int)v;
	relayd_reply_set(r, 250, "2.0.0", "VIEW=%s", mail_view_name(v));
	log_info(NULL, "conn %lu: from=<%s> PARTIAL: VIEW=%s", c->id, c->sender ? c->sender : "",
	         mail_view_name(v));
	return SMTP_DECIDED;
}

/* ---- the view ---- */

/* The sender's Anchor-Partial field, first in the view: *m, and where the view starts. */
static int view_meta(struct relayd_conn *c, const char *msg, size_t len,
                     struct relay_partial_meta *m, size_t *start, struct smtp_reply *r)
{
	struct mail_header h;
	struct mail_field f;
	struct err e = {0};

	mail_header_init(&h, msg, len);
	if (mail_header_next(&h, &f) != 1 || !mail_field_is(&f, RELAY_PARTIAL_FIELD) ||
	    f.value == NULL) {
		relayd_reply_set(r, 550, "5.6.0", "A view starts with its Anchor-Partial field");
		return -1;
	}
	if (relay_partial_meta_parse(f.value, f.vlen, m, &e) < 0) {
		relayd_reply_set(r, 550, "5.6.0", "Bad Anchor-Partial field: %s", e.msg);
		return -1;
	}
	if ((int)m->view != c->partial_view) {
		relayd_reply_set(r, 550, "5.6.0", "This is the %s view; %s was asked for",
		                 mail_view_name(m->view), mail_view_name(c->partial_view));
		return -1;
	}
	if (m->size > (unsigned long long)c->d->s->max_message_size) {
		relayd_reply_set(r, 552, "5.3.4", "The whole message would exceed the size limit");
		return -1;
	}
	*start = f.end;
	return 0;
}

/* The record of a view for its fetch; id filled. */
static int record_write(struct relayd_conn *c, const struct relay_partial_meta *m,
                        char id[RELAY_PARTIAL_ID_HEX + 1], struct err *e)
{
	uint8_t rnd[RELAY_PARTIAL_ID_HEX / 2];
	char path[4096], *text = NULL;
	size_t n = 0;
	FILE *f;
	int rc;

	if (crypto_random_bytes(rnd, sizeof(rnd), e) < 0)
		return -1;
	relay_partial_hex(rnd, sizeof(rnd), id);
	if ((f = open_memstream(&text, &n)) == NULL)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	fprintf(f, "peer=%s\nsender=%s\n", c->peer, c->sender);
	for (size_t i = 0; i < c->nrcpt; i++)
		fprintf(f, "rcpt=%s\n", c->rcpts[i]);
	fprintf(f, "token=%s\nfetch=%s%s%s:%u\nsha256=%s\nsize=%llu\nview=%s\nsmtputf8=%d\n",
	        m->token, strchr(m->host, ':') ? "[" : "", m->host, strchr(m->host, ':') ? "]" : "",
	        (unsigned)m->port, m->sha256, m->size, mail_view_name(m->view),
	        smtp_session_smtputf8(c->smtp));
	fclose(f);
	snprintf(path, sizeof(path), "%s/partial/in/%s", c->d->s->state_dir, id);
	rc = relay_partial_file_write(path, text, n, e);
	free(text);
	return rc;
}

/* Received, Authentication-Results, the tier header and our Anchor-Partial field. */
static char *view_head(struct relayd_conn *c, const struct relay_auth *a,
                       const struct relay_partial_meta *m, const char *id)
{
	struct relay_tier_input in = {0};
	char why[200], *trace, *out = NULL;
	enum relay_tier t;

	in.auth = a;
	in.list = relay_tier_lists(c->d->lists, c->rcpts[0], a);
	t = relay_tier_decide(&in, why, sizeof(why));
	if ((trace = relayd_trace_fields(c, a)) == NULL)
		return NULL;
	if (asprintf(&out,
	             "%s%s: %s (%s; partial view)\r\n" RELAY_PARTIAL_FIELD
	             ": id=%s; view=%s; size=%llu;\r\n\tfetch=\"anchorctl relay fetch %s\"\r\n",
	             trace, c->d->s->tier_header, relay_tier_name(t), why, id,
	             mail_view_name(m->view), m->size, id) < 0)
		out = NULL;
	free(trace);
	return out;
}

/* Verified (bh= aside), the enforce rule on the views that carry the signed fields. */
static int view_verify(struct relayd_conn *c, const struct relay_partial_meta *m, const char *clean,
                       size_t cleanlen, struct relay_auth *a, struct smtp_reply *r)
{
	struct relay_refusal rf;
	struct err e = {0};

	a->smtputf8 = smtp_session_smtputf8(c->smtp);
	if (relay_verify_view(c->d->verifier, clean, cleanlen, a, &e) < 0) {
		relayd_reply_set(r, 550, "5.6.0", "Cannot parse the view: %s", e.msg);
		return -1;
	}
	if ((m->view == MAIL_VIEW_HEADERS || m->view == MAIL_VIEW_TEXT) &&
	    relay_auth_refusal(a, &rf)) {
		relayd_reply_set(r, rf.code, rf.status, "%s", rf.text);
		return -1;
	}
	return 0;
}

void relayd_partial_view_work(struct relayd_msg_job *j)
{
	struct relayd_conn *c = j->c;
	const struct relay_settings *s = c->d->s;
	struct relay_partial_meta m;
	struct relay_auth a = {0};
	struct relayd_part part;
	struct err e = {0};
	char id[RELAY_PARTIAL_ID_HEX + 1], *clean = NULL, *head = NULL, **rcpts = NULL;
	size_t start, cleanlen;

	if (view_meta(c, j->msg, j->len, &m, &start, &j->r) < 0)
		goto out;
	clean = relayd_strip_our_fields(j->msg + start, j->len - start,
	                                s->authserv_id ? s->authserv_id : s->hostname,
	                                s->tier_header, &cleanlen);
	if (clean == NULL) {
		relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory, try again later");
		goto out;
	}
	if (view_verify(c, &m, clean, cleanlen, &a, &j->r) < 0)
		goto out;
	if (record_write(c, &m, id, &e) < 0 || (head = view_head(c, &a, &m, id)) == NULL) {
		log_err(NULL, "conn %lu: partial view: %s", c->id, e.msg[0] ? e.msg : "nomem");
		relayd_reply_set(&j->r, 451, "4.3.0", "Cannot keep the view now");
		goto out;
	}
	/* unknown mail into unknown_folder, as inbound.c's: the record keeps the addresses */
	if ((rcpts = relay_partial_rcpts(s, c->d->lists, &a, c->rcpts, c->nrcpt)) == NULL) {
		relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory, try again later");
		goto out;
	}
	part.sender = c->sender;
	part.rcpts = (const char *const *)rcpts;
	part.nrcpt = c->nrcpt;
	part.head = head;
	part.body = clean;
	part.len = cleanlen;
	log_info(NULL, "conn %lu: from=<%s> partial %s view %zu of %llu octets, id %s (%s)", c->id,
	         c->sender, mail_view_name(m.view), cleanlen, m.size, id, a.why);
	if (relayd_queue_parts(c, c->d->qin, &part, 1, &e) < 0) {
		log_err(NULL, "conn %lu: %s", c->id, e.msg);
		relayd_reply_set(&j->r, 451, "4.3.0", "Cannot queue the view now");
	} else {
		j->queued = 1;
	}
out:
	relay_partial_rcpts_free(rcpts, c->nrcpt);
	free(head);
	free(clean);
	relay_auth_clear(&a);
}
