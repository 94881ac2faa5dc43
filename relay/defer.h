/*
 * defer.h - ANCHOR-DEFER on the receiving side (PROTOCOL.md §12.10): deferred
 * disposition for authenticated anchored peers.
 *
 *   defer.c        the store of held messages (state_dir/defer), the relay secret,
 *                  decisions, withdrawals, expiry
 *   defer_smtp.c   the SMTP side: who is a peer (its TLS client certificate), the EHLO
 *                  keyword, holding recipients at the end of DATA, DEFER-STATUS and
 *                  DEFER-WITHDRAW
 *
 * A held recipient is one file "state_dir/defer/<id>" (id: 32 hex digits): a header
 * ("anchor-defer 1", state, peer, sender, rcpt, created, expires, reason) and, while it
 * is PENDING, the message.  Every change is written to a temporary file, fsync'd and
 * renamed (directory fsync'd) before it is answered.  A record in a final state keeps
 * only its header, so that a replayed withdrawal or a late status query gets a clear
 * answer, and is removed a day after its hold ended.
 */
#ifndef ANCHOR_RELAY_DEFER_H
#define ANCHOR_RELAY_DEFER_H

#include <jansson.h>

#include "http/http.h"
#include "mail/defer_proto.h"
#include "relayd.h"

struct relay_defer;

/* The store under s->state_dir; accepted messages are queued in qin.  Creates the
 * directory and the secret (32 random octets, 0600) on first use. */
struct relay_defer *relay_defer_open(const struct relay_settings *s, struct queue *qin,
                                     struct err *e);
void relay_defer_close(struct relay_defer *df); /* NULL is fine */
/* held_sweep.c, on a worker: every held message past defer_hold_time is deleted (its
 * record EXPIRED), tombstones a day past it go.  The held messages deleted; NULL: 0. */
unsigned relay_defer_sweep(struct relay_defer *df);
/* scheduler.c: 1 while qin's message queue_id is an accept being queued (not delivered
 * before its record says so: a crash meanwhile is finished at start, never repeated). */
int relay_defer_busy(struct relay_defer *df, const char *queue_id);

/* Hold head + body (len octets) for rcpt from peer, durably: the offer (token and window)
 * in *o. */
int relay_defer_hold(struct relay_defer *df, const char *peer, const char *sender, const char *rcpt,
                     const char *head, const char *body, size_t len, struct defer_offer *o,
                     struct err *e);

/*
 * A peer's DEFER-STATUS / DEFER-WITHDRAW on token: 0 with *st (the state after it), or
 * -1 with e: ERR_NOTFOUND "bad_token" (forged, unknown or removed), ERR_FORBIDDEN
 * "other_peer" (issued to another peer), ERR_CONFLICT "withdrawn" (withdrawn already:
 * a replay) or "decided" (no longer pending).
 */
int relay_defer_query(struct relay_defer *df, const char *peer, enum defer_op op, const char *token,
                      struct defer_status *st, struct err *e);

/* The operator's decision (control API): accept queues the message for its recipient,
 * refuse drops it with reason.  Errors as relay_defer_query (no peer check). */
int relay_defer_decide(struct relay_defer *df, const char *token, int accept, const char *reason,
                       struct defer_status *st, struct err *e);

/* Every record as a JSON array of {id, state, peer, sender, rcpt, expires, reason}; NULL
 * on an error. */
json_t *relay_defer_list_json(struct relay_defer *df, struct err *e);

/* ---- defer_control.c ---- */

/* GET /v1/decisions and POST /v1/decisions/{token} on the control API; denied (not NULL)
 * is answered instead, after the method check. */
void relay_defer_route(struct relay_defer *df, const struct http_request *req,
                       struct http_response *resp, const struct err *denied);

/* defer_status.c: GET /v1/queue/{id}, the recipients' states of a queued message. */
/* Who asks about the queue: owner NULL for the admin, else the signer's address (only
 * messages it sent are found); body the request's effective body (a signed one's
 * payload "body"). */
struct relay_queue_caller {
	const char *owner;
	json_t *body;
};
void relay_queue_status_route(struct queue *qin, struct queue *qout, const struct http_request *req,
                              struct http_response *resp, const struct relay_queue_caller *qc,
                              const struct err *denied);

/* defer_status.c: POST /v1/queue/{id}/withdraw {"rcpt": address}: that recipient, awaiting
 * a decision, is withdrawn at its peer at once (200); 404 not_queued / no_such_rcpt, 409
 * not_awaiting. */
void relay_queue_withdraw_route(struct queue *qin, struct queue *qout,
                                const struct http_request *req, struct http_response *resp,
                                const struct relay_queue_caller *qc, const struct err *denied);

/* ---- defer_smtp.c ---- */

/*
 * At the end of DATA, for one recipient (rcpt as sent, deliver_to as it would be queued):
 * 1 when it is held (its reply line appended to *lines), 0 when the policy lets it through
 * (no peer, or neither defer_recipients nor defer_tiers names it), -1 on an error.
 */
int relayd_defer_try(struct relayd_conn *c, const char *rcpt, const char *deliver_to,
                     const char *tier, const char *head, const char *body, size_t len, char **lines,
                     struct err *e);
/* DEFER-STATUS and DEFER-WITHDRAW from a peer (relayd_peer_on_ext, peers.c): 1 with r
 * filled, 0 when it is neither (r untouched). */
int relayd_defer_on_command(void *ctx, struct smtp_session *s, const char *line, size_t len,
                            struct smtp_reply *r);

#endif
