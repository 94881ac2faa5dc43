/*
 * cmd_relay_status.c - anchorctl relay status <queue-id>: each recipient of a message in
 * the relay's queue and its state (PROTOCOL.md §12.10): sent, deferred-awaiting-decision
 * with the peer's retry window, accepted, refused and why, withdrawn, or the queue's own
 * pending/deferred/failed.  As the relay's admin (GET /v1/queue/{id}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "output.h"

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

int ctl_cmd_relay_status(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client;
	struct ctl_args a;
	struct err e = {0};
	char token[CTL_TOKEN_MAX] = {0}, *url = NULL;
	json_t *answer = NULL;
	int status = CTL_FAIL;

	memset(&client, 0, sizeof(client));
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) < 0 ||
	    ctl_service(ctl, cmd, "ANCHOR_RELAY_URL", "relay", &client, &status) < 0)
		goto out;
	if (strlen(a.pos[0]) == 0 || strlen(a.pos[0]) > 32 ||
	    strspn(a.pos[0], "0123456789abcdef") != strlen(a.pos[0])) {
		status = ctl_usage(cmd, "a queue id is up to 32 lowercase hex digits, not '%s'",
		                   a.pos[0]);
		goto out;
	}
	if (ctl_token(ctl, "ANCHOR_RELAY_TOKEN", NULL, "relay admin", token, &e) < 0) {
		status = ctl_fail(&e);
		goto out;
	}
	client.token = token;
	if ((url = ctl_api_path("queue", a.pos[0], NULL)) == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_client_call(&client, "GET", url, NULL, &answer, &e) < 0) {
		status = ctl_fail(&e);
	} else {
		if (ctl->json)
			ctl_out_json(stdout, answer);
		else
			print_status(answer);
		status = CTL_OK;
	}
out:
	explicit_bzero(token, sizeof(token));
	json_decref(answer);
	free(url);
	return status;
}
