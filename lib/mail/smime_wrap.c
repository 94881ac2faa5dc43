/*
 * smime_wrap.c - a group's private key wrapped to one member (smime_wrap.h): the
 * PKCS#8 DER inside CMS (Auth)EnvelopedData, as base64.
 */
#include "mail/smime_wrap.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "mail/smime.h"
#include "pki/crypto.h"

/* key as PKCS#8 DER (malloc'd, cleanse before free), or NULL. */
static unsigned char *pkcs8_der(EVP_PKEY *key, int *len, struct err *e)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	unsigned char *der = NULL;

	*len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (*len <= 0) {
		ERR_clear_error();
		err_set(e, ERR_INPUT, "bad_key", "the key has no PKCS#8 form");
		return NULL;
	}
	return der;
}

static char *cms_b64(CMS_ContentInfo *cms, struct err *e)
{
	unsigned char *der = NULL;
	int n = i2d_CMS_ContentInfo(cms, &der);
	char *b64 = n > 0 ? crypto_b64_encode(der, (size_t)n) : NULL;

	OPENSSL_free(der);
	if (b64 == NULL)
		err_set(e, ERR_INTERNAL, "internal", "the wrap could not be encoded");
	return b64;
}

char *smime_wrap_key(EVP_PKEY *key, STACK_OF(X509) * recips, struct err *e)
{
	enum smime_cipher c;
	unsigned char *der = NULL;
	CMS_ContentInfo *cms = NULL;
	BIO *in = NULL;
	char *b64 = NULL;
	int len = 0;

	if (smime_pick_cipher(recips, &c, e) < 0 || (der = pkcs8_der(key, &len, e)) == NULL)
		return NULL;
	if ((in = BIO_new_mem_buf(der, len)) == NULL) {
		err_set(e, ERR_INTERNAL, "internal", "out of memory");
		goto out;
	}
	cms = CMS_encrypt(recips, in, c == SMIME_AES256_GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc(),
	                  CMS_BINARY);
	if (cms == NULL) {
		err_set(e, ERR_INTERNAL, "wrap_failed", "CMS encryption of the key failed");
		goto out;
	}
	b64 = cms_b64(cms, e);
out:
	ERR_clear_error();
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	OPENSSL_clear_free(der, (size_t)len);
	return b64;
}

/* The DER of a wrap, checked (malloc'd into *der), or -1. */
static int wrap_der(const char *b64, size_t len, uint8_t **der, size_t *dlen, struct err *e)
{
	const unsigned char *p;
	CMS_ContentInfo *cms = NULL;
	char *text = NULL;
	int nid = NID_undef, ok;

	*der = NULL;
	if (len == 0 || len > SMIME_WRAP_MAX || memchr(b64, '\0', len) != NULL ||
	    (text = strndup(b64, len)) == NULL || (*der = crypto_b64_decode(text, dlen)) == NULL)
		goto bad;
	p = *der;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)*dlen);
	if (cms != NULL)
		nid = OBJ_obj2nid(CMS_get0_type(cms));
	ok = cms != NULL && p == *der + *dlen &&
	     (nid == NID_pkcs7_enveloped || nid == NID_id_smime_ct_authEnvelopedData) &&
	     sk_CMS_RecipientInfo_num(CMS_get0_RecipientInfos(cms)) > 0;
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	free(text);
	if (ok)
		return 0;
	free(*der);
	*der = NULL;
	text = NULL;
bad:
	free(text);
	return err_set(e, ERR_INPUT, "bad_wrap",
	               "a wrapped key is base64 of one DER CMS EnvelopedData or "
	               "AuthEnvelopedData with recipients, at most %u characters",
	               SMIME_WRAP_MAX);
}

int smime_wrap_check(const char *b64, size_t len, struct err *e)
{
	uint8_t *der = NULL;
	size_t n = 0;

	if (wrap_der(b64, len, &der, &n, e) < 0)
		return -1;
	free(der);
	return 0;
}

EVP_PKEY *smime_unwrap_key(const char *b64, size_t len, EVP_PKEY *key, X509 *cert, struct err *e)
{
	struct smime_buf plain = {0};
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	const unsigned char *p;
	EVP_PKEY *k = NULL;
	uint8_t *der = NULL;
	size_t n = 0;

	if (wrap_der(b64, len, &der, &n, e) < 0 ||
	    smime_decrypt_der(der, n, key, cert, &plain, e) < 0)
		goto out;
	p = (const unsigned char *)plain.data;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)plain.len);
	if (p8 != NULL && p == (const unsigned char *)plain.data + plain.len)
		k = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (k == NULL) {
		err_set(e, ERR_INPUT, "bad_key", "the wrap does not hold a PKCS#8 private key");
	}
out:
	ERR_clear_error();
	if (plain.data != NULL)
		OPENSSL_cleanse(plain.data, plain.len);
	smime_buf_clear(&plain);
	free(der);
	return k;
}
