/*
 * signer_keyfile.h - the signer's key files (signer_keyfile.c); private to
 * signer.c, the only process that opens them.
 */
#ifndef ANCHOR_RELAY_SIGNER_KEYFILE_H
#define ANCHOR_RELAY_SIGNER_KEYFILE_H

#include <sys/stat.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "mail/dkim.h"

/*
 * A private key from path (relative to dirfd, or AT_FDCWD) that only its
 * owner may read; *st describes the file read.  nofollow: refuse a symbolic
 * link (users' files); the operator's configured paths may be links.
 */
EVP_PKEY *relay_signer_key_read(int dirfd, const char *path, int nofollow, struct stat *st,
                                struct err *e);
/* DKIM keys: Ed25519, or RSA of at least CRYPTO_RSA_MIN_BITS; *alg is the key's. */
int relay_signer_dkim_key_ok(EVP_PKEY *key, const char *path, enum dkim_alg *alg, struct err *e);
/* A file of at most 64 KiB, NUL-terminated, malloc'd. */
char *relay_signer_file_read(const char *path, struct err *e);

#endif
