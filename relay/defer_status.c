/*
 * defer_status.c - GET /v1/queue/{id} on the control API (PROTOCOL.md §12.6, §12.10): each
 * recipient of a queued message and its state as the sending user sees it, including the
 * ANCHOR-DEFER states (awaiting a decision with its window, accepted, refused and why).
 * POST /v1/queue/{id}/withdraw {"rcpt": address} withdraws one recipient awaiting a decision:
 * its mark becomes the withdrawal's, due at once, and the delivery side (defer_client.c)
 * sends DEFER-WITHDRAW.  For the admin, or for the user who sent the message (a request
 * signed by its key; another's message is "not queued" to it); control.c has checked the
 * caller and passes its verdict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"

#include "defer.h"
#include "defer_offer.h"

/* The user's words for one recipient: state, and the reason or window where there is one. */
static json_t *rcpt_json(const struct queue_rcpt *r)
{
	const char *reply = r->reply, *state, *p;
	long mn = 0, mx = 0;
	char *end = NULL;
	int awaiting = strncmp(reply, RELAY_DEFER_MARK, strlen(RELAY_DEFER_MARK)) == 0 &&
	               (p = strchr(reply + strlen(RELAY_DEFER_MARK), ' ')) != NULL;

	if (awaiting) { /* "<token> <min> <max> ...": the window */
		mn = strtol(p, &end, 10);
		mx = strtol(end, &end, 10);
		awaiting = *end == ' ' && mn > 0 && mx >= mn;
	}

	if (r->status == QUEUE_DEFERRED && awaiting)
		state = "deferred-awaiting-decision";
	else if (r->status == QUEUE_DELIVERED)
		state = strncmp(reply, "ANCHOR-DEFER accepted", 21) == 0 ? "accepted" : "sent";
	else if (r->status == QUEUE_FAILED && strncmp(reply, "ANCHOR-DEFER refused", 20) == 0)
		state = "refused";
	else if (r->status == QUEUE_DEFERRED &&
	         strncmp(reply, RELAY_DEFER_WITHDRAW_MARK, strlen(RELAY_DEFER_WITHDRAW_MARK)) == 0)
		state = "withdrawing";
	else if (r->status == QUEUE_FAILED && strcmp(reply, "ANCHOR-DEFER WITHDRAWN") == 0)
		state = "withdrawn";
	else
		state = queue_status_name(r->status);
	if (strcmp(state, "deferred-awaiting-decision") == 0)
		return json_pack("{s:s, s:s, s:{s:i, s:i}, s:I}", "rcpt", r->addr, "state", state,
		                 "window", "min", (int)mn, "max", (int)mx, "next_attempt",
		                 (json_int_t)r->next_attempt);
	return json_pack("{s:s, s:s, s:s}", "rcpt", r->addr, "state", state, "reply", reply);
}

/* The message id from the queue that holds it (*which, when not NULL); NULL when none. */
static struct queue_msg *find_msg(struct queue *qin, struct queue *qout, const char *id,
                                  struct queue **which)
{
	struct err e = {0};
	struct queue_msg *m = NULL;
	struct queue *q[2] = {qout, qin};

	if (strlen(id) >= QUEUE_ID_MAX || strspn(id, "0123456789abcdef") != strlen(id))
		return NULL;
	for (size_t i = 0; m == NULL && i < 2; i++)
		if (q[i] != NULL && (m = queue_msg_get(q[i], id, &e)) != NULL && which != NULL)
			*which = q[i];
	return m;
}

static void not_queued(struct http_response *resp)
{
	http_reply_errorf(resp, ERR_NOTFOUND, "not_queued",
	                  "No such message in the queue (unknown, or every recipient is "
	                  "done and it was removed).");
}

/* The message id, if queued and the caller's to see; NULL otherwise. */
static struct queue_msg *find_own_msg(struct queue *qin, struct queue *qout, const char *id,
                                      const struct relay_queue_caller *qc, struct queue **q)
{
	struct queue_msg *m = find_msg(qin, qout, id, q);

	if (m != NULL && qc->owner != NULL && strcasecmp(m->sender, qc->owner) != 0) {
		queue_msg_free(m);
		return NULL;
	}
	return m;
}

void relay_queue_status_route(struct queue *qin, struct queue *qout, const struct http_request *req,
                              struct http_response *resp, const struct relay_queue_caller *qc,
                              const struct err *denied)
{
	struct queue_msg *m;
	json_t *rcpts;

	resp->route = "queue_message";
	if (!http_method_in(req->method, "GET")) {
		http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
		                  "This resource accepts GET.");
		resp->status = 405;
		http_add_header(resp, "Allow", "GET");
		return;
	}
	if (denied != NULL) {
		http_reply_error(resp, denied);
		return;
	}
	if ((m = find_own_msg(qin, qout, req->seg[2], qc, NULL)) == NULL) {
		not_queued(resp);
		return;
	}
	rcpts = json_array();
	for (size_t i = 0; rcpts != NULL && i < m->nrcpt; i++)
		json_array_append_new(rcpts, rcpt_json(&m->rcpts[i]));
	http_reply_json(
	    resp, 200,
	    json_pack("{s:s, s:s, s:o}", "id", m->id, "sender", m->sender, "rcpts", rcpts));
	queue_msg_free(m);
}

/* The recipient rcpt of m withdrawn: its awaiting mark becomes the withdrawal's, due now. */
static int withdraw_rcpt(struct queue *q, const struct queue_msg *m, const char *rcpt,
                         struct err *e)
{
	const struct queue_rcpt *r = NULL;
	char reply[QUEUE_REPLY_MAX];
	int64_t now = (int64_t)time(NULL);
	size_t k;

	for (k = 0; r == NULL && k < m->nrcpt; k++)
		if (strcasecmp(m->rcpts[k].addr, rcpt) == 0)
			r = &m->rcpts[k];
	if (r == NULL)
		return err_set(e, ERR_NOTFOUND, "no_such_rcpt", "The message has no recipient <%s>",
		               rcpt);
	if (r->status != QUEUE_DEFERRED ||
	    strncmp(r->reply, RELAY_DEFER_MARK, strlen(RELAY_DEFER_MARK)) != 0)
		return err_set(
		    e, ERR_CONFLICT, "not_awaiting", "<%s> is not awaiting a decision (%s)", rcpt,
		    r->status == QUEUE_DEFERRED && strncmp(r->reply, RELAY_DEFER_WITHDRAW_MARK,
		                                           strlen(RELAY_DEFER_WITHDRAW_MARK)) == 0
		        ? "withdrawn already"
		        : queue_status_name(r->status));
	if (snprintf(reply, sizeof(reply), RELAY_DEFER_WITHDRAW_MARK "%s",
	             r->reply + strlen(RELAY_DEFER_MARK)) >= (int)sizeof(reply))
		return err_set(e, ERR_INTERNAL, "internal", "the recipient's state is too long");
	return queue_mark_at(q, m->id, k - 1, QUEUE_DEFERRED, reply, now, now, e);
}

void relay_queue_withdraw_route(struct queue *qin, struct queue *qout,
                                const struct http_request *req, struct http_response *resp,
                                const struct relay_queue_caller *qc, const struct err *denied)
{
	struct err e = {0};
	struct queue *q = NULL;
	struct queue_msg *m = NULL;
	const char *rcpt = NULL;

	resp->route = "queue_withdraw";
	if (!http_method_in(req->method, "POST")) {
		http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
		                  "This resource accepts POST.");
		resp->status = 405;
		http_add_header(resp, "Allow", "POST");
		return;
	}
	if (denied != NULL) {
		http_reply_error(resp, denied);
		return;
	}
	if (qc->body == NULL || (rcpt = http_json_str(qc->body, "rcpt", 1, &e)) == NULL) {
		if (e.kind == ERR_NONE)
			err_set(&e, ERR_INPUT, "bad_request", "the body is {\"rcpt\": address}");
		http_reply_error(resp, &e);
		return;
	}
	if ((m = find_own_msg(qin, qout, req->seg[2], qc, &q)) == NULL) {
		not_queued(resp);
		return;
	}
	if (withdraw_rcpt(q, m, rcpt, &e) < 0) {
		http_reply_error(resp, &e);
	} else {
		log_info(m->id, "control: <%s> withdrawn: DEFER-WITHDRAW at the next attempt",
		         rcpt);
		http_reply_json(resp, 200,
		                json_pack("{s:s, s:s, s:s}", "id", m->id, "rcpt", rcpt, "state",
		                          "withdrawing"));
	}
	queue_msg_free(m);
}
