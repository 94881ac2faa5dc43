/*
 * enc.c - the HTTPS side of encryption certificates (PROTOCOL.md §4.1).
 *
 * POST /v1/domains/{d}/encryption/challenge {"address", "device", "public_key"}: the key
 * is checked (X25519, P-256, RSA >= 2048) and a random nonce encrypted to it
 * (pki/enckey.h); the row keeps the answer's SHA-256.  Nothing is issued here.
 * POST /v1/domains/{d}/encryption {"challenge", "answer", "token" | "request"}: the
 * signer checks the answer and the authorisation itself (enc_issue.c) and issues.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache.h"
#include "core/log.h"
#include "enc_request.h"
#include "pki/crypto.h"
#include "pki/enckey.h"
#include "pki/name.h"
#include "store.h"

/* The address and device of a challenge request, lowercased and checked. */
static int challenge_names(struct ks_req *r, const struct ks_domain *d, char **addr,
                           const char **device, struct err *e)
{
	const char *in = http_json_str(r->http->json, "address", 1, e);

	*device = http_json_str(r->http->json, "device", 0, e);
	if (e->kind != ERR_NONE || in == NULL)
		return -1;
	if (*device == NULL)
		*device = KS_ENC_DEVICE_DEFAULT;
	if ((*addr = ks_lower_dup(in)) == NULL || name_check_address(*addr, e) < 0 ||
	    ks_enc_device_check(*device, e) < 0)
		return -1;
	if (strcmp(ks_address_domain(*addr), d->name) != 0)
		return err_set(e, ERR_INPUT, "address_outside_domain", "%s is not an address of %s",
		               *addr, d->name);
	return 0;
}

/* Store the challenge and seal its nonce to pub: the envelope (malloc'd) or NULL. */
static char *challenge_make(struct ks_req *r, const struct ks_domain *d, EVP_PKEY *pub,
                            struct ks_enc_challenge *c, struct err *e)
{
	uint8_t nonce[ENCKEY_NONCE_LEN];
	char *answer = NULL, *env = NULL;

	if (crypto_uuid_v4(c->id, e) < 0 || crypto_random_bytes(nonce, sizeof(nonce), e) < 0)
		return NULL;
	if ((answer = crypto_b64url_encode(nonce, sizeof(nonce))) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	crypto_token_hash(answer, c->answer_hash);
	if ((env = enckey_challenge_seal(pub, nonce, sizeof(nonce), e)) == NULL)
		goto out;
	if (ks_store_enc_challenge_add(r->db, d->id, c, e) < 0) {
		free(env);
		env = NULL;
	}
out:
	OPENSSL_cleanse(nonce, sizeof(nonce));
	if (answer != NULL)
		OPENSSL_cleanse(answer, strlen(answer));
	free(answer);
	return env;
}

void ks_enc_new_challenge(struct ks_req *r, const char *domain)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	struct ks_enc_challenge c = {0};
	struct err e = {0};
	const char *device = NULL, *pem;
	char *addr = NULL, *env = NULL;
	EVP_PKEY *pub = NULL;

	if (d == NULL)
		return;
	if (challenge_names(r, d, &addr, &device, &e) < 0 ||
	    (pem = http_json_str(r->http->json, "public_key", 1, &e)) == NULL ||
	    (pub = enckey_public_from_pem(pem, strlen(pem), &e)) == NULL ||
	    enckey_check_allowed(pub, &e) < 0)
		goto fail;
	snprintf(c.address, sizeof(c.address), "%s", addr);
	snprintf(c.device, sizeof(c.device), "%s", device);
	/* Stored as we print it: the signer compares the key, not the client's text. */
	if ((c.public_key = crypto_key_public_to_pem(pub, &e)) == NULL ||
	    (env = challenge_make(r, d, pub, &c, &e)) == NULL)
		goto fail;
	http_reply_json(r->resp, 201,
	                json_pack("{s:s, s:s, s:s, s:s, s:o, s:i}", "challenge", c.id, "address",
	                          addr, "device", device, "algorithm", crypto_key_alg_name(pub),
	                          "envelope", json_loads(env, 0, NULL), "expires_in",
	                          KS_ENC_CHALLENGE_TTL));
	goto out;
fail:
	ks_fail(r, &e);
out:
	free(env);
	ks_enc_challenge_clear(&c);
	EVP_PKEY_free(pub);
	free(addr);
	ks_domain_free(d);
}

void ks_enc_enroll(struct ks_req *r, const char *domain)
{
	char key_id[CRYPTO_UUID_LEN], secret[CRYPTO_TOKEN_LEN];
	const char *challenge, *answer, *token, *request;
	struct ks_domain *d;
	struct err e = {0};

	if ((challenge = http_json_str(r->http->json, "challenge", 1, &e)) == NULL ||
	    (answer = http_json_str(r->http->json, "answer", 1, &e)) == NULL) {
		ks_fail(r, &e);
		return;
	}
	token = http_json_str(r->http->json, "token", 0, &e);
	request = http_json_str(r->http->json, "request", 0, &e);
	if (e.kind == ERR_NONE && (token == NULL) == (request == NULL))
		err_set(&e, ERR_INPUT, "bad_request",
		        "give \"token\" (an enrollment token) or \"request\" (signed by a current "
		        "key of the address), one of them");
	else if (e.kind == ERR_NONE && !ks_is_uuid(challenge))
		err_set(&e, ERR_INPUT, "bad_request", "\"challenge\" is the id the challenge gave");
	if (e.kind != ERR_NONE) {
		ks_fail(r, &e);
		return;
	}
	if ((d = ks_load_domain(r, domain)) == NULL)
		return;
	if (ks_signer_encrypt(r->ks, d->name, challenge, answer, token, request, key_id, secret,
	                      &e) < 0) {
		ks_domain_free(d);
		ks_fail(r, &e);
		return;
	}
	ks_cache_invalidate(r->ks->cache);
	atomic_fetch_add(&r->ks->enrollments, 1);
	log_info(r->http->reqid, "encryption certificate for an address of %s key_id=%s", d->name,
	         key_id);
	ks_issuance_reply(r, d, key_id, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	ks_domain_free(d);
}
