/*
 * log_edge.h - the log nodes a process has committed, kept per domain across
 * transactions (log_edge.c): the right edge of each domain's tree, from which
 * the next append, the next head's root and most proofs are computed without
 * reading log_nodes again.
 */
#ifndef KS_LOG_EDGE_H
#define KS_LOG_EDGE_H

#include <stdint.h>

struct ks_log_edge;
struct ks_log_nodes;

struct ks_log_edge *ks_log_edge_new(void);
void ks_log_edge_free(struct ks_log_edge *edge);
/* Node (level, index) of domain_id into out: 1 when kept, 0 when not (edge NULL: 0). */
int ks_log_edge_get(struct ks_log_edge *edge, long long domain_id, unsigned level, uint64_t index,
                    uint8_t out[32]);
/* Keep every node known to ctx (its memo), once the transaction that wrote or read them
 * has committed: only committed nodes, which never change, are kept. */
void ks_log_edge_keep(struct ks_log_edge *edge, const struct ks_log_nodes *ctx);

#endif
