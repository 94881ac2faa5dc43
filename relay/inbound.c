/*
 * inbound.c - mail from other domains: reputation at connect and HELO,
 * recipients only in local_domains, then per message: verify every
 * signature, refuse what an enforcing anchored domain disowns, sort each
 * recipient into a tier, add Received, Authentication-Results and the tier
 * header, and queue for the next hop.
 *
 * The network and CPU work runs on the pool; the callbacks here only start
 * it and answer the session when it is done.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/ttlcache.h"
#include "mail/header.h"
#include "encrypt.h"
#include "defer.h"
#include "partial.h"
#include "peer_ext.h"
#include "relayd.h"

/* ------------------------------------------------------------------ reputation */

struct rep_job {
	struct relayd_conn *c;
	char ip[64];
	char helo[SMTP_LINE_MAX];
	int at_helo;
	int rc;
	struct relay_rep_answer a;
	struct err e;
};

static void rep_work(void *arg)
{
	struct rep_job *j = arg;

	j->rc =
	    relay_rep_query(j->c->d->rep, j->ip, j->at_helo ? j->helo : NULL, NULL, &j->a, &j->e);
}

/* The verdict (or the outage) as a reply: 2xx lets the client on. */
static void rep_reply(struct rep_job *j, struct smtp_reply *r)
{
	struct relayd_conn *c = j->c;

	relayd_reply_set(r, 250, "", "ok");
	if (j->rc < 0) {
		log_info(NULL, "conn %lu: %s: reputation service: %s (fail %s)", c->id, c->ip,
		         j->e.msg, c->d->s->reputation_on_error);
		if (strcmp(c->d->s->reputation_on_error, "closed") == 0)
			relayd_reply_set(r, j->at_helo ? 451 : 421, "4.3.0",
			                 "Reputation service unavailable, try again later");
		return;
	}
	c->rep = j->a;
	c->rep_known = 1;
	if (j->a.verdict == RELAY_REP_BLOCK) {
		log_info(NULL, "conn %lu: %s%s%s blocked by reputation: %s", c->id, c->ip,
		         j->at_helo ? " HELO " : "", j->at_helo ? j->helo : "", j->a.reason);
		relayd_reply_set(r, 554, "5.7.1", "Refused by reputation service: %s",
		                 j->a.reason[0] ? j->a.reason : "listed");
	}
}

static void rep_done(void *arg)
{
	struct rep_job *j = arg;
	struct relayd_conn *c = j->c;
	struct smtp_reply r;

	rep_reply(j, &r);
	if (j->at_helo) {
		if (r.code == 554)
			r.code = 550; /* a refused HELO is 550 (RFC 5321 §4.2.2); 554 is for the
			                 greeting */
		relayd_conn_decide(c, &r);
	} else {
		if (r.code >= 400)
			c->d->st.refused++;
		relayd_conn_greet(c, r.code >= 400 ? &r : NULL);
	}
	relayd_conn_unref(c);
	free(j);
}

static int rep_start(struct relayd_conn *c, const char *helo)
{
	struct rep_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -1;
	j->c = c;
	snprintf(j->ip, sizeof(j->ip), "%s", c->ip);
	if (helo != NULL) {
		j->at_helo = 1;
		snprintf(j->helo, sizeof(j->helo), "%s", helo);
	}
	relayd_conn_ref(c);
	if (relay_pool_run(c->d->pool, rep_work, rep_done, j, NULL) < 0) {
		relayd_conn_unref(c);
		free(j);
		return -1;
	}
	return 0;
}

void relayd_inbound_connected(struct relayd_conn *c)
{
	if (relay_rep_enabled(c->d->rep) && rep_start(c, NULL) == 0)
		return;
	relayd_conn_greet(c, NULL);
}

static int in_helo(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                   struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;

	(void)s;
	(void)r;
	snprintf(c->helo, sizeof(c->helo), "%s", cmd->arg);
	relayd_txn_reset(c);
	if (relay_rep_enabled(c->d->rep) && rep_start(c, cmd->arg) == 0)
		return SMTP_PENDING;
	return SMTP_DECIDED;
}

static int in_mail(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                   struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;

	(void)s;
	relayd_txn_reset(c);
	c->requiretls = cmd->requiretls;
	relayd_txn_dsn_mail(c, cmd);
	if ((c->sender = strdup(cmd->path)) == NULL)
		relayd_reply_set(r, 451, "4.3.0", "Out of memory");
	return SMTP_DECIDED;
}

/* ------------------------------------------------------------------ recipients */

/*
 * Recipient verification (verify_recipients): the next hop is asked at RCPT
 * time, as Postfix's reject_unverified_recipient does, so that a message for
 * an unknown user is refused while its sender is still connected instead of
 * being accepted and bounced to a sender address that may be forged
 * (backscatter).  Answers are cached for verify_cache_ttl; a next hop that
 * cannot be asked costs nothing but the wait: the recipient is accepted and
 * the queue deals with it.
 */
/* What the next hop said of one recipient, kept in d->rcpt_answers under the
 * lower-cased address (RELAYD_RCPT_ANSWERS of them at most). */
struct verify_answer {
	int taken; /* 1 taken, 0 refused */
	char reply[200];
};

static int verify_answer_copy(const void *value, void *arg)
{
	memcpy(arg, value, sizeof(struct verify_answer));
	return 0;
}

static void verify_key(const char *rcpt, char key[SMTP_PATH_MAX])
{
	size_t i = 0;

	for (; i < SMTP_PATH_MAX - 1 && rcpt[i] != '\0'; i++)
		key[i] = (char)tolower((unsigned char)rcpt[i]);
	key[i] = '\0';
}

struct verify_job {
	struct relayd_conn *c;
	char rcpt[SMTP_PATH_MAX];
	struct smtp_reply r;
};

static void verify_work(void *arg)
{
	struct verify_job *j = arg;
	struct relayd *d = j->c->d;
	struct verify_answer va, *keep;
	char key[SMTP_PATH_MAX];
	struct relay_rcpt_result res = {0};
	struct err e = {0};
	int hit, taken = 1;

	verify_key(j->rcpt, key);
	hit = ttlcache_get(d->rcpt_answers, key, (double)time(NULL), 0, verify_answer_copy, &va);
	if (hit) {
		if (!va.taken)
			relayd_reply_set(&j->r, 550, "5.1.1", "<%s>: %s", j->rcpt, va.reply);
		return;
	}
	if (relay_probe_rcpt(d->s, &d->inbound_hop, j->rcpt, &res, &e) < 0 ||
	    res.status == QUEUE_DEFERRED) {
		log_info(NULL, "conn %lu: <%s>: next hop cannot say now (%s): accepted", j->c->id,
		         j->rcpt, res.reply[0] ? res.reply : e.msg);
		return;
	}
	taken = res.status == QUEUE_DELIVERED;
	if (!taken) {
		relayd_reply_set(&j->r, 550, "5.1.1", "<%s>: %s", j->rcpt, res.reply);
		log_info(NULL, "conn %lu: <%s> refused by the next hop: %s", j->c->id, j->rcpt,
		         res.reply);
	}
	if (d->s->verify_cache_ttl <= 0 || (keep = calloc(1, sizeof(*keep))) == NULL)
		return;
	snprintf(keep->reply, sizeof(keep->reply), "%.*s", (int)sizeof(keep->reply) - 1, res.reply);
	keep->taken = taken;
	ttlcache_put(d->rcpt_answers, key, keep, (double)(time(NULL) + d->s->verify_cache_ttl),
	             TTLCACHE_ANY_GEN);
}

static void verify_done(void *arg)
{
	struct verify_job *j = arg;
	struct relayd_conn *c = j->c;

	if (j->r.code / 100 == 2 && relayd_txn_add_rcpt(c, j->rcpt) < 0)
		relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory");
	relayd_conn_decide(c, &j->r);
	relayd_conn_unref(c);
	free(j);
}

static int verify_start(struct relayd_conn *c, const char *rcpt, struct smtp_reply *r)
{
	struct verify_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return -1;
	j->c = c;
	j->r = *r; /* the default acceptance */
	snprintf(j->rcpt, sizeof(j->rcpt), "%s", rcpt);
	relayd_conn_ref(c);
	if (relay_pool_run(c->d->pool, verify_work, verify_done, j, NULL) < 0) {
		relayd_conn_unref(c);
		free(j);
		return -1;
	}
	return 0;
}

static int in_rcpt(void *ctx, struct smtp_session *s, const struct smtp_command *cmd,
                   struct smtp_reply *r)
{
	struct relayd_conn *c = ctx;
	const char *at = strrchr(cmd->path, '@');

	(void)s;
	relayd_txn_dsn_rcpt(c, cmd);
	if (at == NULL || !relay_is_local_domain(c->d->s, at + 1)) {
		relayd_reply_set(r, 550, "5.7.1", "Relaying denied: <%s> is not a local domain",
		                 cmd->path);
		return SMTP_DECIDED;
	}
	if (c->d->s->verify_recipients && verify_start(c, cmd->path, r) == 0)
		return SMTP_PENDING;
	if (relayd_txn_add_rcpt(c, cmd->path) < 0)
		relayd_reply_set(r, 451, "4.3.0", "Out of memory");
	return SMTP_DECIDED;
}

static void in_reset(void *ctx, struct smtp_session *s)
{
	(void)s;
	relayd_txn_reset(ctx);
}

/* ------------------------------------------------------------------ the message */

struct tiered {
	enum relay_tier tier;
	char why[200];
};

static void decide_tier(struct relayd *d, const struct relay_auth *a, const char *rcpt,
                        const char *msg, size_t len, int have_rep,
                        enum relay_rep_verdict sender_rep, struct tiered *out)
{
	struct relay_tier_input in = {0};
	char powwhy[120];

	in.auth = a;
	in.list = relay_tier_lists(d->lists, rcpt, a); /* only what was verified is asked */
	in.have_rep = have_rep;
	in.sender_rep = sender_rep;
	out->tier = relay_tier_decide(&in, out->why, sizeof(out->why));
	if (out->tier == RELAY_TIER_UNKNOWN && in.list != RELAY_LIST_BLOCK &&
	    relay_pow_check(d->pow, msg, len, rcpt, time(NULL), powwhy, sizeof(powwhy)) == 1) {
		in.pow_ok = 1;
		out->tier = relay_tier_decide(&in, out->why, sizeof(out->why));
	}
}

/* The refusal rule is verify.c's (relay_auth_refusal): no author, several, or an
 * enforce-mode author domain not verified. */
static int enforce_refuses(const struct relay_auth *a, struct smtp_reply *r)
{
	struct relay_refusal rf;

	if (!relay_auth_refusal(a, &rf))
		return 0;
	relayd_reply_set(r, rf.code, rf.status, "%s", rf.text);
	return 1;
}

/* The message's recipients sorted by tier: one queued part per tier that has any. */
struct tier_groups {
	char **rcpts[3];
	size_t nr[3];
	unsigned *notify[3]; /* the recipients' DSN parameters (RFC 3461), in step */
	const char **orcpt[3];
	char *heads[3]; /* the trace fields and that tier's header */
	char *held;     /* ANCHOR-DEFER reply lines of the recipients held for a decision */
};

static void groups_free(struct tier_groups *g)
{
	for (size_t t = 0; t < 3; t++) {
		for (size_t i = 0; g->rcpts[t] != NULL && i < g->nr[t]; i++)
			free(g->rcpts[t][i]);
		free(g->rcpts[t]);
		free(g->notify[t]);
		free(g->orcpt[t]);
		free(g->heads[t]);
	}
	free(g->held);
}

/* ANCHOR-DEFER: the last recipient of g's tier t held for a decision instead (1)?  A hold
 * that cannot be written lets it through (logged). */
static int hold(struct relayd_conn *c, size_t i, enum relay_tier t, const char *head,
                const char *clean, size_t cleanlen, struct tier_groups *g)
{
	struct err e = {0};
	int rc = relayd_defer_try(c, c->rcpts[i], g->rcpts[t][g->nr[t] - 1], relay_tier_name(t),
	                          head, clean, cleanlen, &g->held, &e);

	if (rc < 0)
		log_err(NULL, "conn %lu: cannot hold <%s> for a decision: %s", c->id, c->rcpts[i],
		        e.msg);
	if (rc <= 0)
		return 0;
	free(g->rcpts[t][--g->nr[t]]);
	g->rcpts[t][g->nr[t]] = NULL;
	return 1;
}

/* Each recipient into its tier (logged); -1 when out of memory. */
static int groups_fill(struct relayd_conn *c, const struct relay_auth *a, const char *trace,
                       const char *clean, size_t cleanlen, int have_rep,
                       enum relay_rep_verdict sender_rep, struct tier_groups *g)
{
	const struct relay_settings *s = c->d->s;

	for (size_t i = 0; i < 3; i++)
		if ((g->rcpts[i] = calloc(c->nrcpt + 1, sizeof(char *))) == NULL ||
		    (g->notify[i] = calloc(c->nrcpt + 1, sizeof(unsigned))) == NULL ||
		    (g->orcpt[i] = calloc(c->nrcpt + 1, sizeof(char *))) == NULL)
			return -1;
	for (size_t i = 0; i < c->nrcpt; i++) {
		struct tiered td;
		size_t t;
		char *r;

		decide_tier(c->d, a, c->rcpts[i], clean, cleanlen, have_rep, sender_rep, &td);
		t = (size_t)td.tier;
		if ((r = relay_tier_rcpt(s, c->rcpts[i], td.tier)) == NULL)
			return -1;
		g->notify[t][g->nr[t]] = c->dsn.notify[i];
		g->orcpt[t][g->nr[t]] = c->dsn.orcpt[i];
		g->rcpts[t][g->nr[t]++] = r;
		if (g->heads[t] == NULL &&
		    asprintf(&g->heads[t], "%s%s: %s (%s)\r\n", trace, s->tier_header,
		             relay_tier_name(td.tier), td.why) < 0) {
			g->heads[t] = NULL;
			return -1;
		}
		if (hold(c, i, td.tier, g->heads[t], clean, cleanlen, g))
			continue;
		log_info(NULL, "conn %lu: from=<%s> to=<%s> tier=%s (%s) %s", c->id, c->sender,
		         c->rcpts[i], relay_tier_name(td.tier), td.why, a->why);
	}
	return 0;
}

/* Queue one part per tier; the commit answers the session (j->queued) or j->r is a 451. */
static void groups_queue(struct relayd_msg_job *j, const struct tier_groups *g, const char *clean,
                         size_t cleanlen)
{
	struct relayd_conn *c = j->c;
	struct relayd_part parts[3];
	size_t nparts = 0;
	struct err e = {0};

	for (size_t t = 0; t < 3; t++) {
		if (g->nr[t] == 0)
			continue;
		parts[nparts].sender = c->sender;
		parts[nparts].rcpts = (const char *const *)g->rcpts[t];
		parts[nparts].nrcpt = g->nr[t];
		parts[nparts].head = g->heads[t];
		parts[nparts].body = clean;
		parts[nparts].len = cleanlen;
		parts[nparts].notify = g->notify[t];
		parts[nparts].orcpt = g->orcpt[t];
		nparts++;
	}
	if (g->held != NULL && smtp_session_reply_lines(c->smtp, g->held) < 0) {
		relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory, try again later");
		return;
	}
	if (nparts == 0) { /* every recipient held: nothing to queue */
		relayd_reply_set(&j->r, 250, "2.0.0", "Ok: held for decision");
		return;
	}
	if (relayd_queue_parts(c, c->d->qin, parts, nparts, &e) < 0) {
		log_err(NULL, "conn %lu: %s", c->id, e.msg);
		relayd_reply_set(&j->r, 451, "4.3.0", "Cannot queue the message now");
		return;
	}
	j->queued = 1;
}

/* The sender's reputation, asked only for a verified author domain; 1 when it answered. */
static int sender_reputation(struct relayd_conn *c, const struct relay_auth *a,
                             struct relay_rep_answer *sender)
{
	struct err re = {0};

	if (!a->domain_verified || !relay_rep_enabled(c->d->rep))
		return 0;
	return relay_rep_query(c->d->rep, c->ip, c->helo, a->from_domain, sender, &re) == 0;
}

static void data_work(void *arg)
{
	struct relayd_msg_job *j = arg;
	struct relayd_conn *c = j->c;
	const struct relay_settings *s = c->d->s;
	const char *authserv = s->authserv_id ? s->authserv_id : s->hostname;
	struct relay_auth a = {0};
	struct relay_rep_answer sender = {0};
	struct tier_groups g;
	struct err e = {0};
	char *clean, *trace = NULL, *dec;
	size_t cleanlen, declen = 0;
	int have_rep;

	if (c->partial_view != 0) { /* a view: partial_in.c */
		relayd_partial_view_work(j);
		return;
	}
	memset(&g, 0, sizeof(g));
	/* the session waits for this decision: its transaction's flag is steady */
	a.smtputf8 = smtp_session_smtputf8(c->smtp);
	clean = relayd_strip_our_fields(j->msg, j->len, authserv, s->tier_header, &cleanlen);
	if (clean == NULL || relay_verify_message(c->d->verifier, clean, cleanlen, &a, &e) < 0) {
		log_info(NULL, "conn %lu: unreadable message: %s", c->id, clean ? e.msg : "nomem");
		relayd_reply_set(&j->r, 550, "5.6.0", "Cannot parse the message: %s",
		                 clean ? e.msg : "out of memory");
		goto out;
	}
	if (enforce_refuses(&a, &j->r)) {
		log_info(NULL, "conn %lu: %s: %s (%s)", c->id,
		         j->r.code < 500 ? "deferred" : "refused", j->r.text, a.why);
		goto out;
	}
	if (relay_enc_inbound_refuses(c->d, &a, clean, cleanlen, c->rcpts, c->nrcpt, &j->r)) {
		log_info(NULL, "conn %lu: refused: %s (%s)", c->id, j->r.text, a.why);
		goto out;
	}
	/* After the checks, which the sender's signatures over the ciphertext answer. */
	if ((dec = relayd_gateway_decrypt(c, clean, cleanlen, &declen)) != NULL) {
		free(clean);
		clean = dec;
		cleanlen = declen;
	}
	have_rep = sender_reputation(c, &a, &sender);
	if ((trace = relayd_trace_fields(c, &a)) == NULL ||
	    groups_fill(c, &a, trace, clean, cleanlen, have_rep, sender.verdict, &g) < 0)
		relayd_reply_set(&j->r, 451, "4.3.0", "Out of memory, try again later");
	else
		groups_queue(j, &g, clean, cleanlen);
out:
	groups_free(&g);
	free(trace);
	free(clean);
	relay_auth_clear(&a);
}

static int in_data(void *ctx, struct smtp_session *s, const char *msg, size_t len,
                   struct smtp_reply *r)
{
	(void)s;
	return relayd_msg_job_start(ctx, msg, len, data_work, r);
}

const struct smtp_callbacks relayd_inbound_callbacks = {
    .on_helo = in_helo,
    .on_mail = in_mail,
    .on_rcpt = in_rcpt,
    .on_data = in_data,
    .on_reset = in_reset,
    .on_ext = relayd_peer_on_ext,
};
