/*
 * group.c - group commit of tree heads inside one process.
 *
 * Every change appends its log entries and commits them; then its writer needs
 * a signed head that covers them before it may answer.  Signing costs a round
 * trip to the signer, a check of the newest head and a commit, so one head is
 * signed per round, for the newest size, and every writer that committed
 * before the round began is answered by it.  A writer arriving while a round
 * runs cannot be covered by it (the round may have read the log's size before
 * the writer's commit): it waits for that round to end, and the first such
 * writer to wake runs the next round for all who wait.  So at most one round
 * per domain runs in a process at a time, and the rounds grow with the load.
 *
 * Across processes and nodes the signer's heads lock (publish.c) serialises
 * the rounds; a round that finds the log already covered signs nothing.
 *
 * Changes (ks_group_change) are batched the same way one level down: writers
 * queue their change; whoever finds no batch running leads the next one and
 * runs every queued change in one transaction, on its own connection, so that
 * a batch costs one commit (one WAL flush) and one signed head however many
 * changes it holds.  The next batch may start as soon as this one commits,
 * while its head is being signed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "ks.h"
#include "store.h"

#define GROUP_SLOTS 64

struct group_slot {
	long long domain_id; /* 0: unused */
	int running;
	unsigned long long started, finished; /* rounds of this domain */
	int rc;                               /* of the last finished round */
	long long size;
	struct err err;
	struct ks_change *queue, **tail; /* changes waiting for a batch */
};

struct ks_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct group_slot slot[GROUP_SLOTS];
};

struct ks_group *ks_group_new(void)
{
	struct ks_group *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return NULL;
	}
	if (pthread_cond_init(&g->cv, NULL) != 0) {
		pthread_mutex_destroy(&g->mu);
		free(g);
		return NULL;
	}
	return g;
}

void ks_group_free(struct ks_group *g)
{
	if (g == NULL)
		return;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* The slot of domain_id, taken over from another domain once that one is idle
 * (a domain's counters mean nothing for another).  Called with g->mu held. */
static struct group_slot *slot_for(struct ks_group *g, long long domain_id)
{
	struct group_slot *s = &g->slot[(unsigned long long)domain_id % GROUP_SLOTS];

	while (s->domain_id != domain_id && (s->running || s->queue != NULL))
		pthread_cond_wait(&g->cv, &g->mu);
	if (s->domain_id != domain_id) {
		memset(s, 0, sizeof(*s));
		s->domain_id = domain_id;
		s->tail = &s->queue;
	}
	return s;
}

int ks_group_run(struct ks_group *g, long long domain_id, ks_group_fn fn, void *arg,
                 long long *size, struct err *e)
{
	struct group_slot *s;
	unsigned long long need;
	int rc;

	pthread_mutex_lock(&g->mu);
	s = slot_for(g, domain_id);
	/* Our commit precedes this call: any round that starts from now on covers it. */
	need = s->started + 1;
	while (s->domain_id == domain_id && s->finished < need && s->running)
		pthread_cond_wait(&g->cv, &g->mu);
	if (s->domain_id == domain_id && s->finished >= need) {
		rc = s->rc;
		*size = s->size;
		if (rc < 0)
			*e = s->err;
		pthread_mutex_unlock(&g->mu);
		return rc;
	}
	/* Nobody runs a round that covers us: we lead the next one. */
	s = slot_for(g, domain_id);
	s->running = 1;
	s->started++;
	pthread_mutex_unlock(&g->mu);

	rc = fn(arg, size, e);

	pthread_mutex_lock(&g->mu);
	s->running = 0;
	s->finished = s->started;
	s->rc = rc;
	s->size = *size;
	memset(&s->err, 0, sizeof(s->err));
	if (rc < 0)
		s->err = *e;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return rc;
}

/* ---- batches of changes ---- */

static void batch_fail(struct ks_change *list, const struct err *e)
{
	for (struct ks_change *c = list; c != NULL; c = c->next)
		if (c->rc == 0) {
			c->rc = -1;
			c->err = *e;
		}
}

/* Each change behind its own savepoint, so that one failing undoes only itself; a change
 * alone in its batch needs none (a round trip): 1 when it failed, and the caller rolls
 * the whole transaction back. */
static int batch_changes(struct ks_req *lead, struct ks_change *list, struct ks_log_batch *b,
                         struct err *e)
{
	int alone = list->next == NULL;

	for (struct ks_change *c = list; c != NULL; c = c->next) {
		struct ks_req rr = *c->r;

		rr.db = lead->db;
		rr.log_batch = b;
		ks_log_batch_mark(b);
		if (!alone && db_savepoint(lead->db, "change", e) < 0)
			return -1;
		memset(&c->err, 0, sizeof(c->err));
		c->rc = c->fn(&rr, c->arg, &c->err);
		if (c->rc < 0) {
			if (c->err.kind == ERR_NONE)
				err_set(&c->err, ERR_INTERNAL, "internal", "out of memory");
			if (alone)
				return 1;
			if (db_savepoint_rollback(lead->db, "change", e) < 0)
				return -1;
			ks_log_batch_undo(b);
		}
	}
	return 0;
}

/* Once committed: the head signed with the batch, for each change it holds. */
static void batch_head(struct ks_change *list, const struct ks_log_batch *b)
{
	long long size;
	const char *jws = ks_log_batch_head(b, &size);

	for (struct ks_change *c = list; jws != NULL && c != NULL; c = c->next)
		if (c->rc == 0 && (c->head_jws = strdup(jws)) != NULL)
			c->head_size = size;
}

/* The leader's part up to the commit: every change's rc set, 0 once committed. */
static int batch_commit(struct ks_req *lead, const struct ks_domain *d, struct ks_change *list,
                        const struct ks_batch_ops *ops)
{
	struct ks_log_batch *b = ks_log_batch_new(d->id);
	struct err e = {0}, why = {0};
	int rc = -1, failed = 0;

	if (b == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	lead->log_batch = b;
	if (db_begin(lead->db, &e) < 0)
		goto out;
	if (ks_log_batch_open(b, lead->db, lead->ks->edge, d, &e) < 0 ||
	    (failed = batch_changes(lead, list, b, &e)) < 0)
		goto fail;
	if (failed > 0) /* its only change failed (with its own error): nothing to commit */
		goto fail;
	/* The head in the same transaction (the signer), with no savepoint of its own (a round
	 * trip per batch): a refusal (ERR_FORBIDDEN, a log the signer will not sign over) is
	 * decided before the head round writes anything, so the changes commit without a head
	 * and the next publish tries again; any other failure may have aborted the
	 * transaction, and the batch fails whole: none of it is acknowledged. */
	if (ops->before_commit != NULL && ops->before_commit(ops->ctx, lead, d, &why) < 0) {
		if (why.kind != ERR_FORBIDDEN) {
			e = why;
			goto fail;
		}
		log_warn(NULL, "the tree head of %s is not signed yet: %s (%s)", d->name, why.msg,
		         why.code);
	}
	if (db_commit(lead->db, &e) < 0)
		goto fail;
	ks_log_batch_keep(b, lead->ks->edge); /* committed: the right edge for the next batch */
	batch_head(list, b);
	rc = 0;
	goto out;
fail:
	db_rollback(lead->db);
out:
	if (rc < 0)
		batch_fail(list, &e);
	lead->log_batch = NULL;
	ks_log_batch_free(b);
	return rc;
}

/* Take up to KS_GROUP_BATCH_MAX changes off the queue.  Called with g->mu held. */
static struct ks_change *batch_take(struct group_slot *s)
{
	struct ks_change *list = s->queue, *c = list;

	for (int n = 1; c != NULL && n < KS_GROUP_BATCH_MAX; n++)
		c = c->next;
	if (c == NULL || c->next == NULL) {
		s->queue = NULL;
		s->tail = &s->queue;
	} else {
		s->queue = c->next;
		c->next = NULL;
	}
	return list;
}

static void batch_lead(struct ks_group *g, struct group_slot *s, const struct ks_domain *d,
                       struct ks_req *lead, const struct ks_batch_ops *ops)
{
	struct ks_change *list = batch_take(s), *next;
	int committed;

	s->running = 1;
	pthread_mutex_unlock(&g->mu);
	committed = batch_commit(lead, d, list, ops) == 0;
	pthread_mutex_lock(&g->mu);
	/* The next batch may begin while this one's head is signed. */
	s->running = 0;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	if (committed && ops->after_commit != NULL)
		ops->after_commit(ops->ctx, lead, d);
	pthread_mutex_lock(&g->mu);
	for (struct ks_change *c = list; c != NULL; c = next) {
		next = c->next;
		c->done = 1;
	}
	pthread_cond_broadcast(&g->cv);
}

int ks_group_change(struct ks_group *g, const struct ks_domain *d, struct ks_change *c,
                    const struct ks_batch_ops *ops, struct err *e)
{
	struct group_slot *s;

	c->next = NULL;
	c->done = 0;
	c->rc = 0;
	c->head_jws = NULL;
	if (g == NULL) {
		if (batch_commit(c->r, d, c, ops) == 0 && ops->after_commit != NULL)
			ops->after_commit(ops->ctx, c->r, d);
	} else {
		pthread_mutex_lock(&g->mu);
		s = slot_for(g, d->id);
		*s->tail = c;
		s->tail = &c->next;
		while (!c->done) {
			/* Not done and not queued: a batch holding it runs (the slot may
			 * meanwhile serve another domain). */
			if (s->domain_id == d->id && !s->running && s->queue != NULL)
				batch_lead(g, s, d, c->r, ops);
			else
				pthread_cond_wait(&g->cv, &g->mu);
		}
		pthread_mutex_unlock(&g->mu);
	}
	if (c->rc < 0)
		*e = c->err;
	return c->rc;
}
