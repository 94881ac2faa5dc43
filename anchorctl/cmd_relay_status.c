/*
 * cmd_relay_status.c - anchorctl relay status <queue-id>: each recipient of a message in
 * the relay's queue and its state (PROTOCOL.md §12.10): sent, deferred-awaiting-decision
 * with the peer's retry window, accepted, refused and why, withdrawn, or the queue's own
 * pending/deferred/failed.  As the relay's admin (GET /v1/queue/{id}).
 * anchorctl relay withdraw <queue-id> <rcpt>: give that recipient up while it awaits a
 * decision (POST /v1/queue/{id}/withdraw); the relay sends DEFER-WITHDRAW at once.
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

/* The relay admin's client (token kept in token) and the queue id argument checked. */
static int queue_setup(struct ctl *ctl, const struct ctl_cmd *cmd, const struct ctl_args *a,
                       struct ctl_client *client, char token[CTL_TOKEN_MAX], int *status)
{
	struct err e = {0};

	if (ctl_service(ctl, cmd, "ANCHOR_RELAY_URL", "relay", client, status) < 0)
		return -1;
	if (strlen(a->pos[0]) == 0 || strlen(a->pos[0]) > 32 ||
	    strspn(a->pos[0], "0123456789abcdef") != strlen(a->pos[0])) {
		*status = ctl_usage(cmd, "a queue id is up to 32 lowercase hex digits, not '%s'",
		                    a->pos[0]);
		return -1;
	}
	if (ctl_token(ctl, "ANCHOR_RELAY_TOKEN", NULL, "relay admin", token, &e) < 0) {
		*status = ctl_fail(&e);
		return -1;
	}
	client->token = token;
	return 0;
}

/* One call on /v1/queue/<id><rest>; the answer printed by print (or as JSON). */
static int queue_call(struct ctl *ctl, struct ctl_client *client, const char *method,
                      const char *id, const char *rest, json_t *body, void (*print)(const json_t *))
{
	struct err e = {0};
	char *url = ctl_api_path("queue", id, rest);
	json_t *answer = NULL;
	int status = CTL_OK;

	if (url == NULL) {
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
		status = ctl_fail(&e);
	} else if (ctl_client_call(client, method, url, body, &answer, &e) < 0) {
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
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client;
	struct ctl_args a;
	char token[CTL_TOKEN_MAX] = {0};
	int status = CTL_FAIL;

	memset(&client, 0, sizeof(client));
	if (ctl_parse(cmd, opts, argc, argv, 1, 1, &a, &status) == 0 &&
	    queue_setup(ctl, cmd, &a, &client, token, &status) == 0)
		status = queue_call(ctl, &client, "GET", a.pos[0], NULL, NULL, print_status);
	explicit_bzero(token, sizeof(token));
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
	const struct ctl_opt opts[] = {CTL_COMMON_OPTS(ctl), {NULL, NULL, NULL}};
	struct ctl_client client;
	struct ctl_args a;
	char token[CTL_TOKEN_MAX] = {0};
	json_t *body = NULL;
	int status = CTL_FAIL;

	memset(&client, 0, sizeof(client));
	if (ctl_parse(cmd, opts, argc, argv, 2, 2, &a, &status) < 0)
		goto out;
	if (a.pos[1][0] == '\0' || strpbrk(a.pos[1], " <>\r\n\t") != NULL) {
		status = ctl_usage(cmd, "'%s' is no recipient address", a.pos[1]);
		goto out;
	}
	if (queue_setup(ctl, cmd, &a, &client, token, &status) < 0)
		goto out;
	if ((body = json_pack("{s:s}", "rcpt", a.pos[1])) == NULL) {
		struct err e = {0};

		err_set(&e, ERR_INPUT, "bad_address", "the address is not UTF-8");
		status = ctl_fail(&e);
		goto out;
	}
	status = queue_call(ctl, &client, "POST", a.pos[0], "/withdraw", body, print_withdrawn);
out:
	explicit_bzero(token, sizeof(token));
	json_decref(body);
	return status;
}
