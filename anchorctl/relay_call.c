/*
 * relay_call.c - one call to the relay's control API (PROTOCOL.md §12.6) as its admin
 * (bearer token) or as a user with a request signed by the user's own key (--key),
 * for every `anchorctl relay` command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_call.h"
#include "sign.h"

void ctl_relay_call_clear(struct relay_call *rc)
{
	explicit_bzero(rc->token, sizeof(rc->token));
}

int ctl_relay_setup(const struct ctl *ctl, const struct ctl_cmd *cmd, struct relay_call *rc,
                    int *status)
{
	struct err e = {0};

	if (ctl_service(ctl, cmd, "ANCHOR_RELAY_URL", "relay", &rc->client, status) < 0)
		return -1;
	if ((rc->cert_path != NULL || rc->chain_path != NULL) && rc->key_path == NULL) {
		*status = ctl_usage(cmd, "--cert and --chain go with --key");
		return -1;
	}
	if (rc->key_path != NULL) {
		if (ctl->token_file != NULL) {
			*status = ctl_usage(cmd, "give --key or --token-file, not both");
			return -1;
		}
		return 0;
	}
	if (ctl_token(ctl, "ANCHOR_RELAY_TOKEN", NULL, "relay admin", rc->token, &e) < 0) {
		*status = ctl_fail(&e);
		return -1;
	}
	rc->client.token = rc->token;
	return 0;
}

/* ---- signed requests ---- */

/* The JWS body of a user-signed request (PROTOCOL.md §12): binds method, path, body, time. */
static json_t *signed_request(const struct relay_call *rc, const char *address, const char *method,
                              const char *path, json_t *body, struct err *e)
{
	struct ctl_signer signer;
	json_t *payload = NULL, *out = NULL;
	char when[32], *jws = NULL;

	if (ctl_signer_load(&signer, rc->key_path, rc->cert_path, rc->chain_path, e) < 0)
		return NULL;
	if (address == NULL) /* a request about what the signer itself sent */
		address = signer.name;
	ctl_rfc3339_now(when);
	payload =
	    json_pack("{s:s, s:s, s:s, s:s, s:O?, s:s}", "type", "anchor-relay-request", "address",
	              address, "method", method, "path", path, "body", body, "issued", when);
	if (payload == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	else
		jws = ctl_signer_sign(&signer, payload, "anchor-relay-request+jws", e);
	if (jws != NULL && (out = json_loads(jws, 0, NULL)) == NULL)
		err_set(e, ERR_INTERNAL, "internal", "the signed request is not JSON");
	ctl_signer_clear(&signer);
	json_decref(payload);
	free(jws);
	return out;
}

/*
 * One call: path_plain is the path as the relay sees it once decoded (what is
 * signed), path_url the same escaped for the URL.
 */
int ctl_relay_do(const struct relay_call *rc, const char *address, const char *method,
                 const char *path_plain, const char *path_url, json_t *body, json_t **answer,
                 struct err *e)
{
	json_t *sent = body;
	int ret;

	if (rc->key_path != NULL) {
		sent = signed_request(rc, address, method, path_plain, body, e);
		if (sent == NULL)
			return -1;
	}
	ret = ctl_client_call(&rc->client, method, path_url, sent, answer, e);
	if (sent != body)
		json_decref(sent);
	return ret;
}
