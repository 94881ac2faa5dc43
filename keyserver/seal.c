/*
 * seal.c - the signer's seals on the rows that authorise an issuance, and
 * opening a domain for signing.
 *
 * A seal is HMAC-SHA256 under a key derived from the KEK over a label and
 * the row's meaning (the domain name, the issuer certificate, the token's
 * hash, the address...), NUL-separated.  Only the signer holds the key, so
 * only the signer can write a row that it will later accept: the database
 * password, which the HTTPS process also holds, is not enough.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "pki/cert.h"
#include "core/log.h"
#include "ks_signer.h"
#include "store.h"

#define SEAL_MSG_MAX 4096

void ks_seal(const struct ks_signer *sg, const char *const *parts, int n, char out[KS_SEAL_HEX])
{
	unsigned char msg[SEAL_MSG_MAX], mac[32];
	size_t len = 0, maclen = 0;

	for (int k = 0; k < n; k++) {
		size_t l = strlen(parts[k]);
		if (len + l + 1 > sizeof(msg))
			l = sizeof(msg) - len - 1; /* never: every part is a bounded name or hash */
		memcpy(msg + len, parts[k], l);
		len += l;
		msg[len++] = '\0';
	}
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, sg->auth_key, sizeof(sg->auth_key), msg,
	              len, mac, sizeof(mac), &maclen) == NULL ||
	    maclen != sizeof(mac)) {
		/* A seal nobody can match: the row then authorises nothing. */
		memset(out, 'x', KS_SEAL_HEX - 1);
		out[KS_SEAL_HEX - 1] = '\0';
		return;
	}
	crypto_hex(mac, sizeof(mac), out);
}

int ks_seal_ok(const char *stored, const char *expected)
{
	return stored != NULL && strlen(stored) == KS_SEAL_HEX - 1 &&
	       crypto_ct_equal(stored, expected, KS_SEAL_HEX - 1);
}

void ks_seal_domain(const struct ks_signer *sg, const char *name, const char *root_fpr,
                    const char *issuer_fpr, char out[KS_SEAL_HEX])
{
	const char *parts[4] = {"anchor-domain-v1", name, root_fpr, issuer_fpr};
	ks_seal(sg, parts, 4, out);
}

void ks_seal_admin(const struct ks_signer *sg, const struct ks_signer_domain *sd,
                   const char *token_hash, char out[KS_SEAL_HEX])
{
	const char *parts[4] = {"anchor-admin-v1", sd->d->name, sd->issuer_fpr, token_hash};
	ks_seal(sg, parts, 4, out);
}

void ks_seal_enroll(const struct ks_signer *sg, const struct ks_signer_domain *sd,
                    const char *address, const char *token_hash, const char *expires,
                    char out[KS_SEAL_HEX])
{
	const char *parts[6] = {"anchor-enroll-v1", sd->d->name, sd->issuer_fpr, address,
	                        token_hash,         expires};
	ks_seal(sg, parts, 6, out);
}

int ks_cert_fpr_hex(X509 *c, char out[CRYPTO_HEX256_LEN], struct err *e)
{
	unsigned char *der = NULL;
	int len = i2d_X509(c, &der);

	if (len <= 0)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode a certificate");
	crypto_sha256_hex(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

int ks_signer_domain_open(struct ks_signer *sg, struct db *db, const char *name,
                          struct ks_signer_domain *sd, struct err *e)
{
	char want[KS_SEAL_HEX];
	struct ks_domain *d;
	int ok, memoised;

	memset(sd, 0, sizeof(*sd));
	if ((sd->d = d = ks_store_domain(db, name, e)) == NULL)
		return -1;
	/* The key first: a node with another KEK is misconfigured (500), not attacked. */
	if (d->issuer_key_sealed == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "%s has no issuer key", d->name);
		goto fail;
	}
	/* The same bytes as last time parse and unseal to the same objects (the memo);
	 * the seal is checked below either way. */
	memoised = sg->memo != NULL && ks_signer_memo_domain_get(sg->memo, d, sd);
	if (!memoised &&
	    ((sd->root = cert_from_pem(d->root_pem, strlen(d->root_pem), e)) == NULL ||
	     (sd->issuer = cert_from_pem(d->issuer_pem, strlen(d->issuer_pem), e)) == NULL ||
	     ks_cert_fpr_hex(sd->root, sd->root_fpr, e) < 0 ||
	     ks_cert_fpr_hex(sd->issuer, sd->issuer_fpr, e) < 0 ||
	     (sd->key = keywrap_open(sg->kek, d->name, d->issuer_key_sealed, e)) == NULL))
		goto fail;
	/* The seal comes with the row (one query). */
	ks_seal_domain(sg, d->name, sd->root_fpr, sd->issuer_fpr, want);
	ok = ks_seal_ok(d->signer_seal, want) &&
	     (memoised || crypto_key_matches(sd->key, X509_get0_pubkey(sd->issuer)));
	if (ok && !memoised && sg->memo != NULL)
		ks_signer_memo_domain_put(sg->memo, d, sd);
	if (!ok) {
		log_err(NULL,
		        "signer: the row of %s does not bear a valid seal: its root or "
		        "issuer was written by someone else than a signer; refusing to sign",
		        d->name);
		err_set(e, ERR_FORBIDDEN, "domain_unsealed",
		        "the signer refuses to sign for %s: its certificates were not registered "
		        "through a signer",
		        d->name);
		goto fail;
	}
	return 0;
fail:
	ks_signer_domain_close(sd);
	return -1;
}

void ks_signer_domain_close(struct ks_signer_domain *sd)
{
	ks_domain_free(sd->d);
	X509_free(sd->root);
	X509_free(sd->issuer);
	EVP_PKEY_free(sd->key);
	memset(sd, 0, sizeof(*sd));
}

int ks_signer_check_admin(struct ks_signer *sg, struct db *db, const struct ks_signer_domain *sd,
                          const char *token, struct err *e)
{
	char hash[CRYPTO_HEX256_LEN], want[KS_SEAL_HEX];
	struct ks_admin_token t;
	int found, rc;

	crypto_token_hash(token, hash);
	if ((found = ks_store_admin_token_get(db, hash, &t, e)) < 0)
		return -1;
	if (!found)
		return err_set(e, ERR_AUTH, "unauthorized", "the admin token is not valid");
	if (strcmp(t.domain, sd->d->name) != 0)
		return err_set(e, ERR_FORBIDDEN, "forbidden", "the admin token is not valid for %s",
		               sd->d->name);
	ks_seal_admin(sg, sd, hash, want);
	rc = ks_seal_ok(t.sealed ? t.seal : NULL, want)
	         ? 0
	         : err_set(e, ERR_FORBIDDEN, "token_unsealed",
	                   "the admin token of %s was not made by a signer", sd->d->name);
	if (rc < 0)
		log_err(NULL, "signer: an admin token row of %s bears no valid seal", sd->d->name);
	return rc;
}

/* ---- a database older than the seals ---- */

struct legacy {
	struct ks_signer *sg;
	struct db *db;
	struct ks_signer_domain *sd;
};

/* Seal one token row that predates the seals. */
static int seal_legacy_token(void *arg, int admin, const char *id, const char *token_hash,
                             const char *address, const char *expires, struct err *e)
{
	struct legacy *l = arg;
	char seal[KS_SEAL_HEX];

	if (admin)
		ks_seal_admin(l->sg, l->sd, token_hash, seal);
	else
		ks_seal_enroll(l->sg, l->sd, address, token_hash, expires, seal);
	return ks_store_token_set_seal(l->db, admin, id, seal, e);
}

static int seal_legacy_domain(void *arg, const char *name, struct err *e)
{
	struct legacy *l = arg;
	struct ks_signer_domain sd = {0};
	struct legacy tl = {.sg = l->sg, .db = l->db, .sd = &sd};
	char seal[KS_SEAL_HEX];
	int rc = -1;

	if ((sd.d = ks_store_domain(l->db, name, e)) == NULL ||
	    (sd.root = cert_from_pem(sd.d->root_pem, strlen(sd.d->root_pem), e)) == NULL ||
	    (sd.issuer = cert_from_pem(sd.d->issuer_pem, strlen(sd.d->issuer_pem), e)) == NULL ||
	    ks_cert_fpr_hex(sd.root, sd.root_fpr, e) < 0 ||
	    ks_cert_fpr_hex(sd.issuer, sd.issuer_fpr, e) < 0)
		goto out;
	ks_seal_domain(l->sg, sd.d->name, sd.root_fpr, sd.issuer_fpr, seal);
	if (ks_store_domain_set_seal(l->db, sd.d->name, seal, e) < 0)
		goto out;
	rc = ks_store_unsealed_tokens(l->db, sd.d->id, seal_legacy_token, &tl, e);
out:
	ks_signer_domain_close(&sd);
	return rc;
}

int ks_signer_seal_legacy(struct ks_signer *sg, struct db *db, struct err *e)
{
	struct legacy l = {.sg = sg, .db = db};
	int n;

	if (db_begin(db, e) < 0)
		return -1;
	/* One signer does it, once: the others wait on the lock and then see the mark. */
	if ((n = ks_store_legacy_lock(db, e)) != 0) { /* an error, or done already */
		db_rollback(db);
		return n < 0 ? -1 : 0;
	}
	if ((n = ks_store_unsealed_domains(db, seal_legacy_domain, &l, e)) < 0 ||
	    ks_store_legacy_mark(db, e) < 0 || db_commit(db, e) < 0) {
		db_rollback(db);
		return -1;
	}
	if (n > 0)
		log_warn(NULL,
		         "signer: sealed the rows of %d domain(s) registered before the "
		         "signer existed",
		         n);
	return 0;
}
