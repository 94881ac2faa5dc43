/*
 * defer_client.h - ANCHOR-DEFER on the sending side (PROTOCOL.md §12.10): the recipients
 * awaiting a peer's decision (defer_offer.h) are asked about when due, and the decision is
 * recorded without ever bouncing.
 */
#ifndef ANCHOR_RELAY_DEFER_CLIENT_H
#define ANCHOR_RELAY_DEFER_CLIENT_H

#include "relay.h"

/*
 * scheduler.c: the recipients of a delivery job (addrs[i], index idx[i] in m) that await a
 * decision are asked about and recorded in q here (delivered, failed without a bounce, or
 * deferred again); they leave the arrays, *n shrinks.  Blocking: run on a worker.
 */
void relay_defer_poll(const struct relay_settings *s, struct queue *q, const struct queue_msg *m,
                      size_t *idx, char **addrs, size_t *n);

/*
 * scheduler.c, for a message that outlived queue_lifetime: each recipient the queue failed
 * while it awaited a decision is withdrawn at its peer (DEFER-WITHDRAW, once) and its reply
 * in m becomes the outcome ("ANCHOR-DEFER WITHDRAWN", or the decision that came first).
 * Blocking: run on a worker.
 */
void relay_defer_give_up(const struct relay_settings *s, struct queue_msg *m);

/* 1 when a failed recipient's reply is an ANCHOR-DEFER outcome: between anchored relays
 * nothing is ever bounced. */
int relay_defer_no_bounce(const char *reply);

#endif
