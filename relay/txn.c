/*
 * txn.c - what both sides share about a transaction: the envelope kept per
 * connection, trace fields, and queueing a message so that "250" is sent only
 * once every part of it is durable (the queue's commit callback runs on the
 * commit thread and hands the answer back to the loop).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "relayd.h"

#define RELAYD_MAX_PARTS 4

void relayd_rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* ------------------------------------------------------------------ durable acknowledgement */

struct batch {
	struct relayd_conn *c;
	struct queue *q;
	pthread_mutex_t lock;
	size_t left; /* callbacks still to come, plus one while submitting */
	int failed;
	struct err why;
	size_t nids;
	char ids[RELAYD_MAX_PARTS][QUEUE_ID_MAX];
};

static void batch_answer(void *arg)
{
	struct batch *b = arg;
	struct relayd_conn *c = b->c;
	struct smtp_reply r;
	char list[RELAYD_MAX_PARTS * QUEUE_ID_MAX + 8] = "";
	size_t i;

	if (b->failed) {
		for (i = 0; i < b->nids; i++) /* none of it kept: the client will retry */
			queue_done(b->q, b->ids[i], NULL);
		log_err(NULL, "conn %lu: cannot queue the message: %s", c->id, b->why.msg);
		relayd_reply_set(&r, 451, "4.3.0", "Cannot queue the message now, try again later");
		c->d->st.refused++;
	} else {
		size_t used = 0;

		for (i = 0; i < b->nids && used < sizeof(list); i++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
			                         i > 0 ? "," : "", b->ids[i]);
		relayd_reply_set(&r, 250, "2.0.0", "Ok: queued as %s", list);
		c->d->st.accepted++;
		relayd_scheduler_kick(c->d);
	}
	relayd_conn_decide(c, &r);
	relayd_conn_unref(c);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Account for one finished part (or the submitter's guard); the last one answers. */
static void batch_release(struct batch *b, int ok, const struct err *e)
{
	int last;

	pthread_mutex_lock(&b->lock);
	if (!ok && !b->failed) {
		b->failed = 1;
		if (e != NULL)
			b->why = *e;
	}
	last = --b->left == 0;
	pthread_mutex_unlock(&b->lock);
	if (last && relay_pool_post(b->c->d->pool, batch_answer, b, NULL) < 0)
		log_err(NULL, "conn %lu: out of memory answering a commit", b->c->id);
}

static void on_commit(const char *id, int ok, const struct err *e, void *arg)
{
	(void)id;
	batch_release(arg, ok, e);
}

static char *concat(const char *head, const char *body, size_t len, size_t *outlen)
{
	size_t hl = strlen(head);
	char *m = malloc(hl + len + 1);

	if (m == NULL)
		return NULL;
	memcpy(m, head, hl);
	memcpy(m + hl, body, len);
	m[hl + len] = '\0';
	*outlen = hl + len;
	return m;
}

/* The connection's reference passes to the batch, which answers the session. */
int relayd_queue_parts(struct relayd_conn *c, struct queue *q, const struct relayd_part *parts,
                       size_t nparts, struct err *e)
{
	struct batch *b;
	size_t i;

	if (nparts == 0 || nparts > RELAYD_MAX_PARTS)
		return err_set(e, ERR_INTERNAL, "internal", "bad number of parts %zu", nparts);
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return err_set(e, ERR_INTERNAL, "nomem", "out of memory");
	b->c = c;
	b->q = q;
	b->left = 1;
	pthread_mutex_init(&b->lock, NULL);
	for (i = 0; i < nparts; i++) {
		struct err qe = {0};
		size_t mlen;
		char *m = concat(parts[i].head, parts[i].body, parts[i].len, &mlen);
		int rc;

		pthread_mutex_lock(&b->lock);
		b->left++;
		pthread_mutex_unlock(&b->lock);
		struct queue_dsn dsn = {.ret = c->dsn.ret,
		                        .envid = c->dsn.envid[0] ? c->dsn.envid : NULL,
		                        .notify = parts[i].notify,
		                        .orcpt = parts[i].orcpt};

		rc = m == NULL ? err_set(&qe, ERR_INTERNAL, "nomem", "out of memory")
		               : queue_submit_dsn(q, c->requiretls ? QUEUE_F_REQUIRETLS : 0, &dsn,
		                                  parts[i].sender, parts[i].rcpts, parts[i].nrcpt,
		                                  m, mlen, on_commit, b, b->ids[b->nids], &qe);
		free(m);
		if (rc < 0) {
			batch_release(b, 0, &qe);
			break;
		}
		b->nids++;
	}
	batch_release(b, 1, NULL);
	return 0;
}

/* ------------------------------------------------------------------ the message job */

static void msg_job_done(void *arg)
{
	struct relayd_msg_job *j = arg;

	if (!j->queued) {
		if (j->r.code >= 400)
			j->c->d->st.refused++;
		relayd_conn_decide(j->c, &j->r);
		relayd_conn_unref(j->c);
	}
	free(j);
}

int relayd_msg_job_start(struct relayd_conn *c, const char *msg, size_t len, relay_work_fn work,
                         struct smtp_reply *r)
{
	struct relayd_msg_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		relayd_reply_set(r, 451, "4.3.0", "Out of memory, try again later");
		return SMTP_DECIDED;
	}
	j->c = c;
	j->msg = msg;
	j->len = len;
	relayd_conn_ref(c);
	if (relay_pool_run(c->d->pool, work, msg_job_done, j, NULL) < 0) {
		relayd_conn_unref(c);
		free(j);
		relayd_reply_set(r, 451, "4.3.0", "Out of memory, try again later");
		return SMTP_DECIDED;
	}
	return SMTP_PENDING;
}
