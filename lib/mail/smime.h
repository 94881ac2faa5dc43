/*
 * smime.h - S/MIME 4.0 messages (RFC 8551) through OpenSSL's CMS API:
 * encryption to several recipients, decryption, detached signatures
 * (multipart/signed) and their verification (PROTOCOL.md §14).  anchorctl's
 * `mail` commands use it, and the relay's gateway encryption is to.
 *
 * Content encryption (smime_pick_cipher): AuthEnvelopedData with
 * AES-256-GCM (RFC 5083/5084) when every recipient key is an EC key (ECDH key
 * agreement, whose readers here are OpenSSL-based), EnvelopedData with
 * AES-256-CBC as soon as one is RSA (key transport): gpgsm 2.2, Debian 12's,
 * and most deployed RSA clients cannot read AuthEnvelopedData.  Keys OpenSSL
 * 3.0's CMS cannot encrypt to or sign with (X25519/X448, RFC 8418; Ed25519,
 * RFC 8419) are refused as unsupported_algorithm before anything is made.
 *
 * Every function takes the whole input in memory and fills a struct
 * smime_buf only on success: a caller writes nothing when one fails.
 * Errors (struct err codes): bad_message (not S/MIME, garbled or truncated),
 * not_encrypted, not_signed, not_for_you (encrypted to other certificates),
 * key_mismatch, decrypt_failed (wrong key, tampered or truncated ciphertext),
 * bad_signature, untrusted_signer, unsupported_algorithm, no_encryption_usage,
 * weak_key, too_big.
 */
#ifndef ANCHOR_SMIME_H
#define ANCHOR_SMIME_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/err.h"

#define SMIME_MAX_INPUT (64u * 1024 * 1024) /* a message larger than this is refused */
#define SMIME_RSA_MIN_BITS 2048

enum smime_cipher { SMIME_AES256_GCM = 0, SMIME_AES256_CBC };

/* A malloc'd output; smime_buf_clear frees it and zeroes the struct. */
struct smime_buf {
	char *data;
	size_t len;
};
void smime_buf_clear(struct smime_buf *b);

/*
 * A recipient certificate passes lib/pki's cert_can_encrypt (the rule the key
 * server lists encryption certificates by) and its key is one OpenSSL's CMS can
 * encrypt to (RSA >= 2048, EC).
 * Errors: no_encryption_usage, unsupported_algorithm, weak_key.
 */
int smime_cert_check_recipient(X509 *cert, struct err *e);

/* The cipher for these recipients (see above); each must pass
 * smime_cert_check_recipient. */
int smime_pick_cipher(STACK_OF(X509) * recips, enum smime_cipher *out, struct err *e);
/* "AuthEnvelopedData/AES-256-GCM" or "EnvelopedData/AES-256-CBC". */
const char *smime_cipher_name(enum smime_cipher c);

/*
 * Encrypt the MIME entity in[0..len) (canonicalised to CRLF line ends) to every
 * certificate of recips as an application/pkcs7-mime message.
 */
int smime_encrypt(const void *in, size_t len, STACK_OF(X509) * recips, enum smime_cipher c,
                  struct smime_buf *out, struct err *e);

/*
 * Decrypt an application/pkcs7-mime message with key, which must be cert's;
 * the recipient is found by cert (issuer and serial or key identifier).
 */
int smime_decrypt(const void *in, size_t len, EVP_PKEY *key, X509 *cert, struct smime_buf *out,
                  struct err *e);

/* The same for a bare DER CMS ContentInfo (no MIME around it), which must be all of
 * der[0..len): what a wrapped group key is (smime_wrap.h). */
int smime_decrypt_der(const void *der, size_t len, EVP_PKEY *key, X509 *cert, struct smime_buf *out,
                      struct err *e);

/*
 * Sign the MIME entity in[0..len) with key/cert as multipart/signed (detached,
 * canonicalised to CRLF); chain (may be NULL) goes into the signature too.
 */
int smime_sign(const void *in, size_t len, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain,
               struct smime_buf *out, struct err *e);

/*
 * Verify a signed message (multipart/signed, or opaque signed-data).  With
 * store, the signer's certificate must chain to it (untrusted: more
 * intermediates, may be NULL); without, only the signature is checked and
 * the caller checks the signer.  On success *content is the signed entity
 * and *signer (up-ref'd; X509_free it) the first signer's certificate.
 */
int smime_verify(const void *in, size_t len, X509_STORE *store, STACK_OF(X509) * untrusted,
                 struct smime_buf *content, X509 **signer, struct err *e);

/* 1 when the message is signed-data (multipart/signed or opaque), 0 when not,
 * -1 when it is not an S/MIME message at all.  For decrypt-then-verify. */
int smime_is_signed(const void *in, size_t len);

/* The first address of cert's subjectAltName (rfc822Name or RFC 9598 SmtpUTF8Mailbox),
 * in canonical form (pki/cert_san.h), in out ("" when none). */
void smime_cert_address(X509 *cert, char *out, size_t size);

#endif
