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

#endif
