/* crl.c - issuer-signed CRLs; see crl.h. */
#include "pki/crl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static const struct {
	const char *name;
	int code;
} crl_reasons[] = {
    {"unspecified", CRL_UNSPECIFIED},
    {"keyCompromise", CRL_KEY_COMPROMISE},
    {"affiliationChanged", CRL_AFFILIATION_CHANGED},
    {"superseded", CRL_SUPERSEDED},
    {"cessationOfOperation", CRL_CESSATION},
    {"privilegeWithdrawn", CRL_PRIVILEGE_WITHDRAWN},
};

int crl_reason_parse(const char *name, int *code, struct err *e)
{
	for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++) {
		if (name != NULL && strcmp(name, crl_reasons[i].name) == 0) {
			*code = crl_reasons[i].code;
			return 0;
		}
	}
	return err_set(e, ERR_INPUT, "bad_reason",
	               "reason must be one of unspecified, keyCompromise, affiliationChanged, "
	               "superseded, cessationOfOperation, privilegeWithdrawn");
}

const char *crl_reason_name(int code)
{
	for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++)
		if (crl_reasons[i].code == code)
			return crl_reasons[i].name;
	return NULL;
}

static int add_entry(X509_CRL *crl, const struct crl_entry *en)
{
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_TIME *when = ASN1_TIME_set(NULL, en->revoked_at);
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
	int ok = 0;

	if (rev == NULL || when == NULL || reason == NULL || BN_hex2bn(&bn, en->serial_hex) == 0)
		goto out;
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	/* reasonCode "unspecified" SHOULD be absent (RFC 5280 §5.3.1). */
	ok = serial != NULL && X509_REVOKED_set_serialNumber(rev, serial) &&
	     X509_REVOKED_set_revocationDate(rev, when) &&
	     (en->reason == CRL_UNSPECIFIED ||
	      (ASN1_ENUMERATED_set(reason, en->reason) &&
	       X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0))) &&
	     X509_CRL_add0_revoked(crl, rev);
	if (ok)
		rev = NULL; /* now the CRL's */
out:
	X509_REVOKED_free(rev);
	ASN1_TIME_free(when);
	BN_free(bn);
	ASN1_INTEGER_free(serial);
	ASN1_ENUMERATED_free(reason);
	return ok ? 0 : -1;
}

static int add_crl_extensions(X509_CRL *crl, X509 *issuer, long long number)
{
	X509V3_CTX ctx;
	X509_EXTENSION *aki;
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	int ok;

	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	ok = aki != NULL && num != NULL && X509_CRL_add_ext(crl, aki, -1) &&
	     ASN1_INTEGER_set_int64(num, number) &&
	     X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(num);
	return ok ? 0 : -1;
}

X509_CRL *crl_make(X509 *issuer, EVP_PKEY *issuer_key, const struct crl_entry *entries, size_t n,
                   long long crl_number, long next_update_secs, struct err *e)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
	ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 0, next_update_secs);
	const EVP_MD *md =
	    EVP_PKEY_get_base_id(issuer_key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	int ok = crl != NULL && now != NULL && next != NULL && X509_CRL_set_version(crl, 1) &&
	         X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) &&
	         X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next);

	for (size_t i = 0; ok && i < n; i++)
		ok = add_entry(crl, &entries[i]) == 0;
	ok = ok && X509_CRL_sort(crl) && add_crl_extensions(crl, issuer, crl_number) == 0 &&
	     X509_CRL_sign(crl, issuer_key, md) > 0;
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	if (!ok) {
		X509_CRL_free(crl);
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot build the CRL");
		return NULL;
	}
	return crl;
}

unsigned char *crl_to_der(X509_CRL *crl, size_t *len, struct err *e)
{
	unsigned char *der = NULL, *copy;
	int n = i2d_X509_CRL(crl, &der);

	if (n <= 0 || (copy = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		err_set(e, ERR_INTERNAL, "internal", "cannot encode the CRL");
		return NULL;
	}
	memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	*len = (size_t)n;
	return copy;
}

char *crl_to_pem(X509_CRL *crl, struct err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b != NULL && PEM_write_bio_X509_CRL(b, crl) && (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	if (out == NULL)
		err_set(e, ERR_INTERNAL, "internal", "cannot encode the CRL");
	return out;
}
