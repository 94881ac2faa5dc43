/*
 * jwk.h - JSON Web Keys (RFC 7517, 7518 §6, 8037) for the keys a JWS may be signed
 * with here: EC P-256, RSA (at least CRYPTO_RSA_MIN_BITS) and OKP Ed25519; and their
 * RFC 7638 thumbprints.  ACME (RFC 8555) names an account by such a key.
 *
 * A JWK is untrusted input: only the public members are read, each must be base64url
 * of the right length, and the key must pass crypto_key_check_allowed.
 */
#ifndef ANCHOR_JWK_H
#define ANCHOR_JWK_H

#include <jansson.h>
#include <openssl/evp.h>

#include "core/err.h"

#define JWK_THUMBPRINT_LEN 44 /* base64url of SHA-256, no padding, + NUL */

/* The public key of jwk; ERR_INPUT "bad_jwk" when it is not one of the kinds above. */
EVP_PKEY *jwk_to_key(const json_t *jwk, struct err *e);
/* The RFC 7638 thumbprint of jwk (its required members, sorted, compact); "bad_jwk". */
int jwk_thumbprint(const json_t *jwk, char out[JWK_THUMBPRINT_LEN], struct err *e);

#endif
