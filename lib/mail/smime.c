/*
 * smime.c - S/MIME 4.0 through OpenSSL's CMS API (smime.h).  Nothing of the
 * format is built by hand: SMIME_read_CMS/SMIME_write_CMS carry the MIME
 * wrapping, CMS_* the cryptography.  What this file adds is the choice of
 * algorithms, the checks made before anything is produced, and OpenSSL's
 * error queue turned into one error code a user can act on.
 */
#include "mail/smime.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pki/cert.h"
#include "pki/cert_san.h"

void smime_buf_clear(struct smime_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* ---- recipients ---- */

/* The key types OpenSSL 3.0's CMS can encrypt to: RSA (key transport) and EC
 * (ECDH key agreement).  X25519/X448 key agreement (RFC 8418) it lacks. */
static int key_can_encrypt(const EVP_PKEY *k, const char *verb, struct err *e)
{
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(k) < SMIME_RSA_MIN_BITS)
			return err_set(e, ERR_UNPROC, "weak_key",
			               "an RSA key of %d bits is too weak to %s (at least %d)",
			               EVP_PKEY_get_bits(k), verb, SMIME_RSA_MIN_BITS);
		return 0;
	case EVP_PKEY_EC:
		return 0;
	default:
		return err_set(e, ERR_UNPROC, "unsupported_algorithm",
		               "cannot %s a %s key: this OpenSSL's CMS does RSA key "
		               "transport and ECDH (P-256, P-384) key agreement only",
		               verb, OBJ_nid2sn(EVP_PKEY_get_base_id(k)));
	}
}

int smime_cert_check_recipient(X509 *cert, struct err *e)
{
	EVP_PKEY *k = X509_get0_pubkey(cert);
	char who[320];

	if (k == NULL)
		return err_set(e, ERR_INPUT, "bad_certificate", "a certificate has no usable key");
	smime_cert_address(cert, who, sizeof(who));
	/* The key server's rule (lib/pki), so a client never encrypts to what a lookup
	 * would not list. */
	if (!cert_can_encrypt(cert))
		return err_set(e, ERR_UNPROC, "no_encryption_usage",
		               "the certificate of %s is not for encryption (its keyUsage allows "
		               "neither keyEncipherment for an RSA key nor keyAgreement for an "
		               "EC key)",
		               who[0] ? who : "a recipient");
	return key_can_encrypt(k, "encrypt to", e);
}

int smime_pick_cipher(STACK_OF(X509) * recips, enum smime_cipher *out, struct err *e)
{
	*out = SMIME_AES256_GCM;
	if (sk_X509_num(recips) <= 0)
		return err_set(e, ERR_INPUT, "no_recipient", "no recipient certificate");
	for (int i = 0; i < sk_X509_num(recips); i++) {
		X509 *c = sk_X509_value(recips, i);
		if (smime_cert_check_recipient(c, e) < 0)
			return -1;
		/* An RSA reader may be gpgsm 2.2 or an older client: no AuthEnvelopedData. */
		if (EVP_PKEY_get_base_id(X509_get0_pubkey(c)) == EVP_PKEY_RSA)
			*out = SMIME_AES256_CBC;
	}
	return 0;
}

const char *smime_cipher_name(enum smime_cipher c)
{
	return c == SMIME_AES256_GCM ? "AuthEnvelopedData/AES-256-GCM"
	                             : "EnvelopedData/AES-256-CBC";
}

/* ---- errors ---- */

/* The first reason of OpenSSL's error queue that says what went wrong. */
static int ssl_reason(int lib_wanted, const int *reasons, int n)
{
	unsigned long code;
	int i = 0;

	while ((code = ERR_get_error()) != 0 && i++ < 64) {
		if (ERR_GET_LIB(code) != lib_wanted && lib_wanted != 0)
			continue;
		for (int k = 0; k < n; k++)
			if (ERR_GET_REASON(code) == reasons[k])
				return reasons[k];
	}
	return 0;
}

/* An error of decryption, from what OpenSSL's queue holds; clears the queue. */
static int decrypt_error(struct err *e)
{
	static const int reasons[] = {CMS_R_NO_MATCHING_RECIPIENT,
	                              CMS_R_UNKNOWN_CIPHER,
	                              CMS_R_UNSUPPORTED_CONTENT_ENCRYPTION_ALGORITHM,
	                              CMS_R_UNSUPPORTED_KEY_ENCRYPTION_ALGORITHM,
	                              CMS_R_UNSUPPORTED_RECIPIENTINFO_TYPE,
	                              CMS_R_UNSUPPORTED_RECIPIENT_TYPE,
	                              CMS_R_NOT_SUPPORTED_FOR_THIS_KEY_TYPE,
	                              CMS_R_CIPHER_INITIALISATION_ERROR,
	                              CMS_R_CIPHER_PARAMETER_INITIALISATION_ERROR};
	int r = ssl_reason(ERR_LIB_CMS, reasons, (int)(sizeof(reasons) / sizeof(reasons[0])));

	ERR_clear_error();
	if (r == CMS_R_NO_MATCHING_RECIPIENT)
		return err_set(e, ERR_FORBIDDEN, "not_for_you",
		               "the message is not encrypted to this certificate");
	if (r != 0)
		return err_set(e, ERR_UNPROC, "unsupported_algorithm",
		               "the message uses a content or key encryption algorithm this "
		               "OpenSSL cannot decrypt");
	return err_set(e, ERR_UNPROC, "decrypt_failed",
	               "decryption failed: wrong key, or the ciphertext is truncated or was "
	               "changed");
}

static int verify_error(struct err *e)
{
	static const int reasons[] = {CMS_R_CERTIFICATE_VERIFY_ERROR,
	                              CMS_R_SIGNER_CERTIFICATE_NOT_FOUND,
	                              CMS_R_UNKNOWN_DIGEST_ALGORITHM, CMS_R_NO_DEFAULT_DIGEST,
	                              CMS_R_UNSUPPORTED_CONTENT_TYPE};
	int r = ssl_reason(ERR_LIB_CMS, reasons, (int)(sizeof(reasons) / sizeof(reasons[0])));

	ERR_clear_error();
	if (r == CMS_R_CERTIFICATE_VERIFY_ERROR)
		return err_set(e, ERR_FORBIDDEN, "untrusted_signer",
		               "the signer's certificate does not chain to a trusted root");
	if (r == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND)
		return err_set(e, ERR_INPUT, "untrusted_signer",
		               "the signature does not carry its signer's certificate");
	if (r != 0)
		return err_set(e, ERR_UNPROC, "unsupported_algorithm",
		               "the signature uses an algorithm this OpenSSL cannot verify");
	return err_set(e, ERR_FORBIDDEN, "bad_signature",
	               "the signature does not verify: the message was changed or is not "
	               "the one signed");
}

/* ---- input and output ---- */

static BIO *input_bio(const void *in, size_t len, struct err *e)
{
	BIO *b;

	if (len > SMIME_MAX_INPUT) {
		err_set(e, ERR_TOOBIG, "too_big", "the message is larger than %u bytes",
		        SMIME_MAX_INPUT);
		return NULL;
	}
	b = BIO_new_mem_buf(len > 0 ? in : "", (int)len);
	if (b == NULL)
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
	return b;
}

/* What a memory BIO holds, as a NUL-terminated malloc'd buffer. */
static int take_bio(BIO *b, struct smime_buf *out, struct err *e)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	if (n < 0 || (out->data = malloc((size_t)n + 1)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	if (n > 0)
		memcpy(out->data, p, (size_t)n);
	out->data[n] = '\0';
	out->len = (size_t)n;
	return 0;
}

/* Parse an S/MIME message (MIME-wrapped CMS); *bcont gets a detached content. */
static CMS_ContentInfo *read_message(const void *in, size_t len, BIO **bcont, struct err *e)
{
	BIO *b = input_bio(in, len, e);
	CMS_ContentInfo *cms;

	if (b == NULL)
		return NULL;
	/* A bare DER ContentInfo (gpgsm, openssl cms -outform DER) starts with a
	 * SEQUENCE; anything else is read as the MIME message it must be. */
	if (len > 0 && ((const unsigned char *)in)[0] == 0x30)
		cms = d2i_CMS_bio(b, NULL);
	else
		cms = SMIME_read_CMS(b, bcont);
	BIO_free(b);
	if (cms == NULL) {
		ERR_clear_error();
		err_set(e, ERR_INPUT, "bad_message",
		        "not an S/MIME message, or a garbled or truncated one (no readable "
		        "application/pkcs7-mime or multipart/signed part, nor DER CMS)");
	}
	return cms;
}

/* ---- encrypt ---- */

/* One recipient; an EC one gets the SHA-256 KDF that RFC 8551 asks for
 * (OpenSSL's default is the SHA-1 one). */
static int add_recipient(CMS_ContentInfo *cms, X509 *cert, struct err *e)
{
	int ec = EVP_PKEY_get_base_id(X509_get0_pubkey(cert)) == EVP_PKEY_EC;
	CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, cert, ec ? CMS_KEY_PARAM : 0);
	EVP_PKEY_CTX *pctx;

	if (ri == NULL)
		return err_set_ssl(e, ERR_UNPROC, "unsupported_algorithm",
		                   "a recipient's certificate cannot be used");
	if (!ec)
		return 0;
	pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	if (pctx == NULL || EVP_PKEY_CTX_ctrl_str(pctx, "ecdh_kdf_md", "sha256") <= 0)
		return err_set_ssl(e, ERR_INTERNAL, "internal", "setting the ECDH KDF");
	return 0;
}

int smime_encrypt(const void *in, size_t len, STACK_OF(X509) * recips, enum smime_cipher c,
                  struct smime_buf *out, struct err *e)
{
	const EVP_CIPHER *cipher = c == SMIME_AES256_GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
	CMS_ContentInfo *cms = NULL;
	BIO *data = NULL, *w = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (sk_X509_num(recips) <= 0)
		return err_set(e, ERR_INPUT, "no_recipient", "no recipient certificate");
	for (int i = 0; i < sk_X509_num(recips); i++)
		if (smime_cert_check_recipient(sk_X509_value(recips, i), e) < 0)
			return -1;
	if ((data = input_bio(in, len, e)) == NULL)
		return -1;
	/* CMS_PARTIAL: recipients are added one by one, with their parameters. */
	if ((cms = CMS_encrypt(NULL, NULL, cipher, CMS_PARTIAL)) == NULL) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "CMS_encrypt");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(recips); i++)
		if (add_recipient(cms, sk_X509_value(recips, i), e) < 0)
			goto out;
	if (CMS_final(cms, data, NULL, 0) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "encrypt_failed", "encryption failed");
		goto out;
	}
	if ((w = BIO_new(BIO_s_mem())) == NULL || SMIME_write_CMS(w, cms, NULL, 0) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "internal", "writing the S/MIME message");
		goto out;
	}
	rc = take_bio(w, out, e);
out:
	ERR_clear_error();
	BIO_free(w);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
	return rc;
}

/* ---- decrypt ---- */

static int is_encrypted(const CMS_ContentInfo *cms)
{
	int t = OBJ_obj2nid(CMS_get0_type(cms));

	return t == NID_pkcs7_enveloped || t == NID_id_smime_ct_authEnvelopedData;
}

/*
 * Whether cert is one of the message's recipients (key transport or key
 * agreement).  Asked before decrypting: OpenSSL 3.0 fails a key agreement
 * message for an unknown recipient without saying why.
 */
static int is_recipient(CMS_ContentInfo *cms, X509 *cert)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		STACK_OF(CMS_RecipientEncryptedKey) * reks;

		switch (CMS_RecipientInfo_type(ri)) {
		case CMS_RECIPINFO_TRANS:
			if (CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
				return 1;
			break;
		case CMS_RECIPINFO_AGREE:
			reks = CMS_RecipientInfo_kari_get0_reks(ri);
			for (int k = 0; k < sk_CMS_RecipientEncryptedKey_num(reks); k++)
				if (CMS_RecipientEncryptedKey_cert_cmp(
				        sk_CMS_RecipientEncryptedKey_value(reks, k), cert) == 0)
					return 1;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Whether a key agreement recipient wraps the content key with RFC 3394 AES
 * key wrap, the one RFC 5753 and RFC 8418 name.  Asked before OpenSSL sees
 * the message: its RFC 5649 unwrap (id-aes*-wrap-pad) writes eight bytes
 * past its output buffer when the unwrap fails (fuzz_smime found it in
 * OpenSSL 3.0.19), and nothing here sends that algorithm, so it is refused
 * rather than handed on.
 */
static int kari_wrap_is_rfc3394(CMS_RecipientInfo *ri)
{
	X509_ALGOR *alg = NULL, *wrap = NULL;
	ASN1_OCTET_STRING *ukm = NULL;
	const unsigned char *p;
	int nid = NID_undef;

	if (CMS_RecipientInfo_kari_get0_alg(ri, &alg, &ukm) != 1 || alg == NULL ||
	    alg->parameter == NULL || alg->parameter->type != V_ASN1_SEQUENCE)
		return 0;
	p = alg->parameter->value.sequence->data;
	wrap = d2i_X509_ALGOR(NULL, &p, alg->parameter->value.sequence->length);
	if (wrap != NULL)
		nid = OBJ_obj2nid(wrap->algorithm);
	X509_ALGOR_free(wrap);
	return nid == NID_id_aes128_wrap || nid == NID_id_aes192_wrap || nid == NID_id_aes256_wrap;
}

static int key_wraps_supported(CMS_ContentInfo *cms)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);

		if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE && !kari_wrap_is_rfc3394(ri))
			return 0;
	}
	return 1;
}

/* Decrypt a parsed CMS with key/cert (checked by the caller) into out. */
static int decrypt_cms(CMS_ContentInfo *cms, EVP_PKEY *key, X509 *cert, struct smime_buf *out,
                       struct err *e)
{
	BIO *w = NULL;
	int rc = -1;

	if (!is_encrypted(cms)) {
		err_set(e, ERR_INPUT, "not_encrypted", "the message is not encrypted (%s)",
		        OBJ_nid2sn(OBJ_obj2nid(CMS_get0_type(cms))));
		goto out;
	}
	if (!is_recipient(cms, cert)) {
		err_set(e, ERR_FORBIDDEN, "not_for_you",
		        "the message is not encrypted to this certificate");
		goto out;
	}
	if (!key_wraps_supported(cms)) {
		err_set(e, ERR_UNPROC, "unsupported_algorithm",
		        "a key agreement recipient wraps the key with an algorithm other than "
		        "AES key wrap (RFC 3394)");
		goto out;
	}
	if ((w = BIO_new(BIO_s_mem())) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	/* CMS_BINARY: the entity comes out as it went in, CRLF and all. */
	if (CMS_decrypt(cms, key, cert, NULL, w, CMS_BINARY) != 1) {
		decrypt_error(e);
		goto out;
	}
	rc = take_bio(w, out, e);
out:
	ERR_clear_error();
	BIO_free(w);
	return rc;
}

static int decrypt_key_check(EVP_PKEY *key, X509 *cert, struct err *e)
{
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		return err_set(e, ERR_INPUT, "key_mismatch",
		               "the private key is not the certificate's");
	}
	return key_can_encrypt(key, "decrypt with", e);
}

int smime_decrypt(const void *in, size_t len, EVP_PKEY *key, X509 *cert, struct smime_buf *out,
                  struct err *e)
{
	CMS_ContentInfo *cms;
	int rc;

	memset(out, 0, sizeof(*out));
	if (decrypt_key_check(key, cert, e) < 0)
		return -1;
	if ((cms = read_message(in, len, NULL, e)) == NULL)
		return -1;
	rc = decrypt_cms(cms, key, cert, out, e);
	CMS_ContentInfo_free(cms);
	return rc;
}

int smime_decrypt_der(const void *der, size_t len, EVP_PKEY *key, X509 *cert, struct smime_buf *out,
                      struct err *e)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (decrypt_key_check(key, cert, e) < 0)
		return -1;
	if (len <= SMIME_MAX_INPUT)
		cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL || p != (const unsigned char *)der + len) {
		CMS_ContentInfo_free(cms);
		ERR_clear_error();
		return err_set(e, ERR_INPUT, "bad_message", "not one DER CMS structure");
	}
	rc = decrypt_cms(cms, key, cert, out, e);
	CMS_ContentInfo_free(cms);
	return rc;
}

/* ---- sign and verify ---- */

/* Ed25519/Ed448 in CMS (RFC 8419) OpenSSL 3.0 cannot do; say so first. */
static int key_can_sign(const EVP_PKEY *k, struct err *e)
{
	int id = EVP_PKEY_get_base_id(k);

	if (id == EVP_PKEY_RSA || id == EVP_PKEY_EC)
		return 0;
	return err_set(e, ERR_UNPROC, "unsupported_algorithm",
	               "cannot sign S/MIME with a %s key: this OpenSSL's CMS signs with RSA and "
	               "ECDSA (P-256) keys only; use such a key",
	               OBJ_nid2sn(id));
}

int smime_sign(const void *in, size_t len, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain,
               struct smime_buf *out, struct err *e)
{
	CMS_ContentInfo *cms = NULL;
	BIO *data = NULL, *w = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		return err_set(e, ERR_INPUT, "key_mismatch",
		               "the private key is not the certificate's");
	}
	if (key_can_sign(key, e) < 0 || (data = input_bio(in, len, e)) == NULL)
		goto out;
	/* CMS_STREAM: the digest is made while the content is written out as the first
	 * part of multipart/signed, from the same bytes. */
	if ((cms = CMS_sign(cert, key, chain, data, CMS_DETACHED | CMS_STREAM)) == NULL) {
		err_set_ssl(e, ERR_UNPROC, "sign_failed", "signing failed");
		goto out;
	}
	if ((w = BIO_new(BIO_s_mem())) == NULL ||
	    SMIME_write_CMS(w, cms, data, CMS_DETACHED | CMS_STREAM) != 1) {
		err_set_ssl(e, ERR_INTERNAL, "sign_failed", "signing failed");
		goto out;
	}
	rc = take_bio(w, out, e);
out:
	ERR_clear_error();
	BIO_free(w);
	BIO_free(data);
	CMS_ContentInfo_free(cms);
	return rc;
}

static int first_signer(CMS_ContentInfo *cms, X509 **signer, struct err *e)
{
	STACK_OF(X509) *s = CMS_get0_signers(cms);

	if (s == NULL || sk_X509_num(s) < 1) {
		sk_X509_free(s);
		return err_set(e, ERR_INPUT, "untrusted_signer", "the signature names no signer");
	}
	*signer = sk_X509_value(s, 0);
	X509_up_ref(*signer);
	sk_X509_free(s);
	return 0;
}

int smime_verify(const void *in, size_t len, X509_STORE *store, STACK_OF(X509) * untrusted,
                 struct smime_buf *content, X509 **signer, struct err *e)
{
	unsigned flags = store == NULL ? CMS_NO_SIGNER_CERT_VERIFY : 0;
	CMS_ContentInfo *cms;
	BIO *bcont = NULL, *w = NULL;
	int rc = -1;

	memset(content, 0, sizeof(*content));
	*signer = NULL;
	if ((cms = read_message(in, len, &bcont, e)) == NULL)
		return -1;
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		err_set(e, ERR_INPUT, "not_signed", "the message is not signed (%s)",
		        OBJ_nid2sn(OBJ_obj2nid(CMS_get0_type(cms))));
		goto out;
	}
	if (bcont == NULL && CMS_is_detached(cms)) {
		err_set(e, ERR_INPUT, "bad_message", "a detached signature without its content");
		goto out;
	}
	/* Not CMS_BINARY: line ends are canonicalised before the digest, as every
	 * S/MIME reader does, so that a transport's LF/CRLF change is no forgery. */
	if ((w = BIO_new(BIO_s_mem())) == NULL ||
	    CMS_verify(cms, untrusted, store, bcont, w, flags) != 1) {
		verify_error(e);
		goto out;
	}
	if (first_signer(cms, signer, e) < 0 || take_bio(w, content, e) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		X509_free(*signer);
		*signer = NULL;
	}
	ERR_clear_error();
	BIO_free(w);
	BIO_free(bcont);
	CMS_ContentInfo_free(cms);
	return rc;
}

int smime_is_signed(const void *in, size_t len)
{
	struct err e = {0};
	BIO *bcont = NULL;
	CMS_ContentInfo *cms = read_message(in, len, &bcont, &e);
	int t;

	if (cms == NULL)
		return -1;
	t = OBJ_obj2nid(CMS_get0_type(cms));
	BIO_free(bcont);
	CMS_ContentInfo_free(cms);
	return t == NID_pkcs7_signed;
}

void smime_cert_address(X509 *cert, char *out, size_t size)
{
	cert_san_address(cert, out, size);
}
