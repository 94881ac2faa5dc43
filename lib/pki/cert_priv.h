/*
 * cert_priv.h - helpers shared by cert.c, cert_check.c and csr.c; not a public interface.
 */
#ifndef ANCHOR_CERT_PRIV_H
#define ANCHOR_CERT_PRIV_H

#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

/* Largest PEM object (certificate or request) we are willing to parse. */
#define CERT_PEM_MAX (64 * 1024)

/* The digest to sign with: NULL for Ed25519 (which hashes internally), else SHA-256. */
const EVP_MD *cert_sign_md(EVP_PKEY *key);

/*
 * A read-only BIO over pem, provided it is one PEM block and nothing else:
 * only whitespace may surround it.  NULL when the framing is wrong.
 */
BIO *cert_pem_bio(const char *pem, size_t len);

/* After PEM_read_bio_*: true when only whitespace is left in the BIO. */
int cert_pem_bio_done(BIO *bio);

#endif
