/*
 * scheduler.c - moving queued mail on: every second (and at once after a
 * commit) the recipients due in both queues become delivery jobs, one per
 * message and next hop; their outcomes are marked in the queue; recipients
 * that failed for good, or outlived queue_lifetime, are bounced to the
 * sender first, so that a crash can repeat a bounce but never lose one.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "core/log.h"
#include "deliver_cache.h"
#include "encrypt.h"
#include "defer.h"
#include "defer_client.h"
#include "relayd.h"

#define SCHED_MAX_HOPS 8
#define SCHED_REPEAT_WINDOW 60 /* seconds one repeated error is summed up over */

/* A full spool fails every outcome the same way: one line, then a count. */
static struct log_repeat mark_failed =
    LOG_REPEAT_INIT(LOG_LVL_ERR, "cannot record the outcome of a delivery", SCHED_REPEAT_WINDOW);

struct djob {
	struct relayd *d;
	struct queue *q;
	int inbound;
	int expired; /* the recipients have expired: bounce and remove */
	char id[QUEUE_ID_MAX];
	size_t n;
	size_t *idx;
	char **addrs;
	unsigned delivered, deferred, failed;
};

/* ------------------------------------------------------------------ bounces */

/* The failed recipients whose NOTIFY asks for it (or who gave none) are reported
 * (dsn_notice.c), but never an ANCHOR-DEFER outcome (defer_client.h); 0 when that is done
 * or nobody wants one, -1 to try again later. */
static int bounce(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                  const size_t *failed, size_t nfailed)
{
	size_t *keep = calloc(nfailed + 1, sizeof(size_t)), n = 0;
	int rc;

	if (keep == NULL)
		return -1;
	for (size_t i = 0; i < nfailed; i++)
		if (!relay_defer_no_bounce(m->rcpts[failed[i]].reply))
			keep[n++] = failed[i];
	rc = n == 0 ? 0 : relayd_dsn_report(d, m, body, len, keep, n, RELAY_DSN_FAILED);
	free(keep);
	return rc;
}

/* ------------------------------------------------------------------ delivery */

static int hop_same(const struct relay_hop *a, const struct relay_hop *b)
{
	return a->proto == b->proto && a->port == b->port && a->unix_socket == b->unix_socket &&
	       a->tls_required == b->tls_required && strcmp(a->host, b->host) == 0 &&
	       strcmp(a->pin, b->pin) == 0;
}

struct rcpt_plan {
	struct relay_hop hops[SCHED_MAX_HOPS];
	size_t nhops;
	char rcpt[RELAY_ADDR_MAX]; /* after aliases */
	int done;                  /* result filled */
	int encrypt;               /* gateway encryption to enc.certs (encrypt.c) */
	struct relay_enc_target enc;
};

/*
 * Deliver the recipients in set (indexes into the job) over hops, in order.
 * When a hop breaks down (relay_deliver -1) only the recipients it left
 * without a final answer move on to the next: an LMTP 250 or a 5xx already
 * given stands, so nobody gets the message twice.
 */
static void deliver_group(struct djob *j, const struct queue_msg *m, const char *body, size_t len,
                          const struct relay_hop *hops, size_t nhops, const size_t *set,
                          size_t nset, const struct rcpt_plan *plan, struct relay_rcpt_result *res)
{
	const char **rcpts = calloc(nset, sizeof(char *)), **orcpt = calloc(nset, sizeof(char *));
	unsigned *notify = calloc(nset, sizeof(unsigned));
	struct relay_dsn_out dsn = {m->dsn_ret, m->dsn_envid, notify, orcpt};
	struct relay_rcpt_result *r = calloc(nset, sizeof(*r));
	size_t *left = calloc(nset, sizeof(size_t)), nleft = nset, h, k;

	if (rcpts == NULL || r == NULL || left == NULL || notify == NULL || orcpt == NULL) {
		for (k = 0; k < nset; k++) {
			res[set[k]].status = QUEUE_DEFERRED;
			snprintf(res[set[k]].reply, sizeof(res[set[k]].reply), "out of memory");
		}
		goto out;
	}
	for (k = 0; k < nset; k++) {
		left[k] = set[k];
		res[set[k]].status = QUEUE_DEFERRED;
		snprintf(res[set[k]].reply, sizeof(res[set[k]].reply), "no server answered");
	}
	for (h = 0; h < nhops && nleft > 0; h++) {
		struct err e = {0};
		size_t still = 0;
		int rc;

		for (k = 0; k < nleft; k++) {
			rcpts[k] = plan != NULL && plan[left[k]].rcpt[0] ? plan[left[k]].rcpt
			                                                 : j->addrs[left[k]];
			notify[k] = m->rcpts[j->idx[left[k]]].dsn_notify;
			orcpt[k] = m->rcpts[j->idx[left[k]]].dsn_orcpt;
		}
		memset(r, 0, nset * sizeof(*r));
		rc = relay_deliver_dsn(j->d->s, &hops[h], m->sender, rcpts, nleft, &dsn, body, len,
		                       r, &e);
		for (k = 0; k < nleft; k++) {
			res[left[k]] = r[k];
			if (rc < 0 && r[k].status == QUEUE_DEFERRED)
				left[still++] = left[k];
		}
		if (rc == 0)
			break;
		log_info(m->id, "%s:%u: %s", hops[h].host, hops[h].port, e.msg);
		nleft = still;
	}
out:
	free(rcpts);
	free(notify);
	free(orcpt);
	free(r);
	free(left);
}

/* Whether k goes in i's transaction: the same first hop, and the same form of the
 * message (in the clear, or encrypted for the same domain's recipients). */
static int plan_same(const struct rcpt_plan *k, const struct rcpt_plan *i)
{
	return !k->done && hop_same(&k->hops[0], &i->hops[0]) && k->encrypt == i->encrypt &&
	       (!i->encrypt || strcasecmp(k->enc.domain, i->enc.domain) == 0);
}

/* Each routed recipient's encryption requirement (encrypt.c): held ones are done. */
static void plan_encryption(struct djob *j, const struct queue_msg *m, struct rcpt_plan *plan,
                            struct relay_rcpt_result *res)
{
	for (size_t i = 0; i < j->n; i++) {
		enum relay_enc_action a;

		if (plan[i].done)
			continue;
		a = relay_enc_decide(j->d, m, plan[i].rcpt[0] ? plan[i].rcpt : j->addrs[i],
		                     &plan[i].enc, &res[i]);
		plan[i].done = a == RELAY_ENC_HOLD;
		plan[i].encrypt = a == RELAY_ENC_ENCRYPT;
	}
}

/* deliver_group, with the message encrypted to every certificate of the set's
 * recipients when they are to have it encrypted. */
static void deliver_set(struct djob *j, const struct queue_msg *m, const char *body, size_t len,
                        const struct rcpt_plan *plan, const size_t *set, size_t nset,
                        struct relay_rcpt_result *res)
{
	const struct rcpt_plan *first = &plan[set[0]];
	STACK_OF(X509) *certs = NULL;
	struct err e = {0};
	char *enc = NULL;
	size_t elen = 0, k;

	if (!first->encrypt) {
		deliver_group(j, m, body, len, first->hops, first->nhops, set, nset, plan, res);
		return;
	}
	certs = sk_X509_new_null();
	for (k = 0; certs != NULL && k < nset; k++)
		for (int c = 0; c < sk_X509_num(plan[set[k]].enc.certs); c++)
			sk_X509_push(certs, sk_X509_value(plan[set[k]].enc.certs, c));
	if (certs == NULL || relay_enc_message(j->d, m, body, len, certs, &enc, &elen, &e) < 0) {
		for (k = 0; k < nset; k++) {
			res[set[k]].status = QUEUE_DEFERRED;
			snprintf(res[set[k]].reply, sizeof(res[set[k]].reply),
			         "4.7.5 cannot encrypt the message now: %s",
			         certs ? e.msg : "out of memory");
		}
	} else {
		log_info(m->id, "encrypted for %zu recipient(s) at %s to %d certificate(s)", nset,
		         first->enc.domain, sk_X509_num(certs));
		deliver_group(j, m, enc, elen, first->hops, first->nhops, set, nset, plan, res);
	}
	sk_X509_free(certs); /* borrowed: the plans own them */
	free(enc);
}

/* Outbound: each recipient's route, then one transaction per distinct first hop. */
static void deliver_outbound(struct djob *j, const struct queue_msg *m, const char *body,
                             size_t len, struct relay_rcpt_result *res)
{
	struct rcpt_plan *plan = calloc(j->n, sizeof(*plan));
	size_t *set = calloc(j->n, sizeof(size_t));
	size_t i, k;
	/* RFC 8689 §5; REQUIRETLS wins over the field */
	int tls_optional = !(m->flags & QUEUE_F_REQUIRETLS) && relay_tls_required_no(body, len);

	if (plan == NULL || set == NULL) {
		for (i = 0; i < j->n; i++) {
			res[i].status = QUEUE_DEFERRED;
			snprintf(res[i].reply, sizeof(res[i].reply), "out of memory");
		}
		goto out;
	}
	for (i = 0; i < j->n; i++) {
		struct err e = {0};

		int rc =
		    relay_route(j->d->resolve, j->d->host_addrs, j->d->s, j->addrs[i], plan[i].hops,
		                SCHED_MAX_HOPS, &plan[i].nhops, plan[i].rcpt, &e);

		for (k = 0; k < plan[i].nhops; k++) /* RFC 8689: TLS all the way, or returned */
			plan[i].hops[k].requiretls = (m->flags & QUEUE_F_REQUIRETLS) != 0;
		if (tls_optional)
			relay_hops_tls_optional(plan[i].hops, plan[i].nhops);

		if (rc < 0 || plan[i].nhops == 0) {
			int permanent = rc < 0 && !err_is_temporary(e.kind);

			res[i].status = permanent ? QUEUE_FAILED : QUEUE_DEFERRED;
			res[i].code = 0;
			snprintf(res[i].reply, sizeof(res[i].reply), "%s routing: %s",
			         permanent ? "5.4.4" : "4.4.3", e.msg[0] ? e.msg : "no route");
			plan[i].done = 1;
		}
	}
	plan_encryption(j, m, plan, res);
	for (i = 0; i < j->n; i++) {
		size_t nset = 0;

		if (plan[i].done)
			continue;
		for (k = i; k < j->n; k++)
			if (plan_same(&plan[k], &plan[i])) {
				set[nset++] = k;
				if (k != i)
					plan[k].done = 1;
			}
		plan[i].done = 1;
		deliver_set(j, m, body, len, plan, set, nset, res);
	}
out:
	for (i = 0; plan != NULL && i < j->n; i++)
		relay_enc_target_clear(&plan[i].enc);
	free(plan);
	free(set);
}

/* Inbound: every recipient to the one next hop, with the DSN parameters. */
static void deliver_inbound(struct djob *j, const struct queue_msg *m, const char *body, size_t len,
                            struct relay_rcpt_result *res)
{
	const char **rcpts = calloc(j->n, sizeof(char *)), **orcpt = calloc(j->n, sizeof(char *));
	unsigned *notify = calloc(j->n, sizeof(unsigned));
	struct relay_dsn_out dsn = {m->dsn_ret, m->dsn_envid, notify, orcpt};
	struct err e = {0};

	for (size_t i = 0; rcpts != NULL && orcpt != NULL && notify != NULL && i < j->n; i++) {
		rcpts[i] = j->addrs[i];
		notify[i] = m->rcpts[j->idx[i]].dsn_notify;
		orcpt[i] = m->rcpts[j->idx[i]].dsn_orcpt;
	}
	if (rcpts == NULL || orcpt == NULL || notify == NULL) {
		for (size_t i = 0; i < j->n; i++) {
			res[i].status = QUEUE_DEFERRED;
			snprintf(res[i].reply, sizeof(res[i].reply), "out of memory");
		}
	} else if (relay_deliver_dsn(j->d->s, &j->d->inbound_hop, m->sender, rcpts, j->n, &dsn,
	                             body, len, res, &e) < 0) {
		log_info(m->id, "next hop %s: %s", j->d->s->inbound_next_hop, e.msg);
	}
	free(rcpts);
	free(orcpt);
	free(notify);
}

static void record_results(struct djob *j, const struct queue_msg *m, const char *body, size_t len,
                           struct relay_rcpt_result *res)
{
	int64_t now = (int64_t)time(NULL);
	int expired = now >= m->arrival + (int64_t)j->d->s->queue_lifetime;
	size_t *failed = calloc(j->n + 1, sizeof(size_t)), nfailed = 0, i;
	struct err e = {0};

	for (i = 0; i < j->n; i++) {
		if (res[i].status == QUEUE_DEFERRED && expired) {
			char why[sizeof(res[i].reply)];

			snprintf(why, sizeof(why), "expired in queue; last reply: %s",
			         res[i].reply);
			snprintf(res[i].reply, sizeof(res[i].reply), "%s", why);
			res[i].status = QUEUE_FAILED;
		}
		if (res[i].status == QUEUE_FAILED && failed != NULL)
			failed[nfailed++] = j->idx[i];
	}
	/* The bounce carries the replies: copy them into the envelope it is built from. */
	if (nfailed > 0) {
		struct queue_msg *mm = queue_msg_dup(m);

		for (i = 0; mm != NULL && i < j->n; i++) {
			char *r = strdup(res[i].reply);

			if (r != NULL) {
				free(mm->rcpts[j->idx[i]].reply);
				mm->rcpts[j->idx[i]].reply = r;
			}
		}
		if (mm == NULL || bounce(j->d, mm, body, len, failed, nfailed) < 0) {
			/* keep them deferred: the bounce is tried again with the next attempt */
			for (i = 0; i < j->n; i++)
				if (res[i].status == QUEUE_FAILED && !expired)
					res[i].status = QUEUE_DEFERRED;
		}
		queue_msg_free(mm);
	}
	free(failed);
	relayd_dsn_notices(j->d, m, body, len, j->idx, res, j->n,
	                   j->inbound && j->d->inbound_hop.proto == RELAY_PROTO_LMTP);
	for (i = 0; i < j->n; i++) {
		log_info(m->id, "to=<%s> status=%s %s", j->addrs[i],
		         queue_status_name(res[i].status), res[i].reply);
		if (queue_mark(j->q, j->id, j->idx[i], res[i].status, res[i].reply, now, &e) < 0)
			log_repeat(&mark_failed, m->id,
			           "cannot record the outcome for <%s>: %s (held in memory)",
			           j->addrs[i], e.msg);
		j->delivered += res[i].status == QUEUE_DELIVERED;
		j->deferred += res[i].status == QUEUE_DEFERRED;
		j->failed += res[i].status == QUEUE_FAILED;
	}
}

/* Expired (or found final after a restart): bounce the failed recipients, then remove. */
static void finish_expired(struct djob *j)
{
	struct err e = {0};
	struct queue_msg *m = queue_msg_get(j->q, j->id, &e);
	char *body = NULL;
	size_t len = 0, *failed, nfailed = 0, i;

	if (m == NULL || queue_body_read(j->q, j->id, &body, &len, &e) < 0) {
		log_err(j->id, "cannot read the expired message: %s", e.msg);
		queue_msg_free(m);
		return;
	}
	relay_defer_give_up(j->d->s, m); /* withdrawn at their peers, never bounced */
	failed = calloc(m->nrcpt + 1, sizeof(size_t));
	for (i = 0; failed != NULL && i < m->nrcpt; i++)
		if (m->rcpts[i].status == QUEUE_FAILED)
			failed[nfailed++] = i;
	if (failed != NULL && bounce(j->d, m, body, len, failed, nfailed) == 0)
		queue_done(j->q, j->id, &e);
	j->failed += (unsigned)nfailed;
	free(failed);
	free(body);
	queue_msg_free(m);
}

static void djob_work(void *arg)
{
	struct djob *j = arg;
	struct err e = {0};
	struct queue_msg *m;
	struct relay_rcpt_result *res;
	char *body = NULL;
	size_t len = 0, i;

	if (j->expired) {
		finish_expired(j);
		return;
	}
	if (queue_paused(j->q)) { /* the spool filled up since it was scheduled: no attempt */
		for (i = 0; i < j->n; i++)
			queue_release(j->q, j->id, j->idx[i]);
		return;
	}
	m = queue_msg_get(j->q, j->id, &e);
	res = calloc(j->n, sizeof(*res));
	if (m == NULL || res == NULL || queue_body_read(j->q, j->id, &body, &len, &e) < 0) {
		log_err(j->id, "cannot read the queued message: %s", e.msg);
		for (i = 0; i < j->n; i++) /* forget it as busy; retried after the backoff */
			queue_mark(j->q, j->id, j->idx[i], QUEUE_DEFERRED,
			           "4.3.0 queue file unreadable", (int64_t)time(NULL), NULL);
		goto out;
	}
	relay_defer_poll(j->d->s, j->q, m, j->idx, j->addrs, &j->n); /* awaiting a decision */
	if (j->n == 0)
		goto out;
	if (j->inbound) {
		deliver_inbound(j, m, body, len, res);
	} else {
		deliver_outbound(j, m, body, len, res);
	}
	record_results(j, m, body, len, res);
out:
	free(res);
	free(body);
	queue_msg_free(m);
}

static void djob_free(struct djob *j)
{
	size_t i;

	for (i = 0; j->addrs != NULL && i < j->n; i++)
		free(j->addrs[i]);
	free(j->addrs);
	free(j->idx);
	free(j);
}

static void djob_done(void *arg)
{
	struct djob *j = arg;
	struct relayd *d = j->d;

	d->deliveries--;
	d->st.delivered += j->delivered;
	d->st.deferred += j->deferred;
	d->st.failed += j->failed;
	djob_free(j);
}

static struct djob *djob_new(struct relayd *d, struct queue *q, const char *id, size_t cap)
{
	struct djob *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->d = d;
	j->q = q;
	j->inbound = q == d->qin;
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->idx = calloc(cap ? cap : 1, sizeof(size_t));
	j->addrs = calloc(cap ? cap : 1, sizeof(char *));
	if (j->idx == NULL || j->addrs == NULL) {
		djob_free(j);
		return NULL;
	}
	return j;
}

static void djob_start(struct djob *j)
{
	struct err e = {0};

	j->d->deliveries++;
	if (relay_pool_run(j->d->dpool, djob_work, djob_done, j, &e) < 0) {
		log_err(j->id, "cannot start a delivery: %s", e.msg);
		j->d->deliveries--;
		djob_free(j);
	}
}

/* One job per message (the due list keeps a message's recipients together). */
static void schedule_queue(struct relayd *d, struct queue *q)
{
	struct queue_due *due = NULL;
	size_t n = 0, i = 0;
	struct err e = {0};

	if (queue_next_due(q, (int64_t)time(NULL), &due, &n, &e) < 0) {
		log_err(NULL, "queue scan: %s", e.msg);
		return;
	}
	while (i < n) {
		size_t k = i;
		struct djob *j;

		while (k < n && strcmp(due[k].id, due[i].id) == 0)
			k++;
		if (q == d->qin && relay_defer_busy(d->defer, due[i].id)) { /* defer.c's accept */
			for (size_t x = i; x < k; x++)
				queue_release(q, due[x].id, due[x].rcpt);
			i = k;
			continue;
		}
		j = djob_new(d, q, due[i].id, k - i);
		if (j != NULL) {
			for (size_t x = i; x < k; x++) {
				if (due[x].expired)
					j->expired = 1;
				j->idx[j->n] = due[x].rcpt;
				j->addrs[j->n] = due[x].addr;
				due[x].addr = NULL;
				j->n++;
			}
			djob_start(j);
		}
		i = k;
	}
	queue_due_free(due, n);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct relayd *d = arg;
	struct timeval second = {1, 0};

	(void)fd;
	(void)what;
	if (d->stopping)
		return;
	schedule_queue(d, d->qin);
	schedule_queue(d, d->qout);
	log_repeat_flush(&mark_failed);
	relay_dcache_sweep();
	evtimer_add(d->sched_ev, &second);
}

/* Messages left final by a crash between their expiry and their bounce. */
static void resume_final(struct relayd *d, struct queue *q)
{
	char **ids = NULL;
	size_t n = 0, i;
	struct err e = {0};

	if (queue_final_ids(q, &ids, &n, &e) < 0)
		return;
	for (i = 0; i < n; i++) {
		struct djob *j = djob_new(d, q, ids[i], 1);

		if (j != NULL) {
			j->expired = 1;
			djob_start(j);
		}
	}
	queue_ids_free(ids, n);
}

int relayd_scheduler_start(struct relayd *d, struct err *e)
{
	struct timeval now = {0, 0};

	d->sched_ev = evtimer_new(d->base, on_tick, d);
	if (d->sched_ev == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "cannot create the scheduler timer");
	resume_final(d, d->qin);
	resume_final(d, d->qout);
	evtimer_add(d->sched_ev, &now);
	return 0;
}

void relayd_scheduler_kick(struct relayd *d)
{
	if (d->sched_ev != NULL && !d->stopping)
		event_active(d->sched_ev, EV_TIMEOUT, 0);
}

void relayd_scheduler_stop(struct relayd *d)
{
	if (d->sched_ev != NULL) {
		event_free(d->sched_ev);
		d->sched_ev = NULL;
	}
}
