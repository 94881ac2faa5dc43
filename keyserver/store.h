/*
 * store.h - the key server's store layer: the only code that holds SQL.
 *
 * One file per table or aggregate (store_domain.c, store_cert.c,
 * store_route.c, ...).  Each function takes the connection it is given
 * (borrowed from the pool by the caller, maybe inside the caller's
 * transaction: transactions are the caller's, so a handler can group several
 * writes and a log append into one commit) and returns a struct (owned by the
 * caller, released by its _free) or a count; never JSON.  Errors are struct err values;
 * "not found" is ERR_NOTFOUND with the code the client gets.
 */
#ifndef KS_STORE_H
#define KS_STORE_H

#include "acme.h"
#include "ks.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/crypto.h"
#include "pki/merkle.h"
#include "direct_json.h"
#include "route_json.h"

/* RFC 3339 UTC rendering done by the server, so that every node prints alike. */
#define KS_SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/*
 * store_rows.c: every row of res into a new array of elements of elem_size, *v
 * (calloc'd; NULL when there are no rows), each filled by fill(res, row, element, arg).
 * *n counts the rows begun, the one that failed too, so that the caller's list _free
 * clears a half-filled array as it does a full one.  res stays the caller's.  Returns
 * 0, or -1 with ERR_INTERNAL "internal" (out of memory, or a fill that failed).
 */
typedef int (*ks_store_fill_fn)(PGresult *res, int row, void *elem, void *arg);
int ks_store_rows_fill(PGresult *res, size_t elem_size, ks_store_fill_fn fill, void *arg, void **v,
                       size_t *n, struct err *e);

/* store_domain.c */
struct ks_domain *ks_store_domain(struct db *db, const char *name, struct err *e);
/* Tell other key-server nodes (and our own cache) that a domain's objects changed;
 * call inside the writing transaction so it is delivered at commit. */
int ks_store_notify_change(struct db *db, const char *domain, struct err *e);

/* Lock the domain's row until the caller's transaction ends. */
int ks_store_domain_lock(struct db *db, long long domain_id, struct err *e);
/* Policy, mode and encryption requirement (NULL: unchanged); the corporate address is
 * kept only under "corporate". */
struct ks_policy_set {
	const char *policy, *mode, *corporate_address, *encryption;
};
int ks_store_domain_set_policy(struct db *db, const char *domain, const struct ks_policy_set *p,
                               struct err *e);

/* A domain's own renewal limits (window, min_interval, max_lifetime), seconds; a
 * negative one: the server's. */
int ks_store_domain_set_renewal(struct db *db, const char *domain, const long long limits[3],
                                struct err *e);
/* A new domain's row (the signer registers it). */
struct ks_domain_new {
	const char *name, *root_pem, *issuer_pem, *pin, *policy, *mode;
	const char *issuer_key_sealed, *signer_seal;
};
int ks_store_domain_add(struct db *db, const struct ks_domain_new *n, long long *id, struct err *e);

/* store_group.c: the group addr belongs to (malloc'd), or NULL for none. */
int ks_store_group_of(struct db *db, long long domain_id, const char *addr, char **group,
                      struct err *e);
/* Replace a group's members (array of address strings), in the caller's transaction. */
int ks_store_group_replace(struct db *db, long long domain_id, const char *group, json_t *members,
                           struct err *e);

/* store_token.c: the domain of an unrevoked admin token (by hash); ERR_AUTH when none. */
int ks_store_admin_token_domain(struct db *db, const char *token_hash, char *domain, size_t cap,
                                struct err *e);

/* Enrollment tokens (the signer): claim one by hash for an issuance (1 found, 0 not; see
 * store_token.c), add one; and the admin token a registration creates. */
struct ks_enroll_token {
	char id[24];
	char address[320];
	int used, expired, sealed;
	char expires[24]; /* unix seconds */
	char seal[80];
};
struct ks_cert_row;
struct ks_token_claim {
	long long domain_id;
	const char *token_hash, *purpose, *device, *new_key_id;
};
int ks_store_enroll_token_claim(struct db *db, const struct ks_token_claim *c,
                                struct ks_enroll_token *t, struct ks_cert_row **rows, int *n,
                                struct err *e);
int ks_store_enroll_token_add(struct db *db, long long domain_id, const char *token_hash,
                              const char *address, const char *expires, const char *seal,
                              struct err *e);
int ks_store_admin_token_add(struct db *db, long long domain_id, const char *token_hash,
                             const char *seal, struct err *e);

/* store_address.c: unlink and erase what is kept under addr (PROTOCOL.md §10.1), in the
 * caller's transaction. */
struct ks_erasure {
	long long revoked, certificates, entries;
};
int ks_store_address_erase(struct db *db, long long domain_id, const char *addr,
                           struct ks_erasure *out, struct err *e);

/* store_enc.c: proof-of-possession challenges of encryption keys (PROTOCOL.md §4.1). */
#define KS_DEVICE_MAX 33 /* a device name: 1 to 32 of [a-z0-9-], with NUL */
#define KS_ENC_CHALLENGE_TTL 300
struct ks_enc_challenge {
	char id[CRYPTO_UUID_LEN];
	char address[320];
	char device[KS_DEVICE_MAX];
	char *public_key; /* PEM, owned */
	char answer_hash[CRYPTO_HEX256_LEN];
	int used, expired;
};
/* A new challenge (id a fresh UUID), expiring KS_ENC_CHALLENGE_TTL seconds from now; the
 * domain's expired challenges go with it. */
int ks_store_enc_challenge_add(struct db *db, long long domain_id, const struct ks_enc_challenge *c,
                               struct err *e);
/* Lock the challenge id of the domain until the transaction ends: 1 found, 0 not. */
int ks_store_enc_challenge_lock(struct db *db, long long domain_id, const char *id,
                                struct ks_enc_challenge *c, struct err *e);
int ks_store_enc_challenge_use(struct db *db, const char *id, struct err *e);
void ks_enc_challenge_clear(struct ks_enc_challenge *c); /* frees public_key */

/* store_cert.c */
/*
 * A certificate as the protocol publishes it (PROTOCOL.md §5; the JSON is built from it
 * in cert_json.c).  Times are RFC 3339 UTC text as the server renders them; "" stands
 * for none in superseded and erased.  An erased one (erased set, PROTOCOL.md §10.1) has
 * no name and no pem, and is published with no log proof.
 */
struct ks_cert_revocation {
	int revoked; /* 0: the other members are empty */
	int reason;  /* RFC 5280 reason code */
	char method[16];
	char time[32];
};
struct ks_cert {
	char key_id[CRYPTO_UUID_LEN];
	char kind[16], purpose[16], algorithm[32], status[16];
	char *name, *pem; /* owned; NULL once erased */
	char fingerprint[CERT_FPR_LEN];
	char serial[80];
	char not_before[32], not_after[32], issued[32], superseded[32], erased[32];
	struct ks_cert_revocation revocation;
	long long log_seq; /* the log entry of its issuance; -1 for none */
	long long domain_id;
	char device[KS_DEVICE_MAX]; /* an encryption certificate's device; "" for the others */
};
struct ks_cert_list {
	size_t n;
	struct ks_cert *v;
};
void ks_cert_free(struct ks_cert *c);           /* accepts NULL */
void ks_cert_list_free(struct ks_cert_list *l); /* accepts NULL */

/* Certificates of a name: current only, or every one newest first. */
struct ks_cert_list *ks_store_certs_by_name(struct db *db, long long domain_id, const char *name,
                                            const char *purpose, int current_only, struct err *e);
/* The current server certificates of a domain (admin view). */
struct ks_cert_list *ks_store_server_certs(struct db *db, long long domain_id, struct err *e);
/* One certificate by "key_id" or "fingerprint"; NULL with ERR_NOTFOUND when absent (it may
 * be an erased one). */
/* An issuance's answer in one query: the certificate by key id (NULL with ERR_NOTFOUND when
 * absent), the domain's newest signed head (head_jws NULL when none) and the leaf and salt
 * of the certificate's log entry (NULL when none); ks_cert_answer_free releases them. */
struct ks_cert_answer {
	struct ks_cert *c;
	char *head_jws, *leaf, *salt;
	long long head_size;
};
int ks_store_cert_answer(struct db *db, const char *key_id, struct ks_cert_answer *a,
                         struct err *e);
void ks_cert_answer_free(struct ks_cert_answer *a);
struct ks_cert *ks_store_cert_by(struct db *db, const char *column, const char *value,
                                 struct err *e);

/* Whether fpr is name's current certificate of purpose: 1 (key id into key_id), 0, -1. */
int ks_store_current_key_of(struct db *db, long long domain_id, const char *name,
                            const char *purpose, const char *fpr, char key_id[CRYPTO_UUID_LEN],
                            struct err *e);
/* The certificate a renewal request is signed with (renew_policy.h), found by its
 * fingerprint in the domain and locked until the caller's transaction ends: 1 found, 0 not. */
struct ks_renew_row {
	char key_id[CRYPTO_UUID_LEN];
	char kind[16], purpose[16], status[16];
	char name[320];
	long long not_before, not_after, issued_at; /* Unix seconds */
};
int ks_store_cert_for_renewal(struct db *db, long long domain_id, const char *fpr,
                              struct ks_renew_row *out, struct err *e);
/* Record a request key_id signed at issued_ms (Unix milliseconds) unless one as new
 * was: 1 fresh, 0 replayed. */
int ks_store_key_request_newer(struct db *db, const char *key_id, long long issued_ms,
                               struct err *e);

/* Revocation: the row locked by key id; every unrevoked one of a name (locked, malloc'd
 * array, returns the count); marking one revoked with its revocation record. */
/* A certificate as revocation needs it (with its domain's name). */
struct ks_cert_row {
	char key_id[CRYPTO_UUID_LEN];
	char domain[DNS_DOMAIN_MAX];
	char name[320];
	char fingerprint[CERT_FPR_LEN];
	char serial[80];
	char status[16];
	char secret_hash[CRYPTO_HEX256_LEN];
};

int ks_store_cert_get(struct db *db, const char *key_id, struct ks_cert_row *t, struct err *e);
int ks_store_cert_lock(struct db *db, const char *key_id, struct ks_cert_row *t, struct err *e);
int ks_store_certs_to_revoke(struct db *db, const struct ks_domain *d, const char *name,
                             struct ks_cert_row **rows, struct err *e);
int ks_store_cert_revoke(struct db *db, long long domain_id, const struct ks_cert_row *t,
                         int reason, const char *method, struct err *e);

/* Issuance (the signer): supersede the current one (returns how many, key_id and
 * fingerprint in *rows), and insert the new one with the log entry that records it, in
 * one statement. */
struct ks_log_append_row;
int ks_store_cert_supersede(struct db *db, long long domain_id, const char *name,
                            const char *purpose, const char *device, const char *new_key_id,
                            struct ks_cert_row **rows, struct err *e);
struct ks_cert_new {
	const char *key_id, *kind, *purpose, *name, *algorithm, *fingerprint, *serial, *pem;
	const char *device;      /* an encryption certificate's device, else NULL */
	const char *secret_hash; /* of the revocation secret; NULL for a server certificate */
	long long domain_id, not_before, not_after;
	const struct ks_log_append_row *entry; /* of its issuance, stored with it */
};
int ks_store_cert_insert(struct db *db, const struct ks_cert_new *c, struct err *e);

/* The domain's revocations as CRL entries (one block: free() it). */
struct crl_entry *ks_store_crl_entries(struct db *db, long long domain_id, size_t *n,
                                       struct err *e);

/* store_route.c: the route in force for name: its own, else (for an address) the
 * domain's default; ERR_NOTFOUND "no_route" when neither is set. */
int ks_store_route_effective(struct db *db, const struct ks_domain *d, const char *name,
                             struct ks_route *rt, struct err *e);
/* The route with the log entry that records it (its domain, and its index), in one
 * statement; rt's updated, scope_name and log_seq then are the stored row's. */
int ks_store_route_put(struct db *db, const char *name, struct ks_route *rt, const char *set_by,
                       const struct ks_log_append_row *entry, struct err *e);
/* 1 when a route was deleted, 0 when there was none, -1 on error. */
int ks_store_route_delete(struct db *db, long long domain_id, const char *name, struct err *e);

/* store_group_key.c: group keys, held only wrapped (sql/012_group_keys.sql).  _members: the
 * group's members, sorted (a JSON array of strings); _state: the newest generation (0 for
 * none), its certificate's key id, and whether a member it was wrapped to has left; _add:
 * the next generation of group with one wrap per {"member", "envelope"} of wraps, in the
 * caller's transaction; _wraps: every generation wrapped to member, oldest first, as
 * [{"generation", "key_id", "status", "certificate", "envelope"}]. */
struct ks_group_key_state {
	int generation, rotation_needed;
	char key_id[CRYPTO_UUID_LEN];
};
int ks_store_group_members(struct db *db, long long domain_id, const char *group, json_t **members,
                           struct err *e);
int ks_store_group_key_state(struct db *db, long long domain_id, const char *group,
                             struct ks_group_key_state *st, struct err *e);
int ks_store_group_key_add(struct db *db, long long domain_id, const char *group,
                           const char *key_id, const json_t *wraps, int *generation, struct err *e);
int ks_store_group_key_wraps(struct db *db, long long domain_id, const char *group,
                             const char *member, json_t **keys, struct err *e);

/* store_direct.c: a user's direct endpoint.  _valid: 1 with *dr when the address has
 * one in force (not expired, made by the address's current, unrevoked key), 0 when
 * not; _delete: 1 when one was removed, 0 when there was none. */
int ks_store_direct_put(struct db *db, long long domain_id, const struct ks_direct *dr,
                        long long log_seq, struct err *e);
int ks_store_direct_valid(struct db *db, long long domain_id, const char *address,
                          struct ks_direct *dr, struct err *e);
int ks_store_direct_delete(struct db *db, long long domain_id, const char *address, struct err *e);

/* store_webhook.c: subscriptions (1 added / 0 some key id not the domain's), their
 * deletion by secret (1 / 0), and the delivery of the entries queued for them (queued
 * by the log's append, ks_store_log_append). */
int ks_store_webhook_add(struct db *db, long long domain_id, const char *url, const char *key_ids,
                         const char *secret_hash, long long *id, struct err *e);
int ks_store_webhook_delete(struct db *db, const char *id, long long domain_id,
                            const char *secret_hash, struct err *e);
struct ks_delivery {
	char webhook_id[24], seq[24], domain_id[24], domain[DNS_DOMAIN_MAX];
	char url[2048]; /* webhook.c accepts shorter URLs only */
	int attempts;
};
int ks_store_deliveries_due(struct db *db, long long max_attempts, int limit,
                            struct ks_delivery **out, struct err *e);
int ks_store_delivery_record(struct db *db, const struct ks_delivery *dl, long long delay,
                             const char *why, struct err *e);

/* store_log.c: the log's tables. */
/* The log's nodes, as lib/pki/merkle.c reads them (ks_log_node is a merkle_node_fn). */
/*
 * A proof or a root needs a few dozen nodes.  Rather than one query each, the caller
 * runs the computation once with recording set (ks_log_node then only notes which
 * nodes it is asked for, answering zeros: the algorithms never branch on a hash),
 * fetches them all in one query (ks_log_nodes_fetch), and runs it again from memory.
 * The memo lives as long as the context, inside one request; what a process keeps across
 * transactions is only committed nodes, in its edge (log_edge.c), which a context given
 * one (ks_log_nodes_edge) asks before the database.
 */
#define KS_LOG_MEMO 256
struct ks_log_memo {
	unsigned level;
	int have;
	uint64_t index;
	uint8_t hash[32];
};
struct ks_log_edge;
struct ks_log_nodes {
	struct db *db;
	struct ks_log_edge *edge; /* NULL: none */
	char domain_id[24];
	int recording;
	int n;
	struct ks_log_memo memo[KS_LOG_MEMO];
};
void ks_log_nodes_init(struct ks_log_nodes *n, struct db *db, long long domain_id);
/* Ask edge (the process's committed nodes, may be NULL) before the database. */
void ks_log_nodes_edge(struct ks_log_nodes *n, struct ks_log_edge *edge);
int ks_log_node(void *ctx, unsigned level, uint64_t index, uint8_t out[32], struct err *e);
/* Fetch every node recorded and not yet known, in one query; ends the recording. */
int ks_log_nodes_fetch(struct ks_log_nodes *n, struct err *e);
/* PostgreSQL's encode(hash, 'hex') (64 lowercase digits) back to 32 bytes; -1 if not. */
int ks_hex_decode32(const char *hex, uint8_t out[32]);
/* The size of the domain's log: the next sequence number. */
long long ks_log_size(struct db *db, long long domain_id, struct err *e);
/* A batch of changes opens: the domain's row locked, the change notice queued, the log's
 * size returned; one round trip. */
long long ks_store_log_batch_open(struct db *db, long long domain_id, const char *name,
                                  struct err *e);
/* An entry of the log with the nodes it completes (and its key's webhook deliveries),
 * written in one statement inside the caller's transaction. */
struct ks_log_append_row {
	const char *domain_id, *seq;
	const struct ks_event *ev;
	const char *leaf, *hash_hex, *salt;
	const struct merkle_node *nodes;
	int nnodes;
};
int ks_store_log_append(struct db *db, const struct ks_log_append_row *a, struct err *e);
/* The same append inside another statement, which stores what the entry records in the
 * same round trip: the call below, with the row's KS_LOG_PARAMS parameters first ($1 the
 * domain id, $2 the index; the call yields the index); arrays[3] freed by
 * ks_store_log_params_free once the statement has run. */
#define KS_LOG_PARAMS 11
#define KS_SQL_LOG_APPEND                                                                          \
	"ks_log_append($1, $2, $3, $4::uuid, $5, $6, $7, $8, $9::int[], $10::bigint[],"            \
	" $11::text[])"
int ks_store_log_params(const struct ks_log_append_row *a, const char *params[KS_LOG_PARAMS],
                        char *arrays[3], struct err *e);
void ks_store_log_params_free(char *arrays[3]);
/* The signed head for size (0: the newest), malloc'd; ERR_NOTFOUND "not_found" when the
 * log never had that size or is empty.  *size_out (may be NULL) receives its size. */
char *ks_store_log_head_jws(struct db *db, long long domain_id, long long size, long long *size_out,
                            struct err *e);
/* A log entry as the protocol publishes it (cert_json.c builds its JSON). */
struct ks_log_entry {
	long long seq;
	char *leaf, *type;            /* owned */
	char leaf_hash[48];           /* base64 */
	char key_id[CRYPTO_UUID_LEN]; /* "" for none */
	char *salt, *name;            /* owned; only when asked with secrets and still kept */
};
struct ks_log_page {
	size_t n;
	struct ks_log_entry *v;
};
void ks_log_page_free(struct ks_log_page *p); /* accepts NULL */
/* Entries [start, end) in order; salt and name too with with_secrets. */
struct ks_log_page *ks_store_log_entries(struct db *db, long long domain_id, long long start,
                                         long long end, int with_secrets, struct err *e);
/* The newest signed head and entry seq's leaf and salt (NULL when absent), in one query;
 * not_found for a log without a head. */
int ks_store_log_head_leaf(struct db *db, long long domain_id, long long seq, char **jws,
                           long long *size, char **leaf, char **salt, struct err *e);
/* Entry seq's leaf and salt (malloc'd; *salt NULL when erased); both NULL when it is absent. */
int ks_store_log_entry_leaf(struct db *db, const char *domain_id, long long seq, char **leaf,
                            char **salt, struct err *e);
/* What the signer reads and writes to sign heads (publish.c): the round's opening (its
 * heads lock until the transaction ends, so that appends, which take the domain's row
 * lock instead, go on meanwhile; the log's size; the newest head: 1, 0 for none), the
 * entries of a range one by one with their level-0 nodes (i counts from 0), a new signed
 * head. */
int ks_store_log_heads_open(struct db *db, long long domain_id, long long *log_size,
                            long long *head_size, char root_hex[65], char **jws, struct err *e);
typedef int (*ks_store_leaf_fn)(void *ctx, int i, long long seq, const char *leaf,
                                const char *hash_hex, const char *node_hex, struct err *e);
int ks_store_log_each_leaf(struct db *db, const char *domain_id, long long from, long long to,
                           ks_store_leaf_fn fn, void *ctx, struct err *e);
int ks_store_log_head_put(struct db *db, const char *domain_id, long long size,
                          const char *root_hex, const char *jws, struct err *e);
/* store_seal.c: the signer's seals on rows, and the one-time sealing of old rows. */
int ks_store_domain_set_seal(struct db *db, const char *domain, const char *seal, struct err *e);
struct ks_admin_token {
	char domain[DNS_DOMAIN_MAX];
	int sealed;
	char seal[80];
};
int ks_store_admin_token_get(struct db *db, const char *token_hash, struct ks_admin_token *t,
                             struct err *e);
typedef int (*ks_store_token_fn)(void *ctx, int admin, const char *id, const char *token_hash,
                                 const char *address, const char *expires, struct err *e);
int ks_store_unsealed_tokens(struct db *db, long long domain_id, ks_store_token_fn fn, void *ctx,
                             struct err *e);
int ks_store_token_set_seal(struct db *db, int admin, const char *id, const char *seal,
                            struct err *e);
int ks_store_legacy_lock(struct db *db, struct err *e);
int ks_store_unsealed_domains(struct db *db, int (*fn)(void *ctx, const char *name, struct err *e),
                              void *ctx, struct err *e);
int ks_store_legacy_mark(struct db *db, struct err *e);

/* store_acme.c: ACME nonces, accounts and orders (acme.h).  Lookups answer 1 (filled), 0
 * (none), -1. */
int ks_store_acme_nonce_add(struct db *db, const char *nonce, long long ttl, struct err *e);
/* Delete the nonce if it is unexpired: 1 when it was (the caller may use it), else 0. */
int ks_store_acme_nonce_use(struct db *db, const char *nonce, struct err *e);
int ks_store_acme_account_find(struct db *db, long long domain_id, const char *column,
                               const char *value, struct acme_account *a, struct err *e);
int ks_store_acme_account_add(struct db *db, long long domain_id, const struct acme_account *a,
                              struct err *e);
int ks_store_acme_account_update(struct db *db, const struct acme_account *a, struct err *e);
int ks_store_acme_order_add(struct db *db, long long domain_id, const struct acme_order *o,
                            struct err *e);
/* lock: FOR UPDATE, until the caller's transaction ends. */
int ks_store_acme_order_get(struct db *db, long long domain_id, const char *id, int lock,
                            struct acme_order *o, struct err *e);
int ks_store_acme_order_issued(struct db *db, const char *id, const char *key_id, struct err *e);
/* Orders made in the last hour by the account (account_id) or in the domain (NULL). */
int ks_store_acme_orders_recent(struct db *db, long long domain_id, const char *account_id,
                                long long *n, struct err *e);
/* Whether the account's order produced the certificate key_id: 1, 0, -1. */
int ks_store_acme_account_ordered(struct db *db, const char *account_id, const char *key_id,
                                  struct err *e);

/* store_acme_queue.c: validations queued as 'processing' authorisations (acme.h). */
/* Lock the account's row (FOR UPDATE) so its count of validations stays true: 1, 0, -1. */
int ks_store_acme_account_lock(struct db *db, const char *account_id, struct err *e);
/* Authorisations in 'processing' of the account, or of every account (NULL). */
int ks_store_acme_processing_count(struct db *db, const char *account_id, long long *n,
                                   struct err *e);
/* A pending authorisation of a pending, unexpired order becomes 'processing' by type:
 * 1; 0 when it is not pending any more (someone was first); -1. */
int ks_store_acme_validation_start(struct db *db, const char *order_id, const char *type,
                                   struct err *e);
/* Claim the next validation for lease seconds (counting the attempt): 1 (j filled), 0, -1. */
int ks_store_acme_validation_claim(struct db *db, long long lease, struct acme_job *j,
                                   struct err *e);
/* The outcome of a 'processing' authorisation; the order becomes ready (valid) or invalid
 * with it.  error_type and error are NULL when valid. */
int ks_store_acme_order_validated(struct db *db, const char *id, int valid, const char *error_type,
                                  const char *error, struct err *e);

#endif
