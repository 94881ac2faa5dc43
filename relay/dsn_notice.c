/*
 * dsn_notice.c - delivery status notifications (RFC 3461, RFC 3464) to a
 * message's sender, queued on the outbound queue with the null reverse-path
 * and signed like any outbound message when the relay holds a key:
 *
 *  - failures (bounces), unless the recipient's NOTIFY leaves FAILURE out
 *    (NOTIFY=NEVER, or e.g. NOTIFY=SUCCESS): without NOTIFY, as before DSN;
 *  - delays, once, at a recipient's first deferral, when its NOTIFY has DELAY;
 *  - successes, when NOTIFY has SUCCESS and the hop that took the message did
 *    not offer DSN (so it will not report): "relayed" after an SMTP hop,
 *    "delivered" after an LMTP one (RFC 3461 §6.2).  A hop that offers DSN
 *    was given NOTIFY and ORCPT (deliver.c) and reports from there on.
 *
 * Failures are durable before the recipients are marked (a crash repeats a
 * bounce, never loses one); delay and success notices are best effort.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "relayd.h"

struct commit_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done, ok;
};

static void on_bounce_commit(const char *id, int ok, const struct err *e, void *arg)
{
	struct commit_wait *w = arg;

	(void)id;
	(void)e;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	w->ok = ok;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/*
 * Sign a bounce like any outbound message when the signer holds a key for the
 * domain of its From (MAILER-DAEMON@hostname) or a parent of it, so that the
 * sender's verifier sees a signed DSN.  -1 only when signing was possible and
 * failed for now (the bounce is tried again later).
 */
static int sign_bounce(struct relayd *d, const struct queue_msg *m, char **dsn, size_t *len)
{
	const char *dom = d->s->hostname;
	struct err e = {0};
	char *sigs = NULL, *signed_dsn;

	for (; dom != NULL && strchr(dom, '.') != NULL; dom = strchr(dom, '.') + 1) {
		int has = relay_signer_has_domain(d->signer, dom, &e);

		if (has < 0) {
			log_err(m->id, "bounce: signer: %s", e.msg);
			return -1;
		}
		if (has)
			break;
	}
	if (dom == NULL || strchr(dom, '.') == NULL)
		return 0; /* no key for us: sent unsigned */
	if (relay_signer_sign(d->signer, *dsn, *len, dom, NULL, &sigs, &e) < 0) {
		log_err(m->id, "bounce: signing as %s failed: %s", dom, e.msg);
		return e.kind == ERR_INPUT ? 0 : -1;
	}
	if (asprintf(&signed_dsn, "%s%.*s", sigs, (int)*len, *dsn) < 0) {
		free(sigs);
		return -1;
	}
	*len = strlen(signed_dsn);
	free(sigs);
	free(*dsn);
	*dsn = signed_dsn;
	return 0;
}

/*
 * Queue a DSN for the failed recipients of m and wait until it is durable.
 * 0 when there is nothing to bounce (null sender: RFC 5321 §4.5.5) or the
 * bounce is queued, -1 when it could not be (the recipients stay as they
 * are and are bounced on a later pass).
 */
static int report_queue(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                        const size_t *failed, size_t nfailed, enum relay_dsn_action action)
{
	struct commit_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	char id[QUEUE_ID_MAX];
	const char *to[1];
	struct err e = {0};
	size_t dlen;
	char *dsn;

	if (nfailed == 0 || m->sender[0] == '\0')
		return 0;
	dsn = relay_report_build(d->s, m, body, len, failed, nfailed, action, &dlen, &e);
	if (dsn == NULL) {
		log_err(m->id, "cannot build the bounce: %s", e.msg);
		return -1;
	}
	if (sign_bounce(d, m, &dsn, &dlen) < 0) {
		free(dsn);
		return -1;
	}
	to[0] = m->sender;
	if (queue_submit(d->qout, "", to, 1, dsn, dlen, on_bounce_commit, &w, id, &e) < 0) {
		free(dsn);
		log_err(m->id, "cannot queue the bounce: %s", e.msg);
		return -1;
	}
	free(dsn);
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	if (!w.ok)
		return -1;
	if (action == RELAY_DSN_FAILED) {
		log_info(m->id, "bounce %s queued to <%s> for %zu recipient(s)", id, m->sender,
		         nfailed);
		d->st.bounced++;
	} else {
		log_info(m->id, "dsn %s (%s) queued to <%s> for %zu recipient(s)", id,
		         action == RELAY_DSN_DELAYED ? "delayed" : "success", m->sender, nfailed);
	}
	return 0;
}

/* Whether the recipient's NOTIFY asks for a report of this kind. */
static int wanted(const struct queue_rcpt *r, enum relay_dsn_action action)
{
	switch (action) {
	case RELAY_DSN_FAILED:
		return r->dsn_notify == 0 || (r->dsn_notify & DSN_NOTIFY_FAILURE) != 0;
	case RELAY_DSN_DELAYED:
		return (r->dsn_notify & DSN_NOTIFY_DELAY) != 0;
	default:
		return (r->dsn_notify & DSN_NOTIFY_SUCCESS) != 0;
	}
}

int relayd_dsn_report(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                      const size_t *idx, size_t n, enum relay_dsn_action action)
{
	size_t *want = calloc(n + 1, sizeof(size_t)), k = 0;
	int rc;

	if (want == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (wanted(&m->rcpts[idx[i]], action))
			want[k++] = idx[i];
	if (k < n)
		log_info(m->id, "%zu recipient(s) asked for no %s report (NOTIFY)", n - k,
		         action == RELAY_DSN_FAILED ? "failure" : "such");
	rc = k == 0 ? 0 : report_queue(d, m, body, len, want, k, action);
	free(want);
	return rc;
}

/* One kind of notice for the recipients of res that qualify; best effort. */
static void notice(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                   const size_t *idx, const struct relay_rcpt_result *res, size_t n,
                   enum relay_dsn_action action)
{
	struct queue_msg *mm = NULL;
	size_t *sel = calloc(n + 1, sizeof(size_t)), k = 0;

	for (size_t i = 0; sel != NULL && i < n; i++) {
		const struct queue_rcpt *r = &m->rcpts[idx[i]];
		int ok = action == RELAY_DSN_DELAYED
		             ? res[i].status == QUEUE_DEFERRED && r->attempts == 0
		             : res[i].status == QUEUE_DELIVERED && !res[i].dsn_passed;

		if (ok && wanted(r, action))
			sel[k++] = i;
	}
	if (k == 0 || (mm = queue_msg_dup(m)) == NULL)
		goto out;
	/* the report shows this attempt's replies */
	for (size_t j = 0; j < k; j++) {
		char *reply = strdup(res[sel[j]].reply);

		if (reply != NULL) {
			free(mm->rcpts[idx[sel[j]]].reply);
			mm->rcpts[idx[sel[j]]].reply = reply;
		}
		sel[j] = idx[sel[j]];
	}
	if (report_queue(d, mm, body, len, sel, k, action) < 0)
		log_err(m->id, "the %s notice could not be queued",
		        action == RELAY_DSN_DELAYED ? "delay" : "success");
out:
	queue_msg_free(mm);
	free(sel);
}

void relayd_dsn_notices(struct relayd *d, const struct queue_msg *m, const char *body, size_t len,
                        const size_t *idx, const struct relay_rcpt_result *res, size_t n, int lmtp)
{
	if (m->sender[0] == '\0')
		return; /* RFC 5321 §4.5.5 */
	notice(d, m, body, len, idx, res, n, RELAY_DSN_DELAYED);
	notice(d, m, body, len, idx, res, n, lmtp ? RELAY_DSN_DELIVERED : RELAY_DSN_RELAYED);
}
