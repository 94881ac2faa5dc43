/*
 * cert.h - the domain's certificate hierarchy, over OpenSSL's X509 API.
 *
 *   root    self-signed CA, name-constrained to the domain (dNSName and
 *           rfc822Name permitted subtrees), key kept offline
 *   issuer  CA signed by the root, pathlen 0, held online by the key server
 *   user    rfc822Name SAN (one address), emailProtection EKU, S/MIME-valid
 *   server  dNSName SAN (MTA host, key-server TLS, domain signing key)
 *
 * Each certificate carries a UUID key id (in the subject serialNumber
 * attribute and in our records) and a random 128-bit serial number.  All
 * returned objects are owned by the caller.
 */
#ifndef ANCHOR_CERT_H
#define ANCHOR_CERT_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "pki/crypto.h"
#include "core/err.h"

#define CERT_FPR_LEN 72 /* "sha256:" + 64 hex + NUL */

enum cert_kind { CERT_USER = 0, CERT_SERVER };
enum cert_purpose {
	CERT_PURPOSE_SMIME = 0,  /* user: emailProtection */
	CERT_PURPOSE_MTA,        /* server: serverAuth + clientAuth (SMTP both ways) */
	CERT_PURPOSE_KEYSERVER,  /* server: serverAuth */
	CERT_PURPOSE_SIGNING,    /* server: domain message-signing key (digitalSignature only) */
	CERT_PURPOSE_ENCRYPTION, /* user: encryption only (keyEncipherment or keyAgreement) */
};

/* Parses the purposes a request may name: never "encryption" (its own enrollment). */
int cert_purpose_parse(const char *name, enum cert_purpose *out, struct err *e);
const char *cert_purpose_name(enum cert_purpose p);

X509 *cert_make_root(EVP_PKEY *root_key, const char *domain, int days, struct err *e);
X509 *cert_make_issuer(EVP_PKEY *issuer_pub, X509 *root, EVP_PKEY *root_key, const char *domain,
                       int days, struct err *e);

struct cert_issue {
	enum cert_purpose purpose;
	const char *name;   /* the address (SMIME) or host name (others), already validated */
	const char *key_id; /* UUID */
	int days;
};

/* Issue an end-entity certificate for subject_pub, signed by the issuer. */
X509 *cert_issue_leaf(const struct cert_issue *req, EVP_PKEY *subject_pub, X509 *issuer,
                      EVP_PKEY *issuer_key, struct err *e);

/* Registration checks: the root is a self-signed CA constrained to domain, the issuer
 * is a pathlen-0 CA signed by it, and issuer_key is the issuer certificate's key. */
int cert_check_domain_set(const char *domain, X509 *root, X509 *issuer, EVP_PKEY *issuer_key,
                          struct err *e);

/* Verify leaf -> issuer -> root with OpenSSL's verifier (name constraints included). */
int cert_verify_chain(X509 *leaf, X509 *issuer, X509 *root, struct err *e);

X509 *cert_from_pem(const char *pem, size_t len, struct err *e);
/* The PEM certificates of pem, in order, into out (at most max, which the caller
 * frees); returns how many, 0 when there is none. */
int cert_list_from_pem(const char *pem, size_t len, X509 **out, int max);
char *cert_to_pem(X509 *cert, struct err *e);
/* "sha256:" + lowercase hex of SHA-256 over the DER certificate. */
int cert_fingerprint(X509 *cert, char out[CERT_FPR_LEN], struct err *e);
/* Serial number as lowercase hex, malloc'd. */
char *cert_serial_hex(X509 *cert);
time_t cert_not_before(X509 *cert);
time_t cert_not_after(X509 *cert);

/* Whether a sender can encrypt to the certificate's key (PROTOCOL.md §3.3): keyUsage
 * keyEncipherment on an RSA key, keyAgreement on a P-256/X25519/X448 key.  A signing-only
 * key (Ed25519) or a certificate without keyUsage never is.  1 or 0; NULL gives 0. */
int cert_can_encrypt(X509 *cert);
/* The same for a PEM certificate; 0 when it does not parse. */
int cert_pem_can_encrypt(const char *pem);

#endif
