/*
 * enroll.c - the HTTPS side of issuance: enrollment tokens, user enrollment
 * (PKCS#10 proof of possession + one-time token), server certificates
 * issued by the domain admin, and renewal by the current key.
 *
 * The HTTPS process checks the shape of the request and hands it to the
 * signer process (issue.c), which checks the authorisation itself, issues
 * and commits; the answer is built here from the stored certificate, after
 * the commit, so an acknowledged certificate is durable.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"
#include "pki/cert.h"
#include "pki/name.h"
#include "pki/crypto.h"
#include "core/log.h"
#include "store.h"
#include "ks_signer_proto.h"

void ks_token_issue(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char token[CRYPTO_TOKEN_LEN], expires[32];
	struct err e = {0};
	const char *addr_in;
	char *addr = NULL;
	json_t *ttl_v;
	long long ttl = KS_TOKEN_TTL_DEFAULT;

	if (d == NULL)
		return;
	/* Checked here for a prompt answer, and again by the signer, which trusts no one. */
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (addr_in = http_json_str(r->http->json, "address", 1, &e)) == NULL)
		goto fail;
	ttl_v = json_object_get(r->http->json, "ttl");
	if (ttl_v != NULL) {
		if (!json_is_integer(ttl_v) || json_integer_value(ttl_v) < KS_TOKEN_TTL_MIN ||
		    json_integer_value(ttl_v) > KS_TOKEN_TTL_MAX) {
			err_set(&e, ERR_INPUT, "bad_request",
			        "\"ttl\" must be a whole number of seconds from %d to %d",
			        KS_TOKEN_TTL_MIN, KS_TOKEN_TTL_MAX);
			goto fail;
		}
		ttl = json_integer_value(ttl_v);
	}
	if ((addr = ks_address_canon(addr_in, &e)) == NULL)
		goto fail;
	if (strcmp(ks_address_domain(addr), d->name) != 0) {
		err_set(&e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s", addr,
		        d->name);
		goto fail;
	}
	if (ks_signer_token(r->ks, d->name, http_bearer_token(r->http), addr, ttl, token, expires,
	                    &e) < 0)
		goto fail;
	log_info(r->http->reqid, "enrollment token for %s expires %s", addr, expires);
	http_reply_json(
	    r->resp, 201,
	    json_pack("{s:s, s:s, s:s}", "token", token, "address", addr, "expires", expires));
	OPENSSL_cleanse(token, sizeof(token));
	free(addr);
	ks_domain_free(d);
	return;
fail:
	if (e.kind == ERR_NONE)
		err_set(&e, ERR_INTERNAL, "internal", "out of memory");
	free(addr);
	ks_domain_free(d);
	ks_fail(r, &e);
}

/* After the commit: the certificate object plus the chain up to the root. */
void ks_issuance_reply(struct ks_req *r, const struct ks_domain *d, const char *key_id,
                       const char *revocation_secret)
{
	struct err e = {0};
	struct ks_cert_answer a;
	json_t *head = NULL, *obj = NULL;

	/* The certificate, the newest head and the entry's leaf in one query, then the
	 * inclusion proof's nodes in another. */
	if (ks_store_cert_answer(r->db, key_id, &a, &e) == 0)
		obj = ks_log_cert_answer_json(r, &a, &head, &e);
	ks_cert_answer_free(&a);
	if (obj == NULL) {
		ks_fail(r, &e);
		return;
	}
	json_object_set_new(obj, "tree_head", head ? head : json_null());
	json_object_set_new(obj, "chain", json_pack("[s, s]", d->issuer_pem, d->root_pem));
	/* The lost-key revocation path: the user keeps this offline; we keep its hash. */
	if (revocation_secret != NULL && revocation_secret[0] != '\0')
		json_object_set_new(obj, "revocation_secret", json_string(revocation_secret));
	http_reply_json(r->resp, 201, obj);
}

void ks_enroll(struct ks_req *r, const char *domain)
{
	char key_id[CRYPTO_UUID_LEN], secret[CRYPTO_TOKEN_LEN];
	struct ks_domain *d;
	struct err e = {0};
	const char *token, *csr;

	if ((token = http_json_str(r->http->json, "token", 1, &e)) == NULL ||
	    (csr = http_json_str(r->http->json, "csr", 1, &e)) == NULL) {
		ks_fail(r, &e);
		return;
	}
	if ((d = ks_load_domain(r, domain)) == NULL)
		return;
	/* Longer than any token we make, and longer than the signer takes: unknown. */
	if (strlen(token) > KS_SIGNER_TOKEN_MAX) {
		err_set(&e, ERR_NOTFOUND, "token_unknown",
		        "the enrollment token is not known for %s", d->name);
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	if (ks_signer_enroll(r->ks, d->name, token, csr, key_id, secret, &e) < 0) {
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	ks_cache_invalidate(r->ks->cache);
	atomic_fetch_add(&r->ks->enrollments, 1);
	log_info(r->http->reqid, "enrolled an address of %s key_id=%s", d->name, key_id);
	ks_issuance_reply(r, d, key_id, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	ks_domain_free(d);
}

/* The signer verifies the request and decides; this side only passes it on, in the text
 * the holder signed, and answers from the stored certificate after the commit. */
void ks_renew(struct ks_req *r, const char *domain)
{
	char key_id[CRYPTO_UUID_LEN], secret[CRYPTO_TOKEN_LEN] = "";
	struct ks_domain *d;
	struct err e = {0};

	if (r->http->body == NULL || r->http->body_len == 0 ||
	    memchr(r->http->body, '\0', r->http->body_len) != NULL) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "the body must be the renewal request: a JWS signed by the current key");
		ks_fail(r, &e);
		return;
	}
	if ((d = ks_load_domain(r, domain)) == NULL)
		return;
	if (ks_signer_renew(r->ks, d->name, r->http->body, key_id, secret, &e) < 0) {
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "renewed a certificate of %s key_id=%s", d->name, key_id);
	ks_issuance_reply(r, d, key_id, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	ks_domain_free(d);
}

void ks_server_issue(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	char key_id[CRYPTO_UUID_LEN];
	struct err e = {0};
	const char *csr, *purpose;
	enum cert_purpose p;

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (csr = http_json_str(r->http->json, "csr", 1, &e)) == NULL ||
	    (purpose = http_json_str(r->http->json, "purpose", 1, &e)) == NULL ||
	    cert_purpose_parse(purpose, &p, &e) < 0)
		goto fail;
	if (p == CERT_PURPOSE_SMIME) {
		err_set(&e, ERR_INPUT, "bad_request",
		        "server certificates are for mta, keyserver or signing; users enroll");
		goto fail;
	}
	if (ks_signer_server(r->ks, d->name, http_bearer_token(r->http), cert_purpose_name(p), csr,
	                     key_id, &e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	log_info(r->http->reqid, "issued %s certificate for %s key_id=%s", purpose, d->name,
	         key_id);
	ks_issuance_reply(r, d, key_id, NULL);
	ks_domain_free(d);
	return;
fail:
	ks_domain_free(d);
	ks_fail(r, &e);
}

void ks_server_list(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct ks_cert_list *list = NULL;
	json_t *servers = NULL, *head = NULL;
	struct err e = {0};

	if (d == NULL)
		return;
	if (ks_auth_domain_admin(r, d, &e) < 0 ||
	    (list = ks_store_server_certs(r->db, d->id, &e)) == NULL ||
	    (servers = ks_log_certs_json(r, list, &head, &e)) == NULL) {
		ks_cert_list_free(list);
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	http_reply_json(r->resp, 200,
	                json_pack("{s:s, s:o, s:o}", "domain", d->name, "servers", servers,
	                          "tree_head", head ? head : json_null()));
	ks_cert_list_free(list);
	ks_domain_free(d);
}
