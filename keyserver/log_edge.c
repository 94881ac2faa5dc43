/*
 * log_edge.c - committed log nodes kept in memory, per domain.
 *
 * A perfect subtree's hash never changes once its transaction has committed (entries
 * are only ever appended; an erasure clears a salt and a name, not a hash).  So a
 * process may keep the nodes it committed itself, or read inside a transaction that
 * then committed, and answer later reads from them: the next append needs the newest
 * node of each level whose bit its index has set, a head's root the newest of each
 * level of its size, a consistency or inclusion proof near the right edge mostly the
 * same (a proof of an entry a few batches old needs a few older ones at the low levels).  The
 * newest EDGE_KEEP nodes of each level are kept for each of EDGE_SLOTS domains (a domain takes over
 * the slot of another: the cache only saves reads). Nodes of a transaction that rolled back, or
 * whose commit failed, are never kept.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log_edge.h"
#include "store.h"

#define EDGE_SLOTS 32
#define EDGE_LEVELS 64
#define EDGE_KEEP 8

struct edge_node {
	int have;
	uint64_t index;
	uint8_t hash[32];
};

struct edge_slot {
	long long domain_id; /* 0: unused */
	struct edge_node n[EDGE_LEVELS][EDGE_KEEP];
};

struct ks_log_edge {
	pthread_mutex_t mu;
	struct edge_slot slot[EDGE_SLOTS];
};

struct ks_log_edge *ks_log_edge_new(void)
{
	struct ks_log_edge *edge = calloc(1, sizeof(*edge));

	if (edge != NULL && pthread_mutex_init(&edge->mu, NULL) != 0) {
		free(edge);
		return NULL;
	}
	return edge;
}

void ks_log_edge_free(struct ks_log_edge *edge)
{
	if (edge == NULL)
		return;
	pthread_mutex_destroy(&edge->mu);
	free(edge);
}

static struct edge_slot *slot_of(struct ks_log_edge *edge, long long domain_id)
{
	return &edge->slot[(unsigned long long)domain_id % EDGE_SLOTS];
}

int ks_log_edge_get(struct ks_log_edge *edge, long long domain_id, unsigned level, uint64_t index,
                    uint8_t out[32])
{
	struct edge_slot *s;
	int found = 0;

	if (edge == NULL || level >= EDGE_LEVELS)
		return 0;
	pthread_mutex_lock(&edge->mu);
	s = slot_of(edge, domain_id);
	for (int k = 0; s->domain_id == domain_id && k < EDGE_KEEP && !found; k++)
		if (s->n[level][k].have && s->n[level][k].index == index) {
			memcpy(out, s->n[level][k].hash, 32);
			found = 1;
		}
	pthread_mutex_unlock(&edge->mu);
	return found;
}

/* Keep one node in its level's row, in place of the oldest there when it is newer. */
static void keep_one(struct edge_slot *s, unsigned level, uint64_t index, const uint8_t hash[32])
{
	struct edge_node *row = s->n[level], *oldest = &row[0];

	for (int k = 0; k < EDGE_KEEP; k++) {
		if (row[k].have && row[k].index == index)
			return;
		if (!row[k].have || (oldest->have && row[k].index < oldest->index))
			oldest = &row[k];
	}
	if (oldest->have && oldest->index > index)
		return;
	oldest->have = 1;
	oldest->index = index;
	memcpy(oldest->hash, hash, 32);
}

void ks_log_edge_keep(struct ks_log_edge *edge, const struct ks_log_nodes *ctx)
{
	long long domain_id;
	struct edge_slot *s;

	if (edge == NULL || ctx == NULL)
		return;
	domain_id = strtoll(ctx->domain_id, NULL, 10);
	pthread_mutex_lock(&edge->mu);
	s = slot_of(edge, domain_id);
	if (s->domain_id != domain_id) {
		memset(s, 0, sizeof(*s));
		s->domain_id = domain_id;
	}
	for (int i = 0; i < ctx->n; i++)
		if (ctx->memo[i].have && ctx->memo[i].level < EDGE_LEVELS)
			keep_one(s, ctx->memo[i].level, ctx->memo[i].index, ctx->memo[i].hash);
	pthread_mutex_unlock(&edge->mu);
}
