/*
 * cmd_relay_status.c - anchorctl relay status <queue-id>: each recipient of a message in
 * the relay's queue and its state (PROTOCOL.md §12.10): sent, deferred-awaiting-decision
 * with the peer's retry window, accepted, refused and why, withdrawn, or the queue's own
 * pending/deferred/failed.  As the relay's admin (GET /v1/queue/{id}), or as the user
 * who sent the message with a request signed by its own key (--key).
 * anchorctl relay withdraw <queue-id> <rcpt>: give that recipient up while it awaits a
 * decision (POST /v1/queue/{id}/withdraw); the relay sends DEFER-WITHDRAW at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "output.h"
#include "relay_call.h"

static void print_status(const json_t *answer)
{
	const json_t *rcpts = json_object_get(answer, "rcpts"), *r;
	size_t i;

	printf("message %s from <%s>\n", json_string_value(json_object_get(answer, "id")),
	       json_string_value(json_object_get(answer, "sender")));
	json_array_foreach(rcpts, i, r)
	{
		const json_t *w = json_object_get(r, "window");
		const char *reply = json_string_value(json_object_get(r, "reply"));

		printf("  %-40s %s", json_string_value(json_object_get(r, "rcpt")),
		       json_string_value(json_object_get(r, "state")));
		if (w != NULL)
			printf(" (asks every %lld-%lld s)",
			       (long long)json_integer_value(json_object_get(w, "min")),
			       (long long)json_integer_value(json_object_get(w, "max")));
		else if (reply != NULL && reply[0] != '\0')
			printf(": %s", reply);
		printf("\n");
	}
}

/* The queue id argument checked, and how to call the relay (admin or --key). */
static int queue_setup(struct ctl *ctl, const struct ctl_cmd *cmd, const struct ctl_args *a,
                       struct relay_call *rc, int *status)
{
	if (strlen(a->pos[0]) == 0 || strlen(a->pos[0]) > 32 ||
	    strspn(a->pos[0], "0123456789abcdef") != strlen(a->pos[0])) {
		*status = ctl_usage(cmd, "a queue id is up to 32 lowercase hex digits, not '%s'",
		                    a->pos[0]);
		return -1;
	}
	return ctl_relay_setup(ctl, cmd, rc, status);
}

/* One call on /v1/queue/<id><rest>; the answer printed by print (or as JSON).  The id is
 * hex, so the path signed and the URL are the same. */
static int queue_call(struct ctl *ctl, const struct relay_call *rc, const char *method,
                      const char *id, const char *rest, json_t *body, void (*print)(const json_t *))
{
	struct err e = {0};
	char *url = ctl_api_path("queue", id, rest);
	json_t *answer = NULL;
	int status = CTL_OK;

	if (url == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_relay_do(rc, NULL, method, url, url, body, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else if (ctl->json) {
		ctl_out_json(stdout, answer);
	} else {
		print(answer);
	}
	json_decref(answer);
	free(url);
	return status;
}

int ctl_cmd_relay_status(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc), CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_args a;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) == 0 &&
	    queue_setup(ctl, cmd, &a, &rc, &status) == 0)
		status = queue_call(ctl, &rc, "GET", a.pos[0], NULL, NULL, print_status);
	ctl_relay_call_clear(&rc);
	return status;
}

static void print_withdrawn(const json_t *answer)
{
	printf("%s: <%s> %s: the receiving relay is told DEFER-WITHDRAW at once\n",
	       json_string_value(json_object_get(answer, "id")),
	       json_string_value(json_object_get(answer, "rcpt")),
	       json_string_value(json_object_get(answer, "state")));
}

int ctl_cmd_relay_withdraw(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct relay_call rc = {0};
	const struct ctl_opt opts[] = {RELAY_OPTS(&rc), CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_args a;
	json_t *body = NULL;
	int status = CTL_FAIL;

	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0)
		goto out;
	if (a.pos[1][0] == '\0' || strpbrk(a.pos[1], " <>\r\n\t") != NULL) {
		status = ctl_usage(cmd, "'%s' is no recipient address", a.pos[1]);
		goto out;
	}
	if (queue_setup(ctl, cmd, &a, &rc, &status) < 0)
		goto out;
	if ((body = json_pack("{s:s}", "rcpt", a.pos[1])) == NULL) {
		struct err e = {0};

		err_set(&e, ERR_INPUT, "bad_address", "the address is not UTF-8");
		status = ctl_fail(&e);
		goto out;
	}
	status = queue_call(ctl, &rc, "POST", a.pos[0], "/withdraw", body, print_withdrawn);
out:
	ctl_relay_call_clear(&rc);
	json_decref(body);
	return status;
}
