/*
 * enckey.h - encryption keys (PROTOCOL.md §4.1): which keys may hold an
 * encryption certificate, whether a certificate's key can encrypt, and the
 * proof-of-possession challenge: a nonce encrypted to a public key, which only the
 * holder of its private key can read back.
 *
 * Encryption keys are X25519 (key agreement, RFC 8410), P-256 (ECDH) and RSA of at
 * least CRYPTO_RSA_MIN_BITS bits (key transport).  An X25519 key cannot sign a
 * PKCS#10 request, so no encryption key proves itself that way: every one answers the
 * challenge, which exercises the one capability an encryption key must have.
 *
 * The challenge envelope is a JSON object, every binary member base64url:
 *   {"alg": "ECDH-ES+A256GCM", "epk": <SPKI DER of an ephemeral key on the same
 *    curve>, "iv": <12 bytes>, "ct": <ciphertext>, "tag": <16 bytes>}
 *     key = HKDF-SHA256(ikm = the ECDH secret, salt = "", info = ENCKEY_HKDF_INFO)
 *   {"alg": "RSA-OAEP-256", "ct": <RSAES-OAEP, SHA-256 and MGF1-SHA-256>}
 */
#ifndef ANCHOR_ENCKEY_H
#define ANCHOR_ENCKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/err.h"

#define ENCKEY_HKDF_INFO "anchor encryption challenge v1"
#define ENCKEY_NONCE_LEN 32
#define ENCKEY_ENVELOPE_MAX 4096 /* longer envelopes are refused unread */

enum enckey_alg { ENCKEY_X25519 = 0, ENCKEY_P256, ENCKEY_RSA };

/* "x25519", "p256", "rsa" (3072 bits), "rsa2048", "rsa3072", "rsa4096". */
int enckey_alg_parse(const char *name, enum enckey_alg *alg, int *rsa_bits, struct err *e);
EVP_PKEY *enckey_generate(enum enckey_alg alg, int rsa_bits, struct err *e);

/* X25519, P-256 and RSA >= 2048 only: ERR_UNPROC "weak_key" otherwise, with a sentence
 * saying why (an Ed25519 key signs only). */
int enckey_check_allowed(const EVP_PKEY *key, struct err *e);

/* A public key from its PEM SubjectPublicKeyInfo; ERR_INPUT "bad_key" when it is not one. */
EVP_PKEY *enckey_public_from_pem(const char *pem, size_t len, struct err *e);

/* The envelope (malloc'd JSON text) of nonce for pub. */
char *enckey_challenge_seal(EVP_PKEY *pub, const uint8_t *nonce, size_t len, struct err *e);
/* Open an envelope with the private key: the nonce into out (cap bytes), its length
 * into *len.  ERR_INPUT "bad_challenge" for an envelope that is not one or was not
 * made for this key. */
int enckey_challenge_open(EVP_PKEY *priv, const char *envelope, size_t envelope_len, uint8_t *out,
                          size_t cap, size_t *len, struct err *e);

#endif
