/*
 * acme_revoke.c - revokeCert (RFC 8555 §7.6): signed either by the account that ordered
 * the certificate (kid; logged as method "acme") or by the certificate's own key (jwk;
 * method "key").  The revocation is the key server's own (revoke.c): the CRL, the
 * lookups and the log all show it.
 */
#include <stdlib.h>
#include <string.h>

#include "acme.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "store.h"

/* The payload's certificate (base64url DER) and its row in this domain, by fingerprint. */
static X509 *revoked_cert(struct acme_req *q, char key_id[CRYPTO_UUID_LEN], struct err *e)
{
	const char *b64 = acme_payload_str(&q->jws, "certificate");
	size_t len = 0;
	uint8_t *der = b64 != NULL ? crypto_b64url_decode(b64, &len) : NULL;
	const unsigned char *p = der;
	X509 *c = der != NULL ? d2i_X509(NULL, &p, (long)len) : NULL;
	char fpr[CERT_FPR_LEN];
	struct ks_cert *row = NULL;

	if (c == NULL || p != der + len) {
		err_set(e, ERR_INPUT, "malformed",
		        "certificate is not a base64url DER certificate");
		goto fail;
	}
	if (cert_fingerprint(c, fpr, e) < 0 ||
	    (row = ks_store_cert_by(q->r->db, "fingerprint", fpr, e)) == NULL ||
	    row->domain_id != q->d->id) {
		err_set(e, ERR_NOTFOUND, "malformed", "%s issued no such certificate", q->d->name);
		goto fail;
	}
	snprintf(key_id, CRYPTO_UUID_LEN, "%s", row->key_id);
	ks_cert_free(row);
	free(der);
	return c;
fail:
	ks_cert_free(row);
	X509_free(c);
	free(der);
	return NULL;
}

/* reason: absent (unspecified) or a CRL reason code we issue. */
static int reason_of(struct acme_req *q, int *reason, struct err *e)
{
	json_t *v = json_object_get(q->jws.payload, "reason");

	*reason = CRL_UNSPECIFIED;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10 ||
	    crl_reason_name((int)json_integer_value(v)) == NULL)
		return err_set(e, ERR_INPUT, "badRevocationReason",
		               "reason is one of 0, 1, 3, 4, 5, 9 (RFC 5280)");
	*reason = (int)json_integer_value(v);
	return 0;
}

static int authorise(struct acme_req *q, X509 *c, const char *key_id, const char **method,
                     struct err *e)
{
	EVP_PKEY *key;
	int ok, owned;

	if (q->jws.jwk != NULL) {
		*method = "key";
		if ((key = jwk_to_key(q->jws.jwk, e)) == NULL)
			return -1;
		ok = crypto_key_matches(key, X509_get0_pubkey(c));
		EVP_PKEY_free(key);
	} else {
		*method = "acme";
		if ((owned = ks_store_acme_account_ordered(q->r->db, q->acct.id, key_id, e)) < 0)
			return -1;
		ok = owned;
	}
	return ok ? 0
	          : err_set(e, ERR_FORBIDDEN, "unauthorized",
	                    "neither the certificate's key nor the account that ordered it "
	                    "signed this request");
}

void acme_revoke_cert(struct acme_req *q)
{
	char key_id[CRYPTO_UUID_LEN];
	const char *method = NULL;
	struct err e = {0};
	int reason;
	X509 *c = NULL;

	if (q->jws.payload == NULL) {
		err_set(&e, ERR_INPUT, "malformed", "revokeCert needs a payload");
		goto fail;
	}
	if ((c = revoked_cert(q, key_id, &e)) == NULL || reason_of(q, &reason, &e) < 0 ||
	    authorise(q, c, key_id, &method, &e) < 0 ||
	    ks_revoke_authorised(q->r, q->d, key_id, method, reason, &e) < 0) {
		if (strcmp(e.code, "already_revoked") == 0)
			err_set(&e, ERR_INPUT, "alreadyRevoked",
			        "the certificate is already revoked");
		goto fail;
	}
	X509_free(c);
	http_reply_text(q->r->resp, 200, "application/json", strdup("{}"), 2);
	return;
fail:
	X509_free(c);
	acme_problem(q, &e);
}
