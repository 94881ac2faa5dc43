/*
 * enc_issue.c - the signer's side of an encryption enrollment (PROTOCOL.md §4.1).
 *
 * The key was shown a nonce encrypted to it (enc.c made the challenge); its holder
 * answers with the nonce.  Inside the issuance's transaction the signer locks the
 * challenge row, compares the answer's SHA-256 with the stored one, and checks the
 * authorisation itself: an enrollment token of the address (consumed), or a request
 * naming this address, device and key, signed by a current, unrevoked smime
 * certificate of the address.  Any refusal rolls back all of it: no certificate, the
 * token unused, the challenge still open.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pki/cert.h"
#include "pki/crypto.h"
#include "pki/enckey.h"
#include "pki/jws.h"
#include "core/log.h"
#include "enc_request.h"
#include "ks_signer.h"
#include "store.h"

struct enc_auth {
	const struct ks_signer_domain *sd;
	struct ks_enc_challenge ch; /* as read before the transaction */
	const char *answer;
	EVP_PKEY *pub;                 /* the challenge's key */
	char signer_fpr[CERT_FPR_LEN]; /* a signed request's signer, or "" */
};

/* The challenge row as it is now (unlocked): the key and names the issuance is for. */
static int challenge_read(struct db *db, struct enc_auth *a, const char *id, struct err *e)
{
	int found = ks_store_enc_challenge_lock(db, a->sd->d->id, id, &a->ch, e);

	if (found < 0)
		return -1;
	if (found == 0)
		return err_set(e, ERR_NOTFOUND, "challenge_unknown",
		               "no such encryption challenge in %s; ask for a new one",
		               a->sd->d->name);
	a->pub = enckey_public_from_pem(a->ch.public_key, strlen(a->ch.public_key), e);
	return a->pub ? enckey_check_allowed(a->pub, e) : -1;
}

/* The signed request verifies to the domain's root and names this challenge's
 * address, device and key; its signer's fingerprint is kept for the locked check. */
static int request_verify(struct enc_auth *a, const char *jws, struct err *e)
{
	char pin[CRYPTO_PIN_MAX];
	const char *pins[1] = {pin};
	struct jws_verified v = {0};
	struct ks_enc_request rq;
	json_t *p = NULL;
	EVP_PKEY *named = NULL;
	int rc = -1;

	if (crypto_key_pin(X509_get0_pubkey(a->sd->root), pin, e) < 0 ||
	    jws_verify(jws, strlen(jws), pins, 1, &v, e) < 0)
		goto out;
	if (v.typ == NULL || strcmp(v.typ, KS_ENC_JWS_TYP) != 0) {
		err_set(e, ERR_INPUT, "bad_request", "the request is a JWS of typ " KS_ENC_JWS_TYP);
		goto out;
	}
	p = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	if (ks_enc_request_parse(p, (long long)time(NULL), &rq, e) < 0)
		goto out;
	named = enckey_public_from_pem(rq.public_key, strlen(rq.public_key), e);
	if (named == NULL)
		goto out;
	if (strcmp(rq.address, a->ch.address) != 0 || strcmp(rq.device, a->ch.device) != 0 ||
	    !crypto_key_matches(named, a->pub)) {
		err_set(e, ERR_INPUT, "request_mismatch",
		        "the signed request names another address, device or key than the "
		        "challenge");
		goto out;
	}
	rc = cert_fingerprint(v.leaf, a->signer_fpr, e);
out:
	EVP_PKEY_free(named);
	json_decref(p);
	jws_verified_free(&v);
	return rc;
}

/* Inside the transaction: the signing certificate's row is a current smime
 * certificate of the address. */
static int signer_current(struct enc_auth *a, struct db *db, struct err *e)
{
	struct ks_renew_row row;
	int found = ks_store_cert_for_renewal(db, a->sd->d->id, a->signer_fpr, &row, e);

	if (found < 0)
		return -1;
	if (found == 0 || strcmp(row.name, a->ch.address) != 0 || strcmp(row.purpose, "smime") != 0)
		return err_set(e, ERR_FORBIDDEN, "not_current_key",
		               "the request is not signed by a certificate of %s", a->ch.address);
	if (strcmp(row.status, "revoked") == 0)
		return err_set(e, ERR_FORBIDDEN, "key_revoked",
		               "the signing key %s is revoked: it authorises no new device",
		               row.key_id);
	if (strcmp(row.status, "current") != 0)
		return err_set(e, ERR_FORBIDDEN, "key_superseded",
		               "the signing key %s was superseded; sign with the current key",
		               row.key_id);
	return 0;
}

/* The hook's check, after the domain's lock: the challenge, locked, is open and
 * answered; a signed request's signer is current. */
static int enc_check(void *arg, struct db *db, const char *name, struct err *e)
{
	struct enc_auth *a = arg;
	struct ks_enc_challenge now;
	char hash[CRYPTO_HEX256_LEN];
	int found, same;

	(void)name;
	found = ks_store_enc_challenge_lock(db, a->sd->d->id, a->ch.id, &now, e);
	same = found == 1 && strcmp(now.public_key, a->ch.public_key) == 0;
	ks_enc_challenge_clear(&now);
	if (found < 0)
		return -1;
	if (!same)
		return err_set(e, ERR_NOTFOUND, "challenge_unknown", "the challenge is gone");
	if (now.used)
		return err_set(e, ERR_CONFLICT, "challenge_used",
		               "the challenge was already answered; ask for a new one");
	if (now.expired)
		return err_set(e, ERR_GONE, "challenge_expired",
		               "the challenge has expired (it lasts %d seconds); ask for a new one",
		               KS_ENC_CHALLENGE_TTL);
	crypto_token_hash(a->answer, hash);
	if (!crypto_ct_equal(hash, now.answer_hash, CRYPTO_HEX256_LEN - 1))
		return err_set(e, ERR_FORBIDDEN, "challenge_failed",
		               "the answer is not the challenge's nonce: the key was not shown to "
		               "be held");
	return a->signer_fpr[0] != '\0' ? signer_current(a, db, e) : 0;
}

static int enc_done(void *arg, struct db *db, const char *key_id, struct err *e)
{
	const struct enc_auth *a = arg;

	(void)key_id;
	return ks_store_enc_challenge_use(db, a->ch.id, e);
}

int ks_issue_encryption(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                        const char *challenge, const char *answer, const char *token,
                        const char *jws, char key_id[CRYPTO_UUID_LEN],
                        char secret[CRYPTO_TOKEN_LEN], struct err *e)
{
	struct enc_auth a = {.sd = sd, .answer = answer};
	struct ks_issue_hook hook = {.check = enc_check, .done = enc_done, .arg = &a};
	struct ks_issue_key k = {.token = token && *token ? token : NULL, .hook = &hook};
	int rc = -1;

	if ((k.token == NULL) == (jws == NULL || *jws == '\0')) {
		err_set(e, ERR_INPUT, "bad_request",
		        "an encryption enrollment carries an enrollment token or a signed "
		        "request, one of them");
		return -1;
	}
	if (challenge_read(db, &a, challenge, e) < 0 ||
	    (k.token == NULL && request_verify(&a, jws, e) < 0))
		goto out;
	k.name = a.ch.address;
	k.device = a.ch.device;
	k.pub = a.pub;
	rc = ks_issue_user_key(sg, db, sd, &k, key_id, secret, e);
out:
	EVP_PKEY_free(a.pub);
	ks_enc_challenge_clear(&a.ch);
	return rc;
}
