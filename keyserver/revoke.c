/*
 * revoke.c - revocation, three ways: by the key itself (a request it signed,
 * which may be made in advance and kept offline like a PGP revocation
 * certificate), by the revocation secret handed out at enrollment (for a lost
 * key), and by the domain admin.  Published as a CRL signed by the issuer, as
 * the status in every lookup, and as a log entry that the feed carries.
 */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/crypto.h"
#include "pki/jws.h"
#include "core/log.h"
#include "store.h"

static int reason_of(json_t *obj, int *reason, struct err *e)
{
	json_t *v = json_object_get(obj, "reason");

	*reason = CRL_UNSPECIFIED;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return err_set(e, ERR_INPUT, "bad_reason", "\"reason\" must be a reason name");
	return crl_reason_parse(json_string_value(v), reason, e);
}

/* The request is a JWS by the key being revoked: payload names that key. */
static int auth_by_key(struct ks_req *r, const struct ks_domain *d, const struct ks_cert_row *t,
                       int *reason, struct err *e)
{
	const char *pins[8];
	int npins = 0;
	size_t i;
	json_t *p, *payload = NULL;
	struct jws_verified v = {0};
	char fpr[CERT_FPR_LEN];
	const char *type, *kid;
	int rc = -1;

	json_array_foreach(d->pins, i, p)
	{
		if (npins < 8 && json_is_string(p))
			pins[npins++] = json_string_value(p);
	}
	if (jws_verify(r->http->body, r->http->body_len, pins, npins, &v, e) < 0)
		return -1;
	if (cert_fingerprint(v.leaf, fpr, e) < 0)
		goto out;
	if (strcmp(fpr, t->fingerprint) != 0) {
		err_set(e, ERR_FORBIDDEN, "wrong_key",
		        "the revocation is signed by another key than the one it revokes");
		goto out;
	}
	payload = json_loadb(v.payload, v.payload_len, JSON_REJECT_DUPLICATES, NULL);
	type = json_string_value(json_object_get(payload, "type"));
	kid = json_string_value(json_object_get(payload, "key_id"));
	if (type == NULL || strcmp(type, "anchor-revoke") != 0 || kid == NULL ||
	    strcmp(kid, t->key_id) != 0) {
		err_set(e, ERR_INPUT, "bad_request",
		        "the signed payload must be {\"type\": \"anchor-revoke\", \"key_id\": "
		        "<this key id>, \"reason\": ...}");
		goto out;
	}
	rc = reason_of(payload, reason, e);
out:
	json_decref(payload);
	jws_verified_free(&v);
	return rc;
}

static int auth_by_secret(const struct ks_cert_row *t, const char *secret, struct err *e)
{
	char hash[CRYPTO_HEX256_LEN];

	crypto_token_hash(secret, hash);
	if (t->secret_hash[0] == '\0' ||
	    !crypto_ct_equal(hash, t->secret_hash, CRYPTO_HEX256_LEN - 1))
		return err_set(e, ERR_FORBIDDEN, "wrong_secret",
		               "the revocation secret is not the one issued with this key");
	return 0;
}

/* Decide who asks, and with which reason. */
static int authorise(struct ks_req *r, const struct ks_domain *d, const struct ks_cert_row *t,
                     const char **method, int *reason, struct err *e)
{
	json_t *body = r->http->json;
	const char *secret;

	if (json_object_get(body, "protected") != NULL) {
		*method = "key";
		return auth_by_key(r, d, t, reason, e);
	}
	if ((secret = http_json_str(body, "secret", 0, e)) != NULL) {
		*method = "secret";
		return reason_of(body, reason, e) < 0 ? -1 : auth_by_secret(t, secret, e);
	}
	if (e->kind != ERR_NONE)
		return -1;
	*method = "admin";
	if (http_bearer_token(r->http) == NULL)
		return err_set(e, ERR_AUTH, "unauthorized",
		               "revoke with a request signed by the key, the revocation secret, "
		               "or the domain admin's token");
	return ks_auth_domain_admin(r, d, e) < 0 ? -1 : reason_of(body, reason, e);
}

static int record_revocation(struct ks_req *r, const struct ks_domain *d,
                             const struct ks_cert_row *t, const char *method, int reason,
                             struct err *e)
{
	json_t *details = json_pack("{s:s, s:s, s:s}", "fingerprint", t->fingerprint, "reason",
	                            crl_reason_name(reason), "method", method);
	struct ks_event ev = {
	    .type = "revoked", .name = t->name, .key_id = t->key_id, .details = details};
	int rc;

	rc = ks_store_cert_revoke(r->db, d->id, t, reason, method, e) < 0 ||
	             ks_log_append(r, d, &ev, NULL, e) < 0 ||
	             ks_store_notify_change(r->db, d->name, e) < 0
	         ? -1
	         : 0;
	json_decref(details);
	return rc;
}

int ks_revoke_all_of(struct ks_req *r, const struct ks_domain *d, const char *name, int reason,
                     long long *n, struct err *e)
{
	struct ks_cert_row *rows = NULL;
	int count, rc = 0;

	*n = 0;
	/* The domain before the rows, as issuance and renewal take them (see ks_revoke). */
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    (count = ks_store_certs_to_revoke(r->db, d, name, &rows, e)) < 0)
		return -1;
	for (int i = 0; rc == 0 && i < count; i++)
		rc = record_revocation(r, d, &rows[i], "admin", reason, e);
	if (rc == 0)
		*n = count;
	free(rows);
	return rc;
}

/* Inside the transaction: authorise on an unlocked read of the row, then lock the
 * domain and only then the row.  Issuance, enrollment and renewal take the domain's
 * lock before any certificate row; locking the row first (and the domain at the log
 * append) let a revocation and a renewal of one name each wait for the other until
 * PostgreSQL aborted one as a deadlock.  The row is read again under the lock, so a
 * concurrent revocation or supersession is seen. */
static int revoke_locked(struct ks_req *r, const char *key_id, struct ks_cert_row *t,
                         struct ks_domain **d, const char **method, int *reason, struct err *e)
{
	if (ks_store_cert_get(r->db, key_id, t, e) < 0 ||
	    (*d = ks_store_domain(r->db, t->domain, e)) == NULL ||
	    authorise(r, *d, t, method, reason, e) < 0 ||
	    ks_store_domain_lock(r->db, (*d)->id, e) < 0 ||
	    ks_store_cert_lock(r->db, key_id, t, e) < 0)
		return -1;
	if (strcmp(t->status, "revoked") == 0)
		return err_set(e, ERR_CONFLICT, "already_revoked", "the key %s is already revoked",
		               t->key_id);
	return record_revocation(r, *d, t, *method, *reason, e);
}

void ks_revoke(struct ks_req *r, const char *key_id)
{
	struct ks_cert_row t = {0};
	struct ks_domain *d = NULL;
	const char *method = "?";
	struct err e = {0};
	int reason = 0;

	if (!ks_is_uuid(key_id)) {
		err_set(&e, ERR_INPUT, "bad_request", "a key id is a UUID");
		ks_fail(r, &e);
		return;
	}
	if (db_begin(r->db, &e) < 0 || revoke_locked(r, key_id, &t, &d, &method, &reason, &e) < 0 ||
	    db_commit(r->db, &e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	log_info(r->http->reqid, "revoked key_id=%s of %s by %s, reason %s", t.key_id, t.name,
	         method, crl_reason_name(reason));
	ks_lookup_key(r, t.key_id, 0);
	ks_domain_free(d);
	return;
fail:
	db_rollback(r->db);
	ks_domain_free(d);
	ks_fail(r, &e);
}

int ks_revoke_authorised(struct ks_req *r, const struct ks_domain *d, const char *key_id,
                         const char *method, int reason, struct err *e)
{
	struct ks_cert_row t = {0};

	if (db_begin(r->db, e) < 0)
		return -1;
	/* The domain's lock before the row, as revoke_locked takes them. */
	if (ks_store_domain_lock(r->db, d->id, e) < 0 ||
	    ks_store_cert_lock(r->db, key_id, &t, e) < 0)
		goto fail;
	if (strcmp(t.status, "revoked") == 0) {
		err_set(e, ERR_CONFLICT, "already_revoked", "the key %s is already revoked",
		        key_id);
		goto fail;
	}
	if (record_revocation(r, d, &t, method, reason, e) < 0 || db_commit(r->db, e) < 0)
		goto fail;
	ks_cache_invalidate(r->ks->cache);
	ks_log_publish(r, d);
	log_info(r->http->reqid, "revoked key_id=%s of %s by %s, reason %s", t.key_id, t.name,
	         method, crl_reason_name(reason));
	return 0;
fail:
	db_rollback(r->db);
	return -1;
}

/* ---- the CRL ---- */

/* The signer builds the CRL from the revocation rows and signs it (publish.c). */
void ks_crl_get(struct ks_req *r, const char *domain, int pem)
{
	struct ks_domain *d = ks_load_domain(r, domain);
	X509_CRL *crl = NULL;
	struct err e = {0};
	size_t len = 0;
	unsigned char *der;
	const unsigned char *p;
	char *text;

	if (d == NULL)
		return;
	if ((der = ks_signer_crl(r->ks, d->name, &len, &e)) == NULL) {
		ks_fail(r, &e);
		goto out;
	}
	if (!pem) {
		http_reply_text(r->resp, 200, "application/pkix-crl", (char *)der, len);
		der = NULL; /* the reply owns it */
		goto out;
	}
	p = der;
	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL) {
		err_set(&e, ERR_TEMP, "signer_garbage", "the signer's CRL does not parse");
		ks_fail(r, &e);
	} else if ((text = crl_to_pem(crl, &e)) == NULL) {
		ks_fail(r, &e);
	} else {
		http_reply_text(r->resp, 200, "application/x-pem-file", text, strlen(text));
	}
out:
	X509_CRL_free(crl);
	free(der);
	ks_domain_free(d);
}
