/*
 * relay_call.h - one call to the relay's control API (relay_call.c), as the relay's
 * admin or as a user signing with its own key.
 */
#ifndef ANCHORCTL_RELAY_CALL_H
#define ANCHORCTL_RELAY_CALL_H

#include "cmd.h"

/* How to reach the relay and who we are. */
struct relay_call {
	struct ctl_client client;
	char token[CTL_TOKEN_MAX];
	const char *key_path, *cert_path, *chain_path;
};

#define RELAY_OPTS(rc)                                                                             \
	{"--key", &(rc)->key_path, NULL}, {"--cert", &(rc)->cert_path, NULL},                      \
	{                                                                                          \
		"--chain", &(rc)->chain_path, NULL                                                 \
	}

/* The relay's URL, and the admin token unless --key signs the request. */
int ctl_relay_setup(const struct ctl *ctl, const struct ctl_cmd *cmd, struct relay_call *rc,
                    int *status);
void ctl_relay_call_clear(struct relay_call *rc);

/*
 * One call: path_plain is the path as the relay sees it once decoded (what is
 * signed), path_url the same escaped for the URL.  With --key the request is signed
 * as address, or as the signing certificate's own address when address is NULL.
 */
int ctl_relay_do(const struct relay_call *rc, const char *address, const char *method,
                 const char *path_plain, const char *path_url, json_t *body, json_t **answer,
                 struct err *e);

#endif
