/*
 * cert.c - building the domain's certificates (root, issuer, leaves), verifying
 * chains, and the PEM/fingerprint/serial accessors; see cert.h and PROTOCOL.md §2.
 *
 * Names that end up inside certificates are checked here again even though
 * callers have checked them: a certificate is forever, a check is cheap.
 */
#include "pki/cert.h"
#include "pki/cert_san.h"
#include "pki/name.h"
#include "pki/cert_priv.h"
#include "pki/enckey.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CERT_SKEW_SECONDS (5 * 60) /* notBefore is backdated for clocks behind ours */
#define CERT_LEAF_MAX_DAYS 825
#define CERT_CA_MAX_DAYS (100 * 366)
#define CN_MAX 64 /* ub-common-name */

/* ---- purposes ---- */

static const char *const purpose_names[] = {
    [CERT_PURPOSE_SMIME] = "smime",           [CERT_PURPOSE_MTA] = "mta",
    [CERT_PURPOSE_KEYSERVER] = "keyserver",   [CERT_PURPOSE_SIGNING] = "signing",
    [CERT_PURPOSE_ENCRYPTION] = "encryption",
};

int cert_purpose_parse(const char *name, enum cert_purpose *out, struct err *e)
{
	size_t i;

	/* Encryption certificates have their own enrollment (PROTOCOL.md §4.1): a purpose
	 * named in a server request or a renewal is never one. */
	if (name != NULL && strcmp(name, purpose_names[CERT_PURPOSE_ENCRYPTION]) == 0)
		return err_set(e, ERR_INPUT, "bad_request",
		               "encryption certificates are enrolled with a challenge "
		               "(POST /v1/domains/{domain}/encryption), not here");
	for (i = 0; name != NULL && i < sizeof(purpose_names) / sizeof(purpose_names[0]); i++) {
		if (strcmp(name, purpose_names[i]) == 0) {
			*out = (enum cert_purpose)i;
			return 0;
		}
	}
	return err_set(e, ERR_INPUT, "bad_request",
	               "unknown purpose \"%.40s\"; use smime, mta, keyserver or signing",
	               name ? name : "");
}

const char *cert_purpose_name(enum cert_purpose p)
{
	if ((unsigned)p < sizeof(purpose_names) / sizeof(purpose_names[0]))
		return purpose_names[p];
	return "unknown";
}

/* ---- helpers shared with csr.c (cert_priv.h) ---- */

const EVP_MD *cert_sign_md(EVP_PKEY *key)
{
	int id = EVP_PKEY_get_base_id(key);

	return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
}

BIO *cert_pem_bio(const char *pem, size_t len)
{
	size_t i = 0;

	if (pem == NULL || len == 0 || len > CERT_PEM_MAX || memchr(pem, '\0', len) != NULL)
		return NULL;
	while (i < len && isspace((unsigned char)pem[i]))
		i++;
	/* PEM readers skip any text before the block; we do not accept any. */
	if (len - i < 11 || memcmp(pem + i, "-----BEGIN ", 11) != 0)
		return NULL;
	return BIO_new_mem_buf(pem + i, (int)(len - i));
}

int cert_pem_bio_done(BIO *bio)
{
	char *rest = NULL;
	long n, i;

	n = BIO_get_mem_data(bio, &rest);
	for (i = 0; i < n; i++)
		if (!isspace((unsigned char)rest[i]))
			return 0;
	return 1;
}

/* ---- building blocks ---- */

/* A random positive 128-bit serial (top bits fixed so the DER is always 16 octets). */
static int set_random_serial(X509 *cert, struct err *e)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int ok;

	if (crypto_random_bytes(raw, sizeof(raw), e) < 0)
		return -1;
	raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	if (!ok)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set the serial number");
	return 0;
}

static int set_validity(X509 *cert, int days, struct err *e)
{
	if (X509_gmtime_adj(X509_getm_notBefore(cert), -CERT_SKEW_SECONDS) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set the validity");
	return 0;
}

/* Add one extension written in openssl.cnf syntax.  Only ever given fixed strings
 * or validated domain names: the syntax treats ',' and ':' specially. */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value, struct err *e)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ok = ext != NULL && X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	if (!ok)
		return err_set_ssl(e, ERR_INTERNAL, "internal",
		                   "cannot add a certificate extension");
	return 0;
}

static int add_name_entry(X509_NAME *name, int nid, const char *value, struct err *e)
{
	if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)value, -1,
	                               -1, 0) != 1)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot build the subject name");
	return 0;
}

/* "CN=<what> for <domain>", or just "<what>" when that would exceed 64 characters. */
static int set_ca_subject(X509 *cert, const char *what, const char *domain, struct err *e)
{
	char cn[CN_MAX + 1];
	int n;

	n = snprintf(cn, sizeof(cn), "%s for %s", what, domain);
	if (n < 0 || n > CN_MAX)
		snprintf(cn, sizeof(cn), "%s", what);
	return add_name_entry(X509_get_subject_name(cert), NID_commonName, cn, e);
}

static int sign(X509 *cert, EVP_PKEY *key, struct err *e)
{
	if (X509_sign(cert, key, cert_sign_md(key)) <= 0)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot sign the certificate");
	return 0;
}

/* A fresh v3 certificate with serial, validity and public key set. */
static X509 *new_cert(EVP_PKEY *pub, int days, struct err *e)
{
	X509 *cert;

	cert = X509_new();
	if (cert == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
	    X509_set_pubkey(cert, pub) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot create a certificate");
		goto fail;
	}
	if (set_random_serial(cert, e) < 0 || set_validity(cert, days, e) < 0)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

static int check_days(int days, int max, struct err *e)
{
	if (days < 1 || days > max)
		return err_set(e, ERR_INPUT, "bad_request", "validity must be 1 to %d days, not %d",
		               max, days);
	return 0;
}

/* ---- the hierarchy ---- */

X509 *cert_make_root(EVP_PKEY *root_key, const char *domain, int days, struct err *e)
{
	char nc[3 * 300];
	X509 *cert = NULL;

	if (name_check_domain(domain, e) < 0 || check_days(days, CERT_CA_MAX_DAYS, e) < 0 ||
	    crypto_key_check_allowed(root_key, e) < 0)
		return NULL;
	cert = new_cert(root_key, days, e);
	if (cert == NULL || set_ca_subject(cert, "Anchormail root", domain, e) < 0)
		goto fail;
	if (X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set the issuer name");
		goto fail;
	}
	snprintf(nc, sizeof(nc), "critical,permitted;DNS:%s,permitted;email:%s,permitted;email:.%s",
	         domain, domain, domain);
	if (add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE", e) < 0 ||
	    add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign", e) < 0 ||
	    add_ext(cert, cert, NID_subject_key_identifier, "hash", e) < 0 ||
	    add_ext(cert, cert, NID_name_constraints, nc, e) < 0 || sign(cert, root_key, e) < 0)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

X509 *cert_make_issuer(EVP_PKEY *issuer_pub, X509 *root, EVP_PKEY *root_key, const char *domain,
                       int days, struct err *e)
{
	X509 *cert = NULL;

	if (name_check_domain(domain, e) < 0 || check_days(days, CERT_CA_MAX_DAYS, e) < 0 ||
	    crypto_key_check_allowed(issuer_pub, e) < 0)
		return NULL;
	if (!crypto_key_matches(X509_get0_pubkey(root), root_key)) {
		err_set(e, ERR_INPUT, "bad_request",
		        "the root key does not match the root certificate");
		return NULL;
	}
	cert = new_cert(issuer_pub, days, e);
	if (cert == NULL || set_ca_subject(cert, "Anchormail issuer", domain, e) < 0)
		goto fail;
	if (X509_set_issuer_name(cert, X509_get_subject_name(root)) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set the issuer name");
		goto fail;
	}
	if (add_ext(cert, root, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", e) < 0 ||
	    add_ext(cert, root, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign", e) <
	        0 ||
	    add_ext(cert, root, NID_subject_key_identifier, "hash", e) < 0 ||
	    add_ext(cert, root, NID_authority_key_identifier, "keyid:always", e) < 0 ||
	    sign(cert, root_key, e) < 0)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

static int key_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || strlen(id) != CRYPTO_UUID_LEN - 1)
		return 0;
	for (i = 0; i < CRYPTO_UUID_LEN - 1; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (id[i] != '-')
				return 0;
		} else if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

static GENERAL_NAME *dns_entry(const char *host)
{
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	if (gen != NULL && ia5 != NULL && ASN1_STRING_set(ia5, host, -1) == 1) {
		GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
		return gen;
	}
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	return NULL;
}

/* One SAN entry: the host's dNSName, or the address's rfc822Name / SmtpUTF8Mailbox
 * (RFC 9598: the otherName only when the local part holds UTF-8, cert_san.c). */
static int add_san(X509 *cert, int user, const char *name, struct err *e)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gen = user ? cert_san_entry_for(name, e) : dns_entry(name);
	int ok = 0;

	if (user && gen == NULL) {
		GENERAL_NAMES_free(gens);
		return -1;
	}
	if (gens != NULL && gen != NULL && sk_GENERAL_NAME_push(gens, gen) > 0) {
		gen = NULL;
		ok =
		    X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	}
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	if (!ok)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot add the subjectAltName");
	return 0;
}

/* keyUsage and extendedKeyUsage by purpose and key type (PROTOCOL.md §2). */
static int add_leaf_usage(X509 *cert, X509 *issuer, enum cert_purpose purpose, EVP_PKEY *pub,
                          struct err *e)
{
	int rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
	int ec = EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC;
	const char *ku = "critical,digitalSignature";
	const char *eku = NULL;

	switch (purpose) {
	case CERT_PURPOSE_SMIME:
		/* S/MIME encryption: RSA key transport, or ECDH key agreement for P-256. */
		ku = rsa  ? "critical,digitalSignature,keyEncipherment"
		     : ec ? "critical,digitalSignature,keyAgreement"
		          : ku;
		eku = "emailProtection";
		break;
	case CERT_PURPOSE_MTA:
		ku = rsa ? "critical,digitalSignature,keyEncipherment" : ku;
		eku = "serverAuth,clientAuth";
		break;
	case CERT_PURPOSE_KEYSERVER:
		ku = rsa ? "critical,digitalSignature,keyEncipherment" : ku;
		eku = "serverAuth";
		break;
	case CERT_PURPOSE_SIGNING:
		break;
	case CERT_PURPOSE_ENCRYPTION:
		/* Encryption only, kept apart from the signing key: RSA key transport, or key
		 * agreement for P-256 and X25519 (RFC 8410 §5). */
		ku = rsa ? "critical,keyEncipherment" : "critical,keyAgreement";
		eku = "emailProtection";
		break;
	default:
		return err_set(e, ERR_INTERNAL, "internal", "unknown purpose %d", (int)purpose);
	}
	if (add_ext(cert, issuer, NID_key_usage, ku, e) < 0)
		return -1;
	return eku ? add_ext(cert, issuer, NID_ext_key_usage, eku, e) : 0;
}

static int check_leaf_request(const struct cert_issue *req, EVP_PKEY *subject_pub, X509 *issuer,
                              EVP_PKEY *issuer_key, struct err *e)
{
	int user = req->purpose == CERT_PURPOSE_SMIME || req->purpose == CERT_PURPOSE_ENCRYPTION;

	if ((user ? name_check_address(req->name, e) : name_check_domain(req->name, e)) < 0)
		return -1;
	if (!key_id_valid(req->key_id))
		return err_set(e, ERR_INTERNAL, "internal", "the key id is not a lowercase UUID");
	if (check_days(req->days, CERT_LEAF_MAX_DAYS, e) < 0 ||
	    (req->purpose == CERT_PURPOSE_ENCRYPTION
	         ? enckey_check_allowed(subject_pub, e)
	         : crypto_key_check_allowed(subject_pub, e)) < 0)
		return -1;
	if (!crypto_key_matches(X509_get0_pubkey(issuer), issuer_key))
		return err_set(e, ERR_INTERNAL, "internal",
		               "the issuer key does not match the issuer certificate");
	return 0;
}

X509 *cert_issue_leaf(const struct cert_issue *req, EVP_PKEY *subject_pub, X509 *issuer,
                      EVP_PKEY *issuer_key, struct err *e)
{
	int user = req->purpose == CERT_PURPOSE_SMIME || req->purpose == CERT_PURPOSE_ENCRYPTION;
	X509_NAME *subject;
	X509 *cert = NULL;

	if (check_leaf_request(req, subject_pub, issuer, issuer_key, e) < 0)
		return NULL;
	cert = new_cert(subject_pub, req->days, e);
	if (cert == NULL)
		goto fail;
	subject = X509_get_subject_name(cert);
	/* The SAN carries the name; CN only when it fits (addresses may not). */
	if (strlen(req->name) <= CN_MAX &&
	    add_name_entry(subject, NID_commonName, req->name, e) < 0)
		goto fail;
	if (add_name_entry(subject, NID_serialNumber, req->key_id, e) < 0)
		goto fail;
	if (X509_set_issuer_name(cert, X509_get_subject_name(issuer)) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set the issuer name");
		goto fail;
	}
	if (add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE", e) < 0 ||
	    add_leaf_usage(cert, issuer, req->purpose, subject_pub, e) < 0 ||
	    add_san(cert, user, req->name, e) < 0 ||
	    add_ext(cert, issuer, NID_subject_key_identifier, "hash", e) < 0 ||
	    add_ext(cert, issuer, NID_authority_key_identifier, "keyid:always", e) < 0 ||
	    sign(cert, issuer_key, e) < 0)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

/* ---- verification ---- */

int cert_verify_chain(X509 *leaf, X509 *issuer, X509 *root, struct err *e)
{
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_STORE *store = NULL;
	int rc = -1, verr;

	store = X509_STORE_new();
	untrusted = sk_X509_new_null();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || untrusted == NULL || ctx == NULL ||
	    X509_STORE_add_cert(store, root) != 1 || sk_X509_push(untrusted, issuer) <= 0 ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot set up chain verification");
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	if (X509_verify_cert(ctx) == 1) {
		rc = 0;
		goto out;
	}
	verr = X509_STORE_CTX_get_error(ctx);
	ERR_clear_error();
	err_set(e, ERR_UNPROC, "bad_chain", "the certificate does not verify: %s (depth %d)",
	        X509_verify_cert_error_string(verr), X509_STORE_CTX_get_error_depth(ctx));
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted); /* does not own issuer */
	X509_STORE_free(store);
	return rc;
}

/* ---- encodings and accessors ---- */

X509 *cert_from_pem(const char *pem, size_t len, struct err *e)
{
	X509 *cert = NULL;
	BIO *bio;

	bio = cert_pem_bio(pem, len);
	if (bio != NULL)
		cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (cert != NULL && !cert_pem_bio_done(bio)) {
		X509_free(cert);
		cert = NULL;
	}
	BIO_free(bio);
	if (cert == NULL)
		err_set_ssl(e, ERR_INPUT, "bad_request", "expected exactly one PEM certificate");
	return cert;
}

int cert_list_from_pem(const char *pem, size_t len, X509 **out, int max)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x;
	int n = 0;

	while (bio != NULL && n < max && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		out[n++] = x;
	BIO_free(bio);
	ERR_clear_error(); /* the end of the text reads as an error */
	return n;
}

char *cert_to_pem(X509 *cert, struct err *e)
{
	BIO *bio;
	char *out = NULL;

	bio = BIO_new(BIO_s_mem());
	if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
		out = crypto_bio_string(bio);
	BIO_free(bio);
	if (out == NULL)
		err_set_ssl(e, ERR_INTERNAL, "internal", "cannot encode the certificate");
	return out;
}

int cert_fingerprint(X509 *cert, char out[CERT_FPR_LEN], struct err *e)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "cannot hash the certificate");
	memcpy(out, "sha256:", 7);
	crypto_hex(md, n, out + 7);
	return 0;
}

char *cert_serial_hex(X509 *cert)
{
	BIGNUM *bn;
	char *hex, *out = NULL, *p;

	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex != NULL) {
		out = strdup(hex);
		for (p = out; p != NULL && *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return out;
}

static time_t asn1_time_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

time_t cert_not_before(X509 *cert)
{
	return asn1_time_to_time(X509_get0_notBefore(cert));
}

time_t cert_not_after(X509 *cert)
{
	return asn1_time_to_time(X509_get0_notAfter(cert));
}

/* ---- what a certificate's key can do ---- */

int cert_can_encrypt(X509 *cert)
{
	EVP_PKEY *key = cert ? X509_get0_pubkey(cert) : NULL;
	uint32_t ku = cert ? X509_get_key_usage(cert) : 0;

	/* No keyUsage at all (UINT32_MAX) says nothing a sender may rely on. */
	if (key == NULL || (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) == 0)
		return 0;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		return (ku & KU_KEY_ENCIPHERMENT) != 0;
	case EVP_PKEY_EC:
	case EVP_PKEY_X25519:
	case EVP_PKEY_X448:
		return (ku & KU_KEY_AGREEMENT) != 0;
	default: /* Ed25519 and the like sign only, whatever the extension says */
		return 0;
	}
}

int cert_pem_can_encrypt(const char *pem)
{
	struct err e = {0};
	X509 *c = pem ? cert_from_pem(pem, strlen(pem), &e) : NULL;
	int ok = cert_can_encrypt(c);

	X509_free(c);
	return ok;
}
