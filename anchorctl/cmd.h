/*
 * cmd.h - helpers shared by the cmd_*.c files: argument parsing with the
 * common options, name arguments, token sources, the client for the server,
 * key+CSR making and saving an issued certificate with its chain.
 */
#ifndef ANCHORCTL_CMD_H
#define ANCHORCTL_CMD_H

#include <jansson.h>

#include "args.h"
#include "pki/cert.h"
#include "client.h"
#include "ctl.h"
#include "files.h"

/* The global options, accepted after the command words too. */
#define CTL_COMMON_OPTS(c)                                                                         \
	{"-s", &(c)->server, NULL}, {"--cacert", &(c)->cacert, NULL}, {"-c", &(c)->conf, NULL},    \
	    {"--token-file", &(c)->token_file, NULL}, {"--resolve", &(c)->resolve, NULL},          \
	{                                                                                          \
		"--json", NULL, &(c)->json                                                         \
	}

/*
 * Parse a command's arguments (argv[0] is the command word) and check that
 * min..max positional arguments are left.  Returns 0 to go on, or -1 with
 * *status set (help printed: CTL_OK; usage error printed: CTL_USAGE).
 */
int ctl_parse(const struct ctl_cmd *cmd, const struct ctl_opt *opts, int argc, char **argv, int min,
              int max, struct ctl_args *a, int *status);

/* Check a domain / address argument and make it canonical in place (case, NFC, A-labels
 * when they fit: cmd_common.c); a usage error otherwise. */
int ctl_arg_domain(const struct ctl_cmd *cmd, char *arg, int *status);
int ctl_arg_address(const struct ctl_cmd *cmd, char *arg, int *status);
/* The canonical form of an address argument into canon (CTL_ADDR_CANON octets), whatever
 * its length: for the commands that name files and requests after it (a U-label address
 * gives its A-label file name and request). */
#define CTL_ADDR_CANON 256
int ctl_arg_address_canon(const struct ctl_cmd *cmd, const char *arg, char *canon, int *status);

/* Fill c for the key server; a usage error when no server is configured. */
int ctl_server(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *token,
               struct ctl_client *c, int *status);

/*
 * Fill c for another service (the relay's control API, a reputation service):
 * -s URL, else the variable env (which wins over ANCHOR_SERVER, the key
 * server's); a usage error naming what when neither is set.
 */
int ctl_service(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *env, const char *what,
                struct ctl_client *c, int *status);

/*
 * The token for an operator or admin call: --token-file, else the variable
 * env, else (when fallback is not NULL) the file fallback if it exists.
 */
int ctl_token(const struct ctl *ctl, const char *env, const char *fallback, const char *what,
              char out[CTL_TOKEN_MAX], struct err *e);

/* Fill c for an admin call on domain: the key server with the domain's admin token
 * (ctl_token with ANCHOR_ADMIN_TOKEN, else <domain>.admin.token), kept in token. */
int ctl_admin_client(const struct ctl *ctl, const struct ctl_cmd *cmd, const char *domain,
                     char token[CTL_TOKEN_MAX], struct ctl_client *c, int *status);

/* "/v1/<a>/<escaped b>[<rest>]" as a malloc'd string, or NULL. */
char *ctl_api_path(const char *a, const char *b, const char *rest);

/*
 * Make a key with alg (NULL: Ed25519) and a CSR for name in dir, as
 * <base>.key (0600) and <base>.csr, refusing to overwrite either.  On
 * success returns 0 and, when csr_pem is not NULL, the CSR's PEM there.
 */
int ctl_make_key_csr(const char *dir, const char *base, enum cert_kind kind, const char *name,
                     const char *alg, char **csr_pem, const char **alg_name, struct err *e);

/*
 * Check an issuance answer (certificate object plus "chain": [issuer,
 * root]): the chain verifies and, when key_path names an existing key, the
 * certificate holds that key.  Then write <base>.pem and <base>.chain.pem.
 */
int ctl_save_issued(const char *dir, const char *base, const json_t *answer, const char *key_path,
                    struct err *e);

/*
 * Keep the revocation secret of the answer (PROTOCOL.md §9) in <base>.revoke,
 * 0600 (replacing an older one), and take it out of the answer so that
 * nothing prints it.  *path_out (malloc'd) names the file, or stays NULL when
 * the answer has no secret.
 */
int ctl_save_revocation_secret(const char *dir, const char *base, json_t *answer, char **path_out,
                               struct err *e);

/* An encryption certificate for key (kept by the caller) as address's device, by
 * token (cmd_enc.c): challenge, answer, enroll; *answer the issuance answer. */
int ctl_enc_enroll_key(const struct ctl *ctl, const struct ctl_client *client, const char *address,
                       const char *device, EVP_PKEY *key, const char *token, json_t **answer,
                       struct err *e);
/* group key create|rotate|fetch <group> (cmd_group_key.c, PROTOCOL.md §5.5). */
int ctl_cmd_group_key(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* Print what ctl_save_issued wrote, with the certificate's key id and dates. */
void ctl_print_issued(const char *dir, const char *base, const json_t *answer);

/* `token issue --from FILE` (cmd_bulk.c): many enrollment tokens, resumable. */
int ctl_bulk_token_issue(struct ctl *ctl, const struct ctl_cmd *cmd, const char *from,
                         const char *out, const char *domain, const char *ttl);
/* The relay's control API (cmd_relay.c): lists and complaints. */
int ctl_cmd_relay_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_relay_status(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_relay_withdraw(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
/* trust|block|subscribe add|remove: the list is the command's second word. */
int ctl_cmd_relay_entry(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_relay_complain(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_relay_sign(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_relay_fetch(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* A reputation service (cmd_report.c): signed reports and delisting requests. */
int ctl_cmd_report(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_delist_request(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);
int ctl_cmd_delist_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

#endif
