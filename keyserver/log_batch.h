/*
 * log_batch.h - how an append (tlog.c) continues a batch of changes
 * (log_batch.c; the batch's life, ks_log_batch_new to _free, is in ks.h).
 */
#ifndef KS_LOG_BATCH_H
#define KS_LOG_BATCH_H

#include "ks.h"
#include "pki/merkle.h"
#include "store.h"

/* The next entry's index, and in *ctx the nodes to read from: the batch's (r->log_batch,
 * when it is d's), else local, after taking the domain's lock (one writer per domain at
 * a time: indexes without gaps or races). */
long long ks_log_batch_start(struct ks_req *r, const struct ks_domain *d,
                             struct ks_log_nodes *local, struct ks_log_nodes **ctx, struct err *e);
/* merkle_node_fn over a batch's nodes: one read once stays known for the batch. */
int ks_log_batch_node(void *arg, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN],
                      struct err *e);
/* Entry seq was appended with these nodes: the batch goes on after it. */
void ks_log_batch_appended(struct ks_log_batch *b, long long seq, const struct merkle_node *nodes,
                           int n);

/* A log entry made ready (its index, leaf, salt and nodes) to be stored by a statement
 * of the caller's that also stores what it records (ks_store_route_put,
 * ks_store_cert_insert: p->row); ks_log_finish once that statement has run. */
struct ks_log_pending {
	struct ks_log_append_row row;
	long long seq;
	struct merkle_node nodes[MERKLE_MAX_APPEND_NODES];
	int nnodes;
	char salt[33], hash_hex[65], seqbuf[24];
	char *leaf;
	struct ks_log_nodes local, *ctx;
};
int ks_log_prepare(struct ks_req *r, const struct ks_domain *d, const struct ks_event *ev,
                   struct ks_log_pending *p, struct err *e);
/* stored: the statement's result (0 stored, -1 not); the batch goes on after a stored
 * entry; frees what prepare made; returns stored. */
int ks_log_finish(struct ks_req *r, struct ks_log_pending *p, int stored);

#endif
