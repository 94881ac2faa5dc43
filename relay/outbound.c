/*
 * outbound.c - mail from the local MTA: add our Received field, have the
 * signer sign it (the domain's key, and the user's when the signer holds
 * it), and queue it for delivery.  The signing domain is the From: domain, so
 * that the signature aligns with what the recipient sees; mail whose domain
 * has no key is relayed unsigned and logged, as OpenDKIM does for domains
 * outside its signing table.
 *
 * With submission_auth = required (auth.c), the session has authenticated a
 * user before MAIL, and that user may only send as itself: the envelope
 * sender and the From: address must both be the authenticated address (any
 * case), the null sender is refused.  Anything looser (the same domain, say)
 * would let every user of a domain sign as every other, with the domain's key
 * and the relay's name on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "relayd.h"

static int sub_mail(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                    struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	const char *user = relayd_auth_user(c);

	(void)s;
	relayd_txn_reset(c);
	if (strcmp(c->d->s->submission_auth, "required") == 0 && !relayd_auth_owns(c, cmd->path)) {
		/* the engine asks for AUTH before MAIL, so user is set; NULL would be a bug */
		log_info(NULL, "conn %lu: MAIL FROM:<%s> refused: not owned by <%s>", c->id,
		         cmd->path, user ? user : "(nobody)");
		relayd_reply_set(r, 553, "5.7.1", "Sender address not owned by <%s>",
		                 user ? user : "(nobody)");
		return SMTP_DECIDED;
	}
	c->requiretls = cmd->requiretls;
	relayd_txn_dsn_mail(c, cmd);
	if ((c->sender = strdup(cmd->path)) == NULL)
		relayd_reply_set(r, 451, "4.3.0", "Out of memory");
	return SMTP_DECIDED;
}

static int sub_rcpt(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                    struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;

	(void)s;
	relayd_txn_dsn_rcpt(c, cmd);
	if (relayd_txn_add_rcpt(c, cmd->path) < 0)
		relayd_reply_set(r, 451, "4.3.0", "Out of memory");
	return SMTP_DECIDED;
}

static int sub_helo(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                    struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;

	(void)s;
	(void)r;
	snprintf(c->helo, sizeof(c->helo), "%s", cmd->arg);
	relayd_txn_reset(c);
	return SMTP_DECIDED;
}

static void sub_reset(void *ctx, struct smtp_session *s)
{
	(void)s;
	relayd_txn_reset(ctx);
}

/* The From: address of the message, lowercase, or "" (then the envelope sender is used). */
static void signing_identity(const struct relayd_conn *c, const char *msg, size_t len,
                             char addr[RELAY_ADDR_MAX])
{
	/* the session waits for this message's decision: its SMTPUTF8 flag is steady */
	if (relay_from_address(msg, len, smtp_session_smtputf8(c->smtp), addr, RELAY_ADDR_MAX) <
	        0 ||
	    addr[0] == '\0')
		snprintf(addr, RELAY_ADDR_MAX, "%s", c->sender ? c->sender : "");
	for (char *p = addr; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

/* The message with our Received field on top (what is signed), *received that field;
 * NULL when out of memory. */
static char *traced_message(const struct relayd_conn *c, const struct relayd_msg_job *j,
                            char **received, size_t *tlen)
{
	const struct relayd *d = c->d;
	char date[64], *traced;
	size_t rlen;

	relayd_rfc5322_date(time(NULL), date, sizeof(date));
	/* RFC 3848: ESMTPSA when the client authenticated (the session is paused: safe to read) */
	if (asprintf(received,
	             "Received: from %s ([%s])\r\n\tby %s (anchor-relay) with %s%s;\r\n\t%s\r\n",
	             c->helo[0] ? c->helo : "unknown", c->ip, d->s->hostname,
	             c->tls ? "ESMTPS" : "ESMTP", relayd_auth_user(c) ? "A" : "", date) < 0) {
		*received = NULL;
		return NULL;
	}
	rlen = strlen(*received);
	*tlen = rlen + j->len;
	if ((traced = malloc(*tlen + 1)) == NULL)
		return NULL;
	memcpy(traced, *received, rlen);
	memcpy(traced + rlen, j->msg, j->len);
	traced[*tlen] = '\0';
	return traced;
}

static void sign_work(void *arg)
{
	struct relayd_msg_job *j = arg;
	struct relayd_conn *c = j->c;
	struct relayd *d = c->d;
	char addr[RELAY_ADDR_MAX];
	char *received = NULL, *traced = NULL, *sigs = NULL, *head = NULL;
	const char *domain;
	struct err e = {0};
	struct relayd_part part;
	size_t tlen;
	int has;

	if ((traced = traced_message(c, j, &received, &tlen)) == NULL)
		goto nomem;

	signing_identity(c, j->msg, j->len, addr);
	domain = strrchr(addr, '@');
	domain = domain ? domain + 1 : "";
	has = *domain ? relay_signer_has_domain(d->signer, domain, &e) : 0;
	if (has < 0) {
		log_err(NULL, "conn %lu: signer: %s", c->id, e.msg);
		relayd_reply_set(&j->r, 451, "4.3.0", "Signing is unavailable, try again later");
		goto out;
	}
	if (has == 0) {
		log_info(NULL, "conn %lu: from=<%s>: no signing key for '%s', sent unsigned", c->id,
		         c->sender, domain);
	} else if (relay_signer_sign(d->signer, traced, tlen, domain, addr, &sigs, &e) < 0) {
		/* a message that cannot be parsed never will be: refuse it for good, so
		 * that the local MTA bounces it instead of retrying for days */
		int permanent = e.kind == ERR_INPUT;

		log_err(NULL, "conn %lu: signing for %s failed: %s", c->id, domain, e.msg);
		if (permanent)
			relayd_reply_set(&j->r, 550, "5.6.0", "Cannot sign this message: %s",
			                 e.msg);
		else
			relayd_reply_set(&j->r, 451, "4.3.0", "Signing failed, try again later");
		goto out;
	}
	if (asprintf(&head, "%s%s", sigs ? sigs : "", received) < 0) {
		head = NULL;
		goto nomem;
	}
	part.sender = c->sender;
	part.rcpts = (const char *const *)c->rcpts;
	part.nrcpt = c->nrcpt;
	part.head = head;
	part.body = j->msg;
	part.len = j->len;
	part.notify = c->dsn.notify;
	part.orcpt = (const char *const *)c->dsn.orcpt;
	if (relayd_queue_parts(c, d->qout, &part, 1, &e) < 0) {
		log_err(NULL, "conn %lu: %s", c->id, e.msg);
		relayd_reply_set(&j->r, 451, "4.3.0", "Cannot queue the message now");
		goto out;
	}
	log_info(NULL, "conn %lu: from=<%s> nrcpt=%zu size=%zu %s", c->id, c->sender, c->nrcpt,
	         j->len, sigs ? "signed" : "unsigned");
	j->queued = 1;
	goto out;
nomem:
	relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory, try again later");
out:
	free(received);
	free(traced);
	free(sigs);
	free(head);
}

static int sub_data(void *ctx, struct smtp_session *s, const char *msg, size_t len,
                    struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	const char *user = relayd_auth_user(c);
	char from[RELAY_ADDR_MAX] = "";

	/* an authenticated user signs only as itself (checked on the loop: the header only) */
	if (strcmp(c->d->s->submission_auth, "required") == 0 &&
	    (relay_from_address(msg, len, smtp_session_smtputf8(s), from, sizeof(from)) < 0 ||
	     !relayd_auth_owns(c, from))) {
		log_info(NULL, "conn %lu: From: <%s> refused: not owned by <%s>", c->id, from,
		         user ? user : "(nobody)");
		c->d->st.refused++;
		relayd_reply_set(r, 550, "5.7.1", "From address not owned by <%s>",
		                 user ? user : "(nobody)");
		return SMTP_DECIDED;
	}
	return relayd_msg_job_start(ctx, msg, len, sign_work, r);
}

const struct smtp_callbacks relayd_submission_callbacks = {
    .on_helo = sub_helo,
    .on_mail = sub_mail,
    .on_rcpt = sub_rcpt,
    .on_data = sub_data,
    .on_reset = sub_reset,
    .on_auth = relayd_auth_on_auth,
};
