/*
 * defer_offer.h - ANCHOR-DEFER in the delivery client (PROTOCOL.md §12.10): a recipient a
 * peer answered "DEFERRED <token> <min> <max>" stays in the queue, deferred, its last reply
 * "ANCHOR-DEFER <token> <min> <max> <hop> <pin|-> <tls name|-> <asked>" (asked: when it was
 * offered or last asked about, unix seconds); defer_client.c asks about
 * it when it is due instead of sending the message again.  A withdrawal (the control API's
 * POST /v1/queue/{id}/withdraw) turns the mark into "ANCHOR-DEFER-WITHDRAW ...", due at
 * once: defer_client.c then sends DEFER-WITHDRAW instead of DEFER-STATUS.
 */
#ifndef ANCHOR_RELAY_DEFER_OFFER_H
#define ANCHOR_RELAY_DEFER_OFFER_H

#include "relay.h"

#define RELAY_DEFER_MARK "ANCHOR-DEFER " /* the queue reply of a recipient awaiting a decision */
/* ... and of one the sending user withdrew (the same fields): DEFER-WITHDRAW at once */
#define RELAY_DEFER_WITHDRAW_MARK "ANCHOR-DEFER-WITHDRAW "

/* defer_offer.c: after a message's final 2xx from hop, when rep holds an offer line for
 * rcpt, res becomes the awaiting state (QUEUE_DEFERRED, the reply above). */
void relay_defer_offer_result(const struct relay_hop *hop, const struct relay_smtp_reply *rep,
                              const char *rcpt, struct relay_rcpt_result *res);

/* deliver.c: one command on a new session to hop (EHLO, STARTTLS as for a message, the
 * command, QUIT); its reply in *rep.  -1 (e) when the session failed. */
int relay_deliver_command(const struct relay_settings *s, const struct relay_hop *hop,
                          const char *line, struct relay_smtp_reply *rep, struct err *e);

#endif
