/*
 * jws.h - signed JSON objects: JWS (RFC 7515) in the flattened JSON
 * serialization, with the signer's certificate chain in the protected
 * header's "x5c" (leaf first, the domain root last).
 *
 * Algorithms: EdDSA (Ed25519, RFC 8037), ES256 (P-256, raw r||s signature as
 * RFC 7518 §3.4 requires, not DER) and RS256.  Anything a stock JOSE library
 * (python3-jwcrypto) verifies, and nothing it would not.
 *
 * Verification is offline: the chain in x5c must verify with OpenSSL's
 * verifier (name constraints included) up to a root whose SPKI pin is one of
 * the caller's pins, and the signature must verify with the leaf's key.
 */
#ifndef ANCHOR_JWS_H
#define ANCHOR_JWS_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/err.h"

#define JWS_MAX_CHAIN 4

/* Sign payload with key, whose certificate is chain[0]; chain ends with the root.
 * typ names the object ("anchor-route+json").  Returns the malloc'd JWS text. */
char *jws_sign(const char *payload, size_t payload_len, EVP_PKEY *key, X509 *const *chain,
               int nchain, const char *typ, struct err *e);

/*
 * jws_sign in three steps, for a signer that holds the key elsewhere (the
 * relay's signer process): the signing input is made beside the payload, the
 * key holder signs only that, and the object is assembled from the two.
 * jws_sign(payload, key, chain) is exactly
 * jws_assemble(in, jws_sign_input(key, in)) with
 * in = jws_signing_input(payload, jws_alg_name(key), chain).
 */
/* "EdDSA", "ES256" or "RS256" for a key of that kind, else NULL. */
const char *jws_alg_name(const EVP_PKEY *key);
/* BASE64URL(protected header: alg, x5c = chain, typ) "." BASE64URL(payload); malloc'd. */
char *jws_signing_input(const char *payload, size_t payload_len, const char *alg,
                        X509 *const *chain, int nchain, const char *typ, struct err *e);
/* The JWS signature of input with key (ES256: raw r||s); malloc'd, *siglen bytes. */
unsigned char *jws_sign_input(EVP_PKEY *key, const char *input, size_t *siglen, struct err *e);
/* The flattened JWS text from a signing input and its signature; malloc'd. */
char *jws_assemble(const char *input, const unsigned char *sig, size_t siglen, struct err *e);

/*
 * A JWS as flattened JSON text: the compact serialisation
 * (BASE64URL(header).BASE64URL(payload).BASE64URL(signature), RFC 7515 §7.1)
 * is rewritten, flattened JSON is copied.  Nothing is verified here.
 * Returns malloc'd text, or NULL with ERR_INPUT "bad_jws" when text is neither.
 */
char *jws_flatten(const char *text, struct err *e);

struct jws_verified {
	char *payload; /* malloc'd, NUL-terminated */
	size_t payload_len;
	char *typ;  /* malloc'd, may be NULL */
	X509 *leaf; /* the signer's certificate (owned) */
	X509 *root; /* the chain's root, whose pin matched (owned) */
};

void jws_verified_free(struct jws_verified *v); /* releases members; accepts NULL */

/* The signature sig_b64 (base64url; ES256 raw r||s) over the signing input in, by key under
 * alg ("EdDSA", "ES256", "RS256"), which must be the key's own algorithm and the key an
 * allowed one; ERR_UNPROC "jws_signature" otherwise.  For JWS whose key comes from
 * elsewhere than x5c (ACME's jwk or account key). */
int jws_verify_input(EVP_PKEY *key, const char *alg, const char *in, const char *sig_b64,
                     struct err *e);

/* Parse and verify text against the pins ("sha256:<b64>" strings).
 * Errors: ERR_INPUT "bad_jws" (malformed), ERR_UNPROC "jws_signature" (signature or
 * chain does not verify), ERR_UNPROC "pin_mismatch" (the root matches no pin). */
int jws_verify(const char *text, size_t len, const char *const *pins, int npins,
               struct jws_verified *out, struct err *e);

#endif
