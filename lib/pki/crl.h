/*
 * crl.h - certificate revocation lists (RFC 5280 §5) signed by a domain's issuer,
 * checkable with `openssl crl` and `openssl verify -crl_check`.
 */
#ifndef ANCHOR_CRL_H
#define ANCHOR_CRL_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "core/err.h"

/* RFC 5280 §5.3.1 reason codes that a revocation here may carry. */
enum crl_reason {
	CRL_UNSPECIFIED = 0,
	CRL_KEY_COMPROMISE = 1,
	CRL_AFFILIATION_CHANGED = 3,
	CRL_SUPERSEDED = 4,
	CRL_CESSATION = 5,
	CRL_PRIVILEGE_WITHDRAWN = 9,
};

int crl_reason_parse(const char *name, int *code, struct err *e);
const char *crl_reason_name(int code); /* NULL for a code we do not issue */

struct crl_entry {
	const char *serial_hex; /* as cert_serial_hex() gives it */
	time_t revoked_at;
	int reason;
};

/* A CRL over entries, numbered crl_number, valid from now for next_update_secs. */
X509_CRL *crl_make(X509 *issuer, EVP_PKEY *issuer_key, const struct crl_entry *entries, size_t n,
                   long long crl_number, long next_update_secs, struct err *e);

/* DER encoding, malloc'd; and PEM text, malloc'd. */
unsigned char *crl_to_der(X509_CRL *crl, size_t *len, struct err *e);
char *crl_to_pem(X509_CRL *crl, struct err *e);

#endif
