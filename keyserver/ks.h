/*
 * ks.h - the key server's shared state and the handlers' entry points.
 *
 * Request flow: the HTTP layer (lib/http/http_path.c) checks and parses a request and
 * calls ks_dispatch (router.c), which picks a handler by method and path and
 * lends it a database connection from the pool for the length of the request.
 * A handler goes parse -> authorise -> store -> reply: it checks the URL and
 * body (request.c has the shared argument checks), authorises the caller
 * (auth.c), reads and writes through the store layer (store.h) and replies
 * with JSON through the http_reply_* helpers.  Errors are struct err values
 * turned into JSON error bodies in one place (ks_fail).
 *
 * The store layer alone holds SQL.  One file per table or aggregate, each
 * returning structs (the protocol's JSON objects of certificates and log
 * entries are built from them in cert_json.c); transactions belong to the
 * caller, so one handler commits a change, its log entry and its change
 * notice together.  Both processes use it.
 *
 * Two processes.  The HTTPS process, which parses what the internet sends,
 * holds no issuer key and never reads the KEK: everything that is signed
 * (certificates, CRLs, tree heads, route answers) is asked of the signer
 * process (signer.c, ks_signer.h) over a local socket (ks_signer_proto.h,
 * signer_client.c).  The signer checks each request against the database
 * itself and signs only what it built: a certificate only for an address
 * with a sealed, unused enrollment token or for a host an admin token of
 * the domain authorises, always inside the domain's name constraints.  When
 * the signer is down the HTTPS process answers 503 signer_unavailable and
 * restarts it (main.c).  PROTOCOL.md §13 has the whole contract.
 *
 * Files (who owns what):
 *   main.c, settings.c, ops.c     start-up, configuration, health and metrics
 *   router.c                      path and method -> handler; the answer cache (cache.c)
 *   request.c, auth.c             URL arguments, the domain of a request; bearer tokens
 *   page.c                        the public lookup page, its files built in (www/)
 *   domain.c, enroll.c, lookup.c, revoke.c, route.c, direct.c, tlog.c, webhook.c
 *                                 the handlers, one resource family each; webhook.c
 *                                 also runs the delivery thread
 *   route_json.c, direct_json.c   a route body and signed answer, a direct endpoint (pure)
 *   user_request.c                requests a user signs with their own key
 *   cert_json.c                   certificate and log entry objects from the store's
 *                                 structs (pure)
 *   renew_policy.c                renewal by the current key: its request and limits (pure)
 *   store_domain.c, store_cert.c, store_token.c, store_group.c, store_route.c,
 *   store_log.c, store_webhook.c, store_address.c, store_seal.c,
 *   store_direct.c, store_rows.c
 *                                 the store (store.h): domains; certificates and
 *                                 revocations; admin and enrollment tokens; groups;
 *                                 routes; the log's entries, nodes and heads; webhooks
 *                                 and deliveries; erasure of an address; direct
 *                                 endpoints; the signer's
 *                                 seals and signer_state; a query's rows as an array
 *   signer_client.c               the HTTPS process's side of the signer protocol
 *   group.c, log_batch.c          group commit of tree heads and batches of changes, one
 *                                 transaction each, with the log's state in a batch
 *                                 (both processes)
 *   acme.h, acme_*.c, store_acme.c
 *                                 ACME (RFC 8555) for the hosts of a domain: acme.h has the
 *                                 request flow; acme_issue.c is the signer's side;
 *                                 acme_validator.c validates challenges off the
 *                                 request workers, queued in store_acme_queue.c
 *   signer.c, issue.c, publish.c, seal.c, signer_memo.c, ks_signer_proto.c
 *                                 the signer process: its loop, issuance and
 *                                 registration, signed heads/CRLs/routes, row seals,
 *                                 parsed domains and checked heads kept by digest
 */
#ifndef KS_KS_H
#define KS_KS_H

#include <stdatomic.h>
#include <stdint.h>

#define DNS_DOMAIN_MAX 256

#include <jansson.h>
#include <openssl/evp.h>

#include "pki/crypto.h"
#include "core/db.h"
#include "core/db_rw.h"
#include "core/frame.h"
#include "http/http.h"
#include "settings.h"

struct acme_validators;
struct ks_cache;
struct ks_group;
struct ks_log_batch;
struct ks_log_edge;
struct ks_log_nodes;

struct ks {
	struct ks_settings cfg;
	struct db_pool *pool; /* the primary's (writes; reads when there is no replica) */
	struct db_rw *rw;     /* requests' connections: reads from a replica (core/db_rw.h) */
	struct ks_cache *cache;
	struct ks_webhooks *webhooks;
	struct acme_validators *acme; /* ACME validation threads (acme.h); NULL: acme off */
	struct frame_client *signer;  /* the HTTPS process's way to the signer */
	struct ks_group *heads;       /* group commit of tree heads (group.c) */
	struct ks_group *changes;     /* changes run in batches, one transaction each (group.c) */
	struct ks_log_edge *edge;     /* the log nodes committed, kept per domain (log_edge.c) */
	atomic_ullong enrollments;
	atomic_ullong cache_hits;
	atomic_ullong cache_misses;
	atomic_ullong log_append_failures; /* ks_log_append calls that failed */
	atomic_ullong signer_failures;     /* signer calls that found it down or timed out */
	atomic_int signer_down;            /* the last signer call found it down */
};

/* A domain row (store_domain.c), as the handlers need it.  Strings are owned
 * (ks_domain_free). */
struct ks_domain {
	long long id;
	char *name;
	char *root_pem;
	char *issuer_pem;
	json_t *pins; /* array of strings */
	char *policy;
	char *mode;
	char *corporate_address; /* NULL unless policy is corporate */
	char *updated;
	char *issuer_key_sealed; /* NULL for a domain without one (never, once registered) */
	char *encryption;        /* what senders must do: none, opportunistic or required */
	/* its own limits on renewal, seconds; -1: the server's (renew_policy.h) */
	long long renew_window, renew_min_interval, renew_max_lifetime;
	char *signer_seal; /* read with the row, checked by the signer only (seal.c); or NULL */
};

/* Per-request context handed to every handler. */
struct ks_req {
	struct ks *ks;
	const struct http_request *http;
	struct http_response *resp;
	struct db *db;                  /* borrowed from the pool for this request */
	long long cache_max_age;        /* how long answers may be cached; handlers may lower it */
	struct ks_log_batch *log_batch; /* set inside a batch of changes (group.c): appends
	                                 * continue from it instead of reading the log */
};

void ks_dispatch(const struct http_request *req, struct http_response *resp, void *app);
size_t ks_metrics(char *buf, size_t len, void *app);
int ks_health(void *app, struct err *e);

void ks_domain_free(struct ks_domain *d); /* accepts NULL */
json_t *ks_domain_json(const struct ks_domain *d);

/* Reply with an error (logged at the level its kind deserves). */
void ks_fail(struct ks_req *r, const struct err *e);

/* domain.c */
void ks_domain_get(struct ks_req *r, const char *domain, const char *part);
void ks_domain_register(struct ks_req *r);
void ks_domain_set_policy(struct ks_req *r, const char *domain);
/* PUT /v1/domains/{d}/renewal: the domain's own renewal limits (admin). */
void ks_domain_set_renewal(struct ks_req *r, const char *domain);
void ks_group_set(struct ks_req *r, const char *domain, const char *group);
void ks_group_delete(struct ks_req *r, const char *domain, const char *group);
/* group_key.c: a group's members and key state (admin GET), the upload of a new
 * generation of its key wrapped to each member (admin PUT .../keys), and a member's
 * fetch of its wraps (POST .../keys/{member}, signed by the member): PROTOCOL.md §5.5. */
void ks_group_get(struct ks_req *r, const char *domain, const char *group);
void ks_group_key_put(struct ks_req *r, const char *domain, const char *group);
void ks_group_key_fetch(struct ks_req *r, const char *domain, const char *group,
                        const char *member);
void ks_domain_erase(struct ks_req *r, const char *domain);

/* enroll.c */
void ks_token_issue(struct ks_req *r, const char *domain);
void ks_enroll(struct ks_req *r, const char *domain);
void ks_server_issue(struct ks_req *r, const char *domain);
void ks_server_list(struct ks_req *r, const char *domain); /* admin only */
/* 201 with the stored certificate key_id, its chain and revocation secret (if any). */
void ks_issuance_reply(struct ks_req *r, const struct ks_domain *d, const char *key_id,
                       const char *revocation_secret);
/* POST /v1/domains/{domain}/renew: a request signed by the current key (PROTOCOL.md §5.3). */
void ks_renew(struct ks_req *r, const char *domain);

/* enc.c: encryption certificates (PROTOCOL.md §4.1). POST .../encryption/challenge makes a
 * proof-of-possession challenge for a key; POST .../encryption answers it with an
 * enrollment token or a request signed by a current key of the address. */
void ks_enc_new_challenge(struct ks_req *r, const char *domain);
void ks_enc_enroll(struct ks_req *r, const char *domain);

/* route.c */
void ks_route_get(struct ks_req *r, const char *address);
void ks_route_put(struct ks_req *r, const char *address);
void ks_route_delete(struct ks_req *r, const char *address);
void ks_route_get_domain(struct ks_req *r, const char *domain);
void ks_route_put_domain(struct ks_req *r, const char *domain);
void ks_route_delete_domain(struct ks_req *r, const char *domain);

/* direct.c: a user's direct endpoint, /v1/direct/{address} (PROTOCOL.md §6.5) */
void ks_direct_get(struct ks_req *r, const char *address);
void ks_direct_put(struct ks_req *r, const char *address);
void ks_direct_delete(struct ks_req *r, const char *address);

/* lookup.c */
void ks_lookup_address(struct ks_req *r, const char *address);
void ks_lookup_history(struct ks_req *r, const char *address);
void ks_lookup_key(struct ks_req *r, const char *key_id, int pem);
void ks_lookup_fingerprint(struct ks_req *r, const char *fpr);
/* GET /v1/domains/{domain}/dkim/{selector}: the signing certificate a DKIM verifier needs. */
void ks_lookup_dkim(struct ks_req *r, const char *domain, const char *selector);

/* page.c: GET /lookup (name "") and the page's files /lookup/<name>; 404 for others. */
void ks_page_get(struct ks_req *r, const char *name);

/* revoke.c */
void ks_revoke(struct ks_req *r, const char *key_id);
void ks_crl_get(struct ks_req *r, const char *domain, int pem);
/* Revoke key_id of d, its authorisation already checked by the caller (ACME's revokeCert):
 * its own transaction; ERR_CONFLICT "already_revoked" when it is. */
int ks_revoke_authorised(struct ks_req *r, const struct ks_domain *d, const char *key_id,
                         const char *method, int reason, struct err *e);
/* Revoke, by the admin and for reason, every certificate of name in d that is not revoked
 * yet (current and superseded), inside the caller's transaction; *n receives how many. */
int ks_revoke_all_of(struct ks_req *r, const struct ks_domain *d, const char *name, int reason,
                     long long *n, struct err *e);

/* tlog.c: the domain's transparency log, which is also its change feed. */
struct ks_event {
	const char *type;   /* issued, superseded, revoked, route_set, route_removed, policy, ... */
	const char *name;   /* the subject (address, host or domain), committed salted; or NULL */
	const char *key_id; /* or NULL */
	json_t *details;    /* further committed members (borrowed), or NULL */
};
/* Append inside the caller's transaction; *seq receives the entry's index (may be NULL). */
int ks_log_append(struct ks_req *r, const struct ks_domain *d, const struct ks_event *ev,
                  long long *seq, struct err *e);
void ks_log_head(struct ks_req *r, const char *domain);
void ks_log_entries(struct ks_req *r, const char *domain);
void ks_log_consistency(struct ks_req *r, const char *domain);
void ks_log_inclusion(struct ks_req *r, const char *domain);
void ks_feed(struct ks_req *r, const char *domain);
/* The certificate objects of an answer (ks_cert_json), each with its "log" member: the
 * entry that recorded its issuance, with the inclusion proof to the newest signed head,
 * which is returned in *head (a JSON string, new reference; NULL when none has an entry).
 * One certificate as an object, a list as an array; NULL on error. */
struct ks_cert;
struct ks_cert_list;
json_t *ks_log_cert_json(struct ks_req *r, const struct ks_cert *c, json_t **head, struct err *e);
/* The same from an issuance's answer as read in one query (ks_store_cert_answer); takes
 * over its head, leaf and salt. */
struct ks_cert_answer;
json_t *ks_log_cert_answer_json(struct ks_req *r, struct ks_cert_answer *a, json_t **head,
                                struct err *e);
json_t *ks_log_certs_json(struct ks_req *r, const struct ks_cert_list *l, json_t **head,
                          struct err *e);
/* Entry seq's inclusion proof to the newest head (*proof NULL when that head does not
 * cover it yet), and that head in *head as above. */
int ks_log_proof_newest(struct ks_req *r, long long domain_id, long long seq, json_t **proof,
                        json_t **head, struct err *e);

/* After a change that appended to d's log has committed: have the signer sign a head
 * that covers it (one head for every change committed meanwhile: group.c).  A failure
 * is logged, not returned: the change stands, and the next publish (or a read of the
 * newest head) signs what is missing. */
void ks_log_publish(struct ks_req *r, const struct ks_domain *d);

/* group.c: one round of head signing at a time per domain, covering every writer that
 * committed before it began.  fn signs (it gets arg) and sets *size to the signed
 * size; every writer it covers gets its result. */
typedef int (*ks_group_fn)(void *arg, long long *size, struct err *e);
struct ks_group *ks_group_new(void);
void ks_group_free(struct ks_group *g); /* accepts NULL */
/* Returns once a round that began after the call has ended: fn's result. */
int ks_group_run(struct ks_group *g, long long domain_id, ks_group_fn fn, void *arg,
                 long long *size, struct err *e);

/*
 * group.c: changes to one domain, run by a leader in batches: one transaction, one
 * commit and one signed head for every change queued meanwhile (up to
 * KS_GROUP_BATCH_MAX).  Each change runs behind a savepoint: one that fails is undone
 * alone and its writer gets its error; the others commit.  fn gets a copy of the
 * writer's request on the leader's connection, inside the transaction, with the
 * domain's row locked.  Around the batch, on the leader's request: before_commit (the
 * signer signs the head in the same transaction; a refusal there, ERR_FORBIDDEN, must
 * have written nothing: it is logged and the changes commit without a head; any other
 * failure fails the batch whole) and after_commit (the HTTPS process has the signer
 * sign it).  Returns once the writer's batch is committed and after_commit has run:
 * fn's result, or the commit's failure.
 */
#define KS_GROUP_BATCH_MAX 32
struct ks_change {
	int (*fn)(struct ks_req *r, void *arg, struct err *e);
	void *arg;
	struct ks_req *r; /* the writer's */
	/* out, once committed: the head signed with the batch (malloc'd, the writer frees
	 * it), or NULL (none signed in it: its answer reads the newest head) */
	char *head_jws;
	long long head_size;
	/* The leader's bookkeeping: */
	struct ks_change *next;
	int done, rc;
	struct err err;
};
struct ks_batch_ops {
	int (*before_commit)(void *ctx, struct ks_req *r, const struct ks_domain *d,
	                     struct err *e);                                          /* or NULL */
	void (*after_commit)(void *ctx, struct ks_req *r, const struct ks_domain *d); /* or NULL */
	void *ctx;
};
/* g NULL: a batch of this one change, run at once. */
int ks_group_change(struct ks_group *g, const struct ks_domain *d, struct ks_change *c,
                    const struct ks_batch_ops *ops, struct err *e);

/* route.c: set (rt) or remove (rt NULL) the route of name in d's next batch of g, its log
 * entry with it; *out the entry (ks_route_logged_free).  A set's rt gets the stored row's
 * update time. */
struct ks_route;
struct ks_route_logged {
	long long seq;     /* the entry's index (-1: none) */
	char *leaf, *salt; /* a set's entry (malloc'd), or NULL */
	char *head_jws;    /* the head signed with its batch (malloc'd), or NULL */
	long long head_size;
};
void ks_route_logged_free(struct ks_route_logged *l); /* its members; accepts NULL */
int ks_route_commit(struct ks_req *r, struct ks_group *g, const struct ks_domain *d,
                    const char *name, struct ks_route *rt, const char *set_by,
                    const struct ks_batch_ops *ops, struct ks_route_logged *out, struct err *e);
/* jws (taken) with the inclusion proof of entry l->seq and its head in the unprotected
 * header: the head signed with its batch when l has it, else the newest (read); jws as it
 * was when there is none (seq < 0, not covered yet). */
char *ks_route_with_proof(struct ks_req *r, const struct ks_domain *d,
                          const struct ks_route_logged *l, char *jws);

/* log_batch.c: the log's state inside a batch (ks_req.log_batch). */
struct ks_log_batch *ks_log_batch_new(long long domain_id);
/* Inside the batch's transaction, before its first change: the domain's row locked, the
 * change notice queued (its changes send none of their own) and the log's size read, in
 * one round trip. */
int ks_log_batch_open(struct ks_log_batch *b, struct db *db, struct ks_log_edge *edge,
                      const struct ks_domain *d, struct err *e);
/* The nodes the batch knows: a head signed in its transaction reads through them. */
struct ks_log_nodes *ks_log_batch_nodes(struct ks_log_batch *b);
/* The entries the batch appended so far: [*from, *to) (empty before its first). */
void ks_log_batch_own(const struct ks_log_batch *b, long long *from, long long *to);
/* Once the batch's transaction has committed: its nodes join the edge. */
void ks_log_batch_keep(struct ks_log_batch *b, struct ks_log_edge *edge);
void ks_log_batch_free(struct ks_log_batch *b); /* accepts NULL */
/* The head of size signed in the batch's transaction (jws copied); the head, or NULL. */
void ks_log_batch_signed(struct ks_log_batch *b, long long size, const char *jws);
const char *ks_log_batch_head(const struct ks_log_batch *b, long long *size);
/* Before a change; after one that failed (and was rolled back), back to that point. */
void ks_log_batch_mark(struct ks_log_batch *b);
void ks_log_batch_undo(struct ks_log_batch *b);

/* The inclusion proof of entry seq in the tree of size, with its leaf and salt. */
int ks_log_proof_for(struct ks_req *r, long long domain_id, long long seq, long long size,
                     json_t **out, struct err *e);
/* The same with the entry's leaf and salt known (both taken: freed here). */
int ks_log_proof_leaf(struct ks_req *r, long long domain_id, long long seq, long long size,
                      char *leaf, char *salt, json_t **out, struct err *e);

/* webhook.c */
struct ks_webhooks;
struct ks_webhooks *ks_webhooks_start(struct ks *ks, struct err *e);
void ks_webhooks_stop(struct ks_webhooks *w); /* accepts NULL */
void ks_webhook_add(struct ks_req *r, const char *domain);
void ks_webhook_delete(struct ks_req *r, const char *domain, const char *id);

/* A canonical UUID (36 characters, hex and dashes). */
int ks_is_uuid(const char *s);

/* auth.c: check the bearer token; fill e and return -1 when it does not authorise. */
int ks_auth_operator(struct ks_req *r, struct err *e);
int ks_auth_domain_admin(struct ks_req *r, const struct ks_domain *d, struct err *e);

/* signer_client.c: the signer's requests (ks_signer_proto.h), from the HTTPS process.  Each
 * fails with the signer's own refusal, or ERR_TEMP "signer_unavailable" (503). */
struct frame_client *ks_signer_client_new(const char *socket_path, struct err *e);
int ks_signer_register(struct ks *ks, const char *domain, const char *const pem[3],
                       const char *policy, const char *mode, const char *operator_token,
                       char pin[CRYPTO_PIN_MAX], char admin_token[CRYPTO_TOKEN_LEN], struct err *e);
int ks_signer_token(struct ks *ks, const char *domain, const char *admin_token, const char *address,
                    long long ttl, char token[CRYPTO_TOKEN_LEN], char expires[32], struct err *e);
int ks_signer_enroll(struct ks *ks, const char *domain, const char *token, const char *csr,
                     char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN], struct err *e);
int ks_signer_server(struct ks *ks, const char *domain, const char *admin_token,
                     const char *purpose, const char *csr, char key_id[CRYPTO_UUID_LEN],
                     struct err *e);
int ks_signer_encrypt(struct ks *ks, const char *domain, const char *challenge, const char *answer,
                      const char *token, const char *jws, char key_id[CRYPTO_UUID_LEN],
                      char secret[CRYPTO_TOKEN_LEN], struct err *e);
int ks_signer_renew(struct ks *ks, const char *domain, const char *jws,
                    char key_id[CRYPTO_UUID_LEN], char secret[CRYPTO_TOKEN_LEN], struct err *e);
/* The certificate of a ready ACME order: the signer checks the order itself (acme_issue.c). */
int ks_signer_acme(struct ks *ks, const char *domain, const char *order_id, const char *csr,
                   char key_id[CRYPTO_UUID_LEN], struct err *e);
unsigned char *ks_signer_crl(struct ks *ks, const char *domain, size_t *len, struct err *e);
char *ks_signer_route(struct ks *ks, const char *domain, const char *name, struct err *e);
/* Set the route of name (route_json: its checked body, ASCII) in the signer's next batch,
 * committed with the head that covers it: the signed answer, proof included (route_set.c). */
char *ks_signer_route_set(struct ks *ks, const char *domain, const char *name, const char *set_by,
                          const char *route_json, struct err *e);
int ks_signer_publish(struct ks *ks, const char *domain, long long *size, struct err *e);

/* domain.c: policy "isp", "corporate" or "groups", mode "enforce" or "testing" (NULL: unset). */
int ks_check_policy_words(const char *policy, const char *mode, struct err *e);

/* The domain of the URL, loaded and checked; NULL after replying with the error. */
struct ks_domain *ks_load_domain(struct ks_req *r, const char *name);

/* A lowercase copy (malloc'd; NULL when out of memory). */
char *ks_lower_dup(const char *s);
/* An address as a client wrote it, canonical (name_canon_address: case, NFC, U-labels
 * into A-labels), malloc'ed; NULL with e set (e untouched: out of memory). */
char *ks_address_canon(const char *raw, struct err *e);
/* The part after the last '@' ("" when there is none). */
const char *ks_address_domain(const char *addr);
/* The address of the URL, lowercased and checked, with its domain loaded into *d;
 * NULL after replying with the error.  The caller frees both. */
char *ks_address_arg(struct ks_req *r, const char *raw, struct ks_domain **d);

#endif
