/*
 * log_batch.c - the state of a domain's log inside a batch of changes (group.c):
 * the next index and the nodes read or written so far, so that every append
 * after the batch's first needs no lock, no size query and no node reads, and
 * the point to come back to should a change fail (its savepoint is rolled back).
 */
#include <stdlib.h>
#include <string.h>

#include "log_batch.h"
#include "log_edge.h"
#include "store.h"

/* The log's state inside a batch of changes: the next index (-1: not read yet) and
 * the nodes read or written so far, with the point to come back to should a change
 * fail. */
struct ks_log_batch {
	long long domain_id, size, mark_size, first; /* first: the size at the opening */
	int mark_n;
	struct ks_log_nodes nodes;
	long long head_size; /* the head signed in the batch's transaction: */
	char *head_jws;      /* malloc'd, or NULL */
};

struct ks_log_batch *ks_log_batch_new(long long domain_id)
{
	struct ks_log_batch *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->domain_id = domain_id;
		b->size = b->mark_size = b->first = -1;
	}
	return b;
}

int ks_log_batch_open(struct ks_log_batch *b, struct db *db, struct ks_log_edge *edge,
                      const struct ks_domain *d, struct err *e)
{
	ks_log_nodes_init(&b->nodes, db, d->id);
	ks_log_nodes_edge(&b->nodes, edge);
	b->first = b->size = ks_store_log_batch_open(db, d->id, d->name, e);
	return b->size < 0 ? -1 : 0;
}

struct ks_log_nodes *ks_log_batch_nodes(struct ks_log_batch *b)
{
	return &b->nodes;
}

void ks_log_batch_own(const struct ks_log_batch *b, long long *from, long long *to)
{
	*from = b->first;
	*to = b->size;
}

void ks_log_batch_keep(struct ks_log_batch *b, struct ks_log_edge *edge)
{
	if (b->size >= 0)
		ks_log_edge_keep(edge, &b->nodes);
}

void ks_log_batch_free(struct ks_log_batch *b)
{
	if (b != NULL)
		free(b->head_jws);
	free(b);
}

void ks_log_batch_signed(struct ks_log_batch *b, long long size, const char *jws)
{
	char *copy = strdup(jws);

	if (copy == NULL) /* the answers then read the newest head */
		return;
	free(b->head_jws);
	b->head_jws = copy;
	b->head_size = size;
}

const char *ks_log_batch_head(const struct ks_log_batch *b, long long *size)
{
	*size = b->head_size;
	return b->head_jws;
}

void ks_log_batch_mark(struct ks_log_batch *b)
{
	b->mark_size = b->size;
	b->mark_n = b->nodes.n;
}

void ks_log_batch_undo(struct ks_log_batch *b)
{
	b->size = b->mark_size;
	b->nodes.n = b->mark_n;
}

/* Remember a node in the batch's memo (when there is room: else it is read again). */
static void memo_keep(struct ks_log_nodes *ctx, unsigned level, uint64_t index,
                      const uint8_t hash[MERKLE_HASH_LEN])
{
	for (int i = 0; i < ctx->n; i++)
		if (ctx->memo[i].level == level && ctx->memo[i].index == index)
			return;
	if (ctx->n < KS_LOG_MEMO) {
		ctx->memo[ctx->n] = (struct ks_log_memo){.level = level, .index = index, .have = 1};
		memcpy(ctx->memo[ctx->n++].hash, hash, MERKLE_HASH_LEN);
	}
}

/* merkle_node_fn of a batch: a node read once stays known for the batch's next appends. */
int ks_log_batch_node(void *arg, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN],
                      struct err *e)
{
	if (ks_log_node(arg, level, index, out, e) < 0)
		return -1;
	memo_keep(arg, level, index, out);
	return 0;
}

/* Where the next entry goes, and the nodes to read from: the batch's, after the first
 * append of the batch; else the domain's lock (one writer per domain at a time:
 * sequence numbers without gaps or races) and the log's size. */
long long ks_log_batch_start(struct ks_req *r, const struct ks_domain *d,
                             struct ks_log_nodes *local, struct ks_log_nodes **ctx, struct err *e)
{
	struct ks_log_batch *b = r->log_batch;

	if (b == NULL || b->domain_id != d->id) {
		ks_log_nodes_init(local, r->db, d->id);
		ks_log_nodes_edge(local, r->ks->edge);
		*ctx = local;
		if (ks_store_domain_lock(r->db, d->id, e) < 0)
			return -1;
		return ks_log_size(r->db, d->id, e);
	}
	if (b->size < 0) {
		ks_log_nodes_init(&b->nodes, r->db, d->id);
		ks_log_nodes_edge(&b->nodes, r->ks->edge);
		/* The batch's leader holds the domain's lock already. */
		if ((b->size = ks_log_size(r->db, d->id, e)) < 0)
			return -1;
	}
	b->nodes.db = r->db;
	*ctx = &b->nodes;
	return b->size;
}

void ks_log_batch_appended(struct ks_log_batch *b, long long seq, const struct merkle_node *nodes,
                           int n)
{
	b->size = seq + 1;
	for (int i = 0; i < n; i++)
		memo_keep(&b->nodes, nodes[i].level, nodes[i].index, nodes[i].hash);
}
