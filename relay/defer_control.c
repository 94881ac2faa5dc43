/*
 * defer_control.c - the operator's side of ANCHOR-DEFER on the control API (PROTOCOL.md
 * §12.6, §12.10): GET /v1/decisions lists the held recipients, POST
 * /v1/decisions/{token} {"decision": "accept"|"refuse", "reason": "..."} decides one.
 * Admin only (the bearer token); control.c has checked it and passes its verdict.
 */
#include <string.h>

#include "core/log.h"
#include "defer.h"

static void reply_status(struct http_response *resp, const char *token,
                         const struct defer_status *st)
{
	http_reply_json(resp, 200,
	                json_pack("{s:s, s:s, s:s}", "token", token, "state",
	                          defer_state_name(st->state), "reason", st->reason));
}

static void decide(struct relay_defer *df, const struct http_request *req,
                   struct http_response *resp)
{
	struct err e = {0};
	struct defer_status st;
	const char *what = NULL, *reason = NULL;
	const char *token = req->seg[2];

	if (req->json == NULL || (what = http_json_str(req->json, "decision", 1, &e)) == NULL ||
	    (reason = json_object_get(req->json, "reason") != NULL
	                  ? http_json_str(req->json, "reason", 1, &e)
	                  : "refused by the recipient's domain") == NULL) {
		if (e.kind == ERR_NONE)
			err_set(
			    &e, ERR_INPUT, "bad_request",
			    "the body is {\"decision\": \"accept\"|\"refuse\", \"reason\": text}");
	} else if (strcmp(what, "accept") != 0 && strcmp(what, "refuse") != 0) {
		err_set(&e, ERR_INPUT, "bad_decision", "decision must be accept or refuse");
	} else if (strlen(reason) >= DEFER_REASON_MAX || strpbrk(reason, "\r\n") != NULL) {
		err_set(&e, ERR_INPUT, "bad_reason", "reason must be one line of at most %d octets",
		        DEFER_REASON_MAX - 1);
	} else if (relay_defer_decide(df, token, strcmp(what, "accept") == 0, reason, &st, &e) ==
	           0) {
		log_info(req->reqid, "control: decision %s on a held message", what);
		reply_status(resp, token, &st);
		return;
	}
	http_reply_error(resp, &e);
}

void relay_defer_route(struct relay_defer *df, const struct http_request *req,
                       struct http_response *resp, const struct err *denied)
{
	const char *allow = req->nseg == 2 ? "GET" : "POST";
	struct err e = {0};
	json_t *list;

	resp->route = req->nseg == 2 ? "decisions" : "decision";
	if (!http_method_in(req->method, allow)) {
		http_reply_errorf(resp, ERR_INPUT, "method_not_allowed",
		                  "This resource accepts %s.", allow);
		resp->status = 405;
		http_add_header(resp, "Allow", "%s", allow);
	} else if (denied != NULL) {
		http_reply_error(resp, denied);
	} else if (df == NULL) {
		http_reply_errorf(resp, ERR_NOTFOUND, "not_found", "No such resource.");
	} else if (req->nseg == 3) {
		decide(df, req, resp);
	} else if ((list = relay_defer_list_json(df, &e)) == NULL) {
		http_reply_error(resp, &e);
	} else {
		http_reply_json(resp, 200, json_pack("{s:o}", "held", list));
	}
}
