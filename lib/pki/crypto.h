/*
 * crypto.h - small helpers over OpenSSL: keys, hashes, encodings, tokens.
 *
 * Every function returns 0 (or a pointer) on success and -1 (or NULL) with
 * *e filled on failure.  Returned pointers are owned by the caller: EVP_PKEY
 * with EVP_PKEY_free(), strings with free().
 */
#ifndef ANCHOR_CRYPTO_H
#define ANCHOR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/evp.h>

#include "core/err.h"

enum key_alg { KEY_ED25519 = 0, KEY_P256, KEY_RSA };

#define CRYPTO_RSA_MIN_BITS 2048
#define CRYPTO_PIN_MAX 64    /* "sha256:" + 44 base64 chars + NUL */
#define CRYPTO_HEX256_LEN 65 /* 64 hex digits + NUL */
#define CRYPTO_UUID_LEN 37
#define CRYPTO_TOKEN_LEN 44 /* 32 random bytes, base64url, no padding, + NUL */

/* "ed25519", "p256" (or "ecdsa-p256"), "rsa" (or "rsa2048", "rsa3072", "rsa4096"). */
int crypto_alg_parse(const char *name, enum key_alg *alg, int *rsa_bits, struct err *e);
const char *crypto_key_alg_name(const EVP_PKEY *key);

EVP_PKEY *crypto_key_generate(enum key_alg alg, int rsa_bits, struct err *e);

/* Refuse anything but Ed25519, ECDSA P-256 and RSA >= 2048 (ERR_UNPROC "weak_key"). */
int crypto_key_check_allowed(const EVP_PKEY *key, struct err *e);

/* Write a private key as PKCS#8 PEM, created 0600 and fsync'd; refuses to overwrite. */
int crypto_key_write_private(const char *path, EVP_PKEY *key, struct err *e);
EVP_PKEY *crypto_key_read_private(const char *path, struct err *e);
EVP_PKEY *crypto_key_private_from_pem(const char *pem, size_t len, struct err *e);
char *crypto_key_private_to_pem(EVP_PKEY *key, struct err *e);
char *crypto_key_public_to_pem(EVP_PKEY *key, struct err *e);
/* A memory BIO's contents as a NUL-terminated malloc'd string (NULL on failure): how
 * everything written as PEM here and in cert.c and csr.c is handed out. */
char *crypto_bio_string(BIO *bio);

/* Pin of a public key: "sha256:" + base64(SHA-256(DER SubjectPublicKeyInfo)). */
int crypto_key_pin(const EVP_PKEY *key, char out[CRYPTO_PIN_MAX], struct err *e);

/* True when private and pub hold the same public key. */
int crypto_key_matches(const EVP_PKEY *a, const EVP_PKEY *b);

void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
/* SHA-256, fetched from the default provider once per process: EVP_sha256() is looked up
 * again on every use in OpenSSL 3, which shows in short hashes.  Never NULL in practice;
 * callers treat NULL as out of memory. */
const EVP_MD *crypto_sha256_md(void);
void crypto_hex(const uint8_t *data, size_t len, char *out /* 2*len+1 */);
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_HEX256_LEN]);

/* Base64 (standard, padded) and base64url (no padding).  Returned strings are malloc'd. */
char *crypto_b64_encode(const void *data, size_t len);
char *crypto_b64url_encode(const void *data, size_t len);
/* Decoders return a malloc'd buffer and its length, or NULL on malformed input. */
uint8_t *crypto_b64_decode(const char *text, size_t *outlen);
uint8_t *crypto_b64url_decode(const char *text, size_t *outlen);

int crypto_random_bytes(void *buf, size_t len, struct err *e);
/* A fresh one-time secret: 32 random bytes, base64url. */
int crypto_random_token(char out[CRYPTO_TOKEN_LEN], struct err *e);
/* What the database stores for a secret: hex SHA-256 of the secret. */
void crypto_token_hash(const char *token, char out[CRYPTO_HEX256_LEN]);
/* A random (version 4) UUID in canonical lowercase form. */
int crypto_uuid_v4(char out[CRYPTO_UUID_LEN], struct err *e);
/* Constant-time comparison of two equal-length buffers; returns 1 when equal. */
int crypto_ct_equal(const void *a, const void *b, size_t len);

#endif
