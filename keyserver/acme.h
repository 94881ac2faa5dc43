/*
 * acme.h - the key server as an ACME (RFC 8555) server for the hosts of the domains it
 * serves: certbot and every other ACME client obtain, renew and revoke MTA and key-server
 * certificates at https://<host>/acme/<domain>/directory (PROTOCOL.md §5.4).
 *
 * Request flow (acme_router.c): every ACME answer carries a fresh Replay-Nonce; a POST is
 * application/jose+json, a flattened JWS (acme_request.c parses it, pure) whose protected
 * header names the URL it was sent to and a nonce this server handed out (used once,
 * acme_nonce.c), signed by the account key, given as "jwk" (newAccount, revokeCert) or
 * named by the account URL in "kid" (everything else).  The handlers: accounts
 * (acme_account.c), orders, finalisation and the certificate (acme_order.c),
 * authorisations and challenges (acme_authz.c, validated by acme_validate.c), revocation
 * (acme_revoke.c).  Refusals are RFC 7807 problem documents (acme_problem.c) whose
 * type is urn:ietf:params:acme:error:<err.code> for the ACME codes, so a handler sets an
 * err with the ACME code as it would any other.
 *
 * One name per order and one authorisation per order; a certificate is issued by the
 * signer (ks_signer_acme -> acme_issue.c), which checks the order, its authorisation and
 * its account in the database itself before it signs inside the domain's constraints.
 */
#ifndef KS_ACME_H
#define KS_ACME_H

#include <jansson.h>
#include <openssl/evp.h>

#include "ks.h"
#include "pki/jwk.h"

#define ACME_URL_MAX 512
#define ACME_NONCE_MAX 64
#define ACME_TOKEN_LEN 44   /* 32 random bytes, base64url, + NUL */
#define ACME_NONCE_TTL 3600 /* seconds a nonce stays usable */
#define ACME_ORDER_TTL (7 * 86400)

/* ---- acme_request.c: a signed request, parsed (pure: the fuzz target's subject) ---- */
struct acme_jws {
	char alg[8]; /* "ES256", "RS256" or "EdDSA" */
	char nonce[ACME_NONCE_MAX];
	char url[ACME_URL_MAX];
	char kid[ACME_URL_MAX]; /* "" when the key is given as jwk */
	json_t *jwk;            /* or NULL when kid names the account */
	json_t *payload;        /* NULL for POST-as-GET (an empty payload) */
	char *signing_input;    /* protected "." payload, as sent */
	char *signature;        /* base64url */
};
/* Parse body (flattened JWS JSON); ERR_INPUT "malformed" (or "badSignatureAlgorithm")
 * names what is wrong.  Nothing is verified here. */
int acme_jws_parse(const char *body, size_t len, struct acme_jws *out, struct err *e);
void acme_jws_free(struct acme_jws *j); /* accepts a zeroed one */
/* The signature verifies with key; ERR_INPUT "malformed" otherwise (RFC 8555 §6.2). */
int acme_jws_verify(const struct acme_jws *j, EVP_PKEY *key, struct err *e);
/* A payload member as a string (NULL when absent or not a string). */
const char *acme_payload_str(const struct acme_jws *j, const char *name);

/* ---- acme_router.c: one request's context ---- */
struct acme_account {
	char id[CRYPTO_UUID_LEN];
	char status[16];
	char thumbprint[JWK_THUMBPRINT_LEN];
	json_t *jwk;     /* owned */
	json_t *contact; /* owned, an array */
};
void acme_account_clear(struct acme_account *a);

/* An order with its one authorisation (store_acme.c reads and writes them). */
struct acme_order {
	char id[CRYPTO_UUID_LEN];
	char account_id[CRYPTO_UUID_LEN];
	char name[DNS_DOMAIN_MAX];
	char purpose[16];
	char status[16];       /* pending, ready, processing, valid, invalid */
	char authz_status[16]; /* pending, processing (being validated), valid, invalid */
	char expires[32];      /* RFC 3339 */
	int expired;
	char token[ACME_TOKEN_LEN];
	char chall_type[16];          /* the challenge answered ("" when none yet) */
	char validated[32];           /* RFC 3339, "" when not */
	char error[256];              /* why the authorisation failed, "" when it did not */
	char key_id[CRYPTO_UUID_LEN]; /* the certificate, "" until issued */
	char error_type[32];          /* its ACME error type ("" for incorrectResponse) */
};

/* A validation claimed from the queue (store_acme_queue.c). */
struct acme_job {
	char order_id[CRYPTO_UUID_LEN];
	char name[DNS_DOMAIN_MAX];
	char token[ACME_TOKEN_LEN];
	char type[16];
	char thumbprint[JWK_THUMBPRINT_LEN]; /* the ordering account's key */
	int attempts;                        /* claims so far, this one included */
};

struct acme_req {
	struct ks_req *r;
	struct ks_domain *d;
	char base[ACME_URL_MAX];  /* https://<host>/acme/<domain> */
	struct acme_jws jws;      /* a POST's parsed request */
	struct acme_account acct; /* the authenticated account (kid requests) */
	int have_account;
	int retry_after; /* a refusal's Retry-After, seconds; 0: by its kind */
};
/* Dispatch a request under /acme/ (router.c sends them here). */
void ks_acme_dispatch(struct ks_req *r);

/* ---- acme_problem.c ---- */
/* base + "/" + the parts joined by "/", into out. */
void acme_url(const struct acme_req *q, char out[ACME_URL_MAX], const char *a, const char *b,
              const char *c);
/* Reply with the problem document of e (status from its kind; type from its code). */
void acme_problem(struct acme_req *q, const struct err *e);
/* Reply 200/201 with a JSON body, and a Location when loc is not NULL. */
void acme_reply(struct acme_req *q, int status, json_t *body, const char *loc);

/* ---- acme_nonce.c ---- */
/* A fresh nonce, stored, set as the Replay-Nonce header of the reply. */
int acme_nonce_issue(struct acme_req *q, struct err *e);
/* Use the request's nonce once: ERR_INPUT "badNonce" when unknown, used or expired. */
int acme_nonce_use(struct acme_req *q, const char *nonce, struct err *e);

/* ---- the resources ---- */
void acme_new_account(struct acme_req *q); /* acme_account.c */
void acme_account_post(struct acme_req *q, const char *id);
void acme_new_order(struct acme_req *q, const char *purpose); /* acme_order.c */
void acme_order_get(struct acme_req *q, const char *id);
void acme_order_finalize(struct acme_req *q, const char *id);
void acme_cert_get(struct acme_req *q, const char *id);
/* The order id of this domain, the signer's account's own; "malformed" 404 otherwise. */
int acme_order_load(struct acme_req *q, const char *id, struct acme_order *o, struct err *e);
json_t *acme_order_json(const struct acme_req *q, const struct acme_order *o);
void acme_authz_get(struct acme_req *q, const char *id); /* acme_authz.c */
void acme_challenge_post(struct acme_req *q, const char *id, const char *type);
void acme_revoke_cert(struct acme_req *q); /* acme_revoke.c */

/* ---- acme_validator.c: the validation threads (RFC 8555 §7.5.1) ----
 * A challenge POST only marks the authorisation 'processing' (the queue is the database,
 * store_acme_queue.c); acme_validation_workers threads of each node claim such rows, run
 * acme_validate and record valid or invalid, so no request worker waits on a client's
 * host.  Started by main.c when acme is on; wake tells them a job was queued. */
struct acme_validators;
struct acme_validators *acme_validators_start(struct ks *ks, struct err *e);
void acme_validators_wake(struct acme_validators *v); /* accepts NULL */
void acme_validators_stop(struct acme_validators *v); /* accepts NULL */
/* Seconds a claim lasts: longer than one validation can take (then it is retried). */
long long acme_validation_lease(const struct ks_settings *cfg);
#define ACME_VALIDATION_ATTEMPTS 3 /* claims before an interrupted validation is invalid */

/* ---- acme_validate.c: does name show key_auth? ---- */
/* http-01: GET http://name:port/.well-known/acme-challenge/<token> answers key_auth;
 * dns-01: a TXT of _acme-challenge.<name> is base64url(SHA-256(key_auth)).  Names are
 * resolved through the acme_resolver setting; acme_validation_timeout bounds the fetch
 * (and each DNS query, at most 3 s).  ERR_UNPROC "incorrectResponse",
 * "connection", "dns" or "unauthorized" say why not. */
int acme_validate(const struct ks_settings *cfg, const char *type, const char *name,
                  const char *token, const char *key_auth, struct err *e);

#endif
