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
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ks.h"

#define GROUP_SLOTS 64

struct group_slot {
	long long domain_id; /* 0: unused */
	int running;
	unsigned long long started, finished; /* rounds of this domain */
	int rc;                               /* of the last finished round */
	long long size;
	struct err err;
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

	while (s->domain_id != domain_id && s->running)
		pthread_cond_wait(&g->cv, &g->mu);
	if (s->domain_id != domain_id) {
		memset(s, 0, sizeof(*s));
		s->domain_id = domain_id;
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
