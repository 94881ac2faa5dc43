/*
 * defer_status.c - GET /v1/queue/{id} on the control API (PROTOCOL.md §12.6, §12.10): each
 * recipient of a queued message and its state as the sending user sees it, including the
 * ANCHOR-DEFER states (awaiting a decision with its window, accepted, refused and why).
 * Admin only; control.c has checked it and passes its verdict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void relay_queue_status_route(struct queue *qin, struct queue *qout, const struct http_request *req,
                              struct http_response *resp, const struct err *denied)
{
	struct err e = {0};
	struct queue_msg *m = NULL;
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
	if (strlen(req->seg[2]) >= QUEUE_ID_MAX ||
	    strspn(req->seg[2], "0123456789abcdef") != strlen(req->seg[2]) ||
	    ((qout == NULL || (m = queue_msg_get(qout, req->seg[2], &e)) == NULL) &&
	     (qin == NULL || (m = queue_msg_get(qin, req->seg[2], &e)) == NULL))) {
		http_reply_errorf(resp, ERR_NOTFOUND, "not_queued",
		                  "No such message in the queue (unknown, or every recipient is "
		                  "done and it was removed).");
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
