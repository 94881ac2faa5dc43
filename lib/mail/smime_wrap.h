/*
 * smime_wrap.h - a group's private key wrapped to one member (PROTOCOL.md §5.5): a CMS
 * EnvelopedData (RSA recipients) or AuthEnvelopedData (EC recipients only) around the
 * key's PKCS#8 DER, encrypted to every current encryption certificate of the member, and
 * carried as standard base64 of the DER.  The key server stores it without opening it
 * (smime_wrap_check is all it does); the member's client unwraps it with a device key.
 *
 * Errors: bad_wrap (not base64 of one DER CMS enveloped structure, or over
 * SMIME_WRAP_MAX), not_for_you, key_mismatch, decrypt_failed, unsupported_algorithm
 * (smime.h's meanings), bad_key (what it held is no PKCS#8 private key).
 */
#ifndef ANCHOR_SMIME_WRAP_H
#define ANCHOR_SMIME_WRAP_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/err.h"

#define SMIME_WRAP_MAX (64u * 1024) /* base64 characters of one wrap */

/* key's PKCS#8 DER encrypted to every certificate of recips (each passes
 * smime_cert_check_recipient): malloc'd base64, or NULL. */
char *smime_wrap_key(EVP_PKEY *key, STACK_OF(X509) * recips, struct err *e);

/* The shape only: b64[0..len) is base64 of exactly one DER CMS EnvelopedData or
 * AuthEnvelopedData with at least one recipient.  Nothing is decrypted. */
int smime_wrap_check(const char *b64, size_t len, struct err *e);

/* Open a wrap with key (cert's): the group's private key, or NULL. */
EVP_PKEY *smime_unwrap_key(const char *b64, size_t len, EVP_PKEY *key, X509 *cert, struct err *e);

#endif
