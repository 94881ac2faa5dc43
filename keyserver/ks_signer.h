/*
 * ks_signer.h - the key server's signer process, from the inside (signer.c,
 * issue.c, seal.c, publish.c).
 *
 * The signer alone reads the KEK and unseals issuer keys.  It trusts the
 * HTTPS process for nothing: every request is checked against the
 * database through the signer's own connections, and the rows that
 * authorise an issuance (the domain's certificates, its admin tokens, its
 * enrollment tokens) carry a seal, an HMAC under a key derived from the KEK,
 * that only the signer can make.  A row written by anyone else (a
 * compromised HTTPS process holds the database password too) has no valid
 * seal and authorises nothing.  See PROTOCOL.md §13.
 */
#ifndef KS_SIGNER_H
#define KS_SIGNER_H

#include <stdint.h>

#include <openssl/x509.h>

#include "pki/crypto.h"
#include "pki/keywrap.h"
#include "ks.h"

#define KS_SEAL_HEX 65 /* HMAC-SHA256 in hex, with NUL */

struct ks_signer {
	struct ks ks; /* cfg and the signer's own database pool */
	uint8_t kek[KEYWRAP_KEK_LEN];
	uint8_t auth_key[32];        /* HMAC key of the seals, derived from the KEK */
	struct ks_signer_memo *memo; /* signer_memo.c */
};

/* A domain opened for signing: its row, checked against its seal, and its key. */
struct ks_signer_domain {
	struct ks_domain *d;
	X509 *root, *issuer;
	EVP_PKEY *key;
	char issuer_fpr[CRYPTO_HEX256_LEN]; /* SHA-256 of the issuer certificate's DER */
	char root_fpr[CRYPTO_HEX256_LEN];
};

/* seal.c */
/* HMAC-SHA256(auth_key, parts joined by NUL bytes), hex. */
void ks_seal(const struct ks_signer *sg, const char *const *parts, int n, char out[KS_SEAL_HEX]);
/* Constant-time comparison of a stored seal (may be NULL) with the expected one. */
int ks_seal_ok(const char *stored, const char *expected);
void ks_seal_domain(const struct ks_signer *sg, const char *name, const char *root_fpr,
                    const char *issuer_fpr, char out[KS_SEAL_HEX]);
void ks_seal_admin(const struct ks_signer *sg, const struct ks_signer_domain *sd,
                   const char *token_hash, char out[KS_SEAL_HEX]);
void ks_seal_enroll(const struct ks_signer *sg, const struct ks_signer_domain *sd,
                    const char *address, const char *token_hash, const char *expires,
                    char out[KS_SEAL_HEX]);
/* SHA-256 hex of a certificate's DER. */
int ks_cert_fpr_hex(X509 *c, char out[CRYPTO_HEX256_LEN], struct err *e);

/* Load name, check its row's seal, unseal its key; ERR_NOTFOUND "unknown_domain",
 * ERR_FORBIDDEN "domain_unsealed" when the row was not written by a signer. */
int ks_signer_domain_open(struct ks_signer *sg, struct db *db, const char *name,
                          struct ks_signer_domain *sd, struct err *e);
void ks_signer_domain_close(struct ks_signer_domain *sd); /* accepts a zeroed one */

/* The admin token authorises acting for sd: a sealed, unrevoked row of this domain.
 * ERR_AUTH "unauthorized" / ERR_FORBIDDEN "forbidden" as the HTTPS process says them. */
int ks_signer_check_admin(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                          const char *token, struct err *e);

/* Seal the rows of a database that predates the seals, once (signer_state). */
int ks_signer_seal_legacy(struct ks_signer *sg, struct db *db, struct err *e);

/* issue.c: each runs its own transaction on db and commits; the answer's fields out.
 * Issuances (user, server, renewal) run in batches (group.c): every one queued for the
 * domain meanwhile shares one transaction, and the batch's signed head commits with it. */
int ks_issue_token(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                   const char *address, long long ttl, char token[CRYPTO_TOKEN_LEN],
                   char expires[32], struct err *e);
int ks_issue_user(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                  const char *token, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                  char secret[CRYPTO_TOKEN_LEN], struct err *e);
int ks_issue_server(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                    const char *purpose, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                    struct err *e);
/* A server certificate authorised by something the caller checks: hook->check runs inside
 * the issuance's transaction after the domain's lock, with the name the CSR asks for, and
 * may refuse; hook->done runs after the certificate is stored, in the same transaction. */
struct ks_issue_hook {
	int (*check)(void *arg, struct db *db, const char *name, struct err *e);
	int (*done)(void *arg, struct db *db, const char *key_id, struct err *e);
	void *arg;
};
int ks_issue_server_hooked(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                           const char *purpose, const char *csr_pem,
                           const struct ks_issue_hook *hook, char key_id[CRYPTO_UUID_LEN],
                           struct err *e);
/* An encryption certificate (PROTOCOL.md §4.1) for pub, of name and device: authorised by
 * token (an enrollment token, consumed) or by the hook alone (token NULL). */
struct ks_issue_key {
	const char *name, *device, *token;
	EVP_PKEY *pub;
	const struct ks_issue_hook *hook;
};
int ks_issue_user_key(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                      const struct ks_issue_key *k, char key_id[CRYPTO_UUID_LEN],
                      char secret[CRYPTO_TOKEN_LEN], struct err *e);
/* enc_issue.c: the signer's side of an encryption enrollment: the challenge's answer,
 * then the token or the request signed by a current key of the address. */
int ks_issue_encryption(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        const char *challenge, const char *answer, const char *token,
                        const char *jws, char key_id[CRYPTO_UUID_LEN],
                        char secret[CRYPTO_TOKEN_LEN], struct err *e);
/* acme_issue.c: the certificate of a ready ACME order (PROTOCOL.md §5.5): the order row,
 * its authorisation and its account are checked here, under the domain's lock. */
int ks_issue_acme(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                  const char *order_id, const char *csr_pem, char key_id[CRYPTO_UUID_LEN],
                  struct err *e);
/* Renew by the current key: jws is the holder's signed request (PROTOCOL.md §5.3); the
 * signer verifies it to the domain's root and applies the renewal limits itself. */
int ks_issue_renew(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                   const char *jws, char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN],
                   struct err *e);
/* Register a domain (the operator's token checked against the settings). */
int ks_issue_register(struct ks_signer *sg, struct db *db, const char *domain, char *const pem[3],
                      const char *policy, const char *mode, const char *operator_token,
                      char pin[CRYPTO_PIN_MAX], char admin_token[CRYPTO_TOKEN_LEN], struct err *e);

/* publish.c: sign and store one head for the size the log has reached, if beyond the
 * newest signed head (covering every entry since), after checking the log extends it;
 * *size is the newest signed size. */
int ks_publish_heads(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                     long long *size, struct err *e);
/* The same inside the caller's transaction (a batch of issuances: its head commits with it),
 * reading the log's nodes through nodes (the batch's: those it appended are known); own,
 * when not NULL, the entries [from, to) the transaction appended itself (no need to read
 * them back: ks_log_batch_own). */
struct ks_log_own {
	long long from, to;
	char *jws; /* out: the head signed, malloc'd (NULL: none signed; start it NULL) */
};
int ks_publish_heads_in(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        struct ks_log_nodes *nodes, struct ks_log_own *own, long long *size,
                        struct err *e);
/* issue.c: the before_commit of the signer's batches (ks_batch_ops): the head that covers
 * the batch, signed and stored in its transaction. */
struct ks_head_ctx {
	struct ks_signer *sg;
	const struct ks_signer_domain *sd;
};
int ks_signer_head_in_batch(void *ctx, struct ks_req *r, const struct ks_domain *d, struct err *e);
/* The domain's CRL from its revocation rows (DER, malloc'd). */
unsigned char *ks_sign_crl(struct db *db, const struct ks_signer_domain *sd, size_t *len,
                           struct err *e);
/* The route answer of name from the route rows (JWS, malloc'd); known, when not NULL,
 * the route of name as this signer just stored it (no need to read it back). */
char *ks_sign_route(struct db *db, const struct ks_signer_domain *sd, const char *name,
                    const struct ks_route *known, struct err *e);
/* route_set.c: ROUTE_SET (ks_signer_proto.h): the route (route_json) stored in the
 * domain's next batch with the head that covers it; the signed answer with its proof. */
char *ks_sign_route_set(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        const char *name, const char *set_by, const char *route_json,
                        struct err *e);

/* signer_memo.c: parsed domains and verified heads, keyed by the digest of the exact
 * bytes they came from (a changed row misses).  domain_get fills sd's root, issuer, key
 * (references taken) and fingerprints: 1 on a hit, 0 on a miss. */
struct ks_signer_memo;
struct ks_signer_memo *ks_signer_memo_new(void);
void ks_signer_memo_free(struct ks_signer_memo *m); /* accepts NULL */
int ks_signer_memo_domain_get(struct ks_signer_memo *m, const struct ks_domain *d,
                              struct ks_signer_domain *sd);
void ks_signer_memo_domain_put(struct ks_signer_memo *m, const struct ks_domain *d,
                               const struct ks_signer_domain *sd);
/* A head row (size, root in hex, JWS) this signer verified or signed for sd. */
int ks_signer_memo_head_known(struct ks_signer_memo *m, const struct ks_signer_domain *sd,
                              long long size, const char *root_hex, const char *jws);
void ks_signer_memo_head_put(struct ks_signer_memo *m, const struct ks_signer_domain *sd,
                             long long size, const char *root_hex, const char *jws);

/* signer.c: the process (anchor-keyserver --signer FD SOCKET ...). */
int ks_signer_main(const struct ks_settings *s, const char *socket_path, int parent_fd);

#endif
