/*
 * cmd_log.h - revocation and the transparency log on the command line
 * (PROTOCOL.md §9, §10): `key revoke`, `audit`, `feed`, `webhook`, and the
 * checks every lookup makes of the log proofs and the tree head
 * (lib/tlog_client), with the newest head of each domain remembered in a
 * state file (--state FILE, ANCHOR_STATE, default ~/.anchor/heads.json).
 */
#ifndef ANCHORCTL_CMD_LOG_H
#define ANCHORCTL_CMD_LOG_H

#include <jansson.h>

#include "client.h"
#include "pki/crypto.h"
#include "ctl.h"
#include "pki/tlog_client.h"

#define CTL_LOG_MAX_PINS 8

int ctl_cmd_key_revoke(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_audit(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_feed(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_webhook_add(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_webhook_delete(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* What a relying party trusts of a domain: its object from the key server and
 * the pins its heads and certificates must chain to. */
struct ctl_trust {
	json_t *object; /* GET /v1/domains/{d} */
	char pins[CTL_LOG_MAX_PINS][CRYPTO_PIN_MAX];
	const char *pinv[CTL_LOG_MAX_PINS];
	int npins;
};

/* Fetch the domain object; the pins are pin (when not NULL) or the object's. */
int ctl_trust_load(const struct ctl_client *c, const char *domain, const char *pin,
                   struct ctl_trust *t, struct err *e);
void ctl_trust_free(struct ctl_trust *t);

/* The head store: state, else $ANCHOR_STATE, else ~/.anchor/heads.json (memory
 * only when HOME is unset). */
struct tlog_store *ctl_state_open(const char *state, struct err *e);

/* tlog_consistency_fn over a struct ctl_client (ctx). */
int ctl_log_fetch_consistency(void *ctx, const char *domain, uint64_t first, uint64_t second,
                              uint8_t (*proof)[MERKLE_HASH_LEN], int *n, struct err *e);

/*
 * The relying party's checks of a lookup answer holding certs (an array of
 * certificate objects, all of one domain) and "tree_head": the head verifies
 * against the domain's pins, each certificate chains to the domain's root and
 * is included in the head, and the head is consistent with the one remembered
 * for the domain (which it then replaces when newer).  Fills *head.
 */
int ctl_log_check_certs(const struct ctl_client *c, const char *pin, const char *state,
                        const json_t *answer, const json_t *certs, struct tlog_head *head,
                        struct err *e);

/* The same for a domain alone: its newest head (GET .../log/head); *head->size
 * is 0 for a domain whose log is empty. */
int ctl_log_check_domain(const struct ctl_client *c, const char *pin, const char *state,
                         const char *domain, struct tlog_head *head, struct err *e);

/* Print a fork's evidence (the remembered head and the one seen) to stderr. */
void ctl_log_print_fork(const char *state, const struct tlog_head *seen);

#endif
